"""Hidden suite for 04_epoll: the server rules, the shared chat protocol, and
the guide's bookkeeping, checked from inside by an instrumented uepoll.

Every test runs the student's server with `uepoll_instrumented.py` in place
of the course's `uepoll.py` (see that file): at every wait() it checks
that the registered descriptors carry the data values 0..n-1, each its
index in fds, and on the first violation it writes a report in plain words
and stops the server. Tests of the bookkeeping read that report and make it
their verdict; for the others it shows in the server's stderr."""

from __future__ import annotations

import collections
import json
import os
import resource
import shutil
import signal
import struct
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from grader.harness import waits
from grader.harness.failure import GradingFailure, check, fail
from grader.harness.program import Program
from grader.testkit import source_check, textgen
from grader.testkit.chat_room import WELCOME, ChatRoom, joined, left, said
from grader.testkit.crowd import Crowd
from grader.testkit.suites.chat_protocol import ChatProtocolTests, chat_conversation, room  # noqa: F401 (fixture)
from grader.testkit.suites.server_rules import (PlainImportTests, ServerRulesTests, ServerSpec,
                                                check_alone, check_forbidden, read_submitted, watch)

# README task numbers for the topics of the shared test classes.
TASKS = {"listen": 1, "join": 1, "loop": 2, "shutdown": 2, "message": 2, "lines": 2, "leave": 3,
         "rules": 2}

SCRIPT = "chat_server_epoll.py"
READY = lambda port: r"started the main epoll loop\s*$"
SPEC = ServerSpec(
    script=SCRIPT,
    args=lambda port: [port],
    ready=READY,
    bad_args=[[], ["{port}", "extra"], ["chat"], ["70000"], ["0"], ["-3"]],
    converse=chat_conversation,
)

SHIM = Path(__file__).parent / "support" / "uepoll_instrumented.py"   # a support module, not a suite
REPORT = "uepoll-check.txt"
STATE = "uepoll-state.json"
TRACE_FLAG = "uepoll-trace"
WAITING = "uepoll-waiting"           # pid, wait() calls, inside epoll_wait() (see the shim)
WAITING_FORMAT = "<qqq"
SETTLE_SECONDS = waits.REPLY   # the server gets back to epoll_wait() after the test's last exchange
RULE = ("at every wait(), the descriptors registered with epoll carry the data values "
        "0..n-1, each its own index in fds (the listening socket 0), and on removal the "
        "last entry moves into the freed slot with EPOLL_CTL_MOD")

# What the lesson forbids: waiting with anything but the uepoll shim.
NOT_UEPOLL = {
    **source_check.THREADS_AND_PROCESSES,
    "asyncio": "asyncio", "selectors": "selectors",
    "select.select": "select()", "select.poll": "poll()", "select.epoll": "select.epoll",
    "select.kqueue": "kqueue", "select.devpoll": "devpoll",
}


# -- the instrumented shim ----------------------------------------------------

class Shim:
    """The instrumented uepoll installed in one test's working folder."""

    def __init__(self, workdir: Path, transcript) -> None:
        self.workdir = workdir
        self.transcript = transcript    # its programs: the server whose wait() we watch
        self.reported = False
        self.judged = False     # a verdict() block has given the verdict
        self.doing = ""         # the step under way, for the verdict
        self.last_wait = 0      # the wait() count of the last state read
        course = workdir / "uepoll.py"
        os.replace(course, workdir / "_uepoll_course.py")
        shutil.copyfile(SHIM, course)

    def trace(self) -> None:
        """Have every wait() write the registered descriptors to a file
        (before the server starts: the shim looks when an Epoll is made)."""
        (self.workdir / TRACE_FLAG).touch()

    def report(self) -> str:
        try:
            return (self.workdir / REPORT).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def step(self, words: str) -> None:
        self.doing = words

    def _waiting(self) -> tuple[int, int, int] | None:
        try:
            data = (self.workdir / WAITING).read_bytes()
            return struct.unpack(WAITING_FORMAT, data[:struct.calcsize(WAITING_FORMAT)])
        except (OSError, struct.error):
            return None

    def settle(self) -> None:
        """Wait until the server is back asleep in epoll_wait(), so the
        check of its last wait() has run: whatever the test's own actions
        broke is in the report now, whether the server reached its next
        wait() a microsecond or a second after the test's last exchange.
        A server that has exited, never used the shim, or never gets back
        to waiting (busy, blocked elsewhere) is left as it is."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline and not self.report():
            marker = self._waiting()
            if marker is None:
                return
            pid, calls, inside = marker
            outer = self._outer(pid)
            try:
                if outer is None:
                    raise psutil.NoSuchProcess(pid)
                asleep = psutil.Process(outer).status() == psutil.STATUS_SLEEPING
            except psutil.Error:
                return      # exited: whatever it found is in the report
            if inside and asleep and self._waiting() == marker:
                return
            time.sleep(0.002)  # polling the server's state

    def _outer(self, pid: int) -> int | None:
        """The grader's pid of the server that calls itself `pid` (the shim
        writes os.getpid(), which is the pid inside the grading sandbox)."""
        for program in self.transcript.programs:
            if isinstance(program, Program) and program.poll_exit() is None \
                    and program.inner_pid() == pid:
                return program.pid
        return None

    def failure(self, did: str) -> GradingFailure:
        self.reported = True
        if self.doing and self.doing not in did:
            did += f"; the step under way: {self.doing}"
        return fail(did=did, expected="the bookkeeping rule holds: " + RULE,
                    got="the instrumented uepoll found it broken and stopped the server:\n"
                        + self.report())

    def slots(self, program, users, did: str, timeout: float = waits.REPLY) -> list[int]:
        """The server's fds list as descriptor numbers (index = epoll data),
        read from the shim's last wait() once it lists exactly the listening
        socket and `users` (the server's answer to the test's last action:
        a reply)."""
        wanted = sorted(u.number for u in users)
        did += "; then looked at what the server registered with epoll"
        expected = (f"the server is back in wait() with the listening socket and the "
                    f"{len(wanted)} users in the room (descriptors {wanted}) registered")
        deadline = time.monotonic() + timeout
        state, waits = None, 0
        while True:
            status = program.poll_exit()
            state, waits = self._state(program.inner_pid())
            if state is not None:
                order = [fd for fd, _ in sorted(state.items(), key=lambda item: item[1])]
                if sorted(order[1:]) == wanted:
                    self.last_wait = waits
                    return order
            if self.report():
                raise self.failure(did)
            if status is not None:
                raise fail(did=did, expected=expected,
                           got=f"the server {status.describe()} (its stderr is below)")
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)  # polling a file the server rewrites at each wait()
        if state is None:
            got = "it never called uepoll's wait() (does it wait with uepoll.Epoll?)"
        elif waits == self.last_wait:
            got = ("it has not come back to wait() since: it seems stuck in the middle of "
                   "that wake-up (blocked in recv() on a socket with nothing to read, because "
                   "an event's index pointed at the wrong socket?)")
        else:
            got = "at its last wait(), registered (fd: data): " + \
                ", ".join(f"{fd}: {d}" for fd, d in sorted(state.items(), key=lambda i: i[1]))
        raise fail(did=did, expected=expected, got=f"after {timeout:g} s, {got}")

    def _state(self, pid: int) -> tuple[dict[int, int] | None, int]:
        try:
            data = json.loads((self.workdir / STATE).read_text())
        except (OSError, ValueError):
            return None, 0
        if data.get("pid") != pid:
            return None, 0
        return {int(fd): d for fd, d in data["registered"].items()}, data["wait"]

    @contextmanager
    def verdict(self, did: str):
        """If anything fails inside, and the shim found the bookkeeping
        broken, the shim's report is the verdict (it says why). The verdict
        is final: what the test does after the block (closing its crowd of
        clients) is not judged again when the test ends."""
        try:
            yield
        except Exception as exc:
            self.judged = True
            if self.report():
                raise self.failure(did) from exc
            raise
        self.settle()
        self.judged = True
        if self.report():
            raise self.failure(did)


@pytest.fixture(autouse=True)
def shim(workdir, request, connect, spawn, transcript):
    """Every test runs the server on the instrumented uepoll.

    It asks for `connect` and `spawn` so that its teardown comes before
    theirs: the verdict is read while the test's clients are still
    connected and its server still runs. What the clients' closing after
    the test does to the bookkeeping is no part of the test (whether the
    server got to it before it was stopped was a matter of timing)."""
    installed = Shim(workdir, transcript)
    failed_before = request.session.testsfailed
    yield installed
    # A violation that the test's own actions caused, found at a wait()
    # after its last exchange, still costs the test, unless it already
    # failed (its message then shows the shim's report). A test that
    # gave its verdict in a verdict() block has been judged already.
    if installed.judged or request.session.testsfailed != failed_before:
        return      # judged already, or failed: its message is written, nothing to add
    installed.settle()
    report = installed.report()
    if report and not installed.reported and request.session.testsfailed == failed_before:
        raise installed.failure("ran the test; afterwards read the instrumented uepoll's report")




class TestServerRules(ServerRulesTests):
    pass


class TestChatProtocol(ChatProtocolTests):
    pass


class TestPlainImports(PlainImportTests):
    pass


# -- helpers --------------------------------------------------------------------

def traced_server(shim, start_server):
    shim.trace()
    return start_server(SCRIPT, SPEC.args, READY)


def by_number(users):
    return {u.number: u for u in users}


def pick_slot(pattern: str, slots: list[int], rng) -> int:
    """An index of fds (never 0, the listener) chosen by pattern."""
    last = len(slots) - 1
    if pattern == "front":
        return 1
    if pattern == "end":
        return last
    if pattern == "next-to-last":
        return max(1, last - 1)
    if pattern == "middle":
        return max(1, min(last - 1, (last + 1) // 2))
    return rng.randint(1, last)


def leave_one(room, shim, program, pattern, rng, step: str):
    """One user leaves from the slot `pattern` names; checks the others are
    told and the last entry moved into the hole. Returns the moved user."""
    users = room.users
    slots = shim.slots(program, users, did=step)
    index = pick_slot(pattern, slots, rng)
    victim = by_number(users)[slots[index]]
    how = rng.choice(("close", "close", "reset", "shutdown"))
    did = (f"{step}: {victim.name} (user {victim.number}), at fds[{index}] of {len(slots)} "
           f"(the {pattern}), left with a {how}")
    shim.step(did)
    room.leave(victim, how=how)
    expected = slots[:index] + ([slots[-1]] + slots[index + 1:-1] if index < len(slots) - 1 else [])
    now = shim.slots(program, room.users, did=did)
    check(now == expected, did + "; then looked at the server's registrations",
          "the last entry of fds moved into the freed slot and nothing else moved: "
          f"fds = {expected} (as descriptors)",
          f"fds = {now}")
    moved = by_number(room.users).get(slots[-1]) if index < len(slots) - 1 else None
    return moved, did


def wait_until(condition, timeout: float, did: str, expected: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise fail(did=did, expected=expected, got=f"not after {timeout:g} s")
        time.sleep(0.005)  # polling the kernel's view of sockets


def server_side_closed(program, addresses) -> bool:
    """True once the server's end of the connections from `addresses` (the
    clients' (ip, port)) has seen the client leave (no longer ESTABLISHED)."""
    ours = set(addresses)
    for conn in psutil.Process(program.pid).net_connections(kind="tcp"):
        if conn.raddr and (conn.raddr.ip, conn.raddr.port) in ours \
                and conn.status == psutil.CONN_ESTABLISHED:
            return False
    return True


def leave_together(room, shim, program, victims, speaker, text, rng, step: str) -> None:
    """`victims` leave (in the order given) and `speaker` sends `text`, all
    while the server is stopped, so one wake-up brings every event. Every
    remaining user must hear each departure and the line, in any order."""
    hows = {v.number: rng.choice(("close", "close", "reset")) for v in victims}
    departures = ", ".join(f"{v.name} (user {v.number}, {hows[v.number]})" for v in victims)
    did = (f"{step}: stopped the server (SIGSTOP); {speaker.name} (user {speaker.number}) sent "
           f"{text!r}; then {departures} left; then continued the server (SIGCONT), so that "
           "one wake-up held all of it")
    shim.step(did)
    process = psutil.Process(program.pid)
    addresses = [v.client.sock.getsockname()[:2] for v in victims]
    program.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: process.status() == psutil.STATUS_STOPPED, waits.OWN,
                   "stopped the server with SIGSTOP", "the server stops")
        speaker.client.send_line(text)
        for victim in victims:
            room.users.remove(victim)
            if hows[victim.number] == "reset":
                victim.client.reset()
            else:
                victim.client.close()
        wait_until(lambda: server_side_closed(program, addresses), waits.OWN,
                   did, "the server's kernel sees every departure")
    finally:
        program.send_signal(signal.SIGCONT)
    for user in room.users:
        wanted = collections.Counter(left(v.number) for v in victims)
        if user is not speaker:
            wanted[said(speaker.number, text)] += 1
        got = collections.Counter()
        for _ in range(sum(wanted.values())):
            line = user.client.read_line()
            if line is None:
                break
            got[line] += 1
        missing, extra = wanted - got, got - wanted
        check(not missing and not extra, did,
              f"{user.name} receives each of {sorted(wanted)} once, in any order",
              f"missing {sorted(missing)}; unexpected {sorted(extra)}"
              + ("; then the connection closed" if user.client.eof else ""))


def everyone_speaks(room, rng, users=None) -> None:
    """Each user says a line; every other user must get it with the
    speaker's own number."""
    for user in users or list(room.users):
        room.say(user, textgen.message(rng))


# -- the bookkeeping ------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.task(2)
def test_waits_with_uepoll_and_nothing_else(submitted, start_server, connect, rng):
    source = read_submitted(submitted, SCRIPT)  # as submitted, before anything runs
    # Points for the source only once the server works; while its clients
    # talk, the running server is the authority on threads and processes.
    program, port = start_server(SCRIPT, SPEC.args, READY)
    talk, activity = watch(program, lambda: chat_conversation(connect, port, rng, users=6))
    check_alone(activity, f"started the server; {talk}")
    did = f"read {SCRIPT} as you submitted it (this exercise is about epoll through the uepoll shim)"
    check_forbidden(source, NOT_UEPOLL, did,
                    "no threads, processes, select(), poll(), select.epoll, selectors or asyncio")
    check(source_check.uses_any(source, {"uepoll"}), did,
          "the server imports uepoll and waits with uepoll.Epoll().wait()",
          "no import of uepoll was found")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_swap_delete_from_the_middle_end_and_front(shim, start_server, connect, rng):
    program, port = traced_server(shim, start_server)
    room = ChatRoom(connect, port)
    patterns = ["middle", "end", "front", "next-to-last"]
    rng.shuffle(patterns)
    with shim.verdict("users joined and left from chosen slots of fds, the moved user spoke"):
        for i in range(rng.randint(9, 11)):
            room.join(f"user{i}")
        for step, pattern in enumerate(patterns + ["middle"], start=1):
            moved, did = leave_one(room, shim, program, pattern, rng, step=f"step {step}")
            if moved is not None:
                # The moved user now lives at another index: its next event
                # must still lead the server to it.
                room.say(moved, textgen.message(rng))
            room.say(rng.choice(room.users), textgen.message(rng))
        everyone_speaks(room, rng)


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_several_users_leave_in_one_wake_up(shim, start_server, connect, rng):
    program, port = traced_server(shim, start_server)
    room = ChatRoom(connect, port)
    with shim.verdict("several users left while the server was stopped, then it went on"):
        for i in range(rng.randint(8, 10)):
            room.join(f"user{i}")
        for step in (1, 2):
            slots = shim.slots(program, room.users, did=f"round {step}")
            users = by_number(room.users)
            # A user in the middle leaves first, then the last entry: a server
            # that swaps during the round finds the second event's index
            # pointing past the end of its list (or at the wrong socket).
            middle, end = len(slots) // 2, len(slots) - 1
            victims = [users[slots[middle]], users[slots[end]]]
            if step == 2:
                victims.append(users[slots[1]])
            speaker = users[slots[rng.choice([i for i in range(1, end) if i != middle
                                              and (step == 1 or i != 1)])]]
            leave_together(room, shim, program, victims, speaker, textgen.message(rng), rng,
                           step=f"round {step}")
            shim.slots(program, room.users, did=shim.doing)
            everyone_speaks(room, rng)
            room.join(f"newcomer{step}")


@pytest.mark.points(3)
@pytest.mark.task(3)
@pytest.mark.timeout(120)
def test_churn_of_joins_and_leaves_keeps_users_apart(shim, start_server, connect, rng):
    program, port = traced_server(shim, start_server)
    room = ChatRoom(connect, port)
    target = rng.randint(240, 280)  # joins + leaves in all
    moves = 0
    names = iter(f"u{i}" for i in range(10**6))
    with shim.verdict(f"about {target} joins and leaves in patterns that move the last entry"):
        for _ in range(rng.randint(10, 14)):
            room.join(next(names))
            moves += 1
        step = 0
        while moves < target:
            step += 1
            pattern = rng.choice(("front", "middle", "end", "next-to-last", "random", "together"))
            if pattern == "together" and len(room.users) >= 6:
                slots = shim.slots(program, room.users, did=f"churn step {step}")
                users = by_number(room.users)
                picked = rng.sample(range(1, len(slots)), rng.randint(2, 4))
                if len(slots) - 1 not in picked:
                    picked[-1] = len(slots) - 1  # the last entry always among them
                # The last entry leaves last, so a server that swaps mid-round
                # meets a stale index.
                picked.sort(key=lambda i: i == len(slots) - 1)
                victims = [users[slots[i]] for i in picked]
                speaker = rng.choice([u for u in room.users if u not in victims])
                leave_together(room, shim, program, victims, speaker, textgen.message(rng), rng,
                               step=f"churn step {step}")
                moves += len(victims)
            elif len(room.users) >= 3:
                moved, _ = leave_one(room, shim, program, pattern if pattern != "together"
                                     else "random", rng, step=f"churn step {step}")
                moves += 1
                if moved is not None and rng.random() < 0.3:
                    room.say(moved, textgen.message(rng))
            for _ in range(rng.randint(1, 3) if len(room.users) < 24 else 0):
                room.join(next(names))
                moves += 1
        numbers = [u.number for u in room.users]
        check(len(set(numbers)) == len(numbers), "churned the room",
              "every user in the room has its own number", f"numbers: {sorted(numbers)}")
        shim.slots(program, room.users, did=f"after {moves} joins and leaves")
        everyone_speaks(room, rng)


@pytest.mark.alone("a thousand clients load the machine")
@pytest.mark.points(2)
@pytest.mark.task(2)
@pytest.mark.timeout(180)
def test_a_thousand_users_join_and_hear_a_broadcast(shim, start_server, transcript, rng):
    wanted = rng.randint(1000, 1024)
    # Both this process and the server (which inherits the limit) hold one
    # descriptor per user: raise the soft limit if it is too low.
    infinite = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + 200
    if soft != infinite and soft < need:
        raised = need if hard == infinite else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    count = wanted if soft == infinite else min(wanted, soft - 100)
    if count < wanted:
        transcript.note("test", f"this machine allows {soft} open files per process: "
                                f"{count} users instead of {wanted}")
    program, port = start_server(SCRIPT, SPEC.args, READY)
    crowd = Crowd(port, transcript, name="crowd")
    did = f"{count} users joined, a few at a time"
    try:
        with shim.verdict(did):
            first = crowd.connect("first")
            crowd.wait_until(lambda: first.line_count() >= 1, waits.REPLY,
                             did="the first user connected", expected="it is welcomed")
            others = crowd.join(count - 1, ready=lambda m: m.line_count() >= 1, window=8,
                                timeout=waits.CROWD, did=did)
            members = [first] + others
            numbers = {}
            for member in members:
                match = WELCOME.fullmatch(member.lines()[0])
                if not match:
                    raise fail(did=did, expected=f"{member.name} is welcomed first",
                               got=f"its first line was {member.lines()[0]!r}")
                numbers[member.name] = int(match.group(1))
            check(len(set(numbers.values())) == count, did, "every user has its own number",
                  f"{count - len(set(numbers.values()))} number(s) given twice")
            # The first user hears every later join, in the order the server
            # accepted them; every other user hears the joins after its own.
            crowd.wait_until(lambda: first.line_count() >= count, waits.CROWD, did=did,
                             expected=f"the first user hears all {count - 1} later joins",
                             got=lambda: f"it heard {first.line_count() - 1}")
            order = first.lines(1)
            position = {line: i for i, line in enumerate(order)}
            after = {}
            for member in others:
                mine = joined(numbers[member.name])
                if mine not in position:
                    raise fail(did=did, expected=f"the first user hears {mine!r}",
                               got="it never did")
                after[member.name] = position[mine] + 1
            crowd.wait_until(
                lambda: all(m.line_count() >= 1 + len(order) - after[m.name] for m in others),
                waits.CROWD, did=did, expected="every user hears the joins that came after its own")
            speaker = rng.choice(members)
            text = textgen.message(rng)
            counts = {m.name: m.line_count() for m in members}
            speaker.send_line(text)
            listeners = [m for m in members if m is not speaker]
            said_did = f"{did}; then {speaker.name} (user {numbers[speaker.name]}) sent {text!r}"
            crowd.wait_until(lambda: all(m.line_count() > counts[m.name] for m in listeners),
                             waits.CROWD, did=said_did, expected=f"all {count - 1} other users receive it",
                             got=lambda: f"{sum(m.line_count() == counts[m.name] for m in listeners)}"
                                         " users did not")
            line = said(numbers[speaker.name], text)
            for member in listeners:
                got = member.lines(1)
                expected = order[after.get(member.name, 0):] + [line]
                if got != expected:
                    wrong = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                                 min(len(got), len(expected)))
                    raise fail(did=said_did,
                               expected=f"{member.name} (user {numbers[member.name]}) receives "
                                        f"the {len(expected) - 1} later joins in order, then {line!r}",
                               got=f"its line {wrong + 2} was "
                                   f"{got[wrong] if wrong < len(got) else 'missing'!r}, expected "
                                   f"{expected[wrong] if wrong < len(expected) else 'nothing'!r}")
    finally:
        crowd.close()
