"""Broken and slow copies of a reference solution, for `socklab bench grading`.

What grading costs depends far more on *how* a submission fails than on the
exercise: a program that exits at once costs a second, one that never
answers costs every test its whole timeout. So the bench grades, besides the
reference and the stub, copies of the reference rewritten into one "shape"
of failure each, the same for every exercise, and two correct-but-slow
copies that grading must still score in full.

A shape is a few lines of Python put into each file it applies to, as text,
never by editing the body: after the module docstring and any `from
__future__` import (the first place where code may run; found with `ast`),
or for the module shapes that replace functions, at the end. The code
patches the `socket` module's class and the built-ins, so it works whatever
the program's style; its names start with `_socklab_`, and the slow shapes
use only plain imports and attributes, so they pass the source rules
(grader.testkit.source_check) that a correct program must pass.

Files are of two kinds: a *program* (a server or client started as `python
-u FILE ARGS`: it has a top-level `if __name__ == "__main__":`) and a
*module* (functions that the tests call: basics.py, sockethelpers.py,
framing.py). Program shapes change programs only, module shapes modules
only; the other files stay as the reference.

    SHAPES            name -> Shape(description, kind)
    shapes_for(ex)    the shapes that mean something for an exercise
    build(ex, shape, dest)  write the tree dest/NN_name/FILES, return dest
"""

from __future__ import annotations

import ast
import io
import shutil
from pathlib import Path
from typing import NamedTuple

from grader.course import manifest

PROGRAM, MODULE, SLOW, TREE = "program", "module", "slow", "tree"
SLOW_START_SECONDS = 1.5
SLOW_FACTOR = 5      # slow-messages: every socket call takes this many times as long


class Shape(NamedTuple):
    description: str
    kind: str  # PROGRAM or MODULE: changes files of that kind; SLOW: every file; TREE: whole trees


SHAPES: dict[str, Shape] = {
    "reference": Shape("the reference solution, unchanged", TREE),
    "stub": Shape("the student's stub, as released (exercises/NN_name)", TREE),
    "exits-at-once": Shape("the program exits with status 1 before doing anything", PROGRAM),
    "never-ready": Shape("the program runs, but prints nothing at all (no ready line)", PROGRAM),
    "never-accepts": Shape("the program listens and prints its ready line, but accept() "
                           "blocks forever", PROGRAM),
    "never-replies": Shape("every send on a socket pretends to succeed and sends nothing",
                           PROGRAM),
    "spins-ignoring-signals": Shape("a busy loop at start-up, before binding, ignoring "
                                    "SIGTERM, SIGINT and SIGHUP", PROGRAM),
    "function-never-returns": Shape("every public function of the module loops forever", MODULE),
    "function-raises": Shape("every public function of the module raises RuntimeError", MODULE),
    "import-spins": Shape("importing the module spins forever, ignoring signals", MODULE),
    "slow-start": Shape(f"correct, but each process sleeps {SLOW_START_SECONDS:g} s when its "
                        "first file starts (or is imported)", SLOW),
    "slow-messages": Shape(f"correct, but every socket call takes {SLOW_FACTOR} times as long "
                           "(busy-waiting after the real call; on a blocking socket, "
                           f"{SLOW_FACTOR} times its CPU time, not its wait for the peer)", SLOW),
    "slow": Shape("slow-start and slow-messages at once", SLOW),
}

# -- the code each shape puts into a file --------------------------------------

_IGNORE_SIGNALS = """\
import signal as _socklab_signal
_socklab_signal.signal(_socklab_signal.SIGTERM, _socklab_signal.SIG_IGN)
_socklab_signal.signal(_socklab_signal.SIGINT, _socklab_signal.SIG_IGN)
_socklab_signal.signal(_socklab_signal.SIGHUP, _socklab_signal.SIG_IGN)
"""
_SPIN = "while True:  # socklab bench: spins forever\n    pass\n"

# Once per process, whichever of its files starts first: a program that
# imports a slowed module of the same exercise (kv_server.py and framing.py)
# starts 1.5 s late, not 3 s.
_SLOW_START = f"""\
import os as _socklab_os, time as _socklab_time
if _socklab_os.environ.get("SOCKLAB_SLOW_STARTED") != str(_socklab_os.getpid()):
    _socklab_os.environ["SOCKLAB_SLOW_STARTED"] = str(_socklab_os.getpid())
    _socklab_time.sleep({SLOW_START_SECONDS})
"""

# Each call is timed and followed by a busy wait of (FACTOR - 1) times its
# duration. On a non-blocking socket the duration is the call's wall time
# (time.perf_counter). On a blocking one it is the thread's CPU time: the
# wall time of a blocking accept() or recv() is mostly the wait for the
# peer (the grader's idle test leaves a server in accept() for a second),
# and five times *that* is a program that answers seconds late, not one that
# is slow at its work. Spelled out method by method (no getattr/setattr with
# computed names), so that the plain-import rule still holds; two files of
# one process (a program and the module it imports) wrap the methods once.
_SLOW_METHODS = ("send", "sendall", "sendto", "sendmsg", "recv", "recv_into", "recvfrom",
                 "recvfrom_into", "recvmsg", "accept", "connect")
_SLOW_MESSAGES = f"""\
import socket as _socklab_socket
import time as _socklab_time


def _socklab_slowed(real):
    def slowed(self, *args, **kwargs):
        if self.gettimeout() == 0.0:
            clock = _socklab_time.perf_counter
        else:
            clock = _socklab_time.thread_time
        started = clock()
        try:
            return real(self, *args, **kwargs)
        finally:
            spent = clock() - started
            until = _socklab_time.perf_counter() + {SLOW_FACTOR - 1} * spent
            while _socklab_time.perf_counter() < until:
                pass
    return slowed


if not hasattr(_socklab_socket.socket, "_socklab_slowed"):
    _socklab_socket.socket._socklab_slowed = True
""" + "".join(f"    _socklab_socket.socket.{m} = _socklab_slowed(_socklab_socket.socket.{m})\n"
              for m in _SLOW_METHODS)

_PROGRAM_CODE = {
    "exits-at-once": "raise SystemExit(1)\n",
    "never-ready": """\
import builtins as _socklab_builtins
import os as _socklab_os
import sys as _socklab_sys
_socklab_builtins.print = lambda *args, **kwargs: None
_socklab_sys.stdout = open(_socklab_os.devnull, "w")
""",
    "never-accepts": """\
import socket as _socklab_socket
import time as _socklab_time


def _socklab_accept(self, *args, **kwargs):
    while True:
        _socklab_time.sleep(3600)


_socklab_socket.socket.accept = _socklab_accept
""",
    "never-replies": """\
import socket as _socklab_socket


def _socklab_send(self, data, *args):
    return memoryview(data).nbytes


def _socklab_sendall(self, data, *args):
    return None


def _socklab_sendmsg(self, buffers, *args):
    return sum(memoryview(b).nbytes for b in buffers)


_socklab_socket.socket.send = _socklab_send
_socklab_socket.socket.sendto = _socklab_send
_socklab_socket.socket.sendall = _socklab_sendall
_socklab_socket.socket.sendmsg = _socklab_sendmsg
""",
    "spins-ignoring-signals": _IGNORE_SIGNALS + _SPIN,
}

_SLOW_CODE = {
    "slow-start": _SLOW_START,
    "slow-messages": _SLOW_MESSAGES,
    "slow": _SLOW_START + _SLOW_MESSAGES,
}

# The module shapes that replace functions: a wrapper factory, applied at the
# end of the module to each public function the file defines.
_REPLACERS = {
    "function-never-returns": "        while True:  # socklab bench: never returns\n            pass\n",
    "function-raises": '        raise RuntimeError("broken on purpose")\n',
}


def _replace_functions(shape: str, names: list[str]) -> str:
    return (f"\n\n# -- socklab bench: {shape} --\n"
            "import functools as _socklab_functools\n\n\n"
            "def _socklab_broken(function):\n"
            "    @_socklab_functools.wraps(function)\n"
            "    def broken(*args, **kwargs):\n"
            + _REPLACERS[shape]
            + "    return broken\n\n\n"
            + "".join(f"{name} = _socklab_broken({name})\n" for name in names)
            + "del _socklab_broken\n")


# -- reading a file ------------------------------------------------------------

def is_program(source: str) -> bool:
    """A program has a top-level `if __name__ == "__main__":`; a module does not."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__" \
                and any(isinstance(c, ast.Constant) and c.value == "__main__"
                        for c in node.test.comparators):
            return True
    return False


def insertion_line(source: str) -> int:
    """The number of lines that must stay before inserted code: the module
    docstring and the `from __future__` imports (they must come first)."""
    after = 0
    for index, node in enumerate(ast.parse(source).body):
        docstring = index == 0 and isinstance(node, ast.Expr) \
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            break
        after = node.end_lineno
    return after


def public_functions(source: str) -> list[str]:
    """The public functions the file itself defines at its top level."""
    return [node.name for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and not node.name.startswith("_")]


def _calls_accept(source: str) -> bool:
    return any(isinstance(node, ast.Attribute) and node.attr == "accept"
               for node in ast.walk(ast.parse(source)))


def insert(source: str, code: str) -> str:
    """`source` with `code` put after its docstring and __future__ imports."""
    lines = io.StringIO(source, newline="").readlines()  # the lines as ast counts them
    at = insertion_line(source)
    head = "".join(lines[:at])
    if head and not head.endswith("\n"):
        head += "\n"
    banner = "# -- socklab bench: code put here on purpose --\n"
    return head + ("\n" if head else "") + banner + code + "# -- end of socklab bench code --\n\n" \
        + "".join(lines[at:])


def rewrite(source: str, shape: str) -> str:
    """One file's source in `shape` (unchanged where the shape is not for
    this kind of file)."""
    kind = SHAPES[shape].kind
    program = is_program(source)
    if kind == SLOW:
        return insert(source, _SLOW_CODE[shape])
    if kind == PROGRAM and program:
        return insert(source, _PROGRAM_CODE[shape])
    if kind == MODULE and not program:
        if shape == "import-spins":
            return insert(source, _IGNORE_SIGNALS + _SPIN)
        end = source if source.endswith("\n") else source + "\n"
        return end + _replace_functions(shape, public_functions(source))
    return source


# -- exercises -----------------------------------------------------------------

def _exercise(exercise: manifest.Exercise | str) -> manifest.Exercise:
    return manifest.get(exercise) if isinstance(exercise, str) else exercise


def _reference_sources(exercise: manifest.Exercise) -> dict[str, str]:
    return {name: (exercise.solution_folder / name).read_text(encoding="utf-8")
            for name in exercise.files}


def shapes_for(exercise: manifest.Exercise | str) -> list[str]:
    """The shapes that change something in this exercise: program shapes
    where it has a program (never-accepts only where a program accepts),
    module shapes where it has a module, slow-messages where a program
    talks over sockets (a module-only exercise, 00, makes no socket call
    worth slowing)."""
    sources = _reference_sources(_exercise(exercise)).values()
    programs = [s for s in sources if is_program(s)]
    modules = [s for s in sources if not is_program(s)]
    chosen = []
    for name, shape in SHAPES.items():
        if shape.kind == PROGRAM and not programs:
            continue
        if name == "never-accepts" and not any(_calls_accept(s) for s in programs):
            continue
        if shape.kind == MODULE and not modules:
            continue
        if name in ("slow-messages", "slow") and not programs:
            continue
        chosen.append(name)
    return chosen


def build(exercise: manifest.Exercise | str, shape: str, dest: Path) -> Path:
    """Write the tree `dest/NN_name/` holding the exercise's files in
    `shape` (laid out like solutions/, so `socklab grade dest --exercise
    NN_name` grades it) and return `dest`."""
    exercise = _exercise(exercise)
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    folder = Path(dest) / exercise.id
    folder.mkdir(parents=True, exist_ok=True)
    for name in exercise.files:
        if shape == "stub":
            shutil.copyfile(exercise.folder / name, folder / name)
        else:
            source = (exercise.solution_folder / name).read_text(encoding="utf-8")
            text = source if shape == "reference" else rewrite(source, shape)
            (folder / name).write_text(text, encoding="utf-8")
    return Path(dest)
