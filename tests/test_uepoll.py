"""The epoll shim of 04_epoll (exercises/04_epoll/uepoll.py, shipped to
students complete) and its instrumented twin used by the hidden suite
(grader/hidden/04_epoll/support/uepoll_instrumented.py)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from grader.course import manifest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll is Linux-only")

COURSE = manifest.EXERCISES_DIR / "04_epoll" / "uepoll.py"
INSTRUMENTED = manifest.HIDDEN_DIR / "04_epoll" / "support" / "uepoll_instrumented.py"


@pytest.fixture(scope="module")
def uepoll():
    spec = importlib.util.spec_from_file_location("uepoll_under_test", COURSE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ep(uepoll):
    with uepoll.Epoll() as instance:
        yield instance


@pytest.fixture
def pipes():
    made = []

    def make():
        r, w = os.pipe()
        made.extend((r, w))
        return r, w

    yield make
    for fd in made:
        try:
            os.close(fd)
        except OSError:
            pass


# -- the layout of struct epoll_event -------------------------------------------

def test_event_struct_matches_the_kernel_layout(uepoll):
    x86 = os.uname().machine.lower() in {"x86_64", "amd64", "i386", "i486", "i586", "i686"}
    # packed on x86 (data right after events), naturally aligned elsewhere
    assert ctypes.sizeof(uepoll.EpollEvent) == (12 if x86 else 16)
    assert uepoll.EpollEvent.data.offset == (4 if x86 else 8)


@pytest.mark.parametrize("data", [0, 1, 0xFFFFFFFF, 1 << 32, 0x0123456789ABCDEF, (1 << 64) - 1])
def test_data_comes_back_exactly(ep, uepoll, pipes, data):
    r, w = pipes()
    ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, data)
    os.write(w, b"x")
    assert ep.wait(timeout=1000) == [(uepoll.EPOLLIN, data)]


def test_several_events_in_one_wait_keep_their_own_data(ep, uepoll, pipes):
    # A wrong struct size would read the second and later events at the
    # wrong offsets: their data would be garbage.
    values = {}
    for i in range(5):
        r, w = pipes()
        data = (0xA5A5 << 40) | (i * 0x01010101)
        ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, data)
        os.write(w, b"x")
        values[data] = i
    got = ep.wait(maxevents=16, timeout=1000)
    assert sorted(d for _, d in got) == sorted(values)
    assert all(events == uepoll.EPOLLIN for events, _ in got)


def test_maxevents_caps_the_answer_and_can_exceed_the_first_buffer(ep, uepoll, pipes):
    for i in range(100):
        r, w = pipes()
        ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, i)
        os.write(w, b"x")
    assert len(ep.wait(maxevents=7, timeout=0)) == 7
    assert sorted(d for _, d in ep.wait(maxevents=500, timeout=0)) == list(range(100))


def test_mod_changes_the_data_and_del_removes(ep, uepoll, pipes):
    r, w = pipes()
    ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, 3)
    os.write(w, b"x")
    assert ep.wait(timeout=0) == [(uepoll.EPOLLIN, 3)]
    ep.ctl(uepoll.EPOLL_CTL_MOD, r, uepoll.EPOLLIN, 9)
    assert ep.wait(timeout=0) == [(uepoll.EPOLLIN, 9)]  # level-triggered: still ready
    ep.ctl(uepoll.EPOLL_CTL_DEL, r)
    assert ep.wait(timeout=0) == []


def test_closing_a_descriptor_takes_it_off_the_list(ep, uepoll):
    a, b = socket.socketpair()
    ep.ctl(uepoll.EPOLL_CTL_ADD, a.fileno(), uepoll.EPOLLIN, 1)
    b.send(b"x")
    assert ep.wait(timeout=0) == [(uepoll.EPOLLIN, 1)]
    a.close()
    assert ep.wait(timeout=0) == []
    b.close()


def test_hang_up_is_reported(ep, uepoll):
    a, b = socket.socketpair()
    ep.ctl(uepoll.EPOLL_CTL_ADD, a, uepoll.EPOLLIN | uepoll.EPOLLRDHUP, 4)  # an object with fileno()
    b.close()
    [(events, data)] = ep.wait(timeout=1000)
    assert data == 4 and events & uepoll.EPOLLIN and events & uepoll.EPOLLRDHUP
    a.close()


def test_timeout_is_in_milliseconds(ep, uepoll, pipes):
    r, _ = pipes()
    ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, 0)
    started = time.monotonic()
    assert ep.wait(timeout=0) == []
    assert time.monotonic() - started < 0.05
    started = time.monotonic()
    assert ep.wait(timeout=120) == []
    assert 0.11 <= time.monotonic() - started < 1.0


# -- errors -----------------------------------------------------------------

def test_kernel_errors_become_oserrors_with_their_errno(ep, uepoll, pipes, tmp_path):
    r, w = pipes()
    ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, 0)
    with pytest.raises(FileExistsError):
        ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, 0)
    with pytest.raises(FileNotFoundError):
        ep.ctl(uepoll.EPOLL_CTL_MOD, w, uepoll.EPOLLIN, 0)
    with pytest.raises(FileNotFoundError):
        ep.ctl(uepoll.EPOLL_CTL_DEL, w)
    regular = tmp_path / "plain"
    regular.write_text("x")
    with open(regular) as f, pytest.raises(PermissionError) as raised:
        ep.ctl(uepoll.EPOLL_CTL_ADD, f.fileno(), uepoll.EPOLLIN, 0)  # files cannot be watched
    assert raised.value.errno == errno.EPERM
    closed_r, closed_w = os.pipe()
    os.close(closed_r)
    os.close(closed_w)
    with pytest.raises(OSError) as raised:
        ep.ctl(uepoll.EPOLL_CTL_ADD, closed_r, uepoll.EPOLLIN, 0)
    assert raised.value.errno == errno.EBADF
    with pytest.raises(OSError) as raised:
        ep.ctl(99, r, uepoll.EPOLLIN, 0)
    assert raised.value.errno == errno.EINVAL


def test_arguments_outside_their_range_are_refused(ep, uepoll, pipes):
    r, _ = pipes()
    for data in (-1, 1 << 64):
        with pytest.raises(ValueError):
            ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, data)
    with pytest.raises(ValueError):
        ep.ctl(uepoll.EPOLL_CTL_ADD, r, -1, 0)
    with pytest.raises(ValueError):
        ep.ctl(uepoll.EPOLL_CTL_ADD, -3, uepoll.EPOLLIN, 0)
    with pytest.raises(ValueError):
        ep.wait(maxevents=0)


# -- the instance -------------------------------------------------------------

def test_close_context_manager_and_cloexec(uepoll):
    with uepoll.Epoll() as ep:
        fd = ep.fileno()
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert not ep.closed
    assert ep.closed
    with pytest.raises(OSError):
        os.fstat(fd)  # really closed
    ep.close()  # twice is fine
    for call in (ep.fileno, ep.wait, lambda: ep.ctl(uepoll.EPOLL_CTL_DEL, 0)):
        with pytest.raises(ValueError):
            call()
    assert "closed" in repr(ep)


# -- signals ----------------------------------------------------------------------

def run_child(tmp_path: Path, body: str, timeout: float = 20) -> subprocess.CompletedProcess:
    shutil.copyfile(COURSE, tmp_path / "uepoll.py")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout, env={"PATH": os.environ.get("PATH", "")})


def test_a_signal_whose_handler_returns_does_not_end_the_wait(tmp_path):
    result = run_child(tmp_path, """
        import os, signal, time, uepoll
        hits = []
        signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)   # EINTR every 50 ms
        r, w = os.pipe()
        ep = uepoll.Epoll()
        ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, 7)
        started = time.monotonic()
        got = ep.wait(timeout=400)                          # nothing comes: times out
        took = time.monotonic() - started
        signal.setitimer(signal.ITIMER_REAL, 0)
        print(got, len(hits) >= 3, 0.39 <= took < 1.5)
    """)
    assert result.stdout.split() == ["[]", "True", "True"], result.stderr


def test_a_signal_whose_handler_raises_leaves_the_wait(tmp_path):
    result = run_child(tmp_path, """
        import os, signal, uepoll
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        ep = uepoll.Epoll()
        r, w = os.pipe()
        ep.ctl(uepoll.EPOLL_CTL_ADD, r, uepoll.EPOLLIN, 7)
        try:
            signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
            ep.wait()                                       # blocks until the alarm
        except KeyboardInterrupt:
            print("interrupted")
    """)
    assert result.stdout.strip() == "interrupted", result.stderr


def test_stop_and_continue_do_not_break_the_wait(tmp_path):
    # On Linux epoll_wait fails with EINTR after SIGSTOP + SIGCONT, even
    # without a handler; the shim must simply wait again.
    shutil.copyfile(COURSE, tmp_path / "uepoll.py")
    (tmp_path / "child.py").write_text(textwrap.dedent("""
        import os, sys, uepoll
        ep = uepoll.Epoll()
        ep.ctl(uepoll.EPOLL_CTL_ADD, 0, uepoll.EPOLLIN, 42)
        print("waiting", flush=True)
        print(ep.wait(), flush=True)
    """))
    child = subprocess.Popen([sys.executable, "child.py"], cwd=tmp_path, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)

    def until(condition):
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "the child never got there"
            time.sleep(0.01)

    def in_epoll_wait():
        if process.status() != psutil.STATUS_SLEEPING:
            return False
        with open(f"/proc/{child.pid}/wchan") as f:
            where = f.read().strip()
        return "epoll" in where or where in ("", "0")  # "0": this kernel hides it

    try:
        assert child.stdout.readline().strip() == "waiting"
        until(in_epoll_wait)
        os.kill(child.pid, signal.SIGSTOP)
        until(lambda: process.status() == psutil.STATUS_STOPPED)
        os.kill(child.pid, signal.SIGCONT)
        until(lambda: process.status() != psutil.STATUS_STOPPED and in_epoll_wait())
        assert child.poll() is None, child.stderr.read()
        child.stdin.write("x\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=10)
        [(events, data)] = eval(out.strip())
        assert data == 42 and events & 1, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# -- the instrumented shim ------------------------------------------------------

PRELUDE = """
import os, socket, sys
import uepoll
from uepoll import EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLIN
uepoll.USE_FDINFO = {fdinfo}

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
ep = uepoll.Epoll()
fds = [listener]
peers = []
ep.ctl(EPOLL_CTL_ADD, listener.fileno(), EPOLLIN, 0)

def add():
    a, b = socket.socketpair()
    peers.append(b)
    ep.ctl(EPOLL_CTL_ADD, a.fileno(), EPOLLIN, len(fds))
    fds.append(a)
    return a

def swap_delete(index, use_del=True):
    sock = fds[index]
    if use_del:
        ep.ctl(EPOLL_CTL_DEL, sock.fileno())
    sock.close()
    last = fds.pop()
    if index < len(fds):
        fds[index] = last
        ep.ctl(EPOLL_CTL_MOD, last.fileno(), EPOLLIN, index)

def tick():
    ep.wait(timeout=0)

for _ in range(6):
    add()
tick()
"""


def run_instrumented(tmp_path: Path, body: str, fdinfo: bool = True, trace: bool = False):
    shutil.copyfile(COURSE, tmp_path / "_uepoll_course.py")
    shutil.copyfile(INSTRUMENTED, tmp_path / "uepoll.py")
    if trace:
        (tmp_path / "uepoll-trace").touch()
    script = tmp_path / "prog.py"
    script.write_text(PRELUDE.format(fdinfo=fdinfo) + textwrap.dedent(body) + "\nprint('done')\n")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=20, env={"PATH": os.environ.get("PATH", "")})
    report_path = tmp_path / "uepoll-check.txt"
    report = report_path.read_text() if report_path.exists() else ""
    return result, report


both_ways = pytest.mark.parametrize("fdinfo", [True, False], ids=["kernel-list", "model"])


@both_ways
def test_correct_swap_delete_passes(tmp_path, fdinfo):
    result, report = run_instrumented(tmp_path, """
        swap_delete(2); tick()          # the middle
        swap_delete(len(fds) - 1); tick()   # the end: nothing moves
        swap_delete(1); tick()          # the front
        add(); add(); tick()
        swap_delete(3, use_del=False); tick()   # closing alone takes it off the list
        swap_delete(4, use_del=False); add(); tick()   # its number is reused at once
    """, fdinfo=fdinfo)
    assert (result.returncode, report) == (0, ""), result.stderr
    assert result.stdout.strip() == "done"


@both_ways
def test_missing_mod_after_the_swap_is_reported(tmp_path, fdinfo):
    result, report = run_instrumented(tmp_path, """
        sock = fds[2]
        ep.ctl(EPOLL_CTL_DEL, sock.fileno()); sock.close()
        fds[2] = fds.pop()                          # moved, never re-registered
        moved = fds[2].fileno()
        sys.stderr.write(f"moved {moved}\\n")
        tick()
    """, fdinfo=fdinfo)
    moved = result.stderr.split()[1]
    assert result.returncode == 86
    assert report.startswith("uepoll check failed at wait() call #2")
    assert "6 descriptor(s) are registered, so the data values must be 0..5" in report
    assert f"fd {moved} is registered with data 6, outside 0..5 (it sits at fds[2])" in report
    assert "no registered descriptor carries data 2" in report
    assert "needs EPOLL_CTL_MOD" in report
    assert f"EPOLL_CTL_DEL fd" in report and "wait() #2 called: checked here" in report
    assert "uepoll check failed" in result.stderr and "done" not in result.stdout


def test_shifting_with_pop_is_reported(tmp_path):
    result, report = run_instrumented(tmp_path, """
        sock = fds.pop(2)
        ep.ctl(EPOLL_CTL_DEL, sock.fileno()); sock.close()
        tick()
    """)
    assert result.returncode == 86
    assert "registered with data 6, outside 0..5" in report
    assert "sits at fds[2] but the kernel still holds data 3" in report


def test_descriptor_as_data_is_reported(tmp_path):
    result, report = run_instrumented(tmp_path, """
        a, b = socket.socketpair(); peers.append(b)
        ep.ctl(EPOLL_CTL_ADD, a.fileno(), EPOLLIN, a.fileno()); fds.append(a)
        tick()
    """)
    assert result.returncode == 86
    assert "carries its own descriptor number as its data" in report


def test_two_descriptors_with_one_index_are_reported(tmp_path):
    result, report = run_instrumented(tmp_path, """
        ep.ctl(EPOLL_CTL_MOD, fds[5].fileno(), EPOLLIN, 1)
        tick()
    """)
    assert result.returncode == 86
    assert "data 1 is carried by 2 descriptors" in report
    assert "no registered descriptor carries data 5" in report


def test_indexes_that_do_not_match_fds_are_reported(tmp_path):
    result, report = run_instrumented(tmp_path, """
        fds[1], fds[2] = fds[2], fds[1]     # the values are still 0..6, but swapped
        tick()
    """)
    assert result.returncode == 86
    assert "data i belongs to fds[i]" in report
    assert "the global fds of __main__" in report


def test_a_closed_socket_left_in_fds_is_reported(tmp_path):
    result, report = run_instrumented(tmp_path, """
        fds[6].close()                      # closed (so unregistered) but still listed
        tick()
    """)
    assert result.returncode == 86
    assert "fds holds 7 entries, but 6 descriptor(s) are registered" in report
    assert "fds[6] is a closed socket" in report
    assert "was closed without EPOLL_CTL_DEL" in report


def test_the_listener_must_carry_data_0(tmp_path):
    result, report = run_instrumented(tmp_path, """
        ep.ctl(EPOLL_CTL_DEL, listener.fileno())
        a = fds.pop()
        ep.ctl(EPOLL_CTL_MOD, a.fileno(), EPOLLIN, 0)
        fds[0] = a
        tick()
    """)
    assert result.returncode == 86
    assert "the listening socket is fds[0], registered with data 0" in report


def test_without_a_list_named_fds_only_the_values_are_checked(tmp_path):
    result, report = run_instrumented(tmp_path, """
        sockets = fds; del fds
        sockets[1], sockets[2] = sockets[2], sockets[1]   # not visible without fds
        tick()
        ep.ctl(EPOLL_CTL_MOD, sockets[1].fileno(), EPOLLIN, 7)
        tick()
    """)
    assert result.returncode == 86
    assert "outside 0..6" in report and "No list named fds was found" in report


def test_between_del_and_mod_nothing_is_checked(tmp_path):
    # A wait() with the program mid-swap would fail; ctl() calls never do.
    result, report = run_instrumented(tmp_path, """
        sock = fds[1]
        ep.ctl(EPOLL_CTL_DEL, sock.fileno()); sock.close()
        last = fds.pop(); fds[1] = last
        ep.ctl(EPOLL_CTL_MOD, last.fileno(), EPOLLIN, 1)
        tick()
    """)
    assert (result.returncode, report) == (0, ""), result.stderr


def test_trace_writes_the_registrations(tmp_path):
    import json
    result, report = run_instrumented(tmp_path, """
        swap_delete(2); tick()
        print(sorted((s.fileno(), i) for i, s in enumerate(fds)))
    """, trace=True)
    assert result.returncode == 0, result.stderr
    state = json.loads((tmp_path / "uepoll-state.json").read_text())
    listed = sorted((int(fd), data) for fd, data in state["registered"].items())
    assert str(listed) == result.stdout.splitlines()[0]
    assert state["wait"] == 2


def test_the_kernel_list_is_read_from_fdinfo(tmp_path):
    # A copy: the shim keeps its files beside itself, never in the course tree.
    shutil.copyfile(COURSE, tmp_path / "_uepoll_course.py")
    shutil.copyfile(INSTRUMENTED, tmp_path / "uepoll_instrumented.py")
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location("uepoll_instrumented",
                                                      tmp_path / "uepoll_instrumented.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with module.Epoll() as ep:
            a, b = socket.socketpair()
            ep.ctl(module.EPOLL_CTL_ADD, a, module.EPOLLIN, (1 << 64) - 1)
            if module._fdinfo_lists_descriptors():
                assert module.kernel_interest_list(ep.fileno()) == {a.fileno(): (1 << 64) - 1}
                a.close()
                assert module.kernel_interest_list(ep.fileno()) == {}
            b.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("_uepoll_course", None)
