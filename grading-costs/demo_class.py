"""A demonstration class for `socklab grade-class`, and the check that a
class graded in parallel scores every student as `socklab grade` does alone.

    python grading-costs/demo_class.py build CLASS_DIR [--students 30] [--stubs 3]
    socklab grade-class CLASS_DIR --output book.csv --jobs 2
    python grading-costs/demo_class.py compare CLASS_DIR book.csv [--exercise ID ...]

`build` writes CLASS_DIR/<student>/<NN_name>/...: copies of the reference
solutions, a few students who handed in the stubs untouched, and a few
whose solutions carry known bugs (mutants of tests/mutants/) in some
exercises. `compare` grades every student again, one at a time with
`socklab grade --format json` in a child process, and prints each
student's score beside the gradebook's, the per-student wall time, and a
verdict. It exits 1 on any difference.

Not part of `make test` (it takes an hour on two cores); the figures it
gave are in docs/grading-safely.md."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from grader.course import manifest  # noqa: E402
from support import MUTANTS_DIR, build_submission, read_mutant  # noqa: E402

# Students with bugs: each a list of (exercise, mutant) pairs, the rest solutions.
BUGGY = [
    [("01_tcp_server", "no_reuseaddr"), ("03_poll", "forwards_chunks")],
    [("04_epoll", "no_mod_after_swap"), ("08_threads", "sender_hears_itself")],
    [("00_basics", "xor_instead_of_power"), ("10_framing", "decoder_per_recv"),
     ("06_udp", "never_retries")],
]


def build(class_dir: Path, students: int, stubs: int) -> None:
    if class_dir.exists() and any(class_dir.iterdir()):
        sys.exit(f"{class_dir} is not empty")
    exercises = list(manifest.load())
    for number in range(students):
        folder = class_dir / f"student{number + 1:02d}"
        folder.mkdir(parents=True)
        bugs = dict(BUGGY[number - stubs]) if stubs <= number < stubs + len(BUGGY) else {}
        for exercise in exercises:
            if number < stubs:
                (folder / exercise.id).mkdir()
                for name in exercise.files:
                    shutil.copyfile(exercise.folder / name, folder / exercise.id / name)
            else:
                spec = read_mutant(MUTANTS_DIR / exercise.id / bugs[exercise.id]) \
                    if exercise.id in bugs else None
                build_submission(folder, exercise, spec)
        kind = "stub" if number < stubs else ("mutants " + ", ".join(
            f"{e}/{m}" for e, m in bugs.items()) if bugs else "solution")
        print(f"{folder.name}: {kind}")


def compare(class_dir: Path, gradebook: Path, only: list[str]) -> int:
    with open(gradebook, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    ids = only or [e.id for e in manifest.load()]
    selection = [arg for i in only for arg in ("--exercise", i)]
    differences, seconds = [], []
    for folder in sorted(p for p in class_dir.iterdir() if p.is_dir()):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(folder),
                               "--format", "json", *selection],
                              capture_output=True, text=True, check=True)
        seconds.append(time.monotonic() - started)
        alone = json.loads(done.stdout)["exercises"]
        row = rows[folder.name]
        for i in ids:
            if float(row[i]) != alone[i]["score"]:
                differences.append(f"{folder.name} {i}: gradebook {row[i]}, "
                                   f"alone {alone[i]['score']:g}")
        print(f"{folder.name}: gradebook {sum(float(row[i]) for i in ids):g}, alone "
              f"{sum(alone[i]['score'] for i in ids):g} ({seconds[-1]:.1f} s)", flush=True)
    print(f"\n{len(seconds)} students graded alone: median {statistics.median(seconds):.1f} s, "
          f"total {sum(seconds):.0f} s")
    print("every score equals the gradebook's" if not differences
          else "DIFFERENCES:\n" + "\n".join(differences))
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build")
    b.add_argument("class_dir", type=Path)
    b.add_argument("--students", type=int, default=30)
    b.add_argument("--stubs", type=int, default=3)
    c = commands.add_parser("compare")
    c.add_argument("class_dir", type=Path)
    c.add_argument("gradebook", type=Path)
    c.add_argument("--exercise", action="append", default=[], metavar="ID",
                   help="grade and compare only this exercise (repeatable)")
    args = parser.parse_args()
    if args.command == "build":
        build(args.class_dir, args.students, args.stubs)
        return 0
    return compare(args.class_dir, args.gradebook, args.exercise)


if __name__ == "__main__":
    sys.exit(main())
