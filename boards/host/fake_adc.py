# Fake machine.ADC for tests (CPython and MicroPython).
#
# FakeADC(volts_at_pin, vref=3.3, noise=(), gain=1.0): read_u16() returns the pin
# voltage as MicroPython does (0..65535 of vref, clamped), times `gain` (an
# uncalibrated converter's error), plus the next offset (in u16 counts) from the
# cycled `noise` sequence. Deterministic: no random numbers.
# FakeADCuv adds read_uv(): the calibrated pin voltage in microvolts (ESP32).


class FakeADC:
    def __init__(self, volts_at_pin, vref=3.3, noise=(), gain=1.0):
        self.volts = volts_at_pin
        self.vref = vref
        self.noise = list(noise)
        self.gain = gain
        self.u16_reads = 0
        self._n = 0

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.volts)

    def ideal_u16(self):
        """The noise-free, gain-free reading."""
        v = int(self.volts / self.vref * 65535 + 0.5)
        return max(0, min(65535, v))

    def read_u16(self):
        self.u16_reads += 1
        v = int(self.volts * self.gain / self.vref * 65535 + 0.5)
        if self.noise:
            v += self.noise[self._n % len(self.noise)]
            self._n += 1
        return max(0, min(65535, v))


class FakeADCuv(FakeADC):
    def __init__(self, volts_at_pin, vref=3.3, noise=(), gain=1.0):
        super().__init__(volts_at_pin, vref, noise, gain)
        self.uv_reads = 0

    def read_uv(self):
        self.uv_reads += 1
        return int(self.volts * 1000000 + 0.5)
