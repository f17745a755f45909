"""The project's own tests: shared helpers and the end-of-run process check."""

from __future__ import annotations

import psutil
import pytest


@pytest.fixture(autouse=True, scope="session")
def no_process_left_running():
    """After every test of this process: nothing it started is still alive."""
    yield
    alive = [p for p in psutil.Process().children(recursive=True)
             if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left running: {[(p.pid, p.cmdline()) for p in alive]}"
