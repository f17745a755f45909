"""Visible tests for 05_unix_sockets, unix_echo_server.py. Run: pytest exercises/05_unix_sockets"""

import os
import subprocess

import pytest

from grader.harness import gates, waits
from grader.harness.failure import check
from grader.harness.program import start_peer
from grader.testkit import textgen
from grader.testkit.unix_sockets import (accepted, echo_server_ready, first_echo, pair_beside,
                                         ready_on_a_fresh_path)
from grader.testkit.unix_sockets import socket_dir, unix_connect  # noqa: F401 (fixtures)


@pytest.fixture
def server(spawn, socket_dir):
    path = str(socket_dir / "echo.sock")
    program = spawn("unix_echo_server.py", path, name="server")

    def ready():
        with gates.guard(ready_on_a_fresh_path("unix_echo_server.py")):
            echo_server_ready(program, path)

    # pair.py's first check beside this one, while it has no verdict (gates.side_by_side).
    gates.side_by_side(ready, pair_beside(spawn))
    return program, path


@pytest.mark.points(3)
@pytest.mark.task(5)
def test_prints_that_it_is_listening(server):
    program, path = server
    check(os.path.exists(path), "waited for 'listening on PATH'", "a socket file at PATH",
          "there is no file there")


@pytest.mark.points(3)
@pytest.mark.task(7)
def test_echoes_what_a_client_sends(server, unix_connect, rng):
    program, path = server
    client = unix_connect(path, name="client")
    first_echo(client)      # 'hello' first: a gate (grader.testkit.unix_sockets)
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    back = client.read_bytes(len(data))
    check(back == data, f"sent {data!r}", "the same bytes back", repr(back))


CONNECT_AND_WAIT = ("import os, socket, sys\n"
                    "s = socket.socket(socket.AF_UNIX)\n"
                    "s.connect(sys.argv[1])\n"
                    "print(os.getpid(), flush=True)\n"
                    "sys.stdin.read()\n")


@pytest.mark.points(3)
@pytest.mark.task(6)
def test_names_the_connecting_process(server):
    program, path = server
    client = start_peer(program, CONNECT_AND_WAIT, path, stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True)
    try:
        pid = int(client.stdout.readline() or 0)
        did = f"connected from a separate process (pid {pid}, uid {os.getuid()})"
        seen = accepted(program, did, first=True)   # its first client: a gate
        check(seen == (pid, os.getuid()), did, f"connection from pid {pid} uid {os.getuid()}",
              f"connection from pid {seen[0]} uid {seen[1]}")
    finally:
        client.stdin.close()
        client.wait(waits.OWN)
