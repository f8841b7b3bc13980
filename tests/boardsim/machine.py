# Fake `machine` for running boards/<b>/board.py on the MicroPython unix port, where the
# hardware is missing. Same names and signatures as the MicroPython docs
# (machine.Pin/I2C/ADC/WDT, reset, deepsleep, disable_irq/enable_irq); every call is
# recorded in CALLS as (name, args...) so a test can check what the board built.
# use("esp32") / use("rp2") picks the port's flavour (ADC.read_uv exists only on esp32).
CALLS = []
PORT = "esp32"
_irq_enabled = [True]


def use(port):
    global PORT
    PORT = port


def _log(*item):
    CALLS.append(item)


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, alt=-1):
        self.id = id
        self.mode = mode
        self._value = value
        _log("Pin", id, mode, value)

    def value(self, v=None):
        if v is None:
            return self._value or 0
        self._value = v
        _log("Pin.value", self.id, v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __repr__(self):
        return "Pin(%r)" % (self.id,)


class I2C:
    def __init__(self, id=-1, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.scl = scl
        self.sda = sda
        self.freq = freq
        _log("I2C", id, scl.id, sda.id, freq)

    def scan(self):
        return []

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        raise OSError(19)   # ENODEV: nothing on the bus

    def writeto(self, addr, buf, stop=True):
        raise OSError(19)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    VALUE = 41000         # what read_u16() returns
    UV = 2150000          # what read_uv() returns (esp32)

    def __init__(self, pin, *, atten=None):
        self.pin = pin.id if isinstance(pin, Pin) else pin
        self.atten = atten
        _log("ADC", self.pin, atten)
        if PORT == "esp32":
            self.read_uv = self._read_uv

    def read_u16(self):
        _log("ADC.read_u16", self.pin, _irq_enabled[0])
        return ADC.VALUE

    def _read_uv(self):
        _log("ADC.read_uv", self.pin)
        return ADC.UV


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        _log("WDT", timeout)

    def feed(self):
        _log("WDT.feed")


def disable_irq():
    state = _irq_enabled[0]
    _irq_enabled[0] = False
    _log("disable_irq")
    return state


def enable_irq(state):
    _irq_enabled[0] = state
    _log("enable_irq", state)


def reset():
    _log("reset")


def deepsleep(time_ms=None):
    _log("deepsleep", time_ms)
