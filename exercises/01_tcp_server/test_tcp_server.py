"""Visible tests for 01_tcp_server. Run: pytest exercises/01_tcp_server"""

import pytest

from grader.harness import gates, waits
from grader.harness.failure import check
from grader.testkit import textgen

READY = lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$"


@pytest.fixture
def server(start_server):
    return start_server("tcp_server.py", lambda port: [port], READY)


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_prints_that_it_is_listening(server, connect):
    program, port = server      # started, and its line "[server] listening on ..." seen
    connect(port, name="client")  # it really listens: the connection is accepted


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_says_who_connected(server, connect):
    program, port = server
    connect(port, name="client")
    gates.needs_accepted(port)      # the line comes after accept(): see the first test that failed
    program.expect_line(r"\[server\] got connection from 127\.0\.0\.1\s*$", did="connected a client")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_echoes_what_it_receives(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    back = client.read_bytes(len(data))
    check(back == data, f"sent {data!r}", "the same bytes back", repr(back))


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_exits_when_the_client_hangs_up(server, connect):
    program, port = server
    connect(port, name="client").close()
    gates.needs_accepted(port)      # only an accepted connection can be hung up
    program.expect_line(r"\[server\] client 127\.0\.0\.1 hung up\s*$", did="the client closed")
    status = program.wait_exit(waits.EXIT)
    check(status is not None and status.code == 0, "the client closed",
          "exit status 0", status.describe() if status else "still running")
