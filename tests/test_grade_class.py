"""`socklab grade-class`: one real class graded end to end, and the batch
rules (resume, --force, a changed submission, a crash that must not stop
the batch) with a stand-in for the per-exercise grader."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course import manifest
from grader.grading import grade_class, grade_exercise
from grader.results import ExerciseResult, TestResult
from support import MUTANTS_DIR, build_submission, read_mutant

EXERCISE = manifest.get("00_basics")
MUTANT = "xor_instead_of_power"


def make_class(root: Path) -> Path:
    class_dir = root / "class"
    build_submission(class_dir / "alice", EXERCISE)
    build_submission(class_dir / "carol", EXERCISE, read_mutant(MUTANTS_DIR / EXERCISE.id / MUTANT))
    stub = class_dir / "bob" / EXERCISE.id
    stub.mkdir(parents=True)
    for name in EXERCISE.files:
        shutil.copyfile(EXERCISE.folder / name, stub / name)
    (class_dir / "dave").mkdir()            # submitted nothing
    return class_dir


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_a_class_graded_in_parallel_matches_each_student_graded_alone(tmp_path):
    class_dir = make_class(tmp_path)
    gradebook = tmp_path / "out" / "gradebook.csv"
    command = [sys.executable, "-m", "grader.cli", "grade-class", str(class_dir),
               "--output", str(gradebook), "--jobs", "2", "--exercise", EXERCISE.id]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_csv(gradebook)
    assert list(rows) == ["alice", "bob", "carol", "dave"]
    assert list(rows["alice"]) == ["student", EXERCISE.id, "total", "notes"]
    alone = {name: grade_exercise.grade_exercise(EXERCISE, class_dir / name).score
             for name in ("alice", "bob", "carol")}
    assert alone["alice"] == 100 and alone["bob"] == 0 and 0 < alone["carol"] < 100, alone
    for name, score in alone.items():
        assert float(rows[name][EXERCISE.id]) == score == float(rows[name]["total"]), (name, rows)
    assert rows["dave"][EXERCISE.id] == "0" and "no folder" in rows["dave"]["notes"]

    report = json.loads((tmp_path / "out" / "gradebook-reports" / "carol.json").read_text())
    failing = [t for t in report["exercises"][EXERCISE.id]["tests"] if t["status"] == "failed"]
    assert failing and all("What the test did" in t["message"] for t in failing)

    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "4 from earlier reports" in again.stdout, again.stdout
    assert read_csv(gradebook) == rows


class StandIn:
    """Replaces grade_exercise.grade_exercises: a score from the file's
    length, and a crash for any student named in `crash`."""

    def __init__(self, crash=()):
        self.calls: list[str] = []
        self.crash = set(crash)

    def __call__(self, exercises, folder, **_):
        self.calls.append(folder.name)
        if folder.name in self.crash:
            raise RuntimeError("the grader fell over")
        results = []
        for exercise in exercises:
            size = (folder / exercise.id / exercise.files[0]).stat().st_size
            test = TestResult("test_size", size % 100, 100, "passed")
            results.append(ExerciseResult(exercise.id, size % 100, 100, [test]))
        return results


@pytest.fixture
def small_class(tmp_path):
    class_dir = tmp_path / "class"
    for name in ("ann", "ben", "cat"):
        folder = class_dir / name / EXERCISE.id
        folder.mkdir(parents=True)
        (folder / EXERCISE.files[0]).write_text("x" * (len(name) * 10))
    return class_dir


def grade(class_dir, output, stand_in, monkeypatch, force=False):
    monkeypatch.setattr(grade_exercise, "grade_exercises", stand_in)
    return grade_class.grade_class(class_dir, output, [EXERCISE], jobs=2, force=force)


def test_resume_skips_graded_students_unless_forced_or_changed(small_class, tmp_path, monkeypatch):
    output = tmp_path / "book.csv"
    first = StandIn()
    grade(small_class, output, first, monkeypatch)
    assert sorted(first.calls) == ["ann", "ben", "cat"]

    second = StandIn()
    outcomes = grade(small_class, output, second, monkeypatch)
    assert second.calls == [] and all(o.reused for o in outcomes)

    (small_class / "ben" / EXERCISE.id / EXERCISE.files[0]).write_text("changed")
    third = StandIn()
    grade(small_class, output, third, monkeypatch)
    assert third.calls == ["ben"], "a changed submission is graded again"
    assert read_csv(output)["ben"][EXERCISE.id] == str(len("changed"))

    forced = StandIn()
    grade(small_class, output, forced, monkeypatch, force=True)
    assert sorted(forced.calls) == ["ann", "ben", "cat"]


def test_one_students_crash_is_recorded_and_the_batch_goes_on(small_class, tmp_path, monkeypatch):
    output = tmp_path / "book.csv"
    grade(small_class, output, StandIn(crash={"ben"}), monkeypatch)
    rows = read_csv(output)
    assert rows["ann"][EXERCISE.id] == "30" and rows["cat"][EXERCISE.id] == "30"
    assert rows["ben"][EXERCISE.id] == "0"
    assert "grading could not run" in rows["ben"]["notes"] and "fell over" in rows["ben"]["notes"]
    retry = StandIn()
    grade(small_class, output, retry, monkeypatch)
    assert retry.calls == ["ben"], "a grader failure is not a grade: the next run retries it"
    assert read_csv(output)["ben"][EXERCISE.id] == "30"


def test_a_student_folder_that_is_a_link_is_reported_not_graded(small_class, tmp_path, monkeypatch):
    output = tmp_path / "book.csv"
    (small_class / "eve").symlink_to(small_class / "ann", target_is_directory=True)
    stand_in = StandIn()
    grade(small_class, output, stand_in, monkeypatch)
    assert sorted(stand_in.calls) == ["ann", "ben", "cat"], "eve's folder is never graded"
    eve = read_csv(output)["eve"]
    assert eve[EXERCISE.id] == "0" and eve["total"] == "0"
    assert eve["notes"] == (f"not graded: eve is a symbolic link (to {small_class / 'ann'}); "
                            "links are not followed: submit the folder itself")
    report = json.loads((tmp_path / "book-reports" / "eve.json").read_text())
    assert report["exercises"][EXERCISE.id]["score"] == 0
    assert "symbolic link" in report["exercises"][EXERCISE.id]["message"]
