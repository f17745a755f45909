"""Whether a program has already done what its ready line announces.

A server prints its ready line once it listens. When the kernel already
lists a listening socket of the program's and no ready line has come a
reply's time later, the line is not coming: the program never printed it
(or printed something else). This tells such a program from one still
starting up (which may take READY) without waiting READY out. Linux only:
elsewhere, and for a process the grader may not inspect, nothing is seen
and the wait is the usual one."""

from __future__ import annotations

import os
from pathlib import Path

from grader.harness.accept_queue import address_port, table_rows

# Socket states in /proc/net/tcp (include/net/tcp_states.h) and the flag
# of a listening socket in /proc/net/unix (__SO_ACCEPTCON).
_TCP_LISTEN = "0A"
_UNIX_LISTENING = 0x10000


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` holds open."""
    found = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue    # closed meanwhile
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def serving(pid: int, port: int) -> bool:
    """True once process `pid` holds a TCP socket listening on `port`, or a
    UDP socket bound to it."""
    inodes = _socket_inodes(pid)
    for table, wanted_state in (("/proc/net/tcp", _TCP_LISTEN), ("/proc/net/tcp6", _TCP_LISTEN),
                                ("/proc/net/udp", None), ("/proc/net/udp6", None)):
        for fields in table_rows(table) if inodes else ():
            if len(fields) < 10 or fields[9] not in inodes:
                continue
            if (wanted_state is None or fields[3] == wanted_state) \
                    and address_port(fields[1]) == port:
                return True
    return False


def listening_unix(pid: int) -> bool:
    """True once process `pid` holds a listening Unix-domain socket."""
    inodes = _socket_inodes(pid)
    for fields in table_rows("/proc/net/unix") if inodes else ():
        if len(fields) >= 7 and fields[6] in inodes:
            try:
                if int(fields[3], 16) & _UNIX_LISTENING:
                    return True
            except ValueError:
                continue
    return False


def has_child(pid: int) -> bool:
    """True once process `pid` has a child process (it forked)."""
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            if Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                return True
    except OSError:
        pass
    return False


def listens(pid: int, port: int) -> bool:
    """True once process `pid` does what a server's ready line announces:
    it listens on `port` over TCP, is bound to it over UDP, or listens on
    a Unix-domain socket (whose address is a path, not the port)."""
    return serving(pid, port) or listening_unix(pid)
