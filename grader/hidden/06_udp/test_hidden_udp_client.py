"""Hidden suite for 06_udp's udp_client.py: the client that retries.

The client is run against fake UDP servers of the test
(grader.testkit.udp_peer) that drop datagrams, never answer, or let a
stranger write to the client first. Error handling earns points only
from a client that also works."""

from __future__ import annotations

import re
import sys
import time

import pytest

from grader.harness import gates, waits
from grader.harness.failure import GradingFailure, check, fail
from grader.testkit import textgen
from grader.testkit.suites.server_rules import TRACEBACK, expect_bad_arguments_refused
from grader.testkit.udp_peer import udp  # noqa: F401 (a fixture)

CLIENT = "udp_client.py"
CLIENT_BAD_ARGS = [[], ["127.0.0.1"], ["127.0.0.1", "{port}", "extra"], ["127.0.0.1", "http"],
                   ["127.0.0.1", "0"], ["127.0.0.1", "65536"], ["127.0.0.1", "-5"]]
PROMPT = "what to send to the server?"
GAVE_UP = "[client] no reply after 3 attempts"
WAIT = 1.0              # the contract's wait per send
EARLY = 0.8             # a resend sooner than this did not wait for its second
GIVE_UP = 4.5           # the latest a client may give up, after its first send ("about 3 s")
LINUX = sys.platform.startswith("linux")
# How long the test waits for what the client does (grader.harness.waits):
# the line typed before it starts is waiting for it, so its first send
# comes within its start-up, and the server's answer a reply later.
FIRST_SEND = waits.READY
FIRST_REPLY = waits.READY + waits.REPLY
# A client that gives up: start-up, the latest it may give up, its exit.
GAVE_UP_WITHIN = waits.READY + GIVE_UP + waits.EXIT


# -- helpers ------------------------------------------------------------------

def received_line(reply: str) -> re.Pattern:
    # Anything may precede it on the line (a prompt printed without a line
    # ending costs points in one test only: test_client_prompts_on_its_own_line).
    return re.compile(r".*\[client\] received '" + re.escape(reply) + r"'\s*$")


def expect_received(program, reply: str, did: str, timeout: float = FIRST_REPLY,
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


USUAL = f"{CLIENT} 127.0.0.1 PORT"    # its command line, for the gates (grader.harness.gates)


def run_client(spawn, port: int, message: str, host: str = "127.0.0.1", fake=None):
    """Start the client and type `message`. With the test's `fake` server,
    whose answers (or silence) the test is about, the client's first
    datagram must come within its start-up: a gate (grader.harness.gates)
    for its command line. Once the client never sent its line there, every
    later test with a fake server fails at once."""
    if fake is not None:
        gates.require(gates.sends(USUAL))
    program = spawn(CLIENT, host, port, name="client")
    program.send_line(message)  # the terminal keeps it until the client reads
    if fake is not None:
        with gates.guard(gates.sends(USUAL)):
            check(fake.wait_for(1, timeout=FIRST_SEND, unless=exited(program)),
                  f"ran: python -u {CLIENT} {host} {port}; typed the line {message!r}",
                  f"the server receives a datagram within {FIRST_SEND:g} s", "no datagram arrived")
    return program


def acknowledging(rng):
    """A reply that is not an echo, so a client that prints its own message
    instead of the server's answer cannot pass."""
    text = "ack " + textgen.message(rng)
    return text, (lambda data: text.encode())


def require_client_works(spawn, udp, rng) -> None:
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    expect_received(program, reply, "first checked that the client works: ran it against a "
                    "server that answers at once")
    program.stop()


def expect_exit(program, code: int, did: str, within: float = waits.EXIT) -> None:
    """By default, right after the output the test waited for last."""
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
    program.wait_for_eof(waits.EXIT)    # its last output, read after its exit
    said = program.has_line(r".*" + re.escape(GAVE_UP) + r"\s*$") or GAVE_UP in program.stderr()
    check(said, did, f"the client prints {GAVE_UP!r}", "it exited without that line")


def exited(program):
    return lambda: program.poll_exit() is not None


def same_message(data: bytes, message: str) -> bool:
    """The line as sent: without its line ending, or (tolerated) with "\\n"."""
    return data in (message.encode(), (message + "\n").encode())


# == the client ===============================================================

@pytest.mark.points(2)
@pytest.mark.task(3)
def test_client_prompts_on_its_own_line(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    expect_received(program, reply, "ran the client against a server that answers at once")
    program.wait_for_eof(waits.EXIT)    # the client exits: its output ends
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
    program = run_client(spawn, fake.port, message, fake=fake)
    did = f"typed the line {message!r} into the client"
    check(fake.wait_for(1, timeout=FIRST_SEND, unless=exited(program)), did,
          "the server receives a datagram", "no datagram arrived")
    first = fake.received[0]
    check(same_message(first.data, message), did,
          f"one datagram holding the line: {message.encode()!r}", f"{first.data!r}")
    program.wait_exit(waits.REPLY + waits.EXIT)   # it reads the answer, prints it, exits
    extra = fake.wait_for(2, timeout=waits.SILENCE)  # a window: anything more already in flight
    check(not extra, did + "; the server answered it at once",
          "no other datagram (the answer came, so there is nothing to send again)",
          f"the server got {fake.count} datagrams: {[d.data for d in fake.received]}")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_client_prints_the_reply_and_exits_0(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    did = f"ran the client against a server that answers {reply!r} at once"
    expect_received(program, reply, did)
    expect_exit(program, 0, did)


@pytest.mark.quiet("times the client's retries", seconds=1)
@pytest.mark.points(5)
@pytest.mark.task(4)
def test_client_retries_after_a_lost_datagram(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(drop_first=1, answer=answer)
    message = textgen.message(rng)
    program = run_client(spawn, fake.port, message, fake=fake)
    did = "ran the client against a server that drops the first datagram and answers the next"
    expect_received(program, reply, did, timeout=FIRST_REPLY + GIVE_UP / 3)  # one more attempt
    expect_exit(program, 0, did)
    got = fake.received
    check(len(got) == 2, did, "exactly two sends: the lost one and the one answered",
          f"{len(got)} datagram(s) arrived")
    check(got[1].data == got[0].data, did, "the second send repeats the same datagram",
          f"first {got[0].data!r}, then {got[1].data!r}")


@pytest.mark.quiet("times the client's retries", seconds=2)
@pytest.mark.points(3)
@pytest.mark.task(4)
def test_client_succeeds_on_the_third_attempt(spawn, udp, rng):
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(drop_first=2, answer=answer)
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    did = "ran the client against a server that drops the first two datagrams and answers the third"
    expect_received(program, reply, did, timeout=FIRST_REPLY + 2 * GIVE_UP / 3)  # two more
    expect_exit(program, 0, did)
    check(fake.count == 3, did, "exactly three sends", f"{fake.count} datagram(s) arrived")


@pytest.mark.quiet("times the client's retries", seconds=3)
@pytest.mark.points(5)
@pytest.mark.task(4)
def test_client_gives_up_after_three_attempts(spawn, udp, rng):
    fake = udp.fake_server(answer=None)
    message = textgen.message(rng)
    program = run_client(spawn, fake.port, message, fake=fake)
    did = "ran the client against a server that never answers"
    expect_gave_up(program, did, within=GAVE_UP_WITHIN)
    quiet = not fake.wait_for(4, timeout=waits.SILENCE)  # a window: a fourth one already in flight
    got = fake.received
    check(quiet and len(got) == 3, did, "exactly three datagrams, then the client gives up",
          f"{len(got)} datagram(s) arrived")
    check(all(same_message(d.data, message) for d in got), did,
          f"each datagram holds the line {message!r}", f"{[d.data for d in got]}")


@pytest.mark.quiet("times the client's retries", seconds=3)
@pytest.mark.points(4)
@pytest.mark.task(4)
def test_client_waits_about_a_second_per_attempt(spawn, udp, rng):
    fake = udp.fake_server(answer=None)
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    did = "ran the client against a server that never answers, and timed its sends"
    check(fake.wait_for(3, timeout=FIRST_SEND + GIVE_UP, unless=exited(program)), did,
          "three sends", f"{fake.count} datagram(s) arrived")
    # Past GIVE_UP after its first send, it fails below whenever it exits.
    status = program.wait_exit(GIVE_UP + waits.EXIT)
    ended = time.monotonic()
    check(status is not None, did, "the client gives up after its third wait",
          f"it was still running {GIVE_UP + waits.EXIT:g} s after its third send")
    times = [d.at for d in fake.received[:3]] + [ended]
    gaps = [b - a for a, b in zip(times, times[1:])]
    shown = (f"sends at 0.00 s, {times[1] - times[0]:.2f} s, {times[2] - times[0]:.2f} s; "
             f"exit at {ended - times[0]:.2f} s")
    check(min(gaps) >= EARLY, did,
          f"about {WAIT:g} s of waiting after each send (at least {EARLY:g} s) before the "
          "next send, and before giving up", shown)
    check(ended - times[0] <= GIVE_UP, did,
          f"the client gives up about {3 * WAIT:g} s after its first send (at most {GIVE_UP:g} s)",
          shown)


@pytest.mark.quiet("times the client's retries", seconds=3)
@pytest.mark.points(2)
@pytest.mark.task(4)
def test_client_gives_up_when_nothing_listens(spawn, free_port, rng):
    # Giving up comes after sending: a client that never sent its line to a
    # server in an earlier test (its `sends` gate) fails here at once too.
    gates.require(gates.sends(USUAL))
    port = free_port()
    program = run_client(spawn, port, textgen.message(rng))
    expect_gave_up(program, f"ran the client against port {port}, where nothing listens "
                   "(the system may answer 'port unreachable')", within=GAVE_UP_WITHIN)


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_client_ignores_a_datagram_from_another_port(spawn, udp, rng):
    stranger = udp.socket("stranger")
    bogus = "stranger " + textgen.message(rng)
    reply, answer = acknowledging(rng)
    fake = udp.fake_server(answer=answer,
                           before_answer=lambda d: stranger.send_to(bogus.encode(), d.sender))
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    did = (f"when the client's datagram arrived, first a stranger (127.0.0.1:{stranger.port}) "
           f"sent {bogus!r} to the client, then the server (127.0.0.1:{fake.port}) answered "
           f"{reply!r}")
    expect_received(program, reply, did, bogus=bogus)
    expect_exit(program, 0, did)
    program.wait_for_eof(waits.EXIT)    # its last output, read after its exit
    check(not program.has_line(r".*received '" + re.escape(bogus)), did,
          "the client ignores the stranger's datagram", "it printed the stranger's datagram")
    check(not fake.wait_for(2, timeout=waits.SILENCE), did,
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
    program = run_client(spawn, fake.port, textgen.message(rng), fake=fake)
    did = (f"when the client's datagram arrived, first a stranger at 127.0.0.2:{fake.port} "
           f"(the server's port, another IP) sent {bogus!r}, then the server at "
           f"127.0.0.1:{fake.port} answered {reply!r}")
    expect_received(program, reply, did, bogus=bogus)
    expect_exit(program, 0, did)
    program.wait_for_eof(waits.EXIT)    # its last output, read after its exit
    check(not program.has_line(r".*received '" + re.escape(bogus)), did,
          "the client ignores the stranger's datagram (compare the IP and the port)",
          "it printed the stranger's datagram")


@pytest.mark.points(3)
def test_client_rejects_bad_arguments_with_usage(spawn, udp, rng, free_port):
    require_client_works(spawn, udp, rng)
    expect_bad_arguments_refused(spawn, CLIENT, CLIENT_BAD_ARGS, free_port, name="client")
