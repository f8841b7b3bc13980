"""`make demo`: a local broker, three host-board nodes on the MicroPython unix port and the
fleet monitor. After a while one node is killed abruptly (SIGKILL): the broker publishes its
will and the monitor raises the alert. Ctrl-C stops everything.

    python tools/demo.py [--nodes 3] [--interval 3] [--kill-after 12] [--duration S]
                         [--broker HOST:PORT] [--prefix mqnode-demo]

The broker is mosquitto when it is installed, else (or with DEMO_BROKER=amqtt) amqtt, the
pure-Python broker from requirements.txt; it listens on 127.0.0.1 and a free port, lives in a
temporary folder and is stopped by its pid. --broker uses a broker you already run instead.
Node logs go to files in the temporary folder; the terminal shows the demo and the monitor.
"""
import argparse
import os
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


def say(text):
    print(f"{time.strftime('%H:%M:%S')} demo: {text}", flush=True)


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
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
    proc.kill()
    sys.exit(f"demo: the broker did not start; see {tmp / 'broker.log'}")


def start_node(tmp, node_id, host, port, prefix, interval):
    """One host-board node: firmware/main.py on the MicroPython unix port."""
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'lib'}:{REPO / 'boards' / 'host'}:.frozen")
    argv = [str(BIN / "micropython"), str(REPO / "firmware" / "main.py"), "--id", node_id,
            "--broker", f"{host}:{port}", "--prefix", prefix, "--interval", str(interval)]
    log = open(tmp / f"{node_id}.log", "w")
    # own session: a Ctrl-C in the terminal reaches the demo only, which stops the rest
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)


def relay(stream, ready):
    """Copy the monitor's lines to the terminal; `ready` once it has subscribed."""
    for line in stream:
        print(line, end="", flush=True)
        if " subscribed: " in line:
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
    a = p.parse_args(argv)
    if a.nodes < 1 or a.interval < 1:
        p.error("--nodes and --interval must be >= 1")
    return a


def main(argv=None):
    args = parse_args(argv)
    if not (BIN / "micropython").exists():
        sys.exit("demo: micropython not found in the venv: run `make venv`")
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    with tempfile.TemporaryDirectory(prefix="mqnode-demo-") as d:
        tmp = Path(d)
        broker = None
        if args.broker:
            host, _, port = args.broker.rpartition(":")
            port = int(port)
        else:
            host, port = "127.0.0.1", free_port()
            broker = start_broker(tmp, port)
        procs = {}
        monitor = None
        try:
            monitor = subprocess.Popen(
                [sys.executable, str(REPO / "tools" / "monitor.py"), "--host", host,
                 "--port", str(port), "--prefix", args.prefix, "--grace", "3"],
                stdout=subprocess.PIPE, text=True, start_new_session=True)
            ready = threading.Event()
            threading.Thread(target=relay, args=(monitor.stdout, ready), daemon=True).start()
            if not ready.wait(20):
                sys.exit("demo: the monitor did not subscribe within 20 s")
            ids = [f"node-{i + 1}" for i in range(args.nodes)]
            for node_id in ids:
                procs[node_id] = start_node(tmp, node_id, host, port, args.prefix, args.interval)
            say(f"started {', '.join(ids)} (MicroPython unix port, host board, telemetry every "
                f"{args.interval}s; logs in {tmp})")
            say("Ctrl-C stops the demo")
            victim = ids[len(ids) // 2]
            t0 = time.monotonic()
            while not stopping:
                now = time.monotonic() - t0
                if args.duration and now >= args.duration:
                    break
                if args.kill_after and now >= args.kill_after and procs[victim].poll() is None:
                    say(f"killing {victim} with SIGKILL: no DISCONNECT, so the broker "
                        "publishes its will and the monitor alerts")
                    procs[victim].kill()
                for node_id, p in procs.items():
                    if p.poll() is not None and p.returncode != -signal.SIGKILL:
                        say(f"{node_id} exited with {p.returncode}; its log:\n"
                            + (tmp / f"{node_id}.log").read_text()[-2000:])
                        stopping.append(1)
                time.sleep(0.2)
        finally:
            say("stopping")
            if monitor:
                stop(monitor, signal.SIGINT)   # prints its summary table
            for p in procs.values():
                stop(p)
            if broker:
                stop(broker)
        say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
