"""`socklab hint ID`: the next hint of an exercise, from its README."""

from __future__ import annotations

import argparse
import sys

from grader.course import manifest, readme
from grader.student import arguments, hints

ORDER = 21


def _show(exercise: manifest.Exercise, number: int, total: int, hint: readme.Section) -> str:
    title = f"{exercise.id}, hint {number} of {total}"
    return f"{title}\n{'-' * len(title)}\n{hint.body}\n"


def run(args: argparse.Namespace) -> int:
    try:
        exercise = hints.find_exercise(args.id)
    except manifest.ManifestError as exc:
        print(f"socklab hint: {exc}", file=sys.stderr)
        return 2
    source = f'{readme.shown_path(exercise)}, section "{readme.HINTS_TITLE}"'
    all_hints = readme.hints(exercise)
    if not all_hints:
        print(f"{exercise.id} has no hints ({source} is missing).", file=sys.stderr)
        return 1
    total = len(all_hints)
    if args.reset:
        hints.reset(exercise)
        print(f"{exercise.id}: the hints start over; `socklab hint {exercise.id}` shows hint 1 of {total}.")
        return 0
    if args.all:
        print("\n".join(_show(exercise, n, total, h) for n, h in enumerate(all_hints, 1)), end="")
        return 0
    shown = hints.reveal_next(exercise)
    if shown is None:
        print(f"You have seen all {total} hints of {exercise.id} (they are in {source}).\n"
              f"`socklab hint {exercise.id} --all` shows them again; "
              f"`socklab hint {exercise.id} --reset` starts over.")
        return 0
    number, hint = shown
    print(_show(exercise, number, total, hint))
    if number < total:
        print(f"Still stuck? `socklab hint {exercise.id}` again shows hint {number + 1}.")
    else:
        print(f"That was the last hint. Failing tests name the README section to read; "
              f"`pytest exercises/{exercise.id}` shows what they saw.")
    return 0


def register(commands) -> None:
    parser = commands.add_parser("hint", help=arguments.HINT_HELP)
    arguments.hint_arguments(parser)
    parser.set_defaults(run=run)
