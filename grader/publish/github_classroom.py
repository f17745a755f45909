"""The GitHub Classroom workflow (`socklab classroom`, and the student
repository's .github/workflows/classroom.yml).

It has the shape GitHub Classroom itself generates: a workflow named
"Autograding Tests" with the single job `run-autograding-tests`, one
`classroom-resources/autograding-command-grader@v1` step per test group
(the visible tests of one README task of one exercise), then
`classroom-resources/autograding-grading-reporter@v1`, which reads each
step's result from the env variable `<STEP ID IN CAPITALS>_RESULTS` for
every id in `runners`.

The command grader scores a step all or nothing, by the command's exit
status, so each step is worth a share of its exercise's manifest points in
proportion to the visible points of its group, rounded so that every
exercise adds up exactly to its points.

The YAML is written from a template, every string quoted as JSON (a JSON
string is a valid YAML double-quoted scalar), so the course needs no YAML
library; the tests parse the result with PyYAML."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from grader.course import manifest, readme
from grader.grading import task_groups
from grader.publish import student_repo_files

CHECKOUT = "actions/checkout@v4"
SETUP_PYTHON = "actions/setup-python@v5"
COMMAND_GRADER = "classroom-resources/autograding-command-grader@v1"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"
WORKFLOW_NAME = "Autograding Tests"     # the reporter finds the workflow by these two
JOB_NAME = "run-autograding-tests"
RUNNER_OS = "linux"                     # ubuntu-latest
# Classroom's own commits to the repository (its setup) are not graded.
IF_NOT_CLASSROOM_BOT = "github.actor != 'github-classroom[bot]'"


@dataclass(frozen=True)
class Step:
    """One autograding step: the visible tests of one group of one exercise."""

    id: str
    test_name: str
    command: str
    timeout: int        # minutes, as the command grader counts
    max_score: int
    exercise: str
    group: str


def allocate(weights: list[float], total: int) -> list[int]:
    """Split `total` into integers proportional to `weights` that add up to
    exactly `total` (largest remainders get the leftover units; ties go to
    the earlier group)."""
    whole = sum(Fraction(w) for w in weights)
    if whole <= 0:
        raise ValueError("no points to share")
    exact = [Fraction(w) * total / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def step_id(exercise: manifest.Exercise, group: task_groups.Group) -> str:
    """A step id GitHub accepts (a letter first; letters, digits, '-')."""
    base = re.sub(r"[^a-z0-9]+", "-", exercise.id.lower()).strip("-")
    suffix = "general" if group.task is None else f"task-{group.key}"
    return f"ex-{base}-{suffix}"


def step_command(exercise: manifest.Exercise, group: task_groups.Group) -> str:
    return f"python -m pytest exercises/{exercise.id} -q --socklab-task {group.key}"


def per_test_timeout() -> int:
    """Seconds pytest-timeout allows one test in the student repository."""
    data = student_repo_files.pyproject_data(manifest.COURSE_ROOT / "pyproject.toml")
    return int(data["tool"]["pytest"]["ini_options"].get("timeout", 120))


def steps(exercises: list[manifest.Exercise] | None = None) -> list[Step]:
    """Every step, in manifest and task order."""
    exercises = list(manifest.load()) if exercises is None else exercises
    seconds = per_test_timeout()
    result: list[Step] = []
    for exercise in exercises:
        if RUNNER_OS not in exercise.platforms:
            raise ValueError(f"{exercise.id} cannot be graded on Linux, where Classroom "
                             "runs; its tests would be skipped and score for free")
        found = task_groups.collect(exercise, hidden=False)
        if not found:
            raise ValueError(f"{exercise.id} has no visible tests to grade")
        scores = allocate([g.points for g in found], exercise.points)
        for group, score in zip(found, scores):
            result.append(Step(
                id=step_id(exercise, group),
                test_name=f"{exercise.id}: {readme.task_heading(exercise, group.task) or group.title}",
                command=step_command(exercise, group),
                # every test may take its full timeout, plus a minute for pytest itself
                timeout=math.ceil((len(group.tests) * seconds + 60) / 60),
                max_score=score, exercise=exercise.id, group=group.key))
    return result


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render(all_steps: list[Step], python_version: str | None = None) -> str:
    """The workflow file's text."""
    python_version = python_version or student_repo_files.min_python(
        manifest.COURSE_ROOT / "pyproject.toml")
    lines = [
        "# GitHub Classroom autograding, generated by `socklab classroom` from",
        "# exercises/manifest.toml: regenerate it rather than editing it.",
        "# Each step runs the visible tests of one task of one exercise and earns",
        "# its max-score only if they all pass. The hidden suites stay with the",
        "# instructor (socklab grade, nbgrader); they do not run here.",
        f"name: {_q(WORKFLOW_NAME)}",
        '"on":',
        "  - push",
        "  - repository_dispatch",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        f"  {JOB_NAME}:",
        "    runs-on: ubuntu-latest",
        f"    if: {_q(IF_NOT_CLASSROOM_BOT)}",
        "    steps:",
        "      - name: Checkout code",
        f"        uses: {CHECKOUT}",
        "      - name: Set up Python",
        f"        uses: {SETUP_PYTHON}",
        "        with:",
        f"          python-version: {_q(python_version)}",
        "      - name: Install the course and its test harness",
        f"        run: {_q('python -m pip install -e .')}",
    ]
    for step in all_steps:
        lines += [
            f"      - name: {_q(step.test_name)}",
            f"        id: {step.id}",
            f"        uses: {COMMAND_GRADER}",
            "        with:",
            f"          test-name: {_q(step.test_name)}",
            f"          setup-command: {_q('')}",
            f"          command: {_q(step.command)}",
            f"          timeout: {step.timeout}",
            f"          max-score: {step.max_score}",
        ]
    lines += [
        "      - name: Autograding Reporter",
        f"        uses: {REPORTER}",
        "        env:",
        *(f"          {s.id.upper()}_RESULTS: {_q('${{steps.' + s.id + '.outputs.result}}')}"
          for s in all_steps),
        "        with:",
        f"          runners: {_q(','.join(s.id for s in all_steps))}",
    ]
    return "\n".join(lines) + "\n"

