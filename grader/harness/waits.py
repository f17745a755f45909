"""How long the grader waits for a student's program: every wait, in one table.

A wait is paid in full exactly when a program is broken (a correct program
answers long before it ends), so each one is as short as a correct program
allows, and no shorter. The released student repository has no reference
solution to measure against at grading time, so the figures are constants,
recorded here from the reference solutions graded on a 2-core machine as
instructors grade them, 8 test workers (the slowest of every wait of that
kind over 3 whole gradings of all the solutions, 2026-12-07:
`python grading-costs/wait_figures.py --runs 3`), each with the margin it
allows:

- a program may spend 1.5 s starting up before it binds, and
- it may be 5 times slower than the reference at every message,

and both still earn full marks (tests/test_slow_programs.py grades such
slowed solutions). On top of that, each wait keeps room for the machine:
another test's program busy on the other core, a sandbox starting.
"""

from __future__ import annotations

import os

# Start-up: from the spawn to the ready line. Reference: at most 0.29 s
# over 633 starts (median 0.09 s: a sandboxed interpreter's start with the
# machine's 8 test workers busy). Allowed: 1.5 s of slow start-up + 5 x
# 0.29 s = 2.95 s. The slowed solutions, all graded at once, took at most
# 1.69 s over 844 starts (`wait_figures.py --runs 2 --shape slow`): the
# 1.5 s sleep and 0.19 s, well inside it.
READY = 3.0
# A reply: from a client's request (or connection) to the line, bytes or
# datagram it waits for. Reference: at most 0.051 s over 187,427 replies
# (99 % within 0.1 ms). Allowed: 5 x that is 0.26 s; the rest is room for a
# loaded machine, and costs little: a program that never replies pays this
# wait once, at its gate, not once per test.
REPLY = 1.5
# End of file on a connection the server should close, or its exit after
# end of input: a reply that happens to carry no data.
EOF = REPLY
# From the moment the kernel shows that a program has done what its ready
# line announces (a server's listening socket, a fork: grader.harness.listening)
# to the line itself. Nothing but a print, or a little set-up, lies between:
# a reply's time. A program that listens and never says so costs this, not READY.
DONE_TO_LINE = REPLY
# A program's exit after a signal (SIGINT, SIGTERM) or after it finished its
# work. Reference: at most 0.15 s over the 135 exits of one grading (not
# counting 06's client tests, whose wait includes the 1 to 3 s of retries
# the contract asks for). Allowed: 5 x that, and an interpreter's shutdown
# on a busy machine.
EXIT = 2.0
# A client program's whole run against the grader's fake server (02, 06),
# from its start to its exit: start-up and a few exchanges.
CLIENT_RUN = READY + 2 * REPLY

# A process sent SIGKILL is gone within a millisecond or two (measured: the
# program's group killed, then its leader a zombie); a process stuck in the
# kernel (disk, a frozen file system) may take longer, and the stop goes on
# without waiting further.
KILLED = 1.0

# Set by grading-costs/wait_figures.py: every finished wait is appended to
# this file as "KIND SECONDS", to record the figures above.
_LOG = os.environ.get("SOCKLAB_WAIT_LOG")


def observed(kind: str, seconds: float) -> None:
    """Record how long a wait of `kind` took, when figures are being recorded."""
    if _LOG:
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{kind} {seconds:.4f}\n".encode())
        finally:
            os.close(fd)


# -- Waits made of the kinds above ------------------------------------------
# Each is what the program must do in it, in the kinds above; where a suite
# writes a sum (waits.REPLY + waits.EXIT), the reason stands next to it.

# A program that refuses to start (bad arguments, a port in use, a path it
# must not take) exits after its start-up and nothing else: the ready
# line's wait covers it (the exit itself takes milliseconds). Slow: the
# same 1.5 s of start-up, once per process (a program and the module it
# imports sleep once between them, see grader/bench/variants.py).
REFUSAL = READY
# A program already seen leaving (its exit was seen, or its wait for a
# ready line ran out and the test asks whether it exited meanwhile, as a
# program that could not bind does): how long its exit takes to show, not a
# wait for it to decide anything.
FINISHING = 0.5

# A module check's whole run (grader.harness.module_calls): a child
# interpreter starts, imports the student's module and calls its functions
# on a batch of inputs. Reference: at most 1.2 s per run (00, 02, 10);
# slow (1.5 s of import, slowed socket calls): at most 3.2 s.
MODULE_RUN = 10.0
# Within a module check: how long the check may go without a return from
# the student's code (grader.harness.module_calls watches every function of
# the student's modules), outside the import, which has READY. A function
# that never returns costs this, not the whole run's wait. Reference: at
# most 0.11 s over the 60 checks of a whole grading (the slowed solutions:
# 0.065 s; `wait_figures.py --runs 1 [--shape slow]`, kind module-gap).
# Allowed: 5 x 0.11 s, rounded up.
CALL = 0.6
# A module check that runs hypothesis properties, shrinking a failure to
# its smallest example (10_framing): the shrinking is what a failing
# module costs. Reference, passing: at most 1.2 s; slow: 2.7 s.
PROPERTY_RUN = 40.0

# -- Windows in which a correct program stays quiet -------------------------
# Not waits on the program: a correct program passes them by doing nothing,
# so they are never lengthened for a slow program; making them longer
# would only make a broken program's misdeed likelier to be seen.

# A measure of the CPU an idle program wants (grader.harness.cpu): 0.3 s of
# quiet. The measure is in nanoseconds of time running or waiting to run,
# so a busy loop shows as 100 % in any window, and a server asleep in the
# kernel as about 0 %; 0.3 s still spans 60 passes of a server that wakes
# every 5 ms (07's). The window is short because such tests run apart
# (`quiet`), the rest of the machine waiting for them.
IDLE_WINDOW = 0.3
# "Nothing more arrives": after the awaited datagrams or lines, anything
# still in flight on loopback has arrived by then (sub-millisecond), so a
# stray extra datagram, or an answer to half a line, shows.
SILENCE = 0.3
# No room to send for this long: the peer has stopped reading (a server
# blocked in send() because the test does not read its echo). A correct
# server that still reads takes data at least every few milliseconds,
# slowed or not.
STALL = 0.5

# -- The grader's own side --------------------------------------------------
# A wait on the test's own threads and sockets, or on the kernel (a
# connection to the test's own listener, a port showing TIME_WAIT, a
# process showing as stopped after SIGSTOP), never on the student's
# program: it ends in milliseconds on a working machine, and only a broken
# machine pays it.
OWN = 5.0

# -- Transfers and crowds ---------------------------------------------------
# Waits whose length grows with the work a test asks for. Each also makes
# sure the program keeps making progress at least every REPLY, so that a
# program that has stopped costs a reply's wait, not the whole backstop.

# A bulk transfer: up to a few MB sent while reading the echo
# (grader.testkit.line_client.send_while_reading), or a megabyte frame.
# Reference, whole gradings: at most 0.94 s (up to 8 MB echoed to a reader
# with a 4 KiB buffer, 07), the echo never pausing more than 0.04 s; slow:
# 0.70 s, 0.04 s.
BULK = 10.0
# A whole step of a crowd of hundreds to thousands of clients
# (grader.testkit.crowd, 08's churn): a thousand users joining a chat room,
# every one of them hearing a line. A backstop: each such wait also fails
# as soon as nothing has come for REPLY. Reference: 1.6 s to 2.3 s to join
# 1,000 users to the epoll chat server, 0.23 s for 08's churn of 120
# newcomers; slow (tests/test_slow_programs.py): 3.7 s to 7.3 s, 0.40 s.
CROWD = 60.0

# The back-off of grader.testkit.crowd.connect_many: a batch of connections
# not all established within BATCH_CONNECT, or not all counted by the
# server (its `count` command, 09) within BATCH_COUNT, is reset and retried
# smaller. Retry intervals of the harness, not verdicts: a correct server
# that is slow to accept only makes the batches smaller; only single
# connections that stall fail. Reference: a batch of 64 connects within
# 0.04 s, a count answered within 0.04 s (slow: 0.02 s and 0.04 s).
BATCH_CONNECT = 0.5
BATCH_COUNT = 1.0
