"""Random but replayable message texts, so no hard-coded output can pass."""

from __future__ import annotations

import random

WORDS = ("socket", "poll", "bind", "listen", "accept", "packet", "port", "stream",
         "buffer", "kernel", "latency", "router", "datagram", "handshake", "loopback")
ACCENTS = ("é", "ß", "ñ", "→", "✓", "ö")


def message(rng: random.Random, words: int | None = None) -> str:
    """A short line of text with a random tag, sometimes with non-ASCII."""
    count = words or rng.randint(2, 5)
    parts = [rng.choice(WORDS) for _ in range(count)]
    if rng.random() < 0.5:
        parts.append(rng.choice(ACCENTS))
    parts.append(f"#{rng.randrange(16**6):06x}")
    return " ".join(parts)


def name(rng: random.Random) -> str:
    return rng.choice(("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")) \
        + str(rng.randint(1, 99))


def line_of_bytes(rng: random.Random, size: int) -> str:
    """An ASCII line of exactly `size` bytes (no newline) with varied content."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,-"
    return "".join(rng.choice(alphabet) for _ in range(size))
