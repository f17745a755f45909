"""Hidden suite for 03_poll: the server rules, the shared chat protocol,
the room limit, and waiting with poll() only: one thread and no other
process seen while clients talk, no epoll instance, the submitted source
naming no other way to wait, and plain imports only."""

import pytest

from grader.harness.failure import check
from grader.testkit import source_check, textgen
from grader.testkit.chat_room import WELCOME, ChatRoom
from grader.testkit.suites.chat_protocol import ChatProtocolTests, chat_conversation, room  # noqa: F401 (fixture)
from grader.testkit.suites.server_rules import (PlainImportTests, ServerRulesTests, ServerSpec,
                                                check_alone, check_forbidden, read_submitted, watch)

# README task numbers for the topics of the shared test classes.
TASKS = {"listen": 1, "loop": 1, "shutdown": 1, "join": 3, "message": 2, "lines": 4, "leave": 5,
         "rules": 1}

READY = lambda port: r"started the main poll loop\s*$"
SPEC = ServerSpec(
    script="chat_server.py",
    args=lambda port: [port, 100],
    ready=READY,
    engage=lambda client: client.expect_line(WELCOME, did="connected a client"),
    engage_gate=ChatRoom.WELCOME_GATE,
    bad_args=[[], ["{port}"], ["{port}", "5", "extra"], ["chat", "5"], ["70000", "5"],
              ["{port}", "0"], ["{port}", "-3"], ["{port}", "lots"]],
    converse=chat_conversation,
)

# What the lesson forbids: anything but select.poll for waiting.
NOT_POLL = {
    **source_check.THREADS_AND_PROCESSES,
    "asyncio": "asyncio", "selectors": "selectors",
    "select.select": "select()", "select.epoll": "epoll", "select.kqueue": "kqueue",
    "select.devpoll": "devpoll",
}




class TestServerRules(ServerRulesTests):
    pass


class TestChatProtocol(ChatProtocolTests):
    pass


class TestPlainImports(PlainImportTests):
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


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_waits_with_poll_and_nothing_else(submitted, start_server, connect, rng):
    source = read_submitted(submitted, SPEC.script)  # as submitted, before anything runs
    # Points for how a server waits go to a server that works. While its
    # clients talk, the running server is the authority on threads and
    # processes; the source tells which call it waits in.
    program, port = start_server(SPEC.script, SPEC.args, READY)
    talk, activity = watch(program, lambda: chat_conversation(connect, port, rng, users=6),
                           epoll=True)
    check_alone(activity, f"started the server; {talk}", epoll_allowed=False)
    did = "read chat_server.py as you submitted it (this exercise is about poll())"
    check_forbidden(source, NOT_POLL, did, "no threads, processes, select(), selectors, asyncio or epoll")
    check(source_check.uses_any(source, {"select.poll", "select"}) and "poll" in source, did,
          "the server waits with select.poll()", "no use of select.poll was found")
