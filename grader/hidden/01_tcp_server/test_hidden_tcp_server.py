"""Hidden suite for 01_tcp_server: every clause of the contract."""

import re
import socket
import time

import pytest

from grader import textgen
from grader.client import echo_exchange
from grader.failure import check, fail
from grader.suites.server_rules import ServerRulesTests, ServerSpec, TRACEBACK

SPEC = ServerSpec(
    script="tcp_server.py",
    args=lambda port: [port],
    ready=lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$",
    bad_args=[[], ["{port}", "extra"], ["http"], ["0"], ["65536"], ["-5"], ["80.5"]],
)


@pytest.fixture
def server_spec():
    return SPEC


@pytest.fixture
def server(start_server):
    return start_server(SPEC.script, SPEC.args, SPEC.ready)


def greeted(program, ip="127.0.0.1"):
    program.expect_line(rf"\[server\] got connection from {re.escape(ip)}\s*$",
                        did="connected one client")


class TestServerRules(ServerRulesTests):
    pass


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_greets_the_client_by_address(server, connect):
    program, port = server
    connect(port, name="client")
    greeted(program)


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_echoes_a_chunk_exactly(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    back = client.read_bytes(len(data))
    check(back == data, f"sent {data!r}", f"the same {len(data)} bytes back", f"{back!r}")


@pytest.mark.points(6)
@pytest.mark.task(2)
def test_logs_each_received_message(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    greeted(program)
    for _ in range(3):
        text = textgen.message(rng)
        client.send_line(text)
        client.read_bytes(len(text.encode()) + 1)
        program.expect_line(f"[server] received message from client 127.0.0.1: {text}",
                            literal=True, did=f"sent the line {text!r}")


@pytest.mark.points(6)
@pytest.mark.task(2)
def test_echoes_many_messages_in_turn(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    for i in range(rng.randint(5, 10)):
        data = f"{i} {textgen.message(rng)}\n".encode()
        client.send_raw(data)
        back = client.read_bytes(len(data))
        check(back == data, f"sent message {i}: {data!r}, after {i} earlier ones",
              "the same bytes back", f"{back!r}")


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_echoes_a_large_message_completely(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    data = rng.randbytes(rng.randint(200_000, 400_000))
    back = echo_exchange(client, data)
    check(back == data, f"sent {len(data)} random bytes while reading the echo",
          "every byte back, in order (sendall, not send)",
          f"{len(back)} bytes came back" + ("" if data.startswith(back) else ", and they differ"))


@pytest.mark.points(6)
@pytest.mark.task(2)
def test_echoes_bytes_that_are_not_utf8(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    data = b"\xff\xfe\xc3(" + rng.randbytes(8) + b"\n"
    client.send_raw(data)
    back = client.read_bytes(len(data))
    check(back == data, f"sent bytes that are not UTF-8: {data!r}",
          "the same bytes back (decode only for the log line)", f"{back!r}")
    text = textgen.message(rng) + "\n"
    client.send_raw(text.encode())
    back = client.read_bytes(len(text.encode()))
    check(back == text.encode(), f"then sent {text!r}", "it echoed too", f"{back!r}")


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_a_second_client_is_refused(server, connect):
    program, port = server
    connect(port, name="first")
    greeted(program)
    deadline = time.monotonic() + 3
    while True:
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=2)
        except ConnectionRefusedError:
            return
        probe.close()
        if time.monotonic() > deadline:
            raise fail(did="one client connected; a second client connected for 3 s",
                       expected="the second connection is refused: the server closed its "
                                "listening socket after accepting the first",
                       got="the second client's connection was accepted (queued in the backlog)")
        time.sleep(0.05)


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_announces_hang_up_and_exits_0(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    greeted(program)
    client.send_line(textgen.message(rng))
    client.close()
    program.expect_line(r"\[server\] client 127\.0\.0\.1 hung up\s*$", did="the client said one line and closed")
    status = program.wait_exit(5)
    check(status is not None and status.code == 0, "the client closed its connection",
          "the server exits with status 0", status.describe() if status else "it kept running")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_survives_a_reset_without_traceback(server, connect):
    program, port = server
    client = connect(port, name="client")
    greeted(program)
    client.reset()
    status = program.wait_exit(5)
    did = "the client reset its connection (RST instead of a clean close)"
    check(status is not None, did, "the server notices and exits", "it kept running")
    check(TRACEBACK not in program.stderr(), did, "no traceback", "stderr holds a traceback (shown below)")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_half_closed_client_still_gets_its_echo(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    client.shutdown_write()
    back = client.read_bytes(len(data))
    check(back == data, f"sent {data!r} and half-closed (shutdown SHUT_WR)",
          "the echo still arrives", f"{back!r}")
    client.expect_eof(did="after the echo, the server saw end of file")
