"""Hidden suite for 01_tcp_server: every clause of the contract."""

import re
import select
import signal
import socket
import string
import time

import psutil
import pytest

from grader.harness import gates, waits
from grader.harness.failure import GradingFailure, check, fail
from grader.testkit import textgen
from grader.testkit.line_client import echo_exchange
from grader.testkit.suites.server_rules import (TRACEBACK, ServerRulesTests, ServerSpec, engage,
                                                expect_clean_exit, needs_engaged)

SPEC = ServerSpec(
    script="tcp_server.py",
    args=lambda port: [port],
    ready=lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$",
    bad_args=[[], ["{port}", "extra"], ["http"], ["0"], ["65536"], ["-5"], ["80.5"]],
    engage=lambda client: (client.send_line("are you there?"),
                           client.expect_line("are you there?", did="sent a line to be echoed")),
)


# README tasks of the shared tests' topics. The signal handling is given
# complete in the stub, so "shutdown" points at no task.
TASKS = {"listen": 1, "loop": 2}




def greeted(program, ip="127.0.0.1"):
    program.expect_line(rf"\[server\] got connection from {re.escape(ip)}\s*$",
                        did="connected one client")


def echoed(client):
    """One line and its echo: proof that the server has accepted this client
    (tests that are not about the log lines do not depend on them). It is
    SPEC.engage, the same exchange every time, so for the first client of
    a server it is a gate (grader.harness.gates)."""
    engage(SPEC, client)


def echo_client(connect, port: int):
    """A first client for a test that needs the server's echo: once the
    fixed line of `echoed` went unanswered in an earlier test, it fails at
    once rather than wait for an echo of its own."""
    client = connect(port, name="client")
    needs_engaged(SPEC, client)
    return client


# -- helpers for the tests that fill every buffer ------------------------------

STALL_SECONDS = waits.STALL     # no room to send for this long: the server waits in send()
FILL_LIMIT = 128 << 20  # far more than all the socket buffers on the way hold
# Readable filler (letters, digits, spaces; a newline for one byte in 256),
# so that the server's log of it stays legible in a failure message.
_FILLER = (string.ascii_letters + string.digits + " " * 10).encode()
_TO_FILLER = b"\n" + bytes(_FILLER[b % len(_FILLER)] for b in range(1, 256))


def fill_until_stalled(client, rng) -> bytes:
    """Send without reading the echo until the server can take no more.
    Every buffer on the way is then full: the client's receive buffer, so
    the server waits inside send(); and the server's receive buffer, since
    it does not call recv() meanwhile. Returns everything that was sent."""
    sent = bytearray()
    poller = select.poll()
    poller.register(client.sock, select.POLLOUT)
    block = b""
    while len(sent) < FILL_LIMIT:
        if not block:
            block = rng.randbytes(1 << 16).translate(_TO_FILLER)
        try:
            count = client.sock.send(block)
        except BlockingIOError:
            if not poller.poll(STALL_SECONDS * 1000):
                client.transcript.note(client.name, f"sent {len(sent)} bytes without reading the "
                                                    "echo, until the server took no more")
                return bytes(sent)
            continue
        except OSError as exc:  # reset or broken pipe: the server closed
            raise fail(did=f"sent {len(sent)} bytes without reading the echo",
                       expected="the server keeps the connection open while the client sends",
                       got=f"the server closed the connection ({exc.strerror or exc})") from None
        sent += block[:count]
        block = block[count:]
    raise fail(did=f"sent {len(sent)} bytes without reading the echo",
               expected="the server stops reading once the client's buffers are full "
                        "(it waits in sendall() until the client reads the echo)",
               got="the server went on reading all of it: does it send the echo back?")


def drain(client, timeout: float = waits.BULK, quiet: float = waits.REPLY) -> bytes:
    """Everything the server sends until it closes (or `timeout` passes, or
    nothing comes for `quiet` seconds: each piece of the echo is a reply)."""
    received = bytearray()
    poller = select.poll()
    poller.register(client.sock, select.POLLIN)
    started = time.monotonic()
    deadline = started + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if not poller.poll(min(remaining, quiet) * 1000):
            break
        try:
            chunk = client.sock.recv(1 << 20)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            waits.observed("bulk", time.monotonic() - started)
            break
        received += chunk
    client.transcript.note(client.name, f"received {len(received)} bytes in all")
    return bytes(received)


def first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# A launcher that runs the student's server with its stdout on a pipe and
# prints each line it writes as a bytes literal: a terminal hides a stray
# "\r" at the end of a line, the literal shows it.
RAW_STDOUT = '''\
import subprocess, sys
child = subprocess.Popen([sys.executable, "-u", "-s", *sys.argv[1:]], stdout=subprocess.PIPE)
for raw in child.stdout:
    print(repr(raw), flush=True)
sys.exit(child.wait())
'''


# -- the general rules ---------------------------------------------------------

class TestServerRules(ServerRulesTests):
    pass


@pytest.mark.points(3)
@pytest.mark.task("shutdown")
def test_exits_on_sigint_while_waiting_for_a_client(server):
    # The general rules send their signals while a client is being served; a
    # server must also stop quietly while it still waits in accept().
    program, port = server
    program.send_signal(signal.SIGINT)
    expect_clean_exit(program, waits.EXIT, "started the server and, before any client connected, "
                                    "sent SIGINT (Ctrl-C)", allowed_signals=(signal.SIGINT,))


# -- task 2: one client, its echo, its log -------------------------------------

@pytest.mark.points(4)
@pytest.mark.task(2)
def test_greets_the_client_by_address(server, connect):
    program, port = server
    connect(port, name="client")
    gates.needs_accepted(port)      # the address comes from accept()
    greeted(program)


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_echoes_a_chunk_exactly(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    back = client.read_bytes(len(data))
    check(back == data, f"sent {data!r}", f"the same {len(data)} bytes back", f"{back!r}")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_logs_each_received_message(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    gates.needs_accepted(port)      # only an accepted connection's lines can be logged
    for _ in range(3):
        text = textgen.message(rng)
        client.send_line(text)
        program.expect_line(f"[server] received message from client 127.0.0.1: {text}",
                            literal=True, did=f"sent the line {text!r}")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_logs_a_telnet_line_without_its_line_ending(start_server, workdir, connect, rng):
    (workdir / "raw_stdout.py").write_text(RAW_STDOUT)
    program, port = start_server(
        "raw_stdout.py", lambda port: [SPEC.script, port],
        lambda port: rf"b'\[server\] listening on 0\.0\.0\.0:{port}",
        usual=gates.command_shape(SPEC.script, SPEC.args))   # the same server, in a launcher
    client = connect(port, name="client")
    text = textgen.message(rng)
    client.send_line(text, ending="\r\n")
    expected = f"[server] received message from client 127.0.0.1: {text}\n".encode()
    gates.needs_accepted(port)
    try:
        program.expect_line(
            repr(expected), literal=True,
            did=f"sent the line {text!r} ending in \\r\\n, as telnet does; the server's stdout "
                "went to a pipe, and each line it printed is shown below as a Python bytes "
                "literal, so that a stray \\r is visible")
    except GradingFailure as failure:
        failure.hint = ("TEXT is the chunk without its line ending, and a line from telnet "
                        "ends in \\r\\n: remove the \\r too (a terminal does not show it)")
        raise


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_logs_bad_bytes_as_replacement_characters(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    tag = f"#{rng.randrange(16**6):06x}"
    data = b"caf\xe9 na\xefve \xff\xfe ok " + tag.encode() + b"\n"
    client.send_raw(data)
    gates.needs_accepted(port)
    program.expect_line(
        f"[server] received message from client 127.0.0.1: caf\ufffd na\ufffdve \ufffd\ufffd ok {tag}",
        literal=True,
        did=f"sent {data!r}, where \\xe9, \\xef, \\xff and \\xfe are not valid UTF-8 there")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_echoes_many_messages_in_turn(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    for i in range(rng.randint(5, 10)):
        data = f"{i} {textgen.message(rng)}\n".encode()
        client.send_raw(data)
        back = client.read_bytes(len(data))
        check(back == data, f"sent message {i}: {data!r}, after {i} earlier ones",
              "the same bytes back", f"{back!r}")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_echoes_a_large_message_completely(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    data = rng.randbytes(rng.randint(200_000, 400_000))
    back = echo_exchange(client, data)
    check(back == data, f"sent {len(data)} random bytes while reading the echo",
          "every byte back, in order (sendall, not send)",
          f"{len(back)} bytes came back" + ("" if data.startswith(back) else ", and they differ"))


@pytest.mark.points(5)
@pytest.mark.task(2)
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP and SIGCONT")
def test_echoes_everything_when_send_is_interrupted(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    sent = fill_until_stalled(client, rng)
    process = psutil.Process(program.pid)
    program.send_signal(signal.SIGSTOP)
    # SIGCONT discards a SIGSTOP still pending: wait until the stop took effect.
    deadline = time.monotonic() + waits.OWN
    while process.status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
        time.sleep(0.01)
    program.send_signal(signal.SIGCONT)
    client.shutdown_write()
    back = drain(client)
    did = (f"sent {len(sent)} bytes without reading, so the server waited in send(); stopped "
           "and continued the server (SIGSTOP then SIGCONT, as Ctrl-Z and fg do); then "
           "half-closed and read the echo until the server closed")
    if back != sent:
        raise fail(did=did, expected=f"all {len(sent)} bytes back, in order",
                   got=f"{len(back)} bytes came back, equal to what was sent up to byte "
                       f"{first_difference(back, sent)} only",
                   hint="a send() that a signal interrupts returns after sending only part "
                        "of the bytes; sendall() goes on until every byte is sent")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_echoes_bytes_that_are_not_utf8(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    data = b"\xff\xfe\xc3(" + rng.randbytes(8) + b"\n"
    client.send_raw(data)
    back = client.read_bytes(len(data))
    check(back == data, f"sent bytes that are not UTF-8: {data!r}",
          "the same bytes back (decode only for the log line)", f"{back!r}")
    text = textgen.message(rng) + "\n"
    client.send_raw(text.encode())
    back = client.read_bytes(len(text.encode()))
    check(back == text.encode(), f"then sent {text!r}", "it echoed too", f"{back!r}")


@pytest.mark.points(6)
@pytest.mark.task(2)
def test_a_second_client_is_refused(server, connect):
    program, port = server
    first = connect(port, name="first")
    echoed(first)
    # The listening socket closes when the first client is accepted, before
    # its echo: a second client is refused within a reply of that echo.
    deadline = time.monotonic() + waits.REPLY
    while True:
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=waits.REPLY)
        except ConnectionRefusedError:
            return
        probe.close()
        if time.monotonic() > deadline:
            raise fail(did="one client connected and got its echo; a second client tried to "
                           f"connect for {waits.REPLY:g} s",
                       expected="the second connection is refused: the server closed its "
                                "listening socket after accepting the first",
                       got="the second client's connection was accepted (queued in the backlog)")
        time.sleep(0.05)


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_announces_hang_up_and_exits_0(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    client.send_line(textgen.message(rng))
    client.close()
    gates.needs_accepted(port)      # only an accepted connection can be hung up
    program.expect_line(r"\[server\] client 127\.0\.0\.1 hung up\s*$", did="the client said one line and closed")
    status = program.wait_exit(waits.EXIT)
    check(status is not None and status.code == 0, "the client closed its connection",
          "the server exits with status 0", status.describe() if status else "it kept running")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_survives_a_reset_without_traceback(server, connect):
    program, port = server
    client = connect(port, name="client")
    echoed(client)
    client.reset()
    status = program.wait_exit(waits.REPLY + waits.EXIT)  # it notices the reset (a reply), then exits
    did = "the client sent a line, got its echo, then reset its connection (RST instead of a clean close)"
    check(status is not None, did, "the server notices and exits", "it kept running")
    check(TRACEBACK not in program.stderr(), did, "no traceback", "stderr holds a traceback (shown below)")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_survives_a_reset_while_the_server_sends(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    sent = fill_until_stalled(client, rng)
    client.reset()
    status = program.wait_exit(waits.REPLY + waits.EXIT)  # it notices the reset (a reply), then exits
    did = (f"sent {len(sent)} bytes without reading the echo, so the server waited in "
           "sendall(); then reset the connection (RST)")
    check(status is not None, did, "the server notices and exits", "it kept running")
    check(TRACEBACK not in program.stderr(), did,
          "no traceback: sendall() raises ConnectionResetError or BrokenPipeError here",
          "stderr holds a traceback (shown below)")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_half_closed_client_still_gets_its_echo(server, connect, rng):
    program, port = server
    client = echo_client(connect, port)
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    client.shutdown_write()
    back = client.read_bytes(len(data))
    check(back == data, f"sent {data!r} and half-closed (shutdown SHUT_WR)",
          "the echo still arrives", f"{back!r}")
    client.expect_eof(did="after the echo, the server saw end of file")
