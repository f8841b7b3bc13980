"""Home Assistant MQTT discovery (firmware/discovery.py): the node's retained config per
reading, checked key by key against Home Assistant's documentation, and rendered with
Jinja2 (what Home Assistant renders value_template with) against the node's real
telemetry; the will turns the entities unavailable; `mqnode fleet forget` clears it all.

The schema below is written from home-assistant.io: /integrations/mqtt (discovery topic
and payload), /integrations/sensor.mqtt (every configuration variable of an MQTT sensor,
its type, and the device map) and /integrations/sensor (device classes and their units).
"""
import json
import os
import re
import subprocess
import sys
import time

import jinja2
import pytest

from conftest import REPO, pub

MAIN = REPO / "firmware" / "main.py"
HOST = REPO / "boards" / "host"

# discovery topic: <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, node_id
# and object_id from [a-zA-Z0-9_-] only (Home Assistant's TOPIC_MATCHER)
TOPIC = re.compile(r"homeassistant/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
                   r"(?P<object_id>[a-zA-Z0-9_-]+)/config$")
STR, INT, BOOL, LIST, MAP, TEMPLATE = str, int, bool, list, dict, "template"
# sensor.mqtt configuration variables: name -> type (None: may be null)
SENSOR = {
    "availability": LIST, "availability_mode": STR, "availability_template": TEMPLATE,
    "availability_topic": STR, "device": MAP, "device_class": (STR, None),
    "enabled_by_default": BOOL, "encoding": STR, "entity_category": STR,
    "entity_picture": STR, "expire_after": INT, "force_update": BOOL, "icon": STR,
    "json_attributes_template": TEMPLATE, "json_attributes_topic": STR,
    "last_reset_value_template": TEMPLATE, "name": (STR, None), "object_id": STR,
    "options": LIST, "payload_available": STR, "payload_not_available": STR,
    "platform": STR, "suggested_display_precision": INT, "qos": INT, "state_class": STR,
    "state_topic": STR, "unique_id": STR, "unit_of_measurement": (STR, None),
    "value_template": TEMPLATE,
}
REQUIRED = {"state_topic"}
DEVICE = {
    "configuration_url": STR, "connections": LIST, "hw_version": STR,
    "identifiers": (STR, LIST), "manufacturer": STR, "model": STR, "model_id": STR,
    "name": STR, "serial_number": STR, "suggested_area": STR, "sw_version": STR,
    "via_device": STR,
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
# /integrations/sensor: the device classes a node's readings can have, with their units
DEVICE_CLASSES = {
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "atmospheric_pressure": {"mPa", "Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg",
                             "inH₂O", "psi"},
    "pressure": {"mPa", "Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "inH₂O",
                 "psi"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "battery": {"%"},
}


def typed(value, want):
    wants = want if isinstance(want, tuple) else (want,)
    for w in wants:
        if w is None and value is None or w == TEMPLATE and isinstance(value, str) or \
                isinstance(w, type) and isinstance(value, w) and not (
                    w is int and isinstance(value, bool)):
            return True
    return False


def check_sensor_config(topic, c):
    """Every key of one single-component sensor discovery payload, against the docs."""
    m = TOPIC.match(topic)
    assert m and m["component"] == "sensor", topic
    unknown = set(c) - set(SENSOR)
    assert not unknown, f"{topic}: keys Home Assistant does not know: {unknown}"
    assert REQUIRED <= set(c), topic
    for k, v in c.items():
        assert typed(v, SENSOR[k]), f"{topic}: {k} must be {SENSOR[k]}, not {v!r}"
    # "platform: Only allowed and required in MQTT auto discovery device messages"
    assert "platform" not in c, topic
    assert not ("availability" in c and "availability_topic" in c), topic
    assert c.get("qos", 0) in (0, 1, 2)
    if "device_class" in c:
        assert c["device_class"] in DEVICE_CLASSES, c["device_class"]
        assert c.get("unit_of_measurement") in DEVICE_CLASSES[c["device_class"]], c
    if "state_class" in c:
        assert c["state_class"] in STATE_CLASSES
    # the device map "only works when unique_id is set"; identifiers or connections needed
    d = c["device"]
    assert "unique_id" in c and d, topic
    assert set(d) <= set(DEVICE), set(d) - set(DEVICE)
    for k, v in d.items():
        assert typed(v, DEVICE[k]), f"{topic}: device.{k} must be {DEVICE[k]}, not {v!r}"
    assert d.get("identifiers") or d.get("connections"), topic
    for t in ("value_template",):
        jinja2.Environment().parse(c[t])   # a template Jinja2 can parse


def render(template, payload):
    # Home Assistant renders value_template with `value` (the payload text) and
    # `value_json` (the payload parsed as JSON)
    return jinja2.Environment().from_string(template).render(
        value=payload, value_json=json.loads(payload))


@pytest.fixture
def node(start_py, mosquitto, prefix):
    def start(node_id="n1", *args):
        argv = ["--id", node_id, "--broker", f"{mosquitto.host}:{mosquitto.port}",
                "--prefix", prefix, "--interval", "1", *args]
        return start_py("micropython", MAIN, argv, pythonpath=(HOST,), cwd=REPO)
    return start


def messages(lines):
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines}


def test_discovery_configs_follow_home_assistants_schema(node, mosquitto, sub, prefix):
    tel = sub(mosquitto, f"{prefix}/n1/telemetry", qos=1)
    p = node("n1")
    t = json.loads(tel.wait_for(2, timeout=30)[1].split(" ", 1)[1])
    readings = t["readings"]
    assert len(readings) == 9, t   # the host board's BME280, SHT3x, two DS18B20, battery
    # retained: subscribed after the node published them (before its first telemetry),
    # as a Home Assistant that starts later would
    s = sub(mosquitto, "homeassistant/#", qos=1)
    configs = messages(s.wait_for(len(readings), timeout=15))
    assert len(configs) == len(readings), (configs.keys(), p.seen)
    ids = set()
    for topic, payload in configs.items():
        c = json.loads(payload)
        check_sensor_config(topic, c)
        key = c["name"]
        assert topic == f"homeassistant/sensor/n1/{key.replace('.', '_')}/config"
        assert c["state_topic"] == f"{prefix}/n1/telemetry"
        assert c["availability_topic"] == f"{prefix}/n1/status"
        # the documented defaults of payload_(not_)available: what the status says
        assert (c.get("payload_available", "online"),
                c.get("payload_not_available", "offline")) == ("online", "offline")
        assert c["device"]["identifiers"] == ["mqnode_n1"] and c["device"]["name"] == "n1"
        # the value Home Assistant will show is the reading from the telemetry
        assert render(c["value_template"], json.dumps(t)) == str(readings[key][0])
        ids.add(c["unique_id"])
    assert len(ids) == len(configs)       # one entity per reading
    classes = {json.loads(v)["name"]: json.loads(v).get("device_class") for v in configs.values()}
    assert classes["air.temperature"] == "temperature" and classes["air.humidity"] == "humidity"
    assert classes["air.pressure"] == "atmospheric_pressure"
    assert classes["battery.voltage"] == "voltage" and classes["battery.charge"] == "battery"
    assert all(v == "temperature" for k, v in classes.items() if k.startswith("soil."))


def test_the_will_turns_the_entities_unavailable(node, mosquitto, sub, prefix):
    s = sub(mosquitto, ["homeassistant/#", f"{prefix}/n1/status"], qos=1)
    p = node("n1")
    got = s.wait_for(10, timeout=30)   # online + nine configs
    c = json.loads(next(line for line in got if line.startswith("homeassistant/")).split(" ", 1)[1])
    online, offline = c.get("payload_available", "online"), c.get("payload_not_available",
                                                                   "offline")
    assert f"{c['availability_topic']} {online}" in got
    p.kill_now()   # no DISCONNECT: the broker publishes the will
    got = s.wait_for(11, timeout=30)
    assert got[-1] == f"{c['availability_topic']} {offline}", got
    # retained, so a Home Assistant that connects later sees them unavailable too
    late = sub(mosquitto, c["availability_topic"], qos=1)
    assert late.wait_for(1, timeout=10) == [f"{c['availability_topic']} offline"]


def test_discovery_off(node, mosquitto, sub, prefix, tmp_path):
    cfg = json.loads((HOST / "config.json").read_text())
    cfg["discovery"] = False
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = sub(mosquitto, ["homeassistant/#", f"{prefix}/n1/telemetry"], qos=1)
    node("n1", "--config", tmp_path / "config.json")
    got = s.wait_for(2, timeout=30)
    assert len(got) == 2 and all(line.startswith(prefix) for line in got), got


def test_another_discovery_prefix(node, mosquitto, sub, prefix, tmp_path):
    cfg = json.loads((HOST / "config.json").read_text())
    cfg["discovery"] = {"prefix": "ha"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = sub(mosquitto, "ha/sensor/n1/+/config", qos=1)
    node("n1", "--config", tmp_path / "config.json")
    assert len(s.wait_for(9, timeout=30)) == 9


def forget(mosquitto, prefix, node_id="n1"):
    return subprocess.run([sys.executable, str(REPO / "tools" / "mqnode.py"), "fleet", "forget",
                           node_id, "--host", mosquitto.host, "--port", str(mosquitto.port),
                           "--prefix", prefix], capture_output=True, text=True, timeout=60)


def test_fleet_forget_clears_a_retired_nodes_retained_topics(node, mosquitto, sub, prefix):
    s = sub(mosquitto, ["homeassistant/#", f"{prefix}/n1/status"], qos=1)
    p = node("n1")
    assert len(s.wait_for(10, timeout=30)) == 10
    r = forget(mosquitto, prefix)
    assert r.returncode == 1 and "n1 is online: stop it first" in r.stderr, r.stdout + r.stderr
    p.kill_now()
    assert s.wait_for(11, timeout=20)[-1] == f"{prefix}/n1/status offline"
    pub(mosquitto, "homeassistant/sensor/n2/x/config", "{}", qos=1, retain=True)  # another's
    r = forget(mosquitto, prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "n1: 10 retained topics cleared" in r.stdout, r.stdout
    late = sub(mosquitto, ["homeassistant/#", f"{prefix}/#"], qos=1)
    assert late.wait_for(2, timeout=3) == ["homeassistant/sensor/n2/x/config {}"]


GOOD = {"name": "air.temperature", "unique_id": "mqnode_n1_air_temperature",
        "state_topic": "mqnode/n1/telemetry", "device_class": "temperature",
        "unit_of_measurement": "°C", "value_template": "{{ value_json.readings['a'][0] }}",
        "availability_topic": "mqnode/n1/status", "device": {"identifiers": ["mqnode_n1"]}}


@pytest.mark.parametrize("topic, change", [
    ("homeassistant/sensor/n1/air.temperature/config", {}),        # a dot in the object id
    ("homeassistant/sensor/n1/air_temperature/config", {"unit": "C"}),
    ("homeassistant/sensor/n1/air_temperature/config", {"unit_of_measurement": "C"}),
    ("homeassistant/sensor/n1/air_temperature/config", {"device_class": "temp"}),
    ("homeassistant/sensor/n1/air_temperature/config", {"qos": "1"}),
    ("homeassistant/sensor/n1/air_temperature/config", {"state_class": "average"}),
    ("homeassistant/sensor/n1/air_temperature/config", {"device": {"name": "n1"}}),
    ("homeassistant/sensor/n1/air_temperature/config", {"device": {"ids": ["x"]}}),
    ("homeassistant/sensor/n1/air_temperature/config", {"availability": [{"topic": "s"}]}),
    ("homeassistant/sensor/n1/air_temperature/config", {"value_template": "{{ value_json.x"}),
])
def test_the_schema_check_can_fail(topic, change):
    check_sensor_config("homeassistant/sensor/n1/air_temperature/config", GOOD)
    with pytest.raises((AssertionError, jinja2.TemplateSyntaxError)):
        check_sensor_config(topic, {**GOOD, **change})
