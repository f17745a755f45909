"""Catch the processes a student's program leaves behind when it exits.

A program that forks must wait for its children: a child that exits and is
never waited for stays a *zombie*, and a child still running when its
parent exits is an *orphan*. Normally both are handed to PID 1, which reaps
them at some point, so looking for them after the fact is a race.

`OrphanWatch` removes the race on Linux: while it is active, the test
process is a "child subreaper" (prctl PR_SET_CHILD_SUBREAPER), so every
orphaned descendant of a program the test spawned is re-parented to the
test process instead of PID 1, and nobody reaps it behind our back. After
the program exits, `strays()` lists them, each as a zombie (it exited but
its parent never waited for it) or an orphan (still running). Leaving the
`with` block kills and reaps whatever was adopted and turns the flag off.

    with OrphanWatch() as watch:
        program = spawn("pair.py")
        watch.own(program)            # our own child, not a stray
        ...
        program.wait_exit(5)
        left = watch.strays()

Tell it (own) about every program the test spawns inside the block:
whatever else becomes a child of the test process is counted as a stray,
and killed and reaped when the block ends. A program in the grading
sandbox has its own pid namespace, whose init adopts its orphans instead
of the test process: for an owned program those count as strays too
(grader.harness.sandbox_init never reaps them), with the pids the program sees.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass

import psutil

PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Stray:
    pid: int
    zombie: bool        # True: exited, never waited for; False: still running
    cmdline: str

    def describe(self) -> str:
        if self.zombie:
            return (f"process {self.pid} had exited but its parent never collected its "
                    "exit status (a zombie: nobody called waitpid() for it)")
        return f"process {self.pid} ({self.cmdline}) was still running after its parent exited (an orphan)"


def supported() -> bool:
    return sys.platform.startswith("linux")


def _set_subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


class OrphanWatch:
    def __init__(self) -> None:
        self._ignored: set[int] = set()
        self._before: set[int] = set()
        self._programs: list = []

    def __enter__(self) -> "OrphanWatch":
        if not supported():
            raise RuntimeError("OrphanWatch needs Linux (prctl PR_SET_CHILD_SUBREAPER)")
        # Children we already had are not strays (an xdist worker, a program
        # of an earlier fixture...).
        self._before = {p.pid for p in psutil.Process().children()}
        _set_subreaper(True)
        return self

    def own(self, *programs) -> None:
        """Programs the test spawned itself: our children, not strays."""
        for program in programs:
            self._ignored.update({program.pid, program.group})
            self._programs.append(program)

    def strays(self) -> list[Stray]:
        """Our children that we did not start: processes adopted because
        their parent exited without reaping them."""
        found = []
        for proc in psutil.Process().children():
            if proc.pid in self._before or proc.pid in self._ignored:
                continue
            try:
                zombie = proc.status() == psutil.STATUS_ZOMBIE
                cmdline = "" if zombie else " ".join(proc.cmdline())
            except psutil.NoSuchProcess:
                continue
            found.append(Stray(proc.pid, zombie, cmdline))
        for program in self._programs:
            for pid in program.strays():
                try:
                    proc = psutil.Process(pid)
                    zombie = proc.status() == psutil.STATUS_ZOMBIE
                    cmdline = "" if zombie else " ".join(proc.cmdline())
                except psutil.NoSuchProcess:
                    continue
                found.append(Stray(program.inner_pid(pid), zombie, cmdline))
        return found

    def __exit__(self, *exc) -> None:
        try:
            _set_subreaper(False)
        finally:
            self._programs = []     # theirs die with their sandbox
            for stray in self.strays():
                try:
                    if not stray.zombie:
                        os.kill(stray.pid, signal.SIGKILL)
                    os.waitpid(stray.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
