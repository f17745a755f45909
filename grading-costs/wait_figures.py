"""Record the figures behind grader/harness/waits.py: how long each kind of
wait takes for the reference solutions, graded as instructors grade them
(every exercise at once, the machine's test workers all busy).

    .venv/bin/python grading-costs/wait_figures.py [--runs 3] [--shape slow]

Every finished wait (a ready line, a reply, an end of file, an exit) is
logged by the harness when SOCKLAB_WAIT_LOG names a file; this grades the
solutions --runs times with it set and prints, per kind, how many waits
there were, their median, 99th percentile and maximum. The table in
waits.py states each wait as a multiple of the maximum seen here. With
--shape, every exercise is graded in that shape of grader/bench/variants.py
instead (`slow`: the slowed correct programs that must still earn full
marks), to see how much of each wait they use."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.bench import variants  # noqa: E402
from grader.course import manifest  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shape", default="reference", help="a shape of grader/bench/variants.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="socklab-waits-") as tmp:
        log = Path(tmp) / "waits.log"
        tree = ROOT / "solutions"
        if args.shape != "reference":
            tree = Path(tmp) / args.shape
            for exercise in manifest.load():
                variants.build(exercise, args.shape, tree)
        for run in range(args.runs):
            done = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(tree)],
                                  env={**os.environ, "SOCKLAB_WAIT_LOG": str(log)}, cwd=ROOT,
                                  capture_output=True, text=True)
            total = [line for line in done.stdout.splitlines() if line.startswith("total")]
            print(f"run {run + 1}: {total[0] if total else done.stdout[-500:]}", file=sys.stderr)
        figures: dict[str, list[float]] = {}
        for line in log.read_text().splitlines():
            kind, seconds = line.split()
            figures.setdefault(kind, []).append(float(seconds))
    print(f"{'wait':<8} {'count':>7} {'median s':>9} {'p99 s':>8} {'max s':>8}")
    for kind, values in sorted(figures.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{kind:<8} {len(values):>7} {statistics.median(values):>9.4f} {p99:>8.4f} "
              f"{values[-1]:>8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
