"""`socklab release`: the student repository holds no solution, hidden test,
mutant or instructor-only file (compared by content), it is complete, and
it installs on its own: in a fresh virtual environment, `pip install -e .`
then `pytest exercises/01_tcp_server` fails on the stub with the messages a
student is meant to read."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grader import cli
from grader.course import manifest
from grader.publish import module_closure, release, student_repo_files
from private_tmp import private_folder, scratch  # noqa: F401 (a fixture)
from release_leaks import INSTRUCTOR_COMMANDS, Secrets, stats

EXERCISES = list(manifest.load())


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a student's shell: none of this pytest run's
    variables, nothing that points Python at the course's own tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def released() -> tuple[Path, release.Plan]:
    with private_folder() as folder:
        out = folder / "student-repo"
        yield out, release.build(out)


@pytest.fixture(scope="module")
def secrets() -> Secrets:
    return Secrets()


# -- nothing secret ------------------------------------------------------------

def test_the_release_leaks_nothing(released, secrets):
    tree, _ = released
    leaks = secrets.scan(tree)
    assert not leaks, "the student repository holds secret or instructor-only content:\n" + \
        "\n".join(map(str, leaks))
    # the scan had something to look for
    assert len(secrets.digests) > 50 and len(secrets.defs) > 100 and len(secrets.lines) > 1000, \
        stats(secrets)


def _solution_function(exercise: manifest.Exercise) -> tuple[str, str, str]:
    """(file, name, source) of a function the student writes: one whose
    solution differs from the stub's."""
    for name in exercise.files:
        stub = ast.parse((exercise.folder / name).read_text())
        text = (exercise.solution_folder / name).read_text()
        stub_defs = {n.name: ast.dump(n) for n in ast.walk(stub) if isinstance(n, ast.FunctionDef)}
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and stub_defs.get(node.name) not in (None, ast.dump(node)):
                return name, node.name, ast.get_source_segment(text, node)
    raise AssertionError(f"{exercise.id}: no function differs between stub and solution")


def _plant_solution_file(tree: Path) -> str:
    ex = manifest.get("01_tcp_server")
    shutil.copyfile(ex.solution_folder / "tcp_server.py", tree / "exercises" / ex.id / "backup.py")
    return "solutions/01_tcp_server/tcp_server.py"


def _plant_solution_function(tree: Path) -> str:
    """The stub with one TODO function replaced by the solution's."""
    ex = manifest.get("03_poll")
    name, function, source = _solution_function(ex)
    stub = tree / "exercises" / ex.id / name
    text = stub.read_text()
    node = next(n for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.FunctionDef) and n.name == function)
    stub.write_text(text.replace(ast.get_source_segment(text, node), source))
    return f"solutions/{ex.id}/{name}"


def _plant_hidden_suite(tree: Path) -> str:
    hidden = manifest.get("08_threads").hidden_tests()[0]
    shutil.copyfile(hidden, tree / "grader" / "more_checks.py")
    return str(hidden.relative_to(manifest.COURSE_ROOT))


def _plant_hidden_test_function(tree: Path) -> str:
    hidden = manifest.get("01_tcp_server").hidden_tests()[0]
    text = hidden.read_text()
    test = next(n for n in ast.parse(text).body
                if isinstance(n, ast.FunctionDef) and n.name.startswith("test_"))
    visible = tree / "exercises" / "01_tcp_server" / "test_tcp_server.py"
    visible.write_text(visible.read_text() + "\n\n" + ast.get_source_segment(text, test) + "\n")
    return str(hidden.relative_to(manifest.COURSE_ROOT))


def _plant_mutant(tree: Path) -> str:
    mutant = sorted((manifest.COURSE_ROOT / "tests" / "mutants" / "02_tcp_client").glob("*/mutant.toml"))[0]
    change = tomllib.loads(mutant.read_text())["change"][0]
    readme = tree / "exercises" / "02_tcp_client" / "README.md"
    readme.write_text(readme.read_text() + "\n```python\n" + change["new"] + "\n```\n")
    return "tests/mutants/02_tcp_client"


def _plant_instructor_module(tree: Path) -> str:
    shutil.copyfile(manifest.COURSE_ROOT / "grader" / "publish" / "release.py", tree / "grader" / "tools.py")
    return "grader/publish/release.py"


def _plant_solutions_folder(tree: Path) -> str:
    (tree / "solutions").mkdir()
    (tree / "solutions" / "notes.txt").write_text("nothing to see\n")
    return "solutions/notes.txt"


# Each plant, and how the scan must recognise it: a copy of a whole file,
# a function (its syntax tree), a line, or a path.
PLANTS = [(_plant_solution_file, "a copy"), (_plant_solution_function, "`"),
          (_plant_hidden_suite, "a copy"), (_plant_hidden_test_function, "`test_"),
          (_plant_mutant, "the line"), (_plant_instructor_module, "a copy"),
          (_plant_solutions_folder, "the path")]


@pytest.mark.parametrize("plant, how", PLANTS,
                         ids=[p.__name__.removeprefix("_plant_") for p, _ in PLANTS])
def test_the_leak_scan_catches_a_planted_secret(released, secrets, scratch, plant, how):
    """The scan bites: a secret put under another name, or pasted into a
    file that ships, is found, and by the mechanism meant for it."""
    tree = scratch / "copy"
    shutil.copytree(released[0], tree)
    source = plant(tree)
    leaks = secrets.scan(tree)
    assert any(leak.source.startswith(source) and leak.how.startswith(how) for leak in leaks), (
        f"planted content of {source} was not found as {how!r}; the scan reported: "
        + "\n".join(map(str, leaks)))


# -- complete and as designed --------------------------------------------------

def test_every_exercise_ships_its_stub_readme_and_visible_tests_unchanged(released):
    tree, plan = released
    for ex in EXERCISES:
        names = ["README.md", *ex.files, *(p.name for p in ex.visible_tests())]
        for name in names:
            shipped = tree / "exercises" / ex.id / name
            assert shipped.is_file(), f"{ex.id}/{name} is missing from the release"
            assert shipped.read_bytes() == (ex.folder / name).read_bytes(), \
                f"{ex.id}/{name} differs from the course's copy"
    assert (tree / "exercises" / "manifest.toml").read_bytes() == manifest.MANIFEST_PATH.read_bytes()
    assert plan.left_out == [], f"exercise files nobody decided about: {plan.left_out}"


def test_the_grader_ships_without_hidden_suites_or_instructor_tools(released):
    tree, plan = released
    grader = tree / "grader"
    assert (grader / "plugin.py").is_file() and (grader / "cli.py").is_file()
    assert not (grader / "hidden").exists() and not (grader / "testkit" / "suites").exists()
    assert {"grade", "release", "classroom"} <= set(INSTRUCTOR_COMMANDS)
    for name in INSTRUCTOR_COMMANDS:
        assert not (grader / "commands" / f"{name}.py").exists(), f"instructor command {name} shipped"
    for name in plan.commands:
        assert (grader / "commands" / f"{name}.py").is_file()
    assert set(plan.commands) == set(release.student_commands())
    top = sorted(p.name for p in tree.iterdir())
    assert top == [".github", ".gitignore", "README.md", "exercises", "grader", "pyproject.toml"], top


def test_the_student_pyproject_has_no_extras_and_no_hidden_data(released):
    tree, _ = released
    student = tomllib.loads((tree / "pyproject.toml").read_text())
    course = tomllib.loads((manifest.COURSE_ROOT / "pyproject.toml").read_text())
    assert "optional-dependencies" not in student["project"]
    assert student["project"]["dependencies"] == course["project"]["dependencies"]
    assert student["project"]["scripts"] == course["project"]["scripts"]
    assert student["project"]["entry-points"] == course["project"]["entry-points"]
    assert student["tool"]["setuptools"]["package-data"] == {"grader": ["grading/grading.ini"]}
    assert student["tool"]["pytest"]["ini_options"]["testpaths"] == ["exercises"]
    # the small TOML writer wrote exactly the intended data
    assert student == student_repo_files.pyproject_data(manifest.COURSE_ROOT / "pyproject.toml")


def test_files_a_readme_links_to_ship_and_nothing_outside_its_folder(scratch):
    folder = scratch / "04_epoll"
    folder.mkdir()
    (folder / "README.md").write_text(
        "![the plot](bench.png) [data](<numbers.csv> \"title\") [up](../secret.py)\n"
        "[web](https://example.org/a.png) [here](#tasks) [gone](missing.png)\n")
    for name in ("04_epoll/bench.png", "04_epoll/numbers.csv", "secret.py"):
        (scratch / name).write_text("x")
    assert sorted(release.readme_links(folder)) == ["bench.png", "numbers.csv"]


def test_the_module_closure_follows_every_kind_of_import(scratch):
    package = scratch / "grader"
    files = {
        "__init__.py": "",
        "entry.py": "from . import near\nfrom .sub.deep import thing\n",
        "near.py": "def later():\n    from grader import lazy\n",
        "lazy.py": "COMMAND = ['-p', 'grader.by_name']\n",
        "by_name.py": "",
        "sub/__init__.py": "",
        "sub/deep.py": "from .. import up\nthing = 1\n",
        "up.py": "",
        "unused.py": "import secrets\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found = {str(p.relative_to(package)) for p in module_closure.closure(package, ["grader.entry"])}
    assert found == set(files) - {"unused.py"}, found


def test_the_student_readme_lists_every_exercise_and_says_classroom_is_visible_only(released):
    text = (released[0] / "README.md").read_text()
    for ex in EXERCISES:
        assert f"| `{ex.id}` | {ex.title} |" in text, f"{ex.id} is not in the student README"
    assert "visible tests only" in text and "hidden tests" in text
    for name in release.student_commands():
        assert f"`socklab {name}" in text, f"the README does not mention socklab {name}"
    assert "$" not in text.replace("${", ""), "a template placeholder was left unfilled"


def test_release_refuses_a_folder_that_is_not_empty(scratch, capsys):
    out = scratch / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert cli.main(["release", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert [p.name for p in scratch.iterdir()] == ["taken"], "a partial tree was left behind"


def test_release_command_writes_into_an_empty_folder(released, scratch, capsys):
    out = scratch / "empty"
    out.mkdir()
    assert cli.main(["release", str(out)]) == 0
    said = capsys.readouterr().out
    assert "wrote the student repository" in said
    assert said.count("left out") == len(released[1].left_out)   # each one named
    assert (out / release.WORKFLOW).is_file() and (out / "exercises" / "manifest.toml").is_file()
    assert [p.name for p in scratch.iterdir()] == ["empty"], "the staging folder was left behind"


# -- it installs and runs on its own ------------------------------------------

def test_the_release_installs_in_a_fresh_venv_and_its_tests_fail_on_the_stub(released, scratch):
    tree, plan = scratch / "student-repo", released[1]
    shutil.copytree(released[0], tree)     # pip writes its egg-info into the tree
    venv = scratch / "venv"
    env = clean_env(TMPDIR=str(scratch))   # the tests' temp files go away with it
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", "."],
                             cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, f"pip install -e . failed:\n{install.stdout}\n{install.stderr}"

    where = subprocess.run([str(python), "-c", "import grader; print(grader.__file__)"],
                           cwd=scratch, env=env, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(tree), \
        f"the fresh venv imports grader from {where.stdout!r}{where.stderr}, not from the release"

    run = subprocess.run([str(venv / "bin" / "pytest"), "exercises/01_tcp_server"],
                         cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 1, f"expected failing tests (exit 1), got {run.returncode}:\n{output}"
    summary = output.strip().splitlines()[-1]
    assert "passed" not in summary and ("failed" in summary or "error" in summary), summary
    assert "collected 4 items" in output, output[:2000]
    for expected in ("What the test did:", "What it expected:", "What happened:",
                     "NotImplementedError: TODO(task 1): open the listening socket",
                     "Read more: exercises/01_tcp_server/README.md",
                     "replay with --socklab-seed"):
        assert expected in output, f"the student message lacks {expected!r}:\n{output[:3000]}"

    commands = subprocess.run([str(venv / "bin" / "socklab"), "--help"], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=60)
    assert commands.returncode == 0, commands.stderr
    for name in plan.commands:
        assert name in commands.stdout, f"socklab {name} is missing:\n{commands.stdout}"
    offered = re.search(r"\{([\w,-]+)\}", commands.stdout)[1].split(",")
    assert sorted(offered) == sorted(plan.commands), f"the student's socklab offers {offered}"
