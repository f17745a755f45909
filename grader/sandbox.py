"""Confine one student program: what it may write, how many processes it
may have, and a sure way to find every one of them afterwards.

Rlimits alone are not enough: a program run as root ignores RLIMIT_NPROC,
and a daemon that double-forks into its own session leaves both the
process group and the parent's list of children. So, where Linux lets us
(the grader runs as root, as in CI or a grading container):

- every program gets its own cgroup of the pids controller: `pids.max`
  bounds the whole tree (threads included), and `cgroup.procs` lists every
  process of the tree however it detached, so `close()` kills them all;
- the program runs in its own mount namespace where every file system is
  read-only except its own work folder, the hidden suites, the solutions
  and the project's tests are hidden behind empty folders, and
  /proc/sys is read-only;
- it loses every capability before it starts, so it cannot undo any of
  this (mount, cgroups) although its user id is still 0.

Elsewhere (a normal user's laptop) the program gets the rlimits, including
RLIMIT_NPROC counted from the user's processes now running, and nothing
else; `describe()` says which protections are active.

`Confinement.in_child` runs between fork and exec (a preexec_fn): it uses
only os calls and a libc loaded beforehand, no imports."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import psutil

from . import manifest

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
PR_CAPBSET_DROP = 24
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
                "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
# Mounts left writable: the kernel's own views, terminals and /dev/null.
_KEEP_WRITABLE = ("/proc", "/dev", "/dev/pts")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) \
    if sys.platform.startswith("linux") else None


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(),
                       fstype and fstype.encode(), ctypes.c_ulong(flags), None), f"mount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def bring_loopback_up() -> None:
    """In a fresh network namespace the loopback interface starts down."""
    import fcntl
    import socket
    import struct
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


# -- what this machine allows ---------------------------------------------------

def _pids_hierarchy() -> Path | None:
    """The folder of this process's pids cgroup, if it is writable."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
            break
        if controllers == "":  # cgroup v2: pids must be enabled below us
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/")
            try:
                if "pids" in (candidate / "cgroup.subtree_control").read_text().split():
                    folder = candidate
                    break
            except OSError:
                pass
    else:
        return None
    return folder if os.access(folder, os.W_OK) else None


STALE_CGROUP_SECONDS = 120


def _remove_stale_cgroups(folder: Path) -> None:
    """Remove empty per-program cgroups that a killed grader never removed
    (an empty cgroup costs little, but nothing should be left behind). A
    young one may belong to a program that is just starting: left alone."""
    now = time.time()
    for old in folder.glob("socklab-*"):
        try:
            if now - old.stat().st_mtime > STALE_CGROUP_SECONDS and \
                    not (old / "cgroup.procs").read_text().strip():
                old.rmdir()
        except OSError:
            pass


@lru_cache(maxsize=None)
def pids_cgroup_root() -> Path | None:
    """Where per-program cgroups can be made, or None."""
    folder = _pids_hierarchy()
    if folder is None:
        return None
    _remove_stale_cgroups(folder)
    try:
        probe = Path(tempfile.mkdtemp(prefix="socklab-probe-", dir=folder))
    except OSError:
        return None
    ok = (probe / "pids.max").exists()
    try:
        probe.rmdir()
    except OSError:
        pass
    return folder if ok else None


_PROBE = ("import sys; from grader import sandbox; "
          "sandbox.unshare(sandbox.CLONE_NEWNS); "
          "sandbox._mount(None, '/', None, sandbox.MS_REC | sandbox.MS_PRIVATE)")


@lru_cache(maxsize=None)
def mount_namespaces_available() -> bool:
    """True if a child can get a private mount namespace (root on Linux)."""
    if _libc is None or os.geteuid() != 0:
        return False
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=manifest.COURSE_ROOT,
                          capture_output=True, timeout=30)
    return done.returncode == 0


def describe() -> str:
    """One line naming the protections a student's program gets here."""
    parts = ["rlimits (CPU, memory, files, core)"]
    parts.append("a pids cgroup per program" if pids_cgroup_root() else
                 "RLIMIT_NPROC (no writable pids cgroup)")
    parts.append("read-only file system outside its folder" if mount_namespaces_available()
                 else "NO file-system confinement (needs root and mount namespaces)")
    return ", ".join(parts)


# -- one program ------------------------------------------------------------------

def _hidden_folders() -> list[str]:
    """Folders a student's program has no business reading."""
    found = [manifest.HIDDEN_DIR, manifest.SOLUTIONS_DIR, manifest.COURSE_ROOT / "tests"]
    return [str(p) for p in found if p.is_dir()]


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == uid:
                count += 1
        except psutil.Error:
            pass
    return count


def _set_limit(which: int, value: int) -> None:
    try:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard))
    except (ValueError, OSError):
        pass


class Confinement:
    """The limits and walls of one student program (and all it forks).

    Made in the parent before the spawn; `in_child` runs in the child just
    before exec; `close()` after the program is done kills whatever is left
    in its cgroup and removes the cgroup."""

    def __init__(self, limits, writable: list[Path]) -> None:
        self.limits = limits
        self.writable = [str(Path(p).resolve()) for p in writable]
        self.cgroup: Path | None = None
        root = pids_cgroup_root()
        if root is not None:
            try:
                self.cgroup = Path(tempfile.mkdtemp(prefix="socklab-", dir=root))
                (self.cgroup / "pids.max").write_text(str(limits.processes))
            except OSError:
                self.cgroup = None
        self.nproc = None if self.cgroup or os.geteuid() == 0 else \
            _user_process_count() + limits.processes
        self.confine_files = limits.confine_files and mount_namespaces_available()
        self.hidden = _hidden_folders() if self.confine_files else []
        try:
            self.last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        except (OSError, ValueError):
            self.last_cap = 40

    # -- in the child, between fork and exec ------------------------------------

    def in_child(self) -> None:
        limits = self.limits
        if self.cgroup is not None:
            fd = os.open(str(self.cgroup / "cgroup.procs"), os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        _set_limit(resource.RLIMIT_CORE, limits.core_bytes)
        _set_limit(resource.RLIMIT_CPU, limits.cpu_seconds)
        if sys.platform.startswith("linux"):
            _set_limit(resource.RLIMIT_AS, limits.address_space)
        if limits.open_files is not None:
            _set_limit(resource.RLIMIT_NOFILE, limits.open_files)
        if self.nproc is not None:
            _set_limit(resource.RLIMIT_NPROC, self.nproc)
        if self.confine_files:
            self._read_only_world()
            for cap in range(self.last_cap + 1):
                _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    def _read_only_world(self) -> None:
        unshare(CLONE_NEWNS)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for path in self.writable:
            _mount(path, path, None, MS_BIND | MS_REC)
        _mount("/proc/sys", "/proc/sys", None, MS_BIND)
        _mount(None, "/proc/sys", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        for path in self.hidden:
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        keep = set(self.writable) | set(self.hidden) | set(_KEEP_WRITABLE) | {"/proc/sys"}
        for point, options in _mounts():
            if point in keep or point.startswith(("/proc/", "/dev/pts/")):
                continue
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            for option in options:
                flags |= _MOUNT_FLAGS.get(option, 0)
            try:
                _mount(None, point, None, flags)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EACCES, errno.EINVAL):
                    raise
        # The working folder was entered before its writable mount existed:
        # enter it again by name, which now leads through that mount.
        os.chdir(os.getcwd())

    # -- in the parent, afterwards -------------------------------------------

    def members(self) -> list[int]:
        if self.cgroup is None:
            return []
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def close(self, reap=None) -> int:
        """Kill every process left in the cgroup and remove it. Returns how
        many were still alive. `reap()` is called while waiting, so the
        caller can collect its own child's exit."""
        if self.cgroup is None:
            return 0
        killed = 0
        deadline = time.monotonic() + 5
        while True:
            alive = self.members()
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            if reap is not None:
                reap()
            try:
                self.cgroup.rmdir()
                return killed
            except FileNotFoundError:
                return killed  # already removed as stale by another grader
            except OSError:
                if time.monotonic() > deadline:
                    return killed  # left for the runner's sweep; never hang
                time.sleep(0.01)


def _mounts() -> list[tuple[str, list[str]]]:
    """(mount point, per-mount options) of every mount, parents first."""
    fd = os.open("/proc/self/mountinfo", os.O_RDONLY)
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    found = []
    for line in b"".join(chunks).decode().splitlines():
        fields = line.split()
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        found.append((point, fields[5].split(",")))
    return found


_NET_PROBE = ("import socket; s = socket.create_server(('127.0.0.1', 0)); "
              "socket.create_connection(s.getsockname(), timeout=5).close()")


@lru_cache(maxsize=None)
def network_isolation_available() -> bool:
    """True if grader.jail --isolate-net works here (root, network namespaces)."""
    if _libc is None or os.geteuid() != 0:
        return False
    done = subprocess.run([sys.executable, "-m", "grader.jail", "--isolate-net", "--",
                           sys.executable, "-c", _NET_PROBE],
                          cwd=manifest.COURSE_ROOT, capture_output=True, timeout=30)
    return done.returncode == 0
