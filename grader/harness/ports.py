"""TCP/UDP ports for the servers under test, never fixed and never shared.

Binding to port 0 and closing is racy (another process can take the port
before the server binds it). Instead every test process steps through its
own block of ports below the ephemeral range (where the kernel never hands
out client ports), probing each with a bind that does *not* set
SO_REUSEADDR, so a port still in TIME_WAIT or in use elsewhere is skipped.
The spawn helpers also retry on a fresh port when a server reports
"Address already in use", which covers a race with a parallel grader."""

from __future__ import annotations

import os
import socket
import threading

BASE = 20000
BLOCK = 500


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; macOS starts at 49152


def _block_index(blocks: int) -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        # Several graders may run xdist at once; mix in the pid so their
        # workers do not all start in the same block.
        return (int(worker[2:]) + os.getpid() * 7) % blocks
    return os.getpid() % blocks


def is_free(port: int) -> bool:
    """True if nothing holds `port` for TCP or UDP on IPv4 (and IPv6 where
    the machine has it)."""
    candidates = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        candidates.append((socket.AF_INET6, "::"))
    for family, host in candidates:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                probe = socket.socket(family, kind)
            except OSError:
                continue  # no IPv6 on this machine
            try:
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind((host, port))
            except OSError:
                return False
            finally:
                probe.close()
    return True


class PortAllocator:
    """Hands out ports from this process's block, each at most once per
    pass, skipping any that the probe finds busy."""

    def __init__(self) -> None:
        low = _ephemeral_low()
        blocks = max(1, (low - BASE) // BLOCK)
        self._start = BASE + BLOCK * _block_index(blocks)
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            for _ in range(BLOCK):
                port = self._start + self._next
                self._next = (self._next + 1) % BLOCK
                if is_free(port):
                    return port
        raise RuntimeError(
            f"no free port in {self._start}..{self._start + BLOCK - 1}: "
            "is something else using this range?"
        )


_allocator: PortAllocator | None = None


def free_port() -> int:
    """A port that was free a moment ago and that this process has not
    handed out recently."""
    global _allocator
    if _allocator is None:
        _allocator = PortAllocator()
    return _allocator.take()
