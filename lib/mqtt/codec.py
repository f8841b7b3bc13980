# MQTT 3.1.1 packets <-> bytes. Pure functions: no I/O, no clock.
#
# This module holds what a client needs: encoders for the packets a client
# sends, a decoder for every packet a server sends, stream framing, and topic
# rules. The server's half (decoding CONNECT/SUBSCRIBE/..., encoding CONNACK,
# SUBACK, ...) lives in tests/codec_broker.py: only the tests' brokers need it.
# Section numbers (§) refer to the MQTT 3.1.1 OASIS standard.
try:
    from micropython import const
except ImportError:
    const = lambda x: x

from .errors import ProtocolError

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


class Message:
    """An application message: what PUBLISH carries (§3.3)."""

    def __init__(self, topic, payload, qos=0, retain=False, dup=False, pid=0):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.pid = pid

    def __repr__(self):
        return "Message(%r, %r, qos=%d, retain=%r)" % (
            self.topic, self.payload, self.qos, self.retain)


# ---- encoding -------------------------------------------------------------

def varint(n):
    """Remaining Length (§2.2.3): 7 bits a byte, at most 4 bytes."""
    if not 0 <= n <= 268435455:
        raise ValueError("length out of range")
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return out


def check_utf8(b):
    """Raise ProtocolError unless b is an MQTT UTF-8 string (§1.5.3):
    well-formed [MQTT-1.5.3-1], no U+0000 [MQTT-1.5.3-2]. MicroPython's str()
    is lax, so a string with a byte >= 0x80 is checked by mqtt.utf8."""
    if b"\x00" in b:
        raise ProtocolError("NUL in UTF-8 string")
    try:
        if b and max(b) > 0x7F:   # max() runs in C: pure ASCII costs no loop
            from .utf8 import check
            check(b)
        return str(b, "utf-8")
    except ValueError as e:  # UnicodeError included
        raise ProtocolError("invalid UTF-8: %s" % e)


def _utf8(s):
    # s (str or bytes) as checked UTF-8 bytes. A str of ASCII without NUL is
    # well-formed already; anything else (MicroPython lets a str hold
    # surrogates and overlong forms) goes through the full check.
    b = s.encode() if isinstance(s, str) else bytes(s)
    if not isinstance(s, str) or b"\x00" in b or b and max(b) > 0x7F:
        try:
            check_utf8(b)
        except ProtocolError as e:
            raise ValueError(str(e))
    return b


def _s(s):
    # A length-prefixed string (§1.5.3); s is str or bytes.
    return _bin(_utf8(s))


def _bin(b):
    # Length-prefixed binary data (§1.5.6): will payload, password.
    b = b.encode() if isinstance(b, str) else bytes(b)
    if len(b) > 65535:
        raise ValueError("field over 65535 bytes")
    return len(b).to_bytes(2, "big") + b


def packet(b0, *parts):
    """Fixed header + parts, built in one buffer so it leaves in one write."""
    n = 0
    for p in parts:
        n += len(p)
    h = varint(n)
    i = 1 + len(h)
    buf = bytearray(i + n)
    buf[0] = b0
    buf[1:i] = h
    for p in parts:
        buf[i:i + len(p)] = p
        i += len(p)
    return buf


def check_topic(t):
    """A topic name for PUBLISH (§4.7.3): non-empty, no wildcards."""
    if not t or "+" in t or "#" in t:
        raise ValueError("invalid topic name %r" % t)
    return t


def check_filter(f):
    """A topic filter (§4.7.1): + and # only as whole levels, # last."""
    if not f:
        raise ValueError("empty topic filter")
    levels = f.split("/")
    for i, lv in enumerate(levels):
        if ("+" in lv or "#" in lv) and len(lv) > 1 or lv == "#" and i < len(levels) - 1:
            raise ValueError("invalid topic filter %r" % f)
    return f


def match(flt, topic):
    """True when topic matches the filter (§4.7). Wildcards at the first
    level never match topics that start with $ (§4.7.2)."""
    if topic[:1] == "$" and flt[:1] in "+#":
        return False
    f = flt.split("/")
    t = topic.split("/")
    for i, lv in enumerate(f):
        if lv == "#":
            return True
        if i >= len(t) or lv != "+" and lv != t[i]:
            return False
    return len(f) == len(t)


def connect(client_id, clean=True, keepalive=60, will=None, username=None, password=None):
    """CONNECT (§3.1). will is (topic, payload, qos, retain)."""
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive must be 0..65535 s")
    if client_id == "" and not clean:
        raise ValueError("an empty client id needs clean session (§3.1.3-7)")
    if password is not None and username is None:
        raise ValueError("a password needs a user name (§3.1.2-22)")
    flags = 2 if clean else 0
    parts = [b"\x00\x04MQTT\x04", None, keepalive.to_bytes(2, "big"), _s(client_id)]
    if will:
        topic, payload, qos, retain = will
        flags |= 4 | _qos(qos) << 3 | (0x20 if retain else 0)
        parts += (_s(check_topic(topic)), _bin(payload))
    if username is not None:
        flags |= 0x80
        parts.append(_s(username))
    if password is not None:
        flags |= 0x40
        parts.append(_bin(password))
    parts[1] = bytes((flags,))
    return packet(0x10, *parts)


def _qos(q):
    if q not in (0, 1, 2):
        raise ValueError("QoS must be 0, 1 or 2")
    return q


_topics = {}   # the last few topic names published -> their checked UTF-8 (see publish)


def publish(topic, payload, qos=0, retain=False, pid=0, dup=False, props=None):
    """PUBLISH (§3.3). payload is bytes-like or str. props: MQTT 5.0's
    encoded properties, after the packet id (codec5.publish)."""
    # Built straight into one buffer: the hot path of a sensor node, which
    # publishes to a few topics again and again: their checked bytes are kept.
    t = _topics.get(topic)
    if t is None:
        # (MQTT 5.0: an empty topic goes with a topic alias; never kept)
        t = _utf8(check_topic(topic)) if topic or not props else b""
        if topic:
            if len(_topics) >= 8:
                _topics.clear()
            _topics[topic] = t
    if qos not in (0, 1, 2):
        raise ValueError("QoS must be 0, 1 or 2")
    if isinstance(payload, str):
        payload = payload.encode()
    nt = len(t)
    if nt > 65535:
        raise ValueError("topic longer than 65535 bytes")
    n = 2 + nt + len(payload) + (2 if qos else 0) + (len(props) if props else 0)
    h = varint(n)
    i = 1 + len(h)
    buf = bytearray(i + n)
    buf[0] = 0x30 | qos << 1 | (1 if retain else 0) | (8 if dup else 0)
    buf[1:i] = h
    buf[i] = nt >> 8
    buf[i + 1] = nt & 0xFF
    i += 2
    buf[i:i + nt] = t
    i += nt
    if qos:
        buf[i] = pid >> 8
        buf[i + 1] = pid & 0xFF
        i += 2
    if props:
        buf[i:i + len(props)] = props
        i += len(props)
    buf[i:] = payload
    return buf


def subscribe(pid, filters, sub=True):
    """SUBSCRIBE (§3.8), filters a list of (filter, qos); with sub=False,
    UNSUBSCRIBE (§3.10), filters a list of topic filters."""
    if not filters:
        raise ValueError("no filters (§3.8.3-3, §3.10.3-2)")
    parts = [pid.to_bytes(2, "big")]
    for f in filters:
        if sub:
            parts += (_s(check_filter(f[0])), bytes((_qos(f[1]),)))
        else:
            parts.append(_s(check_filter(f)))
    return packet(0x82 if sub else 0xA2, *parts)


def unsubscribe(pid, filters):
    """UNSUBSCRIBE (§3.10): filters is a list of topic filters."""
    return subscribe(pid, filters, False)


def ack(kind, pid):
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK: a packet id only.
    PUBREL has the reserved flags 0b0010 (§3.6.1)."""
    return bytes((kind << 4 | (2 if kind == PUBREL else 0), 2, pid >> 8, pid & 0xFF))


# ---- decoding --------------------------------------------------------------

def frame(buf, limit, start=0):
    """Find the packet that starts at buf[start].

    Returns (body_start, end) as offsets in buf once the fixed header is
    complete, even if the body is not all there yet, or None when more
    bytes are needed. A packet larger than limit is rejected here, from its
    header alone, before anything is allocated for its body. The remaining
    length has at most 4 bytes (§2.2.3)."""
    n = 0
    for i in range(1, 5):
        if start + i >= len(buf):
            return None
        b = buf[start + i]
        n |= (b & 0x7F) << 7 * (i - 1)
        if not b & 0x80:
            if 1 + i + n > limit:
                raise ProtocolError("packet of %d bytes over the %d limit" % (1 + i + n, limit))
            return start + 1 + i, start + 1 + i + n
    raise ProtocolError("remaining length over 4 bytes")


def _pid(b, i):
    pid = b[i] << 8 | b[i + 1]
    if not pid:
        raise ProtocolError("packet id 0")
    return pid


def decode(b0, body):
    """Decode one packet a server sends. body is the variable header and
    payload (bytes or memoryview). Returns a Message for PUBLISH, else a
    tuple (type, ...): (CONNACK, session_present, code), (SUBACK, pid,
    codes), (PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK, pid), (PINGRESP,)."""
    t = b0 >> 4
    flags = b0 & 15
    n = len(body)
    if t == PUBLISH:
        qos = flags >> 1 & 3
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3 (§3.3.1.2)")
        if flags & 8 and not qos:
            raise ProtocolError("DUP set on QoS 0 PUBLISH (§3.3.1.1)")
        if n < 2:
            raise ProtocolError("PUBLISH too short")
        tl = body[0] << 8 | body[1]
        i = 2 + tl
        if i + (2 if qos else 0) > n:
            raise ProtocolError("topic length beyond the packet")
        topic = check_utf8(bytes(body[2:i]))
        if not topic or "+" in topic or "#" in topic:
            raise ProtocolError("invalid topic name in PUBLISH")
        pid = 0
        if qos:
            pid = _pid(body, i)
            i += 2
        return Message(topic, bytes(body[i:]), qos, bool(flags & 1), bool(flags & 8), pid)
    if flags != (2 if t == PUBREL else 0):
        raise ProtocolError("reserved flags set in packet type %d (§2.2.2)" % t)
    if t == CONNACK:
        if n != 2 or body[0] > 1 or body[1] > 5 or body[0] and body[1]:
            raise ProtocolError("malformed CONNACK")
        return (CONNACK, body[0] == 1, body[1])
    if t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        if n != 2:
            raise ProtocolError("ack of wrong length")
        return (t, _pid(body, 0))
    if t == SUBACK:
        if n < 3:
            raise ProtocolError("SUBACK too short")
        codes = bytes(body[2:])
        for c in codes:
            if c not in (0, 1, 2, 0x80):
                raise ProtocolError("SUBACK return code %d" % c)
        return (SUBACK, _pid(body, 0), codes)
    if t == PINGRESP:
        if n:
            raise ProtocolError("PINGRESP with a body")
        return (PINGRESP,)
    raise ProtocolError("packet type %d not expected from a server" % t)
