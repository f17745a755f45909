"""The bench's PNG: latency and server CPU per message against N, log-log.

Top row: wake-ups (one byte among N idle clients: what the poller costs).
Bottom row: messages (a line and its answer: for a chat server, a broadcast
to all N). Left: latency, median (p50, solid) and p99 (dashed). Right: CPU
per message, with the spread of the repeats as error bars. matplotlib comes
with the `bench` extra (pip install 'socklab[bench]'); without it, no plot."""

from __future__ import annotations

import os
from pathlib import Path

from grader.bench.load import WORKLOADS
from grader.bench.measure import Outcome

WHAT = {"wake-up": "wake-up: 1 byte among N idle clients",
        "message": "message: a line and its answer"}


def plot(outcome: Outcome, path: Path, title: str) -> str | None:
    """Write the PNG; return None, or why there is no plot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return "matplotlib is not installed (pip install 'socklab[bench]'): no plot"
    if not outcome.rows:
        return "nothing was measured: no plot"
    labels = list(dict.fromkeys(r.label for r in outcome.rows))
    colours = dict(zip(labels, plt.get_cmap("tab10").colors))
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5), squeeze=False)
    for row_axes, workload in zip(axes, WORKLOADS):
        latency, cpu = row_axes
        for label in labels:
            rows = sorted((r for r in outcome.rows if r.label == label and r.workload == workload),
                          key=lambda r: r.idle)
            if not rows:
                continue
            ns = [r.idle for r in rows]
            colour = colours[label]
            latency.plot(ns, [r.p50.median * 1e6 for r in rows], "o-", color=colour, label=label)
            latency.plot(ns, [r.p99.median * 1e6 for r in rows], "s--", color=colour, alpha=0.5)
            medians = [r.cpu.median * 1e6 for r in rows]
            cpu.errorbar(ns, medians,
                         yerr=[[m - r.cpu.low * 1e6 for m, r in zip(medians, rows)],
                               [r.cpu.high * 1e6 - m for m, r in zip(medians, rows)]],
                         fmt="o-", color=colour, capsize=3, label=label)
        latency.set_ylabel("latency (µs)")
        cpu.set_ylabel("server CPU per message (µs)")
        latency.set_title(f"{WHAT[workload]}\nlatency: p50 solid, p99 dashed", fontsize=10)
        cpu.set_title(f"{WHAT[workload]}\nserver CPU per message (bars: spread of repeats)",
                      fontsize=10)
        for ax in row_axes:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("N idle connections")
            ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def machine() -> str:
    """A few words on the machine, for the plot's title."""
    return f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}"
