"""Visible tests for 07_nonblocking. Run: pytest exercises/07_nonblocking"""

import pytest

from grader.harness import gates, waits
from grader.harness.failure import check
from grader.testkit import textgen

READY = lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$"


@pytest.fixture
def server(start_server):
    return start_server("nonblocking_server.py", lambda port: [port], READY)


def echo(client, data, did):
    gates.needs_engaged(client)     # fails at once if the grader's first line was never echoed
    client.send_raw(data)
    back = client.read_bytes(len(data), timeout=waits.REPLY)
    check(back == data, did, f"the same {len(data)} bytes back", repr(back))


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_prints_that_it_is_listening(server, connect):
    program, port = server      # started, and its ready line seen
    connect(port, name="client")  # it really listens: the connection is accepted


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_echoes_what_it_receives(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    for _ in range(3):
        data = (textgen.message(rng) + "\n").encode()
        echo(client, data, did=f"sent {data!r}")


@pytest.mark.points(4)
@pytest.mark.task(1)
def test_two_clients_are_served_at_once(server, connect, rng):
    program, port = server
    first = connect(port, name="first")
    second = connect(port, name="second")  # first stays connected, silent
    echo(second, (textgen.message(rng) + "\n").encode(),
         did="first connected and said nothing; second connected and sent a line")
    echo(first, (textgen.message(rng) + "\n").encode(), did="then first sent a line")
