"""A server's CPU time and memory, read from /proc, and whether it sleeps.

CPU time comes from /proc/PID/task/TID/schedstat (nanoseconds on the CPU,
per thread) rather than utime+stime in /proc/PID/stat, which count in
ticks of 10 ms: a Python epoll server handles a wake-up in tens of
microseconds, so a window of a few hundred wake-ups would be a tick or two.
The kernel brings a thread's figure up to date only when the thread stops
running, so it is read while every thread sleeps (`wait_asleep`)."""

from __future__ import annotations

import os
import time

import psutil

from grader.harness.failure import GradingFailure


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        raise GradingFailure(did=f"looked at the server (pid {pid}) in /proc",
                             expected="the server is running", got="it has exited") from None


def thread_count(pid: int) -> int:
    return len(_tasks(pid))


def _state(path: str) -> str:
    """The state letter of /proc/.../stat (after the command, which may hold ')')."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return "X"  # a thread that just ended
    return chr(text[text.rindex(b")") + 2])


def main_thread_asleep(pid: int) -> bool:
    """True if the process's first thread sleeps (one cheap read)."""
    return _state(f"/proc/{pid}/stat") == "S"


def asleep(pid: int) -> bool:
    """True if every thread of the process sleeps (or just ended)."""
    return all(_state(f"/proc/{pid}/task/{tid}/stat") in "SX" for tid in _tasks(pid))


def wait_asleep(pid: int, timeout: float = 10.0, what: str = "") -> None:
    """Wait until every thread of `pid` sleeps, i.e. the server is back in
    its wait for events. Spins briefly, then sleeps between looks."""
    deadline = time.monotonic() + timeout
    looks = 0
    while not asleep(pid):
        if time.monotonic() > deadline:
            raise GradingFailure(
                did=what or "waited for the server to go back to waiting for events",
                expected=f"it is idle within {timeout:g} s once its clients are quiet",
                got="it kept running (a busy loop, or still working on something)")
        looks += 1
        if looks > 50:
            time.sleep(0.001)


# Linux without schedstat (CONFIG_SCHED_INFO off): fall back to ticks.
SCHEDSTAT = os.path.exists("/proc/self/schedstat")


def cpu_ns(pid: int) -> int:
    """Nanoseconds the process's threads have spent on a CPU (live threads)."""
    if not SCHEDSTAT:
        times = psutil.Process(pid).cpu_times()
        return int((times.user + times.system) * 1e9)
    total = 0
    for tid in _tasks(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of the process (what it holds in RAM right now)."""
    return psutil.Process(pid).memory_info().rss
