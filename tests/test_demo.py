"""`make demo` works: tools/demo.py starts a broker, three host-board nodes on MicroPython and
the monitor; the killed node's will reaches the monitor as an alert; Ctrl-C stops it all."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO

DEMO = [sys.executable, str(REPO / "tools" / "demo.py")]


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_kills_a_node_and_the_monitor_alerts(broker):
    env = dict(os.environ, DEMO_BROKER=broker)
    r = subprocess.run(DEMO + ["--interval", "2", "--kill-after", "7", "--duration", "13"],
                       env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert re.search(rf"demo: broker {broker} on 127\.0\.0\.1:\d+", out), out
    assert re.search(r"\d demo: dashboard: http://127\.0\.0\.1:\d+/ ", out), out
    for n in ("node-1", "node-2", "node-3"):
        assert re.search(rf"online {n}: online\n", out), out
        assert re.search(rf"telemetry {n}: #2 .*air\.temperature=[\d.]+C", out), out
    assert "demo: killing node-2 with SIGKILL" in out
    alerts = [line for line in out.splitlines() if " ALERT " in line]
    assert len(alerts) == 1 and alerts[0].endswith('ALERT node-2: will {"status": "offline"}'), out
    # the summary table the monitor prints when the demo stops it
    assert re.search(r"\nnode-2 +offline ", out) and re.search(r"\nnode-1 +online ", out), out
    assert out.rstrip().endswith("demo: done"), out


def test_ctrl_c_stops_everything():
    p = subprocess.Popen(DEMO + ["--interval", "1", "--kill-after", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            if "telemetry node-3: #2" in line:
                break
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = "".join(lines) + rest
    assert p.returncode == 0, out
    assert "Traceback" not in out and out.rstrip().endswith("demo: done"), out
    assert "ALERT" not in out, out   # nodes stopped after the monitor: no alert for them
    with pytest.raises(OSError):     # the broker is gone
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# ---- no demo process outlives the demo ----

def proc_stat(pid):
    """(state, ppid, start time) of a live process, or None once it is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def children(pid):
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[1] == pid:
                out[int(d)] = st[2]
    return out


def alive(pid, started):
    st = proc_stat(pid)
    return st is not None and st[2] == started and st[0] != "Z"


def start_demo():
    """The demo, its stdout a pipe we read until its nodes run; returns (proc, lines, kids)."""
    p = subprocess.Popen(DEMO + ["--interval", "1", "--kill-after", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "demo: Ctrl-C stops the demo" in line:
            break
    kids = children(p.pid)
    assert len(kids) == 5, (kids, lines)     # broker, monitor, three nodes
    return p, lines, kids


@pytest.mark.parametrize("how", ["pipe closed", "SIGINT", "SIGTERM", "SIGHUP"])
def test_nothing_outlives_the_demo(how):
    p, lines, kids = start_demo()
    port = int(re.search(r"on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
    try:
        if how == "pipe closed":     # `demo.py | head`: the reader goes away
            p.stdout.close()
        else:
            p.send_signal(getattr(signal, how))
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # stopped by the demo itself, before it exited (not later, by the kernel's death signal)
    assert [pid for pid, t in kids.items() if alive(pid, t)] == []
    assert p.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    if how != "pipe closed":
        assert f"demo: stopping ({how})" in out and out.rstrip().endswith("demo: done"), out
        assert re.search(r"\n\d+ alert\(s\)\n", out), out    # the monitor's summary: SIGINT'd
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_killed_demo_takes_its_processes_along():
    # SIGKILL cannot be caught: the kernel sends each child SIGTERM (PR_SET_PDEATHSIG).
    p, _, kids = start_demo()
    p.kill()
    p.wait()
    p.stdout.close()
    p.stderr.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid, t) for pid, t in kids.items()):
        time.sleep(0.1)
    assert [pid for pid, t in kids.items() if alive(pid, t)] == []
