"""`socklab bench`: measure why epoll beats poll as connections grow.

For each server and each number N of idle connections: the latency and
server CPU time of a wake-up (one byte among N idle clients) and of a
message (a line and its answer), and the server's memory per connection.
Prints a table, writes a CSV and a PNG. See docs/bench.md.

`socklab bench grading` measures something else: what grading itself costs,
on the reference solutions and on submissions broken on purpose. See
docs/grading-bench.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.bench import grading, measure, plot, report, servers, variants
from grader.commands._options import UsageProblem, refuses_bad_usage
from grader.course import manifest
from grader.course.manifest import SOLUTIONS_DIR

ORDER = 60
DEFAULT_SERVERS = "poll,epoll,threads,c10k,c"
DEFAULT_FDS = "100,1000,5000,10000"
GRADING_OUTPUT = manifest.COURSE_ROOT / "docs" / "bench-results"


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in servers.KINDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown server {', '.join(unknown) or '(none)'}; known: {', '.join(servers.KINDS)}")
    return list(dict.fromkeys(names))


def _counts(text: str) -> list[int]:
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers of connections, e.g. 100,1000")
    return sorted(set(counts))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _exercise_list(text: str) -> list[str]:
    known = [e.id for e in manifest.load()]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown exercise {', '.join(unknown) or '(none)'}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _shape_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in variants.SHAPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown shape {', '.join(unknown) or '(none)'}; known: {', '.join(variants.SHAPES)}")
    return list(dict.fromkeys(names))


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 10**7:  # no nan, no inf (a timer cannot wait that long)
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


@refuses_bad_usage
def run_grading(args: argparse.Namespace) -> int:
    try:
        given = [grading.interpreter(p) for p in args.python or [sys.executable]]
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    pythons = grading.distinct(list({i.python: i for i in given}.values()))  # each once
    chosen = [manifest.get(i) for i in args.exercises] if args.exercises else list(manifest.load())
    exercises = [e.id for e in chosen if e.supported_here()]
    for e in chosen:
        if not e.supported_here():
            print(f"{e.id} cannot be graded on {sys.platform}: not measured", file=sys.stderr)
    plan = grading.Plan(exercises, args.shapes, pythons, runs=args.runs, timeout=args.timeout)
    if args.shapes:
        unused = [s for s in args.shapes if not any(s in variants.shapes_for(e) for e in exercises)]
        if unused:
            raise UsageProblem(f"no exercise measured has the shape {', '.join(unused)} "
                               "(module shapes need a module, program shapes a program)")
    if not plan.pairs():
        raise UsageProblem("nothing to measure")
    for python in pythons:
        print(f"{python.label}: {python.python} (grader from {python.root})", flush=True)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    outcome = grading.run(plan, say=say)
    found = grading.rows(outcome)
    totals = grading.reference_totals(found, pythons)
    print(grading.table(found + totals, pythons))
    for row in found:
        for problem in row.problems:
            print(f"{row.exercise} {row.shape} [{row.python.label}]: {problem}")
    print(grading.cpu_source(outcome))
    csv_path = Path(args.grading_output) / "grading.csv"
    grading.write_csv(found + totals, csv_path)
    print(f"\nCSV: {csv_path}")
    print(f"bench took {outcome.seconds:.0f} s")
    return 0 if found else 1


@refuses_bad_usage
def run(args: argparse.Namespace) -> int:
    if not sys.platform.startswith("linux"):
        raise UsageProblem("needs Linux (epoll, /proc, sock_diag)")
    root = Path(args.submission)
    if not root.is_dir():
        raise UsageProblem(f"{root} is not a folder")
    settings = measure.Settings(servers=args.servers, fds=args.fds, messages=args.messages,
                                warmup=args.warmup, repeats=args.repeats, seed=args.seed)
    output = Path(args.output)
    png = Path(args.plot) if args.plot else output / "bench.png"

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    outcome = measure.run(settings, root, say=say)
    print(report.table(outcome) if outcome.rows else "Nothing was measured.")
    for line in report.highlights(outcome) + outcome.notes:
        print(line)
    for label, message in outcome.failures.items():
        print(f"\n{label} could not be measured:\n{message}")
    if outcome.rows:
        csv_path = output / "bench.csv"
        report.write_csv(outcome, csv_path)
        print(f"\nCSV: {csv_path}")
        why = plot.plot(outcome, png, f"socklab bench on {plot.machine()}: {root}")
        print(why or f"plot: {png}")
    print(f"bench took {outcome.seconds:.0f} s")
    return 1 if outcome.failures or not outcome.rows else 0


def register(commands) -> None:
    bench = commands.add_parser(
        "bench", help="measure poll, epoll, threads and C servers against N idle connections",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--submission", default=str(SOLUTIONS_DIR), metavar="DIR",
                       help="the tree whose servers are measured (default: the reference solutions)")
    bench.add_argument("--servers", type=_names, default=_names(DEFAULT_SERVERS),
                       metavar="LIST", help=f"comma-separated, from {DEFAULT_SERVERS} "
                                            "(c: the C baseline; default: all)")
    bench.add_argument("--fds", type=_counts, default=_counts(DEFAULT_FDS), metavar="LIST",
                       help=f"numbers of idle connections (default {DEFAULT_FDS})")
    bench.add_argument("--output", default="socklab-bench", metavar="DIR",
                       help="where bench.csv (and bench.png) go (default: socklab-bench)")
    bench.add_argument("--plot", metavar="FILE", help="where the PNG goes (default: OUTPUT/bench.png)")
    bench.add_argument("--messages", type=_positive, default=200,
                       help="messages per measured window (default 200)")
    bench.add_argument("--warmup", type=_positive, default=20,
                       help="messages per warm-up window, not counted (default 20)")
    bench.add_argument("--repeats", type=_positive, default=3,
                       help="measured windows per figure; figures are their median (default 3)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the random message texts")
    bench.set_defaults(run=run)

    # `socklab bench grading ...`: a mode of its own, with its own options;
    # `socklab bench` without it is the poll/epoll bench above, as it was.
    modes = bench.add_subparsers(dest="mode", metavar="[grading]",
                                  title="a different bench (optional)")
    costs = modes.add_parser(
        "grading", help="measure what grading costs, on the reference and on broken programs",
        description=grading.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    costs.add_argument("--exercises", type=_exercise_list, metavar="LIST",
                       help="comma-separated exercise ids (default: all)")
    costs.add_argument("--shapes", type=_shape_list, metavar="LIST",
                       help=f"comma-separated, from {', '.join(variants.SHAPES)} "
                            "(default: every shape that fits each exercise)")
    costs.add_argument("--runs", type=_positive, default=3,
                       help="runs of each measurement; figures are their median (default 3)")
    costs.add_argument("--timeout", type=_seconds, default=grading.DEFAULT_TIMEOUT,
                       metavar="SECONDS", help="stop a child (and all it started) after this "
                                               f"long (default {grading.DEFAULT_TIMEOUT:g})")
    costs.add_argument("--output", dest="grading_output", default=str(GRADING_OUTPUT),
                       metavar="DIR", help=f"where grading.csv goes (default: {GRADING_OUTPUT})")
    costs.add_argument("--python", action="append", metavar="PY",
                       help="an interpreter whose checkout's grader is measured (repeatable: "
                            "each is a column set, measured in turn; default: this one)")
    costs.set_defaults(run=run_grading)
