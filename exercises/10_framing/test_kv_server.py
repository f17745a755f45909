"""Visible tests for 10_framing, the program kv_server.py.
Run: pytest exercises/10_framing

Frames are binary: the tests talk to your server with grader.testkit.frame_client, a
tiny client that sends a 4-byte big-endian length before each JSON request
and reads replies the same way."""

import pytest

from grader.testkit.frame_client import FrameClient, needs_first_set

READY = lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$"


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_prints_that_it_is_listening(start_server, connect):
    program, port = start_server("kv_server.py", lambda port: [port], READY)
    connect(port, name="client")  # it really listens: the connection is accepted


@pytest.mark.points(2)
@pytest.mark.task(5)
def test_set_then_get(start_server, connect, rng):
    program, port = start_server("kv_server.py", lambda port: [port], READY)
    client = FrameClient(connect(port, name="client"))
    needs_first_set(client)  # graded with the hidden tests: fails at once if no set was answered
    key, value = f"color{rng.randint(1, 999)}", ["blue", rng.randint(1, 999), None]
    client.request({"op": "set", "key": key, "value": value}, {"ok": True},
                   did=f"sent a set of {key!r}")
    client.request({"op": "get", "key": key}, {"ok": True, "value": value},
                   did=f"stored {key!r}, then sent a get")
    client.request({"op": "get", "key": key + "x"}, {"ok": False, "error": "not found"},
                   did="sent a get of a key nobody stored")
