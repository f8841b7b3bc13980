# Errors raised by lib/mqtt: one base class, typed subclasses that carry codes.


class MQTTError(Exception):
    """Base class of every error this package raises."""


class ProtocolError(MQTTError):
    """A packet broke the MQTT rules (malformed, oversized, unexpected).

    The connection that carried it is closed; the client reconnects."""


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with a non-zero return code (3.1.1 §3.2.2.3),
    or an MQTT 5 reason code >= 0x80 (5.0 §3.2.2.2), then with its text."""

    REASONS = (
        None,
        "unacceptable protocol version",
        "identifier rejected",
        "server unavailable",
        "bad user name or password",
        "not authorized",
    )

    def __init__(self, code, reason=None):
        self.code = code
        self.reason = reason or (self.REASONS[code] if 0 < code < 6 else "unknown")
        super().__init__("connection refused: %s (code %d)" % (self.reason, code))


class NotConnected(MQTTError):
    """A QoS 0 publish (or another live-only request) was made while offline."""


class ConnectionLost(MQTTError):
    """The link died: closed by the peer, or silent past the keepalive bound."""
