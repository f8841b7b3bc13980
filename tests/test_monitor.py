"""tools/monitor.py against a real mosquitto: events, will and silence alerts, --exec,
exit codes, password hygiene, and render_table."""

import json
import sys
import time

import pytest

from conftest import REPO

MONITOR = REPO / "tools" / "monitor.py"
sys.path.insert(0, str(REPO / "tools"))

import monitor  # noqa: E402


@pytest.fixture(autouse=True)
def history_file(tmp_path, monkeypatch):
    """Each test's monitors record into the test's own history file (the default is in ~)."""
    path = tmp_path / "history.sqlite"
    monkeypatch.setenv("MQNODE_HISTORY", str(path))
    return path

NODE = """
import asyncio, sys
from mqtt import MQTTClient

async def main(host, port, prefix, node):
    st = prefix + "/" + node + "/status"
    c = MQTTClient(host, int(port), node, keepalive=60, will=(st, b"offline", 1, True))
    await c.connect(timeout=10)
    await c.publish(st, b"online", qos=1, retain=True)
    await c.flush(timeout=10)
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


def start_monitor(start_py, broker, prefix, *extra, env=None):
    args = ["--host", broker.host, "--port", broker.port, "--prefix", prefix, "--json",
            "--connect-timeout", "5"] + [str(a) for a in extra]
    p = start_py("cpython", MONITOR, args, env=env)
    p.expect('"event": "subscribed"', timeout=10)
    return p


def events(p, timeout=15):
    """Wait for the monitor to exit; its JSON lines parsed (non-JSON lines kept as text)."""
    p.wait(timeout=timeout)
    while True:
        try:
            if p.readline(timeout=5) is None:
                break
        except TimeoutError:
            break
    out = []
    for line in p.seen:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "text", "node": None, "details": {"line": line}})
    return out


def alerts(evs, kind=None):
    return [e for e in evs if e["event"] == "alert" and (kind is None or e["details"]["kind"] == kind)]


def tel(node, seq, interval=1, **readings):
    return json.dumps({"node": node, "seq": seq, "uptime_s": seq, "interval_s": interval,
                       "readings": readings or {"t": 21.5}, "errors": {}})


def test_events_and_no_alert_exit_0(mosquitto, pub, prefix, start_py):
    pub(mosquitto, f"{prefix}/old/status", "offline", qos=1, retain=True)
    p = start_monitor(start_py, mosquitto, prefix, "--duration", 2)
    pub(mosquitto, f"{prefix}/n1/status", "online", qos=1, retain=True)
    pub(mosquitto, f"{prefix}/n1/telemetry", tel("n1", 7, interval=60, t=21.5, rh=40), qos=1)
    pub(mosquitto, f"{prefix}/n2/status", "sleeping 300", qos=1, retain=True)
    pub(mosquitto, f"{prefix}/n1/telemetry", "not json", qos=1)
    evs = events(p)
    assert p.returncode == 0, p.seen
    kinds = [(e["event"], e["node"]) for e in evs]
    assert ("offline", "old") in kinds           # retained offline: state, not an alert
    assert ("online", "n1") in kinds
    assert ("sleeping", "n2") in kinds
    assert ("bad_telemetry", "n1") in kinds
    t = [e for e in evs if e["event"] == "telemetry"][0]
    assert t["node"] == "n1" and t["details"]["seq"] == 7 and t["details"]["readings"]["rh"] == 40
    assert not alerts(evs)
    summary = [e for e in evs if e["event"] == "summary"][0]["details"]
    assert summary["nodes"]["old"]["state"] == "offline"
    assert summary["nodes"]["n1"]["state"] == "online"
    assert summary["nodes"]["n2"]["state"] == "sleeping"


def test_will_alert_on_sigkill(mosquitto, prefix, start_py, tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    p = start_monitor(start_py, mosquitto, prefix, "--exit-on-alert", "--duration", 20)
    node = start_py("cpython", script, [mosquitto.host, mosquitto.port, prefix, "nodeK"])
    node.expect("ready", timeout=10)
    p.expect('"event": "online"', timeout=5)
    node.kill_now()
    evs = events(p, timeout=15)   # keepalive 60 s, but a killed process closes its socket
    assert p.returncode == 3, p.seen
    will = alerts(evs, "will")
    assert will and will[0]["node"] == "nodeK"


def test_silent_alert_once_and_exec(mosquitto, pub, prefix, start_py, tmp_path):
    out = tmp_path / "hook.txt"
    hook = f"sh -c 'echo \"$MQNODE_ALERT $MQNODE_NODE $MQNODE_DETAILS\" >> {out}'"
    p = start_monitor(start_py, mosquitto, prefix, "--grace", 1.5, "--duration", 4.5,
                      "--exec", hook)
    pub(mosquitto, f"{prefix}/quiet/status", "online", qos=1)
    pub(mosquitto, f"{prefix}/quiet/telemetry", tel("quiet", 1), qos=1)
    p.expect('"kind": "silent"', timeout=4)
    t_alert = time.monotonic()
    evs = events(p)
    assert p.returncode == 3, p.seen
    silent = alerts(evs, "silent")
    assert len(silent) == 1 and silent[0]["node"] == "quiet"   # once, not every 0.5 s
    assert not alerts(evs, "will")
    assert time.monotonic() - t_alert < 10
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    kind, node, details = lines[0].split(" ", 2)
    assert (kind, node) == ("silent", "quiet")
    assert json.loads(details)["interval_s"] == 1


def test_sleeping_node_not_silent_during_sleep(mosquitto, pub, prefix, start_py):
    p = start_monitor(start_py, mosquitto, prefix, "--grace", 1.5, "--duration", 3.5)
    pub(mosquitto, f"{prefix}/bat/telemetry", tel("bat", 1), qos=1)
    pub(mosquitto, f"{prefix}/bat/status", "sleeping 30", qos=1, retain=True)
    evs = events(p)
    assert p.returncode == 0, p.seen
    assert not alerts(evs)


def test_password_from_env_never_printed(mosquitto_factory, pub, prefix, start_py):
    b = mosquitto_factory(users={"u": "s3cret-pw"})
    p = start_monitor(start_py, b, prefix, "--username", "u", "--duration", 1.5,
                      env={"MQNODE_PASSWORD": "s3cret-pw"})
    pub(b, f"{prefix}/n/status", "offline", qos=1, username="u", password="s3cret-pw")
    evs = events(p)
    assert p.returncode == 3, p.seen      # a live offline is a will alert
    assert alerts(evs, "will")
    assert all("s3cret-pw" not in line for line in p.seen)


def test_wrong_password_exit_2_and_not_printed(mosquitto_factory, start_py):
    b = mosquitto_factory(users={"u": "right"})
    p = start_py("cpython", MONITOR, ["--host", b.host, "--port", b.port, "--username", "u",
                                      "--connect-timeout", "2"],
                 env={"MQNODE_PASSWORD": "wrong-pw-123"})
    p.wait(timeout=10)
    assert p.returncode == 2
    assert "wrong-pw-123" not in p.stdout.read()


def test_usage_error_exit_2(start_py):
    p = start_py("cpython", MONITOR, ["--port", "1"])   # --host missing
    p.wait(timeout=10)
    assert p.returncode == 2


def test_check_silence_and_render_table_unit():
    m = monitor.Monitor("fleet", grace=2.0, out=open("/dev/null", "w"))
    m.handle("fleet/a/status", b"online", now=100.0)
    m.handle("fleet/a/telemetry", tel("a", 3, interval=10, t=1.25).encode(), now=100.0)
    m.handle("fleet/b/telemetry", tel("b", 1, interval=10).encode(), now=100.0)
    m.handle("fleet/b/status", b"sleeping 100", now=100.0)
    m.handle("other/c/status", b"online", now=100.0)
    assert set(m.nodes) == {"a", "b"}
    m.check_silence(now=119.0)
    assert m.alerts == 0
    m.check_silence(now=121.0)
    assert m.alerts == 1 and m.nodes["a"].silent and not m.nodes["b"].silent
    m.check_silence(now=150.0)
    assert m.alerts == 1                 # once, until it speaks again
    m.check_silence(now=221.0)           # sleep 100 + 2 x 10 over
    assert m.alerts == 2 and m.nodes["b"].silent
    table = monitor.render_table(m.nodes, now=130.0)
    assert "a" in table and "online (silent)" in table and "t=1.25" in table
    assert "sleeping" in table and "30.0s ago" in table
    assert monitor.render_table({}) == "(no nodes seen)"


def test_malformed_telemetry_is_the_nodes_error_and_nothing_breaks(tmp_path):
    m = monitor.Monitor("fleet", out=open("/dev/null", "w"))
    seen = []
    m.listeners.append(lambda t, event, node, details: seen.append((event, node)))
    bad = [b"{x", b"[1, 2]", b'{"readings": [1]}', b'{"readings": {"t": NaN}}',
           b'{"seq": 1, "readings": {"t": Infinity}}', b"\xff\xfe", b""]
    for payload in bad:
        m.handle("fleet/a/telemetry", payload)
        assert m.nodes["a"].error["payload"] == payload.decode("utf-8", "replace").strip()[:100]
    assert seen == [("bad_telemetry", "a")] * len(bad)
    assert m.nodes["a"].readings == {} and m.nodes["a"].seq is None
    m.handle("fleet/a/telemetry", tel("a", 5).encode())     # a good one after: taken as usual
    assert m.nodes["a"].seq == 5 and seen[-1] == ("telemetry", "a")


def test_shared_monitors_split_the_will_alerts(mosquitto, pub, prefix, start_py):
    # Two monitors in one share group: each will alert is raised by exactly one of them.
    a = start_monitor(start_py, mosquitto, prefix, "--share", "ops", "--duration", 4)
    b = start_monitor(start_py, mosquitto, prefix, "--share", "ops", "--duration", 4)
    nodes = [f"w{i}" for i in range(12)]
    for n in nodes:
        pub(mosquitto, f"{prefix}/{n}/status", "offline", qos=1)
    got_a = [e["node"] for e in alerts(events(a), "will")]
    got_b = [e["node"] for e in alerts(events(b), "will")]
    assert sorted(got_a + got_b) == sorted(nodes)     # every alert once, none twice
    assert got_a and got_b, (got_a, got_b)            # the work was shared
    assert a.returncode == 3 and b.returncode == 3


def test_share_group_name_checked(start_py):
    p = start_py("cpython", MONITOR, ["--host", "127.0.0.1", "--share", "a/b"])
    assert p.wait(timeout=10) == 2


# ---- TLS and credentials ----

TLS_PW = "mon-pw-7c1e"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from pki import make_pki
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(mosquitto_factory, pki):
    from conftest import free_port
    ports = {"tls": free_port(), "mutual": free_port()}
    extra = []
    for name, port in ports.items():
        extra += [f"listener {port} 127.0.0.1", f"cafile {pki['ca']}",
                  f"certfile {pki['server']}", f"keyfile {pki['server.key']}",
                  "tls_version tlsv1.2"] + (["require_certificate true"] if name == "mutual"
                                            else [])
    b = mosquitto_factory(users={"mon": TLS_PW}, extra=extra)
    b.tls_ports = ports
    return b


def tls_monitor(start_py, b, *extra, env=None, host="localhost"):
    args = ["--host", host, "--prefix", "tlsfleet", "--json", "--connect-timeout", "3",
            "--username", "mon"] + [str(a) for a in extra]
    return start_py("cpython", MONITOR, args, env=env)


def no_secrets(p, pki):
    out = "\n".join(p.seen) + (p.stdout.read() if p._thread is None else "")
    assert TLS_PW not in out
    assert pki["client.key"].read_text().splitlines()[1] not in out
    return out


def test_monitor_over_tls_with_a_password_file(tls_broker, pki, pub, start_py, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(TLS_PW + "\n")
    p = tls_monitor(start_py, tls_broker, "--port", tls_broker.tls_ports["tls"], "--tls-ca",
                    pki["ca"], "--password-file", pw, "--duration", 3)
    line = p.expect('"event": "subscribed"', timeout=10)
    assert json.loads(line)["details"]["tls"] is True
    pub(tls_broker, "tlsfleet/n1/status", "online", qos=1, username="mon", password=TLS_PW)
    p.expect('"event": "online"', timeout=5)
    assert p.wait(timeout=10) == 0
    no_secrets(p, pki)


def test_monitor_mutual_tls(tls_broker, pki, start_py):
    port = tls_broker.tls_ports["mutual"]
    p = tls_monitor(start_py, tls_broker, "--port", port, "--tls-ca", pki["ca"],
                    "--tls-cert", pki["client"], "--tls-key", pki["client.key"],
                    "--duration", 1, env={"MQNODE_PASSWORD": TLS_PW})
    p.expect('"event": "subscribed"', timeout=10)
    assert p.wait(timeout=10) == 0
    no_secrets(p, pki)
    # without the client certificate the same listener refuses the handshake: said so
    p = tls_monitor(start_py, tls_broker, "--port", port, "--tls-ca", pki["ca"],
                    env={"MQNODE_PASSWORD": TLS_PW})
    assert p.wait(timeout=15) == 2
    out = no_secrets(p, pki)
    assert "TLS to localhost:%d" % port in out, out


def test_wrong_ca_says_the_certificate_was_refused(tls_broker, pki, start_py):
    p = tls_monitor(start_py, tls_broker, "--port", tls_broker.tls_ports["tls"], "--tls-ca",
                    pki["rogue-ca"], "--connect-timeout", 60, env={"MQNODE_PASSWORD": TLS_PW})
    assert p.wait(timeout=30) == 2          # at once: trying again cannot fix a certificate
    out = no_secrets(p, pki)
    assert "the broker's certificate was not accepted: " in out, out
    assert "check --tls-ca" in out and "TimeoutError" not in out and "no answer" not in out
    # no broker there at all: said so too (the broker listens on 127.0.0.1 only)
    p = tls_monitor(start_py, tls_broker, "--port", tls_broker.tls_ports["tls"], "--tls-ca",
                    pki["ca"], env={"MQNODE_PASSWORD": TLS_PW}, host="127.0.0.2")
    assert p.wait(timeout=15) == 2
    assert f"nothing listens on 127.0.0.2:{tls_broker.tls_ports['tls']}" in no_secrets(p, pki)


def test_wrong_password_over_tls_says_refused(tls_broker, pki, start_py, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("not-the-pw-55\n")
    p = tls_monitor(start_py, tls_broker, "--port", tls_broker.tls_ports["tls"], "--tls-ca",
                    pki["ca"], "--password-file", pw)
    assert p.wait(timeout=15) == 2
    out = no_secrets(p, pki)
    assert "refused the connection: not authorized (check --username and the password)" in out
    assert "not-the-pw-55" not in out


def test_tls_and_password_usage_errors(start_py, tmp_path, pki):
    cases = [(["--tls-ca", pki["ca"], "--tls-cert", pki["client"]], "go together"),
             (["--tls-cert", pki["client"], "--tls-key", pki["client.key"]], "needs --tls-ca"),
             (["--tls-ca", tmp_path / "nope.pem"], "no such file"),
             (["--username", "u", "--password-file", tmp_path / "nope"], "No such file"),
             (["--retention", "forever"], "not a duration")]
    for args, why in cases:
        p = start_py("cpython", MONITOR, ["--host", "127.0.0.1"] + [str(a) for a in args])
        assert p.wait(timeout=10) == 2, args
        assert why in p.stdout.read(), (args, why)
