"""Visible tests for 04_epoll. Run: pytest exercises/04_epoll"""

import pytest

from grader.testkit import textgen
from grader.testkit.chat_room import ChatRoom

READY = lambda port: r"started the main epoll loop\s*$"


@pytest.fixture
def room(start_server, connect):
    program, port = start_server("chat_server_epoll.py", lambda port: [port], READY)
    return ChatRoom(connect, port)


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_welcomes_a_new_user(room):
    room.join("alice")  # expects "welcome, you are user N"


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_tells_the_others_who_joined(room):
    room.join("alice")
    room.join("bob")  # alice must receive "user N joined the chat room"


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_passes_a_message_to_the_others(room, rng):
    alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
    room.say(bob, textgen.message(rng))  # alice and carol get "user N: TEXT"


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_announces_a_user_leaving(room):
    alice, bob = room.join("alice"), room.join("bob")
    room.leave(alice)  # bob gets "user N disconnected"


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_the_user_moved_into_a_freed_slot_still_speaks_as_itself(room, rng):
    # fds = [listener, alice, bob, carol, dave]: when bob leaves, dave (the
    # last entry) moves into bob's slot and must be re-registered there.
    alice, bob, carol, dave = (room.join(n) for n in ("alice", "bob", "carol", "dave"))
    room.leave(bob)
    room.say(dave, textgen.message(rng))   # alice and carol get "user D: TEXT"
    room.say(alice, textgen.message(rng))
    room.leave(dave)                       # dave leaves from his new slot
    room.say(carol, textgen.message(rng))
