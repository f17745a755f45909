"""The project's own tests: shared helpers and the end-of-run process check."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from grader.grading import budget
from grader.harness import gates, turns

# Submissions of the adversarial corpus (a conftest.py that marks every test
# passed, an edited test file): graded by tests/test_adversarial.py, never
# collected as the project's own tests.
collect_ignore_glob = ["adversarial/*"]


@pytest.fixture(autouse=True, scope="session")
def no_process_left_running():
    """After every test of this process: nothing it started is still alive."""
    yield
    alive = [p for p in psutil.Process().children(recursive=True)
             if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left running: {[(p.pid, p.cmdline()) for p in alive]}"


def pytest_configure(config: pytest.Config) -> None:
    """Every grading these tests start shares one machine: one folder of
    turns (an `alone` test of any grading runs with nothing else), and the
    machine's budget of test workers split between this run's own workers
    (`-n 2`: two gradings at a time get half each). Set here, before
    pytest-xdist starts its workers, which inherit it."""
    if hasattr(config, "workerinput"):
        return
    folder = Path(tempfile.mkdtemp(prefix="socklab-tests-turns-"))
    config._socklab_turns = folder
    os.environ.update(turns.prepare(folder))
    if budget.ENV not in os.environ:
        runs = config.getoption("numprocesses", None) or 1
        os.environ[budget.ENV] = str(max(1, budget.machine() // (runs if isinstance(runs, int) else 1)))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_socklab_turns", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def gate_book() -> gates.Book:
    """A book of gates (grader.harness.gates), active as a test named
    test_first's, whose failures read as what happened; inactive afterwards."""
    book = gates.Book()
    gates.activate(gates.Context(book=book, test="test_first", describe=lambda exc: exc.got))
    yield book
    gates.activate(None)
