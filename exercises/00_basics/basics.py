"""Addresses and ports, the raw material of every socket program.

An IP address and a port look like text to a person ("192.168.0.1", "8080"),
but to the kernel and on the wire they are fixed-size binary numbers: 4
bytes for an IPv4 address, 16 for IPv6, 2 for a port, always written with
the most significant byte first ("network byte order"). These functions
move between the two views, and ask the resolver which addresses a host
name (or no name at all, for a server) stands for.

Pure functions: nothing here opens a socket or prints anything.
"""

from __future__ import annotations

import socket
import struct

IPV4_BITS = 32
IPV6_BITS = 128
PORT_FORMAT = "!H"  # struct: "!" = network (big-endian) order, "H" = unsigned 16 bits


# ---------------------------------------------------------------- task 1

def ip_version(text: str) -> int:
    """4 or 6: which version of IP the address text is written in.

    Raises ValueError for anything that is not a valid IPv4 or IPv6 address.
    """
    # TODO(task 1): try socket.inet_pton(socket.AF_INET, text), then
    # socket.inet_pton(socket.AF_INET6, text); return 4 or 6 for the first
    # that accepts the text. If neither does, raise ValueError.
    raise NotImplementedError("TODO(task 1): ip_version")


def address_count(version: int) -> int:
    """How many distinct addresses IP version `version` can express."""
    # TODO(task 1): an address of n bits has 2**n possible values. Return
    # the count for version 4 and for version 6; raise ValueError for any
    # other version.
    raise NotImplementedError("TODO(task 1): address_count")


# ---------------------------------------------------------------- task 2

def ipv4_to_int(text: str) -> int:
    """The 32-bit number behind a dotted-quad IPv4 address.

    "192.168.0.1" -> 3232235521. Raises ValueError on anything else.
    """
    # TODO(task 2): turn the text into its 4 bytes with a strict parser
    # (socket.inet_pton), then read those bytes as one big-endian integer.
    # Invalid text must raise ValueError, whatever the parser raised.
    raise NotImplementedError("TODO(task 2): ipv4_to_int")


def int_to_ipv4(n: int) -> str:
    """The dotted-quad text of a 32-bit number (the inverse of ipv4_to_int)."""
    # TODO(task 2): raise ValueError unless n is an int from 0 to 2**32-1;
    # otherwise write it as 4 big-endian bytes and turn those into text.
    raise NotImplementedError("TODO(task 2): int_to_ipv4")


# ---------------------------------------------------------------- task 3

def port_to_bytes(port: int) -> bytes:
    """A port as the 2 bytes that travel in a TCP or UDP header (big-endian)."""
    # TODO(task 3): raise ValueError if port is not an int, or not in
    # 0..65535; otherwise pack it with struct and PORT_FORMAT.
    raise NotImplementedError("TODO(task 3): port_to_bytes")


def bytes_to_port(data: bytes) -> int:
    """The port number held in 2 big-endian bytes (the inverse of port_to_bytes)."""
    # TODO(task 3): raise ValueError unless data is exactly 2 bytes long;
    # otherwise unpack it with struct and PORT_FORMAT.
    raise NotImplementedError("TODO(task 3): bytes_to_port")


# ---------------------------------------------------------------- task 4

def resolve(host: str | None, port: int, *, passive: bool = False,
            family: int = 0) -> list[tuple[int, str, int]]:
    """Ask the resolver where `host`:`port` is, for TCP.

    Returns (family, ip, port) for each distinct candidate, in the order
    getaddrinfo ranks them. family=0 (AF_UNSPEC) accepts IPv4 and IPv6;
    AF_INET or AF_INET6 keeps only one of them. With host=None and
    passive=True you get the wildcard addresses a server binds ("0.0.0.0",
    "::"); with host=None and passive=False, the loopback addresses.
    """
    # TODO(task 4): call socket.getaddrinfo(host, port, family,
    # socket.SOCK_STREAM, 0, flags) with flags = socket.AI_PASSIVE when
    # passive is true (0 otherwise). From each candidate's sockaddr take the
    # IP and the port, and return (family, ip, port) tuples in the order
    # getaddrinfo gave them, leaving out any repeat.
    raise NotImplementedError("TODO(task 4): resolve")
