"""A student's progress: every exercise's visible tests, run the way grading
runs them, summed up as a table and a "next:" line (like rustlings' list).

Each exercise's visible suite runs in its own pytest child process
(`grade_exercise` with `hidden=False`), a few
at a time; the student's code is never imported here. Only the visible tests count: the hidden suites
that grade a submission are not part of a student's repository."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from grader.course import manifest, readme
from grader.grading.grade_exercise import grade_exercise
from grader.results import ExerciseResult, TestResult

DONE, IN_PROGRESS, NOT_STARTED, ERROR = "done", "in progress", "not started", "could not run"
STATUS_TIMEOUT = 300  # seconds for one exercise's visible tests


@dataclass
class Progress:
    """Where a student stands on one exercise."""

    exercise: manifest.Exercise
    result: ExerciseResult | None       # None: not run on this platform

    @property
    def counted(self) -> list[TestResult]:
        """The tests that ran here (a test skipped for the platform checks nothing)."""
        return [t for t in self.result.tests if t.status != "skipped"] if self.result else []

    @property
    def passed(self) -> int:
        return sum(t.status == "passed" for t in self.counted)

    @property
    def total(self) -> int:
        return len(self.counted)

    @property
    def failing(self) -> list[TestResult]:
        return [t for t in self.counted if t.status != "passed"]

    @property
    def state(self) -> str:
        if self.result is None:
            return "needs " + " or ".join(self.exercise.platforms)
        if not self.counted:
            return ERROR if not self.result.tests else "skipped here"
        if self.passed == self.total:
            return DONE
        return IN_PROGRESS if self.passed else NOT_STARTED

    @property
    def actionable(self) -> bool:
        """Something is left to do here (and can be done on this machine)."""
        return self.state in (IN_PROGRESS, NOT_STARTED, ERROR)

    def first_task(self) -> int | None:
        """The lowest README task among the failing tests (None: only tests
        of the general rules fail). Tasks build on one another, so this is
        where to start."""
        tasks = [t.task for t in self.failing if t.task is not None]
        return min(tasks) if tasks else None


def check(tree: Path, exercises: list[manifest.Exercise], jobs: int) -> list[Progress]:
    """Run the visible tests of `exercises` against the student's files in
    `tree` (a folder laid out like exercises/), `jobs` suites at a time."""
    def one(exercise: manifest.Exercise) -> Progress:
        if not exercise.supported_here():
            return Progress(exercise, None)
        return Progress(exercise, grade_exercise(exercise, tree, timeout=STATUS_TIMEOUT,
                                                 hidden=False))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, exercises))


def default_jobs() -> int:
    # The suites mostly wait on sockets and child programs: two per core keep
    # the machine busy without crowding it.
    return max(1, min(8, 2 * (os.cpu_count() or 1)))


# -- text ---------------------------------------------------------------------

def _table(rows: list[tuple[str, ...]]) -> list[str]:
    header = ("exercise", "title", "visible tests", "state")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


def _task_name(task: int | None) -> str:
    return f"Task {task}" if task is not None else "general rules"


def _test_line(test: TestResult) -> str:
    mark = {"passed": "ok", "failed": "FAIL"}.get(test.status, test.status)
    return f"    {mark:<7} {test.name} ({_task_name(test.task)})"


def run_command(exercise: manifest.Exercise, tree_shown: str) -> str:
    """How to run one exercise's visible tests by hand, from the repository root."""
    default = _shown(manifest.EXERCISES_DIR)
    return f"pytest {default}/{exercise.id}" + (f" --submission {tree_shown}" if tree_shown != default else "")


def next_step(progress: list[Progress], tree_shown: str) -> list[str]:
    """What to do next: the first exercise not done, its first failing task
    and the README section that explains it."""
    todo = next((p for p in progress if p.actionable), None)
    if todo is None:
        if any(p.state == DONE for p in progress):
            return ["next: every visible test passes. Well done! Your instructor's grading also",
                    "      runs hidden tests: read each README's rules once more before you submit."]
        return ["next: nothing to check on this machine."]
    ex = todo.exercise
    if todo.state == ERROR:
        first = todo.result.message.splitlines()[0] if todo.result.message else "no results"
        return [f"next: {ex.id} could not be checked: {first}",
                f"      run  {run_command(ex, tree_shown)}  to see why"]
    task = todo.first_task()
    start = ""
    if todo.state == NOT_STARTED and readme.task_heading(ex, 1):
        task, start = 1, "start with "     # nothing passes yet: begin at the beginning
    heading = readme.task_heading(ex, task) or (f"Task {task}" if task is not None else "the general rules")
    first = next((t for t in todo.failing if t.task == task), todo.failing[0])
    more = f", and {len(todo.failing) - 1} more" if len(todo.failing) > 1 else ""
    return [f"next: {ex.id} ({ex.title}): {start}{heading}",
            f"      failing: {first.name} ({_task_name(first.task)}){more}",
            f"      read:    {readme.pointer(ex, task)}",
            f"      run:     {run_command(ex, tree_shown)}",
            f"      stuck?   socklab hint {ex.id}"]


def render(progress: list[Progress], tree_shown: str, seconds: float, details: bool = False) -> str:
    rows = [(p.exercise.id, p.exercise.title,
             f"{p.passed}/{p.total}" if p.result is not None and p.result.tests else "-", p.state)
            for p in progress]
    out = [f"socklab status: the visible tests of {tree_shown}/", "", *_table(rows)]
    if details:
        for p in progress:
            out += ["", f"{p.exercise.id}:"]
            if p.result is not None and p.result.message:
                out.append("    " + p.result.message.splitlines()[0])
            out += [_test_line(t) for t in (p.result.tests if p.result else [])]
    done = sum(p.state == DONE for p in progress)
    passed, total = sum(p.passed for p in progress), sum(p.total for p in progress)
    out += ["", f"{done} of {len(progress)} exercises done; {passed} of {total} visible tests "
                f"pass (checked in {seconds:.1f} s).", *next_step(progress, tree_shown)]
    return "\n".join(out)


def status_text(tree: Path, exercises: list[manifest.Exercise], jobs: int,
                details: bool = False) -> str:
    started = time.monotonic()
    progress = check(tree, exercises, jobs)
    return render(progress, _shown(tree), time.monotonic() - started, details)


def _shown(tree: Path) -> str:
    """`tree` as a student would type it: relative to the repository when inside it."""
    tree = Path(tree).resolve()
    try:
        return str(tree.relative_to(manifest.COURSE_ROOT)) or "."
    except ValueError:
        return str(tree)
