"""Whether a server has accepted a client's connection, as the kernel sees it.

A TCP connection the server has not taken with accept() yet waits in its
listening socket's queue. The kernel lists it in /proc/net/tcp (or tcp6)
like any other connection, but with no socket file behind it: its inode
is 0. Once accept() has returned it, it has one. This tells a server that
never calls accept() from one that accepts and then says nothing, without
waiting any longer (grader.harness.gates.accepts). Linux only: elsewhere,
and for a connection the kernel no longer lists, nothing is known."""

from __future__ import annotations

from pathlib import Path

ACCEPTED = "accepted"
WAITING = "waiting to be accepted"

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
# Connection states (include/net/tcp_states.h) in which a server-side
# socket may still sit in the queue: the client is connected, or has
# already closed its side.
_ESTABLISHED, _CLOSE_WAIT = "01", "08"


def table_rows(table: str) -> list[list[str]]:
    """The rows of a /proc/net table (/proc/net/tcp, udp6, unix...), each
    split into its fields, without the heading; none if it cannot be read."""
    try:
        lines = Path(table).read_text(encoding="ascii", errors="replace").splitlines()[1:]
    except OSError:
        return []
    return [line.split() for line in lines]


def address_port(address: str) -> int | None:
    """The port of a /proc/net/tcp or udp address ("0100007F:1F90")."""
    try:
        return int(address.rsplit(":", 1)[1], 16)
    except (IndexError, ValueError):
        return None


def accept_state(server_port: int, client_port: int) -> str | None:
    """ACCEPTED or WAITING for the server side of the connection from the
    local `client_port` to the local `server_port`; None when the kernel
    does not list it (closed, reset, or not Linux)."""
    for table in _TABLES:
        for fields in table_rows(table):
            if len(fields) < 10 or fields[3] not in (_ESTABLISHED, _CLOSE_WAIT):
                continue
            if (address_port(fields[1]), address_port(fields[2])) == (server_port, client_port):
                return WAITING if fields[9] == "0" else ACCEPTED
    return None
