"""`socklab bench`: measure why epoll beats poll as connections grow.

For each server and each number N of idle connections: the latency and
server CPU time of a wake-up (one byte among N idle clients) and of a
message (a line and its answer), and the server's memory per connection.
Prints a table, writes a CSV and a PNG. See docs/bench.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.bench import measure, plot, report, servers
from grader.commands._options import UsageProblem, refuses_bad_usage
from grader.course.manifest import SOLUTIONS_DIR

ORDER = 60
DEFAULT_SERVERS = "poll,epoll,threads,c10k,c"
DEFAULT_FDS = "100,1000,5000,10000"


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
