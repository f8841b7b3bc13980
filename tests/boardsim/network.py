# Fake `network` for the MicroPython unix port: WLAN(STA_IF) with the documented methods
# (active, connect, disconnect, isconnected, status, config, ifconfig, ipconfig) and the
# port's STAT_* constants. use("esp32") or use("rp2") picks the constants' values (rp2:
# the CYW43_LINK_* codes); use(port, constants=False) removes them, as on a firmware that
# lacks them. The link follows a plan per connect() call: a list of (ms after connect,
# status) steps, the last step reached is the status; a connect() beyond the plans repeats
# the last plan. Calls are recorded in CALLS (the password too, so tests can check it
# never leaks into messages).
import time

STA_IF = 0
AP_IF = 1
IP = "192.168.4.23"
CALLS = []
CONNECT_TIMES = []   # ticks_ms() of each connect()
PLANS = []
UP_AT_START = False

_PORTS = {
    "esp32": {"STAT_IDLE": 1000, "STAT_CONNECTING": 1001, "STAT_GOT_IP": 1010,
              "STAT_BEACON_TIMEOUT": 200, "STAT_NO_AP_FOUND": 201,
              "STAT_WRONG_PASSWORD": 202, "STAT_ASSOC_FAIL": 203,
              "STAT_HANDSHAKE_TIMEOUT": 204},
    "rp2": {"STAT_IDLE": 0, "STAT_CONNECTING": 1, "STAT_GOT_IP": 3, "STAT_CONNECT_FAIL": -1,
            "STAT_NO_AP_FOUND": -2, "STAT_WRONG_PASSWORD": -3},
}
VALUES = {}   # the values of the current port, even when the constants are removed


def use(port, constants=True):
    g = globals()
    for table in _PORTS.values():
        for k in table:
            if k in g:
                del g[k]
    VALUES.clear()
    VALUES.update(_PORTS[port])
    if constants:
        g.update(_PORTS[port])


def plan(*plans):
    """Each plan: [(ms, status), ...] for one connect() call."""
    PLANS[:] = list(plans)


class WLAN:
    _sta = None

    def __new__(cls, interface_id=STA_IF):
        # One object per interface, as on hardware.
        if cls._sta is None:
            cls._sta = object.__new__(cls)
            cls._sta._init()
        return cls._sta

    def __init__(self, interface_id=STA_IF):
        CALLS.append(("WLAN", interface_id))

    def _init(self):
        self._active = False
        self._plan = [(0, VALUES["STAT_GOT_IP"])] if UP_AT_START else [(0, VALUES["STAT_IDLE"])]
        self._t0 = time.ticks_ms()
        self._n = 0

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        CALLS.append(("active", is_active))
        self._active = bool(is_active)

    def config(self, *args, **kw):
        CALLS.append(("config", args, kw))

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("STA must be active")   # as the esp32 port does
        CALLS.append(("connect", ssid, key))
        CONNECT_TIMES.append(time.ticks_ms())
        p = PLANS[min(self._n, len(PLANS) - 1)] if PLANS else [(0, VALUES["STAT_CONNECTING"])]
        self._n += 1
        self._plan = p
        self._t0 = time.ticks_ms()

    def disconnect(self):
        CALLS.append(("disconnect",))
        self._plan = [(0, VALUES["STAT_IDLE"])]

    def status(self, param=None):
        if param is not None:
            raise ValueError("unknown status param")
        dt = time.ticks_diff(time.ticks_ms(), self._t0)
        st = self._plan[0][1]
        for at, s in self._plan:
            if dt >= at:
                st = s
        return st

    def isconnected(self):
        return self.status() == VALUES["STAT_GOT_IP"]

    def ifconfig(self, *args):
        if self.isconnected():
            return (IP, "255.255.255.0", "192.168.4.1", "192.168.4.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def ipconfig(self, *args, **kw):
        if args == ("addr4",):
            return (self.ifconfig()[0], self.ifconfig()[1])
        raise ValueError("unexpected ipconfig(%r)" % (args,))


use("esp32")
