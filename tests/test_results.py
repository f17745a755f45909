"""The results model (grader.results): the file is a stream written as each
test ends (by the plugin's ResultRecorder, through results.Writer), so a
run that is stopped at the exercise's time limit keeps the points of the
tests that finished and names the test that was running (results.read,
then grade_exercise._read_results)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import results
from grader.course import manifest
from grader.grading import grade_exercise
from support import build_submission

EXERCISE = manifest.get("01_tcp_server")

# A server that echoes like the solution but, once its client has closed
# its side, never closes its own: it trickles a byte every 0.3 s for ever.
# A test reading "until the server closes" sees it making progress, so it
# reads on until its backstop (waits.BULK, 10 s).
HANGS_AT_END_OF_FILE = {"change": [{
    "file": "tcp_server.py",
    "old": '        if not data:                     # b"": the client closed its side\n'
           '            break\n',
    "new": '        if not data:\n'
           '            while True:\n'
           '                conn.sendall(b".")\n'
           '                signal.sigtimedwait([signal.SIGUSR2], 0.3)  # a pause\n',
}]}
# In the hidden suite's order: two quick tests, then one whose client
# half-closes and reads until the server closes (over 10 s, past the time
# limit below), then one that never gets to start.
FINISHED = ("test_greets_the_client_by_address", "test_echoes_a_chunk_exactly")
HUNG = "test_echoes_everything_when_send_is_interrupted"
AFTER = "test_echoes_bytes_that_are_not_utf8"
# Long enough for pytest to start and the two quick tests to finish on a
# busy machine; the hung test runs for over 11 s once it starts (filling
# the buffers, then 10 s of trickle), so it is still running when the
# limit strikes.
TIME_LIMIT = 9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the hidden suite's SIGSTOP test")
def test_a_hung_test_loses_its_points_and_the_finished_ones_keep_theirs(tmp_path):
    submission = build_submission(tmp_path, EXERCISE, HANGS_AT_END_OF_FILE)
    # One worker: the tests run one after the other, in the suite's order.
    result = grade_exercise.grade_exercise(EXERCISE, submission, select=" or ".join((*FINISHED, HUNG, AFTER)),
                                   timeout=TIME_LIMIT, workers=1)
    by_name = {t.name: t for t in result.tests}
    for name in FINISHED:
        assert by_name[name].status == "passed" and by_name[name].score > 0, by_name[name]
    hung = by_name[HUNG]
    assert (hung.status, hung.score, hung.max_score) == ("failed", 0, 5), hung
    assert hung.message.startswith(f"grading stopped after {TIME_LIMIT} s while `{HUNG}` was running:")
    assert by_name[AFTER].status == "not run" and by_name[AFTER].score == 0
    assert result.score == sum(by_name[n].score for n in FINISHED)
    assert result.max_score == 100
    assert f"took longer than {TIME_LIMIT} s and was stopped while `{HUNG}` was running" \
        in result.message, result.message
    assert "keep their points" in result.message and "grader problem" not in result.message


# -- the writer: one line per event, on disk as soon as it happens -------------

SUITE = '''
import pytest, time

@pytest.mark.points(3)
def test_first():
    pass

@pytest.mark.points(2)
def test_fails():
    assert False, "wrong answer"

@pytest.mark.points(4)
def test_waits_forever():
    while True:
        time.sleep(1)

@pytest.mark.points(1)
def test_never_reached():
    pass
'''


def read_lines(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except (OSError, ValueError):  # not there yet, or a line being written
        return []


def test_each_test_is_on_disk_when_it_ends_and_the_reader_names_the_one_running(tmp_path):
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    results_file = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "pytest", "-p", "grader.plugin", "-p", "no:cacheprovider",
               "-q", "--socklab-results", str(results_file), "test_suite.py"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=grade_exercise.pytest_environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not any(r.get("record") == "start" and r["nodeid"].endswith("::test_waits_forever")
                      for r in read_lines(results_file)):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "the hanging test never started"
            time.sleep(0.05)
    finally:
        proc.kill()
        output = proc.communicate()[0].decode()
    records = read_lines(results_file)
    kinds = [r["record"] for r in records]
    assert kinds == ["plan", "start", "result", "start", "result", "start"], kinds
    assert records[0]["version"] == results.VERSION
    assert [t["points"] for t in records[0]["tests"]] == [3, 2, 4, 1]
    assert records[2]["status"] == "passed" and records[4]["status"] == "failed"
    assert "wrong answer" in records[4]["message"]

    result = grade_exercise._read_results(EXERCISE, results_file, output, stopped_after=7)
    assert [(t.name, t.status, t.score, t.max_score) for t in result.tests] == [
        ("test_first", "passed", 3, 3), ("test_fails", "failed", 0, 2),
        ("test_waits_forever", "failed", 0, 4), ("test_never_reached", "not run", 0, 1)]
    assert result.tests[2].message.startswith(
        "grading stopped after 7 s while `test_waits_forever` was running: ")
    assert (result.score, result.max_score) == (3, 10)
    assert result.message == (
        f"grading {EXERCISE.id} took longer than 7 s and was stopped while `test_waits_forever` "
        "was running: the 2 tests that finished keep their points; `test_waits_forever` and the "
        "1 test that had not started score 0.")


def test_a_finished_run_ends_with_its_summary(tmp_path):
    (tmp_path / "test_suite.py").write_text(SUITE.replace("while True:", "for _ in ():"))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    results_file = tmp_path / "results.jsonl"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "grader.plugin", "-p",
                           "no:cacheprovider", "-q", "--socklab-results", str(results_file),
                           "test_suite.py"], cwd=tmp_path, env=grade_exercise.pytest_environment(),
                          capture_output=True, text=True, timeout=120)
    end = read_lines(results_file)[-1]
    assert end["record"] == "end" and end["exitstatus"] == 1 and end["version"] == results.VERSION
    assert [(t["name"], t["status"], t["score"]) for t in end["tests"]] == [
        ("test_first", "passed", 3), ("test_fails", "failed", 0),
        ("test_waits_forever", "passed", 4), ("test_never_reached", "passed", 1)]
    result = grade_exercise._read_results(EXERCISE, results_file, done.stdout)
    assert (result.score, result.max_score, result.message) == (8, 10, "")


# -- the reader, on files written by hand ---------------------------------------

def planned(*names: str) -> list[results.PlannedTest]:
    return [results.PlannedTest(f"t.py::{n}", n, None, 5, None) for n in names]


def writer(path: Path, *names: str) -> results.Writer:
    """A results file at `path` whose plan lists the tests `names`."""
    out = results.Writer(path)
    out.plan(1, planned(*names))
    return out


def test_a_line_cut_short_by_the_kill_is_ignored(tmp_path):
    path = tmp_path / "r"
    out = writer(path, "test_a", "test_b")
    out.start("t.py::test_a")
    out.result("t.py::test_a", results.Outcome("passed", 5, 5, ""))
    out.start("t.py::test_b")
    out.close()
    with open(path, "a") as f:
        f.write('{"record": "result", "nodeid": "t.py::test_b", "stat')
    run = results.read(path)
    assert run.readable and run.running == "t.py::test_b" and list(run.finished) == ["t.py::test_a"]
    result = grade_exercise._read_results(EXERCISE, path, "", stopped_after=30)
    assert [(t.status, t.score) for t in result.tests] == [("passed", 5), ("failed", 0)]
    assert result.message.endswith("the one test that finished keeps its points; `test_b` scores 0.")


def test_stopped_between_tests_and_before_any_started(tmp_path):
    path = tmp_path / "r"
    out = writer(path, "test_a", "test_b")
    out.start("t.py::test_a")
    out.result("t.py::test_a", results.Outcome("failed", 0, 5, "no"))
    out.close()
    result = grade_exercise._read_results(EXERCISE, path, "", stopped_after=30)
    assert "stopped between two tests" in result.message
    assert "the 1 test that had not started scores 0" in result.message
    assert result.tests[1].message == "not run: grading stopped after 30 s, before this test started"

    writer(path, "test_a").close()
    result = grade_exercise._read_results(EXERCISE, path, "", stopped_after=30)
    assert "before any test started" in result.message and result.tests[0].status == "not run"


def test_a_run_that_died_without_a_timeout_is_the_graders_problem(tmp_path):
    path = tmp_path / "r"
    out = writer(path, "test_a")
    out.start("t.py::test_a")
    out.close()
    result = grade_exercise._read_results(EXERCISE, path, "Killed")
    assert "ended early while `test_a` was running (a grader problem, not yours)" in result.message
    assert result.message.endswith("Killed") and result.tests[0].status == "failed"


def test_no_file_or_another_version_is_a_grader_problem(tmp_path):
    missing = grade_exercise._read_results(EXERCISE, tmp_path / "none", "boom")
    assert missing.score == 0 and "(a grader problem, not yours)" in missing.message
    old = tmp_path / "old"
    old.write_text(json.dumps({"record": "plan", "version": 1, "seed": 1, "tests": []}) + "\n")
    assert results.read(old) == results.Run(version=1), "another version's fields are not read"
    result = grade_exercise._read_results(EXERCISE, old, "")
    assert "format version 1" in result.message and result.score == 0


def test_a_record_has_exactly_its_fields():
    with pytest.raises(ValueError):
        results._line(results.START, nodeid="x", extra=1)
    with pytest.raises(ValueError):
        results._line(results.RESULT, nodeid="x")


def test_what_the_writer_writes_the_reader_reads_back(tmp_path):
    path = tmp_path / "r"
    tests = [results.PlannedTest("t.py::test_a", "test_a", "03_poll", 5, 1),
             results.PlannedTest("t.py::test_b", "test_b", "03_poll", 2.5, None)]
    outcomes = [results.Outcome("passed", 5, 5, ""), results.Outcome("skipped", 0, 0, "not here")]
    out = results.Writer(path)
    out.plan(7, tests)
    for test, outcome in zip(tests, outcomes):
        out.start(test.nodeid)
        out.result(test.nodeid, outcome)
    out.end(0, list(zip(tests, outcomes)))
    run = results.read(path)
    assert run == results.Run(version=results.VERSION, plan=tests, started=[t.nodeid for t in tests],
                              finished={t.nodeid: o for t, o in zip(tests, outcomes)},
                              summary=list(zip(tests, outcomes)), exitstatus=0)
    assert run.running is None
    assert results.TestResult.of(tests[0], outcomes[0]) == results.TestResult(
        "test_a", 5, 5, "passed", "", task=1, nodeid="t.py::test_a")
