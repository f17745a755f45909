"""Visible tests for 05_unix_sockets, pair.py. Run: pytest exercises/05_unix_sockets"""

import re

import pytest

from grader.harness import gates, listening, waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.unix_sockets import child_answers_hello

FORKED = re.compile(r"parent (\d+) forked child (\d+)\s*$")
# pair.py's first line, the same check every time: a gate (grader.harness.gates).
FORK_GATE = gates.Gate("ready:pair.py", "`python pair.py` announces its fork")


def forked(program) -> re.Match:
    with gates.guard(FORK_GATE):
        return program.expect_line(FORKED, timeout=waits.READY, did="ran: python -u pair.py",
                                   done=lambda: listening.has_child(program.pid),
                                   done_what="running its child (it had forked)")


def start_pair(spawn):
    program = spawn("pair.py", name="pair")
    return program, int(forked(program).group(2))


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_announces_the_fork(spawn):
    program = spawn("pair.py", name="pair")
    match = forked(program)
    check(int(match.group(1)) == program.inner_pid(), "ran: python -u pair.py",
          f"PARENTPID is pair.py's own pid, {program.inner_pid()}", f"it printed {match.group(1)}")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_the_child_answers_in_upper_case(spawn, rng):
    program, child = start_pair(spawn)
    child_answers_hello(program, child)    # 'hello' first: a gate (grader.testkit.unix_sockets)
    line = " ".join(rng.choice(textgen.WORDS) for _ in range(3)) + f" #{rng.randrange(1000)}"
    program.send_line(line)
    program.expect_line(f"child {child}: {line.upper()}", literal=True,
                        did=f"typed {line!r} on pair.py's standard input")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_prints_the_exit_status_after_ctrl_d(spawn):
    program, child = start_pair(spawn)
    child_answers_hello(program, child)
    program.send_eof()
    did = "typed 'hello', then sent end of input (Ctrl-D)"
    program.expect_line(f"child {child} exited with status 0", literal=True, did=did)
    status = program.wait_exit(waits.EXIT)
    check(status is not None and status.code == 0, did, "pair.py exits with status 0",
          status.describe() if status else f"it was still running {waits.EXIT:g} s later")
