"""A telnet-style line client for talking to a student's server.

It reads whole lines (a server may split a line over several segments or
pack several lines in one), strips the "\\r\\n" or "\\n" ending, and records
everything it sends and receives in the test's transcript. Reads always
have a deadline, so a silent server fails a test instead of hanging it."""

from __future__ import annotations

import re
import select
import socket
import struct
import time

from grader.harness import gates, waits
from grader.harness.failure import GradingFailure
from grader.harness.transcript import Transcript

DEFAULT_TIMEOUT = waits.REPLY


class LineClient:
    def __init__(self, port: int, transcript: Transcript, name: str = "client",
                 host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT,
                 sock: socket.socket | None = None, peer: str | None = None) -> None:
        self.name = name
        self.port = port
        self.host = host
        self.timeout = timeout
        self.transcript = transcript
        self._buffer = b""
        self.last_raw = b""     # the last line as it came, before "\r" was stripped
        self.eof = False
        self.closed = False
        self.ordinal = 0        # the how-manieth client of its server (see gates.client_connected)
        self._waited = False    # whether it has waited for data yet (see _fill)
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = sock
        self.sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Each send() leaves at once: a test that splits a line means it.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transcript.note(name, f"connected to {peer or f'{host}:{port}'}")

    # -- sending --------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Send every byte, waiting while the socket's buffer is full."""
        self.transcript.sent(self.name, data)
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise GradingFailure(
                    did=f"{self.name} sent {len(data)} bytes",
                    expected="the server keeps the connection open and reads them",
                    got=f"the server had closed or reset the connection ({exc.strerror}); "
                        f"{len(view)} bytes were never sent",
                ) from None
            except BlockingIOError:
                if not _wait(self.sock, select.POLLOUT, deadline):
                    raise GradingFailure(
                        did=f"{self.name} sent {len(data)} bytes",
                        expected="the server reads what its clients send",
                        got=f"the server stopped reading; {len(view)} bytes could not be sent "
                            f"within {self.timeout:g} s",
                    )

    def send_line(self, text: str, ending: str = "\n") -> None:
        self.send_raw((text + ending).encode("utf-8"))

    def shutdown_write(self) -> None:
        """Half-close: the server sees end of file, we can still read."""
        self.transcript.note(self.name, "half-closed (shutdown SHUT_WR)")
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Abort the connection: the server gets a reset, not a clean EOF."""
        self.transcript.note(self.name, "reset the connection (RST)")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close(note=False)

    def close(self, note: bool = True) -> None:
        if not self.closed:
            if note:
                self.transcript.note(self.name, "closed the connection")
            self.closed = True
            if self.sock.family in (socket.AF_INET, socket.AF_INET6):
                gates.client_closing(self.port, self.sock)
            self.sock.close()

    # -- receiving ------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Read whatever has arrived; False if nothing came before the deadline."""
        if self.eof:
            return False
        if not self._waited:    # a server that never accepts sends nothing: a gate
            self._waited = True
            gates.needs_accepted(self.port)
        if not _wait(self.sock, select.POLLIN, deadline):
            return False
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            self.transcript.note(self.name, "connection reset by the server")
            chunk = b""
        if not chunk:
            self.eof = True
            self.transcript.note(self.name, "end of stream (the server closed)")
            return False
        self._buffer += chunk
        return True

    def read_line(self, timeout: float | None = None) -> str | None:
        """The next complete line, without its ending; None at end of stream
        or when nothing complete arrived in time (see .eof to tell apart)."""
        started = time.monotonic()
        deadline = started + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buffer:
            if not self._fill(deadline):
                return None
        waits.observed("reply", time.monotonic() - started)
        raw, self._buffer = self._buffer.split(b"\n", 1)
        self.last_raw = raw
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self.transcript.received(self.name, raw)
        return raw.decode("utf-8", errors="replace")

    def read_bytes(self, count: int, timeout: float | None = None) -> bytes:
        """Exactly `count` bytes (fewer only at end of stream or timeout)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buffer) < count:
            if not self._fill(deadline):
                break
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        self.transcript.received(self.name, data)
        return data

    def expect_line(self, expected: str | re.Pattern, did: str,
                    timeout: float | None = None) -> str | re.Match:
        """The next line must be `expected` (text, exactly) or match it (regex).
        Returns the line, or the match for a regex."""
        line = self.read_line(timeout)
        shown = expected if isinstance(expected, str) else f"a line matching {expected.pattern}"
        if line is None:
            what = "the server closed the connection" if self.eof else \
                f"nothing (no complete line within {self.timeout if timeout is None else timeout:g} s)"
            partial = f"; incomplete data received: {self._buffer!r}" if self._buffer else ""
            raise GradingFailure(did=did, expected=f"{self.name} receives {shown!r}",
                                 got=f"{self.name} received {what}{partial}")
        if isinstance(expected, str):
            if line != expected:
                raise GradingFailure(did=did, expected=f"{self.name} receives {expected!r}",
                                     got=f"{self.name} received {line!r}")
            return line
        match = expected.fullmatch(line)
        if not match:
            raise GradingFailure(did=did, expected=f"{self.name} receives {shown}",
                                 got=f"{self.name} received {line!r}")
        return match

    def expect_eof(self, did: str, timeout: float | None = None) -> None:
        """The server must close this connection (after any pending lines)."""
        started = time.monotonic()
        deadline = started + (self.timeout if timeout is None else timeout)
        while not self.eof:
            if not self._fill(deadline) and not self.eof:
                raise GradingFailure(did=did, expected=f"the server closes {self.name}'s connection",
                                     got=f"the connection was still open after "
                                         f"{self.timeout if timeout is None else timeout:g} s")
        waits.observed("eof", time.monotonic() - started)
        if self._buffer:
            leftover, self._buffer = self._buffer, b""
            self.transcript.received(self.name, leftover)

    def pending(self) -> bytes:
        """What has arrived without a line ending yet (for messages)."""
        return self._buffer


def _wait(sock: socket.socket, event: int, deadline: float) -> bool:
    """Block until `sock` is ready for `event` or the deadline passes.
    Uses poll, never select: descriptors above 1023 are common here."""
    poller = select.poll()
    poller.register(sock, event)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if poller.poll(remaining * 1000):
            return True


def send_while_reading(client: LineClient, data: bytes, sent: int = 0, chunk: int = 1 << 16,
                       pause: float = 0.0, quiet: float = waits.REPLY,
                       timeout: float = waits.BULK) -> bytes:
    """Send `data` from offset `sent` while reading what comes back at the
    same time (a server that answers as it reads would otherwise block us
    both): `chunk` bytes per recv(), `pause` seconds after each (a slow
    reader). Returns what came back: `len(data)` bytes, or fewer if the
    server closed or reset, made no progress for `quiet` seconds (by
    default a reply's wait: every piece of the echo is a reply), or
    `timeout` passed. A send that fails is noted, and the reading goes on.
    Uses poll on the client's non-blocking socket, never select."""
    received = bytearray()
    poller = select.poll()
    started = last = time.monotonic()
    deadline = started + timeout
    while len(received) < len(data) and not client.eof:
        poller.register(client.sock, select.POLLIN | (select.POLLOUT if sent < len(data) else 0))
        wait = min(quiet, deadline - time.monotonic())
        if wait <= 0 or not poller.poll(wait * 1000):
            break
        now = time.monotonic()
        waits.observed("progress", now - last)
        last = now
        if sent < len(data):
            try:
                sent += client.sock.send(data[sent:sent + (1 << 16)])
            except BlockingIOError:
                pass
            except OSError as exc:  # the server closed or reset: read what is left
                client.transcript.note(client.name, f"sending failed: {exc}")
                sent = len(data)
        try:
            piece = client.sock.recv(chunk)
            if piece:
                received += piece
                if pause:
                    time.sleep(pause)  # shapes the reading: a slow client
            else:
                client.eof = True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            client.eof = True
    if len(received) == len(data):
        waits.observed("bulk", time.monotonic() - started)
    return bytes(received)


def echo_exchange(client: LineClient, data: bytes, timeout: float = waits.BULK) -> bytes:
    """Send `data` while reading the echo (send_while_reading), with both
    sides in the transcript; returns what came back."""
    client.transcript.sent(client.name, data)
    received = send_while_reading(client, data, timeout=timeout)
    client.transcript.received(client.name, received)
    return received
