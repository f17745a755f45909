"""One module per `socklab` subcommand.

Each module defines `register(commands)`, which adds its subparser to the
`argparse` subparsers object and sets `run=` to a function taking the parsed
arguments and returning an exit status. `grader.cli` finds the modules here
by name, so adding a command never means editing a shared file. `ORDER`
(a module-level int, default 100) places it in `socklab --help`. A command
imports no other command: what several share is in the private `_options`."""
