# Sensirion SHT3x (SHT30/31/35) temperature / humidity sensor on I2C.
#
# Single shot, high repeatability, no clock stretching (command 0x2400). Conversion is
# split so async firmware can sleep while the chip converts (this module never sleeps):
#
#     sensor = SHT3x(i2c)               # probes the chip (status register, CRC checked)
#     wait_ms = sensor.trigger()        # starts one measurement (max 15.5 ms)
#     await asyncio.sleep_ms(wait_ms)   # (or time.sleep_ms in blocking code)
#     t_c, rh = sensor.read()
#
# Every failure raises a SensorError subclass; a bogus reading is never returned.

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

from .errors import CRCError, SensorError, SensorMissing

_CMD_MEASURE_HIGH = b"\x24\x00"  # single shot, high repeatability, clock stretching off
_CMD_READ_STATUS = b"\xf3\x2d"
_MEASURE_MS = const(16)  # datasheet table 4: max 15.5 ms for high repeatability
_ENODEV = const(19)
_EIO = const(5)


def crc8(data):
    """Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection, no final xor.
    crc8(b"\\xbe\\xef") == 0x92 (datasheet test value)."""
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def _check(buf, i, what):
    # buf[i], buf[i+1] is a big-endian word followed by its CRC at buf[i+2].
    if crc8(buf[i:i + 2]) != buf[i + 2]:
        raise CRCError("SHT3x: %s CRC mismatch (got 0x%02x, computed 0x%02x); data discarded" % (
            what, buf[i + 2], crc8(buf[i:i + 2])))
    return (buf[i] << 8) | buf[i + 1]


class SHT3x:
    """SHT3x on an injected machine.I2C-like bus (writeto/readfrom_into)."""

    conversion_ms = _MEASURE_MS

    def __init__(self, i2c, addr=0x44):
        self._i2c = i2c
        self.addr = addr
        self._buf = bytearray(6)
        self._pending = False
        # Probe: read the status register (2 bytes + CRC); a missing chip NACKs.
        self._command(_CMD_READ_STATUS)
        st = bytearray(3)
        try:
            self._i2c.readfrom_into(self.addr, st)
        except OSError as e:
            raise self._bus_error(e)
        self.status = _check(st, 0, "status")

    def _bus_error(self, e):
        code = e.args[0] if e.args else None
        if code == _ENODEV or code == _EIO:
            return SensorMissing(repr(self._i2c), self.addr, "SHT3x")
        return SensorError("SHT3x at %s 0x%02x: bus error %r" % (repr(self._i2c), self.addr, e))

    def _command(self, cmd):
        try:
            n = self._i2c.writeto(self.addr, cmd)
        except OSError as e:
            raise self._bus_error(e)
        # machine.I2C.writeto returns the number of ACKed bytes.
        if n is not None and n != len(cmd):
            raise SensorError("SHT3x at 0x%02x: command 0x%02x%02x not acknowledged" % (
                self.addr, cmd[0], cmd[1]))

    def trigger(self):
        """Start one high-repeatability measurement; return the max conversion time in
        ms (also .conversion_ms). Call read() once that much time has passed."""
        self._command(_CMD_MEASURE_HIGH)
        self._pending = True
        return _MEASURE_MS

    def read(self):
        """(temperature_C, humidity_percent) of the measurement started by trigger().
        Raises SensorError "not ready" while converting (the chip NACKs the read header;
        call read() again later), SensorError before any trigger(), CRCError on corrupt data."""
        if not self._pending:
            raise SensorError("SHT3x at 0x%02x: no measurement started; call trigger() first"
                              % self.addr)
        b = self._buf
        try:
            self._i2c.readfrom_into(self.addr, b)
        except OSError:
            # During a measurement the chip NACKs its address, exactly like an absent chip;
            # the next trigger() tells the two apart (a missing chip raises SensorMissing).
            raise SensorError("SHT3x at 0x%02x: not ready (still measuring)" % self.addr)
        self._pending = False  # the chip hands out a result once
        raw_t = _check(b, 0, "temperature")
        raw_rh = _check(b, 3, "humidity")
        return -45 + 175 * raw_t / 65535, 100 * raw_rh / 65535
