"""Hidden suite for 08_threads: the server rules, the shared chat protocol,
one thread per client, and a shared table that survives many threads at
once (bursts from fifty users, users vanishing mid-broadcast, joins and
leaves racing with broadcasts); the source as submitted imports plainly."""

import collections
import re
import signal
import socket
import struct
import threading
import time

import psutil
import pytest

from grader.harness import waits
from grader.harness.failure import check, fail
from grader.testkit import source_check, textgen
from grader.testkit.chat_room import WELCOME, ChatRoom, joined, left
from grader.testkit.line_client import LineClient
from grader.testkit.suites.chat_protocol import ChatProtocolTests, chat_conversation, room  # noqa: F401 (fixture)
from grader.testkit.suites.server_rules import (PlainImportTests, ServerRulesTests, ServerSpec,
                                                expect_clean_exit, other_processes, read_submitted)

SCRIPT = "threaded_chat_server.py"
READY = lambda port: r"accepting connections\s*$"


def engage(client) -> None:
    """Make sure the client's own thread is running before a signal test
    goes on: the welcome alone does not prove it (a server typically sends
    it before starting the thread), a line relayed from the client does."""
    did = "connected a client, then a helper, and had the client say hello"
    client.expect_line(WELCOME, did=did)
    helper = LineClient(client.port, client.transcript, name="helper")
    try:
        helper.expect_line(WELCOME, did=did)
        client.expect_line(re.compile(r"user \d+ joined the chat room"), did=did)
        client.send_line("hello")
        helper.expect_line(re.compile(r"user \d+: hello"), did=did)
    finally:
        helper.close()


SPEC = ServerSpec(
    script=SCRIPT,
    args=lambda port: [port],
    ready=READY,
    bad_args=[[], ["{port}", "extra"], ["chat"], ["0"], ["70000"], ["-2"], ["12.5"]],
    engage=engage,
    converse=chat_conversation,
)
# The shared tests' topics -> this README's tasks.
TASKS = {"listen": 1, "shutdown": 1, "loop": 1, "join": 1, "message": 2, "lines": 2, "leave": 3,
         "rules": 1}
CHAT_LINE = re.compile(r"user (\d+)(?:: .*| joined the chat room| disconnected)")




class TestServerRules(ServerRulesTests):
    pass


class TestChatProtocol(ChatProtocolTests):
    pass


class TestPlainImports(PlainImportTests):
    pass


# -- helpers ----------------------------------------------------------------

def thread_count(program) -> int:
    try:
        return psutil.Process(program.pid).num_threads()
    except psutil.Error:
        return 0


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_lines(client, count: int, did: str, quiet: float = waits.REPLY,
               timeout: float = waits.CROWD) -> list[str]:
    """`count` lines from `client`, or a failure saying how many came: each
    line is a reply (at most `quiet` after the one before), and all of
    them come within `timeout`."""
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        line = client.read_line(timeout=max(0.0, min(quiet, deadline - time.monotonic())))
        if line is None:
            raise fail(did=did, expected=f"{client.name} receives {count} lines",
                       got=f"it received {len(lines)}, then " +
                           ("the server closed the connection" if client.eof else "nothing more") +
                           (f"; the last ones: {lines[-3:]!r}" if lines else ""))
        lines.append(line)
    return lines


def check_from_each_sender(listener, lines: list[str], sent: dict[int, list[str]], did: str) -> None:
    """Every sender's lines reached `listener` exactly once, in the order sent."""
    by_sender = collections.defaultdict(list)
    for line in lines:
        match = re.fullmatch(r"user (\d+): (.*)", line)
        if match:
            by_sender[int(match.group(1))].append(match.group(2))
    for number, texts in sent.items():
        got = by_sender.get(number, [])
        if got == texts:
            continue
        missing = [t for t in texts if t not in got]
        extra = [t for t in got if got.count(t) > 1 or t not in texts]
        if missing or extra:
            what = (f"{len(missing)} of user {number}'s {len(texts)} lines missing "
                    f"(first: {missing[:2]!r})" if missing else
                    f"user {number}'s lines received more than once: {sorted(set(extra))[:3]!r}")
        else:
            what = f"user {number}'s lines arrived out of order: {got[:6]!r}..."
        raise fail(did=did, expected=f"{listener.name} receives each line of every other user "
                                     "exactly once, in the order it was sent", got=what)


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- one thread per client ----------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.task(1)
def test_one_thread_per_client(submitted, start_server, connect, rng):
    source = read_submitted(submitted, SCRIPT)  # as submitted, before anything runs
    program, port = start_server(SCRIPT, SPEC.args, READY)
    room = ChatRoom(connect, port)
    try:
        uses_threads = source_check.uses_any(source, {"threading", "threading.Thread", "_thread"})
    except SyntaxError as exc:
        raise fail(did=f"read {SCRIPT}", expected="a Python file", got=f"it does not parse: {exc}")
    check(uses_threads, f"read {SCRIPT} as you submitted it (this exercise is about threads)",
          "the server starts its threads with the threading module", "no use of threading was found")
    alone = thread_count(program)  # nobody connected yet
    observer = room.join("observer")
    guests = [room.join(textgen.name(rng)) for _ in range(rng.randint(4, 8))]
    room.say(guests[-1], textgen.message(rng))
    wanted = alone + 1 + len(guests)
    grew = wait_for(lambda: thread_count(program) >= wanted, waits.REPLY)
    check(grew, f"with nobody connected the server had {alone} thread(s); then "
                f"{1 + len(guests)} users joined",
          f"at least {wanted} threads: one more for each client",
          f"{thread_count(program)} threads",
          hint="thread.start() runs the function in a new thread; thread.run() runs it "
               "in the thread that calls it, so the accept loop stops until that client leaves")
    others = other_processes(program)
    check(not others, f"{1 + len(guests)} users joined", "threads, and no other process",
          f"the server started {len(others)} other process(es)")
    for guest in list(guests):
        room.leave(guest, how=rng.choice(["close", "reset"]))
    shrank = wait_for(lambda: thread_count(program) <= alone + 1, waits.EXIT)  # done: they end
    check(shrank, f"then {len(guests)} of those users left (their departure was announced); "
                  f"{observer.name} stayed",
          f"their threads end: at most {alone + 1} threads again within {waits.EXIT:g} s",
          f"{thread_count(program)} threads are still alive: does each client's thread "
          "return once its user has left?")


@pytest.mark.points(2)
@pytest.mark.task(1)
def test_ctrl_c_stops_the_server_while_users_are_connected(room, server, rng):
    program, _ = server
    users = [room.join(textgen.name(rng)) for _ in range(3)]
    room.say(users[0], textgen.message(rng))  # by now every user's thread is running
    program.send_signal(signal.SIGINT)
    did = (f"{len(users)} users were in the room, each served by its own thread waiting in "
           "recv(); then the server got SIGINT (Ctrl-C)")
    if program.wait_exit(waits.EXIT) is None:
        raise fail(did=did, expected=f"the server exits within {waits.EXIT:g} s",
                   got="it was still running",
                   hint="when the main thread ends, Python still waits for every thread that is "
                        "not a daemon; a client's thread waits in recv() for as long as its "
                        "client stays: start those threads with daemon=True")
    expect_clean_exit(program, waits.FINISHING, did, allowed_signals=(signal.SIGINT,))


# -- many threads sending at once -------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.task(2)
@pytest.mark.timeout(90)
def test_fifty_users_each_sending_several_lines_at_once(room, rng):
    count = rng.randint(50, 60)
    users = [room.join(f"user{i}") for i in range(count)]
    per_user = rng.randint(3, 5)
    sent = {u.number: [f"{k} {textgen.message(rng)}" for k in range(per_user)] for u in users}
    for user in users:  # each user's lines in one segment: all its threads' work at once
        user.client.send_raw("".join(t + "\n" for t in sent[user.number]).encode())
    did = (f"{count} users joined, then each sent {per_user} lines in a single send(), "
           "all at about the same time")
    for user in users:
        lines = read_lines(user.client, (count - 1) * per_user, did)
        others = {n: t for n, t in sent.items() if n != user.number}
        check_from_each_sender(user.client, lines, others, did)


@pytest.mark.points(3)
@pytest.mark.task(3)
@pytest.mark.timeout(90)
def test_user_leaving_mid_broadcast_does_not_kill_the_server(room, server, rng):
    program, _ = server
    listeners = [room.join(f"listener{i}") for i in range(3)]
    leavers = [room.join(f"leaver{i}") for i in range(12)]
    talkers = [room.join(f"talker{i}") for i in range(4)]
    sent = {t.number: [f"{k} {textgen.message(rng)}" for k in range(40)] for t in talkers}
    # Each talker's burst keeps its thread broadcasting to everyone, while
    # the leavers reset their connections in between: some broadcasts meet
    # a socket whose peer has just vanished.
    did = (f"{len(talkers)} users each sent 40 lines at once while {len(leavers)} other users "
           "reset their connections (RST) in the middle of those broadcasts")
    for i, talker in enumerate(talkers):
        try:
            talker.client.send_raw("".join(t + "\n" for t in sent[talker.number]).encode())
        except OSError as exc:
            raise fail(did=did, expected=f"the server keeps {talker.name}'s connection open",
                       got=f"sending failed: {exc}") from None
        for leaver in leavers[3 * i:3 * i + 3]:
            leaver.client.reset()
    expected = 40 * len(talkers) + len(leavers)
    for listener in listeners:
        lines = read_lines(listener.client, expected, did)
        check_from_each_sender(listener.client, lines, sent, did)
        gone = collections.Counter(lines)
        for leaver in leavers:
            check(gone[left(leaver.number)] == 1, did,
                  f"{listener.name} is told once that user {leaver.number} disconnected",
                  f"it was told {gone[left(leaver.number)]} times")
    status = program.poll_exit()
    check(status is None, did, "the server keeps running", status.describe() if status else "")
    room.users = list(listeners)  # the talkers' own unread lines are not checked
    late = room.join("latecomer")
    room.say(late, textgen.message(rng))


class Reader(threading.Thread):
    """Reads one client's lines in the background until stopped, so that
    no socket buffer fills up (and blocks the server) however long a test runs."""

    def __init__(self, client, keep: bool = True) -> None:
        super().__init__(daemon=True)
        self.client, self.keep = client, keep
        self.lines: list[str] = []
        self.count = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and not self.client.eof:
            line = self.client.read_line(timeout=0.1)   # how often it looks at `halt`
            if line is not None:
                self.count += 1
                if self.keep:
                    self.lines.append(line)

    def stop(self) -> None:
        self.halt.set()
        self.join(waits.OWN)


@pytest.mark.alone("a crowd of clients loads the machine")
@pytest.mark.points(3)
@pytest.mark.task(2)
@pytest.mark.timeout(90)
def test_joins_and_leaves_during_broadcasts(room, server, rng):
    program, port = server
    listeners = [room.join(f"listener{i}") for i in range(3)]
    talkers = [room.join(f"talker{i}") for i in range(4)]
    cycles, most_lines = 40, 1000
    sent: dict[int, list[str]] = {t.number: [] for t in talkers}
    problems: list[str] = []
    churned: list[int] = []
    start, churn_over = threading.Event(), threading.Event()
    readers = [Reader(u.client) for u in listeners] + [Reader(t.client, keep=False) for t in talkers]

    def talk(user, seed):
        texts, k = sent[user.number], 0
        start.wait()
        while not churn_over.is_set() and k < most_lines:  # talk for as long as others come and go
            batch = [f"{k + j} #{seed}-{k + j:04d}" for j in range(4)]
            try:
                user.client.send_raw("".join(t + "\n" for t in batch).encode())
            except (OSError, AssertionError) as exc:
                problems.append(f"{user.name} (user {user.number}) could not send: "
                                + (str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                return
            texts.extend(batch)
            k += len(batch)

    def come_and_go(seed):
        start.wait()
        for i in range(cycles):
            try:
                # A newcomer's welcome is a reply (reference: at most 0.08 s here; slow: 0.16 s).
                sock = socket.create_connection(("127.0.0.1", port), timeout=waits.REPLY)
                data = b""
                while b"\n" not in data:
                    piece = sock.recv(4096)
                    if not piece:
                        break
                    data += piece
                match = WELCOME.fullmatch(data.split(b"\n", 1)[0].decode("utf-8", "replace"))
                if not match:
                    problems.append(f"a newcomer got {data[:80]!r} instead of a welcome line")
                    sock.close()
                    return
                churned.append(int(match.group(1)))
                reset(sock) if (seed + i) % 2 else sock.close()
            except OSError as exc:
                problems.append(f"a newcomer could not join: {exc}")
                return

    churners = [threading.Thread(target=come_and_go, args=(s,), daemon=True) for s in range(3)]
    speakers = [threading.Thread(target=talk, args=(t, rng.randrange(10**6)), daemon=True)
                for t in talkers]
    for worker in readers + churners + speakers:
        worker.start()
    start.set()
    for worker in churners:     # each of its cycles is a reply; the whole churn a crowd step
        worker.join(waits.CROWD)
    churn_over.set()
    for worker in speakers:     # each ends after its send under way (at most a reply)
        worker.join(waits.OWN)
    total = sum(map(len, sent.values()))
    did = (f"{len(talkers)} users sent lines as fast as they could ({total} in all) while "
           f"{3 * cycles} other users joined and left (closed or reset) at the same time")
    stuck = any(w.is_alive() for w in churners + speakers)
    check(not problems and not stuck, did, "every newcomer is welcomed and every line is taken",
          "; ".join(problems[:3]) or "the test's clients got stuck: the server stopped "
          "welcoming newcomers or reading from its users")
    expected = total + 2 * len(churned)
    # What is still on its way once everyone stopped: the last replies.
    wait_for(lambda: all(r.count >= expected for r in readers[:len(listeners)]), waits.REPLY)
    for reader in readers:
        reader.stop()
    for reader, listener in zip(readers, listeners):
        lines = reader.lines
        if len(lines) < expected:
            raise fail(did=did, expected=f"{listener.name} receives {expected} lines "
                                         f"({total} messages, {len(churned)} joins, as many leaves)",
                       got=f"it received {len(lines)}" + (f"; the last ones: {lines[-3:]!r}" if lines else ""))
        bad = [line for line in lines if not CHAT_LINE.fullmatch(line)]
        check(not bad, did, "only well-formed chat lines", f"garbled lines: {bad[:3]!r}")
        check_from_each_sender(listener.client, lines, sent, did)
        # Every newcomer joined, then left: each announced exactly once. (Numbers
        # are reused, so count per number; the order between one user's
        # departure and a newcomer's arrival under the same number is not checked.)
        came = collections.Counter(int(m.group(1)) for line in lines
                                   if (m := re.fullmatch(r"user (\d+) joined the chat room", line)))
        went = collections.Counter(int(m.group(1)) for line in lines
                                   if (m := re.fullmatch(r"user (\d+) disconnected", line)))
        newcomers = collections.Counter(churned)
        for what, seen, line_for in (("joined", came, joined), ("left", went, left)):
            if seen != newcomers:
                wrong = sorted(n for n in set(seen) | set(newcomers) if seen[n] != newcomers[n])
                n = wrong[0]
                raise fail(did=did, expected=f"{listener.name} is told once per newcomer that it "
                                             f"{what} ({newcomers[n]} newcomers were user {n})",
                           got=f"{line_for(n)!r} arrived {seen[n]} times"
                               + (f" (also wrong for users {wrong[1:6]})" if len(wrong) > 1 else ""))
    status = program.poll_exit()
    check(status is None, did, "the server keeps running", status.describe() if status else "")
    room.users = list(listeners)  # the talkers' own lines were not checked
    late = room.join("latecomer")
    room.say(late, textgen.message(rng))
