# Battery voltage through a resistor divider on an ADC pin.
#
# The ADC is injected: anything with read_u16() (MicroPython machine.ADC, 0..65535
# whatever the converter's real resolution), and optionally read_uv() (ESP32: a
# calibrated reading in microvolts), which is preferred when present because the
# raw ESP32 ADC is neither linear nor accurate.
#
#     bat = Battery(adc, ratio=2.0)   # 100k/100k divider: the pin sees half the battery
#     v = bat.read_voltage()          # volts at the battery, average of 8 samples
#     p = percent(v)                  # 0..100, linear between empty and full

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_FULL_SCALE = const(65535)


def _check_samples(samples):
    if not isinstance(samples, int) or samples < 1:
        raise ValueError("samples must be an int >= 1, got %r" % (samples,))


def percent(volts, empty=3.3, full=4.2):
    """State of charge 0..100, linear between `empty` and `full` volts, clamped."""
    if not full > empty:
        raise ValueError("full must be > empty, got full=%r empty=%r" % (full, empty))
    if volts <= empty:
        return 0.0
    if volts >= full:
        return 100.0
    return (volts - empty) * 100 / (full - empty)


class Battery:
    """ratio: divider ratio (battery volts / pin volts), >= 1.
    vref: ADC full-scale volts for read_u16 (unused when the ADC has read_uv).
    bits: the converter's real resolution, only used for .lsb (read_u16 is always
    scaled to 16 bits by MicroPython).
    samples: readings averaged per read_voltage()."""

    def __init__(self, adc, ratio=2.0, vref=3.3, bits=16, samples=8):
        if not ratio >= 1:
            raise ValueError("ratio must be >= 1, got %r" % (ratio,))
        if not vref > 0:
            raise ValueError("vref must be > 0, got %r" % (vref,))
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError("bits must be an int in 1..16, got %r" % (bits,))
        _check_samples(samples)
        self.adc = adc
        self.ratio = ratio
        self.vref = vref
        self.bits = bits
        self.samples = samples
        self.calibrated = hasattr(adc, "read_uv")

    def __repr__(self):
        return "Battery(%r, ratio=%r)" % (self.adc, self.ratio)

    @property
    def lsb(self):
        """Battery volts per step of the converter's real resolution."""
        return self.vref * self.ratio / ((1 << self.bits) - 1)

    def read_voltage(self, samples=None):
        """Volts at the battery, the average of `samples` readings."""
        if samples is None:
            samples = self.samples
        else:
            _check_samples(samples)
        adc = self.adc
        total = 0
        if self.calibrated:
            for _ in range(samples):
                total += adc.read_uv()
            return total / samples / 1000000 * self.ratio
        for _ in range(samples):
            total += adc.read_u16()
        return total / samples / _FULL_SCALE * self.vref * self.ratio

    def percent(self, volts=None, empty=3.3, full=4.2):
        """percent() of `volts`, or of a fresh read_voltage() when volts is None."""
        if volts is None:
            volts = self.read_voltage()
        return percent(volts, empty, full)
