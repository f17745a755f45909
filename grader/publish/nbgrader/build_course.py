"""Write an nbgrader course that grades the students' .py files.

nbgrader only autogrades notebooks, and socklab students submit .py files.
So each exercise becomes an nbgrader assignment whose folder holds the
stubs, the README and one notebook: the instructions in markdown, then one
autograded test cell per test group (grader/grading/task_groups.py), worth the group's
points. The hidden part of each cell is a single call into the
instructor's installed grader (grader/publish/nbgrader/autograde_cell.py), so no test code
ever reaches a student, not even in generated feedback.

The course also carries its own kernelspec and an nbgrader_config.py that
make autograding deterministic: the kernel is the interpreter that runs
nbgrader (where socklab is installed), started with -P so that nothing in
the submission folder can shadow the grader package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.course import manifest, readme
from grader.grading import grade_exercise, task_groups

COURSE_ID = "socklab"
KERNEL_NAME = "socklab-grader"
# A group never runs longer than `socklab grade` lets a whole exercise run;
# the margin lets grade_group stop a slow run and print why before
# nbgrader's own timeout would cut the cell off with a bare error.
CELL_TIMEOUT = grade_exercise.EXERCISE_TIMEOUT + 60
# nbgrader counts kilobytes; the grader refuses files over 1 MiB anyway.
MAX_FILE_KB = 1024

_KERNELSPEC = {
    # "python" is replaced by the interpreter running nbgrader
    # (jupyter_client, KernelManager.format_kernel_cmd). -P keeps the
    # kernel's working folder, the student's submission, off sys.path.
    "argv": ["python", "-P", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "socklab grader (the Python that runs nbgrader)",
    "language": "python",
}

_CONFIG = '''\
"""nbgrader configuration of the socklab course, written by `socklab nbgrader`.

Run every nbgrader command from this folder (the course root). Regenerate
the course rather than edit this file: `socklab nbgrader {out_hint}`
(with --exercise ID to regenerate only some assignments).
"""

import os
from pathlib import Path

from grader.publish.nbgrader.autograde_guard import sanitize_preprocessors

COURSE_ROOT = Path(__file__).resolve().parent

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

c.CourseDirectory.course_id = {course_id!r}

# Release and collect the notebook with the .py files and the README beside it.
c.CourseDirectory.include = ["*.ipynb", "*.py", "*.md"]
c.CourseDirectory.max_file_size = {max_file_kb}  # kilobytes

# Autograde copies the source folder over the submission: without this, every
# student would be graded on the stub instead of the file they submitted.
c.Autograde.exclude_overwriting = {exclude}

# Test cells a student deleted come back before grading.
c.OverwriteCells.add_missing_cells = True

# Code cells a student added are dropped before grading (grader/publish/nbgrader/autograde_guard.py).
c.Autograde.sanitize_preprocessors = sanitize_preprocessors()

# Each test cell runs a group of network tests in a separate pytest process.
c.Execute.timeout = {cell_timeout}  # seconds per cell

# The course's own kernel (jupyter/kernels/{kernel}): the Python that runs
# nbgrader, which has socklab installed, whatever other kernels exist.
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in (str(COURSE_ROOT / "jupyter"), os.environ.get("JUPYTER_PATH")) if p)
c.Execute.kernel_name = {kernel!r}
'''


def _format_points(points: float) -> int | float:
    return int(points) if float(points).is_integer() else float(points)


def group_heading(exercise: manifest.Exercise, group: task_groups.Group) -> str:
    """What a test group checks, in the README's words."""
    heading = readme.task_heading(exercise, group.task)
    if group.key == "general":
        where = f' (README: "{heading}")' if heading else ""
        return f"General rules: what the program must do whatever the task{where}"
    return heading or group.title


def test_cell(exercise: manifest.Exercise, group: task_groups.Group):
    """The autograded cell of one group: a visible comment, and a hidden
    call that grades the group and leaves the points as its last value."""
    points = _format_points(group.points)
    source = "\n".join([
        f"# {group_heading(exercise, group)}",
        f"# {points} points, {len(group.tests)} tests. The autograder runs them on the",
        "# .py files beside this notebook and prints what each test found. Leave this",
        "# cell as it is: it is restored before grading.",
        "### BEGIN HIDDEN TESTS",
        "from grader.publish.nbgrader.autograde_cell import grade_group",
        f"grade_group({exercise.id!r}, {group.key!r}, points={points})",
        "### END HIDDEN TESTS",
    ])
    grade_id = "general_rules" if group.key == "general" else f"task_{group.key}"
    cell = new_code_cell(source, metadata={"nbgrader": {
        "grade": True, "grade_id": grade_id, "locked": True, "points": points,
        "schema_version": 3, "solution": False, "task": False}})
    cell.id = grade_id
    return cell


def notebook(exercise: manifest.Exercise, test_groups: list[task_groups.Group]):
    """The assignment's one notebook: how it works, the README, the test cells."""
    files = ", ".join(f"`{name}`" for name in exercise.files)
    intro = new_markdown_cell(
        f"# {exercise.id}: {exercise.title}\n\n"
        f"Your work for this exercise goes in {files}, beside this notebook, "
        "not in the notebook itself. Fill in the stub as the instructions below "
        "(the same as `README.md`) say, test it with the visible tests, and submit "
        "the folder: this notebook and the .py files together.\n\n"
        "Each cell at the end is one group of autograder tests, worth the points it "
        "names. When your work is graded, each cell runs its tests on your .py files "
        "and prints what every test did and found. Code you add to this notebook is "
        "not run by the autograder.")
    intro.id = "how-this-works"
    instructions = new_markdown_cell(readme.readme_path(exercise).read_text(encoding="utf-8"))
    instructions.id = "instructions"
    nb = new_notebook(cells=[intro, instructions, *(test_cell(exercise, g) for g in test_groups)])
    nb.metadata.update({
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb


def _provided_source(exercise: manifest.Exercise, name: str) -> Path:
    """A provided support file ("uepoll.py" or another exercise's "04_epoll/uepoll.py")."""
    return manifest.EXERCISES_DIR / name if "/" in name else exercise.folder / name


def write_assignment(source_dir: Path, exercise: manifest.Exercise) -> Path:
    """source/<id>/: the stubs, the provided files, the README and the
    notebook. Only stubs: generate_assignment copies these files verbatim."""
    folder = source_dir / exercise.id
    if folder.exists():
        shutil.rmtree(folder)  # generated; a stale file must not survive
    folder.mkdir(parents=True)
    for name in exercise.files:
        shutil.copyfile(exercise.folder / name, folder / name)
    for name in exercise.provided:
        shutil.copyfile(_provided_source(exercise, name), folder / Path(name).name)
    shutil.copyfile(readme.readme_path(exercise), folder / "README.md")
    nbformat.write(notebook(exercise, task_groups.collect(exercise)), folder / f"{exercise.id}.ipynb")
    return folder


def config_text(out_hint: str) -> str:
    """nbgrader_config.py. It names every exercise of the manifest, so that
    generating some exercises later never drops the others' settings."""
    exclude = json.dumps({e.id: list(e.files) for e in manifest.load()}, indent=4)
    return _CONFIG.format(out_hint=out_hint, course_id=COURSE_ID, max_file_kb=MAX_FILE_KB,
                          exclude=exclude, cell_timeout=CELL_TIMEOUT, kernel=KERNEL_NAME)


def generate(out: Path, exercises: list[manifest.Exercise]) -> list[Path]:
    """Write the course into `out` (created if needed; the rest of an
    existing course root, such as its gradebook and submissions, is left
    alone). Returns the assignment folders written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(config_text(str(out)), encoding="utf-8")
    kernel_dir = out / "jupyter" / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    (kernel_dir / "kernel.json").write_text(json.dumps(_KERNELSPEC, indent=2) + "\n")
    return [write_assignment(out / "source", e) for e in exercises]
