"""The bench's results as a terminal table, a few plain sentences, and a CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from grader.bench.measure import Outcome, Row, Spread

CSV_FIGURES = {         # column prefix -> (Row attribute, scale to the unit)
    "latency_p50_us": ("p50", 1e6),
    "latency_p99_us": ("p99", 1e6),
    "cpu_per_message_us": ("cpu", 1e6),
    "rss_per_connection_bytes": ("rss", 1.0),
}
CSV_COLUMNS = (["server", "label", "idle_connections", "workload", "messages", "repeats"]
               + [f"{name}{end}" for name in CSV_FIGURES for end in ("", "_low", "_high")])


def duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def size(count: float) -> str:
    if math.isnan(count):
        return "-"
    return f"{count / 1024:.1f} KiB" if abs(count) >= 1024 else f"{count:.0f} B"


def spread(figure: Spread) -> str:
    """How far the repeats strayed from their median, in percent."""
    if not figure.median or math.isnan(figure.median):
        return ""
    return f"±{max(figure.high - figure.median, figure.median - figure.low) / abs(figure.median):.0%}"


def _pairs(outcome: Outcome) -> list[tuple[Row, Row]]:
    """(wake-up row, message row) for each server and N, in run order."""
    rows = {(r.label, r.idle, r.workload): r for r in outcome.rows}
    keys = dict.fromkeys((r.label, r.idle) for r in outcome.rows)
    return [(rows[(label, idle, "wake-up")], rows[(label, idle, "message")])
            for label, idle in keys
            if (label, idle, "wake-up") in rows and (label, idle, "message") in rows]


def table(outcome: Outcome) -> str:
    head = ["server", "N idle", "wake-up p50", "p99", "CPU/wake-up", "message p50", "p99",
            "CPU/message", "RSS/conn"]
    body = []
    for wake, message in _pairs(outcome):
        body.append([wake.label, str(wake.idle),
                     duration(wake.p50.median), duration(wake.p99.median),
                     f"{duration(wake.cpu.median)} {spread(wake.cpu)}",
                     duration(message.p50.median), duration(message.p99.median),
                     f"{duration(message.cpu.median)} {spread(message.cpu)}",
                     f"{size(wake.rss.median)} {spread(wake.rss)}"])
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [head] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if outcome.rows:
        first = outcome.rows[0]
        lines.append(f"\nMedians of {first.repeats} windows of {first.messages} messages each "
                     "(after a warm-up); ± is how far the windows strayed from their median.")
        lines.append("wake-up: one byte, read by the server among N idle clients (no reply); "
                     "message: a line and its answer (chat: a broadcast to all N).")
    return "\n".join(lines)


def _cpu(outcome: Outcome, server: str, idle: int) -> float | None:
    for row in outcome.rows:
        if row.server == server and row.idle == idle and row.workload == "wake-up":
            return row.cpu.median
    return None


def highlights(outcome: Outcome) -> list[str]:
    """The comparisons the bench exists for, at the largest N measured."""
    if not outcome.rows:
        return []
    largest = max(r.idle for r in outcome.rows)
    said = []
    for top, bottom, what in (("poll", "epoll", "poll / epoll"),
                              ("epoll", "c", "Python epoll / C baseline"),
                              ("threads", "epoll", "threads / epoll")):
        a, b = _cpu(outcome, top, largest), _cpu(outcome, bottom, largest)
        if a and b:
            said.append(f"At N={largest}, CPU per wake-up, {what}: {a / b:.1f}x "
                        f"({duration(a)} / {duration(b)})")
    return said


def write_csv(outcome: Outcome, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in outcome.rows:
            cells = [row.server, row.label, row.idle, row.workload, row.messages, row.repeats]
            for attribute, scale in CSV_FIGURES.values():
                figure: Spread = getattr(row, attribute)
                cells += [_number(figure.median * scale), _number(figure.low * scale),
                          _number(figure.high * scale)]
            writer.writerow(cells)


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"
