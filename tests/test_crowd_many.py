"""grader.testkit.crowd's bulk helpers (added for 09_c10k): connect_many,
wait_among, reset_all, latency_percentile."""

from __future__ import annotations

import os
import resource
import selectors
import socket
import time

import pytest

from grader.harness.failure import GradingFailure
from grader.harness.transcript import Transcript
from grader.testkit.crowd import Crowd, connect_many, latency_percentile, reset_all, wait_among
from support import BackgroundServer


class CountingServer(BackgroundServer):
    """A server in a thread that never speaks first: it answers each line
    with the number of connections it holds, and counts resets."""

    backlog = 128

    def __init__(self) -> None:
        self.open = 0
        self.resets = 0
        super().__init__()

    def run(self) -> None:
        self.listener.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self.stop_r, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                sock = key.fileobj
                if sock is self.stop_r:
                    for other in list(sel.get_map().values()):
                        if other.fileobj not in (self.listener, self.stop_r):
                            other.fileobj.close()
                    sel.close()
                    return
                if sock is self.listener:
                    while True:
                        try:
                            conn, _ = self.listener.accept()
                        except (BlockingIOError, OSError):
                            break
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ)
                        self.open += 1
                    continue
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    self.resets += 1
                    data = b""
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(sock)
                    sock.close()
                    self.open -= 1
                    continue
                for _ in range(data.count(b"\n")):
                    sock.send(f"{self.open}\n".encode())

    def wait_for_open(self, count: int, timeout: float = 5.0) -> str | None:
        """A settle check for connect_many: until `count` connections are open."""
        deadline = time.monotonic() + timeout
        while self.open != count:
            if time.monotonic() > deadline:
                return f"{self.open} connections open, not {count}"
            time.sleep(0.001)
        return None



@pytest.fixture
def server():
    with CountingServer() as running:
        yield running


def test_connect_many_opens_them_all_and_settles_after_each_batch(server):
    crowd = Crowd(server.port, Transcript())
    seen = []

    def settle(so_far):
        seen.append(len(so_far))
        return server.wait_for_open(len(so_far))

    try:
        members, shortfall = connect_many(crowd, 150, batch=40, settle=settle)
        assert shortfall is None
        assert len(members) == 150 and crowd.members == members
        assert seen == [4, 12, 28, 60, 100, 140, 150]  # 4, 8, 16, 32, then at most 40
        asker = members[-1]
        asker.send_line("how many?")
        wait_among(crowd, [asker], lambda: asker.line_count() == 1, 5, did="asked",
                   expected="an answer")
        assert asker.lines() == ["150"]
        assert all(m.line_count() == 0 for m in members[:-1])  # the others heard nothing
    finally:
        reset_all(crowd)


def test_connect_many_resets_a_stalled_batch_and_retries_smaller(server):
    crowd = Crowd(server.port, Transcript())
    calls = []

    def settle(so_far):
        calls.append(len(so_far))
        if len(calls) == 2:
            return "pretend the server stalled"
        return server.wait_for_open(len(so_far))

    try:
        members, shortfall = connect_many(crowd, 30, batch=16, settle=settle)
        assert shortfall is None and len(members) == 30
        assert calls[:4] == [4, 12, 4, 6]  # 4 ok; 8 stall; reset, settled at 4; then 2 at a time
        assert not any(m.closed for m in members)
        assert [m for m in crowd.members if not m.closed] == members
    finally:
        reset_all(crowd)


def test_connect_many_fails_when_single_connections_stall(server):
    crowd = Crowd(server.port, Transcript())
    try:
        with pytest.raises(GradingFailure, match="stuck at 0"):
            connect_many(crowd, 10, settle=lambda so_far: "stuck at 0", did="connected")
    finally:
        reset_all(crowd)


def test_connect_many_stops_without_failing_when_descriptors_run_out(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    crowd = Crowd(server.port, Transcript())
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 60, hard))
    try:
        members, shortfall = connect_many(crowd, 200, batch=16)
    finally:
        reset_all(crowd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert 0 < len(members) < 200
    assert shortfall and "no more sockets" in shortfall


def test_connect_many_fails_in_words_when_refused():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]   # bound, not listening: connections are refused
    try:
        crowd = Crowd(port, Transcript())
        with pytest.raises(GradingFailure, match="refused"):
            connect_many(crowd, 5, did="connected")
    finally:
        probe.close()


def test_wait_among_fails_after_its_timeout(server):
    crowd = Crowd(server.port, Transcript())
    try:
        members, _ = connect_many(crowd, 3)
        with pytest.raises(GradingFailure, match="nothing came"):
            wait_among(crowd, members[:1], lambda: members[0].line_count() > 0, 0.2,
                       did="waited", expected="a line", got=lambda: "nothing came")
    finally:
        reset_all(crowd)


def test_reset_all_resets_every_connection(server):
    crowd = Crowd(server.port, Transcript())
    members, _ = connect_many(crowd, 20, batch=5)
    asker = members[0]
    asker.send_line("?")
    wait_among(crowd, [asker], lambda: asker.line_count() == 1, 5, did="asked", expected="20")
    reset_all(crowd)
    assert all(m.closed for m in members)
    reset_all(crowd)  # twice is fine


def test_latency_percentile_is_the_nearest_rank():
    samples = [i / 1000 for i in range(1, 101)]    # 1 ms .. 100 ms
    assert latency_percentile(samples, 0.99) == 0.099
    assert latency_percentile(samples, 0.50) == 0.050
    assert latency_percentile([0.3], 0.99) == 0.3
    with pytest.raises(ValueError):
        latency_percentile([], 0.5)
