"""The walls around a student's program (grader.sandbox) and around a whole
grading run (grader.jail): each limit is shown to hold by a program that
pushes against it."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from grader import sandbox
from grader.jail import LEFTOVER_PREFIX
from grader.process import Limits, Program, python_argv
from grader.transcript import Transcript

FORK_MANY = """
import os, time
made = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    made += 1
print("made", made, flush=True)
time.sleep(600)
"""

DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print("daemon", os.getpid(), flush=True)
        time.sleep(600)
    os._exit(0)
os.wait()
"""


def run_program(folder: Path, source: str, limits: Limits | None = None) -> Program:
    script = folder / "student.py"
    script.write_text(textwrap.dedent(source))
    return Program(python_argv(script), cwd=folder, transcript=Transcript(),
                   limits=limits or Limits())


def test_process_limit_bounds_the_whole_tree(tmp_path):
    if sandbox.pids_cgroup_root() is None and psutil.Process().uids().real == 0:
        pytest.skip("root ignores RLIMIT_NPROC, and no pids cgroup is writable here")
    program = run_program(tmp_path, FORK_MANY, Limits(processes=30))
    try:
        made = int(program.expect_line(r"made (\d+)", timeout=30).group(1))
        assert made < 30, f"the program forked {made} children under a limit of 30"
    finally:
        program.stop()


def test_stop_kills_a_double_forked_daemon(tmp_path):
    if sandbox.pids_cgroup_root() is None:
        pytest.skip("without a pids cgroup the runner's jail sweeps daemons (tested below)")
    program = run_program(tmp_path, DAEMON)
    daemon = int(program.expect_line(r"daemon (\d+)", timeout=10).group(1))
    assert psutil.pid_exists(daemon)
    program.stop()
    assert not psutil.pid_exists(daemon) or \
        psutil.Process(daemon).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(not sandbox.mount_namespaces_available(),
                    reason="file-system confinement needs root and mount namespaces")
def test_only_the_work_folder_is_writable_and_the_suites_are_hidden(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    folder = tmp_path / "work"
    folder.mkdir()
    from grader import manifest
    program = run_program(folder, f"""
        import os
        def attempt(what, action):
            try:
                action()
                print(what, "allowed", flush=True)
            except OSError as exc:
                print(what, "refused", exc.errno, flush=True)
        attempt("own", lambda: open("mine.txt", "w").write("x"))
        attempt("delete", lambda: os.remove({str(outside)!r}))
        attempt("tmp", lambda: open("/tmp/socklab-sandbox-probe", "w").write("x"))
        print("hidden", len(os.listdir({str(manifest.HIDDEN_DIR)!r})), flush=True)
        print("done", flush=True)
    """)
    try:
        program.expect_line("done", timeout=20)
    finally:
        program.stop()
    lines = program.lines
    assert "own allowed" in lines, lines
    assert any(line.startswith("delete refused") for line in lines), lines
    assert any(line.startswith("tmp refused") for line in lines), lines
    assert "hidden 0" in lines, lines
    assert outside.read_text() == "keep me"
    assert (folder / "mine.txt").exists()
    assert not Path("/tmp/socklab-sandbox-probe").exists()


def test_jail_sweeps_what_outlives_the_command(tmp_path):
    script = tmp_path / "leave_daemon.py"
    script.write_text(DAEMON)
    done = subprocess.run([sys.executable, "-m", "grader.jail", "--", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=60)
    daemon = int(done.stdout.split()[1])
    assert LEFTOVER_PREFIX in done.stderr and "1 process" in done.stderr, done.stderr
    assert not psutil.pid_exists(daemon) or \
        psutil.Process(daemon).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(not sandbox.network_isolation_available(),
                    reason="--isolate-net needs root and network namespaces")
def test_isolated_network_has_its_own_loopback_only():
    outside = socket.create_server(("127.0.0.1", 0))
    port = outside.getsockname()[1]
    probe = textwrap.dedent(f"""
        import socket
        inner = socket.create_server(("127.0.0.1", 0))
        socket.create_connection(inner.getsockname(), timeout=5).close()
        print("own loopback works")
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=5)
            print("reached the grader's namespace")
        except OSError:
            print("the grader's listener is out of reach")
    """)
    try:
        done = subprocess.run([sys.executable, "-m", "grader.jail", "--isolate-net", "--",
                               sys.executable, "-c", probe],
                              capture_output=True, text=True, timeout=60)
    finally:
        outside.close()
    assert done.stdout.split("\n")[:2] == ["own loopback works",
                                          "the grader's listener is out of reach"], done
