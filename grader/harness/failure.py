"""Failures written for a student: what the test did, what it expected, what
happened. The plugin adds the transcript and the program's output."""

from __future__ import annotations

import textwrap

from grader.harness.visible_text import visible

# The size caps of what the grader writes about a test. A failure message
# (the verdict, the transcript, each program's output, the seed) is at most
# MESSAGE_CHARS characters; the JSON, CSV and Gradescope reports hold one
# message per test, so their size is bounded by tests x MESSAGE_CHARS.
MESSAGE_CHARS = 64 << 10
VERDICT_CHARS = 16 << 10    # the "what the test did / expected / happened" part


def cut_middle(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and its end
    (a third and two thirds: the end is where things went wrong) around a
    note saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"\n    [... {len(text)} characters in all; the middle is not shown ...]\n"
    room = max(0, limit - len(note))
    keep_head = room // 3
    return text[:keep_head] + note + text[len(text) - (room - keep_head):]


def fit_sections(sections: list[str], limit: int = MESSAGE_CHARS, sep: str = "\n\n") -> str:
    """Join `sections` with `sep` in at most `limit` characters: short
    sections are kept whole and the long ones share what is left, each cut
    in the middle (see cut_middle)."""
    budget = limit - len(sep) * max(0, len(sections) - 1)
    if sum(map(len, sections)) <= budget:
        return sep.join(sections)
    shares: dict[int, int] = {}
    left, waiting = budget, len(sections)
    for i in sorted(range(len(sections)), key=lambda i: len(sections[i])):
        shares[i] = max(0, min(len(sections[i]), left // waiting))
        left -= shares[i]
        waiting -= 1
    return sep.join(cut_middle(text, shares[i]) for i, text in enumerate(sections))[:limit]


class GradingFailure(AssertionError):
    """A test's verdict on the student's program (not a bug in the grader)."""

    def __init__(self, did: str, expected: str, got: str, hint: str = "") -> None:
        self.did, self.expected, self.got, self.hint = did, expected, got, hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = [
            ("What the test did", self.did),
            ("What it expected", self.expected),
            ("What happened", self.got),
        ]
        if self.hint:
            parts.append(("Hint", self.hint))
        text = "\n".join(
            f"{title}:\n{textwrap.indent(body.strip(), '    ')}" for title, body in parts if body
        )
        # `got` often quotes what the program printed: escaped, and bounded.
        return cut_middle(visible(text), VERDICT_CHARS)


def fail(did: str, expected: str, got: str, hint: str = "") -> GradingFailure:
    """Raise with `raise fail(...)` so the traceback points at the test."""
    return GradingFailure(did, expected, got, hint)


def check(condition: bool, did: str, expected: str, got: str, hint: str = "") -> None:
    if not condition:
        raise GradingFailure(did, expected, got, hint)
