"""`socklab bench grading` and its shapes (grader/bench/variants.py): every
exercise has its shapes, every generated file compiles, each shape does what
it says when run, a child over its time limit is stopped with everything it
started, and the command turns down what it cannot measure.

Fast: no grading run here (the bench itself is `make bench-grading`)."""

from __future__ import annotations

import os
import py_compile
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from grader import cli
from grader.bench import grading, variants
from grader.course import manifest
from grader.harness.ports import free_port
# A fixture: pytest's own tmp_path can vanish under a parallel session.
from private_tmp import scratch  # noqa: F401

WAIT = 10.0   # seconds for something that should happen at once, on a busy machine


def child_env() -> dict[str, str]:
    """An explicit environment (this machine exports PYTHONUNBUFFERED=1)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


class Running:
    """A started program, with its stdout read line by line in a thread."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", errors="replace"))

    def line(self, timeout: float = WAIT) -> str:
        return self.lines.get(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=WAIT)
        self.proc.stdout.close()


@pytest.fixture
def run_program():
    """Start generated programs; whatever happens, each is killed (its whole
    process group) and reaped afterwards."""
    started: list[Running] = []

    def start(tree: Path, exercise: str, script: str, *args) -> Running:
        program = Running([sys.executable, "-u", script, *map(str, args)], tree / exercise)
        started.append(program)
        return program

    yield start
    for program in started:
        program.stop()


def build(scratch: Path, exercise: str, shape: str) -> Path:
    return variants.build(exercise, shape, scratch / shape / exercise)


# -- the shapes, as text ---------------------------------------------------------

def test_every_exercise_has_its_shapes():
    for exercise in manifest.load():
        shapes = variants.shapes_for(exercise)
        assert {"reference", "stub"} <= set(shapes), exercise.id
        assert set(shapes) <= set(variants.SHAPES)
        sources = [(exercise.solution_folder / f).read_text() for f in exercise.files]
        kinds = {variants.is_program(s) for s in sources}
        has_program_shapes = "exits-at-once" in shapes
        has_module_shapes = "function-raises" in shapes
        assert has_program_shapes == (True in kinds), exercise.id
        assert has_module_shapes == (False in kinds), exercise.id
        assert "slow-start" in shapes, exercise.id
    # The exercises with a module and a program get both families.
    for both in ("02_tcp_client", "10_framing"):
        assert {"never-replies", "function-never-returns", "slow"} <= set(variants.shapes_for(both))
    # A UDP exercise accepts nothing: never-accepts would be the reference.
    assert "never-accepts" not in variants.shapes_for("06_udp")
    assert "never-accepts" in variants.shapes_for("01_tcp_server")


def test_every_generated_file_compiles_and_changes_only_its_kind(scratch):
    for exercise in manifest.load():
        for shape in variants.shapes_for(exercise):
            tree = build(scratch, exercise.id, shape)
            for name in exercise.files:
                path = tree / exercise.id / name
                py_compile.compile(str(path), cfile=str(scratch / "out.pyc"), doraise=True)
                reference = (exercise.solution_folder / name).read_text()
                kind = variants.SHAPES[shape].kind
                changed = path.read_text() != reference
                if kind == variants.PROGRAM:
                    assert changed == variants.is_program(reference), (exercise.id, shape, name)
                elif kind == variants.MODULE:
                    assert changed == (not variants.is_program(reference)), (exercise.id, shape, name)
                elif kind == variants.SLOW:
                    assert changed, (exercise.id, shape, name)


def test_code_goes_after_the_docstring_and_future_imports():
    source = '"""Doc\nstring."""\n\nfrom __future__ import annotations\nimport os\nprint(os.sep)\n'
    text = variants.insert(source, "X = 1\n")
    lines = text.splitlines()
    assert lines.index("X = 1") > lines.index("from __future__ import annotations")
    assert lines.index("X = 1") < lines.index("import os")
    compile(text, "x.py", "exec")
    assert variants.insert("import os\n", "X = 1\n").index("X = 1") < variants.insert(
        "import os\n", "X = 1\n").index("import os")


# -- the shapes, run ---------------------------------------------------------------

def test_exits_at_once_exits_with_status_1(scratch):
    tree = build(scratch, "01_tcp_server", "exits-at-once")
    done = subprocess.run([sys.executable, "-u", "tcp_server.py", str(free_port())],
                          cwd=tree / "01_tcp_server", env=child_env(), capture_output=True,
                          timeout=WAIT)
    assert done.returncode == 1
    assert done.stdout == b""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_spins_ignoring_signals_survives_sigterm(scratch, run_program):
    tree = build(scratch, "01_tcp_server", "spins-ignoring-signals")
    program = run_program(tree, "01_tcp_server", "tcp_server.py", free_port())
    wanted = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGHUP - 1))
    deadline = time.monotonic() + WAIT
    while True:  # until the prepended code has set the three signals to "ignore"
        status = Path(f"/proc/{program.proc.pid}/status").read_text()
        ignored = int(next(l.split()[1] for l in status.splitlines() if l.startswith("SigIgn:")), 16)
        if ignored & wanted == wanted:
            break
        assert time.monotonic() < deadline, "the signals were never ignored"
        time.sleep(0.01)
    os.kill(program.proc.pid, signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        program.proc.wait(timeout=0.5)
    assert psutil.Process(program.proc.pid).cpu_times().user > 0  # it spins


def test_never_accepts_prints_ready_line_but_sends_nothing(scratch, run_program):
    tree = build(scratch, "01_tcp_server", "never-accepts")
    port = free_port()
    program = run_program(tree, "01_tcp_server", "tcp_server.py", port)
    assert f"listening on 0.0.0.0:{port}" in program.line()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
        client.sendall(b"anyone there?\n")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(100)
    assert program.proc.poll() is None


def test_function_raises_raises_runtime_error(scratch):
    tree = build(scratch, "00_basics", "function-raises")
    names = variants.public_functions((manifest.get("00_basics").solution_folder
                                       / "basics.py").read_text())
    assert "ip_version" in names
    check = ("import basics\n"
             f"for name in {names!r}:\n"
             "    try:\n"
             "        getattr(basics, name)('127.0.0.1')\n"
             "    except RuntimeError as exc:\n"
             "        print(name, 'raised', exc)\n"
             "    else:\n"
             "        print(name, 'returned')\n")
    done = subprocess.run([sys.executable, "-c", check], cwd=tree / "00_basics", env=child_env(),
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{name} raised broken on purpose" for name in names]


def test_slow_messages_still_echoes(scratch, run_program):
    tree = build(scratch, "01_tcp_server", "slow-messages")
    port = free_port()
    program = run_program(tree, "01_tcp_server", "tcp_server.py", port)
    assert f"listening on 0.0.0.0:{port}" in program.line()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
        client.sendall(b"slowly but surely\n")
        received = b""
        while not received.endswith(b"\n"):
            chunk = client.recv(100)
            assert chunk, f"the server closed after {received!r}"
            received += chunk
    assert received == b"slowly but surely\n"


# -- the bench's machinery -----------------------------------------------------------

def test_a_child_over_its_time_is_stopped_with_all_it_started(scratch):
    # The child starts a grandchild in a session of its own that ignores
    # SIGTERM, then waits forever: both must go, and the bench must not hang.
    script = ("import subprocess, sys, time\n"
              "g = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'], "
              "start_new_session=True)\n"
              "print(g.pid, flush=True)\n"
              "time.sleep(600)\n")
    child = grading.timed([sys.executable, "-c", script], scratch, timeout=1.0)
    assert child.timed_out
    assert child.wall < WAIT
    grandchild = int(child.stdout.split()[0])
    deadline = time.monotonic() + WAIT
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the grandchild outlived the child's time limit"
        time.sleep(0.01)


def test_a_child_is_timed_with_its_cpu():
    child = grading.timed([sys.executable, "-c",
                           "import time\nend = time.process_time() + 0.3\n"
                           "while time.process_time() < end: pass\nprint('done')"],
                          Path.cwd(), timeout=60)
    assert not child.timed_out and child.status == 0 and child.stdout.strip() == "done"
    assert child.cpu >= 0.3 and child.wall >= 0.3
    assert child.cpu_all is None or child.cpu_all >= 0.3


def test_cpu_of_a_process_nobody_waited_for_is_counted_where_a_cgroup_can_be_made(monkeypatch):
    # The grandchild spins, tells the child, and ends; the child exits
    # without waiting for it, so os.wait4 never sees its CPU time.
    script = ("import os, time\n"
              "r, w = os.pipe()\n"
              "if os.fork() == 0:\n"
              "    end = time.process_time() + 0.5\n"
              "    while time.process_time() < end: pass\n"
              "    os.write(w, b'x'); os._exit(0)\n"
              "os.read(r, 1)\n")
    made: list[Path | None] = []

    class Recorded(grading.CpuGroup):
        def __init__(self) -> None:
            super().__init__()
            made.append(self.path)

    monkeypatch.setattr(grading, "CpuGroup", Recorded)
    child = grading.timed([sys.executable, "-c", script], Path.cwd(), timeout=60)
    assert child.status == 0 and not child.timed_out
    assert child.cpu < 0.5
    if child.cpu_all is None:
        pytest.skip("no cgroup can be made here: the bench counts what os.wait4 sees")
    assert child.cpu_all >= 0.5
    assert made[0] is not None and not made[0].exists(), "the bench left its cgroup behind"


def test_the_table_has_a_column_set_per_interpreter_and_a_reference_total():
    pythons = [grading.Interpreter("a/python", Path("/a"), "abc1234"),
               grading.Interpreter("b/python", Path("/b"), "def5678")]
    outcome = grading.Outcome(grading.Plan(["01_tcp_server"], ["reference", "exits-at-once"],
                                           pythons, runs=3), {})
    for number, python in enumerate(pythons, 1):
        for shape in ("reference", "exits-at-once"):
            m = outcome.results[("01_tcp_server", shape, python.label)] = grading.Measured()
            for wall in (1.0, 5.0, 3.0):
                m.graded.append(grading.Child(wall * number, 1.0, 0, False, "", ""))
                m.scores.append((100.0 if shape == "reference" else 0.0, 100.0))
                m.visible.append(grading.Child(0.5, 0.2, 0, False, "4 passed in 0.5s", ""))
    rows = grading.rows(outcome)
    assert [r.graded_wall for r in rows] == [3.0, 6.0, 3.0, 6.0]  # medians
    totals = grading.reference_totals(rows, pythons)
    text = grading.table(rows + totals, pythons)
    assert "abc1234: graded s" in text and "def5678: graded s" in text
    assert text.splitlines()[-1].split()[:2] == [grading.ALL, "reference"]
    assert rows[0].visible_summary == "4 passed"


def test_distinct_labels_for_one_commit_in_two_checkouts():
    same = [grading.Interpreter("a", Path("/x/main"), "abc1234"),
            grading.Interpreter("b", Path("/y/baseline"), "abc1234")]
    assert [i.label for i in grading.distinct(same)] == ["abc1234@main", "abc1234@baseline"]


def test_the_interpreter_label_is_this_checkouts_commit():
    here = grading.interpreter(sys.executable)
    assert here.root == manifest.COURSE_ROOT
    assert here.label  # a short commit where git is there, else the path


# -- the command line -------------------------------------------------------------------

@pytest.mark.parametrize("option, value, said", [
    ("--exercises", "nope", "unknown exercise nope"),
    ("--shapes", "reference,nope", "unknown shape nope"),
    ("--runs", "0", "not a whole number"),
])
def test_bench_grading_refuses_what_it_cannot_measure(capsys, option, value, said):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "grading", option, value])
    assert exc.value.code == 2
    assert said in capsys.readouterr().err


def test_bench_grading_refuses_a_shape_no_exercise_has(capsys):
    assert cli.main(["bench", "grading", "--exercises", "00_basics", "--shapes", "never-ready"]) == 2
    assert "no exercise measured has the shape never-ready" in capsys.readouterr().err


def test_bench_without_grading_is_the_poll_epoll_bench():
    args = cli.build_parser().parse_args(["bench", "--fds", "5,20", "--output", "x"])
    assert args.mode is None and args.fds == [5, 20] and args.output == "x"
    assert args.run.__name__ == "run"
