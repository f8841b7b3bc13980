# Board: Raspberry Pi Pico W (MicroPython RPI_PICO_W). The only code that builds
# machine/network objects on this board; the contract is in boards/README.md.
import asyncio
import time

import machine
import network as _network  # imported under another name: network() is the contract's
import onewire

NAME = "rp2_pico_w"
PINS = {"i2c_sda": 4, "i2c_scl": 5, "onewire": 22, "battery_adc": 29, "led": "LED"}

# The two JSON files on the board's filesystem (module-level so tests can point them elsewhere).
CONFIG = "/config.json"
SECRETS = "/secrets.json"
SETTINGS = "/settings.json"   # runtime settings (cmd/interval), written by the node

I2C_FREQ = 400000
POLL_MS = 100            # how often network() looks at the link while joining
RETRY_PAUSE_MS = 1000    # pause before try n+1 is n * RETRY_PAUSE_MS
WDT_MAX_MS = 8388        # the RP2040 watchdog counts at most ~8.3 s
# CYW43 power management, set before each join: 0xa11140 (WLAN.PM_NONE) turns the chip's
# power saving off (Raspberry Pi's Pico W guide), so MQTT commands and PINGRESPs arrive
# without power-save latency, at the price of a higher idle current. None keeps the
# firmware's default.
WIFI_PM = 0xA11140
_CS = 25                 # CYW43 SPI chip select (WL_CS)

_ENOENT = 2
_buses = {}
_wlan = None

# network.STAT_* on rp2 are the CYW43_LINK_* codes; fallbacks are those values, so a
# firmware that lacks a constant does not crash. A try ends early on a status that will
# not change by waiting: bad auth (-3), no such network (-2), join failed (-1).
_STATUS_NAMES = (
    ("STAT_IDLE", 0), ("STAT_CONNECTING", 1), ("LINK_NOIP", 2), ("STAT_GOT_IP", 3),
    ("STAT_CONNECT_FAIL", -1), ("STAT_NO_AP_FOUND", -2), ("STAT_WRONG_PASSWORD", -3),
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
    if WIFI_PM is not None:
        wlan.config(pm=WIFI_PM)
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
    wlan.disconnect()
    raise OSError("wifi: cannot join %r after %d tries of %d ms, last status %s"
                  % (ssid, tries, timeout_ms, _status_name(st)))


class _Vsys:
    """VSYS/3 on GPIO29 (ADC3), through the Pico W's 200k/100k divider: battery ratio 3.

    Caveat: on the Pico W GPIO29 is also the CYW43 SPI clock (and GPIO25 its chip select).
    A reading is only right while the wireless chip is idle and deselected, and a
    machine.ADC(29) made once would take the pin from the Wi-Fi driver for good. So each
    read, with interrupts off (the CYW43 driver runs from an interrupt-level poll, so no
    SPI transfer can start meanwhile -- the C SDK does the same with cyw43_thread_enter),
    drives CS (GPIO25) high, re-makes ADC(29) (which puts the pin in analog mode) and reads.
    The CYW43 driver gives GPIO29 back to its PIO at the start of its next transfer
    (start_spi_comms), so nothing has to be restored here. Interrupts are off for one
    conversion (a few microseconds plus the object's allocation)."""

    def read_u16(self):
        irq = machine.disable_irq()
        try:
            machine.Pin(_CS, machine.Pin.OUT, value=1)
            v = machine.ADC(PINS["battery_adc"]).read_u16()
        finally:
            machine.enable_irq(irq)
        return v

    def __repr__(self):
        return "<VSYS on ADC(%d)>" % PINS["battery_adc"]


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
        b = _Vsys()
    else:
        return None   # no such bus on this board (as on `host`); probes report it by name
    _buses[kind] = b
    return b


def watchdog(timeout_s):
    """machine.WDT, clamped to what the RP2040 allows (1..8388 ms); once started it cannot
    be stopped, only fed."""
    return machine.WDT(timeout=min(WDT_MAX_MS, max(1, int(timeout_s * 1000))))


def uid():
    """The chip's unique id in hex (the node_id "auto" is NAME-uid())."""
    return "".join("%02x" % b for b in machine.unique_id())


def reset():
    machine.reset()


def deep_sleep(ms):
    machine.deepsleep(ms)
