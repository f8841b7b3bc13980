# Bench-only stand-in for the board `network` module, so mqtt_as (PyPI
# micropython-mqtt, tve's mqtt_async) imports on the MicroPython unix port:
# it creates network.WLAN(network.STA_IF) at import and asks isconnected()
# before each connect. The unix port's loopback is always "connected".
STA_IF = 0
AP_IF = 1
STAT_CONNECTING = 1
STAT_GOT_IP = 3


class WLAN:
    def __init__(self, interface=STA_IF):
        pass

    def isconnected(self):
        return True

    def active(self, *a):
        return True

    def connect(self, *a, **k):
        pass

    def disconnect(self):
        pass

    def status(self, *a):
        return STAT_GOT_IP
