"""Confine one student program: what it sees, what it may use, and a sure
way to find and stop every process it started.

Two layers, each doing what the other cannot:

- **bubblewrap** (grader.harness.bubblewrap) builds the program's world, deny by
  default: a fresh file system with the Python runtime read-only, its own
  run folder, a private /tmp and /dev, its own /proc in a new pid
  namespace; it runs as an unprivileged user even when the grader is root
  (grader.harness.sandbox_init does the switch and reports the real exit status);
- **this module** does what bubblewrap does not: rlimits (CPU, memory,
  file size, open files, core), and a cgroup of the pids controller per
  program when the grader may make one, which bounds the whole tree and
  lists every process of it however it detached, so `close()` kills them
  all.

The sandbox is on while grading (the plugin's --socklab-sandbox, which
`socklab grade` sets) and off when a student runs the visible tests on
their own machine. Where bubblewrap cannot run (not Linux, no user or pid
namespaces), grading still runs with rlimits alone; `describe()` and
`missing()` say what is and is not enforced, and the commands print it.

`Confinement.in_child` runs between fork and exec (a preexec_fn): it uses
only os calls, no imports."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import psutil

from grader.course import manifest
from grader.harness import bubblewrap

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) \
    if sys.platform.startswith("linux") else None

# off: the student's own run; auto: sandbox where possible, warn where not;
# require: refuse to run a program without it (CI, tests of the sandbox).
MODES = ("off", "auto", "require")
_mode = "off"


def use(mode: str) -> None:
    """Set the sandbox mode for every program this process starts."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, not {mode!r}")
    _mode = mode


def mode() -> str:
    return _mode


def active() -> bool:
    """True when programs started now get the bubblewrap sandbox."""
    if _mode == "off":
        return False
    reason = bubblewrap.unavailable_reason()
    if reason is not None and _mode == "require":
        raise RuntimeError(f"the sandbox is required but unavailable: {reason}")
    return reason is None


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                       ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")


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



def describe() -> str:
    """One line naming the protections a student's program gets here."""
    parts = ["rlimits (CPU, memory, file size, files, core)"]
    parts.append("a pids cgroup per program" if pids_cgroup_root() else
                 "RLIMIT_NPROC (no writable pids cgroup)")
    reason = bubblewrap.unavailable_reason()
    if reason is None:
        parts.append("a bubblewrap sandbox (own file system, /tmp, /dev and /proc, "
                     + ("an unprivileged user)" if os.geteuid() == 0 else "the grader's own user)"))
    else:
        parts.append(f"NO sandbox: {reason}")
    return ", ".join(parts)


def missing() -> list[str]:
    """What is NOT enforced on this machine (empty when everything is)."""
    gaps = []
    reason = bubblewrap.unavailable_reason()
    if reason is not None:
        gaps += [f"no file-system sandbox ({reason}): a program can read every file the grader "
                 "can, the course checkout, its .git and other submissions included",
                 "no pid namespace: a program sees every process on the machine",
                 "no private /tmp, /dev and /dev/shm"]
    elif os.geteuid() != 0:
        gaps.append("the program runs as the grader's own user (inside its sandbox)")
    if pids_cgroup_root() is None:
        gaps.append("no pids cgroup: the process limit is RLIMIT_NPROC, and a daemon that "
                    "leaves its session is found only by the jail's sweep")
    if not network_isolation_available():
        gaps.append("no network namespace per exercise: programs graded at the same time share "
                    "the machine's loopback")
    return gaps


def warning() -> str | None:
    """The loud warning to print before grading, or None."""
    gaps = missing()
    if not gaps:
        return None
    return ("WARNING: this machine cannot fully sandbox student programs. Not enforced:\n"
            + "\n".join(f"  - {gap}" for gap in gaps)
            + "\nGrade untrusted submissions on Linux as root, or in a throwaway VM.")


# -- one program ------------------------------------------------------------------

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

    Made in the parent before the spawn: `command(argv)` is what to run,
    `pass_fds` what it must inherit; `in_child` runs in the child just
    before exec; `started(pid)` after the spawn finds the program's own
    pid; `exit_status()` reads how it ended; `close()` kills whatever is
    left and removes the cgroup.

    `tty`: the program's stdin and stdout are the spawn's terminal (else
    whatever the spawn gave it). `linger`: keep the sandbox, and the
    processes the program left, after the program exits (until `close`).
    `libraries`: distributions the grader's own code run in there needs
    (importable, read-only; see bubblewrap.library_binds)."""

    def __init__(self, limits, writable: list[Path], tty: bool = True,
                 linger: bool = True, libraries: tuple[str, ...] = ()) -> None:
        self.limits = limits
        self.libraries = libraries
        self.writable = [str(Path(p).resolve()) for p in writable]
        self.tty, self.linger = tty, linger
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
        self.sandboxed = active()
        self.privileged = os.geteuid() == 0
        self.init_pid: int | None = None
        self._status = b""
        self._exit: tuple[int | None, int | None] | None = None
        self._status_read = self._status_write = -1
        if self.sandboxed:
            self._status_read, self._status_write = os.pipe()
            if self.privileged:
                for path in self.writable:   # the program's user must write there
                    _give_to_sandbox_user(Path(path))

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self._status_write,) if self.sandboxed else ()

    def command(self, argv: list[str]) -> list[str]:
        """What to execute: `argv` itself, or `argv` inside the sandbox."""
        if not self.sandboxed:
            return argv
        uid = bubblewrap.SANDBOX_UID if self.privileged else -1
        cwd = self.writable[0] if self.writable else "/"
        return [bubblewrap.binary(),
                *bubblewrap.arguments(self.writable, self.privileged, self.libraries),
                *bubblewrap.init_command(self._status_write, uid, bubblewrap.SANDBOX_GID,
                                         self.tty, self.linger, cwd),
                *bubblewrap.program_argv(argv)]

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The program's environment: in the sandbox, a PATH of the system's
        folders only (the grader's PATH names the course's virtual environment)."""
        if self.sandboxed:
            env = {**env, "PATH": "/usr/local/bin:/usr/bin:/bin"}
            if self.libraries:
                env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [env.get("PYTHONPATH"), bubblewrap.LIBRARY_DIR]))
        return env

    # -- in the child, between fork and exec ------------------------------------

    def in_child(self) -> None:
        limits = self.limits
        if self.cgroup is not None:
            fd = os.open(str(self.cgroup / "cgroup.procs"), os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        _set_limit(resource.RLIMIT_CORE, limits.core_bytes)
        _set_limit(resource.RLIMIT_CPU, limits.cpu_seconds)
        _set_limit(resource.RLIMIT_FSIZE, limits.file_bytes)
        if sys.platform.startswith("linux"):
            _set_limit(resource.RLIMIT_AS, limits.address_space)
        if limits.open_files is not None:
            _set_limit(resource.RLIMIT_NOFILE, limits.open_files)
        if self.nproc is not None:
            _set_limit(resource.RLIMIT_NPROC, self.nproc)
        if self.sandboxed:
            os.set_inheritable(self._status_write, True)   # pexpect keeps it open, not across exec
            if self.tty:
                # bwrap itself must not hold the terminal open, or the
                # grader would never see end of file: the init opens it.
                null = os.open("/dev/null", os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.close(null)

    # -- in the parent, afterwards -------------------------------------------

    def started(self, spawned_pid: int, timeout: float = 15.0) -> int:
        """The pid (as the grader sees it) of the program itself, once it runs.
        Outside the sandbox that is the spawned process."""
        if not self.sandboxed:
            return spawned_pid
        os.close(self._status_write)
        self._status_write = -1
        if not self._read_status(timeout, until=b"started\n"):
            return spawned_pid   # bwrap failed: its message is on the program's stderr
        deadline = time.monotonic() + timeout
        while True:
            inits = _children(spawned_pid)
            if inits:
                self.init_pid = inits[0]
                programs = _children(self.init_pid)
                if programs:
                    return programs[0]
            if self.exit_status() is not None or time.monotonic() > deadline:
                return self.init_pid or spawned_pid
            time.sleep(0.001)

    def _read_status(self, timeout: float, until: bytes) -> bool:
        deadline = time.monotonic() + timeout
        while until not in self._status:
            remaining = deadline - time.monotonic()
            if self._status_read < 0 or remaining <= 0:
                return False
            ready, _, _ = select.select([self._status_read], [], [], remaining)
            if not ready:
                return False
            chunk = os.read(self._status_read, 256)
            if not chunk:
                os.close(self._status_read)
                self._status_read = -1
                return until in self._status
            self._status += chunk
        return True

    def exit_status(self) -> tuple[int | None, int | None] | None:
        """(exit code, None) or (None, signal number) once the program in the
        sandbox has ended, else None. Only meaningful when sandboxed."""
        if self._exit is None and self._status_read >= 0:
            ready, _, _ = select.select([self._status_read], [], [], 0)
            if ready:
                chunk = os.read(self._status_read, 256)
                if chunk:
                    self._status += chunk
                else:
                    os.close(self._status_read)
                    self._status_read = -1
        if self._exit is None:
            for line in self._status.decode(errors="replace").splitlines():
                word, _, number = line.partition(" ")
                if word == "exit":
                    self._exit = (int(number), None)
                elif word == "signal":
                    self._exit = (None, int(number))
        return self._exit

    def inner_pid(self, pid: int) -> int:
        """What process `pid` (as the grader sees it) calls itself inside the sandbox."""
        spaces = _ns_pids(pid)
        return spaces[-1] if spaces else pid

    def outer_pid(self, inner: int) -> int | None:
        """The grader's pid of the sandboxed process that calls itself `inner`."""
        if not self.sandboxed:
            return inner
        for pid in self._sandbox_pids():
            spaces = _ns_pids(pid)
            if len(spaces) > 1 and spaces[-1] == inner:
                return pid
        return None

    def strays(self, program_pid: int) -> list[int]:
        """Processes the init adopted: every one in the sandbox whose parent
        is the init, except the program itself."""
        if not self.sandboxed or self.init_pid is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.init_pid).children() if c.pid != program_pid]
        except psutil.Error:
            return []

    def _sandbox_pids(self) -> list[int]:
        if self.cgroup is not None:
            return self.members()
        if self.init_pid is None:
            return []
        try:
            init = psutil.Process(self.init_pid)
            return [init.pid] + [c.pid for c in init.children(recursive=True)]
        except psutil.Error:
            return []

    def members(self) -> list[int]:
        if self.cgroup is None:
            return []
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def close(self, reap=None) -> int:
        """Kill every process of the program: the sandbox's init (which ends
        everything in its pid namespace) and whatever is left in the cgroup,
        then remove the cgroup. Returns how many were still alive. `reap()`
        is called while waiting, so the caller can collect its own child."""
        if self.init_pid is not None:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self._status_read, self._status_write):
            if fd >= 0:
                os.close(fd)
        self._status_read = self._status_write = -1
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


def _children(pid: int) -> list[int]:
    """The children of `pid`, oldest first: the kernel's own list where it
    keeps one (cheap), else a scan of /proc by psutil."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        try:
            return [c.pid for c in sorted(psutil.Process(pid).children(),
                                          key=lambda c: c.create_time())]
        except psutil.Error:
            return []
    except (OSError, ValueError):
        return []


def _ns_pids(pid: int) -> list[int]:
    """The NSpid line of /proc/PID/status: the pid in each nested namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def _give_to_sandbox_user(folder: Path) -> None:
    """Hand a run folder (and what is in it) to the sandbox's user."""
    uid, gid = bubblewrap.SANDBOX_UID, bubblewrap.SANDBOX_GID
    try:
        os.chown(folder, uid, gid)
        for path in folder.rglob("*"):
            os.chown(path, uid, gid, follow_symlinks=False)
    except OSError:
        pass


_NET_PROBE = ("import socket; s = socket.create_server(('127.0.0.1', 0)); "
              "socket.create_connection(s.getsockname(), timeout=5).close()")


@lru_cache(maxsize=None)
def network_isolation_available() -> bool:
    """True if grader.harness.jail --isolate-net works here (root, network namespaces)."""
    if _libc is None or os.geteuid() != 0:
        return False
    done = subprocess.run([sys.executable, "-m", "grader.harness.jail", "--isolate-net", "--",
                           sys.executable, "-c", _NET_PROBE],
                          cwd=manifest.COURSE_ROOT, capture_output=True, timeout=30)
    return done.returncode == 0
