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
    # inet_pton ("presentation to network") is the strict parser the C
    # library uses: it accepts exactly the standard notations and turns them
    # into the address's bytes. Whichever family accepts the text wins.
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            socket.inet_pton(family, text)
        except (OSError, ValueError):  # ValueError: e.g. an embedded NUL
            continue
        return version
    raise ValueError(f"not an IPv4 or IPv6 address: {text!r}")


def address_count(version: int) -> int:
    """How many distinct addresses IP version `version` can express."""
    # An address of n bits takes 2**n values. (Careful: 2 ^ 32 is XOR.)
    if version == 4:
        return 2 ** IPV4_BITS
    if version == 6:
        return 2 ** IPV6_BITS
    raise ValueError(f"IP version must be 4 or 6, not {version!r}")


# ---------------------------------------------------------------- task 2

def ipv4_to_int(text: str) -> int:
    """The 32-bit number behind a dotted-quad IPv4 address.

    "192.168.0.1" -> 3232235521. Raises ValueError on anything else.
    """
    try:
        # Four bytes, most significant first: exactly what the kernel keeps
        # in a struct in_addr.
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        # inet_pton reports bad text as OSError; callers of a pure function
        # expect ValueError for a bad value. (socket.inet_aton would be the
        # wrong tool: it happily reads "1.2.3" as 1.2.0.3.)
        raise ValueError(f"not an IPv4 address: {text!r}") from None
    return int.from_bytes(packed, "big")


def int_to_ipv4(n: int) -> str:
    """The dotted-quad text of a 32-bit number (the inverse of ipv4_to_int)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2 ** IPV4_BITS:
        raise ValueError(f"an IPv4 address is an integer from 0 to 2**32-1, not {n!r}")
    return socket.inet_ntop(socket.AF_INET, n.to_bytes(4, "big"))


# ---------------------------------------------------------------- task 3

def port_to_bytes(port: int) -> bytes:
    """A port as the 2 bytes that travel in a TCP or UDP header (big-endian)."""
    # bool is a subclass of int, but True is hardly a port number.
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValueError(f"a port is an integer, not {type(port).__name__}")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"a port fits in 16 bits (0..65535), not {port}")
    # struct.pack would raise struct.error (not a ValueError) on a bad value,
    # which is why the checks above come first.
    return struct.pack(PORT_FORMAT, port)


def bytes_to_port(data: bytes) -> int:
    """The port number held in 2 big-endian bytes (the inverse of port_to_bytes)."""
    return int.from_bytes(data, "big")


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
    flags = socket.AI_PASSIVE if passive else 0
    # SOCK_STREAM asks for TCP candidates only; without it getaddrinfo lists
    # every address once per socket type (stream, datagram, raw).
    candidates = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, flags)
    found: list[tuple[int, str, int]] = []
    for fam, _type, _proto, _canonname, sockaddr in candidates:
        # sockaddr is (ip, port) for IPv4 and (ip, port, flowinfo, scope_id)
        # for IPv6: the first two fields mean the same in both.
        entry = (int(fam), sockaddr[0], sockaddr[1])
        if entry not in found:  # a list, not a set: the order matters
            found.append(entry)
    return found
