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
- `forked(program)`, `start_pair(spawn)`: 05's pair.py announces its
  fork, its first line: the gate FORK_GATE.
- `accepted(program, did, first)`: 05's echo server announces a client;
  its first client's line is a gate.
- `first_echo(client)`: 05's echo server, freshly started, echoes its
  first client's fixed line 'hello': the gate of its echoes.
- `child_answers_hello(program, child)`: 05's pair.py, freshly started,
  gets the fixed line 'hello' answered by its child: the gate of its
  answers, which every test typing lines of its own begins with.
- `pair_beside(spawn)`, `echo_server_beside(spawn, folder)`: the first
  check of each of 05's two programs, to run beside the other's
  (grader.harness.gates.side_by_side): a student's `pytest`, one test at a
  time, then waits once for two programs that never start, not twice.

Import the fixtures into a test module to use them:

    from grader.testkit.unix_sockets import socket_dir, unix_connect  # noqa: F401
"""

from __future__ import annotations

import re
import socket
import tempfile
from pathlib import Path

import pytest

from grader.harness import bounded, gates, listening, waits
from grader.harness.failure import GradingFailure, check
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


PAIR = "pair.py"
ECHO_SERVER = "unix_echo_server.py"
FORKED = re.compile(r"parent (\d+) forked child (\d+)\s*$")
# pair.py's first line, the same check every time: a gate (grader.harness.gates).
FORK_GATE = gates.Gate(f"ready:{PAIR}", f"`python {PAIR}` announces its fork")


def forked(program, did: str = f"ran: python -u {PAIR}") -> re.Match:
    """pair.py's first line, its ready line (FORK_GATE)."""
    with gates.guard(FORK_GATE):
        return program.expect_line(FORKED, timeout=waits.READY, did=did,
                                   done=lambda: listening.has_child(program.pid),
                                   done_what="running its child (it had forked)")


def start_pair(spawn, beside: tuple = ()):
    """Start pair.py; (program, child pid) once it announced the fork, with
    the first checks `beside` run beside it (grader.harness.gates.side_by_side)."""
    program = spawn(PAIR, name="pair")
    match = gates.side_by_side(lambda: forked(program), *beside)
    return program, int(match.group(2))


def echo_server_ready(program, path: str) -> None:
    """05's unix_echo_server.py, started on `path`, prints its ready line (unguarded)."""
    program.expect_line(rf"listening on {re.escape(path)}\s*$", timeout=waits.READY,
                        did=f"ran: python -u {ECHO_SERVER} {path}",
                        done=lambda: listening.listening_unix(program.pid),
                        done_what="listening (the kernel lists its socket)")


def pair_beside(spawn) -> tuple:
    """pair.py's first check, to run beside the echo server's."""
    return (FORK_GATE, f"`python {PAIR}`", lambda: forked(spawn(PAIR, name="pair (beside)")))


def echo_server_beside(spawn, folder: Path) -> tuple:
    """The echo server's first check on a fresh path in `folder`, to run
    beside pair.py's."""
    path = str(folder / "beside.sock")
    gate = ready_on_a_fresh_path(ECHO_SERVER)

    def check() -> None:
        program = spawn(ECHO_SERVER, path, name="server (beside)")
        with gates.guard(gate):
            echo_server_ready(program, path)

    return (gate, f"`python {ECHO_SERVER} PATH`", check)


CONNECTED = re.compile(r"connection from pid (\d+) uid (\d+)\s*$")
# 05's echo server announces each client; its first client's line is a gate
# (the same check whoever connects: the line's form, not its numbers).
CONNECTION_GATE = gates.Gate(f"connection-line:{ECHO_SERVER} PATH",
                             f"the first client of a freshly started `python {ECHO_SERVER} PATH` "
                             "is announced with 'connection from pid N uid M'")


def accepted(program, did: str, first: bool = False) -> tuple[int, int]:
    """Wait for the echo server's next connection line; return (pid, uid).
    The line for the `first` client of the server is a gate
    (CONNECTION_GATE); any later one fails at once once that gate closed."""
    with gates.guard(CONNECTION_GATE, closes=first):
        match = program.expect_line(CONNECTED, did=did)
    return int(match.group(1)), int(match.group(2))


# 05's echo server: the first client of a fresh server sends this line and
# reads it back, the same exchange in every test that echoes (a gate).
FIRST_ECHO = b"hello\n"
ECHO_GATE = gates.Gate(f"echo:{ECHO_SERVER} PATH",
                       f"the first client of a freshly started `python {ECHO_SERVER} PATH` gets "
                       "the line 'hello' echoed back")


def first_echo(client, first: bool = True) -> None:
    """`client` sends FIRST_ECHO and reads it back: the gate ECHO_GATE when
    it is its fresh server's `first` client (any client fails at once once
    the gate closed), so that a server that never echoes costs one reply's
    wait, and every later test that echoes fails at once."""
    with gates.guard(ECHO_GATE, closes=first):
        client.send_raw(FIRST_ECHO)
        back = client.read_bytes(len(FIRST_ECHO))
        check(back == FIRST_ECHO, f"{client.name} sent {FIRST_ECHO!r}",
              f"{client.name} gets the same {len(FIRST_ECHO)} bytes back", repr(back))


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
