"""An echo server for many clients at once, in one thread, with no poller
(exercise 07_nonblocking).

Usage: python -u nonblocking_server.py PORT

Fill in the parts marked TODO; everything else is given complete.

Every socket is switched to non-blocking mode, so accept(), recv() and
send() never wait: they either do their job at once or raise
BlockingIOError ("nothing to do right now"). The server walks over all its
sockets again and again, doing whatever can be done. When a whole pass did
nothing at all it sleeps for a few milliseconds, so that an idle server
does not burn a core asking the same question thousands of times a second.

Not allowed here (the grader reads the file): select, poll, epoll,
selectors, threads, processes and asyncio.
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
    # TODO(task 1): create an IPv4 TCP socket, set SO_REUSEADDR, bind it to
    # ("0.0.0.0", port) and listen(BACKLOG). Then switch it to non-blocking
    # mode so that accept() never waits. If a step fails, close the socket
    # and let the OSError propagate (main() reports it).
    raise NotImplementedError("TODO(task 1): open a non-blocking listening socket")


def accept_newcomers(listener: socket.socket, clients: list[Client]) -> bool:
    """Accept every connection waiting in the queue. True if there was one."""
    # TODO(task 1): call listener.accept() in a loop. BlockingIOError means
    # the queue is empty: return whether you accepted anyone. Any other
    # OSError: return too (try again next pass). For each new connection:
    # make it non-blocking as well (it does not inherit the listener's mode
    # on Linux), append Client(conn, ip) to clients, and
    # log(f"got connection from {ip}").
    raise NotImplementedError("TODO(task 1): accept without blocking")


# ---------------------------------------------------------------- task 2

def read_from(client: Client) -> bool:
    """Take what the client sent and queue it as echo. True if anything happened."""
    if client.eof or len(client.outgoing) >= MAX_PENDING:
        # A client that does not read its echo gets no more reading from
        # us either: its data waits in the kernel, and TCP's flow control
        # slows the sender down. Everyone else goes on being served.
        return False
    # TODO(task 2): recv(RECV_SIZE) from client.sock.
    #   - BlockingIOError: nothing has arrived; that is not work (False).
    #   - any other OSError: mark client.dead (True).
    #   - b"": the client closed its side; mark client.eof (True).
    #   - data: append it to client.outgoing (True).
    raise NotImplementedError("TODO(task 2): read without blocking")


# ---------------------------------------------------------------- task 3

def write_to(client: Client) -> bool:
    """Send as much of the pending echo as the kernel takes. True if any."""
    if not client.outgoing:
        return False
    # TODO(task 3): call client.sock.send(client.outgoing) ONCE.
    #   - BlockingIOError: the kernel's send buffer is full; keep everything
    #     and try again next pass (False).
    #   - any other OSError: mark client.dead (True).
    #   - otherwise it returns how many bytes it took, maybe fewer than you
    #     gave it: delete exactly those from the front of client.outgoing.
    #     Return True if it took anything.
    raise NotImplementedError("TODO(task 3): send what the kernel takes, keep the rest")


def finished(client: Client) -> bool:
    """Has this connection nothing more to do?"""
    # TODO(task 3): a dead client is finished; a client that reached end of
    # file is finished once its outgoing buffer is empty (it is still owed
    # its echo until then).
    raise NotImplementedError("TODO(task 3): decide when a connection is done")


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
        # TODO(task 4): if this whole pass did no work (busy is False),
        # sleep IDLE_PAUSE seconds before the next one. Until you do, the
        # server works but spins at 100 % of a core (watch it in `top`);
        # with much more than 5 ms, every reply after a quiet moment is late.


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
