"""Process 1 of a graded program's sandbox (run by bubblewrap with --as-pid-1).

    python -I -S -c <this file> STATUS_FD UID GID TTY LINGER CWD -- PROGRAM ARGS...

bubblewrap builds the walls, but three things it cannot do for us, so this
small init does them:

- the program must run as an unprivileged user even when the grader is
  root: the init forks, drops to UID/GID in the child (UID -1: keep the
  caller's, as a normal user does), enters CWD as that user and executes
  the program there;
- the grader must learn the program's real exit status: bubblewrap folds a
  death by signal N into status 128+N, so the init writes "exit N" or
  "signal N" to STATUS_FD (a pipe to the grader) when the program ends;
- the processes a program leaves behind must stay visible: the init waits
  for the program only, never for anything else, so an orphan keeps
  running and a zombie stays a zombie until the grader looks at them and
  kills the sandbox. With LINGER 0 the init exits as soon as the program
  does, which ends every process left in the sandbox.

With TTY 1 the program's stdin and stdout are the controlling terminal
(/dev/tty), which bubblewrap itself does not hold open: the grader sees end
of file once the program and its children close it.

Passed with -c, this file needs nothing but the interpreter: no site, no
imports of ours."""

import os
import signal
import sys


def main() -> None:
    status_fd, uid, gid, tty, linger = map(int, sys.argv[1:6])
    cwd = sys.argv[6]
    argv = sys.argv[8:]
    pid = os.fork()
    if pid == 0:
        try:
            if tty:
                fd = os.open("/dev/tty", os.O_RDWR)
                os.dup2(fd, 0)
                os.dup2(fd, 1)
                os.close(fd)
            # Only now, with the terminal held again, may the grader read it.
            os.write(status_fd, b"started\n")
            os.close(status_fd)
            if uid >= 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            os.chdir(cwd)
            os.execv(argv[0], argv)
        except OSError as exc:
            os.write(2, f"socklab sandbox: cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os.write(status_fd, f"signal {os.WTERMSIG(status)}\n".encode())
    else:
        os.write(status_fd, f"exit {os.WEXITSTATUS(status)}\n".encode())
    os.close(status_fd)
    if not linger:
        os._exit(0)
    while True:  # keep the sandbox (and what the program left) until the grader kills it
        signal.pause()


main()
