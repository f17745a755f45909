"""The GitHub Classroom workflow: it has the shape Classroom generates, its
max-scores add up to the manifest's points, its steps cover every visible
test once, and every step's command, run as written in the released
student repository, passes on the reference solutions and fails on the
stubs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from grader import cli
from grader.course import manifest
from grader.publish import github_classroom, release
from private_tmp import private_folder, scratch  # noqa: F401 (a fixture)

EXERCISES = list(manifest.load())
VENV_BIN = str(Path(sys.executable).parent)
STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
COMMAND = re.compile(r"^python -m pytest exercises/(?P<ex>\w+) -q --socklab-task (?P<group>\w+)$")


@pytest.fixture(scope="module")
def student_repo() -> Path:
    with private_folder() as folder:
        release.build(folder / "stubs")
        yield folder / "stubs"


@pytest.fixture(scope="module")
def workflow(student_repo) -> dict:
    return yaml.safe_load((student_repo / release.WORKFLOW).read_text())


def grader_steps(workflow: dict) -> list[dict]:
    return [s for s in workflow["jobs"][github_classroom.JOB_NAME]["steps"]
            if s.get("uses") == github_classroom.COMMAND_GRADER]


# -- the split of the points ---------------------------------------------------

def test_allocate_splits_exactly_and_in_proportion():
    assert github_classroom.allocate([1, 1, 1], 100) == [34, 33, 33]
    assert github_classroom.allocate([3, 4, 4, 4], 100) == [20, 27, 27, 26]
    assert github_classroom.allocate([5], 100) == [100]
    with pytest.raises(ValueError):
        github_classroom.allocate([0, 0], 100)


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=12),
       st.integers(min_value=1, max_value=500))
def test_allocate_always_adds_up_and_stays_within_one_point(weights, total):
    shares = github_classroom.allocate(weights, total)
    assert sum(shares) == total
    for weight, share in zip(weights, shares):
        exact = Fraction(weight * total, sum(weights))
        assert abs(share - exact) < 1


# -- the workflow's shape --------------------------------------------------------

def test_the_workflow_has_the_shape_classroom_generates(workflow):
    assert workflow["name"] == "Autograding Tests"
    assert workflow["on"] == ["push", "repository_dispatch"], "the 'on' key must be quoted"
    assert workflow["permissions"] == {"checks": "write", "actions": "read", "contents": "read"}
    assert list(workflow["jobs"]) == ["run-autograding-tests"]
    job = workflow["jobs"]["run-autograding-tests"]
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert steps[1]["uses"].startswith("actions/setup-python@")
    assert steps[2]["run"] == "python -m pip install -e ."
    graders = grader_steps(workflow)
    assert steps[3:-1] == graders, "between setup and reporter come only grader steps"
    ids = [s["id"] for s in graders]
    assert len(set(ids)) == len(ids), f"duplicate step ids: {ids}"
    for step in graders:
        assert STEP_ID.match(step["id"]), step["id"]
        inputs = step["with"]
        assert set(inputs) == {"test-name", "setup-command", "command", "timeout", "max-score"}
        assert step["name"] == inputs["test-name"]
        assert COMMAND.match(inputs["command"]), inputs["command"]
        assert isinstance(inputs["timeout"], int) and 1 <= inputs["timeout"] <= 360
        assert isinstance(inputs["max-score"], int) and inputs["max-score"] > 0
    groups = [COMMAND.match(s["with"]["command"]).groups() for s in graders]
    assert len(set(groups)) == len(groups), f"a test group is graded twice: {groups}"
    reporter = steps[-1]
    assert reporter["uses"] == github_classroom.REPORTER
    assert reporter["with"]["runners"].split(",") == ids
    assert reporter["env"] == {f"{i.upper()}_RESULTS": f"${{{{steps.{i}.outputs.result}}}}"
                               for i in ids}


def test_the_max_scores_add_up_to_the_manifest_points(workflow):
    per_exercise: dict[str, int] = {}
    for step in grader_steps(workflow):
        exercise = COMMAND.match(step["with"]["command"])["ex"]
        per_exercise[exercise] = per_exercise.get(exercise, 0) + step["with"]["max-score"]
    assert per_exercise == {ex.id: ex.points for ex in EXERCISES}
    assert sum(per_exercise.values()) == sum(ex.points for ex in EXERCISES)


def test_socklab_classroom_writes_what_the_release_ships(student_repo, scratch, capsys):
    out = scratch / "nested" / "classroom.yml"
    assert cli.main(["classroom", "--output", str(out)]) == 0
    assert out.read_text() == (student_repo / release.WORKFLOW).read_text()
    said = capsys.readouterr().out
    assert f"{len(EXERCISES)} exercises" in said and "visible tests only" in said


def test_socklab_classroom_writes_into_the_course_by_default(scratch, monkeypatch):
    step = github_classroom.Step(id="ex-01-task-1", test_name="01: Task 1", timeout=3, max_score=100,
                          command="python -m pytest exercises/01 -q --socklab-task 1",
                          exercise="01", group="1")
    monkeypatch.setattr(github_classroom, "steps", lambda: [step])   # no collection needed here
    shutil.copyfile(manifest.COURSE_ROOT / "pyproject.toml", scratch / "pyproject.toml")
    monkeypatch.setattr(manifest, "COURSE_ROOT", scratch)
    assert cli.main(["classroom"]) == 0
    written = yaml.safe_load((scratch / ".github/workflows/classroom.yml").read_text())
    assert [s["id"] for s in grader_steps(written)] == ["ex-01-task-1"]


# -- the steps, run ---------------------------------------------------------------

def student_env(tmpdir: Path) -> dict[str, str]:
    """What a step's command sees: the venv's python first on PATH, none of
    this pytest run's variables (xdist's worker id, PYTHONPATH...), and a
    temp folder of its own that goes away after the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["TMPDIR"] = str(tmpdir)
    return env


def run_command(command: str, cwd: Path, tmpdir: Path, timeout: float) -> tuple[int, str]:
    """Run one step's command the way the command grader does (a shell, in
    the repository root); kill its whole process group afterwards."""
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=student_env(tmpdir),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        output += f"\n(killed after {timeout} s)".encode()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, output.decode("utf-8", errors="replace")


def run_all(steps: list[dict], cwd: Path, tmpdir: Path) -> dict[str, tuple[int, str]]:
    """Every step's command, two at a time (this machine has two cores)."""
    def one(step):
        return step["id"], run_command(step["with"]["command"], cwd, tmpdir,
                                       step["with"]["timeout"] * 60)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, steps))


def with_solutions(stubs: Path, dest: Path) -> Path:
    """A copy of the student repository with every exercise solved."""
    shutil.copytree(stubs, dest)
    for ex in EXERCISES:
        for name in ex.files:
            shutil.copyfile(ex.solution_folder / name, dest / "exercises" / ex.id / name)
    return dest


def passed_count(output: str) -> int:
    found = re.search(r"(\d+) passed", output.strip().splitlines()[-1])
    return int(found.group(1)) if found else 0


def test_every_step_passes_on_the_solutions_and_fails_on_the_stubs(student_repo, workflow, scratch):
    steps = grader_steps(workflow)
    solved = with_solutions(student_repo, scratch / "solved")
    tmpdir = scratch / "tmp"
    tmpdir.mkdir()
    for tree in (student_repo, solved):
        code, where = run_command('python -c "import grader; print(grader.__file__)"', tree, tmpdir, 60)
        assert Path(where.strip()).is_relative_to(tree), \
            f"the commands would test {where.strip()}, not the released grader in {tree}"

    started = time.monotonic()
    on_solutions = run_all(steps, solved, tmpdir)
    on_stubs = run_all(steps, student_repo, tmpdir)
    seconds = time.monotonic() - started

    wrong = [f"{step_id} (exit {code}) on the solutions:\n{out[-3000:]}"
             for step_id, (code, out) in on_solutions.items()
             if code != 0 or "passed" not in out or re.search(r"\d+ (failed|error)", out)]
    # Exit 1 is "tests failed"; 2-5 would be pytest failing to run at all.
    wrong += [f"{step_id} (exit {code}) on the stubs:\n{out[-3000:]}"
              for step_id, (code, out) in on_stubs.items()
              if code != 1 or "passed" in out.strip().splitlines()[-1]]
    assert not wrong, "\n\n".join(wrong)

    # Together the steps run every visible test exactly once.
    collected = subprocess.run(["python", "-m", "pytest", "exercises", "--collect-only", "-q"],
                               cwd=solved, env=student_env(tmpdir), capture_output=True, text=True,
                               timeout=120)
    total = int(re.search(r"(\d+) tests? collected", collected.stdout)[1])
    assert sum(passed_count(out) for _, out in on_solutions.values()) == total, \
        f"the steps ran a different number of tests than the {total} visible ones"
    print(f"{2 * len(steps)} step commands in {seconds:.1f} s")
