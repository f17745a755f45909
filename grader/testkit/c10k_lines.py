"""09's line protocol as both its suites speak it, with its two gates.

A 09 server answers `count` and `ping TOKEN`. Each is a gate of its own
(grader.harness.gates.first_answer) on a fixed first exchange: the server's
first client sends `count` alone (the `engage` gate of
grader.testkit.suites.server_rules), or `ping hello`. A server that answers
neither fails the first test of each kind after one reply's wait, and every
later exchange of that kind at once. The two are kept apart on purpose: a
server half-way through task 3 may answer one and not yet the other."""

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


def needs_ping(client) -> None:
    """A step that waits for the pong of a ping of its own: fail at once if
    the server `client` talks to never answered the fixed ping."""
    gates.needs_answer(client, "ping", PINGED)
