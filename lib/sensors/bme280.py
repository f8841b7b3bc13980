# Bosch BME280 temperature / pressure / humidity sensor on I2C.
#
# Forced mode, oversampling x1 for all three channels, filter off. Conversion is split
# so async firmware can sleep while the chip converts (this module never sleeps):
#
#     sensor = BME280(i2c)              # probes chip id, reads calibration, configures
#     wait_ms = sensor.trigger()        # starts one forced measurement
#     await asyncio.sleep_ms(wait_ms)   # (or time.sleep_ms in blocking code)
#     t_c, p_pa, rh = sensor.read()
#
# Compensation uses the datasheet's integer formulas (BME280 datasheet section 4.2.3:
# BME280_compensate_T_int32, BME280_compensate_P_int64, bme280_compensate_H_int32).
# Every failure raises a SensorError subclass; a bogus reading is never returned.

import struct

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

from .errors import SensorError, SensorMissing

_CHIP_ID = const(0x60)
_REG_CALIB00 = const(0x88)  # 0x88..0xA1, 26 bytes
_REG_ID = const(0xD0)
_REG_CALIB26 = const(0xE1)  # 0xE1..0xE7, 7 bytes
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_REG_DATA = const(0xF7)  # 0xF7..0xFE: press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb

_STATUS_MEASURING = const(0x08)
_OSRS_X1 = const(1)
_MODE_SLEEP = const(0)
_MODE_FORCED = const(1)
_SKIPPED_20 = const(0x80000)  # temperature/pressure value when the channel was skipped
_SKIPPED_16 = const(0x8000)  # humidity value when the channel was skipped
_ENODEV = const(19)
_EIO = const(5)

# Chip ids of Bosch parts that answer at 0x76/0x77 but are not a BME280.
_OTHER_CHIPS = {0x55: "BMP180", 0x56: "BMP280", 0x57: "BMP280", 0x58: "BMP280",
                0x61: "BME680"}


def _max_conversion_ms(osrs_t, osrs_p, osrs_h):
    # Datasheet Appendix B (max measurement time), in microseconds, rounded up to ms:
    # 1.25 + 2.3*osrs_t + (2.3*osrs_p + 0.575) + (2.3*osrs_h + 0.575)
    us = 1250 + 2300 * osrs_t
    if osrs_p:
        us += 2300 * osrs_p + 575
    if osrs_h:
        us += 2300 * osrs_h + 575
    return (us + 999) // 1000


def _div_trunc(a, b):
    # C integer division (truncates toward zero); Python's // floors.
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


class BME280:
    """BME280 on an injected machine.I2C-like bus (readfrom_mem_into/writeto_mem)."""

    def __init__(self, i2c, addr=0x76):
        self._i2c = i2c
        self.addr = addr
        self._osrs = (_OSRS_X1, _OSRS_X1, _OSRS_X1)  # t, p, h
        self.conversion_ms = _max_conversion_ms(_OSRS_X1, _OSRS_X1, _OSRS_X1)
        self._b1 = bytearray(1)
        self._data = bytearray(8)
        self.t_fine = 0

        chip = self._read(_REG_ID, 1)[0]
        if chip != _CHIP_ID:
            raise SensorError("BME280 at %s 0x%02x: chip id 0x%02x is not a BME280 (0x60)%s" % (
                repr(i2c), addr, chip,
                "; 0x%02x is a %s" % (chip, _OTHER_CHIPS[chip]) if chip in _OTHER_CHIPS else ""))
        self._read_calibration()
        # ctrl_hum only takes effect after a write to ctrl_meas, so it goes first.
        self._write(_REG_CTRL_HUM, self._osrs[2])
        self._write(_REG_CONFIG, 0)  # filter off, 3-wire SPI off
        self._write(_REG_CTRL_MEAS, self._ctrl_meas(_MODE_SLEEP))

    # ------------------------------------------------------------------ bus access

    def _bus_error(self, e):
        code = e.args[0] if e.args else None
        if code == _ENODEV or code == _EIO:
            return SensorMissing(repr(self._i2c), self.addr, "BME280")
        return SensorError("BME280 at %s 0x%02x: bus error %r" % (repr(self._i2c), self.addr, e))

    def _read(self, reg, n):
        try:
            return self._i2c.readfrom_mem(self.addr, reg, n)
        except OSError as e:
            raise self._bus_error(e)

    def _read_into(self, reg, buf):
        try:
            self._i2c.readfrom_mem_into(self.addr, reg, buf)
        except OSError as e:
            raise self._bus_error(e)

    def _write(self, reg, value):
        self._b1[0] = value
        try:
            self._i2c.writeto_mem(self.addr, reg, self._b1)
        except OSError as e:
            raise self._bus_error(e)

    # ------------------------------------------------------------------ setup

    def _read_calibration(self):
        c = self._read(_REG_CALIB00, 26)
        (self.dig_T1, self.dig_T2, self.dig_T3,
         self.dig_P1, self.dig_P2, self.dig_P3, self.dig_P4, self.dig_P5,
         self.dig_P6, self.dig_P7, self.dig_P8, self.dig_P9) = struct.unpack_from("<HhhHhhhhhhhh", c, 0)
        self.dig_H1 = c[25]  # 0xA1 (0xA0 is unused)
        h = self._read(_REG_CALIB26, 7)
        self.dig_H2 = struct.unpack_from("<h", h, 0)[0]  # 0xE1/0xE2
        self.dig_H3 = h[2]  # 0xE3, unsigned
        e4 = h[3] - 256 if h[3] & 0x80 else h[3]  # 0xE4 is the signed high byte of H4
        e6 = h[5] - 256 if h[5] & 0x80 else h[5]  # 0xE6 is the signed high byte of H5
        self.dig_H4 = (e4 << 4) | (h[4] & 0x0F)  # 0xE4[7:0] / 0xE5[3:0]
        self.dig_H5 = (e6 << 4) | (h[4] >> 4)  # 0xE5[7:4] / 0xE6[7:0]
        self.dig_H6 = h[6] - 256 if h[6] & 0x80 else h[6]  # 0xE7, signed

    def _ctrl_meas(self, mode):
        return (self._osrs[0] << 5) | (self._osrs[1] << 2) | mode

    # ------------------------------------------------------------------ measuring

    def trigger(self):
        """Start one forced-mode measurement; return the max conversion time in ms
        (also in .conversion_ms). Call read() once that much time has passed."""
        self._write(_REG_CTRL_MEAS, self._ctrl_meas(_MODE_FORCED))
        return self.conversion_ms

    def read(self):
        """(temperature_C, pressure_Pa, humidity_percent) of the last measurement.
        Raises SensorError "not ready" while the chip is still converting."""
        self._read_into(_REG_STATUS, self._b1)
        if self._b1[0] & _STATUS_MEASURING:
            raise SensorError("BME280 at 0x%02x: not ready (still measuring)" % self.addr)
        d = self._data
        self._read_into(_REG_DATA, d)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == _SKIPPED_20 or adc_p == _SKIPPED_20 or adc_h == _SKIPPED_16:
            raise SensorError("BME280 at 0x%02x: measurement skipped (no data; was trigger() called?)"
                              % self.addr)
        t = self._compensate_t(adc_t)
        p = self._compensate_p(adc_p)
        if p == 0:
            raise SensorError("BME280 at 0x%02x: bad pressure calibration" % self.addr)
        h = self._compensate_h(adc_h)
        return t / 100, p / 256, h / 1024

    # ------------------------------------------------------------------ datasheet 4.2.3

    def _compensate_t(self, adc_t):
        # BME280_compensate_T_int32: 0.01 degC; sets t_fine.
        t1 = self.dig_T1
        var1 = (((adc_t >> 3) - (t1 << 1)) * self.dig_T2) >> 11
        x = (adc_t >> 4) - t1
        var2 = (((x * x) >> 12) * self.dig_T3) >> 14
        self.t_fine = var1 + var2
        return (self.t_fine * 5 + 128) >> 8

    def _compensate_p(self, adc_p):
        # BME280_compensate_P_int64: Pa in Q24.8 (divide by 256); 0 on bad calibration.
        var1 = self.t_fine - 128000
        var2 = var1 * var1 * self.dig_P6
        var2 = var2 + ((var1 * self.dig_P5) << 17)
        var2 = var2 + (self.dig_P4 << 35)
        var1 = ((var1 * var1 * self.dig_P3) >> 8) + ((var1 * self.dig_P2) << 12)
        var1 = (((1 << 47) + var1) * self.dig_P1) >> 33
        if var1 == 0:
            return 0
        p = 1048576 - adc_p
        p = _div_trunc(((p << 31) - var2) * 3125, var1)
        var1 = (self.dig_P9 * (p >> 13) * (p >> 13)) >> 25
        var2 = (self.dig_P8 * p) >> 19
        return ((p + var1 + var2) >> 8) + (self.dig_P7 << 4)

    def _compensate_h(self, adc_h):
        # bme280_compensate_H_int32: %RH in Q22.10 (divide by 1024).
        v = self.t_fine - 76800
        v = ((((adc_h << 14) - (self.dig_H4 << 20) - (self.dig_H5 * v)) + 16384) >> 15) * \
            (((((((v * self.dig_H6) >> 10) * (((v * self.dig_H3) >> 11) + 32768)) >> 10)
               + 2097152) * self.dig_H2 + 8192) >> 14)
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * self.dig_H1) >> 4)
        if v < 0:
            v = 0
        elif v > 419430400:
            v = 419430400
        return v >> 12
