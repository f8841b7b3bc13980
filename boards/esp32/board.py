# Board: ESP32 DevKit-style boards (MicroPython ESP32_GENERIC). The only code that builds
# machine/network objects on this board; the contract is in boards/README.md.
import asyncio
import time

import machine
import network as _network  # imported under another name: network() is the contract's
import onewire

NAME = "esp32"
PINS = {"i2c_sda": 21, "i2c_scl": 22, "onewire": 4, "battery_adc": 35, "led": 2}

# The two JSON files on the board's filesystem (module-level so tests can point them elsewhere).
CONFIG = "/config.json"
SECRETS = "/secrets.json"
SETTINGS = "/settings.json"   # runtime settings (cmd/interval), written by the node

I2C_FREQ = 400000
POLL_MS = 100            # how often network() looks at the link while joining
RETRY_PAUSE_MS = 1000    # pause before try n+1 is n * RETRY_PAUSE_MS

_ENOENT = 2
_buses = {}
_wlan = None

# _network.STAT_* on the esp32 port (fallbacks are the port's values, so a firmware that
# lacks a constant does not crash). A try ends early on a status that will not change by
# waiting: wrong password, or no access point with that ssid.
_STATUS_NAMES = (
    ("STAT_IDLE", 1000), ("STAT_CONNECTING", 1001), ("STAT_GOT_IP", 1010),
    ("STAT_BEACON_TIMEOUT", 200), ("STAT_NO_AP_FOUND", 201), ("STAT_WRONG_PASSWORD", 202),
    ("STAT_ASSOC_FAIL", 203), ("STAT_HANDSHAKE_TIMEOUT", 204), ("STAT_CONNECT_FAIL", None),
)
_FATAL = ("STAT_WRONG_PASSWORD", "STAT_NO_AP_FOUND", "STAT_CONNECT_FAIL")


def _status(name):
    for n, default in _STATUS_NAMES:
        if n == name:
            return getattr(_network, n, default)
    return None


def _status_name(st):
    for n, default in _STATUS_NAMES:
        if st is not None and getattr(_network, n, default) == st:
            return "%s (%r)" % (n, st)
    return repr(st)


def _read(path):
    with open(path) as f:
        return f.read()


def config():
    """(config.json text, secrets.json text, {}). A missing secrets.json reads as "{}"."""
    try:
        cfg = _read(CONFIG)
    except OSError as e:
        raise OSError("board %s: cannot read %s (%s); copy firmware/config.example.json "
                      "there" % (NAME, CONFIG, e))
    try:
        sec = _read(SECRETS)
    except OSError as e:
        if not e.args or e.args[0] != _ENOENT:
            raise
        sec = "{}"
    return cfg, sec, {}


def _ip(wlan):
    _set_clock()
    if hasattr(wlan, "ipconfig"):
        return wlan.ipconfig("addr4")[0]
    return wlan.ifconfig()[0]


def _set_clock():
    # TLS checks certificate dates, and the RTC starts at 2000 on power-up:
    # set it from NTP once the network is up (blocks up to ntptime's 1 s timeout).
    if time.gmtime()[0] >= 2025:
        return
    try:
        import ntptime
        ntptime.settime()
    except (ImportError, OSError):
        pass   # the node waits for a set clock before it verifies a certificate


async def network(ssid, password, timeout_ms=15000, tries=3):
    """Join `ssid`; returns the IP address. Each try is bounded by timeout_ms; the link is
    polled with asyncio.sleep_ms, never a blocking wait. Raises OSError("wifi: ...") naming
    the ssid and the last status -- never the password."""
    global _wlan
    if _wlan is None:
        _wlan = _network.WLAN(_network.STA_IF)
    wlan = _wlan
    wlan.active(True)
    if wlan.isconnected():
        return _ip(wlan)
    fatal = [s for s in (_status(n) for n in _FATAL) if s is not None]
    st = None
    for n in range(tries):
        if n:
            wlan.disconnect()
            await asyncio.sleep_ms(RETRY_PAUSE_MS * n)
        wlan.connect(ssid, password)
        t0 = time.ticks_ms()
        while True:
            if wlan.isconnected():
                return _ip(wlan)
            st = wlan.status()
            if st in fatal or time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
                break
            await asyncio.sleep_ms(POLL_MS)
    wlan.disconnect()   # stop the driver's own reconnecting in the background
    raise OSError("wifi: cannot join %r after %d tries of %d ms, last status %s"
                  % (ssid, tries, timeout_ms, _status_name(st)))


def bus(kind):
    """The bus for the sensor drivers ("i2c", "onewire", "adc"), built on first use and
    cached; None for any other kind."""
    b = _buses.get(kind)
    if b is not None:
        return b
    if kind == "i2c":
        b = machine.I2C(0, scl=machine.Pin(PINS["i2c_scl"]), sda=machine.Pin(PINS["i2c_sda"]),
                        freq=I2C_FREQ)
    elif kind == "onewire":
        b = onewire.OneWire(machine.Pin(PINS["onewire"]))
    elif kind == "adc":
        # 11 dB attenuation: the pin reads up to ~3.1 V. The driver prefers read_uv()
        # (calibrated by the chip's eFuse data) over the raw, non-linear read_u16().
        b = machine.ADC(machine.Pin(PINS["battery_adc"]), atten=machine.ADC.ATTN_11DB)
    else:
        return None   # no such bus on this board (as on `host`); probes report it by name
    _buses[kind] = b
    return b


def watchdog(timeout_s):
    """machine.WDT; once started it cannot be stopped, only fed."""
    return machine.WDT(timeout=max(1, int(timeout_s * 1000)))


def uid():
    """The chip's unique id in hex (the node_id "auto" is NAME-uid())."""
    return "".join("%02x" % b for b in machine.unique_id())


def reset():
    machine.reset()


def deep_sleep(ms):
    machine.deepsleep(ms)
