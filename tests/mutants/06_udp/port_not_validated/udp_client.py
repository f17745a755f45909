"""A UDP client that asks once, and asks again when no answer comes.

Usage: python -u udp_client.py HOST PORT

It reads one line from stdin, sends it to the server as one datagram and
prints the reply. UDP does not promise delivery: a datagram (ours, or the
reply) may simply vanish. So the client waits a second at most, then sends
again, three sends in all, before it gives up.
"""

from __future__ import annotations

import socket
import sys
import time

ATTEMPTS = 3          # sends in all, the first one included
WAIT_SECONDS = 1.0    # how long each send waits for its reply
MAX_DATAGRAM = 65535  # big enough for any datagram (see udp_server.py)

USAGE = "usage: udp_client.py HOST PORT  (PORT: an integer from 1 to 65535)"


def parse_args(argv: list[str]) -> tuple[str, int] | None:
    """Return (host, port), or None when the arguments are wrong."""
    if len(argv) != 2:
        return None
    host, port_text = argv
    return host, int(port_text)


def find_server(host: str, port: int) -> tuple[int, tuple] | None:
    """The address family and socket address of the server, or None.

    getaddrinfo() with SOCK_DGRAM lists the UDP addresses of HOST; there is
    no connection to try, so we simply take the first one.
    """
    try:
        candidates = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        print(f"[client] getaddrinfo: {exc}", file=sys.stderr)
        return None
    family, _type, _proto, _canonname, sockaddr = candidates[0]
    return family, sockaddr


def same_address(a: tuple, b: tuple) -> bool:
    """True if two socket addresses name the same IP and port. (An IPv6
    address carries two more fields, flow info and scope; we compare the
    IP and the port only.)"""
    return a[0] == b[0] and a[1] == b[1]


def read_message() -> bytes | None:
    """Read one line from stdin, without its line ending; None on EOF."""
    line = sys.stdin.buffer.readline()
    if not line:
        return None
    return line.removesuffix(b"\n").removesuffix(b"\r")


def describe(address: tuple) -> str:
    return f"{address[0]}:{address[1]}"


# ---------------------------------------------------------------- task 3

def wait_for_reply(sock: socket.socket, server: tuple, seconds: float) -> bytes | None:
    """The first datagram that comes from `server` within `seconds`, or None.

    Anybody can send a datagram to our port; only the server's counts. A
    datagram from anywhere else is ignored, and we go on waiting for what is
    left of the time (it does not start the clock again).
    """
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        # A timeout makes recvfrom() raise TimeoutError instead of waiting
        # for ever; the wait itself still happens in the kernel.
        sock.settimeout(remaining)
        try:
            data, sender = sock.recvfrom(MAX_DATAGRAM)
        except TimeoutError:
            return None
        except ConnectionRefusedError:
            # Some systems tell us that nothing listens on the server's port.
            # That is just "no reply" for this attempt: keep waiting.
            continue
        if not same_address(sender, server):
            print(f"[client] ignored {len(data)} bytes from {describe(sender)} "
                  "(not the server)", flush=True)
            continue
        return data


# ---------------------------------------------------------------- task 4

def ask(sock: socket.socket, server: tuple, message: bytes) -> bytes | None:
    """Send `message` up to ATTEMPTS times; return the first reply, or None."""
    for attempt in range(1, ATTEMPTS + 1):
        # sendto() names the destination with each datagram. The first call
        # also gives our socket a local port, which the server will see as
        # our address; every retry goes out from that same port.
        sock.sendto(message, server)
        print(f"[client] sent {len(message)} bytes to {describe(server)} "
              f"(attempt {attempt} of {ATTEMPTS})", flush=True)
        reply = wait_for_reply(sock, server, WAIT_SECONDS)
        if reply is not None:
            return reply
    return None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args is None:
        print(USAGE, file=sys.stderr)
        return 1
    host, port = args

    found = find_server(host, port)
    if found is None:
        print(f"[client] cannot resolve {host}", file=sys.stderr)
        return 1
    family, server = found

    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        print("what to send to the server?", flush=True)
        message = read_message()
        if message is None:
            print("[client] stdin closed before a message was typed; nothing sent",
                  file=sys.stderr)
            return 1
        try:
            reply = ask(sock, server, message)
        except OSError as exc:  # e.g. no route to the host
            print(f"[client] {exc}", file=sys.stderr)
            return 1

    if reply is None:
        print(f"[client] no reply after {ATTEMPTS} attempts", flush=True)
        return 1
    text = reply.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
    print(f"[client] received '{text}'", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("[client] interrupted", file=sys.stderr)
        sys.exit(130)
