# The node with a verifying TLS config and a clock that was never set (it says
# 2000, as a board's RTC does after power-up): it must not connect, and must say
# why. <python> node_clock.py PORT CA_PATH SECONDS  (lib/ and firmware/ importable)
import asyncio
import json
import sys

import config
import node


class Clock2000:
    def gmtime(self, t=None):
        return (2000, 1, 1, 0, 0, 0, 5, 1)


class Board:
    NAME = "test"
    networks = 0

    async def network(self, ssid, password, timeout_ms=15000, tries=3):
        Board.networks += 1
        return "127.0.0.1"

    def bus(self, kind):
        return None

    def watchdog(self, timeout_s):
        return None


node.time = Clock2000()


async def main(port, ca, seconds):
    cfg = config.load(json.dumps({
        "node_id": "clock", "topic_prefix": "nodes", "tls": {"ca": ca},
        "broker": {"host": "localhost", "port": port}, "sensors": []}))
    n = node.Node(cfg, Board())
    t = asyncio.create_task(n.run())
    await asyncio.sleep(seconds)
    print("connects", n.client.connects, "task", n.client._task is not None)
    t.cancel()


asyncio.run(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
