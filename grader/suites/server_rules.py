"""The contract's general rules for every TCP server: arguments, a port in
use, SO_REUSEADDR, all interfaces, signals, and an idle server that sleeps.

Use it by subclassing `ServerRulesTests` in a suite and defining a
`server_spec` fixture that returns a `ServerSpec`. Tests name a topic
("listen", "shutdown", "loop") that the suite's module maps to its README's
task numbers in a dict `TASKS`."""

from __future__ import annotations

import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest

from .. import cpu
from ..failure import GradingFailure, check, fail
from ..ports import is_free

USAGE = re.compile(r"usage", re.IGNORECASE)
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class ServerSpec:
    script: str
    args: Callable[[int], list]         # a good command line for a port
    ready: Callable[[int], str]         # regex of the ready line for a port
    bad_args: list[list[str]] = field(default_factory=list)  # "{port}" -> a free port
    idle_cpu_fraction: float = 0.10
    # How to see that the server is busy with a newly connected client (for
    # example: read its welcome line), so signals arrive in a known state.
    engage: Callable | None = None

    def command(self, port: int) -> str:
        return " ".join(["python", "-u", self.script, *map(str, self.args(port))])


def start(start_server, spec: ServerSpec):
    return start_server(spec.script, spec.args, spec.ready)


def serving_a_client(start_server, connect, spec: ServerSpec):
    """A started server with one client connected and, where the spec says
    how to tell, known to be serving it."""
    program, port = start(start_server, spec)
    client = connect(port, name="client")
    if spec.engage is not None:
        spec.engage(client)
    return program


def require_working(start_server, spec: ServerSpec, connect=None) -> None:
    """Error handling earns points only from a server that also works: a
    program that always prints 'usage' and exits, or prints the ready line
    without listening, must not score here."""
    program, port = start(start_server, spec)
    if connect is not None:
        prove_serving(connect, port, spec)
    program.stop()


def prove_serving(connect, port: int, spec: ServerSpec) -> None:
    """A client connects and, where the spec says how, gets served."""
    client = connect(port, name="client")
    if spec.engage is not None:
        spec.engage(client)
    client.close()


def create_time_wait(port: int) -> None:
    """Leave `port` in TIME_WAIT, the way a server that just closed a
    connection leaves it: the accepting side closes first. The old sockets
    set SO_REUSEADDR (Linux allows the next bind only when both sides do)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    accepted, _ = listener.accept()
    accepted.close()                       # the server side closes first ...
    client.settimeout(5)
    client.recv(1)                         # ... the client sees end of file ...
    client.close()                         # ... and closes too
    listener.close()
    deadline = time.monotonic() + 5
    while is_free(port):                   # wait until the kernel shows TIME_WAIT
        if time.monotonic() > deadline:
            pytest.skip("could not put a port into TIME_WAIT on this machine")
        time.sleep(0.01)


def _taken_by_another(port: int) -> bool:
    """True if some process listens on `port`: a bind with SO_REUSEADDR,
    which TIME_WAIT alone never blocks, fails."""
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("0.0.0.0", port))
        return False
    except OSError:
        return True
    finally:
        probe.close()


def measure_cpu(program, seconds: float = 1.0) -> float:
    """The share of one core the program wanted over `seconds` of quiet:
    time running plus time waiting to run where Linux reports it (so a busy
    loop shows as busy even on a loaded machine), else CPU time."""
    return cpu.measure(program, seconds).demand


def expect_clean_exit(program, within: float, did: str, allowed_signals=()) -> None:
    status = program.wait_exit(within)
    if status is None:
        raise fail(did=did, expected=f"the server exits within {within:g} s",
                   got="it was still running", hint="")
    ok = status.code == 0 or status.signal in allowed_signals
    also = "".join(f" or death by {signal.Signals(s).name}" for s in allowed_signals)
    check(ok, did, f"exit status 0{also}", status.describe())
    check(TRACEBACK not in program.stderr(), did, "no traceback on stderr",
          "stderr holds a traceback (shown below)")


class ServerRulesTests:
    """Inherit in a suite; provide the `server_spec` fixture."""

    @pytest.mark.points(3)
    @pytest.mark.task("listen")
    def test_rejects_bad_arguments_with_usage(self, server_spec, spawn, start_server, free_port,
                                              connect):
        require_working(start_server, server_spec, connect)
        for bad in server_spec.bad_args:
            args = [a.replace("{port}", str(free_port())) for a in bad]
            program = spawn(server_spec.script, *args, name="server")
            did = f"ran: python -u {server_spec.script} {' '.join(args)}"
            status = program.wait_exit(5)
            check(status is not None, did, "the program exits with status 1",
                  "it was still running after 5 s")
            check(status.code == 1, did, "exit status 1", status.describe())
            err = program.stderr()
            check(bool(USAGE.search(err)), did, "a message containing 'usage' on stderr",
                  "stderr was:\n" + (err or "(empty)"))
            check(TRACEBACK not in err, did, "no traceback", "stderr was:\n" + err)
            program.stop()

    @pytest.mark.points(3)
    @pytest.mark.task("listen")
    def test_reports_a_port_in_use(self, server_spec, spawn, start_server, free_port, connect):
        require_working(start_server, server_spec, connect)
        port = free_port()
        holder = socket.socket()
        holder.bind(("0.0.0.0", port))
        holder.listen(1)
        try:
            program = spawn(server_spec.script, *server_spec.args(port), name="server")
            did = f"kept port {port} busy with a listening socket, then ran: {server_spec.command(port)}"
            status = program.wait_exit(5)
            check(status is not None, did, "the server exits with status 1",
                  "it was still running after 5 s")
            check(status.code == 1, did, "exit status 1", status.describe())
            err = program.stderr()
            check("already in use" in err.lower(), did,
                  "a message on stderr with the OS reason ('Address already in use')",
                  "stderr was:\n" + (err or "(empty)"))
            check(TRACEBACK not in err, did, "no traceback", "stderr was:\n" + err)
        finally:
            holder.close()

    @pytest.mark.points(3)
    @pytest.mark.task("listen")
    def test_binds_a_port_in_time_wait(self, server_spec, spawn, free_port, connect):
        for attempt in range(3):
            port = free_port()
            create_time_wait(port)
            program = spawn(server_spec.script, *server_spec.args(port), name="server")
            try:
                program.expect_line(
                    re.compile(server_spec.ready(port)),
                    did=f"left port {port} in TIME_WAIT (as a just-restarted server finds it), "
                        f"then ran: {server_spec.command(port)}")
                prove_serving(connect, port, server_spec)
                return
            except AssertionError:
                if program.wait_exit(1) is None or not _taken_by_another(port) or attempt == 2:
                    raise
                program.stop()  # a parallel grader took the port meanwhile: try another

    @pytest.mark.points(2)
    @pytest.mark.task("listen")
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="127.0.0.2 is loopback on Linux only")
    def test_listens_on_all_interfaces(self, server_spec, start_server, connect):
        program, port = start(start_server, server_spec)
        try:
            client = connect(port, name="client", host="127.0.0.2")
        except GradingFailure as exc:
            raise fail(did=f"connected to 127.0.0.2:{port} (another loopback address)",
                       expected="the server listens on 0.0.0.0, every interface",
                       got=exc.got) from None
        client.close()

    @pytest.mark.points(3)
    @pytest.mark.task("shutdown")
    def test_exits_on_sigterm(self, server_spec, start_server, connect):
        program = serving_a_client(start_server, connect, server_spec)
        program.send_signal(signal.SIGTERM)
        expect_clean_exit(program, 2.0, "started the server, connected a client, sent SIGTERM",
                          allowed_signals=(signal.SIGTERM,))

    @pytest.mark.points(3)
    @pytest.mark.task("shutdown")
    def test_exits_on_sigint_without_traceback(self, server_spec, start_server, connect):
        program = serving_a_client(start_server, connect, server_spec)
        program.send_signal(signal.SIGINT)
        expect_clean_exit(program, 2.0, "started the server, connected a client, sent SIGINT (Ctrl-C)",
                          allowed_signals=(signal.SIGINT,))

    @pytest.mark.points(3)
    @pytest.mark.task("loop")
    def test_idle_server_sleeps_in_the_kernel(self, server_spec, start_server, connect):
        program, port = start(start_server, server_spec)
        share = measure_cpu(program)
        limit = server_spec.idle_cpu_fraction
        check(share < limit, "started the server and left it alone for one second",
              f"it waits in the kernel, using under {limit:.0%} of one core",
              f"it used {share:.0%} of one core: is it looping without blocking?")
        prove_serving(connect, port, server_spec)  # asleep, and still a working server
