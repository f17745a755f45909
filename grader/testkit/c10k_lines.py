"""09's line protocol as both its suites speak it, with its gates.

A 09 server answers `count` and `ping TOKEN`, and refuses other lines.
Each is a gate of its own (grader.harness.gates.first_answer) on a fixed
first exchange: the server's first client sends `count` alone (the `engage`
gate of grader.testkit.suites.server_rules), `ping hello`, or `hello`. A
server that answers none fails the first test of each kind after one
reply's wait, and every later exchange of that kind at once; `beside`
lets a test run the other kinds' first exchanges beside its own, so that
the first test decides all three. They are kept apart on purpose: a
server half-way through task 3 may answer one and not yet the others."""

from __future__ import annotations

import re

from grader.harness import gates

COUNT = re.compile(r"clients (\d+)")
UNKNOWN = "error unknown command"

# The fixed ping: the same line in every test that checks the gate, visible
# or hidden, so that they share one verdict.
FIRST_PING = "hello"
PINGED = "answers 'ping hello' with 'pong hello'"


def ask_count(client, did: str = "connected a client and sent 'count'") -> re.Match:
    """`client` sends `count`; its answer must be `clients N`."""
    client.send_line("count")
    return client.expect_line(COUNT, did=did)


def count_gate(client):
    """Guard `client`'s first `count`: the gate, when it is its server's
    first client. 09's server rules engage their first client with the very
    same exchange (gates.ENGAGE): one gate. A crowd member's count is the
    same exchange too."""
    return gates.first_answer(client, gates.ENGAGE, gates.ENGAGED)


def first_count(client) -> re.Match:
    """`client` asks `count` under count_gate."""
    with count_gate(client):
        return ask_count(client)


def first_ping(client) -> None:
    """`client` sends the fixed ping and reads its pong: the gate, when it
    is its server's first client (grader.harness.gates.first_answer)."""
    with gates.first_answer(client, "ping", PINGED):
        client.send_line(f"ping {FIRST_PING}")
        client.expect_line(f"pong {FIRST_PING}", did=f"connected and sent 'ping {FIRST_PING}'")


# The fixed unknown command: a gate of its own kind, like the other two.
FIRST_UNKNOWN = "hello"
REFUSED = f"answers the unknown command '{FIRST_UNKNOWN}' with '{UNKNOWN}'"


def first_unknown(client) -> None:
    """`client` sends the fixed unknown command and reads the refusal: the
    gate, when it is its server's first client."""
    with gates.first_answer(client, "unknown", REFUSED):
        client.send_line(FIRST_UNKNOWN)
        client.expect_line(UNKNOWN, did=f"sent {FIRST_UNKNOWN!r}")


# Each kind of first exchange: its gate's kind, how it reads, the exchange.
FIRST_EXCHANGES = {
    "count": (gates.ENGAGE, gates.ENGAGED, first_count),
    "ping": ("ping", PINGED, first_ping),
    "unknown": ("unknown", REFUSED, first_unknown),
}


def beside(kind: str, start, connect, command: str) -> tuple:
    """The fixed first exchange of `kind` (a key of FIRST_EXCHANGES) with
    the first client of a server of its own, to run beside a test's own
    first exchange (grader.harness.gates.side_by_side): a server that
    answers nothing then costs a student's `pytest` one reply's wait, not
    one per kind. `start()` starts that server and returns (program,
    port), given the name to show; `command` is its command line's shape
    (gates.command_shape)."""
    gate_kind, what, exchange = FIRST_EXCHANGES[kind]

    def check() -> None:
        _program, port = start(f"server (beside: {kind})")
        exchange(connect(port, name=f"client (beside: {kind})"))

    return (gates.answer(gate_kind, command, what), f"the first {kind!r} exchange", check)


def needs_ping(client) -> None:
    """A step that waits for the pong of a ping of its own: fail at once if
    the server `client` talks to never answered the fixed ping."""
    gates.needs_answer(client, "ping", PINGED)
