# DS18B20 1-Wire temperature sensor (Maxim/Analog Devices datasheet 19-7487).
#
# The bus is injected: anything with the MicroPython onewire.OneWire API
# (reset, readbyte, writebyte, write, readinto, scan). The driver does its own
# Dallas CRC-8 and talks the ROM/function commands itself, so it does not depend
# on whether the bus's select_rom() issues a reset first.
#
# Conversion is split so async firmware can sleep in between:
#     ms = sensor.convert()          # all sensors at once (SKIP ROM) or convert(rom)
#     await asyncio.sleep_ms(ms)     # 750 ms for 12-bit
#     t = sensor.read_temp(rom)      # degrees C, or a SensorError -- never a bogus value
#
# Decisions (tested in tests/test_sensors_ow_adc.py):
# - scan() returns only family 0x28 ROMs whose ROM CRC is correct; a ROM with a bad
#   CRC (noise during the search) is skipped, not raised, so one flaky device does not
#   hide the others; the count of skipped ROMs is kept in .bad_roms.
# - read_temp(): no presence pulse -> SensorMissing; a scratchpad of nine 0xFF bytes
#   (nobody drove the line: the device left a bus that still has others on it) ->
#   SensorMissing; any other CRC mismatch -> CRCError.
# - Power-on value: 0x0550 (85.0 C) is rejected with SensorError only when the
#   scratchpad's COUNT REMAIN byte (byte 6) still holds its power-on value 0x0C. A
#   genuine DS18B20 sets that byte to 0x10 - (LSB & 0x0F) after every conversion
#   (0x10 for a real 85.0 C), so a true 85 C is still reported. Some clone chips do not
#   follow this; with them a real 85.0 C may be reported as the power-on error.
# - Parasite power (strong pull-up during conversion) is not handled: power the
#   sensors from VDD.

import struct

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

from .errors import SensorError, SensorMissing, CRCError

FAMILY = const(0x28)
CONVERT_MS = const(750)  # 12-bit conversion, datasheet tCONV max

_MATCH_ROM = const(0x55)
_SKIP_ROM = const(0xCC)
_CONVERT_T = const(0x44)
_READ_SCRATCHPAD = const(0xBE)

_POWER_ON_RAW = const(0x0550)
_POWER_ON_COUNT = const(0x0C)

# Low bits left undefined at 9/10/11-bit resolution (config byte bits 6:5).
_RES_MASK = (~7, ~3, ~1, ~0)


def crc8(data):
    """Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, reflected 0x8C, init 0).
    Over a whole ROM or scratchpad including its CRC byte the result is 0."""
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def rom_hex(rom):
    """'28ff64...' -- the ROM as it is sent on the wire (family code first)."""
    return "".join("%02x" % b for b in rom)


def decode_temp(lsb, msb, config=0x7F):
    """Temperature register (two's complement, 1/16 C) to degrees C, honouring the
    resolution in the configuration byte (undefined low bits are cleared)."""
    raw = struct.unpack("<h", bytes((lsb, msb)))[0]
    raw &= _RES_MASK[(config >> 5) & 3]
    return raw / 16


class DS18B20:
    def __init__(self, ow):
        self.ow = ow
        self.buf = bytearray(9)
        self.bad_roms = 0

    def __repr__(self):
        return "DS18B20(%r)" % (self.ow,)

    def _missing(self, rom):
        return SensorMissing(repr(self.ow), rom_hex(rom) if rom is not None else "any",
                             "DS18B20")

    def _select(self, rom):
        # Reset + ROM command; raise SensorMissing when nobody answers the reset.
        ow = self.ow
        if not ow.reset():
            raise self._missing(rom)
        if rom is None:
            ow.writebyte(_SKIP_ROM)
        else:
            if len(rom) != 8:
                raise ValueError("rom must be 8 bytes")
            ow.writebyte(_MATCH_ROM)
            ow.write(rom)

    def scan(self):
        """ROMs (8-byte bytes objects) of the DS18B20s on the bus, in search order."""
        found = []
        for rom in self.ow.scan():
            if len(rom) != 8 or rom[0] != FAMILY:
                continue
            if crc8(rom) != 0:
                self.bad_roms += 1
                continue
            found.append(bytes(rom))
        return found

    def convert(self, rom=None):
        """Start a temperature conversion on every sensor (rom=None, SKIP ROM) or on one.
        Returns the milliseconds to wait before read_temp()."""
        self._select(rom)
        self.ow.writebyte(_CONVERT_T)
        return CONVERT_MS

    def read_scratchpad(self, rom):
        """The 9 scratchpad bytes of one sensor, CRC-checked (a shared buffer)."""
        self._select(rom)
        ow = self.ow
        ow.writebyte(_READ_SCRATCHPAD)
        buf = self.buf
        ow.readinto(buf)
        if crc8(buf) != 0:
            for b in buf:
                if b != 0xFF:
                    raise CRCError("DS18B20 %s on %r: scratchpad CRC mismatch"
                                   % (rom_hex(rom), self.ow))
            # Nine 0xFF: nobody pulled the line low; the device is gone.
            raise self._missing(rom)
        return buf

    def read_temp(self, rom):
        """Degrees C from the last conversion of sensor `rom`."""
        buf = self.read_scratchpad(rom)
        if buf[0] | (buf[1] << 8) == _POWER_ON_RAW and buf[6] == _POWER_ON_COUNT:
            raise SensorError("DS18B20 %s on %r: no conversion yet / power-on value (85.0)"
                              % (rom_hex(rom), self.ow))
        return decode_temp(buf[0], buf[1], buf[4])
