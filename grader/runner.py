"""Grade one exercise of one submission: run its hidden and visible suites
in a separate pytest process with a pinned configuration, and read back
every test's result. The grader's own process never imports student code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import manifest, sandbox
from .jail import LEFTOVER_PREFIX
from .submission import locate

GRADING_INI = Path(__file__).resolve().parent / "grading.ini"
EXERCISE_TIMEOUT = 600  # seconds for a whole exercise, whatever its tests do
WORK_BYTES = 256 << 20  # all the run folders, logs and temp files of one exercise's grading


@dataclass
class TestResult:
    name: str
    score: float
    max_score: float
    status: str
    message: str = ""
    task: int | None = None
    nodeid: str = ""


@dataclass
class ExerciseResult:
    id: str
    score: float
    max_score: float
    tests: list[TestResult] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("id")
        return data


def pytest_command(exercise: manifest.Exercise, submission: Path, results: Path,
                   select: str | None = None, tasks: list[str] | None = None,
                   hidden: bool = True, visible: bool = True,
                   sandbox_mode: str = "auto") -> list[str]:
    """The pinned pytest command line that grades `exercise` of `submission`.
    `tasks` keeps only those test groups ("1", "2", ..., "general")."""
    tests = [str(p) for p in (exercise.hidden_tests() if hidden else [])
             + (exercise.visible_tests() if visible else [])]
    cmd = [sys.executable, "-m", "pytest", "-c", str(GRADING_INI),
           "--rootdir", str(manifest.COURSE_ROOT), "-p", "grader.plugin", "-p", "pytest_timeout",
           "--submission", str(submission), "--socklab-results", str(results),
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
    """`command` run under grader.jail, which outlives nothing it starts."""
    return [sys.executable, "-m", "grader.jail", *(["--isolate-net"] if isolate_net else []),
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
    if locate(submission, exercise) is None:
        return ExerciseResult(exercise.id, 0, exercise.points,
                              message=f"no folder {exercise.id}/ (or its files "
                                      f"{', '.join(exercise.files)}) in {submission}")
    with tempfile.TemporaryDirectory(prefix="socklab-grade-") as tmp:
        results = Path(tmp) / "results.json"
        work = Path(tmp) / "work"
        work.mkdir()
        cmd = jail_command(pytest_command(exercise, Path(submission).resolve(), results,
                                          select, tasks, hidden=hidden), isolate_net, work)
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
        result = _read_results(exercise, results, text)
    if timed_out:
        result.message = (f"grading {exercise.id} took longer than {timeout:g} s and was stopped; "
                          "tests that had not finished score 0. " + result.message).strip()
    leftovers = [line for line in text.splitlines() if line.startswith(LEFTOVER_PREFIX)]
    if leftovers:
        result.message = (result.message + " " + leftovers[-1].replace(
            "socklab-jail: ", "after the tests, the grader ")).strip()
    result.seconds = time.monotonic() - started
    return result


def _read_results(exercise: manifest.Exercise, path: Path, output: str) -> ExerciseResult:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        tail = "\n".join(output.splitlines()[-30:])
        return ExerciseResult(exercise.id, 0, exercise.points,
                              message=f"the test run for {exercise.id} produced no results "
                                      f"(a grader problem, not yours). Its output ended with:\n{tail}")
    tests = [TestResult(name=t["name"], score=t["score"], max_score=t["max_score"],
                        status=t["status"], message=t["message"], task=t.get("task"),
                        nodeid=t["nodeid"]) for t in data["tests"]]
    result = ExerciseResult(exercise.id, sum(t.score for t in tests),
                            sum(t.max_score for t in tests), tests)
    if data.get("exitstatus") not in (0, 1):
        result.message = f"pytest ended with status {data.get('exitstatus')}"
    return result


def grade(submission: Path, exercise_ids: list[str] | None = None,
          select: str | None = None, isolate_net: bool | None = None,
          timeout: float = EXERCISE_TIMEOUT) -> list[ExerciseResult]:
    chosen = [manifest.get(i) for i in exercise_ids] if exercise_ids else list(manifest.load())
    return [grade_exercise(e, Path(submission), select, timeout=timeout, isolate_net=isolate_net)
            for e in chosen]
