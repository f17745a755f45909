"""Hidden suite for 03_poll: the server rules, the shared chat protocol,
the room limit, and waiting with poll() only."""

import pytest

from grader import source_check, textgen
from grader.chat import WELCOME, ChatRoom
from grader.failure import check
from grader.suites.chat_protocol import ChatProtocolTests, room  # noqa: F401 (fixture)
from grader.suites.server_rules import ServerRulesTests, ServerSpec

# README task numbers for the topics of the shared test classes.
TASKS = {"listen": 1, "loop": 1, "shutdown": 1, "join": 3, "message": 2, "lines": 4, "leave": 5}

READY = lambda port: r"started the main poll loop\s*$"
SPEC = ServerSpec(
    script="chat_server.py",
    args=lambda port: [port, 100],
    ready=READY,
    engage=lambda client: client.expect_line(WELCOME, did="connected a client"),
    bad_args=[[], ["{port}"], ["{port}", "5", "extra"], ["chat", "5"], ["70000", "5"],
              ["{port}", "0"], ["{port}", "-3"], ["{port}", "lots"]],
)

# What the lesson forbids: anything but select.poll for waiting.
NOT_POLL = {
    "threading": "threads", "_thread": "threads", "concurrent": "threads",
    "multiprocessing": "processes", "asyncio": "asyncio", "selectors": "selectors",
    "select.select": "select()", "select.epoll": "epoll", "select.kqueue": "kqueue",
    "select.devpoll": "devpoll", "os.fork": "processes",
}




class TestServerRules(ServerRulesTests):
    pass


class TestChatProtocol(ChatProtocolTests):
    pass


def full_room(start_server, connect, size):
    program, port = start_server(SPEC.script, lambda p: [p, size], READY)
    room = ChatRoom(connect, port)
    for i in range(size):
        room.join(f"user{i}")
    return program, room


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_full_room_turns_a_newcomer_away(start_server, connect, rng):
    size = rng.randint(2, 4)
    program, room = full_room(start_server, connect, size)
    late = room.connect_raw("latecomer")
    did = f"the server was started with MAX_ROOM_SIZE {size}; {size} users joined; one more connected"
    late.expect_line("room is full", did=did)
    late.expect_eof(did=did + " and was told the room is full")
    first, second = room.users[0], room.users[1]
    room.expect_silence(first, second, textgen.message(rng),
                        what=did + " (nobody in the room should be told)")


@pytest.mark.points(3)
@pytest.mark.task(3)
def test_a_seat_frees_up_when_someone_leaves(start_server, connect, rng):
    size = rng.randint(2, 3)
    program, room = full_room(start_server, connect, size)
    late = room.connect_raw("latecomer")
    late.expect_line("room is full", did=f"{size} users filled the room, a latecomer connected")
    room.leave(room.users[-1])
    newcomer = room.join("newcomer")
    room.say(newcomer, textgen.message(rng))


@pytest.mark.points(4)
@pytest.mark.task(1)
def test_waits_with_poll_and_nothing_else(workdir, server, connect):
    # Points for how a server waits go to a server that works.
    ChatRoom(connect, server[1]).join("alice")
    source = source_check.read(workdir / SPEC.script)
    try:
        found = source_check.forbidden_uses(source, NOT_POLL)
    except SyntaxError as exc:
        found = [f"the file does not parse: {exc}"]
    did = "read chat_server.py (this exercise is about poll())"
    check(not found, did, "no threads, select(), selectors, asyncio or epoll",
          "\n".join(map(str, found)))
    check(source_check.uses_any(source, {"select.poll", "select"}) and "poll" in source, did,
          "the server waits with select.poll()", "no use of select.poll was found")
