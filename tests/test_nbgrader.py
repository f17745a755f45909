"""`socklab nbgrader`: the course it writes, the cell function it relies on,
and the whole nbgrader round trip giving the same grades as `socklab grade`."""

from __future__ import annotations

import ast
import csv
import html
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from grader.cli import main as socklab
from grader.course import manifest
from grader.grading import grade_exercise, task_groups
from grader.publish.nbgrader import autograde_cell, build_course
from grader.publish.nbgrader.autograde_guard import DropUngradedCode
from grader.results import ExerciseResult, TestResult
from support import MUTANTS_DIR, build_submission, read_mutant

# The round trip grades three students with nbgrader and again natively, so
# it uses the exercise whose suite runs fastest (about 5 s a run).
EXERCISE = manifest.get("00_basics")
MUTANT = "xor_instead_of_power"     # loses the same 5 points whatever the seed
SEED = "424242"                     # the same random messages in both gradings
NBGRADER = Path(sys.executable).with_name("nbgrader")
STEP_TIMEOUT = 300                  # seconds for one nbgrader command
# About 40 s on two idle cores; a busy machine can more than triple it, and
# the project-wide 120 s limit is meant for single gradings.
ROUND_TRIP_TIMEOUT = 600


# -- the generated course -------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    build_course.generate(root, [EXERCISE])
    return root


def test_config_keeps_submitted_files_and_uses_the_course_kernel(course, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", "")  # the config sets it; undone after the test
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    assert config.Autograde.exclude_overwriting == {e.id: list(e.files) for e in manifest.load()}, (
        "every exercise's submitted files must be kept, or autograde grades the stub")
    assert config.OverwriteCells.add_missing_cells is True
    assert DropUngradedCode in config.Autograde.sanitize_preprocessors
    assert config.Execute.timeout > grade_exercise.EXERCISE_TIMEOUT
    assert config.Execute.kernel_name == build_course.KERNEL_NAME
    assert set(config.CourseDirectory.include) >= {"*.ipynb", "*.py", "*.md"}
    kernel_dir = Path(os.environ["JUPYTER_PATH"].split(os.pathsep)[0]) / "kernels" / config.Execute.kernel_name
    spec = json.loads((kernel_dir / "kernel.json").read_text())
    assert spec["argv"][:4] == ["python", "-P", "-m", "ipykernel_launcher"], spec["argv"]


def test_notebook_has_one_test_cell_per_group_with_its_points(course):
    nb = nbformat.read(course / "source" / EXERCISE.id / f"{EXERCISE.id}.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    expected = task_groups.collect(EXERCISE)
    assert len(cells) == len(expected), f"{len(cells)} test cells for {len(expected)} groups"
    for cell, group in zip(cells, expected):
        meta = cell.metadata.nbgrader
        assert meta["points"] == group.points and meta["locked"] and not meta["solution"]
        hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
        assert f"grade_group({EXERCISE.id!r}, {group.key!r}, points={group.points:g})" in hidden
    assert sum(c.metadata.nbgrader["points"] for c in cells) == EXERCISE.points
    assert all(c.cell_type == "markdown" for c in nb.cells if c not in cells)


def test_source_holds_the_stubs_and_readme_never_a_solution(course):
    folder = course / "source" / EXERCISE.id
    for name in EXERCISE.files:
        assert (folder / name).read_bytes() == (EXERCISE.folder / name).read_bytes()
        assert (folder / name).read_bytes() != (EXERCISE.solution_folder / name).read_bytes()
    assert (folder / "README.md").read_bytes() == (EXERCISE.folder / "README.md").read_bytes()


def test_command_refuses_an_unknown_exercise(tmp_path, capsys):
    assert socklab(["nbgrader", str(tmp_path / "out"), "--exercise", "99_nope"]) == 2
    assert "99_nope" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- grade_group, with a stand-in for the grading run -----------------------------

def _fake_run(calls: list):
    def stand_in(exercise, folder, **kwargs):
        calls.append(Path(folder))
        return ExerciseResult(exercise.id, 4, 10, [
            TestResult("test_one", 4, 4, "passed", task=1),
            TestResult("test_two", 0, 3, "failed", "What happened:\n    it hung", task=1),
            TestResult("test_rule", 0, 3, "failed", "What happened:\n    a traceback"),
        ])
    return stand_in


def test_grade_group_grades_once_and_reports_each_group(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(autograde_cell, "_runs", {})
    monkeypatch.setattr(grade_exercise, "grade_exercise", _fake_run(calls))
    (tmp_path / "basics.py").write_text("# the student's work\n")
    assert autograde_cell.grade_group(EXERCISE.id, "1", 7, folder=tmp_path) == 4.0
    assert autograde_cell.grade_group(EXERCISE.id, "general", 3, folder=tmp_path) == 0.0
    assert len(calls) == 1, "one grading run serves every cell of a notebook"
    out, err = capsys.readouterr()
    assert err == "", "nbgrader scores a cell with anything on stderr 0"
    assert "Task 1 of 00_basics: 4 of 7 points" in out and "test_two" in out and "it hung" in out
    assert "a traceback" in out
    os.utime(tmp_path / "basics.py", ns=(0, 0))  # a changed file is graded again
    autograde_cell.grade_group(EXERCISE.id, "1", 7, folder=tmp_path)
    assert len(calls) == 2


def test_grade_group_refuses_points_the_suite_does_not_give(tmp_path, monkeypatch):
    monkeypatch.setattr(autograde_cell, "_runs", {})
    monkeypatch.setattr(grade_exercise, "grade_exercise", _fake_run([]))
    (tmp_path / "basics.py").write_text("")
    with pytest.raises(autograde_cell.CourseOutOfDate, match="regenerate"):
        autograde_cell.grade_group(EXERCISE.id, "1", 25, folder=tmp_path)


def test_grade_group_without_files_scores_0_and_says_why(tmp_path, capsys):
    assert autograde_cell.grade_group(EXERCISE.id, "1", 25, folder=tmp_path) == 0.0
    out, err = capsys.readouterr()
    assert "basics.py" in out and "0 of 25 points" in out and err == ""


# -- the round trip ------------------------------------------------------------

CHEAT_CELL = """\
import grader.publish.nbgrader.autograde_cell as cell
cell.grade_group = lambda exercise_id, group, points, folder=None: float(points)
"""
SHADOW_MODULE = "def grade_group(exercise_id, group, points, folder=None):\n    return float(points)\n"


def _environment(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, SOCKLAB_SEED=SEED)
    # nbgrader runs `alembic` by name when it creates a gradebook.
    env["PATH"] = os.pathsep.join([str(NBGRADER.parent), env.get("PATH", "")])
    for var, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")]:
        (tmp / "jupyter-home" / name).mkdir(parents=True)
        env[var] = str(tmp / "jupyter-home" / name)  # nothing read from or left in $HOME
    return env


def _run(args: list, cwd: Path, env: dict) -> str:
    try:
        done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(map(str, args))}` did not finish within {STEP_TIMEOUT} s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, (f"`{' '.join(map(str, args))}` exited {done.returncode}; "
                                  f"its output ended with:\n{output[-3000:]}")
    return output


def _hidden_test_names() -> set[str]:
    names = set()
    for path in EXERCISE.hidden_tests():
        names |= {node.name for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    return names


def _students(tmp: Path) -> dict[str, Path]:
    """Each student's files, as a submission folder `socklab grade` reads."""
    solution = build_submission(tmp / "native" / "solution", EXERCISE)
    mutant = build_submission(tmp / "native" / "mutant", EXERCISE,
                              read_mutant(MUTANTS_DIR / EXERCISE.id / MUTANT))
    stub = tmp / "native" / "stub"
    (stub / EXERCISE.id).mkdir(parents=True)
    for name in EXERCISE.files:
        shutil.copyfile(EXERCISE.folder / name, stub / EXERCISE.id / name)
    return {"solution": solution, "stub": stub, "mutant": mutant}


def _submit(course: Path, student: str, files: Path, cheat: bool) -> None:
    """What `nbgrader collect` would put in submitted/: the released
    notebook and the student's .py files. A cheat also adds a code cell and
    a package named grader that would each hand out full marks."""
    folder = course / "submitted" / student / EXERCISE.id
    folder.mkdir(parents=True)
    shutil.copytree(files / EXERCISE.id, folder, dirs_exist_ok=True)
    nb = nbformat.read(course / "release" / EXERCISE.id / f"{EXERCISE.id}.ipynb", as_version=4)
    if cheat:
        nb.cells.insert(0, nbformat.v4.new_code_cell(CHEAT_CELL))
        (folder / "grader").mkdir()
        (folder / "grader" / "__init__.py").write_text("")
        (folder / "grader" / "publish" / "nbgrader").mkdir(parents=True)
        (folder / "grader" / "publish" / "nbgrader" / "autograde_cell.py").write_text(SHADOW_MODULE)
    nbformat.write(nb, folder / f"{EXERCISE.id}.ipynb")


@pytest.mark.timeout(ROUND_TRIP_TIMEOUT)
def test_nbgrader_round_trip_gives_the_grades_of_socklab_grade(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCKLAB_SEED", SEED)
    env = _environment(tmp_path)
    course = tmp_path / "course"
    assignment = EXERCISE.id
    _run([sys.executable, "-m", "grader.cli", "nbgrader", course, "--exercise", assignment],
         tmp_path, env)
    students = _students(tmp_path)
    for student in students:
        _run([NBGRADER, "db", "student", "add", student], course, env)
    _run([NBGRADER, "generate_assignment", assignment], course, env)

    # The released notebook: the test cells without their hidden part.
    source_text = (course / "source" / assignment / f"{assignment}.ipynb").read_text()
    released = course / "release" / assignment
    released_text = (released / f"{assignment}.ipynb").read_text()
    assert "grade_group(" in source_text
    for hidden in ("BEGIN HIDDEN TESTS", "grade_group", "notebook_cell", *_hidden_test_names()):
        assert hidden not in released_text, f"the released notebook shows {hidden!r}"
    for name in EXERCISE.files:
        assert (released / name).read_bytes() == (EXERCISE.folder / name).read_bytes()

    for student, files in students.items():
        _submit(course, student, files, cheat=(student == "stub"))
    # socklab grade on the same files, while nbgrader waits on its kernels
    with ThreadPoolExecutor(max_workers=1) as pool:
        grading = pool.submit(lambda: {s: grade_exercise.grade_exercise(EXERCISE, files)
                                       for s, files in students.items()})
        _run([NBGRADER, "autograde", assignment], course, env)
        _run([NBGRADER, "export"], course, env)
        native = grading.result()
    with open(course / "grades.csv", newline="") as f:
        exported = {row["student_id"]: row for row in csv.DictReader(f)
                    if row["assignment"] == assignment}

    assert native["solution"].score == 100 and native["stub"].score == 0
    assert 0 < native["mutant"].score < 100, "the mutant must lose some points, not all"
    for student, result in native.items():
        row = exported[student]
        assert float(row["max_score"]) == result.max_score == EXERCISE.points
        assert float(row["score"]) == result.score, (
            f"{student}: nbgrader gave {row['score']}, socklab grade {result.score:g}"
            + ("; the added code cell or the submitted grader/ package took over grading"
               if student == "stub" else ""))

    # The mutant's feedback names each failed test and shows its message.
    _run([NBGRADER, "generate_feedback", assignment], course, env)
    feedback = course / "feedback" / "mutant" / assignment / f"{assignment}.html"
    text = html.unescape(feedback.read_text())
    failed = [t for t in native["mutant"].tests if t.status == "failed"]
    assert failed
    for test in failed:
        assert test.name in text, f"the feedback does not name {test.name}"
        verdict = test.message.split("Transcript")[0]  # the transcript carries timings
        for line in filter(str.strip, verdict.splitlines()):
            assert line in text, f"the feedback lacks this line of {test.name}'s message: {line!r}"
    assert "def test_" not in text, "the feedback shows hidden test code"
