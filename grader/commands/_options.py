"""What several `socklab` commands share, so that no command imports
another: the options saying what to grade and under which limits, and the
one way a command turns down a command line it cannot run (a message on
stderr, exit status 2). Private: `grader.cli` registers no command from a
module whose name starts with an underscore."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

from grader.course import manifest
from grader.grading import grade_exercise
from grader.harness import sandbox


class UsageProblem(Exception):
    """A command line that cannot be run as given; the message says why."""


def refuses_bad_usage(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command's run(args) for which a UsageProblem raised inside means
    "socklab COMMAND: why" on stderr and exit status 2."""
    @functools.wraps(run)
    def checked(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except UsageProblem as exc:
            print(f"socklab {args.command}: {exc}", file=sys.stderr)
            return 2
    return checked


def exercise_ids(args: argparse.Namespace) -> list[str] | None:
    """The --exercise ids, checked against the manifest (None: all)."""
    ids = args.exercise or None
    try:
        for i in ids or ():
            manifest.get(i)  # raises ManifestError with the known ids
    except manifest.ManifestError as exc:
        raise UsageProblem(str(exc)) from None
    return ids


def chosen_exercises(ids: list[str] | None) -> list[manifest.Exercise]:
    """The exercises of checked ids, or every exercise of the manifest."""
    return [manifest.get(i) for i in ids] if ids else list(manifest.load())


def folder_and_ids(folder: str, args: argparse.Namespace) -> tuple[Path, list[str] | None]:
    """The folder to grade and the --exercise ids, both checked."""
    path = Path(folder)
    if not path.is_dir():
        raise UsageProblem(f"{path} is not a folder")
    return path, exercise_ids(args)


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


def add_grading_options(parser: argparse.ArgumentParser) -> None:
    """What to grade and under which limits: shared by grade and grade-class."""
    parser.add_argument("--exercise", action="append", metavar="ID",
                        help="grade only this exercise (repeatable)")
    parser.add_argument("--isolate-net", action=argparse.BooleanOptionalAction, default=None,
                        help="grade each submission in a fresh network namespace with only "
                             "loopback (the default where the machine allows it: root and "
                             "network namespaces; elsewhere a warning)")
    parser.add_argument("--exercise-timeout", type=float, default=grade_exercise.EXERCISE_TIMEOUT,
                        metavar="SECONDS", help="stop one exercise's grading after this long "
                                                f"(default {grade_exercise.EXERCISE_TIMEOUT})")
