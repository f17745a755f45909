"""Which modules of the `grader` package a given set of entry points needs.

The student repository ships the harness the visible tests use, and
nothing more: starting from a few entry points (the pytest plugin, the
command line, the student commands, whatever the visible tests import) we
follow every import of a `grader` module, read with `ast` (so imports
inside functions count too, and nothing is executed). A string such as
"grader.plugin" (handed to `pytest -p` or `python -m`) counts as an import,
since that is how the runner loads the plugin in a child process."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "grader"
_MODULE_NAME = re.compile(rf"^{PACKAGE}(\.[A-Za-z_]\w*)+$")


def module_path(package_dir: Path, name: str) -> Path | None:
    """The file of module `name` ('grader.x.y') below `package_dir` (the
    folder of the package 'grader'), or None when there is none."""
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(package_dir: Path, path: Path) -> str:
    rel = path.relative_to(package_dir).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(current: str, is_package: bool, level: int, module: str | None) -> str:
    """Resolve `from ..module import x` seen in module `current`."""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported_names(source: str, current: str = "", is_package: bool = False) -> set[str]:
    """Every `grader...` module name that `source` imports or names in a
    string; for `from X import y` both X and X.y (y may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = (_absolute(current, is_package, node.level, node.module)
                      if node.level else node.module or "")
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE_NAME.match(node.value):
            names.add(node.value)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def closure(package_dir: Path, roots: list[str], extra_sources: list[Path] = ()) -> set[Path]:
    """The files of every module reachable from `roots` (module names) and
    from the imports of `extra_sources` (files outside the package, such as
    the visible tests), plus the __init__.py of each package on the way."""
    package_dir = Path(package_dir)
    pending = list(roots)
    for source in extra_sources:
        pending += imported_names(Path(source).read_text(encoding="utf-8"))
    found: set[Path] = set()
    while pending:
        name = pending.pop()
        path = module_path(package_dir, name)
        if path is None or path in found:
            continue  # a name imported from a module (a function), or done
        found.add(path)
        # every enclosing package's __init__ runs on import too
        parent = name.rpartition(".")[0]
        if parent:
            pending.append(parent)
        current = _module_name(package_dir, path)
        pending += imported_names(path.read_text(encoding="utf-8"), current,
                                  is_package=path.name == "__init__.py")
    return found
