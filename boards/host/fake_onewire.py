# A 1-Wire bus with DS18B20 devices, modelled at the time-slot (bit) level from the
# DS18B20 datasheet. Runs on CPython and MicroPython (tests only; never on a device).
#
# The master side has the MicroPython onewire.OneWire API: reset(required=False),
# readbit, readbyte, writebit, writebyte, write, readinto, select_rom (reset + MATCH
# ROM, like the real one), scan (the real search algorithm, driven bit by bit through
# readbit/writebit) and crc8. Every device sees every slot; a read slot returns the
# wired-AND of what the devices drive (1 = nobody pulled the line low).
#
# Device model (FakeDS18B20): ROM = family 0x28, 6 serial bytes (LSB first), CRC8.
# ROM commands SEARCH 0xF0, READ 0x33, MATCH 0x55, SKIP 0xCC; function commands
# CONVERT T 0x44 (instant: reads during conversion already see "done"), READ
# SCRATCHPAD 0xBE, WRITE SCRATCHPAD 0x4E (TH, TL, config). Power-on scratchpad:
# 50 05 4B 46 7F FF 0C 10 + CRC (85.0 C, COUNT REMAIN 0x0C). After a conversion the
# COUNT REMAIN byte is 0x10 - (LSB & 0x0F), as on genuine chips.
# Faults: .corrupt = True flips bit 0 of scratchpad byte 0 as it is sent;
# .disconnect() makes the device vanish (no presence, never drives the line);
# .reconnect(power_cycle=True) brings it back with the power-on scratchpad.


class OneWireError(OSError):
    pass


def dallas_crc8(data):
    # Independent of the driver's: the 1-Wire CRC shift register of Maxim app note 27,
    # bit by bit with the feedback XORed into stages 4 and 5 (x^8 + x^5 + x^4 + 1).
    crc = 0
    for byte in data:
        for i in range(8):
            inbit = (byte >> i) & 1
            fb = (crc & 1) ^ inbit
            crc >>= 1
            if fb:
                crc ^= 0x80 | 0x08 | 0x04  # x^8 feeds back into bit 7, x^5->3, x^4->2
    return crc


_IDLE = 0      # waits for a reset
_ROMCMD = 1    # collecting a ROM command byte
_MATCH = 2     # comparing 64 written bits with its ROM
_SEARCH = 3    # search: bit, complement, master's choice
_FUNC = 4      # selected: collecting a function command byte
_TX = 5        # sending bytes (scratchpad / ROM)
_RX = 6        # receiving bytes (write scratchpad)


class FakeDS18B20:
    def __init__(self, rom_serial, temp_c=20.0, family=0x28, bad_rom_crc=False):
        if isinstance(rom_serial, int):
            serial = [(rom_serial >> (8 * i)) & 0xFF for i in range(6)]
        else:
            serial = list(rom_serial)
            if len(serial) != 6:
                raise ValueError("rom_serial: 6 bytes or an int")
        rom = bytearray([family] + serial + [0])
        rom[7] = dallas_crc8(rom[:7]) ^ (0x01 if bad_rom_crc else 0)
        self.rom = bytes(rom)
        self.temp_c = temp_c
        self.corrupt = False
        self.connected = True
        self.conversions = 0
        self._power_on()
        self.state = _IDLE

    def __repr__(self):
        return "FakeDS18B20(%s, %r)" % ("".join("%02x" % b for b in self.rom), self.temp_c)

    # --- chip state

    def _power_on(self):
        self.scratch = bytearray([0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10, 0])
        self.scratch[8] = dallas_crc8(self.scratch[:8])

    def _convert(self):
        t = self.temp_c
        if t > 125:
            t = 125
        if t < -55:
            t = -55
        raw = int(t * 16 + (0.5 if t >= 0 else -0.5))
        res = (self.scratch[4] >> 5) & 3           # 0..3 -> 9..12 bits
        raw &= ~((1 << (3 - res)) - 1)             # lower resolution: low bits 0
        raw &= 0xFFFF
        s = self.scratch
        s[0] = raw & 0xFF
        s[1] = raw >> 8
        s[6] = 0x10 - (s[0] & 0x0F)
        s[8] = dallas_crc8(s[:8])
        self.conversions += 1

    def disconnect(self):
        self.connected = False
        self.state = _IDLE

    def reconnect(self, power_cycle=True):
        self.connected = True
        self.state = _IDLE
        if power_cycle:
            self._power_on()

    # --- time slots, as seen by the device

    def reset_pulse(self):
        if not self.connected:
            return False
        self.state = _ROMCMD
        self._bits = 0
        self._nbits = 0
        return True

    def _byte_in(self, bit):
        # LSB first; returns the byte when 8 bits are in, else None
        self._bits |= (bit & 1) << self._nbits
        self._nbits += 1
        if self._nbits == 8:
            b = self._bits
            self._bits = 0
            self._nbits = 0
            return b
        return None

    def _rom_bit(self, i):
        return (self.rom[i >> 3] >> (i & 7)) & 1

    def write_slot(self, bit):
        if not self.connected:
            return
        st = self.state
        if st == _ROMCMD:
            cmd = self._byte_in(bit)
            if cmd is None:
                return
            if cmd == 0x55:
                self.state, self._i = _MATCH, 0
            elif cmd == 0xCC:
                self.state = _FUNC
            elif cmd == 0xF0:
                self.state, self._i, self._phase = _SEARCH, 0, 0
            elif cmd == 0x33:
                self._start_tx(self.rom)
            else:
                self.state = _IDLE
        elif st == _MATCH:
            if bit != self._rom_bit(self._i):
                self.state = _IDLE
                return
            self._i += 1
            if self._i == 64:
                self.state = _FUNC
        elif st == _SEARCH:
            if self._phase != 2:   # master wrote without reading bit/complement
                self.state = _IDLE
                return
            if bit != self._rom_bit(self._i):
                self.state = _IDLE
                return
            self._i += 1
            self._phase = 0
            if self._i == 64:
                self.state = _FUNC
        elif st == _FUNC:
            cmd = self._byte_in(bit)
            if cmd is None:
                return
            if cmd == 0x44:
                self._convert()
                self.state = _IDLE
            elif cmd == 0xBE:
                out = bytearray(self.scratch)
                if self.corrupt:
                    out[0] ^= 0x01
                self._start_tx(out)
            elif cmd == 0x4E:
                self.state, self._rx = _RX, []
            else:
                self.state = _IDLE
        elif st == _RX:
            b = self._byte_in(bit)
            if b is None:
                return
            self._rx.append(b)
            if len(self._rx) == 3:
                self.scratch[2], self.scratch[3] = self._rx[0], self._rx[1]
                self.scratch[4] = (self._rx[2] & 0x60) | 0x1F
                self.scratch[8] = dallas_crc8(self.scratch[:8])
                self.state = _IDLE
        # _TX / _IDLE: a write slot is ignored

    def _start_tx(self, data):
        self.state = _TX
        self._tx = bytes(data)
        self._i = 0

    def read_slot(self):
        """The bit this device drives in a read slot (1 = releases the line)."""
        if not self.connected:
            return 1
        st = self.state
        if st == _TX:
            i = self._i
            if i >= len(self._tx) * 8:
                return 1
            self._i += 1
            return (self._tx[i >> 3] >> (i & 7)) & 1
        if st == _SEARCH:
            if self._phase == 0:
                self._phase = 1
                return self._rom_bit(self._i)
            if self._phase == 1:
                self._phase = 2
                return self._rom_bit(self._i) ^ 1
            self.state = _IDLE   # a third read out of sequence
            return 1
        return 1


class FakeOneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin_name="X"):
        self.pin_name = pin_name
        self.devices = []
        self.resets = 0

    def __repr__(self):
        return "FakeOneWire(%s)" % self.pin_name

    def add(self, dev):
        self.devices.append(dev)
        return dev

    # --- slots

    def reset(self, required=False):
        self.resets += 1
        presence = False
        for d in self.devices:          # every device sees the reset pulse
            if d.reset_pulse():
                presence = True
        if required and not presence:
            raise OneWireError("no presence pulse on %r" % self)
        return presence

    def readbit(self):
        bit = 1
        for d in self.devices:          # wired-AND
            bit &= d.read_slot()
        return bit

    def writebit(self, value):
        value = 1 if value else 0
        for d in self.devices:
            d.write_slot(value)

    def readbyte(self):
        b = 0
        for i in range(8):
            b |= self.readbit() << i
        return b

    def writebyte(self, value):
        for i in range(8):
            self.writebit((value >> i) & 1)

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def crc8(self, data):
        return dallas_crc8(data)

    # --- the search algorithm of MicroPython's onewire.py, through the slots above

    def scan(self):
        devices = []
        diff = 65
        rom = False
        for _ in range(0xFF):
            rom, diff = self._search_rom(rom, diff)
            if rom:
                devices.append(rom)
            if diff == 0:
                break
        return devices

    def _search_rom(self, l_rom, diff):
        if not self.reset():
            return None, 0
        self.writebyte(self.SEARCH_ROM)
        if not l_rom:
            l_rom = bytearray(8)
        rom = bytearray(8)
        next_diff = 0
        i = 64
        for byte in range(8):
            r_b = 0
            for bit in range(8):
                b = self.readbit()
                if self.readbit():
                    if b:  # no device answered, or an error on the bus
                        return None, 0
                else:
                    if not b:  # collision: devices differ in this bit
                        if diff > i or ((l_rom[byte] & (1 << bit)) and diff != i):
                            b = 1
                            next_diff = i
                self.writebit(b)
                if b:
                    r_b |= 1 << bit
                i -= 1
            rom[byte] = r_b
        return rom, next_diff
