"""Visible tests for 02_tcp_client's sockethelpers.py. Run: pytest exercises/02_tcp_client

sockethelpers.py is a module: each test imports it in a separate Python
process and calls its functions there."""

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.harness.module_calls import ModuleRunner
from grader.testkit.first_calls import FIRST_CALLS
from grader.testkit import textgen
from grader.testkit.fake_server import servers  # noqa: F401 (a fixture)

CONNECT_AND_TALK = '''
import sockethelpers
sock = sockethelpers.connect_to("127.0.0.1", %(port)d)
sock.sendall(%(message)r)
sock.settimeout(%(own)r)
result = (sock.getpeername(), sock.recv(4096))
sock.close()
'''


@pytest.fixture
def runner(workdir, transcript):
    return ModuleRunner(workdir, transcript, timeout=waits.MODULE_RUN, first_calls=FIRST_CALLS)


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
    out = runner.run(CONNECT_AND_TALK % {"port": server.port, "message": message, "own": waits.OWN}, did=did)
    peer, reply = out.value_or_fail(did, "a connected socket")
    check(tuple(peer) == ("127.0.0.1", server.port), did, f"connected to 127.0.0.1 port {server.port}",
          f"connected to {peer!r}")
    check(reply == b"hello back\n", did, "the server's reply arrives", f"read {reply!r}")
