"""Shared pytest harness for mqnode.

What is here (all usable from any test module under tests/):

Brokers (real mosquitto, one per test, on 127.0.0.1 and a free port)
    free_port() -> int
    Mosquitto(workdir, users=None, persistence=False, extra=(), port=None, log_type="all")
        .start() .stop(kill=False) .restart() .host .port .log_path .conf_path .log_text()
    fixture mosquitto_factory -> callable(**Mosquitto kwargs) -> started Mosquitto
    fixture mosquitto         -> a default started Mosquitto (anonymous, no persistence)
    Tests using either fixture get the `broker` marker automatically.
    If mosquitto is not installed the fixtures FAIL (never skip).

Independent observers (mosquitto-clients CLI tools)
    Sub(broker, topic, count=None, qos=0, timeout=None, username=None, password=None, extra=())
        .wait_for(n, timeout=10) .lines(timeout=10) .stop() .returncode
    pub(broker, topic, payload, qos=0, retain=False, username=None, password=None,
        extra=(), check=True) -> subprocess.CompletedProcess
    fixture sub -> the Sub class, but every Sub is stopped at teardown
    fixture pub -> the pub function

Same source on three runtimes
    fixture runtime -> "cpython" | "micropython" | "micropython32" (parametrized; ids show in
        test names). micropython: the 64-bit unix port from PyPI, lib/ loaded from files (what
        `pip install` users get). micropython32: the host board's 32-bit image built by
        tools/firmware.py (`make firmware BOARD=host`), with lib/mqtt, sensors, firmware and
        the board FROZEN in, as on a board: lib/ is not on its path and .frozen comes first.
    MICROPYTHONS: the two MicroPython runtimes (for `runtime in MICROPYTHONS`)
    fixture mp_runtime -> "micropython" | "micropython32": for what only MicroPython runs
        (the node, the boards' board.py)
    micropython32_exe() -> that image; fails (never skips) if it is not built for the
        current sources
    frozen_modules(image) -> set of the module names frozen in a tools/firmware.py image
    run_py(runtime, script, args=(), env=None, timeout=60, heapsize=None, cwd=None,
           pythonpath=()) -> PyResult(returncode, stdout, stderr, lines)
    fixture start_py -> callable(runtime, script, args=(), env=None, heapsize=None,
           cwd=None, pythonpath=(), stderr=subprocess.STDOUT) -> PyProcess (a Popen),
           killed by pid at teardown
    fixture run_py -> the run_py function

Misc
    fixture prefix -> unique topic prefix per test, "t/<8 hex>"
    REPO, LIB: paths of the repository and of lib/
"""

import atexit
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIB = REPO / "lib"

APT_HINT = "install mosquitto: apt-get install mosquitto mosquitto-clients"
RUNTIMES = ["cpython", "micropython", "micropython32"]
MICROPYTHONS = ("micropython", "micropython32")
DEFAULT_HEAPSIZE = "256k"


# --------------------------------------------------------------------------- helpers


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_tool(name, dirs=("/usr/sbin", "/usr/bin")):
    """Path of an executable on PATH or in one of `dirs`, else None."""
    found = shutil.which(name)
    if found:
        return found
    for d in dirs:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def require_tool(name):
    """Like find_tool but fails the test (never skips) when the tool is missing."""
    path = find_tool(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH or in /usr/sbin, /usr/bin -- {APT_HINT}", pytrace=False)
    return path


def _tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- mosquitto


class Mosquitto:
    """One mosquitto process with its own config, log and (optional) persistence in `workdir`.

    users={"name": "password"}  -> password_file via mosquitto_passwd, allow_anonymous false
    persistence=True            -> persistence true + persistence_location in workdir, so that
                                   restart() keeps sessions, subscriptions and queued messages
    extra=[...]                 -> extra config lines appended verbatim
    The broker log (log_dest stderr, redirected) is kept at .log_path across restarts.
    """

    host = "127.0.0.1"

    def __init__(self, workdir, users=None, persistence=False, extra=(), port=None, log_type="all"):
        self.exe = require_tool("mosquitto")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = dict(users or {})
        self.persistence = persistence
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.proc = None

        lines = [f"listener {self.port} {self.host}"]
        if self.users:
            pw = self.dir / "passwd"
            tool = require_tool("mosquitto_passwd")
            for i, (name, password) in enumerate(self.users.items()):
                cmd = [tool, "-b"] + (["-c"] if i == 0 else []) + [str(pw), name, password]
                subprocess.run(cmd, check=True, capture_output=True, timeout=10)
            os.chmod(pw, 0o600)
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if persistence:
            store = self.dir / "store"
            store.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}/"]
        else:
            lines.append("persistence false")
        lines += ["log_dest stderr", f"log_type {log_type}", "connection_messages true"]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to user "mosquitto", which cannot read the
            # password file or write the store inside pytest's 0700 tmp dirs.
            lines.append("user root")
        lines += list(extra)
        self.conf_path.write_text("\n".join(lines) + "\n")

    def __repr__(self):
        return f"<Mosquitto {self.host}:{self.port} pid={self.proc and self.proc.pid}>"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout=10.0):
        """Start the broker and wait until its port accepts TCP connections."""
        if self.running:
            return self
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.conf_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode} on port {self.port}; "
                    f"log tail:\n{_tail(self.log_path)}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(
                    f"mosquitto did not accept connections on port {self.port} within "
                    f"{timeout}s; log tail:\n{_tail(self.log_path)}")
            time.sleep(0.05)

    def stop(self, kill=False):
        """Stop by pid: SIGTERM (clean: persistence is saved), SIGKILL after 5 s.
        kill=True sends SIGKILL at once (a crash: nothing saved since the last autosave)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self, kill=False):
        """Stop and start again on the same port with the same config."""
        self.stop(kill=kill)
        return self.start()


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Callable creating and starting brokers: mosquitto_factory(users=..., persistence=...,
    extra=[...], port=...). Each gets its own dir under tmp_path; all are stopped at teardown."""
    brokers = []

    def make(**kwargs):
        b = Mosquitto(tmp_path / f"mosquitto{len(brokers)}", **kwargs)
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def mosquitto(mosquitto_factory):
    """A started default broker: anonymous, no persistence."""
    return mosquitto_factory()


def pytest_collection_modifyitems(items):
    for item in items:
        if {"mosquitto", "mosquitto_factory"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("broker")


# --------------------------------------------------------------------------- CLI observers


def _auth(username, password):
    args = []
    if username is not None:
        args += ["-u", username]
    if password is not None:
        args += ["-P", password]
    return args


class Sub:
    """mosquitto_sub in the background: `-v` lines "topic payload", one per message.

    Returns from the constructor only once the broker has acknowledged the subscription
    (SUBACK), so a publish right after cannot be missed. With count=N it exits after N
    messages (-C N); timeout=T passes -W T (exit after T seconds).
    """

    def __init__(self, broker, topic, count=None, qos=0, timeout=None, username=None,
                 password=None, extra=(), ready_timeout=10.0):
        exe = require_tool("mosquitto_sub")
        topics = [topic] if isinstance(topic, str) else list(topic)
        cmd = [exe, "-h", broker.host, "-p", str(broker.port), "-v", "-d", "-q", str(qos)]
        # mosquitto_sub flushes message lines but not -d lines when stdout is a pipe;
        # stdbuf makes stdout line-buffered so we see SUBACK when it happens.
        stdbuf = find_tool("stdbuf")
        if stdbuf:
            cmd = [stdbuf, "-oL"] + cmd
        for t in topics:
            cmd += ["-t", t]
        if count is not None:
            cmd += ["-C", str(count)]
        if timeout is not None:
            cmd += ["-W", str(int(timeout))]
        cmd += _auth(username, password) + list(extra)
        self.cmd = cmd
        self.messages = []    # "topic payload" lines
        self.debug = []       # mosquitto_sub -d lines (CONNECT/SUBACK/PUBLISH traces)
        self._q = queue.Queue()
        self._subscribed = threading.Event()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not stdbuf:  # cannot see SUBACK before exit; give it a moment instead
            self._subscribed.wait(0.5)
        elif not self._subscribed.wait(ready_timeout):
            self.stop()
            raise RuntimeError(f"mosquitto_sub not subscribed within {ready_timeout}s: "
                               f"{self.debug[-10:]}")

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            # -d debug lines; our topics never start with "Client " or "Subscribed (".
            if line.startswith("Client ") or line.startswith("Subscribed (mid"):
                self.debug.append(line)
                if "received SUBACK" in line or line.startswith("Subscribed (mid"):
                    self._subscribed.set()
                continue
            self.messages.append(line)
            self._q.put(line)
        self._subscribed.set()  # exited early (e.g. auth refused): don't wait forever

    @property
    def returncode(self):
        return self.proc.poll()

    def wait_for(self, n, timeout=10.0):
        """Return the first n message lines as soon as they arrived (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            try:
                self._q.get(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if self.proc.poll() is not None and not self._thread.is_alive():
                    break
        return list(self.messages[:n])

    def lines(self, timeout=10.0):
        """All message lines after the process exited (count/-W reached) or `timeout`
        seconds passed; then stops it. Without count/timeout this waits the full timeout."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.stop()
        return list(self.messages)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._thread.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


def pub(broker, topic, payload, qos=0, retain=False, username=None, password=None, extra=(),
        check=True, timeout=15):
    """mosquitto_pub one message. payload: str (-m), bytes (-s, via stdin), "" or b"" or None
    (-n, e.g. to clear a retained message). check=False returns a non-zero result instead of
    failing the test."""
    exe = require_tool("mosquitto_pub")
    cmd = [exe, "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", str(qos)]
    data = None
    if payload is None or payload in ("", b""):
        cmd.append("-n")
    elif isinstance(payload, (bytes, bytearray)):
        cmd.append("-s")
        data = bytes(payload)
    else:
        cmd += ["-m", payload]
    if retain:
        cmd.append("-r")
    cmd += _auth(username, password) + list(extra)
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        pytest.fail(f"mosquitto_pub failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
                    f"{r.stdout.decode(errors='replace')}", pytrace=False)
    return r


@pytest.fixture(name="sub")
def _sub_fixture():
    """The Sub class; every Sub made through it is stopped at teardown."""
    subs = []

    def make(*args, **kwargs):
        s = Sub(*args, **kwargs)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.stop()


@pytest.fixture(name="pub")
def _pub_fixture():
    return pub


# --------------------------------------------------------------------------- runtimes


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    """"cpython", "micropython" or "micropython32"; shows up in test ids: test_x[cpython]."""
    return request.param


@pytest.fixture(params=MICROPYTHONS)
def mp_runtime(request):
    """"micropython" or "micropython32", for tests of what only MicroPython runs."""
    return request.param


def micropython_exe():
    """The venv's micropython (next to sys.executable), else one on PATH. Fails if none."""
    p = Path(sys.executable).parent / "micropython"
    if p.exists():
        return str(p)
    found = shutil.which("micropython")
    if found is None:
        pytest.fail("micropython not found next to sys.executable or on PATH; run `make venv`",
                    pytrace=False)
    return found


def cached_image(board):
    """(path, None) of tools/firmware.py's cached image of `board` for the current sources;
    (None, why) when it cannot be had, (None, None) when it is not built."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import firmware
    finally:
        sys.path.pop(0)
    try:
        return firmware.cached(board), None
    except firmware.Failure as e:
        return None, str(e)


@lru_cache(maxsize=None)
def _host_image():
    image, why = cached_image("host")
    if image is None:
        return None, why
    # a copy for this session: the shared cache may drop the image while tests still run it
    keep = Path(tempfile.mkdtemp(prefix="mqnode-mp32-image-"))
    atexit.register(shutil.rmtree, keep, True)
    for name in (image.name, "frozen.txt"):
        shutil.copy2(image.with_name(name), keep / name)
    return keep / image.name, None


def micropython32_exe():
    """The host board's 32-bit image built from the current lib/, firmware/ and boards/host
    (tools/firmware.py's cache). Fails, never skips, when it has not been built."""
    image, why = _host_image()
    if image is None:
        pytest.fail("the 32-bit MicroPython image for the current sources is not built"
                    + (f" ({why})" if why else "") + ": run `make firmware BOARD=host` "
                    "(`make test` does it first)", pytrace=False)
    return str(image)


@lru_cache(maxsize=None)
def frozen_modules(image):
    """Module names frozen in a tools/firmware.py image ("mqtt.client", "asyncio", ...)."""
    names = Path(image).with_name("frozen.txt").read_text().split()
    return {n[:-3].replace("/", ".").replace(".__init__", "") for n in names}


def py_command(runtime, script, args=(), env=None, heapsize=None, pythonpath=()):
    """(argv, env) that runs `script` on `runtime` with lib/ (plus `pythonpath`) importable;
    on micropython32 the frozen modules instead of lib/ (then `pythonpath`, the script's own
    folder)."""
    paths = [str(p) for p in pythonpath] + [str(LIB)]
    full_env = dict(os.environ)
    if runtime == "cpython":
        argv = [sys.executable, "-u", str(script)]
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
    elif runtime == "micropython":
        argv = [micropython_exe(), "-X", f"heapsize={heapsize or DEFAULT_HEAPSIZE}", str(script)]
        # ".frozen" must stay: asyncio (and other micropython-lib modules) are frozen in.
        full_env["MICROPYPATH"] = ":".join(paths + [".frozen"])
    elif runtime == "micropython32":
        # MicroPython puts a script's folder first on sys.path, ahead of the frozen code under
        # test (firmware/main.py's folder holds node.py, ...): so it runs a copy of the script,
        # alone in a folder of its own, and the script's folder comes after .frozen.
        exe, script = micropython32_exe(), Path(script)
        alone = Path(tempfile.mkdtemp(prefix="mqnode-mp32-"))
        atexit.register(shutil.rmtree, alone, True)
        shutil.copyfile(script, alone / script.name)
        argv = [exe, "-X", f"heapsize={heapsize or DEFAULT_HEAPSIZE}", str(alone / script.name)]
        full_env["MICROPYPATH"] = ":".join([".frozen"] + [str(p) for p in pythonpath]
                                           + [str(script.parent)])
    else:
        raise ValueError(f"unknown runtime {runtime!r}")
    argv += [str(a) for a in args]
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    return argv, full_env


class PyResult:
    """Outcome of run_py. Note: the MicroPython unix port prints uncaught tracebacks to
    stdout, CPython to stderr -- use .output for "everything" in assertion messages."""

    def __init__(self, runtime, argv, returncode, stdout, stderr):
        self.runtime = runtime
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.lines = stdout.splitlines()

    @property
    def output(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return (f"<PyResult {self.runtime} rc={self.returncode}\n--- stdout\n{self.stdout}"
                f"--- stderr\n{self.stderr}>")


def run_py(runtime, script, args=(), env=None, timeout=60, heapsize=None, cwd=None,
           pythonpath=()):
    """Run the script file on `runtime` (one of RUNTIMES) and wait for it.
    A timeout fails the test with the output so far."""
    argv, full_env = py_command(runtime, script, args, env, heapsize, pythonpath)
    try:
        r = subprocess.run(argv, env=full_env, cwd=cwd, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(f"{runtime} {script} timed out after {timeout}s\n--- stdout\n{out}"
                    f"--- stderr\n{err}", pytrace=False)
    return PyResult(runtime, argv, r.returncode, r.stdout, r.stderr)


class PyProcess(subprocess.Popen):
    """A Popen (stdout=PIPE, text, line-buffered) for long-running scripts.

    Either read .stdout yourself, or use expect()/readline() (they start a reader thread
    that then owns .stdout) -- not both. .seen holds every line read by the thread.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []
        self._q = queue.Queue()
        self._thread = None

    def _start_reader(self):
        if self._thread is None:

            def read():
                for line in self.stdout:
                    line = line.rstrip("\n")
                    self.seen.append(line)
                    self._q.put(line)
                self._q.put(None)

            self._thread = threading.Thread(target=read, daemon=True)
            self._thread.start()

    def readline(self, timeout=10.0):
        """Next stdout line (without newline), None at EOF; raises TimeoutError."""
        self._start_reader()
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no line within {timeout}s; seen: {self.seen[-20:]}") from None

    def expect(self, text, timeout=20.0):
        """Read lines until one contains `text`; return it. Raises TimeoutError / EOFError."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{text!r} not seen within {timeout}s; seen: {self.seen[-20:]}")
            try:
                line = self.readline(timeout=left)
            except TimeoutError:
                continue
            if line is None:
                raise EOFError(f"process exited ({self.poll()}) before {text!r}; "
                               f"seen: {self.seen[-20:]}")
            if text in line:
                return line

    def kill_now(self):
        """SIGKILL by pid (a client dying without DISCONNECT) and reap."""
        if self.poll() is None:
            self.kill()
        self.wait(timeout=5)


@pytest.fixture
def start_py():
    """Callable start_py(runtime, script, args=(), env=None, heapsize=None, cwd=None,
    pythonpath=(), stderr=subprocess.STDOUT) -> PyProcess. stderr is merged into stdout by
    default. Every process still running at teardown is killed by its pid."""
    procs = []

    def start(runtime, script, args=(), env=None, heapsize=None, cwd=None, pythonpath=(),
              stderr=subprocess.STDOUT):
        argv, full_env = py_command(runtime, script, args, env, heapsize, pythonpath)
        p = PyProcess(argv, env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr,
                      stdin=subprocess.DEVNULL, text=True, bufsize=1)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (p.stdout, p.stderr):
            if f:
                f.close()


@pytest.fixture(name="run_py")
def _run_py_fixture():
    return run_py


# --------------------------------------------------------------------------- misc


@pytest.fixture
def prefix():
    """A unique topic prefix per test, e.g. "t/3f2a9c1b"."""
    return f"t/{uuid.uuid4().hex[:8]}"
