"""firmware/config.py: one schema, checked at boot, errors that name the field (both runtimes)."""
import json

import pytest

from conftest import REPO

SCRIPT = REPO / "tests" / "scenarios" / "config_check.py"
BASE = {"node_id": "n1", "broker": {"host": "10.0.0.2"}}

CASES = [
    (BASE, "ok n1 n1 1883 60 0"),
    (json.loads((REPO / "firmware" / "config.example.json").read_text()),
     "ok greenhouse-1 greenhouse-1 1883 60 4"),
    # no node_id, or "auto": the board's own (config.load's auto_id; here "auto-7")
    ({"broker": {"host": "h"}}, "ok auto-7 auto-7 1883 60 0"),
    ({"node_id": "auto", "broker": {"host": "h"}}, "ok auto-7 auto-7 1883 60 0"),
    # a key the schema does not know is a mistake (a misspelling would be ignored)
    ({**BASE, "telemtry": {"interval_s": 5}}, "error telemtry: unknown key"),
    ({**BASE, "broker": {"host": "h", "prot": 1884}}, "error broker.prot: unknown key"),
    ({**BASE, "sensors": [{"type": "bme280", "adr": 118}]}, "error sensors[0].adr: unknown key"),
    ({**BASE, "sensors": [{"type": "ds18b20", "addr": 118}]}, "error sensors[0].addr: unknown key"),
    # two sensors with one name: the second's readings would overwrite the first's
    ({**BASE, "sensors": [{"type": "bme280"}, {"type": "bme280", "addr": 119}]},
     "error sensors[1].name: 'bme280' is sensors[0]'s name too; give each sensor its own"),
    ({**BASE, "sensors": [{"type": "sht3x", "name": "a"}, {"type": "battery", "name": "a"}]},
     "error sensors[1].name: 'a' is sensors[0]'s name too; give each sensor its own"),
    ({**BASE, "sensors": [{"type": "sht3x", "name": "it's"}]},
     "error sensors[0].name: must be a non-empty string without ' or \\"),
    ({**BASE, "discovery": False}, "ok n1 n1 1883 60 0"),
    ({**BASE, "discovery": {"prefix": "ha"}}, "ok n1 n1 1883 60 0"),
    ({**BASE, "discovery": "yes"}, "error discovery: must be false or an object"),
    ({**BASE, "discovery": {"prefix": "ha/#"}},
     "error discovery.prefix: must be a topic level(s) without + #"),
    ({**BASE, "discovery": {"prefx": "ha"}}, "error discovery.prefx: unknown key"),
    ({"node_id": "a/b", "broker": {"host": "h"}}, "error node_id: must be 1..64 characters without / + #"),
    ({"node_id": "n1"}, "error broker.host: missing (a host name or IP address)"),
    ({**BASE, "broker": {"host": "h", "port": "1883"}}, "error broker.port: must be int, not str"),
    ({**BASE, "broker": {"host": "h", "port": 70000}}, "error broker.port: must be 1..65535"),
    ({**BASE, "telemetry": {"interval_s": True}}, "error telemetry.interval_s: must be int, not bool"),
    ({**BASE, "telemetry": {"qos": 3}}, "error telemetry.qos: must be 0, 1 or 2"),
    ({**BASE, "sensors": [{"type": "bmp180"}]},
     "error sensors[0].type: must be one of bme280, sht3x, ds18b20, battery"),
    ({**BASE, "sensors": [{"type": "sht3x", "addr": 200}]},
     "error sensors[0].addr: must be a 7-bit I2C address"),
    ({**BASE, "sensors": [{"type": "battery", "ratio": 0.5}]},
     "error sensors[0].ratio: must be a number >= 1"),
    ({**BASE, "tls": {"ca": "/ca.pem"}}, "ok n1 n1 1883 60 0"),
    ({**BASE, "broker": {"host": "h", "mqtt_version": 5, "will_delay_s": 30}}, "ok n1 n1 1883 60 0"),
    ({**BASE, "broker": {"host": "h", "mqtt_version": 3}},
     "error broker.mqtt_version: must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)"),
    ({**BASE, "broker": {"host": "h", "will_delay_s": 30}},
     "error broker.will_delay_s: needs broker.mqtt_version 5 (MQTT 3.1.1 has no will delay)"),
    ({**BASE, "tls": {"ca": "/ca.pem", "cert": "/client.pem"}},
     "error tls.key: missing (a client certificate needs its key, and a key its certificate)"),
    ({**BASE, "tls": {"cert": "/client.pem", "key": "/client.key"}},
     "error tls.ca: missing (TLS verifies the broker with its CA; tls.insecure: true turns "
     "verification off)"),
    ({**BASE, "tls": {"insecure": "yes"}}, "error tls.insecure: must be bool, not str"),
    ({**BASE, "tls": {"ca": ""}}, "error tls.ca: must be the path of the broker's CA certificate"),
    ("[1, 2]", "error config.json: must be a JSON object"),
    ("{not json", "error config.json: not valid JSON"),
]


def test_config_checked_with_named_errors(run_py, runtime, tmp_path):
    paths = []
    for i, (cfg, _) in enumerate(CASES):
        p = tmp_path / f"case{i}.json"
        p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        paths.append(p)
    r = run_py(runtime, SCRIPT, paths, pythonpath=(REPO / "firmware",))
    assert r.returncode == 0, r.output
    assert r.lines == [want for _, want in CASES]
    assert "s3cret-pw" not in r.output


def test_secrets_checked():
    import sys
    sys.path.insert(0, str(REPO / "firmware"))
    import config
    with pytest.raises(config.ConfigError, match="secrets.json: broker_password needs broker_username"):
        config.load(json.dumps(BASE), '{"broker_password": "x"}')
    with pytest.raises(config.ConfigError, match="secrets.json: broker_username: must be str"):
        config.load(json.dumps(BASE), '{"broker_username": 5}')
    c = config.load(json.dumps(BASE), '{"broker_username": "u", "broker_password": "pw-123"}')
    assert c["secrets"]["broker_password"] == "pw-123"
    with pytest.raises(config.ConfigError, match="secrets.json: wifi_pasword: unknown key") as e:
        config.load(json.dumps(BASE), '{"wifi_pasword": "pw-123"}')
    assert "pw-123" not in str(e.value) and "wifi_password" in e.value.known


def test_discovery_prefix():
    import sys
    sys.path.insert(0, str(REPO / "firmware"))
    import config
    assert config.load(json.dumps(BASE))["discovery.prefix"] == "homeassistant"   # on by default
    assert config.load(json.dumps({**BASE, "discovery": {}}))["discovery.prefix"] == "homeassistant"
    assert config.load(json.dumps({**BASE, "discovery": False}))["discovery.prefix"] is None
    assert config.load(json.dumps({**BASE, "discovery": {"prefix": "ha"}}))["discovery.prefix"] == "ha"
