"""The watch over module checks (grader.harness.module_calls): a student's
function that never returns, or an import that never ends, stops the
check after its allowance (waits.CALL, waits.READY) rather than the run's
whole timeout; a module whose import never ended fails every later check
and program that imports it at once (grader.harness.gates.module_import)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.harness import gates
from grader.harness.module_calls import ModuleRunner
from grader.harness.transcript import Transcript
from grader.plugin import needs_imports

# Long enough that a test relying on it would hit pytest-timeout (see
# pyproject.toml): the watchdog must end these checks, not the timeout.
BACKSTOP = 600


def runner_with(tmp_path: Path, **modules: str) -> ModuleRunner:
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name, source in modules.items():
        (workdir / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return ModuleRunner(workdir, Transcript(), timeout=BACKSTOP)


@pytest.mark.timeout(60)
def test_a_function_that_never_returns_is_stopped_and_named(tmp_path):
    checks = runner_with(tmp_path, loops="""
        def spin(n):
            while True:
                n += 1
    """)
    outcome = checks.call("loops", "spin", 1)
    assert outcome.status == "timed out", outcome
    assert "ran for 0.6 s without returning (loops.py, line 3, in spin)" in outcome.exit_note, \
        outcome.exit_note
    assert outcome.stuck_importing == ""


@pytest.mark.timeout(60)
def test_an_import_that_never_ends_is_stopped_whatever_it_does_with_signals(tmp_path):
    checks = runner_with(tmp_path, stubborn="""
        import signal
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            pass
    """)
    outcome = checks.run("import stubborn\nresult = 1")
    assert outcome.status == "timed out" and outcome.stuck_importing == "stubborn", outcome
    assert "importing your module took over 3 s (stubborn.py, line 5" in outcome.exit_note


@pytest.mark.timeout(60)
def test_an_import_stuck_after_importing_another_module_is_named_right(tmp_path):
    checks = runner_with(tmp_path, inner="VALUE = 1\n",
                         outer="import inner\nwhile True:\n    pass\n")
    outcome = checks.run("import outer\nresult = 1")
    assert outcome.stuck_importing == "outer", outcome
    assert "(outer.py, line 2, in <module>)" in outcome.exit_note, outcome.exit_note


def test_calls_that_keep_returning_may_take_longer_than_one_allowance(tmp_path):
    """Progress is a return from any of the student's functions or methods
    (static and class methods too): a check of many quick calls runs on."""
    checks = runner_with(tmp_path, quick="""
        import time

        def nap():
            time.sleep(0.05)
            return "ok"

        class Box:
            def nap(self):
                return nap()

            @staticmethod
            def still():
                time.sleep(0.05)
                return 1

            @classmethod
            def build(cls):
                time.sleep(0.05)
                return cls()
    """)
    outcome = checks.run("""
        import time, quick
        began = time.monotonic()
        result = []
        while time.monotonic() - began < 1.5:
            result += [quick.Box.build().nap(), quick.Box.still()]
        result = sorted(set(result), key=str)
    """)
    assert outcome.returned, outcome
    assert outcome.value == [1, "ok"]


def test_the_checks_own_code_between_calls_is_not_timed(tmp_path):
    """Only the student's code is on the clock: a check whose own code is
    slow between two calls (its imports, drawing examples, a loaded
    machine), here 1.5 s of it, is not stopped."""
    checks = runner_with(tmp_path, quick="""
        def double(n):
            return 2 * n
    """)
    outcome = checks.run("""
        import time, quick
        began = time.monotonic()
        while time.monotonic() - began < 1.5:
            pass                # the check's own work, not the student's
        result = quick.double(21)
    """)
    assert outcome.returned, outcome
    assert outcome.value == 42


def test_the_watch_leaves_no_trace_in_a_students_traceback(tmp_path):
    checks = runner_with(tmp_path, broken="""
        def outer():
            return inner()

        def inner():
            raise KeyError("gone")
    """)
    outcome = checks.call("broken", "outer")
    assert outcome.raised("KeyError"), outcome
    shown = outcome.describe()
    assert "broken.py" in shown and "in inner" in shown and "check_wrapper" not in shown, shown


@pytest.mark.timeout(60)
def test_a_module_whose_import_never_ended_fails_later_checks_and_programs_at_once(
        tmp_path, gate_book):
    checks = runner_with(tmp_path, helpers="while True:\n    pass\n", other="VALUE = 1\n",
                         client="import helpers\nprint('never')\n")
    first = checks.run("import helpers\nresult = 1", did="imported helpers")
    assert first.stuck_importing == "helpers"
    with pytest.raises(gates.GateClosed) as closed:
        checks.run("import other, helpers\nresult = 2")
    assert "`import helpers` finishes" in closed.value.render() and "test_first" in closed.value.render()
    with pytest.raises(gates.GateClosed):
        needs_imports(checks.workdir, "client.py")
    assert checks.run("import other\nresult = other.VALUE").value == 1, \
        "a check that does not import it runs"


@pytest.mark.timeout(60)
def test_a_function_whose_first_call_never_returns_fails_later_checks_of_it_at_once(
        tmp_path, gate_book):
    checks = runner_with(tmp_path, calc="""
        def spin(n):
            while True:
                n += 1
        def double(n):
            return 2 * n
    """)
    checks.first_calls = {"calc.spin": "calc.spin(1)", "calc.double": "calc.double(1)"}
    first = checks.run("import calc\nresult = calc.spin(5)", did="called spin(5)")
    assert first.status == "timed out" and first.stuck_first_call == "calc.spin", first
    assert "its first call, `calc.spin(1)` (made before the test's own calls)" in first.exit_note
    with pytest.raises(gates.GateClosed) as closed:
        checks.run("import calc\nresult = [calc.spin(n) for n in range(3)]")
    assert "`calc.spin(1)` returns (or raises) in time" in closed.value.render()
    assert checks.run("import calc\nresult = calc.double(4)").value == 8, \
        "a check that does not call it runs, its own first call made and passed"


def test_a_first_call_comes_after_the_checks_own_import_never_before(tmp_path):
    checks = runner_with(tmp_path, calc="""
        import builtins
        builtins.TAMPERED = True
        def double(n):
            return 2 * n
    """)
    checks.first_calls = {"calc.double": "calc.double(1)"}
    outcome = checks.run("import builtins\nbefore = hasattr(builtins, 'TAMPERED')\n"
                         "import calc\nresult = (before, calc.double(3))")
    assert outcome.value == (False, 6), outcome
