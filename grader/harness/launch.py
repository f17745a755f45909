"""Start a student's server on a free port and wait until it says it is
ready, retrying on a fresh port if another process took the port first."""

from __future__ import annotations

import re
import time
from typing import Callable

from grader.harness import gates, listening, waits
from grader.harness.failure import GradingFailure
from grader.harness.program import Program

PORT_TAKEN = "address already in use"
ATTEMPTS = 4


def with_lowered_limits(command: str) -> str:
    """The name of `command`'s starts with lowered resource limits, for the
    gates: one name whatever the limits (see start_with_lowered_limits)."""
    return f"{command}, its descriptor limits lowered"


def start_with_lowered_limits(spawn: Callable[..., Program], free_port: Callable[[], int],
                              script: str, args: Callable[[int], list],
                              ready: Callable[[int], str], usual: str,
                              name: str = "server") -> tuple[Program, int]:
    """start_server for the `usual` command line (a gates.command_shape)
    spawned with lowered descriptor limits (by `spawn`), which the server
    raises back as it starts. Its start has a ready gate of its own that
    needs the usual one; once ready, it is in the usual start's state, so
    its clients meet the usual command line's gates (accepts, first
    answers): a server that never answers its first client fails the same
    way, whatever limits it was started with."""
    program, port = start_server(spawn, free_port, script, args, ready, name,
                                 command=with_lowered_limits(usual), usual=usual)
    gates.server_started(port, usual)
    return program, port


def start_server(spawn: Callable[..., Program], free_port: Callable[[], int], script: str,
                 args: Callable[[int], list], ready: Callable[[int], str],
                 name: str = "server", timeout: float = waits.READY,
                 command: str | None = None, usual: str | None = None) -> tuple[Program, int]:
    """Spawn `script` with `args(port)` until it prints a line matching
    `ready(port)` (a regex). Returns the program and its port. With
    `command` (its gates.command_shape, or a name for a start the usual
    command line makes in other conditions, such as lowered limits), the
    start is guarded by its ready gate and needs the `usual` one's
    (grader.harness.gates.server_start), and the server is noted for its
    clients' gates."""
    if command is None:
        return _start(spawn, free_port, script, args, ready, name, timeout)
    with gates.server_start(command, usual):
        program, port = _start(spawn, free_port, script, args, ready, name, timeout)
    gates.server_started(port, command, usual)
    return program, port


def _start(spawn: Callable[..., Program], free_port: Callable[[], int], script: str,
           args: Callable[[int], list], ready: Callable[[int], str],
           name: str, timeout: float) -> tuple[Program, int]:
    for attempt in range(ATTEMPTS):
        port = free_port()
        started = time.monotonic()
        program = spawn(script, *args(port), name=name)
        try:
            program.expect_line(
                re.compile(ready(port)), timeout=timeout,
                did=f"started {script} {' '.join(map(str, args(port)))} and waited for its ready line",
                done=lambda: listening.listens(program.pid, port),
                done_what="listening (the kernel lists its socket)",
            )
            waits.observed("ready", time.monotonic() - started)
            return program, port
        except GradingFailure:
            # A program that could not bind has left: its output has ended.
            # One still talking after the whole wait is not that program.
            status = program.wait_exit(waits.FINISHING) if program.wait_for_eof(0) \
                else program.poll_exit()
            if status is not None and PORT_TAKEN in program.stderr().lower() \
                    and attempt < ATTEMPTS - 1:
                program.stop()  # a parallel grader took the port: try another
                continue
            raise
    raise AssertionError("unreachable")
