"""What may never reach a student's tree, and a scan of a tree that finds it
by content, not only by name (for tests/test_release.py).

Secret content: the reference solutions, the hidden suites, the shared
test classes only they use (grader/testkit/suites), and the project's tests with
the mutants and adversarial cases. Instructor-only files: the instructor
docs, CI, the Makefile, the bench, the helpers' notes and the grader's
instructor tools. "Public" content is what the course shows students
anyway (exercise folders, the student-side harness, templates, the course
README and pyproject); a secret line or function that also stands there
is no leak.

A tree leaks when a file of it
- equals a secret or instructor-only file (whatever its name), or
- holds a function or class (compared as syntax trees) of a secret file
  that no public file has, such as a solution's body or a hidden test, or
- holds a line (20+ characters, spaces normalised) of a secret file that
  no public file has, such as a line of a solution or of a mutant,
or when one of its paths names a secret folder or an instructor module."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from grader.course import manifest
from grader.publish import release

ROOT = manifest.COURSE_ROOT
SECRET = ["solutions", "grader/hidden", "grader/testkit/suites", "tests"]
# every `socklab` command but the student ones (grade, release, nbgrader...)
INSTRUCTOR_COMMANDS = sorted(
    p.stem for p in (ROOT / "grader" / "commands").glob("*.py")
    if p.stem not in ("__init__", *release.STUDENT_COMMANDS))
INSTRUCTOR = ["docs", ".ci", ".helpers", "grading-costs", "Makefile", "grader/publish", "grader/bench",
              "grader/grading/grade_class.py",
              *(f"grader/commands/{name}.py" for name in INSTRUCTOR_COMMANDS)]
PUBLIC = ["exercises", "grader", "README.md", "pyproject.toml"]
SECRET_NAMES = {"solutions", "hidden", "suites", "mutants", "adversarial", "tests",
                ".helpers", ".ci", "docs", "bench", "grading-costs", "templates"}
MIN_LINE = 20
_SKIP = {"__pycache__", ".pytest_cache", ".hypothesis"}


@dataclass(frozen=True)
class Leak:
    path: str       # in the scanned tree
    source: str     # the course file it came from
    how: str

    def __str__(self) -> str:
        return f"{self.path}: {self.how} of {self.source}"


def _files(base: Path, entries: list[str]) -> list[Path]:
    found = []
    for entry in entries:
        path = base / entry
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file()
                      and not _SKIP & set(p.relative_to(base).parts)]
    return sorted(set(found))


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _norm_lines(text: str) -> set[str]:
    return {" ".join(line.split()) for line in text.splitlines()}


def _normal_form(data: bytes) -> str:
    """A file's content with line endings and trailing spaces ignored."""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


def _digest(data: bytes) -> str:
    return hashlib.sha256(_normal_form(data).encode()).hexdigest()


def _defs(text: str) -> dict[str, str]:
    """Every function and class of a Python source: its syntax tree dumped
    (name, arguments, body, docstring; no comments, positions or
    decorators, so a copy survives reformatting) -> its name."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            decorators, node.decorator_list = node.decorator_list, []
            found[ast.dump(node)] = node.name
            node.decorator_list = decorators
    return found


class Secrets:
    """Fingerprints of every secret and instructor-only file of the course."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        secret = set(_files(root, SECRET))
        instructor = set(_files(root, INSTRUCTOR)) - secret
        public = [p for p in _files(root, PUBLIC) if p not in secret | instructor]
        public_lines: set[str] = set()
        public_defs: set[str] = set()
        public_digests: set[str] = set()
        for path in public:
            public_digests.add(_digest(path.read_bytes()))
            text = _text(path)
            if text is not None:
                public_lines |= _norm_lines(text)
                if path.suffix == ".py":
                    public_defs |= set(_defs(text))
        self.digests: dict[str, str] = {}
        self.lines: dict[str, str] = {}
        self.defs: dict[str, tuple[str, str]] = {}
        for path in sorted(secret | instructor):
            name = str(path.relative_to(root))
            data = path.read_bytes()
            if _normal_form(data) and _digest(data) not in public_digests:
                self.digests.setdefault(_digest(data), name)
            if path not in secret:
                continue
            text = _text(path)
            if text is None:
                continue
            for line in _norm_lines(text) - public_lines:
                if len(line) >= MIN_LINE:
                    self.lines.setdefault(line, name)
            if path.suffix == ".py":
                for dump, def_name in _defs(text).items():
                    if dump not in public_defs:
                        self.defs.setdefault(dump, (def_name, name))
        self.instructor_paths = {str(p.relative_to(root)) for p in instructor}

    def scan(self, tree: Path) -> list[Leak]:
        """Every leak found in the folder `tree`."""
        leaks: list[Leak] = []
        for path in _files(tree, ["."]):
            rel = str(path.relative_to(tree))
            parts = set(Path(rel).parts)
            if parts & SECRET_NAMES or rel in self.instructor_paths:
                leaks.append(Leak(rel, rel, "the path names a secret or instructor-only file"))
            data = path.read_bytes()
            source = self.digests.get(_digest(data))
            if source:
                leaks.append(Leak(rel, source, "a copy"))
                continue
            text = _text(path)
            if text is None:
                continue
            if path.suffix == ".py":
                for dump in _defs(text):
                    if dump in self.defs:
                        def_name, source = self.defs[dump]
                        leaks.append(Leak(rel, source, f"`{def_name}`"))
            for line in sorted(_norm_lines(text)):
                if line in self.lines:
                    leaks.append(Leak(rel, self.lines[line], f"the line {line[:60]!r}"))
        return leaks


def stats(secrets: Secrets) -> str:
    return (f"{len(secrets.digests)} files, {len(secrets.defs)} functions/classes, "
            f"{len(secrets.lines)} lines")

