"""`make demo` works: tools/demo.py starts a broker, three host-board nodes on MicroPython and
the monitor; the killed node's will reaches the monitor as an alert; Ctrl-C stops it all."""
import os
import re
import signal
import socket
import subprocess
import sys

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
