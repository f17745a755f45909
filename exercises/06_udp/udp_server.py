"""A UDP echo server (exercise 06_udp, tasks 1 and 2).

Usage: python -u udp_server.py PORT

Fill in the two functions marked TODO; everything else is given complete.

The server binds a datagram socket to PORT on every IPv4 interface and sends
every datagram it receives straight back to whoever sent it, as one datagram
holding the very same bytes. There are no connections: one socket talks to
any number of clients, and each datagram says by itself where it came from.
"""

from __future__ import annotations

import signal
import socket
import sys

# The length field of a UDP header is 16 bits, so no datagram can be longer
# than this. recvfrom() returns ONE datagram per call and silently drops the
# part that does not fit in the buffer, so the buffer must fit the largest.
MAX_DATAGRAM = 65535


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
    print("usage: python udp_server.py PORT   (PORT: 1..65535)", file=sys.stderr)
    sys.exit(1)


def format_address(address: tuple) -> str:
    """("127.0.0.1", 5555) -> "127.0.0.1:5555"."""
    return f"{address[0]}:{address[1]}"


# ---------------------------------------------------------------- task 1

def open_udp_socket(port: int) -> socket.socket:
    """A UDP socket bound to 0.0.0.0:port, ready to receive datagrams.

    Raises the OSError of the last candidate when none of them can be bound.
    """
    # TODO(task 1): ask socket.getaddrinfo() for the passive IPv4 UDP
    # addresses of this port (host None, AF_INET, SOCK_DGRAM, AI_PASSIVE).
    # For each candidate: create the socket, set SO_REUSEADDR, bind it.
    # Close the socket of a candidate that fails and try the next one.
    # Return the first bound socket (a datagram socket needs no listen()).
    # If no candidate works, raise the last OSError (main() reports it).
    raise NotImplementedError("TODO(task 1): open and bind the UDP socket")


# ---------------------------------------------------------------- task 2

def serve(sock: socket.socket) -> None:
    """Echo every datagram back to its sender, forever."""
    # TODO(task 2): loop for ever. Receive one datagram with
    # sock.recvfrom(MAX_DATAGRAM), which returns (data, sender). Log
    # "got N bytes from IP:PORT" with log() and format_address(), then send
    # the same bytes back to `sender` with sock.sendto(). Remember that an
    # empty datagram is a real datagram, not an end of anything.
    raise NotImplementedError("TODO(task 2): echo every datagram to its sender")


def stop(signum: int, _frame: object) -> None:
    """SIGTERM / SIGINT: leave quietly with status 0."""
    raise SystemExit(0)


def main() -> None:
    port = parse_port(sys.argv)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    try:
        sock = open_udp_socket(port)
    except OSError as err:
        print(f"udp_server: cannot bind port {port}: {err}", file=sys.stderr)
        sys.exit(1)

    with sock:
        host, bound_port = sock.getsockname()
        log(f"listening on {host}:{bound_port} (udp)")
        serve(sock)


if __name__ == "__main__":
    main()
