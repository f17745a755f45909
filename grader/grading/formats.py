"""Ways to show grading results: a terminal table, JSON, Gradescope's results.json."""

from __future__ import annotations

import json

from grader.course import manifest
from grader.harness.failure import MESSAGE_CHARS, cut_middle
from grader.harness.visible_text import visible
from grader.results import ExerciseResult

# A test's message in any report is at most REPORT_MESSAGE_CHARS: the plugin
# already caps a student message at MESSAGE_CHARS (with control characters
# escaped); this cap also bounds pytest's own reports of errors and leaves
# room for a prefix such as "cleanup after the test failed:". A report thus
# holds at most (tests + exercises) x REPORT_MESSAGE_CHARS of messages.
REPORT_MESSAGE_CHARS = MESSAGE_CHARS + (1 << 10)


def report_message(text: str) -> str:
    """A message as every report holds it: escaped and capped."""
    return cut_middle(visible(text), REPORT_MESSAGE_CHARS)


NOTE_CHARS = 300    # a one-line note (the table's last column, the gradebook's notes)


def note(message: str) -> str:
    """The first line of a message, escaped and cut to NOTE_CHARS."""
    first = message.splitlines()[0] if message else ""
    return visible(first[:NOTE_CHARS]) + (" ..." if len(first) > NOTE_CHARS else "")


def report_json(r: ExerciseResult) -> dict:
    """`r.to_json()` with every message made safe and bounded (report_message)."""
    data = r.to_json()
    data["message"] = report_message(data.get("message", ""))
    for test in data.get("tests", []):
        test["message"] = report_message(test.get("message", ""))
    return data


def _number(x: float) -> str:
    return f"{x:g}"


def table(results: list[ExerciseResult], title: str = "", seconds: float | None = None) -> str:
    """One row per exercise: its time is its tests' (which ran side by side
    with other exercises' tests); the total row's is the whole grading's
    `seconds`, when given."""
    # Printed on a terminal: a note quoting a program is escaped (and cut).
    rows = [(visible(r.id), f"{_number(r.score)}/{_number(r.max_score)}",
             f"{sum(t.status == 'passed' for t in r.tests)}/{len(r.tests)}",
             f"{r.seconds:.1f}s", note(r.message))
            for r in results]
    total = sum(r.score for r in results)
    most = sum(r.max_score for r in results)
    header = ("exercise", "score", "tests", "time", "note")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [title] if title else []
    out += [line(header), line("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out.append(line(("total", f"{_number(total)}/{_number(most)}", "",
                     f"{seconds:.1f}s" if seconds is not None else "", "")))
    return "\n".join(out)


def failures(results: list[ExerciseResult]) -> str:
    """The message of every test that did not pass, for the terminal."""
    out = []
    for r in results:
        for t in r.tests:
            if t.status != "passed":
                out.append(visible(f"--- {r.id}::{t.name} ({t.status}, 0/{_number(t.max_score)})\n")
                           + report_message(t.message))
    return "\n\n".join(out)


def as_json(results: list[ExerciseResult]) -> str:
    return json.dumps({
        "score": sum(r.score for r in results),
        "max_score": sum(r.max_score for r in results),
        "exercises": {r.id: report_json(r) for r in results},
    }, indent=2)


def class_table(outcomes, ids: list[str]) -> str:
    """One line per student: their score in each exercise and the total."""
    header = ("student", *ids, "total")
    rows = [(o.student, *(_number(o.scores[i]) for i in ids), _number(o.total)) for o in outcomes]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line("-" * w for w in widths), *map(line, rows)])


# Gradescope's results.json (gradescope-autograders.readthedocs.io, "Autograder
# Specifications"): a top-level score and one entry per test. Gradescope knows
# only "passed" and "failed"; a test skipped for the platform checked nothing,
# so it is listed with 0 of 0 points and no status.
GRADESCOPE_VISIBILITY = "visible"   # or "hidden", "after_due_date", "after_published"


def _gradescope_tests(r: ExerciseResult, number: int) -> list[dict]:
    tags = lambda task: [r.id] + ([f"task {task}"] if task is not None else [])
    if not r.tests:  # nothing ran (no folder, or the run broke): one failed entry
        return [{"name": f"{r.id}: could not be graded", "number": f"{number}.1",
                 "score": 0, "max_score": r.max_score, "status": "failed",
                 "output": report_message(r.message), "tags": tags(None),
                 "visibility": GRADESCOPE_VISIBILITY}]
    entries = []
    for j, t in enumerate(r.tests, 1):
        entry = {"name": f"{r.id}: {t.name}", "number": f"{number}.{j}",
                 "score": t.score, "max_score": t.max_score,
                 "output": report_message(t.message), "tags": tags(t.task),
                 "visibility": GRADESCOPE_VISIBILITY}
        if t.status == "passed":
            entry["status"] = "passed"
        elif t.status == "skipped":
            entry["output"] = f"skipped: {entry['output']}".strip()
        else:  # failed, or not run because the run was stopped
            entry["status"] = "failed"
            entry["output"] = entry["output"] or f"this test {t.status}"
        entries.append(entry)
    return entries


def gradescope(results: list[ExerciseResult], seconds: float | None = None) -> str:
    """Gradescope's results.json; `seconds`: the grading's wall time."""
    order = {e.id: n for n, e in enumerate(manifest.load())}  # 03_poll's tests are 3.1, 3.2, ...
    tests = [entry for r in results for entry in _gradescope_tests(r, order.get(r.id, 0))]
    notes = [f"{r.id}: {report_message(r.message)}" for r in results if r.message and r.tests]
    summary = ", ".join(f"{r.id} {_number(r.score)}/{_number(r.max_score)}" for r in results)
    return json.dumps({
        "score": sum(r.score for r in results),
        "execution_time": round(sum(r.seconds for r in results) if seconds is None else seconds),
        "output": "\n".join([f"socklab: {summary}.", *notes]),
        "output_format": "text",
        "test_output_format": "text",
        "visibility": GRADESCOPE_VISIBILITY,
        "stdout_visibility": "hidden",
        "tests": tests,
    }, indent=2)
