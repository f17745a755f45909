"""Test groups: the tests of one exercise, grouped by the README task they
check (tests of no task form the group 'general').

nbgrader (one autograded cell per group) and GitHub Classroom (one step per
group) both need the groups and their points. They are read by collecting
the suites in a separate pytest process, the same way grading runs them,
so the grader's process imports no test module."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader import results
from grader.course import manifest
from grader.grading.grade_exercise import pytest_command, pytest_environment


@dataclass
class Group:
    key: str                    # "1", "2", ... or "general"
    points: float = 0
    tests: list[str] = field(default_factory=list)     # test names

    @property
    def task(self) -> int | None:
        return None if self.key == "general" else int(self.key)

    @property
    def title(self) -> str:
        return "General rules" if self.key == "general" else f"Task {self.key}"


def collect(exercise: manifest.Exercise, hidden: bool = True, visible: bool = True) -> list[Group]:
    """The groups of `exercise`'s suites, in task order ('general' last)."""
    with tempfile.TemporaryDirectory(prefix="socklab-collect-") as tmp:
        collected = Path(tmp) / "collected.json"
        cmd = pytest_command(exercise, manifest.SOLUTIONS_DIR, collected,
                             hidden=hidden, visible=visible) + ["--collect-only"]
        env = pytest_environment()
        env["TMPDIR"] = tmp
        done = subprocess.run(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        tests = results.read(collected).plan   # the plan: every test collected
        if tests is None:
            raise RuntimeError(f"could not collect the tests of {exercise.id}:\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    groups: dict[str, Group] = {}
    for test in tests:
        key = "general" if test.task is None else str(test.task)
        group = groups.setdefault(key, Group(key))
        group.points += test.points
        group.tests.append(test.name)
    return sorted(groups.values(), key=lambda g: (g.task is None, g.task or 0))
