"""`make demo`: a local broker, three host-board nodes on the MicroPython unix port and the
fleet monitor with its web dashboard. After a while one node is killed abruptly (SIGKILL):
the broker publishes its will and the monitor raises the alert.

    python tools/demo.py [--nodes 3] [--interval 3] [--kill-after 12] [--duration S]
                         [--broker HOST:PORT] [--prefix mqnode-demo] [--web HOST:PORT]

The dashboard listens on --web (default 127.0.0.1 and a free port); its address is printed.
The history goes to a file in the temporary folder.

Everything the demo started (broker, monitor, nodes) is stopped by its pid when the demo
ends: after --duration, on SIGINT (Ctrl-C), SIGTERM, SIGHUP or SIGQUIT, and when its output pipe
closes (`demo.py | head`). The children also get SIGTERM from the kernel should the demo
itself be killed (PR_SET_PDEATHSIG, through util-linux's setpriv).

The broker is mosquitto when it is installed, else (or with DEMO_BROKER=amqtt) amqtt, the
pure-Python broker from requirements.txt; it listens on 127.0.0.1 and a free port, lives in a
temporary folder and is stopped by its pid. --broker uses a broker you already run instead.
Node logs go to files in the temporary folder; the terminal shows the demo and the monitor.
"""
import argparse
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Stop(Exception):
    """A signal, or the output pipe closed: the demo winds down."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def write(text):
    """Print to the terminal or pipe; a closed pipe stops the demo (and is not written again)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        output_closed()
        raise Stop("output closed") from None


def output_closed():
    # Point stdout at /dev/null, so no later print (nor the exit-time flush) fails again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def pipe_closed():
    """True when stdout is a pipe whose reader has gone (poll says POLLERR), without writing."""
    p = select.poll()
    p.register(sys.stdout.fileno(), 0)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))


def say(text):
    write(f"{time.strftime('%H:%M:%S')} demo: {text}\n")


# SIGTERM from the kernel to a child whose demo died (PR_SET_PDEATHSIG), set by util-linux's
# setpriv, which then execs the program in the same pid. (A preexec_fn calling prctl could
# deadlock: the demo has threads when it starts the nodes.)
SETPRIV = shutil.which("setpriv")


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
STARTED = []   # every process the demo started, in order (stopped by pid at the end)


def spawn(argv, **kw):
    """Start a process in its own session (a Ctrl-C in the terminal reaches the demo only,
    which stops the rest) that dies with the demo."""
    if SETPRIV:
        argv = [SETPRIV, "--pdeathsig", "TERM", "--"] + argv
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    STARTED.append(proc)
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp, port):
    mosq = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if mosq and os.environ.get("DEMO_BROKER") != "amqtt":
        conf = tmp / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto would drop to a user that cannot read tmp
        conf.write_text("\n".join(lines) + "\n")
        argv, name = [mosq, "-c", str(conf)], "mosquitto"
    else:
        conf = tmp / "amqtt.yaml"
        conf.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
                        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                        "    allow_anonymous: true\n")
        argv, name = [str(BIN / "amqtt"), "-c", str(conf)], "amqtt"
    log = open(tmp / "broker.log", "w")
    proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            say(f"broker {name} on 127.0.0.1:{port} (pid {proc.pid})")
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    sys.exit(f"demo: the broker did not start; see {tmp / 'broker.log'}")


def start_node(tmp, node_id, host, port, prefix, interval):
    """One host-board node: firmware/main.py on the MicroPython unix port."""
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'lib'}:{REPO / 'boards' / 'host'}:.frozen")
    argv = [str(BIN / "micropython"), str(REPO / "firmware" / "main.py"), "--id", node_id,
            "--broker", f"{host}:{port}", "--prefix", prefix, "--interval", str(interval)]
    log = open(tmp / f"{node_id}.log", "w")
    return spawn(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def relay(stream, seen, ready, closed):
    """Copy the monitor's lines to the terminal, keeping the last of each kind in `seen`;
    `ready` once it has subscribed and serves the dashboard. Once the output is closed the
    lines are read and dropped, so the monitor never blocks on a full pipe."""
    for line in stream:
        if not closed.is_set():
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except BrokenPipeError:
                closed.set()
        for key in (" subscribed: ", " web: dashboard at "):
            if key in line:
                seen[key] = line.rstrip("\n").split(key, 1)[1]
        if len(seen) == 2:
            ready.set()


def stop(proc, sig=signal.SIGTERM, timeout=5):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="mqnode demo: broker + host-board nodes + monitor")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--interval", type=int, default=3, help="telemetry interval, seconds")
    p.add_argument("--kill-after", type=float, default=12,
                   help="seconds until one node is killed (0: never)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--broker", metavar="HOST:PORT", help="use this broker instead of a local one")
    p.add_argument("--prefix", default="mqnode-demo")
    p.add_argument("--web", metavar="HOST:PORT", default="127.0.0.1:0",
                   help="the dashboard's address (default 127.0.0.1, a free port)")
    a = p.parse_args(argv)
    if a.nodes < 1 or a.interval < 1:
        p.error("--nodes and --interval must be >= 1")
    return a


def run(args, tmp, closed, started):
    """Start the broker, the monitor and the nodes, then watch them until a Stop.
    `started` gets the monitor and the thread relaying its output."""
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        port = int(port)
    else:
        host, port = "127.0.0.1", free_port()
        start_broker(tmp, port)
    monitor = spawn([sys.executable, str(REPO / "tools" / "monitor.py"), "--host", host,
                     "--port", str(port), "--prefix", args.prefix, "--grace", "3",
                     "--history", str(tmp / "history.sqlite"), "--web", args.web],
                    stdout=subprocess.PIPE, text=True)
    seen, ready = {}, threading.Event()
    relay_thread = threading.Thread(target=relay, args=(monitor.stdout, seen, ready, closed),
                                    daemon=True)
    relay_thread.start()
    started.update(monitor=monitor, relay=relay_thread)
    deadline = time.monotonic() + 20
    while not ready.wait(0.2):
        if monitor.poll() is not None:
            sys.exit(f"demo: the monitor exited with {monitor.returncode}")
        if time.monotonic() > deadline:
            sys.exit("demo: the monitor did not subscribe within 20 s")
    say(f"dashboard: {seen[' web: dashboard at ']} (fleet, charts, alerts; live)")
    ids = [f"node-{i + 1}" for i in range(args.nodes)]
    procs = {node_id: start_node(tmp, node_id, host, port, args.prefix, args.interval)
             for node_id in ids}
    say(f"started {', '.join(ids)} (MicroPython unix port, host board, telemetry every "
        f"{args.interval}s; logs in {tmp})")
    say("Ctrl-C stops the demo")
    victim = ids[len(ids) // 2]
    t0 = time.monotonic()
    while True:
        now = time.monotonic() - t0
        if args.duration and now >= args.duration:
            return
        if closed.is_set() or pipe_closed():
            output_closed()
            raise Stop("output closed")
        if args.kill_after and now >= args.kill_after and procs[victim].poll() is None:
            say(f"killing {victim} with SIGKILL: no DISCONNECT, so the broker "
                "publishes its will and the monitor alerts")
            procs[victim].kill()
        for node_id, p in procs.items():
            if p.poll() is not None and p.returncode != -signal.SIGKILL:
                say(f"{node_id} exited with {p.returncode}; its log:\n"
                    + (tmp / f"{node_id}.log").read_text()[-2000:])
                return
        time.sleep(0.2)


def stop_all(monitor):
    """Stop every started process by its pid: the monitor first (SIGINT: it prints its
    table, and raises no alert for the nodes stopped after it), then the rest, newest first."""
    order = ([monitor] if monitor else []) + [p for p in reversed(STARTED) if p is not monitor]
    for p in order:
        stop(p, signal.SIGINT if p is monitor else signal.SIGTERM)


def main(argv=None):
    args = parse_args(argv)
    if not (BIN / "micropython").exists():
        sys.exit("demo: micropython not found in the venv: run `make venv`")
    for sig in SIGNALS:
        signal.signal(sig, on_signal)
    closed, started, why = threading.Event(), {}, "error"
    tmp = tempfile.TemporaryDirectory(prefix="mqnode-demo-")
    try:
        try:
            run(args, Path(tmp.name), closed, started)
            why = "done"
        except Stop as e:
            why = str(e)
    finally:
        # From here on no signal interrupts the clean-up; a closed output is not an error.
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            say(f"stopping ({why})")
        except Stop:
            pass
        stop_all(started.get("monitor"))
        if started.get("relay"):
            started["relay"].join(5)   # the monitor's table, printed as it stopped
        tmp.cleanup()
    try:
        say("done")
    except Stop:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
