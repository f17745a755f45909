"""`socklab nbgrader OUT`: write an nbgrader course that grades the
students' .py files with the hidden suites."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.commands._options import UsageProblem, chosen_exercises, exercise_ids, refuses_bad_usage

ORDER = 40

NEXT_STEPS = """\
Next, from {out}:
  nbgrader generate_assignment ID      (source/ID -> release/ID, hidden tests removed)
  nbgrader release_assignment ID       (or hand out release/ID yourself)
  nbgrader collect ID                  (or put each student's folder in submitted/STUDENT/ID)
  nbgrader autograde ID
  nbgrader export                      (grades.csv)
  nbgrader generate_feedback ID        (feedback/STUDENT/ID/ID.html)
See docs/nbgrader.md."""


@refuses_bad_usage
def run(args: argparse.Namespace) -> int:
    ids = exercise_ids(args)
    try:
        from grader.publish.nbgrader import build_course
    except ImportError as exc:
        raise UsageProblem(f"nbgrader is not installed here ({exc}). Install the "
                           "instructor extra: pip install -e '.[instructor]'") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageProblem(f"{out} exists and is not a folder")
    exercises = chosen_exercises(ids)
    try:
        folders = build_course.generate(out, exercises)
    except RuntimeError as exc:  # a suite that cannot be collected
        print(f"socklab nbgrader: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the nbgrader course {out}: nbgrader_config.py, "
          f"jupyter/kernels/{build_course.KERNEL_NAME}/ and {len(folders)} assignment(s):")
    for folder in folders:
        print(f"  {folder}")
    print(NEXT_STEPS.format(out=out))
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "nbgrader", help="write an nbgrader course whose notebooks grade the submitted .py files")
    parser.add_argument("out", help="the course root to write (created if needed; an existing "
                                    "gradebook and submissions are kept)")
    parser.add_argument("--exercise", action="append", metavar="ID",
                        help="write only this exercise's assignment (repeatable)")
    parser.set_defaults(run=run)
