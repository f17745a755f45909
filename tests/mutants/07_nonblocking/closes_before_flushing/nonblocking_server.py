"""An echo server for many clients at once, in one thread, with no poller.

Usage: python -u nonblocking_server.py PORT

Every socket is switched to non-blocking mode, so accept(), recv() and
send() never wait: they either do their job at once or raise
BlockingIOError ("nothing to do right now"). The server walks over all its
sockets again and again, doing whatever can be done. When a whole pass did
nothing at all it sleeps for a few milliseconds, so that an idle server
does not burn a core asking the same question thousands of times a second.
"""

from __future__ import annotations

import signal
import socket
import sys
import time

BACKLOG = 128          # finished handshakes the kernel may queue for accept()
RECV_SIZE = 65536      # the most bytes we take from one client per pass
IDLE_PAUSE = 0.003     # seconds to sleep after a pass that did no work (<= 5 ms)
MAX_PENDING = 1 << 20  # stop reading from a client whose echo is backed up this much


def log(message: str) -> None:
    """One server line on stdout, flushed at once."""
    print(f"[server] {message}", flush=True)


def usage() -> None:
    print("usage: python nonblocking_server.py PORT   (PORT: 1..65535)", file=sys.stderr)
    sys.exit(1)


def parse_port(argv: list[str]) -> int:
    """The PORT argument, or a usage message on stderr and exit status 1."""
    if len(argv) != 2 or not (argv[1].isascii() and argv[1].isdigit()):
        usage()
    port = int(argv[1])
    if not 1 <= port <= 65535:
        usage()
    return port


class Client:
    """One connection and the bytes we still owe it."""

    def __init__(self, sock: socket.socket, ip: str) -> None:
        self.sock = sock
        self.ip = ip
        # The echo waiting to go out. send() may take only part of it, or
        # nothing at all: whatever it does not take stays here for the next
        # pass. Without this buffer those bytes would simply be lost.
        self.outgoing = bytearray()
        self.eof = False   # the client closed its side; finish the echo, then close
        self.dead = False  # the connection failed; close it now


# ---------------------------------------------------------------- task 1

def open_listener(port: int) -> socket.socket:
    """A non-blocking TCP socket listening on 0.0.0.0:port (OSError if not)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(BACKLOG)
        # From now on accept() returns at once: with a waiting connection,
        # or with BlockingIOError when the queue is empty.
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


def accept_newcomers(listener: socket.socket, clients: list[Client]) -> bool:
    """Accept every connection waiting in the queue. True if there was one."""
    accepted = False
    while True:
        try:
            conn, (ip, _port) = listener.accept()
        except BlockingIOError:
            return accepted        # the queue is empty: nothing more for now
        except OSError:
            # e.g. the client gave up before we got to it, or we are out of
            # descriptors: try again on the next pass rather than loop here.
            return accepted
        # A new connection does NOT inherit non-blocking mode from the
        # listener on Linux: set it, or the first recv() would freeze us.
        conn.setblocking(False)
        clients.append(Client(conn, ip))
        log(f"got connection from {ip}")
        accepted = True


# ---------------------------------------------------------------- task 2

def read_from(client: Client) -> bool:
    """Take what the client sent and queue it as echo. True if anything happened."""
    if client.eof or len(client.outgoing) >= MAX_PENDING:
        # A client that does not read its echo gets no more reading from
        # us either: its data waits in the kernel, and TCP's flow control
        # slows the sender down. Everyone else goes on being served.
        return False
    try:
        data = client.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return False               # nothing has arrived: not an error
    except OSError:
        client.dead = True         # reset or another failure
        return True
    if not data:
        client.eof = True          # b"": the client closed its side
        return True
    client.outgoing += data
    return True


# ---------------------------------------------------------------- task 3

def write_to(client: Client) -> bool:
    """Send as much of the pending echo as the kernel takes. True if any."""
    if not client.outgoing:
        return False
    try:
        sent = client.sock.send(client.outgoing)
    except BlockingIOError:
        return False               # the send buffer is full: try next pass
    except OSError:
        client.dead = True         # broken pipe, reset...
        return True
    # send() reports how much it took; keep the rest, in order.
    del client.outgoing[:sent]
    return sent > 0


def finished(client: Client) -> bool:
    """Has this connection nothing more to do?"""
    return client.dead or client.eof


# ---------------------------------------------------------------- task 4

def serve_forever(listener: socket.socket) -> None:
    clients: list[Client] = []
    while True:
        busy = accept_newcomers(listener, clients)
        for client in clients:
            # Reading and writing are tried for every client on every pass;
            # neither can block, so no client ever holds up another.
            busy |= read_from(client)
            busy |= write_to(client)
        for client in [c for c in clients if finished(c)]:
            clients.remove(client)
            client.sock.close()
            log(f"client {client.ip} hung up")
        if not busy:
            # Nothing was ready anywhere. Without this pause the loop would
            # spin at 100 % of a core; a few milliseconds is short enough
            # that nobody notices the delay.
            time.sleep(IDLE_PAUSE)


def stop(signum: int, _frame: object) -> None:
    """SIGTERM / SIGINT: leave quietly with status 0."""
    raise SystemExit(0)


def main() -> None:
    port = parse_port(sys.argv)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        listener = open_listener(port)
    except OSError as err:
        print(f"nonblocking_server: cannot listen on port {port}: {err}", file=sys.stderr)
        sys.exit(1)
    log(f"listening on 0.0.0.0:{port}")
    with listener:
        serve_forever(listener)


if __name__ == "__main__":
    main()
