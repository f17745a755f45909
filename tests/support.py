"""Helpers for the project's own tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader import manifest

MUTANTS_DIR = Path(__file__).parent / "mutants"


def build_submission(dest: Path, exercise: manifest.Exercise, overlay: Path | None = None) -> Path:
    """A submission folder holding the reference solution of `exercise`,
    with the files found in `overlay` (a mutant) put over it."""
    folder = dest / exercise.id
    folder.mkdir(parents=True)
    for name in exercise.files:
        shutil.copyfile(exercise.solution_folder / name, folder / name)
    if overlay is not None:
        for name in exercise.files:
            if (overlay / name).exists():
                shutil.copyfile(overlay / name, folder / name)
    return dest
