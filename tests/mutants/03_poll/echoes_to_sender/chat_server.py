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
        # The listening socket becomes "readable" when a connection is
        # waiting to be accepted, so we watch it exactly like a client.
        self.poller.register(self.listener.fileno(), select.POLLIN)
        print(READY_LINE, flush=True)

        while True:
            # No timeout: the process sleeps in the kernel until at least
            # one registered socket has something for us.
            for fd, events in self.poller.poll():
                if fd == self.listener.fileno():
                    self.accept_newcomer()
                elif fd in self.clients and fd not in self.departed:
                    self.serve_client(fd)
            # Close the departed only now, once the round is over: a closed
            # descriptor number can be handed out again by the very next
            # accept(), and must not be confused with an old event.
            if self.departed:
                self.remove_departed()

    # -- Task 2: broadcast ------------------------------------------------

    def broadcast(self, text, skip=None):
        """Print text and send it as a line to every user except skip."""
        print(text, flush=True)
        data = (text + "\n").encode("utf-8")
        for fd, sock in self.clients.items():
            if fd == skip or fd in self.departed:
                continue
            try:
                sock.sendall(data)
            except OSError:
                # The peer is gone (reset, broken pipe...). Do not remove it
                # here, in the middle of the loop: mark it, and the poll loop
                # removes it (and announces it) when the round is over.
                self.departed.add(fd)

    # -- Task 3: accepting and adding users --------------------------------

    def accept_newcomer(self):
        """Accept one waiting connection: turn it away or add it to the room."""
        try:
            conn, _address = self.listener.accept()
        except OSError:
            return  # the client gave up before we accepted it; nothing to do
        if len(self.clients) >= self.max_room_size:
            with conn:  # closes the connection when the block ends
                try:
                    conn.sendall(b"room is full\n")
                except OSError:
                    pass
            return

        fd = conn.fileno()  # the user's number
        self.clients[fd] = conn
        self.buffers[fd] = bytearray()
        self.poller.register(fd, select.POLLIN)
        try:
            conn.sendall(f"welcome, you are user {fd}\n".encode("utf-8"))
        except OSError:
            self.departed.add(fd)
        self.broadcast(f"user {fd} joined the chat room", skip=fd)

    # -- Task 4: reading lines ----------------------------------------------

    def serve_client(self, fd):
        """Read what user fd sent and broadcast every complete line in it."""
        try:
            chunk = self.clients[fd].recv(RECV_SIZE)
        except OSError:
            chunk = b""  # reset or another error: the user is gone all the same
        if not chunk:
            # b"" means end of file: the peer closed its side.
            self.departed.add(fd)
            return

        buffer = self.buffers[fd]
        buffer += chunk
        # TCP keeps no message boundaries: the chunk may hold half a line,
        # or several lines. Act on complete lines only; keep the rest.
        while (end := buffer.find(b"\n")) != -1:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]  # telnet ends its lines with "\r\n"
            text = line.decode("utf-8", errors="replace")
            self.broadcast(f"user {fd}: {text}")

    # -- Task 5: removing users ----------------------------------------------

    def remove_departed(self):
        """Close every departed user's socket and tell the others."""
        # Announcing a departure can reveal more departed users (their send
        # fails), so keep going until the set stays empty. A loop, not
        # recursion: any number of users may vanish at once.
        while self.departed:
            fd = self.departed.pop()
            sock = self.clients.pop(fd)
            del self.buffers[fd]
            # Unregister before close: once closed, the number may be reused.
            self.poller.unregister(fd)
            sock.close()
            self.broadcast(f"user {fd} disconnected")

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
