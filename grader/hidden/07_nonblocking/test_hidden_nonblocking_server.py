"""Hidden suite for 07_nonblocking: the server rules (with this exercise's
own idle bound), echoing for many clients at once, partial sends, clients
that stall or vanish, the idle pause, and the source check (non-blocking
sockets only: no poller, no threads, no other process, seen on the running
server and in the source as submitted; plain imports only)."""

import select
import socket
import statistics
import time

import psutil
import pytest

from grader.harness import cpu, gates, waits
from grader.harness.failure import check, fail
from grader.testkit import source_check, textgen
from grader.testkit.line_client import LineClient, send_while_reading
from grader.testkit.suites.server_rules import (PlainImportTests, ServerRulesTests, ServerSpec,
                                                check_alone, check_forbidden, needs_engaged,
                                                read_submitted, watch)

SCRIPT = "nonblocking_server.py"
READY = lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$"
IDLE_LIMIT = 0.5   # the contract's bound for this exercise: under half a core
SPEC = ServerSpec(
    script=SCRIPT,
    args=lambda port: [port],
    ready=READY,
    bad_args=[[], ["{port}", "extra"], ["echo"], ["0"], ["65536"], ["-1"], ["8.5"]],
    idle_cpu_fraction=IDLE_LIMIT,
    engage=lambda client: (client.send_line("are you there?"),
                           client.expect_line("are you there?", did="sent a line to be echoed")),
    converse=lambda connect, port, rng: echo_conversation(connect, port, rng),
    idle_what="it sleeps between passes",
)
# The shared tests' topics -> this README's tasks (signals and arguments are
# given complete in the stub; they work once the listener does).
TASKS = {"listen": 1, "shutdown": 1, "loop": 4, "rules": 1}

# What the lesson forbids: every way of waiting on sockets other than
# trying them in non-blocking mode (pollers, threads, processes, asyncio).
NOT_NONBLOCKING = {
    **source_check.THREADS_AND_PROCESSES,
    "select": "select/poll/epoll: this exercise waits without a poller",
    "selectors": "selectors is a poller",
    "asyncio": "asyncio waits with a poller",
    "socketserver": "socketserver waits with selectors or threads",
}
# Any one of these puts a socket in non-blocking mode (or asks one call not to block).
NONBLOCKING_NAMES = ("setblocking", "settimeout", "setdefaulttimeout", "set_blocking",
                     "SOCK_NONBLOCK", "O_NONBLOCK", "MSG_DONTWAIT")

# How much a client that never reads pushes at the server. The issue speaks of
# 1 MiB, but the kernel buffers on loopback swallow that much and more: here a
# blocking sendall() server completed 2.7 MB of echo to a client that read
# nothing (its send buffer grows to ~4 MB). So push until the server stops
# taking data, up to 16 MiB: then a server that waits for that client is stuck.
PUSH_LIMIT = 16 << 20
STALL = waits.STALL    # seconds without room to send: the server has stopped taking data




@pytest.fixture
def open_client(transcript):
    """connect() with socket options set before connecting (a small
    receive buffer makes the server's send() take only part of its data)."""
    clients = []

    def make(port, name, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(waits.OWN)     # the kernel completes the connection
        sock.connect(("127.0.0.1", port))
        client = LineClient(port, transcript, name=name, sock=sock)
        client.ordinal = gates.client_connected(port, sock.getsockname()[1])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(note=False)


class TestServerRules(ServerRulesTests):
    # The shared idle test measures what the server asks for (time running
    # or waiting to run, see grader.harness.cpu) against this exercise's own bound,
    # IDLE_LIMIT, at start-up and again after echo_conversation.
    pass


class TestPlainImports(PlainImportTests):
    pass


# -- helpers ----------------------------------------------------------------

def echo_round(client, data: bytes, did: str, timeout: float = waits.REPLY) -> None:
    needs_engaged(SPEC, client)     # a server that never echoed the spec's line fails at once
    client.send_raw(data)
    back = client.read_bytes(len(data), timeout=timeout)
    check(back == data, did, f"the same {len(data)} bytes back within {timeout:g} s",
          f"{len(back)} bytes came back" + ("" if data.startswith(back) else f": {back[:80]!r}"))


def push_without_reading(client, data: bytes) -> int:
    """Send `data` and read nothing, until all of it is sent or the server
    has taken nothing for STALL seconds. Returns how many bytes went out."""
    poller = select.poll()
    poller.register(client.sock, select.POLLOUT)
    view, sent = memoryview(data), 0
    while sent < len(data):
        try:
            sent += client.sock.send(view[sent:sent + (1 << 16)])
        except BlockingIOError:
            if not poller.poll(STALL * 1000):
                break
        except OSError as exc:  # the server closed or reset the connection
            client.transcript.note(client.name, f"sending failed: {exc}")
            break
    client.transcript.note(client.name, f"sent {sent} of {len(data)} random bytes without "
                           "reading any echo" + (" (then the server took no more)" if sent < len(data) else ""))
    return sent


def finish_exchange(client, data: bytes, sent: int, chunk: int = 1 << 16, pause: float = 0.0,
                    quiet: float = waits.REPLY, timeout: float = waits.BULK) -> bytes:
    """Send the rest of `data` (from offset `sent`) while reading the echo
    (`chunk` bytes per recv(), `pause` seconds after each: a slow reader);
    returns everything that came back: all of it, or less if the server
    closed, or made no progress for `quiet` seconds, or `timeout` passed."""
    received = send_while_reading(client, data, sent, chunk=chunk, pause=pause, quiet=quiet,
                                  timeout=timeout)
    client.transcript.note(client.name, f"read {len(received)} bytes of echo in all")
    return received


def describe_difference(back: bytes, data: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(back, data)) if x != y), min(len(back), len(data)))
    if back == data[:len(back)]:
        return f"only {len(back)} of {len(data)} bytes came back (the first {len(back)} were right)"
    return f"{len(back)} bytes came back; they differ from the data sent at byte {at}"


def echo_conversation(connect, port: int, rng, clients: int = 2) -> str:
    """Traffic for the idle test and the thread watch: each client has three
    lines echoed, the last one closes, the first has one more echoed; the
    others stay connected. Returns what happened, in words."""
    members = [connect(port, name=f"client{i}") for i in range(clients)]
    for turn in range(3):
        for client in members:
            echo_round(client, f"{client.name} {turn} {textgen.message(rng)}\n".encode(),
                       did=f"{clients} clients connected; {client.name} sent line {turn}")
    members[-1].close()
    echo_round(members[0], f"{textgen.message(rng)}\n".encode(),
               did=f"{members[-1].name} closed its connection; {members[0].name} sent one more line")
    return (f"{clients} clients each had three lines echoed; {members[-1].name} closed its "
            f"connection and {members[0].name} had one more echoed, the others staying connected")


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- task 1: accepting without blocking --------------------------------------

@pytest.mark.points(5)
@pytest.mark.task(1)
def test_uses_non_blocking_sockets_only(submitted, start_server, connect, rng):
    source = read_submitted(submitted, SCRIPT)  # as submitted, before anything runs
    program, port = start_server(SCRIPT, SPEC.args, READY)
    # The source check counts only for a server that echoes; while its
    # clients talk, the running server is the authority on threads and processes.
    talk, activity = watch(program, lambda: echo_conversation(connect, port, rng, clients=6),
                           epoll=True)
    check_alone(activity, f"started the server; {talk}", epoll_allowed=False)
    did = f"read {SCRIPT} as you submitted it (this exercise is about non-blocking sockets)"
    check_forbidden(source, NOT_NONBLOCKING, did,
                    "no select, poll, epoll, selectors, threads, processes or asyncio",
                    hint="the point of this exercise is to wait without a poller: try every socket "
                         "in non-blocking mode, and sleep briefly when none had anything to do")
    check(any(name in source for name in NONBLOCKING_NAMES), did,
          "sockets put in non-blocking mode (for example sock.setblocking(False))",
          "nothing in the file makes a socket non-blocking")


@pytest.mark.points(5)
@pytest.mark.task(1)
def test_serves_several_clients_at_once(server, connect, rng):
    program, port = server
    clients = [connect(port, name=f"client{i}") for i in range(rng.randint(5, 10))]
    order = [c for c in clients for _ in range(3)]
    rng.shuffle(order)
    for turn, client in enumerate(order):
        data = f"{client.name} turn {turn}: {textgen.message(rng)}\n".encode()
        echo_round(client, data, did=f"{len(clients)} clients connected and stayed connected; "
                                     f"{client.name} sent {data!r} (turn {turn}, clients taking "
                                     "turns in random order)")


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_fifty_clients_connect_at_once(server, connect, rng):
    program, port = server
    clients = [connect(port, name=f"client{i}") for i in range(rng.randint(50, 60))]
    needs_engaged(SPEC, clients[0])
    texts = {c.name: f"{c.name} {textgen.message(rng)}\n".encode() for c in clients}
    for client in clients:
        client.send_raw(texts[client.name])
    for client in clients:
        back = client.read_bytes(len(texts[client.name]), timeout=waits.REPLY)
        check(back == texts[client.name],
              f"{len(clients)} clients connected, then each sent one line at about the same time",
              f"{client.name} gets its own line back: {texts[client.name]!r}", f"{back!r}")


# -- task 2: reading without blocking ----------------------------------------

@pytest.mark.points(6)
@pytest.mark.task(2)
def test_silent_client_does_not_stall_others(server, connect, rng):
    program, port = server
    quiet = connect(port, name="quiet")
    talker = connect(port, name="talker")
    quiet.send_raw(b"half a li")  # no newline, and then nothing more
    for i in range(3):
        data = f"{i} {textgen.message(rng)}\n".encode()
        echo_round(talker, data,
                   did=f"'quiet' connected first and sent nothing (then a few bytes); "
                       f"'talker' sent {data!r}")
    back = quiet.read_bytes(9, timeout=waits.REPLY)
    check(back == b"half a li", "quiet sent 9 bytes without a newline",
          "they are echoed too (an echo server needs no line ending)", f"{back!r}")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_reset_client_does_not_crash_the_server(server, connect, rng):
    program, port = server
    survivor = connect(port, name="survivor")
    for round_ in range(3):
        doomed = connect(port, name=f"doomed{round_}")
        # A reset while the server still owes echo: its next send() fails.
        doomed.send_raw(rng.randbytes(200_000))
        doomed.reset()
        data = f"{round_} {textgen.message(rng)}\n".encode()
        echo_round(survivor, data, did=f"{doomed.name} sent 200000 bytes without reading the echo, "
                                       f"then reset its connection; survivor sent {data!r}")
    status = program.poll_exit()
    check(status is None, "three clients reset their connections", "the server keeps running",
          status.describe() if status else "")


# -- task 3: sending what the kernel takes, keeping the rest -----------------

@pytest.mark.points(4)
@pytest.mark.task(3)
def test_echoes_random_bytes_exactly(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    for i in range(rng.randint(4, 8)):
        data = rng.randbytes(rng.randint(1, 3000))
        echo_round(client, data, did=f"sent {len(data)} random bytes (message {i}; any bytes, "
                                     "not only text or whole lines)")


@pytest.mark.points(10)
@pytest.mark.task(3)
@pytest.mark.timeout(90)
def test_client_that_stops_reading_does_not_stall_others(server, connect, rng):
    program, port = server
    other = connect(port, name="other")
    greedy = connect(port, name="greedy")
    data = rng.randbytes(PUSH_LIMIT)
    sent = push_without_reading(greedy, data)
    did = (f"'greedy' sent {sent} random bytes and read none of the echo (until the server took "
           f"no more, or {PUSH_LIMIT >> 20} MiB); meanwhile 'other'")
    for i in range(3):
        line = f"{i} {textgen.message(rng)}\n".encode()
        echo_round(other, line, did=f"{did} sent {line!r}")
    back = finish_exchange(greedy, data, sent)
    if back != data:
        raise fail(did=f"{did} was served; then 'greedy' read its echo (sending the rest)",
                   expected=f"all {len(data)} bytes back to 'greedy', in order",
                   got=describe_difference(back, data),
                   hint="keep what send() did not take in that client's outgoing buffer")


@pytest.mark.points(10)
@pytest.mark.task(3)
@pytest.mark.timeout(90)
def test_every_byte_comes_back_in_order_to_a_slow_reader(server, open_client, rng):
    program, port = server
    client = open_client(port, "slow", rcvbuf=4096)
    needs_engaged(SPEC, client)
    data = rng.randbytes(rng.randint(6 << 20, 8 << 20))
    sent = push_without_reading(client, data)
    # Now the server owes far more echo than fits in its send buffer and our
    # tiny receive buffer: its send() calls take part of the data, or none.
    back = finish_exchange(client, data, sent, chunk=4096)
    if back != data:
        raise fail(did=f"a client with a 4 KiB receive buffer sent {len(data)} random bytes, "
                       f"the first {sent} without reading, then read the echo 4 KiB at a time",
                   expected="every byte back, in order",
                   got=describe_difference(back, data),
                   hint="send() returns how many bytes it took (maybe fewer than you gave it) "
                        "or raises BlockingIOError: remove only what it took from the buffer")


@pytest.mark.points(4)
@pytest.mark.task(3)
@pytest.mark.timeout(90)
def test_half_closed_client_gets_its_whole_echo(server, open_client, rng):
    program, port = server
    client = open_client(port, "client", rcvbuf=4096)
    needs_engaged(SPEC, client)
    data = rng.randbytes(rng.randint(4 << 20, 6 << 20))
    sent = push_without_reading(client, data)
    client.shutdown_write()
    # Read slowly, so that when the server reaches the end of file it still
    # owes more echo than its send buffer holds.
    back = finish_exchange(client, data[:sent], sent, chunk=4096, pause=0.0005)
    if back != data[:sent]:
        raise fail(did=f"sent {sent} random bytes without reading, half-closed the connection "
                       "(shutdown SHUT_WR: end of file for the server), then read the echo "
                       "slowly, 4 KiB at a time",
                   expected="every byte back: end of file means 'no more data from me', "
                            "not 'forget what you owe me'",
                   got=describe_difference(back, data[:sent]))


# -- task 4: a short sleep when nothing happened -----------------------------

@pytest.mark.quiet("times the server's echoes")
@pytest.mark.points(6)
@pytest.mark.task(4)
def test_replies_quickly_after_a_quiet_moment(server, connect, rng):
    program, port = server
    client = connect(port, name="client")
    delays = []
    for i in range(25):
        time.sleep(0.02)  # shapes the input: the server has gone back to sleep
        data = f"{i} {textgen.message(rng)}\n".encode()
        started = time.monotonic()
        echo_round(client, data, did=f"sent {data!r} after 20 ms of quiet")
        delays.append(time.monotonic() - started)
    typical = statistics.median(delays)
    check(typical < 0.025, "sent 25 short lines, each after 20 ms of quiet, timing each echo",
          "a typical echo within 25 ms (the server sleeps at most 5 ms when idle)",
          f"the median echo took {typical * 1000:.0f} ms (slowest {max(delays) * 1000:.0f} ms): "
          "does the server sleep too long between passes?")


@pytest.mark.quiet("measures the server's CPU")
@pytest.mark.points(5)
@pytest.mark.task(4)
def test_idle_clients_do_not_make_it_spin(server, connect, rng):
    program, port = server
    clients = [connect(port, name=f"client{i}") for i in range(rng.randint(3, 6))]
    for client in clients:
        echo_round(client, f"{client.name} {textgen.message(rng)}\n".encode(), did="said hello")
    usage = cpu.measure(program, waits.IDLE_WINDOW)
    check(usage.demand < IDLE_LIMIT, f"{len(clients)} clients connected, each echoed one line, "
          f"then all stayed connected and silent for {waits.IDLE_WINDOW:g} s",
          f"the server sleeps between passes: under {IDLE_LIMIT:.0%} of one core (time running "
          "or ready to run)",
          usage.describe() + ": does a recv() that raised BlockingIOError count as work, "
          "so the server never sleeps?")


@pytest.mark.quiet("measures the server's CPU")
@pytest.mark.points(5)
@pytest.mark.task(4)
def test_sleeps_after_clients_leave(server, connect, rng):
    program, port = server
    clients = [connect(port, name=f"client{i}") for i in range(3)]
    for client in clients:
        echo_round(client, f"{client.name} {textgen.message(rng)}\n".encode(), did="said hello")
    clients[0].close()
    clients[1].reset()
    clients[2].shutdown_write()
    # Give the server a moment to notice (a condition, not a fixed pause).
    gone = wait_until(lambda: not _server_connections(program), waits.REPLY)
    usage = cpu.measure(program, waits.IDLE_WINDOW)
    check(usage.demand < IDLE_LIMIT, "three clients talked, then one closed, one reset and one "
          f"half-closed its connection; then a quiet {waits.IDLE_WINDOW:g} s",
          f"the server sleeps between passes: under {IDLE_LIMIT:.0%} of one core (time running "
          "or ready to run)",
          usage.describe() + ("" if gone else " (and it still held connections)") +
          ": does a client that reached end of file stay in the list, with recv() "
          "returning b'' on every pass?")


def _server_connections(program):
    """The server's connected TCP sockets (none known where psutil cannot tell)."""
    try:
        return [c for c in psutil.Process(program.pid).net_connections(kind="tcp") if c.raddr]
    except (psutil.Error, OSError):
        return []
