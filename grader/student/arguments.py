"""The command lines of the student commands (`socklab status`, `socklab
hint`), written once: commands/ registers them from here, and the release
lists them in the student repository's README from here, without importing
a command."""

from __future__ import annotations

import argparse
from typing import Callable

from grader.student import status

STATUS_HELP = "your progress: every exercise's visible tests, and what to do next"
HINT_HELP = "show the next hint of an exercise"


def status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exercise", action="append", metavar="ID",
                        help="check only this exercise, and list its tests (repeatable)")
    parser.add_argument("--tree", metavar="DIR",
                        help="check the files in DIR, laid out like exercises/ "
                             "(default: this repository's exercises/)")
    parser.add_argument("--jobs", type=int, default=status.default_jobs(), metavar="N",
                        help="run N exercises' tests at a time (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every test")


def hint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="the exercise: 03_poll, 03, 3 or poll")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="show every hint of the exercise")
    what.add_argument("--reset", action="store_true", help="forget which hints you have seen")


# name -> (help line, function adding its arguments), in the README's order
STUDENT_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "status": (STATUS_HELP, status_arguments),
    "hint": (HINT_HELP, hint_arguments),
}


def usage_line(name: str) -> str:
    """"- `socklab NAME ARGS`: help" for one student command."""
    help_text, add_arguments = STUDENT_COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"socklab {name}", add_help=False)
    add_arguments(parser)
    return f"- `{parser.format_usage().removeprefix('usage: ').strip()}`: {help_text}"
