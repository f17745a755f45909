"""Stand-ins for the other end when the student writes the client.

`OneShotServer` is a TCP server that runs in a thread of the test process:
it accepts one client, reads one message, replies (or hangs up without a
reply), then reads until the client closes, and records everything: the
client's address, every byte it sent, whether it closed. The listening
socket is closed once a client is accepted.

    servers = FakeServers(free_port, transcript)      # one per test (the `servers` fixture)
    server = servers.start(host="::1", expect=len(message), reply=b"ok\\n")
    dead = servers.refusing_port("127.0.0.1")        # connections there are refused
    ... run the student's client against ("::1", server.port) ...
    server.wait_done(waits.OWN)
    check(server.received == message, ...)
    servers.close_all()                               # in the fixture's teardown

`fake_resolver_source(plan)` is Python source that replaces
`socket.getaddrinfo` for a few made-up host names, so a suite can give a
student's client a name with several candidates (a refusing `::1`, then a
working `127.0.0.1`) or a name that does not resolve. Put it in a
`sitecustomize.py` in the program's working folder (see
`install_fake_resolver`), or at the top of a `grader.harness.module_calls` check."""

from __future__ import annotations

import errno
import re
import select
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from grader.harness import gates, waits
from grader.harness.failure import GradingFailure
from grader.harness.transcript import Transcript

ATTEMPTS = 4            # fresh ports to try when a parallel grader took one
LAST_LOOK = waits.REPLY  # after the client exited, for bytes it sent that are still on their way
# How long a server waits for its client to connect, then for the message,
# then for the close: each happens within the client's whole run.
ACCEPT_TIMEOUT = waits.CLIENT_RUN
READ_TIMEOUT = waits.CLIENT_RUN
# A client program's connection ends its start-up: it connects within
# READY of its start (its start-up, as a server binds within it), and from
# then on what it does next (its prompt, the typed line on the wire) is a
# socket call and a print away: within a REPLY of the connection. A client
# that never connects costs a start-up, not a start-up and a reply; one that
# connects and then never sends costs a reply after its connection.
START_UP = waits.READY
AFTER_CONNECTING = waits.REPLY


def prints(command: str) -> gates.Gate:
    """The gate of a client's start-up output: `command` (a
    gates.command_shape) prints a line within its start-up. It closes when
    the client's first line never came and it printed no line at all (no
    other line either); a test waiting for a line within that start-up (the
    prompt) cannot pass without it."""
    return gates.Gate(f"prints:{command}", f"`python {command}` prints a line within its start-up")


def expect_first_line(program, command: str, line: str, did: str,
                      usual: str | None = None) -> None:
    """A client's first line (`line`, exactly) is its ready line: a gate
    (grader.harness.gates) for its command line `command` (a
    gates.command_shape), which needs the suite's `usual` one too (also
    when that one closes while this one waits). A client that printed no
    line at all closes `prints(command)` as well."""
    with gates.server_start(command, usual):
        try:
            expect_line_watching(program, line, did, waits.READY,
                                 needed=(gates.ready(usual),) if usual not in (None, command) else ())
        except gates.GateClosed:
            raise
        except GradingFailure as exc:
            if not program.lines:
                gates.settle(prints(command), exc)
            raise
        gates.settle(prints(command), None)


# How often a wait that watches gates looks at them (a file read each).
WATCH = 0.05


def expect_line_watching(program, line: str, did: str, timeout: float,
                         needed: tuple[gates.Gate, ...] = ()) -> None:
    """`program.expect_line(line)` (exactly that line, within `timeout`),
    which fails at once (gates.GateClosed) if one of `needed` is closed,
    also when another test of the run closes it during the wait: a step
    that needs them, started while their own step was still being
    checked, ends with it rather than wait its own time out."""
    if not needed:
        program.expect_line(line, literal=True, did=did, timeout=timeout)
        return
    pattern = re.compile(re.escape(line) + r"\s*$")
    deadline = time.monotonic() + timeout
    while True:
        gates.require(*needed)
        remaining = deadline - time.monotonic()
        ended = program.poll_exit() is not None
        there = any(pattern.match(text) for text in program.lines)
        if ended or there or remaining <= 0:
            break
        program.wait_exit(min(WATCH, remaining))   # a pause that ends at its exit
    if ended or there:              # the line is there, or the program ended: its own verdict
        program.expect_line(line, literal=True, did=did,
                            timeout=max(remaining, waits.FINISHING if ended else 0.0))
        return
    raise GradingFailure(did=did or f"started {program.name} and read its output",
                         expected=f"{program.name} prints a line matching: {line}",
                         got=f"no such line within {timeout:g} s. (its output is shown below)")


def expect_line_once_connected(program, server: "OneShotServer", line: str, did: str,
                               started: float, needed: tuple[gates.Gate, ...] = ()) -> None:
    """A client's `line` (exactly) that comes once it connected to `server`
    (its prompt): within its start-up (START_UP after `started`, when it was
    spawned), and within AFTER_CONNECTING of its connection. A client that
    connected and then stopped costs a reply, not a whole start-up. Fails
    at once when one of `needed` closes (see expect_line_watching)."""
    def exited() -> bool:
        gates.require(*needed)
        return program.poll_exit() is not None
    connected = server.wait_connected(started + START_UP, unless=exited)
    deadline = started + START_UP if connected is None else \
        min(started + START_UP, connected + AFTER_CONNECTING)
    expect_line_watching(program, line, did, max(0.0, deadline - time.monotonic()), needed)


class OneShotServer:
    """Accepts one client, reads `expect` bytes (the message), then sends
    `reply` (or, if `reply` is None, closes without replying), then reads
    until the client closes. Everything received is kept in `received`."""

    def __init__(self, transcript: Transcript, listener: socket.socket, expect: int,
                 reply: bytes | None, name: str = "server") -> None:
        self.transcript = transcript
        self.name = name
        self.expect = expect
        self.reply = reply
        self._listener = listener
        self.host, self.port = listener.getsockname()[:2]
        self.family = listener.family
        self.peer: tuple | None = None          # the client's address, once accepted
        self.connected_at: float | None = None  # when the client was seen connected (monotonic)
        self.received = b""                     # every byte the client sent
        self.message_complete = False           # `expect` bytes arrived
        self.client_closed = False              # the client closed (EOF) or reset
        self.replied = False
        self.error: str | None = None           # a problem in the server thread itself
        self._accepted = threading.Event()
        self._message = threading.Event()       # the message arrived, or never will
        self._done = threading.Event()
        self._stop = threading.Event()
        shown = f"[{self.host}]" if ":" in self.host else self.host
        transcript.note(name, f"listening on {shown}:{self.port}")
        self._thread = threading.Thread(target=self._serve, name=f"fake-server-{self.port}",
                                        daemon=True)
        self._thread.start()

    # -- for the test -----------------------------------------------------------

    @property
    def accepted(self) -> bool:
        return self._accepted.is_set()

    def wait_accepted(self, timeout: float) -> bool:
        return self._accepted.wait(timeout)

    def wait_message(self, timeout: float, unless: Callable[[], bool] | None = None) -> bool:
        """Wait until the `expect` bytes of the message arrived. True if they
        did. `unless` (e.g. "the client has exited") ends the wait early,
        after a short last look (LAST_LOOK) for bytes already on their way."""
        deadline = time.monotonic() + timeout
        while not self._message.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            if unless is not None and unless():
                if self.accepted or self._connection_waiting():
                    self._message.wait(LAST_LOOK)
                break           # else it never connected: nothing is on its way
        return self.message_complete

    def _connection_waiting(self) -> bool:
        """Whether a connection waits on the listening socket to be accepted."""
        try:
            return _readable(self._listener, 0)
        except (OSError, ValueError):   # closed: the thread accepted one, or stopped
            return self.accepted

    def wait_connected(self, deadline: float, unless: Callable[[], bool] | None = None
                       ) -> float | None:
        """Wait until the client has connected (accepted, or waiting in the
        listening socket's queue) or the `deadline` (a time.monotonic())
        passed; `unless` (e.g. "the client has exited") ends the wait early.
        The time it was first seen connected, or None."""
        while True:
            gone = unless is not None and unless()   # before looking: what it did is there
            if self.connected_at is not None:
                return self.connected_at
            if self._connection_waiting():
                self.connected_at = self.connected_at or time.monotonic()
                return self.connected_at
            remaining = deadline - time.monotonic()
            if remaining <= 0 or gone:
                return None
            self._accepted.wait(min(0.05, remaining))

    def needs_message(self, command: str, usual: str | None = None) -> None:
        """For a test that needs its client to send the typed line: fail at
        once if `command` (or the suite's `usual` command line) never did
        in an earlier test (see expect_message)."""
        gates.require(*(gates.sends(c) for c in dict.fromkeys((usual, command)) if c))

    def expect_message(self, command: str, did: str, usual: str | None = None, program=None,
                       closes: bool = True) -> None:
        """The client started as `command` sends its message (the `expect`
        bytes) once its line is typed (now): it connects within its start-up
        (START_UP from now, at the latest) and the message arrives within
        AFTER_CONNECTING of its connection, or of the typing if it had
        connected before. A gate for that command line, which needs the
        `usual` one's too. Once it arrived, the reply is on its way: the
        client's answer to it is a reply away, whatever its start-up took.
        `program`: the client, whose exit ends the waits early. `closes`:
        False for a message that is not the usual kind (its own failure
        proves nothing about the gate, see gates.guard)."""
        typed = time.monotonic()
        needed = (gates.sends(usual),) if usual not in (None, command) else ()
        gates.require(*needed)

        def exited() -> bool:   # and the usual command line's gate, while this one waits
            gates.require(*needed)
            return program is not None and program.poll_exit() is not None
        expected = (f"the server receives the {self.expect} bytes of the typed line: the client "
                    f"connects within {START_UP:g} s and sends them within "
                    f"{AFTER_CONNECTING:g} s of connecting")
        with gates.guard(gates.sends(command), closes=closes):
            connected = self.wait_connected(typed + START_UP, unless=exited)
            if connected is None:
                raise GradingFailure(did=did, expected=expected, got=(
                    "the client exited without connecting" if exited() else
                    f"the client never connected, within {START_UP:g} s"))
            deadline = max(typed, connected) + AFTER_CONNECTING
            if not self.wait_message(deadline - time.monotonic(), unless=exited):
                raise GradingFailure(
                    did=did, expected=expected,
                    got=f"it received {len(self.received)} bytes: {self.received!r}, within "
                        f"{AFTER_CONNECTING:g} s of the connection (or of the typing, if later)")

    def wait_done(self, timeout: float) -> bool:
        """Wait until the conversation is over (the client closed, or the
        server gave up waiting). True if it is over."""
        return self._done.wait(timeout)

    def close(self) -> None:
        """Stop the thread and close every socket. Safe to call twice."""
        self._stop.set()
        self._thread.join(timeout=waits.OWN)
        try:
            self._listener.close()
        except OSError:
            pass

    # -- the thread -----------------------------------------------------------

    def _serve(self) -> None:
        conn = None
        try:
            conn = self._accept()
            if conn is None:
                return
            self._read_message(conn)
            if self.reply is None:
                self.transcript.note(self.name, "closed the connection without replying")
                return
            if self.message_complete:
                conn.sendall(self.reply)
                self.replied = True
                self.transcript.sent(self.name, self.reply)
            self._read_until_close(conn)
        except Exception as exc:   # never let the thread die silently
            self.error = f"{type(exc).__name__}: {exc}"
            self.transcript.note(self.name, f"error in the test's server: {self.error}")
        finally:
            if conn is not None:
                conn.close()
            try:
                self._listener.close()
            except OSError:
                pass
            self._message.set()
            self._done.set()

    def _accept(self) -> socket.socket | None:
        deadline = time.monotonic() + ACCEPT_TIMEOUT
        while not self._stop.is_set():
            if time.monotonic() > deadline:
                return None
            if _readable(self._listener, 0.05):
                conn, self.peer = self._listener.accept()
                self.connected_at = self.connected_at or time.monotonic()
                self._listener.close()         # a second client is refused
                self.transcript.note(self.name, f"accepted a connection from {self.peer[0]}")
                self._accepted.set()
                return conn
        return None

    def _recv(self, conn: socket.socket, deadline: float) -> bytes | None:
        """One chunk; b"" at the client's close; None at the deadline or stop."""
        while not self._stop.is_set() and time.monotonic() < deadline:
            if _readable(conn, 0.05):
                try:
                    chunk = conn.recv(65536)
                except ConnectionResetError:
                    self.transcript.note(self.name, "the client reset the connection")
                    chunk = b""
                if chunk:
                    self.received += chunk
                    self.transcript.received(self.name, chunk)
                else:
                    self.client_closed = True
                    self.transcript.note(self.name, "the client closed the connection")
                return chunk
        return None

    def _read_message(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + READ_TIMEOUT
        while len(self.received) < self.expect:
            chunk = self._recv(conn, deadline)
            if not chunk:
                return
        self.message_complete = True
        self._message.set()

    def _read_until_close(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + READ_TIMEOUT
        while not self.client_closed:
            if self._recv(conn, deadline) is None:
                return


def _readable(sock: socket.socket, seconds: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def _tcp_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock


def listen_on(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); IPv6 sockets are IPv6-only."""
    sock = _tcp_socket(host)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(4)
    except BaseException:
        sock.close()
        raise
    return sock


def hold_refusing(host: str, port: int) -> socket.socket:
    """Bind (host, port) without listening: every connection there is
    refused, and no other process (a parallel grader) can start a server
    on it while the socket is open. No SO_REUSEADDR, so nobody shares it."""
    sock = _tcp_socket(host)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class FakeServers:
    """Starts one-shot servers on free ports, and reserves ports where
    connections are refused; closes everything at the end of a test (use
    it in a fixture).

    A port that is merely free is not a safe "nothing listens here": a
    parallel grader may start a server on it a moment later. So a refusing
    port is held by a bound socket that does not listen."""

    def __init__(self, free_port: Callable[[], int], transcript: Transcript) -> None:
        self.free_port = free_port
        self.transcript = transcript
        self.servers: list[OneShotServer] = []
        self._held: list[socket.socket] = []

    def start(self, host: str = "127.0.0.1", expect: int = 1, reply: bytes | None = b"ok\n",
              name: str = "server", refuse_on: tuple[str, ...] = ()) -> OneShotServer:
        """A OneShotServer on `host` and a free port. `refuse_on`: other
        addresses (e.g. "::1") where the same port must refuse connections,
        as for a name that resolves to several addresses of which one works."""
        for attempt in range(ATTEMPTS):
            port = self.free_port()
            sockets: list[socket.socket] = []
            try:
                sockets.append(listen_on(host, port))
                for other in refuse_on:
                    sockets.append(hold_refusing(other, port))
            except OSError as exc:
                for sock in sockets:
                    sock.close()
                if exc.errno == errno.EADDRINUSE and attempt < ATTEMPTS - 1:
                    continue   # a parallel grader took it first
                raise
            self._held += sockets[1:]
            server = OneShotServer(self.transcript, sockets[0], expect, reply, name=name)
            self.servers.append(server)
            return server
        raise AssertionError("unreachable")

    def refusing_port(self, host: str = "127.0.0.1") -> int:
        """A port on `host` where every connection is refused until the end
        of the test."""
        for attempt in range(ATTEMPTS):
            port = self.free_port()
            try:
                self._held.append(hold_refusing(host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and attempt < ATTEMPTS - 1:
                    continue
                raise
            return port
        raise AssertionError("unreachable")

    def close_all(self) -> None:
        for server in self.servers:
            server.close()
        for sock in self._held:
            sock.close()
        self._held.clear()


# -- a fake resolver ------------------------------------------------------------

_RESOLVER_TEMPLATE = '''
# Installed by the grader: a few made-up host names resolve the way a test
# needs. Every other name goes to the real resolver.
import socket as _socklab_socket

def _socklab_install(plan):
    real = _socklab_socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        key = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        key = key.lower().rstrip(".") if isinstance(key, str) else key
        if key not in plan:
            return real(host, port, family, type, proto, flags)
        if plan[key] is None:
            raise _socklab_socket.gaierror(_socklab_socket.EAI_NONAME,
                                           "Name or service not known")
        found = []
        for ip, fixed_port in plan[key]:
            try:   # the real resolver applies the caller's family and type
                found += real(ip, port if fixed_port is None else fixed_port,
                              family, type, proto, flags)
            except _socklab_socket.gaierror:
                pass
        if not found:
            raise _socklab_socket.gaierror(_socklab_socket.EAI_NONAME,
                                           "Name or service not known")
        return found

    getaddrinfo.__doc__ = real.__doc__
    _socklab_socket.getaddrinfo = getaddrinfo

_socklab_install(PLAN)
del _socklab_install
'''


def fake_resolver_source(plan: dict[str, list[tuple[str, int | None]] | None]) -> str:
    """Python source that makes `socket.getaddrinfo` resolve each made-up
    name of `plan` to its list of (ip, port) candidates, in that order
    (port None: the port the caller asked for), or, for None, fail with
    `socket.gaierror` as for an unknown name. The caller's family and type
    still filter the candidates, as with the real resolver."""
    clean = {name.lower().rstrip("."): (None if entries is None else
                                        [(str(ip), None if p is None else int(p)) for ip, p in entries])
             for name, entries in plan.items()}
    return _RESOLVER_TEMPLATE.replace("PLAN", repr(clean))


def install_fake_resolver(workdir: Path, plan: dict[str, list[tuple[str, int | None]] | None]) -> None:
    """Make every Python program started in `workdir` use the fake resolver
    (through a sitecustomize.py, which Python imports at startup from the
    PYTHONPATH that the harness points at `workdir`)."""
    (Path(workdir) / "sitecustomize.py").write_text(fake_resolver_source(plan), encoding="utf-8")


@pytest.fixture
def servers(free_port, transcript):
    """The test's FakeServers, all closed after it (import it into a suite)."""
    pool = FakeServers(free_port, transcript)
    yield pool
    pool.close_all()


def localhost_ip() -> str:
    """The address `localhost` resolves to first on this machine."""
    return socket.getaddrinfo("localhost", None, socket.AF_UNSPEC, socket.SOCK_STREAM)[0][4][0]
