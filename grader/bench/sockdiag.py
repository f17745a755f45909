"""How many bytes a server has taken out of one of its TCP connections.

The bench's wake-up probe sends one byte and must know when the server's
event loop has read it, although the server answers nothing. The kernel
knows: for the server's end of the connection, tcp_info counts the bytes
received, and the socket's receive queue holds those not read yet. Linux
hands both out over a netlink socket (sock_diag, what `ss` uses). An exact
lookup of one connection by its addresses and ports is a hash lookup in
the kernel, a few microseconds, whatever the number of sockets; a dump of
every socket (what pyroute2's DiagSocket and `ss` do) would cost
milliseconds with ten thousand connections open, so the request is built
here, by hand, from the structures in <linux/inet_diag.h>."""

from __future__ import annotations

import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
INET_DIAG_INFO = 2              # the attribute carrying struct tcp_info
NOCOOKIE = 0xFFFFFFFF

NLMSG_HEADER = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, extensions, pad, states, then the
# socket id: ports and addresses in network order, interface, cookie.
REQUEST = struct.Struct("=BBBBI2s2s16s16sIII")
# inet_diag_msg after the header: family, state, timer, retrans, the
# socket id (48 bytes), expires, rqueue, wqueue, uid, inode.
REPLY = struct.Struct("=BBBB48sIIIII")
RTATTR = struct.Struct("=HH")
TCPI_BYTES_RECEIVED = struct.Struct("=Q")
TCPI_BYTES_RECEIVED_AT = 128    # offset in struct tcp_info (Linux 4.1 and later)


class SockDiagError(OSError):
    """The kernel could not tell (no sock_diag, no such connection)."""


class ConnectionProbe:
    """Asks the kernel about the server's end of one client connection."""

    def __init__(self, client: socket.socket) -> None:
        # The server's end: its local address is the client's peer.
        server_ip, server_port = client.getpeername()[:2]
        client_ip, client_port = client.getsockname()[:2]
        self._request = self._build(server_ip, server_port, client_ip, client_port)
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        self.describe = f"the server's end of {client_ip}:{client_port} -> {server_ip}:{server_port}"

    @staticmethod
    def _build(local_ip: str, local_port: int, remote_ip: str, remote_port: int) -> bytes:
        body = REQUEST.pack(socket.AF_INET, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0,
                            0xFFFFFFFF, struct.pack("!H", local_port),
                            struct.pack("!H", remote_port),
                            socket.inet_aton(local_ip).ljust(16, b"\0"),
                            socket.inet_aton(remote_ip).ljust(16, b"\0"),
                            0, NOCOOKIE, NOCOOKIE)
        header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY,
                                   NLM_F_REQUEST, 0, 0)
        return header + body

    def bytes_read(self) -> int:
        """Bytes the server's program has read from this connection so far
        (received by its socket minus those still queued)."""
        self._sock.send(self._request)
        data = self._sock.recv(65536)
        length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data)
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, NLMSG_HEADER.size)[0]
            raise SockDiagError(code, f"sock_diag could not find {self.describe}")
        offset = NLMSG_HEADER.size
        *_, rqueue, _wqueue, _uid, _inode = REPLY.unpack_from(data, offset)
        offset += REPLY.size
        while offset + RTATTR.size <= length:
            size, kind = RTATTR.unpack_from(data, offset)
            if size < RTATTR.size:
                break
            if kind == INET_DIAG_INFO:
                info = data[offset + RTATTR.size: offset + size]
                if len(info) < TCPI_BYTES_RECEIVED_AT + TCPI_BYTES_RECEIVED.size:
                    break
                received = TCPI_BYTES_RECEIVED.unpack_from(info, TCPI_BYTES_RECEIVED_AT)[0]
                return received - rqueue
            offset += (size + 3) & ~3
        raise SockDiagError(0, f"the kernel gave no byte counts for {self.describe} "
                               "(tcp_info.bytes_received needs Linux 4.1 or later)")

    def close(self) -> None:
        self._sock.close()
