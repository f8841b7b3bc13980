# The node's configuration: config.json (committed as an example) plus
# secrets.json (passwords; never committed, never logged). One schema,
# checked once at boot; the first wrong or missing field stops the node
# with a message that names it.
import json


class ConfigError(ValueError):
    """A field of config.json or secrets.json is missing or wrong."""


_REQ = object()   # marks a field that has no default

# (field, type, default, check, what the check wants), checked in this order
_SCHEMA = (
    # "auto": <board name>-<hex of the chip's unique id> (load's auto_id)
    ("node_id", str, "auto", lambda v: 0 < len(v) <= 64 and not ("/" in v or "+" in v or "#" in v),
                "1..64 characters without / + #"),
    ("topic_prefix", str, "mqnode", lambda v: 0 < len(v) and "+" not in v and "#" not in v,
                     "a topic level(s) without + #"),
    ("broker.host", str, _REQ, lambda v: len(v) > 0, "a host name or IP address"),
    ("broker.port", int, 1883, lambda v: 0 < v < 65536, "1..65535"),
    ("broker.keepalive", int, 60, lambda v: 0 <= v <= 65535, "0..65535 seconds"),
    ("broker.client_id", str, "", lambda v: len(v) <= 64, "at most 64 characters"),
    ("broker.mqtt_version", int, 4, lambda v: v in (4, 5), "4 (MQTT 3.1.1) or 5 (MQTT 5.0)"),
    ("broker.will_delay_s", int, 0, lambda v: 0 <= v <= 86400, "0..86400 seconds"),
    ("wifi.ssid", str, "", lambda v: len(v) <= 32, "at most 32 characters"),
    ("network", str, "wifi", lambda v: v in ("wifi", "ppp"),
                '"wifi", or "ppp" (rp2_pico_w: PPP on UART0, see boards/README.md)'),
    ("telemetry.interval_s", int, 60, lambda v: 1 <= v <= 86400, "1..86400 seconds"),
    ("telemetry.qos", int, 1, lambda v: v in (0, 1, 2), "0, 1 or 2"),
    ("buffer", int, 32, lambda v: 1 <= v <= 1000, "1..1000 readings"),
    ("watchdog_s", int, 0, lambda v: v == 0 or 5 <= v <= 3600, "0 (off) or 5..3600 seconds"),
    ("deep_sleep", bool, False, None, ""),
    # TLS: files on the board (put there by `tools/mqnode.py deploy --secret-file`)
    ("tls.ca", str, None, lambda v: len(v) > 0, "the path of the broker's CA certificate"),
    ("tls.cert", str, None, lambda v: len(v) > 0, "the path of the client certificate"),
    ("tls.key", str, None, lambda v: len(v) > 0, "the path of the client key"),
    ("tls.server_hostname", str, None, lambda v: len(v) > 0, "the broker's name"),
    ("tls.insecure", bool, False, None, ""),
    ("sensors", list, [], None, ""),
    # Home Assistant MQTT discovery; "discovery": false turns it off
    ("discovery.prefix", str, "homeassistant", lambda v: 0 < len(v) and "+" not in v and
                          "#" not in v, "a topic level(s) without + #"),
)

_SECRETS = (
    ("wifi_password", str, "", None, ""),
    ("broker_username", str, None, None, ""),
    ("broker_password", str, None, None, ""),
    ("ota_key", str, None, lambda v: len(v) >= 16, "at least 16 characters (the fleet key "
     "that signs over-the-air updates)"),
)

SENSOR_TYPES = ("bme280", "sht3x", "ds18b20", "battery")
_SENSOR_KEYS = {"bme280": ("addr",), "sht3x": ("addr",), "ds18b20": (), "battery": ("ratio",)}


def load(config_text, secrets_text="{}", overrides=None, auto_id="auto"):
    """Parse and check both files; returns a dict with dotted keys
    ("broker.host", ...) plus "secrets" (a dict that must never be printed).
    overrides: {dotted key: value} put into config.json before the checks
    (the host board's command line). auto_id: the node_id of a config
    that says "auto" or none. A key the schema does not know is an error
    (ConfigError.known lists the keys allowed there)."""
    cfg = _parse(config_text, "config.json")
    for key, v in (overrides or {}).items():
        _put(cfg, key, v)
    sec = _parse(secrets_text, "secrets.json")
    disc = cfg.pop("discovery", None)
    if disc is not None and disc is not False and not isinstance(disc, dict):
        raise ConfigError("discovery: must be false or an object")
    if disc:
        cfg["discovery"] = disc
    _known(cfg, [s[0] for s in _SCHEMA], "")
    _known(sec, [s[0] for s in _SECRETS], "secrets.json: ")
    out = _check(cfg, _SCHEMA, "")
    if disc is False:
        out["discovery.prefix"] = None
    if out["node_id"] == "auto":
        out["node_id"] = auto_id
    if not out["broker.client_id"]:
        out["broker.client_id"] = out["node_id"]
    if out["broker.will_delay_s"] and out["broker.mqtt_version"] != 5:
        raise ConfigError("broker.will_delay_s: needs broker.mqtt_version 5 (MQTT 3.1.1 "
                          "has no will delay)")
    names = []
    for i, s in enumerate(out["sensors"]):
        s = out["sensors"][i] = _sensor(s, "sensors[%d]" % i)
        if s["name"] in names:   # its readings would overwrite the other's
            raise ConfigError("sensors[%d].name: %r is sensors[%d]'s name too; give each "
                              "sensor its own" % (i, s["name"], names.index(s["name"])))
        names.append(s["name"])
    if (out["tls.cert"] is None) != (out["tls.key"] is None):
        raise ConfigError("tls.%s: missing (a client certificate needs its key, and a key "
                          "its certificate)" % ("key" if out["tls.key"] is None else "cert"))
    if (out["tls.cert"] or out["tls.server_hostname"]) and not (out["tls.ca"] or
                                                                out["tls.insecure"]):
        raise ConfigError("tls.ca: missing (TLS verifies the broker with its CA; "
                          "tls.insecure: true turns verification off)")
    out["secrets"] = _check(sec, _SECRETS, "secrets.json: ")
    if out["secrets"]["broker_password"] is not None and out["secrets"]["broker_username"] is None:
        raise ConfigError("secrets.json: broker_password needs broker_username")
    return out


def _parse(text, name):
    try:
        d = json.loads(text)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % name)
    if not isinstance(d, dict):
        raise ConfigError("%s: must be a JSON object" % name)
    return d


def _get(d, dotted):
    for k in dotted.split("."):
        if not isinstance(d, dict) or k not in d:
            return _REQ
        d = d[k]
    return d


def _put(d, dotted, v):
    keys = dotted.split(".")
    for k in keys[:-1]:
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[keys[-1]] = v


def _known(d, keys, where):
    # every key of d must be a schema key (or an object holding some)
    names = []
    for k in keys:
        n = k.split(".")[0]
        if n not in names:
            names.append(n)
    for k in d:
        if k not in names:
            e = ConfigError("%s%s: unknown key" % (where, k))
            e.known = names
            raise e
        sub = [x[len(k) + 1:] for x in keys if x.startswith(k + ".")]
        if sub and isinstance(d[k], dict):
            _known(d[k], sub, where + k + ".")


def _check(d, schema, where):
    out = {}
    for key, typ, default, ok, want in schema:
        v = _get(d, key)
        if v is _REQ:
            if default is _REQ:
                raise ConfigError("%s%s: missing (%s)" % (where, key, want))
            v = default
        elif v is not None or default is not None:
            # bool is an int in Python: do not accept true for a number
            if not isinstance(v, typ) or typ is int and isinstance(v, bool):
                raise ConfigError("%s%s: must be %s, not %s" % (
                    where, key, typ.__name__, type(v).__name__))
            if ok and not ok(v):
                raise ConfigError("%s%s: must be %s" % (where, key, want))
        out[key] = v
    return out


def _sensor(s, where):
    if not isinstance(s, dict):
        raise ConfigError("%s: must be an object" % where)
    t = s.get("type")
    if t not in SENSOR_TYPES:
        raise ConfigError("%s.type: must be one of %s" % (where, ", ".join(SENSOR_TYPES)))
    _known(s, ("type", "name") + _SENSOR_KEYS[t], where + ".")
    name = s.get("name", t)
    if not isinstance(name, str) or not name or "'" in name or "\\" in name:
        # (quotes and backslashes would break the discovery's value_template)
        raise ConfigError("%s.name: must be a non-empty string without ' or \\" % where)
    if t in ("bme280", "sht3x"):
        addr = s.get("addr", 0x76 if t == "bme280" else 0x44)
        if not isinstance(addr, int) or isinstance(addr, bool) or not 0 < addr < 0x78:
            raise ConfigError("%s.addr: must be a 7-bit I2C address" % where)
        s["addr"] = addr
    if t == "battery":
        ratio = s.get("ratio", 2.0)
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio < 1:
            raise ConfigError("%s.ratio: must be a number >= 1" % where)
        s["ratio"] = ratio
    s["type"] = t
    s["name"] = name
    return s
