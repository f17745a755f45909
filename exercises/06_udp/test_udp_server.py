"""Visible tests for 06_udp's udp_server.py. Run: pytest exercises/06_udp"""

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.udp_echo import needs_echo
from grader.testkit.udp_peer import udp  # noqa: F401 (a fixture: UDP sockets of the test, closed afterwards)

READY = lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port} \(udp\)\s*$"


@pytest.fixture
def server(start_server, udp):
    program, port = start_server("udp_server.py", lambda port: [port], READY)
    udp.name_address(("127.0.0.1", port), "server")
    return program, port


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_server_says_it_is_listening(server):
    program, port = server      # started, and its line "[server] listening on ..." seen


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_server_echoes_a_datagram(server, udp, rng):
    program, port = server
    needs_echo(port)    # fails at once if the server never echoed the grader's first datagram
    client = udp.socket("client")
    data = textgen.message(rng).encode()
    client.send_to(data, ("127.0.0.1", port))
    got = client.receive(timeout=waits.REPLY)
    did = f"sent the datagram {data!r}"
    check(got is not None, did, "the same bytes back",
          f"nothing came back within {waits.REPLY:g} s")
    check(got.data == data, did, "the same bytes back", repr(got.data))
