"""Taking turns on one machine: most tests run side by side, a few alone.

Tests that mostly wait (for a reply, a retry, a quiet second) share the
machine well, so grading runs many at once. A few either load the machine
(a thousand clients joining, ten thousand connections) or measure a
program's CPU, and must run with no other test of any grading on the
machine. Those carry the `alone` marker; every test takes a turn here
around its whole run, setup and teardown included:

    with turns.taken(alone=False):   # shared: many at once
        ...
    with turns.taken(alone=True):    # exclusive: waits for the others to end
        ...

The turns are flock(2) locks on files in one folder (the SOCKLAB_TURNS
environment variable), so they span every pytest process and xdist worker
a grading started, and every submission `grade-class` grades at once.
A waiting `alone` test goes first: it holds the door, so no new shared turn
starts while it waits for the running ones to end (without that, a steady
stream of shared turns would keep it waiting until the very end). Without
SOCKLAB_TURNS (a student's own `pytest` run) nobody else is there and a
turn is free. A process that dies releases its locks with it."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FOLDER = "SOCKLAB_TURNS"    # the environment variable naming the folder of the lock files
DOOR, ROOM = "door.lock", "room.lock"


def folder() -> Path | None:
    value = os.environ.get(FOLDER)
    return Path(value) if value else None


def prepare(where: Path) -> dict[str, str]:
    """Create the lock files in `where`; the environment entry that makes
    every grading run given it take turns there."""
    where.mkdir(parents=True, exist_ok=True)
    for name in (DOOR, ROOM):
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
    """One turn, taken and given back by hand: an `alone` turn may be kept
    over several tests in a row (the pytest plugin keeps it while the next
    test must run alone too), so that the machine empties once for them all."""

    def __init__(self, alone: bool) -> None:
        self.alone = alone
        self._door: int | None = None
        self._room: int | None = None

    def take(self) -> None:
        where = folder()
        if where is None:
            return
        door = _lock(where / DOOR, fcntl.LOCK_EX)
        try:
            room = _lock(where / ROOM, fcntl.LOCK_EX if self.alone else fcntl.LOCK_SH)
        except BaseException:
            _unlock(door)
            raise
        if self.alone:
            self._door = door
        else:
            _unlock(door)       # a shared turn only passes through the door
        self._room = room

    def give_back(self) -> None:
        if self._room is not None:
            _unlock(self._room)
            self._room = None
        if self._door is not None:
            _unlock(self._door)
            self._door = None


@contextmanager
def taken(alone: bool) -> Iterator[None]:
    """A turn: shared with other shared turns, or (`alone`) with none."""
    turn = Turn(alone)
    turn.take()
    try:
        yield
    finally:
        turn.give_back()
