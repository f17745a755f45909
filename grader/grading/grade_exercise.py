"""Grade exercises of one submission: run their hidden and visible suites in
one separate pytest process with a pinned configuration (its tests spread
over the submission's share of the machine's workers, see budget), and
read back every test's result, exercise by exercise. The grader's own
process never imports student code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import results
from grader.course import manifest
from grader.course.submission import link_problem, locate
from grader.grading import budget
from grader.harness import sandbox, turns
from grader.harness.jail import LEFTOVER_PREFIX
from grader.results import ExerciseResult, Outcome, TestResult

GRADING_INI = Path(__file__).resolve().parent / "grading.ini"
EXERCISE_TIMEOUT = 600  # seconds for a whole exercise, whatever its tests do
WORK_BYTES = 256 << 20  # the run folders, logs and temp files of one exercise's grading...
WORK_BYTES_MOST = 1 << 30   # ...and of a whole run, however many exercises it grades


def pytest_command(exercise: manifest.Exercise | list[manifest.Exercise], submission: Path,
                   results_file: Path, select: str | None = None, tasks: list[str] | None = None,
                   hidden: bool = True, visible: bool = True,
                   sandbox_mode: str = "auto", workers: int = 1,
                   net_per_worker: bool = False) -> list[str]:
    """The pinned pytest command line that grades `exercise` (or a list of
    them) of `submission`, its tests spread over `workers` pytest-xdist
    workers when more than one. `tasks` keeps only those test groups
    ("1", "2", ..., "general")."""
    exercises = exercise if isinstance(exercise, list) else [exercise]
    tests = [str(p) for e in exercises for p in (e.hidden_tests() if hidden else [])
             + (e.visible_tests() if visible else [])]
    cmd = [sys.executable, "-m", "pytest", "-c", str(GRADING_INI),
           "--rootdir", str(manifest.COURSE_ROOT), "-p", "grader.plugin", "-p", "pytest_timeout",
           "--submission", str(submission), "--socklab-results", str(results_file),
           "--socklab-sandbox", sandbox_mode, "-q", "--no-header", "-rN", *tests]
    if workers > 1:
        # worksteal: a worker that ran out of tests takes over another's
        # queue, so a few long tests do not leave the rest of the run idle.
        cmd += ["-p", "xdist.plugin", "-n", str(workers), "--dist", "worksteal"]
        if net_per_worker:
            cmd.append("--socklab-net-per-worker")
    if select:
        cmd += ["-k", select]
    for task in tasks or ():
        cmd += ["--socklab-task", str(task)]
    return cmd


def pytest_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PYTHON")) and k != "SOCKLAB_SEED"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins named above
    if "SOCKLAB_SEED" in os.environ:
        env["SOCKLAB_SEED"] = os.environ["SOCKLAB_SEED"]
    return env


def jail_command(command: list[str], isolate_net: bool = False,
                 work: Path | None = None, work_bytes: int = WORK_BYTES) -> list[str]:
    """`command` run under grader.harness.jail, which outlives nothing it starts."""
    return [sys.executable, "-m", "grader.harness.jail", *(["--isolate-net"] if isolate_net else []),
            *(["--work", str(work), "--work-bytes", str(work_bytes)] if work else []),
            "--", *command]


def _stop(proc: subprocess.Popen) -> bytes:
    """Ask the jail to sweep its tree (SIGTERM); kill the group if it is slow."""
    try:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    return output


def grade_exercise(exercise: manifest.Exercise, submission: Path, select: str | None = None,
                   timeout: float = EXERCISE_TIMEOUT, tasks: list[str] | None = None,
                   isolate_net: bool | None = None, hidden: bool = True,
                   workers: int | None = None) -> ExerciseResult:
    """One exercise (see grade_exercises). `hidden=False` runs the visible
    tests only, in one process: a student's own view (`socklab status`)."""
    return grade_exercises([exercise], submission, select, timeout, tasks, isolate_net, hidden,
                           workers)[0]


def grade_exercises(exercises: list[manifest.Exercise], submission: Path,
                    select: str | None = None, timeout: float = EXERCISE_TIMEOUT,
                    tasks: list[str] | None = None, isolate_net: bool | None = None,
                    hidden: bool = True, workers: int | None = None,
                    turns_at: Path | None = None) -> list[ExerciseResult]:
    """Grade `exercises` of `submission` in one pytest run under the jail,
    its tests spread over `workers` (default: the whole machine's budget,
    see budget.workers). `timeout` is per exercise: the run may take that
    long for each exercise it grades. `isolate_net` None: a network
    namespace of its own where the machine allows. `turns_at`: the folder
    where every grading on the machine takes its turns (grader.harness.turns;
    default: this run's own)."""
    started = time.monotonic()
    if isolate_net is None:
        isolate_net = sandbox.network_isolation_available()
    results: dict[str, ExerciseResult] = {}
    runnable = []
    for exercise in exercises:
        source = locate(submission, exercise)
        refused = link_problem(source) if source is not None else None
        if source is None:
            results[exercise.id] = ExerciseResult(
                exercise.id, 0, exercise.points,
                message=f"no folder {exercise.id}/ (or its files {', '.join(exercise.files)}) "
                        f"in {submission}")
        elif refused is not None:  # root/<id> is a link (the root itself was resolved)
            results[exercise.id] = ExerciseResult(exercise.id, 0, exercise.points, message=refused)
        else:
            runnable.append(exercise)
    if runnable:
        if workers is None:     # a few chosen tests, or a student's view: one process
            workers = budget.workers(exercises=len(runnable)) if hidden and not select else 1
        limit = timeout * len(runnable)
        results.update(_run(runnable, Path(submission).resolve(), select, limit, tasks,
                            isolate_net, hidden, workers, turns_at))
    if len(exercises) == 1:     # its own run: the run's time, start-up included
        results[exercises[0].id].seconds = time.monotonic() - started
    return [results[e.id] for e in exercises]


def _run(exercises: list[manifest.Exercise], submission: Path, select: str | None,
         limit: float, tasks: list[str] | None, isolate_net: bool, hidden: bool,
         workers: int, turns_at: Path | None) -> dict[str, ExerciseResult]:
    """One pinned pytest run of `exercises`, killed after `limit` seconds."""
    with tempfile.TemporaryDirectory(prefix="socklab-grade-") as tmp:
        results_file = Path(tmp) / "results.json"
        work = Path(tmp) / "work"
        work.mkdir()
        # A student's own run of the visible tests (hidden=False, `socklab
        # status`) needs no sandbox, as `pytest exercises/...` has none.
        cmd = jail_command(pytest_command(exercises, submission, results_file, select, tasks,
                                          hidden=hidden, sandbox_mode="auto" if hidden else "off",
                                          workers=workers, net_per_worker=isolate_net),
                           isolate_net, work,
                           work_bytes=min(WORK_BYTES_MOST, WORK_BYTES * len(exercises)))
        env = pytest_environment()
        # Everything the run creates lives below our folder, which goes away
        # below even if the run had to be killed before it could clean up
        # (and on a tmpfs of WORK_BYTES, where the jail can mount one).
        env["TMPDIR"] = str(work)
        # Turns taken where the caller says, else where the environment says
        # (every grading on this machine), else this run's own.
        env.update(turns.prepare(turns_at or turns.folder() or Path(tmp) / "turns"))
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            output = _stop(proc)
            timed_out = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the run left behind
            except ProcessLookupError:
                pass
        text = output.decode("utf-8", errors="replace")
        results = _read_run(exercises, results_file, text, stopped_after=limit if timed_out else None)
    # On a timeout the jail stops the whole run by design: nothing to report.
    leftovers = [line for line in text.splitlines()
                 if line.startswith(LEFTOVER_PREFIX)] if not timed_out else []
    if leftovers:   # the run's, not one exercise's: said on the first row
        first = results[exercises[0].id]
        first.message = (first.message + " " + leftovers[-1].replace(
            "socklab-jail: ", "after the tests, the grader ")).strip()
    return results


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _read_results(exercise: manifest.Exercise, path: Path, output: str,
                  stopped_after: float | None = None) -> ExerciseResult:
    """One exercise's result from a results file (see _read_run)."""
    return _read_run([exercise], path, output, stopped_after)[exercise.id]


def _read_run(exercises: list[manifest.Exercise], path: Path, output: str,
              stopped_after: float | None = None) -> dict[str, ExerciseResult]:
    """Each exercise's result from the results file, however far the run
    got. `stopped_after`: the run was killed at its time limit (that many
    seconds). A finished run's summary is taken as it is; otherwise the
    tests that finished keep their points, those that were running score 0
    with a message naming them, and the rest are "not run"."""
    run = results.read(path)
    tail = "\n".join(output.splitlines()[-30:])
    if not run.readable:
        if run.version is not None:
            why = (f"results in format version {run.version}, where this grader "
                   f"reads version {results.VERSION}")
        elif stopped_after is not None:
            why = f"no test had started after {stopped_after:g} s, when it was stopped"
        else:
            why = "no results"
        return {e.id: ExerciseResult(e.id, 0, e.points,
                                     message=f"the test run for {e.id} produced {why} (a grader "
                                             f"problem, not yours). Its output ended with:\n{tail}")
                for e in exercises}
    if run.summary is not None:
        by_exercise = _by_exercise(exercises, [TestResult.of(t, o) for t, o in run.summary],
                                   [t for t, _ in run.summary])
        found = {i: ExerciseResult.of_tests(i, tests) for i, tests in by_exercise.items()}
        if run.exitstatus not in (0, 1):
            for result in found.values():
                result.message = f"pytest ended with status {run.exitstatus}"
        return found

    running = set(run.running_all)
    names = {t.nodeid: t.name for t in run.plan}
    tests = []
    for test in run.plan:
        if test.nodeid in run.finished:
            outcome = run.finished[test.nodeid]
        elif test.nodeid in running:
            if stopped_after is not None:
                why = (f"grading stopped after {stopped_after:g} s while `{test.name}` was running: "
                       "it had not finished when the time for grading ran out. A program that "
                       "stops answering (it waits for something that never comes, or loops "
                       "forever) keeps a test waiting like this.")
            else:
                why = (f"the test run stopped while `{test.name}` was running, before it finished "
                       "(a grader problem, not yours)")
            outcome = Outcome(results.FAILED, 0, test.points, why)
        elif stopped_after is not None:
            outcome = Outcome(results.NOT_RUN, 0, test.points,
                              f"not run: grading stopped after {stopped_after:g} s, before this "
                              "test started")
        else:
            outcome = Outcome(results.NOT_RUN, 0, test.points,
                              "not run: the test run stopped before this test started")
        tests.append(TestResult.of(test, outcome))
    found = {}
    for exercise_id, mine in _by_exercise(exercises, tests, run.plan).items():
        result = ExerciseResult.of_tests(exercise_id, mine)
        found[exercise_id] = result
        cut = [names[t.nodeid] for t in mine if t.nodeid in running]
        waiting = sum(t.status == results.NOT_RUN for t in mine)
        if not cut and not waiting:
            continue    # all of this exercise's tests finished before the run stopped
        if cut:
            where = f" while {_names(cut)} {'was' if len(cut) == 1 else 'were'} running"
        else:
            where = " between two tests" if run.started else " before any test started"
        summary = _what_was_kept(sum(t.nodeid in run.finished for t in mine),
                                 _names(cut) if cut else None, waiting)
        if stopped_after is not None:
            result.message = (f"grading {exercise_id} took longer than {stopped_after:g} s and was "
                              f"stopped{where}: {summary}.")
        else:
            result.message = (f"the test run for {exercise_id} ended early{where} (a grader "
                              f"problem, not yours): {summary}. Its output ended with:\n{tail}")
    return found


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _by_exercise(exercises: list[manifest.Exercise], tests: list[TestResult],
                 planned: list) -> dict[str, list[TestResult]]:
    """The tests of each exercise, in run order (every exercise present)."""
    grouped: dict[str, list[TestResult]] = {e.id: [] for e in exercises}
    for test, plan in zip(tests, planned):
        exercise_id = plan.exercise if plan.exercise in grouped else exercises[0].id
        grouped[exercise_id].append(test)
    return grouped


def _what_was_kept(done: int, running: str | None, waiting: int) -> str:
    """'the 3 tests that finished keep their points; `test_x` and the 2
    tests that had not started score 0', in words that fit each count
    (`running`: the running tests' names, quoted)."""
    kept = {0: "no test had finished", 1: "the one test that finished keeps its points"}.get(
        done, f"the {done} tests that finished keep their points")
    if running and waiting:
        return f"{kept}; {running} and the {_plural(waiting, 'test')} that had not started score 0"
    if running:
        return f"{kept}; {running} scores 0"
    if waiting:
        verb = "scores" if waiting == 1 else "score"
        return f"{kept}; the {_plural(waiting, 'test')} that had not started {verb} 0"
    return kept


def grade(submission: Path, exercise_ids: list[str] | None = None,
          select: str | None = None, isolate_net: bool | None = None,
          timeout: float = EXERCISE_TIMEOUT, workers: int | None = None) -> list[ExerciseResult]:
    """A whole submission (or the chosen exercises) in one run."""
    chosen = [manifest.get(i) for i in exercise_ids] if exercise_ids else list(manifest.load())
    return grade_exercises(chosen, Path(submission), select, timeout=timeout,
                           isolate_net=isolate_net, workers=workers)
