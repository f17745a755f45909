"""How much of a core a student's program *wants*, robustly on a busy machine.

CPU time alone says how much a program got, not how much it asked for: on
a loaded machine (two cores, a parallel test run, other jobs) a program that
spins in a loop may get only a third of a core, and so pass an "under half
a core" check it should fail. Linux also records, per thread, how long the
thread waited on the run queue (/proc/PID/task/TID/schedstat: time on the
CPU, time waiting for it, slices). Running plus waiting is the time the
program was *runnable*: close to 100 % for a busy loop however busy the
machine, close to its CPU time for a program that sleeps in the kernel.

measure(program) gives both shares over a quiet window; `demand` is the
runnable share where the platform reports it, else the CPU share."""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass

import psutil

from grader.harness import waits


@dataclass
class Usage:
    cpu: float               # share of one core used
    runnable: float | None   # share of the time running or waiting to run (Linux)

    @property
    def demand(self) -> float:
        return self.runnable if self.runnable is not None else self.cpu

    def describe(self) -> str:
        text = f"it used {self.cpu:.0%} of one core"
        if self.runnable is not None:
            text += f" and was running or ready to run {self.runnable:.0%} of the time"
        return text


def _runnable_seconds(pid: int) -> float | None:
    """Time on the CPU plus time waiting for it, summed over the threads."""
    total, found = 0, False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                on_cpu, waiting, _slices = f.read().split()
        except (OSError, ValueError):
            continue  # a thread that just ended
        total += int(on_cpu) + int(waiting)
        found = True
    return total / 1e9 if found else None


def measure(program, seconds: float = waits.IDLE_WINDOW) -> Usage:
    """CPU and runnable shares of `program` (a grader.harness.program.Program) over
    `seconds` of wall time."""
    process = psutil.Process(program.pid)
    times = process.cpu_times()
    cpu_before = times.user + times.system
    runnable_before = _runnable_seconds(program.pid)
    started = time.monotonic()
    time.sleep(seconds)  # the measuring window, not a wait for a condition
    times = process.cpu_times()
    runnable_after = _runnable_seconds(program.pid)
    elapsed = time.monotonic() - started
    runnable = None
    if runnable_before is not None and runnable_after is not None:
        runnable = max(0.0, runnable_after - runnable_before) / elapsed
    return Usage(cpu=(times.user + times.system - cpu_before) / elapsed, runnable=runnable)
