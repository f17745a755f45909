"""An exercise's README read as headed sections.

The README is the one place where the tasks and hints are written. Failure
messages point at a task's heading, `socklab status` names it, and
`socklab hint` reveals the subsections of "## Hints" one at a time; all of
them read the headings here rather than keeping a copy of the text.

The READMEs use ATX headings (`## Title`) and fenced code blocks only, so a
small line reader is enough (a Markdown library would be one more package
in every student's install for these few lines). Lines inside a fence are
never headings: a `# comment` in a code block stays code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from grader.course import manifest

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HINTS_TITLE = "Hints"
RULES_TITLE = "What your program must do"   # where the rules of no one task live


@dataclass(frozen=True)
class Section:
    level: int      # 2 for "## ...", 3 for "### ..."
    title: str
    body: str       # the text up to the next heading of this level or higher


def sections(text: str) -> list[Section]:
    """Every heading of a Markdown text with the text under it."""
    lines = text.splitlines()
    found: list[tuple[int, str, int]] = []      # level, title, line index
    fence = ""
    for index, line in enumerate(lines):
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) \
                    and not line.strip()[len(opened.group(1)):].strip():
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        heading = _HEADING.match(line)
        if heading:
            found.append((len(heading.group(1)), (heading.group(2) or "").strip(), index))
    result = []
    for n, (level, title, start) in enumerate(found):
        end = next((i for lv, _, i in found[n + 1:] if lv <= level), len(lines))
        result.append(Section(level, title, "\n".join(lines[start + 1:end]).strip()))
    return result


def readme_path(exercise: manifest.Exercise) -> Path:
    return exercise.folder / "README.md"


def shown_path(exercise: manifest.Exercise) -> str:
    """The README's path as a student types it, from the repository root."""
    return f"exercises/{exercise.id}/README.md"


@lru_cache(maxsize=None)
def _sections_of(path: Path) -> tuple[Section, ...]:
    try:
        return tuple(sections(path.read_text(encoding="utf-8")))
    except OSError:
        return ()


def exercise_sections(exercise: manifest.Exercise) -> tuple[Section, ...]:
    return _sections_of(readme_path(exercise))


def heading_for(found: list[Section] | tuple[Section, ...], task: int | None) -> str | None:
    """The exact heading of task `task` among `found` ("Task 2 — Broadcast
    a line"), or for a test of no task the section of rules; None if none."""
    if task is None:
        wanted = re.compile(re.escape(RULES_TITLE) + r"$")
    else:
        wanted = re.compile(rf"Task {int(task)}(?!\d)")
    return next((section.title for section in found if wanted.match(section.title)), None)


def task_heading(exercise: manifest.Exercise, task: int | None) -> str | None:
    return heading_for(exercise_sections(exercise), task)


def pointer(exercise: manifest.Exercise, task: int | None) -> str:
    """Where to read up on a task: the README and its section heading, as the
    student sees it in the file ('exercises/03_poll/README.md, section
    "Task 2 — Broadcast a line"')."""
    heading = task_heading(exercise, task)
    if heading:
        return f'{shown_path(exercise)}, section "{heading}"'
    return shown_path(exercise) + (f", Task {task}" if task is not None else "")


def hints(exercise: manifest.Exercise) -> list[Section]:
    """The hints of an exercise, in order: the subsections of its "## Hints"
    section (the whole section as one hint if it has no subsections)."""
    all_sections = exercise_sections(exercise)
    for n, section in enumerate(all_sections):
        if section.title == HINTS_TITLE and section.level <= 2:
            inner = []
            for sub in all_sections[n + 1:]:
                if sub.level <= section.level:
                    break
                if sub.level == section.level + 1:
                    inner.append(sub)
            return inner or ([section] if section.body else [])
    return []
