"""A UDP echo server.

Usage: python -u udp_server.py PORT

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
    # The same passive lookup as for a TCP server, except for the socket
    # type: SOCK_DGRAM asks for datagram (UDP) candidates.
    candidates = socket.getaddrinfo(
        None, port, socket.AF_INET, socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )
    last_error: OSError | None = None
    for family, socktype, proto, _canonname, sockaddr in candidates:
        try:
            sock = socket.socket(family, socktype, proto)
        except OSError as err:
            last_error = err
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
        except OSError as err:
            last_error = err
            sock.close()
            continue
        # No listen() and no accept(): a datagram socket has no connections
        # to wait for. Once bound, datagrams sent to the port queue up in
        # this socket, whoever sends them.
        return sock
    raise last_error or OSError("getaddrinfo returned no candidate")


# ---------------------------------------------------------------- task 2

def serve(sock: socket.socket) -> None:
    """Echo every datagram back to its sender, forever."""
    sock.setblocking(False)
    while True:
        try:
            # One call, one whole datagram, plus the address it came from.
            # It blocks in the kernel until a datagram arrives. An empty
            # datagram (b"") is a real, valid datagram: unlike a TCP recv(),
            # b"" here does NOT mean that anybody went away.
            data, sender = sock.recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            continue
        except ConnectionError:
            # Some systems report here that an earlier reply could not be
            # delivered (the client had gone). That concerns nobody else.
            continue
        log(f"got {len(data)} bytes from {format_address(sender)}")
        try:
            # The reply goes to the address this datagram came from: each
            # client gets its own answer, however many are talking to us.
            # sendto() sends the bytes as one datagram, never part of them.
            sock.sendto(data, sender)
        except OSError as err:
            log(f"could not answer {format_address(sender)}: {err}")


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
