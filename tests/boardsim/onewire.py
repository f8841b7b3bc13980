# Fake `onewire` (the module the esp32 and rp2 ports freeze): OneWire(pin) with the
# documented methods, on a bus with no devices. Construction is recorded in machine.CALLS.
import machine


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin
        machine.CALLS.append(("OneWire", pin.id))

    def reset(self, required=False):
        if required:
            raise OneWireError
        return False   # no presence pulse: nothing on the bus

    def readbit(self):
        return 1

    def readbyte(self):
        return 0xFF

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = 0xFF

    def writebit(self, value):
        pass

    def writebyte(self, value):
        pass

    def write(self, buf):
        pass

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        return []
