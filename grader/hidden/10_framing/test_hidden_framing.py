"""Hidden suite for 10_framing, the module framing.py: every clause of its
contract.

framing.py is a module, so its functions never run in this process: each
test runs one check in a child Python process (grader.harness.module_calls). The
property tests run hypothesis *inside* that child, against the student's
code, seeded from the socklab seed: it draws payloads (empty, small, and
past 64 KiB) and ways to cut the stream into recv() results (anywhere, one
byte at a time, several frames at once), and when a property fails it
shrinks the case to a small one, which the failure message shows. The
expected bytes always come from struct.pack(">I", len(payload)) + payload,
never from the student's own encode (except in the round-trip test).
hypothesis must therefore be importable by the Python that grades."""

from __future__ import annotations

import importlib.util

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.harness.module_calls import ModuleRunner
from grader.testkit.first_calls import FIRST_CALLS

MAX_FRAME = 1 << 20
CHILD_TIMEOUT = waits.PROPERTY_RUN    # a whole property run, shrinking included


@pytest.fixture
def runner(workdir, transcript) -> ModuleRunner:
    return ModuleRunner(workdir, transcript, timeout=CHILD_TIMEOUT, libraries=("hypothesis",),
                        first_calls=FIRST_CALLS)


# -- what every check in the child starts with -----------------------------------

PRELUDE = r'''
import random, socket, struct, threading, time
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st

HEADER = struct.Struct(">I")
MAX = 1 << 20

class Failed(Exception):
    """A property did not hold; the message says how, in a student's terms."""

_last = []

def failed(message):
    _last.append(message)
    return Failed(message)

def run(prop):
    """None if the property held for every example, else the message of the
    smallest failing example hypothesis found."""
    try:
        prop()
    except Failed as exc:
        return str(exc)
    except BaseException as exc:       # hypothesis' own errors (a flaky property...)
        if _last:
            return _last[-1]
        return "the property run ended with " + type(exc).__name__ + ": " + str(exc)[:500]
    return None

def property_settings(examples):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False, verbosity=Verbosity.quiet,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink])

def _big(size, s):
    return random.Random(s).randbytes(size)

# Mostly small payloads (they shrink to readable cases), sometimes empty,
# sometimes past 65535 bytes (where a 2-byte length would overflow).
payloads = st.one_of(st.binary(max_size=40), st.binary(max_size=40), st.just(b""),
                     st.builds(_big, st.integers(65_536, 200_000), st.integers(0, 2 ** 32)))

def wire(payload):
    return HEADER.pack(len(payload)) + payload

def show(data, limit=40):
    """bytes, shortened: the start, and the length."""
    data = bytes(data)
    if len(data) <= limit:
        return repr(data)
    return repr(data[:limit])[:-1] + "...' (" + str(len(data)) + " bytes)"

def show_sizes(frames):
    return "[" + ", ".join(str(len(f)) for f in frames) + "]"

def error_text(exc):
    return type(exc).__name__ + (": " + str(exc)[:300] if str(exc) else "")

def chunks_of(stream, draw):
    """Cut `stream` into the pieces recv() might return: at random places
    (empty pieces included), one byte at a time, or all at once."""
    how = draw(st.sampled_from(["random", "random", "one byte at a time", "all at once"]))
    if how == "random" and not stream:
        how = "all at once"
    if how == "one byte at a time" and len(stream) <= 400:
        return how, [stream[i:i + 1] for i in range(len(stream))]
    if how == "all at once":
        return how, [stream]
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces, start = [], 0
    for cut in cuts + [len(stream)]:
        pieces.append(stream[start:cut])
        start = cut
    return "in pieces of sizes [" + ", ".join(str(len(p)) for p in pieces) + "]", pieces

def frame_type_problem(frames):
    for f in frames:
        if not isinstance(f, (bytes, bytearray)):
            return "it returned a " + type(f).__name__ + " (" + repr(f)[:80] + ") in the list, not bytes"
    return None

def decode(decoder_factory, frames, chunks, how, stream):
    """Feed `chunks` to a new decoder; check that after each feed exactly
    the frames completed so far were returned, then their contents."""
    ends, total = [], 0
    for f in frames:
        total += 4 + len(f)
        ends.append(total)
    case = ("frames of sizes " + show_sizes(frames) + " (a stream of " + str(len(stream))
            + " bytes), fed " + how)
    decoder = decoder_factory()
    got, fed = [], 0
    for number, chunk in enumerate(chunks, 1):
        try:
            out = decoder.feed(chunk)
        except Exception as exc:
            raise failed(case + ": feed() number " + str(number) + " (" + show(chunk)
                         + ") raised " + error_text(exc))
        if not isinstance(out, list):
            raise failed(case + ": feed() returned " + repr(out)[:100] + ", not a list")
        problem = frame_type_problem(out)
        if problem:
            raise failed(case + ": feed() number " + str(number) + ": " + problem)
        got.extend(out)
        fed += len(chunk)
        complete = sum(1 for end in ends if end <= fed)
        if len(got) != complete:
            raise failed(case + ": after feed() number " + str(number) + " (" + str(fed)
                         + " bytes in all), " + str(complete) + " frame(s) were complete, but "
                         "the feed() calls had returned " + str(len(got)) + " frame(s) so far ("
                         + str(len(out)) + " from this call)")
    for i, (g, f) in enumerate(zip(got, frames)):
        if bytes(g) != f:
            raise failed(case + ": frame " + str(i + 1) + " came back as " + show(g)
                         + " instead of " + show(f))
'''


def run_check(runner: ModuleRunner, body: str, did: str, name: str, **params) -> dict | None:
    """Run PRELUDE + `body` in a child; `params` become variables there. The
    body imports framing and sets `result`."""
    if importlib.util.find_spec("hypothesis") is None:   # the child runs the same Python
        # Not a verdict on the student (a RuntimeError, not a GradingFailure).
        raise RuntimeError("grading 10_framing needs hypothesis in the grader's Python: "
                           "pip install 'hypothesis>=6.100' (a grader setup problem, not the "
                           "student's)")
    header = "".join(f"{key} = {value!r}\n" for key, value in params.items())
    outcome = runner.run(PRELUDE + header + body, did=did, name=name)
    return outcome.value_or_fail(did=did, expected="the check runs to its end",
                                 hint="the check imports framing.py and calls your code; "
                                      "the error above comes from there")


def hypothesis_seed(rng) -> int:
    return rng.randrange(2 ** 32)


# -- task 1: encode ----------------------------------------------------------------

ENCODE_PROPERTY = r'''
import framing

@seed(SEED)
@property_settings(200)
@given(payloads)
def prop(payload):
    try:
        got = framing.encode(payload)
    except Exception as exc:
        raise failed("encode(" + show(payload) + ") raised " + error_text(exc))
    expected = wire(payload)
    if not isinstance(got, (bytes, bytearray)):
        raise failed("encode(" + show(payload) + ") returned a " + type(got).__name__
                     + ", not bytes")
    if bytes(got) != expected:
        raise failed("encode(" + show(payload) + ") returned " + show(got, 60) + "; the frame is "
                     + show(expected, 60) + ": the length " + str(len(payload)) + " as 4 bytes, "
                     "unsigned, big-endian (" + repr(expected[:4]) + "), then the payload")

result = run(prop)
'''


@pytest.mark.points(4)
@pytest.mark.task(1)
def test_encode_builds_the_wire_format(runner, rng):
    did = ("called framing.encode() on 200 payloads drawn by hypothesis (empty, small, and "
           "over 64 KiB) and compared each result with the 4-byte big-endian length "
           "followed by the payload")
    problem = run_check(runner, ENCODE_PROPERTY, did, "framing.encode", SEED=hypothesis_seed(rng))
    check(problem is None, did, "encode(payload) == struct.pack('>I', len(payload)) + payload "
                                "for every payload",
          f"the smallest failing case hypothesis found: {problem}")


ENCODE_LIMIT = r'''
import framing
result = {"max": getattr(framing, "MAX_FRAME", "missing")}
calls = []
for size in [0, MAX, MAX + 1] + EXTRA_SIZES:
    try:
        frame = framing.encode(bytes(size))
    except Exception as exc:
        calls.append((size, "raised", type(exc).__name__, isinstance(exc, ValueError), str(exc)[:200]))
    else:
        ok = isinstance(frame, (bytes, bytearray)) and bytes(frame[:4]) == HEADER.pack(size) \
            and len(frame) == size + 4
        calls.append((size, "returned", type(frame).__name__, ok, show(frame)))
result["calls"] = calls
'''


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_encode_accepts_max_frame_and_refuses_more(runner, rng):
    extra = [MAX_FRAME + rng.randint(2, 1 << 20), rng.randint(3 << 20, 8 << 20)]
    did = (f"read framing.MAX_FRAME, then called framing.encode() on payloads of 0, "
           f"{MAX_FRAME} (exactly MAX_FRAME), {MAX_FRAME + 1} and {', '.join(map(str, extra))} "
           "bytes")
    info = run_check(runner, ENCODE_LIMIT, did, "framing.encode", EXTRA_SIZES=extra)
    check(info["max"] == MAX_FRAME, did, f"MAX_FRAME = 1 << 20 ({MAX_FRAME})",
          f"MAX_FRAME is {info['max']!r}")
    for size, status, kind, ok, detail in info["calls"]:
        if size <= MAX_FRAME:
            check(status == "returned" and ok, did,
                  f"encode() of {size} bytes returns the frame (4-byte length {size}, then the "
                  "payload): MAX_FRAME itself is allowed",
                  f"encode() of {size} bytes " + (f"raised {kind}: {detail}" if status == "raised"
                                                  else f"returned {detail}"))
        else:
            check(status == "raised" and ok, did,
                  f"encode() of {size} bytes (more than MAX_FRAME) raises ValueError",
                  f"it raised {kind}: {detail}" if status == "raised"
                  else "it returned a frame (" + detail + ")")


# -- task 2: the decoder ---------------------------------------------------------------

DECODER_PROPERTY = r'''
import framing

@seed(SEED)
@property_settings(150)
@given(st.lists(payloads, max_size=8), st.data())
def prop(frames, data):
    stream = b"".join(wire(f) for f in frames)
    how, chunks = chunks_of(stream, data.draw)
    decode(framing.Decoder, frames, chunks, how, stream)

result = run(prop)
'''


@pytest.mark.points(7)
@pytest.mark.task(2)
def test_decoder_returns_every_frame_whatever_the_fragmentation(runner, rng):
    did = ("fed a new framing.Decoder() streams of 0 to 8 frames (payloads drawn by hypothesis: "
           "empty, small, over 64 KiB), cut into feed() calls at random places, one byte at a "
           "time, or all at once; after every feed() the frames returned so far were compared "
           "with the frames complete so far")
    problem = run_check(runner, DECODER_PROPERTY, did, "framing.Decoder", SEED=hypothesis_seed(rng))
    check(problem is None, did,
          "every feed() returns, in order, exactly the frames its bytes complete: none "
          "early, none held back for later, several if it completes several",
          f"the smallest failing case hypothesis found: {problem}",
          hint="keep the bytes of an unfinished frame (or header) for the next feed(), and "
               "loop: one feed() may complete many frames, or none")


ROUND_TRIP_PROPERTY = r'''
import framing

@seed(SEED)
@property_settings(100)
@given(st.lists(payloads, max_size=6), st.data())
def prop(frames, data):
    try:
        stream = b"".join(bytes(framing.encode(f)) for f in frames)
    except Exception as exc:
        raise failed("encode() raised " + error_text(exc) + " for one of the payloads of sizes "
                     + show_sizes(frames))
    how, chunks = chunks_of(stream, data.draw)
    decode(framing.Decoder, frames, chunks, how, stream)

result = run(prop)
'''


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_encode_then_decode_gives_the_payloads_back(runner, rng):
    did = ("encoded lists of payloads with framing.encode(), cut the stream anywhere, and fed "
           "the pieces to a framing.Decoder() (hypothesis, 100 cases)")
    problem = run_check(runner, ROUND_TRIP_PROPERTY, did, "framing round trip",
                        SEED=hypothesis_seed(rng))
    check(problem is None, did, "the decoder gives back every payload, in order",
          f"the smallest failing case hypothesis found: {problem}")


OVERSIZE_PROPERTY = r'''
import framing

if not (isinstance(getattr(framing, "FrameError", None), type)
        and issubclass(framing.FrameError, Exception)):
    result = "framing.FrameError is missing, or is not an exception class"
else:
    @seed(SEED)
    @property_settings(100)
    @given(st.lists(st.binary(max_size=20), max_size=3), st.integers(MAX + 1, 2 ** 32 - 1),
           st.integers(0, 4), st.binary(max_size=16))
    def prop(before, announced, split, after):
        header = HEADER.pack(announced)
        case = ("after " + str(len(before)) + " good frame(s), a header announcing " + str(announced)
                + " bytes (" + repr(header) + ")")
        decoder = framing.Decoder()
        for f in before:        # one feed() each: this test is about the header
            try:
                decoder.feed(wire(f))
            except Exception as exc:
                raise failed(case + ": feeding the good frame " + show(wire(f)) + " raised "
                             + error_text(exc))
        parts = [header[:split], header[split:] + after]
        how = ("fed as " + show(parts[0]) + " then " + show(parts[1])) if split else \
              ("fed in one piece with " + str(len(after)) + " payload bytes after it")
        for number, part in enumerate(parts, 1):
            try:
                decoder.feed(part)
            except framing.FrameError:
                return          # raised at once: right
            except Exception as exc:
                raise failed(case + ", " + how + ": feed() raised " + error_text(exc)
                             + " instead of framing.FrameError")
        raise failed(case + ", " + how + ": no FrameError, although the whole header had "
                     "arrived: the decoder is waiting for the payload")

    result = run(prop)
'''


@pytest.mark.points(6)
@pytest.mark.task(2)
def test_decoder_rejects_an_oversized_header_at_once(runner, rng):
    did = ("fed a framing.Decoder() a few good frames, then a header announcing more than "
           "MAX_FRAME bytes (from MAX_FRAME + 1 to 4 GiB - 1, drawn by hypothesis), whole or split "
           "in two, followed by at most 16 bytes of the payload it announces")
    problem = run_check(runner, OVERSIZE_PROPERTY, did, "framing.Decoder", SEED=hypothesis_seed(rng))
    check(problem is None, did,
          "feed() raises framing.FrameError as soon as the 4 header bytes are in, without "
          "waiting for (or keeping) the payload",
          f"the smallest failing case hypothesis found: {problem}",
          hint="check the length right after reading the header, before you wait for the "
               "payload: a peer must not make you collect gigabytes just by announcing them")


DECODER_LIMIT = r'''
import framing
payload = random.Random(SEED).randbytes(MAX)
stream = wire(payload)
decoder = framing.Decoder()
result = {}
try:
    first = decoder.feed(stream[:SPLIT])
    second = decoder.feed(stream[SPLIT:])
except Exception as exc:
    result["raised"] = error_text(exc)
else:
    result["first"] = len(first) if isinstance(first, list) else repr(first)[:100]
    result["second"] = len(second) if isinstance(second, list) else repr(second)[:100]
    result["same"] = isinstance(second, list) and len(second) == 1 \
        and isinstance(second[0], (bytes, bytearray)) and bytes(second[0]) == payload
'''


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_decoder_accepts_a_frame_of_exactly_max_frame(runner, rng):
    split = rng.randint(4, MAX_FRAME)
    did = (f"fed a framing.Decoder() one frame whose payload is exactly MAX_FRAME ({MAX_FRAME}) "
           f"bytes, in two pieces ({split} bytes, then the rest)")
    info = run_check(runner, DECODER_LIMIT, did, "framing.Decoder", SEED=rng.randrange(2 ** 32),
                     SPLIT=split)
    check("raised" not in info, did, "no error: MAX_FRAME bytes are allowed, only more are not",
          f"feed() raised {info.get('raised')}")
    check(info["first"] == 0 and info["second"] == 1 and info["same"], did,
          "the first feed() returns [], the second returns the payload",
          f"the first returned {info['first']} frame(s), the second {info['second']}"
          + ("" if info["same"] else ", and not the payload that was sent"))


# -- task 3: recv_exact ------------------------------------------------------------------

# recv_exact runs in a thread with a deadline: a loop that never ends (on
# end of file recv() returns b"" again and again) is reported, not waited for.
# The deadline is a reply's wait (waits.REPLY): the writer's pieces are all
# sent within a fraction of a second, and recv_exact returns once the last
# one it needs has arrived.
RECV_HELPERS = r'''
import framing

def call_with_deadline(sock, n, seconds=RECV_DEADLINE):
    box = {}
    def target():
        try:
            box["value"] = framing.recv_exact(sock, n)
        except BaseException as exc:
            box["error"] = exc
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        return ("hung", "recv_exact(sock, " + str(n) + ") had not returned after "
                + str(seconds) + " s")
    if "error" in box:
        exc = box["error"]
        return ("raised", error_text(exc), isinstance(exc, ConnectionError))
    return ("returned", box["value"])

def writer(sock, data, pieces, pause, close=False):
    """Send `data` in pieces of the given sizes, pausing between them, so
    that each piece is a recv() result of its own."""
    def run_writer():
        offset = 0
        for size in pieces:
            sock.sendall(data[offset:offset + size])
            offset += size
            time.sleep(pause)
        if close:
            sock.close()
    thread = threading.Thread(target=run_writer, daemon=True)
    thread.start()
    return thread

def outcome_text(outcome, stream, offset, n):
    """None if recv_exact returned stream[offset:offset + n], else what went wrong."""
    expected = stream[offset:offset + n]
    if outcome[0] == "returned":
        value = outcome[1]
        if not isinstance(value, (bytes, bytearray)):
            return "it returned a " + type(value).__name__ + ": " + repr(value)[:100]
        if bytes(value) == expected:
            return None
        if len(value) != len(expected):
            return "it returned " + str(len(value)) + " bytes instead of " + str(len(expected))
        found = stream.find(bytes(value[:64]), offset + 1)
        if found > offset:
            return ("it returned " + str(n) + " bytes, but they start " + str(found - offset)
                    + " bytes further on in the stream: bytes in between were lost (did an "
                    "earlier call read more than it returned?)")
        return "it returned " + str(n) + " bytes, but not the ones that were sent"
    return "it raised " + outcome[1] if outcome[0] == "raised" else outcome[1]
'''

RECV_FRAGMENTED = r'''
mine, theirs = socket.socketpair()
data = random.Random(SEED).randbytes(sum(PIECES))
writer(theirs, data, PIECES, 0.02)
problems = []
offset = 0
for n in READS:
    outcome = call_with_deadline(mine, n)
    problem = outcome_text(outcome, data, offset, n)
    if problem:
        problems.append("recv_exact(sock, " + str(n) + "), after " + str(offset)
                        + " bytes had been read: " + problem)
        break
    offset += n
result = problems
'''


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_recv_exact_loops_over_a_fragmented_stream(runner, rng):
    pieces = [rng.randint(1, 3000) for _ in range(rng.randint(4, 7))] + [rng.randint(300_000, 600_000)]
    total = sum(pieces)
    # Reads that end in the middle of pieces, and one that spans several.
    first = pieces[0] + pieces[1] + rng.randint(1, pieces[2] - 1) if pieces[2] > 1 else pieces[0] + 1
    second = sum(pieces[:-1]) - first + rng.randint(1, pieces[-1] - 1)
    reads = [first, second, total - first - second]
    did = (f"made a socket pair in the child; a thread sent {total} bytes in {len(pieces)} "
           f"pieces of {', '.join(map(str, pieces))} bytes, 20 ms apart; the test called "
           f"recv_exact(sock, n) for n = {', '.join(map(str, reads))}")
    problems = run_check(runner, RECV_HELPERS + RECV_FRAGMENTED, did, "framing.recv_exact",
                         SEED=rng.randrange(2 ** 32), PIECES=pieces, READS=reads,
                         RECV_DEADLINE=waits.REPLY)
    check(not problems, did, "each call returns exactly the next n bytes of the stream, "
                             "waiting for pieces that have not arrived yet",
          "; ".join(problems),
          hint="recv() returns what has arrived, possibly less than asked for: loop until you "
               "have n bytes, and never ask for more than the bytes still missing")


RECV_EOF = r'''
mine, theirs = socket.socketpair()
rand = random.Random(SEED)
report = {}
good = rand.randbytes(GOOD)
writer(theirs, good, [GOOD], 0.0).join()
outcome = call_with_deadline(mine, GOOD)
report["good"] = outcome_text(outcome, good, 0, GOOD)
partial = rand.randbytes(sum(PARTIAL))
writer(theirs, partial, PARTIAL, 0.02, close=True)
outcome = call_with_deadline(mine, WANTED)
report["eof"] = outcome[:3] if outcome[0] == "raised" else (
    outcome[0], "returned " + show(outcome[1]) if outcome[0] == "returned" else outcome[1])
result = report
'''


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_recv_exact_raises_connection_error_on_eof_part_way(runner, rng):
    good = rng.randint(10, 5000)
    partial = [rng.randint(1, 200) for _ in range(rng.randint(1, 3))]
    wanted = sum(partial) + rng.randint(1, 5000)
    did = (f"made a socket pair in the child; recv_exact(sock, {good}) with {good} bytes "
           f"sent, then the peer sent {sum(partial)} more bytes (in pieces of "
           f"{', '.join(map(str, partial))}) and closed, and the test called "
           f"recv_exact(sock, {wanted})")
    info = run_check(runner, RECV_HELPERS + RECV_EOF, did, "framing.recv_exact",
                     SEED=rng.randrange(2 ** 32), GOOD=good, PARTIAL=partial, WANTED=wanted,
                     RECV_DEADLINE=waits.REPLY)
    check(info["good"] is None, did, f"the first call returns the {good} bytes sent",
          str(info["good"]))
    eof = info["eof"]
    check(eof[0] == "raised" and eof[2], did,
          "the second call raises ConnectionError (or a subclass): the stream ended part-way",
          "it " + eof[1] if eof[0] == "returned" else
          (f"it raised {eof[1]}, which is not a ConnectionError" if eof[0] == "raised" else eof[1]),
          hint="recv() returns b'' once the peer has closed: that is the end of the stream, "
               "never a short read to wait on")
