"""A record of one test's conversation: what each client sent and received,
and what each program printed, in the order it happened. Rendered into the
failure message so a student sees exactly what their program was told and
what it answered. Everything a program sent is shown escaped (see
grader.harness.visible_text) and shortened, so the rendering is bounded and safe
to print on a terminal."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from grader.harness.visible_text import visible

MAX_EVENTS = 400        # older events are summarised, not shown
MAX_TEXT = 300          # one event's text is cut beyond this
MAX_NOTE = 1000         # a note (which may quote a program's error) is cut beyond this


@dataclass
class Event:
    at: float
    actor: str
    arrow: str          # "->" sent, "<-" received, "**" happened
    text: str


class Transcript:
    def __init__(self) -> None:
        self._start = time.monotonic()
        self._events: list[Event] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self.programs: list = []   # Program objects, for their output tails

    def _add(self, actor: str, arrow: str, text: str) -> None:
        with self._lock:
            self._events.append(Event(time.monotonic() - self._start, actor, arrow, text))
            if len(self._events) > MAX_EVENTS:
                del self._events[0]
                self._dropped += 1

    def sent(self, actor: str, data: bytes | str) -> None:
        self._add(actor, "->", _show(data))

    def received(self, actor: str, data: bytes | str) -> None:
        self._add(actor, "<-", _show(data))

    def note(self, actor: str, text: str) -> None:
        if len(text) > MAX_NOTE:
            text = text[:MAX_NOTE - 40] + f"... ({len(text)} characters)"
        self._add(actor, "**", text)

    def render(self) -> str:
        with self._lock:
            events = list(self._events)
            dropped = self._dropped
        if not events:
            return "(nothing was sent or received)"
        width = max(len(e.actor) for e in events)
        lines = []
        if dropped:
            lines.append(f"   ... {dropped} earlier events not shown ...")
        for e in events:
            lines.append(f"{e.at:7.3f}s  {e.actor:<{width}} {e.arrow} {e.text}")
        return visible("\n".join(lines))


def _show(data: bytes | str) -> str:
    """A readable, unambiguous one-line form of some bytes or text."""
    # Only the start is ever shown: cut before repr(), so a megabyte
    # received costs no more than a line.
    head = data[:MAX_TEXT]
    text = head.decode("utf-8", errors="backslashreplace") if isinstance(head, bytes) else head
    shown = repr(text)
    if len(shown) > MAX_TEXT or len(data) > MAX_TEXT:
        unit = "bytes" if isinstance(data, bytes) else "characters"
        shown = shown[: MAX_TEXT - 20] + f"... ({len(data)} {unit})"
    return visible(shown)
