"""Gates: the few cheap first checks that most tests of a suite depend on.

A program that never prints its ready line, or never answers a client,
fails every test that starts it or talks to it, and each of those tests
would wait out the same timeout to find that out again. A gate remembers
the first such failure, per exercise and per test run (all its xdist
workers share it, see Book): every later
step that needs the same gate fails at once, with the message of the test
that found it (what was expected, what happened, the transcript and the
program's output). Tests that never reach a gated step (argument checks,
source checks) run as before and still earn their points.

A gate is guarded around the step that checks it:

    with gates.guard(READY):            # READY = Gate("ready:chat_server.py", ...)
        program.expect_line(...)

Only a verdict on the student's program (a GradingFailure) closes a gate,
and only while the gate has never passed in this run: once a step
passed it, a later failure of the same step is that test's own failure,
reported the usual way, and closes nothing.

A gate's key names the exact situation it checks (the command line, with
the port left out; the first client of a freshly started server), so that
a test failing at once on a closed gate is one that would have failed the
same way had it waited: gates make a broken program fail sooner, and never
change a score. A step that is not that exact situation may still fail at
once on a closed gate (`closes=False`): it needs the gate's step to work
first (every conversation starts with a first client), but its own failure
proves nothing about the gate. A step may also need a gate it is not
the step of (`require`): a start with other arguments needs the suite's
usual start to work (`server_start`); a program needs the import of every
student's module it imports (`module_import`); a client's first wait for
data needs its server to have accepted a first client (`accepts`, whose
verdict comes from the kernel's listen queue when a test ends:
grader.harness.accept_queue); an exchange of its own needs the fixed
first exchange of the same kind (`needs_answer`).

Where a suite's tests begin with different first checks (two programs,
several kinds of first exchange), `side_by_side` runs the others' beside
a test's own, so that a student's one-at-a-time `pytest` settles them all
in one wait."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from grader.harness.accept_queue import ACCEPTED, WAITING, accept_state
from grader.harness.failure import GradingFailure


T = TypeVar("T")


@dataclass(frozen=True)
class Gate:
    key: str        # what identifies it within an exercise: "ready:chat_server.py"
    what: str       # the check, in a student's words: "chat_server.py prints its ready line"


@dataclass
class Closed:
    """How a gate failed: in which test, and the message shown there."""
    test: str
    message: str


class GateClosed(GradingFailure):
    """A step that needs a gate which failed earlier in this run."""

    def __init__(self, gate: Gate, closed: Closed) -> None:
        self.gate, self.closed = gate, closed
        super().__init__(
            did=f"began with a first check that had already failed, in {closed.test}",
            expected=gate.what,
            got=f"it failed in {closed.test}, shown below. Every test that needs it fails at "
                "once rather than wait for it again: mend that first.")

    def render(self) -> str:
        return super().render() + "\n\n" + f"--- {self.closed.test} ---\n" + self.closed.message


class Book:
    """The gates of one exercise. Without a `folder`, for this test process
    only; with one (a folder every worker of a pytest-xdist run shares), for
    the whole run: there a gate's first verdict, passed or closed, is a
    file, and whichever process writes it first decides for all."""

    def __init__(self, folder: Path | None = None) -> None:
        self._closed: dict[str, Closed] = {}
        self._passed: set[str] = set()
        self._lock = threading.Lock()
        self._folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def _verdict_path(self, gate: Gate) -> Path:
        assert self._folder is not None
        return self._folder / hashlib.sha256(gate.key.encode()).hexdigest()

    def closed(self, gate: Gate) -> Closed | None:
        with self._lock:
            found = self._closed.get(gate.key)
            if found is not None or self._folder is None or gate.key in self._passed:
                return found
            try:
                verdict = json.loads(self._verdict_path(gate).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None         # no verdict yet (or one being written: none yet)
            if verdict["passed"]:
                self._passed.add(gate.key)
                return None
            found = self._closed[gate.key] = Closed(verdict["test"], verdict["message"])
            return found

    def decided(self, gate: Gate) -> bool:
        """True once `gate` has a verdict, passed or closed, in this run."""
        if self.closed(gate) is not None:
            return True
        with self._lock:
            return gate.key in self._passed

    def record(self, gate: Gate, passed: bool, closed: Callable[[], Closed]) -> None:
        with self._lock:
            if gate.key in self._passed or gate.key in self._closed:
                return
            if self._folder is not None and not self._first_verdict(gate, passed, closed):
                return              # another process decided first: closed() reads it
            if passed:
                self._passed.add(gate.key)
            else:
                self._closed[gate.key] = closed()

    def _first_verdict(self, gate: Gate, passed: bool, closed: Callable[[], Closed]) -> bool:
        """Write this verdict unless there is one: True if it is now this one."""
        shown = closed() if not passed else Closed("", "")
        data = json.dumps({"passed": passed, "test": shown.test, "message": shown.message})
        final = self._verdict_path(gate)
        draft = final.with_name(f"{final.name}.{os.getpid()}.{threading.get_ident()}")
        draft.write_text(data, encoding="utf-8")
        try:
            os.link(draft, final)   # fails if a verdict is there: the first one stands
            return True
        except FileExistsError:
            return False
        finally:
            draft.unlink()


_SOME_PORT = 47_913


def command_shape(script: str, args: Callable[[int], list]) -> str:
    """`script` and its arguments for a port, the port written as PORT: the
    same text for every start of the same command line."""
    return " ".join([script, *("PORT" if str(a) == str(_SOME_PORT) else str(a)
                               for a in args(_SOME_PORT))])


def ready(command: str) -> Gate:
    """The gate of a server's start: `command` (a command_shape) prints its
    ready line."""
    return Gate(f"ready:{command}", f"`python {command}` starts and prints its ready line")


@contextmanager
def server_start(command: str, usual: str | None = None) -> Iterator[None]:
    """Guard a program's start with `command`, waiting for its ready line
    (a server's listening line, a client's first line). When the suite
    starts the same script with another, `usual` command line in most of
    its tests, this start needs that one to work first: a program that
    never gets ready the usual way fails here at once (without closing
    anything, since this start is not that one)."""
    if usual not in (None, command):
        require(ready(usual))
    with guard(ready(command)):
        yield


@dataclass
class Context:
    """What the running test gives the gates: its exercise's book, its
    name, how to render a failure as the student will read it, and the
    servers it started (port -> command line without the port), so a
    client's gate can name the server it talks to."""
    book: Book
    test: str
    describe: Callable[[GradingFailure], str]
    servers: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # and its usual
    clients: dict[int, int] = field(default_factory=dict)   # port -> clients connected so far
    # port -> (the local port of that server's first client, when it connected)
    first_clients: dict[int, tuple[int, float]] = field(default_factory=dict)
    # port -> (its first client's accept state, when seen): seen as it closed
    first_seen: dict[int, tuple[str | None, float]] = field(default_factory=dict)


def server_started(port: int, command: str, usual: str | None = None) -> None:
    """Note that the running test started `command` (its port written as
    PORT) listening on `port`; `usual` is the suite's usual command line for
    that script, when this one is another (see server_start)."""
    if _active is not None:
        _active.servers[port] = (command, usual if usual != command else None)


def server_on(port: int) -> str | None:
    """The command line of the server the running test started on `port`."""
    found = _active.servers.get(port) if _active is not None else None
    return found[0] if found is not None else None


def client_connected(port: int, client_port: int | None = None) -> int:
    """Count a client the running test connected to `port` (from the local
    `client_port`, if known): 1 for the first client of the server there,
    2 for the next... (0 outside a test)."""
    if _active is None:
        return 0
    _active.clients[port] = _active.clients.get(port, 0) + 1
    if _active.clients[port] == 1 and client_port is not None and port in _active.servers:
        _active.first_clients[port] = (client_port, time.monotonic())
    return _active.clients[port]


def client_closing(port: int, sock) -> None:
    """The client socket `sock` connected to `port` is about to close: if it
    is that server's first client, note whether the server had accepted it
    (once closed, the kernel no longer says; see settle_accepts)."""
    if _active is None or port not in _active.first_clients or port in _active.first_seen:
        return
    try:
        client_port = sock.getsockname()[1]
    except (OSError, IndexError):
        return
    if _active.first_clients[port][0] == client_port \
            and not _active.book.decided(accepts(_active.servers[port][0])):
        _active.first_seen[port] = (accept_state(port, client_port), time.monotonic())


def accepts(command: str) -> Gate:
    """The gate of a server's first client: `command` (a command_shape)
    accepts its connection."""
    return Gate(f"accepts:{command}",
                f"`python {command}` accepts its first client's connection (calls accept())")


def needs_accepted(port: int) -> None:
    """A client of the server the running test started on `port` waits for
    its first data: it fails at once if that command line (or the suite's
    usual one) never accepted its first client in an earlier test. (Only a
    wait for data: a server sends nothing on a connection it never took,
    while a test that only connects, or only reads the server's output,
    may pass without an accept.)"""
    found = _active.servers.get(port) if _active is not None else None
    if found is not None:
        require(*(accepts(command) for command in found if command))


def settle_accepts(failure: GradingFailure | None, patience: float) -> None:
    """At the end of the running test, ask the kernel whether each server
    it started accepted its first client (grader.harness.accept_queue).
    One that did opens its `accepts` gate. One whose first client is still
    waiting to be accepted gets a line in the test's `failure` (if it
    failed on the program), and closes the gate if the client had waited
    `patience` seconds: the failure is what a server that never calls
    accept() causes, and every later client of it would meet the same."""
    context = _active
    if context is None:
        return
    for port, (client_port, connected) in context.first_clients.items():
        command = context.servers[port][0]
        if failure is None and context.book.decided(accepts(command)):
            continue    # nothing to learn: the kernel's table is read only when it can tell
        state, seen = context.first_seen.get(port) or (accept_state(port, client_port),
                                                       time.monotonic())
        if state == ACCEPTED:
            context.book.record(accepts(command), True, lambda: Closed(context.test, ""))
        elif state == WAITING and failure is not None and not isinstance(failure, GateClosed):
            waited = seen - connected
            failure.got = (failure.got.rstrip() + f"\n(The server never accepted this test's "
                           f"first connection: {waited:.1f} s after the client connected, the "
                           "connection was still waiting in the listening socket's queue. Is "
                           "accept() called?)")
            if waited >= patience:
                context.book.record(accepts(command), False,
                                    lambda: Closed(context.test, context.describe(failure)))


_active: Context | None = None
_beside = threading.local()   # .what: the first check a side_by_side thread runs


def _test_name(context: Context) -> str:
    """The test a verdict is told in: the running test, or the check it ran beside its own."""
    what = getattr(_beside, "what", None)
    return context.test if what is None else \
        f"{context.test}, which checked {what} beside its own first check"


def activate(context: Context | None) -> None:
    """Set (or, with None, clear) the running test's context; the pytest
    plugin does this around every test."""
    global _active
    _active = context


@contextmanager
def guard(gate: Gate, closes: bool = True) -> Iterator[None]:
    """Run the step that checks `gate`: fail at once if the gate closed
    earlier and, if `closes`, close it when the step fails. Outside a test
    run (no context), it only runs the step."""
    context = _active
    if context is None:
        yield
        return
    closed = context.book.closed(gate)
    if closed is not None:
        raise GateClosed(gate, closed)
    try:
        yield
    except GateClosed:
        raise
    except GradingFailure as exc:
        if closes:
            context.book.record(gate, False,
                                lambda: Closed(_test_name(context), context.describe(exc)))
        raise
    if closes:
        context.book.record(gate, True, lambda: Closed(context.test, ""))


def side_by_side(main: Callable[[], T], *others: tuple[Gate, str, Callable[[], object]]) -> T:
    """Run `main` (this test's own first check) while the first checks of
    the suite's other programs run beside it, each in a thread of its own:
    `others` are (gate, what, check), `check` a step that guards itself
    with `gate` (and may do unguarded work first, such as starting its own
    program), `what` how a student would name it. A check runs only while
    its gate has no verdict yet, so a student's one-at-a-time `pytest`
    waits for programs that never start, or never answer, once, not once
    each. Their verdicts go in the book like any guarded step's (told as
    checked beside this test); their failures are not this test's, which
    passes or fails on `main`."""
    context = _active
    threads: list[threading.Thread] = []
    faults: list[BaseException] = []
    for gate, what, check in others:
        if context is None or context.book.decided(gate):
            continue

        def run(what: str = what, check: Callable[[], object] = check) -> None:
            _beside.what = what
            try:
                check()
            except GradingFailure:
                pass                    # its gate closed (or it never reached it)
            except BaseException as exc:   # a fault of the grader: this test's error
                faults.append(exc)

        thread = threading.Thread(target=run, name=f"beside-{gate.key}", daemon=True)
        thread.start()
        threads.append(thread)
    try:
        return main()
    finally:
        for thread in threads:
            thread.join()
        if faults:
            raise faults[0]


def require(*needed: Gate) -> None:
    """Fail at once (GateClosed) if one of `needed` closed earlier: a step
    that needs them, whose own failure would prove nothing about them."""
    context = _active
    for gate in needed if context is not None else ():
        closed = context.book.closed(gate)
        if closed is not None:
            raise GateClosed(gate, closed)


def settle(gate: Gate, failure: GradingFailure | None) -> None:
    """Record the verdict of `gate`'s exact step, found by a step that does
    not raise (a module check returns its outcome): passed if `failure` is
    None, else closed with that failure's story (unless it passed before)."""
    context = _active
    if context is None:
        return
    if failure is None:
        context.book.record(gate, True, lambda: Closed(context.test, ""))
    else:
        context.book.record(gate, False,
                            lambda: Closed(_test_name(context), context.describe(failure)))


def sends(command: str) -> Gate:
    """The gate of a client's message: `command` (a command_shape) sends
    the line typed at its prompt to the test's server."""
    return Gate(f"sends:{command}",
                f"`python {command}` sends the line typed at its prompt to the server")


def module_import(module: str) -> Gate:
    """The gate of a student's module: `import module` finishes, in a
    fresh interpreter, within its start-up allowance. Every program that
    imports it needs it."""
    return Gate(f"import:{module}", f"`import {module}` finishes (it runs nothing that never ends)")


def first_call(call: str) -> Gate:
    """The gate of a function's first call: `call` (source with fixed
    arguments, "basics.ip_version('127.0.0.1')") returns or raises within
    the call allowance. Every check that refers to the function needs it."""
    return Gate(f"call:{call}", f"`{call}` returns (or raises) in time")


def refers_to(source: str, name: str) -> bool:
    """True if `source` mentions `name` ("module.function") as an attribute
    of the module (`basics.ip_version`, called or not)."""
    module, _, attribute = name.partition(".")
    return (module, attribute) in _read(source)[1]


def imported_modules(source: str, available: set[str]) -> set[str]:
    """The names of `available` (the student's module names) that
    `source` imports, anywhere in it. Unparsable source imports nothing
    known (its own failure will show)."""
    return set(_read(source)[0] & available)


# A worker parses the same student file for every program it starts: each
# source is parsed and walked once (that took about a fifth of a server
# suite's CPU), and a check's source once for both questions.
@lru_cache(maxsize=256)
def _read(source: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The top-level names of the modules `source` imports (absolutely),
    and every `name.attribute` in it, as (name, attribute)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return frozenset(), frozenset()
    imported, attributes = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            attributes.add((node.value.id, node.attr))
    return frozenset(imported), frozenset(attributes)


@contextmanager
def first_answer(client, kind: str, what: str) -> Iterator[None]:
    """Guard a client's first expected answer from the server the running
    test started on its port: a gate for that server's command line and
    this `kind` of exchange (which must be the same exchange each time:
    a welcome, the echo of a fixed line). It closes only when `client` is
    the server's first client (`client.ordinal == 1`); any client fails at
    once once it closed. A client of a server started some other way runs
    unguarded. A server started with another command line than its suite's
    usual one needs the usual one's gate to be open too."""
    found = _active.servers.get(client.port) if _active is not None else None
    if found is None:
        yield
        return
    server, usual = found
    if usual:
        require(answer(kind, usual, what))
    with guard(answer(kind, server, what), closes=getattr(client, "ordinal", 0) == 1):
        yield


def needs_answer(client, kind: str, what: str) -> None:
    """Fail at once if the server `client` talks to (or its suite's usual
    command line) closed the gate of its first client's `kind` answer (see
    first_answer): a step that needs that exchange to work, such as another
    exchange of the same kind, whose own failure proves nothing about it."""
    found = _active.servers.get(client.port) if _active is not None else None
    if found is not None:
        require(*(answer(kind, command, what) for command in found if command))


# The kind of a suite's fixed first exchange with a fresh server's first
# client (a ServerSpec's `engage`, 09's first count), and how it reads.
ENGAGE = "engage"
ENGAGED = "is served (the test's first exchange)"


def needs_engaged(client) -> None:
    """needs_answer for the ENGAGE kind: an exchange of a test's own (other
    lines to echo, other counts) fails at once if the server `client` talks
    to never served its first client the fixed way."""
    needs_answer(client, ENGAGE, ENGAGED)


def answer(kind: str, command: str, what: str) -> Gate:
    """The gate of the first client's `kind` answer from `command` (see first_answer)."""
    return Gate(f"{kind}:{command}", f"the first client of `python {command}` {what}")
