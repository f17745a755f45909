"""Grade one exercise of one submission: run its hidden and visible suites
in a separate pytest process with a pinned configuration, and read back
every test's result. The grader's own process never imports student code."""

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
from grader.harness import sandbox
from grader.harness.jail import LEFTOVER_PREFIX
from grader.results import ExerciseResult, Outcome, TestResult

GRADING_INI = Path(__file__).resolve().parent / "grading.ini"
EXERCISE_TIMEOUT = 600  # seconds for a whole exercise, whatever its tests do
WORK_BYTES = 256 << 20  # all the run folders, logs and temp files of one exercise's grading


def pytest_command(exercise: manifest.Exercise, submission: Path, results_file: Path,
                   select: str | None = None, tasks: list[str] | None = None,
                   hidden: bool = True, visible: bool = True,
                   sandbox_mode: str = "auto") -> list[str]:
    """The pinned pytest command line that grades `exercise` of `submission`.
    `tasks` keeps only those test groups ("1", "2", ..., "general")."""
    tests = [str(p) for p in (exercise.hidden_tests() if hidden else [])
             + (exercise.visible_tests() if visible else [])]
    cmd = [sys.executable, "-m", "pytest", "-c", str(GRADING_INI),
           "--rootdir", str(manifest.COURSE_ROOT), "-p", "grader.plugin", "-p", "pytest_timeout",
           "--submission", str(submission), "--socklab-results", str(results_file),
           "--socklab-sandbox", sandbox_mode, "-q", "--no-header", "-rN", *tests]
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
                 work: Path | None = None) -> list[str]:
    """`command` run under grader.harness.jail, which outlives nothing it starts."""
    return [sys.executable, "-m", "grader.harness.jail", *(["--isolate-net"] if isolate_net else []),
            *(["--work", str(work), "--work-bytes", str(WORK_BYTES)] if work else []),
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
                   isolate_net: bool | None = None, hidden: bool = True) -> ExerciseResult:
    """`hidden=False` runs the visible tests only (a student's own view).
    `isolate_net` None: a network namespace of its own where the machine allows."""
    started = time.monotonic()
    if isolate_net is None:
        isolate_net = sandbox.network_isolation_available()
    source = locate(submission, exercise)
    if source is None:
        return ExerciseResult(exercise.id, 0, exercise.points,
                              message=f"no folder {exercise.id}/ (or its files "
                                      f"{', '.join(exercise.files)}) in {submission}")
    refused = link_problem(source)
    if refused is not None:  # root/<id> is a link (the root itself was resolved)
        return ExerciseResult(exercise.id, 0, exercise.points, message=refused,
                              seconds=time.monotonic() - started)
    with tempfile.TemporaryDirectory(prefix="socklab-grade-") as tmp:
        results_file = Path(tmp) / "results.json"
        work = Path(tmp) / "work"
        work.mkdir()
        # A student's own run of the visible tests (hidden=False, `socklab
        # status`) needs no sandbox, as `pytest exercises/...` has none.
        cmd = jail_command(pytest_command(exercise, Path(submission).resolve(), results_file,
                                          select, tasks, hidden=hidden,
                                          sandbox_mode="auto" if hidden else "off"),
                           isolate_net, work)
        env = pytest_environment()
        # Everything the run creates lives below our folder, which goes away
        # below even if the run had to be killed before it could clean up
        # (and on a tmpfs of WORK_BYTES, where the jail can mount one).
        env["TMPDIR"] = str(work)
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
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
        result = _read_results(exercise, results_file, text, stopped_after=timeout if timed_out else None)
    # On a timeout the jail stops the whole run by design: nothing to report.
    leftovers = [line for line in text.splitlines()
                 if line.startswith(LEFTOVER_PREFIX)] if not timed_out else []
    if leftovers:
        result.message = (result.message + " " + leftovers[-1].replace(
            "socklab-jail: ", "after the tests, the grader ")).strip()
    result.seconds = time.monotonic() - started
    return result


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _read_results(exercise: manifest.Exercise, path: Path, output: str,
                  stopped_after: float | None = None) -> ExerciseResult:
    """The exercise's result from the results file, however far the run got.
    `stopped_after`: the run was killed at the exercise's time limit (that
    many seconds). A finished run's summary is taken as it is; otherwise the
    tests that finished keep their points, the one that was running scores
    0 with a message naming it, and the rest are "not run"."""
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
        return ExerciseResult(exercise.id, 0, exercise.points,
                              message=f"the test run for {exercise.id} produced {why} "
                                      f"(a grader problem, not yours). Its output ended with:\n{tail}")
    if run.summary is not None:
        result = ExerciseResult.of_tests(exercise.id, [TestResult.of(t, o) for t, o in run.summary])
        if run.exitstatus not in (0, 1):
            result.message = f"pytest ended with status {run.exitstatus}"
        return result

    running = run.running
    running_name = next((t.name for t in run.plan if t.nodeid == running), running)
    if stopped_after is not None:
        cut = (f"grading stopped after {stopped_after:g} s while `{running_name}` was running: "
               "it had not finished when the time for the whole exercise ran out. A program "
               "that stops answering (it waits for something that never comes, or loops "
               "forever) keeps a test waiting like this.")
        unstarted = f"not run: grading stopped after {stopped_after:g} s, before this test started"
    else:
        cut = (f"the test run stopped while `{running_name}` was running, before it finished "
               "(a grader problem, not yours)")
        unstarted = "not run: the test run stopped before this test started"
    tests = []
    for test in run.plan:
        if test.nodeid in run.finished:
            outcome = run.finished[test.nodeid]
        elif test.nodeid == running:
            outcome = Outcome(results.FAILED, 0, test.points, cut)
        else:
            outcome = Outcome(results.NOT_RUN, 0, test.points, unstarted)
        tests.append(TestResult.of(test, outcome))
    result = ExerciseResult.of_tests(exercise.id, tests)
    if running is not None:
        where = f" while `{running_name}` was running"
    else:
        where = " between two tests" if run.started else " before any test started"
    summary = _what_was_kept(sum(t.nodeid in run.finished for t in tests),
                             running_name if running is not None else None,
                             sum(t.status == results.NOT_RUN for t in tests))
    if stopped_after is not None:
        result.message = (f"grading {exercise.id} took longer than {stopped_after:g} s and was "
                          f"stopped{where}: {summary}.")
    else:
        result.message = (f"the test run for {exercise.id} ended early{where} (a grader problem, "
                          f"not yours): {summary}. Its output ended with:\n{tail}")
    return result


def _what_was_kept(done: int, running: str | None, waiting: int) -> str:
    """'the 3 tests that finished keep their points; `test_x` and the 2
    tests that had not started score 0', in words that fit each count."""
    kept = {0: "no test had finished", 1: "the one test that finished keeps its points"}.get(
        done, f"the {done} tests that finished keep their points")
    if running and waiting:
        return f"{kept}; `{running}` and the {_plural(waiting, 'test')} that had not started score 0"
    if running:
        return f"{kept}; `{running}` scores 0"
    if waiting:
        verb = "scores" if waiting == 1 else "score"
        return f"{kept}; the {_plural(waiting, 'test')} that had not started {verb} 0"
    return kept


def grade(submission: Path, exercise_ids: list[str] | None = None,
          select: str | None = None, isolate_net: bool | None = None,
          timeout: float = EXERCISE_TIMEOUT) -> list[ExerciseResult]:
    chosen = [manifest.get(i) for i in exercise_ids] if exercise_ids else list(manifest.load())
    return [grade_exercise(e, Path(submission), select, timeout=timeout, isolate_net=isolate_net)
            for e in chosen]
