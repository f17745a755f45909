"""Run the bench: for each server and each number of idle connections, a
warm-up window and then repeated measured windows of each workload, summed
up as the median of the repeats with their spread (lowest, highest).

A server is started once; its idle crowd grows from one N to the next
(a chat room of N users costs O(N^2) announcements to fill, so it is
filled once, up to the largest N). A server that fails is reported in
words with the end of its output, and the others are measured still."""

from __future__ import annotations

import random
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grader.bench import capacity, procstat, servers
from grader.bench.load import BYTE_TIMEOUT, WORKLOADS, Session, Window
from grader.harness import launch, ports
from grader.harness.failure import GradingFailure
from grader.harness.program import Limits, Program
from grader.harness.transcript import Transcript
from grader.testkit.crowd import Crowd, latency_percentile, reset_all

CPU_SECONDS = 3600      # a chat server filling a room of 10,000 works for minutes


@dataclass
class Settings:
    servers: list[str]
    fds: list[int]
    messages: int = 200     # per measured window (latency p50 and p99 over these)
    warmup: int = 20        # per warm-up window, not counted
    repeats: int = 3        # measured windows per workload and N
    seed: int = 0


@dataclass(frozen=True)
class Spread:
    """A figure over the repeats: their median, lowest and highest."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        ordered = sorted(values)
        middle = len(ordered) // 2
        median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return cls(median, ordered[0], ordered[-1])


@dataclass(frozen=True)
class Row:
    server: str
    label: str
    idle: int               # N: idle connections
    workload: str           # "wake-up" or "message"
    messages: int
    repeats: int
    p50: Spread             # seconds
    p99: Spread             # seconds
    cpu: Spread             # seconds of server CPU per message
    rss: Spread             # bytes of server memory per idle connection


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # capacity cuts, skipped servers
    failures: dict[str, str] = field(default_factory=dict)  # label -> what went wrong
    seconds: float = 0.0


def summarise(kind: servers.ServerKind, idle: int, workload: str,
              windows: list[Window]) -> Row:
    return Row(kind.name, kind.label, idle, workload, len(windows[0].latencies), len(windows),
               p50=Spread.of([latency_percentile(w.latencies, 0.50) for w in windows]),
               p99=Spread.of([latency_percentile(w.latencies, 0.99) for w in windows]),
               cpu=Spread.of([w.cpu_per_message for w in windows]),
               rss=Spread.of([w.rss_per_connection for w in windows]))


def _limits(descriptors: int, most: int) -> Limits:
    """Limits for a server under the bench: the descriptors the bench has,
    a thread and a thread stack per client, CPU time for the big rooms."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    return Limits(cpu_seconds=CPU_SECONDS, address_space=hard, open_files=descriptors,
                  processes=most + 64)


def start_server(kind: servers.ServerKind, argv: Callable[..., list[str]], folder: Path,
                 transcript: Transcript, most: int, descriptors: int) -> tuple[Program, int]:
    """Start one server (ready for `most` clients) on a free port, the way
    the grader does: spawned in its own session, its output drained."""
    limits = _limits(descriptors, most)
    started: list[Program] = []

    def spawn(script: str, *args, name: str = "server") -> Program:
        started.append(Program(argv(*args), cwd=folder, transcript=transcript, name=name,
                               limits=limits, log_dir=folder))
        return started[-1]

    try:
        return launch.start_server(spawn, ports.free_port, kind.script,
                                   lambda port: kind.args(port, most), lambda port: kind.ready)
    except GradingFailure as exc:
        tail = started[-1].output_tail() if started else ""
        for program in started:
            program.stop()
        raise GradingFailure(exc.did, exc.expected, f"{exc.got}\n{tail}", exc.hint) from None


def measure_server(kind: servers.ServerKind, argv: Callable[..., list[str]], folder: Path,
                   counts: list[int], descriptors: int, settings: Settings,
                   say: Callable[[str], None]) -> list[Row]:
    """Start one server, grow its idle crowd through `counts`, measure."""
    transcript = Transcript()
    program, port = start_server(kind, argv, folder, transcript, max(counts) + 10, descriptors)
    crowd = Crowd(port, transcript, name="idle", timeout=BYTE_TIMEOUT)
    session = None
    rows: list[Row] = []
    try:
        session = Session(program, crowd, kind.protocol, random.Random(f"{settings.seed}:{kind.name}"))
        for count in counts:
            started = time.monotonic()
            session.grow_to(count)
            grown = time.monotonic() - started
            for workload in WORKLOADS:
                session.window(workload, settings.warmup)
                windows = [session.window(workload, settings.messages)
                           for _ in range(settings.repeats)]
                rows.append(summarise(kind, count, workload, windows))
            wake, message = rows[-2], rows[-1]
            say(f"{kind.label}: N={count} (idle clients ready in {grown:.1f} s): CPU per wake-up "
                f"{wake.cpu.median * 1e6:.1f} us, per message {message.cpu.median * 1e6:.1f} us")
    except GradingFailure as exc:
        raise GradingFailure(exc.did, exc.expected, exc.got + "\n" + program.output_tail(),
                             exc.hint) from None
    finally:
        program.stop()      # first: a chat server would announce every departure
        reset_all(crowd)
        if session is not None:
            session.close()
    return rows


def run(settings: Settings, root: Path, say: Callable[[str], None] = print) -> Outcome:
    """Measure every server of `settings` from the submission `root`."""
    outcome = Outcome()
    started = time.monotonic()
    if not procstat.SCHEDSTAT:
        outcome.notes.append("this kernel has no /proc/PID/schedstat: CPU times come from "
                             "utime+stime, in 10 ms ticks, and small figures are coarse")
    temp = Path(tempfile.mkdtemp(prefix="socklab-bench-"))
    try:
        for name in settings.servers:
            kind = servers.KINDS[name]
            counts, cuts, descriptors = capacity.plan(settings.fds, threaded=name == "threads")
            outcome.notes += [note for note in cuts if note not in outcome.notes]
            folder = temp / name
            folder.mkdir()
            argv, why = servers.prepare(kind, root, folder)
            if argv is None:
                outcome.notes.append(f"{kind.label}: {why}")
                say(f"{kind.label}: {why}")
                continue
            try:
                outcome.rows += measure_server(kind, argv, folder, counts, descriptors,
                                               settings, say)
            except GradingFailure as exc:
                outcome.failures[kind.label] = exc.render()
                say(f"{kind.label}: FAILED\n{exc.render()}")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    outcome.seconds = time.monotonic() - started
    return outcome
