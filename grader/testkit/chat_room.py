"""The chat protocol of 03_poll, 04_epoll and 08_threads, spoken once here.

A ChatRoom connects users to a running server and checks each exchange the
way the contract states it: the welcome line and its user number, the join
announcement to everyone else, `user N: TEXT` to every other user, the
disconnect announcement."""

from __future__ import annotations

import re
from dataclasses import dataclass

from grader.harness import gates
from grader.harness.failure import GradingFailure
from grader.testkit.line_client import LineClient

WELCOME = re.compile(r"welcome, you are user (\d+)")


def joined(n: int) -> str:
    return f"user {n} joined the chat room"


def said(n: int, text: str) -> str:
    return f"user {n}: {text}"


def left(n: int) -> str:
    return f"user {n} disconnected"


@dataclass
class ChatUser:
    client: LineClient
    number: int

    @property
    def name(self) -> str:
        return self.client.name


class ChatRoom:
    """The users the test has connected to one server, in joining order."""

    # The gate (grader.harness.gates.first_answer) of a freshly started
    # server's first user: its welcome.
    WELCOME_GATE = "welcome"

    def __init__(self, connect, port: int) -> None:
        self._connect = connect
        self.port = port
        self.users: list[ChatUser] = []

    def others(self, user: ChatUser) -> list[ChatUser]:
        return [u for u in self.users if u is not user]

    def connect_raw(self, name: str) -> LineClient:
        return self._connect(self.port, name=name)

    def join(self, name: str, timeout: float | None = None) -> ChatUser:
        """Connect a new user; it must be welcomed with its number and every
        user already in the room must be told. The welcome of a freshly
        started server's first user is a gate (grader.harness.gates)."""
        client = self._connect(self.port, name=name, **({} if timeout is None else {"timeout": timeout}))
        with gates.first_answer(client, self.WELCOME_GATE, "is welcomed"):
            match = client.expect_line(WELCOME, did=f"{name} connected to the chat server")
        user = ChatUser(client, int(match.group(1)))
        for other in self.users:
            other.client.expect_line(
                joined(user.number),
                did=f"{name} joined the room (its welcome said user {user.number})")
        self.users.append(user)
        return user

    def say(self, user: ChatUser, text: str) -> None:
        """`user` sends one line; every other user must receive it next."""
        user.client.send_line(text)
        self.expect_everyone_but(user, said(user.number, text),
                                 did=f"{user.name} (user {user.number}) sent the line {text!r}")

    def expect_everyone_but(self, user: ChatUser, line: str, did: str) -> None:
        for other in self.others(user):
            other.client.expect_line(line, did=did)

    def leave(self, user: ChatUser, how: str = "close") -> None:
        """`user` leaves (close, reset or half-close); the others must be told."""
        self.users.remove(user)
        if how == "reset":
            user.client.reset()
        elif how == "shutdown":
            user.client.shutdown_write()
        else:
            user.client.close()
        self.expect_everyone_but(user, left(user.number),
                                 did=f"{user.name} (user {user.number}) left with a {how}")

    def expect_silence(self, user: ChatUser, speaker: ChatUser, text: str, what: str) -> None:
        """Prove `user` was sent nothing more: `speaker` says `text`, and that
        must be the very next line `user` receives. (A condition to wait
        for, rather than a pause to hope through.)"""
        speaker.client.send_line(text)
        line = user.client.read_line()
        expected = said(speaker.number, text)
        if line != expected:
            raise GradingFailure(
                did=f"{what}; then {speaker.name} (user {speaker.number}) sent {text!r} as a marker",
                expected=f"{user.name} receives nothing before the marker line {expected!r}",
                got=f"{user.name} received {line!r}" if line is not None else
                    f"{user.name} received nothing at all, not even the marker",
            )
        for other in self.others(speaker):
            if other is not user:
                other.client.expect_line(expected, did=f"{speaker.name} sent the marker {text!r}")
