"""Hidden suite for 05_unix_sockets, part 2: unix_echo_server.py PATH.

Not a TCP server, so ServerRulesTests does not apply as a whole; the
general rules that do apply (usage errors from a working program, SIGTERM
and SIGINT, an idle server sleeping in the kernel) reuse its helpers. The
socket files live in a short per-test folder (see grader.testkit.unix_sockets)."""

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest

from grader.harness import gates, listening, waits
from grader.harness.failure import GradingFailure, check, fail
from grader.harness.program import start_peer
from grader.testkit import textgen
from grader.testkit.line_client import echo_exchange
from grader.testkit.suites.server_rules import (TRACEBACK, ServerSpec, expect_bad_arguments_refused,
                                                expect_clean_exit, measure_cpu, require_working, start)
from grader.testkit.unix_sockets import (accepted, first_echo, pair_beside,
                                         ready_on_a_fresh_path)
from grader.testkit.unix_sockets import socket_dir, unix_connect  # noqa: F401 (fixtures)

SCRIPT = "unix_echo_server.py"
# Gates (grader.harness.gates): a server started on a fresh path prints its
# ready line; its first client is announced with a connection line
# (grader.testkit.unix_sockets.accepted) and gets 'hello' echoed (first_echo).
READY_GATE = ready_on_a_fresh_path(SCRIPT)


def ready(path: str) -> str:
    return rf"listening on {re.escape(path)}\s*$"


def command(path: str) -> str:
    return f"python -u {SCRIPT} {path}"


def socket_name(rng) -> str:
    return f"echo-{rng.randrange(16**4):04x}.sock"


@pytest.fixture
def sock_path(socket_dir, rng) -> str:
    return str(socket_dir / socket_name(rng))


@pytest.fixture
def server_spec(sock_path) -> ServerSpec:
    # The port the harness hands out is not used: the server's address is PATH.
    return ServerSpec(script=SCRIPT, args=lambda _port: [sock_path],
                      ready=lambda _port: ready(sock_path),
                      bad_args=[[], [sock_path, "extra"]])


def start_fresh(start_server, server_spec):
    """Start the server on the spec's fresh path; (program, unused port)."""
    with gates.guard(READY_GATE):
        return start(start_server, server_spec)


@pytest.fixture
def server(start_server, server_spec, sock_path, spawn):
    # pair.py's first check beside this start, while it has no verdict
    # (gates.side_by_side): the quiet test that starts first holds the
    # machine while it waits, and a pair.py that never starts costs that wait only.
    program, _port = gates.side_by_side(lambda: start_fresh(start_server, server_spec),
                                        pair_beside(spawn))
    return program, sock_path


def check_echo(client, data: bytes, did: str) -> None:
    back = client.read_bytes(len(data))
    check(back == data, did, f"{client.name} gets the same {len(data)} bytes back", repr(back))


def wait_until(condition, timeout: float, did: str, expected: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise fail(did=did, expected=expected, got=f"not after {timeout:g} s")
        time.sleep(0.01)


def describe(path: str) -> str:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "there is no file at that path"
    kinds = {stat.S_IFSOCK: "a socket", stat.S_IFREG: "a regular file",
             stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}
    return f"{kinds.get(stat.S_IFMT(info.st_mode), 'a special file')} with mode {stat.S_IMODE(info.st_mode):04o}"


def expect_refusal(program, path: str, did: str, intact) -> None:
    """The server must refuse PATH: `intact()` first (the file matters most),
    then exit status 1, a message, no traceback, no ready line."""
    deadline = time.monotonic() + waits.REFUSAL
    while program.poll_exit() is None and not program.has_line(ready(path)) \
            and time.monotonic() < deadline:
        time.sleep(0.01)        # until it exits or says it listens, whichever comes first
    intact()
    status = program.wait_exit(waits.FINISHING)
    check(status is not None, did, "the server refuses to start: exit status 1",
          f"it was still running after {waits.REFUSAL:g} s")
    check(status.code == 1, did, "exit status 1", status.describe())
    err = program.stderr()
    check(err.strip() != "", did, "a message on stderr saying why", "stderr was empty")
    check(TRACEBACK not in err, did, "no traceback", "stderr was:\n" + err)
    check(not program.has_line(ready(path)), did, "no 'listening on' line: it did not start",
          "it printed that it was listening")


# -- general rules ---------------------------------------------------------------

@pytest.mark.points(3)
def test_rejects_bad_arguments_with_usage(server_spec, spawn, start_server, free_port):
    with gates.guard(READY_GATE):
        require_working(start_server, server_spec)
    expect_bad_arguments_refused(spawn, SCRIPT, server_spec.bad_args, free_port)


@pytest.mark.quiet("measures the server's CPU")
@pytest.mark.points(3)
def test_idle_server_sleeps_in_the_kernel_after_clients_left(server, unix_connect, rng):
    program, path = server
    for name in ("alice", "bob"):
        client = unix_connect(path, name=name)
        accepted(program, did=f"{name} connected", first=name == "alice")
        first_echo(client, first=name == "alice")   # 'hello' first: a gate (unix_sockets)
        data = (textgen.message(rng) + "\n").encode()
        client.send_raw(data)
        check_echo(client, data, f"{name} sent {data!r}")
        client.close()
    share = measure_cpu(program)
    check(share < 0.10, "two clients connected, echoed a line each and left; then the server "
          f"was left alone for {waits.IDLE_WINDOW:g} s", "it waits in the kernel (poll), using under 10% of one core",
          f"it used {share:.0%} of one core: is it looping without blocking, for instance on a "
          "client that has left (recv() returning b'' again and again)?")


# -- task 4: the path ------------------------------------------------------------

@pytest.mark.points(5)
@pytest.mark.task(4)
def test_removes_a_stale_socket_file(spawn, sock_path, unix_connect, rng):
    gates.require(READY_GATE)   # a start on a stale path needs the start on a fresh one
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)       # leaves the file behind, as a killed server does
    stale.close()
    did = (f"left a stale socket file at {sock_path} (nobody listening on it, as a killed server "
           f"leaves it), then ran: {command(sock_path)}")
    program = spawn(SCRIPT, sock_path, name="server")
    try:
        program.expect_line(ready(sock_path), did=did, timeout=waits.READY,
                            done=lambda: listening.listening_unix(program.pid),
                            done_what="listening (the kernel lists its socket)")
    except GradingFailure as failure:
        failure.hint = ("a socket file stays behind when its server dies, and bind() fails with "
                        "'Address already in use' while it is there: check that it is a socket "
                        "(os.lstat, stat.S_ISSOCK), then remove it (os.unlink)")
        raise
    client = unix_connect(sock_path, name="client")
    first_echo(client, first=False)     # needs the echo gate, a start on a stale path closes nothing
    data = (textgen.message(rng) + "\n").encode()
    client.send_raw(data)
    check_echo(client, data, did + "; a client connected and sent a line")


@pytest.mark.points(6)
@pytest.mark.task(4)
def test_refuses_a_regular_file_and_leaves_it_intact(start_server, server_spec, spawn,
                                                     socket_dir, rng):
    with gates.guard(READY_GATE):
        require_working(start_server, server_spec)
    path = str(socket_dir / socket_name(rng))
    content = rng.randbytes(rng.randint(1, 4096))
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, 0o644)
    before = os.lstat(path)
    did = f"put a regular file of {len(content)} bytes at {path}, then ran: {command(path)}"

    def intact() -> None:
        try:
            after = os.lstat(path)
        except FileNotFoundError:
            raise fail(did=did, expected="the server refuses, and the file stays where it was, untouched",
                       got="the file is gone: the server deleted someone's data",
                       hint="only a socket file may be removed; look at the kind of file first "
                            "(os.lstat and stat.S_ISSOCK)") from None
        check(not stat.S_ISSOCK(after.st_mode), did, "the server refuses, and the file stays untouched",
              "the file was deleted: the server's socket file is there in its place",
              hint="only a socket file may be removed; look at the kind of file first "
                   "(os.lstat and stat.S_ISSOCK)")
        check(stat.S_ISREG(after.st_mode) and after.st_ino == before.st_ino, did,
              "the very same file is still there", f"there is now {describe(path)}")
        with open(path, "rb") as f:
            now = f.read()
        check(now == content, did, f"its {len(content)} bytes unchanged",
              f"it now holds {len(now)} bytes" + ("" if len(now) != len(content) else ", not the same ones"))
        check(stat.S_IMODE(after.st_mode) == 0o644, did, "its mode unchanged (0644)",
              f"its mode is now {stat.S_IMODE(after.st_mode):04o}")

    program = spawn(SCRIPT, path, name="server")
    expect_refusal(program, path, did, intact)


@pytest.mark.points(2)
@pytest.mark.task(4)
def test_refuses_a_directory(start_server, server_spec, spawn, socket_dir, rng):
    with gates.guard(READY_GATE):
        require_working(start_server, server_spec)
    path = str(socket_dir / socket_name(rng))
    os.mkdir(path)
    inside = os.path.join(path, "keep.txt")
    with open(inside, "w") as f:
        f.write("keep me\n")
    did = f"made a directory (holding a file) at {path}, then ran: {command(path)}"
    program = spawn(SCRIPT, path, name="server")
    expect_refusal(program, path, did, intact=lambda: check(
        os.path.isdir(path) and os.path.exists(inside), did,
        "the server refuses, and the directory and its file stay untouched",
        f"there is now {describe(path)}"))


# -- task 5: the listening socket -------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.task(5)
def test_socket_file_has_mode_0600(server):
    program, path = server
    did = f"ran: {command(path)}, waited for 'listening on {path}', then looked at the file"
    info = os.lstat(path) if os.path.lexists(path) else None
    check(info is not None, did, "a socket file at PATH", "there is no file at that path")
    check(stat.S_ISSOCK(info.st_mode), did, "a socket file at PATH", f"there is {describe(path)}")
    mode = stat.S_IMODE(info.st_mode)
    check(mode == 0o600, did, "mode 0600 (rw------): only its owner may connect",
          f"mode {mode:04o}", hint="bind() creates the file with the umask's permissions; "
                                   "os.chmod(PATH, 0o600) sets them")


# -- task 6: who is calling ---------------------------------------------------------

CONNECT_AND_WAIT = (
    "import os, socket, sys\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "s.connect(sys.argv[1])\n"
    "print('connected', os.getpid(), flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.mark.points(5)
@pytest.mark.task(6)
def test_peer_credentials_name_the_connecting_process(server):
    """Each client is a separate process the server can see (when graded, one
    inside the server's own pid namespace): it prints its pid as the server
    sees it, and the server must name that pid and the client's uid."""
    program, path = server
    uid = os.getuid()
    for name in ("alice", "bob", "carol"):
        helper = start_peer(program, CONNECT_AND_WAIT, path, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            words = helper.stdout.readline().split()
            did = f"{name}, a separate process, connected"
            check(words[:1] == ["connected"], did, "it connects", "its connection failed")
            peer = int(words[1])
            did = f"{name}, a separate process (pid {peer}, uid {uid}), connected"
            program.transcript.note(name, f"process {peer} connected")
            pid, seen_uid = accepted(program, did=did, first=name == "alice")
            check((pid, seen_uid) == (peer, uid), did, f"connection from pid {peer} uid {uid}",
                  f"connection from pid {pid} uid {seen_uid}",
                  hint="ask the kernel who connected: getsockopt(SOL_SOCKET, SO_PEERCRED, ...) "
                       "on the accepted socket gives a struct ucred: three ints, pid, uid and "
                       "gid, in that order")
        finally:
            helper.stdin.close()
            try:
                helper.wait(waits.OWN)    # it leaves once its stdin is closed
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()


# -- task 7: several clients, every chunk back ---------------------------------------

@pytest.mark.points(6)
@pytest.mark.task(7)
def test_serves_several_clients_at_once(server, unix_connect, rng):
    program, path = server
    count = rng.randint(3, 6)
    clients = []
    for i in range(count):
        clients.append(unix_connect(path, name=textgen.name(rng) + f"_{i}"))
        accepted(program, first=i == 0, did=f"{clients[-1].name} connected" + (
            f", while {clients[0].name} (connected first, its 'hello' echoed) sent nothing "
            "more: the server must accept new clients while others are connected" if i else ""))
        if i == 0:
            first_echo(clients[0])      # 'hello' first: a gate (unix_sockets)
    first, rest = clients[0], clients[1:]
    did = (f"{count} clients connected; the first, {first.name}, stayed silent while the others "
           "each sent a line before any of them read")
    sent = {}
    for client in rng.sample(rest, len(rest)):
        sent[client.name] = (textgen.message(rng) + "\n").encode()
        client.send_raw(sent[client.name])
    for client in rng.sample(rest, len(rest)):
        check_echo(client, sent[client.name], did)
    data = (textgen.message(rng) + "\n").encode()
    first.send_raw(data)
    check_echo(first, data, f"then {first.name} sent a line too")
    leaving = rng.choice(rest)
    leaving.close()
    for client in clients:
        if client is leaving:
            continue
        data = (textgen.message(rng) + "\n").encode()
        client.send_raw(data)
        check_echo(client, data, f"{leaving.name} left; then {client.name} sent a line")


@pytest.mark.points(4)
@pytest.mark.task(7)
def test_echoes_every_byte_exactly(server, unix_connect, rng):
    program, path = server
    client = unix_connect(path, name="client")
    first_echo(client)      # 'hello' first: a gate (grader.testkit.unix_sockets)
    data = b"\xff\xfe\xc3(" + rng.randbytes(16) + b"\r\n\x00"
    client.send_raw(data)
    check_echo(client, data, f"sent bytes that are not UTF-8 text: {data!r}")
    big = rng.randbytes(rng.randint(100_000, 300_000))
    back = echo_exchange(client, big)
    check(back == big, f"sent {len(big)} random bytes while reading the echo",
          "every byte back, in order",
          f"{len(back)} bytes came back" + ("" if big.startswith(back) else ", and they differ"))


@pytest.mark.points(4)
@pytest.mark.task(7)
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP and SIGCONT")
def test_survives_a_client_that_leaves_without_reading(server, unix_connect, rng):
    program, path = server
    quitter = unix_connect(path, name="quitter")
    accepted(program, did="quitter connected", first=True)
    first_echo(quitter)     # 'hello' first: a gate (grader.testkit.unix_sockets)
    other = unix_connect(path, name="other")
    accepted(program, did="other connected")
    process = psutil.Process(program.pid)
    program.send_signal(signal.SIGSTOP)
    wait_until(lambda: process.status() == psutil.STATUS_STOPPED, waits.OWN,
               "stopped the server with SIGSTOP", "the server stops")
    quitter.send_raw(rng.randbytes(20_000))
    quitter.close()
    program.send_signal(signal.SIGCONT)
    did = ("quitter sent 20000 bytes and closed its socket without reading the echo (the server "
           "was paused with SIGSTOP meanwhile, then continued): sending the echo fails with "
           "'Broken pipe'")
    data = (textgen.message(rng) + "\n").encode()
    other.send_raw(data)
    check_echo(other, data, did + "; then other sent a line")
    check(program.poll_exit() is None, did, "the server goes on running", "it exited")
    check(TRACEBACK not in program.stderr(), did, "no traceback", "stderr holds a traceback (shown below)")


# -- task 8: leaving cleanly --------------------------------------------------------

def signal_test(program, path, unix_connect, sig: int) -> None:
    unix_connect(path, name="client")
    accepted(program, did="a client connected", first=True)
    program.send_signal(sig)
    name = signal.Signals(sig).name
    did = f"started the server at {path}, connected a client, sent {name}"
    status = program.wait_exit(waits.EXIT)
    if status is not None and status.signal == sig:
        raise fail(did=did, expected="the server removes its socket file and exits with status 0",
                   got=f"it was killed by {name}: the signal's default action ended it before "
                       "any cleanup could run",
                   hint=f"install a handler with signal.signal({name}, ...) that leads the program "
                        "out through the code that removes the file (e.g. raise SystemExit(0) "
                        "inside a try/finally)")
    expect_clean_exit(program, waits.FINISHING, did)   # exit status 0 (the contract asks for 0), no traceback
    check(not os.path.lexists(path), did, "the socket file at PATH is removed",
          f"it is still there ({describe(path)})",
          hint=f"handle {name} (signal.signal) so that the program leaves through code that "
               "removes the file, e.g. a try/finally around the serving loop")


@pytest.mark.points(4)
@pytest.mark.task(8)
def test_sigterm_removes_the_socket_file_and_exits_0(server, unix_connect):
    program, path = server
    signal_test(program, path, unix_connect, signal.SIGTERM)


@pytest.mark.points(4)
@pytest.mark.task(8)
def test_sigint_removes_the_socket_file_and_exits_0(server, unix_connect):
    program, path = server
    signal_test(program, path, unix_connect, signal.SIGINT)
