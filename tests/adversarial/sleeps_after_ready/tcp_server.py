import socket
import sys
import time

port = int(sys.argv[1])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(10)
print(f"[server] listening on 0.0.0.0:{port}", flush=True)
while True:
    time.sleep(3600)
