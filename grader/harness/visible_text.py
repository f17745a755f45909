"""Make text a student's program produced safe to show on a terminal.

A program's output ends up in failure messages that `socklab grade -v`
prints on the instructor's terminal. Control characters in it would be
obeyed by that terminal: ESC and CSI sequences can clear the screen, move
the cursor and draw a fake score table over the real one, a carriage
return can overwrite a line. So every control character (C0 except newline
and tab, DEL, and C1) is shown as a visible escape such as `\\x1b`, `\\x9b`
or `\\r`, and ordinary Unicode is left alone. Backslashes are not escaped,
so applying the function twice changes nothing."""

from __future__ import annotations

_NAMED = {"\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\0": "\\0"}
_CONTROLS = [c for c in range(0x20) if chr(c) not in "\n\t"] + [0x7F] + list(range(0x80, 0xA0))
_TABLE = {c: _NAMED.get(chr(c), f"\\x{c:02x}") for c in _CONTROLS}


def visible(text: str) -> str:
    """`text` with every terminal control character written out as an escape."""
    return text.translate(_TABLE)
