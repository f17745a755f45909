"""The results file of a graded pytest run: written by the plugin's
`ResultRecorder`, read by `runner` (its only reader).

It is a stream of JSON lines, appended and flushed as the run goes, so that
a run killed half-way (the exercise's time limit) still tells which tests
finished, with their points, and which test was running when it was
stopped. Every kind of line and its fields are named here and nowhere
else; change VERSION whenever they change.

    {"record": "plan", "version": 2, "seed": ..., "tests": [TEST, ...]}
        once, after collection: every test the run will report, in order
    {"record": "start", "nodeid": ...}
        a test began (its setup is about to run)
    {"record": "result", "nodeid": ..., "status": ..., "score": ..., "max_score": ..., "message": ...}
        a test ended, teardown included
    {"record": "end", "version": 2, "exitstatus": ..., "tests": [SUMMARY, ...]}
        the session finished: every test's final result

TEST holds TEST_FIELDS; SUMMARY holds TEST_FIELDS and RESULT_FIELDS."""

from __future__ import annotations

import json

VERSION = 2
KIND = "record"

PLAN, START, RESULT, END = "plan", "start", "result", "end"

TEST_FIELDS = ("nodeid", "name", "exercise", "points", "task")
RESULT_FIELDS = ("status", "score", "max_score", "message")

FIELDS: dict[str, tuple[str, ...]] = {
    PLAN: ("version", "seed", "tests"),
    START: ("nodeid",),
    RESULT: ("nodeid", *RESULT_FIELDS),
    END: ("version", "exitstatus", "tests"),
}

# Statuses a test can end with in the file ("not run" is the reader's: a
# test the file never reports a result for).
PASSED, FAILED, SKIPPED, NOT_RUN = "passed", "failed", "skipped", "not run"


def line(kind: str, **fields) -> str:
    """One record as a line of JSON; its fields must be exactly the kind's."""
    expected = FIELDS[kind]
    if set(fields) != set(expected):
        raise ValueError(f"a {kind!r} record has the fields {expected}, not {tuple(fields)}")
    return json.dumps({KIND: kind, **fields}) + "\n"
