"""The servers the bench can measure, and how to get each ready to run.

The Python servers are the programs of the exercises whose manifest entry
has a `bench` table (how to run them, written there once), taken from a
submission (solutions/ by default) the way the grader takes them: only the
files the manifest declares, copied into a fresh folder, plus the course's
own provided files. They are spawned, never imported. The C baseline is built
from grader/bench/c/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader.bench import baseline
from grader.course import manifest, submission
from grader.harness.program import python_argv


@dataclass(frozen=True)
class ServerKind:
    name: str                               # what --servers calls it
    exercise: str | None                    # None: the C baseline
    args: Callable[[int, int], list]        # (port, most clients) -> arguments
    ready: str                              # regex of its ready line
    protocol: str                           # "chat" or "c10k" (see protocols.py)

    @property
    def label(self) -> str:
        return f"{self.exercise} ({self.name})" if self.exercise else "C baseline (epoll)"

    @property
    def script(self) -> str:
        """The exercise's program, as the manifest names it."""
        return manifest.get(self.exercise).files[0] if self.exercise else "chat_epoll"


def _arguments(template: list[str]) -> Callable[[int, int], list]:
    """(port, most clients) -> the arguments, from the manifest's template."""
    def arguments(port: int, most: int) -> list:
        values = {"{port}": port, "{clients}": most}
        return [values.get(word, word) for word in template]
    return arguments


def _exercise_servers() -> list[ServerKind]:
    """The servers of the exercises whose manifest entry has a `bench` table."""
    return [ServerKind(spec["server"], exercise.id, _arguments(spec["args"]), spec["ready"],
                       spec["protocol"])
            for exercise in manifest.load() if (spec := exercise.extra.get("bench"))]


C_BASELINE = ServerKind("c", None, lambda port, most: [port], r"started the main epoll loop\s*$", "chat")
KINDS = {kind.name: kind for kind in (*_exercise_servers(), C_BASELINE)}


def prepare(kind: ServerKind, root: Path, folder: Path) -> tuple[Callable[..., list[str]] | None, str]:
    """Put what `kind` needs to run into the empty `folder`. Returns
    (argv(*args) -> the command line, "") or (None, why it cannot run)."""
    if kind.exercise is None:
        program, why = baseline.build(folder)
        if program is None:
            return None, why
        return (lambda *args: [str(program), *map(str, args)]), ""
    exercise = manifest.get(kind.exercise)
    if not exercise.supported_here():
        return None, f"{exercise.id} needs {' or '.join(exercise.platforms)}: skipped"
    snap = submission.snapshot(submission.locate(root, exercise), exercise, folder)
    if not snap.complete:
        return None, f"{exercise.id} is skipped: " + "; ".join(snap.problems)
    script = folder / kind.script
    return (lambda *args: python_argv(script, *args)), ""
