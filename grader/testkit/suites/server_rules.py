"""The contract's general rules for every TCP server: arguments, a port in
use, SO_REUSEADDR, all interfaces, signals, and an idle server that sleeps
(at start-up and again after clients have come and gone); and the source
rules of the exercises whose lesson is how a server waits.

Use it by subclassing `ServerRulesTests` (and, where the README has source
rules, `PlainImportTests`) in a suite and defining a `server_spec` fixture
that returns a `ServerSpec`. Tests name a topic ("listen", "shutdown",
"loop", "rules") that the suite's module maps to its README's task numbers
in a dict `TASKS`.

Source rules have two halves. What the program does while it runs is the
authority where it can be seen: `watch` samples its threads
(/proc/PID/task) and its processes while clients talk to it. What only
the source can tell (which module waits) is read from the snapshot of the
files as submitted, before the program runs: never from the run folder,
which the program can rewrite. A program that imports or runs code in ways
a reader cannot follow (importlib, exec, eval, ...) breaks the plain-import
rule, so nothing it uses stays out of sight."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import pytest

from grader.harness import cpu, gates, waits
from grader.harness.failure import GradingFailure, check, fail
from grader.harness.ports import is_free
from grader.testkit import source_check

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
    # The gate of that first exchange (grader.harness.gates.first_answer):
    # the kind of another test kit's gate when engage is the very same
    # exchange ("welcome": grader.testkit.chat_room's), so that the two
    # share one verdict.
    engage_gate: str = gates.ENGAGE
    # A short conversation, converse(connect, port, rng) -> what happened (in
    # words): clients connect, send, receive, and some leave; a client it
    # leaves connected stays so while the server is measured. With it, the
    # idle test measures the server again after this traffic.
    converse: Callable | None = None
    # What an idle server does, in the words of the exercise.
    idle_what: str = "it waits in the kernel"

    def command(self, port: int) -> str:
        return " ".join(["python", "-u", self.script, *map(str, self.args(port))])


def start(start_server, spec: ServerSpec):
    return start_server(spec.script, spec.args, spec.ready)


ENGAGED = gates.ENGAGED


def engage(spec: ServerSpec, client) -> None:
    """The spec's first exchange with a new client (when it has one): a
    gate (grader.harness.gates) for the server's first client."""
    if spec.engage is not None:
        with gates.first_answer(client, spec.engage_gate, ENGAGED):
            spec.engage(client)


def needs_engaged(spec: ServerSpec, client) -> None:
    """For a test whose own exchanges are of the engage kind but not that
    very one (other lines to echo): fail at once if the server never served
    its first client the engage way in an earlier test."""
    gates.needs_answer(client, spec.engage_gate, ENGAGED)


def serving_a_client(start_server, connect, spec: ServerSpec):
    """A started server with one client connected and, where the spec says
    how to tell, known to be serving it."""
    program, port = start(start_server, spec)
    engage(spec, connect(port, name="client"))
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
    engage(spec, client)
    client.close()


def create_time_wait(port: int) -> None:
    """Leave `port` in TIME_WAIT, the way a server that just closed a
    connection leaves it: the accepting side closes first. The old sockets
    set SO_REUSEADDR (Linux allows the next bind only when both sides do)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port), timeout=waits.OWN)
    accepted, _ = listener.accept()
    accepted.close()                       # the server side closes first ...
    client.settimeout(waits.OWN)
    client.recv(1)                         # ... the client sees end of file ...
    client.close()                         # ... and closes too
    listener.close()
    deadline = time.monotonic() + waits.OWN
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


def expect_idle(program, spec: ServerSpec, did: str, hint: str = "") -> None:
    """The server, still running, wants under its share of a core over a
    quiet window (waits.IDLE_WINDOW; time running plus waiting to run: see
    grader.harness.cpu)."""
    status = program.poll_exit()
    check(status is None, did, "the server keeps running", status.describe() if status else "")
    usage = cpu.measure(program, waits.IDLE_WINDOW)
    limit = spec.idle_cpu_fraction
    check(usage.demand < limit, did,
          f"{spec.idle_what}, using under {limit:.0%} of one core (measured as time running "
          "or ready to run, so that a loop gets no pass on a busy machine)",
          usage.describe() + ": is it looping without blocking?", hint=hint)


def measure_cpu(program, seconds: float = waits.IDLE_WINDOW) -> float:
    """The share of one core the program wanted over `seconds` of quiet:
    time running plus time waiting to run where Linux reports it (so a busy
    loop shows as busy even on a loaded machine), else CPU time."""
    return cpu.measure(program, seconds).demand


def expect_clean_exit(program, within: float, did: str, allowed_signals=()) -> None:
    status = program.wait_exit(within)
    if status is None:
        raise fail(did=did, expected=f"the server exits within {within:g} s",
                   got=f"it was still running: {program.where()}", hint="")
    ok = status.code == 0 or status.signal in allowed_signals
    also = "".join(f" or death by {signal.Signals(s).name}" for s in allowed_signals)
    check(ok, did, f"exit status 0{also}", status.describe())
    check(TRACEBACK not in program.stderr(), did, "no traceback on stderr",
          "stderr holds a traceback (shown below)")


def expect_usage_error(program, did: str) -> None:
    """The rule for a command line a program cannot use: it exits with
    status 1 (within waits.REFUSAL), with 'usage' on stderr and no traceback."""
    status = program.wait_exit(waits.REFUSAL)
    check(status is not None, did, "the program exits with status 1",
          f"it was still running after {waits.REFUSAL:g} s")
    check(status.code == 1, did, "exit status 1", status.describe())
    err = program.stderr()
    check(bool(USAGE.search(err)), did, "a message containing 'usage' on stderr",
          "stderr was:\n" + (err or "(empty)"))
    check(TRACEBACK not in err, did, "no traceback", "stderr was:\n" + err)


def expect_port_in_use_error(program, did: str) -> None:
    """The rule for a port another socket holds: the server exits with
    status 1 (within waits.REFUSAL), giving the OS reason on stderr, no traceback."""
    status = program.wait_exit(waits.REFUSAL)
    check(status is not None, did, "the server exits with status 1",
          f"it was still running after {waits.REFUSAL:g} s")
    check(status.code == 1, did, "exit status 1", status.describe())
    err = program.stderr()
    check("already in use" in err.lower(), did,
          "a message on stderr with the OS reason ('Address already in use')",
          "stderr was:\n" + (err or "(empty)"))
    check(TRACEBACK not in err, did, "no traceback", "stderr was:\n" + err)


def expect_bad_arguments_refused(spawn, script: str, bad_args: list[list[str]], free_port,
                                 name: str = "server") -> None:
    """Run `script` with each argument list of `bad_args` ("{port}": a free
    port); every run must end in a usage error (expect_usage_error)."""
    runs = []
    for bad in bad_args:    # started together: each mostly waits for its interpreter
        args = [a.replace("{port}", str(free_port())) for a in bad]
        runs.append((spawn(script, *args, name=name), args))
    for program, args in runs:
        expect_usage_error(program, f"ran: python -u {script} {' '.join(args)}")
        program.stop()


class ServerRulesTests:
    """Inherit in a suite; provide the `server_spec` fixture."""

    @pytest.mark.points(3)
    @pytest.mark.task("listen")
    def test_rejects_bad_arguments_with_usage(self, server_spec, spawn, start_server, free_port,
                                              connect):
        require_working(start_server, server_spec, connect)
        expect_bad_arguments_refused(spawn, server_spec.script, server_spec.bad_args, free_port)

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
            expect_port_in_use_error(program, did)
        finally:
            holder.close()

    @pytest.mark.points(3)
    @pytest.mark.task("listen")
    def test_binds_a_port_in_time_wait(self, server_spec, spawn, free_port, connect):
        # The usual start, on a port in TIME_WAIT: it needs the usual start to work.
        usual = gates.command_shape(server_spec.script, server_spec.args)
        gates.require(gates.ready(usual))
        for attempt in range(3):
            port = free_port()
            create_time_wait(port)
            program = spawn(server_spec.script, *server_spec.args(port), name="server")
            try:
                program.expect_line(
                    re.compile(server_spec.ready(port)), timeout=waits.READY,
                    did=f"left port {port} in TIME_WAIT (as a just-restarted server finds it), "
                        f"then ran: {server_spec.command(port)}")
                gates.server_started(port, f"{usual} (on a port in TIME_WAIT)", usual)
                prove_serving(connect, port, server_spec)
                return
            except AssertionError:
                if program.wait_exit(waits.FINISHING) is None or not _taken_by_another(port) \
                        or attempt == 2:
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
        expect_clean_exit(program, waits.EXIT, "started the server, connected a client, sent SIGTERM",
                          allowed_signals=(signal.SIGTERM,))

    @pytest.mark.points(3)
    @pytest.mark.task("shutdown")
    def test_exits_on_sigint_without_traceback(self, server_spec, start_server, connect):
        program = serving_a_client(start_server, connect, server_spec)
        program.send_signal(signal.SIGINT)
        expect_clean_exit(program, waits.EXIT,
                          "started the server, connected a client, sent SIGINT (Ctrl-C)",
                          allowed_signals=(signal.SIGINT,))

    @pytest.mark.quiet("measures the server's CPU")
    @pytest.mark.points(3)
    @pytest.mark.task("loop")
    def test_idle_server_sleeps_in_the_kernel(self, server_spec, start_server, connect, rng):
        program, port = start(start_server, server_spec)
        expect_idle(program, server_spec, f"started the server and left it alone for {waits.IDLE_WINDOW:g} s")
        if server_spec.converse is None:
            prove_serving(connect, port, server_spec)  # asleep, and still a working server
            return
        # Once more after traffic: a server may start spinning only once it
        # has had a client (a timeout set to 0, a socket left in the list).
        did = server_spec.converse(connect, port, rng)
        expect_idle(program, server_spec, f"{did}; then a quiet {waits.IDLE_WINDOW:g} s",
                    hint="after its first clients the server must go back to waiting in the "
                         "kernel as it did at start-up: is a departed client still watched, "
                         "or a timeout of 0 left over?")


# -- source rules ---------------------------------------------------------------

PLAIN_IMPORT_RULE = ("every module imported with a plain import statement, and no code built or "
                     "looked up at run time: no importlib, __import__, exec, eval or compile, no "
                     "getattr on a module with a computed name, no __builtins__, sys.modules or "
                     "dunder attributes such as __dict__, __globals__ or __subclasses__")


def read_submitted(submitted: Path, script: str) -> str:
    """The text of `script` as the student submitted it (the snapshot taken
    before any program ran; see the plugin's `submitted` fixture)."""
    return source_check.read(submitted / script)


def check_forbidden(source: str, forbidden: dict[str, str], did: str, expected: str,
                    hint: str = "") -> None:
    """No name of `forbidden` in the source (see source_check.forbidden_uses)."""
    try:
        found = [str(f) for f in source_check.forbidden_uses(source, forbidden)]
    except SyntaxError as exc:
        found = [f"the file does not parse: {exc}"]
    check(not found, did, expected, "\n".join(found), hint=hint)


@dataclass
class Activity:
    """What a running server was seen doing while clients talked to it."""
    pid: int
    samples: int = 0
    most_threads: int = 0
    processes: set[int] = field(default_factory=set)   # descendants, and strays
    epoll: bool = False                                  # an epoll descriptor was open


def thread_count(pid: int) -> int:
    """Threads of process `pid` now (0 once it has gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        if os.path.isdir("/proc/self/task"):
            return 0                # Linux, and the process has gone
    except OSError:
        pass
    try:
        return psutil.Process(pid).num_threads()
    except psutil.Error:
        return 0


def other_processes(program) -> set[int]:
    """Every process the program started that is alive now: its descendants,
    and those the sandbox's init adopted after their parent left."""
    try:
        found = {child.pid for child in psutil.Process(program.pid).children(recursive=True)}
    except psutil.Error:
        found = set()
    return found | set(program.strays())


def holds_epoll(pid: int) -> bool:
    """True if the process has an epoll instance open (Linux)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == "anon_inode:[eventpoll]":
                return True
        except OSError:
            continue
    return False


def watch(program, action: Callable[[], object], epoll: bool = False,
          every: float = 0.002) -> tuple[object, Activity]:
    """Run `action()` (clients talking to the server) while a sampler reads
    the program's threads every `every` seconds, its processes every 20 ms
    and, if `epoll`, whether it holds an epoll instance. What the running
    program does is the authority on threads and processes: no reading of
    the source can tell them apart from a module it never names."""
    activity = Activity(pid=program.pid)
    done = threading.Event()

    def look(full: bool) -> None:
        activity.samples += 1
        activity.most_threads = max(activity.most_threads, thread_count(program.pid))
        if full:
            activity.processes |= other_processes(program)
            activity.epoll = activity.epoll or (epoll and holds_epoll(program.pid))

    def sample() -> None:
        last_full = 0.0
        while not done.is_set():
            now = time.monotonic()
            full = now - last_full >= 0.02
            look(full)
            if full:
                last_full = now
            done.wait(every)

    sampler = threading.Thread(target=sample, name="socklab-watch", daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join(waits.OWN)
    look(True)  # and a last look, with every client still connected
    return result, activity


def check_alone(activity: Activity, did: str, epoll_allowed: bool = True) -> None:
    """One thread, no other process (and, unless allowed, no epoll) seen."""
    check(activity.most_threads <= 1, did,
          "one thread serves every client: the server starts no thread",
          f"the server ran {activity.most_threads} threads at once "
          f"(counted in /proc/{activity.pid}/task, {activity.samples} looks while the clients talked)",
          hint="this exercise is about serving everyone from one thread that waits for all the "
               "sockets at once: no threading, concurrent.futures or socketserver")
    check(not activity.processes, did, "the server starts no other process",
          f"it started {len(activity.processes)} other process(es) (pids {sorted(activity.processes)[:5]})")
    check(epoll_allowed or not activity.epoll, did, "no epoll instance (this exercise is not about epoll)",
          f"the server held an epoll instance (anon_inode:[eventpoll] in /proc/{activity.pid}/fd): "
          "selectors, asyncio and select.epoll all wait with one")


class PlainImportTests:
    """The plain-import rule, for a suite whose README states it: the file
    as submitted imports every module with an import statement and runs no
    code built or looked up at run time (see source_check.dynamic_code)."""

    @pytest.mark.points(1)
    @pytest.mark.task("rules")
    def test_imports_only_with_import_statements(self, server_spec, submitted, start_server,
                                                 connect):
        source = read_submitted(submitted, server_spec.script)  # before anything runs
        # Points for a rule go to a server that works.
        program, port = start(start_server, server_spec)
        prove_serving(connect, port, server_spec)
        did = f"read {server_spec.script} as you submitted it (before running it)"
        try:
            found = [str(f) for f in source_check.dynamic_code(source)]
        except SyntaxError as exc:
            found = [f"the file does not parse: {exc}"]
        check(not found, did, PLAIN_IMPORT_RULE, "\n".join(found),
              hint="the grader must be able to read which modules your server uses: import each "
                   "one with a plain statement (`import socket`, `from time import sleep`) and "
                   "call what you imported by its name")
