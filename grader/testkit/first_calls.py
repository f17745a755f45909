"""The first call of each function the module exercises test (00's
basics.py, 02's sockethelpers.py, 10's framing.py): fixed, plain arguments
whose answer never changes, made before a check's own calls of that
function (grader.harness.module_calls.ModuleRunner.first_calls). Each is
a gate (grader.harness.gates.first_call): a function that never returns
costs one wait, not one per test that calls it.

Only functions whose answer to fixed arguments does not depend on the
machine or the network are listed (not resolve()). connect_to()'s first
call connects to a socket that the check's own process listens on
(`listening_port()`, grader.harness.module_calls), on 127.0.0.1: a
connection that completes in the kernel whatever the machine; a socket
with bytes already waiting in it, one end of a local socket pair, is a
fixed argument."""

FIRST_CALLS = {
    "basics.ip_version": "basics.ip_version('127.0.0.1')",
    "basics.address_count": "basics.address_count(4)",
    "basics.ipv4_to_int": "basics.ipv4_to_int('127.0.0.1')",
    "basics.int_to_ipv4": "basics.int_to_ipv4(2130706433)",
    "basics.port_to_bytes": "basics.port_to_bytes(80)",
    "basics.bytes_to_port": "basics.bytes_to_port(b'\\x00P')",
    "sockethelpers.format_address": "sockethelpers.format_address(('127.0.0.1', 80))",
    "sockethelpers.connect_to": "sockethelpers.connect_to('127.0.0.1', listening_port())",
    "framing.encode": "framing.encode(b'ping')",
    "framing.Decoder": "framing.Decoder().feed(b'')",
    # A socket pair with the 4 bytes already sent (made by the check's
    # child: grader.harness.module_calls), so the answer is always b'ping'.
    "framing.recv_exact": "framing.recv_exact(_socklab_socket_holding(b'ping'), 4)",
}
