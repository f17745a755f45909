"""A parent and a child process talking over a socket pair.

Usage: python -u pair.py

The parent creates two connected sockets with socket.socketpair(), forks,
and keeps one end while the child keeps the other. Every line typed on
standard input travels to the child, which answers it in upper case; the
parent prints each answer. At end of input (Ctrl-D) the parent tells the
child it is done, waits for it to exit, and reports its exit status.
"""

from __future__ import annotations

import os
import socket
import sys

MY_PID = os.getpid()   # saved once, at start-up


def usage() -> None:
    print("usage: python pair.py   (no arguments; type lines, end with Ctrl-D)", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- task 1

def start_child() -> tuple[socket.socket, int]:
    """Create the socket pair and fork. In the parent, return the parent's
    end and the child's pid. The child never returns from here."""
    # Two sockets already connected to each other, with no address and no
    # file on disk: whatever is sent on one end is received on the other.
    # They are AF_UNIX stream sockets, so the kernel copies the bytes
    # straight from one process to the other (no network stack involved).
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    # Flush before forking, or text still in our buffers would be written
    # twice: once by us and once by the child, which gets a copy of them.
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        # In the child: fork() returned 0. Each process keeps only its own
        # end; a stray copy of the other end would keep the conversation
        # "open" after its owner closed it.
        parent_end.close()
        status = 1
        try:
            run_child(child_end)
            status = 0
        except KeyboardInterrupt:   # Ctrl-C reaches the whole terminal group
            pass
        finally:
            # os._exit() leaves at once, without running the parent's
            # cleanup code that the child inherited along with its memory.
            os._exit(status)

    # In the parent: fork() returned the child's pid.
    child_end.close()
    return parent_end, pid


# ---------------------------------------------------------------- task 2

def run_child(sock: socket.socket) -> None:
    """Answer every line that arrives with 'child PID: LINE-UPPERCASED',
    until the parent shuts its end (end of file)."""
    me = MY_PID
    # A socket is a byte stream: one recv() may hold half a line or three
    # lines. makefile() gives a buffered reader whose iteration yields
    # whole lines and stops at end of file.
    with sock, sock.makefile("rb") as lines:
        for raw in lines:
            text = raw.decode("utf-8", errors="replace").rstrip("\n").removesuffix("\r")
            sock.sendall(f"child {me}: {text.upper()}\n".encode("utf-8"))


# ---------------------------------------------------------------- given

def relay(sock: socket.socket) -> None:
    """Send each stdin line to the child and print its one-line answer."""
    with sock.makefile("rb") as answers:
        for line in sys.stdin:
            text = line.rstrip("\n").removesuffix("\r")
            sock.sendall((text + "\n").encode("utf-8"))
            answer = answers.readline()
            if not answer:          # the child went away early
                print("pair: the child closed its end", file=sys.stderr)
                return
            print(answer.decode("utf-8", errors="replace").rstrip("\n"), flush=True)


# ---------------------------------------------------------------- task 3

def finish(sock: socket.socket, child_pid: int) -> int:
    """Tell the child we are done, wait for it, report how it ended.
    Returns the child's exit status."""
    # shutdown(SHUT_WR) sends end of file to the child right away, whoever
    # else might still hold a copy of this socket. The child's loop ends,
    # and it exits.
    sock.shutdown(socket.SHUT_WR)
    sock.close()
    # waitpid() blocks until the child has exited and collects its status.
    # Until a parent does this, the dead child stays in the process table
    # as a "zombie".
    _pid, status = os.waitpid(child_pid, 0)
    code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
    print(f"child {child_pid} exited with status {code}", flush=True)
    return code


def main() -> None:
    if len(sys.argv) != 1:
        usage()
    sock, child_pid = start_child()
    print(f"parent {os.getpid()} forked child {child_pid}", flush=True)
    try:
        relay(sock)
    except KeyboardInterrupt:
        pass
    code = finish(sock, child_pid)
    sys.exit(0 if code == 0 else 1)


if __name__ == "__main__":
    main()
