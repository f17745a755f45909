import sys
import time

port = sys.argv[1] if len(sys.argv) > 1 else "0"
print(f"[server] listening on 0.0.0.0:{port}", flush=True)
print("[server] got connection from 127.0.0.1", flush=True)
print("[server] received message from client 127.0.0.1: hello", flush=True)
print("[server] client 127.0.0.1 hung up", flush=True)
time.sleep(3600)
