"""Visible tests for 09_c10k. Run: pytest exercises/09_c10k

The grader's hidden tests go further: a hard limit of their choosing,
bursts of connections, clients that misbehave or leave, and ten thousand
idle clients with a latency bound and an idle-CPU bound."""

import resource
import time

import pytest

from grader.harness import gates, launch, waits
from grader.harness.failure import check
from grader.harness.program import Limits
from grader.testkit.c10k_lines import (COUNT, UNKNOWN, beside, count_gate, first_count, first_ping,
                                       first_unknown)
from grader.testkit.crowd import Crowd, connect_many, reset_all, wait_among

SCRIPT = "c10k_server.py"
READY = r"ready for (\d+) connections\s*$"
CROWD = 1_500     # more than a soft limit of 1024 allows


@pytest.fixture
def server(start_server):
    return start_server(SCRIPT, lambda port: [port], lambda port: READY)


@pytest.fixture
def others(start_server, connect):
    """The first exchanges of the other kinds, on servers of their own, to
    run beside a test's own (gates.side_by_side) while they have no verdict:
    a server that answers nothing costs one reply's wait, not three."""
    def start(name):
        return start_server(SCRIPT, lambda port: [port], lambda port: READY, name=name)

    def of(*kinds):
        command = gates.command_shape(SCRIPT, lambda port: [port])
        return [beside(kind, start, connect, command) for kind in kinds]
    return of


def start_with_soft_limit(spawn, free_port, soft):
    """Start the server with its soft descriptor limit lowered to `soft`."""
    def spawn_low(script, *args, name="server"):
        return spawn(script, *args, name=name, limits=Limits(open_files=soft))

    return launch.start_with_lowered_limits(spawn_low, free_port, SCRIPT, lambda p: [p],
                                            lambda p: READY, usual=f"{SCRIPT} PORT")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_answers_ping_with_pong(server, connect, others):
    program, port = server
    client = connect(port, name="client")
    # 'ping hello': a gate (grader.testkit.c10k_lines), the other two kinds beside it
    gates.side_by_side(lambda: first_ping(client), *others("count", "unknown"))
    for token in ("42", "é→ß"):
        client.send_line(f"ping {token}")
        client.expect_line(f"pong {token}", did=f"sent 'ping {token}'")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_counts_the_clients(server, connect, others):
    program, port = server
    clients = [connect(port, name="client1")]
    # Alone, it is counted: a gate (grader.testkit.c10k_lines), the other two kinds beside it.
    gates.side_by_side(lambda: first_count(clients[0]), *others("ping", "unknown"))
    clients += [connect(port, name=f"client{i + 1}") for i in (1, 2)]
    deadline = time.monotonic() + waits.REPLY
    while True:  # the server may not have accepted the last one yet: ask again
        clients[0].send_line("count")
        got = clients[0].expect_line(COUNT, did="connected 3 clients, sent 'count'")
        if got.group(0) == "clients 3" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    check(got.group(0) == "clients 3", "connected 3 clients, sent 'count'", "'clients 3'",
          repr(got.group(0)))
    clients[2].send_line("count")
    clients[2].expect_line("clients 3", did="the third client sent 'count'")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_rejects_unknown_commands(server, connect, others):
    program, port = server
    client = connect(port, name="client")
    # 'hello': a gate (grader.testkit.c10k_lines), the other two kinds beside it.
    gates.side_by_side(lambda: first_unknown(client), *others("count", "ping"))
    client.send_line("count me in")
    client.expect_line(UNKNOWN, did="sent 'count me in'")


# After the usual start's tests: a start with a lowered limit needs the usual one to work
# (grader.harness.gates), and fails at once when it did not.
@pytest.mark.points(3)
@pytest.mark.task(1)
def test_says_it_is_ready_and_raises_its_limit(spawn, free_port):
    program, port = start_with_soft_limit(spawn, free_port, 256)
    soft, hard = program.descriptor_limits()
    check(soft == hard, "started the server with a soft descriptor limit of 256, then read its "
                        "limits in /proc", "its soft limit is raised to the hard limit",
          f"soft {soft}, hard {hard}")


@pytest.mark.alone("a crowd of connections loads the machine")
@pytest.mark.points(4)
@pytest.mark.task(2)
def test_fifteen_hundred_idle_clients_are_counted(spawn, free_port, transcript):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < CROWD + 200:
        pytest.skip(f"your hard descriptor limit is {hard} (ulimit -Hn): too low for {CROWD} "
                    "connections in this test")
    # This test process holds one end of every connection too: raise its own limit.
    raised = hard if hard != resource.RLIM_INFINITY else max(soft, CROWD + 200)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))

    program, port = start_with_soft_limit(spawn, free_port, 1024)  # a usual desktop limit
    crowd = Crowd(port, transcript, name="crowd")
    did = f"started the server with a soft limit of 1024, then connected {CROWD + 1} clients"
    control = crowd.connect("control")

    def ask():
        before = control.line_count()
        control.send_line("count")
        wait_among(crowd, [control], lambda: control.line_count() > before, waits.REPLY,
                   did=did, expected=f"an answer to 'count' within {waits.REPLY:g} s")
        match = COUNT.fullmatch(control.lines(before)[0])
        check(match is not None, did, "'clients N'", repr(control.lines(before)[0]))
        return int(match.group(1))

    def settle(members):
        # Between batches: wait until the server counts every connection so
        # far, or say what went wrong (connect_many then tries smaller batches).
        want, last, since = len(members) + 1, -1, time.monotonic()
        while (got := ask()) != want:
            if got != last:
                last, since = got, time.monotonic()
            elif time.monotonic() - since > waits.BATCH_COUNT:
                return f"its count stayed at {got}, not {want}: did it raise its descriptor limit?"
            time.sleep(0.005)  # pacing the questions
        return None

    try:
        with count_gate(control):   # the first client, alone: a gate (grader.testkit.c10k_lines)
            ask()
        members, shortfall = connect_many(crowd, CROWD, settle=settle, did=did)
        if shortfall:
            pytest.skip(f"this machine could open only {len(members)} connections: {shortfall}")
        check(ask() == CROWD + 1, did, f"'clients {CROWD + 1}'", "another count")
        member = members[len(members) // 2]
        member.send_line("ping middle")
        wait_among(crowd, [member], lambda: member.line_count() >= 1, waits.REPLY,
                   did=did + "; one pinged", expected=f"it gets its pong within {waits.REPLY:g} s")
        check(member.lines() == ["pong middle"], did + "; one sent 'ping middle'",
              "'pong middle'", repr(member.lines()))
    finally:
        reset_all(crowd)
