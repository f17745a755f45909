"""The results model: what a graded pytest run found, test by test.

One writer and one reader. The plugin's recorder writes the results file
with `Writer` as the run goes; grading reads it back with `read` and makes
an ExerciseResult of it, which every report works from (the table, JSON
and Gradescope formats, the class gradebook, nbgrader's cells, `socklab
status`).

The file is a stream of JSON lines, each flushed as it is written, so that
a run killed half-way (the exercise's time limit) still tells which tests
finished, with their points, and which test was running when it was
stopped. Every kind of line and its fields are named here and nowhere
else; change VERSION whenever they change.

    {"record": "plan", "version": 2, "seed": ..., "tests": [TEST, ...]}
        once, after collection: every test the run will report, in order
    {"record": "start", "nodeid": ...}
        a test began (its setup is about to run)
    {"record": "result", "nodeid": ..., "status": ..., "score": ..., "max_score": ..., "message": ...,
     "seconds": ...}
        a test ended, teardown included (seconds: how long it took, setup to teardown)
    {"record": "end", "version": 2, "exitstatus": ..., "tests": [SUMMARY, ...]}
        the session finished: every test's final result

TEST holds a PlannedTest's fields; SUMMARY a PlannedTest's and an Outcome's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

VERSION = 3
KIND = "record"

PLAN, START, RESULT, END = "plan", "start", "result", "end"

# Statuses a test can end with ("not run" is the reader's: a test the file
# never reports a result for).
PASSED, FAILED, SKIPPED, NOT_RUN = "passed", "failed", "skipped", "not run"


@dataclass(frozen=True)
class PlannedTest:
    """A test the run collected: which one, and what it is worth."""

    nodeid: str
    name: str
    exercise: str | None
    points: float
    task: int | None


@dataclass(frozen=True)
class Outcome:
    """How a test ended: its status, and the points it earned of those it could."""

    status: str
    score: float
    max_score: float
    message: str
    seconds: float = 0.0


TEST_FIELDS = tuple(f.name for f in fields(PlannedTest))
RESULT_FIELDS = tuple(f.name for f in fields(Outcome))
FIELDS: dict[str, tuple[str, ...]] = {
    PLAN: ("version", "seed", "tests"),
    START: ("nodeid",),
    RESULT: ("nodeid", *RESULT_FIELDS),
    END: ("version", "exitstatus", "tests"),
}


@dataclass
class TestResult:
    """One test as every report shows it."""

    __test__ = False    # a model, not a test class for pytest to collect

    name: str
    score: float
    max_score: float
    status: str
    message: str = ""
    task: int | None = None
    nodeid: str = ""
    seconds: float = 0.0

    @classmethod
    def of(cls, test: PlannedTest, outcome: Outcome) -> TestResult:
        return cls(name=test.name, score=outcome.score, max_score=outcome.max_score,
                   status=outcome.status, message=outcome.message, task=test.task,
                   nodeid=test.nodeid, seconds=outcome.seconds)


@dataclass
class ExerciseResult:
    """One exercise of one submission: its tests, and what to tell about the run."""

    id: str
    score: float
    max_score: float
    tests: list[TestResult] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    @classmethod
    def of_tests(cls, exercise_id: str, tests: list[TestResult], message: str = "") -> ExerciseResult:
        """The tests' points summed up, and their time (tests that ran side
        by side each count their own time)."""
        return cls(exercise_id, sum(t.score for t in tests), sum(t.max_score for t in tests),
                   tests, message=message, seconds=sum(t.seconds for t in tests))

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("id")
        return data


# -- the writer ---------------------------------------------------------------

def _line(kind: str, **values) -> str:
    """One record as a line of JSON; its fields must be exactly the kind's."""
    expected = FIELDS[kind]
    if set(values) != set(expected):
        raise ValueError(f"a {kind!r} record has the fields {expected}, not {tuple(values)}")
    return json.dumps({KIND: kind, **values}) + "\n"


class Writer:
    """Writes a results file as the run goes: each record is on disk (flushed)
    as soon as its method returns. The file is emptied when opened, unless
    `append` (a second writer: the xdist worker that writes the plan, which
    only its workers collect). Every record is appended with one write, so
    two writers never mix their lines."""

    def __init__(self, path: Path | str, append: bool = False) -> None:
        if not append:
            Path(path).write_text("", encoding="utf-8")
        self._out = open(path, "a", encoding="utf-8")

    def _write(self, kind: str, **values) -> None:
        if not self._out.closed:
            self._out.write(_line(kind, **values))
            self._out.flush()

    def plan(self, seed: int, tests: list[PlannedTest]) -> None:
        self._write(PLAN, version=VERSION, seed=seed, tests=[asdict(t) for t in tests])

    def start(self, nodeid: str) -> None:
        self._write(START, nodeid=nodeid)

    def result(self, nodeid: str, outcome: Outcome) -> None:
        self._write(RESULT, nodeid=nodeid, **asdict(outcome))

    def end(self, exitstatus: int, tests: list[tuple[PlannedTest, Outcome]]) -> None:
        """The summary of a finished run; the file is closed after it."""
        self._write(END, version=VERSION, exitstatus=exitstatus,
                    tests=[{**asdict(test), **asdict(outcome)} for test, outcome in tests])
        self.close()

    def close(self) -> None:
        self._out.close()


# -- the reader ---------------------------------------------------------------

@dataclass
class Run:
    """A results file as read back, however far its run got."""

    version: int | None = None          # the format it says it is in; None: no plan, no end
    plan: list[PlannedTest] | None = None
    started: list[str] = field(default_factory=list)        # nodeids, in order
    finished: dict[str, Outcome] = field(default_factory=dict)
    summary: list[tuple[PlannedTest, Outcome]] | None = None  # a finished run's end record
    exitstatus: int | None = None

    @property
    def readable(self) -> bool:
        """The file holds a plan or an end in the format this grader reads."""
        return self.version == VERSION

    @property
    def running(self) -> str | None:
        """The last test that had started and not finished when the file ends."""
        running = self.running_all
        return running[-1] if running else None

    @property
    def running_all(self) -> list[str]:
        """Every test that had started and not finished when the file ends
        (several, when the run's tests ran side by side)."""
        return [nodeid for nodeid in self.started if nodeid not in self.finished]


def _planned(values: dict) -> PlannedTest:
    return PlannedTest(**{name: values.get(name) for name in TEST_FIELDS})


def _outcome(values: dict) -> Outcome:
    return Outcome(**{name: values[name] for name in RESULT_FIELDS})


def _records(path: Path) -> list[dict]:
    """Every whole record of the file; a line cut short by a kill is not
    valid JSON and is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    records = []
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get(KIND) in FIELDS:
            records.append(record)
    return records


def read(path: Path | str) -> Run:
    """The results file at `path` (missing: an empty Run). A file in another
    format version gives only that version: its fields may mean other things."""
    records = _records(Path(path))
    plan = next((r for r in records if r[KIND] == PLAN), None)
    end = next((r for r in reversed(records) if r[KIND] == END), None)
    header = end or plan
    run = Run(version=header.get("version") if header else None)
    if not run.readable:
        return run
    if plan is not None:
        run.plan = [_planned(t) for t in plan["tests"]]
    run.started = [r["nodeid"] for r in records if r[KIND] == START]
    run.finished = {r["nodeid"]: _outcome(r) for r in records if r[KIND] == RESULT}
    if end is not None:
        run.summary = [(_planned(t), _outcome(t)) for t in end["tests"]]
        run.exitstatus = end["exitstatus"]
    return run
