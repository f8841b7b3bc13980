"""TLS and credentials, on CPython and MicroPython, against mosquitto on 127.0.0.1.

One mosquitto with a plain listener and one TLS listener per server certificate of
tests/pki.py (good, other host name, expired, not yet valid, signed by a rogue CA), plus a
listener that requires a client certificate; a password file and an ACL."""
import base64
import glob
import hashlib
import json
import os
import re

import pytest

from conftest import REPO, Mosquitto, free_port
from pki import make_pki

SCEN = REPO / "tests" / "scenarios" / "tls_client.py"
PASSWORD = "tls-pw-0d5a"
LISTENERS = ("good", "other-host", "expired", "future", "rogue", "mutual")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def dynsec_config(path, username, password):
    """mosquitto's dynamic-security plugin config: one client, allowed nodes/# only. (An
    acl_file never refuses a subscription; this plugin answers SUBACK 0x80.)"""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    allow = [{"acltype": t, "topic": "nodes/#", "allow": True}
             for t in ("publishClientSend", "publishClientReceive", "subscribePattern")]
    path.write_text(json.dumps({
        "clients": [{"username": username, "password": base64.b64encode(digest).decode(),
                     "salt": base64.b64encode(salt).decode(), "iterations": 101,
                     "roles": [{"rolename": "node"}]}],
        "roles": [{"rolename": "node", "acls": allow}],
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                             "subscribe": False, "unsubscribe": True}}))


@pytest.fixture(scope="module")
def broker(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-broker")
    plugin = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
    if not plugin:
        pytest.fail("mosquitto_dynamic_security.so not found (Debian package mosquitto)")
    dynsec_config(d / "dynsec.json", "node", PASSWORD)
    ports = {name: free_port() for name in LISTENERS}
    cert = {"good": "server", "other-host": "other-host", "expired": "expired",
            "future": "future", "rogue": "rogue-server", "mutual": "server"}
    extra = ["allow_anonymous false", f"plugin {plugin[0]}",
             f"plugin_opt_config_file {d / 'dynsec.json'}"]
    for name, port in ports.items():
        ca = pki["rogue-ca"] if name == "rogue" else pki["ca"]
        extra += ["", f"listener {port} 127.0.0.1", f"cafile {ca}",
                  f"certfile {pki[cert[name]]}", f"keyfile {pki[cert[name] + '.key']}",
                  "tls_version tlsv1.2"]
        if name == "mutual":
            extra += ["require_certificate true"]
    b = Mosquitto(d, extra=extra)
    b.tls_ports = ports
    b.start()
    yield b
    b.stop()


def run(run_py, runtime, case, port, pki, host="localhost"):
    r = run_py(runtime, SCEN, [case, port, pki["ca"].parent, host], timeout=60)
    assert r.returncode == 0, r
    secrets = [PASSWORD] + [pki[k].read_text().splitlines()[1] for k in pki if k.endswith(".key")]
    for s in secrets:                   # no password or key material in any output
        assert s not in r.output, r
    return r.lines


def connects_seen(broker, client_id):
    return len(re.findall(rf"New client connected from \S+ as {client_id} ", broker.log_text()))


@pytest.mark.parametrize("case", ["ca-bytes", "ca-path"])
def test_the_right_ca_connects(run_py, runtime, broker, pki, case):
    if case == "ca-path" and runtime == "micropython":
        case = "ca-path"   # MicroPython reads the file itself: the same API on a board
    lines = run(run_py, runtime, case, broker.tls_ports["good"], pki)
    assert lines[1:] == ["up", "granted [1]", "flushed"], lines


@pytest.mark.parametrize("listener, host, name, why", [
    ("good", "127.0.0.1", None, None),             # the IP address is in the certificate too
    ("good", "127.0.0.1", "wrong.example", ("Hostname mismatch", "Common Name")),
    ("other-host", "localhost", None, ("Hostname mismatch", "Common Name")),
    ("rogue", "localhost", None, ("signature failure", "not correctly signed")),
    ("expired", "localhost", None, ("has expired", "validity has expired")),
    ("future", "localhost", None, ("not yet valid", "starts in the future")),
])
def test_bad_certificates_fail_before_any_connect_byte(run_py, runtime, broker, pki, listener,
                                                       host, name, why):
    cid = "tls-ca-bytes"
    before = connects_seen(broker, cid)
    r = run_py(runtime, SCEN, ["ca-bytes", broker.tls_ports[listener], pki["ca"].parent, host]
               + ([name] if name else []), timeout=60)
    assert r.returncode == 0, r
    lines = r.lines
    if why is None:
        assert lines[1:] == ["up", "granted [1]", "flushed"], lines
        return
    assert lines[1].startswith("failed "), lines
    assert why[runtime == "micropython"] in lines[1], lines
    # mosquitto never saw a CONNECT from us on that listener
    assert connects_seen(broker, cid) == before


def test_tls_without_a_ca_is_refused_unless_insecure(run_py, runtime, broker, pki):
    lines = run(run_py, runtime, "no-ca", broker.tls_ports["good"], pki)
    assert lines == ["error TLS needs the broker's CA (ca=...); pass insecure=True to skip "
                     "verification knowingly"], lines
    lines = run(run_py, runtime, "insecure", broker.tls_ports["rogue"], pki)
    assert lines[1:3] == ["up", "granted [1]"], lines
    assert "TLS(insecure)" in lines[0]


def test_mutual_tls_with_and_without_a_client_certificate(run_py, runtime, broker, pki):
    lines = run(run_py, runtime, "mutual", broker.tls_ports["mutual"], pki)
    assert lines[1:] == ["up", "granted [1]", "flushed"], lines
    lines = run(run_py, runtime, "ca-bytes", broker.tls_ports["mutual"], pki)
    assert lines[1].startswith("failed "), lines


def test_wrong_password_is_refused_and_retried(run_py, runtime, broker, pki):
    def refusals():
        return broker.log_text().count("disconnected, not authorised.")

    before = refusals()
    lines = run(run_py, runtime, "bad-password", broker.tls_ports["good"], pki)
    assert lines[1] == "refused 5", lines
    # the client went on trying, with backoff (0.3 s first) during the 2 s it waited
    tries = refusals() - before
    assert 2 <= tries <= 6, tries


def test_acl_denied_subscription_is_reported(run_py, runtime, broker, pki):
    lines = run(run_py, runtime, "acl", broker.tls_ports["good"], pki)
    assert lines[1:3] == ["up", "granted [128]"], lines


def test_password_over_plain_tcp_warns_once(run_py, runtime, broker, pki):
    lines = run(run_py, runtime, "plain", broker.port, pki)
    assert lines[1:3] == ["up", "granted [1]"], lines
    warnings = [line for line in lines if line.startswith("log ")]
    assert warnings == ["log password sent without TLS to localhost:%d" % broker.port], lines


def test_node_waits_for_a_set_clock_before_verifying(run_py, runtime, broker, pki):
    r = run_py(runtime, REPO / "tests" / "scenarios" / "node_clock.py",
               [broker.tls_ports["good"], pki["ca"], 1.5], pythonpath=(REPO / "firmware",),
               timeout=30)
    assert r.returncode == 0, r
    assert "mqnode: clock TLS: not connecting while the clock is not set (it says 2000); the " \
           "board sets it from NTP when the network comes up" in r.lines, r
    assert r.lines[-1] == "connects 0 task False", r


def test_node_over_tls(start_py, broker, pki, sub, tmp_path):
    # the host-board node, TLS to the broker with the CA file named in its config
    cfg = json.loads((REPO / "boards" / "host" / "config.json").read_text())
    cfg.update(node_id="tls-node", topic_prefix="nodes",
               broker={"host": "localhost", "port": broker.tls_ports["good"], "keepalive": 30},
               tls={"ca": str(pki["ca"])}, telemetry={"interval_s": 1})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "secrets.json").write_text(json.dumps(
        {"broker_username": "node", "broker_password": PASSWORD}))
    s = sub(broker, "nodes/tls-node/telemetry", qos=1, username="node", password=PASSWORD)
    p = start_py("micropython", REPO / "firmware" / "main.py",
                 ["--config", tmp_path / "config.json", "--secrets", tmp_path / "secrets.json"],
                 pythonpath=(REPO / "boards" / "host",), cwd=REPO)
    got = s.wait_for(2, timeout=30)
    assert len(got) == 2, p.seen
    assert json.loads(got[0].split(" ", 1)[1])["node"] == "tls-node"
    p.kill_now()
    out = "\n".join(p.seen) + p.stdout.read()
    assert PASSWORD not in out and "without TLS" not in out


def test_node_says_why_tls_fails(start_py, broker, pki, tmp_path):
    # a broker whose certificate our CA did not sign: the console says it is TLS, and why
    cfg = json.loads((REPO / "boards" / "host" / "config.json").read_text())
    cfg.update(node_id="tls-bad", topic_prefix="nodes", tls={"ca": str(pki["ca"])},
               broker={"host": "localhost", "port": broker.tls_ports["rogue"]})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    p = start_py("micropython", REPO / "firmware" / "main.py",
                 ["--config", tmp_path / "config.json"],
                 pythonpath=(REPO / "boards" / "host",), cwd=REPO)
    line = p.expect("connect failed", timeout=30)
    assert line.startswith("mqnode: tls-bad connect failed: TLS: ") and \
        "next try in at most 1 s" in line, (line, p.seen)
    assert "not correctly signed" in line, (line, p.seen)
