"""Visible tests for 02_tcp_client's tcp_client.py. Run: pytest exercises/02_tcp_client

tcp_client.py is started as a program against a small test server that
answers one message."""

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.fake_server import expect_first_line
from grader.testkit.fake_server import servers  # noqa: F401 (a fixture)

USUAL = "tcp_client.py 127.0.0.1 PORT"  # its command line, for the gates (see grader.harness.gates)


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_client_sends_a_line_and_prints_the_reply(spawn, servers, rng):
    message = textgen.message(rng)
    reply = "got it " + textgen.message(rng)
    server = servers.start("127.0.0.1", expect=len(message.encode()), reply=(reply + "\n").encode())
    server.needs_message(USUAL)     # its gates: see grader.harness.gates
    program = spawn("tcp_client.py", "127.0.0.1", server.port, name="client")
    did = f"a server listens on 127.0.0.1 port {server.port}; ran: python -u tcp_client.py 127.0.0.1 {server.port}"
    expect_first_line(program, USUAL, "[client] attempting connection to 127.0.0.1 ...", did)
    program.expect_line("[client] connected to 127.0.0.1", literal=True, did=did)
    program.send_line(message)      # it waits in the terminal until the client reads it
    did += f"; typed {message!r}"
    server.expect_message(USUAL, did, program=program)
    program.expect_line("what to send to the server?", literal=True, did=did)
    program.expect_line(f"[client] sent '{message}'", literal=True, did=did)
    program.expect_line(f"[client] received '{reply}'", literal=True, did=did)
    status = program.wait_exit(waits.EXIT)
    check(status is not None and status.code == 0, did, "the client exits with status 0",
          status.describe() if status else f"it was still running after {waits.EXIT:g} s")
    server.wait_done(waits.OWN)
    check(server.received == message.encode(), did, f"the server receives {message!r} (no newline)",
          f"it received {server.received!r}")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_client_connects_over_ipv6(spawn, servers, rng):
    message = textgen.message(rng)
    server = servers.start("::1", expect=len(message.encode()), reply=b"ipv6 works\n")
    server.needs_message("tcp_client.py ::1 PORT", USUAL)
    program = spawn("tcp_client.py", "::1", server.port, name="client")
    did = f"a server listens on ::1 (IPv6) port {server.port}; ran: python -u tcp_client.py ::1 {server.port}"
    expect_first_line(program, "tcp_client.py ::1 PORT", "[client] attempting connection to ::1 ...",
                      did, usual=USUAL)
    program.expect_line("[client] connected to ::1", literal=True, did=did)
    program.send_line(message)
    program.expect_line("[client] received 'ipv6 works'", literal=True, did=f"{did}; typed {message!r}")
