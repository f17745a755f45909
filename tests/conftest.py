"""The project's own tests: shared helpers and the end-of-run process check."""

from __future__ import annotations

import psutil
import pytest

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
