"""Visible tests for 02_tcp_client. Run: pytest exercises/02_tcp_client

sockethelpers.py is imported in a separate Python process for each test;
tcp_client.py is started as a program against a small test server that
answers one message."""

import pytest

from grader.harness.failure import check
from grader.harness.module_calls import ModuleRunner
from grader.testkit import textgen
from grader.testkit.fake_server import FakeServers

CONNECT_AND_TALK = '''
import sockethelpers
sock = sockethelpers.connect_to("127.0.0.1", %(port)d)
sock.sendall(%(message)r)
sock.settimeout(5)
result = (sock.getpeername(), sock.recv(4096))
sock.close()
'''


@pytest.fixture
def servers(free_port, transcript):
    pool = FakeServers(free_port, transcript)
    yield pool
    pool.close_all()


@pytest.fixture
def runner(workdir, transcript):
    return ModuleRunner(workdir, transcript)


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_format_address_examples(runner):
    cases = [(("127.0.0.1", 80), "127.0.0.1:80"), (("::1", 80, 0, 0), "[::1]:80")]
    for address, expected in cases:
        out = runner.call("sockethelpers", "format_address", address)
        did = f"called format_address({address!r})"
        text = out.value_or_fail(did, f"it returns {expected!r}")
        check(text == expected, did, f"it returns {expected!r}", f"it returned {text!r}")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_connect_to_connects_to_a_local_server(runner, servers, rng):
    message = textgen.message(rng).encode()
    server = servers.start("127.0.0.1", expect=len(message), reply=b"hello back\n")
    did = f"a server listens on 127.0.0.1 port {server.port}; called connect_to('127.0.0.1', {server.port}), " \
          f"sent {message!r} on the socket and read the reply"
    out = runner.run(CONNECT_AND_TALK % {"port": server.port, "message": message}, did=did)
    peer, reply = out.value_or_fail(did, "a connected socket")
    check(tuple(peer) == ("127.0.0.1", server.port), did, f"connected to 127.0.0.1 port {server.port}",
          f"connected to {peer!r}")
    check(reply == b"hello back\n", did, "the server's reply arrives", f"read {reply!r}")


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_client_sends_a_line_and_prints_the_reply(spawn, servers, rng):
    message = textgen.message(rng)
    reply = "got it " + textgen.message(rng)
    server = servers.start("127.0.0.1", expect=len(message.encode()), reply=(reply + "\n").encode())
    program = spawn("tcp_client.py", "127.0.0.1", server.port, name="client")
    did = f"a server listens on 127.0.0.1 port {server.port}; ran: python -u tcp_client.py 127.0.0.1 {server.port}"
    program.expect_line("[client] attempting connection to 127.0.0.1 ...", literal=True, did=did)
    program.expect_line("[client] connected to 127.0.0.1", literal=True, did=did)
    program.expect_line("what to send to the server?", literal=True, did=did)
    program.send_line(message)
    did += f"; typed {message!r}"
    program.expect_line(f"[client] sent '{message}'", literal=True, did=did)
    program.expect_line(f"[client] received '{reply}'", literal=True, did=did)
    status = program.wait_exit(5)
    check(status is not None and status.code == 0, did, "the client exits with status 0",
          status.describe() if status else "it was still running after 5 s")
    server.wait_done(5)
    check(server.received == message.encode(), did, f"the server receives {message!r} (no newline)",
          f"it received {server.received!r}")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_client_connects_over_ipv6(spawn, servers, rng):
    message = textgen.message(rng)
    server = servers.start("::1", expect=len(message.encode()), reply=b"ipv6 works\n")
    program = spawn("tcp_client.py", "::1", server.port, name="client")
    did = f"a server listens on ::1 (IPv6) port {server.port}; ran: python -u tcp_client.py ::1 {server.port}"
    program.expect_line("[client] attempting connection to ::1 ...", literal=True, did=did)
    program.expect_line("[client] connected to ::1", literal=True, did=did)
    program.send_line(message)
    program.expect_line("[client] received 'ipv6 works'", literal=True, did=f"{did}; typed {message!r}")
