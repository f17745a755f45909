"""A single-client TCP echo server (exercise 01_tcp_server).

Usage: python -u tcp_server.py PORT

Fill in the two functions marked TODO; everything else is given complete.

The server opens a listening socket on every IPv4 interface, waits for one
client, stops listening, then echoes back every chunk the client sends until
the client goes away.
"""

from __future__ import annotations

import signal
import socket
import sys

BACKLOG = 10        # how many finished handshakes the kernel may queue for accept()
CHUNK_SIZE = 4096   # the most bytes we ask recv() for at a time


def log(message: str) -> None:
    """One server line on stdout, flushed at once so a watcher sees it now."""
    print(f"[server] {message}", flush=True)


def parse_port(argv: list[str]) -> int:
    """The PORT argument, or a usage message on stderr and exit status 1."""
    if len(argv) != 2 or not (argv[1].isascii() and argv[1].isdigit()):
        usage()
    port = int(argv[1])
    if not 1 <= port <= 65535:
        usage()
    return port


def usage() -> None:
    print("usage: python tcp_server.py PORT   (PORT: 1..65535)", file=sys.stderr)
    sys.exit(1)


def chunk_text(data: bytes) -> str:
    """What to log for a received chunk: decoded text without its line end."""
    # A chunk is raw bytes: it may hold half a UTF-8 character or plain
    # garbage. "replace" turns any bad byte into U+FFFD instead of raising.
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
        # telnet ends its lines with "\r\n": drop the "\r" as well.
        if text.endswith("\r"):
            text = text[:-1]
    return text


# ---------------------------------------------------------------- task 1

def open_listening_socket(port: int) -> socket.socket:
    """A TCP socket bound to 0.0.0.0:port and listening.

    Raises the OSError of the last candidate when none of them can be bound.
    """
    # TODO(task 1): ask socket.getaddrinfo() for the passive IPv4 TCP
    # addresses of this port (host None, AF_INET, SOCK_STREAM, AI_PASSIVE).
    # For each candidate: create a socket, set SO_REUSEADDR on it, bind it.
    # If a step fails, close that socket and try the next candidate. On the
    # first success, call listen(BACKLOG) and return the socket. If no
    # candidate works, raise the last OSError you caught (main() reports it).
    raise NotImplementedError("TODO(task 1): open the listening socket")


# ---------------------------------------------------------------- task 2

def accept_one_client(listener: socket.socket) -> tuple[socket.socket, str]:
    """Wait for one client, then stop listening.

    Returns the connected socket and the client's IP address.
    """
    # TODO(task 2): accept one connection from the listening socket, print
    # "got connection from IP" with log(), then close the listening socket
    # so that a second client is refused. Return the connected socket and
    # the client's IP address (a string such as "127.0.0.1").
    raise NotImplementedError("TODO(task 2): accept one client")


# ---------------------------------------------------------------- given

def echo_loop(conn: socket.socket, client_ip: str) -> None:
    """Send every chunk back to the client until it hangs up."""
    while True:
        try:
            data = conn.recv(CHUNK_SIZE)  # blocks until bytes or EOF arrive
        except ConnectionError:          # e.g. the client reset the connection
            break
        if not data:                     # b"": the client closed its side
            break
        log(f"received message from client {client_ip}: {chunk_text(data)}")
        try:
            # send() may take only part of the bytes; sendall() loops for us.
            conn.sendall(data)
        except ConnectionError:          # reset or broken pipe while sending
            break
    log(f"client {client_ip} hung up")


def stop(signum: int, _frame: object) -> None:
    """SIGTERM / SIGINT: leave quietly with status 0."""
    raise SystemExit(0)


def main() -> None:
    port = parse_port(sys.argv)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A client may send any text; never let a narrow terminal encoding
    # crash the server while it logs that text.
    sys.stdout.reconfigure(errors="replace")

    try:
        listener = open_listening_socket(port)
    except OSError as err:
        print(f"tcp_server: cannot listen on port {port}: {err}", file=sys.stderr)
        sys.exit(1)

    host, bound_port = listener.getsockname()
    log(f"listening on {host}:{bound_port}")

    with listener:  # closed on any way out (closing twice is harmless)
        conn, client_ip = accept_one_client(listener)
    with conn:
        echo_loop(conn, client_ip)


if __name__ == "__main__":
    main()
