# firmware/node.utc() and the telemetry's ts under three clocks, on CPython and
# MicroPython: this runtime's own (set: the host's), a board's RTC that was
# never set (it says 2000), and a bare-metal port's clock that counts from
# 2000 (ESP32, RP2040), set to a known moment.
#   <python> node_ts.py      (lib/ and firmware/ importable)
import asyncio
import json
import time

import config
import node

REAL = time
MOMENT = 1767225600 + 3 * 3600   # 2026-01-01 03:00:00 UTC, in seconds since 1970


def days(y):   # days from 1970-01-01 to y-01-01 (no century rules needed before 2100)
    return (y - 1970) * 365 + (y - 1969) // 4


class Epoch2000:
    """time on a bare-metal port: seconds since 2000-01-01, gmtime from 2000."""

    def __init__(self, now):
        self.now = now   # seconds since 2000

    def time_ns(self):
        return self.now * 1000000000

    def gmtime(self, t=None):
        t = self.now if t is None else t
        d = t // 86400
        y = 2000
        while d >= days(y + 1) - days(y):
            d -= days(y + 1) - days(y)
            y += 1
        return (y, 1, 1, 0, 0, 0, 0, d + 1)   # only the year is looked at


class Board:
    NAME = "test"

    def bus(self, kind):
        return None


async def main():
    cfg = config.load(json.dumps({"node_id": "ts", "broker": {"host": "127.0.0.1"}}))
    n = node.Node(cfg, Board())
    before = REAL.time()
    t = json.loads(await n.measure())
    print("own", abs(t["ts"] - before) <= 2, isinstance(t["ts"], int), node.utc() == t["ts"])
    node.time = Epoch2000(5 * 86400)            # never set: 2000-01-06
    t = json.loads(await n.measure())
    print("unset", "ts" in t, node.utc())
    node.time = Epoch2000(MOMENT - 946684800)   # set, counting from 2000
    t = json.loads(await n.measure())
    print("epoch2000", t["ts"] == MOMENT, t["ts"])


asyncio.run(main())
