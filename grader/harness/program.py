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
from typing import Callable

import pexpect
import psutil
import ptyprocess

from grader.harness import waits
from grader.harness.failure import GradingFailure
from grader.harness.sandbox import Confinement
from grader.harness.transcript import Transcript
from grader.harness.visible_text import visible

# What the grader keeps of a program's stdout. Its memory must stay bounded
# whatever a program prints (a line of a gigabyte, a million lines), so it
# keeps the first lines for good and a sliding window of the recent ones,
# and counts what it dropped.
LINE_BYTES = 8 << 10        # bytes kept of one line; the rest of the line is counted, not kept
HEAD_LINES = 1000           # the first lines, kept for good...
HEAD_BYTES = 64 << 10       # ...up to this many characters in all
WINDOW_BYTES = 16 << 20     # then recent lines, each charged its length plus
LINE_OVERHEAD = 64          # this (a Python string's own size), up to this many bytes...
MAX_LINES = 200_000         # ...and this many lines; older ones are dropped
# Once a program's output has ended (it exited, or was stopped), what is
# left to do with it is a few checks and the failure message; but the test
# session keeps every Program until it ends, so its window shrinks to this.
ENDED_WINDOW_BYTES = 256 << 10
READ_BYTES = 64 << 10       # one read from the terminal (it hands out ~4-25 KiB at a time;
                            # asking for more only makes each read allocate more)
# What is shown of it (and of stderr) under a failure message.
DONE_POLL = 0.05            # seconds between looks at what a program has done (expect_line)
TAIL_LINES = 25             # last lines of stdout and of stderr shown
SHOW_HEAD_LINES = 5         # first stdout lines also shown when some in between were dropped
SHOW_CHARS = 300            # a shown line is cut to this many characters
OUTPUT_TAIL_CHARS = 24 << 10    # output_tail() never returns more than this
# stderr goes to a file (capped by the file-size limit); stderr() reads at
# most this much of its start and of its end, never the whole file.
STDERR_HEAD_BYTES = 64 << 10
STDERR_TAIL_BYTES = 256 << 10
# The most a program may print on stdout in one run. Past it the grader
# stops the program, as it would one over its memory or CPU limit: every
# byte goes through a terminal at a few hundred MB/s, so a program printing
# without end would cost the grader seconds at each of its starts (a test
# suite starts a program tens of times). The exercises' programs print a
# few kilobytes, and at most about 8 MiB (01 logs what a client sends, and a
# test sends 7 MB): 32 MiB leaves room for a more talkative style.
STDOUT_BUDGET = 32 << 20


class CutLine(str):
    """A stdout line longer than LINE_BYTES: its first LINE_BYTES bytes,
    with `total`, the length in bytes of the whole line."""

    total: int


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
        self._head: list[str] = []          # the first lines (HEAD_LINES, HEAD_BYTES)
        self._head_bytes = 0
        self._head_closed = False
        self._recent: list[str | None] = []  # the window: _recent[_first:] are kept
        self._first = 0
        self._recent_bytes = 0
        self._window_start = 0              # the line number of _recent[_first]
        self._count = 0                     # lines seen in all
        self._dropped_bytes = 0             # of lines dropped and of the cut ends of long lines
        self._cut_lines = 0
        self._unread_dropped = 0            # lines dropped before expect_line reached them
        self._printed = 0                   # bytes read from stdout in all
        self.over_budget = False            # stopped for printing more than STDOUT_BUDGET
        self._partial = bytearray()         # the line being received, at most LINE_BYTES of it
        self._partial_len = 0               # its whole length so far
        self._partial_cr = False            # whether it ends with \r so far
        self._cursor = 0                    # the line number expect_line looks at next
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
                chunk = os.read(fd, READ_BYTES)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    chunk = b""  # Linux reports the closed terminal as EIO
                else:
                    raise
            except ValueError:
                chunk = b""
            with self._cond:
                if not chunk:
                    if self._partial_len:
                        self._end_line(b"", 0, 0)
                    self._evict(ENDED_WINDOW_BYTES)
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._take(chunk)
                self._printed += len(chunk)
                if self._printed > STDOUT_BUDGET and not self.over_budget:
                    self._stop_for_printing()
                self._cond.notify_all()

    def _stop_for_printing(self) -> None:
        """Over STDOUT_BUDGET: kill the program (lock held; it then exits by
        SIGKILL and its output ends) and say why in the transcript."""
        self.over_budget = True
        self.transcript.note(self.name, f"printed more than {STDOUT_BUDGET >> 20} MiB on stdout: "
                                        "stopped by the grader (a program may print at most "
                                        f"{STDOUT_BUDGET >> 20} MiB in one run)")
        try:
            os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _take(self, chunk: bytes) -> None:
        """Split what was read into lines (lock held). Newlines are found
        with bytes.find, so a long line costs one search per read, and
        nothing of it beyond LINE_BYTES is ever copied."""
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._end_line(chunk, start, end)
            start = end + 1
        if start < len(chunk):
            room = LINE_BYTES - len(self._partial)
            if room > 0:
                self._partial += chunk[start:start + room]
            self._partial_len += len(chunk) - start
            self._partial_cr = chunk[-1] == 13

    def _end_line(self, chunk: bytes, start: int, end: int) -> None:
        if not self._partial_len and end - start <= LINE_BYTES:
            self._store(chunk[start:end], end - start)
            return
        room = LINE_BYTES - len(self._partial)
        if room > 0:
            self._partial += chunk[start:min(end, start + room)]
        # the terminal ends lines with \r\n: the \r is not part of the line
        cr = chunk[end - 1] == 13 if end > start else self._partial_cr
        raw, total = bytes(self._partial), self._partial_len + end - start - cr
        self._partial.clear()
        self._partial_len = 0
        self._store(raw, total)

    def _store(self, raw: bytes, total: int) -> None:
        """Keep one line (lock held): in the head while it has room, else
        in the window, dropping the window's oldest lines to stay in bounds."""
        if total > len(raw):
            line = CutLine(raw.decode("utf-8", errors="replace"))
            line.total = total
            self._cut_lines += 1
            self._dropped_bytes += total - len(raw)
        else:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        self._count += 1
        if not self._head_closed:
            if len(self._head) < HEAD_LINES and self._head_bytes + len(line) <= HEAD_BYTES:
                self._head.append(line)
                self._head_bytes += len(line)
                return
            self._head_closed = True
            self._window_start = self._count - 1
        self._recent.append(line)
        self._recent_bytes += len(line) + LINE_OVERHEAD
        self._evict(WINDOW_BYTES)

    def _evict(self, most_bytes: int) -> None:
        """Drop the window's oldest lines until it holds at most `most_bytes`
        and MAX_LINES (lock held)."""
        while self._recent_bytes > most_bytes or len(self._recent) - self._first > MAX_LINES:
            old = self._recent[self._first]
            self._recent[self._first] = None
            self._first += 1
            self._window_start += 1
            self._recent_bytes -= len(old) + LINE_OVERHEAD
            self._dropped_bytes += len(old) if old.isascii() else len(old.encode("utf-8", "replace"))
        if self._first > 4096 and 2 * self._first > len(self._recent):
            del self._recent[:self._first]
            self._first = 0

    def _line_at(self, number: int) -> str | None:
        """Line `number` (0 = the first printed), or None if it was dropped."""
        if number < len(self._head):
            return self._head[number]
        if number < self._window_start:
            return None
        return self._recent[self._first + number - self._window_start]

    @property
    def lines(self) -> list[str]:
        """The stdout lines kept, in order: all of them unless the program
        printed more than the grader keeps (see dropped())."""
        with self._cond:
            return self._head + self._recent[self._first:]

    def dropped(self) -> tuple[int, int, int]:
        """(lines dropped, bytes dropped, lines cut to LINE_BYTES) of stdout."""
        with self._cond:
            return self._window_start - len(self._head) if self._head_closed else 0, \
                self._dropped_bytes, self._cut_lines

    def expect_line(self, pattern: str | re.Pattern, timeout: float = waits.REPLY,
                    did: str = "", literal: bool = False,
                    done: Callable[[], bool] | None = None, done_what: str = "") -> re.Match:
        """Wait for the next stdout line matching `pattern` (other lines in
        between are allowed) and return the match. `done`: a check that the
        program has already done what the line announces (it listens: see
        grader.harness.listening; `done_what` says it in words). Once it
        has, the line must come within waits.DONE_TO_LINE, however much of
        `timeout` is left."""
        regex = re.compile(re.escape(pattern) + r"\s*$" if literal else pattern) \
            if isinstance(pattern, str) else pattern
        started = time.monotonic()
        deadline = started + timeout
        done_at = None
        with self._cond:
            while True:
                while self._cursor < self._count:
                    line = self._line_at(self._cursor)
                    if line is None:    # dropped before we got to read it
                        self._unread_dropped += self._window_start - self._cursor
                        self._cursor = self._window_start
                        continue
                    self._cursor += 1
                    match = regex.match(line)
                    if match:
                        return match
                if done is not None and done_at is None and done():
                    done_at = time.monotonic()
                    deadline = min(deadline, done_at + waits.DONE_TO_LINE)
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining if done is None or done_at is not None
                                else min(remaining, DONE_POLL))
            unread = self._unread_dropped
        shown = pattern if isinstance(pattern, str) else pattern.pattern
        if self._eof:
            status = self.wait_exit(2.0)
            got = f"it closed its output ({status.describe() if status else 'still running'}) " \
                  "without printing that line."
        elif done_at is not None:
            got = (f"no such line within {time.monotonic() - started:.1f} s, though it was "
                   f"already {done_what} {done_at - started:.1f} s after it started: the line "
                   f"did not come in the {waits.DONE_TO_LINE:g} s after that. It is printed "
                   "once that is done.")
        else:
            got = f"no such line within {timeout:g} s."
        if unread:
            got += f" ({unread} lines of its output were dropped unread: it printed " \
                   "more than the grader keeps.)"
        if self.over_budget:
            got += (f" The grader stopped it: it printed more than {STDOUT_BUDGET >> 20} MiB on "
                    "stdout, the most a program may print in one run.")
        raise GradingFailure(
            did=did or f"started {self.name} and read its output",
            expected=f"{self.name} prints a line matching: {shown}",
            got=got + " (its output is shown below)",
        )

    def has_line(self, pattern: str) -> bool:
        regex = re.compile(pattern)
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
        """What the program wrote to stderr: all of it if short, else its
        first STDERR_HEAD_BYTES and last STDERR_TAIL_BYTES with a note
        between (the file is never read whole)."""
        try:
            with open(self._stderr_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size <= STDERR_HEAD_BYTES + STDERR_TAIL_BYTES:
                    return f.read(STDERR_HEAD_BYTES + STDERR_TAIL_BYTES).decode("utf-8", errors="replace")
                head = f.read(STDERR_HEAD_BYTES)
                f.seek(size - STDERR_TAIL_BYTES)
                tail = f.read(STDERR_TAIL_BYTES)
        except OSError:
            return ""
        skipped = size - len(head) - STDERR_TAIL_BYTES
        return head.decode("utf-8", errors="replace") \
            + f"\n[... {skipped} bytes of stderr not shown ...]\n" \
            + tail.decode("utf-8", errors="replace")

    def stdout(self) -> str:
        """The kept stdout lines as one text, with a note where lines were dropped."""
        with self._cond:
            gap = self._window_start - len(self._head) if self._head_closed else 0
            parts = self._head + ([f"[... {gap} lines of stdout not kept ...]"] if gap else []) \
                + self._recent[self._first:]
        return "\n".join(parts)

    def output_tail(self) -> str:
        """The end of stdout and stderr for a failure message: lines
        escaped (see visible_text) and shortened for display, and what the
        grader dropped said in numbers. At most OUTPUT_TAIL_CHARS long."""
        with self._cond:
            count = self._count
            gap = self._window_start - len(self._head) if self._head_closed else 0
            start = max(0, count - TAIL_LINES)
            first = [self._line_at(i) for i in range(min(SHOW_HEAD_LINES, start))] if gap else []
            last = [line for line in map(self._line_at, range(start, count)) if line is not None]
            dropped_bytes, cut = self._dropped_bytes, self._cut_lines
            partial = self._partial_len
        text = []
        if gap or cut or partial > LINE_BYTES:
            note = [f"{self.name} printed {count} lines on stdout"]
            if gap:
                note.append(f"{gap} lines in the middle were not kept")
            if cut:
                note.append(f"{cut} lines longer than {LINE_BYTES} bytes were cut to that")
            if partial > LINE_BYTES:
                note.append(f"a line of {partial} bytes without an end was being printed")
            note.append(f"{dropped_bytes + max(0, partial - LINE_BYTES)} bytes were dropped "
                        "in all (the grader keeps a bounded part of a program's output)")
            text.append("; ".join(note) + ".")
        if first:
            text.append(f"First stdout lines of {self.name}:")
            text += [_shown(line) for line in first]
        shown_more = count - len(last) - len(first)
        text.append(f"Last stdout lines of {self.name}"
                    + (f" ({shown_more} earlier not shown)" if shown_more else "") + ":")
        text += [_shown(line) for line in last] or ["    (nothing)"]
        err = output_lines(self.stderr())[-TAIL_LINES:]
        text.append(f"Last stderr lines of {self.name}:")
        text += [_shown(line) for line in err] or ["    (nothing)"]
        out = "\n".join(text)
        if len(out) > OUTPUT_TAIL_CHARS:
            out = out[:OUTPUT_TAIL_CHARS - 40] + "\n    [... output cut here ...]"
        return out

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
        self._known_pids.update(_descendants(self.pid))

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
        started = time.monotonic()
        deadline = started + timeout
        while True:
            status = self.poll_exit()
            if status is not None:
                waits.observed("exit", time.monotonic() - started)
                return status
            if time.monotonic() >= deadline:
                return status
            time.sleep(0.01)

    def where(self) -> str:
        """What the program is doing now, as the kernel tells it: its state
        and the kernel function it waits in (and its sandbox init's), for a
        message about a program that did not do something in time."""
        parts = [f"it is {_process_state(self.pid)}"]
        init = getattr(self.confinement, "init_pid", None)
        if self.confinement.sandboxed and init is not None:
            parts.append(f"the sandbox's init is {_process_state(init)}")
        return "; ".join(parts)

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
        # pexpect's close() sleeps 0.1 s "to give the kernel time" before it
        # looks at the child, at every stop of every program (seconds over a
        # grading). The child (bwrap, or the program outside a sandbox) leads
        # the group just killed: wait for it to die, leaving it for close()
        # to reap, and close without the sleep.
        _wait_dead(self.child.pid, waits.KILLED)
        self.child.ptyproc.delayafterclose = 0
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


_STATES = {"R": "running", "S": "sleeping", "D": "waiting on a device", "T": "stopped",
           "t": "stopped by a tracer", "Z": "a zombie", "X": "dead", "I": "idle"}


def _process_state(pid: int) -> str:
    """'sleeping (in the kernel at do_sys_poll)', from /proc; 'gone' if it is."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
    text = _STATES.get(state, f"in state {state}")
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
    except OSError:
        wchan = ""
    return f"{text} (in the kernel at {wchan})" if wchan and wchan != "0" else text


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from the kernel's lists of each thread's
    children (a scan of all of /proc, as psutil's does, cost milliseconds
    at every stop); psutil where the kernel keeps no such list."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{parent}/task/{task}"):
                    continue    # that thread ended meanwhile
                try:            # a kernel without the lists
                    return found | {c.pid for c in psutil.Process(pid).children(recursive=True)}
                except psutil.Error:
                    return found
            except (OSError, ValueError):
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _wait_dead(pid: int, timeout: float) -> None:
    """Wait until child `pid` has died (a zombie, not reaped: its owner
    reaps it), for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return
        except ChildProcessError:
            return          # reaped already
        if time.monotonic() >= deadline:
            return
        time.sleep(0.001)


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


def output_lines(text: str) -> list[str]:
    """`text` split at newlines only (a line ending \\r\\n loses its \\r):
    a lone \\r or other control character stays in its line, to be shown
    escaped, not taken for a line break as str.splitlines() would."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _shown(line: str) -> str:
    """One output line as shown under a failure: control characters
    escaped, cut to SHOW_CHARS characters with a note."""
    total = line.total if isinstance(line, CutLine) else None
    text = visible(line[:SHOW_CHARS])
    if len(text) > SHOW_CHARS or len(line) > SHOW_CHARS or total:
        size = f"{total} bytes" if total else f"{len(line)} characters"
        text = text[:SHOW_CHARS] + f" [... line of {size}, cut]"
    return "    | " + text


def python_argv(script: Path, *args: str) -> list[str]:
    """How every student program is started: unbuffered, without the user's
    site-packages (the environment is built explicitly, see above)."""
    return [sys.executable, "-u", "-s", str(script), *map(str, args)]
