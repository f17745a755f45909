"""An echo server on a Unix-domain socket.

Usage: python -u unix_echo_server.py PATH

The server listens on a socket file at PATH instead of a port. Only
processes on this machine can reach it, the file's permissions decide who
may connect, and the kernel tells the server which process is on the other
end (SO_PEERCRED). It serves several clients at once with select.poll and
echoes every chunk back. SIGTERM or SIGINT removes the socket file.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import struct
import sys

BACKLOG = 16
CHUNK_SIZE = 4096
SOCKET_MODE = 0o600     # read and write for the owner only: nobody else may connect
UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


class PathTaken(Exception):
    """PATH exists and is not a socket: we must not touch it."""


def usage() -> None:
    print("usage: python unix_echo_server.py PATH   (PATH: where to create the socket file)",
          file=sys.stderr)
    sys.exit(1)


def parse_path(argv: list[str]) -> str:
    if len(argv) != 2 or not argv[1]:
        usage()
    return argv[1]


def stop(signum: int, _frame: object) -> None:
    """SIGTERM / SIGINT: unwind through main()'s `finally`, then exit 0."""
    raise SystemExit(0)


# ---------------------------------------------------------------- task 4

def clear_stale_socket(path: str) -> None:
    """Remove a socket file left at `path` by an earlier run; refuse to
    touch anything else that is there."""
    try:
        # lstat, not stat: look at the entry itself, even if it is a link.
        info = os.lstat(path)
    except FileNotFoundError:
        return                      # nothing there: the usual case
    if not stat.S_ISSOCK(info.st_mode):
        raise PathTaken(f"{path} exists and is not a socket; not touching it")
    # A socket file outlives the server that created it: it is only a name.
    # bind() fails with "Address already in use" while the name exists, so
    # a server that was killed must have its old file removed first.
    os.unlink(path)


# ---------------------------------------------------------------- task 5

def open_listener(path: str) -> socket.socket:
    """An AF_UNIX stream socket bound to `path`, mode 0600, listening."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)             # creates the socket file
    except OSError:
        sock.close()
        raise
    # Set the permissions before listen(): until then nobody can connect,
    # so no other user can slip in while the file is still open to all.
    os.chmod(path, SOCKET_MODE)
    sock.listen(BACKLOG)
    return sock


# ---------------------------------------------------------------- task 6

def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected, as the kernel saw it
    at connect() time: a client cannot lie about them."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
    return UCRED.unpack(raw)


# ---------------------------------------------------------------- task 7

def serve(listener: socket.socket) -> None:
    """Accept clients and echo their bytes, all in one poll loop."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    clients: dict[int, tuple[socket.socket, int]] = {}   # fd -> (socket, peer pid)

    def drop(fd: int) -> None:
        conn, pid = clients.pop(fd)
        poller.unregister(fd)
        conn.close()
        print(f"pid {pid} disconnected", flush=True)

    while True:
        for fd, events in poller.poll():        # sleeps in the kernel until something happens
            if fd == listener.fileno():
                conn, _addr = listener.accept()  # a client's address is usually empty here
                pid, uid, _gid = peer_credentials(conn)
                print(f"connection from pid {pid} uid {uid}", flush=True)
                with conn:              # serve this client until it leaves
                    while data := conn.recv(CHUNK_SIZE):
                        conn.sendall(data)
                continue
            conn, _pid = clients[fd]
            try:
                data = conn.recv(CHUNK_SIZE)
                if data:
                    conn.sendall(data)
            except OSError:                     # reset, or gone before its echo
                data = b""
            if not data:                        # end of file, or an error: forget it
                drop(fd)


# ---------------------------------------------------------------- task 8

def remove_socket_file(path: str) -> None:
    """Delete the socket file at `path`, if a socket is still there."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass                                    # already gone: nothing to do


def main() -> None:
    path = parse_path(sys.argv)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    try:
        clear_stale_socket(path)
        listener = open_listener(path)
    except PathTaken as err:
        print(f"unix_echo_server: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:          # e.g. no such folder, permission denied, path too long
        print(f"unix_echo_server: cannot listen on {path}: {err}", file=sys.stderr)
        sys.exit(1)

    try:
        print(f"listening on {path}", flush=True)
        serve(listener)
    finally:
        # Runs on SIGTERM / SIGINT (stop() raises SystemExit) and on any
        # error: a socket file left behind would only get in the next
        # run's way.
        listener.close()
        remove_socket_file(path)


if __name__ == "__main__":
    main()
