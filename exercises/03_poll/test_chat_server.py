"""Visible tests for 03_poll. Run: pytest exercises/03_poll"""

import pytest

from grader.testkit import textgen
from grader.testkit.chat_room import ChatRoom

READY = lambda port: r"started the main poll loop\s*$"


@pytest.fixture
def room(start_server, connect):
    # Room for 100 users: the command line the grader's own tests use too,
    # so that when grading, a server that never starts is waited for once.
    program, port = start_server("chat_server.py", lambda port: [port, 100], READY)
    return ChatRoom(connect, port)


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_welcomes_a_new_user(room):
    room.join("alice")  # expects "welcome, you are user N"


@pytest.mark.points(2)
@pytest.mark.task(3)
def test_tells_the_others_who_joined(room):
    room.join("alice")
    room.join("bob")  # alice must receive "user N joined the chat room"


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_passes_a_message_to_the_others(room, rng):
    alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
    room.say(bob, textgen.message(rng))  # alice and carol get "user N: TEXT"


@pytest.mark.points(2)
@pytest.mark.task(5)
def test_announces_a_user_leaving(room):
    alice, bob = room.join("alice"), room.join("bob")
    room.leave(alice)  # bob gets "user N disconnected"
