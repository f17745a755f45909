"""Hidden suite for 02_tcp_client's tcp_client.py: every clause of its contract.

tcp_client.py is a program: it is spawned against a one-shot server that
the test runs in a thread (grader.testkit.fake_server). Where a host name
with several candidates is needed, a fake resolver answers for a few
made-up names (*.socklab.test)."""

import re
import time

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.fake_server import (expect_first_line, expect_line_once_connected,
                                        install_fake_resolver, localhost_ip, prints)
from grader.testkit.fake_server import servers  # noqa: F401 (a fixture)

TRACEBACK = "Traceback (most recent call last)"
PROMPT = "what to send to the server?"
FAILED = "[client] failed to connect"
CLOSED = "[client] server closed the connection"
MULTI = "multi.socklab.test"        # made-up names: only the fake resolver knows them
NOWHERE = "nowhere.socklab.test"    # ... and this one does not resolve at all


def reply_for(rng) -> str:
    return "ack " + textgen.message(rng)


# -- task 3: the client program --------------------------------------------------

def command(host, port) -> str:
    return f"python -u tcp_client.py {host} {port}"


def command_shape(host) -> str:
    """The client's command line for `host`, for its gates (grader.harness.gates)."""
    return f"tcp_client.py {host} PORT"


USUAL = command_shape("127.0.0.1")      # the command line of most tests


def first_line(program, host: str, ip: str, did: str) -> None:
    """The client's first line, 'attempting connection to IP ...', is its
    ready line: a gate for its command line (and a run for another host
    needs the usual one to print it)."""
    expect_first_line(program, command_shape(host), f"[client] attempting connection to {ip} ...",
                      did, usual=USUAL)


def typed(program, server, message: str, host: str, did: str, closes: bool = True) -> None:
    """Type the line; the server must receive it: the client connects within
    its start-up, and sends it a reply after it connected (a gate for the
    client's command line: a client that never sends it fails every later
    test that needs it at once; `closes`: False for a line unlike the usual
    ones). From then on the reply is a REPLY away."""
    type_message(program, message)
    server.expect_message(command_shape(host), f"{did}; typed {message!r}", usual=USUAL,
                          program=program, closes=closes)


def type_message(program, message: str) -> None:
    """Type the line into the client's terminal. It waits there until the
    client reads it, so no test but the prompt's depends on the prompt line."""
    program.send_line(message)


def received_the_message(server, message: str, did: str) -> None:
    """The message reached the server (its exact bytes are the job of
    test_sends_exactly_the_typed_line)."""
    server.wait_done(waits.OWN)    # the client has exited: its connection is closed
    check(server.received.rstrip(b"\r\n") == message.encode(), did,
          f"the server receives {message!r}", f"it received {server.received!r}")


def expect_exit(program, code: int, did: str, within: float = waits.EXIT) -> None:
    """The client exits with `code` within `within` (by default: right after
    the output the test waited for last)."""
    status = program.wait_exit(within)
    check(status is not None, did, f"the client exits with status {code}",
          f"it was still running after {within:g} s")
    check(status.code == code, did, f"exit status {code}", status.describe())


def no_traceback(program, did: str) -> None:
    check(TRACEBACK not in program.stderr(), did, "no traceback on stderr",
          "stderr holds a traceback (shown below)")


ANY_REPLY = object()


def run_conversation(spawn, servers, rng, host: str, server_host: str, reply=ANY_REPLY,
                     refuse_on: tuple[str, ...] = (), sends: bool = True):
    """Start a server on `server_host` (replying `reply`, None: hanging up
    instead) and the client for `host`; return (program, server, message, did).
    The test types `message` when it wants to; `sends`: the test needs the
    message to reach the server (a gate, see typed)."""
    message = textgen.message(rng)
    if reply is ANY_REPLY:
        reply = (reply_for(rng) + "\n").encode()
    server = servers.start(server_host, expect=len(message.encode()), reply=reply, refuse_on=refuse_on)
    if sends:
        server.needs_message(command_shape(host), USUAL)
    program = spawn("tcp_client.py", host, server.port, name="client")
    did = f"a server listens on {server_host} port {server.port}; ran: {command(host, server.port)}"
    return program, server, message, did


def require_working(spawn, servers, rng) -> None:
    """Error handling earns points only from a client that also works: a
    program that always fails must not score there."""
    message = textgen.message(rng)
    reply = reply_for(rng)
    server = servers.start("127.0.0.1", expect=len(message.encode()), reply=(reply + "\n").encode())
    server.needs_message(USUAL)
    program = spawn("tcp_client.py", "127.0.0.1", server.port, name="client (a normal run first)")
    did = (f"first ran {command('127.0.0.1', server.port)} against a working server "
           "(error handling counts only for a client that works)")
    typed(program, server, message, "127.0.0.1", did)
    program.expect_line(f"[client] received '{reply}'", literal=True,
                        did=f"{did}; typed {message!r}")
    expect_exit(program, 0, did)


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_reports_the_attempt_and_the_connection(spawn, servers, rng):
    program, server, message, did = run_conversation(spawn, servers, rng, "127.0.0.1", "127.0.0.1")
    first_line(program, "127.0.0.1", "127.0.0.1", did)
    program.expect_line("[client] connected to 127.0.0.1", literal=True, did=did)
    check(server.wait_accepted(waits.OWN), did, "the server gets a connection", "nobody connected")
    typed(program, server, message, "127.0.0.1", did)
    expect_exit(program, 0, f"{did}; typed {message!r}", within=waits.REPLY + waits.EXIT)


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_prompts_then_confirms_what_it_sent(spawn, servers, rng):
    program, server, message, did = run_conversation(spawn, servers, rng, "127.0.0.1", "127.0.0.1",
                                                     sends=False)
    # The prompt comes once the client connected: a reply after its connection.
    expect_line_once_connected(program, server, PROMPT, did, started=time.monotonic(),
                               needed=(prints(USUAL),))
    type_message(program, message)
    program.expect_line(f"[client] sent '{message}'", literal=True,
                        did=f"{did}; typed {message!r} at the prompt")


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_sends_exactly_the_typed_line(spawn, servers, rng):
    message = "  " + textgen.message(rng) + " "
    reply = reply_for(rng)
    server = servers.start("127.0.0.1", expect=len(message.encode()), reply=(reply + "\n").encode())
    server.needs_message(USUAL)
    program = spawn("tcp_client.py", "127.0.0.1", server.port, name="client")
    did = (f"a server listens on 127.0.0.1 port {server.port}; ran: "
           f"{command('127.0.0.1', server.port)}; typed {message!r} (spaces included) and Enter")
    typed(program, server, message, "127.0.0.1", did, closes=False)   # spaces: not the usual line
    expect_exit(program, 0, did, within=waits.REPLY + waits.EXIT)
    server.wait_done(waits.OWN)
    expected = message.encode()
    check(server.received == expected, did,
          f"the server receives exactly {expected!r}: the line without its newline, spaces kept",
          f"it received {server.received!r}")


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_prints_the_reply_and_exits_0(spawn, servers, rng):
    reply = reply_for(rng)
    program, server, message, did = run_conversation(spawn, servers, rng, "127.0.0.1", "127.0.0.1",
                                                     reply=(reply + "\n").encode())
    typed(program, server, message, "127.0.0.1", did)
    did = f"{did}; typed {message!r}; the server replied {reply + chr(10)!r}"
    program.expect_line(f"[client] received '{reply}'", literal=True, did=did)
    expect_exit(program, 0, did)


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_prints_a_reply_of_up_to_4096_bytes(spawn, servers, rng):
    reply = textgen.line_of_bytes(rng, 4095)
    program, server, message, did = run_conversation(spawn, servers, rng, "127.0.0.1", "127.0.0.1",
                                                     reply=(reply + "\n").encode())
    typed(program, server, message, "127.0.0.1", did)
    did = f"{did}; typed {message!r}; the server replied with 4095 characters and a newline"
    printed = program.expect_line(re.compile(r"\[client\] received '(.*)'\s*$"), did=did).group(1)
    check(printed == reply, did, "the whole reply, all 4095 characters, in the received line",
          f"the line held {len(printed)} characters" +
          ("" if reply.startswith(printed) else ", not the ones the server sent"),
          hint="one recv() of up to 4096 bytes")
    expect_exit(program, 0, did)


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_connects_over_ipv6(spawn, servers, rng):
    message = textgen.message(rng)
    reply = "echo: " + message     # no newline, as an echo server sends it
    server = servers.start("::1", expect=len(message.encode()), reply=reply.encode())
    server.needs_message(command_shape("::1"), USUAL)
    program = spawn("tcp_client.py", "::1", server.port, name="client")
    did = f"a server listens on ::1 (IPv6) port {server.port}; ran: {command('::1', server.port)}"
    first_line(program, "::1", "::1", did)
    program.expect_line("[client] connected to ::1", literal=True, did=did)
    typed(program, server, message, "::1", did)
    program.expect_line(f"[client] received '{reply}'", literal=True,
                        did=f"{did}; typed {message!r}; the server replied {reply!r}")
    expect_exit(program, 0, did)
    received_the_message(server, message, did)


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_connects_to_a_host_name(spawn, servers, rng):
    ip = localhost_ip()
    program, server, message, did = run_conversation(spawn, servers, rng, "localhost", ip)
    first_line(program, "localhost", ip, did)
    program.expect_line(f"[client] connected to {ip}", literal=True, did=did)
    typed(program, server, message, "localhost", did)
    expect_exit(program, 0, f"{did}; typed {message!r}", within=waits.REPLY + waits.EXIT)
    received_the_message(server, message, did)


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_falls_back_to_the_next_candidate(spawn, servers, rng, workdir):
    install_fake_resolver(workdir, {MULTI: [("::1", None), ("127.0.0.1", None)]})
    program, server, message, did = run_conversation(spawn, servers, rng, MULTI, "127.0.0.1",
                                                     refuse_on=("::1",))
    did = (f"the test's resolver made the name {MULTI} resolve to ::1 (where nothing listens: "
           f"refused), then 127.0.0.1 (a server on port {server.port}); ran: {command(MULTI, server.port)}")
    first_line(program, MULTI, "::1", did)
    program.expect_line("[client] attempting connection to 127.0.0.1 ...", literal=True, did=did)
    program.expect_line("[client] connected to 127.0.0.1", literal=True, did=did)
    typed(program, server, message, MULTI, did)
    expect_exit(program, 0, f"{did}; typed {message!r}", within=waits.REPLY + waits.EXIT)
    received_the_message(server, message, did)


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_says_when_the_server_closes_without_replying(spawn, servers, rng):
    program, server, message, did = run_conversation(spawn, servers, rng, "127.0.0.1", "127.0.0.1",
                                                     reply=None)
    typed(program, server, message, "127.0.0.1", did)
    did = f"{did}; typed {message!r}; the server read it and closed the connection without a reply"
    program.expect_line(CLOSED, literal=True, did=did)
    expect_exit(program, 1, did)
    no_traceback(program, did)


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_reports_failure_when_nothing_listens(spawn, servers, rng):
    require_working(spawn, servers, rng)
    port = servers.refusing_port("127.0.0.1")
    program = spawn("tcp_client.py", "127.0.0.1", port, name="client")
    did = f"ran: {command('127.0.0.1', port)}, a port where nothing listens"
    expect_exit(program, 1, did, within=waits.REFUSAL)
    err = program.stderr()
    check(FAILED in err, did, f"the line {FAILED!r} on stderr", "stderr was:\n" + (err or "(empty)"))
    no_traceback(program, did)
    check(not program.has_line(r"\[client\] connected"), did, "no 'connected' line",
          "the client said it connected")


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_reports_failure_for_an_unknown_host(spawn, servers, rng, free_port, workdir):
    require_working(spawn, servers, rng)
    install_fake_resolver(workdir, {NOWHERE: None})
    port = free_port()
    program = spawn("tcp_client.py", NOWHERE, port, name="client")
    did = f"ran: {command(NOWHERE, port)}, a host name that does not resolve (socket.gaierror)"
    expect_exit(program, 1, did, within=waits.REFUSAL)
    err = program.stderr()
    check(FAILED in err, did, f"the line {FAILED!r} on stderr", "stderr was:\n" + (err or "(empty)"))
    no_traceback(program, did)


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_rejects_bad_arguments_with_usage(spawn, servers, rng):
    require_working(spawn, servers, rng)
    bad_args = [[], ["127.0.0.1"], ["127.0.0.1", "{port}", "extra"], ["127.0.0.1", "http"],
                ["127.0.0.1", "0"], ["127.0.0.1", "65536"], ["127.0.0.1", "-5"], ["127.0.0.1", "80.5"]]
    runs = []
    for bad in bad_args:    # started together: each mostly waits for its interpreter
        args = [a.replace("{port}", str(servers.refusing_port("127.0.0.1"))) for a in bad]
        runs.append((spawn("tcp_client.py", *args, name="client"), args))
    for program, args in runs:
        did = f"ran: python -u tcp_client.py {' '.join(args)}".rstrip()
        expect_exit(program, 1, did, within=waits.REFUSAL)
        err = program.stderr()
        check("usage" in err.lower(), did, "a message containing 'usage' on stderr",
              "stderr was:\n" + (err or "(empty)"))
        no_traceback(program, did)
        program.stop()
