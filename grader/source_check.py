"""Checks on a student's source text, for exercises whose lesson is *how*
the program waits (poll, epoll, non-blocking). Read with `ast`, never run."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Finding:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module imported and every dotted name used, as 'mod' / 'mod.attr'."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            for alias in node.names:
                found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "__import__" and node.args \
                and isinstance(node.args[0], ast.Constant):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def forbidden_uses(source: str, forbidden: dict[str, str]) -> list[Finding]:
    """Uses of any name in `forbidden` (a module, or 'module.attr'; a module
    also forbids its submodules). The dict's values say why, for the message."""
    tree = ast.parse(source)
    findings = []
    for line, used in _uses(tree):
        for name, why in forbidden.items():
            if used == name or used.startswith(name + "."):
                findings.append(Finding(line, f"uses {used} ({why})"))
                break
    return findings


def uses_any(source: str, names: set[str]) -> bool:
    return any(used in names for _, used in _uses(ast.parse(source)))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
