"""uepoll: epoll for Python through ctypes, with the epoll_event.data field
exposed the way C exposes it.

This file is provided complete; do not change it (the grader uses its own
copy). Python's own select.epoll keeps epoll_event.data to itself and always
stores the file descriptor there. The guide's chat server stores something
else in it, the descriptor's index in its `fds` list, so this module calls
the three system calls directly:

    epoll_create1(EPOLL_CLOEXEC)            -> Epoll()
    epoll_ctl(epfd, op, fd, &event)         -> Epoll.ctl(op, fd, events, data)
    epoll_wait(epfd, events, max, timeout)  -> Epoll.wait(maxevents, timeout)

Example:

    with uepoll.Epoll() as ep:
        ep.ctl(uepoll.EPOLL_CTL_ADD, sock.fileno(), uepoll.EPOLLIN, 0)
        for events, data in ep.wait():        # blocks until something is ready
            ...                               # data is the 0 given above

Linux only (epoll is a Linux interface).
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import platform
import sys
import time

__all__ = [
    "EPOLLIN", "EPOLLPRI", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLRDHUP",
    "EPOLLEXCLUSIVE", "EPOLLONESHOT", "EPOLLET",
    "EPOLL_CTL_ADD", "EPOLL_CTL_DEL", "EPOLL_CTL_MOD",
    "Epoll", "EpollEvent",
]

if not sys.platform.startswith("linux"):
    raise ImportError("uepoll needs Linux: epoll is a Linux-only interface")

# Event bits, as in <sys/epoll.h>.
EPOLLIN = 0x001          # there is data to read (or a connection to accept)
EPOLLPRI = 0x002         # urgent data
EPOLLOUT = 0x004         # writing would not block
EPOLLERR = 0x008         # an error is pending (always reported, never asked for)
EPOLLHUP = 0x010         # hang-up (always reported, never asked for)
EPOLLRDHUP = 0x2000      # the peer shut down its writing side
EPOLLEXCLUSIVE = 1 << 28
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31        # edge-triggered instead of level-triggered

# The operations of epoll_ctl().
EPOLL_CTL_ADD = 1
EPOLL_CTL_DEL = 2
EPOLL_CTL_MOD = 3

EPOLL_CLOEXEC = os.O_CLOEXEC  # same value as O_CLOEXEC on every architecture

_U32 = 1 << 32
_U64 = 1 << 64

# struct epoll_event { uint32_t events; epoll_data_t data; }  (data: 8 bytes)
#
# The kernel declares it packed on x86 (12 bytes: data right after events),
# so that 32-bit and 64-bit programs share one layout. Every other
# architecture uses natural alignment (16 bytes: 4 bytes of padding before
# data). Getting this wrong makes the kernel and Python read `data` at
# different offsets, so the layout must follow the machine.
_FIELDS = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]
_X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i486", "i586", "i686", "x86"}

if _X86:
    class EpollEvent(ctypes.Structure):
        _pack_ = 1
        _fields_ = _FIELDS
else:
    class EpollEvent(ctypes.Structure):
        _fields_ = _FIELDS

assert ctypes.sizeof(EpollEvent) == (12 if _X86 else 16)

# dlopen(NULL): the symbols already loaded into this process, libc among them.
_libc = ctypes.CDLL(None, use_errno=True)

_epoll_create1 = _libc.epoll_create1
_epoll_create1.argtypes = [ctypes.c_int]
_epoll_create1.restype = ctypes.c_int

_epoll_ctl = _libc.epoll_ctl
_epoll_ctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(EpollEvent)]
_epoll_ctl.restype = ctypes.c_int

_epoll_wait = _libc.epoll_wait
_epoll_wait.argtypes = [ctypes.c_int, ctypes.POINTER(EpollEvent), ctypes.c_int, ctypes.c_int]
_epoll_wait.restype = ctypes.c_int


def _os_error() -> OSError:
    """The OSError for the errno the last call left (FileExistsError for
    EEXIST, FileNotFoundError for ENOENT, and so on)."""
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))


def _fileno(fd) -> int:
    """An int descriptor, or an object with fileno() such as a socket."""
    if not isinstance(fd, int):
        fd = fd.fileno()
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


class Epoll:
    """One epoll instance: an interest list kept in the kernel.

    The descriptor is created with EPOLL_CLOEXEC (not inherited by programs
    started with exec). Use close() when done, or a `with` block."""

    def __init__(self) -> None:
        fd = _epoll_create1(EPOLL_CLOEXEC)
        if fd < 0:
            raise _os_error()
        self._fd = fd
        self._events = (EpollEvent * 64)()  # reused by wait(); grows on demand

    # -- the interest list ------------------------------------------------

    def ctl(self, op: int, fd, events: int = 0, data: int = 0) -> None:
        """epoll_ctl: add (EPOLL_CTL_ADD), change (EPOLL_CTL_MOD) or remove
        (EPOLL_CTL_DEL) `fd` on the interest list. `events` is an OR of
        EPOLL* bits; `data` is any unsigned 64-bit integer, handed back by
        wait() with every event for `fd`. Raises OSError on failure (e.g.
        FileExistsError when adding a descriptor twice, FileNotFoundError
        when changing one that is not registered)."""
        self._check_open()
        fd = _fileno(fd)
        if not 0 <= events < _U32:
            raise ValueError(f"events must fit in 32 bits, got {events}")
        if not 0 <= data < _U64:
            raise ValueError(f"data must be an unsigned 64-bit integer, got {data}")
        event = EpollEvent(events, data)
        # EPOLL_CTL_DEL ignores the event, but kernels before 2.6.9 wanted
        # a valid pointer anyway, so one is always passed.
        if _epoll_ctl(self._fd, op, fd, ctypes.byref(event)) < 0:
            raise _os_error()

    # -- waiting ------------------------------------------------------------

    def wait(self, maxevents: int = 64, timeout: int = -1) -> list[tuple[int, int]]:
        """epoll_wait: block until at least one registered descriptor is
        ready, or `timeout` milliseconds have passed (-1 or None: no limit;
        0: do not block). Returns up to `maxevents` (events, data) pairs,
        an empty list on timeout.

        A signal that interrupts the wait (EINTR) is not an error: its
        Python handler runs (and may raise, e.g. KeyboardInterrupt), then
        the wait resumes with whatever remains of the timeout."""
        self._check_open()
        if maxevents <= 0:
            raise ValueError(f"maxevents must be at least 1, got {maxevents}")
        if timeout is None or timeout < 0:
            deadline, millis = None, -1
        else:
            millis = math.ceil(timeout)
            deadline = time.monotonic() + millis / 1000
        if len(self._events) < maxevents:
            self._events = (EpollEvent * maxevents)()
        buffer = self._events
        while True:
            count = _epoll_wait(self._fd, buffer, maxevents, millis)
            if count >= 0:
                return [(buffer[i].events, buffer[i].data) for i in range(count)]
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
            # Interrupted by a signal. Python runs the signal's handler as
            # soon as this function executes more bytecode (right here); if
            # the handler raises, the exception leaves wait() from there.
            if deadline is not None:
                millis = max(0, math.ceil((deadline - time.monotonic()) * 1000))

    # -- the instance itself ------------------------------------------------

    def fileno(self) -> int:
        """The epoll instance's own file descriptor."""
        self._check_open()
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close the instance (its interest list goes with it). Closing
        twice is harmless."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> "Epoll":
        self._check_open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<uepoll.Epoll {state}>"

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError("I/O operation on a closed epoll object")
