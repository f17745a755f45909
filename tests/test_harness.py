"""The harness's own behaviour: ports, programs, clients, copies, checks."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from grader.course import manifest
from grader.course.submission import snapshot
from grader.harness import ports
from grader.harness.failure import GradingFailure
from grader.harness.program import Program, python_argv
from grader.harness.transcript import Transcript
from grader.testkit import source_check
from grader.testkit.line_client import LineClient
from grader.testkit.suites.server_rules import create_time_wait


def run_script(tmp_path: Path, body: str, *args) -> Program:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(body))
    return Program(python_argv(script, *args), cwd=tmp_path, transcript=Transcript(), name="prog")


def test_ports_are_distinct_and_free():
    taken = [ports.free_port() for _ in range(30)]
    assert len(set(taken)) == len(taken)
    low = ports._ephemeral_low()
    assert all(ports.BASE <= p < low for p in taken)


def test_a_port_in_time_wait_is_not_handed_out():
    port = ports.free_port()
    create_time_wait(port)
    assert not ports.is_free(port)


def test_program_output_is_drained_while_nobody_reads(tmp_path):
    program = run_script(tmp_path, """
        for i in range(100_000):
            print(f"line {i} " + "x" * 40)
        print("done")
        import time; time.sleep(30)
    """)
    try:
        program.expect_line("done", literal=True, timeout=20)
        assert len(program.lines) == 100_001
    finally:
        program.stop()


def test_stop_kills_the_group_and_reaps(tmp_path):
    program = run_script(tmp_path, """
        import os, time
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        print("child", pid, flush=True)
        time.sleep(60)
    """)
    child = int(program.expect_line(r"child (\d+)").group(1))
    program.stop()
    for pid in (program.pid, child):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_stdout_and_stderr_are_kept_apart(tmp_path):
    program = run_script(tmp_path, """
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """)
    try:
        status = program.wait_exit(10)
        assert status.code == 3
        assert program.wait_for_eof(5)
        assert program.lines == ["to stdout"]
        assert program.stderr() == "to stderr\n"
    finally:
        program.stop()


def test_a_missing_line_is_explained(tmp_path):
    program = run_script(tmp_path, "print('hello'); raise SystemExit(2)\n")
    try:
        with pytest.raises(GradingFailure) as caught:
            program.expect_line("ready", literal=True, timeout=10)
        text = str(caught.value)
        assert "ready" in text and "exited with status 2" in text
    finally:
        program.stop()


def test_line_client_reassembles_lines_across_segments():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        for piece in (b"ab", b"c\nde\r", b"\nf", b"g\n"):
            conn.sendall(piece)
            time.sleep(0.02)
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    transcript = Transcript()
    client = LineClient(listener.getsockname()[1], transcript, name="c")
    try:
        assert [client.read_line(), client.read_line(), client.read_line()] == ["abc", "de", "fg"]
        client.expect_eof(did="read to the end")
        with pytest.raises(GradingFailure, match="closed the connection"):
            client.expect_line("more", did="asked for more")
    finally:
        client.close()
        thread.join()
        listener.close()
    assert "'abc'" in transcript.render()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's stamps: Linux")
def test_a_datagram_keeps_the_time_it_arrived_however_late_it_is_read():
    """06's retry timings compare when datagrams arrived: the kernel's stamp
    (udp_peer), not the moment a busy grader got round to reading them."""
    from grader.testkit.udp_peer import UdpSocket
    transcript = Transcript()
    reader = UdpSocket(transcript, "reader")
    writer = UdpSocket(transcript, "writer")
    try:
        # The kernel turns its arrival stamps on for the machine a moment
        # after a first socket asks (deferred work): until then a datagram
        # is stamped when read. Wait for that moment, then read one late.
        for _ in range(50):
            sent = time.monotonic()
            writer.send_to(b"x", reader.address)
            time.sleep(0.3)
            datagram = reader.receive(timeout=1.0)
            assert datagram is not None
            if datagram.at - sent < 0.1:
                break
        assert datagram.at - sent < 0.1, datagram
    finally:
        reader.close()
        writer.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux")
def test_a_program_that_waits_says_where_it_waits(tmp_path):
    """Program.where(): what a program that did not do something in time is
    doing, from the kernel (a server blocked in accept() is sleeping there)."""
    script = tmp_path / "waits.py"
    script.write_text("import socket\ns = socket.create_server(('127.0.0.1', 0))\n"
                      "print('up', flush=True)\ns.accept()\n")
    program = Program(python_argv(script), cwd=tmp_path, transcript=Transcript())
    try:
        program.expect_line("up", timeout=10)
        deadline = time.monotonic() + 5
        while "accept" not in (where := program.where()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert where.startswith("it is sleeping") and "accept" in where, where
    finally:
        program.stop()
    assert program.where() == "it is gone"


def test_snapshot_copies_only_declared_plain_files(tmp_path):
    exercise = manifest.get("01_tcp_server")
    src = tmp_path / "student" / exercise.id
    src.mkdir(parents=True)
    (src / "tcp_server.py").write_text("print('hi')\n")
    (src / "conftest.py").write_text("raise SystemExit\n")
    (src / "sitecustomize.py").write_text("raise SystemExit\n")
    dest = tmp_path / "copy"
    dest.mkdir()
    snap = snapshot(src, exercise, dest)
    assert snap.complete and sorted(os.listdir(dest)) == ["tcp_server.py"]

    (src / "tcp_server.py").unlink()
    (src / "tcp_server.py").symlink_to("/etc/passwd")
    dest2 = tmp_path / "copy2"
    dest2.mkdir()
    snap = snapshot(src, exercise, dest2)
    assert not snap.complete and "symbolic link" in snap.problems[0]
    assert os.listdir(dest2) == []


def test_source_check_finds_forbidden_waiting():
    source = "import select\nimport threading as t\nfrom selectors import DefaultSelector\nselect.select([], [], [])\nselect.poll()\n"
    found = source_check.forbidden_uses(source, {"threading": "", "selectors": "", "select.select": ""})
    assert sorted(f.line for f in found) == [2, 3, 3, 4]
    assert source_check.uses_any(source, {"select.poll"})


def test_grading_json_and_no_leftovers(tmp_path):
    """`socklab grade` on a stub and a solution: JSON as documented, and no
    temp folder or process left afterwards."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(manifest.EXERCISES_DIR),
                    "--exercise", "01_tcp_server", "--format", "json", "--output", str(out)],
                   env=env, check=True, timeout=300)
    data = json.loads(out.read_text())
    assert set(data) == {"score", "max_score", "exercises"}
    ex = data["exercises"]["01_tcp_server"]
    assert ex["score"] == 0 and ex["max_score"] == 100
    assert {"name", "score", "max_score", "status", "message"} <= set(ex["tests"][0])
    assert any("NotImplementedError" in t["message"] for t in ex["tests"])
    assert list(scratch.iterdir()) == [], f"left behind: {list(scratch.iterdir())}"


def test_a_submitted_conftest_has_no_effect(tmp_path):
    """A conftest.py that would mark every test passed is never copied."""
    from grader.grading.grade_exercise import grade_exercise
    exercise = manifest.get("01_tcp_server")
    folder = tmp_path / exercise.id
    folder.mkdir()
    (folder / "tcp_server.py").write_bytes((exercise.folder / "tcp_server.py").read_bytes())
    (folder / "conftest.py").write_text(textwrap.dedent("""
        import pytest
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            outcome.get_result().outcome = "passed"
    """))
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:socklab\n")
    result = grade_exercise(exercise, tmp_path)
    assert result.tests and result.score == 0


LISTEN_THEN = """
import socket, sys, time
time.sleep(float(sys.argv[2]))                  # a slow start-up, before it binds
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(float(sys.argv[3]))                  # between listen() and the line
if sys.argv[4] == "say":
    print("ready", flush=True)
time.sleep(60)
"""


def _listens(program: Program, port: int):
    from grader.harness import listening
    return lambda: listening.listens(program.pid, port)


def test_a_listening_program_that_never_says_so_fails_without_the_whole_wait(tmp_path):
    """Once the kernel lists the program's listening socket, its ready line
    has a reply's time to come (waits.DONE_TO_LINE), not what is left of
    READY; the message says it was listening."""
    port = ports.free_port()
    program = run_script(tmp_path, LISTEN_THEN, str(port), "0", "0", "silent")
    try:
        with pytest.raises(GradingFailure) as caught:
            program.expect_line("ready", literal=True, timeout=120, done=_listens(program, port),
                                done_what="listening (the kernel lists its socket)")
        text = str(caught.value)
        assert "already listening (the kernel lists its socket)" in text, text
        assert "within 120 s" not in text
    finally:
        program.stop()


@pytest.mark.parametrize("before, between", [(1.0, 0.0), (0.0, 0.3)])
def test_a_slow_start_or_a_short_set_up_after_listening_still_gets_ready(tmp_path, before,
                                                                         between):
    port = ports.free_port()
    program = run_script(tmp_path, LISTEN_THEN, str(port), str(before), str(between), "say")
    try:
        program.expect_line("ready", literal=True, timeout=30, done=_listens(program, port))
    finally:
        program.stop()


def test_what_a_program_has_done_is_seen_in_the_kernel(tmp_path):
    """grader.harness.listening: a Unix-domain listener, a UDP socket bound
    to the port, a fork; nothing of the kind in a program that only sleeps."""
    from grader.harness import listening
    port = ports.free_port()
    body = f"""
    import os, socket, time
    u = socket.socket(socket.AF_UNIX); u.bind({str(tmp_path / 's.sock')!r}); u.listen()
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.bind(("127.0.0.1", {port}))
    if os.fork() == 0:
        time.sleep(60)
    print("done", flush=True)
    time.sleep(60)
    """
    busy = run_script(tmp_path, body)
    (tmp_path / "idle.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    idle = Program(python_argv(tmp_path / "idle.py"), cwd=tmp_path, transcript=Transcript(),
                   name="idle")
    try:
        idle.expect_line("up", literal=True, timeout=30)
        busy.expect_line("done", literal=True, timeout=30)
        assert listening.listening_unix(busy.pid) and listening.serving(busy.pid, port)
        assert listening.has_child(busy.pid)
        assert not listening.serving(busy.pid, port + 1 if port < 65535 else port - 1)
        assert not (listening.listening_unix(idle.pid) or listening.serving(idle.pid, port)
                    or listening.has_child(idle.pid))
    finally:
        busy.stop()
        idle.stop()
