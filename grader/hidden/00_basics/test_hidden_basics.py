"""Hidden suite for 00_basics: every clause of the contract.

The student's functions run in a child process (grader.harness.module_calls), one
child per test, which receives the whole batch of inputs and answers for
all of them. The inputs come from hypothesis, used here as a generator:
it draws a few hundred values (boundaries and odd spellings included),
seeded from the socklab seed, then the whole batch goes to the child at
once. The expected answers come from the standard library (ipaddress,
socket.inet_pton, struct) computed here, or, for resolve(), from
socket.getaddrinfo computed in the child itself before the student's
module is imported. Instead of shrinking, a failure lists the shortest
failing inputs."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from grader.harness import waits
from grader.harness.failure import fail
from grader.harness.module_calls import ErrorInfo, ModuleRunner, Outcome, Unrepresentable
from grader.testkit.first_calls import FIRST_CALLS

MODULE = "basics"
SHOWN = 5           # failing inputs listed in a message


# -- running the student's functions -------------------------------------------

@pytest.fixture
def runner(workdir, transcript) -> ModuleRunner:
    return ModuleRunner(workdir, transcript, timeout=waits.MODULE_RUN, first_calls=FIRST_CALLS)


def draw(strategy, count: int, rng) -> list:
    """Up to `count` distinct values of the hypothesis strategy that
    `strategy` returns, given grader.testkit.address_texts (imported here,
    at a test's first draw: a worker that runs no test of this suite never
    imports hypothesis). Seeded from the test's rng, so --socklab-seed
    replays them."""
    from grader.testkit import address_texts
    return address_texts.draw(strategy(address_texts), count, rng)


BATCH = """
import ast
import basics
result = []
for _argument in {arguments}:
    try:
        _value = basics.{function}(_argument)
    except Exception as _exc:
        result.append(("raised", describe_error(_exc)))
        continue
    try:   # only plain values travel back as themselves
        _plain = type(_value) in (int, str, bytes, bool, type(None)) \\
            or ast.literal_eval(repr(_value)) == _value
    except Exception:
        _plain = False
    if _plain:
        result.append(("returned", _value))
    else:  # e.g. an ipaddress object: its repr and type travel instead
        result.append(("odd", repr(_value)[:200] + " (of type " + type(_value).__name__ + ")"))
"""


def call_all(runner: ModuleRunner, function: str, inputs: list, what: str) -> list[Outcome]:
    """function(x) for every x, in one child process. (Like
    ModuleRunner.call_many, but without one transcript line per input: the
    failure message lists the few inputs that matter.)"""
    did = f"imported {MODULE}.py and called {function}() on {len(inputs)} {what}"
    source = BATCH.replace("{arguments}", repr(list(inputs))).replace("{function}", function)
    outcome = runner.run(source, did=did, name=f"{MODULE}.{function}", note_result=False)
    if not outcome.returned or not isinstance(outcome.value, list) \
            or len(outcome.value) != len(inputs):   # the import failed, a hang, a crash
        raise fail(did=did, expected=f"{function}() answers each of them",
                   got=outcome.describe())
    results = []
    for status, payload in outcome.value:
        if status == "raised":
            results.append(Outcome("raised", error=ErrorInfo.from_dict(payload), name=outcome.name))
        else:
            value = payload if status == "returned" else Unrepresentable(payload)
            results.append(Outcome("returned", value=value, name=outcome.name))
    return results


def short(outcome: Outcome) -> str:
    if outcome.status == "returned":
        value = outcome.value
        text = value.text if isinstance(value, Unrepresentable) else repr(value)
        return "returned " + (text if len(text) < 120 else text[:100] + "...")
    if outcome.error is not None:
        message = outcome.error.message.splitlines()[0] if outcome.error.message else ""
        return f"raised {outcome.error.type}" + (f" ({message[:100]})" if message else "")
    return outcome.describe()


def same_value(got, expected) -> bool:
    return type(got) is type(expected) and got == expected


def report(function: str, problems: list[tuple], total: int, did: str, expected: str,
           hint: str = "") -> None:
    """Fail with the shortest few problems: (argument, expected text, outcome)."""
    if not problems:
        return
    problems.sort(key=lambda p: (len(repr(p[0])), repr(p[0])))
    lines = [f"{len(problems)} of the {total} calls went wrong; the shortest:"]
    for argument, wanted, outcome in problems[:SHOWN]:
        lines.append(f"  {function}({argument!r}) {short(outcome)}; expected {wanted}")
    raise fail(did=did, expected=expected, got="\n".join(lines), hint=hint)


def expect_values(runner, function: str, cases: dict, what: str, did: str, expected: str,
                  hint: str = "") -> None:
    """cases: argument -> the value the function must return."""
    inputs = list(cases)
    outcomes = call_all(runner, function, inputs, what)
    problems = [(x, repr(cases[x]), o) for x, o in zip(inputs, outcomes)
                if not (o.returned and same_value(o.value, cases[x]))]
    report(function, problems, len(inputs), did, expected, hint)


def expect_value_errors(runner, function: str, inputs: list, what: str, did: str,
                        expected: str, hint: str = "") -> None:
    """Every input must raise ValueError (or a subclass)."""
    outcomes = call_all(runner, function, inputs, what)
    problems = [(x, "a ValueError", o) for x, o in zip(inputs, outcomes)
                if not o.raised("ValueError")]
    report(function, problems, len(inputs), did, expected, hint)


# -- the standard library's view of an address text -----------------------------

def stdlib_version(text: str) -> int | None | str:
    """4, 6 or None (invalid) when ipaddress and inet_pton agree, "disagree"
    otherwise (e.g. a scope id "fe80::1%eth0": ipaddress only). Texts they
    disagree on are never used."""
    try:
        by_ipaddress = ipaddress.ip_address(text).version
    except ValueError:
        by_ipaddress = None
    by_pton = None
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            socket.inet_pton(family, text)
            by_pton = version
        except (OSError, ValueError):
            pass
    return by_ipaddress if by_ipaddress == by_pton else "disagree"


def stdlib_ipv4_int(text: str) -> int:
    from_ipaddress = int(ipaddress.IPv4Address(text))
    (from_pton,) = struct.unpack("!I", socket.inet_pton(socket.AF_INET, text))
    assert from_ipaddress == from_pton, text
    return from_pton


# Texts that trip a parser built on split() and int(): int() takes spaces,
# signs, underscores and non-ASCII digits; inet_aton takes short forms.
TRAPS = [
    "", " ", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.4.", ".1.2.3.4", "1.2..3",
    "0.0.0.256", "01.2.3.4", "1.2.3.04", "1.2.3.+4", "1.2.3.-4", "1.2.3.1_0",
    " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "1.2.3.4\t", "1.2.3.4\x00", "1.2.3.\u0664",
    "\u0661.\u0662.\u0663.\u0664", "\uff11.\uff12.\uff13.\uff14", "0x1.2.3.4", "1.2.3.0x4",
    "4294967295", "127.1", "1.2.3.4/24", "1.2.3.4:80", "localhost",
    "1::2::3", ":::", ":", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "12345::", "::g",
    "1:2:3:4:5:6:7:1.2.3.4", "::ffff:01.2.3.4", "::1 ", "[::1]", "::1::",
]


def rejected_texts(rng, count: int) -> list[str]:
    texts = TRAPS + draw(lambda a: a.candidates, count, rng)
    return [t for t in dict.fromkeys(texts) if stdlib_version(t) is None]


# -- Task 1: ip_version and address_count ------------------------------------------

@pytest.mark.points(5)
@pytest.mark.task(1)
def test_ip_version_recognises_every_ipv4_address(runner, rng):
    texts = [t for t in draw(lambda a: a.ipv4_texts, 250, rng) if stdlib_version(t) == 4]
    texts += ["0.0.0.0", "255.255.255.255", "127.0.0.1", "192.168.0.1"]
    cases = dict.fromkeys(texts, 4)
    expect_values(runner, "ip_version", cases, "IPv4 addresses",
                  did=f"called ip_version() on {len(cases)} IPv4 addresses (random, and the "
                      "boundaries 0.0.0.0 and 255.255.255.255)",
                  expected="4 for every one of them (an int)")


@pytest.mark.points(6)
@pytest.mark.task(1)
def test_ip_version_recognises_every_ipv6_spelling(runner, rng):
    texts = [t for t in draw(lambda a: a.ipv6_texts(), 250, rng) if stdlib_version(t) == 6]
    texts += ["::", "::1", "fe80::1", "::ffff:192.168.0.1", "2001:DB8::A", "1:2:3:4:5:6:7:8",
              "0000:0000:0000:0000:0000:0000:0000:0001", "::1.2.3.4", "1::"]
    cases = dict.fromkeys(texts, 6)
    expect_values(runner, "ip_version", cases, "IPv6 addresses",
                  did=f"called ip_version() on {len(cases)} IPv6 addresses written in every "
                      "standard way: compressed with '::' (anywhere), in full, upper and lower "
                      "case, with leading zeros, with an IPv4 tail (::ffff:1.2.3.4)",
                  expected="6 for every one of them (an int), as ipaddress.ip_address() and "
                           "socket.inet_pton() say",
                  hint="Let socket.inet_pton(socket.AF_INET6, text) decide: IPv6 has many "
                       "spellings, and parsing them by hand is hard to get right.")


@pytest.mark.points(7)
@pytest.mark.task(1)
def test_ip_version_rejects_what_the_standard_library_rejects(runner, rng):
    texts = rejected_texts(rng, 300)
    expect_value_errors(
        runner, "ip_version", texts, "texts that are not addresses",
        did=f"called ip_version() on {len(texts)} texts that are not valid addresses: "
            "empty text, numbers above 255, too few or too many parts, leading zeros, "
            "signs, spaces, non-ASCII digits, two '::', near-misses of real addresses",
        expected="ValueError for each, as ipaddress.ip_address() and socket.inet_pton() "
                 "both reject them",
        hint="int() is too lenient for addresses: it accepts ' 4', '+4', '1_0' and "
             "non-ASCII digits. socket.inet_pton is strict.")


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_address_count_of_each_version(runner):
    expect_values(runner, "address_count", {4: 2 ** 32, 6: 2 ** 128}, "versions",
                  did="called address_count(4) and address_count(6)",
                  expected="2**32 = 4294967296 and 2**128 = 340282366920938463463374607431768211456",
                  hint="In Python, ** is the power; ^ is a bitwise XOR (2 ^ 32 == 34).")


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_address_count_rejects_other_versions(runner, rng):
    versions = [0, 1, 5, 7, -4, -6, 32, 46, 128] + draw(
        lambda a: a.st.integers().filter(lambda v: v not in (4, 6)), 20, rng)
    expect_value_errors(runner, "address_count", list(dict.fromkeys(versions)), "versions",
                        did="called address_count() with versions other than 4 and 6",
                        expected="ValueError for each")


# -- Task 2: ipv4_to_int and int_to_ipv4 ----------------------------------------------

@pytest.mark.points(6)
@pytest.mark.task(2)
def test_ipv4_to_int_agrees_with_the_standard_library(runner, rng):
    texts = draw(lambda a: a.ipv4_texts, 300, rng) + ["192.168.0.1", "0.0.0.0", "255.255.255.255",
                                          "1.0.0.0", "0.0.0.1", "128.0.0.0", "0.255.0.255"]
    cases = {t: stdlib_ipv4_int(t) for t in texts}
    expect_values(runner, "ipv4_to_int", cases, "IPv4 addresses",
                  did=f"called ipv4_to_int() on {len(cases)} IPv4 addresses",
                  expected="the address's 32-bit number, first part most significant "
                           "(int(ipaddress.IPv4Address(text))): '192.168.0.1' -> 3232235521",
                  hint="a.b.c.d is a*2**24 + b*2**16 + c*2**8 + d; or read the 4 bytes of "
                       "socket.inet_pton(socket.AF_INET, text) with int.from_bytes(..., 'big').")


@pytest.mark.points(6)
@pytest.mark.task(2)
def test_ipv4_to_int_rejects_invalid_text(runner, rng):
    texts = rejected_texts(rng, 200)
    ipv6 = [t for t in draw(lambda a: a.ipv6_texts(), 40, rng) if stdlib_version(t) == 6]
    texts += ["::1", "::ffff:1.2.3.4", "::"] + ipv6
    expect_value_errors(
        runner, "ipv4_to_int", list(dict.fromkeys(texts)), "texts",
        did=f"called ipv4_to_int() on {len(texts)} texts that are not IPv4 addresses, among "
            "them '256.1.1.1', '1.2.3', '' and IPv6 addresses",
        expected="ValueError for each (not OSError, not a number)",
        hint="socket.inet_aton reads '1.2.3' as 1.2.0.3: use socket.inet_pton, and turn "
             "the OSError it raises into a ValueError.")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_int_to_ipv4_agrees_with_the_standard_library(runner, rng):
    numbers = draw(lambda a: a.ipv4_ints, 300, rng) + [0, 1, 255, 256, 2 ** 24, 3232235521,
                                                       2 ** 32 - 1]
    cases = {n: str(ipaddress.IPv4Address(n)) for n in numbers}
    expect_values(runner, "int_to_ipv4", cases, "numbers",
                  did=f"called int_to_ipv4() on {len(cases)} numbers from 0 to 2**32-1",
                  expected="the dotted-quad text, as str(ipaddress.IPv4Address(n)) gives it: "
                           "3232235521 -> '192.168.0.1'")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_int_to_ipv4_rejects_numbers_out_of_range(runner, rng):
    numbers = [-1, 2 ** 32, 2 ** 32 + 1, -(2 ** 32), 2 ** 64, 2 ** 128] + draw(
        lambda a: a.st.one_of(a.st.integers(max_value=-1), a.st.integers(min_value=2 ** 32)),
        40, rng)
    expect_value_errors(runner, "int_to_ipv4", list(dict.fromkeys(numbers)), "numbers",
                        did="called int_to_ipv4() on numbers below 0 and above 2**32-1",
                        expected="ValueError for each (not struct.error, not OverflowError)",
                        hint="Check 0 <= n <= 2**32 - 1 yourself before converting.")


# -- Task 3: port_to_bytes and bytes_to_port --------------------------------------------
# Every port is tested: there are only 65,536. The child packs the answers
# into one bytes object, so that 65,536 results cost one round trip.

EVERY_PORT_TO_BYTES = """
import basics
answers, odd = [], []
for port in range(65536):
    try:
        data = basics.port_to_bytes(port)
    except Exception as exc:
        odd.append((port, "raised " + type(exc).__name__ + " (" + str(exc)[:80] + ")"))
    else:
        if type(data) is bytes and len(data) == 2:
            answers.append(data)
            continue
        odd.append((port, "returned " + repr(data)[:80] + " (" + type(data).__name__ + ")"))
    if len(odd) >= 5:
        break
    answers.append(b"??")
result = (b"".join(answers), odd)
"""

# The answers travel back packed as 2 bytes each (an int list of 65,536
# would cost more to read back than the calls themselves).
EVERY_BYTES_TO_PORT = """
import basics
answers, odd = [], []
for value in range(65536):
    data = value.to_bytes(2, "big")
    try:
        port = basics.bytes_to_port(data)
    except Exception as exc:
        odd.append((data, "raised " + type(exc).__name__ + " (" + str(exc)[:80] + ")"))
    else:
        if type(port) is int and 0 <= port <= 65535:
            answers.append(port.to_bytes(2, "big"))
            continue
        odd.append((data, "returned " + repr(port)[:80] + " (" + type(port).__name__ + ")"))
    if len(odd) >= 5:
        break
    answers.append(b"??")
result = (b"".join(answers), odd)
"""


def run_everything(runner, source: str, did: str, expected: str):
    outcome = runner.run(source, did=did, name="every value", note_result=False)
    return outcome.value_or_fail(did=did, expected=expected)


@pytest.mark.points(5)
@pytest.mark.task(3)
def test_port_to_bytes_gives_network_order_for_every_port(runner):
    did = "called port_to_bytes(port) for every port from 0 to 65535"
    expected = "struct.pack('!H', port): 2 bytes, most significant first (8080 -> b'\\x1f\\x90')"
    joined, odd = run_everything(runner, EVERY_PORT_TO_BYTES, did, expected)
    if odd:
        lines = [f"  port_to_bytes({port}) {what}; expected {struct.pack('!H', port)!r}"
                 for port, what in odd[:SHOWN]]
        raise fail(did=did, expected=expected,
                   got="these ports did not give 2 bytes (of type bytes):\n" + "\n".join(lines))
    wanted = b"".join(struct.pack("!H", p) for p in range(65536))
    if joined != wanted:
        wrong = [p for p in range(65536) if joined[2 * p:2 * p + 2] != wanted[2 * p:2 * p + 2]]
        lines = [f"  port_to_bytes({p}) returned {joined[2 * p:2 * p + 2]!r}; expected "
                 f"{wanted[2 * p:2 * p + 2]!r}" for p in wrong[:SHOWN]]
        raise fail(did=did, expected=expected,
                   got=f"{len(wrong)} of the 65536 ports came out wrong, the first:\n"
                       + "\n".join(lines),
                   hint="Without '!', struct packs in this machine's own byte order, "
                        "little-endian on a PC: the bytes come out swapped.")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_port_to_bytes_rejects_out_of_range_ports(runner, rng):
    ports = [-1, 65536, 65537, 70000, 2 ** 16 + 80, -65535, 2 ** 32, 2 ** 64] + draw(
        lambda a: a.st.one_of(a.st.integers(max_value=-1), a.st.integers(min_value=65536)), 40, rng)
    expect_value_errors(runner, "port_to_bytes", list(dict.fromkeys(ports)), "ports",
                        did="called port_to_bytes() on integers below 0 and above 65535",
                        expected="ValueError for each (not struct.error, not OverflowError)",
                        hint="struct.pack raises struct.error and int.to_bytes raises "
                             "OverflowError, neither of which is a ValueError: check the "
                             "range yourself first.")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_port_to_bytes_rejects_values_that_are_not_integers(runner, rng):
    values = ["80", "8080", "", 80.0, 8080.5, -1.0, None, b"\x1f\x90", [80], (80,)] + draw(
        lambda a: a.st.one_of(a.st.text(a.any_character, max_size=6),
                              a.st.floats(allow_nan=False, allow_infinity=False),
                              a.st.binary(max_size=3), a.st.none(),
                              a.st.lists(a.st.integers(0, 65535), max_size=2)),
        40, rng)
    expect_value_errors(runner, "port_to_bytes", values, "values that are not ints",
                        did="called port_to_bytes() with values that are not integers: "
                            "strings such as '80', floats such as 80.0, None, bytes, lists",
                        expected="ValueError for each: a port is an int (do not convert '80' "
                                 "or 80.0 into one)",
                        hint="isinstance(port, int) tells you whether you have an integer.")


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_bytes_to_port_reads_every_two_byte_value(runner):
    did = "called bytes_to_port(data) for every 2-byte value, b'\\x00\\x00' to b'\\xff\\xff'"
    expected = "struct.unpack('!H', data)[0], an int: b'\\x1f\\x90' -> 8080"
    joined, odd = run_everything(runner, EVERY_BYTES_TO_PORT, did, expected)
    if odd:
        lines = [f"  bytes_to_port({data!r}) {what}; expected "
                 f"{struct.unpack('!H', data)[0]}" for data, what in odd[:SHOWN]]
        raise fail(did=did, expected=expected,
                   got="these did not give an int from 0 to 65535:\n" + "\n".join(lines))
    answers = [int.from_bytes(joined[2 * v:2 * v + 2], "big") for v in range(65536)]
    wrong = [v for v in range(65536) if answers[v] != v]
    if wrong:
        lines = [f"  bytes_to_port({v.to_bytes(2, 'big')!r}) returned {answers[v]!r}; "
                 f"expected {v}" for v in wrong[:SHOWN]]
        raise fail(did=did, expected=expected,
                   got=f"{len(wrong)} of the 65536 values came out wrong, the first:\n"
                       + "\n".join(lines),
                   hint="The first byte is the high one: b'\\x1f\\x90' is 0x1f * 256 + 0x90.")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_bytes_to_port_rejects_wrong_lengths(runner, rng):
    values = [b"", b"\x01", b"\x00\x00\x00", b"\x1f\x90\x00", b"\x00" * 4] + draw(
        lambda a: a.st.binary(max_size=12).filter(lambda b: len(b) != 2), 40, rng)
    expect_value_errors(runner, "bytes_to_port", list(dict.fromkeys(values)), "byte strings",
                        did="called bytes_to_port() on byte strings of length 0, 1, 3 and more",
                        expected="ValueError for each (not struct.error, and not a number "
                                 "read from however many bytes there were)",
                        hint="Check len(data) == 2 before unpacking.")


# -- Task 4: resolve -----------------------------------------------------------------------
# The child first asks getaddrinfo itself, then imports the student's
# module (so nothing in it can change the reference), then calls resolve.

RESOLVE_CHECK = """
import socket
CASES = {cases!r}

def plain(value):
    # AddressFamily and other int or str subclasses travel as plain values.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value

references = []
for host, port, options in CASES:
    flags = socket.AI_PASSIVE if options.get("passive") else 0
    try:
        raw = socket.getaddrinfo(host, port, options.get("family", 0), socket.SOCK_STREAM, 0, flags)
        references.append(("returned", plain(raw)))
    except OSError as exc:
        references.append(("raised", describe_error(exc)))

import ast
import basics
answers = []
for host, port, options in CASES:
    try:
        answer = plain(basics.resolve(host, port, **options))
    except Exception as exc:
        answers.append(("raised", describe_error(exc)))
        continue
    try:
        readable = ast.literal_eval(repr(answer)) == answer
    except Exception:
        readable = False
    if readable:
        answers.append(("returned", answer))
    else:   # a generator, a socket...: only its description travels back
        answers.append(("odd", repr(answer)[:200] + " (" + type(answer).__name__ + ")"))
result = (references, answers)
"""

FAMILY_NAMES = {0: "0", int(socket.AF_INET): "socket.AF_INET", int(socket.AF_INET6): "socket.AF_INET6"}


def call_text(host, port, options) -> str:
    args = [repr(host), str(port)]
    for key, value in options.items():
        shown = FAMILY_NAMES.get(value, repr(value)) if key == "family" else repr(value)
        args.append(f"{key}={shown}")
    return f"resolve({', '.join(args)})"


def candidates_of(raw: list) -> list[tuple[int, str, int]]:
    """getaddrinfo's answer reduced as the contract says: distinct
    (family, ip, port), TCP only, in getaddrinfo's order."""
    found: list[tuple[int, str, int]] = []
    for family, kind, _proto, _canon, sockaddr in raw:
        entry = (family, sockaddr[0], sockaddr[1])
        if kind == int(socket.SOCK_STREAM) and entry not in found:
            found.append(entry)
    return found


REPEATS = "some candidates appear more than once"
ORDER = "the right candidates, but not in getaddrinfo's order"
NOT_TUPLES = "each entry must be a tuple (family, ip, port)"
ADVICE = {
    REPEATS: "getaddrinfo without socket.SOCK_STREAM lists each address once per socket "
             "type (stream, datagram, raw). Ask for SOCK_STREAM, and skip an entry that is "
             "already in your list.",
    ORDER: "Keep the candidates in the order getaddrinfo returns them: it puts first the "
           "address worth trying first. Do not sort, and do not collect them in a set.",
}


def why_different(answer: list, wanted: list) -> str | None:
    """A short reason, when an easy one applies."""
    if any(not isinstance(e, tuple) or len(e) != 3 for e in answer):
        return NOT_TUPLES
    try:
        if sorted(set(answer)) == sorted(wanted) and len(answer) != len(wanted):
            return REPEATS
        if sorted(answer) == sorted(wanted):
            return ORDER
    except TypeError:   # unhashable or unorderable entries
        pass
    return None


def resolve_cases(runner, cases: list[tuple], did: str, hint: str = "",
                  require: int = 1) -> list[tuple]:
    """Run resolve() on every case next to getaddrinfo; fail on the first
    case where they differ. Cases where getaddrinfo itself fails are left
    out (the contract says nothing about them). Returns the compared cases
    as (case, expected)."""
    source = RESOLVE_CHECK.replace("{cases!r}", repr(cases))
    outcome = runner.run(source, did=did, name="resolve", note_result=False)
    references, answers = outcome.value_or_fail(
        did=did, expected="resolve() answers every call")
    compared, problems = [], []
    hints = [hint] if hint else []
    for case, (ref_status, raw), (status, answer) in zip(cases, references, answers):
        if ref_status != "returned":
            continue
        wanted = candidates_of(raw)
        compared.append((case, wanted))
        text = call_text(*case)
        if status == "returned" and answer == wanted:
            continue
        if status == "raised":
            got = f"raised {ErrorInfo.from_dict(answer).describe()}"
        elif status == "odd":
            got = f"returned {answer}, not a list"
        elif not isinstance(answer, list):
            got = f"returned {answer!r} ({type(answer).__name__}, not a list)"
        else:
            reason = why_different(answer, wanted)
            got = f"returned {answer!r}" + (f" ({reason})" if reason else "")
            if reason in ADVICE and ADVICE[reason] not in hints:
                hints.append(ADVICE[reason])
        problems.append(f"  {text} {got}\n      expected {wanted!r}\n"
                        f"      (getaddrinfo gave: {raw!r})")
    if problems:
        raise fail(did=did,
                   expected="for each call, (family, ip, port) of every TCP candidate of "
                            "getaddrinfo(host, port, family, SOCK_STREAM, 0, AI_PASSIVE if passive "
                            "else 0), in getaddrinfo's order, each once (family numbers "
                            f"here: AF_INET = {int(socket.AF_INET)}, AF_INET6 = "
                            f"{int(socket.AF_INET6)})",
                   got=f"{len(problems)} of the {len(compared)} calls went wrong:\n"
                       + "\n".join(problems[:3]), hint="\n".join(hints))
    assert len(compared) >= require, (
        f"getaddrinfo failed on this machine for the cases {cases!r}: grader environment problem")
    return compared


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_ipv4_loopback(runner, rng):
    port = rng.randint(1024, 65535)
    resolve_cases(runner, [("127.0.0.1", port, {}), ("127.0.0.1", port + 1, {"family": 0}),
                           ("127.0.0.1", port, {"family": int(socket.AF_INET)}),
                           ("127.0.0.1", 0, {})],
                  did=f"called resolve('127.0.0.1', {port}) and variants (port 0, family=AF_INET)",
                  require=4)


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_ipv6_loopback(runner, rng):
    port = rng.randint(1024, 65535)
    resolve_cases(runner, [("::1", port, {}), ("::1", port, {"family": int(socket.AF_INET6)}),
                           ("0:0:0:0:0:0:0:1", port, {})],
                  did=f"called resolve('::1', {port}) and variants",
                  hint="An IPv6 sockaddr is (ip, port, flowinfo, scope_id): keep only the "
                       "first two fields.")


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_localhost(runner, rng):
    port = rng.randint(1024, 65535)
    resolve_cases(runner, [("localhost", port, {}),
                           ("localhost", port, {"passive": True})],
                  did=f"called resolve('localhost', {port}), with and without passive=True")


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_passive_none_gives_the_wildcard_addresses(runner, rng):
    port = rng.randint(1024, 65535)
    compared = resolve_cases(
        runner, [(None, port, {"passive": True})],
        did=f"called resolve(None, {port}, passive=True), as a server does before bind()",
        hint="passive=True means the flag socket.AI_PASSIVE in getaddrinfo's flags argument.")
    (_case, wanted), = compared
    assert (int(socket.AF_INET), "0.0.0.0", port) in wanted, wanted  # the machine's resolver


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_none_without_passive_keeps_getaddrinfo_order(runner, rng):
    port = rng.randint(1024, 65535)
    resolve_cases(runner, [(None, port, {}), (None, port, {"passive": False})],
                  did=f"called resolve(None, {port}) without passive (the loopback addresses, "
                      "often ::1 before 127.0.0.1)")


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_filters_by_family(runner, rng):
    port = rng.randint(1024, 65535)
    v4, v6 = int(socket.AF_INET), int(socket.AF_INET6)
    resolve_cases(runner, [
        (None, port, {"passive": True, "family": v4}),
        (None, port, {"passive": True, "family": v6}),
        (None, port, {"family": v4}),
        (None, port, {"family": v6}),
        ("localhost", port, {"family": v4}),
        ("::1", port, {"family": v6}),
    ], did="called resolve() with family=socket.AF_INET and family=socket.AF_INET6 "
           "(host None with and without passive, 'localhost', '::1')",
        hint="Pass family on to getaddrinfo as its third argument.", require=4)


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_lists_each_candidate_once(runner, rng):
    port = rng.randint(1024, 65535)
    resolve_cases(runner, [("127.0.0.1", port, {}), ("::1", port, {}), ("localhost", port, {}),
                           (None, port, {"passive": True}), (None, port, {})],
                  did="called resolve() on 127.0.0.1, ::1, localhost and None, with and "
                      "without passive", require=4)


@pytest.mark.points(3)
@pytest.mark.task(4)
def test_resolve_matches_getaddrinfo_for_numeric_hosts(runner, rng):
    v4, v6 = int(socket.AF_INET), int(socket.AF_INET6)

    def strategy(a):
        hosts = a.st.one_of(a.ipv4_texts, a.ipv6_texts().filter(lambda t: stdlib_version(t) == 6))
        options = a.st.fixed_dictionaries({}, optional={"passive": a.st.booleans(),
                                                        "family": a.st.sampled_from([0, v4, v6])})
        return a.st.tuples(hosts, a.st.integers(0, 65535), options)

    cases = draw(strategy, 100, rng)
    resolve_cases(runner, cases,
                  did=f"called resolve() on {len(cases)} numeric IPv4 and IPv6 addresses, "
                      "random ports, with and without passive and family",
                  require=20)
