"""Hidden suite for 10_framing, the program kv_server.py: every clause of
its contract, over raw sockets (grader.testkit.frame_client: 4-byte big-endian length,
then the payload). Replies are compared as parsed JSON, so key order and
spacing are the student's choice.

Gates (grader.harness.gates), one per kind of request: the tests that
begin with a set begin with the same set of a fixed key (`first_set`),
and every other test with a set needs it (`needs_first_set`); the tests
with a get of a key nobody stored need SPEC's engage, a get of PROBE_KEY
(`needs_not_found`). A server that never answered the fixed request of a
kind fails the later tests with that kind at once."""

from __future__ import annotations

import select
import time

import psutil
import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.frame_client import (MAX_FRAME, FrameClient, first_set, frame, json_bytes,
                                         needs_first_set, show)
from grader.testkit.suites import server_rules
from grader.testkit.suites.server_rules import ServerRulesTests, ServerSpec

PROBE_KEY = "are you there?"     # a key nobody stores


def engage(client) -> None:
    """A served client: a get of a key nobody stored is answered 'not
    found' (the same exchange every time: a gate for a server's first client)."""
    FrameClient(client).request({"op": "get", "key": PROBE_KEY}, {"ok": False, "error": "not found"},
                                did=f"connected a client and asked for the key {PROBE_KEY!r}, "
                                    "which nobody stored")


SPEC = ServerSpec(
    script="kv_server.py",
    args=lambda port: [port],
    ready=lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port}\s*$",
    bad_args=[[], ["{port}", "extra"], ["http"], ["0"], ["65536"]],
    engage=engage,
)

# README tasks of the shared tests' topics: the listener, its accept loop
# and the way out of it are all task 4.
TASKS = {"listen": 4, "loop": 4, "shutdown": 4}

OK = {"ok": True}
NOT_FOUND = {"ok": False, "error": "not found"}
BAD = {"ok": False, "error": "bad request"}

TWO_GIB = 2 << 30
FILLER = 32 << 20           # bytes sent after a 2 GiB header, if the server takes them
MEMORY_SLACK = 8 << 20      # RSS growth allowed for a server that did not buffer them




def needs_not_found(client: FrameClient) -> None:
    """For a test whose own exchanges include a get of a key nobody stored:
    fail at once if the server never answered SPEC's engage (a get of
    PROBE_KEY) in an earlier test."""
    server_rules.needs_engaged(SPEC, client.client)


@pytest.fixture
def client(connect):
    """A factory of frame clients: client(port, "alice")."""
    def open_client(port: int, name: str) -> FrameClient:
        return FrameClient(connect(port, name=name))
    return open_client


# -- random keys and values ------------------------------------------------------

def a_key(rng) -> str:
    key = f"{textgen.name(rng)}:{rng.randrange(16 ** 6):06x}"
    return key + rng.choice(["", "", " é", "→✓", " ß"])


def a_value(rng, depth: int = 0):
    """A random JSON value of any type: text, numbers, true/false, null,
    lists and objects."""
    kinds = ["text", "int", "float", "bool", "null"] + (["list", "object"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "text":
        return textgen.message(rng)
    if kind == "int":
        return rng.randint(-10 ** 9, 10 ** 9)
    if kind == "float":
        return round(rng.uniform(-1000, 1000), 3)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [a_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {a_key(rng): a_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def set_request(key, value) -> dict:
    return {"op": "set", "key": key, "value": value}


def get_request(key) -> dict:
    return {"op": "get", "key": key}


def found(value) -> dict:
    return {"ok": True, "value": value}


def still_serving(program, client_factory, port, rng, did: str, key=None, value=None) -> None:
    """The server is still running and a brand-new client is served (and,
    if given, still sees `key` = `value`)."""
    status = program.poll_exit()
    check(status is None, did, "the server keeps running for its other clients",
          f"it {status.describe() if status else ''} (its output is below)")
    newcomer = client_factory(port, "newcomer")
    if key is not None:
        newcomer.request(get_request(key), found(value),
                         did=did + "; then a new client asked for a key stored before")
    else:
        probe = a_key(rng)
        newcomer.request(get_request(probe), NOT_FOUND, did=did + "; then a new client asked "
                         "for a key nobody stored")


# -- the general rules -------------------------------------------------------------

class TestServerRules(ServerRulesTests):
    pass


# -- task 5: the requests ------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.task(5)
def test_set_then_get_returns_the_value(server, client, rng):
    program, port = server
    alice = client(port, "alice")
    first_set(alice)
    stored = {}
    values = [a_value(rng) for _ in range(6)] + [None, [], {}, "", 0, False, textgen.message(rng)]
    rng.shuffle(values)
    for value in values:
        key = a_key(rng)
        alice.request(set_request(key, value), OK, did=f"sent a set of {show(key)} to {show(value)}")
        stored[key] = value
    for key in rng.sample(list(stored), len(stored)):
        alice.request(get_request(key), found(stored[key]),
                      did=f"stored {len(stored)} keys (values of every JSON type, null and empty "
                          f"ones included), then asked for {show(key)}")
    key = rng.choice(list(stored))
    newer = a_value(rng)
    alice.request(set_request(key, newer), OK, did=f"set {show(key)} again, to {show(newer)}")
    alice.request(get_request(key), found(newer),
                  did=f"set {show(key)} to {show(stored[key])}, then to {show(newer)}, then asked "
                      "for it: the last value wins")


@pytest.mark.points(2)
@pytest.mark.task(5)
def test_get_of_a_missing_key_is_not_found(server, client, rng):
    program, port = server
    alice = client(port, "alice")
    server_rules.engage(SPEC, alice.client)     # the fixed get of PROBE_KEY first: a gate
    needs_first_set(alice)
    missing = a_key(rng)
    alice.request(get_request(missing), NOT_FOUND, did=f"asked a fresh server for {show(missing)}")
    key = "Key" + a_key(rng)
    alice.request(set_request(key, a_value(rng)), OK, did=f"stored {show(key)}")
    alice.request(get_request(key.lower()), NOT_FOUND,
                  did=f"stored {show(key)}, then asked for {show(key.lower())} (keys are "
                      "compared exactly)")


def malformed_requests(rng) -> list[tuple[str, bytes]]:
    """(what it is, the payload): every way a request can be wrong."""
    key = a_key(rng)
    text = textgen.message(rng)
    return [
        ("text that is not JSON", f"get {key}".encode()),
        ("JSON cut short", json_bytes(get_request(key))[:-1]),
        ("an empty frame", b""),
        ("bytes that are not UTF-8", b'{"op": "get", "key": "caf\xe9 \xff"}'),
        ("a JSON array", json_bytes(["get", key])),
        ("a JSON string", json_bytes(text)),
        ("a JSON number", json_bytes(rng.randint(1, 999))),
        ("JSON null", b"null"),
        ("an unknown op", json_bytes({"op": "delete", "key": key})),
        ("an op that is not text", json_bytes({"op": 7, "key": key})),
        ("no op", json_bytes({"key": key, "value": text})),
        ("a get without a key", json_bytes({"op": "get"})),
        ("a set without a key", json_bytes({"op": "set", "value": text})),
        ("a set without a value", json_bytes({"op": "set", "key": key})),
        ("a key that is a list", json_bytes({"op": "get", "key": [key]})),
        ("a key that is an object", json_bytes({"op": "set", "key": {"k": key}, "value": 1})),
    ]


@pytest.mark.points(4)
@pytest.mark.task(5)
def test_malformed_requests_get_bad_request_and_the_connection_stays_open(server, client, rng):
    program, port = server
    alice = client(port, "alice")
    needs_first_set(alice)      # its last exchanges are a set and a get
    cases = malformed_requests(rng)
    rng.shuffle(cases)
    done = []
    for what, payload in cases:
        alice.send_frame(payload)
        alice.expect_reply(BAD, did=f"sent a frame holding {what}: {payload[:80]!r}" +
                           (f" (after {len(done)} other malformed frames on the same connection)"
                            if done else ""))
        done.append(what)
    key, value = a_key(rng), a_value(rng)
    did = f"sent {len(done)} malformed frames, each answered; then, on the same connection, a set"
    alice.request(set_request(key, value), OK, did=did)
    alice.request(get_request(key), found(value), did=did + " and a get")


@pytest.mark.points(2)
@pytest.mark.task(5)
def test_deeply_nested_json_is_a_bad_request(server, client, rng):
    program, port = server
    alice = client(port, "alice")
    needs_first_set(alice)      # its last exchange is a set
    depth = rng.randint(50_000, 150_000)
    payload = rng.choice([b"[", b'{"a": ']) * depth
    did = (f"sent a frame of {len(payload)} bytes, {payload[:24]!r}...: JSON nested {depth} "
           "levels deep, deeper than the parser goes, and never closed (json.loads raises "
           "RecursionError here, not ValueError)")
    alice.send_frame(payload)
    alice.expect_reply(BAD, did=did)
    key, value = a_key(rng), a_value(rng)
    alice.request(set_request(key, value), OK, did=did + "; then a set on the same connection")


# -- task 6: frames on the stream ------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.task(6)
def test_frames_delivered_one_byte_at_a_time(server, client, rng):
    program, port = server
    slow = client(port, "slow")
    needs_not_found(slow)
    first_set(slow)
    key, value = a_key(rng), textgen.message(rng)
    steps = [(set_request(key, value), OK), (get_request(key), found(value)),
             (get_request(a_key(rng)), NOT_FOUND), ({"op": "fetch", "key": key}, BAD)]
    for request, expected in steps:
        slow.send_one_byte_at_a_time(frame(json_bytes(request)))
        slow.expect_reply(expected, did=f"sent the frame of {show(request)} one byte per "
                                        "segment, as a slow proxy might deliver it")


@pytest.mark.points(4)
@pytest.mark.task(6)
def test_several_frames_in_one_segment(server, client, rng):
    program, port = server
    fast = client(port, "fast")
    needs_not_found(fast)
    first_set(fast)
    first, second = a_key(rng), a_key(rng)
    v1, v2 = a_value(rng), a_value(rng)
    steps = [(set_request(first, v1), OK), (set_request(second, v2), OK),
             (get_request(first), found(v1)), (get_request(a_key(rng)), NOT_FOUND),
             ({"op": "get"}, BAD), (get_request(second), found(v2)),
             (set_request(first, v2), OK), (get_request(first), found(v2))]
    data = b"".join(frame(json_bytes(request)) for request, _ in steps)
    fast.send_raw(data)
    for number, (request, expected) in enumerate(steps, 1):
        fast.expect_reply(expected, did=f"sent {len(steps)} request frames in one segment "
                                        f"({len(data)} bytes); reply {number} is to "
                                        f"{show(request)}")


@pytest.mark.points(2)
@pytest.mark.task(6)
def test_accepts_a_frame_of_exactly_max_frame(server, client, rng):
    program, port = server
    big = client(port, "big")
    first_set(big)
    key = a_key(rng)
    value = textgen.line_of_bytes(rng, 200) * ((MAX_FRAME - 4000) // 200)
    text = json_bytes(set_request(key, value))
    payload = text + b" " * (MAX_FRAME - len(text))   # JSON may end in spaces
    assert len(payload) == MAX_FRAME
    did = (f"sent one set request frame of exactly MAX_FRAME ({MAX_FRAME}) bytes: a value of "
           f"{len(value)} characters, the JSON padded with spaces")
    big.send_frame(payload)
    # The reply is a few bytes: once the request is sent, a server that
    # works answers within a reply's wait; only the get's answer is big.
    big.expect_reply(OK, did=did)
    big.request(get_request(key), found(value), did=did + "; then asked for that key",
                timeout=waits.BULK)


def send_filler(attacker: FrameClient, limit: int, stall: float = 2 * waits.STALL) -> tuple[int, str]:
    """Send up to `limit` bytes of payload as fast as the server takes them.
    Returns (bytes sent, why it stopped). A server that stores the payload
    must not escape by pausing once: it must have stopped reading for
    twice the usual stall."""
    sock = attacker.client.sock
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    block = b"x" * (1 << 16)
    sent = 0
    while sent < limit:
        try:
            sent += sock.send(block[: limit - sent])
        except BlockingIOError:
            if not poller.poll(stall * 1000):
                return sent, "the server stopped reading"
        except OSError as exc:
            return sent, f"the server closed the connection ({exc.strerror or exc})"
    return sent, "the server read all of it"


@pytest.mark.points(4)
@pytest.mark.task(6)
def test_an_announced_2_gib_frame_closes_only_that_connection(server, client, rng):
    program, port = server
    bystander = client(port, "bystander")
    first_set(bystander)
    key, value = a_key(rng), a_value(rng)
    bystander.request(set_request(key, value), OK, did="a first client stored a key")
    attacker = client(port, "attacker")
    tail = rng.randbytes(rng.randint(0, 64))
    attacker.send_raw(TWO_GIB.to_bytes(4, "big") + tail)
    did = (f"while a first client stayed connected, a second one sent a header announcing "
           f"2 GiB ({TWO_GIB} bytes, far more than MAX_FRAME) and {len(tail)} bytes after it")
    attacker.expect_closed(did=did)
    bystander.request(get_request(key), found(value),
                      did=did + "; the server closed that connection; then the first client "
                                "asked for its key")
    still_serving(program, client, port, rng, did, key, value)


@pytest.mark.points(3)
@pytest.mark.task(6)
def test_an_announced_2_gib_frame_does_not_grow_the_servers_memory(server, client, rng):
    program, port = server
    process = psutil.Process(program.pid)
    warm = client(port, "warmup")      # the first thread, buffers... before measuring
    first_set(warm)
    warm.request(set_request(a_key(rng), a_value(rng)), OK, did="a first client stored a key")
    warm.close()
    before = process.memory_info().rss
    attacker = client(port, "attacker")
    attacker.send_raw(TWO_GIB.to_bytes(4, "big"))
    sent, why = send_filler(attacker, FILLER)
    attacker.transcript.note("attacker", f"then sent {sent} bytes of payload: {why}")
    deadline = time.monotonic() + waits.EOF
    while not attacker.client.eof and time.monotonic() < deadline:
        attacker.client.read_bytes(1, timeout=0.2)      # until the server closes, or waits.EOF
    after = process.memory_info().rss
    growth = after - before
    attacker.transcript.note("server", f"resident memory {before / (1 << 20):.1f} MiB before, "
                                       f"{after / (1 << 20):.1f} MiB after")
    did = (f"a client sent a header announcing 2 GiB, then as much of the payload as the "
           f"server would take, up to {FILLER >> 20} MiB ({sent} bytes sent: {why}); the "
           f"server's resident memory was measured before and after")
    check(growth < MEMORY_SLACK, did,
          f"the server's memory grows by less than {MEMORY_SLACK >> 20} MiB: it rejects the "
          "frame on its header, without storing the payload",
          f"it grew by {growth / (1 << 20):.1f} MiB (from {before / (1 << 20):.1f} to "
          f"{after / (1 << 20):.1f} MiB)",
          hint="check the announced length as soon as the 4 header bytes are in, before "
               "collecting any of the payload")


# -- task 4: many clients, one store ------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.task(4)
def test_two_clients_share_the_store(server, client, rng):
    program, port = server
    alice, bob = client(port, "alice"), client(port, "bob")
    first_set(alice)
    key, value, other = a_key(rng), a_value(rng), a_value(rng)
    alice.request(set_request(key, value), OK, did=f"alice stored {show(key)}")
    bob.request(get_request(key), found(value),
                did=f"alice stored {show(key)} = {show(value)}; bob, on another connection, "
                    "asked for it")
    bob.request(set_request(key, other), OK, did=f"bob set {show(key)} to {show(other)}")
    alice.request(get_request(key), found(other),
                  did=f"bob changed {show(key)} to {show(other)}; alice asked for it")
    alice.close()
    carol = client(port, "carol")
    carol.request(get_request(key), found(other),
                  did="alice left; carol connected afterwards and asked for the same key "
                      "(the store outlives connections)")


@pytest.mark.points(4)
@pytest.mark.task(4)
def test_an_idle_client_does_not_block_the_others(server, client, rng):
    program, port = server
    idle = client(port, "idle")                 # connected, says nothing
    needs_first_set(idle)                       # a fourth client's set is answered
    half_header = client(port, "half_header")   # 2 bytes of a header
    half_frame = client(port, "half_frame")     # a header and part of its payload
    key, value = a_key(rng), a_value(rng)
    waiting_get = frame(json_bytes(get_request(key)))
    half_header.send_raw(waiting_get[:2])
    late_key, late_value = a_key(rng), a_value(rng)
    waiting_set = frame(json_bytes(set_request(late_key, late_value)))
    cut = rng.randint(5, len(waiting_set) - 1)
    half_frame.send_raw(waiting_set[:cut])
    did = ("three clients were connected: one silent, one that had sent 2 bytes of a header, "
           "one that had sent a header and part of its frame; then a fourth client")
    active = client(port, "active")
    active.request(set_request(key, value), OK, did=did + " sent a set")
    active.request(get_request(key), found(value), did=did + " sent a get")

    # Now several clients at once: all send, then all read.
    crowd = [client(port, f"client{i}") for i in range(rng.randint(5, 8))]
    entries = [(a_key(rng), a_value(rng)) for _ in crowd]
    for member, (k, v) in zip(crowd, entries):
        member.send(set_request(k, v))
    for member, (k, v) in zip(crowd, entries):
        member.expect_reply(OK, did=f"{len(crowd)} clients each sent a set before any of them "
                                    f"read its reply; {member.name} reads")
    for i, member in enumerate(crowd):
        k, v = entries[(i + 1) % len(entries)]
        member.request(get_request(k), found(v),
                       did=f"{member.name} asked for the key another client stored")

    half_header.send_raw(waiting_get[2:])
    half_header.expect_reply(found(value), did="the client that had sent 2 bytes of a header "
                                               "sent the rest of its get")
    half_frame.send_raw(waiting_set[cut:])
    half_frame.expect_reply(OK, did="the client that had sent part of a set sent the rest")
    idle.request(get_request(late_key), found(late_value),
                 did="the silent client finally asked for the key of that set")


@pytest.mark.points(2)
@pytest.mark.task(6)
def test_a_client_leaving_mid_frame_does_not_stop_the_server(server, client, rng):
    program, port = server
    key, value = a_key(rng), a_value(rng)
    keeper = client(port, "keeper")
    first_set(keeper)
    keeper.request(set_request(key, value), OK, did="a client stored a key")
    request = frame(json_bytes(set_request(a_key(rng), a_value(rng))))
    resetter = client(port, "resetter")
    resetter.send_raw(request[:rng.randint(5, len(request) - 1)])
    resetter.reset()
    closer = client(port, "closer")
    closer.send_raw(request[:rng.randint(1, 3)])
    closer.close()
    hasty = client(port, "hasty")
    hasty.send_raw(request * rng.randint(20, 40))
    hasty.reset()
    did = ("one client sent part of a frame and reset its connection; one sent part of a "
           "header and closed; one sent a burst of requests and reset without reading the "
           "replies")
    keeper.request(get_request(key), found(value), did=did + "; then the first client asked "
                                                             "for its key")
    still_serving(program, client, port, rng, did, key, value)
