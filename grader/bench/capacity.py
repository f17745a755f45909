"""How many idle connections this machine lets the bench open, said plainly.

Each idle connection costs a descriptor in the bench (its client end) and
one in the server, a local port, and for the thread-per-client server a
thread. The bench raises its own soft descriptor limit to the hard one and
gives the servers the same; it never asks for more than the machine has,
and says what it cut."""

from __future__ import annotations

import resource

RESERVED = 100      # descriptors kept for everything but the idle clients


def raise_descriptor_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE as far as allowed; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        with open("/proc/sys/fs/nr_open") as f:
            target = int(f.read())
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return target


def local_ports() -> int:
    """Client ports the kernel hands out (each connection takes one)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
        return high - low + 1
    except (OSError, ValueError):
        return 28232


def thread_room() -> int | None:
    """Threads this user may still start (RLIMIT_NPROC counts threads), or None: no limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NPROC)
    limits = [] if soft == resource.RLIM_INFINITY else [soft]
    try:
        with open("/proc/sys/kernel/threads-max") as f:
            limits.append(int(f.read()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def plan(wanted: list[int], threaded: bool = False) -> tuple[list[int], list[str], int]:
    """The numbers of idle connections to measure: `wanted`, each capped at
    what the machine allows. Returns (the numbers, notes in words for what
    was cut, the descriptor limit to give the server)."""
    descriptors = raise_descriptor_limit()
    ceilings = [(descriptors - RESERVED,
                 f"this machine allows {descriptors} open descriptors per process "
                 "(hard RLIMIT_NOFILE)"),
                (local_ports() - RESERVED,
                 f"this machine has {local_ports()} local ports for client connections")]
    room = thread_room() if threaded else None
    if room is not None:
        ceilings.append((room // 2, f"this user may run {room} threads (RLIMIT_NPROC, "
                                    "threads-max); half are left to the rest of the machine"))
    ceiling, why = min(ceilings)
    notes = [f"N={n} idle connections asked, but {why}: measuring N={ceiling} instead"
             for n in wanted if n > ceiling]
    return sorted({min(n, ceiling) for n in wanted}), notes, descriptors
