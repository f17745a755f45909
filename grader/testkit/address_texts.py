"""The texts and numbers 00_basics's hidden suite feeds a student's
functions: hypothesis's strategies for them, and `draw`, which uses
hypothesis as a generator.

A module of its own so that only a test process that runs one of that
suite's tests imports hypothesis (at its first draw; see the suite's
`draw`): the other workers of a grading do not pay for the import, about
a tenth of a second of CPU each."""

from __future__ import annotations

import ipaddress
import math

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st


def draw(strategy, count: int, rng) -> list:
    """Up to `count` distinct values from a hypothesis strategy, seeded from
    `rng` (so --socklab-seed replays them). They come as a few lists of
    values, one list per example: hypothesis's engine costs about half a
    millisecond an example, which at one value each made these draws most
    of the suite's CPU. A few more are asked for than needed, as some come
    twice; the first example holds the simplest values."""
    wanted = math.ceil(count * 1.3)
    examples = max(3, math.ceil(wanted / 50))
    size = math.ceil(wanted / examples)
    found: list = []

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @seed(rng.randrange(2 ** 64))
    @given(st.lists(strategy, min_size=size, max_size=size))
    def collect(values):
        found.extend(values)

    collect()
    unique: dict = {}
    for value in found:
        unique.setdefault((type(value).__name__, repr(value)), value)
    return list(unique.values())[:count]


# -- strategies ------------------------------------------------------------------

ipv4_ints = st.integers(0, 2 ** 32 - 1)
ipv4_texts = st.one_of(
    ipv4_ints.map(lambda n: str(ipaddress.IPv4Address(n))),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda parts: ".".join(map(str, parts))))

# Hextets that are often zero, so that "::" compression has runs to take.
hextets = st.one_of(st.just(0), st.just(0), st.integers(0, 0xFFFF), st.sampled_from([1, 0xFFFF]))


@st.composite
def ipv6_texts(draw_):
    """Valid IPv6 spellings: any case, optional leading zeros, any zero run
    compressed to "::" (not only the longest), optionally an IPv4 tail."""
    groups = draw_(st.lists(hextets, min_size=8, max_size=8))
    if draw_(st.booleans()):                                    # ::ffff:a.b.c.d and friends
        groups[:6] = draw_(st.sampled_from([[0] * 5 + [0xFFFF], [0] * 6, groups[:6]]))
    style = draw_(st.sampled_from(["compressed", "exploded", "random"]))
    address = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
    if style == "compressed":
        return address.compressed
    if style == "exploded":
        return address.exploded.upper() if draw_(st.booleans()) else address.exploded
    ipv4_tail = draw_(st.booleans())
    hex_groups = groups[:6] if ipv4_tail else groups
    pieces = []
    for g in hex_groups:
        digits = f"{g:x}"
        digits = digits.zfill(draw_(st.integers(len(digits), 4)))
        pieces.append(draw_(st.sampled_from([digits, digits.upper()])))
    tail = [str(ipaddress.IPv4Address((groups[6] << 16) | groups[7]))] if ipv4_tail else []
    zero_runs = [(i, j) for i in range(len(hex_groups)) for j in range(i + 1, len(hex_groups) + 1)
                 if all(g == 0 for g in hex_groups[i:j])]
    if zero_runs and draw_(st.booleans()):
        i, j = draw_(st.sampled_from(zero_runs))
        left, right = pieces[:i], pieces[j:] + tail
        return ":".join(left) + "::" + ":".join(right)
    return ":".join(pieces + tail)


NOISE = list(".:0123456789abcdefgABCDEFx+-_/%[] \t\n\x00") + ["\u0664", "\uff14", "\u00e9"]


@st.composite
def corrupted(draw_):
    """A valid address with one small change: mostly invalid, and close to
    valid, which is where a hand-written parser goes wrong."""
    text = draw_(st.one_of(ipv4_texts, ipv6_texts()))
    where = draw_(st.integers(0, len(text)))
    how = draw_(st.sampled_from(["insert", "delete", "replace", "octet", "zero", "sign",
                                 "space", "extra", "drop"]))
    if how == "insert":
        return text[:where] + draw_(st.sampled_from(NOISE)) + text[where:]
    if how == "delete" and text:
        where = min(where, len(text) - 1)
        return text[:where] + text[where + 1:]
    if how == "replace" and text:
        where = min(where, len(text) - 1)
        return text[:where] + draw_(st.sampled_from(NOISE)) + text[where + 1:]
    sep = "." if "." in text else ":"
    parts = text.split(sep)
    k = draw_(st.integers(0, len(parts) - 1))
    if how == "octet":
        parts[k] = str(draw_(st.integers(256, 99999)))
    elif how == "zero":
        parts[k] = "0" + parts[k]
    elif how == "sign":
        parts[k] = draw_(st.sampled_from(["+", "-"])) + parts[k]
    elif how == "space":
        return draw_(st.sampled_from([" ", "\t", "\n", "\r\n"])).join(
            draw_(st.sampled_from([("", text), (text, ""), ("", text + " ")])))
    elif how == "extra":
        parts.insert(k, draw_(st.sampled_from(["1", "0", "ff", ""])))
    elif len(parts) > 1:
        del parts[k]
    return sep.join(parts)


# Every character but the surrogates: the set hypothesis's own default for
# text() gives (characters(codec="utf-8")), spelt without the codec, whose
# table hypothesis builds by encoding every code point (about 1 s of CPU in
# each fresh process, as each grading is; see docs/grading-bench.md).
any_character = st.characters(exclude_categories=("Cs",))
address_like = st.text(alphabet="0123456789abcdefABCDEF.:", max_size=42)
any_text = st.text(any_character, max_size=24)
candidates = st.one_of(corrupted(), corrupted(), address_like, any_text)
