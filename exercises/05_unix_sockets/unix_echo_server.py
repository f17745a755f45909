"""An echo server on a Unix-domain socket (exercise 05_unix_sockets).

Usage: python -u unix_echo_server.py PATH

Fill in the five functions marked TODO; everything else is given complete.

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
    # TODO(task 4): look at what is at `path` with os.lstat(). Nothing there
    # (FileNotFoundError): return. A socket (stat.S_ISSOCK(info.st_mode)):
    # it is stale, remove it with os.unlink(). Anything else: raise
    # PathTaken with a message; main() reports it and exits with status 1.
    raise NotImplementedError("TODO(task 4): clear a stale socket file")


# ---------------------------------------------------------------- task 5

def open_listener(path: str) -> socket.socket:
    """An AF_UNIX stream socket bound to `path`, mode 0600, listening."""
    # TODO(task 5): create an AF_UNIX stream socket and bind it to `path`
    # (that creates the socket file; if bind fails, close the socket and
    # re-raise). Then set the file's mode to SOCKET_MODE with os.chmod(),
    # call listen(BACKLOG), and return the socket.
    raise NotImplementedError("TODO(task 5): bind, chmod and listen")


# ---------------------------------------------------------------- task 6

def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected, as the kernel saw it
    at connect() time: a client cannot lie about them."""
    # TODO(task 6): ask for the SO_PEERCRED option (level SOL_SOCKET) with
    # getsockopt, giving the buffer size UCRED.size, and unpack the bytes
    # you get with UCRED.unpack().
    raise NotImplementedError("TODO(task 6): read the peer's credentials")


# ---------------------------------------------------------------- task 7

def serve(listener: socket.socket) -> None:
    """Accept clients and echo their bytes, all in one poll loop."""
    # TODO(task 7): a select.poll() loop. Register the listener for POLLIN.
    # When the listener is ready: accept(), print
    # f"connection from pid {pid} uid {uid}" using peer_credentials(), and
    # register the new socket. When a client is ready: recv() a chunk and
    # sendall() it back; on b"" (end of file) or an OSError (reset, broken
    # pipe), unregister and close that client only, and keep serving the
    # others. Keep a dict from file descriptor to socket.
    raise NotImplementedError("TODO(task 7): serve the clients with poll")


# ---------------------------------------------------------------- task 8

def remove_socket_file(path: str) -> None:
    """Delete the socket file at `path`, if a socket is still there."""
    # TODO(task 8): if `path` is (still) a socket file, remove it. It may
    # already be gone: ignore the OSError that os.lstat / os.unlink raise.
    raise NotImplementedError("TODO(task 8): remove the socket file")


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
