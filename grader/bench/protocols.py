"""What the bench's clients say to each kind of server, and what they hear.

Two protocols from CONTRACTS.md are driven:

- chat (03_poll, 04_epoll, 08_threads and the C baseline): a client joins
  by connecting and is welcomed; a line from one user reaches every other
  user. The bench's active client speaks; the user who joined last hears
  (it is the last one a broadcast reaches, so its line arrives when the
  whole broadcast is done). Every idle user hears every line too.
- c10k (09_c10k): `ping TOKEN` is answered `pong TOKEN` to the sender only;
  `count` says how many clients the server holds. Idle clients hear nothing.
"""

from __future__ import annotations

import re
import time

from grader.harness.failure import GradingFailure
from grader.testkit.chat_room import WELCOME, said
from grader.testkit.crowd import Crowd, Member, connect_many, wait_among

COUNT = re.compile(r"clients (\d+)")
ANSWER_TIMEOUT = 30.0       # seconds for one answer (a broadcast to 10,000 takes ~0.1 s)
CENSUS_PATIENCE = 5.0       # seconds without progress before a census gives up


def join_timeout(count: int, already: int) -> float:
    """Seconds allowed for `count` chat users to join a room of `already`:
    every join is announced to everyone, so the work grows with the square
    of the room (about 5 s for 2,000 users here), with a wide margin."""
    total = count + already
    return 60.0 + 2e-5 * (total * total - already * already)


def next_line(crowd: Crowd, member: Member, before: int, did: str, expected: str) -> str:
    """The first line `member` receives after its line number `before`."""
    wait_among(crowd, [member], lambda: member.line_count() > before, ANSWER_TIMEOUT,
               did=did, expected=expected,
               got=lambda: "no answer" + (" (its connection was closed)" if member.eof else ""))
    return member.lines(before)[0]


class Chat:
    name = "chat"
    drains = True               # idle users hear every message: read them

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self.active = crowd.connect("active")
        self.number = self._welcome(self.active, "the bench's active client connected")

    def _welcome(self, member: Member, did: str) -> int:
        line = next_line(self.crowd, member, 0, did, "a line 'welcome, you are user N'")
        match = WELCOME.fullmatch(line)
        if not match:
            raise GradingFailure(did=did, expected="a line 'welcome, you are user N'",
                                 got=f"its first line was {line!r}")
        return int(match.group(1))

    def join_idle(self, count: int, already: int) -> list[Member]:
        did = f"{count} more users joined a room of {already + 1}, a few at a time"
        members = self.crowd.join(count, ready=lambda m: m.line_count() >= 1, window=8,
                                  timeout=join_timeout(count, already), did=did)
        self._welcome(members[-1], did)
        return members

    def hearer(self) -> Member:
        return self.crowd.members[-1]

    def request(self, token: str) -> str:
        return token

    def answer(self, token: str) -> str:
        return said(self.number, token)


class C10k:
    name = "c10k"
    drains = False              # only the sender is answered

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self.active = crowd.connect("active")

    def count(self) -> int:
        """Ask the server how many clients it holds."""
        before = self.active.line_count()
        self.crowd.send(self.active, b"count\n")
        line = next_line(self.crowd, self.active, before, "the active client sent 'count'",
                         "an answer 'clients N'")
        match = COUNT.fullmatch(line)
        if not match:
            raise GradingFailure(did="the active client sent 'count'",
                                 expected="an answer 'clients N'", got=repr(line))
        return int(match.group(1))

    def _settle(self, members: list[Member]) -> str | None:
        """For connect_many: until the server counts every idle client (and
        the active one), or stops making progress."""
        want, best, since = len(self.crowd.members), -1, time.monotonic()
        while (got := self.count()) != want:
            if got > best:
                best, since = got, time.monotonic()
            elif time.monotonic() - since > CENSUS_PATIENCE:
                return f"the server counted {got} clients for {CENSUS_PATIENCE:g} s, not {want}"
            time.sleep(0.002)  # pacing the questions, not waiting for something
        return None

    def join_idle(self, count: int, already: int) -> list[Member]:
        did = f"opened {count} more idle connections next to {already + 1}"
        members, shortfall = connect_many(self.crowd, count, settle=self._settle, did=did)
        if shortfall:
            raise GradingFailure(did=did, expected="the machine allows them all",
                                 got=f"only {len(members)} could be opened: {shortfall}")
        return members

    def hearer(self) -> Member:
        return self.active

    def request(self, token: str) -> str:
        return "ping " + token

    def answer(self, token: str) -> str:
        return "pong " + token


PROTOCOLS = {"chat": Chat, "c10k": C10k}
