"""`socklab grade DIR`: grade one submission, print a table or JSON."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from grader.commands._options import (add_grading_options, folder_and_ids, isolate_net_allowed,
                                      refuses_bad_usage)
from grader.grading import formats, grade_exercise

ORDER = 10


@refuses_bad_usage
def run(args: argparse.Namespace) -> int:
    submission, ids = folder_and_ids(args.submission, args)
    started = time.monotonic()
    results = grade_exercise.grade(submission, ids, timeout=args.exercise_timeout,
                                   isolate_net=isolate_net_allowed(args.isolate_net, "grade"))
    seconds = time.monotonic() - started
    if args.format == "json":
        text = formats.as_json(results)
    elif args.format == "gradescope":
        text = formats.gradescope(results, seconds)
    else:
        text = formats.table(results, title=f"socklab grade {submission}", seconds=seconds)
        if args.verbose:
            text = formats.failures(results) + "\n\n" + text
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def register(commands) -> None:
    grade = commands.add_parser("grade", help="grade a submission with the hidden and visible suites")
    grade.add_argument("submission", help="a folder laid out like exercises/, or one exercise folder")
    grade.add_argument("--format", choices=("table", "json", "gradescope"), default="table")
    grade.add_argument("--output", metavar="FILE", help="write the result here instead of stdout")
    grade.add_argument("-v", "--verbose", action="store_true",
                       help="with the table, print every failed test's message")
    add_grading_options(grade)
    grade.set_defaults(run=run)
