"""The chat protocol's tests, shared by every chat server (03, 04, 08).

Use it by subclassing `ChatProtocolTests` in a suite that defines `SPEC`
(the plugin's `server` fixture starts it) or its own `server` fixture.
Tests name a topic instead of a task number ("join", "message", "lines",
"leave"); the suite's module maps each topic to its README's task number in
a dict `TASKS`."""

from __future__ import annotations

import collections
import sys
import time

import psutil
import pytest

from grader.harness import waits
from grader.harness.failure import check, fail
from grader.testkit import textgen
from grader.testkit.chat_room import ChatRoom, joined, left, said
from grader.testkit.suites.server_rules import measure_cpu


@pytest.fixture
def room(server, connect) -> ChatRoom:
    _, port = server
    return ChatRoom(connect, port)


def read_until(client, wanted: str, allowed, did: str, most: int = 3) -> None:
    """Read lines until `wanted`; lines before it must satisfy `allowed`."""
    seen = []
    for _ in range(most):
        line = client.read_line()
        if line == wanted:
            return
        if line is None or not allowed(line):
            break
        seen.append(line)
    raise fail(did=did, expected=f"{client.name} receives {wanted!r}",
               got=f"{client.name} received {seen + [line]!r}")


def chat_conversation(connect, port: int, rng, users: int = 2) -> str:
    """Traffic for the idle test and the thread watch: `users` users join
    and each says a line, the last one leaves, the first speaks once more;
    the others stay connected. Returns what happened, in words."""
    room = ChatRoom(connect, port)
    members = [room.join(textgen.name(rng)) for _ in range(users)]
    for user in members:
        room.say(user, textgen.message(rng))
    leaver = members[-1]
    room.leave(leaver, how="close")
    room.say(members[0], textgen.message(rng))
    return (f"{users} users joined and each sent a line; {leaver.name} left and "
            f"{members[0].name} spoke again, the others staying connected")


class ChatProtocolTests:
    """Inherit in a suite that defines `SPEC` (or a `server` fixture)."""

    @pytest.mark.points(3)
    @pytest.mark.task("join")
    def test_new_user_is_welcomed_with_a_number(self, room, rng):
        user = room.join(textgen.name(rng))
        check(user.number >= 0, "connected one user", "a non-negative user number",
              f"user {user.number}")

    @pytest.mark.points(3)
    @pytest.mark.task("join")
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's sockets from /proc")
    def test_user_number_is_the_socket_descriptor(self, room, server, rng):
        program, _ = server
        users = [room.join(textgen.name(rng)) for _ in range(3)]
        by_peer = {}
        for conn in psutil.Process(program.pid).net_connections(kind="tcp"):
            if conn.raddr:
                by_peer[(conn.raddr.ip, conn.raddr.port)] = conn.fd
        for user in users:
            here = user.client.sock.getsockname()[:2]
            fd = by_peer.get(here)
            check(fd == user.number, f"connected {len(users)} users and looked up, in the server "
                  f"process, which descriptor serves {user.name} (from {here[0]}:{here[1]})",
                  f"the welcome line's number is that descriptor, {fd}",
                  f"{user.name} was welcomed as user {user.number}")

    @pytest.mark.points(4)
    @pytest.mark.task("join")
    def test_everyone_else_is_told_who_joined(self, room, rng):
        for _ in range(rng.randint(3, 5)):
            room.join(textgen.name(rng))  # join() checks every earlier user hears it

    @pytest.mark.points(5)
    @pytest.mark.task("message")
    def test_message_reaches_every_other_user(self, room, rng):
        users = [room.join(textgen.name(rng)) for _ in range(rng.randint(3, 5))]
        for user in rng.sample(users, len(users)):
            room.say(user, textgen.message(rng))

    @pytest.mark.points(4)
    @pytest.mark.task("message")
    def test_sender_does_not_receive_its_own_message(self, room, rng):
        alice, bob = room.join("alice"), room.join("bob")
        room.say(alice, textgen.message(rng))
        room.expect_silence(alice, bob, textgen.message(rng),
                            what=f"alice (user {alice.number}) sent a message")

    @pytest.mark.points(4)
    @pytest.mark.task("message")
    def test_messages_arrive_in_the_order_sent(self, room, rng):
        alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
        lines = [f"{i}: {textgen.message(rng)}" for i in range(rng.randint(15, 25))]
        for line in lines:
            alice.client.send_line(line)
        did = f"alice sent {len(lines)} lines quickly, one send() each"
        for other in (bob, carol):
            for line in lines:
                other.client.expect_line(said(alice.number, line), did=did)

    @pytest.mark.points(4)
    @pytest.mark.task("lines")
    def test_line_split_across_segments_is_reassembled(self, room, rng):
        alice, bob = room.join("alice"), room.join("bob")
        text = textgen.message(rng, words=6)
        data = (text + "\n").encode()
        cuts = sorted(rng.sample(range(1, len(data) - 1), 2))
        for piece in (data[:cuts[0]], data[cuts[0]:cuts[1]], data[cuts[1]:]):
            alice.client.send_raw(piece)
            time.sleep(0.05)  # lets each piece arrive in a separate recv()
        bob.client.expect_line(said(alice.number, text),
                               did=f"alice sent one line in three pieces, 50 ms apart: {text!r}")

    @pytest.mark.points(4)
    @pytest.mark.task("lines")
    def test_several_lines_in_one_segment(self, room, rng):
        alice, bob = room.join("alice"), room.join("bob")
        lines = [textgen.message(rng) for _ in range(3)]
        alice.client.send_raw("".join(line + "\n" for line in lines).encode())
        for line in lines:
            bob.client.expect_line(said(alice.number, line),
                                   did=f"alice sent three lines in a single send(): {lines!r}")

    @pytest.mark.points(3)
    @pytest.mark.task("lines")
    def test_carriage_return_before_newline_is_stripped(self, room, rng):
        alice, bob = room.join("alice"), room.join("bob")
        text, plain = textgen.message(rng), textgen.message(rng)
        alice.client.send_line(text, ending="\r\n")
        bob.client.expect_line(said(alice.number, text),
                               did=f"alice sent {text!r} ending in \\r\\n, as telnet does")
        with_cr = bob.client.last_raw
        room.say(bob, plain)
        without_cr = alice.client.last_raw
        # A server may end its own lines with \r\n, but then it does so for
        # every line; a \r only after the telnet user's text was forwarded.
        check(with_cr.endswith(b"\r") == without_cr.endswith(b"\r"),
              f"alice sent {text!r} ending in \\r\\n; bob sent {plain!r} ending in \\n",
              "the \\r is stripped: both forwarded lines end the same way",
              f"bob received {with_cr!r}, alice received {without_cr!r}")

    @pytest.mark.points(3)
    @pytest.mark.task("lines")
    def test_line_of_1000_bytes_arrives_intact(self, room, rng):
        alice, bob = room.join("alice"), room.join("bob")
        text = textgen.line_of_bytes(rng, 1000)
        alice.client.send_line(text)
        bob.client.expect_line(said(alice.number, text), did="alice sent a line of 1000 bytes")

    @pytest.mark.points(2)
    @pytest.mark.task("lines")
    def test_empty_line_is_forwarded(self, room):
        alice, bob = room.join("alice"), room.join("bob")
        alice.client.send_line("")
        bob.client.expect_line(said(alice.number, ""), did="alice sent an empty line")

    @pytest.mark.points(4)
    @pytest.mark.task("leave")
    def test_leaving_is_announced(self, room, rng):
        users = [room.join(textgen.name(rng)) for _ in range(4)]
        room.leave(users[1], how="close")
        room.leave(users[2], how="shutdown")
        room.say(users[3], textgen.message(rng))

    @pytest.mark.points(4)
    @pytest.mark.task("leave")
    def test_reset_connection_is_announced_and_others_still_served(self, room, rng):
        alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
        room.leave(carol, how="reset")
        room.say(alice, textgen.message(rng))
        room.say(bob, textgen.message(rng))

    @pytest.mark.points(3)
    @pytest.mark.task("lines")
    def test_invalid_utf8_does_not_stop_the_server(self, room, rng):
        alice, bob, carol = room.join("alice"), room.join("bob"), room.join("carol")
        alice.client.send_raw(b"\xff\xfe\xc3 not utf-8\n")
        marker = textgen.message(rng)
        bob.client.send_line(marker)
        # Forwarding alice's line (with replacement characters) or dropping
        # alice are both fine; carol must still get bob's marker.
        read_until(carol.client, said(bob.number, marker),
                   allowed=lambda line: line.startswith((f"user {alice.number}:",
                                                         left(alice.number))),
                   did=f"alice sent bytes that are not UTF-8, then bob sent {marker!r}")

    @pytest.mark.points(3)
    @pytest.mark.task("message")
    def test_server_prints_every_broadcast(self, room, server, rng):
        program, _ = server
        alice, bob = room.join("alice"), room.join("bob")
        text = textgen.message(rng)
        room.say(alice, text)
        room.leave(bob)
        did = "alice and bob joined, alice sent a line, bob left"
        for line in (joined(bob.number), said(alice.number, text), left(bob.number)):
            program.expect_line(line, literal=True, did=did + f"; expected the server to log {line!r}")

    @pytest.mark.points(5)
    @pytest.mark.task("message")
    @pytest.mark.timeout(90)
    def test_fifty_users_all_hear_each_other(self, room, rng):
        count = rng.randint(50, 60)
        # Each welcome, and each of the count - 1 lines every user reads,
        # is a reply (waits.REPLY: its reference figure is a crowd's
        # broadcast under load, this test's among them).
        users = [room.join(f"user{i}") for i in range(count)]
        texts = {u.number: textgen.message(rng) for u in users}
        for user in users:
            user.client.send_line(texts[user.number])
        for user in users:
            wanted = collections.Counter(said(n, t) for n, t in texts.items() if n != user.number)
            got = collections.Counter()
            for _ in range(count - 1):
                line = user.client.read_line()
                if line is None:
                    break
                got[line] += 1
            missing, extra = wanted - got, got - wanted
            check(not missing and not extra,
                  f"{count} users joined, then each sent one line at about the same time",
                  f"{user.name} receives each of the other {count - 1} lines exactly once",
                  f"missing {sorted(missing)[:5]} ({sum(missing.values())} in all); "
                  f"unexpected {sorted(extra)[:5]}")

    @pytest.mark.quiet("measures the server's CPU")
    @pytest.mark.points(3)
    @pytest.mark.task("leave")
    def test_server_sleeps_after_everyone_left(self, room, server, rng):
        program, _ = server
        users = [room.join(textgen.name(rng)) for _ in range(3)]
        room.say(users[0], textgen.message(rng))
        room.leave(users[2], how="reset")
        room.leave(users[1], how="close")
        room.leave(users[0], how="close")
        share = measure_cpu(program)
        check(share < 0.10, f"three users talked and left; then a quiet {waits.IDLE_WINDOW:g} s",
              "the server waits in the kernel, using under 10% of one core",
              f"it used {share:.0%} of one core: is a closed socket still being watched?")
