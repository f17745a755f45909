"""The source rules' finder (grader.testkit.source_check): correct programs written
in any ordinary style have no finding, and every known way of importing a
module or running code behind a reader's back has one, however it is
spelled. Also the run-time half: the thread watch sees a thread start."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from grader.course import manifest
from grader.testkit import source_check
from grader.testkit.suites.server_rules import check_alone, watch

SOLUTIONS = sorted(manifest.SOLUTIONS_DIR.glob("*/*.py"))

# Correct programs (or the telling parts of them) in styles a student may
# well write. None of them may be flagged.
PLAIN_STYLES = {
    "from-imports and aliases": '''
import select as sel
import socket
import sys
from select import POLLIN, poll

def main():
    listener = socket.socket()
    poller = poll()
    poller.register(listener.fileno(), POLLIN | sel.POLLHUP)
    while True:
        for fd, events in poller.poll():
            print(fd, events, file=sys.stderr)

if __name__ == "__main__":
    main()
''',
    "classes and dunder methods": '''
from __future__ import annotations
import socket
from dataclasses import dataclass, field

@dataclass
class Client:
    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)

    def __repr__(self):
        return f"{type(self).__name__}({self.sock.fileno()})"

class Room:
    __slots__ = ("clients",)

    def __init__(self):
        super().__init__()
        self.clients = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for client in self.clients.values():
            client.sock.close()

    def __len__(self):
        return len(self.clients)
''',
    "star import of socket": '''
from socket import *
import select

listener = socket(AF_INET, SOCK_STREAM)
listener.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
poller = select.poll()
''',
    "literal lookups and dispatch by method name": '''
import signal
import socket
import sys

def stop(signum, frame):
    raise KeyboardInterrupt

for name in ("SIGINT", "SIGTERM"):
    signal.signal(getattr(signal, name), stop)
REUSE_PORT = getattr(socket, "SO_REUSEPORT", None)

class Server:
    def handle(self, line):
        command, _, rest = line.partition(" ")
        action = getattr(self, "on_" + command, None)
        return action(rest) if action else "error unknown command"

    def on_ping(self, token):
        return "pong " + token

if len(sys.argv) != 2:
    sys.exit(__doc__)
''',
    "regular expressions and format helpers": '''
import re
from re import compile

LINE = re.compile(r"ping (.*)")
COUNT = compile(r"count")

def describe(user, text):
    return "{user}: {text}".format(**locals())

def options(args):
    return vars(args)
''',
    "threads, the plain way": '''
import threading
from threading import Lock, Thread

lock = Lock()

def serve(conn):
    with lock:
        pass

def accept_forever(listener):
    while True:
        conn, _ = listener.accept()
        Thread(target=serve, args=(conn,), daemon=True).start()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
''',
    "standard helpers": '''
import collections
import contextlib
import errno
import functools
import os
import time

buffers = collections.defaultdict(bytearray)
log = functools.partial(print, flush=True)
with contextlib.suppress(OSError):
    os.strerror(errno.EAGAIN)
time.sleep(0.001)
code = 200
profile = {"name": code}
''',
}

# Ways to import or run code that a reader cannot follow. Each must be found.
TRICKS = {
    "importlib": "import importlib\nimportlib.import_module('threading')\n",
    "from importlib": "from importlib import import_module as load\nload('threading')\n",
    "__import__": "t = __import__('thr' + 'eading')\n",
    "exec": "exec('import threading')\n",
    "eval": "t = eval(\"__imp\" + \"ort__('threading')\")\n",
    "compile": "c = compile('import threading', 'x', 'exec')\n",
    "bytes-spelled name on __builtins__":
        "getattr(__builtins__, bytes([95,95,105,109,112,111,114,116,95,95]).decode())('threading')\n",
    "builtins module": "import builtins\nbuiltins.__dict__['__imp' + 'ort__']('threading')\n",
    "from builtins": "from builtins import __import__ as load\nload('threading')\n",
    "subclasses walk": "for c in ().__class__.__base__.__subclasses__():\n"
                       "    if c.__name__ == 'BuiltinImporter':\n        c.load_module('threading')\n",
    "function globals": "f = lambda: 0\nf.__globals__['__built' + 'ins__']\n",
    "builtin's __self__": "print.__self__\n",
    "getattr of a dunder": "getattr(print, '__self__')\n",
    "sys.modules": "import sys\nsys.modules['builtins']\n",
    "from sys import modules": "from sys import modules as loaded\nloaded['os']\n",
    "frame builtins": "import sys\nsys._getframe().f_builtins\n",
    "traceback frame": "try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame.f_globals\n",
    "globals()": "namespace = globals()\n",
    "locals() at the top level": "namespace = locals()\n",
    "vars() of a module": "import os\nvars(os)\n",
    "getattr on a module, computed": "import os\nname = input()\ngetattr(os, name)()\n",
    "getattr on a call's result": "getattr(type(0), input())\n",
    "module in a list": "import select\nchoices = [select]\nchoices[0].epoll()\n",
    "module passed to a function": "import os\ndef pick(m):\n    return m.fork\npick(os)()\n",
    "eval under another name": "run = eval\nrun('1')\n",
    "eval rebound to itself": "eval = eval\neval('1')\n",
    "def then del": "def exec(text):\n    return text\ndel exec\nexec('import os')\n",
    "attrgetter": "import operator\nimport os\noperator.attrgetter(input())(os)\n",
    "pickle": "import pickle\npickle.loads(b'')\n",
    "ctypes": "import ctypes\nctypes.pythonapi.PyImport_ImportModule(b'threading')\n",
    "runpy": "import runpy\nrunpy.run_module('threading')\n",
    "module loader": "__loader__.load_module('threading')\n",
    "object.__getattribute__": "import os\nobject.__getattribute__(os, input())\n",
    "exec family": "import os\nimport sys\nos.execv(sys.executable, ['python'])\n",
}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_reference_solution_is_flagged(path: Path):
    assert source_check.dynamic_code(path.read_text()) == []


@pytest.mark.parametrize("name", sorted(PLAIN_STYLES))
def test_plain_programs_in_other_styles_are_not_flagged(name):
    assert source_check.dynamic_code(PLAIN_STYLES[name]) == []


@pytest.mark.parametrize("name", sorted(TRICKS))
def test_every_trick_is_found(name):
    assert source_check.dynamic_code(TRICKS[name]), f"{name} went unnoticed"


def test_the_bytes_spelled_import_needs_no_string():
    # No literal in it names __import__: only the structure gives it away.
    source = TRICKS["bytes-spelled name on __builtins__"]
    assert "__import__" not in source and "import" not in source.replace("'threading'", "")
    found = source_check.dynamic_code(source)
    assert [f.line for f in found] == [1] and "__builtins__" in found[0].what


def test_a_syntax_error_is_reported_as_such():
    with pytest.raises(SyntaxError):
        source_check.dynamic_code("def broken(:\n")


FORBIDDEN = {**source_check.THREADS_AND_PROCESSES, "select.epoll": "epoll", "select.select": "select()"}


@pytest.mark.parametrize("source, used", [
    ("import select as s\ns.epoll()\n", "select.epoll"),
    ("import select\nwaiter = select\nwaiter.select([], [], [])\n", "select.select"),
    ("import select\ngetattr(select, 'epoll')()\n", "select.epoll"),
    ("from select import *\nepoll()\n", "select.epoll"),
    ("import os\nfor name in ('fork',):\n    getattr(os, name)()\n", "os.fork"),
    ("import concurrent.futures\nconcurrent.futures.ThreadPoolExecutor()\n", "concurrent"),
    ("import subprocess\nsubprocess.Popen(['true'])\n", "subprocess"),
    ("from socketserver import ThreadingTCPServer\n", "socketserver"),
])
def test_forbidden_uses_see_through_aliases(source, used):
    found = source_check.forbidden_uses(source, FORBIDDEN)
    assert any(used in f.what for f in found), found


def test_variables_named_like_modules_are_not_modules():
    # Without an import, `code` is a variable, not the module code.
    assert source_check.forbidden_uses("code = 1\ncode.real\n", {"code": "x"}) == []
    assert source_check.dynamic_code("def f(frame):\n    code = frame\n    return code.co_name\n") == []
    assert source_check.uses_any("import select\nselect.poll()\n", {"select.poll"})


class _ThisProcess:
    """Enough of a Program for `watch`: this test's own process."""
    pid = os.getpid()

    def strays(self):
        return []


def test_watch_sees_a_thread_that_lives_while_clients_talk():
    program = _ThisProcess()
    _, quiet = watch(program, lambda: None)
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=True)

    def talk():
        worker.start()
        threading.Event().wait(0.05)  # the traffic's own duration
        release.set()

    _, activity = watch(program, talk)
    worker.join()
    assert activity.most_threads >= quiet.most_threads + 1 and activity.samples > 1
    with pytest.raises(AssertionError, match="threads at once"):
        check_alone(activity, "a test of the watch")
