"""Hidden suite for 05_unix_sockets, part 1: pair.py (socketpair + fork).

The program is driven through its standard input (a terminal, as in a
student's shell); its children are watched through /proc (psutil)."""

import re

import psutil
import pytest

from grader.harness import waits
from grader.harness.failure import check, fail
from grader.harness.orphans import OrphanWatch
from grader.testkit import textgen
from grader.testkit.suites.server_rules import TRACEBACK, expect_usage_error
from grader.testkit.unix_sockets import child_answers_hello, forked, start_pair

SCRIPT = "pair.py"


def start_answering_pair(spawn):
    """start_pair, then the fixed first line, answered: the gate of the
    answers (grader.testkit.unix_sockets.child_answers_hello)."""
    program, child = start_pair(spawn)
    child_answers_hello(program, child)
    return program, child


def ascii_line(rng) -> str:
    """A line of mixed-case ASCII words (the case mapping of other letters
    is not what this exercise is about)."""
    words = [rng.choice(textgen.WORDS) for _ in range(rng.randint(2, 5))]
    words = [w.capitalize() if rng.random() < 0.4 else w for w in words]
    return " ".join(words) + rng.choice(("", "!", "?", ".", " ;-)")) + f" #{rng.randrange(16**6):06x}"


ANSWER = re.compile(r"child (-?\d+): (.*)$")


def expect_answer(program, child: int, line: str, did: str) -> None:
    """The next answer line must carry the child's pid and LINE in upper case."""
    match = program.expect_line(ANSWER, did=did)
    pid, text = int(match.group(1)), match.group(2).rstrip()
    expected = f"child {child}: {line.upper()}"
    if pid != child:
        whose = " (that is the parent's pid)" if pid == program.inner_pid() else ""
        raise fail(did=did, expected=f"the answer {expected!r}, from the child, pid {child}",
                   got=f"an answer naming pid {pid}{whose}",
                   hint="call os.getpid() in the child, after the fork; a pid saved before "
                        "fork() is the parent's")
    if text != line.upper().rstrip():
        if line.upper().startswith(text) and text:
            got = (f"an answer holding only the first {len(text)} of the {len(line)} characters "
                   "(was the line read with a single recv()?)")
        else:
            got = f"the answer {match.group(0)!r}"
        raise fail(did=did, expected=f"the answer {expected[:200]!r}" +
                   (" (shortened here)" if len(expected) > 200 else ""), got=got[:400])


def exchange(program, child: int, line: str, did: str = "") -> None:
    program.send_line(line)
    expect_answer(program, child, line,
                  did=did or f"typed the line {line!r} on pair.py's standard input")


def end_input(program, child: int, did: str) -> None:
    """Send end of input; expect the reap line and a clean exit 0."""
    program.send_eof()
    program.expect_line(f"child {child} exited with status 0", literal=True, did=did)
    status = program.wait_exit(waits.EXIT)
    check(status is not None, did, "pair.py exits after reporting its child's exit",
          f"it was still running {waits.EXIT:g} s later")
    check(status.code == 0, did, "exit status 0", status.describe())
    err = program.stderr()
    check(TRACEBACK not in err, did, "no traceback", "stderr holds a traceback (shown below)")


def process(program, pid: int) -> psutil.Process:
    """The process that pair.py calls `pid` (pair.py prints the pids of its
    own view, a pid namespace of its own when graded)."""
    outer = program.outer_pid(pid)
    if outer is None:
        raise psutil.NoSuchProcess(pid)
    return psutil.Process(outer)


def unix_sockets(process: psutil.Process) -> int:
    """How many AF_UNIX sockets `process` holds open."""
    return len(process.net_connections(kind="unix"))


@pytest.mark.points(4)
@pytest.mark.task(1)
def test_fork_line_names_the_parent_and_a_real_child(spawn):
    program = spawn(SCRIPT, name="pair")
    did = f"ran: python -u {SCRIPT}"
    match = forked(program, did)
    parent, child = int(match.group(1)), int(match.group(2))
    own = program.inner_pid()   # pids as pair.py sees them (its own pid namespace when graded)
    check(parent == own, did, f"PARENTPID is pair.py's own pid, {own}", f"it printed {parent}")
    check(child != parent, did, "CHILDPID is the pid fork() returned, a new process",
          f"it printed the same pid twice ({child})")
    try:
        parent_of_child = program.inner_pid(process(program, child).ppid())
    except psutil.NoSuchProcess:
        raise fail(did=did + ", then looked for the child in /proc",
                   expected=f"a running process {child}, waiting for lines",
                   got=f"there is no process {child}") from None
    check(parent_of_child == own, did + ", then looked for the child in /proc",
          f"process {child} is a child of pair.py ({own})",
          f"its parent is process {parent_of_child}")
    end_input(program, child, did="sent end of input (Ctrl-D) to pair.py")


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_parent_and_child_talk_over_unix_sockets(spawn):
    program, child = start_pair(spawn)
    did = "started pair.py and looked at the open sockets of the parent and of the child in /proc"
    try:
        counts = {"parent": unix_sockets(psutil.Process(program.pid)),
                  "child": unix_sockets(process(program, child))}
    except psutil.NoSuchProcess as exc:
        raise fail(did=did, expected="both processes running",
                   got=f"process {exc.pid} had already exited") from None
    for who, count in counts.items():
        check(count >= 1, did, f"the {who} holds its end of socket.socketpair() "
              "(an AF_UNIX socket)", f"the {who} holds no AF_UNIX socket",
              hint="socket.socketpair() returns two connected sockets; after fork() each "
                   "process keeps one of them")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_every_line_is_answered_by_the_child_in_order(spawn, rng):
    program, child = start_answering_pair(spawn)
    lines = [ascii_line(rng) for _ in range(rng.randint(4, 7))]
    lines.insert(rng.randrange(1, len(lines)), "   " + ascii_line(rng))  # spaces are part of LINE
    for number, line in enumerate(lines, 1):
        exchange(program, child, line,
                 did=f"typed line {number} of {len(lines)}, {line!r}, and waited for the answer")
    burst = [ascii_line(rng) for _ in range(3)]
    for line in burst:
        program.send_line(line)
    for number, line in enumerate(burst, 1):
        expect_answer(program, child, line,
                      did=f"typed three lines at once; waited for the answer to line {number}, "
                          f"{line!r} (answers come in the order of the lines)")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_a_long_line_gets_one_whole_answer(spawn, rng):
    program, child = start_answering_pair(spawn)
    long = textgen.line_of_bytes(rng, rng.randint(1500, 3000))
    short = ascii_line(rng)
    program.send_line(long)
    expect_answer(
        program, child, long,
        did=f"typed one line of {len(long)} characters; waited for one answer line holding all "
            "of it in upper case (a recv() may return part of a line: read up to the newline)")
    exchange(program, child, short, did=f"after the long line, typed {short!r}")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_reports_the_child_exit_on_end_of_input(spawn, rng):
    program, child = start_answering_pair(spawn)
    for _ in range(rng.randint(1, 3)):
        exchange(program, child, ascii_line(rng))
    end_input(program, child, did="typed a few lines, then sent end of input (Ctrl-D)")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_end_of_input_before_any_line(spawn):
    program, child = start_pair(spawn)
    end_input(program, child, did="sent end of input (Ctrl-D) before typing any line")


@pytest.mark.points(6)
@pytest.mark.task(3)
def test_leaves_no_zombie_and_no_orphan(spawn, rng):
    with OrphanWatch() as watch:
        program, child = start_pair(spawn)
        watch.own(program)
        child_answers_hello(program, child)
        for _ in range(rng.randint(1, 3)):
            exchange(program, child, ascii_line(rng))
        program.send_eof()
        did = "typed a few lines, sent end of input (Ctrl-D), and waited for pair.py to exit"
        # Its child sees end of file and exits, it reports that (a reply), then exits.
        status = program.wait_exit(waits.EOF + waits.EXIT)
        check(status is not None, did, "pair.py exits",
              f"it was still running {waits.EOF + waits.EXIT:g} s later")
        strays = watch.strays()
        if strays:
            raise fail(did=did + "; then looked in /proc for the processes it left behind",
                       expected="nothing left: the parent waited for its child (waitpid) "
                                "before exiting, so the child is gone",
                       got="; ".join(s.describe() for s in strays) +
                           (f" (the child pid pair.py announced was {child})"
                            if all(s.pid != child for s in strays) else ""),
                       hint="shut down the parent's end so that the child sees end of file "
                            "and exits, then call os.waitpid(child_pid, 0) before printing "
                            "its status")
        check(program.outer_pid(child) is None, did + "; then looked for the child in /proc",
              f"process {child} is gone", f"process {child} still exists")


@pytest.mark.points(2)
def test_rejects_arguments_with_usage(spawn):
    program, child = start_pair(spawn)   # only a working program earns these points
    end_input(program, child, did="ran pair.py and sent end of input")
    program = spawn(SCRIPT, "extra", name="pair")
    expect_usage_error(program, f"ran: python -u {SCRIPT} extra   (pair.py takes no arguments)")
