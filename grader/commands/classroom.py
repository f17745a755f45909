"""`socklab classroom [--output PATH]`: write the GitHub Classroom workflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.course import manifest
from grader.publish import github_classroom, release

ORDER = 65


def run(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else manifest.COURSE_ROOT / release.WORKFLOW
    try:
        steps = github_classroom.steps()
    except (manifest.ManifestError, ValueError, RuntimeError) as exc:
        print(f"socklab classroom: {exc}", file=sys.stderr)
        return 2
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(github_classroom.render(steps), encoding="utf-8")
    exercises = len({s.exercise for s in steps})
    print(f"wrote {output}: {len(steps)} autograding steps for {exercises} exercises, "
          f"{sum(s.max_score for s in steps)} points in all (visible tests only)")
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "classroom", help="write the GitHub Classroom autograding workflow")
    parser.add_argument("--output", metavar="PATH",
                        help=f"where to write it (default: {release.WORKFLOW} of this course)")
    parser.set_defaults(run=run)
