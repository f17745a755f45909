"""What the grading sandbox costs: `socklab grade solutions` by an earlier
commit and by this tree, side by side in one run on the same machine.

    python grading-costs/sandbox_cost.py [--baseline REV] [--rounds 2] [--exercise ID ...]

The earlier commit (by default the last one before the bubblewrap sandbox)
is checked out with `git worktree` into a cache folder and installed into
a virtual environment of its own, so that each version grades with its own
code from end to end (the pytest child of the runner imports `grader` from
whatever is installed). The two are then run alternately, baseline first,
`--rounds` times each, and the wall times printed with their medians and
ratio. Each run's scores are printed too: a difference means the
comparison is not of like with like.

The worktree and its environment stay in /tmp/socklab-bench-baseline for
the next run; remove them with `git worktree remove --force` on the tree
(or delete the folder and `git worktree prune`).

Not part of `make test` (several minutes); the figures are in
docs/grading-safely.md."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE_SANDBOX = "556cb27"   # the last commit before the bubblewrap sandbox
CACHE = Path("/tmp/socklab-bench-baseline")


def baseline_tree(rev: str) -> tuple[Path, Path]:
    """(worktree, its socklab command), made once per revision."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                         capture_output=True, text=True, check=True).stdout.strip()
    tree = CACHE / sha / "tree"
    venv = CACHE / sha / "venv"
    if not tree.exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), sha],
                       check=True, capture_output=True)
    if not (venv / "bin" / "socklab").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        "-e", str(tree)], check=True)
    return tree, venv / "bin" / "socklab"


def grade(socklab: Path, tree: Path, exercises: list[str]) -> tuple[float, dict[str, float]]:
    command = [str(socklab), "grade", str(tree / "solutions"), "--format", "json"]
    for exercise in exercises:
        command += ["--exercise", exercise]
    started = time.monotonic()
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - started
    scores = {k: v["score"] for k, v in json.loads(done.stdout)["exercises"].items()}
    return elapsed, scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BEFORE_SANDBOX)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--exercise", action="append", default=[])
    args = parser.parse_args()
    tree, socklab = baseline_tree(args.baseline)
    current = ROOT / ".venv" / "bin" / "socklab"
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    print(f"baseline {args.baseline} ({tree}) against this tree ({ROOT})")
    for round_ in range(1, args.rounds + 1):
        for label, command, where in (("baseline", socklab, tree), ("current", current, ROOT)):
            elapsed, scores = grade(command, where, args.exercise)
            times[label].append(elapsed)
            total = sum(scores.values())
            print(f"round {round_}  {label:8}  {elapsed:7.1f} s  total score {total:g}  "
                  + " ".join(f"{k[:2]}:{v:g}" for k, v in scores.items()), flush=True)
    base, now = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(f"median    baseline {base:.1f} s   current {now:.1f} s   "
          f"current / baseline = {now / base:.3f} ({(now / base - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
