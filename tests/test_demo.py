"""`make demo` works: tools/demo.py starts a broker and runs examples/hello.py on MicroPython."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

EXPECTED = [
    "command     demo/hello/cmd/ping b'from myself'",
    "received    demo/hello/telemetry b'{\"seq\": 0}' qos",
    "received    demo/hello/telemetry b'{\"seq\": 1}' qos",
    "received    demo/hello/telemetry b'{\"seq\": 2}' qos",
    "disconnected cleanly",
]


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo(broker):
    env = dict(os.environ, DEMO_BROKER=broker)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"broker      {broker} on 127.0.0.1:" in r.stdout
    out = r.stdout.splitlines()
    for want in EXPECTED:
        assert any(line.startswith(want) for line in out), (want, r.stdout)
