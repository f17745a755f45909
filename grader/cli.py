"""The `socklab` command line: one subcommand per module in grader/commands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from grader import commands as _commands


def _command_modules() -> list:
    # One module per subcommand; a private module (_options) serves them all.
    modules = [importlib.import_module(f"{_commands.__name__}.{info.name}")
               for info in pkgutil.iter_modules(_commands.__path__) if not info.name.startswith("_")]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socklab", description="socket programming exercises, graded")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
