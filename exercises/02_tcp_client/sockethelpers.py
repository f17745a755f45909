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
    # TODO(task 1): take the IP and the port from the tuple and return
    # "IP:PORT", or "[IP]:PORT" when the IP is an IPv6 address.
    raise NotImplementedError("TODO(task 1): format_address")


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
    # TODO(task 2): ask socket.getaddrinfo(host, port, socket.AF_UNSPEC,
    # socket.SOCK_STREAM) for the candidates and try them in order: make a
    # socket for the candidate's family, connect it, and return it on
    # success. Close the socket of every candidate that fails, remember its
    # error, and raise the last error when no candidate is left.
    raise NotImplementedError("TODO(task 2): connect_to")
