# DS18B20 + battery drivers against the fakes; runs unchanged on CPython and the
# MicroPython unix port (tests/test_sensors_ow_adc.py compares the printed lines).
#   <python> sensors_ow_adc.py        (with lib/ and boards/host/ importable)
from sensors.errors import SensorError, SensorMissing, CRCError
from sensors.ds18b20 import DS18B20, crc8, rom_hex, decode_temp
from sensors.adc import Battery, percent
from fake_onewire import FakeOneWire, FakeDS18B20
from fake_adc import FakeADC, FakeADCuv


def err(e):
    return type(e).__name__ + " " + str(e)


print("crc8", "%02x" % crc8(bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00])),
      "%02x" % crc8(bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xA2])))
for lsb, msb in ((0xD0, 0x07), (0x50, 0x05), (0x91, 0x01), (0xA2, 0x00), (0x08, 0x00),
                 (0x00, 0x00), (0xF8, 0xFF), (0x5E, 0xFF), (0x6F, 0xFE), (0x90, 0xFC)):
    print("decode %02x%02x %.4f" % (msb, lsb, decode_temp(lsb, msb)))

ow = FakeOneWire("P4")
a = ow.add(FakeDS18B20(0x0000000001B81C, 21.5))
b = ow.add(FakeDS18B20(0x123456, -10.125))
c = ow.add(FakeDS18B20(0x777777, 30.0, family=0x10))  # a DS18S20: not ours
s = DS18B20(ow)
roms = s.scan()
roms.sort()
print("scan", len(roms), " ".join(rom_hex(r) for r in roms))
try:
    s.read_temp(a.rom)
except SensorError as e:
    print("before", err(e))
print("convert", s.convert())
for r in roms:
    print("temp", rom_hex(r), "%.4f" % s.read_temp(r))
a.corrupt = True
try:
    s.read_temp(a.rom)
except CRCError as e:
    print("corrupt", err(e))
a.corrupt = False
a.disconnect()
try:
    s.read_temp(a.rom)
except SensorMissing as e:
    print("gone", err(e))
print("other", "%.4f" % s.read_temp(b.rom))
b.disconnect()
c.disconnect()
try:
    s.convert()
except SensorMissing as e:
    print("empty", err(e))

bat = Battery(FakeADC(2.1), ratio=2)
print("battery %.3f" % bat.read_voltage(), "lsb_ok", abs(bat.read_voltage() - 4.2) <= bat.lsb)
adc = FakeADCuv(2.05, gain=0.9)
bat = Battery(adc, ratio=2)
print("battery_uv %.4f" % bat.read_voltage(), adc.uv_reads, adc.u16_reads)
print("percent %.1f %.1f %.1f" % (percent(3.75), percent(3.0), percent(4.5)))
for kw in ({"ratio": 0.5}, {"vref": 0}, {"samples": 0}, {"bits": 17}):
    try:
        Battery(FakeADC(1.0), **kw)
    except ValueError as e:
        print("config", err(e))
print("done")
