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
        d = {"identifiers": ["mqnode_" + object_id(node.id)], "name": node.id,
             "manufacturer": "mqnode", "model": board_name}
        try:   # the model and version of the last deploy (tools/mqnode.py writes the stamp)
            with open(stamp) as f:
                s = json.loads(f.read())
            d["model"] = s.get("model") or board_name
            d["sw_version"] = s["version"]
        except (OSError, ValueError, KeyError, TypeError):
            pass   # no stamp (frozen into the image): no version to tell
        # the fixed part of every config, as text once: the board has ~100 KB of heap
        self.tail = ',"state_topic":%s,"availability_topic":%s,"device":%s}' % (
            json.dumps(node.t_telemetry), json.dumps(node.t_status), json.dumps(d))

    def topic(self, key):
        return self.prefix + object_id(key) + "/config"

    def config(self, key, unit):
        """The retained config payload for the reading `key` ([value, unit] in telemetry).
        The availability payloads are Home Assistant's defaults, online and offline:
        what the node's status says, so the will turns the entities unavailable."""
        cls = _CLASSES.get(unit)
        extra = ',"device_class":"%s","unit_of_measurement":"%s"' % cls if cls else \
            ',"unit_of_measurement":%s' % json.dumps(unit) if unit else ""
        return '{"name":%s,"unique_id":"mqnode_%s_%s","value_template":%s,' \
            '"state_class":"measurement"%s%s' % (
                json.dumps(key), object_id(self.node.id), object_id(key),
                json.dumps("{{ value_json.readings['%s'][0] }}" % key), extra, self.tail)
