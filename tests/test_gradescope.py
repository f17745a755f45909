"""Gradescope: the results.json format of `socklab grade --format gradescope`
and the autograder zip of `socklab gradescope-bundle`, run against a fake
/autograder layout in a temporary folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.course import manifest
from grader.grading import formats
from grader.publish import gradescope_bundle
from grader.results import ExerciseResult, TestResult
from private_tmp import private_folder, scratch  # noqa: F401 (a fixture)
from support import MUTANTS_DIR, build_submission, read_mutant

# What the Gradescope autograder specification allows (results.json).
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format",
            "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
            "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output",
             "output_format", "tags", "visibility", "extra_data"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}
EXERCISE = manifest.get("00_basics")     # the fastest suite to grade (about 5 s)
CLI = [sys.executable, "-m", "grader.cli"]


def check_results_json(data: dict) -> None:
    """Fail unless `data` is a results.json Gradescope accepts, whose
    top-level score is the sum of its tests' scores."""
    assert set(data) <= TOP_KEYS, f"keys Gradescope does not know: {set(data) - TOP_KEYS}"
    assert isinstance(data["score"], (int, float)) and data["score"] >= 0
    assert isinstance(data.get("execution_time", 0), int)
    assert isinstance(data.get("output", ""), str)
    for key in ("visibility", "stdout_visibility"):
        assert data.get(key, "visible") in VISIBILITIES, f"{key}={data[key]!r}"
    for key in ("output_format", "test_output_format"):
        assert data.get(key, "text") in FORMATS
    tests = data["tests"]
    assert isinstance(tests, list)
    for test in tests:
        assert set(test) <= TEST_KEYS, f"{test.get('name')}: unknown keys {set(test) - TEST_KEYS}"
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["number"], str)
        assert isinstance(test["output"], str)
        assert isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])
        assert test["visibility"] in VISIBILITIES
        assert isinstance(test["max_score"], (int, float))
        assert 0 <= test["score"] <= test["max_score"], test
        if "status" in test:
            assert test["status"] in ("passed", "failed"), test
            assert (test["status"] == "passed") == (test["score"] == test["max_score"] > 0), test
            if test["status"] == "failed":
                assert test["output"].strip(), f"{test['name']} failed without saying why"
    assert len({t["name"] for t in tests}) == len(tests), "two tests share a name"
    assert len({t["number"] for t in tests}) == len(tests), "two tests share a number"
    assert data["score"] == sum(t["score"] for t in tests)


# -- results.json ---------------------------------------------------------------

def test_results_json_lists_every_test_with_its_points():
    failed_message = "What the test did:\n    connected\nWhat it expected:\n    a greeting"
    results = [
        ExerciseResult("01_tcp_server", 3, 12, seconds=2.6, tests=[
            TestResult("test_listens", 3, 3, "passed", task=1),
            TestResult("test_echoes", 0, 5, "failed", failed_message, task=2),
            TestResult("test_linux_only", 0, 0, "skipped", "needs linux"),
            TestResult("test_after_timeout", 0, 4, "not run", "the test did not run", task=2),
        ], message="grading 01_tcp_server took longer than 600 s and was stopped"),
        ExerciseResult("03_poll", 0, 100, message="no folder 03_poll/ in /submission"),
    ]
    data = json.loads(formats.gradescope(results))
    check_results_json(data)
    assert data["score"] == 3
    by_name = {t["name"]: t for t in data["tests"]}
    assert by_name["01_tcp_server: test_listens"]["status"] == "passed"
    echoes = by_name["01_tcp_server: test_echoes"]
    assert (echoes["status"], echoes["score"], echoes["max_score"]) == ("failed", 0, 5)
    assert echoes["output"] == failed_message
    assert echoes["tags"] == ["01_tcp_server", "task 2"]
    skipped = by_name["01_tcp_server: test_linux_only"]
    assert "status" not in skipped and skipped["max_score"] == 0 and "needs linux" in skipped["output"]
    assert by_name["01_tcp_server: test_after_timeout"]["status"] == "failed"
    missing = by_name["03_poll: could not be graded"]
    assert (missing["max_score"], missing["status"]) == (100, "failed")
    assert "no folder 03_poll/" in missing["output"]
    assert "took longer than 600 s" in data["output"]
    assert [t["number"] for t in data["tests"]] == ["1.1", "1.2", "1.3", "1.4", "3.1"]
    assert data["execution_time"] == 3


# -- the bundle -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle() -> Path:
    with private_folder() as folder:
        out = folder / "autograder.zip"
        done = subprocess.run([*CLI, "gradescope-bundle", str(out), "--exercise", EXERCISE.id],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        yield out


def test_bundle_holds_socklab_and_the_suites_but_no_solution(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        for script in gradescope_bundle.SCRIPTS:
            assert script in names, f"{script} must be at the root of the zip"
            assert modes[script] & stat.S_IXUSR, f"{script} must be executable"
            (tmp_path / script).write_bytes(z.read(script))
            syntax = subprocess.run(["bash", "-n", str(tmp_path / script)], capture_output=True, text=True)
            assert syntax.returncode == 0, f"{script} is not valid bash:\n{syntax.stderr}"
        for name, path in gradescope_bundle.course_files():
            assert z.read(name) == path.read_bytes(), f"{name} differs from the course's file"
        contents = {z.read(n) for n in names}
    root = manifest.COURSE_ROOT
    for exercise in manifest.load():
        for test in exercise.hidden_tests() + exercise.visible_tests():
            assert test.relative_to(root).as_posix() in names
        for name in exercise.files:
            solution = (exercise.solution_folder / name).read_bytes()
            assert solution not in contents, f"the solution of {exercise.id}/{name} is in the bundle"
    assert {"pyproject.toml", "README.md", "exercises/manifest.toml", "grader/plugin.py"} <= names
    assert not [n for n in names if n.startswith(("solutions/", "tests/")) or "__pycache__" in n]


def test_bundle_refuses_an_unknown_exercise(tmp_path):
    done = subprocess.run([*CLI, "gradescope-bundle", str(tmp_path / "a.zip"), "--exercise", "99_nope"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown exercise '99_nope'" in done.stderr
    assert not (tmp_path / "a.zip").exists()


def fake_autograder(bundle: Path, root: Path) -> Path:
    """A fake /autograder at `root`: the zip unpacked in source/, and venv/
    standing in for what setup.sh installs (that needs the network): a venv
    whose .pth file names the bundle's source, as `pip install -e` would,
    and the site-packages folders of this interpreter for the dependencies.
    So the grader that runs is the bundle's own copy, not this repository's."""
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True, timeout=120)
    purelib = subprocess.run([str(root / "venv/bin/python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dependencies = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    Path(purelib, "socklab-bundle.pth").write_text("\n".join([str(root / "source"), *dependencies]) + "\n")
    (root / "tmp").mkdir()
    return root


class AutograderRun:
    """run_autograder on one submission in its own fake /autograder, started
    at once and read by `results()`, so that several run side by side."""

    def __init__(self, bundle: Path, root: Path, submission: Path, setup_failed: bool = False) -> None:
        self.root = fake_autograder(bundle, root)
        if setup_failed:
            shutil.rmtree(root / "venv")
        shutil.copytree(submission, root / "submission")
        self.before = self.files()
        env = {**os.environ, gradescope_bundle.ROOT_ENV: str(root), "TMPDIR": str(root / "tmp")}
        self.proc = subprocess.Popen(["bash", str(root / "source/run_autograder")], cwd=root, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def files(self) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in (self.root / "submission").rglob("*") if p.is_file()}

    def results(self) -> dict:
        output, _ = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, output
        assert self.files() == self.before, "run_autograder changed the submission"
        assert not list((self.root / "tmp").iterdir()), "run_autograder left temporary files"
        data = json.loads((self.root / "results/results.json").read_text())
        check_results_json(data)
        return data


class Reference:
    """`socklab grade FOLDER --exercise ID --format json` of this repository,
    started at once and read by `result()`."""

    def __init__(self, folder: Path) -> None:
        self.proc = subprocess.Popen([*CLI, "grade", str(folder), "--exercise", EXERCISE.id,
                                      "--format", "json"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def result(self) -> dict:
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err
        return json.loads(out)["exercises"][EXERCISE.id]


def statuses(tests: list[dict], prefix: str = "") -> dict[str, str]:
    return {t["name"].removeprefix(prefix): t.get("status", "skipped") for t in tests}


def copy_files(source: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in EXERCISE.files:
        shutil.copyfile(source / name, dest / name)
    return dest


def test_run_autograder_scores_like_socklab_grade(bundle, scratch):
    # The solution uploaded as loose files, the way Gradescope's upload gives them;
    # a buggy version submitted as the student's repository (exercises/ inside);
    # the stub, uploaded as loose files.
    solution = copy_files(EXERCISE.solution_folder, scratch / "solution")
    mutant = read_mutant(MUTANTS_DIR / EXERCISE.id / "native_byte_order")
    buggy = scratch / "buggy"
    build_submission(buggy / "exercises", EXERCISE, mutant)
    stub = copy_files(EXERCISE.folder, scratch / "stub")

    # Five gradings side by side (they mostly wait; about 5 s each alone).
    runs = {name: AutograderRun(bundle, scratch / f"autograder-{name}", folder)
            for name, folder in (("solution", solution), ("buggy", buggy), ("stub", stub))}
    references = {"solution": Reference(solution), "buggy": Reference(buggy / "exercises")}
    try:
        got = {name: run.results() for name, run in runs.items()}
        expected = {name: ref.result() for name, ref in references.items()}
    finally:  # after a failure, stop what still runs, with everything it started
        for proc in [r.proc for r in runs.values()] + [r.proc for r in references.values()]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()

    for name in ("solution", "buggy"):
        assert got[name]["score"] == expected[name]["score"], name
        assert statuses(got[name]["tests"], f"{EXERCISE.id}: ") == statuses(expected[name]["tests"]), name
        assert sum(t["max_score"] for t in got[name]["tests"]) == EXERCISE.points
    assert expected["solution"]["score"] == EXERCISE.points
    assert 0 < expected["buggy"]["score"] < EXERCISE.points, "the mutant should lose some points, not all"
    # The stub: every test fails, each with a message for the student.
    assert got["stub"]["score"] == 0 and got["stub"]["tests"]
    assert all(t["status"] == "failed" and "What the test did" in t["output"] for t in got["stub"]["tests"])

    root = runs["solution"].root
    imported = subprocess.run([str(root / "venv/bin/python"), "-c", "import grader; print(grader.__file__)"],
                              cwd=scratch, capture_output=True, text=True).stdout.strip()
    assert imported == str(root / "source/grader/__init__.py"), "the bundle's grader is not the one run"


def test_run_autograder_reports_a_broken_grader_as_zero_not_silence(bundle, scratch):
    stub = copy_files(EXERCISE.folder, scratch / "stub")
    data = AutograderRun(bundle, scratch / "autograder", stub, setup_failed=True).results()
    assert data["score"] == 0 and data["tests"] == []
    assert "could not grade this submission" in data["output"]
    assert "not a verdict on your code" in data["output"]
