"""Visible tests for 08_threads. Run: pytest exercises/08_threads"""

import pytest

from grader.testkit import textgen
from grader.testkit.chat_room import ChatRoom

READY = lambda port: r"accepting connections\s*$"


@pytest.fixture
def room(start_server, connect):
    program, port = start_server("threaded_chat_server.py", lambda port: [port], READY)
    return ChatRoom(connect, port)


@pytest.mark.points(1)
@pytest.mark.task(1)
def test_welcomes_users_and_tells_the_others(room):
    room.join("alice")  # expects "welcome, you are user N"
    room.join("bob")    # alice must receive "user N joined the chat room"


@pytest.mark.points(1)
@pytest.mark.task(2)
def test_passes_a_message_to_the_others(room, rng):
    alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
    room.say(bob, textgen.message(rng))  # alice and carol get "user N: TEXT"


@pytest.mark.points(1)
@pytest.mark.task(3)
def test_announces_a_user_leaving(room, rng):
    alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
    room.leave(alice)  # bob and carol get "user N disconnected"
    room.say(bob, textgen.message(rng))
