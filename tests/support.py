"""Helpers for the project's own tests."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import tomllib
from pathlib import Path

import pytest

from grader.course import manifest
from grader.harness import bubblewrap

MUTANTS_DIR = Path(__file__).parent / "mutants"


def read_mutant(folder: Path) -> dict:
    """A mutant's mutant.toml: description, catches, and its changes, each
    {file, old, new}: text of the solution and what the bug puts instead."""
    return tomllib.loads((folder / "mutant.toml").read_text())


def mutated_files(exercise: manifest.Exercise, spec: dict) -> dict[str, str]:
    """The files a mutant changes, as text: the solution with each change
    applied. Every `old` must stand exactly once in the solution, so a
    mutant cannot silently stop applying when the solution changes."""
    result: dict[str, str] = {}
    for change in spec.get("change", []):
        name = change["file"]
        text = result.get(name) or (exercise.solution_folder / name).read_text()
        count = text.count(change["old"])
        assert count == 1, (f"a change of the mutant no longer applies to solutions/"
                            f"{exercise.id}/{name}: its old text stands there {count} times")
        result[name] = text.replace(change["old"], change["new"])
    return result


def build_submission(dest: Path, exercise: manifest.Exercise, spec: dict | None = None) -> Path:
    """A submission folder holding the reference solution of `exercise`,
    with a mutant's changes applied when `spec` is given."""
    folder = dest / exercise.id
    folder.mkdir(parents=True)
    for name in exercise.files:
        shutil.copyfile(exercise.solution_folder / name, folder / name)
    for name, text in (mutated_files(exercise, spec) if spec else {}).items():
        (folder / name).write_text(text)
    return dest


def needed_on_ci(missing: str | None, what: str) -> None:
    """A test of a grading wall that this machine cannot provide (`missing`
    says why, None when it can): skipped here, but a failure with CI=true,
    since CI must prove every wall, never skip it."""
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must {what}: {missing}")
    pytest.skip(missing)


def need_sandbox() -> None:
    """Tests that need the bubblewrap sandbox."""
    needed_on_ci(bubblewrap.unavailable_reason(), "be able to sandbox student programs")


class BackgroundServer:
    """A loopback server whose `run()` serves in a thread until `close()`
    makes `stop_r` readable. Subclasses set their counters, then call
    super().__init__(), which starts the thread; use it as a context
    manager so every test's server is closed."""

    backlog = 4

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=self.backlog)
        self.port = self.listener.getsockname()[1]
        self.stop_r, self.stop_w = socket.socketpair()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop_w.send(b"x")
        self.thread.join(5)
        self.listener.close()
        self.stop_r.close()
        self.stop_w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
