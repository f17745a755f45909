"""Call a student's module in a child Python process, never in the grader's.

A module exercise (functions, not a program) is still run apart from the
test process: a crash, a hang, an endless loop or a monkey-patch in the
student's code must cost that test its points and nothing more. A test
hands `ModuleRunner.run` a short piece of Python source (the *check*); the
runner starts `python -u -s` in the test's `workdir` (so `import basics`
finds the student's copy), with the same explicit environment and resource
limits as every spawned program, runs the check there and reads back what
it left in the variable `result`.

    runner = ModuleRunner(workdir, transcript)
    out = runner.call("sockethelpers", "format_address", ("::1", 80, 0, 0))
    text = out.value_or_fail(did="called format_address(('::1', 80, 0, 0))",
                             expected="the text '[::1]:80'")
    out = runner.call("basics", "ipv4_to_int", "256.1.1.1")
    check(out.raised("ValueError"), ...)

`result` travels back as its `repr()` and is read with `ast.literal_eval`,
so tuples stay tuples and bytes stay bytes (anything that is not a Python
literal arrives as an `Unrepresentable` holding its repr). Arguments go to
the child the same way. Whatever the check raises arrives as an
`ErrorInfo` (type name, the names of its base classes, message, traceback).
Inside the check, `describe_error(exc)` gives the same summary as a dict,
for checks that catch an exception themselves and go on, and
`listening_port()` a port on 127.0.0.1 where the child's own socket
listens (a first call that connects: see ModuleRunner.first_calls).

The run is recorded in the test's transcript, and its stdout/stderr are
shown under the failure message like a spawned program's output."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.harness import bounded, gates, waits
from grader.harness.failure import GradingFailure
from grader.harness.program import Limits, child_environment, output_lines
from grader.harness.sandbox import Confinement
from grader.harness.transcript import Transcript
from grader.harness.visible_text import visible

TAIL_LINES = 25
SHOW_CHARS = 300                # a shown output line is cut to this many characters
# Of each of the child's stdout and stderr the grader keeps the start and
# the end, and only counts the rest: its memory stays bounded whatever the
# check prints.
OUTPUT_HEAD_BYTES = 64 << 10
OUTPUT_TAIL_BYTES = 256 << 10

# The script the child runs. The check's source and the result file's path
# arrive as arguments, so nothing the test writes is pasted into code.
#
# It also watches the check (see ModuleRunner): every function and method
# of the student's modules (the .py files of the working folder) is wrapped
# when its module is imported, so that each call and return is a sign of
# progress. A watchdog thread ends the check when the student's code has run
# for the allowance without one: the import's (a slow start-up) while a
# student's module is being imported, a call's while one of its functions
# runs. The check's own code between calls is not timed, so a loaded machine
# slowing it down costs the student nothing. A function that never returns
# costs that allowance, not the run's whole timeout, whatever it does with
# signals.
_WRAPPER = r'''
import ast, functools, importlib.machinery, json, os, sys, threading, time, traceback, types

def describe_error(exc):
    """A JSON-able summary of an exception (also available to checks)."""
    return {"type": type(exc).__name__,
            "bases": [c.__name__ for c in type(exc).__mro__],
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}

_RESULT_PATH = sys.argv[1]
_IMPORT_ALLOWANCE, _CALL_ALLOWANCE = float(sys.argv[3]), float(sys.argv[4])
_HOME = os.path.realpath(os.getcwd()) + os.sep
_finishing = threading.Lock()

class _progress:
    last = time.monotonic()     # the last call into the student's code or return from it
    running = 0                 # calls of the student's functions running now (all threads)
    importing = []              # the student modules being imported now, innermost last
    longest = 0.0               # the longest stretch in the student's code without a call
                                # or return of its own, outside imports
    first_call = ""             # the first call (see ModuleRunner.first_calls) running now
    first_calls_done = []       # those that returned or raised

_listening = []                 # the sockets listening_port() opened for a first call

def listening_port():
    """A port on 127.0.0.1 where a socket of the check's own listens (it
    never accepts: a connection completes in its queue), for a first call
    that connects (also available to checks); closed after that call."""
    import _socket              # the plain class, whatever a check did to socket.socket
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    _listening.append(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener.getsockname()[1]

def _socklab_first_call(name, call):
    """A function's first call, made before the check's own (a gate). A
    socket it returns is closed, and so is what listening_port() opened:
    the check's own calls find the process as it was."""
    import _socket
    _progress.first_call = name
    answer = None
    try:
        answer = call()
    except Exception:
        pass                    # an answer too: the gate asks only for one
    _progress.first_call = ""
    _progress.first_calls_done.append(name)
    for sock in ([answer] if isinstance(answer, _socket.socket) else []) + _listening:
        try:
            sock.close()
        except Exception:
            pass
    _listening.clear()

_socklab_pairs = []             # the socket pairs of first calls, open until the end

def _socklab_socket_holding(data):
    """A first call's socket (ModuleRunner.first_calls): one end of a fresh
    socket pair, with `data` already sent from the other end."""
    import socket
    mine, theirs = socket.socketpair()
    theirs.sendall(data)
    _socklab_pairs.append((mine, theirs))
    return mine

def _finish(payload):
    _finishing.acquire()        # the check or the watchdog: whichever comes first
    payload["longest_wait"] = _progress.longest
    payload["first_calls_done"] = list(_progress.first_calls_done)
    with open(_RESULT_PATH, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)   # do not wait for threads the student's code left running

_counting = threading.Lock()

def _entered():
    now = time.monotonic()
    with _counting:
        if _progress.running and not _progress.importing:
            _progress.longest = max(_progress.longest, now - _progress.last)
        _progress.running += 1
        _progress.last = now

def _returned():
    now = time.monotonic()
    with _counting:
        if not _progress.importing:
            _progress.longest = max(_progress.longest, now - _progress.last)
        _progress.running -= 1
        _progress.last = now

def _watched(function):
    @functools.wraps(function)
    def watched(*args, **kwargs):
        _entered()
        try:
            return function(*args, **kwargs)
        finally:
            _returned()
    return watched

def _watch_module(module):
    for name, value in list(vars(module).items()):
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            setattr(module, name, _watched(value))
        elif isinstance(value, type) and value.__module__ == module.__name__:
            for attr, member in list(vars(value).items()):
                if isinstance(member, types.FunctionType):
                    setattr(value, attr, _watched(member))
                elif isinstance(member, (staticmethod, classmethod)) \
                        and isinstance(member.__func__, types.FunctionType):
                    setattr(value, attr, type(member)(_watched(member.__func__)))

class _StudentModules:
    """Finds modules as the path finder does; watches those of the working folder."""
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or not spec.origin or not hasattr(spec.loader, "exec_module") \
                or not os.path.realpath(spec.origin).startswith(_HOME):
            return spec
        run = spec.loader.exec_module
        def exec_module(module):
            _progress.importing.append(module.__name__)
            try:
                run(module)
            finally:
                _progress.importing.pop()
                _watch_module(module)
                _progress.last = time.monotonic()   # an import is not a wait between calls
        spec.loader.exec_module = exec_module
        return spec

def _stuck_where():
    frame = sys._current_frames().get(threading.main_thread().ident)
    for entry in reversed(traceback.extract_stack(frame) if frame is not None else []):
        if os.path.realpath(entry.filename).startswith(_HOME):
            return f"{os.path.basename(entry.filename)}, line {entry.lineno}, in {entry.name}"
    return ""

def _watchdog():
    # Only the student's code is timed: while a student module is imported,
    # or while one of its functions runs. The check's own code between two
    # calls (its imports, drawing examples) is not, however slow the machine.
    while True:
        time.sleep(0.02)
        importing = _progress.importing[-1] if _progress.importing else ""
        if not importing and not _progress.running:
            continue
        allowance = _IMPORT_ALLOWANCE if importing else _CALL_ALLOWANCE
        if time.monotonic() - _progress.last > allowance:
            _finish({"status": "stuck", "importing": importing,
                     "first_call": _progress.first_call,
                     "allowance": allowance, "where": _stuck_where()})

if _CALL_ALLOWANCE > 0:
    sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder), _StudentModules)
    threading.Thread(target=_watchdog, name="socklab-watchdog", daemon=True).start()

with open(sys.argv[2], encoding="utf-8") as f:
    _SOURCE = f.read()
_namespace = {"__name__": "__socklab_check__", "describe_error": describe_error,
              "listening_port": listening_port, "_socklab_first_call": _socklab_first_call,
              "_socklab_socket_holding": _socklab_socket_holding}
try:
    exec(compile(_SOURCE, "<check>", "exec"), _namespace)
except BaseException as exc:   # SystemExit and KeyboardInterrupt too
    _payload = {"status": "raised", "error": describe_error(exc)}
else:
    _payload = {"status": "returned"}
try:
    _payload["result"] = repr(_namespace.get("result"))
except BaseException as exc:
    _payload["result"] = "None"
    _payload["repr_error"] = describe_error(exc)
_finish(_payload)
'''


@dataclass
class ErrorInfo:
    """An exception raised in the child."""

    type: str                   # e.g. "ConnectionRefusedError"
    bases: list[str]            # the class and its bases: [..., "OSError", "Exception", ...]
    message: str
    traceback: str = ""

    def is_a(self, name: str) -> bool:
        """True if the exception is an instance of the class called `name`."""
        return name in self.bases

    def describe(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    @classmethod
    def from_dict(cls, data: dict) -> "ErrorInfo":
        return cls(data.get("type", "?"), list(data.get("bases", [])),
                   data.get("message", ""), data.get("traceback", ""))


@dataclass
class Unrepresentable:
    """A value that is not a Python literal (a socket, an object): its repr."""

    text: str


@dataclass
class Outcome:
    """How a check ended in the child."""

    status: str                 # "returned", "raised", "crashed" or "timed out"
    value: Any = None           # what the check left in `result`
    error: ErrorInfo | None = None
    stdout: str = ""
    stderr: str = ""
    exit_note: str = ""         # for "crashed" / "timed out": what happened to the process
    name: str = "check"
    stuck_importing: str = ""   # "timed out" inside the import of this student module
    stuck_first_call: str = ""  # "timed out" in this first call (ModuleRunner.first_calls)
    first_calls_done: tuple[str, ...] = ()

    @property
    def returned(self) -> bool:
        return self.status == "returned"

    def raised(self, name: str) -> bool:
        """True if the check raised an exception of class `name` (or a subclass)."""
        return self.status == "raised" and self.error is not None and self.error.is_a(name)

    def describe(self) -> str:
        """One sentence for a failure message."""
        if self.status == "returned":
            return f"it returned {_short(self.value)}"
        if self.status == "raised" and self.error is not None:
            where = _student_frames(self.error.traceback)
            return f"it raised {self.error.describe()}" + (f"\n{where}" if where else "")
        return self.exit_note or self.status

    def value_or_fail(self, did: str, expected: str, hint: str = "") -> Any:
        """The check's result, or a GradingFailure if it did not run to its end."""
        if self.status != "returned":
            raise GradingFailure(did=did, expected=expected, got=self.describe(), hint=hint)
        return self.value

    def output_tail(self) -> str:
        """Shown under a failure message, like a spawned program's output."""
        text = []
        for title, body in ((f"stdout of the child process ({self.name})", self.stdout),
                            (f"stderr of the child process ({self.name})", self.stderr)):
            lines = output_lines(body)[-TAIL_LINES:]
            text.append(f"Last {title}:")
            text += [f"    | {_shown_line(line)}" for line in lines] or ["    (nothing)"]
        return "\n".join(text)


@dataclass
class ModuleRunner:
    """Runs checks against the student's modules in `workdir`, one child
    process per check."""

    workdir: Path
    transcript: Transcript
    timeout: float = waits.MODULE_RUN
    limits: Limits = field(default_factory=Limits)
    # The watchdog's allowances (see _WRAPPER): how long a check may go
    # without a return from the student's code, while importing it and after.
    import_wait: float = waits.READY
    call_wait: float = waits.CALL
    # distributions the check itself imports (shown read-only in the sandbox)
    libraries: tuple[str, ...] = ()
    # A function's first call: "module.function" -> the source of a call
    # with plain arguments ("basics.ip_version('127.0.0.1')"). A check that
    # refers to the function makes that call first, and it is a gate
    # (grader.harness.gates.first_call): once it never returned, every later
    # check that refers to the function fails at once. Only for functions
    # whose answer to fixed arguments never changes.
    first_calls: dict[str, str] = field(default_factory=dict)

    def run(self, source: str, did: str = "", timeout: float | None = None,
            name: str = "check", note_result: bool = True,
            call_wait: float | None = None) -> Outcome:
        """Run `source` (dedented) in a fresh child process and return how it ended.

        The check imports what it needs (`import sockethelpers`) and stores
        its answer in `result`. Its stdout and stderr are kept for the
        failure message. `timeout` bounds the whole run; `call_wait` (a
        check whose own waits are longer) how long it may go without a
        return from the student's code."""
        timeout = self.timeout if timeout is None else timeout
        call_wait = self.call_wait if call_wait is None else call_wait
        source = textwrap.dedent(source)
        # A module whose import never ended in an earlier check fails this
        # one at once (grader.harness.gates).
        imports = gates.imported_modules(source, student_modules(self.workdir))
        gates.require(*map(gates.module_import, sorted(imports)))
        first = {name: call for name, call in self.first_calls.items()
                 if gates.refers_to(source, name)}
        gates.require(*(gates.first_call(call) for call in first.values()))
        source, first = _with_first_calls(source, first)
        folder = bounded.make(self.workdir.parent, "check-")
        try:
            check_path = folder / "check_source.py"
            check_path.write_text(source, encoding="utf-8")
            wrapper_path = folder / "check_wrapper.py"
            wrapper_path.write_text(_WRAPPER, encoding="utf-8")
            result_path = folder / "result.json"
            self.transcript.note(name, "ran in a child Python process: " + (did or "a check"))
            outcome = self._execute(wrapper_path, check_path, result_path, timeout, name,
                                    call_wait)
        finally:
            bounded.remove(folder)
        self._settle_imports(imports, outcome, did)
        self._settle_first_calls(first, outcome, did)
        if note_result or not outcome.returned:
            self.transcript.note(name, outcome.describe().splitlines()[0])
        self.transcript.programs.append(outcome)   # its output goes under a failure message
        return outcome

    def _settle_imports(self, imports: set[str], outcome: "Outcome", did: str) -> None:
        """A check stopped inside an import closes that module's gate; one
        that got past its imports opens theirs."""
        stuck = outcome.stuck_importing
        if stuck:
            gates.settle(gates.module_import(stuck), GradingFailure(
                did=did or "ran a check", expected=f"`import {stuck}` finishes within "
                f"{self.import_wait:g} s", got=outcome.exit_note))
        elif outcome.status in ("returned", "raised"):
            for module in imports:
                gates.settle(gates.module_import(module), None)

    def _settle_first_calls(self, first: dict[str, str], outcome: "Outcome", did: str) -> None:
        """A check stopped in a first call closes that call's gate; those
        that returned (or raised) open theirs."""
        for name, call in first.items():
            if name == outcome.stuck_first_call:
                gates.settle(gates.first_call(call), GradingFailure(
                    did=did or "ran a check", expected=f"`{call}` returns (or raises) "
                    f"within {self.call_wait:g} s", got=outcome.exit_note))
            elif name in outcome.first_calls_done:
                gates.settle(gates.first_call(call), None)

    def call(self, module: str, function: str, *args, timeout: float | None = None,
             **kwargs) -> Outcome:
        """Import `module`, call `function(*args, **kwargs)` and return the
        outcome; the arguments must be Python literals (str, int, tuple, bytes...)."""
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        return self.run(
            f"import {module}\n"
            f"result = {module}.{function}(*{_literal(args)}, **{_literal(kwargs)})\n",
            did=f"called {module}.{function}({shown})", timeout=timeout, name=f"{module}.{function}")

    def call_many(self, module: str, function: str, cases: list[tuple],
                  timeout: float | None = None) -> list[Outcome] | Outcome:
        """Call `function(*case)` for every case in one child process. Returns
        one Outcome per case ("returned" or "raised"), or, if the child
        itself failed (the import raised, a hang, a crash), that one Outcome."""
        source = (
            f"import {module}\n"
            "result = []\n"
            f"for _args in {_literal(list(cases))}:\n"
            "    try:\n"
            f"        result.append(('returned', {module}.{function}(*_args)))\n"
            "    except Exception as _exc:\n"
            "        result.append(('raised', describe_error(_exc)))\n"
        )
        name = f"{module}.{function}"
        outcome = self.run(source, did=f"called {name} on {len(cases)} inputs",
                           timeout=timeout, name=name, note_result=False)
        if not outcome.returned or not isinstance(outcome.value, list):
            return outcome
        results = []
        for args, (status, payload) in zip(cases, outcome.value):
            if status == "returned":
                results.append(Outcome("returned", value=payload, name=name))
            else:
                results.append(Outcome("raised", error=ErrorInfo.from_dict(payload), name=name))
            shown = ", ".join(map(repr, args))
            self.transcript.note(name, f"{function}({shown}): {results[-1].describe().splitlines()[0]}")
        return results

    # -- the child process ----------------------------------------------------

    def _execute(self, wrapper: Path, check: Path, result_path: Path, timeout: float,
                 name: str, call_wait: float) -> Outcome:
        # The check's folder holds its result file, so it is writable too.
        confinement = Confinement(self.limits, writable=[self.workdir, result_path.parent],
                                  tty=False, linger=False, libraries=self.libraries)
        argv = confinement.command([sys.executable, "-u", "-s", str(wrapper), str(result_path),
                                    str(check), str(self.import_wait), str(call_wait)])
        proc = subprocess.Popen(argv, cwd=self.workdir,
                                env=confinement.environment(child_environment(self.workdir)),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                pass_fds=confinement.pass_fds, preexec_fn=confinement.in_child)
        confinement.started(proc.pid)
        timed_out = False
        # Like communicate(): the check has `timeout` seconds to exit and
        # close both pipes; but only a bounded part of each is kept.
        captures = [_Capture(proc.stdout), _Capture(proc.stderr)]
        try:
            try:
                deadline = time.monotonic() + timeout
                for capture in captures:
                    capture.join(deadline - time.monotonic())
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
                for capture in captures:
                    capture.join(None)
        finally:
            _kill_group(proc.pid)   # anything the check left behind in its group
            confinement.close()     # and anything that left the group
        stdout, stderr = (capture.text() for capture in captures)
        if timed_out:
            return Outcome("timed out", stdout=stdout, stderr=stderr, name=name,
                           exit_note=f"it did not finish within {timeout:g} s (is it waiting "
                                     "forever, or looping?); the process was killed")
        try:
            payload = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            code = proc.returncode
            status = confinement.exit_status() if confinement.sandboxed else None
            if status is not None:   # the sandbox knows the real status (bwrap folds signals)
                code = status[0] if status[1] is None else -status[1]
            how = f"killed by signal {signal.Signals(-code).name}" if code < 0 \
                else f"exited with status {code}"
            return Outcome("crashed", stdout=stdout, stderr=stderr, name=name,
                           exit_note=f"the Python process {how} before the check finished "
                                     "(did your code call sys.exit() or os._exit(), or crash?)")
        waits.observed("module-gap", payload.get("longest_wait", 0.0))
        if payload.get("status") == "stuck":
            where = f" ({payload['where']})" if payload.get("where") else ""
            if payload.get("importing"):
                note = (f"importing your module took over {payload['allowance']:g} s{where}: "
                        "does it run something at import time that never ends?")
            elif payload.get("first_call"):
                call = self.first_calls.get(payload["first_call"], payload["first_call"])
                note = (f"its first call, `{call}` (made before the test's own calls), ran for "
                        f"{payload['allowance']:g} s without returning{where}: is it waiting "
                        "forever, or looping?")
            else:
                note = (f"your code ran for {payload['allowance']:g} s without returning{where}: "
                        "is it waiting forever, or looping?")
            return Outcome("timed out", stdout=stdout, stderr=stderr, name=name,
                           exit_note=note + " The check was stopped there.",
                           stuck_importing=payload.get("importing") or "",
                           stuck_first_call=payload.get("first_call") or "")
        value = _read_literal(payload.get("result", "None"))
        error = ErrorInfo.from_dict(payload["error"]) if payload.get("error") else None
        return Outcome(payload.get("status", "crashed"), value=value, error=error,
                       stdout=stdout, stderr=stderr, name=name,
                       first_calls_done=tuple(payload.get("first_calls_done", ())))


class _Capture:
    """Reads one of the child's pipes to its end in a thread, keeping its
    first OUTPUT_HEAD_BYTES and last OUTPUT_TAIL_BYTES."""

    def __init__(self, pipe) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self._pipe = pipe
        self._thread = threading.Thread(target=self._read, name="check-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fd = self._pipe.fileno()
        try:
            while chunk := os.read(fd, 1 << 20):
                room = OUTPUT_HEAD_BYTES - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                self.tail += chunk
                if len(self.tail) > OUTPUT_TAIL_BYTES:
                    extra = len(self.tail) - OUTPUT_TAIL_BYTES
                    self.dropped += extra
                    del self.tail[:extra]
        except OSError:
            pass
        finally:
            self._pipe.close()

    def join(self, timeout: float | None) -> None:
        """Wait until the pipe is closed; TimeoutExpired if it is still open."""
        self._thread.join(None if timeout is None else max(0.0, timeout))
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired("check", timeout)

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        return self.head.decode("utf-8", errors="replace") \
            + f"\n[... {self.dropped} bytes not kept ...]\n" \
            + self.tail.decode("utf-8", errors="replace")


def _shown_line(line: str) -> str:
    """One output line for a failure message: escaped, and cut to SHOW_CHARS."""
    if len(line) > SHOW_CHARS:
        return visible(line[:SHOW_CHARS]) + f" [... line of {len(line)} characters, cut]"
    return visible(line)


def _with_first_calls(source: str, first: dict[str, str]) -> tuple[str, dict[str, str]]:
    """`source` with each first call ("module.function" -> call source)
    made right after the check's own top-level `import module` (never
    before: a check may do things before it lets the student's code run),
    and the first calls it could place."""
    lines = source.splitlines(keepends=True)
    placed: dict[str, str] = {}
    after: dict[int, list[str]] = {}
    tree = ast.parse(source)
    for name, call in first.items():
        module = name.split(".")[0]
        found = next((node for node in tree.body if isinstance(node, ast.Import)
                      and any(alias.name == module and alias.asname is None
                              for alias in node.names)), None)
        if found is not None and found.col_offset == 0:
            after.setdefault(found.end_lineno, []).append(
                f"_socklab_first_call({name!r}, lambda: {call})\n")
            placed[name] = call
    for line in sorted(after, reverse=True):
        if line <= len(lines) and not lines[line - 1].endswith("\n"):
            lines[line - 1] += "\n"
        lines[line:line] = after[line]
    return "".join(lines), placed


def _literal(value: Any) -> str:
    """`repr(value)`, after making sure the child can read it back."""
    text = repr(value)
    if ast.literal_eval(text) != value:
        raise TypeError(f"not a Python literal, cannot pass it to a child process: {value!r}")
    return text


def _read_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return Unrepresentable(text)


def _short(value: Any, limit: int = 300) -> str:
    text = value.text if isinstance(value, Unrepresentable) else repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} characters)"


def _student_frames(traceback_text: str) -> str:
    """The last lines of a traceback, from the student's own code on: the
    wrapper's frames mean nothing to a student."""
    lines = _without_watch_frames(traceback_text.rstrip().splitlines())
    for i, line in enumerate(lines):
        if line.lstrip().startswith('File "') and "check_wrapper.py" not in line \
                and '"<check>"' not in line:
            return "\n".join(["Traceback (most recent call last):"] + lines[i:])
    return "\n".join(lines[-3:]) if len(lines) > 1 else ""


def student_modules(workdir: Path) -> set[str]:
    """The names of the student's modules: the .py files of `workdir`."""
    try:
        return {path.stem for path in workdir.glob("*.py")}
    except OSError:
        return set()


def _without_watch_frames(lines: list[str]) -> list[str]:
    """A traceback's lines without the frames of the wrapper's watch
    around each of the student's functions (a frame is two lines)."""
    kept, skip = [], 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        if line.lstrip().startswith('File "') and "check_wrapper.py" in line \
                and line.rstrip().endswith("in watched"):
            skip = 1
            continue
        kept.append(line)
    return kept


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

