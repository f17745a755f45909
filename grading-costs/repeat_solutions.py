"""Grade the reference solutions many times at full concurrency: a grading
that fails a correct program once in fifty runs is a bug to find here, at
its root, before a student meets it.

    .venv/bin/python grading-costs/repeat_solutions.py [--runs 50] [--report FILE]

Each run is `socklab grade solutions --format json`, every exercise in one
run with the machine's whole budget of test workers. It prints one line per
run (wall seconds, score) and, at the end, every test that failed with the
first lines of its message and how often it failed. With --report the
summary is also written to FILE (the last one is kept in docs/)."""

from __future__ import annotations

import argparse
import collections
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    failures: collections.Counter[str] = collections.Counter()
    first_message: dict[str, str] = {}
    walls, bad_runs = [], 0
    for number in range(1, args.runs + 1):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(ROOT / "solutions"),
                               "--format", "json"], cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - started
        walls.append(wall)
        try:
            data = json.loads(done.stdout)
        except ValueError:
            bad_runs += 1
            print(f"run {number}: no JSON (status {done.returncode}): {done.stderr[-500:]}", flush=True)
            continue
        score = sum(e["score"] for e in data["exercises"].values())
        most = sum(e["max_score"] for e in data["exercises"].values())
        failed = [(exercise, t) for exercise, e in data["exercises"].items()
                  for t in e["tests"] if t["status"] != "passed"]
        for exercise, test in failed:
            key = f"{exercise} {test['name']}"
            failures[key] += 1
            first_message.setdefault(key, "\n".join(test["message"].splitlines()[:12]))
        bad_runs += bool(failed) or score != most
        print(f"run {number}: {wall:.1f} s, {score:g}/{most:g}"
              + (f", failed: {', '.join(t['name'] for _, t in failed)}" if failed else ""), flush=True)
    lines = [f"{args.runs} runs of `socklab grade solutions` on {platform.node()} "
             f"({len(__import__('os').sched_getaffinity(0))} cores): "
             f"{args.runs - bad_runs} at full marks, {bad_runs} not.",
             f"Wall per run: median {statistics.median(walls):.1f} s, "
             f"min {min(walls):.1f} s, max {max(walls):.1f} s."]
    for key, count in failures.most_common():
        lines += [f"\n{key}: failed in {count} runs; first message:", first_message[key]]
    summary = "\n".join(lines)
    print("\n" + summary)
    if args.report:
        args.report.write_text(summary + "\n")
    return 1 if bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())
