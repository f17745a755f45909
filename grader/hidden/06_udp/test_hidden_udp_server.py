"""Hidden suite for 06_udp's udp_server.py: the UDP echo server, and the
general rules that apply to a UDP server.

The server is driven by UDP sockets of the test (grader.testkit.udp_peer).
server_rules.ServerRulesTests speaks TCP, so its rules are re-stated here
for a datagram socket, with its helpers (expect_clean_exit, measure_cpu,
expect_port_in_use_error) and its idea of require_working: error handling
earns points only from a program that also works."""

from __future__ import annotations

import re
import signal
import sys

import pytest

from grader.harness import gates, waits
from grader.harness.failure import check
from grader.testkit import textgen
from grader.testkit.suites.server_rules import (ServerSpec, expect_bad_arguments_refused,
                                                expect_clean_exit, expect_port_in_use_error, measure_cpu)
from grader.testkit.udp_echo import ECHOED, expect_echo, needs_echo, probe_echo
from grader.testkit.udp_peer import occupy_port
from grader.testkit.udp_peer import udp  # noqa: F401 (a fixture)

SERVER = ServerSpec(
    script="udp_server.py",
    args=lambda port: [port],
    ready=lambda port: rf"\[server\] listening on 0\.0\.0\.0:{port} \(udp\)\s*$",
    bad_args=[[], ["{port}", "extra"], ["http"], ["0"], ["65536"], ["-5"], ["80.5"]],
)
LINUX = sys.platform.startswith("linux")


# -- fixtures and helpers ------------------------------------------------------

@pytest.fixture
def server(start_server, udp):
    program, port = start_server(SERVER.script, SERVER.args, SERVER.ready)
    udp.name_address(("127.0.0.1", port), "server")
    return program, port


def require_echo(start_server, udp) -> None:
    """Error handling earns points only from a server that also echoes."""
    program, port = start_server(SERVER.script, SERVER.args, SERVER.ready)
    probe = udp.socket("probe")
    probe_echo(probe, port, "first checked that the server works: started it and sent it a "
               "datagram")
    program.stop()


# == the server ===============================================================

# The signal tests come first: their first exchange is the echo gate's own
# (probe_echo), which every echo test below needs.

@pytest.mark.points(3)
@pytest.mark.task(2)
def test_server_exits_on_sigterm(server, udp):
    program, port = server
    probe_echo(udp.socket("client"), port, "sent the server a datagram")
    program.send_signal(signal.SIGTERM)
    expect_clean_exit(program, waits.EXIT, "started the server, had one datagram echoed, sent SIGTERM",
                      allowed_signals=(signal.SIGTERM,))


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_server_exits_on_sigint_without_traceback(server, udp):
    program, port = server
    probe_echo(udp.socket("client"), port, "sent the server a datagram")
    program.send_signal(signal.SIGINT)
    expect_clean_exit(program, waits.EXIT, "started the server, had one datagram echoed, sent SIGINT "
                      "(Ctrl-C)", allowed_signals=(signal.SIGINT,))


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_logs_each_datagram_with_its_size_and_sender(server, udp, rng):
    program, port = server
    needs_echo(port)
    for name in ("alice", "bob"):
        client = udp.socket(name)
        data = textgen.message(rng).encode()
        expect_echo(client, port, data, f"{name} sent a datagram of {len(data)} bytes")
        program.expect_line(f"[server] got {len(data)} bytes from 127.0.0.1:{client.port}",
                            literal=True, did=f"{name} sent {len(data)} bytes from 127.0.0.1:"
                            f"{client.port}")


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_keeps_datagram_boundaries(server, udp, rng):
    program, port = server
    needs_echo(port)
    client = udp.socket("client")
    sent = [textgen.message(rng).encode(),
            f"{textgen.message(rng)}\n{textgen.message(rng)}".encode(),
            (textgen.line_of_bytes(rng, rng.randint(300, 1200)) + "\n").encode()]
    for data in sent:
        client.send_to(data, ("127.0.0.1", port))
    back = client.receive_many(3, timeout=waits.REPLY)
    back += client.collect_for(waits.SILENCE)  # anything beyond the three
    did = ("sent three datagrams back to back, without waiting: "
           + ", ".join(f"{len(d)} bytes" for d in sent))
    shown = [f"{len(d.data)} bytes: {d.data[:50]!r}" for d in back] or ["nothing"]
    check(len(back) == 3 and sorted(d.data for d in back) == sorted(sent), did,
          "exactly three datagrams back, each the same bytes as one that was sent",
          f"{len(back)} datagram(s) came back:\n" + "\n".join(shown),
          hint="each recvfrom() returns one whole datagram; send it back with one sendto(), "
               "as it is (no splitting into lines, no joining)")


@pytest.mark.points(8)
@pytest.mark.task(2)
def test_replies_to_each_sender_with_two_clients_at_once(server, udp, rng):
    program, port = server
    needs_echo(port)
    alice, bob = udp.socket("alice"), udp.socket("bob")
    rounds = rng.randint(3, 5)
    sent = {alice: [], bob: []}
    for i in range(rounds):
        for client in (alice, bob):
            data = f"{client.name} {i} {textgen.message(rng)}".encode()
            sent[client].append(data)
            client.send_to(data, ("127.0.0.1", port))
    did = (f"alice (port {alice.port}) and bob (port {bob.port}) each sent {rounds} datagrams, "
           "taking turns")
    for client in (alice, bob):
        back = [d.data for d in client.receive_many(rounds, timeout=waits.REPLY)]
        check(sorted(back) == sorted(sent[client]), did,
              f"{client.name} gets back exactly its own {rounds} datagrams",
              f"{client.name} got {len(back)}: {back}",
              hint="answer each datagram to the address recvfrom() returned with it, not "
                   "to the first or any stored address")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_echoes_bytes_that_are_not_utf8(server, udp, rng):
    program, port = server
    needs_echo(port)
    client = udp.socket("client")
    data = b"\xff\xfe\xc3(" + rng.randbytes(rng.randint(8, 40))
    expect_echo(client, port, data, f"sent a datagram of bytes that are not UTF-8: {data!r}")
    text = textgen.message(rng).encode()
    expect_echo(client, port, text, "then sent a datagram of plain text")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_echoes_an_empty_datagram(server, udp, rng):
    program, port = server
    needs_echo(port)
    client = udp.socket("client")
    expect_echo(client, port, b"", "sent an empty datagram (0 bytes: with UDP, that is a "
                "datagram like any other, not an end of file)")
    expect_echo(client, port, textgen.message(rng).encode(), "then sent a datagram of text")


@pytest.mark.points(3)
@pytest.mark.task(2)
def test_echoes_a_large_datagram_whole(server, udp, rng):
    program, port = server
    needs_echo(port)
    client = udp.socket("client")
    data = rng.randbytes(rng.randint(5000, 9000))
    client.send_to(data, ("127.0.0.1", port))
    got = client.receive(timeout=waits.REPLY)
    did = f"sent one datagram of {len(data)} random bytes"
    check(got is not None, did, "the same datagram back",
          f"nothing came back within {waits.REPLY:g} s")
    check(got.data == data, did, f"all {len(data)} bytes back in one datagram",
          f"a datagram of {len(got.data)} bytes" + ("" if data.startswith(got.data) else
                                                     ", and they differ"),
          hint="recvfrom(n) throws away whatever does not fit in n bytes: use a buffer "
               "big enough for any datagram (65535)")


# -- the general rules, for a UDP server ----------------------------------------

@pytest.mark.points(3)
@pytest.mark.task(1)
def test_server_rejects_bad_arguments_with_usage(spawn, start_server, udp, free_port):
    require_echo(start_server, udp)
    expect_bad_arguments_refused(spawn, SERVER.script, SERVER.bad_args, free_port)


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_server_reports_a_port_in_use(spawn, start_server, udp, free_port):
    require_echo(start_server, udp)
    port = free_port()
    holder = occupy_port(port)
    try:
        program = spawn(SERVER.script, port, name="server")
        did = (f"kept UDP port {port} busy with a bound socket (no SO_REUSEADDR), then ran: "
               f"{SERVER.command(port)}")
        expect_port_in_use_error(program, did)
    finally:
        holder.close()


@pytest.mark.points(2)
@pytest.mark.task(1)
@pytest.mark.skipif(not LINUX, reason="UDP ports shared through SO_REUSEADDR: Linux semantics")
def test_server_sets_so_reuseaddr(spawn, udp, free_port):
    usual = gates.command_shape(SERVER.script, SERVER.args)
    gates.require(gates.ready(usual))   # the usual start, on a shared port: it needs the usual one
    port = free_port()
    holder = occupy_port(port, reuse=True)
    try:
        program = spawn(SERVER.script, port, name="server")
        program.expect_line(
            re.compile(SERVER.ready(port)), timeout=waits.READY,
            did=f"bound a UDP socket with SO_REUSEADDR to port {port} (Linux lets the port be "
                "shared only when every socket on it sets SO_REUSEADDR), then ran: "
                f"{SERVER.command(port)}")
    finally:
        holder.close()
    udp.name_address(("127.0.0.1", port), "server")
    gates.require(gates.answer("echo", usual, ECHOED))
    expect_echo(udp.socket("client"), port, b"hello", "closed the other socket and sent the "
                "server a datagram")


@pytest.mark.points(2)
@pytest.mark.task(1)
@pytest.mark.skipif(not LINUX, reason="127.0.0.2 is loopback on Linux only")
def test_server_listens_on_all_interfaces(server, udp, rng):
    program, port = server
    needs_echo(port)
    udp.name_address(("127.0.0.2", port), "server at 127.0.0.2")
    expect_echo(udp.socket("client"), port, textgen.message(rng).encode(),
                f"sent a datagram to 127.0.0.2:{port} (another loopback address)",
                host="127.0.0.2")


@pytest.mark.quiet("measures the server's CPU")
@pytest.mark.points(3)
@pytest.mark.task(2)
def test_idle_server_sleeps_in_the_kernel(server, udp, rng):
    program, port = server
    needs_echo(port)
    client = udp.socket("client")
    for _ in range(3):
        expect_echo(client, port, textgen.message(rng).encode(), "sent the server a datagram")
    share = measure_cpu(program)
    limit = SERVER.idle_cpu_fraction
    check(share < limit, f"had three datagrams echoed, then left the server alone for {waits.IDLE_WINDOW:g} s",
          f"it waits in the kernel (in recvfrom), using under {limit:.0%} of one core",
          f"it used {share:.0%} of one core: is it looping without blocking?")
