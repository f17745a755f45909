"""A pytest plugin for grading-costs/cpu_profile.py: where one grading
process spends its CPU. Loaded with `-p cpu_probe` (this folder on
PYTHONPATH); writes a JSON record to CPU_PROBE_OUT when the run ends:

- the test process's own CPU (the grader side: pytest, the plugin, the
  clients and crowds the tests drive, the polling loops) and a cProfile of
  it grouped by module;
- the CPU of every child it waited for (the student programs with their
  sandboxes, the module-call interpreters), and how many of each it started.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import resource
import time

import psutil

_profile = cProfile.Profile(time.process_time)     # CPU time, not time spent waiting
_counts = {"programs": 0, "module calls": 0}
_programs_cpu = [0.0]       # read just before each program is stopped (a killed
                            # sandbox is never reaped by its parent: RUSAGE_CHILDREN misses it)


def pytest_configure(config):
    from grader.harness import module_calls, program

    original_init = program.Program.__post_init__

    def counted_init(self):
        _counts["programs"] += 1
        original_init(self)

    program.Program.__post_init__ = counted_init
    original_stop = program.Program.stop

    def measured_stop(self):
        if not getattr(self, "_stopped", False):
            try:
                root = psutil.Process(self.group)
                for proc in [root, *root.children(recursive=True)]:
                    times = proc.cpu_times()
                    _programs_cpu[0] += times.user + times.system
            except psutil.Error:
                pass
        original_stop(self)

    program.Program.stop = measured_stop
    original_run = module_calls.ModuleRunner._execute if hasattr(module_calls.ModuleRunner, "_execute") else None
    if original_run is not None:
        def counted_run(self, *args, **kwargs):
            _counts["module calls"] += 1
            return original_run(self, *args, **kwargs)
        module_calls.ModuleRunner._execute = counted_run
    _profile.enable()


def _by_module(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own (not cumulative) time per source folder: where the CPU really goes."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
        if "/grader/" in filename:
            key = "grader/" + filename.split("/grader/", 1)[1]
        elif "site-packages/" in filename:
            key = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith("~") or filename.startswith("<"):
            key = "builtins (socket calls, select/poll, os calls...)"
        else:
            key = "stdlib " + os.path.basename(filename)
        totals[key] = totals.get(key, 0.0) + own
    return sorted(totals.items(), key=lambda kv: -kv[1])


def pytest_unconfigure(config):
    _profile.disable()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = pstats.Stats(_profile)
    out = os.environ.get("CPU_PROBE_OUT")
    if out:
        with open(out, "w") as f:
            json.dump({"self_cpu": me.ru_utime + me.ru_stime,
                       "children_cpu": kids.ru_utime + kids.ru_stime,
                       "programs_cpu": _programs_cpu[0],
                       "counts": _counts,
                       "profile": _by_module(stats)[:25]}, f)
