"""`socklab bench grading`: what grading costs, on the reference solutions
and on submissions broken (or slowed) on purpose (grader.bench.variants).

Each measurement is a separate child process, timed from the outside: its
wall time (time.monotonic) and its CPU time: that of every process it
started, from a cgroup of its own where one can be made (CpuGroup), and
that of the child and every descendant it waited for (the rusage that
os.wait4 reports), which misses processes reaped outside the tree. Two
children per exercise, shape and run:

    graded   PY -m grader.cli grade TREE --exercise ID --format json
             (hidden and visible suites, as an instructor grades; the
             score comes from the JSON)
    visible  PY -m pytest --submission TREE CHECKOUT/exercises/ID
             (what a student runs, from the checkout's own configuration)

Several interpreters (--python, e.g. this checkout's venv and a baseline
checkout's venv) are measured interleaved, each in turn for every run, so
before/after figures come from one run on one machine. Each is labelled by
the git commit of the checkout its `grader` package comes from, and runs
from that checkout (its `python -m` puts the working folder first on
sys.path). Figures are medians of the runs. A child that outlives
--timeout is stopped, with everything it started, and reported as such.
See docs/grading-bench.md."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from grader.bench import variants

DEFAULT_TIMEOUT = 900.0
CSV_COLUMNS = ["exercise", "shape", "python", "python_path", "runs",
               "graded_wall_s", "graded_cpu_s", "graded_cpu_waited_s", "score", "max_score",
               "visible_wall_s", "visible_cpu_s", "visible_summary", "graded_walls",
               "visible_walls", "problems"]
ALL = "(all)"   # the exercise column of the summary row: each exercise on its own, summed
WHOLE = "(whole)"   # ...and of the whole reference submission graded by one command
_PROBE = "import grader, pathlib; print(pathlib.Path(grader.__file__).resolve().parent.parent)"


@dataclass(frozen=True)
class Interpreter:
    python: str     # the interpreter's path, as given
    root: Path      # the checkout its grader package comes from
    label: str      # the checkout's short commit, else its path


@dataclass
class Child:
    """One timed child process."""
    wall: float
    cpu: float              # the child's and its waited-for descendants' (os.wait4)
    status: int | None      # exit status (negative: killed by that signal)
    timed_out: bool
    stdout: str
    stderr: str
    cpu_all: float | None = None  # every process it started, reaped or not (a cgroup), where known

    @property
    def cpu_best(self) -> float:
        return self.cpu if self.cpu_all is None else self.cpu_all


@dataclass
class Measured:
    """The runs of one (exercise, shape, interpreter)."""
    graded: list[Child] = field(default_factory=list)
    scores: list[tuple[float, float] | None] = field(default_factory=list)
    visible: list[Child] = field(default_factory=list)


def child_environment() -> dict[str, str]:
    """The bench's own environment without what would change which code a
    child runs or how (PYTHONPATH, PYTHONUNBUFFERED, pytest's settings)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST_"))}


def interpreter(python: str) -> Interpreter:
    """Where `python`'s grader package lives, and that checkout's label.
    Asked from a neutral folder, so that the bench's own working folder
    cannot shadow the interpreter's installed grader."""
    # An absolute path, but not a resolved one: a venv's python is a link
    # to the base interpreter, which knows nothing of the venv.
    python = os.path.abspath(python) if os.sep in python else (shutil.which(python) or python)
    with tempfile.TemporaryDirectory(prefix="socklab-probe-") as neutral:
        try:
            probe = subprocess.run([python, "-c", _PROBE], cwd=neutral, env=child_environment(),
                                   capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ValueError(f"{python}: cannot run it ({exc})") from None
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"status {probe.returncode}"])[-1]
        raise ValueError(f"{python} cannot import grader: {why}")
    root = Path(probe.stdout.strip())
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=30)
        label = commit.stdout.strip() if commit.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        label = ""
    return Interpreter(python, root, label or str(root))


def distinct(interpreters: list[Interpreter]) -> list[Interpreter]:
    """Two checkouts at the same commit (one with changes not committed)
    keep their commit and get their folder's name too (or its path, where
    the names are the same), to tell them apart."""
    labels = [i.label for i in interpreters]
    names = [i.root.name for i in interpreters]
    return [i if labels.count(i.label) == 1 else
            Interpreter(i.python, i.root, f"{i.label}@{i.root.name}" if names.count(i.root.name) == 1
                        else f"{i.label}@{i.root}")
            for i in interpreters]


class CpuGroup:
    """A cgroup of its own for one child, where the machine lets us make
    one (Linux, root): its CPU time counts every process the child started,
    also those that no process of the tree waited for. os.wait4 misses
    those: a sandboxed program killed together with its sandbox's init is
    reaped outside the tree, and for a program spinning until it is killed
    (the shapes that cost the most) a third of the CPU time went missing.
    cgroup v1 `cpuacct.usage` (nanoseconds), else cgroup v2 `cpu.stat`."""

    ROOTS = ((Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage", 1e-9),
             (Path("/sys/fs/cgroup/unified"), "cpu.stat", 1e-6),
             (Path("/sys/fs/cgroup"), "cpu.stat", 1e-6))

    def __init__(self) -> None:
        self.path: Path | None = None
        for root, self.usage_file, self.scale in self.ROOTS:
            if (root / self.usage_file).exists() and (root / "cgroup.procs").exists():
                try:
                    self.path = Path(tempfile.mkdtemp(prefix="socklab-bench-", dir=root))
                    return
                except OSError:
                    continue

    def enter(self) -> None:
        """In the child, before it runs anything (Popen's preexec_fn)."""
        if self.path is not None:
            try:
                fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
            except OSError:
                pass  # then the group's usage stays 0, read as unknown

    def seconds(self) -> float | None:
        if self.path is None:
            return None
        try:
            text = (self.path / self.usage_file).read_text()
        except OSError:
            return None
        if self.usage_file == "cpu.stat":
            fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
            text = fields.get("usage_usec", "0")
        used = int(text) * self.scale
        return used if used > 0 else None

    def remove(self) -> None:
        if self.path is not None:
            for _ in range(50):  # the last killed processes leave it within moments
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.02)


def _stop_tree(pid: int) -> None:
    """Stop a child and everything it started: freeze the whole tree first
    (a frozen process forks no more and cannot be reparented away by a
    dying parent), then kill it all, and the child's process group."""
    frozen: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        root = None
    for _ in range(20):
        try:
            found = [root, *root.children(recursive=True)] if root else []
        except psutil.Error:
            found = []
        new = [p for p in found if p.pid not in frozen]
        if not new:
            break
        for process in new:
            try:
                process.suspend()
            except psutil.Error:
                pass
            frozen[process.pid] = process
    for process in frozen.values():
        try:
            process.kill()
        except psutil.Error:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def timed(cmd: list[str], cwd: Path, timeout: float) -> Child:
    """Run `cmd` in a session of its own; its wall time, and the CPU time
    of it and of every descendant it waited for (os.wait4's rusage)."""
    group = CpuGroup()
    try:
        return _timed(cmd, cwd, timeout, group)
    finally:
        group.remove()


def _timed(cmd: list[str], cwd: Path, timeout: float, group: CpuGroup) -> Child:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_environment(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True,
                                preexec_fn=group.enter if group.path else None)
        over, reaped, lock = threading.Event(), threading.Event(), threading.Lock()

        def expire() -> None:
            with lock:
                if not reaped.is_set():  # else it ended just now, on its own
                    over.set()
                    _stop_tree(proc.pid)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            _, raw, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: the child, in a session of its own, did not get it
            timer.cancel()
            with lock:
                _stop_tree(proc.pid)
                os.waitpid(proc.pid, 0)
                reaped.set()
            raise
        wall = time.monotonic() - started
        with lock:
            reaped.set()
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(raw)  # reaped here, not by Popen
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left in its group
        except (ProcessLookupError, PermissionError):
            pass
        out.seek(0)
        err.seek(0)
        return Child(wall=wall, cpu=usage.ru_utime + usage.ru_stime, status=proc.returncode,
                     timed_out=over.is_set(),
                     stdout=out.read().decode("utf-8", errors="replace"),
                     stderr=err.read().decode("utf-8", errors="replace"),
                     cpu_all=group.seconds())


def graded_command(python: Interpreter, tree: Path, exercise: str | list[str]) -> list[str]:
    chosen = [exercise] if isinstance(exercise, str) else exercise
    return [python.python, "-m", "grader.cli", "grade", str(tree),
            *(a for e in chosen for a in ("--exercise", e)), "--format", "json"]


def visible_command(python: Interpreter, tree: Path, exercise: str) -> list[str]:
    # No `-p grader.plugin`: the pytest11 entry point of the installed
    # socklab loads it already, as in a student's `pytest exercises/ID`
    # (naming it again makes pytest refuse to register it twice).
    return [python.python, "-m", "pytest", "--submission", str(tree),
            str(python.root / "exercises" / exercise), "-q"]


def score_of(child: Child, exercise: str | list[str]) -> tuple[float, float] | None:
    """(score, max_score) of the exercise (or the sum over a list of them)
    from `socklab grade`'s JSON."""
    try:
        found = json.loads(child.stdout)["exercises"]
        chosen = [exercise] if isinstance(exercise, str) else exercise
        return (sum(float(found[e]["score"]) for e in chosen),
                sum(float(found[e]["max_score"]) for e in chosen))
    except (ValueError, KeyError, TypeError):
        return None


def pytest_summary(child: Child) -> str:
    """pytest's last line ("3 passed, 2 failed in 4.1s") without the time."""
    if child.timed_out:
        return "timed out"
    lines = [line.strip("= ") for line in child.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else f"no output (status {child.status})"
    return re.sub(r"\s+in [\d.]+s.*$", "", last)


# -- the whole bench -------------------------------------------------------------

@dataclass
class Plan:
    exercises: list[str]
    shapes: list[str] | None          # None: every shape of each exercise
    interpreters: list[Interpreter]
    runs: int = 3
    timeout: float = DEFAULT_TIMEOUT

    def pairs(self) -> list[tuple[str, str]]:
        """(exercise, shape) in the order measured."""
        return [(e, s) for e in self.exercises for s in variants.shapes_for(e)
                if self.shapes is None or s in self.shapes]


@dataclass
class Outcome:
    plan: Plan
    results: dict[tuple[str, str, str], Measured]   # (exercise, shape, label) -> runs
    seconds: float = 0.0


def run(plan: Plan, say: Callable[[str], None] = lambda _: None) -> Outcome:
    """Measure every (exercise, shape) of the plan, runs times, each
    interpreter in turn; `say` gets one progress line per child."""
    started = time.monotonic()
    pairs = plan.pairs()
    total = len(pairs) * plan.runs * len(plan.interpreters) * 2
    done = 0
    results: dict[tuple[str, str, str], Measured] = {}
    work = Path(tempfile.mkdtemp(prefix="socklab-bench-grading-"))
    try:
        for exercise, shape in pairs:
            tree = variants.build(exercise, shape, work / shape / exercise)
            for number in range(1, plan.runs + 1):
                for python in plan.interpreters:
                    measured = results.setdefault((exercise, shape, python.label), Measured())
                    where = f"{exercise} {shape} [{python.label}] run {number}/{plan.runs}"
                    graded = timed(graded_command(python, tree, exercise), python.root, plan.timeout)
                    score = score_of(graded, exercise)
                    measured.graded.append(graded)
                    measured.scores.append(score)
                    done += 1
                    say(f"[{done}/{total}] {where}: graded in {_took(graded)}, "
                        f"score {_score_text(score, graded)}")
                    visible = timed(visible_command(python, tree, exercise), python.root,
                                    plan.timeout)
                    measured.visible.append(visible)
                    done += 1
                    say(f"[{done}/{total}] {where}: visible tests in {_took(visible)}: "
                        f"{pytest_summary(visible)}")
            shutil.rmtree(tree, ignore_errors=True)
        if plan.shapes is None or "reference" in plan.shapes:
            _whole(plan, work / "whole", results, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Outcome(plan, results, time.monotonic() - started)


def _whole(plan: Plan, tree: Path, results: dict, say: Callable[[str], None]) -> None:
    """The reference of every exercise in the plan graded by one command, as
    an instructor grades a submission (its rows have no visible run)."""
    for exercise in plan.exercises:
        variants.build(exercise, "reference", tree)
    for number in range(1, plan.runs + 1):
        for python in plan.interpreters:
            measured = results.setdefault((WHOLE, "reference", python.label), Measured())
            graded = timed(graded_command(python, tree, plan.exercises), python.root, plan.timeout)
            score = score_of(graded, plan.exercises)
            measured.graded.append(graded)
            measured.scores.append(score)
            say(f"{WHOLE} reference [{python.label}] run {number}/{plan.runs}: graded in "
                f"{_took(graded)}, score {_score_text(score, graded)}")


def _took(child: Child) -> str:
    text = f"{child.wall:.1f} s wall, {child.cpu_best:.1f} s CPU"
    return text + (" (TIMED OUT, stopped)" if child.timed_out else "")


def _score_text(score: tuple[float, float] | None, child: Child) -> str:
    if score is None:
        return f"none (status {child.status}{', timed out' if child.timed_out else ''})"
    return f"{score[0]:g}/{score[1]:g}"


# -- figures ---------------------------------------------------------------------

@dataclass
class Row:
    exercise: str
    shape: str
    python: Interpreter
    runs: int
    graded_wall: float
    graded_cpu: float           # every process started, where a cgroup told; else as below
    graded_cpu_waited: float    # the child and the descendants it waited for (os.wait4)
    score: float | None
    max_score: float | None
    visible_wall: float
    visible_cpu: float
    visible_summary: str
    graded_walls: list[float]
    visible_walls: list[float]
    problems: list[str]


def cpu_source(outcome: Outcome) -> str:
    """Where the CPU figures come from, in words."""
    children = [c for m in outcome.results.values() for c in (*m.graded, *m.visible)]
    if children and all(c.cpu_all is not None for c in children):
        return "CPU: every process each child started (a cgroup of its own)"
    if any(c.cpu_all is not None for c in children):
        return "CPU: from a cgroup where one could be made, else os.wait4 (see the CSV)"
    return ("CPU: the child and the descendants it waited for (os.wait4; no cgroup could be "
            "made here, so processes reaped outside the tree are missing)")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rows(outcome: Outcome) -> list[Row]:
    """One row per (exercise, shape, interpreter): medians of the runs."""
    found = []
    for exercise, shape in [*outcome.plan.pairs(), (WHOLE, "reference")]:
        for python in outcome.plan.interpreters:
            m = outcome.results.get((exercise, shape, python.label))
            if m is None or not m.graded:
                continue
            scores = [s for s in m.scores if s is not None]
            problems = []
            for name, children in (("graded", m.graded), ("visible", m.visible)):
                late = sum(c.timed_out for c in children)
                if late:
                    problems.append(f"{name} timed out in {late} of {len(children)} runs")
            if len(scores) < len(m.scores):
                problems.append(f"no score in {len(m.scores) - len(scores)} of {len(m.scores)} runs")
            if len({s for s, _ in scores}) > 1:
                problems.append("scores varied: " + ", ".join(f"{s:g}" for s, _ in scores))
            summaries = list(dict.fromkeys(pytest_summary(c) for c in m.visible))
            found.append(Row(
                exercise, shape, python, len(m.graded),
                _median([c.wall for c in m.graded]), _median([c.cpu_best for c in m.graded]),
                _median([c.cpu for c in m.graded]),
                _median([s for s, _ in scores]) if scores else None,
                scores[0][1] if scores else None,
                _median([c.wall for c in m.visible]) if m.visible else float("nan"),
                _median([c.cpu_best for c in m.visible]) if m.visible else float("nan"),
                " | ".join(summaries), [c.wall for c in m.graded], [c.wall for c in m.visible],
                problems))
    return found


def reference_totals(found: list[Row], interpreters: list[Interpreter]) -> list[Row]:
    """Per interpreter, the sum of the reference rows: grading the whole
    reference submission (the exercises measured), one exercise after another."""
    totals = []
    for python in interpreters:
        mine = [r for r in found if r.shape == "reference" and r.python.label == python.label
                and r.exercise != WHOLE]
        if not mine:
            continue
        scores = [r.score for r in mine if r.score is not None]
        totals.append(Row(
            ALL, "reference", python, min(r.runs for r in mine),
            sum(r.graded_wall for r in mine), sum(r.graded_cpu for r in mine),
            sum(r.graded_cpu_waited for r in mine),
            sum(scores) if len(scores) == len(mine) else None,
            sum(r.max_score or 0 for r in mine), sum(r.visible_wall for r in mine),
            sum(r.visible_cpu for r in mine), f"{len(mine)} exercises", [], [],
            [p for r in mine for p in r.problems]))
    return totals


def _seconds(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def _score(row: Row) -> str:
    return "-" if row.score is None else f"{row.score:g}/{row.max_score:g}"


def table(found: list[Row], interpreters: list[Interpreter]) -> str:
    """exercise | shape | per interpreter: graded wall, CPU, score, visible wall."""
    several = len(interpreters) > 1
    head = ["exercise", "shape"]
    for python in interpreters:
        prefix = f"{python.label}: " if several else ""
        head += [f"{prefix}graded s", "CPU s", "score", "visible s"]
    by_key = {(r.exercise, r.shape, r.python.label): r for r in found}
    keys = list(dict.fromkeys((r.exercise, r.shape) for r in found))
    body = []
    for exercise, shape in keys:
        line = [exercise, shape]
        for python in interpreters:
            r = by_key.get((exercise, shape, python.label))
            if r is None:
                line += ["-"] * 4
                continue
            late = " (timeout)" if any("timed out" in p for p in r.problems) else ""
            line += [_seconds(r.graded_wall) + late, _seconds(r.graded_cpu), _score(r),
                     _seconds(r.visible_wall)]
        body.append(line)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    numeric = set(range(2, len(head)))

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [fmt(head), rule]
    for cells in body:
        if cells[0] == ALL or (cells[0] == WHOLE and body[0][0] != WHOLE):
            lines.append(rule)
        lines.append(fmt(cells))
    return "\n".join(lines)


def write_csv(found: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in found:
            writer.writerow([
                r.exercise, r.shape, r.python.label, r.python.python, r.runs,
                f"{r.graded_wall:.3f}", f"{r.graded_cpu:.3f}", f"{r.graded_cpu_waited:.3f}",
                "" if r.score is None else f"{r.score:g}",
                "" if r.max_score is None else f"{r.max_score:g}",
                f"{r.visible_wall:.3f}", f"{r.visible_cpu:.3f}", r.visible_summary,
                ";".join(f"{w:.3f}" for w in r.graded_walls),
                ";".join(f"{w:.3f}" for w in r.visible_walls), "; ".join(r.problems)])
