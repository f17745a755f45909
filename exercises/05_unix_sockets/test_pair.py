"""Visible tests for 05_unix_sockets, pair.py. Run: pytest exercises/05_unix_sockets"""

import pytest

from grader.harness import gates, waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.unix_sockets import (child_answers_hello, echo_server_beside, forked,
                                         start_pair)
from grader.testkit.unix_sockets import socket_dir  # noqa: F401 (a fixture)


@pytest.fixture
def beside(spawn, socket_dir):
    """The echo server's first check, run beside pair.py's while neither has
    a verdict: a program that never starts costs one wait, not two."""
    return (echo_server_beside(spawn, socket_dir),)


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_announces_the_fork(spawn, beside):
    program = spawn("pair.py", name="pair")
    match = gates.side_by_side(lambda: forked(program), *beside)
    check(int(match.group(1)) == program.inner_pid(), "ran: python -u pair.py",
          f"PARENTPID is pair.py's own pid, {program.inner_pid()}", f"it printed {match.group(1)}")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_the_child_answers_in_upper_case(spawn, beside, rng):
    program, child = start_pair(spawn, beside)
    child_answers_hello(program, child)    # 'hello' first: a gate (grader.testkit.unix_sockets)
    line = " ".join(rng.choice(textgen.WORDS) for _ in range(3)) + f" #{rng.randrange(1000)}"
    program.send_line(line)
    program.expect_line(f"child {child}: {line.upper()}", literal=True,
                        did=f"typed {line!r} on pair.py's standard input")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_prints_the_exit_status_after_ctrl_d(spawn, beside):
    program, child = start_pair(spawn, beside)
    child_answers_hello(program, child)
    program.send_eof()
    did = "typed 'hello', then sent end of input (Ctrl-D)"
    program.expect_line(f"child {child} exited with status 0", literal=True, did=did)
    status = program.wait_exit(waits.EXIT)
    check(status is not None and status.code == 0, did, "pair.py exits with status 0",
          status.describe() if status else f"it was still running {waits.EXIT:g} s later")
