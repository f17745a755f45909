"""How long 02's tests wait for a client program (grader.testkit.fake_server):
its start-up ends at its connection, and what it does once connected is a
reply after that; a wait that needs a gate ends when another test closes
it; a client that printed nothing closes `prints:`; connect_to's first
call connects to the check's own listener and leaves nothing open."""

from __future__ import annotations

import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

from grader.harness import gates
from grader.harness.failure import GradingFailure
from grader.harness.module_calls import ModuleRunner
from grader.harness.transcript import Transcript
from grader.testkit import fake_server
from grader.testkit.fake_server import FakeServers, expect_first_line, expect_line_watching

COMMAND = "tcp_client.py 127.0.0.1 PORT"
OTHER = "tcp_client.py ::1 PORT"


@pytest.fixture
def short(monkeypatch):
    """Short start-up and reply allowances, so the tests run quickly."""
    monkeypatch.setattr(fake_server, "START_UP", 2.0)
    monkeypatch.setattr(fake_server, "AFTER_CONNECTING", 1.0)


@pytest.fixture
def pool():
    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    servers = FakeServers(free_port, Transcript())
    yield servers
    servers.close_all()


def timed(step) -> tuple[str, float]:
    started = time.monotonic()
    try:
        step()
        outcome = "passed"
    except gates.GateClosed:
        outcome = "failed at once"
    except GradingFailure as exc:
        outcome = "failed: " + exc.got
    return outcome, time.monotonic() - started


def test_a_client_that_never_connects_costs_its_start_up_not_a_start_up_and_a_reply(
        gate_book, monkeypatch, pool):
    monkeypatch.setattr(fake_server, "START_UP", 0.5)
    monkeypatch.setattr(fake_server, "AFTER_CONNECTING", 3.0)
    server = pool.start(expect=4)
    outcome, took = timed(lambda: server.expect_message(COMMAND, "ran the client"))
    assert outcome.startswith("failed: the client never connected"), outcome
    assert 0.45 < took < 2.0, took
    assert timed(lambda: server.needs_message(COMMAND))[0] == "failed at once"


def test_a_client_that_connects_and_never_sends_costs_a_reply_after_its_connection(
        gate_book, monkeypatch, pool):
    monkeypatch.setattr(fake_server, "START_UP", 3.0)
    monkeypatch.setattr(fake_server, "AFTER_CONNECTING", 0.3)
    server = pool.start(expect=4)
    client = socket.create_connection(("127.0.0.1", server.port))
    try:
        outcome, took = timed(lambda: server.expect_message(COMMAND, "ran the client"))
    finally:
        client.close()
    assert outcome.startswith("failed: it received 0 bytes"), outcome
    assert 0.25 < took < 2.0, took


def test_a_message_sent_late_after_connecting_still_arrives_within_its_reply(gate_book, short,
                                                                             pool):
    server = pool.start(expect=4, reply=b"ok\n")
    client = socket.create_connection(("127.0.0.1", server.port))
    timer = threading.Timer(0.15, lambda: client.sendall(b"ping"))
    timer.start()
    try:
        outcome, _ = timed(lambda: server.expect_message(COMMAND, "ran the client"))
    finally:
        timer.join()
        client.close()
    assert outcome == "passed"


def test_a_message_of_another_command_ends_when_the_usual_one_closes_meanwhile(
        gate_book, short, monkeypatch, pool):
    monkeypatch.setattr(fake_server, "START_UP", 5.0)
    server = pool.start(expect=4)
    closer = threading.Timer(0.2, lambda: gates.settle(
        gates.sends(COMMAND), GradingFailure("did", "expected", "never sent")))
    closer.start()
    outcome, took = timed(lambda: server.expect_message(OTHER, "ran the client", usual=COMMAND))
    closer.join()
    assert outcome == "failed at once" and took < 1.0, (outcome, took)


class QuietProgram:
    """Stands for a spawned program: prints `lines`, never exits."""

    name = "client"

    def __init__(self, lines=()):
        self.lines = list(lines)

    def poll_exit(self):
        return None

    def wait_exit(self, timeout):
        time.sleep(timeout)

    def expect_line(self, line, literal, did, timeout):
        if any(text == line for text in self.lines):
            return
        time.sleep(timeout)
        raise GradingFailure(did, f"a line {line}", f"no such line within {timeout:g} s.")


def test_a_first_line_that_needs_the_usual_one_ends_when_that_closes_meanwhile(gate_book):
    closer = threading.Timer(0.2, lambda: gates.settle(
        gates.ready(COMMAND), GradingFailure("did", "expected", "no first line")))
    closer.start()
    outcome, took = timed(lambda: expect_line_watching(
        QuietProgram(), "[client] attempting", "ran it", 5.0, needed=(gates.ready(COMMAND),)))
    closer.join()
    assert outcome == "failed at once" and took < 1.0, (outcome, took)
    outcome, took = timed(lambda: expect_line_watching(
        QuietProgram(["[client] attempting"]), "[client] attempting", "ran it", 5.0))
    assert outcome == "passed" and took < 0.5


def test_a_client_that_printed_nothing_closes_prints_and_one_that_printed_another_line_not(
        gate_book, monkeypatch):
    monkeypatch.setattr(fake_server.waits, "READY", 0.2)
    first = "[client] attempting connection to 127.0.0.1 ..."
    assert timed(lambda: expect_first_line(QuietProgram(["hello"]), OTHER, first, "ran it"))[0] \
        .startswith("failed")
    assert gate_book.closed(fake_server.prints(OTHER)) is None, "it printed a line: no verdict"
    assert timed(lambda: expect_first_line(QuietProgram(), COMMAND, first, "ran it"))[0] \
        .startswith("failed")
    assert gate_book.closed(fake_server.prints(COMMAND)) is not None
    with pytest.raises(gates.GateClosed):
        gates.require(fake_server.prints(COMMAND))


CONNECT_TO = """
    import socket
    def connect_to(host, port):
        for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            sock.connect(address)
            return sock
"""


@pytest.mark.timeout(60)
def test_connect_to_first_call_leaves_no_socket_open_and_a_stuck_one_fails_later_checks(
        tmp_path: Path, gate_book):
    from grader.testkit.first_calls import FIRST_CALLS
    runs = {}
    for name, source in (("works", CONNECT_TO), ("spins", "def connect_to(host, port):\n"
                                                          "    while True:\n        pass\n")):
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "sockethelpers.py").write_text(textwrap.dedent(source), encoding="utf-8")
        runs[name] = ModuleRunner(workdir, Transcript(), timeout=60, first_calls=FIRST_CALLS)
    check = textwrap.dedent("""
        import os, stat
        import sockethelpers
        def is_socket(fd):
            try:
                return stat.S_ISSOCK(os.fstat(fd).st_mode)
            except OSError:
                return False
        assert callable(sockethelpers.connect_to)
        result = [fd for fd in map(int, os.listdir("/proc/self/fd")) if is_socket(fd)]
    """)
    outcome = runs["works"].run(check)
    assert outcome.value == [] and outcome.first_calls_done == ("sockethelpers.connect_to",), \
        outcome
    gates.activate(gates.Context(book=gates.Book(), test="test_two", describe=lambda exc: exc.got))
    stuck = runs["spins"].run(check)     # another submission: a book of its own
    assert stuck.stuck_first_call == "sockethelpers.connect_to", stuck
    with pytest.raises(gates.GateClosed):
        runs["spins"].run(check)
