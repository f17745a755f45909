"""grader.testkit.crowd: many line clients driven from one poll() loop."""

from __future__ import annotations

import select
import socket

import pytest

from grader.harness.failure import GradingFailure
from grader.harness.transcript import Transcript
from grader.testkit.crowd import Crowd
from support import BackgroundServer


class LineServer(BackgroundServer):
    """A small server in a thread: greets every client with a line and an
    unfinished line, echoes each line back as 'echo LINE', and closes a
    client that sends 'bye'."""

    def __init__(self) -> None:
        self.accepted = 0
        super().__init__()

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.stop_r, select.POLLIN)
        conns: dict[int, tuple[socket.socket, bytearray]] = {}
        while True:
            for fd, _ in poller.poll():
                if fd == self.stop_r.fileno():
                    for conn, _ in conns.values():
                        conn.close()
                    return
                if fd == self.listener.fileno():
                    conn, _ = self.listener.accept()
                    self.accepted += 1
                    try:
                        conn.sendall(f"welcome {self.accepted}\r\npart".encode())
                    except OSError:  # a client that reset before its welcome
                        conn.close()
                        continue
                    conns[conn.fileno()] = (conn, bytearray())
                    poller.register(conn, select.POLLIN)
                    continue
                conn, buffer = conns[fd]
                try:
                    chunk = conn.recv(4096)
                except ConnectionResetError:  # the reset test
                    chunk = b""
                buffer += chunk
                while b"\n" in buffer:
                    line, _, rest = bytes(buffer).partition(b"\n")
                    buffer[:] = rest
                    if line == b"bye" or not chunk:
                        break
                    conn.sendall(b"echo " + line + b"\n")
                if not chunk or b"bye" in chunk:
                    poller.unregister(fd)
                    del conns[fd]
                    conn.close()


@pytest.fixture
def server():
    with LineServer() as running:
        yield running


def test_join_connects_everyone_and_keeps_their_lines(server):
    crowd = Crowd(server.port, Transcript())
    try:
        members = crowd.join(60, ready=lambda m: m.line_count() >= 1, window=4)
        assert len(members) == 60 and server.accepted == 60
        assert sorted(int(m.lines()[0].split()[1]) for m in members) == list(range(1, 61))
        assert all(m.pending() == b"part" for m in members)
        members[7].send_line("hi there")
        crowd.wait_until(lambda: members[7].line_count() == 2, 5, did="sent a line",
                         expected="the echo")
        # the unfinished "part" and the echo make up the second line
        assert members[7].lines(1) == ["partecho hi there"]
    finally:
        crowd.close()


def test_eof_is_seen_and_wait_until_fails_in_words(server):
    crowd = Crowd(server.port, Transcript())
    try:
        member = crowd.connect("alone")
        crowd.wait_until(lambda: member.line_count() == 1, 5, did="connected", expected="a welcome")
        member.send_line("bye")
        crowd.wait_until(lambda: member.eof, 5, did="said bye", expected="the server closes")
        with pytest.raises(GradingFailure) as raised:
            crowd.wait_until(lambda: member.line_count() > 5, 0.2, did="waited for more",
                             expected="six lines", got=lambda: f"{member.line_count()} line(s)")
        assert "1 line(s)" in str(raised.value)
        other = crowd.connect()
        crowd.drop(other, reset=True)
        crowd.drop(other)  # twice is fine
        assert other.closed
    finally:
        crowd.close()
