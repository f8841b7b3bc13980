# Cross-runtime scenario: BME280 and SHT3x drivers against the fake I2C chips.
# Run by tests/test_sensors_i2c.py on CPython and MicroPython with boards/host importable;
# prints one line per check, compared verbatim with the expected lines.
from fake_i2c import FakeI2C, FakeBME280, FakeSHT3x
from sensors.bme280 import BME280
from sensors.sht3x import SHT3x, crc8
from sensors.errors import CRCError, SensorError, SensorMissing


def attempt(label, fn):
    try:
        r = fn()
    except CRCError as e:
        print(label, "CRCError", e)
    except SensorMissing as e:
        print(label, "SensorMissing", e)
    except SensorError as e:
        print(label, "SensorError", e)
    else:
        print(label, "ok", r)


bus = FakeI2C(0)
chip = bus.add(0x76, FakeBME280(busy_reads=1))
bme = BME280(bus)
print("bme280 wait_ms", bme.trigger(), "mode", chip.mode)
attempt("bme280 early", bme.read)
t, p, h = bme.read()
print("bme280 %.2f %.2f %.2f t_fine %d mode %d" % (t, p, h, bme.t_fine, chip.mode))
chip.adc_h = 25000
chip.busy_reads = 0
bme.trigger()
t, p, h = bme.read()
print("bme280 %.2f %.2f %.3f" % (t, p, h))
attempt("bme280 missing", lambda: BME280(bus, 0x77))
bus.add(0x77, FakeBME280(chip_id=0x58))
attempt("bme280 bmp", lambda: BME280(bus, 0x77))

fake_sht = bus.add(0x44, FakeSHT3x(raw_t=0x6666, raw_rh=0x8000))
sht = SHT3x(bus)
print("sht3x crc 0x%02x" % crc8(b"\xbe\xef"))
attempt("sht3x before", sht.read)
print("sht3x wait_ms", sht.trigger())
t, rh = sht.read()
print("sht3x %.3f %.3f" % (t, rh))
fake_sht.corrupt = "rh"
sht.trigger()
attempt("sht3x corrupt", sht.read)
attempt("sht3x missing", lambda: SHT3x(bus, 0x45))
print("done")
