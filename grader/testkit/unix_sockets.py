"""Unix-domain (AF_UNIX) helpers for suites whose server listens on a socket
file instead of a port.

- `socket_dir`: a fixture giving each test its own short folder for socket
  files. A socket's path must fit in `sun_path` (108 bytes on Linux,
  including the final NUL), so the folder is checked against that limit.
- `unix_connect`: a fixture, a factory of `grader.testkit.line_client.LineClient`s
  connected to a socket file: unix_connect(path, name="alice").
  Every client it opened is closed after the test.
- `ready_on_a_fresh_path(script)`: the gate (grader.harness.gates) of a
  server started on a fresh socket path printing its ready line.
- `child_answers_hello(program, child)`: 05's pair.py, freshly started,
  gets the fixed line 'hello' answered by its child: the gate of its
  answers, which every test typing lines of its own begins with.

Import the fixtures into a test module to use them:

    from grader.testkit.unix_sockets import socket_dir, unix_connect  # noqa: F401
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from grader.harness import bounded, gates
from grader.harness.failure import GradingFailure
from grader.harness.transcript import Transcript
from grader.testkit.line_client import DEFAULT_TIMEOUT, LineClient

SUN_PATH_MAX = 107          # bytes of a path that fit in sun_path (108 with the NUL)
ROOM_FOR_NAMES = 24         # what a test may append: "/" and a file name
# Socket folders a test made outside its run folder: the plugin's spawn lets
# the test's programs see and write them (they sit in the sandbox's own /tmp otherwise).
SOCKET_FOLDERS = pytest.StashKey[list]()


def ready_on_a_fresh_path(script: str) -> gates.Gate:
    """The gate of `python SCRIPT PATH` printing its ready line, PATH a
    fresh socket path in a folder of the test's own. The gate the plugin
    puts on every start_server is keyed by the command line, which holds
    each test's own socket path here, so it would never meet itself again:
    this key leaves the path out (guard the start with both)."""
    return gates.Gate(f"ready:{script} PATH",
                      f"`python {script} PATH` starts on a fresh socket path and prints its "
                      "ready line")


PAIR_ANSWER = gates.Gate("answer:pair.py", "the child of a freshly started `python pair.py` "
                                         "answers the line 'hello' with 'child PID: HELLO'")


def child_answers_hello(program, child: int) -> None:
    """Type 'hello' on a freshly started pair.py (whose child is `child`)
    and read the answer: the gate PAIR_ANSWER. The same first line every
    time, so that a pair.py whose child never answers fails once, and each
    later test that types lines fails at once."""
    with gates.guard(PAIR_ANSWER):
        program.send_line("hello")
        program.expect_line(f"child {child}: HELLO", literal=True,
                            did="typed 'hello' on pair.py's standard input")


def fits(path: str | Path) -> bool:
    return len(str(path).encode()) <= SUN_PATH_MAX


def connect_unix(path: str | Path, transcript: Transcript, name: str = "client",
                 timeout: float = DEFAULT_TIMEOUT) -> LineClient:
    """A LineClient connected to the Unix-domain stream socket at `path`.
    Raises OSError when the connection fails (no such file, refused...)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    # LineClient only uses host and port to describe the peer in the
    # transcript: the path says it best.
    return LineClient(0, transcript, name=name, timeout=timeout, sock=sock, peer=str(path))


@pytest.fixture
def socket_dir(workdir: Path, request: pytest.FixtureRequest) -> Path:
    """A folder of this test's own for socket files, with a path short
    enough that a socket file name still fits in sun_path."""
    folder = Path(tempfile.mkdtemp(prefix="s", dir=workdir))
    made_elsewhere = False
    if len(str(folder).encode()) + ROOM_FOR_NAMES > SUN_PATH_MAX:
        folder = bounded.make("/tmp", "socklab-")
        made_elsewhere = True
        if len(str(folder).encode()) + ROOM_FOR_NAMES > SUN_PATH_MAX:
            raise RuntimeError(f"no folder short enough for socket files: {folder}")
        request.node.stash.setdefault(SOCKET_FOLDERS, []).append(folder)  # shown in the sandbox too
    yield folder
    if made_elsewhere:
        bounded.remove(folder)


@pytest.fixture
def unix_connect(transcript: Transcript):
    """A factory of line clients on a Unix-domain socket:
    unix_connect(path, name="alice"). A failed connection is a failure of
    the program under test (its socket is not where it should be)."""
    clients: list[LineClient] = []

    def open_client(path: str | Path, name: str | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> LineClient:
        name = name or f"client{len(clients) + 1}"
        try:
            client = connect_unix(path, transcript, name=name, timeout=timeout)
        except OSError as exc:
            raise GradingFailure(did=f"{name} connected to the Unix-domain socket {path}",
                                 expected="the connection succeeds: the server listens there",
                                 got=f"the connection failed: {exc}") from None
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close(note=False)
