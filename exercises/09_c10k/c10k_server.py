"""A tiny line server built to hold ten thousand connections at once.

Usage: python -u c10k_server.py PORT

One thread, one epoll instance, non-blocking sockets. The server first
raises its own limit on open descriptors (every connection costs one), then
says how many connections it can take, and answers three things:

    ping TOKEN  ->  pong TOKEN
    count       ->  clients N      (N: clients connected right now)
    anything    ->  error unknown command

Nothing here costs time per *connected* client, only per *active* one:
epoll hands back the few sockets that are ready, every socket has its own
small state in a dict, and no loop ever walks all the clients.
"""

import errno
import os
import resource
import select
import signal
import socket
import sys

USAGE = "usage: python c10k_server.py PORT"
BACKLOG = 4096          # the kernel caps it at net.core.somaxconn
RECV_SIZE = 4096        # the most bytes taken from one socket per wake-up
MAX_OUTBOX = 1 << 16    # stop reading a client whose replies pile up unread

# accept() errors that mean "out of descriptors or memory", not "that one
# client gave up": retrying at once would fail again.
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def parse_args(argv):
    """Return the port, or exit with a usage message."""
    if len(argv) != 2 or not (argv[1].isascii() and argv[1].isdigit()):
        sys.exit(USAGE)
    port = int(argv[1])
    if not 1 <= port <= 65535:
        sys.exit(USAGE)
    return port


# -- Task 1: as many descriptors as the system allows ------------------------

def raise_descriptor_limit():
    """Raise the soft RLIMIT_NOFILE to the hard one and return the new limit.

    The soft limit (often 1024) is what the kernel enforces; the hard limit
    is the ceiling up to which any process may raise its own soft limit."""
    # TODO(task 1): read the soft and hard limits with
    # resource.getrlimit(resource.RLIMIT_NOFILE), set the soft one to the
    # hard one with resource.setrlimit (keep the hard one as it is), and
    # return the new soft limit. If the hard limit is resource.RLIM_INFINITY,
    # use the number in /proc/sys/fs/nr_open instead (Linux's ceiling).
    raise NotImplementedError("TODO(task 1): raise the descriptor limit")


def descriptors_in_use():
    """How many descriptors this process has open right now."""
    # TODO(task 1): /proc/self/fd lists one entry per open descriptor of
    # this process. Count them with os.listdir, remembering that listing the
    # folder opens one more descriptor, which is listed too.
    raise NotImplementedError("TODO(task 1): count the open descriptors")


def open_listener(port):
    """Return a non-blocking TCP socket listening on 0.0.0.0:port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        # A long queue: when thousands connect at once, the kernel holds
        # the connections we have not accepted yet instead of dropping them.
        listener.listen(BACKLOG)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


class Client:
    """What the server keeps per connection: a few bytes, nothing more."""

    __slots__ = ("sock", "inbox", "outbox", "events")

    def __init__(self, sock):
        self.sock = sock
        self.inbox = bytearray()    # received bytes not yet ending in "\n"
        self.outbox = bytearray()   # replies the kernel has not taken yet
        self.events = select.EPOLLIN


class C10kServer:
    """The whole server: one epoll instance and a dict of clients."""

    def __init__(self, listener):
        self.listener = listener
        self.listen_fd = listener.fileno()
        self.clients = {}           # descriptor -> Client
        self.accepting = True       # False while out of descriptors
        # TODO(task 2): create the epoll instance (select.epoll()) as
        # self.epoll and register the listening socket for EPOLLIN.
        raise NotImplementedError("TODO(task 2): create the epoll instance")

    # -- Task 2: the event loop and accepting ----------------------------

    def run(self):
        """Wait for events forever and hand each one to the right method."""
        # TODO(task 2): loop forever around self.epoll.poll() with no
        # timeout. Each event is a (descriptor, event bits) pair:
        # - the listening socket: call self.accept_all();
        # - a client with EPOLLOUT in its bits: call self.flush(fd);
        # - a client with EPOLLIN, EPOLLHUP or EPOLLERR: call self.read(fd).
        # Check `fd in self.clients` before each call: an earlier call of
        # the same round may have dropped that client.
        raise NotImplementedError("TODO(task 2): the event loop")

    def accept_all(self):
        """Accept every connection waiting in the listen queue."""
        # TODO(task 2): call self.listener.accept() in a loop until it raises
        # BlockingIOError (the queue is empty). Make each new connection
        # non-blocking, keep Client(conn) in self.clients under its fileno()
        # and register that descriptor for EPOLLIN. An OSError whose errno
        # is in OUT_OF_RESOURCES means no descriptor is left: stop watching
        # the listener (self.epoll.modify(self.listen_fd, 0)), set
        # self.accepting = False and return; any other OSError is one client
        # that gave up: go on with the next.
        raise NotImplementedError("TODO(task 2): accept every waiting connection")

    # -- Task 3: lines and answers ----------------------------------------

    def read(self, fd):
        """Take what a client sent and answer every complete line."""
        # TODO(task 3): recv(RECV_SIZE) from the client's socket. Nothing to
        # read yet (BlockingIOError): return. End of stream (b"") or another
        # OSError (a reset): the client is gone, call self.drop(fd) (task 4)
        # and return. Otherwise add the bytes to client.inbox and, for every
        # complete line in it: cut it off the inbox, strip one trailing
        # "\r", decode it as UTF-8 with errors="replace" and send
        # answer(text, len(self.clients)) with self.reply(fd, ...). If reply
        # returns False the client is gone: stop there.
        raise NotImplementedError("TODO(task 3): read and answer lines")

    def reply(self, fd, text):
        """Queue one line for a client and send what the kernel takes now.
        Returns False if the client turned out to be gone."""
        client = self.clients[fd]
        client.outbox += (text + "\n").encode("utf-8")
        return self.flush(fd)

    def flush(self, fd):
        """Send as much of the outbox as the kernel takes without waiting,
        and watch for room (EPOLLOUT) only while something is left."""
        client = self.clients[fd]
        try:
            sent = client.sock.send(client.outbox) if client.outbox else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self.drop(fd)
            return False
        del client.outbox[:sent]
        wanted = 0
        if len(client.outbox) < MAX_OUTBOX:
            wanted |= select.EPOLLIN
        if client.outbox:
            # Only now: a socket with room to write is "ready" almost all
            # the time, so watching EPOLLOUT for every client would wake the
            # loop for all of them, over and over.
            wanted |= select.EPOLLOUT
        if wanted != client.events:
            self.epoll.modify(fd, wanted)
            client.events = wanted
        return True

    # -- Task 4: goodbyes -------------------------------------------------

    def drop(self, fd):
        """Forget a client: off the interest list, then close its socket."""
        # TODO(task 4): take the client out of self.clients, unregister its
        # descriptor from self.epoll (before closing: a closed socket has no
        # descriptor any more), then close its socket. If self.accepting is
        # False, a descriptor is free again: watch the listener for EPOLLIN
        # again (self.epoll.modify) and set self.accepting back to True.
        raise NotImplementedError("TODO(task 4): drop a client")

    def close(self):
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.epoll.close()
        self.listener.close()


def answer(text, clients):
    """The reply to one line of the protocol."""
    # TODO(task 3): "count" -> "clients N" (N: `clients`); "ping TOKEN" ->
    # "pong TOKEN"; anything else -> "error unknown command".
    raise NotImplementedError("TODO(task 3): answer one line")


def stop(signum, frame):
    """On SIGTERM, leave the loop the way Ctrl-C (SIGINT) does."""
    raise KeyboardInterrupt


def main(argv):
    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C raises KeyboardInterrupt, even when the server was started with
    # SIGINT ignored (a shell does that to the jobs it starts in background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    port = parse_args(argv)
    limit = raise_descriptor_limit()
    try:
        listener = open_listener(port)
    except OSError as err:
        sys.exit(f"c10k_server: cannot listen on port {port}: {err}")
    server = C10kServer(listener)
    # Every descriptor not open now can hold one client.
    print(f"ready for {limit - descriptors_in_use()} connections", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass                                    # SIGINT or SIGTERM: exit 0
    finally:
        server.close()


if __name__ == "__main__":
    main(sys.argv)
