"""Gates (a broken program fails every test that needs the same first check
at once, as a failure with the check's story) and turns (tests side by
side, `alone` tests with nobody else on the machine)."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from grader.course import manifest
from grader.grading.grade_exercise import pytest_environment
from grader.harness import gates, turns
from grader.harness.accept_queue import ACCEPTED, WAITING, accept_state
from grader.harness.failure import GradingFailure

ROOT = Path(__file__).resolve().parent.parent


# -- the gate book ---------------------------------------------------------------

def context(book: gates.Book, test: str) -> gates.Context:
    return gates.Context(book=book, test=test, describe=lambda exc: f"story of {test}: {exc.got}")


def attempt(guarded, fails: bool) -> str:
    """Run one step under `guarded` (a gates context manager); what happened to it."""
    try:
        with guarded:
            if fails:
                raise GradingFailure("did", "expected", "nothing came")
    except gates.GateClosed as closed:
        return "failed at once: " + closed.render()
    except GradingFailure:
        return "failed"
    return "passed"


def run_step(gate: gates.Gate, fails: bool, closes: bool = True) -> str:
    return attempt(gates.guard(gate, closes=closes), fails)


@pytest.fixture
def book():
    book = gates.Book()
    yield book
    gates.activate(None)


def test_a_failed_gate_fails_the_later_steps_at_once_with_its_story(book):
    ready = gates.Gate("ready:server.py PORT", "server.py prints its ready line")
    gates.activate(context(book, "test_one"))
    assert run_step(ready, fails=True) == "failed"
    gates.activate(context(book, "test_two"))
    outcome = run_step(ready, fails=False)
    assert outcome.startswith("failed at once:")
    assert "server.py prints its ready line" in outcome and "test_one" in outcome
    assert "story of test_one: nothing came" in outcome


def test_a_gate_that_passed_once_never_closes(book):
    ready = gates.Gate("ready:server.py PORT", "server.py prints its ready line")
    gates.activate(context(book, "test_one"))
    assert run_step(ready, fails=False) == "passed"
    assert run_step(ready, fails=True) == "failed"
    assert run_step(ready, fails=False) == "passed", "a later failure is that test's own"


def test_only_the_gates_exact_step_closes_it(book):
    welcome = gates.Gate("welcome:chat.py PORT 5", "the first client is welcomed")
    gates.activate(context(book, "test_one"))
    assert run_step(welcome, fails=True, closes=False) == "failed"
    assert run_step(welcome, fails=False) == "passed", "a step that does not close it left it open"
    other = gates.Gate("welcome:chat.py PORT 2", "the first client is welcomed")
    assert run_step(other, fails=True) == "failed"
    assert run_step(welcome, fails=False) == "passed", "another command line's gate is another gate"
    assert run_step(other, fails=False).startswith("failed at once")


def test_first_checks_beside_a_test_decide_their_gates_and_not_its_outcome(book):
    """gates.side_by_side: another program's first check runs beside the
    test's own, in a thread, while its gate has no verdict; its failure
    closes its gate, told as checked beside that test, and leaves the
    test's own outcome alone; a decided gate's check does not run again."""
    ready = gates.Gate("ready:server.py PATH", "server.py prints its ready line")
    forked = gates.Gate("ready:pair.py", "pair.py announces its fork")
    ran = []

    def never_ready():
        ran.append(threading.current_thread().name)
        with gates.guard(ready):
            time.sleep(0.05)
            raise GradingFailure(did="ran server.py", expected="its ready line", got="nothing came")

    gates.activate(context(book, "test_pair"))
    with gates.guard(forked):
        assert gates.side_by_side(lambda: "forked", (ready, "`python server.py PATH`",
                                                     never_ready)) == "forked"
    assert len(ran) == 1 and ran[0] != threading.current_thread().name, "in a thread of its own"
    gates.activate(context(book, "test_server"))
    outcome = run_step(ready, fails=False)
    assert outcome.startswith("failed at once:"), outcome
    assert "in test_pair, which checked `python server.py PATH` beside its own first check" \
        in outcome
    assert "nothing came" in outcome
    assert gates.side_by_side(lambda: "again", (ready, "server.py", never_ready)) == "again"
    assert len(ran) == 1, "a gate with a verdict is not checked again"
    with pytest.raises(GradingFailure):   # the test's own check still fails it
        gates.side_by_side(lambda: never_ready(), (forked, "pair.py", lambda: None))


def test_workers_sharing_a_folder_share_each_gates_first_verdict(tmp_path):
    """Two books on one folder stand for two xdist workers of one run: a
    gate one of them closed fails at once in the other, and a gate one of
    them saw pass never closes in the other."""
    ready = gates.Gate("ready:server.py PORT", "server.py prints its ready line")
    welcome = gates.Gate("welcome:server.py PORT", "the first client is welcomed")
    first, second = gates.Book(tmp_path / "01"), gates.Book(tmp_path / "01")
    try:
        gates.activate(context(first, "test_one"))
        assert run_step(ready, fails=True) == "failed"
        assert run_step(welcome, fails=False) == "passed"
        gates.activate(context(second, "test_two"))
        outcome = run_step(ready, fails=False)
        assert outcome.startswith("failed at once:") and "story of test_one" in outcome
        assert run_step(welcome, fails=True) == "failed"
        gates.activate(context(first, "test_three"))
        assert run_step(welcome, fails=False) == "passed", "it passed first: it never closes"
        assert sorted(p.name for p in (tmp_path / "01").iterdir()) == sorted(
            hashlib.sha256(g.key.encode()).hexdigest() for g in (ready, welcome)), \
            "one verdict per gate, no draft left behind"
    finally:
        gates.activate(None)


def start_step(command: str, usual: str | None, fails: bool) -> str:
    return attempt(gates.server_start(command, usual), fails)


def test_a_start_with_other_arguments_needs_the_usual_start_to_work(book):
    usual, other = "chat.py PORT 100", "chat.py PORT 2"
    gates.activate(context(book, "test_one"))
    assert start_step(other, usual, fails=True) == "failed"
    assert start_step(usual, usual, fails=False) == "passed", \
        "another command line failing closes nothing of the usual one"
    assert start_step(other, usual, fails=False).startswith("failed at once"), \
        "its own gate closed"
    assert start_step("chat.py PORT 3", usual, fails=False) == "passed"

    fresh = gates.Book()
    gates.activate(context(fresh, "test_two"))
    assert start_step(usual, usual, fails=True) == "failed"
    gates.activate(context(fresh, "test_three"))
    outcome = start_step("chat.py PORT 5", usual, fails=False)
    assert outcome.startswith("failed at once") and "`python chat.py PORT 100` starts" in outcome \
        and "test_two" in outcome, outcome
    assert start_step("other.py PORT", None, fails=False) == "passed", "another script: its own gates"


class FakeClient:
    def __init__(self, port: int, ordinal: int) -> None:
        self.port, self.ordinal = port, ordinal


def answer_step(client: FakeClient, fails: bool) -> str:
    return attempt(gates.first_answer(client, "welcome", "is welcomed"), fails)


def test_a_server_started_with_other_arguments_needs_the_usual_first_answer(book):
    usual = "chat.py PORT 100"
    gates.activate(context(book, "test_one"))
    gates.server_started(5001, usual, usual)
    assert answer_step(FakeClient(5001, 1), fails=True) == "failed"
    gates.activate(context(book, "test_two"))
    gates.server_started(5002, "chat.py PORT 2", usual)
    outcome = answer_step(FakeClient(5002, 1), fails=False)
    assert outcome.startswith("failed at once") and "test_one" in outcome, outcome
    gates.activate(context(book, "test_three"))
    gates.server_started(5003, "solo.py PORT")
    assert answer_step(FakeClient(5003, 1), fails=False) == "passed"


def test_the_usual_command_is_the_suites_one_server_spec_for_that_script():
    from types import SimpleNamespace

    from grader.plugin import usual_command
    from grader.testkit.suites.server_rules import ServerSpec

    spec = ServerSpec(script="chat.py", args=lambda port: [port, 100], ready=lambda port: "ready")
    module = SimpleNamespace(SPEC=spec, OTHER=ServerSpec("echo.py", lambda port: [port],
                                                        lambda port: "ready"))
    assert usual_command(module, "chat.py") == "chat.py PORT 100"
    assert usual_command(module, "nope.py") is None
    two = SimpleNamespace(A=spec, B=ServerSpec("chat.py", lambda port: [port, 3], lambda port: "r"))
    assert usual_command(two, "chat.py") is None, "two usual command lines: none is the usual one"


@pytest.fixture
def listener():
    """A listening socket that accepts nothing unless the test says so."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    opened = [sock]
    yield sock, opened
    for each in opened:
        each.close()


def connect_to(listener) -> tuple[int, int]:
    sock, opened = listener
    client = socket.create_connection(sock.getsockname())
    opened.append(client)
    return sock.getsockname()[1], client.getsockname()[1]


def first_client_in(book, listener, test: str) -> tuple[int, int]:
    """In `test`, a server `srv.py PORT` (the listener) and its first client."""
    port, client_port = connect_to(listener)
    gates.activate(context(book, test))
    gates.server_started(port, "srv.py PORT")
    gates.client_connected(port, client_port)
    return port, client_port


def later_test_needs_accepted(book, port: int) -> None:
    """In a later test, a client of another start of `srv.py PORT` waits for data."""
    gates.activate(context(book, "test_two"))
    gates.server_started(port + 1, "srv.py PORT")
    gates.needs_accepted(port + 1)


def test_the_kernel_tells_a_connection_waiting_in_the_queue_from_an_accepted_one(listener):
    port, client_port = connect_to(listener)
    assert accept_state(port, client_port) == WAITING
    accepted, _ = listener[0].accept()
    listener[1].append(accepted)
    assert accept_state(port, client_port) == ACCEPTED
    assert accept_state(port, 1) is None, "a connection the kernel does not list"


def test_a_first_client_left_waiting_in_a_failed_test_closes_its_servers_accepts_gate(
        book, listener):
    port, client_port = first_client_in(book, listener, "test_one")
    failure = GradingFailure("sent a line", "its echo", "nothing came")
    gates.settle_accepts(failure, patience=0.0)
    assert "never accepted this test's first connection" in failure.got, failure.got
    with pytest.raises(gates.GateClosed) as closed:
        later_test_needs_accepted(book, port)
    assert "accepts its first client's connection" in closed.value.render()
    assert "story of test_one" in closed.value.render()
    gates.server_started(port + 2, "other.py PORT")
    gates.needs_accepted(port + 2)      # another command line: its own gate


def test_a_first_client_closed_before_the_verdict_is_judged_as_it_was_when_it_closed(
        book, listener):
    port, client_port = first_client_in(book, listener, "test_one")
    client = listener[1][-1]
    gates.client_closing(port, client)      # the test resets its clients in a `finally`
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    assert accept_state(port, client_port) is None, "gone from the kernel's tables"
    gates.settle_accepts(GradingFailure("sent", "an answer", "none"), patience=0.0)
    with pytest.raises(gates.GateClosed):
        later_test_needs_accepted(book, port)


def test_an_accepted_first_client_opens_the_gate_and_a_short_wait_closes_nothing(
        book, listener):
    port, client_port = first_client_in(book, listener, "test_one")
    failure = GradingFailure("sent a line", "its echo", "nothing came")
    gates.settle_accepts(failure, patience=60.0)    # waited less than that: no verdict
    assert "never accepted" in failure.got, "the student still reads why"
    gates.needs_accepted(port)
    accepted, _ = listener[0].accept()
    listener[1].append(accepted)
    gates.settle_accepts(None, patience=0.0)        # accepted: the gate passed
    first_client_in(book, listener, "test_two")
    gates.settle_accepts(GradingFailure("a", "b", "c"), patience=0.0)
    later_test_needs_accepted(book, port)   # it passed once: a later failure is that test's own


def test_outside_a_test_a_guard_only_runs_the_step():
    gates.activate(None)
    gate = gates.Gate("ready:x", "x")
    assert run_step(gate, fails=True) == "failed"
    assert run_step(gate, fails=True) == "failed"


# -- gates in a real run ---------------------------------------------------------

def broken_tree(tmp_path: Path, exercise_id: str, patch: str) -> Path:
    """The reference of `exercise_id` with `patch` run before anything else."""
    exercise = manifest.get(exercise_id)
    folder = tmp_path / exercise_id
    folder.mkdir(parents=True)
    for name in exercise.files:
        source = (exercise.solution_folder / name).read_text()
        (folder / name).write_text(textwrap.dedent(patch) + source if name.endswith("server.py")
                                   else source)
    return tmp_path


NEVER_ACCEPTS = """\
import socket as _socket, time as _time
_socket.socket.accept = lambda self: _time.sleep(10**6)
"""


def test_a_server_that_never_accepts_fails_the_visible_tests_at_once(tmp_path):
    """Each visible test needs a welcome: the first one waits for it, every
    other fails at once, as failures (never pytest errors), each telling
    the first one's story."""
    tree = broken_tree(tmp_path, "03_poll", NEVER_ACCEPTS)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "grader.plugin", "-q",
                           "-p", "no:cacheprovider", "--submission", str(tree),
                           str(manifest.EXERCISES_DIR / "03_poll")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=pytest_environment())
    elapsed = time.monotonic() - started
    summary = (done.stdout.strip().splitlines() or [done.stderr[-2000:]])[-1]
    assert "4 failed" in summary and "error" not in summary, done.stdout[-3000:]
    assert "ERROR at setup" not in done.stdout
    # On CI (CI set) pytest's short summary repeats each whole message: count
    # the failure sections only.
    failures = done.stdout.split("short test summary info")[0]
    assert failures.count("began with a first check that had already failed") == 3, done.stdout
    assert "is welcomed" in done.stdout and "connected to the chat server" in done.stdout
    # Not a timed test: a sanity bound far above what it takes (one wait for
    # the welcome), and far below what four separate waits would cost.
    assert elapsed < 60, f"took {elapsed:.0f} s"


@pytest.mark.parametrize("exercise, shape, summary, beside, told", [
    # 05 starts two programs: both spin before doing anything.
    ("05_unix_sockets", "spins-ignoring-signals", "6 failed",
     "in test_announces_the_fork, which checked `python unix_echo_server.py PATH` beside its "
     "own first check, shown below", 3),
    # 09 has three kinds of first exchange: a server that answers none.
    ("09_c10k", "never-replies", "4 failed, 1 passed",
     "in test_answers_ping_with_pong, which checked the first 'count' exchange beside its own "
     "first check, shown below", 2),
])
def test_first_checks_side_by_side_cost_the_visible_tests_one_wait(tmp_path, exercise, shape,
                                                                   summary, beside, told):
    """Where a visible suite's tests begin with different first checks (05:
    two programs; 09: three kinds of exchange), the first test runs the
    others beside its own (gates.side_by_side): on a program that fails
    them all, only that test waits, and the others fail at once on the
    verdicts found beside it."""
    from grader.bench import variants
    tree = tmp_path / "tree"
    variants.build(exercise, shape, tree)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "grader.plugin", "-q",
                           "-p", "no:cacheprovider", "--submission", str(tree),
                           str(manifest.EXERCISES_DIR / exercise)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=pytest_environment())
    last = (done.stdout.strip().splitlines() or [done.stderr[-2000:]])[-1]
    assert summary in last and "error" not in last, done.stdout[-3000:]
    failures = done.stdout.split("short test summary info")[0]
    failed = int(summary.split()[0])
    assert failures.count("began with a first check that had already failed") == failed - 1, \
        done.stdout
    assert failures.count(beside) == told, done.stdout


# -- turns -----------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from grader.harness import turns
kind, marker, release = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
with turns.taken(kind):
    marker.write_text("in")
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
marker.write_text("out")
"""


class Holders:
    """Processes that take a turn, say so in a file, and hold it until told."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.env = {**os.environ, **turns.prepare(where / "turns")}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, kind: str) -> tuple[Path, Path]:
        marker, release = self.where / f"{name}.in", self.where / f"{name}.release"
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, str(marker), str(release)],
            env=self.env, cwd=ROOT)
        return marker, release

    def wait_blocked(self, name: str) -> None:
        """Until `name` waits for a lock (a `->` line of /proc/locks): so that
        whoever asks next asks after it."""
        pid = self.procs[name].pid

        def blocked() -> bool:
            with open("/proc/locks") as f:
                return any("->" in line and f" {pid} " in line for line in f)
        wait_for(blocked, f"{name} waits for its turn")

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def is_in(marker: Path) -> bool:
    return marker.exists() and marker.read_text() == "in"


@pytest.fixture
def holders(tmp_path):
    made = Holders(tmp_path)
    yield made
    made.close()


def test_shared_turns_overlap_and_an_alone_turn_waits_for_them_and_goes_first(holders):
    first, release_first = holders.start("first", turns.SHARED)
    second, release_second = holders.start("second", turns.SHARED)
    wait_for(lambda: is_in(first) and is_in(second), "two shared turns run side by side")

    lonely, release_lonely = holders.start("lonely", turns.ALONE)
    holders.wait_blocked("lonely")
    # The alone turn waits for both; a shared turn asked for meanwhile waits
    # behind it. Checked as the order things happen in, not with a clock:
    # nobody is let in until the turns ahead are released.
    later, release_later = holders.start("later", turns.SHARED)
    release_first.touch()
    wait_for(lambda: first.read_text() == "out", "the first shared turn ended")
    assert not is_in(lonely) and not is_in(later)
    release_second.touch()
    wait_for(lambda: is_in(lonely), "the alone turn began once the shared ones ended")
    assert not is_in(later), "a shared turn started while an alone turn held the machine"
    release_lonely.touch()
    wait_for(lambda: is_in(later), "the later shared turn began after the alone one")
    release_later.touch()


def test_without_a_turns_folder_a_turn_is_free(monkeypatch):
    monkeypatch.delenv(turns.FOLDER, raising=False)
    ran = False
    with turns.taken(turns.ALONE):
        with turns.taken(turns.ALONE):     # would wait for itself forever, were it taken
            ran = True
    assert ran and turns.folder() is None


def test_quiet_turns_overlap_each_other_but_never_a_shared_one(holders):
    busy, release_busy = holders.start("busy", turns.SHARED)
    wait_for(lambda: is_in(busy), "a shared turn began")
    first, release_first = holders.start("first", turns.QUIET)
    holders.wait_blocked("first")
    # A quiet turn waits for the shared one; a shared turn asked for
    # meanwhile waits behind it (order of events, not a clock).
    late, release_late = holders.start("late", turns.SHARED)
    release_busy.touch()
    wait_for(lambda: is_in(first), "the quiet turn began once the shared one ended")
    assert not is_in(late), "a shared turn started beside a quiet one"
    release_first.touch()
    wait_for(lambda: is_in(late), "the shared turn began after the quiet one")
    second, release_second = holders.start("second", turns.QUIET)
    third, release_third = holders.start("third", turns.QUIET)
    release_late.touch()
    wait_for(lambda: is_in(second) and is_in(third), "two quiet turns run side by side")
    lonely, release_lonely = holders.start("lonely", turns.ALONE)
    holders.wait_blocked("lonely")
    release_second.touch()
    wait_for(lambda: second.read_text() == "out", "the second quiet turn ended")
    assert not is_in(lonely), "an alone turn started beside a quiet one"
    release_third.touch()
    wait_for(lambda: is_in(lonely), "the alone turn began once the quiet ones ended")
    release_lonely.touch()


def test_a_turn_is_one_of_three_kinds():
    with pytest.raises(ValueError, match="not 'exclusive'"):
        turns.Turn("exclusive")


def test_arrange_puts_alone_tests_first_and_spreads_the_quiet_ones():
    """xdist's worksteal cuts the list into equal runs, one per worker: the
    alone tests open the first run, the quiet ones the others."""
    kinds = [turns.SHARED] * 10 + [turns.ALONE] * 3 + [turns.QUIET] * 5 + [turns.SHARED] * 20
    order = turns.arrange(kinds, workers=4)
    assert sorted(order) == list(range(len(kinds)))           # every test, once
    runs = [order[0:9], order[9:18], order[18:28], order[28:38]]  # 38 tests cut in 4
    assert [kinds[i] for i in runs[0][:3]] == [turns.ALONE] * 3
    for run in runs[1:]:
        assert kinds[run[0]] == turns.QUIET, [kinds[i] for i in run]
    assert not any(kinds[i] == turns.ALONE for run in runs[1:] for i in run)
    shared = [i for i in order if kinds[i] == turns.SHARED]
    assert shared == sorted(shared)                            # in their own order
    assert turns.arrange(kinds, workers=1) == list(range(10, 18)) + list(range(10)) \
        + list(range(18, 38))


def test_one_worker_runs_each_modules_first_test_first():
    """The first test of a module finds out whether its program starts
    (its gates): one worker runs those first, before its alone and quiet
    tests, and the rest in their usual order. Several workers keep the
    usual order (alone and quiet rows first)."""
    kinds = [turns.QUIET, turns.ALONE] + [turns.SHARED] * 14
    groups = ["echo", "echo"] + ["echo"] * 6 + ["pair"] * 5 + ["client"] * 3
    heads = [2, 8, 13]
    one = turns.arrange(kinds, workers=1, groups=groups)
    assert one[:3] == heads and one[3:5] == [1, 0]
    assert one[5:] == [i for i in range(2, 16) if i not in heads]
    assert turns.arrange(kinds, workers=4, groups=groups) == turns.arrange(kinds, workers=4)
