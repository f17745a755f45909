"""Where the CPU of grading goes: each exercise's hidden and visible suites
run on the reference solutions in one pytest process (no workers, so that
nothing is counted twice), with grading-costs/cpu_probe.py loaded.

    .venv/bin/python grading-costs/cpu_profile.py [--exercise ID ...]

For each exercise: the wall time; the test process's own CPU (pytest, the
plugin, the grader's clients and crowds, its polling loops); the CPU of the
children it waited for (module-call interpreters, helpers); the student
programs' (read from each program's process tree just before it is
stopped: a killed sandbox is never waited for); how many programs and
module calls it started; and, summed over the exercises, the test
process's own CPU by module (cProfile on CPU time, own time).
The figures are in docs/grading-bench.md."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course import manifest  # noqa: E402
from grader.grading.grade_exercise import pytest_command, pytest_environment  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", action="append")
    args = parser.parse_args()
    chosen = [manifest.get(i) for i in args.exercise] if args.exercise else list(manifest.load())
    print(f"{'exercise':<16} {'wall s':>7} {'tests cpu s':>11} {'waited-for cpu s':>16} "
          f"{'programs cpu s':>14} {'programs':>8} {'module calls':>12}")
    profile: dict[str, float] = {}
    totals = [0.0, 0.0, 0.0, 0.0, 0, 0]
    with tempfile.TemporaryDirectory(prefix="socklab-cpu-") as tmp:
        for exercise in chosen:
            out = Path(tmp) / f"{exercise.id}.json"
            cmd = pytest_command(exercise, manifest.SOLUTIONS_DIR, Path(tmp) / "results.json",
                                 sandbox_mode="auto") + ["-p", "cpu_probe"]
            env = {**pytest_environment(), "PYTHONPATH": str(Path(__file__).parent),
                   "CPU_PROBE_OUT": str(out), "TMPDIR": tmp}
            started = time.monotonic()
            subprocess.run(cmd, cwd=tmp, env=env, capture_output=True)
            wall = time.monotonic() - started
            data = json.loads(out.read_text())
            row = [wall, data["self_cpu"], data["children_cpu"], data["programs_cpu"],
                   data["counts"]["programs"], data["counts"]["module calls"]]
            totals = [a + b for a, b in zip(totals, row)]
            print(f"{exercise.id:<16} {row[0]:>7.1f} {row[1]:>11.1f} {row[2]:>16.1f} "
                  f"{row[3]:>14.1f} {row[4]:>8} {row[5]:>12}", flush=True)
            for name, seconds in data["profile"]:
                profile[name] = profile.get(name, 0.0) + seconds
    print(f"{'total':<16} {totals[0]:>7.1f} {totals[1]:>11.1f} {totals[2]:>16.1f} "
          f"{totals[3]:>14.1f} {totals[4]:>8} {totals[5]:>12}")
    print("\nThe test processes' own CPU by module (cProfile, own time, all exercises):")
    for name, seconds in sorted(profile.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {seconds:7.2f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
