"""Visible tests for 05_unix_sockets, pair.py. Run: pytest exercises/05_unix_sockets"""

import re

import pytest

from grader.harness.failure import check
from grader.testkit import textgen

FORKED = re.compile(r"parent (\d+) forked child (\d+)\s*$")


def start_pair(spawn):
    program = spawn("pair.py", name="pair")
    match = program.expect_line(FORKED, did="ran: python -u pair.py")
    return program, int(match.group(2))


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_announces_the_fork(spawn):
    program = spawn("pair.py", name="pair")
    match = program.expect_line(FORKED, did="ran: python -u pair.py")
    check(int(match.group(1)) == program.inner_pid(), "ran: python -u pair.py",
          f"PARENTPID is pair.py's own pid, {program.inner_pid()}", f"it printed {match.group(1)}")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_the_child_answers_in_upper_case(spawn, rng):
    program, child = start_pair(spawn)
    line = " ".join(rng.choice(textgen.WORDS) for _ in range(3)) + f" #{rng.randrange(1000)}"
    program.send_line(line)
    program.expect_line(f"child {child}: {line.upper()}", literal=True,
                        did=f"typed {line!r} on pair.py's standard input")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_prints_the_exit_status_after_ctrl_d(spawn):
    program, child = start_pair(spawn)
    program.send_line("hello")
    program.expect_line(f"child {child}: HELLO", literal=True, did="typed 'hello'")
    program.send_eof()
    did = "typed 'hello', then sent end of input (Ctrl-D)"
    program.expect_line(f"child {child} exited with status 0", literal=True, did=did)
    status = program.wait_exit(5)
    check(status is not None and status.code == 0, did, "pair.py exits with status 0",
          status.describe() if status else "it was still running 5 s later")
