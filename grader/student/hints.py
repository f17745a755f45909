"""Hints revealed one at a time (`socklab hint ID`).

The hints themselves are the "### Hint N" subsections of each exercise's
README (read by grader.course.readme), so they are written once. What is kept here
is only how many of them a student has already seen, per exercise.

That count lives outside the repository, in the user's cache folder
(`$XDG_CACHE_HOME/socklab/hints.json`, by default `~/.cache/socklab/`; the
variable SOCKLAB_STATE_DIR moves it): nothing appears in the student's tree,
so there is nothing to gitignore, nothing pushed to GitHub Classroom, and
the grader never sees it. The file maps each course folder to its counts,
so two clones of the course keep their own. Losing it only means the hints
start over."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from grader.course import manifest, readme

STATE_ENV = "SOCKLAB_STATE_DIR"


def state_file() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]) / "hints.json"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "socklab" / "hints.json"


def _course_key() -> str:
    return str(manifest.COURSE_ROOT)


def _load() -> dict:
    try:
        data = json.loads(state_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no state yet, or a damaged file: start over
    return data if isinstance(data, dict) else {}


def _save(data: dict) -> None:
    """Write the whole file at once (a crash never leaves half a file)."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hints-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
    os.replace(tmp, path)


def seen(exercise: manifest.Exercise) -> int:
    """How many hints of `exercise` were shown already."""
    count = _load().get(_course_key(), {}).get(exercise.id, 0)
    return count if isinstance(count, int) and count >= 0 else 0


def _set_seen(exercise: manifest.Exercise, count: int) -> None:
    data = _load()
    course = data.setdefault(_course_key(), {})
    if count:
        course[exercise.id] = count
    else:
        course.pop(exercise.id, None)
    if not course:
        data.pop(_course_key())
    _save(data)


def reveal_next(exercise: manifest.Exercise) -> tuple[int, readme.Section] | None:
    """The next hint not shown yet, with its number (from 1), and remember
    it as seen; None when every hint was shown."""
    all_hints = readme.hints(exercise)
    count = min(seen(exercise), len(all_hints))
    if count >= len(all_hints):
        return None
    _set_seen(exercise, count + 1)
    return count + 1, all_hints[count]


def reset(exercise: manifest.Exercise) -> None:
    _set_seen(exercise, 0)


def find_exercise(text: str) -> manifest.Exercise:
    """The exercise a student means: its id ("03_poll"), its number ("03"
    or "3") or its name ("poll"). Raises ManifestError listing the ids."""
    exercises = manifest.load()
    wanted = text.strip().lower()
    for exercise in exercises:
        number, _, name = exercise.id.partition("_")
        if wanted == exercise.id.lower() or wanted == name.lower() \
                or (wanted.isdigit() and number.isdigit() and int(wanted) == int(number)):
            return exercise
    return manifest.get(text)  # unknown: raises with the list of known ids
