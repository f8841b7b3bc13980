# The host board: the MicroPython unix port on a laptop. Simulated chips on
# the datasheet-modelled fake buses, values that drift slowly over time, an
# always-up network. Run a node by hand (from the repository root):
#
#   MICROPYPATH=lib:boards/host:.frozen micropython firmware/main.py \
#       [--config FILE] [--secrets FILE] [--id NODE] [--broker HOST[:PORT]]
#       [--prefix P] [--interval S]
#
# --config defaults to ./config.json if there is one, else
# boards/host/config.json; --secrets to ./secrets.json if there is one. The
# other options override fields, so one file serves a fleet of simulated nodes.
import sys
import time
from math import sin

NAME = "host"
PINS = {}

# this file's folder; frozen (the host image, `make firmware BOARD=host`) __file__ is just
# "board.py", and boards/host is then taken from the repository root, as above
_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "boards/host"
_OPTIONS = {"--id": "node_id", "--broker": "broker.host", "--prefix": "topic_prefix",
            "--interval": "telemetry.interval_s"}


def config(argv=None):
    """(config_text, secrets_text, overrides) from the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Without options, a deployed node (tools deploy to the virtual board) finds
    # config.json and secrets.json in its working folder, like a board in "/".
    paths = {"--config": "config.json" if _exists("config.json") else _HERE + "/config.json",
             "--secrets": "secrets.json" if _exists("secrets.json") else None}
    over = {}
    while args:
        opt = args.pop(0)
        if not args or not (opt in paths or opt in _OPTIONS):
            raise ValueError("usage: main.py [--config FILE] [--secrets FILE] [--id NODE] "
                             "[--broker HOST[:PORT]] [--prefix P] [--interval S]")
        val = args.pop(0)
        if opt in paths:
            paths[opt] = val
        elif opt == "--broker":
            host, _, port = val.partition(":")
            over["broker.host"] = host
            if port:
                over["broker.port"] = int(port) if port.isdigit() else port
        elif opt == "--interval":
            over["telemetry.interval_s"] = int(val) if val.isdigit() else val
        else:
            over[_OPTIONS[opt]] = val
    global SETTINGS, _where
    cfg = _read(paths["--config"])
    sec = _read(paths["--secrets"]) if paths["--secrets"] else "{}"
    # runtime settings live next to a config file the user gave or deployed, never in the
    # repository's default (boards/host/config.json)
    _where = paths["--config"]
    if not _where.startswith(_HERE + "/"):
        SETTINGS = _where.rsplit("/", 1)[0] + "/settings.json" if "/" in _where \
            else "settings.json"
    return cfg, sec, over


SETTINGS = None    # where the node keeps runtime settings (cmd/interval); set by config()
_where = ""


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise OSError("board host: cannot read %s (%s)" % (path, e))


def uid():
    """A stable id in hex: machine.unique_id() where there is one (a virtual board), else
    derived from this computer's id and the config file's path, so simulated nodes started
    from different folders get different ids."""
    try:
        import machine
        b = machine.unique_id()
    except (ImportError, AttributeError):
        import hashlib
        import os
        try:
            mid = _read("/etc/machine-id")
        except OSError:
            mid = ""
        b = hashlib.sha256(mid + os.getcwd() + "/" + _where).digest()[:6]
    return "".join("%02x" % x for x in b)


def _exists(path):
    try:
        open(path).close()
        return True
    except OSError:
        return False


async def network(ssid, password, timeout_ms=15000, tries=3):
    return "127.0.0.1"  # the laptop is always online


def bus(kind):
    if kind not in _buses and kind in _BUILD:
        _buses[kind] = _BUILD[kind]()
    return _buses.get(kind)


def watchdog(timeout_s):
    return None  # the unix port has no watchdog


def reset():
    pass  # firmware's main() starts the node again


def deep_sleep(ms):
    time.sleep_ms(ms)


# ---- the simulated world ----
#
# Each bus is built with its chips when a probe first asks for it, from its own
# model module (a node without a DS18B20 never loads the 1-Wire one). Every
# transaction first moves the chips' values on as slow sine waves of the time
# since start, so a reading sees the present.

_buses = {}
_t0 = time.ticks_ms()


def _s():
    return time.ticks_diff(time.ticks_ms(), _t0) / 1000


def _day(s):
    return sin(s / 600)  # a ten-minute "day", so a demo shows change


def _i2c():
    from fake_i2c import FakeI2C, FakeBME280, FakeSHT3x, EXAMPLE_ADC_T, EXAMPLE_ADC_P
    bme, sht = FakeBME280(), FakeSHT3x()

    class I2C(FakeI2C):
        def writeto(self, addr, buf, stop=True):
            s = _s()
            day = _day(s)
            bme.adc_t = EXAMPLE_ADC_T + int(6000 * day)          # about 25 +- 2 C
            bme.adc_p = EXAMPLE_ADC_P + int(800 * sin(s / 900))  # about 1006 +- 2 hPa
            bme.adc_h = 28000 + int(1500 * sin(s / 450))         # about 45 +- 5 %RH
            sht.raw_t = int((23.5 + 1.5 * day + 45) * 65535 / 175)
            sht.raw_rh = int((55 + 5 * sin(s / 300)) * 65535 / 100)
            # the fakes record traffic for tests; a node runs for days
            del bme.writes[:], sht.commands[:], self.log[:]
            return super().writeto(addr, buf, stop)

    i2c = I2C(0)
    i2c.add(0x76, bme)
    i2c.add(0x44, sht)
    return i2c


def _onewire():
    from fake_onewire import FakeOneWire, FakeDS18B20
    ds = [FakeDS18B20(0x0000A1B2C3D4), FakeDS18B20(0x0000A1B2C3D5)]

    class OneWire(FakeOneWire):
        def reset(self, required=False):
            day = _day(_s())
            for i, d in enumerate(ds):
                d.temp_c = 12.0 + 2 * i + day
            return super().reset(required)

    ow = OneWire("GP4")
    for d in ds:
        ow.add(d)
    return ow


def _adc():
    from fake_adc import FakeADC

    class ADC(FakeADC):
        def read_u16(self):
            self.volts = max(1.65, 1.975 - _s() / 400000)  # 3.95 V through 2:1, discharging
            return super().read_u16()

    return ADC(1.975)


_BUILD = {"i2c": _i2c, "onewire": _onewire, "adc": _adc}
