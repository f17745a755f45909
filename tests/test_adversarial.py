"""Grade every case of tests/adversarial/ the way an instructor would (the
`socklab grade` command in a child process) and check the score, the time,
and that nothing is left behind: no process, no listening socket, no
temporary folder, no stray file, nothing outside the submission changed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import psutil
import pytest

from grader.course import manifest
from private_tmp import scratch  # noqa: F401  (a fixture)
from support import build_submission, need_sandbox, needed_on_ci

CASES_DIR = Path(__file__).parent / "adversarial"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.toml").is_file())
SOCKLAB = [sys.executable, "-m", "grader.cli"]
STRAY_NAMES = ("results.json", "gradebook.csv", "socklab-stray-from-student")


def read_case(name: str) -> dict:
    return tomllib.loads((CASES_DIR / name / "case.toml").read_text())


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")   # C0 but newline and tab, DEL, C1


def make_submission(name: str, spec: dict, dest: Path) -> Path:
    exercise = manifest.get(spec["exercise"])
    if spec["base"] == "solution":
        return build_submission(dest, exercise, spec)
    if spec["base"] == "link":   # the exercise folder is a link into the course
        dest.mkdir(parents=True)
        (dest / exercise.id).symlink_to(manifest.COURSE_ROOT / spec["link_to"])
        return dest
    folder = dest / exercise.id
    folder.mkdir(parents=True)
    if spec["base"] == "stub":  # the exercise's stub, with the case's files beside it
        for file in exercise.files:
            shutil.copyfile(exercise.folder / file, folder / file)
    for path in (CASES_DIR / name).iterdir():
        if path.name != "case.toml":
            shutil.copyfile(path, folder / path.name)
    return dest


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


class Secrets:
    """Secrets planted where a graded program must never look, each a
    random string that must appear in no report: a file in the course's
    own .git, a classmate's submission beside the student, two other
    copies of the course (one a git repository) beside the class and in
    /tmp, and a variable in the grader's environment."""

    def __init__(self, root: Path, exercise: manifest.Exercise) -> None:
        self.values: dict[str, str] = {}
        self.cleanup: list[Path] = []
        git = manifest.COURSE_ROOT / ".git"
        if git.is_dir():
            path = git / f"socklab-canary-{uuid.uuid4().hex}"
            path.write_text(self._new("the course's .git") + "\n")
            self.cleanup.append(path)
        classmate = root / "class" / "classmate" / exercise.id
        classmate.mkdir(parents=True)
        for name in exercise.files:
            text = (exercise.solution_folder / name).read_text()
            (classmate / name).write_text(f"# {self._new('a classmate')}\n" + text)
        copy = root / "course-copy"
        for folder in ("exercises", f"solutions/{exercise.id}", f"grader/hidden/{exercise.id}"):
            (copy / folder).mkdir(parents=True)
        shutil.copyfile(manifest.EXERCISES_DIR / "manifest.toml", copy / "exercises" / "manifest.toml")
        for name in exercise.files:
            (copy / "solutions" / exercise.id / name).write_text(
                f"# {self._new('a copy of the course')}\n" + (exercise.solution_folder / name).read_text())
        (copy / "grader" / "hidden" / exercise.id / "test_hidden.py").write_text(
            f"# {self._new('a copy of the hidden suite')}\n")
        subprocess.run(["git", "init", "-q", str(copy)], check=True)
        subprocess.run(["git", "-C", str(copy), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(copy), "-c", "user.name=x", "-c", "user.email=x@x",
                        "commit", "-qm", "course"], check=True)
        elsewhere = Path("/tmp") / f"socklab-course-copy-{uuid.uuid4().hex}"
        shutil.copytree(copy, elsewhere, symlinks=True)
        self.cleanup.append(elsewhere)
        self.env = {"SOCKLAB_CANARY": self._new("the grader's environment")}
        hidden = exercise.hidden_tests()[0].read_text().split("\n")[0].strip('"')
        if len(hidden) > 30:
            self.values[hidden] = "the hidden suite's first line"

    def _new(self, where: str) -> str:
        value = f"socklab-secret-{uuid.uuid4().hex}"
        self.values[value] = where
        return value

    def leaked(self, text: str) -> list[str]:
        return [f"{where} ({value[:40]})" for value, where in self.values.items() if value in text]

    def remove(self) -> None:
        for path in self.cleanup:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def strays_in(folders: list[Path]) -> list[str]:
    """Files a hostile program names socklab-stray-* in shared places."""
    found = []
    for folder in folders:
        try:
            found += [str(p) for p in folder.iterdir() if p.name.startswith("socklab-stray")]
        except OSError:
            pass
    return found


def processes_touching(folder: Path) -> list[str]:
    """Live processes whose command line or working folder is in `folder`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(info["cmdline"] or []) + " " + (info["cwd"] or "")
        if str(folder) in text:
            found.append(f"{info['pid']}: {text[:150]}")
    return found


def listening_sockets_of(pids: set[int]) -> list[str]:
    return [f"{c.pid} {c.laddr}" for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


def test_the_corpus_has_the_kinds_the_issues_list():
    assert len(CASES) >= 22, CASES


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", CASES)
def test_adversarial_submission(name, scratch):
    tmp_path = scratch
    spec = read_case(name)
    need_sandbox()
    exercise = manifest.get(spec["exercise"])
    submission = make_submission(name, spec, tmp_path / "class" / "student")
    secrets = Secrets(tmp_path, exercise)
    shared = [Path("/tmp"), Path("/dev"), Path("/dev/shm"), manifest.COURSE_ROOT,
              manifest.EXERCISES_DIR / exercise.id, manifest.SOLUTIONS_DIR / exercise.id]
    strays_before = set(strays_in(shared))
    before = tree_digest(tmp_path / "class")
    runtime_tmp = tmp_path / "tmp"
    workdir = tmp_path / "cwd"
    runtime_tmp.mkdir()
    workdir.mkdir()
    watched = [p for n in STRAY_NAMES for p in (Path("/tmp") / n, tmp_path / n)]
    already = {p for p in watched if p.exists()}
    canary = Path("/tmp") / f"socklab-canary-{uuid.uuid4().hex}"
    canary.write_text("a file outside the submission that must survive grading\n")
    env = {**os.environ, "TMPDIR": str(runtime_tmp), **secrets.env}
    command = [*SOCKLAB, "grade", str(submission), "--exercise", spec["exercise"],
               "--format", "json"]
    if "exercise_timeout" in spec:
        command += ["--exercise-timeout", str(spec["exercise_timeout"])]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=spec["budget_seconds"] + 120)
        elapsed = time.monotonic() - started
        canary_survived = canary.exists()
        verbose = None
        if spec.get("no_control_characters"):
            verbose = subprocess.run([*SOCKLAB, "grade", str(submission), "--exercise",
                                      spec["exercise"], "-v"], cwd=workdir, env=env,
                                     capture_output=True, text=True, timeout=300)
    finally:
        canary.unlink(missing_ok=True)
        secrets.remove()
    assert done.returncode == 0, f"socklab grade failed on {name}:\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout)["exercises"][spec["exercise"]]

    # Nothing planted anywhere reached the report (or the grader's own output).
    leaks = secrets.leaked(done.stdout + done.stderr + (verbose.stdout if verbose else ""))
    assert not leaks, f"{name}: secrets reached the report: {leaks}"
    if "max_report_bytes" in spec:
        assert len(done.stdout) <= spec["max_report_bytes"], \
            f"{name}: a report of {len(done.stdout)} bytes, over {spec['max_report_bytes']}"
    if verbose is not None:
        texts = [t["message"] for t in result["tests"]] + [result["message"], verbose.stdout]
        raw = sorted({repr(c) for text in texts for c in CONTROL.findall(text)})
        assert not raw, f"{name}: control characters reached the output unescaped: {raw}"

    failed = [f"{t['name']}: {t['message'][:600]}" for t in result["tests"] if t["status"] != "passed"]
    assert result["score"] == spec["expected_score"], (
        f"{name} ({spec['description']}) scored {result['score']}, expected "
        f"{spec['expected_score']}. Note: {result['message']}\nTests not passed:\n" + "\n".join(failed))
    if "expected_in_failures" in spec:
        failures = [t for t in result["tests"] if t["status"] == "failed"]
        assert failures and all(spec["expected_in_failures"] in t["message"] for t in failures), \
            [t["message"][-800:] for t in failures if spec["expected_in_failures"] not in t["message"]]
    if "expected_message" in spec:
        assert spec["expected_message"] in result["message"], result["message"]
    assert elapsed <= spec["budget_seconds"], \
        f"grading {name} took {elapsed:.0f} s, over its budget of {spec['budget_seconds']} s"

    # Nothing left behind.
    leftovers = processes_touching(tmp_path)
    assert not leftovers, f"processes still running after grading {name}: {leftovers}"
    owners = {int(line.split(":")[0]) for line in leftovers}
    assert not listening_sockets_of(owners)
    assert list(runtime_tmp.iterdir()) == [], \
        f"temporary files left: {[str(p) for p in runtime_tmp.rglob('*')][:10]}"
    assert list(workdir.iterdir()) == [], f"files written where socklab ran: {list(workdir.iterdir())}"
    assert tree_digest(tmp_path / "class") == before, "the submission folder was changed"
    assert canary_survived, f"{name} deleted a file outside its folder ({canary})"
    strays = [str(p) for p in watched if p.exists() and p not in already]
    strays += sorted(set(strays_in(shared)) - strays_before)
    assert not strays, f"stray files after grading {name}: {strays}"


FLOODER = '''
"""Floods every server listening on loopback instead of serving (adversarial case)."""
import os, socket, sys, time

port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0
listener = socket.create_server(("0.0.0.0", port)) if port else None   # accepts nobody
print(f"[server] listening on 0.0.0.0:{port}", flush=True)


def listening_ports():
    """Every TCP port anyone listens on in this network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A":
                found.add(int(fields[1].rsplit(":", 1)[1], 16))
    return found - {port}


held, reached = [], set()
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    for target in sorted(listening_ports()):
        for _ in range(20):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", target))
            try:
                s.send(b"flood " * 2000 + b"\\n")
            except OSError:
                pass
            held.append(s)
        reached.add(target)
    print(f"[flood] reached {len(reached)} ports: {sorted(reached)[:20]}", file=sys.stderr, flush=True)
    time.sleep(0.05)
'''


@pytest.mark.timeout(400)
def test_a_flooding_classmate_cannot_touch_a_student_graded_beside_it(scratch):
    """Two students graded at the same time (grade-class --jobs 2): one
    floods every loopback port it can find; the other keeps full marks, and
    the flooder reached nothing (each grading has a network of its own)."""
    need_sandbox()
    from grader.harness import sandbox
    needed_on_ci(None if sandbox.network_isolation_available()
                 else "a network namespace per grading needs root",
                 "give each grading a network namespace of its own")
    class_dir = scratch / "class"
    build_submission(class_dir / "victim", manifest.get("03_poll"))
    flooder = class_dir / "flooder" / "01_tcp_server"
    flooder.mkdir(parents=True)
    (flooder / "tcp_server.py").write_text(FLOODER)
    book = scratch / "gradebook.csv"
    done = subprocess.run([*SOCKLAB, "grade-class", str(class_dir), "--output", str(book),
                           "--jobs", "2", "--exercise", "01_tcp_server", "--exercise", "03_poll",
                           "--exercise-timeout", "40"],
                          capture_output=True, text=True, timeout=380, cwd=scratch)
    assert done.returncode == 0, done.stderr[-3000:]
    victim = json.loads((scratch / "gradebook-reports" / "victim.json").read_text())
    assert victim["exercises"]["03_poll"]["score"] == 100, \
        [t["message"][:500] for t in victim["exercises"]["03_poll"]["tests"] if t["status"] != "passed"]
    flood = json.loads((scratch / "gradebook-reports" / "flooder.json").read_text())
    messages = "\n".join(t["message"] for t in flood["exercises"]["01_tcp_server"]["tests"])
    assert "[flood] reached 0 ports" in messages, messages[-2000:]
    assert not re.search(r"\[flood\] reached [1-9]", messages), messages[-2000:]
