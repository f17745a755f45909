"""uepoll with a bookkeeping check, for grading 04_epoll.

The hidden suite installs this file as `uepoll.py` in the test's working
folder, next to the course's own shim renamed `_uepoll_course.py`, which
does the real system calls. The interface is the same; the difference is
that every `wait()` first checks the rule the exercise teaches:

    the epoll data values of the descriptors registered right now are
    exactly 0..n-1 (n = how many are registered), one each; data i belongs
    to fds[i] (when the program's `fds` list can be found); data 0 is the
    listening socket.

`wait()` is the moment the bookkeeping must be consistent: between an
EPOLL_CTL_DEL and the EPOLL_CTL_MOD that follows it, a correct program is
legitimately mid-swap, so nothing is checked in `ctl()`.

"Registered right now" follows the kernel, where closing a descriptor takes
it off the interest list even without EPOLL_CTL_DEL (the guide calls that
DEL optional). The shim keeps a model: every ADD records the descriptor's
identity (device and inode, from fstat), MOD and DEL update it, and at each
wait() a descriptor that is closed, or whose number now names another file,
leaves the model. That is cheap enough for thousands of descriptors. Before
it reports a violation, the shim reads the kernel's own list from
/proc/self/fdinfo/EPFD (one `tfd:` line per registered descriptor, with its
data), where the kernel shows it, and trusts that over the model.

On the first violation the shim writes a report in plain words (the rule,
which descriptor, which index, the last calls) to `uepoll-check.txt` next
to this file and to stderr (its first line starts with "uepoll check
failed"), then ends the program at once with status 86, so that no test can pass on
top of broken bookkeeping. If a file `uepoll-trace` exists next to this
one when an Epoll is created, every wait() also writes the registered
descriptors to `uepoll-state.json` (the suite uses it to aim its clients
at chosen slots of the list).

Every Epoll also keeps three numbers in `uepoll-waiting` (memory-mapped,
so no system call is added): the program's pid, how many times wait() was
called, and whether the program is inside the real epoll_wait() right now.
With them the suite can tell that the server has gone back to waiting, so
that every check the test's own actions lead to has run before the test's
verdict is read (see Shim.settle in the suite).
"""

from __future__ import annotations

import collections
import ctypes
import inspect
import json
import mmap
import os
import socket
import struct
import sys

import _uepoll_course as _course
from _uepoll_course import *  # noqa: F401,F403  (the same constants and names)
from _uepoll_course import EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD

_HERE = os.path.dirname(os.path.abspath(__file__))
REPORT_FILE = os.path.join(_HERE, "uepoll-check.txt")
STATE_FILE = os.path.join(_HERE, "uepoll-state.json")
TRACE_FLAG = os.path.join(_HERE, "uepoll-trace")
WAITING_FILE = os.path.join(_HERE, "uepoll-waiting")
WAITING_FORMAT = "<qqq"  # pid, wait() calls, 1 while inside epoll_wait()
PREFIX = "uepoll check failed"
EXIT_STATUS = 86
HISTORY = 10           # calls remembered for the report
SHOWN = 24             # registered descriptors shown in the report, at most

_OPS = {EPOLL_CTL_ADD: "EPOLL_CTL_ADD", EPOLL_CTL_DEL: "EPOLL_CTL_DEL", EPOLL_CTL_MOD: "EPOLL_CTL_MOD"}
_BITS = [(getattr(_course, name), name[5:]) for name in
         ("EPOLLIN", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLRDHUP", "EPOLLPRI")]

# Set to False to force the model (the tests of this file do).
USE_FDINFO = True


def _waiting_marker():
    """The shared page behind WAITING_FILE, or None if it cannot be made."""
    try:
        fd = os.open(WAITING_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, struct.calcsize(WAITING_FORMAT))
            return mmap.mmap(fd, struct.calcsize(WAITING_FORMAT))
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return None


def _fileno(fd) -> int:
    return fd if isinstance(fd, int) else fd.fileno()


def _identity(fd: int):
    """What file descriptor `fd` names now (device, inode), or None if closed."""
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _event_names(events: int) -> str:
    names = [name for bit, name in _BITS if events & bit]
    return "|".join(names) or hex(events)


def kernel_interest_list(epfd: int) -> dict[int, int] | None:
    """{fd: data} as the kernel lists it for the epoll instance `epfd`, or
    None if this kernel does not show its interest list."""
    try:
        with open(f"/proc/self/fdinfo/{epfd}") as f:
            text = f.read()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        # tfd:        5 events:       19 data:                2  pos:0 ino:61d sdev:7
        if line.startswith("tfd:"):
            parts = line.split()
            try:
                found[int(parts[1])] = int(parts[5], 16)
            except (IndexError, ValueError):
                return None
    return found


_fdinfo_works: bool | None = None


def _fdinfo_lists_descriptors() -> bool:
    """Whether /proc/self/fdinfo shows an epoll's descriptors here (Linux
    3.8 and later do): tried once on a pipe."""
    global _fdinfo_works
    if _fdinfo_works is None:
        _fdinfo_works = False
        try:
            r, w = os.pipe()
            try:
                with _course.Epoll() as probe:
                    probe.ctl(EPOLL_CTL_ADD, r, _course.EPOLLIN, 0x5EC)
                    _fdinfo_works = kernel_interest_list(probe.fileno()) == {r: 0x5EC}
            finally:
                os.close(r)
                os.close(w)
        except OSError:
            pass
    return _fdinfo_works


def _find_fds(frame):
    """The program's `fds` list, looked up from the caller of wait() outwards:
    a local `fds`, `self.fds`, or a global `fds`. Returns (list, where) or
    (None, None). Only a list whose items are descriptors (ints) or have
    fileno() counts."""
    while frame is not None:
        code = frame.f_code
        where_fn = f"{code.co_name}()"
        local = frame.f_locals
        candidates = [(local.get("fds"), f"the local variable fds in {where_fn}")]
        owner = local.get("self")
        if owner is not None:
            try:
                value = inspect.getattr_static(owner, "fds", None)
            except Exception:
                value = None
            candidates.append((value, f"self.fds (in {type(owner).__name__}.{code.co_name}())"))
        candidates.append((frame.f_globals.get("fds"),
                           f"the global fds of {frame.f_globals.get('__name__', '?')}"))
        for value, where in candidates:
            if isinstance(value, list) and all(
                    isinstance(item, int) or hasattr(item, "fileno") for item in value):
                return value, where
        frame = frame.f_back
    return None, None


def _numbers(fds: list) -> list[int | None]:
    """fds as descriptor numbers: -1 for a closed socket, None if unknown."""
    out = []
    for item in fds:
        if isinstance(item, int):
            out.append(item)
            continue
        try:
            out.append(int(item.fileno()))
        except Exception:
            out.append(None)
    return out


def _describe_slot(number: int | None) -> str:
    if number is None:
        return "something without a usable fileno()"
    if number < 0:
        return "a closed socket"
    return f"fd {number}"


_libc = ctypes.CDLL(None, use_errno=True)
_getsockopt = _libc.getsockopt
_getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                        ctypes.POINTER(ctypes.c_uint32)]
_getsockopt.restype = ctypes.c_int


def _is_listening(fd: int) -> bool | None:
    """True if fd is a listening socket, False if not, None if not a socket.
    (getsockopt on the bare number: a socket object built around the
    program's descriptor could close it if a signal struck at the wrong
    moment.)"""
    value = ctypes.c_int(0)
    size = ctypes.c_uint32(ctypes.sizeof(value))
    accepting = getattr(socket, "SO_ACCEPTCONN", 30)
    if _getsockopt(fd, socket.SOL_SOCKET, accepting, ctypes.byref(value), ctypes.byref(size)) < 0:
        return None
    return bool(value.value)


class Epoll:
    """The course's uepoll.Epoll, with the bookkeeping check at every wait()."""

    def __init__(self, *args, **kwargs) -> None:
        self._real = _course.Epoll(*args, **kwargs)
        self._model: dict[int, list] = {}  # fd -> [data, identity at ADD]
        self._history = collections.deque(maxlen=HISTORY)
        self._ctl_calls = 0
        self._wait_calls = 0
        self._trace = os.path.exists(TRACE_FLAG)
        self._waiting = _waiting_marker()
        self._mark(0)

    # -- the same interface -----------------------------------------------

    def ctl(self, op: int, fd, events: int = 0, data: int = 0) -> None:
        self._ctl_calls += 1
        try:
            number = _fileno(fd)
        except Exception:
            number = fd
        words = f"{_OPS.get(op, f'epoll_ctl op {op}')} fd {number}"
        if op != EPOLL_CTL_DEL:
            words += f", data {data}"
        try:
            self._real.ctl(op, fd, events, data)
        except Exception as exc:
            self._note(f"{words}: failed ({exc})")
            raise
        self._note(words)
        if op == EPOLL_CTL_ADD:
            self._model[number] = [data, _identity(number)]
        elif op == EPOLL_CTL_MOD:
            entry = self._model.setdefault(number, [data, _identity(number)])
            entry[0] = data
        elif op == EPOLL_CTL_DEL:
            self._model.pop(number, None)

    def wait(self, maxevents: int = 64, timeout: int = -1) -> list[tuple[int, int]]:
        self._wait_calls += 1
        registered = self._model_now()
        fds, where = _find_fds(sys._getframe(1))
        problem = self._check(registered, fds, where)
        if problem and USE_FDINFO and _fdinfo_lists_descriptors():
            # Before blaming the program, ask the kernel: its own list wins.
            kernel = kernel_interest_list(self._real.fileno())
            if kernel is not None and kernel != registered:
                self._model = {fd: [data, _identity(fd)] for fd, data in kernel.items()}
                registered = kernel
                problem = self._check(registered, fds, where)
        if problem:
            self._report(problem, registered, fds, where)
        if self._trace:
            self._write_state(registered)
        self._mark(1)
        try:
            events = self._real.wait(maxevents, timeout)
        finally:
            self._mark(0)
        shown = ", ".join(f"data {data} ({_event_names(ev)})" for ev, data in events[:4])
        more = f" and {len(events) - 4} more" if len(events) > 4 else ""
        self._note(f"wait() #{self._wait_calls} returned {len(events)} event(s)"
                   + (f": {shown}{more}" if events else ""))
        return events

    def fileno(self) -> int:
        return self._real.fileno()

    @property
    def closed(self) -> bool:
        return self._real.closed

    def close(self) -> None:
        self._real.close()

    def __enter__(self) -> "Epoll":
        self._real.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._real)

    # -- the check ------------------------------------------------------------

    def _note(self, words: str) -> None:
        self._history.append(words)

    def _mark(self, inside: int) -> None:
        if self._waiting is not None:
            struct.pack_into(WAITING_FORMAT, self._waiting, 0, os.getpid(), self._wait_calls, inside)

    def _model_now(self) -> dict[int, int]:
        """{fd: data} for every descriptor on the interest list now, as the
        model sees it: a descriptor that was closed, or whose number now
        names another file, left the list (and is noted for the report)."""
        for fd, (data, ident) in list(self._model.items()):
            if ident is None or _identity(fd) != ident:
                self._forget(fd, data)
        return {fd: entry[0] for fd, entry in self._model.items()}

    def _forget(self, fd: int, data: int) -> None:
        del self._model[fd]
        self._note(f"fd {fd} (data {data}) was closed without EPOLL_CTL_DEL: "
                   "closing took it off the interest list")

    def _check(self, registered: dict[int, int], fds, where) -> str | None:
        """None if the bookkeeping is right, else what is wrong, in words."""
        n = len(registered)
        if n == 0:
            return None
        # The quick test first (it runs at every wait(), with up to
        # thousands of descriptors); the words only when something is wrong.
        values = set(registered.values())
        numbers = _numbers(fds) if fds is not None else None
        if len(values) == n and max(values) == n - 1 and (
                numbers is None or (len(numbers) == n and all(
                    numbers[data] == fd for fd, data in registered.items()))):
            return self._check_listener(registered)
        span = f"0..{n - 1}" if n > 1 else "0"
        holders = collections.defaultdict(list)
        for fd, data in sorted(registered.items()):
            holders[data].append(fd)

        def place(fd):
            if numbers is None or fd not in numbers:
                return ""
            return f" (it sits at fds[{numbers.index(fd)}])"

        outside = [(fd, data) for fd, data in sorted(registered.items()) if data >= n]
        doubled = [(data, fds_) for data, fds_ in sorted(holders.items()) if len(fds_) > 1]
        if outside or doubled:
            rule = (f"at every wait(), the data values of the registered descriptors are "
                    f"exactly 0..n-1, one per descriptor, each its index in fds. "
                    f"{n} descriptor(s) are registered, so the data values must be {span}.")
            lines = []
            for fd, data in outside[:5]:
                lines.append(f"fd {fd} is registered with data {data}, "
                             f"{'outside ' + span if n > 1 else 'not 0'}{place(fd)}.")
            for data, owners in doubled[:5]:
                lines.append(f"data {data} is carried by {len(owners)} descriptors: "
                             + ", ".join(f"fd {fd}{place(fd)}" for fd in owners) + ".")
            missing = [i for i in range(n) if i not in holders]
            if missing:
                lines.append("no registered descriptor carries data "
                             + ", ".join(map(str, missing[:8])) + ("..." if len(missing) > 8 else "") + ".")
            lines += self._diagnose(registered, numbers)
            return rule + "\n" + "\n".join(lines)
        if numbers is not None:
            rule = (f"data i belongs to fds[i]: the descriptor registered with data i is "
                    f"the one at index i of your list ({where}).")
            if len(numbers) != n:
                return (rule + f"\nfds holds {len(numbers)} entries, but {n} descriptor(s) are "
                        "registered with epoll" + self._extra_entries(registered, numbers))
            for fd, data in sorted(registered.items(), key=lambda item: item[1]):
                if numbers[data] != fd:
                    lines = [f"fd {fd} is registered with data {data}, but fds[{data}] is "
                             f"{_describe_slot(numbers[data])}{place(fd)}."]
                    return "\n".join([rule] + lines + self._diagnose(registered, numbers))
        return self._check_listener(registered)

    @staticmethod
    def _check_listener(registered) -> str | None:
        listener = next(fd for fd, data in registered.items() if data == 0)
        listening = _is_listening(listener)
        if listening is not True:
            what = "not a socket" if listening is None else "a socket that is not listening"
            return ("the listening socket is fds[0], registered with data 0.\n"
                    f"fd {listener} carries data 0, but it is {what}.")
        return None

    @staticmethod
    def _extra_entries(registered, numbers) -> str:
        stale = [i for i, number in enumerate(numbers) if number not in registered]
        if not stale:
            return "."
        shown = ", ".join(f"fds[{i}] is {_describe_slot(numbers[i])}" for i in stale[:5])
        return f": {shown}, not registered."

    @staticmethod
    def _diagnose(registered, numbers) -> list[str]:
        """A likely cause, when the pattern is recognisable."""
        n = len(registered)
        wrong = [(fd, data) for fd, data in registered.items()
                 if data >= n or (numbers is not None and fd in numbers and numbers.index(fd) != data)]
        if wrong and all(fd == data for fd, data in wrong):
            fd = wrong[0][0]
            return [f"fd {fd} carries its own descriptor number as its data: the data must be "
                    "the descriptor's index in fds (the listening socket 0, the first user 1, "
                    "...), not the descriptor."]
        if numbers is None:
            return []
        moved = [(fd, data, numbers.index(fd)) for fd, data in sorted(registered.items())
                 if fd in numbers and numbers.index(fd) != data]
        if not moved:
            return []
        fd, data, at = moved[0]
        return [f"fd {fd} sits at fds[{at}] but the kernel still holds data {data} for it: "
                "an entry that moves to another slot of fds needs EPOLL_CTL_MOD with its "
                "new index (and only the last entry should move, into the freed slot)."]

    def _report(self, problem: str, registered, fds, where) -> None:
        shown = ", ".join(f"fd {fd}: {data}" for fd, data in
                          sorted(registered.items(), key=lambda item: item[1])[:SHOWN])
        if len(registered) > SHOWN:
            shown += f", ... ({len(registered)} in all)"
        lines = [f"{PREFIX} at wait() call #{self._wait_calls}, after {self._ctl_calls} "
                 "epoll_ctl call(s).",
                 "Broken rule: " + problem,
                 f"Registered now (fd: data): {shown}"]
        if fds is not None:
            numbers = _numbers(fds)
            listed = ", ".join(_describe_slot(n) for n in numbers[:SHOWN])
            more = f", ... ({len(numbers)} in all)" if len(numbers) > SHOWN else ""
            lines.append(f"Your fds list, {where}: [{listed}{more}]")
        else:
            lines.append("(No list named fds was found from wait()'s caller, so only the "
                         "data values were checked.)")
        lines.append("The last calls, oldest first:")
        lines += [f"    {entry}" for entry in self._history]
        lines.append(f"    wait() #{self._wait_calls} called: checked here")
        lines.append(f"The check stopped the program (exit status {EXIT_STATUS}).")
        text = "\n".join(lines) + "\n"
        try:
            with open(REPORT_FILE, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            pass
        try:
            sys.stderr.write("\n" + text.replace("\n", "\n    ").rstrip() + "\n")
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(EXIT_STATUS)

    def _write_state(self, registered) -> None:
        state = {"pid": os.getpid(), "wait": self._wait_calls,
                 "registered": {str(fd): data for fd, data in registered.items()}}
        temp = STATE_FILE + f".{os.getpid()}.tmp"
        try:
            with open(temp, "w", encoding="utf-8") as f:
                json.dump(state, f)
            os.replace(temp, STATE_FILE)
        except OSError:
            pass
