"""`socklab grade DIR`: grade one submission, print a table or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.course import manifest
from grader.grading import formats, grade_exercise
from grader.harness import sandbox

ORDER = 10


def exercise_ids(args: argparse.Namespace) -> list[str] | None:
    """The --exercise ids, checked against the manifest (None: all)."""
    ids = args.exercise or None
    for i in ids or ():
        manifest.get(i)  # raises ManifestError with the known ids
    return ids


def isolate_net_allowed(asked: bool | None, command: str) -> bool:
    """A network namespace per exercise unless --no-isolate-net, where the
    machine allows it; otherwise say so and go on. Also prints the loud
    warning when student programs cannot be fully sandboxed here."""
    warning = sandbox.warning()
    if warning:
        print(f"socklab {command}: {warning}", file=sys.stderr)
    if asked is False:
        return False
    return sandbox.network_isolation_available()


class UsageProblem(Exception):
    """A command line that cannot be graded; the message says why."""


def folder_and_ids(folder: str, args: argparse.Namespace) -> tuple[Path, list[str] | None]:
    """The folder to grade and the --exercise ids, both checked."""
    path = Path(folder)
    if not path.is_dir():
        raise UsageProblem(f"{path} is not a folder")
    try:
        return path, exercise_ids(args)
    except manifest.ManifestError as exc:
        raise UsageProblem(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    try:
        submission, ids = folder_and_ids(args.submission, args)
    except UsageProblem as exc:
        print(f"socklab grade: {exc}", file=sys.stderr)
        return 2
    results = grade_exercise.grade(submission, ids, timeout=args.exercise_timeout,
                           isolate_net=isolate_net_allowed(args.isolate_net, "grade"))
    if args.format == "json":
        text = formats.as_json(results)
    elif args.format == "gradescope":
        text = formats.gradescope(results)
    else:
        text = formats.table(results, title=f"socklab grade {submission}")
        if args.verbose:
            text = formats.failures(results) + "\n\n" + text
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def add_grading_options(parser: argparse.ArgumentParser) -> None:
    """What to grade and under which limits: shared by grade and grade-class."""
    parser.add_argument("--exercise", action="append", metavar="ID",
                        help="grade only this exercise (repeatable)")
    parser.add_argument("--isolate-net", action=argparse.BooleanOptionalAction, default=None,
                        help="grade each exercise in a fresh network namespace with only "
                             "loopback (the default where the machine allows it: root and "
                             "network namespaces; elsewhere a warning)")
    parser.add_argument("--exercise-timeout", type=float, default=grade_exercise.EXERCISE_TIMEOUT,
                        metavar="SECONDS", help="stop one exercise's grading after this long "
                                                f"(default {grade_exercise.EXERCISE_TIMEOUT})")


def register(commands) -> None:
    grade = commands.add_parser("grade", help="grade a submission with the hidden and visible suites")
    grade.add_argument("submission", help="a folder laid out like exercises/, or one exercise folder")
    grade.add_argument("--format", choices=("table", "json", "gradescope"), default="table")
    grade.add_argument("--output", metavar="FILE", help="write the result here instead of stdout")
    grade.add_argument("-v", "--verbose", action="store_true",
                       help="with the table, print every failed test's message")
    add_grading_options(grade)
    grade.set_defaults(run=run)
