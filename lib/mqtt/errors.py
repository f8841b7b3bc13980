# Errors raised by lib/mqtt: one base class, typed subclasses that carry codes.


class MQTTError(Exception):
    """Base class of every error this package raises."""


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with a non-zero return code (3.1.1 §3.2.2.3).

    .code is the return code, .reason its meaning."""

    def __init__(self, code):
        self.code = code
        self.reason = ("unacceptable protocol version", "identifier rejected",
                       "server unavailable", "bad user name or password",
                       "not authorized")[code - 1] if 0 < code < 6 else "unknown"
        super().__init__("connection refused: %s (code %d)" % (self.reason, code))


# The plain subclasses, made by type() (a class statement costs more bytes):
# ProtocolError: a packet broke the MQTT rules (malformed, oversized,
#   unexpected); the connection that carried it is closed, the client
#   reconnects.
# NotConnected: a QoS 0 publish (or another live-only request) was made
#   while offline.
# ConnectionLost: the link died: closed by the peer, or silent past the
#   keepalive bound.
ProtocolError = type("ProtocolError", (MQTTError,), {})
NotConnected = type("NotConnected", (MQTTError,), {})
ConnectionLost = type("ConnectionLost", (MQTTError,), {})
