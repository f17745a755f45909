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
    crowd.wait_until(lambda: all(m.line_count() >= 2 for m in members), waits.CROWD,
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
Uses poll, never select: descriptors go above 1023.

Waits (grader.harness.waits): one connection, one send, or one answer is a
reply (waits.REPLY). A whole crowd step (a thousand joins, a line heard by
every member) has a backstop of its own (`timeout`, waits.CROWD in the
suites), and fails sooner when it stops making progress: when no member
became ready (join) or nothing at all arrived (wait_until) for `quiet`
seconds, a reply's wait by default."""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import struct
import threading
import time
from typing import Callable

from grader.harness import gates, waits
from grader.harness.failure import GradingFailure
from grader.harness.transcript import Transcript

RECV_SIZE = 1 << 16
_DECODING = threading.Lock()    # a member's lines may be asked for from a beside thread
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
        self._decoded: list[str] = []   # the complete lines of data[:_decoded_to], decoded
        self._decoded_to = 0
        self.eof = False
        self.reset = False
        self.closed = False
        self.ordinal = 0        # 1 for its server's first client (see gates.client_connected)

    @property
    def port(self) -> int:
        """The server's port (a client of gates.first_answer has one)."""
        return self.crowd.port

    def line_count(self) -> int:
        return self.newlines

    def lines(self, start: int = 0) -> list[str]:
        """Every complete line received (from line `start` on), without its
        "\\n" (and one "\\r" before it), decoded with replacement."""
        with _DECODING:     # decode only what arrived since the last call
            if len(self._decoded) < self.newlines:
                end = self.data.rfind(b"\n") + 1
                for raw in bytes(self.data[self._decoded_to:end]).split(b"\n")[:-1]:
                    self._decoded.append(raw[:-1].decode("utf-8", "replace")
                                         if raw.endswith(b"\r") else raw.decode("utf-8", "replace"))
                self._decoded_to = end
            return self._decoded[start:]

    def pending(self) -> bytes:
        """Bytes received after the last complete line."""
        return bytes(self.data[self.data.rfind(b"\n") + 1:])

    def send_line(self, text: str) -> None:
        self.crowd.send(self, (text + "\n").encode("utf-8"))

    def close(self) -> None:
        self.crowd.drop(self)


class Crowd:
    def __init__(self, port: int, transcript: Transcript, host: str = "127.0.0.1",
                 name: str = "crowd", timeout: float = waits.REPLY) -> None:
        self.port = port
        self.host = host
        self.name = name
        self.timeout = timeout
        self.transcript = transcript
        self.poller = select.poll()
        self.members: list[Member] = []
        self._by_fd: dict[int, Member] = {}
        self._waited = False    # whether it has waited for data yet (see pump)

    # -- connections ----------------------------------------------------------

    def connect(self, name: str | None = None) -> Member:
        """One more member (a blocking connect, then non-blocking I/O)."""
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setblocking(False)
        return _adopt(self, sock, name)

    def join(self, count: int, ready: Callable[[Member], bool], window: int = 8,
             timeout: float = waits.CROWD, did: str = "",
             quiet: float = waits.REPLY) -> list[Member]:
        """Connect `count` members, at most `window` of them not yet `ready`
        at any time, reading everything meanwhile. Returns them in
        connection order once all are ready. Fails when they are not all
        ready after `timeout`, or when no member became ready for `quiet`
        seconds (each one's readiness is a reply)."""
        joined: list[Member] = []
        waiting: list[Member] = []
        started = progressed = drained = time.monotonic()
        deadline = started + timeout
        while len(joined) < count or waiting:
            while len(joined) < count and len(waiting) < window:
                member = self.connect()
                joined.append(member)
                waiting.append(member)
            self.pump(0.2, among=waiting)
            if time.monotonic() - drained > DRAIN_EVERY:
                self.pump(0)  # everyone, so that no socket buffer fills up
                drained = time.monotonic()
            still = [m for m in waiting if not ready(m)]
            now = time.monotonic()
            if len(still) < len(waiting):
                progressed = now
            waiting = still
            if waiting and (now > deadline or now - progressed > quiet):
                raise GradingFailure(
                    did=did or f"connected {len(joined)} of {count} clients, a few at a time",
                    expected=f"every client is served, each within {quiet:g} s, all within "
                             f"{timeout:g} s",
                    got=f"{len(waiting)} client(s) still waiting"
                        + (f" after {timeout:g} s" if now > deadline else
                           f" ({len(joined) - len(waiting)} of {len(joined)} served; none more "
                           f"for {quiet:g} s)")
                        + f", e.g. {waiting[0].name}, which received "
                          f"{bytes(waiting[0].data[-200:])!r}")
        waits.observed("crowd-join", time.monotonic() - started)
        self.transcript.note(self.name, f"{count} clients connected (descriptors "
                             f"{joined[0].fd}..{joined[-1].fd} in the test process)")
        return joined

    def drop(self, member: Member, reset: bool = False) -> None:
        """Close one member's connection (with a reset if asked)."""
        if member.closed:
            return
        if member is self.members[0]:
            gates.client_closing(self.port, member.sock)
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
        if timeout > 0 and not self._waited:    # a server that never accepts sends nothing
            self._waited = True
            gates.needs_accepted(self.port)
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
                   expected: str, got: Callable[[], str] | None = None,
                   quiet: float = waits.REPLY) -> None:
        """Pump until `condition()` holds; fail in words after `timeout`,
        or as soon as nothing at all has arrived for `quiet` seconds (what
        the condition waits for comes as replies to the test's last
        action). The condition is tested when the sockets go quiet, or
        every 20 ms while data keeps coming (it may look at every member)."""
        started = arrived = time.monotonic()
        deadline = started + timeout
        while not condition():
            checked = time.monotonic()
            while True:
                now = time.monotonic()
                remaining = min(deadline, arrived + quiet) - now
                if remaining <= 0:
                    if condition():
                        return
                    why = f"not after {timeout:g} s" if now >= deadline else \
                        f"nothing more arrived for {quiet:g} s"
                    raise GradingFailure(did=did, expected=expected,
                                         got=f"{got()} ({why})" if got else why)
                some = self.pump(min(remaining, 0.2))
                if some:
                    arrived = time.monotonic()
                if not some or time.monotonic() - checked > 0.02:
                    break
        waits.observed("crowd", time.monotonic() - started)


# -- thousands of idle connections (added for 09_c10k) -------------------------
#
# join() above waits for each member to be served (a welcome line) and
# connects with a blocking connect(): right for a chat room of a thousand.
# connect_many() below opens ten thousand connections to a server that says
# nothing on its own, in a few seconds: non-blocking connects, a batch at a
# time, and between batches a caller's `settle` check (e.g. "the server
# counts them all") so that the server's listen queue never overflows.
#
# Why that matters: the kernel completes a handshake on its own and parks
# the connection in the listener's accept queue, whose size is the
# server's listen() backlog (Python's default 128, the C guide's 10). When
# the queue is full, a new SYN is dropped (the client retries 1 s, 3 s,
# 7 s... later), and with SYN cookies a connection can even look
# established to the client while the server has no trace of it: an idle
# client never sends the segment that would complete it. So batches start
# small and double while the server keeps up; a batch that stalls is reset
# and retried smaller, down to one connection at a time. A correct server
# with a small backlog is slow to fill, never failed.
#
# It stops early, without failing, when the *machine* runs out
# (descriptors, local ports): the caller learns how many it got and why.

# errno values that mean "this machine can open no more", not "the server
# refused": the test goes on with the connections it has.
MACHINE_LIMITS = {errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.ENOMEM}
FIRST_BATCH = 4     # connections in the first batch; doubled after each good one
STALLED = waits.BATCH_CONNECT   # seconds for a batch's connects to complete before backing off


def connect_many(crowd: Crowd, count: int,
                 settle: Callable[[list[Member]], str | None] | None = None,
                 batch: int = 64, timeout: float = waits.REPLY, did: str = "",
                 host: str | None = None, back_off: bool = True,
                 ) -> tuple[list[Member], str | None]:
    """Open up to `count` more members of `crowd` with non-blocking
    connects, in batches of at most `batch`. Returns the new members in the
    order their connections completed, and None, or the reason (in words)
    why the machine allowed fewer than `count`.

    `settle(members)` is called after each batch with every member opened
    so far; it waits until the server has accepted them all and returns
    None, or returns in words what it saw when the server stopped making
    progress. With `back_off` (the default), batches start at FIRST_BATCH
    and double up to `batch`; a batch that stalls (connects not complete
    within STALLED seconds, or `settle` reporting no progress) is reset,
    `settle` is called again until the server has forgotten it, and it is
    retried a quarter the size. Only when single connections stall does it
    fail (GradingFailure). Without `back_off`, each batch is `batch` at
    once and any stall fails (for a test of bursts). A refused or reset
    connection always fails."""
    target = (host or crowd.host, crowd.port)
    members: list[Member] = []
    shortfall: str | None = None
    size = min(FIRST_BATCH, batch) if back_off else batch
    ceiling = batch
    started = time.monotonic()
    while len(members) < count and shortfall is None:
        want = min(size, count - len(members))
        opened, shortfall, trouble = _open_batch(crowd, target, want, len(members),
                                                 STALLED if back_off and size > 1 else timeout,
                                                 did)
        members += opened
        if trouble is None and settle is not None and opened:
            trouble = settle(members)
        if trouble is None:
            size = min(ceiling, size * 2) if back_off else size
            continue
        if not back_off or size == 1:
            raise GradingFailure(
                did=did or f"opened {len(members)} connections to port {crowd.port}",
                expected="the server accepts every connection"
                         + (", even one at a time" if back_off else " waiting in its listen queue"),
                got=trouble)
        # Back off: reset this batch, let the server forget it, retry smaller.
        for member in opened:
            crowd.drop(member, reset=True)
            crowd.members.remove(member)
        del members[len(members) - len(opened):]
        crowd.transcript.note(crowd.name, f"a batch of {len(opened)} connections stalled; reset "
                                          f"it, retrying {max(1, size // 4)} at a time")
        if settle is not None and members:
            again = settle(members)
            if again is not None:
                raise GradingFailure(
                    did=(did or f"opened {len(members) + len(opened)} connections") +
                        f"; reset the last {len(opened)}, which the server had not all accepted",
                    expected="the server forgets the connections that were reset",
                    got=again)
        ceiling = max(1, size // 2)
        size = max(1, size // 4)
    if members:
        crowd.transcript.note(
            crowd.name, f"{len(members)} connections opened in {time.monotonic() - started:.1f} s "
                        f"(descriptors {min(m.fd for m in members)}..{max(m.fd for m in members)} "
                        "in the test process)" + (f"; stopped early: {shortfall}" if shortfall else ""))
    return members, shortfall


def _open_batch(crowd: Crowd, target: tuple[str, int], want: int, before: int, patience: float,
                did: str) -> tuple[list[Member], str | None, str | None]:
    """Start `want` non-blocking connects and wait up to `patience` seconds
    for them to complete. Returns the members made, the machine's reason
    for opening fewer (or None), and what went wrong in words (or None)."""
    pending: dict[int, socket.socket] = {}
    shortfall: str | None = None
    for _ in range(want):
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            if exc.errno not in MACHINE_LIMITS:
                raise
            shortfall = f"this process can open no more sockets ({exc.strerror})"
            break
        sock.setblocking(False)
        code = sock.connect_ex(target)
        if code in (0, errno.EINPROGRESS):
            pending[sock.fileno()] = sock
            continue
        sock.close()
        if code in MACHINE_LIMITS:
            shortfall = f"the machine has no more local ports or buffers ({os.strerror(code)})"
            break
        _close_all(pending)
        raise GradingFailure(
            did=did or f"opened {before} connections to port {target[1]}",
            expected="the server accepts every connection",
            got=f"connection {before + len(pending) + 1} failed at once: {os.strerror(code)}")
    opened: list[Member] = []
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    started = time.monotonic()
    deadline = started + patience
    while pending:
        remaining = deadline - time.monotonic()
        ready = poller.poll(remaining * 1000) if remaining > 0 else []
        if not ready:
            waiting = len(pending)
            _close_all(pending, reset=True)
            return opened, shortfall, (
                f"{waiting} of {want} connections were not established within {patience:g} s: "
                "the server's listen queue stayed full")
        for fd, _events in ready:
            sock = pending.pop(fd)
            poller.unregister(fd)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                sock.close()
                _close_all(pending)
                for member in opened:
                    crowd.drop(member)
                raise GradingFailure(
                    did=did or f"opened {before + len(opened) + 1} connections to port {target[1]}",
                    expected="the server accepts every connection",
                    got=f"connection {before + len(opened) + 1} failed: {os.strerror(code)}")
            opened.append(_adopt(crowd, sock))
    waits.observed("connect-batch", time.monotonic() - started)
    return opened, shortfall, None


def _adopt(crowd: Crowd, sock: socket.socket, name: str | None = None) -> Member:
    """Make a connected non-blocking socket a member of `crowd` (counted
    as a client of its server: see grader.harness.gates.client_connected)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    member = Member(crowd, sock, name or f"{crowd.name}[{len(crowd.members)}]")
    if not crowd.members:
        member.ordinal = gates.client_connected(crowd.port, sock.getsockname()[1])
    crowd.members.append(member)
    crowd._by_fd[member.fd] = member
    crowd.poller.register(member.fd, select.POLLIN)
    return member


def _close_all(pending: dict[int, socket.socket], reset: bool = False) -> None:
    for sock in pending.values():
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    pending.clear()


def reset_all(crowd: Crowd) -> None:
    """Close every member with a reset (RST) instead of a FIN. Thousands of
    ordinary closes would leave thousands of TIME_WAIT entries (60 s each on
    Linux) holding the machine's local ports; a reset leaves none. The
    server sees each connection reset, which it must survive anyway."""
    for member in crowd.members:
        crowd.drop(member, reset=True)


def latency_percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` percentile (0.99 for p99) of `samples`, nearest rank."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def wait_among(crowd: Crowd, among: list[Member], condition: Callable[[], bool],
               timeout: float, did: str, expected: str,
               got: Callable[[], str] | None = None) -> None:
    """Like Crowd.wait_until, but reads only the members `among` and tests
    `condition()` after every read: for a request and its reply (a few
    sockets, a few bytes), where waiting for the whole crowd to go quiet
    would add a pause to every round trip. The others' data stays in their
    sockets until the next crowd.pump()."""
    started = time.monotonic()
    deadline = started + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GradingFailure(did=did, expected=expected,
                                 got=got() if got else f"not after {timeout:g} s")
        crowd.pump(min(remaining, 0.5), among=among)
    waits.observed("crowd-answer", time.monotonic() - started)
