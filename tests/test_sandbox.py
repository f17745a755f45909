"""The walls around a student's program (grader.harness.sandbox) and around a whole
grading run (grader.harness.jail): each limit is shown to hold by a program that
pushes against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from grader.harness import bubblewrap, sandbox
from grader.harness.jail import LEFTOVER_PREFIX
from grader.harness.program import Limits, Program, python_argv
from grader.harness.transcript import Transcript
from support import need_sandbox, needed_on_ci

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

# The middle process leaves only once the daemon has said its pid: otherwise
# the jail may sweep the daemon before it prints (seen once on CI).
DAEMON = """
import os, sys, time
said, say = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print("daemon", os.getpid(), flush=True)
        os.write(say, b"x")
        time.sleep(600)
    os.read(said, 1)
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


@pytest.fixture
def sandboxed():
    need_sandbox()
    sandbox.use("require")
    yield
    sandbox.use("off")


WORLD = """
import os, sys
def attempt(what, action):
    try:
        action()
        print(what, "allowed", flush=True)
    except OSError as exc:
        print(what, "refused", exc.errno, flush=True)
print("uid", os.getuid(), flush=True)
print("pid", os.getpid(), flush=True)
print("procs", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), flush=True)
for path in {paths!r}:
    print("sees" if os.path.exists(path) else "blind", path, flush=True)
attempt("own", lambda: open("mine.txt", "w").write("x"))
attempt("tmp", lambda: open("/tmp/socklab-sandbox-probe", "w").write("x"))
attempt("dev", lambda: open("/dev/socklab-probe", "w").write("x"))
attempt("shm", lambda: open("/dev/shm/socklab-probe", "w").write("x"))
attempt("delete", lambda: os.remove({outside!r}))
print("modules", [m for m in ("pytest", "psutil", "grader") if __import__("importlib.util").util.find_spec(m)], flush=True)
print("done", flush=True)
"""


def test_the_program_sees_only_its_folder_and_the_runtime(tmp_path, sandboxed):
    outside = tmp_path / "classmate" / "03_poll" / "chat_server.py"
    outside.parent.mkdir(parents=True)
    outside.write_text("a classmate's program")
    folder = tmp_path / "work"
    folder.mkdir()
    from grader.course import manifest
    secrets = [str(manifest.COURSE_ROOT), str(manifest.COURSE_ROOT / ".git"),
               str(manifest.SOLUTIONS_DIR), str(outside), str(outside.parent.parent),
               sys.prefix, "/root/.bashrc", "/home", "/etc/passwd", "/var/log"]
    program = run_program(folder, WORLD.format(paths=secrets, outside=str(outside)))
    try:
        program.expect_line("done", timeout=20)
    finally:
        program.stop()
    lines = program.lines
    for path in secrets:
        assert f"blind {path}" in lines, (path, lines)
    if os.geteuid() == 0:
        assert f"uid {bubblewrap.SANDBOX_UID}" in lines, lines   # never root
    assert "own allowed" in lines, lines
    assert "tmp allowed" in lines, lines                          # a private /tmp...
    assert not Path("/tmp/socklab-sandbox-probe").exists()        # ...that is not the host's
    assert any(line.startswith("dev refused") for line in lines), lines
    assert any(line.startswith("shm refused") for line in lines), lines
    assert any(line.startswith("delete refused") for line in lines), lines
    assert "modules []" in lines, lines                           # the standard library only
    procs = next(line for line in lines if line.startswith("procs"))
    assert procs in ("procs [1, 2]", "procs [1]"), procs          # its own pid namespace
    assert outside.read_text() == "a classmate's program"
    assert (folder / "mine.txt").exists()


def test_pids_translate_and_exit_status_is_exact(tmp_path, sandboxed):
    program = run_program(tmp_path, """
        import os, signal, sys
        print("me", os.getpid(), flush=True)
        sys.stdin.readline()
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    try:
        inner = int(program.expect_line(r"me (\d+)", timeout=20).group(1))
        assert program.inner_pid() == inner
        assert program.outer_pid(inner) == program.pid
        assert psutil.Process(program.pid).cmdline()[-1].endswith("student.py")
        program.send_line("go")
        status = program.wait_exit(10)
        assert status is not None and status.signal == signal.SIGTERM and status.code is None, status
    finally:
        program.stop()
    program = run_program(tmp_path, "import sys; sys.exit(143)")
    try:
        status = program.wait_exit(20)
        assert status is not None and status.code == 143 and status.signal is None, status
    finally:
        program.stop()


def test_a_file_past_the_size_limit_stops_the_program(tmp_path, sandboxed):
    program = run_program(tmp_path, """
        with open("big.bin", "wb") as f:
            for _ in range(100):
                f.write(bytes(1 << 20))
        print("wrote it all", flush=True)
    """, Limits(file_bytes=8 << 20))
    try:
        status = program.wait_exit(20)
        err = program.stderr()
    finally:
        program.stop()
    # Python ignores SIGXFSZ, so the write fails with EFBIG and the program
    # ends on a traceback that says so.
    assert status is not None and status.code != 0, status
    assert "File too large" in err, err
    assert (tmp_path / "big.bin").stat().st_size <= 8 << 20
    assert "wrote it all" not in program.lines


def test_jail_sweeps_what_outlives_the_command(tmp_path):
    script = tmp_path / "leave_daemon.py"
    script.write_text(DAEMON)
    done = subprocess.run([sys.executable, "-m", "grader.harness.jail", "--", sys.executable, str(script)],
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
        done = subprocess.run([sys.executable, "-m", "grader.harness.jail", "--isolate-net", "--",
                               sys.executable, "-c", probe],
                              capture_output=True, text=True, timeout=60)
    finally:
        outside.close()
    assert done.stdout.split("\n")[:2] == ["own loopback works",
                                          "the grader's listener is out of reach"], done


def test_the_jail_caps_a_gradings_work_folder(tmp_path):
    """The whole grading's run folders live on a tmpfs of a fixed size (root);
    what a program writes there is gone with the jail."""
    needed_on_ci(None if os.geteuid() == 0 else "the work tmpfs needs root",
                 "cap a grading's work folder (CI runs as root)")
    work = tmp_path / "work"
    work.mkdir()
    fill = textwrap.dedent(f"""
        import os
        written = 0
        try:
            with open(os.path.join({str(work)!r}, "fill"), "wb") as f:
                for _ in range(64):
                    f.write(bytes(1 << 20))
                    f.flush()
                    written += 1
        except OSError as exc:
            print("stopped", exc.errno, "after", written, "MiB")
    """)
    done = subprocess.run([sys.executable, "-m", "grader.harness.jail", "--work", str(work),
                           "--work-bytes", str(8 << 20), "--", sys.executable, "-c", fill],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("stopped 28 after"), done   # ENOSPC
    assert int(done.stdout.split()[3]) <= 8, done
    assert list(work.iterdir()) == []


def test_a_program_that_fills_its_folder_leaves_the_graders_room(tmp_path):
    """Each folder a program writes is capped on its own (grader.harness.bounded):
    a sandboxed program that fills its run folder gets "no space" there,
    while the grader still copies files into the next run folder and writes
    its own beside them (the fills_the_disk case lost a test to this on CI)."""
    needed_on_ci(None if os.geteuid() == 0 else "private mounts need root",
                 "cap each program's folder (CI runs as root)")
    work = tmp_path / "work"
    work.mkdir()
    script = textwrap.dedent(f"""
        import os, shutil, sys
        from pathlib import Path
        from grader.harness import bounded, sandbox
        from grader.harness.program import Limits, Program, python_argv
        from grader.harness.transcript import Transcript
        sandbox.use("require")
        work = Path({str(work)!r})
        print("capped", bounded.available())
        full = bounded.make(work, "run-", 4 << 20)
        (full / "fill.py").write_text('''
        import os
        written = 0
        try:
            for n in range(16):
                with open("fill-%d" % n, "wb") as f:
                    f.write(bytes(1 << 20))
                written += 1
        except OSError as exc:
            print("stopped", exc.errno, "after", written, "MiB", flush=True)
        ''')
        program = Program(python_argv(full / "fill.py"), cwd=full, transcript=Transcript(),
                          limits=Limits())
        program.expect_line("stopped", timeout=30)
        print(program.lines[-1])
        program.stop()
        other = bounded.make(work, "run-", 4 << 20)
        shutil.copyfile(full / "fill.py", other / "copy.py")
        (other / "more").write_bytes(bytes(1 << 20))
        (work / "grader-file").write_bytes(bytes(2 << 20))
        print("grader wrote its files")
        for folder in (full, other):
            bounded.remove(folder)
        print("left", sorted(p.name for p in work.iterdir()))
    """)
    done = subprocess.run([sys.executable, "-m", "grader.harness.jail", "--work", str(work),
                           "--work-bytes", str(16 << 20), "--", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[:1] == ["capped True"] and len(lines) == 4, done
    stopped = lines[1].split()
    assert stopped[:2] == ["stopped", "28"] and int(stopped[3]) <= 4, done   # ENOSPC at its cap
    assert lines[2:] == ["grader wrote its files", "left ['grader-file']"], done


def test_without_a_sandbox_grading_runs_and_says_what_is_not_enforced(tmp_path):
    """A machine where bubblewrap cannot run (here: told there is none)
    still grades, with a loud warning listing every missing wall."""
    from grader.course import manifest
    done = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(manifest.SOLUTIONS_DIR),
                           "--exercise", "00_basics", "--format", "json"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SOCKLAB_BWRAP": "none"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exercises"]["00_basics"]["score"] == 100
    assert "WARNING: this machine cannot fully sandbox student programs" in done.stderr
    assert "no file-system sandbox" in done.stderr and "no pid namespace" in done.stderr
