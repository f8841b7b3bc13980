# Shared by the bench drivers (CPython only): a throwaway mosquitto on
# 127.0.0.1 and a free port, stopped by its pid, and the commands that run a
# worker script on each runtime.
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
RESULTS = os.path.join(ROOT, "bench", "results")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto():
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(exe, os.X_OK):
        sys.exit("mosquitto not found -- apt-get install mosquitto")
    return exe


class Broker:
    """`with Broker() as b:` -> mosquitto listening on 127.0.0.1:b.port."""

    host = "127.0.0.1"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mqnode-bench-")
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.proc = None
        lines = ["listener %d %s" % (self.port, self.host), "allow_anonymous true",
                 "persistence false", "log_dest stderr", "log_type error"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([find_mosquitto(), "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + open(self.log_path).read()[-2000:])
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("mosquitto did not start on port %d" % self.port)
                time.sleep(0.05)

    def __exit__(self, *exc):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()  # by pid
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def command(runtime, script, args=(), heapsize="64k", path=(LIB,)):
    """argv and env to run script on 'cpython' or 'micropython'."""
    env = dict(os.environ)
    args = [str(a) for a in args]
    if runtime == "cpython":
        env["PYTHONPATH"] = os.pathsep.join(path)
        return [os.path.join(VENV_BIN, "python"), script] + args, env
    # ".frozen" keeps the frozen-in asyncio importable
    env["MICROPYPATH"] = ":".join(list(path) + [".frozen"])
    return [os.path.join(VENV_BIN, "micropython"), "-X", "heapsize=" + heapsize, script] + args, env


def run(runtime, script, args=(), timeout=120, **kw):
    argv, env = command(runtime, script, args, **kw)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def percentile(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def write_result(name, text):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        f.write(text)
    return path
