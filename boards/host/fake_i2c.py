# Fake I2C bus and chip models for tests. Runs on CPython and MicroPython.
#
# FakeI2C has the machine.I2C methods the drivers use. Every transaction is reduced to
# what travels on the wire: a write transaction (device.write(bytes)) and/or a read
# transaction (device.read(n) -> bytes). A register read (readfrom_mem) is a write of the
# register address followed by a read, as on the real bus. An address with no device, or
# a device that NACKs its address (device.read/write raising OSError), raises OSError(19)
# (ENODEV), as MicroPython does.
#
# Chip models (from their datasheets):
#   FakeBME280  register map, calibration, forced mode, status "measuring", skipped values
#   FakeSHT3x   command set (single shot 0x2400, status 0xF32D, soft reset 0x30A2, ...),
#               CRC-8 on every word, NACK of the read header when no result is available

import struct

ENODEV = 19
EIO = 5


class FakeI2C:
    def __init__(self, bus_id=0):
        self.bus_id = bus_id
        self.devices = {}
        self.log = []  # ("w", addr, bytes) / ("r", addr, n)

    def __repr__(self):
        return "FakeI2C(%d)" % self.bus_id

    def add(self, addr, device):
        self.devices[addr] = device
        return device

    def remove(self, addr):
        self.devices.pop(addr, None)

    def _dev(self, addr):
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(ENODEV)
        return dev

    def scan(self):
        return sorted(a for a, d in self.devices.items() if getattr(d, "present", True))

    def writeto(self, addr, buf, stop=True):
        dev = self._dev(addr)
        buf = bytes(buf)
        self.log.append(("w", addr, buf))
        dev.write(buf)
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        dev = self._dev(addr)
        self.log.append(("r", addr, len(buf)))
        data = dev.read(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom(self, addr, n, stop=True):
        buf = bytearray(n)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, bytes([memaddr]) + bytes(buf))

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, bytes([memaddr]), False)
        self.readfrom_into(addr, buf)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)


# --------------------------------------------------------------------------- BME280

# Bosch worked example (BMP280 datasheet 3.12): T=25.08 degC (t_fine 128422), p=100653 Pa.
EXAMPLE_CALIB = {
    "dig_T1": 27504, "dig_T2": 26435, "dig_T3": -1000,
    "dig_P1": 36477, "dig_P2": -10685, "dig_P3": 3024, "dig_P4": 2855, "dig_P5": 140,
    "dig_P6": -7, "dig_P7": 15500, "dig_P8": -14600, "dig_P9": 6000,
    "dig_H1": 75, "dig_H2": 362, "dig_H3": 0, "dig_H4": 313, "dig_H5": 50, "dig_H6": 30,
}
EXAMPLE_ADC_T = 519888
EXAMPLE_ADC_P = 415148
EXAMPLE_ADC_H = 30000


def bme280_calib_bytes(c):
    """(bytes for 0x88..0xA1, bytes for 0xE1..0xE7) in the datasheet's layout."""
    lo = struct.pack("<HhhHhhhhhhhh", c["dig_T1"], c["dig_T2"], c["dig_T3"],
                     c["dig_P1"], c["dig_P2"], c["dig_P3"], c["dig_P4"], c["dig_P5"],
                     c["dig_P6"], c["dig_P7"], c["dig_P8"], c["dig_P9"])
    lo = lo + bytes([0, c["dig_H1"] & 0xFF])  # 0xA0 unused, 0xA1 dig_H1
    h4, h5 = c["dig_H4"], c["dig_H5"]
    hi = struct.pack("<hB", c["dig_H2"], c["dig_H3"] & 0xFF) + bytes([
        (h4 >> 4) & 0xFF,                      # 0xE4: H4[11:4]
        (h4 & 0x0F) | ((h5 & 0x0F) << 4),      # 0xE5: H4[3:0] | H5[3:0] << 4
        (h5 >> 4) & 0xFF,                      # 0xE6: H5[11:4]
        c["dig_H6"] & 0xFF,                    # 0xE7
    ])
    return lo, hi


class FakeBME280:
    """BME280 register map. Raw adc values are what the ADC 'measures'; the driver's
    compensation turns them into units with the calibration given.

    busy_reads=n: after a forced/normal trigger, the first n reads of the status register
    report "measuring" (bit 3) and the data registers keep the old values; the
    measurement completes on the following status read."""

    def __init__(self, adc_t=EXAMPLE_ADC_T, adc_p=EXAMPLE_ADC_P, adc_h=EXAMPLE_ADC_H,
                 calib=None, chip_id=0x60, busy_reads=0):
        self.calib = EXAMPLE_CALIB   # shared while unchanged (the host board runs one)
        if calib:
            self.calib = dict(EXAMPLE_CALIB)
            self.calib.update(calib)
        self.adc_t, self.adc_p, self.adc_h = adc_t, adc_p, adc_h
        self.chip_id = chip_id
        self.busy_reads = busy_reads
        self.writes = []  # (reg, value) in bus order
        self.measurements = 0
        self.reset()

    def reset(self):
        r = self.regs = bytearray(256)
        r[0xD0] = self.chip_id
        lo, hi = bme280_calib_bytes(self.calib)
        r[0x88:0x88 + len(lo)] = lo
        r[0xE1:0xE1 + len(hi)] = hi
        # Data registers reset to the "skipped" values 0x80000 / 0x8000.
        r[0xF7:0xFF] = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
        self.ptr = 0
        self._osrs_h = 0  # ctrl_hum value latched by the last ctrl_meas write
        self._busy = 0
        self._measuring = False

    @property
    def mode(self):
        return self.regs[0xF4] & 0x03

    # --- I2C: a write is the register address then (reg, data) pairs after the first data
    def write(self, buf):
        if not buf:
            return
        self.ptr = buf[0]
        # Datasheet 6.2.1: data bytes are written as pairs; first pair shares buf[0].
        pairs = [(buf[0], buf[1])] if len(buf) > 1 else []
        i = 2
        while i + 1 < len(buf):
            pairs.append((buf[i], buf[i + 1]))
            i += 2
        for reg, val in pairs:
            self._write_reg(reg, val)

    def _write_reg(self, reg, val):
        self.writes.append((reg, val))
        if reg == 0xE0:
            if val == 0xB6:
                self.reset()
            return
        if reg == 0xF2:
            self.regs[0xF2] = val & 0x07
        elif reg == 0xF5:
            self.regs[0xF5] = val & 0xFD
        elif reg == 0xF4:
            self.regs[0xF4] = val
            self._osrs_h = self.regs[0xF2] & 0x07  # ctrl_hum takes effect now
            if val & 0x03:  # forced (01/10) or normal (11): start a measurement
                self._measuring = True
                self._busy = self.busy_reads
                if self._busy == 0:
                    self._complete()
        # other registers are read-only

    def _complete(self):
        self._measuring = False
        self.measurements += 1
        ctrl = self.regs[0xF4]
        osrs_t, osrs_p = (ctrl >> 5) & 7, (ctrl >> 2) & 7
        t = self.adc_t if osrs_t else 0x80000
        p = self.adc_p if osrs_p else 0x80000
        h = self.adc_h if self._osrs_h else 0x8000
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = (p >> 12) & 0xFF, (p >> 4) & 0xFF, (p & 0x0F) << 4
        r[0xFA], r[0xFB], r[0xFC] = (t >> 12) & 0xFF, (t >> 4) & 0xFF, (t & 0x0F) << 4
        r[0xFD], r[0xFE] = (h >> 8) & 0xFF, h & 0xFF
        if (ctrl & 0x03) != 0x03:
            r[0xF4] = ctrl & 0xFC  # forced mode: back to sleep after the measurement

    def read(self, n):
        if self.ptr == 0xF3 and self._measuring:
            if self._busy > 0:
                self._busy -= 1
            else:
                self._complete()
        out = bytearray(n)
        for i in range(n):
            reg = (self.ptr + i) & 0xFF
            if reg == 0xF3:
                out[i] = 0x08 if self._measuring else 0x00
            else:
                out[i] = self.regs[reg]
        return bytes(out)


# --------------------------------------------------------------------------- SHT3x


def sht_crc8(data):
    """Sensirion CRC-8 (poly 0x31, init 0xFF), written independently of the driver's."""
    crc = 0xFF
    for b in data:
        for bit in range(7, -1, -1):
            top = ((crc >> 7) & 1) ^ ((b >> bit) & 1)
            crc = (crc << 1) & 0xFF
            if top:
                crc ^= 0x31
    return crc


def sht_word(v):
    return bytes([(v >> 8) & 0xFF, v & 0xFF, sht_crc8(bytes([(v >> 8) & 0xFF, v & 0xFF]))])


class FakeSHT3x:
    """SHT3x command interface. t (degC) and rh (%) are converted to raw ticks with the
    datasheet formulas, or give raw_t/raw_rh directly.

    busy_reads=n: the first n read attempts after a measurement command are NACKed
    (the chip is converting). corrupt="t"/"rh"/"status" flips a bit of that CRC."""

    SINGLE_SHOT = (0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10)

    def __init__(self, t=25.0, rh=50.0, raw_t=None, raw_rh=None, busy_reads=0, corrupt=None,
                 status=0x0000):
        self.raw_t = raw_t if raw_t is not None else int((t + 45) * 65535 / 175 + 0.5)
        self.raw_rh = raw_rh if raw_rh is not None else int(rh * 65535 / 100 + 0.5)
        self.busy_reads = busy_reads
        self.corrupt = corrupt
        self.status = status
        self.commands = []
        self._out = None  # bytes the next read returns, None -> NACK
        self._busy = 0

    def write(self, buf):
        if len(buf) != 2:
            raise OSError(EIO)
        cmd = (buf[0] << 8) | buf[1]
        self.commands.append(cmd)
        if cmd in self.SINGLE_SHOT:
            self._out = self._word(self.raw_t, "t") + self._word(self.raw_rh, "rh")
            self._busy = self.busy_reads
        elif cmd == 0xF32D:
            self._out = self._word(self.status, "status")
            self._busy = 0
        elif cmd == 0x30A2:  # soft reset
            self._out = None
            self.status = 0x0010
        elif cmd == 0x3041:  # clear status
            self.status = 0
        else:
            self.status |= 0x0002  # command status: last command not processed
            raise OSError(EIO)

    def _word(self, v, what):
        w = bytearray(sht_word(v))
        if self.corrupt == what:
            w[2] ^= 0x01
        return bytes(w)

    def read(self, n):
        if self._out is None or self._busy > 0:
            if self._busy > 0:
                self._busy -= 1
            raise OSError(ENODEV)  # read header NACKed: no result (yet)
        out, self._out = self._out, None
        # The master may stop early; after the data it reads 0xFF (bus released).
        return (out + b"\xff" * n)[:n]
