"""06's echo, as both its suites check it, with its gate.

A 06 server echoes each datagram to its sender. The first datagram a
freshly started server gets in some tests is always the same, PROBE: that
exchange is a gate (grader.harness.gates.first_answer) for the server's
command line. Once PROBE went unanswered, every test whose own datagrams
need echoing fails at once (needs_echo), the client tests run against the
student's own server included."""

from __future__ import annotations

from types import SimpleNamespace

from grader.harness import gates, waits
from grader.harness.failure import check, fail

PROBE = b"are you there?"   # the first datagram a freshly started server gets, in some tests
ECHOED = "gets its datagram echoed"


def expect_echo(client, port: int, data: bytes, did: str, host: str = "127.0.0.1"):
    """Send `data` to the server and require the same bytes back as one datagram."""
    client.send_to(data, (host, port))
    got = client.receive(timeout=waits.REPLY)
    if got is None:
        raise fail(did=did, expected=f"{client.name} gets its {len(data)} bytes back as one datagram",
                   got=f"nothing came back within {waits.REPLY:g} s")
    check(got.data == data, did, f"the same {len(data)} bytes back: {data[:80]!r}",
          f"{len(got.data)} bytes: {got.data[:80]!r}")
    return got


def probe_echo(client, port: int, did: str) -> None:
    """The first datagram a server started by the test gets: PROBE, which
    must come back. The same exchange every time, so it is a gate
    (grader.harness.gates) for that server's command line."""
    first = SimpleNamespace(port=port, ordinal=1)   # the server's first peer
    with gates.first_answer(first, "echo", ECHOED):
        expect_echo(client, port, PROBE, did)


def needs_echo(port: int) -> None:
    """For a test whose own datagrams need echoing: fail at once if the
    server's command line never echoed PROBE (see probe_echo) earlier."""
    gates.needs_answer(SimpleNamespace(port=port), "echo", ECHOED)
