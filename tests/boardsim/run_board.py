# Runs one check of a board.py on the MicroPython unix port against the fakes in this
# folder and prints one JSON line with what happened. Used by tests/test_boards.py:
#   micropython run_board.py <port: esp32|rp2> <check> [args...]
# (MICROPYPATH: this folder, then boards/<board>/; BOARD_DIR: boards/<board>/, which goes
# first, ahead of .frozen too: an image that freezes another board's board.py must not win.)
import os
import sys
import json
import time
import asyncio

import machine
import network

PORT = sys.argv[1]
CHECK = sys.argv[2]
ARGS = sys.argv[3:]
machine.use(PORT)
network.use(PORT, constants="noconst" not in ARGS)

sys.path.insert(0, os.getenv("BOARD_DIR"))
import board  # noqa: E402  (after the fakes are set up)

V = network.VALUES
out = {"name": board.NAME}


def calls(name):
    return [list(c[1:]) for c in machine.CALLS if c[0] == name]


def net(ssid, password, timeout_ms, tries):
    t0 = time.ticks_ms()
    try:
        out["ip"] = asyncio.run(board.network(ssid, password, timeout_ms=timeout_ms, tries=tries))
    except OSError as e:
        out["error"] = str(e)
        out["error_type"] = type(e).__name__
    out["elapsed_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    out["connect_at"] = [time.ticks_diff(t, t0) for t in network.CONNECT_TIMES]
    out["connects"] = [c[1:] for c in network.CALLS if c[0] == "connect"]
    out["disconnects"] = len([c for c in network.CALLS if c[0] == "disconnect"])
    out["configs"] = [c[2] for c in network.CALLS if c[0] == "config"]


board.RETRY_PAUSE_MS = 50
board.POLL_MS = 20

if CHECK == "bus":
    a = board.bus("i2c")
    b = board.bus("i2c")
    out["i2c_same"] = a is b
    out["i2c"] = calls("I2C")
    ow = board.bus("onewire")
    out["onewire_same"] = ow is board.bus("onewire")
    out["onewire"] = calls("OneWire")
    adc = board.bus("adc")
    out["adc_same"] = adc is board.bus("adc")
    out["adc_read_uv"] = hasattr(adc, "read_uv")
    del machine.CALLS[:]
    out["adc_value"] = adc.read_u16()
    out["adc_value2"] = adc.read_u16()
    out["adc_calls"] = [list(c) for c in machine.CALLS]
    out["unknown"] = repr(board.bus("spi"))
    out["unknown_again"] = repr(board.bus("spi"))
elif CHECK == "watchdog":
    out["timeouts"] = []
    for s in (2, 8, 9, 30, 3600):
        w = board.watchdog(s)
        w.feed()
        out["timeouts"].append(w.timeout)
elif CHECK == "reset":
    board.reset()
    board.deep_sleep(60000)
    out["calls"] = [list(c) for c in machine.CALLS]
elif CHECK == "config":
    board.CONFIG = ARGS[0]
    board.SECRETS = ARGS[1]
    try:
        out["result"] = list(board.config())
    except OSError as e:
        out["error"] = str(e)
elif CHECK == "net_ok":      # up after 250 ms
    network.plan([(0, V["STAT_CONNECTING"]), (250, V["STAT_GOT_IP"])])
    net("HomeNet", "s3cret-pw", 2000, 3)
elif CHECK == "net_up":      # already up: no connect at all
    network.UP_AT_START = True
    net("HomeNet", "s3cret-pw", 2000, 3)
elif CHECK == "net_never":   # stays "connecting" for ever
    network.plan([(0, V["STAT_CONNECTING"])])
    net("HomeNet", "s3cret-pw", 300, 3)
elif CHECK == "net_badpw":   # the AP says: wrong password, 150 ms into each try
    network.plan([(0, V["STAT_CONNECTING"]), (150, V["STAT_WRONG_PASSWORD"])])
    net("HomeNet", "s3cret-pw", 3000, 2)
elif CHECK == "net_second":  # no AP on the first try, up on the second
    network.plan([(0, V["STAT_CONNECTING"]), (100, V["STAT_NO_AP_FOUND"])],
                 [(0, V["STAT_CONNECTING"]), (200, V["STAT_GOT_IP"])])
    net("HomeNet", "s3cret-pw", 3000, 3)
else:
    raise SystemExit("unknown check " + CHECK)

print(json.dumps(out))
