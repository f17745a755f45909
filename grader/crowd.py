"""Hundreds or thousands of line clients, driven from one poll() loop.

One LineClient (or one pexpect object) per connection is fine for tens of
clients, but not for a thousand: each would be polled and matched on its
own. A Crowd keeps every connection non-blocking in one `select.poll`
object, reads raw bytes from whichever sockets are ready, and keeps each
member's data as bytes; lines are split and decoded only when a test asks
for them. Only summaries go to the transcript (a thousand clients' every
line would drown it).

    crowd = Crowd(port, transcript)
    members = crowd.join(1000, ready=lambda m: m.line_count() >= 1, window=8)
    crowd.wait_until(lambda: all(m.line_count() >= 2 for m in members), 30,
                     did="...", expected="...")
    lines = members[0].lines()
    crowd.close()

`join` connects members a few at a time (at most `window` whose `ready`
condition does not hold yet): a burst of connections larger than a
server's listen backlog would be dropped by the kernel and retried only
after a second. Meanwhile it watches closely only those few, and reads the
others in bulk every DRAIN_EVERY seconds: reading a thousand sockets every
time one line arrives on each would cost a recv() per line (and on
loopback each recv() contends with the server's send() for the socket).
Uses poll, never select: descriptors go above 1023."""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from typing import Callable

from .failure import GradingFailure
from .transcript import Transcript

RECV_SIZE = 1 << 16
DRAIN_EVERY = 0.1       # seconds between bulk reads of every member in join()


class Member:
    """One connection of a Crowd: what it received, as bytes."""

    def __init__(self, crowd: "Crowd", sock: socket.socket, name: str) -> None:
        self.crowd = crowd
        self.sock = sock
        self.name = name
        self.fd = sock.fileno()
        self.data = bytearray()
        self.newlines = 0       # complete lines received so far
        self.eof = False
        self.reset = False
        self.closed = False

    def line_count(self) -> int:
        return self.newlines

    def lines(self, start: int = 0) -> list[str]:
        """Every complete line received (from line `start` on), without its
        "\\n" (and one "\\r" before it), decoded with replacement."""
        complete = bytes(self.data[: self.data.rfind(b"\n") + 1]) if self.newlines else b""
        out = complete.split(b"\n")[:-1][start:]
        return [raw[:-1].decode("utf-8", "replace") if raw.endswith(b"\r")
                else raw.decode("utf-8", "replace") for raw in out]

    def pending(self) -> bytes:
        """Bytes received after the last complete line."""
        return bytes(self.data[self.data.rfind(b"\n") + 1:])

    def send_line(self, text: str) -> None:
        self.crowd.send(self, (text + "\n").encode("utf-8"))

    def close(self) -> None:
        self.crowd.drop(self)


class Crowd:
    def __init__(self, port: int, transcript: Transcript, host: str = "127.0.0.1",
                 name: str = "crowd", timeout: float = 10.0) -> None:
        self.port = port
        self.host = host
        self.name = name
        self.timeout = timeout
        self.transcript = transcript
        self.poller = select.poll()
        self.members: list[Member] = []
        self._by_fd: dict[int, Member] = {}

    # -- connections ----------------------------------------------------------

    def connect(self, name: str | None = None) -> Member:
        """One more member (a blocking connect, then non-blocking I/O)."""
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        member = Member(self, sock, name or f"{self.name}[{len(self.members)}]")
        self.members.append(member)
        self._by_fd[member.fd] = member
        self.poller.register(member.fd, select.POLLIN)
        return member

    def join(self, count: int, ready: Callable[[Member], bool], window: int = 8,
             timeout: float = 60.0, did: str = "") -> list[Member]:
        """Connect `count` members, at most `window` of them not yet `ready`
        at any time, reading everything meanwhile. Returns them in
        connection order once all are ready."""
        joined: list[Member] = []
        waiting: list[Member] = []
        deadline = time.monotonic() + timeout
        drained = time.monotonic()
        while len(joined) < count or waiting:
            while len(joined) < count and len(waiting) < window:
                member = self.connect()
                joined.append(member)
                waiting.append(member)
            self.pump(0.2, among=waiting)
            if time.monotonic() - drained > DRAIN_EVERY:
                self.pump(0)  # everyone, so that no socket buffer fills up
                drained = time.monotonic()
            waiting = [m for m in waiting if not ready(m)]
            if waiting and time.monotonic() > deadline:
                raise GradingFailure(
                    did=did or f"connected {len(joined)} of {count} clients, a few at a time",
                    expected=f"every client is served within {timeout:g} s",
                    got=f"{len(waiting)} client(s) still waiting, e.g. {waiting[0].name}, which "
                        f"received {bytes(waiting[0].data[-200:])!r}")
        self.transcript.note(self.name, f"{count} clients connected (descriptors "
                             f"{joined[0].fd}..{joined[-1].fd} in the test process)")
        return joined

    def drop(self, member: Member, reset: bool = False) -> None:
        """Close one member's connection (with a reset if asked)."""
        if member.closed:
            return
        if reset:
            member.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.poller.unregister(member.fd)
        except KeyError:
            pass
        self._by_fd.pop(member.fd, None)
        member.sock.close()
        member.closed = True

    def close(self) -> None:
        for member in self.members:
            self.drop(member)

    # -- data -----------------------------------------------------------------

    def send(self, member: Member, data: bytes) -> None:
        """Send all of `data` from `member`, reading the others meanwhile."""
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                view = view[member.sock.send(view):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GradingFailure(
                        did=f"{member.name} sent {len(data)} bytes",
                        expected="the server reads what its clients send",
                        got=f"{len(view)} bytes could not be sent within {self.timeout:g} s")
                self.pump(0.01)

    def pump(self, timeout: float = 0.0, among: list[Member] | None = None) -> int:
        """Read whatever has arrived (waiting up to `timeout` seconds for
        the first byte), from every member or only those `among`. Returns
        how many sockets had something."""
        if among is None:
            poller = self.poller
        else:
            poller = select.poll()
            for member in among:
                if member.fd in self._by_fd:
                    poller.register(member.fd, select.POLLIN)
        ready = poller.poll(timeout * 1000)
        for fd, _events in ready:
            member = self._by_fd.get(fd)
            if member is None:
                continue
            while True:
                try:
                    chunk = member.sock.recv(RECV_SIZE)
                except BlockingIOError:
                    break
                except ConnectionResetError:
                    member.reset = True
                    chunk = b""
                except OSError as exc:
                    if exc.errno == errno.EINTR:
                        continue
                    chunk = b""
                if not chunk:
                    member.eof = True
                    self.poller.unregister(fd)
                    del self._by_fd[fd]
                    if among is not None:
                        poller.unregister(fd)
                    break
                member.data += chunk
                member.newlines += chunk.count(b"\n")
                if len(chunk) < RECV_SIZE:
                    break
        return len(ready)

    def wait_until(self, condition: Callable[[], bool], timeout: float, did: str,
                   expected: str, got: Callable[[], str] | None = None) -> None:
        """Pump until `condition()` holds; fail in words after `timeout`.
        The condition is tested when the sockets go quiet, or every 20 ms
        while data keeps coming (it may look at every member)."""
        deadline = time.monotonic() + timeout
        while not condition():
            checked = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if condition():
                        return
                    raise GradingFailure(did=did, expected=expected,
                                         got=got() if got else f"not after {timeout:g} s")
                if not self.pump(min(remaining, 0.2)) or time.monotonic() - checked > 0.02:
                    break
