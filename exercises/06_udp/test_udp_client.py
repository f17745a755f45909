"""Visible tests for 06_udp's udp_client.py. Run: pytest exercises/06_udp

The client is run against your own server (udp_server.py)."""

import re

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.udp_echo import probe_echo
from grader.testkit.udp_peer import udp  # noqa: F401 (a fixture: UDP sockets of the test, closed afterwards)

READY = lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port} \(udp\)\s*$"


@pytest.mark.points(4)
@pytest.mark.task(4)
def test_client_gets_the_echo_from_your_server(start_server, spawn, udp, rng):
    # Your client can only get an echo from a server that echoes: checked first, on a server
    # of its own (a gate, grader.testkit.udp_echo), so that one that never answers fails here
    # at once, and your client is the first to write to the server it runs against.
    checked, checked_port = start_server("udp_server.py", lambda port: [port], READY,
                                         name="checked server")
    probe_echo(udp.socket("probe"), checked_port, "started your server and sent it a datagram, "
               "before running your client against another one")
    checked.stop()
    program, port = start_server("udp_server.py", lambda port: [port], READY)
    udp.name_address(("127.0.0.1", port), "server")
    message = textgen.message(rng)
    client = spawn("udp_client.py", "127.0.0.1", port, name="client")
    client.send_line(message)
    did = f"ran your client against your server and typed {message!r}"
    client.expect_line(re.compile(r".*\[client\] received '" + re.escape(message) + r"'\s*$"),
                       did=did, timeout=waits.READY + waits.REPLY)   # its start-up, one exchange
    status = client.wait_exit(waits.EXIT)
    check(status is not None and status.code == 0, did, "the client exits with status 0",
          status.describe() if status else "it was still running")
