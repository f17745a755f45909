"""Grade every case of tests/adversarial/ the way an instructor would (the
`socklab grade` command in a child process) and check the score, the time,
and that nothing is left behind: no process, no listening socket, no
temporary folder, no stray file, nothing outside the submission changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import psutil
import pytest

from grader import manifest, sandbox
from private_tmp import scratch  # noqa: F401  (a fixture)
from support import build_submission

CASES_DIR = Path(__file__).parent / "adversarial"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.toml").is_file())
SOCKLAB = [sys.executable, "-m", "grader.cli"]
STRAY_NAMES = ("results.json", "gradebook.csv", "socklab-stray-from-student")


def read_case(name: str) -> dict:
    return tomllib.loads((CASES_DIR / name / "case.toml").read_text())


def make_submission(name: str, spec: dict, dest: Path) -> Path:
    exercise = manifest.get(spec["exercise"])
    if spec["base"] == "solution":
        return build_submission(dest, exercise, spec)
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
            for p in sorted(root.rglob("*")) if p.is_file()}


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


def test_the_corpus_has_the_kinds_the_issue_lists():
    assert len(CASES) >= 12, CASES


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", CASES)
def test_adversarial_submission(name, scratch):
    tmp_path = scratch
    spec = read_case(name)
    if spec.get("needs") == "file-system-confinement" and not sandbox.mount_namespaces_available():
        pytest.skip("this case deletes files outside its folder; only a confined program "
                    "(grader run as root, with mount namespaces) is stopped from doing so")
    submission = make_submission(name, spec, tmp_path / "class" / "student")
    before = tree_digest(tmp_path / "class")
    runtime_tmp = tmp_path / "tmp"
    workdir = tmp_path / "cwd"
    runtime_tmp.mkdir()
    workdir.mkdir()
    watched = [p for n in STRAY_NAMES for p in (Path("/tmp") / n, tmp_path / n)]
    already = {p for p in watched if p.exists()}
    canary = Path("/tmp") / f"socklab-canary-{uuid.uuid4().hex}"
    canary.write_text("a file outside the submission that must survive grading\n")
    env = {**os.environ, "TMPDIR": str(runtime_tmp)}
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
    finally:
        canary.unlink(missing_ok=True)
    assert done.returncode == 0, f"socklab grade failed on {name}:\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout)["exercises"][spec["exercise"]]

    failed = [f"{t['name']}: {t['message'][:600]}" for t in result["tests"] if t["status"] != "passed"]
    assert result["score"] == spec["expected_score"], (
        f"{name} ({spec['description']}) scored {result['score']}, expected "
        f"{spec['expected_score']}. Note: {result['message']}\nTests not passed:\n" + "\n".join(failed))
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
    assert not strays, f"stray files after grading {name}: {strays}"
