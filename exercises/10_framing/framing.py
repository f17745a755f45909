"""Length-prefixed frames: whole messages over a TCP byte stream
(exercise 10_framing).

Fill in the parts marked TODO; everything else is given complete.

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
# HEADER.pack(n) gives the 4 bytes of a length, HEADER.unpack_from(buf)
# reads one back (as a tuple of one number), HEADER.size is 4.
HEADER = struct.Struct(">I")

RECV_SIZE = 65536      # the most recv_exact should ask for in one call


class FrameError(Exception):
    """The stream announced a frame longer than MAX_FRAME. The connection
    cannot be trusted any more: close it."""


# ---------------------------------------------------------------- task 1

def encode(payload: bytes) -> bytes:
    """One frame: the payload's length in 4 big-endian bytes, then the payload."""
    # TODO(task 1): raise ValueError if the payload is longer than MAX_FRAME
    # (exactly MAX_FRAME is fine); otherwise return the packed length
    # followed by the payload.
    raise NotImplementedError("TODO(task 1): build one frame")


# ---------------------------------------------------------------- task 2

class Decoder:
    """Turns a byte stream, fed in pieces of any size, back into frames."""

    def __init__(self) -> None:
        # Bytes received but not yet returned as a frame. A bytearray, since
        # appending to it (+=) and deleting from its front (del buf[:n]) are
        # both cheap.
        self._buffer = bytearray()
        # You may add more state here, e.g. the length of the frame in
        # progress once its header has been read.

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data` to the stream and return every frame it completes, in
        order (possibly none, possibly many). Raises FrameError as soon as a
        header announces more than MAX_FRAME, without waiting for (or
        storing) the payload it announces."""
        # TODO(task 2): append data to the buffer, then loop: while the
        # buffer holds a whole header, read the length (raise FrameError at
        # once if it is above MAX_FRAME); if the whole payload is there too,
        # take header and payload off the front of the buffer and add the
        # payload (as bytes) to the list you return; otherwise stop and keep
        # the rest for the next call.
        raise NotImplementedError("TODO(task 2): cut the stream into frames")


# ---------------------------------------------------------------- task 3

def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly `n` bytes from `sock`. recv() returns whatever has arrived,
    which may be less than asked for, so loop until all `n` are here.
    Raises ConnectionError if the peer closes the connection first."""
    # TODO(task 3): call sock.recv() in a loop, asking each time for the
    # bytes still missing (at most RECV_SIZE), until you have n bytes.
    # recv() returning b"" means the peer has closed: raise ConnectionError.
    raise NotImplementedError("TODO(task 3): receive exactly n bytes")
