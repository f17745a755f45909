"""A chat room served by one thread that waits on many sockets with epoll.

Usage: python -u chat_server_epoll.py PORT

The same chat room as 03_poll (a user's number is the file descriptor of
its connection socket), but the waiting is done by an epoll instance,
through the course's uepoll module. Like the C program in the guide, the
server keeps every open socket in a list `fds` and registers each one with
epoll carrying its *index* in that list as the event's data, so that an
event leads straight to its socket: fds[data]. Removing a socket fills its
slot with the last entry of the list, which must then be told its new index.
"""

import signal
import socket
import sys

import uepoll
from uepoll import EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLIN

USAGE = "usage: python chat_server_epoll.py PORT"
BACKLOG = 512          # connections the kernel may queue before we accept them
RECV_SIZE = 4096       # the most bytes we take from one socket per wake-up
MAX_EVENTS = 1024      # the most events one wait() hands back
LISTENER = 0           # the listening socket's index in fds
READY_LINE = "started the main epoll loop"


def parse_args(argv):
    """Return the port, or exit with a usage message."""
    if len(argv) != 2 or not (argv[1].isascii() and argv[1].isdigit()):
        sys.exit(USAGE)
    port = int(argv[1])
    if not 1 <= port <= 65535:
        sys.exit(USAGE)
    return port


def open_listener(port):
    """Return a TCP socket listening on 0.0.0.0:port (OSError if impossible)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Let a restarted server bind at once even if an old connection on
        # this port is still in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


class ChatServer:
    """All the state of the server, and the epoll loop that drives it."""

    def __init__(self, listener):
        self.epoll = uepoll.Epoll()
        self.fds = []          # every open socket; fds[i] is registered with data i
        self.buffers = {}      # user number -> bytearray of bytes not yet ending in "\n"
        self.departed = set()  # indexes in fds of users who left during this round
        self.add_to_fds(listener)  # index 0 (LISTENER)

    # -- Task 1: registering a socket -------------------------------------

    def add_to_fds(self, sock):
        """Append sock to fds and register it with its index as the data."""
        index = len(self.fds)
        # The kernel keeps `index` and hands it back with every event for
        # this socket: that is how the loop finds the socket again.
        self.epoll.ctl(EPOLL_CTL_ADD, sock.fileno(), EPOLLIN, index)
        self.fds.append(sock)

    # -- Task 2: the epoll loop -------------------------------------------

    def run(self):
        """Wait for events forever and hand each one to the right method."""
        print(READY_LINE, flush=True)
        while True:
            # No timeout: sleep in the kernel until a socket is ready.
            for _events, index in self.epoll.wait(MAX_EVENTS):
                # The data is an index into fds. It stays valid during the
                # whole round because nothing is removed before the round
                # ends (a newcomer is appended at the end, moving nobody).
                if index == LISTENER:
                    self.accept_newcomer()
                elif index not in self.departed:
                    self.serve_client(index)
            # Removing swaps entries around, which would make the indexes
            # of the events still to be handled point at the wrong sockets:
            # so removals wait until every event of the round is handled.
            self.remove_departed()

    # -- Task 3: removing a socket (swap-delete) ----------------------------

    def del_from_fds(self, index):
        """Close fds[index] and fill its slot with the last entry of fds."""
        sock = self.fds[index]
        # Not strictly needed: closing the last reference to a socket also
        # takes it off the interest list. But it says what we mean.
        fd = sock.fileno()
        sock.close()
        self.epoll.ctl(EPOLL_CTL_DEL, fd)
        last = self.fds.pop()
        if index < len(self.fds):
            # The hole is not at the end: move the last entry into it, and
            # tell the kernel its new index, or its next event would carry
            # the old one (now past the end of the list).
            self.fds[index] = last
            self.epoll.ctl(EPOLL_CTL_MOD, last.fileno(), EPOLLIN, index)

    def remove_departed(self):
        """Remove every user who left this round and tell the others."""
        # Highest index first: removing slot i moves only the last entry,
        # which has a higher index than every departed user still waiting
        # (or is slot i itself), so their indexes stay right. Announcing a
        # departure can discover more departed users (their send fails);
        # those are recorded with indexes that are valid at that moment.
        while self.departed:
            index = max(self.departed)
            self.departed.remove(index)
            number = self.fds[index].fileno()
            del self.buffers[number]
            self.del_from_fds(index)
            self.broadcast(f"user {number} disconnected")

    # -- Accepting users, reading lines, broadcasting ----------------------

    def accept_newcomer(self):
        """Accept one waiting connection and add it to the room."""
        try:
            conn, _address = self.fds[LISTENER].accept()
        except OSError:
            return  # the client gave up before we accepted it; nothing to do
        number = conn.fileno()  # the user's number
        self.buffers[number] = bytearray()
        self.add_to_fds(conn)
        try:
            conn.sendall(f"welcome, you are user {number}\n".encode("utf-8"))
        except OSError:
            self.departed.add(len(self.fds) - 1)
        self.broadcast(f"user {number} joined the chat room", skip=number)

    def serve_client(self, index):
        """Read what fds[index] sent and broadcast every complete line."""
        sock = self.fds[index]
        number = sock.fileno()
        try:
            chunk = sock.recv(RECV_SIZE)
        except OSError:
            chunk = b""  # reset or another error: the user is gone all the same
        if not chunk:
            self.departed.add(index)
            return
        buffer = self.buffers[number]
        buffer += chunk
        # TCP keeps no message boundaries: act on complete lines only.
        while (end := buffer.find(b"\n")) != -1:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]  # telnet ends its lines with "\r\n"
            text = line.decode("utf-8", errors="replace")
            self.broadcast(f"user {number}: {text}", skip=number)

    def broadcast(self, text, skip=None):
        """Print text and send it as a line to every user but `skip`."""
        print(text, flush=True)
        data = (text + "\n").encode("utf-8")
        for index in range(1, len(self.fds)):  # index 0 is the listener
            sock = self.fds[index]
            if index in self.departed or sock.fileno() == skip:
                continue
            try:
                sock.sendall(data)
            except OSError:
                # Gone (reset, broken pipe...). Removing it now would move
                # entries of the list we are walking: mark it instead.
                self.departed.add(index)

    def close(self):
        """Close every socket and the epoll instance."""
        for sock in self.fds:
            sock.close()
        self.fds.clear()
        self.epoll.close()


def stop(signum, frame):
    """On SIGTERM, leave the loop the way Ctrl-C (SIGINT) does."""
    raise KeyboardInterrupt


def main(argv):
    signal.signal(signal.SIGTERM, stop)
    port = parse_args(argv)
    try:
        listener = open_listener(port)
    except OSError as err:
        sys.exit(f"chat_server_epoll: cannot listen on port {port}: {err}")

    server = ChatServer(listener)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # SIGINT or SIGTERM: a clean exit with status 0
    finally:
        server.close()


if __name__ == "__main__":
    main(sys.argv)
