"""What the hidden part of an nbgrader test cell calls: grade one test group
of one exercise against the .py files beside the notebook.

nbgrader scores a test cell by its outputs (nbgrader/utils.py,
determine_grade): any `error` output or any text on stderr gives 0, and
the first `execute_result` that reads as a float gives that many points.
So `grade_group` prints everything a student should read to stdout, keeps
stderr silent, and returns the points as a plain float for the cell's last
expression. The suites run in the instructor's installed grader, in a
separate pytest process, exactly as `socklab grade` runs them.

The first cell of a notebook grades the whole exercise in one run, as
`socklab grade` does, and each cell reports its own group of that run: one
pytest start per student instead of one per group, and a notebook total
that comes from a single run, as `socklab grade`'s does. The run is kept in the kernel,
keyed by the submitted files' names, sizes and modification times, so a
changed file is graded again. (No student code runs in that kernel: the
course drops added code cells and keeps the submission folder off
sys.path; see grader/publish/nbgrader/autograde_guard.py and grader/publish/nbgrader/build_course.py.)"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from grader.course import manifest
from grader.course.submission import locate
from grader.grading import formats, grade_exercise
from grader.results import ExerciseResult

_runs: dict[tuple, ExerciseResult] = {}  # whole-exercise runs of this kernel


class CourseOutOfDate(RuntimeError):
    """The notebook's points no longer match the grader's suites (or the
    exercise cannot be graded here): the instructor must act, not the
    student. Raised so the cell shows an error instead of a wrong score."""


def _number(x: float) -> str:
    return f"{x:g}"


def _where(exercise: manifest.Exercise, group: str) -> str:
    return (f"the general rules of {exercise.id}" if group == "general"
            else f"task {group} of {exercise.id}")


def report(exercise: manifest.Exercise, group: str, result: ExerciseResult) -> str:
    """The text a student reads under the cell: the score, one line per
    test, then every failed test's message."""
    passed = sum(t.status == "passed" for t in result.tests)
    lines = [f"{_where(exercise, group).capitalize()}: {_number(result.score)} of "
             f"{_number(result.max_score)} points, {passed} of {len(result.tests)} tests passed."]
    if result.message:
        lines += ["", result.message]
    lines.append("")
    for test in result.tests:
        status = "passed" if test.status == "passed" else test.status.upper()
        lines.append(f"  {status:8} {_number(test.score):>3}/{_number(test.max_score):<3} {test.name}")
    failed = formats.failures([result])
    if failed:
        lines += ["", failed]
    return "\n".join(lines)


def _fingerprint(exercise: manifest.Exercise, folder: Path) -> tuple:
    root = locate(folder, exercise) or folder
    files = []
    for name in exercise.files:
        try:
            info = (root / name).stat()
            files.append((name, info.st_size, info.st_mtime_ns))
        except OSError:
            files.append((name, None, None))
    return (exercise.id, str(folder.resolve()), tuple(files))


def exercise_run(exercise: manifest.Exercise, folder: Path) -> ExerciseResult:
    """The whole exercise graded on `folder`, once per state of its files."""
    key = _fingerprint(exercise, folder)
    if key not in _runs:
        _runs[key] = grade_exercise.grade_exercise(exercise, folder)
    return _runs[key]


def group_result(result: ExerciseResult, group: str) -> ExerciseResult:
    """The part of a whole-exercise result that belongs to one test group."""
    tests = [t for t in result.tests if ("general" if t.task is None else str(t.task)) == group]
    part = ExerciseResult.of_tests(result.id, tests, message=result.message)
    part.seconds = result.seconds
    return part


def grade_group(exercise_id: str, group: str, points: float, folder: Path | None = None) -> float:
    """Grade test group `group` ("1", "2", ..., "general") of `exercise_id`
    on the files in `folder` (default: the working folder, which is the
    notebook's own folder when nbgrader runs it) and return the points
    earned, out of `points`, the cell's worth."""
    exercise = manifest.get(exercise_id)
    folder = Path.cwd() if folder is None else Path(folder)
    if not exercise.supported_here():
        raise CourseOutOfDate(
            f"{exercise.id} can only be graded on {', '.join(exercise.platforms)}, and this "
            f"autograder runs on {sys.platform}. This is the course's problem, not yours: "
            "the instructor must autograde it on a supported machine.")
    # Anything a library prints while grading (a warning, say) goes to
    # stdout too: one line on stderr would make nbgrader score the cell 0.
    with contextlib.redirect_stderr(sys.stdout):
        whole = exercise_run(exercise, folder)
    if not whole.tests:  # no files to grade, or a run that gave no results
        print(f"{_where(exercise, group).capitalize()}: 0 of {_number(points)} points. "
              f"No test could run.\n\n{whole.message}")
        return 0.0
    result = group_result(whole, group)
    print(report(exercise, group, result))
    if result.max_score != points:
        raise CourseOutOfDate(
            f"the tests of {_where(exercise, group)} are worth {_number(result.max_score)} "
            f"points in the installed grader, but this notebook gives the cell "
            f"{_number(points)}. The course was generated from other suites: the instructor "
            "must regenerate it (socklab nbgrader) and autograde again.")
    return float(result.score)
