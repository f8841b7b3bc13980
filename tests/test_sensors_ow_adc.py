"""DS18B20 (1-Wire) and battery (ADC) drivers, against datasheet-modelled fakes.

On CPython directly, plus tests/scenarios/sensors_ow_adc.py on both runtimes.
"""

import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

FAKES = Path(__file__).resolve().parent.parent / "boards" / "host"
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "sensors_ow_adc.py"
sys.path.insert(0, str(FAKES))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from fake_adc import FakeADC, FakeADCuv  # noqa: E402
from fake_onewire import FakeDS18B20, FakeOneWire, dallas_crc8  # noqa: E402
from sensors.adc import Battery, percent  # noqa: E402
from sensors.ds18b20 import DS18B20, crc8, decode_temp, rom_hex  # noqa: E402
from sensors.errors import CRCError, SensorError, SensorMissing  # noqa: E402

# DS18B20 datasheet, Table 1 (temperature / data relationship), 12-bit.
TABLE1 = [
    (125.0, 0x07D0), (85.0, 0x0550), (25.0625, 0x0191), (10.125, 0x00A2), (0.5, 0x0008),
    (0.0, 0x0000), (-0.5, 0xFFF8), (-10.125, 0xFF5E), (-25.0625, 0xFE6F), (-55.0, 0xFC90),
]

AN27_ROM = bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00])


# --------------------------------------------------------------------------- CRC


def test_crc8_app_note_27_example():
    assert crc8(AN27_ROM) == 0xA2
    assert crc8(AN27_ROM + b"\xa2") == 0
    assert dallas_crc8(AN27_ROM) == 0xA2  # the fake's independent implementation


@given(st.binary(max_size=16))
def test_crc8_driver_and_fake_agree_and_close_to_zero(data):
    c = crc8(data)
    assert c == dallas_crc8(data)
    assert crc8(data + bytes([c])) == 0


def test_fake_rom_has_family_serial_crc():
    d = FakeDS18B20(0x0000000001B81C)
    assert d.rom[0] == 0x28 and d.rom[1:7] == bytes([0x1C, 0xB8, 0x01, 0, 0, 0])
    assert crc8(d.rom) == 0


# --------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("temp,raw", TABLE1)
def test_datasheet_table1_decoded_exactly(temp, raw):
    assert decode_temp(raw & 0xFF, raw >> 8) == temp


@pytest.mark.parametrize("temp,raw", TABLE1)
def test_datasheet_table1_through_the_bus(temp, raw):
    ow = FakeOneWire()
    dev = ow.add(FakeDS18B20(0xABCDEF, temp))
    s = DS18B20(ow)
    assert s.convert() == 750
    pad = s.read_scratchpad(dev.rom)
    assert pad[0] | (pad[1] << 8) == raw
    # a genuine 85.0 after a conversion is a reading, not the power-on error
    assert s.read_temp(dev.rom) == temp


def test_lower_resolution_clears_undefined_bits():
    assert decode_temp(0x91, 0x01, config=0x1F) == 25.0       # 9-bit
    assert decode_temp(0x91, 0x01, config=0x3F) == 25.0       # 10-bit: 25.0625 -> 25.0
    assert decode_temp(0x6F, 0xFE, config=0x5F) == -25.125    # 11-bit, two's complement
    ow = FakeOneWire()
    dev = ow.add(FakeDS18B20(1, 25.0625))
    ow.reset()
    ow.writebyte(0xCC)
    ow.write(bytes([0x4E, 0x4B, 0x46, 0x1F]))  # WRITE SCRATCHPAD: TH, TL, 9-bit config
    s = DS18B20(ow)
    s.convert()
    assert s.read_temp(dev.rom) == 25.0


# --------------------------------------------------------------------------- bus


def two_sensor_bus():
    ow = FakeOneWire("X")
    a = ow.add(FakeDS18B20(0x0000000001B81C, 21.5))
    b = ow.add(FakeDS18B20(0x00000000123456, -10.125))
    return ow, a, b, DS18B20(ow)


def test_two_sensors_found_by_scan_and_read_by_rom():
    ow, a, b, s = two_sensor_bus()
    roms = s.scan()
    assert sorted(roms) == sorted([a.rom, b.rom])
    assert s.convert() == 750
    assert s.read_temp(a.rom) == 21.5
    assert s.read_temp(b.rom) == -10.125
    a.temp_c, b.temp_c = -0.5, 125.0
    s.convert()
    assert (s.read_temp(roms[0]), s.read_temp(roms[1])) in ((-0.5, 125.0), (125.0, -0.5))


def test_scan_finds_many_devices_bit_level_search():
    ow = FakeOneWire()
    devs = [ow.add(FakeDS18B20(serial, 20)) for serial in
            (0x000000000001, 0x000000000002, 0x800000000000, 0xFFFFFFFFFFFF, 0x5A5A5A5A5A5A)]
    assert sorted(DS18B20(ow).scan()) == sorted(d.rom for d in devs)


def test_scan_keeps_only_ds18b20_with_good_rom_crc():
    ow, a, b, s = two_sensor_bus()
    ow.add(FakeDS18B20(0x777777, 30.0, family=0x10))          # DS18S20: other family
    ow.add(FakeDS18B20(0x999999, 30.0, bad_rom_crc=True))     # ROM CRC wrong: skipped
    assert len(ow.scan()) == 4
    assert sorted(s.scan()) == sorted([a.rom, b.rom])
    assert s.bad_roms == 1


def test_convert_one_rom_leaves_the_other_at_power_on():
    ow, a, b, s = two_sensor_bus()
    s.convert(a.rom)
    assert s.read_temp(a.rom) == 21.5
    with pytest.raises(SensorError, match="power-on"):
        s.read_temp(b.rom)


def test_crc_corruption_raises_crc_error():
    ow, a, b, s = two_sensor_bus()
    s.convert()
    a.corrupt = True
    with pytest.raises(CRCError) as ei:
        s.read_temp(a.rom)
    assert rom_hex(a.rom) in str(ei.value)
    assert s.read_temp(b.rom) == -10.125
    a.corrupt = False
    assert s.read_temp(a.rom) == 21.5


def test_vanished_single_sensor_is_missing_naming_bus_and_rom():
    ow = FakeOneWire("GPIO4")
    dev = ow.add(FakeDS18B20(0x0000000001B81C, 21.5))
    s = DS18B20(ow)
    s.convert()
    dev.disconnect()
    assert ow.reset() is False
    with pytest.raises(SensorMissing) as ei:
        s.read_temp(dev.rom)
    msg = str(ei.value)
    assert "FakeOneWire(GPIO4)" in msg and "281cb801000000c6" in msg
    with pytest.raises(SensorMissing, match="FakeOneWire"):
        s.convert()
    assert s.scan() == []


def test_vanished_sensor_on_shared_bus_all_ff_is_missing():
    # Others still answer the reset; the gone one never pulls the line: nine 0xFF,
    # which fails the CRC (crc8 of eight 0xFF is not 0xFF) -> reported as missing.
    assert crc8(b"\xff" * 8) != 0xFF
    ow, a, b, s = two_sensor_bus()
    s.convert()
    a.disconnect()
    with pytest.raises(SensorMissing) as ei:
        s.read_temp(a.rom)
    assert "FakeOneWire(X)" in str(ei.value) and rom_hex(a.rom) in str(ei.value)
    assert s.read_temp(b.rom) == -10.125
    assert s.scan() == [b.rom]


def test_unknown_rom_is_missing():
    ow, a, b, s = two_sensor_bus()
    s.convert()
    with pytest.raises(SensorMissing):
        s.read_temp(bytes([0x28, 1, 2, 3, 4, 5, 6, 0]))


def test_power_on_value_is_an_error_until_converted():
    ow, a, b, s = two_sensor_bus()
    with pytest.raises(SensorError, match="power-on") as ei:
        s.read_temp(a.rom)
    assert type(ei.value) is SensorError
    s.convert()
    assert s.read_temp(a.rom) == 21.5
    a.disconnect()
    a.reconnect(power_cycle=True)  # brown-out: scratchpad back at 85.0 / 0x0C
    with pytest.raises(SensorError, match="power-on"):
        s.read_temp(a.rom)
    a.temp_c = 85.0
    s.convert()
    assert s.read_temp(a.rom) == 85.0  # a real 85.0 (COUNT REMAIN 0x10) is reported


def test_fake_bus_follows_micropython_onewire_api():
    ow = FakeOneWire()
    assert ow.reset() is False
    with pytest.raises(OSError):
        ow.reset(required=True)
    assert ow.readbyte() == 0xFF  # nobody drives the line
    dev = ow.add(FakeDS18B20(0x42, 12.5))
    assert repr(ow) == "FakeOneWire(X)"
    # the sequence of MicroPython's ds18x20.py: reset(True), select_rom, 0xBE, readinto
    ow.reset(True)
    ow.writebyte(ow.SKIP_ROM)
    ow.writebyte(0x44)
    ow.reset(True)
    ow.select_rom(dev.rom)
    ow.writebyte(0xBE)
    buf = bytearray(9)
    ow.readinto(buf)
    assert ow.crc8(buf) == 0 and buf[0] | buf[1] << 8 == 200 and buf[6] == 0x10 - 8
    # READ ROM on a single-device bus
    ow.reset()
    ow.writebyte(0x33)
    rom = bytearray(8)
    ow.readinto(rom)
    assert bytes(rom) == dev.rom


def test_bad_rom_argument():
    ow, a, b, s = two_sensor_bus()
    with pytest.raises(ValueError):
        s.read_temp(b"\x28\x01")


# --------------------------------------------------------------------------- battery


def test_battery_divider_ratio_two():
    bat = Battery(FakeADC(2.1), ratio=2)
    v = bat.read_voltage()
    assert abs(v - 4.2) <= bat.lsb
    assert bat.lsb == pytest.approx(3.3 * 2 / 65535)


def test_battery_averages_samples():
    adc = FakeADC(2.1, noise=(+40, -40, +25, -25))
    bat = Battery(adc, ratio=2, samples=8)
    assert abs(bat.read_voltage() - 4.2) <= bat.lsb
    assert adc.u16_reads == 8
    bat.read_voltage(samples=3)
    assert adc.u16_reads == 11
    with pytest.raises(ValueError, match="samples"):
        bat.read_voltage(samples=0)


def test_battery_prefers_calibrated_read_uv():
    adc = FakeADCuv(2.05, gain=0.9)  # raw u16 path is 10 % off: must not be used
    bat = Battery(adc, ratio=2)
    assert bat.read_voltage() == pytest.approx(4.1, abs=1e-6)
    assert adc.uv_reads == 8 and adc.u16_reads == 0


def test_battery_clamps_like_the_adc():
    bat = Battery(FakeADC(3.6), ratio=2)  # pin above vref saturates at full scale
    assert bat.read_voltage() == pytest.approx(6.6)
    assert Battery(FakeADC(0.0)).read_voltage() == 0.0


@pytest.mark.parametrize("kw,name", [
    ({"ratio": 0.5}, "ratio"), ({"ratio": 0}, "ratio"), ({"vref": 0}, "vref"),
    ({"vref": -3.3}, "vref"), ({"samples": 0}, "samples"), ({"samples": 2.5}, "samples"),
    ({"bits": 0}, "bits"), ({"bits": 17}, "bits"),
])
def test_battery_bad_config_names_the_field(kw, name):
    with pytest.raises(ValueError, match=name):
        Battery(FakeADC(1.0), **kw)


def test_percent_linear_and_clamped():
    assert percent(3.75) == pytest.approx(50.0)
    assert percent(3.3) == 0.0 and percent(4.2) == 100.0
    assert percent(2.5) == 0.0 and percent(5.0) == 100.0
    assert percent(3.7, empty=3.0, full=4.0) == pytest.approx(70.0)
    with pytest.raises(ValueError, match="full"):
        percent(3.7, empty=4.0, full=3.0)
    assert Battery(FakeADC(1.875), ratio=2).percent() == pytest.approx(50.0, abs=0.1)


# --------------------------------------------------------------------------- both runtimes

EXPECTED = [
    "crc8 a2 00",
    "decode 07d0 125.0000", "decode 0550 85.0000", "decode 0191 25.0625",
    "decode 00a2 10.1250", "decode 0008 0.5000", "decode 0000 0.0000",
    "decode fff8 -0.5000", "decode ff5e -10.1250", "decode fe6f -25.0625",
    "decode fc90 -55.0000",
    "scan 2 281cb801000000c6 2856341200000026",
    "before SensorError DS18B20 281cb801000000c6 on FakeOneWire(P4): "
    "no conversion yet / power-on value (85.0)",
    "convert 750",
    "temp 281cb801000000c6 21.5000",
    "temp 2856341200000026 -10.1250",
    "corrupt CRCError DS18B20 281cb801000000c6 on FakeOneWire(P4): scratchpad CRC mismatch",
    "gone SensorMissing DS18B20: no device at FakeOneWire(P4) address 281cb801000000c6",
    "other -10.1250",
    "empty SensorMissing DS18B20: no device at FakeOneWire(P4) address any",
    "battery 4.200 lsb_ok True",
    "battery_uv 4.1000 8 0",
    "percent 50.0 0.0 100.0",
    "config ValueError ratio must be >= 1, got 0.5",
    "config ValueError vref must be > 0, got 0",
    "config ValueError samples must be an int >= 1, got 0",
    "config ValueError bits must be an int in 1..16, got 17",
    "done",
]


def test_scenario_same_on_both_runtimes(run_py, runtime):
    r = run_py(runtime, SCENARIO, pythonpath=(FAKES,))
    assert r.returncode == 0, r.output
    assert r.lines == EXPECTED, r.output
