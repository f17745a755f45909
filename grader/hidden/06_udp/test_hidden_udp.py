"""Hidden suite for 06_udp: the UDP echo server, the client that retries,
and the general rules that apply to a UDP server.

The server is driven by UDP sockets of the test (grader.testkit.udp_peer); the
client is run against fake UDP servers that drop datagrams, never answer,
or let a stranger write to the client first. server_rules.ServerRulesTests
speaks TCP, so its rules are re-stated here for a datagram socket, with its
helpers (expect_clean_exit, measure_cpu) and its idea of require_working:
error handling earns points only from a program that also works."""

from __future__ import annotations

import re
import signal
import sys
import time

import pytest

from grader.harness.failure import GradingFailure, check, fail
from grader.testkit import textgen
from grader.testkit.suites.server_rules import (TRACEBACK, ServerSpec, expect_bad_arguments_refused,
                                                expect_clean_exit, expect_port_in_use_error,
                                                measure_cpu)
from grader.testkit.udp_peer import UdpPeers, occupy_port

SERVER = ServerSpec(
    script="udp_server.py",
    args=lambda port: [port],
    ready=lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port} \(udp\)\s*$",
    bad_args=[[], ["{port}", "extra"], ["http"], ["0"], ["65536"], ["-5"], ["80.5"]],
)
CLIENT = "udp_client.py"
CLIENT_BAD_ARGS = [[], ["127.0.0.1"], ["127.0.0.1", "{port}", "extra"], ["127.0.0.1", "http"],
                   ["127.0.0.1", "0"], ["127.0.0.1", "65536"], ["127.0.0.1", "-5"]]
PROMPT = "what to send to the server?"
GAVE_UP = "[client] no reply after 3 attempts"
WAIT = 1.0              # the contract's wait per send
EARLY = 0.8             # a resend sooner than this did not wait for its second
LINUX = sys.platform.startswith("linux")


# -- fixtures and helpers ------------------------------------------------------

@pytest.fixture
def udp(transcript):
    peers = UdpPeers(transcript)
    yield peers
    peers.close_all()


@pytest.fixture
def server(start_server, udp):
    program, port = start_server(SERVER.script, SERVER.args, SERVER.ready)
    udp.name_address(("127.0.0.1", port), "server")
    return program, port


def expect_echo(client, port: int, data: bytes, did: str, host: str = "127.0.0.1"):
    """Send `data` to the server and require the same bytes back as one datagram."""
    client.send_to(data, (host, port))
    got = client.receive(timeout=5)
    if got is None:
        raise fail(did=did, expected=f"{client.name} gets its {len(data)} bytes back as one datagram",
                   got="nothing came back within 5 s")
    check(got.data == data, did, f"the same {len(data)} bytes back: {data[:80]!r}",
          f"{len(got.data)} bytes: {got.data[:80]!r}")
    return got


def require_echo(start_server, udp) -> None:
    """Error handling earns points only from a server that also echoes."""
    program, port = start_server(SERVER.script, SERVER.args, SERVER.ready)
    probe = udp.socket("probe")
    expect_echo(probe, port, b"are you there?", "first checked that the server works: "
                "started it and sent it a datagram")
    program.stop()


def received_line(reply: str) -> re.Pattern:
    # Anything may precede it on the line (a prompt printed without a line
    # ending costs points in one test only: test_client_prompts_on_its_own_line).
    return re.compile(r".*\[client\] received '" + re.escape(reply) + r"'\s*$")


def expect_received(program, reply: str, did: str, timeout: float = 5.0,
                    bogus: str | None = None) -> None:
    """The client prints `[client] received 'REPLY'`; said plainly on failure."""
    try:
        program.expect_line(received_line(reply), timeout=timeout, did=did)
    except GradingFailure as failure:
        if bogus is not None and program.has_line(r".*received '" + re.escape(bogus)):
            raise fail(did=did, expected=f"the client ignores the stranger and prints: "
                       f"[client] received '{reply}'",
                       got="it printed the stranger's datagram as the server's reply",
                       hint="compare the sender's address of each datagram (IP and port) "
                            "with the server's") from None
        raise fail(did=did, expected=f"the client prints: [client] received '{reply}'",
                   got=failure.got) from None


def run_client(spawn, port: int, message: str, host: str = "127.0.0.1"):
    program = spawn(CLIENT, host, port, name="client")
    program.send_line(message)  # the terminal keeps it until the client reads
    return program


def acknowledging(rng):
    """A reply that is not an echo, so a client that prints its own message
    instead of the server's answer cannot pass."""
    text = "ack " + textgen.message(rng)
    return text, (lambda data: text.encode())


def require_client_works(spawn, udp, rng) -> None:
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng))
    expect_received(program, reply, "first checked that the client works: ran it against a "
                    "server that answers at once")
    program.stop()


def expect_exit(program, code: int, did: str, within: float = 5.0) -> None:
    status = program.wait_exit(within)
    check(status is not None, did, f"the client exits with status {code}",
          f"it was still running after {within:g} s")
    check(status.code == code, did, f"exit status {code}", status.describe())
    check(TRACEBACK not in program.stderr(), did, "no traceback",
          "stderr holds a traceback (shown below)")


def expect_gave_up(program, did: str, within: float) -> None:
    """The client printed the give-up line (stdout, or stderr: both are
    accepted) and exited with status 1, within `within` seconds."""
    expect_exit(program, 1, did, within)
    program.wait_for_eof(2)
    said = program.has_line(r".*" + re.escape(GAVE_UP) + r"\s*$") or GAVE_UP in program.stderr()
    check(said, did, f"the client prints {GAVE_UP!r}", "it exited without that line")


def exited(program):
    return lambda: program.poll_exit() is not None


def same_message(data: bytes, message: str) -> bool:
    """The line as sent: without its line ending, or (tolerated) with "\\n"."""
    return data in (message.encode(), (message + "\n").encode())


# == the server ===============================================================

@pytest.mark.points(5)
@pytest.mark.task(2)
def test_logs_each_datagram_with_its_size_and_sender(server, udp, rng):
    program, port = server
    for name in ("alice", "bob"):
        client = udp.socket(name)
        data = textgen.message(rng).encode()
        expect_echo(client, port, data, f"{name} sent a datagram of {len(data)} bytes")
        program.expect_line(f"[server] got {len(data)} bytes from 127.0.0.1:{client.port}",
                            literal=True, did=f"{name} sent {len(data)} bytes from 127.0.0.1:"
                            f"{client.port}")


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_keeps_datagram_boundaries(server, udp, rng):
    program, port = server
    client = udp.socket("client")
    sent = [textgen.message(rng).encode(),
            f"{textgen.message(rng)}\n{textgen.message(rng)}".encode(),
            (textgen.line_of_bytes(rng, rng.randint(300, 1200)) + "\n").encode()]
    for data in sent:
        client.send_to(data, ("127.0.0.1", port))
    back = client.receive_many(3, timeout=5)
    back += client.collect_for(0.3)  # anything beyond the three
    did = ("sent three datagrams back to back, without waiting: "
           + ", ".join(f"{len(d)} bytes" for d in sent))
    shown = [f"{len(d.data)} bytes: {d.data[:50]!r}" for d in back] or ["nothing"]
    check(len(back) == 3 and sorted(d.data for d in back) == sorted(sent), did,
          "exactly three datagrams back, each the same bytes as one that was sent",
          f"{len(back)} datagram(s) came back:\n" + "\n".join(shown),
          hint="each recvfrom() returns one whole datagram; send it back with one sendto(), "
               "as it is (no splitting into lines, no joining)")


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_replies_to_each_sender_with_two_clients_at_once(server, udp, rng):
    program, port = server
    alice, bob = udp.socket("alice"), udp.socket("bob")
    rounds = rng.randint(3, 5)
    sent = {alice: [], bob: []}
    for i in range(rounds):
        for client in (alice, bob):
            data = f"{client.name} {i} {textgen.message(rng)}".encode()
            sent[client].append(data)
            client.send_to(data, ("127.0.0.1", port))
    did = (f"alice (port {alice.port}) and bob (port {bob.port}) each sent {rounds} datagrams, "
           "taking turns")
    for client in (alice, bob):
        back = [d.data for d in client.receive_many(rounds, timeout=5)]
        check(sorted(back) == sorted(sent[client]), did,
              f"{client.name} gets back exactly its own {rounds} datagrams",
              f"{client.name} got {len(back)}: {back}",
              hint="answer each datagram to the address recvfrom() returned with it, not "
                   "to the first or any stored address")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_echoes_bytes_that_are_not_utf8(server, udp, rng):
    program, port = server
    client = udp.socket("client")
    data = b"\xff\xfe\xc3(" + rng.randbytes(rng.randint(8, 40))
    expect_echo(client, port, data, f"sent a datagram of bytes that are not UTF-8: {data!r}")
    text = textgen.message(rng).encode()
    expect_echo(client, port, text, "then sent a datagram of plain text")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_echoes_an_empty_datagram(server, udp, rng):
    program, port = server
    client = udp.socket("client")
    expect_echo(client, port, b"", "sent an empty datagram (0 bytes: with UDP, that is a "
                "datagram like any other, not an end of file)")
    expect_echo(client, port, textgen.message(rng).encode(), "then sent a datagram of text")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_echoes_a_large_datagram_whole(server, udp, rng):
    program, port = server
    client = udp.socket("client")
    data = rng.randbytes(rng.randint(5000, 9000))
    client.send_to(data, ("127.0.0.1", port))
    got = client.receive(timeout=5)
    did = f"sent one datagram of {len(data)} random bytes"
    check(got is not None, did, "the same datagram back", "nothing came back within 5 s")
    check(got.data == data, did, f"all {len(data)} bytes back in one datagram",
          f"a datagram of {len(got.data)} bytes" + ("" if data.startswith(got.data) else
                                                     ", and they differ"),
          hint="recvfrom(n) throws away whatever does not fit in n bytes: use a buffer "
               "big enough for any datagram (65535)")


# -- the general rules, for a UDP server ----------------------------------------

@pytest.mark.points(3)
@pytest.mark.task(1)
def test_server_rejects_bad_arguments_with_usage(spawn, start_server, udp, free_port):
    require_echo(start_server, udp)
    expect_bad_arguments_refused(spawn, SERVER.script, SERVER.bad_args, free_port)


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_server_reports_a_port_in_use(spawn, start_server, udp, free_port):
    require_echo(start_server, udp)
    port = free_port()
    holder = occupy_port(port)
    try:
        program = spawn(SERVER.script, port, name="server")
        did = (f"kept UDP port {port} busy with a bound socket (no SO_REUSEADDR), then ran: "
               f"{SERVER.command(port)}")
        expect_port_in_use_error(program, did)
    finally:
        holder.close()


@pytest.mark.points(2)
@pytest.mark.task(1)
@pytest.mark.skipif(not LINUX, reason="UDP ports shared through SO_REUSEADDR: Linux semantics")
def test_server_sets_so_reuseaddr(spawn, udp, free_port):
    port = free_port()
    holder = occupy_port(port, reuse=True)
    try:
        program = spawn(SERVER.script, port, name="server")
        program.expect_line(
            re.compile(SERVER.ready(port)),
            did=f"bound a UDP socket with SO_REUSEADDR to port {port} (Linux lets the port be "
                "shared only when every socket on it sets SO_REUSEADDR), then ran: "
                f"{SERVER.command(port)}")
    finally:
        holder.close()
    udp.name_address(("127.0.0.1", port), "server")
    expect_echo(udp.socket("client"), port, b"hello", "closed the other socket and sent the "
                "server a datagram")


@pytest.mark.points(2)
@pytest.mark.task(1)
@pytest.mark.skipif(not LINUX, reason="127.0.0.2 is loopback on Linux only")
def test_server_listens_on_all_interfaces(server, udp, rng):
    program, port = server
    udp.name_address(("127.0.0.2", port), "server at 127.0.0.2")
    expect_echo(udp.socket("client"), port, textgen.message(rng).encode(),
                f"sent a datagram to 127.0.0.2:{port} (another loopback address)",
                host="127.0.0.2")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_server_exits_on_sigterm(server, udp):
    program, port = server
    expect_echo(udp.socket("client"), port, b"ping", "sent the server a datagram")
    program.send_signal(signal.SIGTERM)
    expect_clean_exit(program, 2.0, "started the server, had one datagram echoed, sent SIGTERM",
                      allowed_signals=(signal.SIGTERM,))


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_server_exits_on_sigint_without_traceback(server, udp):
    program, port = server
    expect_echo(udp.socket("client"), port, b"ping", "sent the server a datagram")
    program.send_signal(signal.SIGINT)
    expect_clean_exit(program, 2.0, "started the server, had one datagram echoed, sent SIGINT "
                      "(Ctrl-C)", allowed_signals=(signal.SIGINT,))


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_idle_server_sleeps_in_the_kernel(server, udp, rng):
    program, port = server
    client = udp.socket("client")
    for _ in range(3):
        expect_echo(client, port, textgen.message(rng).encode(), "sent the server a datagram")
    share = measure_cpu(program)
    limit = SERVER.idle_cpu_fraction
    check(share < limit, "had three datagrams echoed, then left the server alone for one second",
          f"it waits in the kernel (in recvfrom), using under {limit:.0%} of one core",
          f"it used {share:.0%} of one core: is it looping without blocking?")


# == the client ===============================================================

@pytest.mark.points(2)
@pytest.mark.task(3)
def test_client_prompts_on_its_own_line(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng))
    expect_received(program, reply, "ran the client against a server that answers at once")
    program.wait_for_eof(5)
    check(any(line.rstrip() == PROMPT for line in program.lines),
          "ran the client and read its output",
          f"the prompt {PROMPT!r} on a line of its own (print it, do not pass it to input())",
          "no stdout line is exactly that prompt")


@pytest.mark.points(4)
@pytest.mark.task(4)
def test_client_sends_the_line_as_one_datagram(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    message = textgen.message(rng)
    program = run_client(spawn, fake.port, message)
    did = f"typed the line {message!r} into the client"
    check(fake.wait_for(1, timeout=10, unless=exited(program)), did,
          "the server receives a datagram", "no datagram arrived")
    first = fake.received[0]
    check(same_message(first.data, message), did,
          f"one datagram holding the line: {message.encode()!r}", f"{first.data!r}")
    program.wait_exit(5)
    extra = fake.wait_for(2, timeout=0.3)  # a window: anything more already in flight
    check(not extra, did + "; the server answered it at once",
          "no other datagram (the answer came, so there is nothing to send again)",
          f"the server got {fake.count} datagrams: {[d.data for d in fake.received]}")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_client_prints_the_reply_and_exits_0(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng))
    did = f"ran the client against a server that answers {reply!r} at once"
    expect_received(program, reply, did)
    expect_exit(program, 0, did)


@pytest.mark.points(5)
@pytest.mark.task(4)
def test_client_retries_after_a_lost_datagram(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(drop_first=1, answer=answer)
    message = textgen.message(rng)
    program = run_client(spawn, fake.port, message)
    did = "ran the client against a server that drops the first datagram and answers the next"
    expect_received(program, reply, did, timeout=10)
    expect_exit(program, 0, did)
    got = fake.received
    check(len(got) == 2, did, "exactly two sends: the lost one and the one answered",
          f"{len(got)} datagram(s) arrived")
    check(got[1].data == got[0].data, did, "the second send repeats the same datagram",
          f"first {got[0].data!r}, then {got[1].data!r}")


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_client_succeeds_on_the_third_attempt(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(drop_first=2, answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng))
    did = "ran the client against a server that drops the first two datagrams and answers the third"
    expect_received(program, reply, did, timeout=10)
    expect_exit(program, 0, did)
    check(fake.count == 3, did, "exactly three sends", f"{fake.count} datagram(s) arrived")


@pytest.mark.points(5)
@pytest.mark.task(4)
def test_client_gives_up_after_three_attempts(spawn, udp, rng):
    fake = udp.fake_server(answer=None)
    message = textgen.message(rng)
    program = run_client(spawn, fake.port, message)
    did = "ran the client against a server that never answers"
    expect_gave_up(program, did, within=15)
    quiet = not fake.wait_for(4, timeout=0.3)  # a window: a fourth one already in flight
    got = fake.received
    check(quiet and len(got) == 3, did, "exactly three datagrams, then the client gives up",
          f"{len(got)} datagram(s) arrived")
    check(all(same_message(d.data, message) for d in got), did,
          f"each datagram holds the line {message!r}", f"{[d.data for d in got]}")


@pytest.mark.points(4)
@pytest.mark.task(4)
def test_client_waits_about_a_second_per_attempt(spawn, udp, rng):
    fake = udp.fake_server(answer=None)
    program = run_client(spawn, fake.port, textgen.message(rng))
    did = "ran the client against a server that never answers, and timed its sends"
    check(fake.wait_for(3, timeout=15, unless=exited(program)), did, "three sends",
          f"{fake.count} datagram(s) arrived")
    status = program.wait_exit(10)
    ended = time.monotonic()
    check(status is not None, did, "the client gives up after its third wait",
          "it was still running 10 s after its third send")
    times = [d.at for d in fake.received[:3]] + [ended]
    gaps = [b - a for a, b in zip(times, times[1:])]
    shown = (f"sends at 0.00 s, {times[1] - times[0]:.2f} s, {times[2] - times[0]:.2f} s; "
             f"exit at {ended - times[0]:.2f} s")
    check(min(gaps) >= EARLY, did,
          f"about {WAIT:g} s of waiting after each send (at least {EARLY:g} s) before the "
          "next send, and before giving up", shown)
    check(ended - times[0] <= 4.5, did,
          f"the client gives up about {3 * WAIT:g} s after its first send (at most 4.5 s)", shown)


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_client_gives_up_when_nothing_listens(spawn, free_port, rng):
    port = free_port()
    program = run_client(spawn, port, textgen.message(rng))
    expect_gave_up(program, f"ran the client against port {port}, where nothing listens "
                   "(the system may answer 'port unreachable')", within=15)


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_client_ignores_a_datagram_from_another_port(spawn, udp, rng):
    stranger = udp.socket("stranger")
    bogus = "stranger " + textgen.message(rng)
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer,
                           before_answer=lambda d: stranger.send_to(bogus.encode(), d.sender))
    program = run_client(spawn, fake.port, textgen.message(rng))
    did = (f"when the client's datagram arrived, first a stranger (127.0.0.1:{stranger.port}) "
           f"sent {bogus!r} to the client, then the server (127.0.0.1:{fake.port}) answered "
           f"{reply!r}")
    expect_received(program, reply, did, bogus=bogus)
    expect_exit(program, 0, did)
    program.wait_for_eof(2)
    check(not program.has_line(r".*received '" + re.escape(bogus)), did,
          "the client ignores the stranger's datagram", "it printed the stranger's datagram")
    check(not fake.wait_for(2, timeout=0.3), did,
          "one send only: the stranger's datagram is not an answer, and the server's answer "
          "came at once", f"the server got {fake.count} datagrams",
          hint="on a datagram from elsewhere, keep waiting for what is left of the second")


@pytest.mark.points(3)
@pytest.mark.task(3)
@pytest.mark.skipif(not LINUX, reason="127.0.0.2 is loopback on Linux only")
def test_client_ignores_a_datagram_from_another_address(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    bogus = "stranger " + textgen.message(rng)
    fake = udp.fake_server(answer=answer,
                           before_answer=lambda d: stranger.send_to(bogus.encode(), d.sender))
    # The server's port on another IP: only a client that checks both the
    # IP and the port ignores it. (`stranger` is bound before any datagram.)
    stranger = udp.socket("stranger", host="127.0.0.2", port=fake.port)
    program = run_client(spawn, fake.port, textgen.message(rng))
    did = (f"when the client's datagram arrived, first a stranger at 127.0.0.2:{fake.port} "
           f"(the server's port, another IP) sent {bogus!r}, then the server at "
           f"127.0.0.1:{fake.port} answered {reply!r}")
    expect_received(program, reply, did, bogus=bogus)
    expect_exit(program, 0, did)
    program.wait_for_eof(2)
    check(not program.has_line(r".*received '" + re.escape(bogus)), did,
          "the client ignores the stranger's datagram (compare the IP and the port)",
          "it printed the stranger's datagram")


@pytest.mark.points(3)
def test_client_rejects_bad_arguments_with_usage(spawn, udp, rng, free_port):
    require_client_works(spawn, udp, rng)
    expect_bad_arguments_refused(spawn, CLIENT, CLIENT_BAD_ARGS, free_port, name="client")
