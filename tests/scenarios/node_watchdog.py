# Runs firmware/node.Node for a few seconds with a board whose watchdog records
# its feeds, on CPython and MicroPython: the schedule loop must create the
# watchdog with the configured timeout and keep feeding it.
#   <python> node_watchdog.py PORT SECONDS     (lib/ and firmware/ importable)
import asyncio
import json
import sys

import config
from mqtt.compat import ticks_ms
from node import Node


class Dog:
    def __init__(self, timeout_s):
        self.timeout_s = timeout_s
        self.feeds = []

    def feed(self):
        self.feeds.append(ticks_ms())


class Board:
    NAME = "test"
    dogs = []

    async def network(self, ssid, password, timeout_ms=15000, tries=3):
        return "127.0.0.1"

    def bus(self, kind):
        return None

    def watchdog(self, timeout_s):
        self.dogs.append(Dog(timeout_s))
        return self.dogs[-1]


async def main(port, seconds):
    cfg = config.load(json.dumps({
        "node_id": "wd", "broker": {"host": "127.0.0.1", "port": port},
        "telemetry": {"interval_s": 3600}, "watchdog_s": 5,
        "sensors": [{"type": "battery"}]}))
    board = Board()
    node = Node(cfg, board)
    t = asyncio.create_task(node.run())
    await asyncio.sleep(seconds)
    t.cancel()
    dogs = board.dogs
    print("dogs", len(dogs), dogs[0].timeout_s if dogs else None)
    f = dogs[0].feeds if dogs else []
    gaps = [(b - a) & 0x3FFFFFFF for a, b in zip(f, f[1:])]
    print("feeds", len(f), "max_gap_ms", max(gaps) if gaps else None)


asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
