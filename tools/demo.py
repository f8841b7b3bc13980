"""`make demo`: start a local broker, then run examples/hello.py on the MicroPython unix port.

The broker is mosquitto when it is installed, else (or with DEMO_BROKER=amqtt) amqtt, the
pure-Python broker from requirements.txt.
It listens on 127.0.0.1 and a free port, lives in a temporary folder, and is stopped by its pid.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


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
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            print(f"broker      {name} on 127.0.0.1:{port}, pid {proc.pid}")
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"the broker did not start; see {tmp / 'broker.log'}")


def main():
    mpy = BIN / "micropython"
    if not mpy.exists():
        sys.exit("micropython not found in the venv: run `make venv`")
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        broker = start_broker(Path(d), port)
        try:
            env = dict(os.environ, MICROPYPATH=f"{REPO / 'lib'}:.frozen")
            print("running     micropython examples/hello.py")
            r = subprocess.run([str(mpy), str(REPO / "examples" / "hello.py"), "127.0.0.1", str(port)],
                               env=env, timeout=60)
        finally:
            broker.terminate()
            try:
                broker.wait(5)
            except subprocess.TimeoutExpired:
                broker.kill()
        sys.exit(r.returncode)


if __name__ == "__main__":
    main()
