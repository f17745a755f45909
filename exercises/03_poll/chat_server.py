"""A chat room served by one thread that waits on many sockets with poll().

Usage: python -u chat_server.py PORT MAX_ROOM_SIZE

Every client is a user whose number is the file descriptor of its
connection socket. A line typed by one user is sent to all the others as
"user N: TEXT"; joins and departures are announced the same way. The whole
program waits in exactly one place: select.poll().
"""

import select
import signal
import socket
import sys

USAGE = "usage: python chat_server.py PORT MAX_ROOM_SIZE"
BACKLOG = 128          # connections the kernel may queue before we accept them
RECV_SIZE = 4096       # the most bytes we take from one socket per wake-up
READY_LINE = "started the main poll loop"


def parse_positive(text, largest=None):
    """Return text as an int >= 1 (and <= largest), or None if it is not one."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    if value < 1 or (largest is not None and value > largest):
        return None
    return value


def parse_args(argv):
    """Return (port, max_room_size), or exit with a usage message."""
    if len(argv) != 3:
        sys.exit(USAGE)
    port = parse_positive(argv[1], largest=65535)
    max_room_size = parse_positive(argv[2])
    if port is None or max_room_size is None:
        sys.exit(USAGE)
    return port, max_room_size


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


class ChatRoom:
    """All the state of the server, and the poll loop that drives it."""

    def __init__(self, listener, max_room_size):
        self.listener = listener
        self.max_room_size = max_room_size
        self.poller = select.poll()
        self.clients = {}      # fd -> connection socket, for every user in the room
        self.buffers = {}      # fd -> bytearray of received bytes not yet ending in "\n"
        self.departed = set()  # fds of users who left; removed after each round

    # -- Task 1: the poll loop --------------------------------------------

    def run(self):
        """Wait for events forever and hand each one to the right method."""
        # TODO(task 1): register the listening socket with self.poller for
        # POLLIN, print READY_LINE (flush it), then loop forever: block in
        # self.poller.poll() with no timeout, and for every (fd, events) it
        # returns call self.accept_newcomer() for the listener, or
        # self.serve_client(fd) for a user still in the room (in
        # self.clients and not in self.departed). After each round, if
        # anyone departed, call self.remove_departed().
        raise NotImplementedError("TODO(task 1): the poll loop")

    # -- Task 2: broadcast ------------------------------------------------

    def broadcast(self, text, skip=None):
        """Print text and send it as a line to every user except skip."""
        # TODO(task 2): print text (flush it), then send text + "\n",
        # encoded as UTF-8, with sendall() to every user in self.clients
        # except skip and those already in self.departed. A send that raises
        # OSError means that user is gone: add its fd to self.departed (do
        # not close or remove anything here) and carry on with the others.
        raise NotImplementedError("TODO(task 2): broadcast a line")

    # -- Task 3: accepting and adding users --------------------------------

    def accept_newcomer(self):
        """Accept one waiting connection: turn it away or add it to the room."""
        # TODO(task 3): accept() the connection (return quietly on OSError).
        # If the room already holds self.max_room_size users, send it
        # "room is full\n" and close it. Otherwise its fd is the user's
        # number: store the socket in self.clients and an empty bytearray
        # in self.buffers, register the fd for POLLIN, send it
        # "welcome, you are user N\n" and broadcast the join to the others.
        raise NotImplementedError("TODO(task 3): accept and add a user")

    # -- Task 4: reading lines ----------------------------------------------

    def serve_client(self, fd):
        """Read what user fd sent and broadcast every complete line in it."""
        # TODO(task 4): recv() once (up to RECV_SIZE bytes). b"" (end of
        # file) or an OSError (reset...) means the user left: add fd to
        # self.departed and return. Otherwise append the bytes to the
        # user's buffer, and for every complete line in it (up to a b"\n"):
        # take it out, strip one trailing b"\r", decode it with
        # errors="replace" and broadcast "user N: TEXT" to everyone else.
        # Bytes after the last b"\n" stay in the buffer for next time.
        raise NotImplementedError("TODO(task 4): read and broadcast lines")

    # -- Task 5: removing users ----------------------------------------------

    def remove_departed(self):
        """Close every departed user's socket and tell the others."""
        # TODO(task 5): while self.departed is not empty, pop one fd, drop
        # it from self.clients and self.buffers, unregister it from the
        # poller, close its socket and broadcast "user N disconnected".
        # Use a loop, not recursion: that broadcast may add more users to
        # self.departed.
        raise NotImplementedError("TODO(task 5): remove departed users")

    def close(self):
        """Close every socket the room still holds."""
        for sock in self.clients.values():
            sock.close()
        self.clients.clear()
        self.listener.close()


def stop(signum, frame):
    """On SIGTERM, leave the poll loop the way Ctrl-C (SIGINT) does."""
    raise KeyboardInterrupt


def main(argv):
    signal.signal(signal.SIGTERM, stop)
    port, max_room_size = parse_args(argv)
    try:
        listener = open_listener(port)
    except OSError as err:
        sys.exit(f"chat_server: cannot listen on port {port}: {err}")

    room = ChatRoom(listener, max_room_size)
    try:
        room.run()
    except KeyboardInterrupt:
        pass  # SIGINT or SIGTERM: a clean exit with status 0
    finally:
        room.close()


if __name__ == "__main__":
    main(sys.argv)
