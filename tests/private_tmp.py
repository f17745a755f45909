"""Temporary folders of our own, outside pytest's numbered basetemp.

With `tmp_path_retention_policy = "none"` (pyproject.toml) pytest puts no
lock on its session folder (/tmp/pytest-of-USER/pytest-N), and every
session that ends removes all unlocked numbered folders there: also the
one another pytest session, started at the same time by someone else on
the machine, is still working in. Tests that keep a tree for tens of
seconds (a release, a virtual environment) keep it here instead."""

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
