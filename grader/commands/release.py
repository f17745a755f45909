"""`socklab release OUT`: write the student repository into a new folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.course import manifest
from grader.publish import release

ORDER = 60


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        result = release.build(out)
    except (release.ReleaseError, manifest.ManifestError, ValueError, RuntimeError) as exc:
        print(f"socklab release: {exc}", file=sys.stderr)
        return 2
    exercises = len(manifest.load())
    grader_files = sum(1 for rel in result.files if rel.parts[0] == "grader")
    print(f"wrote the student repository to {out}: {len(result.files)} files "
          f"({exercises} exercises, {grader_files} files of the grader package, "
          f"student commands: {', '.join(result.commands) or 'none'})")
    for rel in result.left_out:
        print(f"  left out {rel} (not a README, stub, provided file, visible test "
              "or a file the README links to)")
    print("It holds no solutions, hidden suites, mutants or project tests. Next: push it "
          "as the template repository of the Classroom assignment (docs/student-repository.md).")
    return 0


def register(commands) -> None:
    parser = commands.add_parser(
        "release", help="write the student repository (no solutions, no hidden suites)")
    parser.add_argument("out", metavar="OUT", help="a new (or empty) folder to write it to")
    parser.set_defaults(run=run)
