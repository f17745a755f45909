"""`socklab gradescope-bundle OUT.zip`: the autograder zip for Gradescope."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.commands._options import UsageProblem, exercise_ids, refuses_bad_usage
from grader.publish import gradescope_bundle

ORDER = 45


@refuses_bad_usage
def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix != ".zip":
        raise UsageProblem(f"{out} should end in .zip (Gradescope takes a zip)")
    names = gradescope_bundle.build(out, exercise_ids(args))
    graded = ", ".join(args.exercise) if args.exercise else "every exercise"
    print(f"wrote {out}: {len(names)} files; run_autograder grades {graded}.\n"
          "Upload it as the autograder of a Gradescope programming assignment "
          "(see docs/gradescope.md).")
    return 0


def register(commands) -> None:
    parser = commands.add_parser("gradescope-bundle",
                                 help="build the Gradescope autograder zip (setup.sh, run_autograder)")
    parser.add_argument("output", metavar="OUT.zip", help="where to write the zip")
    parser.add_argument("--exercise", action="append", metavar="ID",
                        help="grade only this exercise (repeatable; default: all)")
    parser.set_defaults(run=run)
