"""Length-prefixed frames: whole messages over a TCP byte stream
(exercise 10_framing).

TCP delivers bytes, not messages: one send() on one side may arrive as
three recv() results on the other, and three send() calls may arrive as
one. To carry messages, both sides agree on a *frame* format. Here every
frame is

    +---------------------------+---------------------------+
    | length: 4 bytes, unsigned, | payload: exactly `length` |
    | big-endian (network order) | bytes                     |
    +---------------------------+---------------------------+

and no payload may be longer than MAX_FRAME bytes, so that a peer cannot
make us reserve gigabytes just by announcing them.

Three tools:
- encode(payload) builds one frame;
- Decoder is for code that reads whatever has arrived (a recv() of any
  size): feed it the bytes, it hands back every frame they complete and
  keeps the unfinished rest for next time;
- recv_exact(sock, n) is for blocking code that knows how many bytes it
  wants next: it loops until it has them all.
"""

from __future__ import annotations

import socket
import struct

MAX_FRAME = 1 << 20    # the largest payload we accept: 1 MiB

# ">" is big-endian (network byte order), "I" an unsigned 32-bit integer.
# Never use native order ("=" or no prefix) on the wire: the two ends may
# be machines of different byte orders.
HEADER = struct.Struct(">I")

RECV_SIZE = 65536      # the most recv_exact asks for in one call


class FrameError(Exception):
    """The stream announced a frame longer than MAX_FRAME (or is otherwise
    not a stream of frames). The connection cannot be trusted any more:
    close it."""


def encode(payload: bytes) -> bytes:
    """One frame: the payload's length in 4 big-endian bytes, then the payload."""
    if len(payload) > MAX_FRAME:
        raise ValueError(f"a payload of {len(payload)} bytes is larger than "
                         f"MAX_FRAME ({MAX_FRAME} bytes)")
    return HEADER.pack(len(payload)) + bytes(payload)


class Decoder:
    """Turns a byte stream, fed in pieces of any size, back into frames."""

    def __init__(self) -> None:
        # Bytes received but not yet returned as a frame. A bytearray, since
        # appending to it and deleting from its front are both cheap.
        self._buffer = bytearray()
        # The payload length of the frame in progress once its header has
        # been read and checked; None while we wait for the next header.
        self._length: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data` to the stream and return every frame it completes, in
        order (possibly none, possibly many). Raises FrameError as soon as a
        header announces more than MAX_FRAME, without waiting for (or
        storing) the payload it announces."""
        self._buffer += data
        frames = []
        while True:
            if self._length is None:
                if len(self._buffer) < HEADER.size:
                    self._buffer.clear()        # not even a whole header: drop it
                    break
                (length,) = HEADER.unpack_from(self._buffer)
                if length > MAX_FRAME:
                    # Check the length *before* waiting for the payload: a
                    # peer that announces 2 GiB must not make us collect it.
                    raise FrameError(f"a frame announces {length} bytes, more than "
                                     f"MAX_FRAME ({MAX_FRAME} bytes)")
                del self._buffer[:HEADER.size]
                self._length = length
            if len(self._buffer) < self._length:
                break                           # the payload is still on its way
            frames.append(bytes(self._buffer[:self._length]))
            del self._buffer[:self._length]
            self._length = None
        return frames


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly `n` bytes from `sock`. recv() returns whatever has arrived,
    which may be less than asked for, so loop until all `n` are here.
    Raises ConnectionError if the peer closes the connection first."""
    received = bytearray()
    while len(received) < n:
        # Ask for what is missing, but in bounded pieces: recv(n) reserves
        # n bytes of memory before anything arrives.
        chunk = sock.recv(min(n - len(received), RECV_SIZE))
        if not chunk:
            raise ConnectionError(f"the peer closed the connection after {len(received)} "
                                  f"of the {n} bytes expected")
        received += chunk
    return bytes(received)
