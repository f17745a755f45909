"""`socklab status`: the student's progress over every exercise (visible tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.course import manifest
from grader.student import arguments, status

ORDER = 20


def run(args: argparse.Namespace) -> int:
    tree = Path(args.tree) if args.tree else manifest.EXERCISES_DIR
    if not tree.is_dir():
        print(f"socklab status: {tree} is not a folder", file=sys.stderr)
        return 2
    try:  # (this module ships to students: it imports no instructor command)
        chosen = [manifest.get(i) for i in args.exercise] if args.exercise else list(manifest.load())
    except manifest.ManifestError as exc:
        print(f"socklab status: {exc}", file=sys.stderr)
        return 2
    print(status.status_text(tree, chosen, args.jobs, details=bool(args.exercise) or args.verbose))
    return 0


def register(commands) -> None:
    parser = commands.add_parser("status", help=arguments.STATUS_HELP)
    arguments.status_arguments(parser)
    parser.set_defaults(run=run)
