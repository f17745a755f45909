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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        # Linux never allows more than fs.nr_open descriptors per process.
        with open("/proc/sys/fs/nr_open") as f:
            target = int(f.read())
    else:
        target = hard
    if soft != target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def descriptors_in_use():
    """How many descriptors this process has open right now."""
    # listdir opens the directory itself, which shows up in the listing.
    return len(os.listdir("/proc/self/fd")) - 1


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
        self.epoll = select.epoll()
        self.epoll.register(self.listen_fd, select.EPOLLIN)

    # -- Task 2: the event loop and accepting ----------------------------

    def run(self):
        """Wait for events forever and hand each one to the right method."""
        while True:
            # No timeout: sleep in the kernel until some socket is ready.
            # However many clients are connected, only the ready ones come
            # back, so an idle crowd costs nothing here.
            for fd, events in self.epoll.poll():
                if fd == self.listen_fd:
                    self.accept_all()
                    continue
                if events & select.EPOLLOUT and fd in self.clients:
                    self.flush(fd)
                if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) \
                        and fd in self.clients:
                    self.read(fd)

    def accept_all(self):
        """Accept every connection waiting in the listen queue."""
        while True:
            try:
                conn, _address = self.listener.accept()
            except BlockingIOError:
                return                          # the queue is empty
            except OSError as err:
                if err.errno in OUT_OF_RESOURCES:
                    # The listener stays readable while connections wait,
                    # so a level-triggered epoll would wake us for it again
                    # and again: stop watching it until a client leaves.
                    self.epoll.modify(self.listen_fd, 0)
                    self.accepting = False
                    return
                continue                        # that client gave up: next one
            conn.setblocking(False)
            self.clients[conn.fileno()] = Client(conn)
            self.epoll.register(conn.fileno(), select.EPOLLIN)

    # -- Task 3: lines and answers ----------------------------------------

    def read(self, fd):
        """Take what a client sent and answer every complete line."""
        client = self.clients[fd]
        try:
            data = client.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""                          # reset: gone all the same
        if not data:
            self.drop(fd)
            return
        client.inbox += data
        # TCP keeps no boundaries: answer complete lines only, keep the rest.
        while (end := client.inbox.find(b"\n")) != -1:
            line = bytes(client.inbox[:end])
            del client.inbox[: end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not self.reply(fd, answer(line.decode("utf-8", errors="replace"),
                                         len(self.clients))):
                return                          # the client is gone

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
        client = self.clients.pop(fd)
        self.epoll.unregister(fd)
        client.sock.close()
        if not self.accepting:
            # A descriptor is free again: take connections again.
            self.epoll.modify(self.listen_fd, select.EPOLLIN)
            self.accepting = True

    def close(self):
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.epoll.close()
        self.listener.close()


def answer(text, clients):
    """The reply to one line of the protocol."""
    if text == "count":
        return f"clients {clients}"
    if text.startswith("ping "):
        return "pong " + text[len("ping "):]
    return "error unknown command"


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
