"""Failures written for a student: what the test did, what it expected, what
happened. The plugin adds the transcript and the program's output."""

from __future__ import annotations

import textwrap


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
        return "\n".join(
            f"{title}:\n{textwrap.indent(body.strip(), '    ')}" for title, body in parts if body
        )


def fail(did: str, expected: str, got: str, hint: str = "") -> GradingFailure:
    """Raise with `raise fail(...)` so the traceback points at the test."""
    return GradingFailure(did, expected, got, hint)


def check(condition: bool, did: str, expected: str, got: str, hint: str = "") -> None:
    if not condition:
        raise GradingFailure(did, expected, got, hint)
