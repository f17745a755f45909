"""Visible tests for 00_basics. Run: pytest exercises/00_basics

Your functions run in a separate Python process (as when graded), so a
crash or an endless loop in them costs a test, not the whole run."""

import ipaddress
import socket
import struct

import pytest

from grader.harness import waits
from grader.harness.failure import check
from grader.harness.module_calls import ModuleRunner
from grader.testkit.first_calls import FIRST_CALLS


@pytest.fixture
def runner(workdir, transcript):
    return ModuleRunner(workdir, transcript, timeout=waits.MODULE_RUN, first_calls=FIRST_CALLS)


def answers(runner, function, inputs):
    """function(x) for each x, in one child process: a list of outcomes."""
    outcomes = runner.call_many("basics", function, [(x,) for x in inputs])
    check(isinstance(outcomes, list), f"imported basics.py and called {function}() on {inputs!r}",
          "each call returns a plain value (an int, a str or bytes) or raises ValueError",
          outcomes.describe() if not isinstance(outcomes, list) else "")
    return outcomes


def expect(runner, function, cases):
    """cases: {argument: the value to return, or ValueError}."""
    for (argument, wanted), outcome in zip(cases.items(), answers(runner, function, list(cases))):
        did = f"called {function}({argument!r})"
        if wanted is ValueError:
            check(outcome.raised("ValueError"), did, "a ValueError", outcome.describe())
        else:
            check(outcome.returned and outcome.value == wanted
                  and type(outcome.value) is type(wanted), did, repr(wanted), outcome.describe())


@pytest.mark.points(3)
@pytest.mark.task(1)
def test_ip_version_of_a_few_addresses(runner):
    expect(runner, "ip_version", {"192.168.0.1": 4, "::1": 6, "fe80::1": 6,
                                  "::ffff:10.0.0.1": 6, "256.1.1.1": ValueError,
                                  "hello": ValueError, "": ValueError})
    expect(runner, "address_count", {4: 2 ** 32, 6: 2 ** 128, 5: ValueError})


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_ipv4_text_and_number_both_ways(runner, rng):
    numbers = [rng.randrange(2 ** 32) for _ in range(20)]
    to_int = {"192.168.0.1": 3232235521, "0.0.0.0": 0, "255.255.255.255": 2 ** 32 - 1,
              "256.1.1.1": ValueError, "1.2.3": ValueError, "": ValueError}
    to_int.update({str(ipaddress.IPv4Address(n)): n for n in numbers})
    expect(runner, "ipv4_to_int", to_int)
    to_text = {3232235521: "192.168.0.1", 2 ** 32: ValueError, -1: ValueError}
    to_text.update({n: str(ipaddress.IPv4Address(n)) for n in numbers})
    expect(runner, "int_to_ipv4", to_text)


@pytest.mark.points(4)
@pytest.mark.task(3)
def test_ports_in_network_byte_order(runner, rng):
    ports = [rng.randrange(65536) for _ in range(20)]
    to_bytes = {8080: b"\x1f\x90", 0: b"\x00\x00", 65535: b"\xff\xff",
                65536: ValueError, -1: ValueError, "80": ValueError}
    to_bytes.update({p: struct.pack("!H", p) for p in ports})
    expect(runner, "port_to_bytes", to_bytes)
    to_port = {b"\x1f\x90": 8080, b"\x00": ValueError, b"\x00\x00\x00": ValueError}
    to_port.update({struct.pack("!H", p): p for p in ports})
    expect(runner, "bytes_to_port", to_port)


@pytest.mark.points(4)
@pytest.mark.task(4)
def test_resolve_gives_the_wildcard_addresses_to_a_server(runner, rng):
    port = rng.randint(1024, 65535)
    did = f"called resolve(None, {port}, passive=True)"
    outcome = runner.run(f"""
        import socket
        infos = socket.getaddrinfo(None, {port}, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        wanted = []
        for family, _type, _proto, _name, sockaddr in infos:
            if (int(family), sockaddr[0], sockaddr[1]) not in wanted:
                wanted.append((int(family), sockaddr[0], sockaddr[1]))
        import basics
        got = basics.resolve(None, {port}, passive=True)
        if isinstance(got, list):   # AddressFamily values travel as plain ints
            got = [tuple(int(x) if isinstance(x, int) else x for x in e)
                   if isinstance(e, tuple) else e for e in got]
        else:
            got = f"{{got!r:.200}}, not a list"
        result = (wanted, got)
    """, did=did)
    wanted, got = outcome.value_or_fail(did=did, expected="a list of (family, ip, port)")
    check(got == wanted, did, f"{wanted!r} (what getaddrinfo says on this machine)", repr(got))
    check((int(socket.AF_INET), "0.0.0.0", port) in got, did,
          "the IPv4 wildcard address 0.0.0.0 among them", repr(got))
