"""Taking turns on one machine: most tests side by side, a few apart.

Tests that mostly wait (for a reply, a retry, a quiet moment) share the
machine well, so grading runs many at once. Two kinds cannot:

- `alone` tests load the machine (a thousand clients joining, ten thousand
  connections): they run with no other test of any grading;
- `quiet` tests measure a program (the CPU an idle server wants, how soon
  it answers): they run with no test that loads the machine, shared or
  alone, but beside other quiet tests, whose programs sit idle too.

Every test takes a turn of its kind around its whole run, setup and
teardown included:

    with turns.taken(turns.SHARED):   # beside other shared turns
        ...
    with turns.taken(turns.QUIET):    # beside other quiet turns only
        ...
    with turns.taken(turns.ALONE):    # beside nothing
        ...

The turns are flock(2) locks on files in one folder (the SOCKLAB_TURNS
environment variable), so they span every pytest process and xdist worker
a grading started, and every submission `grade-class` grades at once. A
shared turn holds the room lock shared, a quiet turn the quiet lock shared,
an alone turn both exclusively. Everyone comes in through the door (held
exclusively while coming in). An alone turn waits there until nobody is
in, a quiet one until no shared turn is in: whoever waits at the door
keeps the others out, so a steady stream of shared turns cannot keep them
waiting until the very end. A shared or alone turn that finds quiet ones
in steps back out and waits for them to leave, so the quiet ones come in
together: quiet first, then alone, then shared. Without SOCKLAB_TURNS (a
student's own `pytest` run) nobody else is there and a turn is free. A
process that dies releases its locks with it."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FOLDER = "SOCKLAB_TURNS"    # the environment variable naming the folder of the lock files
DOOR, ROOM, QUIET_ROOM = "door.lock", "room.lock", "quiet.lock"
SHARED, QUIET, ALONE = "shared", "quiet", "alone"
KINDS = (SHARED, QUIET, ALONE)


def folder() -> Path | None:
    value = os.environ.get(FOLDER)
    return Path(value) if value else None


def prepare(where: Path) -> dict[str, str]:
    """Create the lock files in `where`; the environment entry that makes
    every grading run given it take turns there."""
    where.mkdir(parents=True, exist_ok=True)
    for name in (DOOR, ROOM, QUIET_ROOM):
        (where / name).touch()
    return {FOLDER: str(where)}


def _lock(path: Path, how: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, how)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class Turn:
    """One turn, taken and given back by hand: a quiet or alone turn may be
    kept over several tests in a row (the pytest plugin keeps it while the
    next test is of the same kind), so that the machine empties once for
    them all, not once each."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"a turn is one of {KINDS}, not {kind!r}")
        self.kind = kind
        self._held: list[int] = []      # lock fds, given back last first

    def take(self) -> None:
        where = folder()
        if where is None:
            return
        if self.kind == QUIET:          # no shared turn in, then in beside the quiet ones
            door = _lock(where / DOOR, fcntl.LOCK_EX)
            try:
                _unlock(_lock(where / ROOM, fcntl.LOCK_EX))
                self._held = [_lock(where / QUIET_ROOM, fcntl.LOCK_SH)]
            finally:
                _unlock(door)
            return
        door, no_quiet = _past_the_quiet_ones(where)
        try:
            if self.kind == ALONE:      # nobody in, and the door kept shut meanwhile
                self._held = [door, no_quiet, _lock(where / ROOM, fcntl.LOCK_EX)]
                return
            self._held = [_lock(where / ROOM, fcntl.LOCK_SH)]
        except BaseException:
            self._held = [door, no_quiet]
            self.give_back()
            raise
        _unlock(no_quiet)
        _unlock(door)

    def give_back(self) -> None:
        while self._held:
            _unlock(self._held.pop())


def _past_the_quiet_ones(where: Path) -> tuple[int, int]:
    """The door and the quiet lock, both held exclusively: no quiet turn is
    in, and none can come. A turn that finds quiet ones in waits for them to
    leave outside the door, not holding it: quiet turns still coming get in
    meanwhile, so the quiet ones all run together, not in several rounds
    with the others' tests in between."""
    while True:
        door = _lock(where / DOOR, fcntl.LOCK_EX)
        try:
            return door, _lock(where / QUIET_ROOM, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _unlock(door)
        except BaseException:
            _unlock(door)
            raise
        _unlock(_lock(where / QUIET_ROOM, fcntl.LOCK_EX))    # until the quiet ones left


@contextmanager
def taken(kind: str) -> Iterator[None]:
    """A turn of `kind` (SHARED, QUIET or ALONE), for the `with` block."""
    turn = Turn(kind)
    turn.take()
    try:
        yield
    finally:
        turn.give_back()


def arrange(kinds: list[str], workers: int, seconds: list[float] | None = None,
            groups: list[str] | None = None) -> list[int]:
    """The order to run tests of these `kinds` in (indices into `kinds`), for
    `workers` pytest-xdist workers that each take a run of the list in turn
    (its `worksteal` scheduler cuts the list into `workers` runs of equal
    length, the last ones a test longer). `seconds`: what each test is
    expected to take, where known (a scheduling hint; 1 otherwise).

    The alone tests open the first run, in a row: one worker does them all,
    keeping its turn. The quiet tests open the other runs, spread so that
    each worker's share takes about as long (the longest first), and run
    side by side, each worker keeping its quiet turn over its share. The
    shared ones fill the rest, in their order. Only speed depends on the
    cut matching the scheduler's: any order is correct.

    One worker (a student's own pytest, where turns are free) runs first
    the first shared test of each of the `groups` (the tests' modules):
    the first test of a module finds out whether its program starts (its
    gates), and a start with lowered limits in an alone test then finds
    the usual start's verdict instead of waiting for its own. (Several
    workers do not: opening their runs with those tests put a shared
    phase before the quiet and alone rows and cost a correct submission
    about 1.5 s per exercise.)"""
    weight = seconds or [1.0] * len(kinds)
    alone = [i for i, kind in enumerate(kinds) if kind == ALONE]
    quiet = [i for i, kind in enumerate(kinds) if kind == QUIET]
    shared = [i for i, kind in enumerate(kinds) if kind == SHARED]
    heads: list[int] = []       # the first shared test of each group, in order
    for index in shared if groups else ():
        if all(groups[index] != groups[head] for head in heads):
            heads.append(index)
    if workers <= 1:
        return heads + alone + quiet + [i for i in shared if i not in heads]
    sizes, left = [], len(kinds)
    for worker in range(workers):
        sizes.append(left // (workers - worker))
        left -= sizes[-1]
    runs: list[list[int]] = [alone] + [[] for _ in range(workers - 1)]
    load = [0.0] * workers
    for index in sorted(quiet, key=lambda i: -weight[i]):
        least = min(range(1, workers), key=lambda run: (load[run], run))
        runs[least].append(index)
        load[least] += weight[index]
    order: list[int] = []
    for run, size in zip(runs, sizes):
        fill = max(0, size - len(run))
        order += run + shared[:fill]
        del shared[:fill]
    return order + shared
