"""The chat room again, this time with one thread per connection
(exercise 08_threads).

Usage: python -u threaded_chat_server.py PORT

Fill in the parts marked TODO; everything else is given complete.

The main thread only accepts connections. Each client gets a thread of its
own that sits in a plain blocking recv() and turns every complete line into
"user N: TEXT" for everybody else. The threads share one table of
connected users, and a lock guards it: whoever holds the lock may read or
change the table and send to the users in it, nobody else may.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

USAGE = "usage: python threaded_chat_server.py PORT   (PORT: 1..65535)"
BACKLOG = 128          # connections the kernel may queue before we accept them
RECV_SIZE = 4096       # the most bytes one recv() takes
READY_LINE = "accepting connections"


def parse_port(argv: list[str]) -> int:
    """The PORT argument, or a usage message on stderr and exit status 1."""
    if len(argv) != 2 or not (argv[1].isascii() and argv[1].isdigit()):
        sys.exit(USAGE)
    port = int(argv[1])
    if not 1 <= port <= 65535:
        sys.exit(USAGE)
    return port


def open_listener(port: int) -> socket.socket:
    """A TCP socket listening on 0.0.0.0:port (OSError if impossible)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


class ChatRoom:
    """The table of users, its lock, and what the threads do with them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[int, socket.socket] = {}  # user number (fd) -> socket

    # -- Task 2: telling everybody (call with the lock held) -----------------

    def broadcast(self, text: str, skip: int | None = None) -> None:
        """Print text and send it as a line to every user except `skip`.

        The caller holds self.lock: the table cannot change under our feet
        (no "dictionary changed size during iteration"), and two lines sent
        by two threads never interleave, so every user sees every event in
        the same order."""
        # TODO(task 2): print(text, flush=True), then sendall() the line
        # (text + "\n", encoded as UTF-8) to every socket in self.users
        # except the one numbered `skip`. Do NOT take the lock here: the
        # caller already holds it (a threading.Lock cannot be taken twice).
        # A send that fails (OSError: the user just vanished) must not stop
        # the loop: shut that socket down (sock.shutdown(socket.SHUT_RDWR),
        # ignoring errors) so its own thread notices, and go on.
        raise NotImplementedError("TODO(task 2): send a line to everyone else")

    # -- Task 1: a newcomer --------------------------------------------------

    def join(self, conn: socket.socket) -> int:
        """Add a new connection to the room, welcome it, tell the others."""
        # TODO(task 1): the user's number is conn.fileno(). Holding
        # self.lock: put the socket in self.users, send it
        # "welcome, you are user N\n" (ignore an OSError), and broadcast
        # "user N joined the chat room" to everyone else. Return N.
        raise NotImplementedError("TODO(task 1): add a newcomer to the room")

    # -- Task 2: one thread per client ---------------------------------------

    def serve(self, conn: socket.socket, number: int) -> None:
        """The body of a client's thread: read lines until the client leaves."""
        pending = bytearray()
        try:
            # TODO(task 2): loop: recv(RECV_SIZE) from conn (this blocks
            # only this thread). Stop on b"" or on an OSError. Append what
            # came to `pending`; for every complete line in it (up to
            # b"\n"): remove it from `pending`, strip one trailing b"\r",
            # decode it as UTF-8 with errors="replace", and, holding
            # self.lock, broadcast "user N: TEXT" to everyone but this user.
            raise NotImplementedError("TODO(task 2): read lines and broadcast them")
        finally:
            self.leave(conn, number)

    # -- Task 3: leaving -----------------------------------------------------

    def leave(self, conn: socket.socket, number: int) -> None:
        """Take a user out of the room, close its socket, tell the others."""
        # TODO(task 3): holding self.lock: delete the user from self.users,
        # close conn, then broadcast "user N disconnected". Closing while
        # you hold the lock matters: the number may be given to the very
        # next newcomer, who must not be announced before this departure.
        raise NotImplementedError("TODO(task 3): remove a user who left")


def serve_forever(listener: socket.socket, room: ChatRoom) -> None:
    """The main thread: accept, hand each client to a thread of its own."""
    # TODO(task 1): print(READY_LINE, flush=True), then loop forever:
    # accept a connection (on an OSError, just accept the next one), add it
    # with room.join(conn), and start a thread that runs
    # room.serve(conn, number). Make it a daemon thread (daemon=True), or
    # Ctrl-C will never stop the server: Python waits for every non-daemon
    # thread, and these wait in recv() for as long as their client stays.
    # And call start(), not run(): run() executes it right here, in the
    # main thread, and nobody else gets in until that client leaves.
    raise NotImplementedError("TODO(task 1): accept, and start one thread per client")


def stop(signum, frame):
    """SIGTERM: leave the accept loop the way Ctrl-C (SIGINT) does."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> None:
    port = parse_port(argv)
    signal.signal(signal.SIGTERM, stop)
    try:
        listener = open_listener(port)
    except OSError as err:
        sys.exit(f"threaded_chat_server: cannot listen on port {port}: {err}")

    room = ChatRoom()
    try:
        serve_forever(listener, room)
    except KeyboardInterrupt:
        # Signals are delivered to the main thread only. Take the lock
        # before leaving, so that no client thread is half-way through a
        # print() while the interpreter shuts down (a thread stuck sending
        # to a client that does not read cannot delay us more than 1 s).
        room.lock.acquire(timeout=1.0)
    finally:
        listener.close()


if __name__ == "__main__":
    main(sys.argv)
