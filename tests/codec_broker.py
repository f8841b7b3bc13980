# The broker's half of the MQTT 3.1.1 codec: encode what a server sends and
# decode what a client sends. Only tests use it (the scripted and fake brokers),
# so it lives in tests/ and is in no package or image. PUBLISH and the packet-id
# acks are the same both ways and stay in lib/mqtt/codec.py.
from mqtt.codec import (CONNECT, CONNACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, PINGREQ,
                        PINGRESP, DISCONNECT, check_filter, check_utf8, decode, packet)
from mqtt.errors import ProtocolError


def connack(session_present, code):
    """CONNACK (§3.2)."""
    return packet(CONNACK << 4, bytes((1 if session_present else 0, code)))


def suback(pid, codes):
    """SUBACK (§3.9): one return code per filter (0, 1, 2 or 0x80)."""
    return packet(SUBACK << 4, pid.to_bytes(2, "big"), bytes(codes))


PINGRESP_PACKET = b"\xd0\x00"


class _Cursor:
    # Reads length-checked fields from a packet body.
    def __init__(self, body):
        self.b = body
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ProtocolError("field runs past the end of the packet")
        self.i += n
        return bytes(self.b[self.i - n:self.i])

    def u16(self):
        b = self.take(2)
        return b[0] << 8 | b[1]

    def binary(self):
        return self.take(self.u16())

    def string(self):
        return check_utf8(self.binary())

    def more(self):
        return self.i < len(self.b)


def decode_client(b0, body):
    """Decode one packet a client sends. CONNECT gives a dict with the keys
    client_id, clean, keepalive, will (topic, payload, qos, retain) or None,
    username, password; SUBSCRIBE gives (SUBSCRIBE, pid, [(filter, qos)]);
    UNSUBSCRIBE gives (UNSUBSCRIBE, pid, [filter]); PINGREQ and DISCONNECT
    give (type,); PUBLISH and the acks decode as in codec.decode."""
    t = b0 >> 4
    if t in (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT):
        want = 2 if t in (SUBSCRIBE, UNSUBSCRIBE) else 0
        if b0 & 15 != want:
            raise ProtocolError("reserved flags set in packet type %d (§2.2.2)" % t)
    else:
        if t in (CONNACK, SUBACK, PINGRESP):
            raise ProtocolError("packet type %d not expected from a client" % t)
        return decode(b0, body)
    c = _Cursor(body)
    if t == CONNECT:
        return _connect(c)
    if t in (PINGREQ, DISCONNECT):
        if c.more():
            raise ProtocolError("packet type %d with a body" % t)
        return (t,)
    pid = c.u16()
    if not pid:
        raise ProtocolError("packet id 0")
    items = []
    while c.more():
        f = c.string()
        try:
            check_filter(f)
        except ValueError as e:
            raise ProtocolError(str(e))
        if t == SUBSCRIBE:
            q = c.take(1)[0]
            if q > 2:
                raise ProtocolError("requested QoS %d (§3.8.3-4)" % q)
            items.append((f, q))
        else:
            items.append(f)
    if not items:
        raise ProtocolError("no topic filter (§3.8.3-3, §3.10.3-2)")
    return (t, pid, items)


def _connect(c):
    if c.binary() != b"MQTT" or c.take(1) != b"\x04":
        raise ProtocolError("not MQTT 3.1.1 (§3.1.2.1, §3.1.2.2)")
    flags = c.take(1)[0]
    if flags & 1:
        raise ProtocolError("reserved CONNECT flag set (§3.1.2-3)")
    wq = flags >> 3 & 3
    if wq == 3 or not flags & 4 and (wq or flags & 0x20):
        raise ProtocolError("bad will flags (§3.1.2-11..15)")
    if flags & 0x40 and not flags & 0x80:
        raise ProtocolError("password without user name (§3.1.2-22)")
    r = {"keepalive": c.u16(), "clean": bool(flags & 2), "client_id": c.string()}
    r["will"] = (c.string(), c.binary(), wq, bool(flags & 0x20)) if flags & 4 else None
    r["username"] = c.string() if flags & 0x80 else None
    r["password"] = c.binary() if flags & 0x40 else None
    if c.more():
        raise ProtocolError("bytes after the CONNECT payload")
    return r
