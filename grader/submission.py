"""Find a student's files for an exercise and copy them, one by one, into a
clean folder, so nothing else they submitted (a conftest.py, a pytest.ini, a
sitecustomize.py, an edited test) can reach the run."""

from __future__ import annotations

import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .manifest import EXERCISES_DIR, Exercise

# A submitted source file larger than this is refused (a student's exercise
# is a few kilobytes; a huge file is a mistake or an attack on the disk).
MAX_FILE_BYTES = 1 << 20


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
    exercise folder itself (root/<file>)."""
    root = Path(root)
    if (root / exercise.id).is_dir():
        return root / exercise.id
    if any((root / name).exists() for name in exercise.files):
        return root
    return None


def _copy_regular_file(src: Path, dst: Path) -> str | None:
    """Copy one file's bytes; return a problem description instead of copying
    anything that is not a plain, reasonably small file."""
    try:
        info = src.lstat()
    except FileNotFoundError:
        return f"{src.name} is missing"
    except OSError as exc:
        return f"{src.name} cannot be read: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"{src.name} is a symbolic link, not a file; submit the file itself"
    if not stat.S_ISREG(info.st_mode):
        return f"{src.name} is not a regular file"
    if info.st_size > MAX_FILE_BYTES:
        return f"{src.name} is {info.st_size} bytes, more than the {MAX_FILE_BYTES} allowed"
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return None


def snapshot(root: Path | None, exercise: Exercise, dest: Path) -> Snapshot:
    """Copy the declared files of `exercise` from `root` into `dest` (which
    must exist and be empty), plus the course's own provided files."""
    copied: list[str] = []
    problems: list[str] = []
    if root is None:
        problems.append(f"no folder for {exercise.id} was found in the submission")
    else:
        for name in exercise.files:
            problem = _copy_regular_file(root / name, dest / name)
            if problem:
                problems.append(problem)
            else:
                copied.append(name)
    for name in exercise.provided:
        # The course's copy, never the student's: the interface is fixed.
        # "04_epoll/uepoll.py" names another exercise's file.
        source = EXERCISES_DIR / name if "/" in name else exercise.folder / name
        shutil.copyfile(source, dest / Path(name).name)
    return Snapshot(folder=dest, copied=copied, problems=problems)
