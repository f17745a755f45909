"""Find a student's files for an exercise and copy them, one by one, into a
clean folder, so nothing else they submitted (a conftest.py, a pytest.ini, a
sitecustomize.py, an edited test) can reach the run.

Links inside a submission are never followed: an exercise folder or a file
that is a symbolic link is refused (a link to the course's solutions would
otherwise be graded as the student's work). Paths are checked with lstat
and opened with O_NOFOLLOW, never resolved. Only the submission root, which
the instructor names, may be a link; `locate` resolves that one."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from grader.course.manifest import EXERCISES_DIR, Exercise

# A submitted source file larger than this is refused (a student's exercise
# is a few kilobytes; a huge file is a mistake or an attack on the disk).
MAX_FILE_BYTES = 1 << 20
# How much of a link's target a message quotes.
_TARGET_CHARS = 200
# Open without following a final symbolic link, and without waiting on a FIFO.
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass
class Snapshot:
    """What was copied for one exercise, and what was missing or refused."""

    folder: Path
    copied: list[str]
    problems: list[str]

    @property
    def complete(self) -> bool:
        return not self.problems


def locate(root: Path, exercise: Exercise) -> Path | None:
    """The folder holding `exercise`'s files inside a submission.

    A submission is laid out like exercises/ (root/<id>/<file>), or is the
    exercise folder itself (root/<file>). `root` is the instructor's choice
    and is resolved; below it nothing is followed: a root/<id> that is a
    symbolic link is returned as it is, for `link_problem` to refuse."""
    root = Path(os.path.realpath(root))
    folder = root / exercise.id
    if _is_link(folder) or folder.is_dir():
        return folder
    if any(os.path.lexists(root / name) for name in exercise.files):
        return root
    return None


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def link_problem(path: Path) -> str | None:
    """Why a student's folder is not graded when it is a symbolic link, in
    words for the feedback; None when it is not a link."""
    if not _is_link(path):
        return None
    try:
        target = os.readlink(path)
    except OSError as exc:
        target = f"unreadable: {exc.strerror}"
    if len(target) > _TARGET_CHARS:
        target = target[:_TARGET_CHARS] + "..."
    # The target is the student's text: show control characters escaped.
    target = "".join(c if c.isprintable() else repr(c)[1:-1] for c in target)
    return (f"{path.name} is a symbolic link (to {target}); links are not followed: "
            "submit the folder itself")


def _open_folder(folder: Path) -> int:
    """A descriptor of `folder` itself, never of what a link there names
    (OSError when it is a link or no folder)."""
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NO_FOLLOW)


def _copy_regular_file(folder_fd: int, name: str, dst: Path) -> str | None:
    """Copy one file's bytes from the folder open as `folder_fd`; return a
    problem description instead of copying anything that is not a plain,
    reasonably small file. The file is opened relative to the folder's
    descriptor with O_NOFOLLOW, so no link is followed on the way."""
    try:
        info = os.lstat(name, dir_fd=folder_fd)
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as exc:
        return f"{name} cannot be read: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"{name} is a symbolic link, not a file; submit the file itself"
    if not stat.S_ISREG(info.st_mode):
        return f"{name} is not a regular file"
    if info.st_size > MAX_FILE_BYTES:
        return f"{name} is {info.st_size} bytes, more than the {MAX_FILE_BYTES} allowed"
    try:
        fd = os.open(name, os.O_RDONLY | _NO_FOLLOW, dir_fd=folder_fd)
    except OSError as exc:  # replaced by a link since the lstat, or unreadable
        return f"{name} cannot be read: {exc.strerror}"
    with open(fd, "rb") as fin:
        info = os.fstat(fin.fileno())
        if not stat.S_ISREG(info.st_mode):
            return f"{name} is not a regular file"
        data = fin.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return f"{name} is {max(info.st_size, len(data))} bytes, more than the {MAX_FILE_BYTES} allowed"
    dst.write_bytes(data)
    return None


def snapshot(root: Path | None, exercise: Exercise, dest: Path) -> Snapshot:
    """Copy the declared files of `exercise` from `root` into `dest` (which
    must exist and be empty), plus the course's own provided files."""
    copied: list[str] = []
    problems: list[str] = []
    if root is None:
        problems.append(f"no folder for {exercise.id} was found in the submission")
    elif (refused := link_problem(root)) is not None:
        problems.append(refused)
    else:
        try:
            folder_fd = _open_folder(root)
        except OSError as exc:
            problems.append(f"{root.name} cannot be read: {exc.strerror}")
            folder_fd = None
        if folder_fd is not None:
            try:
                for name in exercise.files:
                    problem = _copy_regular_file(folder_fd, name, dest / name)
                    if problem:
                        problems.append(problem)
                    else:
                        copied.append(name)
            finally:
                os.close(folder_fd)
    for name in exercise.provided:
        # The course's copy, never the student's: the interface is fixed.
        # "04_epoll/uepoll.py" names another exercise's file.
        source = EXERCISES_DIR / name if "/" in name else exercise.folder / name
        shutil.copyfile(source, dest / Path(name).name)
    return Snapshot(folder=dest, copied=copied, problems=problems)
