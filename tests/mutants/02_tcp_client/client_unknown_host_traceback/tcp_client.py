"""A one-shot TCP client: connect, send one line, print the reply.

Usage: python tcp_client.py HOST PORT

HOST may be an IPv4 address (127.0.0.1), an IPv6 address (::1) or a name
(localhost). Every address the resolver returns is tried in turn, and each
attempt is reported on stdout.
"""

from __future__ import annotations

import socket
import sys

import sockethelpers  # lives next to this file

MAX_REPLY = 4096  # the most bytes we accept from the server in one recv()

USAGE = "usage: tcp_client.py HOST PORT  (PORT: an integer from 1 to 65535)"


def parse_args(argv: list[str]) -> tuple[str, int] | None:
    """Return (host, port), or None when the arguments are wrong."""
    if len(argv) != 2:
        return None
    host, port_text = argv
    # Accept plain ASCII digits only: int() would also take " 80", "+80"
    # or "8_0", which are not what a user means by a port number.
    if not (port_text.isascii() and port_text.isdigit()):
        return None
    port = int(port_text)
    if not 1 <= port <= 65535:
        return None
    return host, port


def connect_verbosely(host: str, port: int) -> socket.socket | None:
    """Try every resolver candidate in order, reporting each attempt.

    Returns the first connected socket, or None when no candidate connects.
    sockethelpers.connect_to does the same job quietly; the client walks the
    list itself so it can say what it is doing.
    """
    candidates = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)

    for family, kind, proto, _canonname, sockaddr in candidates:
        ip = sockaddr[0]  # the bare address: 127.0.0.1 or ::1
        print(f"[client] attempting connection to {ip} ...", flush=True)
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            print(f"[client] socket: {exc}", file=sys.stderr)
            continue
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            # This candidate refused or is unreachable: free its socket
            # before moving on to the next one.
            print(f"[client] connect: {exc}", file=sys.stderr)
            sock.close()
            continue
        print(f"[client] connected to {ip}", flush=True)
        return sock
    return None


def read_message() -> bytes | None:
    """Read one line from stdin, without its line ending; None on EOF.

    The line is read as raw bytes so that exactly what was typed goes on
    the wire, whatever the terminal's encoding.
    """
    line = sys.stdin.buffer.readline()
    if not line:  # EOF before any byte: there is no message at all
        return None
    return line.removesuffix(b"\n").removesuffix(b"\r")


def converse(sock: socket.socket) -> int:
    """Send one message, print the one reply; return the exit status."""
    # We never bound the socket, so connect() chose a local port for us.
    local = sockethelpers.format_address(sock.getsockname())
    print(f"[client] local end is {local}", flush=True)

    print("what to send to the server?", flush=True)
    message = read_message()
    if message is None:
        print("[client] stdin closed before a message was typed; nothing sent",
              file=sys.stderr)
        return 1

    # send() may take only part of the buffer; sendall() loops until the
    # kernel has accepted every byte (or raises).
    sock.sendall(message)
    text = message.decode("utf-8", errors="replace")
    print(f"[client] sent '{text}'", flush=True)

    # recv() blocks until some bytes arrive. It returns b"" only when the
    # server has closed its end: that is how TCP signals "no more data".
    data = sock.recv(MAX_REPLY)
    if not data:
        print("[client] server closed the connection", flush=True)
        return 1
    reply = data.decode("utf-8", errors="replace")
    reply = reply.removesuffix("\n").removesuffix("\r")
    print(f"[client] received '{reply}'", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        print(USAGE, file=sys.stderr)
        return 1
    host, port = args

    sock = connect_verbosely(host, port)
    if sock is None:
        print("[client] failed to connect", file=sys.stderr)
        return 1

    # "with" closes the connection however we leave the block.
    with sock:
        try:
            return converse(sock)
        except OSError as exc:  # e.g. the server reset the connection
            print(f"[client] connection error: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("[client] interrupted", file=sys.stderr)
        sys.exit(130)
