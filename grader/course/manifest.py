"""The exercise manifest: the one list of exercises that every part reads."""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parents[2]   # grader/course/manifest.py
EXERCISES_DIR = COURSE_ROOT / "exercises"
SOLUTIONS_DIR = COURSE_ROOT / "solutions"
HIDDEN_DIR = COURSE_ROOT / "grader" / "hidden"
MANIFEST_PATH = EXERCISES_DIR / "manifest.toml"


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    guide: str
    files: tuple[str, ...]
    points: int
    provided: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ("linux",)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def folder(self) -> Path:
        """The student-facing folder: README, stub, visible tests."""
        return EXERCISES_DIR / self.id

    @property
    def solution_folder(self) -> Path:
        return SOLUTIONS_DIR / self.id

    @property
    def hidden_folder(self) -> Path:
        return HIDDEN_DIR / self.id

    def visible_tests(self) -> list[Path]:
        return sorted(self.folder.glob("test_*.py"))

    def hidden_tests(self) -> list[Path]:
        return sorted(self.hidden_folder.glob("test_*.py"))

    def supported_here(self) -> bool:
        return sys.platform in self.platforms


class ManifestError(Exception):
    """The manifest is missing or malformed: a maintainer's mistake."""


def _parse(entry: dict, where: str) -> Exercise:
    try:
        known = {"id", "title", "guide", "files", "points", "provided", "platforms"}
        return Exercise(
            id=str(entry["id"]),
            title=str(entry["title"]),
            guide=str(entry["guide"]),
            files=tuple(entry["files"]),
            points=int(entry["points"]),
            provided=tuple(entry.get("provided", ())),
            platforms=tuple(entry.get("platforms", ("linux",))),
            extra={k: v for k, v in entry.items() if k not in known},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: bad exercise entry {entry!r}: {exc}") from exc


@lru_cache(maxsize=None)
def load(path: Path = MANIFEST_PATH) -> tuple[Exercise, ...]:
    """All exercises, in manifest order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"cannot read the exercise manifest {path}: {exc}") from exc
    exercises = tuple(_parse(e, str(path)) for e in data.get("exercise", []))
    ids = [e.id for e in exercises]
    if len(set(ids)) != len(ids):
        raise ManifestError(f"{path}: an exercise id is listed twice: {ids}")
    return exercises


def get(exercise_id: str) -> Exercise:
    for exercise in load():
        if exercise.id == exercise_id:
            return exercise
    known = ", ".join(e.id for e in load())
    raise ManifestError(f"unknown exercise {exercise_id!r} (known: {known})")


def for_path(path: Path) -> Exercise | None:
    """The exercise a test file belongs to: the nearest folder named by an id."""
    ids = {e.id: e for e in load()}
    for parent in [path, *path.parents]:
        if parent.name in ids:
            return ids[parent.name]
    return None
