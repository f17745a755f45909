"""Build the student repository (`socklab release OUT`).

The tree is assembled from an allow-list, never by copying the course and
deleting the secrets: each exercise folder gives its README, its stub(s),
the course-provided files, its visible tests and the local files its README
links to (images); the `grader` package gives only the modules the student
side imports (the pytest plugin, the command line, the student commands,
whatever the visible tests use: see grader.publish.module_closure); then come the
generated files (README, pyproject, .gitignore, the Classroom workflow).
Solutions, hidden suites, mutants, project tests and instructor tools are
never read, so they cannot end up in it."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.course import manifest
from grader.publish import github_classroom, module_closure, student_repo_files
from grader.student import arguments

GRADER_DIR = Path(__file__).resolve().parents[1]   # the package `grader`
COMMANDS_DIR = GRADER_DIR / "commands"

# `socklab` subcommands that make sense in a student's repository. The
# others (grade, release, classroom, nbgrader, ...) need the hidden suites,
# the solutions or an instructor's setup.
STUDENT_COMMANDS = tuple(arguments.STUDENT_COMMANDS)
# Modules every student install loads, whatever the visible tests import.
ROOT_MODULES = ("grader", "grader.plugin", "grader.cli", "grader.commands")
# Package files that are not modules (the runner pins pytest with this one).
DATA_FILES = ("grading/grading.ini",)
WORKFLOW = Path(".github/workflows/classroom.yml")

# Markdown links and images: [text](target) / ![alt](target)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


class ReleaseError(Exception):
    """The release cannot be built as asked (an occupied output folder, or
    a student module that would pull in the hidden suites)."""


@dataclass
class Plan:
    """What the student repository holds: relative path -> the course file
    to copy (a Path) or the generated text (a str)."""

    files: dict[Path, Path | str] = field(default_factory=dict)
    left_out: list[Path] = field(default_factory=list)   # unexpected course files skipped
    commands: list[str] = field(default_factory=list)    # student commands shipped

    def add(self, rel: Path | str, source: Path | str) -> None:
        rel = Path(rel)
        if rel in self.files:
            raise ReleaseError(f"{rel} would be written twice")
        self.files[rel] = source


def readme_links(folder: Path) -> list[str]:
    """Files of `folder` that its README links to (pictures, data files)."""
    readme = folder / "README.md"
    if not readme.is_file():
        return []
    names = []
    for target in _LINK.findall(readme.read_text(encoding="utf-8")):
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            continue
        path = (folder / target.split("#")[0]).resolve()
        if path.is_file() and path.parent == folder.resolve():
            names.append(path.name)
    return names


def exercise_files(exercise: manifest.Exercise) -> tuple[list[str], list[str]]:
    """The names in `exercise`'s folder that ship, and the other names there
    that do not (caches and dotfiles aside), for the maintainer to see."""
    folder = exercise.folder
    wanted = {"README.md", *exercise.files,
              *(name for name in exercise.provided if "/" not in name),
              *(path.name for path in exercise.visible_tests()),
              *readme_links(folder)}
    missing = sorted(name for name in wanted if not (folder / name).is_file())
    if missing:
        raise ReleaseError(f"exercises/{exercise.id} has no {', '.join(missing)}")
    others = sorted(p.name for p in folder.iterdir()
                    if p.name not in wanted and p.name != "__pycache__"
                    and not p.name.startswith("."))
    return sorted(wanted), others


def student_commands() -> list[str]:
    """The student commands that exist in this course's grader."""
    return [name for name in STUDENT_COMMANDS if (COMMANDS_DIR / f"{name}.py").is_file()]


def grader_files(exercises: list[manifest.Exercise], commands: list[str]) -> list[Path]:
    """The files of the `grader` package the student side needs."""
    roots = [*ROOT_MODULES, *(f"grader.commands.{name}" for name in commands)]
    tests = [path for exercise in exercises for path in exercise.visible_tests()]
    modules = module_closure.closure(GRADER_DIR, roots, tests)
    secret = [m for m in modules if m.is_relative_to(manifest.HIDDEN_DIR)]
    if secret:
        raise ReleaseError("a student-side module imports the hidden suites: "
                           + ", ".join(str(m.relative_to(GRADER_DIR)) for m in secret))
    return sorted(modules) + [GRADER_DIR / name for name in DATA_FILES]


def plan() -> Plan:
    """Decide every file of the student repository."""
    exercises = list(manifest.load())
    result = Plan(commands=student_commands())
    for exercise in exercises:
        shipped, others = exercise_files(exercise)
        for name in shipped:
            result.add(Path("exercises", exercise.id, name), exercise.folder / name)
        result.left_out += [Path("exercises", exercise.id, name) for name in others]
    result.add("exercises/manifest.toml", manifest.MANIFEST_PATH)
    for path in grader_files(exercises, result.commands):
        result.add(Path("grader") / path.relative_to(GRADER_DIR), path)
    result.add("README.md", student_repo_files.readme(exercises, result.commands))
    result.add("pyproject.toml", student_repo_files.pyproject(manifest.COURSE_ROOT / "pyproject.toml"))
    result.add(".gitignore", student_repo_files.gitignore())
    result.add(WORKFLOW, github_classroom.render(github_classroom.steps(exercises)))
    return result


def check_output(out: Path) -> None:
    """`out` must be absent or an empty folder: a release never overwrites."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"{out} already exists and is not an empty folder; "
                           "choose a new folder (a release never overwrites files)")


def write(result: Plan, out: Path) -> None:
    """Write the planned tree to `out` (absent, or an empty folder). The
    tree is built beside it and moved into place at the end, so a failed
    release leaves nothing behind."""
    out = Path(out).resolve()
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for rel, source in sorted(result.files.items()):
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, Path):
                shutil.copyfile(source, dest)
            else:
                dest.write_text(source, encoding="utf-8")
        os.replace(staging, out)  # an empty `out` is replaced as well
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build(out: Path) -> Plan:
    """Plan the student repository and write it to `out`."""
    check_output(out)   # before the planning's few seconds
    result = plan()
    write(result, out)
    return result
