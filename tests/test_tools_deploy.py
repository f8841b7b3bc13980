"""tools/mqnode.py deploy and logs with stock mpremote against virtual boards (tests/vboard):
the MicroPython unix port behind a pty, with a temporary folder as its flash."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO, pub

sys.path.insert(0, str(REPO / "tests" / "vboard"))
from vboard import VirtualBoard  # noqa: E402

SECRET = "s3cret-broker-pw-4711"


@pytest.fixture
def boards(tmp_path):
    """make(name, **kw) -> a started VirtualBoard with its flash in tmp_path/name."""
    made = []

    def make(name="vb", **kw):
        d = tmp_path / name
        (d / "flash").mkdir(parents=True)
        vb = VirtualBoard(d / "flash", link=d / "tty", log=d / "console.log", **kw)
        vb.start()
        made.append(vb)
        return vb

    yield make
    for vb in made:
        vb.stop()


@pytest.fixture
def repo_copy(tmp_path):
    """A copy of the sources and tools, to change files without touching the repository."""
    repo = tmp_path / "repo"
    for d in ("tools", "lib", "firmware", "boards"):
        shutil.copytree(REPO / d, repo / d, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def node_files(tmp_path, mosquitto, prefix, node_id="vb-1"):
    cfg = {"node_id": node_id, "topic_prefix": prefix,
           "broker": {"host": mosquitto.host, "port": mosquitto.port, "keepalive": 30},
           "telemetry": {"interval_s": 1}, "sensors": [{"type": "bme280", "name": "air"}]}
    if node_id is None:   # a fleet's config: each board's own id
        del cfg["node_id"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "secrets.json").write_text(json.dumps({"broker_username": "node",
                                                      "broker_password": SECRET}))
    return ["--config", tmp_path / "config.json", "--secrets", tmp_path / "secrets.json"]


def deploy(*args, repo=REPO, timeout=180):
    r = subprocess.run([sys.executable, str(repo / "tools" / "mqnode.py"), "deploy",
                        *[str(a) for a in args]], capture_output=True, text=True, timeout=timeout)
    assert SECRET not in r.stdout + r.stderr
    return r


def flash_files(vb):
    root = vb.flash_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def copied(out):
    return sorted(line.split()[-1] for line in out.splitlines() if "] cp " in line)


def test_fresh_deploy_then_the_node_publishes(boards, mosquitto, sub, prefix, tmp_path):
    vb = boards()
    s = sub(mosquitto, f"{prefix}/vb-1/telemetry", qos=1)
    ha = sub(mosquitto, "homeassistant/sensor/vb-1/+/config", qos=1)
    r = deploy("--board", "host", "--port", vb.device, *node_files(tmp_path, mosquitto, prefix))
    assert r.returncode == 0, r.stdout + r.stderr
    stamp = json.loads((REPO / "build" / "host" / "mqnode.json").read_text())
    want = set(stamp["files"]) | {"config.json", "secrets.json", "mqnode.json"}
    assert flash_files(vb) == want
    assert sorted(copied(r.stdout)) == sorted(want)
    assert json.loads((vb.flash_dir / "secrets.json").read_text())["broker_password"] == SECRET
    assert "1 of 1 boards deployed" in r.stdout
    # the end-to-end proof: after the reset, the deployed node runs main.py, connects
    # to the broker and publishes
    got = s.wait_for(2, timeout=30)
    assert len(got) == 2, vb.console_text()[-2000:]
    t = json.loads(got[0].split(" ", 1)[1])
    assert t["node"] == "vb-1" and "air.temperature" in t["readings"]
    assert vb.hard_resets >= 1
    assert SECRET not in vb.console_text()
    # Home Assistant's device: the model from board.json, the version of this deploy
    device = json.loads(ha.wait_for(1, timeout=10)[0].split(" ", 1)[1])["device"]
    assert device["model"] == json.loads((REPO / "boards" / "host" / "board.json").read_text())[
        "model"] and device["sw_version"] == stamp["version"], device


def test_redeploy_copies_only_what_changed_and_removes_stale_files(boards, repo_copy,
                                                                   mosquitto, prefix, tmp_path):
    vb = boards()
    extra = repo_copy / "lib" / "sensors" / "extra.py"
    extra.write_text("X = 1\n")
    args = ["--board", "host", "--port", vb.device, "--no-reset",
            *node_files(tmp_path, mosquitto, prefix)]
    assert deploy(*args, repo=repo_copy).returncode == 0
    assert "lib/sensors/extra.mpy" in flash_files(vb)
    (vb.flash_dir / "user.txt").write_text("the user's own file")

    # nothing changed: nothing is written, not even the version stamp
    r = deploy(*args, repo=repo_copy)
    assert r.returncode == 0 and copied(r.stdout) == [], r.stdout
    assert "0 of " in r.stdout and "nothing changed" in r.stdout, r.stdout

    # one module changed, one gone: exactly that file copied, the stale one removed
    node = repo_copy / "firmware" / "node.py"
    # (code, not a comment: comments do not reach the .mpy)
    node.write_text(node.read_text() + "\n_VERSION_NOTE = \"changed\"\n")
    extra.unlink()
    r = deploy(*args, repo=repo_copy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert copied(r.stdout) == ["lib/node.mpy", "mqnode.json"], r.stdout
    assert [line.split()[-1] for line in r.stdout.splitlines() if "] rm " in line] == \
        ["lib/sensors/extra.mpy"]
    files = flash_files(vb)
    assert "lib/sensors/extra.mpy" not in files and "user.txt" in files
    assert (vb.flash_dir / "lib" / "node.mpy").read_bytes() == \
        (repo_copy / "build" / "host" / "lib" / "node.mpy").read_bytes()

    # a changed secret is uploaded, and still never shown
    (tmp_path / "secrets.json").write_text(json.dumps({"broker_username": "node",
                                                      "broker_password": SECRET + "2"}))
    r = deploy(*args, repo=repo_copy)
    assert copied(r.stdout) == ["mqnode.json", "secrets.json"], r.stdout
    assert SECRET + "2" in (vb.flash_dir / "secrets.json").read_text()

    # settings a command saved (cmd/interval) stay until a new config.json comes
    (vb.flash_dir / "settings.json").write_text('{"interval_s": 600}')
    assert deploy(*args, repo=repo_copy).returncode == 0
    assert (vb.flash_dir / "settings.json").exists()
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["telemetry"]["interval_s"] = 30
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = deploy(*args, repo=repo_copy)
    assert "removing settings.json: " in r.stdout and copied(r.stdout) == ["config.json",
                                                                          "mqnode.json"], r.stdout
    assert not (vb.flash_dir / "settings.json").exists()


@pytest.mark.parametrize("env, why", [
    ({"VB_MPY": str(5 | 2 << 10)}, "runs MicroPython 1.29.0 (mpy v5.0); this build needs "
                                   "MicroPython >= 1.22 with mpy v6"),
    ({"VB_VERSION": "1.19.1"}, "runs MicroPython 1.19.1"),
    ({"VB_MPY_ARCH": "10"}, "is a xtensawin (esp32) machine, not host (x64): check --board"),
])
def test_abi_mismatch_is_refused(boards, env, why):
    vb = boards(platform="esp32" if "VB_MPY_ARCH" in env else "linux", env=env)
    r = deploy("--board", "host", "--port", vb.device)
    assert r.returncode == 1, r.stdout
    assert why in r.stdout, r.stdout
    assert "flash a current MicroPython" in r.stdout or "check --board" in r.stdout
    assert flash_files(vb) == set()


def test_fleet_deploy_reports_the_broken_board_and_finishes_the_others(boards, mosquitto,
                                                                        prefix, tmp_path):
    good = [boards("a"), boards("c")]
    broken = boards("b", platform="linux", env={"VB_VERSION": "1.18.0"})
    ports = [good[0].device, broken.device, good[1].device]
    args = ["--board", "host", "--no-reset", *node_files(tmp_path, mosquitto, prefix, None)]
    r = deploy(*args, *[x for p in ports for x in ("--port", p)])
    assert r.returncode == 1, r.stdout
    out = r.stdout
    assert f"{broken.device}: FAILED: " in out and "runs MicroPython 1.18.0" in out
    for vb in good:
        assert f"  {vb.device}: ok, " in out and f"{vb.device}: done" in out, out
        assert "lib/node.mpy" in flash_files(vb)
    assert f"  {broken.device}: FAILED" in out
    assert "2 of 3 boards deployed" in out
    assert flash_files(broken) == set()


def test_no_device_and_port_in_use(boards, tmp_path):
    r = deploy("--board", "host", "--port", tmp_path / "ttyGone")
    assert r.returncode == 1 and "no device on this port" in r.stdout, r.stdout
    vb = boards()
    import serial
    held = serial.Serial(str(vb.device), exclusive=True)   # a terminal left open
    try:
        r = deploy("--board", "host", "--port", vb.device)
    finally:
        held.close()
    assert r.returncode == 1 and "in use by another program" in r.stdout, r.stdout


def test_bad_config_file_is_refused_before_touching_the_board(boards, tmp_path):
    vb = boards()
    (tmp_path / "secrets.json").write_text('{"broker_password": "' + SECRET + '"')  # truncated
    r = deploy("--board", "host", "--port", vb.device, "--secrets", tmp_path / "secrets.json")
    assert r.returncode == 1 and "secrets.json: not valid JSON" in r.stderr, r.stderr
    assert flash_files(vb) == set() and vb.boots == 1


def test_logs_follow_what_the_node_prints(boards, mosquitto, prefix, tmp_path):
    vb = boards()
    assert deploy("--board", "host", "--port", vb.device, "--no-reset",
                  *node_files(tmp_path, mosquitto, prefix)).returncode == 0
    p = subprocess.Popen([sys.executable, str(REPO / "tools" / "mqnode.py"), "logs",
                          "--port", str(vb.device), "--duration", "8"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    os.kill(vb.pid, 9)   # a power cut: the virtual board boots again and runs main.py
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert "mqnode: vb-1 network up" in out and "mqnode: vb-1 connected" in out, out
    assert SECRET not in out


def test_not_enough_free_flash(boards):
    vb = boards(env={"VB_FLASH_BYTES": "16384"})   # a 16 KiB flash: the node needs more
    r = deploy("--board", "host", "--port", vb.device)
    assert r.returncode == 1 and "not enough free flash: this deploy needs " in r.stdout, r.stdout
    assert flash_files(vb) == set()


def test_not_a_micropython_board(tmp_path):
    # a serial device that never answers (a pty nobody serves): mpremote cannot get a raw REPL
    import pty
    master, slave = pty.openpty()
    link = tmp_path / "ttySilent"
    link.symlink_to(os.ttyname(slave))
    try:
        r = deploy("--board", "host", "--port", link, timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 1, r.stdout
    assert "does not answer like a MicroPython board" in r.stdout, r.stdout


def test_tls_key_files_go_to_the_board_only(boards, tmp_path):
    vb = boards()
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg" + "A" * 20 +
                   "\n-----END PRIVATE KEY-----\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    r = deploy("--board", "host", "--port", vb.device, "--no-reset",
               "--secret-file", key, "--secret-file", ca)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (vb.flash_dir / "client.key").read_bytes() == key.read_bytes()
    assert (vb.flash_dir / "ca.pem").read_bytes() == ca.read_bytes()
    assert "MIGHAgEA" not in r.stdout + r.stderr + vb.console_text()
    build = REPO / "build" / "host"
    assert not (build / "client.key").exists() and "client.key" not in \
        json.loads((build / "mqnode.json").read_text())["files"]
    r = deploy("--board", "host", "--port", vb.device, "--secret-file", tmp_path / "main.py")
    assert r.returncode == 1 and "no such file" in r.stderr


def test_redeploy_that_changed_nothing_does_not_reset_the_board(boards, mosquitto, sub, prefix,
                                                                 tmp_path):
    vb = boards()
    args = ["--board", "host", "--port", vb.device, *node_files(tmp_path, mosquitto, prefix)]
    assert deploy(*args).returncode == 0
    assert vb.wait_for_console("mqnode: vb-1 connected", timeout=30), vb.console_text()[-2000:]
    stamp = (vb.flash_dir / "mqnode.json").read_bytes()
    resets = vb.hard_resets
    mark = vb.console_mark()
    r = deploy(*args)
    assert r.returncode == 0 and copied(r.stdout) == [] and "nothing changed" in r.stdout, r.stdout
    assert vb.hard_resets == resets                     # no reset ...
    assert (vb.flash_dir / "mqnode.json").read_bytes() == stamp   # ... no write ...
    # ... and the node runs again (the probe had to stop it to reach the REPL)
    assert vb.wait_for_console("mqnode: vb-1 connected", timeout=30, since=mark), \
        vb.console_text()[-2000:]


@pytest.mark.parametrize("cfg, sec, why", [
    ({"telemtry": {"interval_s": 5}}, None,
     "--config {c}: telemtry: unknown key; did you mean telemetry?"),
    ({"broker": {"hots": "x"}}, None, "--config {c}: broker.hots: unknown key; did you mean host?"),
    ({"sensors": [{"type": "bme280"}, {"type": "bme280", "addr": 119}]}, None,
     "--config {c}: sensors[1].name: 'bme280' is sensors[0]'s name too; give each sensor "
     "its own"),
    ({"telemetry": {"interval_s": 0}}, None,
     "--config {c}: telemetry.interval_s: must be 1..86400 seconds"),
    ({}, {"broker_pasword": SECRET},
     "--secrets {s}: secrets.json: broker_pasword: unknown key; did you mean broker_password?"),
    (None, None, "--config {d}/missing.json: cannot read it (No such file or directory)"),
])
def test_config_mistakes_are_refused_before_a_byte_is_copied(boards, mosquitto, prefix, tmp_path,
                                                              cfg, sec, why):
    vb = boards()
    args = node_files(tmp_path, mosquitto, prefix)
    good = json.loads((tmp_path / "config.json").read_text())
    c, sp = tmp_path / "bad-config.json", tmp_path / "bad-secrets.json"
    if cfg is None:
        c = tmp_path / "missing.json"
    else:
        c.write_text(json.dumps({**good, **cfg}))
    args[1] = c
    if sec is not None:
        sp.write_text(json.dumps(sec))
        args[3] = sp
    r = deploy("--board", "host", "--port", vb.device, *args)
    assert r.returncode == 1, r.stdout + r.stderr
    assert why.format(c=c, s=sp, d=tmp_path) in r.stderr, r.stderr
    assert flash_files(vb) == set() and vb.boots == 1     # the board was never even asked


def test_a_tls_file_the_config_names_must_reach_the_board(boards, mosquitto, prefix, tmp_path):
    vb = boards()
    args = node_files(tmp_path, mosquitto, prefix)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["tls"] = {"ca": "/ca.pem"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = deploy("--board", "host", "--port", vb.device, *args)
    assert r.returncode == 1 and "config.json names /ca.pem (tls), which is not on the board: " \
        "add --secret-file ca.pem" in r.stdout, r.stdout
    assert flash_files(vb) == set()


def test_a_stale_py_that_would_shadow_the_mpy_is_removed(boards, mosquitto, prefix, tmp_path):
    vb = boards()
    # once copied by hand, as the README used to suggest
    (vb.flash_dir / "lib" / "mqtt").mkdir(parents=True)
    (vb.flash_dir / "lib" / "mqtt" / "client.py").write_text("raise ImportError('old')\n")
    (vb.flash_dir / "lib" / "node.py").write_text("raise ImportError('old')\n")
    (vb.flash_dir / "lib" / "mine.py").write_text("X = 1\n")   # the user's own: kept
    r = deploy("--board", "host", "--port", vb.device, *node_files(tmp_path, mosquitto, prefix))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removing lib/mqtt/client.py: it would be imported instead of the new " \
        "lib/mqtt/client.mpy" in r.stdout, r.stdout
    assert "removing lib/node.py: " in r.stdout
    files = flash_files(vb)
    assert {"lib/mqtt/client.mpy", "lib/node.mpy", "lib/mine.py"} <= files
    assert not {"lib/mqtt/client.py", "lib/node.py"} & files
    assert vb.wait_for_console("mqnode: vb-1 connected", timeout=30), vb.console_text()[-2000:]


def test_fleet_from_one_config_gives_each_board_its_own_id(boards, mosquitto, sub, prefix,
                                                           tmp_path):
    vbs = [boards(n) for n in "abc"]
    args = node_files(tmp_path, mosquitto, prefix, None)   # one config, no node_id
    s = sub(mosquitto, f"{prefix}/+/status", qos=1)
    r = deploy("--board", "host", *[x for vb in vbs for x in ("--port", vb.device)], *args)
    assert r.returncode == 0, r.stdout + r.stderr
    ids = sorted(line.split("node id ")[1].split()[0] for line in r.stdout.splitlines()
                 if "node id " in line)
    assert len(set(ids)) == 3 and all(i.startswith("host-") for i in ids), r.stdout
    got = s.wait_for(3, timeout=40)
    assert sorted(got) == sorted(f"{prefix}/{i}/status online" for i in ids), got
    time.sleep(3)   # clients with one id would keep throwing each other off
    assert sorted(s.messages) == sorted(got), s.messages
    assert "already connected" not in mosquitto.log_text()


def test_fleet_refuses_one_explicit_id_for_several_boards(boards, mosquitto, prefix, tmp_path):
    vbs = [boards(n) for n in "ab"]
    r = deploy("--board", "host", *[x for vb in vbs for x in ("--port", vb.device)],
               *node_files(tmp_path, mosquitto, prefix))
    assert r.returncode == 1
    assert "the client id 'vb-1' (node_id or broker.client_id) would be the same on all 2 " \
        "boards" in r.stderr, r.stderr
    assert all(flash_files(vb) == set() and vb.boots == 1 for vb in vbs)
    # an explicit client id is as shared as an explicit node_id
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**{k: v for k, v in json.loads(cfg.read_text()).items()
                                  if k != "node_id"},
                               "broker": {"host": mosquitto.host, "client_id": "fleet"}}))
    r = deploy("--board", "host", *[x for vb in vbs for x in ("--port", vb.device)],
               "--config", cfg)
    assert r.returncode == 1 and "the client id 'fleet' " in r.stderr, r.stderr


def test_logs_show_why_the_node_cannot_connect(boards, prefix, tmp_path):
    from conftest import free_port

    class Dead:
        host, port = "127.0.0.1", free_port()
    vb = boards()
    assert deploy("--board", "host", "--port", vb.device, "--no-reset",
                  *node_files(tmp_path, Dead, prefix)).returncode == 0
    p = subprocess.Popen([sys.executable, str(REPO / "tools" / "mqnode.py"), "logs",
                          "--port", str(vb.device), "--duration", "6"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    os.kill(vb.pid, 9)   # boots again and runs main.py while we watch
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert (f"mqnode: vb-1 connect failed: connection refused: nothing listens on "
            f"127.0.0.1:{Dead.port}; next try in at most 1 s") in out, out
    assert SECRET not in out


def test_interval_set_by_command_survives_a_power_cut(boards, mosquitto, sub, prefix, tmp_path):
    vb = boards()
    assert deploy("--board", "host", "--port", vb.device,
                  *node_files(tmp_path, mosquitto, prefix)).returncode == 0
    assert vb.wait_for_console("mqnode: vb-1 connected", timeout=30), vb.console_text()[-2000:]
    time.sleep(0.5)   # the command subscription follows the connect
    replies = sub(mosquitto, f"{prefix}/vb-1/reply/interval", qos=1, count=1)
    pub(mosquitto, f"{prefix}/vb-1/cmd/interval", "7", qos=1)
    assert len(replies.lines(timeout=15)) == 1
    assert json.loads((vb.flash_dir / "settings.json").read_text()) == {"interval_s": 7}
    tel = sub(mosquitto, f"{prefix}/vb-1/telemetry", qos=1)
    mark = vb.console_mark()
    os.kill(vb.pid, 9)   # a power cut: the board boots again from its flash
    assert vb.wait_for_console("mqnode: vb-1 connected", timeout=30, since=mark)
    got = [json.loads(m.split(" ", 1)[1]) for m in tel.wait_for(3, timeout=30)]
    first = [t for t in got if t["seq"] == 1]
    assert first and first[0]["interval_s"] == 7, got
