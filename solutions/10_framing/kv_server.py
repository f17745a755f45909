"""A key-value store that speaks length-prefixed JSON frames
(exercise 10_framing).

Usage: python -u kv_server.py PORT

Every request is one frame (see framing.py) holding one JSON object, and
every reply is one frame holding one JSON object:

    {"op": "set", "key": K, "value": V}  ->  {"ok": true}
    {"op": "get", "key": K}              ->  {"ok": true, "value": V}
                                             or {"ok": false, "error": "not found"}
    anything else                        ->  {"ok": false, "error": "bad request"}

K is a string, V any JSON value. A frame that announces more than
framing.MAX_FRAME bytes ends that one connection. Each client has a thread
of its own; all of them share one store.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading

import framing   # framing.py, next to this file

USAGE = "usage: python kv_server.py PORT   (PORT: 1..65535)"
BACKLOG = 128          # connections the kernel may queue before we accept them
RECV_SIZE = 65536      # the most bytes one recv() takes

OK = {"ok": True}
NOT_FOUND = {"ok": False, "error": "not found"}
BAD_REQUEST = {"ok": False, "error": "bad request"}

_print_lock = threading.Lock()


def log(message: str) -> None:
    """One server line on stdout. The lock keeps lines from several threads
    whole, and lets main() stop the printing before the interpreter exits."""
    with _print_lock:
        print(f"[server] {message}", flush=True)


def parse_port(argv: list[str]) -> int:
    """The PORT argument, or a usage message on stderr and exit status 1."""
    if len(argv) != 2 or not (argv[1].isascii() and argv[1].isdigit()):
        sys.exit(USAGE)
    port = int(argv[1])
    if not 1 <= port <= 65535:
        sys.exit(USAGE)
    return port


class Store:
    """The keys and values, shared by every client's thread."""

    def __init__(self) -> None:
        self._data: dict[str, object] = {}
        self._lock = threading.Lock()

    def set(self, key: str, value: object) -> None:
        with self._lock:
            self._data[key] = value

    def get(self, key: str) -> tuple[bool, object]:
        """(True, value) if the key is there, else (False, None). A stored
        JSON null is a value like any other: "found" is not "value is None"."""
        with self._lock:
            if key in self._data:
                return True, self._data[key]
            return False, None


# ---------------------------------------------------------------- task 4

def open_listener(port: int) -> socket.socket:
    """A TCP socket listening on 0.0.0.0:port (OSError if impossible)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


def serve_forever(listener: socket.socket, store: Store) -> None:
    """Accept clients forever; each one is served by a thread of its own, so
    that a quiet client never holds up the others. accept() wakes up every
    half second: Python runs signal handlers only in the main thread, and a
    Ctrl-C noted while other threads are busy may come too late to
    interrupt the accept() the main thread then sleeps in."""
    listener.settimeout(0.5)
    while True:
        try:
            conn, (ip, _port) = listener.accept()
        except (ConnectionAbortedError, TimeoutError):
            continue    # the client gave up before we accepted it, or nobody came
        conn.settimeout(None)   # its thread blocks in recv() as long as it must
        log(f"got connection from {ip}")
        # daemon=True: a thread waiting in recv() for a silent client must
        # not keep the process alive once the main thread is told to stop.
        start_without_signals(threading.Thread(target=serve_client, args=(conn, ip, store),
                                               daemon=True))


def start_without_signals(thread: threading.Thread) -> None:
    """Start `thread` with SIGINT and SIGTERM blocked in it (it inherits the
    mask of the thread that starts it), so that they always reach the main
    thread, the only one where Python runs signal handlers: one that landed
    in a client's thread would leave the main thread asleep in accept()."""
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# ---------------------------------------------------------------- task 5

def handle_request(payload: bytes, store: Store) -> dict:
    """The reply to one request frame. Never raises: whatever is wrong with
    the request is the client's problem, and the client is told so."""
    try:
        request = json.loads(payload)
    except (ValueError, RecursionError):
        # ValueError covers broken JSON and bytes that are not UTF-8
        # (UnicodeDecodeError); RecursionError comes from "[[[[..." nested
        # deeper than the parser will go.
        return BAD_REQUEST
    if not isinstance(request, dict) or not isinstance(request.get("key"), str):
        return BAD_REQUEST
    op, key = request.get("op"), request["key"]
    if op == "set" and "value" in request:
        store.set(key, request["value"])
        return OK
    if op == "get":
        found, value = store.get(key)
        return {"ok": True, "value": value} if found else NOT_FOUND
    return BAD_REQUEST


# ---------------------------------------------------------------- task 6

def reply_frame(reply: dict) -> bytes:
    """A reply, serialized: JSON text, UTF-8 bytes, then a frame around them."""
    # json.dumps escapes every non-ASCII character by default, so the text
    # is plain ASCII and always valid UTF-8.
    payload = json.dumps(reply).encode("utf-8")
    try:
        return framing.encode(payload)
    except ValueError:
        # A stored value can grow when it is written out again (escapes,
        # numbers such as 1e5 -> 100000.0) and no longer fit in one frame.
        return framing.encode(json.dumps({"ok": False, "error": "reply too large"}).encode())


def serve_client(conn: socket.socket, ip: str, store: Store) -> None:
    """The body of one client's thread: read, cut into frames, answer each."""
    decoder = framing.Decoder()     # one per connection: each stream is cut on its own
    with conn:
        try:
            while True:
                data = conn.recv(RECV_SIZE)
                if not data:
                    break           # the client closed its side
                # One recv() may hold half a frame, or several frames:
                # answer every frame it completed, in order.
                for payload in decoder.feed(data):
                    conn.sendall(reply_frame(handle_request(payload, store)))
        except framing.FrameError as exc:
            log(f"closing the connection of {ip}: {exc}")
            return
        except OSError as exc:      # reset by the client, broken pipe...
            log(f"connection with {ip} failed: {exc}")
            return
    log(f"client {ip} hung up")


def stop(signum, frame):
    """SIGTERM: leave the accept loop the way Ctrl-C (SIGINT) does."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> None:
    port = parse_port(argv)
    signal.signal(signal.SIGTERM, stop)
    try:
        listener = open_listener(port)
    except OSError as err:
        sys.exit(f"kv_server: cannot listen on port {port}: {err}")
    try:
        with listener:
            log(f"listening on 0.0.0.0:{port}")
            serve_forever(listener, Store())
    except KeyboardInterrupt:
        # Signals reach the main thread only. Hold the print lock on the way
        # out, so that no client thread is half-way through a print() while
        # the interpreter shuts down.
        _print_lock.acquire(timeout=1.0)


if __name__ == "__main__":
    main(sys.argv)
