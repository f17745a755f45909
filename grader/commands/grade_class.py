"""`socklab grade-class CLASS_DIR --output gradebook.csv`: a whole class,
in parallel, with a progress bar; resumable."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from grader.commands._options import (UsageProblem, add_grading_options, chosen_exercises,
                                      folder_and_ids, isolate_net_allowed, refuses_bad_usage)
from grader.grading import formats, grade_class
from grader.harness import sandbox

ORDER = 20


@refuses_bad_usage
def run(args: argparse.Namespace) -> int:
    class_dir, ids = folder_and_ids(args.class_dir, args)
    if not grade_class.students(class_dir):
        raise UsageProblem(f"no student folders in {class_dir}")
    exercises = chosen_exercises(ids)
    output = Path(args.output)
    isolate = isolate_net_allowed(args.isolate_net, "grade-class")
    print(f"socklab grade-class: student programs get {sandbox.describe()}"
          + ("; each submission in its own network namespace" if isolate else ""), file=sys.stderr)
    started = time.monotonic()
    bars = []

    def planned(n: int) -> None:
        # disable=None: a bar on a terminal, nothing in a CI log
        bars.append(tqdm(total=n, unit="student", desc="grading", file=sys.stderr,
                         disable=True if args.quiet else None))

    def progress(label: str) -> None:
        bars[0].set_postfix_str(label, refresh=False)
        bars[0].update()

    outcomes = grade_class.grade_class(class_dir, output, exercises, jobs=args.jobs,
                                     force=args.force, isolate_net=isolate,
                                     timeout=args.exercise_timeout,
                                     progress=progress, planned=planned)
    for bar in bars:
        bar.close()
    reused = sum(o.reused for o in outcomes)
    print(formats.class_table(outcomes, [e.id for e in exercises]))
    print(f"\n{len(outcomes)} students ({reused} from earlier reports, --force regrades them) "
          f"in {time.monotonic() - started:.1f} s: {output}, reports in "
          f"{grade_class.report_folder(output)}/")
    return 0


def register(commands) -> None:
    cmd = commands.add_parser("grade-class", help="grade every student of a class into a CSV gradebook")
    cmd.add_argument("class_dir", help="CLASS_DIR/<student>/<NN_name>/<files>")
    cmd.add_argument("--output", required=True, metavar="CSV",
                     help="the gradebook; per-student JSON reports go beside it in <name>-reports/")
    cmd.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="submissions graded at once (default: the number of cores); they "
                          "share the machine's test workers (SOCKLAB_WORKERS, else 4 per core), "
                          "never multiply them")
    cmd.add_argument("--force", action="store_true",
                     help="regrade students whose report is already there and up to date")
    add_grading_options(cmd)
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(run=run)
