"""UDP peers for suites that test datagram programs (06_udp).

Three kinds of peer, all bound to loopback on a port of their own, all
recording in the test's transcript what they sent and received (the other
end is named when the suite told its name, e.g. "server", else shown as
IP:PORT):

- `UdpSocket`: a plain datagram socket a test drives itself, as a client
  of a student's server or as a stranger who writes to a student's client;
- `FakeUdpServer`: a server in a thread of the test process for a
  student's client. It counts every datagram it gets (with the time it got
  it), drops the first `drop_first` of them as if they were lost on the
  way, and answers each later one with `answer(data)`, or never answers
  when `answer` is None. `before_answer(datagram)` runs just before each
  answer: a suite uses it to let a stranger write to the client first,
  once the client's port is known;
- `occupy_port(port, reuse)`: a UDP socket holding a port, for the
  "port in use" and SO_REUSEADDR rules.

    peers = UdpPeers(transcript)             # one per test (the `udp` fixture)
    alice = peers.socket("alice")
    peers.name_address(("127.0.0.1", port), "server")
    alice.send_to(b"hi", ("127.0.0.1", port))
    echo = alice.receive(timeout=waits.REPLY)    # a Datagram, or None
    fake = peers.fake_server(drop_first=1, answer=lambda data: b"ack")
    fake.wait_for(2, timeout=waits.REPLY)    # True once 2 datagrams came
    peers.close_all()                        # in the fixture's teardown

Every wait has a deadline and ends as soon as its condition holds; nothing
here sleeps. Waiting uses poll, never select."""

from __future__ import annotations

import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from grader.harness import waits
from grader.harness.transcript import Transcript

MAX_DATAGRAM = 65535
LAST_LOOK = waits.SILENCE    # seconds for datagrams already sent to be read


# The kernel stamps each datagram as it arrives (SO_TIMESTAMP, Linux), so
# that when it came does not depend on how soon a busy grader read it: the
# gaps between a client's retries are the client's, whatever else runs.
# (The kernel turns stamping on a moment after the first socket asks, by
# deferred work; a datagram that arrives before is stamped when read, as
# without the option. A student's program starts long after.)
SO_TIMESTAMP = 29
_TIMEVAL = struct.Struct("@ll")
_STAMPED = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Datagram:
    data: bytes
    sender: tuple[str, int]     # (ip, port)
    at: float                   # time.monotonic() when it arrived (the kernel's stamp)


def _stamp(sock: socket.socket) -> None:
    if _STAMPED:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)


def _receive(sock: socket.socket) -> tuple[bytes, tuple, float]:
    """(data, sender, when it arrived on time.monotonic()'s clock)."""
    if not _STAMPED:
        data, sender = sock.recvfrom(MAX_DATAGRAM)
        return data, sender, time.monotonic()
    data, ancillary, _flags, sender = sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(_TIMEVAL.size))
    now_mono, now_real = time.monotonic(), time.time()
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(payload) >= _TIMEVAL.size:
            seconds, micros = _TIMEVAL.unpack_from(payload)
            waited = now_real - (seconds + micros / 1e6)
            return data, sender, now_mono - min(max(waited, 0.0), 1.0)
    return data, sender, now_mono


def format_address(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def occupy_port(port: int, reuse: bool = False, host: str = "0.0.0.0") -> socket.socket:
    """A UDP socket bound to (host, port), with SO_REUSEADDR set if `reuse`.
    The caller closes it. Without `reuse`, any later bind of the port fails
    with "Address already in use"; with it, Linux lets a later socket that
    also sets SO_REUSEADDR share the port (and refuses one that does not)."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Labels:
    """Names of known addresses, shared by the peers of one test."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def set(self, address: tuple, name: str) -> None:
        with self._lock:
            self._names[(address[0], address[1])] = name

    def get(self, address: tuple) -> str:
        with self._lock:
            name = self._names.get((address[0], address[1]))
        return name or format_address(address)


class UdpSocket:
    """A datagram socket of the test, bound to `host` (port 0: any free one)."""

    def __init__(self, transcript: Transcript, name: str, host: str = "127.0.0.1",
                 port: int = 0, labels: _Labels | None = None) -> None:
        self.transcript = transcript
        self.name = name
        self.labels = labels or _Labels()
        self.sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        _stamp(self.sock)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.labels.set(self.address, name)
        self.closed = False
        transcript.note(name, f"UDP socket bound to {format_address(self.address)}")

    @property
    def port(self) -> int:
        return self.address[1]

    def send_to(self, data: bytes, address: tuple) -> None:
        """Send `data` as one datagram to `address`."""
        self.transcript.sent(f"{self.name} to {self.labels.get(address)}", data)
        self.sock.sendto(data, address)

    def receive(self, timeout: float) -> Datagram | None:
        """The next datagram, or None if none arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                return None
            try:
                data, sender, at = _receive(self.sock)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionRefusedError:
                # an ICMP "port unreachable" for an earlier datagram
                self.transcript.note(self.name, "was told: nothing listens there (ICMP)")
                continue
            datagram = Datagram(data, sender[:2], at)
            self.transcript.received(f"{self.name} from {self.labels.get(sender)}", data)
            return datagram

    def receive_many(self, count: int, timeout: float) -> list[Datagram]:
        """Up to `count` datagrams: returns as soon as `count` arrived, or
        what had arrived when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        got: list[Datagram] = []
        while len(got) < count:
            datagram = self.receive(max(0.0, deadline - time.monotonic()))
            if datagram is None:
                break
            got.append(datagram)
        return got

    def collect_for(self, seconds: float) -> list[Datagram]:
        """Every datagram that arrives within `seconds` (a window for
        checking that nothing more comes, not a wait for something)."""
        deadline = time.monotonic() + seconds
        got: list[Datagram] = []
        while (datagram := self.receive(max(0.0, deadline - time.monotonic()))) is not None:
            got.append(datagram)
        return got

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class FakeUdpServer(UdpSocket):
    """A stand-in server for a student's client; see the module's text."""

    def __init__(self, transcript: Transcript, name: str = "fake server",
                 host: str = "127.0.0.1", port: int = 0, drop_first: int = 0,
                 answer: Callable[[bytes], bytes] | None = None,
                 before_answer: Callable[[Datagram], None] | None = None,
                 labels: _Labels | None = None, peer_name: str | None = None) -> None:
        super().__init__(transcript, name, host, port, labels)
        self.peer_name = peer_name      # shown for the first unknown sender
        self.drop_first = drop_first
        self.answer = answer
        self.before_answer = before_answer
        self._received: list[Datagram] = []
        self._cond = threading.Condition()
        self.error: BaseException | None = None     # a failure of the thread itself
        self._wake_r, self._wake_w = socket.socketpair()
        behaviour = ("never answers" if answer is None else
                     f"drops the first {drop_first} datagram(s), answers the rest"
                     if drop_first else "answers every datagram")
        transcript.note(name, behaviour)
        self._thread = threading.Thread(target=self._serve, name=f"fake-udp-{self.port}",
                                        daemon=True)
        self._thread.start()

    # -- for the test ---------------------------------------------------------

    @property
    def received(self) -> list[Datagram]:
        """Every datagram received so far, in order."""
        with self._cond:
            return list(self._received)

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._received)

    def wait_for(self, count: int, timeout: float,
                 unless: Callable[[], bool] | None = None) -> bool:
        """Wait until at least `count` datagrams came; False on timeout.
        `unless` (e.g. "the client has exited") ends the wait early: it is
        checked every 50 ms, and once it holds, datagrams already on their
        way still get a short last look (LAST_LOOK seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._received) < count and self.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if unless is not None and unless():
                    deadline = min(deadline, time.monotonic() + LAST_LOOK)
                    unless = None
                    continue
                self._cond.wait(remaining if unless is None else min(remaining, 0.05))
            return len(self._received) >= count

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout=waits.OWN)
        self._wake_r.close()
        self._wake_w.close()
        super().close()

    # -- the thread -----------------------------------------------------------

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        wake = self._wake_r.fileno()
        try:
            while True:
                events = poller.poll()
                if any(fd == wake for fd, _ in events):
                    return
                try:
                    data, sender, at = _receive(self.sock)
                except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                    continue
                datagram = Datagram(data, sender[:2], at)
                if self.peer_name and self.labels.get(sender) == format_address(sender):
                    self.labels.set(sender, self.peer_name)
                    self.transcript.note(self.name, f"{self.peer_name} is at {format_address(sender)}")
                    self.peer_name = None
                self.transcript.received(f"{self.name} from {self.labels.get(sender)}", data)
                with self._cond:
                    self._received.append(datagram)
                    index = len(self._received)
                    self._cond.notify_all()
                if index <= self.drop_first:
                    self.transcript.note(self.name, f"dropped datagram {index} (as if lost)")
                    continue
                if self.answer is None:
                    self.transcript.note(self.name, f"did not answer datagram {index}")
                    continue
                if self.before_answer is not None:
                    self.before_answer(datagram)
                self.send_to(self.answer(data), sender)
        except BaseException as exc:  # recorded for the test, never lost silently
            with self._cond:
                self.error = exc
                self._cond.notify_all()
            self.transcript.note(self.name, f"fake server failed: {exc!r}")


class UdpPeers:
    """Every UDP peer of one test, so a fixture can close them all."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.labels = _Labels()
        self._peers: list[UdpSocket] = []

    def name_address(self, address: tuple, name: str) -> None:
        """Show `address` as `name` in the transcript (e.g. the student's server)."""
        self.labels.set(address, name)

    def socket(self, name: str, host: str = "127.0.0.1", port: int = 0) -> UdpSocket:
        peer = UdpSocket(self.transcript, name, host, port, self.labels)
        self._peers.append(peer)
        return peer

    def fake_server(self, name: str = "fake server", host: str = "127.0.0.1", port: int = 0,
                    drop_first: int = 0, answer: Callable[[bytes], bytes] | None = None,
                    before_answer: Callable[[Datagram], None] | None = None,
                    peer_name: str | None = "client") -> FakeUdpServer:
        """A FakeUdpServer; the first unknown sender is shown as `peer_name`."""
        peer = FakeUdpServer(self.transcript, name, host, port, drop_first, answer,
                             before_answer, self.labels, peer_name)
        self._peers.append(peer)
        return peer

    def close_all(self) -> None:
        for peer in self._peers:
            peer.close()
        self._peers.clear()


@pytest.fixture
def udp(transcript):
    """The test's UDP peers, all closed after it (import it into a suite)."""
    peers = UdpPeers(transcript)
    yield peers
    peers.close_all()
