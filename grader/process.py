"""Run a student's program under pexpect and watch what it prints.

The program gets a pseudo-terminal as stdout (so it behaves as in a
student's terminal) and a file as stderr (so the suites can tell the two
apart). A reader thread drains the terminal all the time: a server that
logs every broadcast must never block in print() because nobody reads.
Every program runs in its own session; stopping it kills the whole process
group and any descendant that was seen, then reaps it."""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import psutil
import ptyprocess

from .failure import GradingFailure
from .sandbox import Confinement
from .transcript import Transcript

MAX_LINES = 200_000     # lines kept for matching; a runaway printer is cut off
TAIL_LINES = 25


@dataclass
class Limits:
    """Resource limits for a student's program (applied where the OS allows)."""

    cpu_seconds: int = 120
    address_space: int = 2 << 30
    open_files: int | None = None       # None: inherit the grader's limit
    core_bytes: int = 0
    processes: int = 256                # processes and threads of the whole tree
    file_bytes: int = 64 << 20          # the largest file it may write (stderr included)


def child_environment(workdir: Path) -> dict[str, str]:
    """A small, explicit environment: nothing of the grader's leaks in, and
    nothing (such as PYTHONUNBUFFERED) hides a buffering bug."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(workdir),
        "TMPDIR": str(workdir),
    }


class _Spawn(pexpect.spawn):
    """pexpect.spawn that lets chosen descriptors through to the child
    (pexpect closes all others), for the sandbox's status pipe."""

    def __init__(self, *args, pass_fds: tuple[int, ...] = (), **kwargs) -> None:
        self._pass_fds = pass_fds
        super().__init__(*args, **kwargs)

    def _spawnpty(self, args, **kwargs):
        return ptyprocess.PtyProcess.spawn(args, pass_fds=self._pass_fds, **kwargs)


@dataclass
class Exit:
    code: int | None        # exit status, or None if killed by a signal
    signal: int | None

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
        return f"exited with status {self.code}"


@dataclass
class Program:
    """One running student program."""

    argv: list[str]
    cwd: Path
    transcript: Transcript
    name: str = "program"
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] | None = None
    log_dir: Path | None = None     # where stderr is kept; default: cwd
    writable: list[Path] = field(default_factory=list)   # more folders it may write

    def __post_init__(self) -> None:
        self.lines: list[str] = []
        self._partial = b""
        self._cursor = 0
        self._eof = False
        self._cond = threading.Condition()
        self._exit: Exit | None = None
        self._stderr_path = Path(tempfile.mkstemp(prefix="stderr-", dir=self.log_dir or self.cwd)[1])
        self._known_pids: set[int] = set()
        self.confinement = Confinement(self.limits, writable=[self.cwd, *self.writable])
        confinement = self.confinement
        env = confinement.environment(self.env or child_environment(self.cwd))
        stderr_path = str(self._stderr_path)

        def in_child() -> None:
            # A grader started in the background (a shell job, CI) may have
            # SIGINT ignored; the program must get the signals a terminal gives.
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            fd = os.open(stderr_path, os.O_WRONLY | os.O_TRUNC)
            os.dup2(fd, 2)
            os.close(fd)
            confinement.in_child()

        command = confinement.command(self.argv)
        self.child = _Spawn(
            command[0], command[1:], cwd=str(self.cwd), env=env,
            echo=False, preexec_fn=in_child, timeout=None,
            dimensions=(24, 400), pass_fds=confinement.pass_fds,
        )
        self.group = self.child.pid     # the process group (and session) of the spawn
        self.pid = confinement.started(self.child.pid)   # the program itself
        self._known_pids.add(self.pid)
        self.transcript.programs.append(self)
        shown = [Path(a).name if a.endswith(".py") else a for a in self.argv[1:] if a not in ("-u", "-s")]
        self.transcript.note(self.name, "started: python -u " + " ".join(shown))
        self._reader = threading.Thread(target=self._drain, name=f"drain-{self.pid}", daemon=True)
        self._reader.start()

    # -- output -------------------------------------------------------------

    def _drain(self) -> None:
        fd = self.child.child_fd
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            try:
                if not poller.poll(200):
                    continue
                chunk = os.read(fd, 65536)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    chunk = b""  # Linux reports the closed terminal as EIO
                else:
                    raise
            except ValueError:
                chunk = b""
            with self._cond:
                if not chunk:
                    if self._partial:
                        self._store(self._partial)
                        self._partial = b""
                    self._eof = True
                    self._cond.notify_all()
                    return
                data = self._partial + chunk
                *complete, self._partial = data.split(b"\n")
                for raw in complete:
                    self._store(raw)
                self._cond.notify_all()

    def _store(self, raw: bytes) -> None:
        if len(self.lines) < MAX_LINES:
            self.lines.append(raw.rstrip(b"\r").decode("utf-8", errors="replace"))

    def expect_line(self, pattern: str | re.Pattern, timeout: float = 5.0,
                    did: str = "", literal: bool = False) -> re.Match:
        """Wait for the next stdout line matching `pattern` (other lines in
        between are allowed) and return the match."""
        regex = re.compile(re.escape(pattern) + r"\s*$" if literal else pattern) \
            if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self.lines):
                    line = self.lines[self._cursor]
                    self._cursor += 1
                    match = regex.match(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
        shown = pattern if isinstance(pattern, str) else pattern.pattern
        if self._eof:
            status = self.wait_exit(2.0)
            got = f"it closed its output ({status.describe() if status else 'still running'}) " \
                  "without printing that line."
        else:
            got = f"no such line within {timeout:g} s."
        raise GradingFailure(
            did=did or f"started {self.name} and read its output",
            expected=f"{self.name} prints a line matching: {shown}",
            got=got + " (its output is shown below)",
        )

    def has_line(self, pattern: str) -> bool:
        regex = re.compile(pattern)
        with self._cond:
            return any(regex.match(line) for line in self.lines)

    def wait_for_eof(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stderr(self) -> str:
        try:
            return self._stderr_path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def stdout(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def output_tail(self) -> str:
        with self._cond:
            out = self.lines[-TAIL_LINES:]
            cut = len(self.lines) - len(out)
        err = self.stderr().splitlines()[-TAIL_LINES:]
        text = [f"Last stdout lines of {self.name}" + (f" ({cut} earlier not shown)" if cut else "") + ":"]
        text += [f"    | {line}" for line in out] or ["    (nothing)"]
        text.append(f"Last stderr lines of {self.name}:")
        text += [f"    | {line}" for line in err] or ["    (nothing)"]
        return "\n".join(text)

    # -- input --------------------------------------------------------------

    def send_line(self, text: str) -> None:
        self.transcript.sent(self.name + " stdin", text + "\n")
        self.child.sendline(text)

    def send_eof(self) -> None:
        self.transcript.note(self.name + " stdin", "end of input (Ctrl-D)")
        self.child.sendeof()

    # -- life and death -----------------------------------------------------

    def remember_children(self) -> None:
        """Note every descendant now alive, so stop() can kill even one that
        left the process group."""
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                self._known_pids.add(child.pid)
        except psutil.Error:
            pass

    def poll_exit(self) -> Exit | None:
        if self._exit is None:
            status = self.confinement.exit_status() if self.confinement.sandboxed else None
            if status is not None:
                self._exit = Exit(*status)
            elif not self.child.isalive():   # outside the sandbox, or bwrap itself failed
                status = self.confinement.exit_status() if self.confinement.sandboxed else None
                self._exit = Exit(*status) if status else \
                    Exit(self.child.exitstatus, self.child.signalstatus)
            if self._exit is not None:
                self.transcript.note(self.name, self._exit.describe())
        return self._exit

    # -- pids as the program sees them ---------------------------------------

    def inner_pid(self, pid: int | None = None) -> int:
        """The pid that process `pid` (default: the program) has in its own
        view: inside the sandbox, its pid namespace's number (os.getpid())."""
        return self.confinement.inner_pid(self.pid if pid is None else pid) \
            if self.confinement.sandboxed else (self.pid if pid is None else pid)

    def outer_pid(self, inner: int) -> int | None:
        """The grader's pid of the program's process that calls itself
        `inner` (a pid the program printed), or None if there is none."""
        if not self.confinement.sandboxed:
            return inner
        return self.confinement.outer_pid(inner)

    def strays(self) -> list[int]:
        """Processes the program left behind inside its sandbox (adopted by
        the sandbox's init after their parent exited)."""
        return self.confinement.strays(self.pid)

    def wait_exit(self, timeout: float) -> Exit | None:
        """The program's exit, or None if it is still running after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.poll_exit()
            if status is not None or time.monotonic() >= deadline:
                return status
            time.sleep(0.01)

    def send_signal(self, sig: int) -> None:
        self.remember_children()
        self.transcript.note(self.name, f"sent {signal.Signals(sig).name}")
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def descriptor_limits(self) -> tuple[int, int]:
        """The program's (soft, hard) limit on open files, read from
        /proc/PID/limits (readable by anyone; prlimit() on another user's
        process needs a capability the grader may not have)."""
        with open(f"/proc/{self.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return (int(soft) if soft.isdigit() else -1, int(hard) if hard.isdigit() else -1)
        raise OSError(f"no open-files line in /proc/{self.pid}/limits")

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        """Kill the program's group and every descendant seen, reap it, and
        release the terminal. Safe to call twice."""
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        self.remember_children()
        try:
            os.killpg(self.group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in self._known_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.child.close(force=True)
        except Exception:
            pass
        # Whatever escaped the group (a double-forked daemon) is still in
        # the program's cgroup, and in the sandbox's pid namespace.
        self.confinement.close()
        self.poll_exit()
        self._reader.join(timeout=2)
        try:
            self._stderr_path.unlink()
        except OSError:
            pass


# A helper that joins a sandboxed program's pid namespace (and its user
# namespace, when the grader is not root) before it forks the process that
# runs CODE: that process is one the program can see, with the pid the
# program would get from SO_PEERCRED.
_JOIN_AND_RUN = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
target = sys.argv[1]
for kind, flag in (("user", 0x10000000), ("pid", 0x20000000)):
    path = f"/proc/{target}/ns/{kind}"
    if os.readlink(path) == os.readlink(f"/proc/self/ns/{kind}"):
        continue
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, flag) != 0:
        raise OSError(ctypes.get_errno(), f"setns({kind}) into the program's sandbox")
    os.close(fd)
child = os.fork()
if child:
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
code = sys.argv[2]
sys.argv = ["peer", *sys.argv[3:]]
exec(compile(code, "<peer>", "exec"), {"__name__": "__main__"})
"""


def start_peer(program: Program, code: str, *args: str, **popen) -> subprocess.Popen:
    """Run Python `code` (with `args` as sys.argv[1:]) in a process that
    `program` can see: inside its sandbox's pid namespace when it has one,
    else an ordinary child of the test. For tests of what a program learns
    about its peers (SO_PEERCRED): let the code print os.getpid(), which is
    the pid the program sees."""
    if program.confinement.sandboxed and program.confinement.init_pid is not None:
        argv = [sys.executable, "-c", _JOIN_AND_RUN, str(program.confinement.init_pid), code, *args]
    else:
        argv = [sys.executable, "-c", code, *args]
    return subprocess.Popen(argv, **popen)


def python_argv(script: Path, *args: str) -> list[str]:
    """How every student program is started: unbuffered, without the user's
    site-packages (the environment is built explicitly, see above)."""
    return [sys.executable, "-u", "-s", str(script), *map(str, args)]
