"""One concurrency budget for the machine: how many tests may run at once.

Most of a grading's tests wait (for a reply, a retry, a quiet second), so
a machine grades several tests per core at once. Whatever grades (one
submission, or `grade-class --jobs J` grading J at a time), the tests in
flight on the machine stay within one budget: J submissions get a J-th of
it each, never J times it. Tests that load the machine or measure CPU run
alone whatever the budget (grader.harness.turns)."""

from __future__ import annotations

import os

TESTS_PER_CORE = 4          # most tests wait: a core keeps four of them going
MEMORY_PER_TEST = 1 << 30   # room for a test's programs at their limits, and the worker
ENV = "SOCKLAB_WORKERS"     # the budget, set by hand (an instructor's machine, CI)


def _memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> int:
    """Tests the machine runs at once: SOCKLAB_WORKERS if set, else what
    its cores and memory hold."""
    given = os.environ.get(ENV, "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    most = cores * TESTS_PER_CORE
    memory = _memory_available()
    if memory is not None:
        most = min(most, max(1, memory // MEMORY_PER_TEST))
    return max(1, most)


# A worker costs a start-up and a collection (a few tenths of a second of
# CPU): one exercise's 20 to 35 tests keep this many busy, and more would
# cost more than they save.
WORKERS_PER_EXERCISE = 4


def workers(jobs: int = 1, exercises: int | None = None) -> int:
    """Test workers for each of `jobs` submissions graded at once (of
    `exercises` exercises each, when known)."""
    share = max(1, machine() // max(1, jobs))
    return share if exercises is None else max(1, min(share, WORKERS_PER_EXERCISE * exercises))
