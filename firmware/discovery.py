# Home Assistant MQTT discovery: a retained config per reading, so the node's
# sensors appear in Home Assistant by themselves. Loaded only when the config's
# discovery is on (the default). What Home Assistant reads is documented at
# home-assistant.io/integrations/mqtt (discovery) and /integrations/sensor.mqtt
# (the keys); tests/test_discovery.py checks every key against that.
#
# Topic: <prefix>/sensor/<node>/<reading>/config, where node and reading keep
# only [a-zA-Z0-9_-] (Home Assistant drops any other discovery topic).
import json

# our unit -> (device_class, unit_of_measurement) as Home Assistant names them
_CLASSES = {"C": ("temperature", "\u00b0C"), "%RH": ("humidity", "%"),
            "hPa": ("atmospheric_pressure", "hPa"), "V": ("voltage", "V"),
            "%": ("battery", "%")}


def object_id(text):
    """text with every character Home Assistant does not allow in a topic
    level of a discovery topic replaced by "_"."""
    return "".join(c if "a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_-"
                   else "_" for c in text)


class Discovery:
    def __init__(self, prefix, node, board_name, stamp="mqnode.json"):
        self.prefix = prefix + "/sensor/" + object_id(node.id) + "/"
        self.node = node
        # the version and model of the last deploy (tools/mqnode.py writes the stamp)
        self.device = {"identifiers": ["mqnode_" + object_id(node.id)], "name": node.id,
                       "manufacturer": "mqnode", "model": board_name}
        try:
            with open(stamp) as f:
                s = json.loads(f.read())
            self.device["model"] = s.get("model") or board_name
            self.device["sw_version"] = s["version"]
        except (OSError, ValueError, KeyError, TypeError):
            pass   # no stamp (frozen into the image): no version to tell

    def topic(self, key):
        return self.prefix + object_id(key) + "/config"

    def config(self, key, unit):
        """The retained config payload for the reading `key` ([value, unit] in telemetry)."""
        n = self.node
        c = {"name": key, "unique_id": "mqnode_%s_%s" % (object_id(n.id), object_id(key)),
             "state_topic": n.t_telemetry,
             "value_template": "{{ value_json.readings['%s'][0] }}" % key,
             "state_class": "measurement", "qos": n.qos,
             # the will sets "offline": the entities turn unavailable with the node
             "availability_topic": n.t_status, "payload_available": "online",
             "payload_not_available": "offline", "device": self.device}
        cls = _CLASSES.get(unit)
        if cls:
            c["device_class"], c["unit_of_measurement"] = cls
        elif unit:
            c["unit_of_measurement"] = unit
        return json.dumps(c)
