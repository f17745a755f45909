"""Grade a whole class: CLASS_DIR/<student>/<NN_name>/... into a gradebook.

Students are handed to a pool of `jobs` threads; each student's whole
submission is graded by `grade_exercises` in one pytest run under the
jail (so the threads only wait), with a `jobs`-th of the machine's test
workers (grader.grading.budget), and every run takes its turns in one
folder, so a test that must run alone is alone on the machine. A student's report (every
test's score and message) is written as JSON beside the CSV as soon as all
of that student's exercises are done, so an interrupted run loses nothing:
a re-run skips every student whose report matches their files (a
fingerprint of the declared files), unless `force`."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grader.course import manifest
from grader.course.submission import link_problem, locate
from grader.grading import budget, formats, grade_exercise
from grader.harness import turns
from grader.results import ExerciseResult

REPORT_VERSION = 1
GRADER_ERROR = "grading could not run"


@dataclass
class StudentOutcome:
    student: str
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reused: bool = False            # taken from an earlier run's report

    @property
    def total(self) -> float:
        return sum(self.scores.values())


def students(class_dir: Path) -> list[Path]:
    """Every student folder, by name; hidden folders and files are ignored.
    A folder that is a symbolic link is listed too, to be reported (and
    never graded) in its row."""
    return sorted((p for p in Path(class_dir).iterdir()
                   if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def fingerprint(folder: Path, exercises: list[manifest.Exercise]) -> str:
    """A hash of exactly the files that would be graded."""
    digest = hashlib.sha256()
    for exercise in exercises:
        root = locate(folder, exercise)
        if root is not None and (refused := link_problem(root)) is not None:
            digest.update(refused.encode())  # never read through the link
            root = None
        for name in exercise.files:
            path = root / name if root else None
            digest.update(f"{exercise.id}/{name}\0".encode())
            try:
                if path is not None and path.is_file() and not path.is_symlink():
                    digest.update(path.read_bytes())
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()


def report_folder(output: Path) -> Path:
    """gradebook.csv -> gradebook-reports/ (one JSON per student)."""
    return output.with_name(output.stem + "-reports")


def _previous(report: Path, stamp: str, ids: list[str]) -> StudentOutcome | None:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != REPORT_VERSION or data.get("fingerprint") != stamp \
            or data.get("grader_errors") or sorted(data.get("exercises", {})) != sorted(ids):
        return None
    outcome = StudentOutcome(data["student"], reused=True, notes=data.get("notes", []))
    outcome.scores = {i: data["exercises"][i]["score"] for i in ids}
    return outcome


def _write_report(path: Path, student: str, stamp: str, results: list[ExerciseResult],
                  notes: list[str]) -> None:
    data = {"version": REPORT_VERSION, "student": student, "fingerprint": stamp,
            # a grader failure (not the student's) is graded again next run
            "grader_errors": [r.id for r in results if r.message.startswith(GRADER_ERROR)],
            "score": sum(r.score for r in results), "max_score": sum(r.max_score for r in results),
            # messages capped and escaped as in every report (formats.report_message)
            "notes": notes, "exercises": {r.id: formats.report_json(r) for r in results}}
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2))
    os.replace(partial, path)


def _crashed(exercise: manifest.Exercise, exc: BaseException) -> ExerciseResult:
    """The grader itself failed on this pair: score 0 with the reason, so
    the batch goes on and the instructor can see what to re-run."""
    tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return ExerciseResult(exercise.id, 0, exercise.points,
                          message=f"{GRADER_ERROR} ({tail}); the next run grades it again")


def grade_class(class_dir: Path, output: Path, exercises: list[manifest.Exercise],
                jobs: int, force: bool = False, isolate_net: bool = False,
                timeout: float = grade_exercise.EXERCISE_TIMEOUT,
                progress: Callable[[str], None] | None = None,
                planned: Callable[[int], None] | None = None) -> list[StudentOutcome]:
    """Grade every student; write the per-student reports and the CSV.
    `planned(n)` is told how many students will be graded, `progress(name)`
    is called after each one."""
    reports = report_folder(output)
    reports.mkdir(parents=True, exist_ok=True)
    ids = [e.id for e in exercises]
    outcomes: dict[str, StudentOutcome] = {}
    pending: dict[str, dict] = {}
    for folder in students(class_dir):
        refused = link_problem(folder)
        if refused is not None:  # not the student's own folder: reported, never graded
            notes = [formats.note(f"not graded: {refused}")]
            _write_report(reports / f"{folder.name}.json", folder.name, "",
                          [ExerciseResult(e.id, 0, e.points, message=refused) for e in exercises],
                          notes)
            outcomes[folder.name] = StudentOutcome(folder.name, {i: 0 for i in ids}, notes)
            continue
        stamp = fingerprint(folder, exercises)
        earlier = None if force else _previous(reports / f"{folder.name}.json", stamp, ids)
        if earlier is not None:
            outcomes[folder.name] = earlier
        else:
            pending[folder.name] = {"folder": folder, "stamp": stamp, "results": {}}
    if planned:
        planned(len(pending))
    lock = threading.Lock()
    workers = budget.workers(jobs, exercises=len(exercises))

    def grade_student(student: str, turns_at: Path) -> list[ExerciseResult]:
        try:
            return grade_exercise.grade_exercises(exercises, pending[student]["folder"],
                                                  timeout=timeout, isolate_net=isolate_net,
                                                  workers=workers, turns_at=turns_at)
        except Exception as exc:  # a grader bug must not stop the class
            return [_crashed(exercise, exc) for exercise in exercises]

    with tempfile.TemporaryDirectory(prefix="socklab-turns-") as turns_at, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_student, s, Path(turns_at)): s for s in pending}
        for future in as_completed(futures):
            student = futures[future]
            ordered = future.result()
            with lock:
                notes = [f"{r.id}: {formats.note(r.message)}" for r in ordered if r.message]
                _write_report(reports / f"{student}.json", student, pending[student]["stamp"],
                              ordered, notes)
                outcomes[student] = StudentOutcome(student, {r.id: r.score for r in ordered}, notes)
            if progress:
                progress(student)
    ordered = [outcomes[name] for name in sorted(outcomes)]
    write_csv(output, ordered, ids)
    return ordered


def write_csv(output: Path, outcomes: list[StudentOutcome], ids: list[str]) -> None:
    partial = output.with_name(output.name + ".partial")
    with open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *ids, "total", "notes"])
        for o in outcomes:
            writer.writerow([o.student, *(f"{o.scores[i]:g}" for i in ids), f"{o.total:g}",
                             " | ".join(o.notes)])
    os.replace(partial, output)
