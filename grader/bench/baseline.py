"""Build the bench's C baseline (grader/bench/c/chat_epoll.c) with the system's
compiler, or say in words why it cannot be built here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "c" / "chat_epoll.c"
COMPILERS = ("cc", "gcc", "clang")
FLAGS = ["-O2", "-Wall", "-Wextra"]


def build(folder: Path) -> tuple[Path | None, str]:
    """Compile the baseline into `folder`. Returns (the program, "") or
    (None, why it was skipped)."""
    compiler = next((found for name in COMPILERS if (found := shutil.which(name))), None)
    if compiler is None:
        return None, "no C compiler (cc, gcc or clang) on this machine: the C baseline is skipped"
    if not SOURCE.is_file():
        return None, f"{SOURCE} is missing: the C baseline is skipped"
    program = folder / "chat_epoll"
    command = [compiler, *FLAGS, "-o", str(program), str(SOURCE)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{' '.join(command)} failed ({exc}): the C baseline is skipped"
    if done.returncode != 0:
        return None, (f"{' '.join(command)} failed with status {done.returncode}: the C "
                      f"baseline is skipped\n{done.stderr.strip()}")
    return program, ""
