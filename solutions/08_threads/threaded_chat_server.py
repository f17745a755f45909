"""The chat room again, this time with one thread per connection.

Usage: python -u threaded_chat_server.py PORT

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
ACCEPT_WAKEUP = 0.5    # seconds: how late a Ctrl-C may be noticed, at worst


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
        print(text, flush=True)
        data = (text + "\n").encode("utf-8")
        for number, sock in self.users.items():
            if number == skip:
                continue
            try:
                sock.sendall(data)
            except OSError:
                # That user vanished while we were talking to it. Its own
                # thread will notice too (its recv() fails or returns b"")
                # and remove it; shutting the socket down makes sure of it.
                # Here we only move on to the next user.
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- Task 1: a newcomer --------------------------------------------------

    def join(self, conn: socket.socket) -> int:
        """Add a new connection to the room, welcome it, tell the others."""
        number = conn.fileno()  # as in the guide: the user's number is its descriptor
        with self.lock:
            self.users[number] = conn
            try:
                conn.sendall(f"welcome, you are user {number}\n".encode("utf-8"))
            except OSError:
                pass  # gone already: its thread will find out and clean up
            self.broadcast(f"user {number} joined the chat room", skip=number)
        return number

    # -- Task 2: one thread per client ---------------------------------------

    def serve(self, conn: socket.socket, number: int) -> None:
        """The body of a client's thread: read lines until the client leaves."""
        pending = bytearray()
        try:
            while True:
                try:
                    chunk = conn.recv(RECV_SIZE)  # blocks this thread only
                except OSError:
                    break                         # reset, or shut down by broadcast()
                if not chunk:
                    break                         # b"": the client closed its side
                pending += chunk
                # TCP has no message boundaries: act on complete lines only.
                while (end := pending.find(b"\n")) != -1:
                    line = bytes(pending[:end])
                    del pending[: end + 1]
                    if line.endswith(b"\r"):
                        line = line[:-1]          # telnet sends "\r\n"
                    text = line.decode("utf-8", errors="replace")
                    with self.lock:
                        self.broadcast(f"user {number}: {text}", skip=number)
        finally:
            self.leave(conn, number)

    # -- Task 3: leaving -----------------------------------------------------

    def leave(self, conn: socket.socket, number: int) -> None:
        """Take a user out of the room, close its socket, tell the others."""
        with self.lock:
            del self.users[number]
            # Close while still holding the lock: the number (a descriptor)
            # may be handed out again by the very next accept(), but that
            # newcomer can only join once we have announced this departure.
            conn.close()
            self.broadcast(f"user {number} disconnected")


def serve_forever(listener: socket.socket, room: ChatRoom) -> None:
    """The main thread: accept, hand each client to a thread of its own."""
    print(READY_LINE, flush=True)
    # accept() wakes up every half second even with nobody coming. Python
    # runs signal handlers only in the main thread, between two steps of
    # Python code; a Ctrl-C that comes while other threads are busy may be
    # noted too late to interrupt the accept() the main thread then sleeps
    # in, and waits for the next wake-up. Without the timeout, that could
    # be the next client, that is, never.
    listener.settimeout(ACCEPT_WAKEUP)
    while True:
        try:
            conn, _address = listener.accept()
        except OSError:
            continue  # no one came (a timeout), or a client gave up before we accepted it
        conn.settimeout(None)  # the client's thread blocks in recv(), however long it takes
        number = room.join(conn)
        # daemon=True: these threads must not keep the process alive when
        # the main thread exits (on SIGTERM or Ctrl-C); each one is blocked
        # in recv() and would otherwise wait for its client forever.
        worker = threading.Thread(target=room.serve, args=(conn, number),
                                  name=f"user-{number}", daemon=True)
        start_without_signals(worker)


def start_without_signals(thread: threading.Thread) -> None:
    """Start `thread` with SIGINT and SIGTERM blocked in it (a new thread
    inherits the signal mask of the thread that starts it). The kernel hands
    a signal to any thread that does not block it; one that lands in a
    client's thread leaves the main thread asleep in accept(), and Python
    runs the handler only in the main thread: Ctrl-C would then go unheard
    until the next connection. Blocked there, they always reach the main
    thread."""
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
