"""The bench's load generator: N idle clients and one active client.

The same generator drives every server. The idle clients are a
grader.testkit.crowd.Crowd (one poll loop in this process, reading whatever the
server sends them, so the server never blocks on a full socket). The
active client measures two things, in windows of a fixed number of
messages:

- wake-up: it sends a line one byte at a time, each byte only once the
  server has taken the previous one out of its socket (the kernel says so,
  see sockdiag) and gone back to sleep. Every byte costs the server
  exactly one turn of its event loop that finds one ready socket, and no
  reply: the cost of waking up among N idle connections, which is what
  poll (O(N) per call) and epoll (O(ready)) differ in. The latency is from
  the send until the server has read the byte.
- message: it sends a whole line and waits for the answer (chat: the
  broadcast reaching the user who joined last; c10k: its pong). A chat
  broadcast to N users is O(N) work on any server, so this shows the cost
  of the application's own work, which no poller can remove.

Server CPU time for a window is read while the server sleeps, before and
after, and divided by the number of messages."""

from __future__ import annotations

import gc
import random
import string
import time
from dataclasses import dataclass

from grader.bench import procstat
from grader.bench.protocols import PROTOCOLS, next_line
from grader.bench.sockdiag import ConnectionProbe
from grader.harness.failure import GradingFailure
from grader.harness.program import Program
from grader.testkit.crowd import Crowd, Member

BYTE_TIMEOUT = 30.0     # seconds for the server to read one byte
# Idle chat users are read every DRAIN_EVERY messages: a few lines wait in
# each socket meanwhile (far from filling it), and reading ten thousand
# sockets after every message would make the bench slower than the server.
DRAIN_EVERY = 10
WORKLOADS = ("wake-up", "message")


@dataclass
class Window:
    """One measured window: every latency (seconds) and CPU per message."""

    latencies: list[float]
    cpu_per_message: float      # seconds of server CPU
    rss_per_connection: float   # bytes, or nan with no idle client


class Session:
    """One running server, its idle crowd and the active client."""

    def __init__(self, program: Program, crowd: Crowd, protocol: str,
                 rng: random.Random) -> None:
        self.program = program
        self.pid = program.pid
        self.crowd = crowd
        self.rng = rng
        self.protocol = PROTOCOLS[protocol](self.crowd)
        self.active: Member = self.protocol.active
        self.probe = ConnectionProbe(self.active.sock)
        self.idle = 0
        self._token = ""
        procstat.wait_asleep(self.pid, what="connected the active client and waited "
                                            "for the server to be idle")
        self.rss_alone = procstat.rss_bytes(self.pid)

    # -- the idle crowd ---------------------------------------------------

    def grow_to(self, count: int) -> None:
        """Connect idle clients until there are `count`."""
        if count > self.idle:
            self.protocol.join_idle(count - self.idle, self.idle)
            self.idle = count
        self.crowd.pump(0)

    def drain(self) -> None:
        """Read what the idle clients were sent (a chat broadcast reaches
        them all); otherwise their sockets fill up and the server blocks."""
        if self.protocol.drains:
            self.crowd.pump(0)

    def _rss_per_connection(self) -> float:
        if not self.idle:
            return float("nan")
        return (procstat.rss_bytes(self.pid) - self.rss_alone) / self.idle

    # -- the two workloads ------------------------------------------------

    def window(self, workload: str, count: int) -> Window:
        procstat.wait_asleep(self.pid, what=f"before a {workload} window, waited for the "
                                            "server to be idle")
        rss = self._rss_per_connection()
        # A garbage collection of this process (thousands of clients' objects)
        # would add milliseconds to whichever latency it fell in.
        gc.collect()
        gc.disable()
        try:
            before = procstat.cpu_ns(self.pid)
            latencies = (self._wake_ups if workload == "wake-up" else self._messages)(count)
        finally:
            gc.enable()
        procstat.wait_asleep(self.pid, what=f"after {count} {workload}s, waited for the "
                                            "server to be idle")
        cpu = (procstat.cpu_ns(self.pid) - before) / 1e9 / count
        if workload == "wake-up":
            self._finish_line(count)
        return Window(latencies, cpu, rss)

    def _wake_ups(self, count: int) -> list[float]:
        """`count` one-byte sends of a line, each once the server has read
        the previous byte and is back asleep."""
        self._token = self._line(count)
        data = self.protocol.request(self._token).encode("ascii")[:count]
        single = procstat.thread_count(self.pid) == 1
        base = self.probe.bytes_read()
        latencies = []
        for i in range(count):
            start = time.perf_counter()
            deadline = start + BYTE_TIMEOUT
            self.crowd.send(self.active, data[i:i + 1])
            while self.probe.bytes_read() <= base + i:
                if time.perf_counter() > deadline:
                    raise self._stuck(f"sent {i + 1} bytes of a line, one at a time")
            latencies.append(time.perf_counter() - start)
            # A one-threaded server goes back to its wait before the next
            # byte, so that each byte is a wake-up from sleep (a thread per
            # client: the reading thread is not known; it sleeps in recv()).
            while single and not procstat.main_thread_asleep(self.pid):
                if time.perf_counter() > deadline:
                    raise self._stuck(f"sent {i + 1} bytes of a line, one at a time")
        return latencies

    def _finish_line(self, count: int) -> None:
        """Send the rest of the line the wake-ups began, and check the answer:
        proof that the server read every byte, in order."""
        request = self.protocol.request(self._token).encode("ascii")
        hearer = self.protocol.hearer()
        before = hearer.line_count()
        self.crowd.send(self.active, request[count:] + b"\n")
        self._check(hearer, before, self._token,
                    f"sent the line {request.decode()!r}, one byte at a time")
        self.drain()

    def _messages(self, count: int) -> list[float]:
        """`count` lines, each once the previous one was answered."""
        hearer = self.protocol.hearer()
        latencies = []
        for i in range(count):
            token = f"{i}-{self._line(8)}"
            request = (self.protocol.request(token) + "\n").encode("ascii")
            before = hearer.line_count()
            start = time.perf_counter()
            self.crowd.send(self.active, request)
            self._check(hearer, before, token, f"sent the line {request.decode().strip()!r}")
            latencies.append(time.perf_counter() - start)
            if (i + 1) % DRAIN_EVERY == 0:
                self.drain()
        self.drain()
        return latencies

    # -- helpers ----------------------------------------------------------

    def _line(self, length: int) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(length))

    def _check(self, hearer: Member, before: int, token: str, did: str) -> None:
        expected = self.protocol.answer(token)
        who = "the active client" if hearer is self.active else "the user who joined last"
        got = next_line(self.crowd, hearer, before,
                        did=f"with {self.idle} idle clients connected, the active client {did}",
                        expected=f"{who} receives {expected!r}")
        if got != expected:
            raise GradingFailure(
                did=f"with {self.idle} idle clients connected, the active client {did}",
                expected=f"{who} receives {expected!r}", got=f"it received {got!r}")

    def _stuck(self, did: str) -> GradingFailure:
        return GradingFailure(
            did=f"with {self.idle} idle clients connected, the active client {did}",
            expected=f"the server reads each byte (and goes back to waiting) within "
                     f"{BYTE_TIMEOUT:g} s", got="it did not")

    def close(self) -> None:
        """Close the active client's kernel probe (the crowd is the caller's)."""
        self.probe.close()
