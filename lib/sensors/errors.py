# Errors raised by lib/sensors drivers: never a bogus reading.


class SensorError(Exception):
    """Base class of every sensor error."""


class SensorMissing(SensorError):
    """No device answered at this bus and address."""

    def __init__(self, bus, addr, what=""):
        self.bus = bus
        self.addr = addr
        super().__init__("%sno device at %s address %s" % (
            what + ": " if what else "", bus, "0x%02x" % addr if isinstance(addr, int) else addr))


class CRCError(SensorError):
    """A checksum did not match: the data is corrupt and was discarded."""
