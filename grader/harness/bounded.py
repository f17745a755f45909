"""Folders of a fixed size for everything a graded program can write.

The jail (grader.harness.jail) puts a whole grading on one tmpfs of a fixed
size, so that a submission cannot take the machine's disk. That cap alone
is shared: a program that fills its run folder, or its stderr, would leave
no room for the grader's own files, and a test running beside it would
fail to copy the student's files into its run folder — points lost for
the grader's shortage, not for the program's behaviour.

So each folder a program may write to (its run folder, its stderr's
folder, a module check's folder, a socket folder) is a tmpfs of its own,
mounted when the jail says its mount namespace is private (it sets
BOUNDED_ENV) and the grader may mount (root). A program that fills one
gets "no space left" there and nowhere else. Elsewhere (a student's own
run, a grader that is not root) the folder is a plain folder, as before."""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
from pathlib import Path

BOUNDED_ENV = "SOCKLAB_BOUNDED_FOLDERS"   # set by the jail in a private mount namespace
RUN_BYTES = 64 << 20       # a run folder: the student's files and whatever the program writes
MNT_DETACH = 2


def available() -> bool:
    """True if folders made here get a size cap of their own."""
    return (os.environ.get(BOUNDED_ENV) == "1" and sys.platform.startswith("linux")
            and os.geteuid() == 0)


def make(parent: Path | str, prefix: str, size: int = RUN_BYTES) -> Path:
    """A new empty folder below `parent`, holding at most `size` bytes
    where available() (else a plain folder). Remove it with remove()."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if available():
        from grader.harness import sandbox
        try:
            sandbox._mount("tmpfs", str(folder), "tmpfs", sandbox.MS_NOSUID | sandbox.MS_NODEV,
                           f"size={size},mode=0700")
        except OSError:
            folder.rmdir()
            raise
    return folder


def remove(folder: Path | str) -> None:
    """Empty and remove a folder made by make() (unmounting it if mounted)."""
    shutil.rmtree(folder, ignore_errors=True)   # a mount point itself stays
    if os.path.ismount(folder):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(str(folder).encode(), MNT_DETACH)
    shutil.rmtree(folder, ignore_errors=True)
