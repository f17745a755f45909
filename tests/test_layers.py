"""Imports run one way between the layers of `grader` (course, harness,
testkit, results, plugin, grading, student, publish and bench, commands,
cli), no command imports another, no package holds an import cycle, and the
suites (hidden and visible) import only testkit, harness and course.

The rules are import-linter contracts: the package's in pyproject.toml, the
suites' in tests/suites.importlinter (the suites are files in folders named
00_basics..., not modules, so the test gathers copies of them into a
package first). Each rule is also shown to fail on a planted import.
import-linter does not see a module imported by a computed name, so a small
check here refuses `importlib.import_module`, `__import__` and loading a
module from a file anywhere in grader/, but for the allow-list below."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course import manifest

ROOT = manifest.COURSE_ROOT
GRADER = ROOT / "grader"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SUITES_CONFIG = ROOT / "tests" / "suites.importlinter"

# Calls that import a module by a computed name, and the places allowed to
# make one: (file below the course root, call) -> why it is safe.
DYNAMIC_IMPORTS = {"importlib.import_module", "import_module", "__import__",
                   "importlib.__import__", "importlib.util.spec_from_file_location",
                   "spec_from_file_location"}
ALLOWED_DYNAMIC_IMPORTS = {
    # The command line registers every module of grader/commands by name, so
    # adding a command edits no shared file; those modules are all in the
    # commands layer, whose imports the contracts check.
    ("grader/cli.py", "importlib.import_module"),
}


def lint_imports(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["COLUMNS"] = "400"   # one import a line, as the assertions read them
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def copy_of_the_package(dest: Path) -> Path:
    """grader/ (its modules, no hidden suites or data) and the contracts, in `dest`."""
    shutil.copytree(GRADER, dest / "grader",
                    ignore=lambda folder, names: [n for n in names if n in ("hidden", "__pycache__")
                                                  or (n.endswith((".ini", ".md")))])
    shutil.copyfile(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def plant(module: Path, line: str) -> None:
    """Add an import at the end of `module`."""
    module.write_text(module.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


# -- the package ----------------------------------------------------------------

def test_grader_keeps_its_import_contracts():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "3 kept" in done.stdout, done.stdout


@pytest.mark.parametrize("module, line, broken", [
    # the harness reaching up into grading
    ("harness/program.py", "from grader.grading import formats", "grader.harness.program -> grader.grading.formats"),
    # publishing the student repository asking a command for its help text
    ("publish/student_repo_files.py", "import grader.commands.status", "grader.publish.student_repo_files -> grader.commands.status"),
    # a command taking a helper from another command
    ("commands/grade_class.py", "from grader.commands.grade import run", "grader.commands.grade_class -> grader.commands.grade"),
    # two modules of one layer importing each other (failure imports visible_text)
    ("harness/visible_text.py", "from grader.harness import failure", "- .visible_text -> .failure"),
])
def test_a_planted_import_breaks_a_contract(tmp_path, module, line, broken):
    copy = copy_of_the_package(tmp_path)
    done = lint_imports(copy)
    assert done.returncode == 0, "the copy keeps the contracts before anything is planted:\n" + done.stdout
    plant(copy / "grader" / module, line)
    done = lint_imports(copy, pythonpath=copy)
    assert done.returncode != 0, f"{line} in {module} went unnoticed:\n{done.stdout}"
    assert "BROKEN" in done.stdout and broken in done.stdout, done.stdout


# -- the suites -------------------------------------------------------------------

def gather_suites(dest: Path) -> Path:
    """Every hidden suite (and support module) and every visible test file,
    copied as modules of a package `socklab_suites` in `dest`."""
    package = dest / "socklab_suites"
    package.mkdir()
    (package / "__init__.py").write_text('"""Copies of the suites, for import-linter."""\n')
    files = [*sorted(manifest.HIDDEN_DIR.rglob("*.py")), *sorted(manifest.EXERCISES_DIR.glob("*/test_*.py"))]
    assert len(files) > 2 * len(manifest.load()), files
    for path in files:
        name = re.sub(r"\W", "_", "s_" + str(path.relative_to(ROOT).with_suffix("")))
        shutil.copyfile(path, package / f"{name}.py")
    return package


def test_the_suites_import_only_testkit_harness_and_course(tmp_path):
    gather_suites(tmp_path)
    done = lint_imports(tmp_path, str(SUITES_CONFIG), pythonpath=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout, done.stdout


def test_a_suite_importing_the_grading_layer_breaks_the_contract(tmp_path):
    package = gather_suites(tmp_path)
    suite = sorted(package.glob("s_grader_hidden_03_poll_*.py"))[0]
    plant(suite, "from grader.grading.formats import table")
    done = lint_imports(tmp_path, str(SUITES_CONFIG), pythonpath=tmp_path)
    assert done.returncode != 0 and f"socklab_suites.{suite.stem} -> grader.grading.formats" in done.stdout, \
        done.stdout


# -- imports by a computed name ---------------------------------------------------

def dynamic_imports(source: str) -> list[tuple[int, str]]:
    """(line, call) of every call in `source` that imports by a computed name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in DYNAMIC_IMPORTS:
                found.append((node.lineno, name))
    return found


def test_no_import_by_a_computed_name_outside_the_allow_list():
    seen, refused = set(), []
    for path in sorted(GRADER.rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for line, call in dynamic_imports(path.read_text(encoding="utf-8")):
            seen.add((where, call))
            if (where, call) not in ALLOWED_DYNAMIC_IMPORTS:
                refused.append(f"{where}:{line}: {call}(...)")
    assert not refused, ("imports import-linter cannot see (import the module plainly, or add "
                         "the call to ALLOWED_DYNAMIC_IMPORTS with the reason):\n" + "\n".join(refused))
    assert seen == ALLOWED_DYNAMIC_IMPORTS, f"an allowed call is gone: {ALLOWED_DYNAMIC_IMPORTS - seen}"


@pytest.mark.parametrize("source", [
    "import importlib\nimportlib.import_module('grader.commands.' + name)\n",
    "from importlib import import_module\nimport_module(name)\n",
    "__import__('grader.grading.formats')\n",
    "import importlib.util\nspec = importlib.util.spec_from_file_location('x', path)\n",
])
def test_the_check_finds_an_import_by_a_computed_name(source):
    assert dynamic_imports(source), source
