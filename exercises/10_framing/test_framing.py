"""Visible tests for 10_framing, the module framing.py.
Run: pytest exercises/10_framing

Your functions run in a separate Python process (a crash or an endless
loop there costs the test, nothing more)."""

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.harness.module_calls import ModuleRunner
from grader.testkit.first_calls import FIRST_CALLS


@pytest.fixture
def runner(workdir, transcript):
    return ModuleRunner(workdir, transcript, timeout=waits.MODULE_RUN, first_calls=FIRST_CALLS)


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_encode_puts_the_length_first(runner):
    did = "called framing.encode(b'hello') and framing.encode(b'')"
    out = runner.run("import framing\nresult = [framing.encode(b'hello'), framing.encode(b'')]",
                     did=did, name="framing.encode")
    value = out.value_or_fail(did, "two frames")
    check(value == [b"\x00\x00\x00\x05hello", b"\x00\x00\x00\x00"], did,
          "[b'\\x00\\x00\\x00\\x05hello', b'\\x00\\x00\\x00\\x00']: 4 bytes of length, "
          "big-endian, then the payload", repr(value))


DECODE = '''
import framing
decoder = framing.Decoder()
stream = b"\\x00\\x00\\x00\\x02hi" + b"\\x00\\x00\\x00\\x00" + b"\\x00\\x00\\x00\\x05there"
result = [decoder.feed(stream[:3]), decoder.feed(stream[3:7]),
          decoder.feed(stream[7:13]), decoder.feed(stream[13:])]
result = [[bytes(f) for f in frames] for frames in result]
'''


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_decoder_cuts_a_stream_into_frames(runner):
    did = ("fed a framing.Decoder() the frames b'hi', b'' and b'there' in four pieces, "
           "cut in the middle of headers and payloads")
    value = runner.run(DECODE, did=did, name="framing.Decoder").value_or_fail(did, "four lists")
    check(value == [[], [b"hi"], [b""], [b"there"]], did,
          "the four feed() calls return [], [b'hi'], [b''], [b'there']", repr(value))


RECV = '''
import socket, threading, time
import framing
mine, theirs = socket.socketpair()
def slowly():
    for piece in (b"abc", b"defg", b"hij"):
        theirs.sendall(piece)
        time.sleep(0.05)
threading.Thread(target=slowly, daemon=True).start()
result = [framing.recv_exact(mine, 5), framing.recv_exact(mine, 5)]
'''


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_recv_exact_waits_for_every_byte(runner):
    did = ("on a socket pair, the peer sent b'abc', b'defg', b'hij' 50 ms apart; "
           "called recv_exact(sock, 5) twice")
    value = runner.run(RECV, did=did, name="framing.recv_exact").value_or_fail(did, "two results")
    check(value == [b"abcde", b"fghij"], did, "b'abcde', then b'fghij'", repr(value))
