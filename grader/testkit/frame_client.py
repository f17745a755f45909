"""Length-prefixed frames for suites whose servers speak them (10_framing).

A frame is a 4-byte unsigned big-endian length, then that many payload
bytes. A FrameClient wraps a LineClient (so the transcript, deadlines and
cleanup of `connect` still apply) and talks in frames instead of lines:

    client = FrameClient(connect(port, name="alice"))
    client.send({"op": "set", "key": "k", "value": 1})      # JSON in one frame
    client.expect_reply({"ok": True}, did="alice stored k")
    client.request({"op": "get", "key": "k"}, {"ok": True, "value": 1},
                   did="alice asked for k")                  # send + expect_reply
    client.send_frame(b"not json")                           # any payload
    reply = client.read_reply(did="...")                     # the parsed JSON
    client.send_one_byte_at_a_time(frame(b"..."))            # one segment per byte
    client.expect_closed(did="...")

JSON replies are compared as parsed values (key order and spacing are
free), strictly typed: `true` is not `1`, `1` is not `"1"`.

A key-value server's first set (10's kv_server.py) is a gate
(grader.harness.gates.first_answer): `first_set` stores a fixed key on a
fresh server's first client, and every test whose own exchanges include a
set (of its own keys and values) needs it (`needs_first_set`), failing at
once when the fixed one went unanswered. Only tests with a set need it:
a program may store values before it answers anything else."""

from __future__ import annotations

import json
import select
import struct
import time

from grader.harness import gates, waits
from grader.harness.failure import GradingFailure
from grader.testkit.line_client import LineClient

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 20
READ_LIMIT = 8 * MAX_FRAME      # a reply announcing more is not read (a broken header)


def frame(payload: bytes) -> bytes:
    """One frame around `payload` (any length: tests also build bad ones)."""
    return HEADER.pack(len(payload)) + payload


def json_bytes(value) -> bytes:
    """`value` as JSON text in UTF-8 (non-ASCII characters as they are)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def show(value) -> str:
    """A JSON value as a student would write it (true, null, "text")."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:180] + f"... ({len(text)} characters)"


def same_json(a, b) -> bool:
    """Equal as JSON values: like ==, but a boolean never equals a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class FrameClient:
    def __init__(self, client: LineClient) -> None:
        self.client = client
        self.name = client.name
        self.transcript = client.transcript

    # -- sending ----------------------------------------------------------------

    def send_frame(self, payload: bytes) -> None:
        self.send_raw(frame(payload))

    def send(self, value) -> None:
        """`value` as JSON, in one frame."""
        self.send_frame(json_bytes(value))

    def send_raw(self, data: bytes) -> None:
        try:
            self.client.send_raw(data)
        except OSError as exc:  # reset or broken pipe: the server closed
            raise self._closed_while_sending(len(data), exc) from None

    def _closed_while_sending(self, size: int, exc: OSError) -> GradingFailure:
        self.transcript.note(self.name, f"sending failed: {exc.strerror or exc}")
        return GradingFailure(
            did=f"{self.name} sent {size} bytes",
            expected="the server keeps the connection open and reads them",
            got=f"the server had closed the connection ({exc.strerror or exc})")

    def send_one_byte_at_a_time(self, data: bytes, pause: float = 0.002) -> None:
        """Deliver `data` as a slow proxy would: every byte in a segment of
        its own (TCP_NODELAY is on), with a short pause after each."""
        self.transcript.note(self.name, f"sends the next {len(data)} bytes one at a time, "
                                        f"{pause * 1000:g} ms apart")
        self.transcript.sent(self.name, data)
        sock = self.client.sock
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        for i in range(len(data)):
            deadline = time.monotonic() + self.client.timeout
            while True:
                try:
                    sock.send(data[i:i + 1])
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GradingFailure(
                            did=f"{self.name} sent {len(data)} bytes one at a time",
                            expected="the server reads what its clients send",
                            got=f"the server stopped reading after {i} of them") from None
                    poller.poll(100)
                except OSError as exc:  # reset or broken pipe
                    raise self._closed_while_sending(len(data), exc) from None
            time.sleep(pause)   # shapes the input: one byte per segment

    # -- receiving --------------------------------------------------------------

    def read_frame(self, did: str, timeout: float | None = None) -> bytes:
        """The next whole frame's payload; a GradingFailure if the server
        closes, says nothing in time, or sends something that is not a frame."""
        wait = self.client.timeout if timeout is None else timeout
        header = self.client.read_bytes(HEADER.size, timeout=wait)
        if len(header) < HEADER.size:
            what = "the server closed the connection" if self.client.eof else \
                f"nothing more within {wait:g} s"
            got = f"{what}" + (f", after {len(header)} byte(s) of a header: {header!r}" if header else "")
            raise GradingFailure(did=did, expected=f"{self.name} receives a reply frame",
                                 got=got + " (no reply)")
        (length,) = HEADER.unpack(header)
        if length > READ_LIMIT:
            raise GradingFailure(
                did=did, expected=f"{self.name} receives a reply frame (a 4-byte big-endian "
                                  "length, then that many bytes of JSON)",
                got=f"the 4 bytes {header!r} announce {length} bytes: is the length sent "
                    "in big-endian order, and nothing else sent before it?")
        payload = self.client.read_bytes(length, timeout=wait)
        if len(payload) < length:
            raise GradingFailure(
                did=did, expected=f"a reply frame of the {length} bytes its header announces",
                got=f"only {len(payload)} bytes came" +
                    (" before the server closed the connection" if self.client.eof
                     else f" within {wait:g} s"))
        return payload

    def read_reply(self, did: str, timeout: float | None = None):
        """The next frame, parsed as JSON."""
        payload = self.read_frame(did, timeout)
        try:
            return json.loads(payload)
        except (ValueError, RecursionError):
            raise GradingFailure(did=did, expected="a reply frame holding JSON text (UTF-8)",
                                 got=f"a frame holding {payload[:300]!r}") from None

    def expect_reply(self, expected, did: str, timeout: float | None = None):
        reply = self.read_reply(did, timeout)
        if not same_json(reply, expected):
            raise GradingFailure(did=did, expected=f"{self.name} receives {show(expected)}",
                                 got=f"{self.name} received {show(reply)}")
        return reply

    def request(self, value, expected, did: str, timeout: float | None = None):
        """Send one JSON request frame and check the reply."""
        self.send(value)
        return self.expect_reply(expected, did=did, timeout=timeout)

    def expect_closed(self, did: str, timeout: float = waits.EOF) -> None:
        """The server must close (or reset) this connection."""
        self.client.expect_eof(did=did, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def reset(self) -> None:
        self.client.reset()


# -- a key-value server's first set: a gate ----------------------------------------

SET_GATE = "set"        # the kind of its gate (grader.harness.gates.answer)
STORES = 'stores a value: a set of a fixed key is answered {"ok": true}'
FIRST_SET = {"op": "set", "key": "first-key", "value": "first value"}


def first_set(client: FrameClient) -> None:
    """Store FIRST_SET, the same set every time: for a fresh server's first
    client, the gate of a set's answer (grader.harness.gates.first_answer)."""
    with gates.first_answer(client.client, SET_GATE, STORES):
        client.request(FIRST_SET, {"ok": True},
                       did=f"connected a client and set the key {show(FIRST_SET['key'])} to "
                           f"{show(FIRST_SET['value'])}")


def needs_first_set(client: FrameClient) -> None:
    """For a test whose own exchanges include a set (other keys, other
    values): fail at once if the server never answered the fixed first set
    in an earlier test (a server that did not answer that one would not
    answer the test's own either)."""
    gates.needs_answer(client.client, SET_GATE, STORES)
