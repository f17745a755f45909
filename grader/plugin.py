"""socklab's pytest plugin (registered through the pytest11 entry point).

It gives every suite the same few things: which submission to test
(--submission), a clean copy of the student's files for each test, fixtures
that spawn programs and connect clients and clean up after themselves,
seeded randomness, points and task markers, failure messages written for a
student, and a JSON record of every test's result for `socklab grade`."""

from __future__ import annotations

import os
import sys
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from grader import results
from grader.course import manifest, readme
from grader.course.submission import Snapshot, locate, snapshot
from grader.harness import bounded, gates, ports, sandbox, turns, waits
from grader.harness.failure import GradingFailure
from grader.harness.launch import start_server as _start_server
from grader.harness.module_calls import student_modules
from grader.harness.program import Limits, Program, python_argv
from grader.harness.transcript import Transcript
from grader.testkit.line_client import LineClient
from grader.testkit.unix_sockets import SOCKET_FOLDERS

STATE = pytest.StashKey["SocklabState"]()
TRANSCRIPT = pytest.StashKey[Transcript]()
ORDER = pytest.StashKey[int]()


GATES_FOLDER = "SOCKLAB_GATES"   # environment: the run's gates folder, for its xdist workers


def _gates_folder(config: pytest.Config, temp_root: Path) -> Path:
    """Where the run's gates keep their verdicts, shared by all its workers:
    made by the process that starts the run (and that xdist starts its
    workers from, which inherit the environment), read by the workers."""
    if hasattr(config, "workerinput") and os.environ.get(GATES_FOLDER):
        return Path(os.environ[GATES_FOLDER])
    folder = temp_root / "gates"
    folder.mkdir()
    os.environ[GATES_FOLDER] = str(folder)
    return folder


class SocklabState:
    """What the plugin keeps for one pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.submission: Path | None = config.getoption("socklab_submission")
        self.seed = _session_seed(config)
        self.results_path: str | None = config.getoption("socklab_results")
        self.temp_root = Path(tempfile.mkdtemp(prefix="socklab-"))
        self.snapshots: dict[str, Snapshot] = {}
        self.gate_books: dict[str, gates.Book] = {}     # exercise id -> its gates
        self.gates_folder = _gates_folder(config, self.temp_root)
        self.turn: turns.Turn | None = None             # the turn held (see pytest_runtest_protocol)

    def snapshot_for(self, exercise: manifest.Exercise, test_path: Path) -> Snapshot:
        if exercise.id not in self.snapshots:
            if self.submission is not None:
                source = locate(self.submission, exercise)
            elif test_path.is_relative_to(manifest.EXERCISES_DIR):
                source = exercise.folder  # a student running the visible tests
            else:
                raise pytest.UsageError(
                    f"{test_path} is a hidden suite: say which submission to grade "
                    "with --submission DIR (for example --submission solutions)")
            dest = self.temp_root / "submitted" / exercise.id
            dest.mkdir(parents=True)
            self.snapshots[exercise.id] = snapshot(source, exercise, dest)
        return self.snapshots[exercise.id]


def _session_seed(config: pytest.Config) -> int:
    given = config.getoption("socklab_seed") or os.environ.get("SOCKLAB_SEED")
    if given:
        return int(given)
    workerinput = getattr(config, "workerinput", None)
    if workerinput:  # xdist: every worker derives the same seed
        return int(workerinput["testrunuid"][:8], 16)
    return random.SystemRandom().randrange(1, 10**9)


# -- configuration ------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("socklab")
    group.addoption("--submission", dest="socklab_submission", type=Path, default=None,
                    help="test this submission (a folder laid out like exercises/, or one "
                         "exercise folder) instead of the exercise folder itself")
    group.addoption("--socklab-seed", dest="socklab_seed", default=None,
                    help="seed for the random messages, counts and names (printed on failure)")
    group.addoption("--socklab-results", dest="socklab_results", default=None,
                    help="write every test's result and points as JSON to this file")
    group.addoption("--socklab-sandbox", dest="socklab_sandbox", default="off",
                    choices=sandbox.MODES,
                    help="run each student program in the grading sandbox: off (a student's "
                         "own run), auto (where the machine allows, with a warning where it "
                         "does not) or require (fail where it cannot); socklab grade sets it")
    group.addoption("--socklab-net-per-worker", dest="socklab_net_per_worker", action="store_true",
                    help="give each pytest-xdist worker a network namespace of its own (root), "
                         "so that a test's programs see no other test's sockets; socklab grade "
                         "sets it when it isolates the network")
    group.addoption("--socklab-task", dest="socklab_tasks", action="append", default=None,
                    metavar="N", help="run only the tests of README task N (repeatable; "
                                      "'general' selects the tests that belong to no task)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): what the test is worth when graded")
    config.addinivalue_line("markers", "task(n): the README task the test checks")
    config.addinivalue_line("markers", "alone(why): run with no other test of any grading on "
                                       "the machine (it loads the machine)")
    config.addinivalue_line("markers", "quiet(why, seconds=1): run beside no test but other "
                                       "quiet ones (it measures a program: its CPU, how soon it "
                                       "answers); seconds: about how long it takes")
    if config.getoption("socklab_net_per_worker") and hasattr(config, "workerinput"):
        # Tests run one at a time in a worker, as they did in one exercise's
        # run: a program under test reaches its own test's sockets, never
        # those of a test running beside it in another worker.
        try:
            sandbox.unshare(sandbox.CLONE_NEWNET)
            sandbox.bring_loopback_up()
        except OSError as exc:
            raise pytest.UsageError(f"cannot give this worker a network of its own: {exc}")
    state = SocklabState(config)
    config.stash[STATE] = state
    sandbox.use(config.getoption("socklab_sandbox"))
    if state.results_path:
        workerinput = getattr(config, "workerinput", None)
        if workerinput is None:
            config.pluginmanager.register(ResultRecorder(state), "socklab-results")
        elif workerinput.get("workerid") == "gw0":  # with xdist only workers collect
            config.pluginmanager.register(PlanWriter(state), "socklab-plan")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        shutil.rmtree(state.temp_root, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    where = state.submission or "each exercise's own folder"
    return [f"socklab: submission {where}, seed {state.seed} (rerun with --socklab-seed {state.seed})"]


def _marker_arg(item: pytest.Item, name: str, default):
    marker = item.get_closest_marker(name)
    return marker.args[0] if marker and marker.args else default


def task_of(item: pytest.Item) -> int | None:
    """The README task a test checks: a number, or a topic of a shared test
    class that the suite's module maps to a number in its TASKS dict."""
    task = _marker_arg(item, "task", None)
    if isinstance(task, str):
        task = getattr(getattr(item, "module", None), "TASKS", {}).get(task)
    return task


def group_of(item: pytest.Item) -> str:
    """The test group a test belongs to: its task number, or 'general'."""
    task = task_of(item)
    return "general" if task is None else str(task)


def turn_kind(item: pytest.Item | None) -> str | None:
    """The turn a test takes (grader.harness.turns): ALONE or QUIET when
    marked so, else SHARED; None for no test."""
    if item is None:
        return None
    for kind in (turns.ALONE, turns.QUIET):
        if item.get_closest_marker(kind) is not None:
            return kind
    return turns.SHARED


def expected_seconds(item: pytest.Item) -> float:
    """What a quiet test says it takes (`quiet(why, seconds=N)`), else 1: a
    hint that spreads the quiet tests evenly over the workers."""
    marker = item.get_closest_marker(turns.QUIET)
    return float(marker.kwargs.get("seconds", 1.0)) if marker is not None else 1.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """Each test takes its turn (grader.harness.turns): beside the others,
    or apart when marked `alone` or `quiet`. Those run in rows (see
    pytest_collection_modifyitems) and keep their turn from one test of the
    row to the next: the machine empties once for the row, not once each."""
    state: SocklabState = item.config.stash[STATE]
    if manifest.for_path(item.path) is None:
        # Not a graded test (say, the project's own tests, which start
        # gradings): it holds no turn, or a grading it waits for could wait
        # for it in turn.
        return (yield)
    if state.turn is None:
        state.turn = turns.Turn(turn_kind(item))
        state.turn.take()
    try:
        return (yield)
    finally:
        if state.turn.kind == turns.SHARED or turn_kind(nextitem) != state.turn.kind:
            state.turn.give_back()
            state.turn = None


@pytest.hookimpl(tryfirst=True)  # before ResultRecorder lists what will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The alone tests in a row at the start of the first worker's run, the
    # quiet ones at the start of the others'; one worker runs each module's
    # first test first (turns.arrange). The order is
    # the same in every worker: each collects the same tests the same way.
    for index, item in enumerate(items):
        item.stash[ORDER] = index   # the reports list the tests in the suites' order
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    order = turns.arrange([turn_kind(item) for item in items], workers,
                          [expected_seconds(item) for item in items],
                          [str(item.path) for item in items])
    items[:] = [items[i] for i in order]
    wanted = config.getoption("socklab_tasks")
    if not wanted:
        return
    keep = [item for item in items if group_of(item) in wanted]
    dropped = [item for item in items if group_of(item) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# -- fixtures -----------------------------------------------------------------

@pytest.fixture(autouse=True)
def _gates(request: pytest.FixtureRequest):
    """Give the gates (grader.harness.gates) the running test: its
    exercise's book, and how its failures read."""
    exercise = manifest.for_path(request.path)
    if exercise is None:
        yield
        return
    state: SocklabState = request.config.stash[STATE]
    item = request.node
    if exercise.id not in state.gate_books:
        state.gate_books[exercise.id] = gates.Book(state.gates_folder / exercise.id)
    gates.activate(gates.Context(book=state.gate_books[exercise.id], test=item.name,
                                 describe=lambda exc: _render(item, exc, footer=False)))
    yield
    gates.activate(None)


@pytest.fixture
def exercise(request: pytest.FixtureRequest) -> manifest.Exercise:
    """The manifest entry of the exercise this test file belongs to."""
    found = manifest.for_path(request.path)
    if found is None:
        raise pytest.UsageError(f"{request.path} is not inside an exercise folder")
    if not found.supported_here():
        pytest.skip(f"{found.id} needs {' or '.join(found.platforms)}; this is {sys.platform}")
    return found


@pytest.fixture
def submitted(request: pytest.FixtureRequest, exercise: manifest.Exercise) -> Path:
    """The folder of the student's files as submitted: copied once, before
    any program ran, and never shown to a program (each test's program gets
    its own copy in `workdir`, which it may rewrite). Source rules read
    their files here, not in `workdir`. Read it; never write to it."""
    state: SocklabState = request.config.stash[STATE]
    snap = state.snapshot_for(exercise, request.path)
    if not snap.complete:
        raise GradingFailure(
            did=f"looked for your files for {exercise.id}: {', '.join(exercise.files)}",
            expected="every file the exercise asks for, as a plain file",
            got="; ".join(snap.problems),
        )
    return snap.folder


@pytest.fixture
def workdir(request: pytest.FixtureRequest, submitted: Path) -> Path:
    """A fresh folder holding a copy of the student's files, for this test only."""
    state: SocklabState = request.config.stash[STATE]
    folder = bounded.make(state.temp_root, "run-")
    for path in submitted.iterdir():
        shutil.copyfile(path, folder / path.name)
    yield folder
    bounded.remove(folder)


@pytest.fixture
def transcript(request: pytest.FixtureRequest) -> Transcript:
    """This test's record of the conversation (shown when the test fails)."""
    record = Transcript()
    request.node.stash[TRANSCRIPT] = record
    return record


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Randomness that is different for every test and run, yet replayable
    with --socklab-seed."""
    seed = request.config.stash[STATE].seed
    return random.Random(f"{seed}:{request.node.nodeid}")


@pytest.fixture
def free_port():
    """A factory of ports nobody else is using (see grader.harness.ports)."""
    return ports.free_port


@pytest.fixture
def spawn(workdir: Path, transcript: Transcript, request: pytest.FixtureRequest):
    """A factory that starts one of the student's files as a program:
    spawn("tcp_server.py", port, name="server", limits=Limits(...)).
    Every program it started is killed and reaped after the test."""
    state: SocklabState = request.config.stash[STATE]
    programs: list[Program] = []

    def start(script: str, *args, name: str = "program", limits: Limits | None = None) -> Program:
        needs_imports(workdir, script)
        limits = limits or Limits()
        # Its stderr's folder holds that one file, at most file_bytes of it.
        log_dir = bounded.make(state.temp_root, "logs-", limits.file_bytes + (1 << 20))
        program = Program(python_argv(workdir / script, *args), cwd=workdir,
                          transcript=transcript, name=name, limits=limits,
                          log_dir=log_dir, writable=request.node.stash.get(SOCKET_FOLDERS, []))
        programs.append((program, log_dir))
        return program

    yield start
    for program, log_dir in programs:
        program.stop()
        bounded.remove(log_dir)


def needs_imports(workdir: Path, script: str) -> None:
    """A program that imports a student's module whose import never ended
    (in a module check: grader.harness.gates.module_import) fails at once."""
    try:
        source = (workdir / script).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    modules = gates.imported_modules(source, student_modules(workdir) - {Path(script).stem})
    gates.require(*map(gates.module_import, sorted(modules)))


@pytest.fixture
def start_server(spawn, free_port, request: pytest.FixtureRequest):
    """start_server("chat_server.py", lambda port: [port, 5],
    lambda port: r"started the main poll loop") -> (program, port).
    Its ready line is a gate (grader.harness.gates) for that command line:
    once it failed, every later start of the same command fails at once,
    and so does every start of the same script with other arguments when
    the suite's usual command line (its ServerSpec's) is the one that failed."""
    def start(script, args, ready, name="server", timeout=None, usual=None):
        # `usual`: the usual command line of the server that `script` runs,
        # when it is a launcher around the student's (default: the suite's
        # own usual command line for `script`, see usual_command).
        return _start_server(spawn, free_port, script, args, ready, name=name,
                             timeout=waits.READY if timeout is None else timeout,
                             command=gates.command_shape(script, args),
                             usual=usual or usual_command(request.module, script))
    return start


def usual_command(module, script: str) -> str | None:
    """The command line (a gates.command_shape) of the server spec for
    `script` that the suite module defines, if it defines exactly one: a
    module-level object with that `script`, and `args` and `ready`
    functions of a port (grader.testkit.suites.server_rules.ServerSpec,
    which the student's release does not ship, hence no import of it)."""
    found = {gates.command_shape(spec.script, spec.args) for spec in vars(module).values()
             if getattr(spec, "script", None) == script and callable(getattr(spec, "args", None))
             and callable(getattr(spec, "ready", None))}
    return found.pop() if len(found) == 1 else None


@pytest.fixture
def server_spec(request: pytest.FixtureRequest):
    """The suite module's `SPEC` (a grader.testkit.suites.server_rules.ServerSpec):
    how to start its server. A suite may define its own fixture instead."""
    spec = getattr(request.module, "SPEC", None)
    if spec is None:
        raise pytest.UsageError(f"{request.path} uses a server but defines no SPEC")
    return spec


@pytest.fixture
def server(server_spec, start_server):
    """The suite's server, started on a free port: (program, port)."""
    return start_server(server_spec.script, server_spec.args, server_spec.ready)


@pytest.fixture
def connect(transcript: Transcript):
    """A factory of line clients: connect(port, name="alice", host="127.0.0.1").
    Every client it opened is closed after the test."""
    clients: list[LineClient] = []

    def open_client(port: int, name: str | None = None, host: str = "127.0.0.1",
                    timeout: float = waits.REPLY) -> LineClient:
        name = name or f"client{len(clients) + 1}"
        try:
            client = LineClient(port, transcript, name=name, host=host, timeout=timeout)
        except OSError as exc:
            raise GradingFailure(
                did=f"{name} connected to {host}:{port}",
                expected="the connection is accepted: the server listens on that port",
                got=f"the connection failed: {exc.strerror or exc}. A ready line printed "
                    "before listen(), or no socket at all, looks like this.") from None
        client.ordinal = gates.client_connected(port, client.sock.getsockname()[1])
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close(note=False)


# -- reporting ----------------------------------------------------------------

VERDICT = "socklab_verdict"     # a report's user property: it failed on a GradingFailure


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if call.when == "call":     # did each server accept its first client? (a gate)
        failed = call.excinfo.value if call.excinfo is not None else None
        gates.settle_accepts(failed if isinstance(failed, GradingFailure) else None,
                             patience=waits.REPLY)
    report = yield
    if report.failed and call.excinfo is not None and isinstance(call.excinfo.value, GradingFailure):
        report.longrepr = _render(item, call.excinfo.value)
        report.user_properties.append((VERDICT, True))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A verdict on the student's program reached while a test was being
    set up (its server never started, a gate was closed) is a failed test,
    as it is in the grades: pytest's "error" is kept for faults of the
    grader itself."""
    if report.when == "setup" and report.failed and \
            any(prop[0] == VERDICT for prop in getattr(report, "user_properties", ())):
        return "failed", "F", "FAILED"
    return None


def _render(item: pytest.Item, failure: GradingFailure, footer: bool = True) -> str:
    """Our failure text: the verdict, the transcript, each program's output,
    and (with `footer`) the seed and where to read up."""
    # At most failure.MESSAGE_CHARS long: each part is cut in the middle as
    # needed (the reports rely on this cap), and control characters any part
    # quotes from a program are escaped (grader.harness.visible_text).
    from grader.harness.failure import MESSAGE_CHARS, fit_sections
    from grader.harness.visible_text import visible
    transcript = item.stash.get(TRANSCRIPT, None)
    state: SocklabState = item.config.stash[STATE]
    sections = [f"{item.name}\n\n{failure.render()}"]
    if isinstance(failure, gates.GateClosed):
        pass    # what matters is in the message of the test that closed the gate
    elif transcript is not None:
        sections.append("Transcript (time since the test started, who, -> sent / <- received):\n"
                        + transcript.render())
        sections += [program.output_tail() for program in transcript.programs]
    exercise = manifest.for_path(item.path)
    task = task_of(item)
    if not footer:
        return fit_sections([visible(text) for text in sections], MESSAGE_CHARS)
    footer = f"Seed: {state.seed} (replay with --socklab-seed {state.seed})"
    if exercise is not None:
        where = readme.pointer(exercise, task)  # the README heading, word for word
        footer = f"Read more: {where}\n{footer}"
    sections.append(footer)
    return fit_sections([visible(text) for text in sections], MESSAGE_CHARS)


def _text(longrepr) -> str:
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2])
    return str(longrepr)


def in_suite_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """`items` as the suites list them (the run puts the alone ones first)."""
    return sorted(items, key=lambda item: item.stash.get(ORDER, 0))


def planned_test(item: pytest.Item) -> results.PlannedTest:
    exercise = manifest.for_path(item.path)
    return results.PlannedTest(nodeid=item.nodeid, name=item.name,
                               exercise=exercise.id if exercise else None,
                               points=_marker_arg(item, "points", 0), task=task_of(item))


class PlanWriter:
    """With pytest-xdist, the first worker writes the plan: the tests its
    collection found (every worker finds the same), before any test runs."""

    def __init__(self, state: SocklabState) -> None:
        self.state = state

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # After every hook changed the items (xdist adds its group to the
        # nodeids), so the plan names the tests as their reports will.
        writer = results.Writer(self.state.results_path, append=True)
        writer.plan(self.state.seed, [planned_test(item) for item in in_suite_order(session.items)])
        writer.close()


class ResultRecorder:
    """Writes each test's outcome and points to the results file as the run
    goes (grader.results.Writer): the plan after collection, a line when a
    test starts, a line when it ends, the summary when the session ends. A
    run the grader has to kill still leaves every finished test's points
    and the name of the test that was running. Registered only where tests
    run in this process (never in an xdist worker)."""

    def __init__(self, state: SocklabState) -> None:
        self.state = state
        self.writer = results.Writer(state.results_path)   # emptied now, each line flushed
        self.planned: dict[str, results.PlannedTest] = {}
        self.reports: dict[str, tuple[str, str]] = {}       # nodeid -> (status, message) so far
        self.seconds: dict[str, float] = {}                 # nodeid -> its phases' time so far

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in in_suite_order(items):
            self.planned[item.nodeid] = planned_test(item)
        self.writer.plan(self.state.seed, list(self.planned.values()))

    def _plan(self) -> dict[str, results.PlannedTest]:
        """The plan: collected here, or (xdist) written by the first worker."""
        if not self.planned:
            plan = results.read(self.state.results_path).plan or []
            self.planned = {test.nodeid: test for test in plan}
        return self.planned

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._plan()
        self.writer.start(nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + (report.duration or 0.0)
        status, message = self.reports.get(report.nodeid, (results.PASSED, ""))
        if report.skipped and status == results.PASSED:
            status, message = results.SKIPPED, _text(report.longrepr)
        elif report.failed and status != results.FAILED:
            prefix = "cleanup after the test failed:\n" if report.when == "teardown" else ""
            status, message = results.FAILED, prefix + _text(report.longrepr)
        self.reports[report.nodeid] = (status, message)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        test = self._plan().get(nodeid)
        if test is not None:
            self.writer.result(nodeid, self._outcome(test))

    def _outcome(self, test: results.PlannedTest) -> results.Outcome:
        """How `test` ended, from what pytest reported so far."""
        status, message = self.reports.get(test.nodeid, (results.NOT_RUN, "the test did not run"))
        earned = test.points if status == results.PASSED else 0
        # A test skipped for the platform (say, Linux-only) checked
        # nothing: it neither earns nor costs points.
        most = 0 if status == results.SKIPPED else test.points
        return results.Outcome(status=status, score=earned, max_score=most, message=message,
                               seconds=round(self.seconds.get(test.nodeid, 0.0), 3))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.writer.end(int(exitstatus), [(test, self._outcome(test)) for test in self._plan().values()])
