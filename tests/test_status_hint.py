"""The student's tools: `socklab status` (progress over the visible tests),
`socklab hint` (the README's hints one at a time) and the README sections
that failure messages point to."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader import cli
from grader.course import manifest, readme
from grader.grading import task_groups
from grader.results import ExerciseResult, TestResult
from grader.student import hints, status
from private_tmp import scratch  # noqa: F401 (a fixture)
from support import MUTANTS_DIR, build_submission, read_mutant

EXERCISES = list(manifest.load())
CLI = [sys.executable, "-m", "grader.cli"]


# -- README sections ------------------------------------------------------------

def test_sections_skip_headings_inside_code_fences():
    text = "\n".join([
        "# Title", "intro",
        "## Tasks",
        "### Task 1 — First", "do it",
        "### Task 10 — Tenth", "later",
        "## Hints",
        "### Hint 1", "```python", "# not a heading", "x = 1", "```", "after the code",
        "### Hint 2 ###", "~~~", "## still code", "```", "~~~", "last words",
        "## Running", "pytest",
    ])
    found = readme.sections(text)
    assert [(s.level, s.title) for s in found] == [
        (1, "Title"), (2, "Tasks"), (3, "Task 1 — First"), (3, "Task 10 — Tenth"),
        (2, "Hints"), (3, "Hint 1"), (3, "Hint 2"), (2, "Running")]
    hint1, hint2 = found[5], found[6]
    assert hint1.body == "```python\n# not a heading\nx = 1\n```\nafter the code"
    assert hint2.body == "~~~\n## still code\n```\n~~~\nlast words"
    assert found[1].body.startswith("### Task 1 — First\ndo it")   # a section holds its subsections
    assert readme.heading_for(found, 1) == "Task 1 — First"
    assert readme.heading_for(found, 10) == "Task 10 — Tenth"
    assert readme.heading_for(found[3:], 1) is None, "Task 1 is not Task 10"
    assert readme.heading_for(found, 2) is None and readme.heading_for(found, None) is None


def test_every_readme_has_hints_and_a_heading_for_every_task_its_tests_name():
    """Failure messages and `socklab status` point at "Task N — ..." headings:
    each task that a visible or hidden test checks must have one."""
    with ThreadPoolExecutor(max_workers=status.default_jobs()) as pool:
        collected = dict(zip(EXERCISES, pool.map(task_groups.collect, EXERCISES)))
    for exercise in EXERCISES:
        text = readme.readme_path(exercise).read_text(encoding="utf-8")
        tasks = [g.task for g in collected[exercise]]
        assert tasks, f"no tests collected for {exercise.id}"
        for task in tasks:
            heading = readme.task_heading(exercise, task)
            assert heading, f"{exercise.id}: tests check task {task}, its README has no heading for it"
            assert re.search(rf"^#+ {re.escape(heading)}$", text, re.M)
        found = readme.hints(exercise)
        assert found, f"{exercise.id}'s README has no '## Hints' section with hints"
        for hint in found:
            assert hint.body and hint.body in text and "### Hint" not in hint.body
    assert readme.task_heading(manifest.get("05_unix_sockets"), 1) == "Task 1 — Make the pair and fork"


# -- socklab status -----------------------------------------------------------------

@pytest.fixture(scope="module")
def on_the_stubs() -> list[status.Progress]:
    """One run of every visible suite on the stubs (exercises/ as shipped)."""
    return status.check(manifest.EXERCISES_DIR, EXERCISES, jobs=status.default_jobs())


def test_status_on_the_stubs_shows_nothing_started(on_the_stubs):
    assert [p.exercise.id for p in on_the_stubs] == [e.id for e in EXERCISES]
    for p in on_the_stubs:
        if p.exercise.supported_here():
            assert p.state == status.NOT_STARTED, (p.exercise.id, p.state, p.result.message)
            assert p.passed == 0 and p.total == len(p.result.tests) > 0
    text = status.render(on_the_stubs, "exercises", seconds=1.0)
    first = EXERCISES[0]
    heading = readme.task_heading(first, 1)
    assert f"next: {first.id} ({first.title}): start with {heading}" in text
    assert f'read:    exercises/{first.id}/README.md, section "{heading}"' in text
    assert f"stuck?   socklab hint {first.id}" in text
    assert f"0 of {len(EXERCISES)} exercises done" in text
    rows = [line.split()[0] for line in text.splitlines()[4:4 + len(EXERCISES)]]
    assert rows == [e.id for e in EXERCISES]


def test_failures_point_to_the_readme_section_of_their_task(on_the_stubs):
    """Every failed visible test on a stub ends with "Read more:" and the
    README heading of its task, word for word."""
    checked = 0
    for p in on_the_stubs:
        for test in p.result.tests if p.result else []:
            if test.status != "failed":
                continue
            heading = readme.task_heading(p.exercise, test.task)
            assert heading, (p.exercise.id, test.name, test.task)
            expected = f'Read more: exercises/{p.exercise.id}/README.md, section "{heading}"'
            assert expected in test.message, f"{p.exercise.id}::{test.name}:\n{test.message[-600:]}"
            checked += 1
    assert checked >= len(EXERCISES) * 3


def solution_tree(dest: Path, exercises) -> Path:
    """A folder laid out like exercises/ holding the reference solutions."""
    for exercise in exercises:
        build_submission(dest, exercise)
    return dest


def test_status_command_on_the_solutions_shows_everything_done(scratch):
    tree = solution_tree(scratch / "exercises", EXERCISES)
    done = subprocess.run([*CLI, "status", "--tree", str(tree)], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for exercise in EXERCISES:
        row = next(line for line in out.splitlines() if line.startswith(exercise.id + " "))
        expected = status.DONE if exercise.supported_here() else "needs "
        assert expected in row and exercise.title in row, row
    supported = sum(e.supported_here() for e in EXERCISES)
    assert f"{supported} of {len(EXERCISES)} exercises done" in out
    assert "next: every visible test passes" in out


def test_status_of_work_in_progress_names_the_failing_task(scratch):
    """00 solved, 01 with a bug one visible test catches, 02 missing."""
    basics, server, client = (manifest.get(i) for i in ("00_basics", "01_tcp_server", "02_tcp_client"))
    build_submission(scratch, basics)
    build_submission(scratch, server, read_mutant(MUTANTS_DIR / server.id / "exit_1_on_hang_up"))
    progress = status.check(scratch, [basics, server, client], jobs=2)
    states = {p.exercise.id: p.state for p in progress}
    assert states == {basics.id: status.DONE, server.id: status.IN_PROGRESS, client.id: status.ERROR}
    in_progress = progress[1]
    assert [t.name for t in in_progress.failing] == ["test_exits_when_the_client_hangs_up"]
    assert (in_progress.passed, in_progress.total) == (3, 4)
    text = status.render(progress, "exercises", seconds=1.0, details=True)
    heading = readme.task_heading(server, 2)
    assert f"next: {server.id} ({server.title}): {heading}" in text
    assert "failing: test_exits_when_the_client_hangs_up (Task 2)" in text
    assert f'read:    exercises/{server.id}/README.md, section "{heading}"' in text
    assert "    FAIL    test_exits_when_the_client_hangs_up (Task 2)" in text
    assert f"no folder {client.id}/" in text


def test_next_step_skips_what_cannot_run_here():
    basics, epoll = manifest.get("00_basics"), manifest.get("04_epoll")
    done = status.Progress(basics, ExerciseResult(basics.id, 10, 10, [TestResult("a", 10, 10, "passed", task=1)]))
    elsewhere = status.Progress(epoll, None)
    assert elsewhere.state == "needs " + " or ".join(epoll.platforms)
    assert status.next_step([done, elsewhere], "exercises")[0].startswith("next: every visible test passes")
    general = status.Progress(epoll, ExerciseResult(epoll.id, 0, 5, [
        TestResult("a", 5, 5, "passed", task=1), TestResult("b", 0, 5, "failed", "x", task=None)]))
    assert general.first_task() is None
    assert "What your program must do" in status.next_step([general], "exercises")[0]
    later_first = status.Progress(epoll, ExerciseResult(epoll.id, 2, 9, [
        TestResult("a", 2, 2, "passed", task=1), TestResult("c", 0, 3, "failed", "x", task=3),
        TestResult("b", 0, 4, "failed", "x", task=2)]))
    assert later_first.state == status.IN_PROGRESS and later_first.first_task() == 2
    lines = status.next_step([done, elsewhere, later_first], "exercises")
    assert lines[0] == f"next: {epoll.id} ({epoll.title}): {readme.task_heading(epoll, 2)}"
    assert lines[1] == "      failing: b (Task 2), and 1 more"


def test_status_refuses_an_unknown_exercise_and_a_missing_tree(tmp_path):
    bad = subprocess.run([*CLI, "status", "--exercise", "99_nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown exercise '99_nope'" in bad.stderr
    assert "00_basics" in bad.stderr
    missing = subprocess.run([*CLI, "status", "--tree", str(tmp_path / "nothing")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


# -- socklab hint -------------------------------------------------------------------

@pytest.fixture
def hint_state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(hints.STATE_ENV, str(tmp_path / "state"))
    return tmp_path / "state" / "hints.json"


def hint(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["hint", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_hint_reveals_the_readme_hints_one_at_a_time(hint_state, capsys):
    exercise = manifest.get("03_poll")
    before = sorted(p.name for p in exercise.folder.iterdir())
    expected = readme.hints(exercise)
    assert len(expected) >= 2
    for number, section in enumerate(expected, 1):
        code, out, _ = hint(capsys, exercise.id)
        assert code == 0
        assert out.startswith(f"{exercise.id}, hint {number} of {len(expected)}\n")
        assert section.body in out
        others = [s.body for n, s in enumerate(expected, 1) if n != number]
        assert not any(body in out for body in others), "more than one hint at a time"
    code, out, _ = hint(capsys, exercise.id)
    assert code == 0 and f"You have seen all {len(expected)} hints of {exercise.id}" in out
    assert hint_state.is_file(), "the state lives where SOCKLAB_STATE_DIR says"
    assert sorted(p.name for p in exercise.folder.iterdir()) == before, "hint wrote into the exercise"

    code, out, _ = hint(capsys, exercise.id, "--all")
    assert code == 0 and all(s.body in out for s in expected)
    code, out, _ = hint(capsys, exercise.id, "--reset")
    assert code == 0 and "start over" in out
    code, out, _ = hint(capsys, "3")       # the number works too, and counts afresh
    assert out.startswith(f"{exercise.id}, hint 1 of {len(expected)}\n")
    code, out, _ = hint(capsys, "poll")    # so does the name
    assert out.startswith(f"{exercise.id}, hint 2 of {len(expected)}\n")


def test_hint_counts_each_exercise_separately(hint_state, capsys):
    hint(capsys, "01_tcp_server")
    hint(capsys, "01_tcp_server")
    code, out, _ = hint(capsys, "00")
    assert out.startswith("00_basics, hint 1 of ")
    assert hints.seen(manifest.get("01_tcp_server")) == 2
    hint_state.write_text("{not json")    # a damaged state file means starting over, not a crash
    code, out, _ = hint(capsys, "01_tcp_server")
    assert code == 0 and out.startswith("01_tcp_server, hint 1 of ")


def test_hint_for_an_unknown_exercise_lists_the_known_ones(hint_state, capsys):
    code, out, err = hint(capsys, "42_quantum")
    assert code == 2 and out == ""
    assert "unknown exercise '42_quantum'" in err
    assert all(e.id in err for e in EXERCISES)
