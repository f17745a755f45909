"""Whatever a program prints, the grader keeps a bounded part of it, says
what it dropped, and shows control characters escaped (never raw) in
what a person reads."""

import signal
import textwrap
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader.grading import formats
from grader.harness import program as program_module
from grader.harness.failure import MESSAGE_CHARS, GradingFailure
from grader.harness.module_calls import ModuleRunner
from grader.harness.program import Program, python_argv
from grader.harness.transcript import Transcript
from grader.harness.visible_text import visible
from grader.plugin import STATE, TRANSCRIPT, _render
from grader.results import ExerciseResult, TestResult

MiB = 1 << 20
KEPT_CAP = program_module.HEAD_BYTES + program_module.WINDOW_BYTES   # characters of stdout kept at most


def run_script(tmp_path: Path, body: str) -> Program:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(body))
    return Program(python_argv(script), cwd=tmp_path, transcript=Transcript(), name="prog")


def kept_chars(program: Program) -> int:
    return sum(len(line) for line in program.lines)


def wait_until(program: Program, condition, timeout: float) -> bool:
    """Wait for a condition on the program's output (checked whenever it grows)."""
    with program._cond:
        return program._cond.wait_for(condition, timeout)


def message_of(program: Program, failure: GradingFailure, tmp_path: Path) -> str:
    """The failure message the plugin would write for a test that used `program`."""
    item = SimpleNamespace(
        name="test_something", path=tmp_path / "test_something.py",
        stash={TRANSCRIPT: program.transcript},
        config=SimpleNamespace(stash={STATE: SimpleNamespace(seed=1234)}),
        get_closest_marker=lambda name: None)
    return _render(item, failure)


def test_huge_lines_are_cut_and_the_ready_line_still_found(tmp_path):
    program = run_script(tmp_path, """
        import sys, time
        out = sys.stdout
        for i in range(12):             # 28 MiB in all: under the stdout budget
            out.write(("%02d" % i) * (1 << 19) + "\\n")
        out.write("y" * (8 << 20))
        out.write("\\nready\\n")
        out.flush()
        out.write("z" * (8 << 20))       # a line still in progress, no newline
        out.flush()
        print("flooded", file=sys.stderr, flush=True)
        time.sleep(60)
    """)
    try:
        program.expect_line("ready", literal=True, timeout=60)
        assert wait_until(program, lambda: program._partial_len >= 8 * MiB, 60)
        assert len(program._partial) <= program_module.LINE_BYTES
        lines = program.lines
        assert len(lines) == 14
        assert all(len(line) <= program_module.LINE_BYTES for line in lines)
        assert kept_chars(program) < KEPT_CAP
        assert kept_chars(program) <= 14 * program_module.LINE_BYTES
        assert lines[0].startswith("0000") and lines[11].startswith("1111")
        assert lines[0].total == MiB
        assert lines[12].total == 8 * MiB and lines[13] == "ready"
        assert not program.over_budget
        tail = program.output_tail()
        assert len(tail) <= program_module.OUTPUT_TAIL_CHARS
        assert "13 lines longer than 8192 bytes were cut" in tail, tail
        assert "a line of" in tail and "without an end" in tail, tail
        assert "bytes were dropped" in tail
        assert max(map(len, tail.splitlines())) < program_module.SHOW_CHARS + 60
        failure = GradingFailure("started prog", "something else", "it was not there")
        message = message_of(program, failure, tmp_path)
        assert len(message) <= MESSAGE_CHARS
        assert "bytes were dropped" in message and "Seed: 1234" in message
    finally:
        program.stop()


def test_a_program_printing_past_the_budget_is_stopped(tmp_path):
    program = run_script(tmp_path, """
        import sys
        while True:
            sys.stdout.write("x" * (1 << 20) + "\\n")
    """)
    try:
        assert program.wait_for_eof(60), "a program printing without end was not stopped"
        assert program.over_budget
        status = program.wait_exit(10)
        assert status is not None and status.signal == signal.SIGKILL, status
        with pytest.raises(GradingFailure) as caught:
            program.expect_line("ready", timeout=1)
        assert f"more than {program_module.STDOUT_BUDGET >> 20} MiB on stdout" in caught.value.render()
    finally:
        program.stop()


def test_many_short_lines_keep_a_head_and_a_window(tmp_path):
    count = 400_000
    program = run_script(tmp_path, f"""
        import sys, time
        sys.stdout.write("".join(f"line {{i}} " + "x" * 60 + "\\n" for i in range({count})))
        print("ready", flush=True)
        time.sleep(60)
    """)
    try:
        assert wait_until(program, lambda: program._count == count + 1, 120)
        assert program.expect_line(r"ready$", timeout=5)
        dropped_lines, dropped_bytes, cut = program.dropped()
        lines = program.lines
        assert dropped_lines > 0 and dropped_bytes > 0 and cut == 0
        assert len(lines) + dropped_lines == count + 1
        assert len(lines) <= program_module.HEAD_LINES + program_module.MAX_LINES
        assert kept_chars(program) < KEPT_CAP
        assert lines[0].startswith("line 0 ") and lines[-1] == "ready"
        # the lines dropped before expect_line reached them are counted as such
        assert program._unread_dropped == dropped_lines
        assert program.has_line(r"line 0 ") and not program.has_line(r"line 2000 ")
        assert f"[... {dropped_lines} lines of stdout not kept ...]" in program.stdout()
        tail = program.output_tail()
        assert f"{dropped_lines} lines in the middle were not kept" in tail, tail
        assert "First stdout lines of prog:" in tail and "    | ready" in tail
        assert len(tail) <= program_module.OUTPUT_TAIL_CHARS
    finally:
        program.stop()
    # Once its output ended, a program keeps less (the session keeps every Program).
    assert program.wait_for_eof(10)
    assert kept_chars(program) <= program_module.HEAD_BYTES + program_module.ENDED_WINDOW_BYTES
    assert program.lines[0].startswith("line 0 ") and program.lines[-1] == "ready"
    assert "    | ready" in program.output_tail()


def test_a_big_stderr_file_is_read_bounded(tmp_path):
    program = run_script(tmp_path, """
        import sys
        err = sys.stderr.buffer
        err.write(b"first line\\n")
        for _ in range(50):
            err.write(b"e" * ((1 << 20) - 1) + b"\\n")
        err.write(b"last line\\n")
        err.flush()
    """)
    try:
        assert program.wait_exit(60) is not None
        tracemalloc.start()
        try:
            text = program.stderr()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        limit = program_module.STDERR_HEAD_BYTES + program_module.STDERR_TAIL_BYTES
        assert len(text) <= limit + 100
        assert peak < 4 * limit, peak          # never the 50 MiB file
        assert text.startswith("first line\n") and text.endswith("last line\n")
        assert "bytes of stderr not shown" in text
        assert len(program.output_tail()) <= program_module.OUTPUT_TAIL_CHARS
    finally:
        program.stop()


def test_visible_escapes_control_characters_only():
    assert visible("\x1b[2J") == "\\x1b[2J"
    assert visible("\x9b31m") == "\\x9b31m"
    assert visible("a\rb") == "a\\rb"
    assert visible("bell\x07") == "bell\\x07"
    assert visible("del\x7f") == "del\\x7f"
    assert visible("\x00\x85") == "\\0\\x85"
    assert visible("one\ntwo\tthree") == "one\ntwo\tthree"
    assert visible("héllo wörld — 日本語 ✓") == "héllo wörld — 日本語 ✓"
    assert visible(visible("\x1b[H\x9b")) == visible("\x1b[H\x9b")


FAKE_TABLE = "\x1b[2J\x1b[Hexercise  score\r\n01_tcp_server  100/100\x9b2J\x07\x7f\rOVER"


def test_a_program_cannot_draw_on_the_instructors_terminal(tmp_path):
    program = run_script(tmp_path, f"""
        import sys
        print({FAKE_TABLE!r}, flush=True)
        print({FAKE_TABLE!r}, file=sys.stderr, flush=True)
        print("ready", flush=True)
        sys.stdin.readline()
    """)
    try:
        program.expect_line("ready", literal=True, timeout=20)
        program.transcript.received("client", FAKE_TABLE.encode())
        program.transcript.note("client", "it said " + FAKE_TABLE)
        failure = GradingFailure("ran prog", "a greeting", "it printed " + FAKE_TABLE)
        message = message_of(program, failure, tmp_path)
    finally:
        program.stop()
    assert "\\x1b[2J" in message and "\\x9b2J" in message and "\\r" in message
    assert "\\x07" in message and "\\x7f" in message
    # in the program's stdout and stderr lines, a lone \r is shown, not obeyed
    assert message.count("    | 01_tcp_server  100/100\\x9b2J\\x07\\x7f\\rOVER") == 2, message
    assert not any(ch in message for ch in "\x1b\x9b\r\x07\x7f"), repr(message)
    result = ExerciseResult("01_tcp_server", 0, 100, tests=[
        TestResult("test_x", 0, 10, "failed", message=FAKE_TABLE)], message=FAKE_TABLE)
    for shown in (formats.table([result]), formats.failures([result]), formats.as_json([result])):
        assert not any(ch in shown for ch in "\x1b\x9b\r\x07\x7f"), repr(shown)
    assert "\\x1b[2J" in formats.failures([result])


def test_a_module_check_that_floods_its_output_is_kept_bounded(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    checks = ModuleRunner(workdir, Transcript())
    outcome = checks.run("""
        import sys
        for _ in range(40):
            sys.stdout.write("o" * (1 << 20) + "\\n")
            sys.stderr.write("e" * (1 << 20) + "\\n")
        print("\\x1b[2J the end")
        result = 42
    """, did="flooded its output")
    assert outcome.returned and outcome.value == 42
    assert len(outcome.stdout) < 1 * MiB and len(outcome.stderr) < 1 * MiB
    assert "bytes not kept" in outcome.stdout and outcome.stdout.endswith("the end\n")
    tail = outcome.output_tail()
    assert "\\x1b[2J the end" in tail and "\x1b" not in tail
    assert len(tail) < 32 << 10


def test_a_module_check_that_hangs_still_times_out(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    checks = ModuleRunner(workdir, Transcript(), timeout=2)
    outcome = checks.run("""
        import time
        print("waiting", flush=True)
        time.sleep(60)
    """)
    assert outcome.status == "timed out", outcome
    assert "waiting" in outcome.stdout


@pytest.mark.parametrize("size", [10, 200_000])
def test_a_failure_message_has_a_stated_cap(tmp_path, size):
    program = run_script(tmp_path, "print('hi')\n")
    try:
        program.wait_for_eof(20)
        for i in range(500):
            program.transcript.received(f"client{i}", b"q" * size)
        failure = GradingFailure("did " * size, "expected", "got " * size)
        message = message_of(program, failure, tmp_path)
    finally:
        program.stop()
    assert len(message) <= MESSAGE_CHARS
    assert message.startswith("test_something") and message.endswith("--socklab-seed 1234)")
    assert "    | hi" in message
