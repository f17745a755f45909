"""A parent and a child process talking over a socket pair (exercise 05_unix_sockets).

Usage: python -u pair.py

Fill in the three functions marked TODO; everything else is given complete.

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


def usage() -> None:
    print("usage: python pair.py   (no arguments; type lines, end with Ctrl-D)", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- task 1

def start_child() -> tuple[socket.socket, int]:
    """Create the socket pair and fork. In the parent, return the parent's
    end and the child's pid. The child never returns from here."""
    # TODO(task 1): create two connected sockets with socket.socketpair(),
    # flush sys.stdout, then fork with os.fork().
    # In the child (fork() returned 0): close the parent's end, call
    # run_child() with the child's end, and leave with os._exit(0) (or
    # os._exit(1) if run_child raised), so the child never runs the
    # parent's code below.
    # In the parent: close the child's end and return (parent's end, pid).
    raise NotImplementedError("TODO(task 1): create the socket pair and fork")


# ---------------------------------------------------------------- task 2

def run_child(sock: socket.socket) -> None:
    """Answer every line that arrives with 'child PID: LINE-UPPERCASED',
    until the parent shuts its end (end of file)."""
    # TODO(task 2): read the socket line by line until end of file
    # (sock.makefile("rb") gives a reader you can loop over). For each
    # line, strip its "\n", and send back f"child {PID}: {LINE.upper()}\n"
    # where PID is this process's own pid (os.getpid(), called here, in
    # the child). Use sendall().
    raise NotImplementedError("TODO(task 2): answer the parent's lines")


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
    # TODO(task 3): shut down the writing side of the socket
    # (sock.shutdown(socket.SHUT_WR)) so the child sees end of file, close
    # it, wait for the child with os.waitpid(child_pid, 0), turn the
    # status into an exit code with os.waitstatus_to_exitcode(), print
    # f"child {child_pid} exited with status {code}" and return the code.
    raise NotImplementedError("TODO(task 3): end the conversation and reap the child")


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
