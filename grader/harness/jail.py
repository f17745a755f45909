"""Run one grading process so that nothing it starts can outlive it.

    python -m grader.harness.jail [--isolate-net] [--work DIR --work-bytes N] -- python -m pytest ...

The jail is a "child subreaper" (Linux prctl): every process that its
command starts and that loses its parent (a double-forked daemon, a child
of a killed server) is handed to the jail instead of PID 1. When the
command ends, or when the jail gets SIGTERM (the runner's timeout), it
kills every descendant it still has, reaps them, and says on stderr how
many it had to stop. With --isolate-net it first moves into a fresh
network namespace whose only interface is loopback (root only), so a
submission can reach nothing but the grader. With --work it also moves
into a private mount namespace and mounts a tmpfs of --work-bytes on DIR
(root only; elsewhere DIR stays as it is): the run folders, logs and
temporary files of the whole grading live there, so together they cannot
take more than that from the machine, and they vanish with the jail; the
folders the programs write get caps of their own inside it
(grader.harness.bounded), so a program cannot starve the grader's files."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_PREFIX = "socklab-jail: stopped"


class _Stop(Exception):
    """SIGTERM arrived: stop waiting and sweep."""


def _become_subreaper() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def sweep() -> list[str]:
    """Kill and reap every descendant; describe the ones that were alive."""
    stopped: list[str] = []
    me = psutil.Process()
    for _ in range(50):
        try:
            family = me.children(recursive=True)
        except psutil.Error:
            family = []
        if not family:
            break
        for proc in family:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    stopped.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
                proc.kill()
            except psutil.Error:
                pass
        _reap_all()
        time.sleep(0.01)
    _reap_all()
    return stopped


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.harness.jail")
    parser.add_argument("--isolate-net", action="store_true")
    parser.add_argument("--work", default=None)
    parser.add_argument("--work-bytes", type=int, default=256 << 20)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    _become_subreaper()
    if args.isolate_net:
        from grader.harness import sandbox
        try:
            sandbox.unshare(sandbox.CLONE_NEWNET)
            sandbox.bring_loopback_up()
        except OSError as exc:
            print(f"socklab-jail: cannot isolate the network ({exc})", file=sys.stderr)
            return 3

    def on_term(signum, frame):
        raise _Stop

    if args.work and os.geteuid() == 0 and sys.platform.startswith("linux"):
        from grader.harness import sandbox
        try:
            sandbox.unshare(sandbox.CLONE_NEWNS)
            sandbox._mount(None, "/", None, sandbox.MS_REC | sandbox.MS_PRIVATE)
            sandbox._mount("tmpfs", args.work, "tmpfs", sandbox.MS_NOSUID | sandbox.MS_NODEV,
                           f"size={args.work_bytes},mode=0755")
            # Private mounts: each folder a program writes gets its own cap.
            from grader.harness import bounded
            os.environ[bounded.BOUNDED_ENV] = "1"
        except OSError as exc:
            print(f"socklab-jail: no size cap on the work folder ({exc})", file=sys.stderr)

    signal.signal(signal.SIGTERM, on_term)
    child = subprocess.Popen(command)
    status = None
    try:
        while status is None:
            try:
                pid, raw = os.waitpid(-1, 0)  # reaps adopted orphans as they die, too
            except ChildProcessError:
                break
            if pid == child.pid:
                status = os.waitstatus_to_exitcode(raw)
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stopped = sweep()
    if stopped:
        print(f"{LEFTOVER_PREFIX} {len(stopped)} process(es) the submission left running: "
              + "; ".join(stopped[:5]), file=sys.stderr)
    if status is None:
        return 124
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
