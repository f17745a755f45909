import socket

raise RuntimeError("configuration missing")
