"""Ways to show grading results: a terminal table and JSON."""

from __future__ import annotations

import json

from .runner import ExerciseResult


def _number(x: float) -> str:
    return f"{x:g}"


def table(results: list[ExerciseResult], title: str = "") -> str:
    rows = [(r.id, f"{_number(r.score)}/{_number(r.max_score)}",
             f"{sum(t.status == 'passed' for t in r.tests)}/{len(r.tests)}",
             f"{r.seconds:.1f}s", r.message.splitlines()[0] if r.message else "")
            for r in results]
    total = sum(r.score for r in results)
    most = sum(r.max_score for r in results)
    header = ("exercise", "score", "tests", "time", "note")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [title] if title else []
    out += [line(header), line("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out.append(line(("total", f"{_number(total)}/{_number(most)}", "", "", "")))
    return "\n".join(out)


def failures(results: list[ExerciseResult]) -> str:
    """The message of every test that did not pass, for the terminal."""
    out = []
    for r in results:
        for t in r.tests:
            if t.status != "passed":
                out.append(f"--- {r.id}::{t.name} ({t.status}, 0/{_number(t.max_score)})\n{t.message}")
    return "\n\n".join(out)


def as_json(results: list[ExerciseResult]) -> str:
    return json.dumps({
        "score": sum(r.score for r in results),
        "max_score": sum(r.max_score for r in results),
        "exercises": {r.id: r.to_json() for r in results},
    }, indent=2)
