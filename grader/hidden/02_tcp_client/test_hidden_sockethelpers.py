"""Hidden suite for 02_tcp_client's sockethelpers.py: every clause of its contract.

sockethelpers.py is a module: each check imports it in a child Python
process (grader.harness.module_calls), never here, against one-shot servers
the test runs in threads (grader.testkit.fake_server). Where a host name
with several candidates is needed, a fake resolver answers for a few
made-up names (*.socklab.test)."""

import ipaddress
import socket

import pytest

from grader.harness import waits
from grader.harness.failure import check, fail
from grader.harness.module_calls import ModuleRunner
from grader.testkit.first_calls import FIRST_CALLS
from grader.testkit import textgen
from grader.testkit.fake_server import fake_resolver_source, localhost_ip
from grader.testkit.fake_server import servers  # noqa: F401 (a fixture)

MULTI = "multi.socklab.test"        # made-up names: only the fake resolver knows them
NOWHERE = "nowhere.socklab.test"    # ... and this one does not resolve at all


@pytest.fixture
def runner(workdir, transcript):
    return ModuleRunner(workdir, transcript, timeout=waits.MODULE_RUN, first_calls=FIRST_CALLS)


def reply_for(rng) -> str:
    return "ack " + textgen.message(rng)


# -- checks that run in the child process ---------------------------------------

# Every socket the student's code makes through socket.socket is tracked (and
# kept referenced, so only an explicit close() closes it); the socket
# descriptors of the process are listed as well, for code that makes sockets
# some other way. FAIL_FAMILIES makes socket() fail for a family, as on a
# machine without IPv6.
TRACKING = '''
import errno, os, socket, stat
_RealSocket = socket.socket
created = []
FAIL_FAMILIES = set(%(fail_families)r)

class _TrackedSocket(_RealSocket):
    def __init__(self, *args, **kwargs):
        family = args[0] if args else kwargs.get("family", -1)
        fileno = args[3] if len(args) > 3 else kwargs.get("fileno")
        if fileno is None and family in FAIL_FAMILIES:
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
        super().__init__(*args, **kwargs)
        created.append(self)

# Shown as <socket.socket ...> in messages, like the real class.
_TrackedSocket.__module__, _TrackedSocket.__qualname__ = "socket", "socket"
socket.socket = _TrackedSocket

def open_sockets():
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found = set()
        for name in names:
            try:
                if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                    found.add(int(name))
            except (OSError, ValueError):
                pass
        return found
    return set()

def describe(sock):
    kind = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}.get(sock.family, str(sock.family))
    try:
        peer = sock.getpeername()
        return f"an {kind} socket connected to {peer[0]} port {peer[1]}"
    except OSError:
        return f"an {kind} socket that is not connected"

def left_open(keep):
    """Sockets still open besides `keep` (what connect_to returned)."""
    tracked = [describe(s) for s in created if s is not keep and s.fileno() != -1]
    keep_fd = {keep.fileno()} if isinstance(keep, _RealSocket) else set()
    untracked = open_sockets() - BEFORE - keep_fd
    if len(untracked) > len(tracked):
        tracked += ["a socket made without socket.socket"] * (len(untracked) - len(tracked))
    return tracked

import sockethelpers
BEFORE = open_sockets()
'''

CONNECTS = '''
sock = sockethelpers.connect_to(%(host)r, %(port)r)
result = {"returned": repr(sock)[:200], "is_socket": isinstance(sock, _RealSocket)}
if result["is_socket"]:
    result["kind"] = int(sock.type)
    try:
        result["peer"] = tuple(sock.getpeername()[:2])
    except OSError as exc:
        result["peer"] = None
    result["left_open"] = left_open(sock)
    try:
        sock.settimeout(%(own)r)    # the test's own server answers
        sock.sendall(%(message)r)
        result["reply"] = sock.recv(4096)
    except OSError as exc:
        result["talk_error"] = describe_error(exc)["type"] + ": " + str(exc)
    sock.close()
'''

FAILS = '''
try:
    value = sockethelpers.connect_to(%(host)r, %(port)r)
except BaseException as exc:
    result = {"raised": describe_error(exc)}
    value = None
else:
    result = {"raised": None, "returned": repr(value)[:200]}
result["left_open"] = left_open(value)
'''


def connect_source(host, port, message=b"", plan=None, fail_families=()) -> str:
    """A check that calls connect_to(host, port), sends `message` on the
    socket it returns, and reports the peer, the reply and any socket left open."""
    resolver = fake_resolver_source(plan) if plan else ""
    return (resolver + TRACKING % {"fail_families": tuple(int(f) for f in fail_families)}
            + CONNECTS % {"host": host, "port": port, "message": message, "own": waits.OWN})


def failing_source(host, port, plan=None) -> str:
    resolver = fake_resolver_source(plan) if plan else ""
    return resolver + TRACKING % {"fail_families": ()} + FAILS % {"host": host, "port": port}


def connects_to(runner, server, host, port, message: bytes, reply: bytes, did: str,
                plan=None, fail_families=(), check_leaks=False) -> dict:
    """Run connect_to in a child; check it returned a TCP socket connected to
    `server`, over which `message` went and `reply` came back."""
    out = runner.run(connect_source(host, port, message, plan, fail_families), did=did)
    info = out.value_or_fail(did, f"connect_to returns a socket connected to {server.host} port {server.port}")
    check(info["is_socket"], did, "connect_to returns a socket.socket object",
          f"it returned {info['returned']}")
    kinds = {socket.SOCK_STREAM: "TCP (SOCK_STREAM)", socket.SOCK_DGRAM: "UDP (SOCK_DGRAM)"}
    check(info["kind"] == socket.SOCK_STREAM, did, "a TCP (SOCK_STREAM) socket",
          f"it returned a {kinds.get(info['kind'], 'raw or other')} socket: {info['returned']}",
          hint="ask getaddrinfo for SOCK_STREAM candidates only")
    expected_peer = (server.host, server.port)
    check(info["peer"] == expected_peer, did,
          f"the socket is connected to {server.host} port {server.port}",
          "it is not connected" if info["peer"] is None else
          f"it is connected to {info['peer'][0]} port {info['peer'][1]}")
    check("talk_error" not in info, did, "the test can send on the socket and read the reply",
          info.get("talk_error", ""))
    server.wait_done(waits.OWN)    # the child has closed the socket
    check(server.received == message, did, f"the server receives {message!r} over that socket",
          f"it received {server.received!r}")
    check(info["reply"] == reply, did, f"the test reads the server's reply {reply!r}",
          f"it read {info['reply']!r}")
    if check_leaks:
        check(not info["left_open"], did,
              "the socket of every failed candidate is closed; only the returned one stays open",
              "still open: " + "; ".join(info["left_open"]),
              hint="close the socket of a candidate whose connect() fails before trying the next")
    return info


def require_connect_to_works(runner, servers, rng) -> None:
    """Error handling earns points only from a connect_to that also works."""
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start("127.0.0.1", expect=len(message), reply=reply)
    connects_to(runner, server, "127.0.0.1", server.port, message, reply,
                did=f"first called connect_to('127.0.0.1', {server.port}) with a server "
                    "listening there (error handling counts only when connect_to works)")


def raises_oserror(runner, source, did) -> dict:
    out = runner.run(source, did=did)
    info = out.value_or_fail(did, "connect_to raises OSError")
    error = info["raised"]
    if error is None:
        raise fail(did, "connect_to raises OSError (for example ConnectionRefusedError)",
                   f"it returned {info['returned']} instead of raising",
                   hint="after the last candidate fails, raise the last error you caught")
    check("OSError" in error["bases"], did,
          "connect_to raises OSError (for example ConnectionRefusedError or socket.gaierror)",
          f"it raised {error['type']}: {error['message']}")
    return info


# -- task 1: format_address ------------------------------------------------------

def check_formats(runner, cases: list[tuple], did_what: str) -> None:
    results = runner.call_many("sockethelpers", "format_address", [(addr,) for addr, _ in cases])
    if not isinstance(results, list):
        raise fail(f"called format_address on {did_what}", "it returns the address as text",
                   results.describe())
    for (addr, expected), got in zip(cases, results):
        did = f"called format_address({addr!r})"
        value = got.value_or_fail(did, f"it returns {expected!r}")
        check(value == expected, did, f"it returns {expected!r}", f"it returned {value!r}")


REAL_SOCKNAME = '''
import socket, sockethelpers
with socket.socket(socket.%(family)s, socket.SOCK_STREAM) as s:
    s.bind((%(ip)r, 0))
    name = s.getsockname()
    result = (name, sockethelpers.format_address(name))
'''


def check_real_sockname(runner, family: str, ip: str, bracket: bool) -> None:
    did = f"bound a {family} socket to {ip} and called format_address(sock.getsockname())"
    out = runner.run(REAL_SOCKNAME % {"family": family, "ip": ip}, did=did)
    name, text = out.value_or_fail(did, "it returns the address as text")
    expected = f"[{name[0]}]:{name[1]}" if bracket else f"{name[0]}:{name[1]}"
    check(text == expected, f"{did} (getsockname() gave {name!r})", f"it returns {expected!r}",
          f"it returned {text!r}")


@pytest.mark.points(4)
@pytest.mark.task(1)
def test_format_address_writes_ipv4_as_ip_colon_port(runner, rng):
    random_ip = str(ipaddress.IPv4Address(rng.getrandbits(32)))
    port = rng.randint(1024, 65535)
    cases = [
        (("127.0.0.1", port), f"127.0.0.1:{port}"),
        ((random_ip, 80), f"{random_ip}:80"),
        (("0.0.0.0", 0), "0.0.0.0:0"),
        (("255.255.255.255", 65535), "255.255.255.255:65535"),
    ]
    check_formats(runner, cases, "IPv4 addresses")
    check_real_sockname(runner, "AF_INET", "127.0.0.1", bracket=False)


@pytest.mark.points(5)
@pytest.mark.task(1)
def test_format_address_puts_ipv6_in_brackets(runner, rng):
    random_ip = str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)))
    port = rng.randint(1024, 65535)
    cases = [
        (("::1", port, 0, 0), f"[::1]:{port}"),
        (("2001:db8::7", 80, 0, 0), "[2001:db8::7]:80"),
        ((random_ip, port, 0, 0), f"[{random_ip}]:{port}"),
        (("2001:db8::7", 443, rng.randint(1, 1000), rng.randint(1, 9)), "[2001:db8::7]:443"),
        (("::ffff:192.0.2.1", 8080, 0, 0), "[::ffff:192.0.2.1]:8080"),
        (("::", 0, 0, 0), "[::]:0"),
    ]
    check_formats(runner, cases, "IPv6 addresses")
    check_real_sockname(runner, "AF_INET6", "::1", bracket=True)


# -- task 2: connect_to ----------------------------------------------------------

@pytest.mark.points(5)
@pytest.mark.task(2)
def test_connect_to_returns_a_socket_connected_to_an_ipv4_server(runner, servers, rng):
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start("127.0.0.1", expect=len(message), reply=reply)
    connects_to(runner, server, "127.0.0.1", server.port, message, reply,
                did=f"a server listens on 127.0.0.1 port {server.port}; "
                    f"called connect_to('127.0.0.1', {server.port})")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_connect_to_reaches_an_ipv6_server(runner, servers, rng):
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start("::1", expect=len(message), reply=reply)
    connects_to(runner, server, "::1", server.port, message, reply,
                did=f"a server listens on ::1 (IPv6) port {server.port}; "
                    f"called connect_to('::1', {server.port})")


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_connect_to_resolves_a_host_name(runner, servers, rng):
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start(localhost_ip(), expect=len(message), reply=reply)
    connects_to(runner, server, "localhost", server.port, message, reply,
                did=f"a server listens on {server.host} port {server.port}; "
                    f"called connect_to('localhost', {server.port})")


@pytest.mark.points(4)
@pytest.mark.task(2)
def test_connect_to_raises_oserror_when_nothing_listens(runner, servers, rng):
    require_connect_to_works(runner, servers, rng)
    port = servers.refusing_port("127.0.0.1")
    raises_oserror(runner, failing_source("127.0.0.1", port),
                   did=f"called connect_to('127.0.0.1', {port}), a port where nothing listens")


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_connect_to_raises_oserror_for_an_unknown_host(runner, servers, rng, free_port):
    require_connect_to_works(runner, servers, rng)
    port = free_port()
    raises_oserror(runner, failing_source(NOWHERE, port, plan={NOWHERE: None}),
                   did=f"called connect_to({NOWHERE!r}, {port}), a name that does not resolve "
                       "(getaddrinfo raises socket.gaierror)")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_connect_to_tries_later_candidates_after_refusals(runner, servers, rng):
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start("127.0.0.1", expect=len(message), reply=reply)
    dead_v6, dead_v4 = servers.refusing_port("::1"), servers.refusing_port("127.0.0.1")
    plan = {MULTI: [("::1", dead_v6), ("127.0.0.1", dead_v4), ("127.0.0.1", server.port)]}
    connects_to(runner, server, MULTI, server.port, message, reply, plan=plan,
                did=f"getaddrinfo({MULTI!r}, ...) gave three candidates: ::1 port {dead_v6} "
                    f"(refuses), 127.0.0.1 port {dead_v4} (refuses), 127.0.0.1 port {server.port} "
                    f"(a server); called connect_to({MULTI!r}, {server.port})")


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_connect_to_takes_the_first_candidate_that_answers(runner, servers, rng):
    for first_host, second_host in (("::1", "127.0.0.1"), ("127.0.0.1", "::1")):
        message = textgen.message(rng).encode()
        first = servers.start(first_host, expect=len(message), reply=b"first " + reply_for(rng).encode())
        second = servers.start(second_host, expect=len(message), reply=b"second " + reply_for(rng).encode())
        plan = {MULTI: [(first_host, first.port), (second_host, second.port)]}
        connects_to(runner, first, MULTI, first.port, message, first.reply, plan=plan,
                    did=f"getaddrinfo({MULTI!r}, ...) gave two candidates with a server on each: "
                        f"first {first_host} port {first.port}, then {second_host} port "
                        f"{second.port}; called connect_to({MULTI!r}, {first.port})")


@pytest.mark.points(5)
@pytest.mark.task(2)
def test_connect_to_closes_the_sockets_of_failed_candidates(runner, servers, rng):
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start("127.0.0.1", expect=len(message), reply=reply)
    dead = [servers.refusing_port(host) for host in ("::1", "127.0.0.1", "127.0.0.1")]
    plan = {MULTI: [("::1", dead[0]), ("127.0.0.1", dead[1]), ("127.0.0.1", server.port)]}
    connects_to(runner, server, MULTI, server.port, message, reply, plan=plan, check_leaks=True,
                did=f"getaddrinfo({MULTI!r}, ...) gave ::1 port {dead[0]} (refuses), 127.0.0.1 "
                    f"port {dead[1]} (refuses), 127.0.0.1 port {server.port} (a server); "
                    f"called connect_to({MULTI!r}, {server.port})")

    plan = {MULTI: [("::1", dead[0]), ("127.0.0.1", dead[1]), ("127.0.0.1", dead[2])]}
    did = (f"getaddrinfo({MULTI!r}, ...) gave three candidates that all refuse (::1 port "
           f"{dead[0]}, 127.0.0.1 ports {dead[1]} and {dead[2]}); called connect_to({MULTI!r}, {dead[2]})")
    info = raises_oserror(runner, failing_source(MULTI, dead[2], plan=plan), did=did)
    check(not info["left_open"], did, "every socket connect_to opened is closed when it raises",
          "still open: " + "; ".join(info["left_open"]),
          hint="close the socket of every candidate whose connect() fails, the last one too")


@pytest.mark.points(2)
@pytest.mark.task(2)
def test_connect_to_skips_a_candidate_whose_socket_cannot_be_created(runner, servers, rng):
    message = textgen.message(rng).encode()
    reply = reply_for(rng).encode()
    server = servers.start("127.0.0.1", expect=len(message), reply=reply)
    dead_v6 = servers.refusing_port("::1")
    plan = {MULTI: [("::1", dead_v6), ("127.0.0.1", server.port)]}
    connects_to(runner, server, MULTI, server.port, message, reply, plan=plan,
                fail_families=(socket.AF_INET6,),
                did=f"made IPv6 sockets impossible (socket(AF_INET6, ...) raises OSError, as "
                    f"on a machine without IPv6); getaddrinfo({MULTI!r}, ...) gave ::1 port "
                    f"{dead_v6}, then 127.0.0.1 port {server.port} (a server); "
                    f"called connect_to({MULTI!r}, {server.port})")
