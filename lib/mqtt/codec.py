# MQTT 3.1.1 packets <-> bytes. Pure functions: no I/O, no clock.
#
# This module holds what a client needs: encoders for the packets a client
# sends, a decoder for every packet a server sends, stream framing, and topic
# rules. The server's half (decoding CONNECT/SUBSCRIBE/..., encoding CONNACK,
# SUBACK, ...) lives in codec_broker.py so a device never loads it.
# Section numbers (§) refer to the MQTT 3.1.1 OASIS standard.
try:
    from micropython import const
except ImportError:
    const = lambda x: x

from .errors import ProtocolError

# Control packet types (§2.2.1) a server sends; those only a client sends
# (CONNECT 1, SUBSCRIBE 8, UNSUBSCRIBE 10, PINGREQ 12, DISCONNECT 14) are
# named in codec_broker.py.
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBACK = const(9)
UNSUBACK = const(11)
PINGRESP = const(13)

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
        raise ValueError("remaining length out of range")
    out = bytearray()
    while n > 127:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return out


def check_utf8(b, err=ProtocolError):
    """Return b as str; raise err unless b is an MQTT UTF-8 string (§1.5.3):
    well-formed, no U+0000, no surrogates (which MicroPython would accept;
    their UTF-8 form is ED A0..BF xx)."""
    i = b.find(b"\xed")
    while i >= 0 and b[i + 1:i + 2] < b"\xa0":
        i = b.find(b"\xed", i + 1)
    if i < 0 and b"\x00" not in b:
        try:
            return str(b, "utf-8")
        except UnicodeError:
            pass
    raise err("NUL, surrogate or invalid UTF-8")


def _bin(b, text=False):
    # Length-prefixed data (§1.5.3): a UTF-8 string when text, else binary
    # (will payload, password); b is str or bytes-like.
    b = b.encode() if isinstance(b, str) else bytes(b)
    if len(b) > 65535:
        raise ValueError("field over 65535 bytes")
    if text:
        check_utf8(b, ValueError)
    return len(b).to_bytes(2, "big") + b


def packet(b0, *parts):
    """Fixed header + parts, built in one buffer so it leaves in one write."""
    n = 0
    for p in parts:
        n += len(p)
    buf = bytearray((b0,)) + varint(n)
    for p in parts:
        buf += p
    return buf


def _qos(q):
    if q not in (0, 1, 2):
        raise ValueError("QoS must be 0, 1 or 2")


def check_topic(t, err=ValueError):
    """A topic name for PUBLISH (§4.7.3): non-empty, no wildcards."""
    if not t or "+" in t or "#" in t:
        raise err("invalid topic name %r" % t)
    return t


def check_filter(f):
    """A topic filter (§4.7.1): + and # only as whole levels, # last."""
    bad = not f or "#" in f[:-1]
    for lv in f.split("/"):
        if len(lv) > 1 and ("+" in lv or "#" in lv):
            bad = True
    if bad:
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
        raise ValueError("an empty client id needs clean session")  # §3.1.3-7
    if password is not None and username is None:
        raise ValueError("a password needs a user name")  # §3.1.2-22
    flags = 2 if clean else 0
    tail = _bin(client_id, 1)  # the payload (§3.1.3), in its order
    if will:
        topic, payload, qos, retain = will
        _qos(qos)
        flags |= 4 | qos << 3 | (0x20 if retain else 0)
        tail += _bin(check_topic(topic), 1) + _bin(payload)
    if username is not None:
        flags |= 0x80
        tail += _bin(username, 1)
    if password is not None:
        flags |= 0x40
        tail += _bin(password)
    # protocol name and level (§3.1.2.1-2), flags, keepalive (§3.1.2.10)
    return packet(0x10, b"\x00\x04MQTT\x04", bytes((flags, keepalive >> 8, keepalive & 255)),
                  tail)


def publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    """PUBLISH (§3.3). payload is bytes-like or str."""
    _qos(qos)
    if isinstance(payload, str):
        payload = payload.encode()
    return packet(0x30 | qos << 1 | (1 if retain else 0) | (8 if dup else 0),
                  _bin(check_topic(topic), 1), pid.to_bytes(2, "big") if qos else b"",
                  payload)


def subscribe(pid, filters):
    """SUBSCRIBE (§3.8): filters is a list of (filter, qos)."""
    return _request(0x82, pid, filters)


def unsubscribe(pid, filters):
    """UNSUBSCRIBE (§3.10): filters is a list of topic filters."""
    return _request(0xA2, pid, filters)


def _request(b0, pid, filters):
    # At least one filter (§3.8.3-3, §3.10.3-2); SUBSCRIBE adds each one's QoS.
    if not filters:
        raise ValueError("no topic filter")
    parts = [pid.to_bytes(2, "big")]
    for f in filters:
        if b0 == 0x82:
            f, q = f
            _qos(q)
        parts.append(_bin(check_filter(f), 1))
        if b0 == 0x82:
            parts.append(bytes((q,)))
    return packet(b0, *parts)


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
        n |= (b & 127) << 7 * i - 7
        if b < 128:
            if 1 + i + n > limit:
                raise ProtocolError("packet of %d bytes over the %d limit" % (1 + i + n, limit))
            return start + 1 + i, start + 1 + i + n
    raise ProtocolError("remaining length over 4 bytes")


def decode(b0, body):
    """Decode one packet a server sends. body is the variable header and
    payload (bytes or memoryview). Returns a Message for PUBLISH, else a
    tuple (type, ...): (CONNACK, session_present, code), (SUBACK, pid,
    codes), (PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK, pid), (PINGRESP,)."""
    t = b0 >> 4
    n = len(body)
    # the first two bytes: the packet id of the acks, the topic length of PUBLISH
    pid = n > 1 and body[0] << 8 | body[1]
    if t == PUBLISH:
        # QoS 3 is malformed (§3.3.1.2), so is DUP on QoS 0 (§3.3.1.1); the
        # topic and the packet id must fit in the packet.
        qos = b0 >> 1 & 3
        i = 2 + pid
        j = i + (2 if qos else 0)
        if qos == 3 or b0 & 8 and not qos or j > n:
            raise ProtocolError("PUBLISH with QoS 3, DUP on QoS 0, or topic length beyond "
                                "the packet")
        topic = check_topic(check_utf8(bytes(body[2:i])), ProtocolError)
        pid = qos and body[i] << 8 | body[i + 1]
        m = Message(topic, bytes(body[j:]), qos, bool(b0 & 1), bool(b0 & 8), pid)
        t = 0
    elif b0 & 15 != (2 if t == PUBREL else 0):
        raise ProtocolError("reserved flags set in packet type %d" % t)  # §2.2.2
    elif t == CONNACK:
        # session present only with return code 0 (§3.2.2.2); codes 0..5 (§3.2.2.3)
        if n != 2 or body[0] > 1 or body[1] > 5 or body[0] and body[1]:
            raise ProtocolError("malformed CONNACK")
        return (CONNACK, body[0] == 1, body[1])
    elif t == PINGRESP and not n:
        return (PINGRESP,)
    elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK) and n == 2:
        m = (t, pid)
    elif t == SUBACK and n > 2:
        m = (SUBACK, pid, bytes(body[2:]))
        for c in m[2]:
            if c not in (0, 1, 2, 0x80):  # §3.9.3
                raise ProtocolError("SUBACK return code %d" % c)
    else:
        # a packet only a client sends, or a server's of the wrong length
        raise ProtocolError("packet type %d not expected from a server, or of bad length" % t)
    if t or m.qos:  # a packet with a packet id
        if not pid:
            raise ProtocolError("packet id 0")  # §2.3.1
    return m
