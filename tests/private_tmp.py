"""Temporary folders of our own, outside pytest's numbered basetemp.

Every pytest session that ends removes the numbered session folders
(/tmp/pytest-of-USER/pytest-N) beyond its retention count that carry no
lock, and a session run with `tmp_path_retention_policy = "none"` (as
pyproject.toml once had) puts no lock on its own: so a folder that
another pytest session on the machine is still working in can vanish.
Tests that keep a tree for tens of seconds (a release, a virtual
environment) keep it here instead."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def private_folder(prefix: str = "socklab-test-"):
    """A new empty folder, removed with everything in it afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Path:
    """Like tmp_path, in a private folder (import it into a test module)."""
    with private_folder() as folder:
        yield folder
