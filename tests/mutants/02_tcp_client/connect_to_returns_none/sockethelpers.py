"""Small socket helpers that the later exercises reuse.

Two jobs come up in almost every network program: turning a socket address
into text for a log line, and opening a TCP connection to a host that may
have several addresses (IPv6 and IPv4, several servers behind one name).
"""

from __future__ import annotations

import socket


def format_address(sockaddr) -> str:
    """Render a socket address tuple as text: ``IP:PORT`` or ``[IP]:PORT``.

    Python describes an IPv4 endpoint as ``(ip, port)`` and an IPv6 one as
    ``(ip, port, flowinfo, scope_id)``. An IPv6 address is itself full of
    colons, so it is wrapped in square brackets to keep the port readable
    (the same convention URLs use). Flow info and scope id are not shown.
    """
    if not isinstance(sockaddr, (tuple, list)) or len(sockaddr) not in (2, 4):
        raise ValueError(f"not an IPv4 or IPv6 socket address: {sockaddr!r}")
    ip, port = sockaddr[0], sockaddr[1]
    # Only IPv6 text contains a colon; IPv4 dotted quads never do.
    if ":" in ip:
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


def connect_to(host, port) -> socket.socket:
    """Return a TCP socket connected to ``host``:``port``.

    The resolver may give several candidates for one name (``localhost`` is
    often both ``::1`` and ``127.0.0.1``). They are tried in the order the
    resolver ranks them, and the first that accepts wins. A candidate that
    fails has its socket closed right away, so a failed call leaks nothing.
    When no candidate connects, the last error is raised (an ``OSError``
    such as ``ConnectionRefusedError``); a name that does not resolve raises
    ``socket.gaierror``, which is an ``OSError`` too.
    """
    candidates = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    last_error: OSError | None = None
    for family, kind, proto, _canonname, sockaddr in candidates:
        try:
            # The candidate says which family (IPv4 or IPv6) the socket needs.
            sock = socket.socket(family, kind, proto)
        except OSError as exc:  # e.g. a kernel without IPv6 support
            last_error = exc
            continue
        try:
            # connect() picks a free local port for us and performs the
            # three-way handshake; it blocks until the server answers.
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    return None
