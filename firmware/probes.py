# The configured sensors, each wrapped so one failing sensor never stops the
# others: a probe opens its driver on the board's bus when first needed (and
# again after any failure, so a re-plugged chip comes back), starts a
# conversion, and later adds its readings, each as [value, unit], under
# "<name>.<quantity>" keys. A driver is imported only by a probe of its type.
from sensors.errors import SensorError, SensorMissing

_BUS = {"bme280": "i2c", "sht3x": "i2c", "ds18b20": "onewire", "battery": "adc"}


class Probe:
    def __init__(self, spec, board):
        self.name = spec["name"]
        self.spec = spec
        self.board = board
        self.dev = None
        self.roms = ()

    def start(self):
        """Open the driver if needed and start a conversion; returns the ms
        to wait before finish()."""
        t = self.spec["type"]
        if self.dev is None:
            self.dev = self._open(t)
        if t == "battery":
            return 0
        if t == "ds18b20":
            return self.dev.convert()
        return self.dev.trigger()

    def finish(self, out):
        """Add this sensor's readings to out."""
        t = self.spec["type"]
        n = self.name + "."
        if t == "bme280":
            c, pa, rh = self.dev.read()
            out[n + "temperature"] = [round(c, 2), "C"]
            out[n + "pressure"] = [round(pa / 100, 2), "hPa"]
            out[n + "humidity"] = [round(rh, 1), "%RH"]
        elif t == "sht3x":
            c, rh = self.dev.read()
            out[n + "temperature"] = [round(c, 2), "C"]
            out[n + "humidity"] = [round(rh, 1), "%RH"]
        elif t == "ds18b20":
            from sensors.ds18b20 import rom_hex
            # read every sensor first: a CRC error on one loses none of them
            temps = [self.dev.read_temp(rom) for rom in self.roms]
            for rom, c in zip(self.roms, temps):
                out[n + rom_hex(rom)] = [c, "C"]
        else:
            from sensors.adc import percent
            v = self.dev.read_voltage()
            out[n + "voltage"] = [round(v, 3), "V"]
            out[n + "charge"] = [round(percent(v)), "%"]

    def failed(self):
        """Forget the driver, so the next start() probes the chip again."""
        self.dev = None

    def _open(self, t):
        bus = self.board.bus(_BUS[t])
        if bus is None:
            raise SensorError("board %s has no %s bus" % (self.board.NAME, _BUS[t]))
        if t == "bme280":
            from sensors.bme280 import BME280
            return BME280(bus, self.spec["addr"])
        if t == "sht3x":
            from sensors.sht3x import SHT3x
            return SHT3x(bus, self.spec["addr"])
        if t == "battery":
            from sensors.adc import Battery
            return Battery(bus, self.spec["ratio"])
        from sensors.ds18b20 import DS18B20
        dev = DS18B20(bus)
        self.roms = dev.scan()
        if not self.roms:
            raise SensorMissing(repr(bus), "any", "DS18B20")
        return dev
