"""What an output bomb costs the grader: `socklab grade --exercise 03_poll`
of the reference chat server, and of the same server that first prints
256 lines of 1 MiB on stdout, side by side in one run.

    .venv/bin/python grading-costs/output_bomb.py [--rounds 1] [--lines 256]

For each it prints the score, the wall time, the peak resident memory of
the grader's own processes (the `socklab` process, its jail and its pytest
child, summed, sampled every 50 ms; never the student's programs or
bubblewrap, nor a fork of pytest that has not yet exec'd the program it
starts, which shares pytest's pages) and the size of the JSON report. Then, to tell what is the
kernel's and what is ours, the time to pass the same output through a
pseudo-terminal to a plain reader, and to a grader `Program`.

The issue's targets: the bomb costs at most 1.5 x the reference's grading
time, and the grader's processes peak at most 200 MB above their peak on
the reference. The bomb scores 0: past the 32 MiB a program may print in
one run (grader.harness.program.STDOUT_BUDGET) the grader stops it. The pty
figures are taken with that budget lifted, to show the drain's own speed.
Not part of `make test` (a minute or two)."""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pexpect
import psutil

ROOT = Path(__file__).resolve().parent.parent
SOCKLAB = ROOT / ".venv" / "bin" / "socklab"
SOLUTION = ROOT / "solutions" / "03_poll" / "chat_server.py"
SAMPLE_SECONDS = 0.05

BOMB = '''import sys as _bomb_sys
_bomb_line = "x" * ((1 << 20) - 1) + "\\n"
for _bomb_i in range({lines}):
    _bomb_sys.stdout.write(_bomb_line)
_bomb_sys.stdout.flush()
'''


def submissions(tmp: Path, lines: int) -> dict[str, Path]:
    """<tmp>/reference/03_poll/chat_server.py and <tmp>/bomb/03_poll/chat_server.py."""
    source = SOLUTION.read_text()
    # The prefix goes after the module docstring (kept first, as Python wants
    # any `from __future__` import there) and before every other statement.
    end = source.index('"""', source.index('"""') + 3) + 3 if source.lstrip().startswith('"""') else 0
    bombed = source[:end] + "\n" + BOMB.format(lines=lines) + source[end:]
    made = {}
    for name, text in (("reference", source), ("bomb", bombed)):
        folder = tmp / name / "03_poll"
        folder.mkdir(parents=True)
        (folder / "chat_server.py").write_text(text)
        made[name] = tmp / name
    return made


def is_grader(cmdline: list[str]) -> bool:
    """The socklab command, its jail or its pytest child (by their first
    arguments; a student's program is `python -u -s SCRIPT`, bwrap is bwrap)."""
    head = cmdline[:4]
    return any(Path(arg).name in ("socklab", "pytest") or arg in ("pytest", "grader.harness.jail", "grader.cli")
               for arg in head)


class PeakRss:
    """Samples the grader's processes under `root` until stopped."""

    def __init__(self, root: int) -> None:
        self.root = psutil.Process(root)
        self.peak = 0
        self.roles: dict[str, int] = {}     # the peak of each kind of grader process
        self.programs: set[int] = set()     # student programs seen (chat_server.py, not bwrap)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                family = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                family = []
            cmdlines = {}
            for proc in family:
                try:
                    cmdlines[proc.pid] = proc.cmdline()
                except psutil.Error:
                    pass
            for proc in family:
                try:
                    cmdline = cmdlines.get(proc.pid, [])
                    # A fork that has not exec'd yet (pytest starting a
                    # program) shares its parent's pages: not counted twice.
                    if cmdline == cmdlines.get(proc.ppid()):
                        continue
                    if cmdline and Path(cmdline[0]).name.startswith("python") \
                            and any(a.endswith("chat_server.py") for a in cmdline[1:5]):
                        self.programs.add(proc.pid)
                    if is_grader(cmdline):
                        rss = proc.memory_info().rss
                        total += rss
                        role = next(a for a in cmdline[1:4] if not a.startswith("-"))
                        role = Path(role).name
                        self.roles[role] = max(self.roles.get(role, 0), rss)
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def grade(submission: Path, report: Path) -> dict:
    command = [str(SOCKLAB), "grade", str(submission), "--exercise", "03_poll",
               "--format", "json", "--output", str(report)]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = PeakRss(proc.pid)
    _, err = proc.communicate()
    peak = sampler.stop()
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"socklab grade failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    data = json.loads(report.read_text())
    tests = data["exercises"]["03_poll"]["tests"]
    return {"seconds": elapsed, "peak_rss": peak, "report_bytes": report.stat().st_size,
            "roles": ", ".join(f"{k} {v / 1e6:.0f}" for k, v in sampler.roles.items()),
            "starts": len(sampler.programs),
            "score": data["score"], "tests": len(tests),
            "failed": [t["name"] for t in tests if t["status"] not in ("passed", "skipped")]}


def pty_baseline(lines: int, rounds: int = 3) -> tuple[float, float]:
    """Median seconds to pass the bomb's output through a pseudo-terminal
    to (a) a plain reader that drops it and (b) a grader Program (its
    reader thread, line splitting and caps), each to the end of the output;
    the two alternate, `rounds` times each."""
    plain, ours = [], []
    for _ in range(rounds):
        a, b = _pty_once(lines)
        plain.append(a)
        ours.append(b)
    return statistics.median(plain), statistics.median(ours)


def _pty_once(lines: int) -> tuple[float, float]:
    script = BOMB.format(lines=lines) + "print('ready')\n"
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-u", "-s", "-c", script], echo=False,
                          timeout=None, dimensions=(24, 400))
    poller = select.poll()
    poller.register(child.child_fd, select.POLLIN)
    while True:
        poller.poll(200)
        try:
            if not os.read(child.child_fd, 1 << 20):
                break
        except OSError:
            break
    plain = time.monotonic() - started
    child.close(force=True)

    sys.path.insert(0, str(ROOT))
    from grader.harness import program as program_module
    from grader.harness.program import Program
    from grader.harness.transcript import Transcript
    program_module.STDOUT_BUDGET = 1 << 40   # measure the drain itself, past the grader's budget
    folder = Path(tempfile.mkdtemp(prefix="bomb-pty-"))
    try:
        (folder / "bomb.py").write_text(script)
        started = time.monotonic()
        program = Program([sys.executable, "-u", "-s", str(folder / "bomb.py")], cwd=folder,
                          transcript=Transcript(), name="bomb")
        try:
            program.expect_line("ready", literal=True, timeout=120)
            ours = time.monotonic() - started
        finally:
            program.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return plain, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="gradings of each, alternating")
    parser.add_argument("--lines", type=int, default=256, help="lines of 1 MiB the bomb prints")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"reference": [], "bomb": []}
    with tempfile.TemporaryDirectory(prefix="output-bomb-") as tmp:
        made = submissions(Path(tmp), args.lines)
        for round_ in range(args.rounds):
            for name in ("reference", "bomb"):
                result = grade(made[name], Path(tmp) / f"{name}-{round_}.json")
                runs[name].append(result)
                print(f"  {name:9}  round {round_ + 1}: {result['seconds']:6.1f} s  "
                      f"peak RSS {result['peak_rss'] / 1e6:6.1f} MB ({result['roles']})  "
                      f"report {result['report_bytes'] / 1e3:8.1f} kB  "
                      f"score {result['score']:g} ({result['tests']} tests, "
                      f"{result['starts']} programs seen"
                      + (f", {len(result['failed'])} not passed" if result["failed"] else "")
                      + ")", flush=True)
    plain, ours = pty_baseline(args.lines)

    med = lambda name, key: statistics.median(r[key] for r in runs[name])
    print()
    print(f"{'':24}{'reference':>12}{'bomb':>12}")
    print(f"{'wall time (s)':24}{med('reference', 'seconds'):12.1f}{med('bomb', 'seconds'):12.1f}")
    print(f"{'grader peak RSS (MB)':24}{med('reference', 'peak_rss') / 1e6:12.1f}"
          f"{med('bomb', 'peak_rss') / 1e6:12.1f}")
    print(f"{'JSON report (kB)':24}{med('reference', 'report_bytes') / 1e3:12.1f}"
          f"{med('bomb', 'report_bytes') / 1e3:12.1f}")
    print(f"{'score':24}{med('reference', 'score'):12g}{med('bomb', 'score'):12g}")
    ratio = med("bomb", "seconds") / med("reference", "seconds")
    extra = (med("bomb", "peak_rss") - med("reference", "peak_rss")) / 1e6
    print()
    print(f"time ratio bomb/reference: {ratio:.2f} (target <= 1.5): "
          f"{'met' if ratio <= 1.5 else 'MISSED'}")
    print(f"extra grader memory: {extra:+.1f} MB (target <= 200 MB): "
          f"{'met' if extra <= 200 else 'MISSED'}")
    starts = med("bomb", "starts")
    print(f"extra time per program started: "
          f"{(med('bomb', 'seconds') - med('reference', 'seconds')) / max(1, starts):.2f} s "
          f"({starts:g} starts of the bomb seen)")
    print(f"{args.lines} MiB through a pty, once (median of 3): plain reader {plain:.2f} s, "
          f"grader Program {ours:.2f} s")


if __name__ == "__main__":
    main()
