# MQTT 5.0 packets <-> bytes. Pure functions: no I/O, no clock.
#
# What a v5 client needs: properties, encoders for the packets a client sends,
# a decoder for every packet a server sends. Framing, strings, topic rules and
# Message come from codec.py; the server's half is in tests/codec5_broker.py. A 3.1.1
# client never imports this module. Section numbers (§) refer to the MQTT 5.0
# OASIS standard.
try:
    from micropython import const
except ImportError:
    const = lambda x: x

from . import codec
from .codec import (CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK,
                    UNSUBSCRIBE, UNSUBACK, PINGRESP, DISCONNECT, Message, _bin, _pid, _s,
                    check_filter, check_topic, check_utf8, packet, varint)
from .errors import ProtocolError

AUTH = const(15)
WILL = const(0)  # the pseudo packet type of will properties (§3.1.3.2)

# Property identifiers (§2.2.2.2)
PAYLOAD_FORMAT = const(0x01)
MESSAGE_EXPIRY = const(0x02)
CONTENT_TYPE = const(0x03)
RESPONSE_TOPIC = const(0x08)
CORRELATION_DATA = const(0x09)
SUBSCRIPTION_ID = const(0x0B)
SESSION_EXPIRY = const(0x11)
ASSIGNED_CLIENT_ID = const(0x12)
SERVER_KEEPALIVE = const(0x13)
AUTH_METHOD = const(0x15)
AUTH_DATA = const(0x16)
REQUEST_PROBLEM_INFO = const(0x17)
WILL_DELAY = const(0x18)
REQUEST_RESPONSE_INFO = const(0x19)
RESPONSE_INFO = const(0x1A)
SERVER_REFERENCE = const(0x1C)
REASON_STRING = const(0x1F)
RECEIVE_MAXIMUM = const(0x21)
TOPIC_ALIAS_MAXIMUM = const(0x22)
TOPIC_ALIAS = const(0x23)
MAXIMUM_QOS = const(0x24)
RETAIN_AVAILABLE = const(0x25)
USER_PROPERTY = const(0x26)
MAXIMUM_PACKET_SIZE = const(0x27)
WILDCARD_SUB_AVAILABLE = const(0x28)
SUB_ID_AVAILABLE = const(0x29)
SHARED_SUB_AVAILABLE = const(0x2A)

# Subscription options (§3.8.3.1): QoS in bits 0-1, then these.
NO_LOCAL = const(0x04)
RETAIN_AS_PUBLISHED = const(0x08)
RETAIN_SEND_NEW = const(0x10)  # retain handling 1: only for a new subscription
RETAIN_NEVER = const(0x20)     # retain handling 2: never

# Data types (§1.5): byte (0 or 1 for every byte property), two- and four-byte
# integers, variable byte integer, UTF-8 string, binary data, string pair.
_BYTE = const(1)
_U16 = const(2)
_U32 = const(3)
_VBI = const(4)
_STR = const(5)
_BIN = const(6)
_PAIR = const(7)
# Where a property may appear: one bit per packet type, bit 0 for the will (§2.2.2.2).
_W = const(1 << 3)
_CN = const(1 << 4)
_CA = const(1 << 5)
_PB = const(1 << 6)
_ACKS = const(15 << 7)  # PUBACK, PUBREC, PUBREL, PUBCOMP
_SB = const(1 << 11)
_SA = const(1 << 12)
_US = const(1 << 13)
_UA = const(1 << 14)
_DC = const(1 << 17)
_AU = const(1 << 18)
# id: data type | packet bits (the bits of type t are 1 << (t + 3))
_PT = {
    0x01: _BYTE | _W | _PB,
    0x02: _U32 | _W | _PB,
    0x03: _STR | _W | _PB,
    0x08: _STR | _W | _PB,
    0x09: _BIN | _W | _PB,
    0x0B: _VBI | _PB | _SB,
    0x11: _U32 | _CN | _CA | _DC,
    0x12: _STR | _CA,
    0x13: _U16 | _CA,
    0x15: _STR | _CN | _CA | _AU,
    0x16: _BIN | _CN | _CA | _AU,
    0x17: _BYTE | _CN,
    0x18: _U32 | _W,
    0x19: _BYTE | _CN,
    0x1A: _STR | _CA,
    0x1C: _STR | _CA | _DC,
    0x1F: _STR | _CA | _ACKS | _SA | _UA | _DC | _AU,
    0x21: _U16 | _CN | _CA,
    0x22: _U16 | _CN | _CA,
    0x23: _U16 | _PB,
    0x24: _BYTE | _CA,
    0x25: _BYTE | _CA,
    0x26: _PAIR | _W | _CN | _CA | _PB | _ACKS | _SB | _SA | _US | _UA | _DC | _AU,
    0x27: _U32 | _CN | _CA,
    0x28: _BYTE | _CA,
    0x29: _BYTE | _CA,
    0x2A: _BYTE | _CA,
}
# Properties for which 0 is a Protocol Error: subscription identifier (§3.3.4),
# receive maximum (§3.1.2.11.3), topic alias (§3.3.2.3.4), maximum packet size
# (§3.1.2.11.4).
_NZ = b"\x0b\x21\x23\x27"
_MAX = (0, 1, 65535, 0xFFFFFFFF, 268435455)

# Reason codes a server may send, per packet type (§3.2.2.2, §3.4.2.1,
# §3.5.2.1, §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1).
_PA = b"\x00\x10\x80\x83\x87\x90\x91\x97\x99"
_PR = b"\x00\x92"
_RC = {
    CONNACK: b"\x00\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8c\x90\x95\x97\x99\x9a"
             b"\x9b\x9c\x9d\x9f",
    PUBACK: _PA, PUBREC: _PA, PUBREL: _PR, PUBCOMP: _PR,
    SUBACK: b"\x00\x01\x02\x80\x83\x87\x8f\x91\x97\x9e\xa1\xa2",
    UNSUBACK: b"\x00\x11\x80\x83\x87\x8f\x91",
    DISCONNECT: b"\x00\x80\x81\x82\x83\x87\x89\x8b\x8d\x8e\x8f\x90\x93\x94\x95\x96\x97\x98"
                b"\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2",
    AUTH: b"\x00\x18\x19",
}
# DISCONNECT reason codes a client may send (§3.14.2.1).
_DISC_C = b"\x00\x04\x80\x81\x82\x83\x90\x93\x94\x95\x96\x97\x98\x99"

# Reason codes (§2.4). 0x00 is also "normal disconnection" and "granted QoS 0".
# One table in two strings (a dict of 43 strings costs ~2 KB more heap):
# _RCODES[i] is the code named by the i-th |-separated part of _RNAMES.
_RCODES = (b"\x00\x01\x02\x04\x10\x11\x18\x19\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b"
           b"\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
           b"\xa0\xa1\xa2")
_RNAMES = ("success|QoS 1|QoS 2|with will|no subscribers|no subscription|continue auth|"
           "re-auth|unspecified|malformed|protocol error|impl error|bad version|bad client id|"
           "bad credentials|not authorized|unavailable|busy|banned|shutting down|"
           "bad auth method|keepalive timeout|taken over|bad filter|bad topic|pid in use|"
           "pid not found|receive max exceeded|bad topic alias|too large|rate too high|"
           "quota exceeded|admin action|bad payload format|no retain|QoS not supported|"
           "use another server|server moved|no shared subs|connect rate exceeded|"
           "max connect time|no sub ids|no wildcards")


def reason_name(code):
    """A short text for a reason code (§2.4)."""
    i = _RCODES.find(bytes((code,)))
    return _RNAMES.split("|")[i] if i >= 0 else "reason 0x%02x" % code


# ---- properties -------------------------------------------------------------

def encode_props(props, ptype=None, alias=0):
    """Property Length + properties (§2.2.2). props is {id: value} or None;
    user property (0x26) is a list of (name, value) pairs, subscription
    identifier (0x0B) an int or, in PUBLISH, a list of ints. With ptype, a
    property not allowed in that packet type is refused. Emitted in id order,
    then alias, a Topic Alias (§3.3.2.3.4; properties may come in any order)."""
    if not props:   # the hot path: no properties, or only the alias
        return bytes((3, TOPIC_ALIAS, alias >> 8, alias & 0xFF)) if alias else b"\x00"
    out = bytearray()
    for k in sorted(props) if props else ():
        v = props[k]
        t = _PT.get(k, 0)
        if not t or ptype is not None and not t >> 3 & 1 << ptype:
            raise ValueError("property 0x%02x not allowed (§2.2.2.2)" % k)
        t &= 7
        if t == _PAIR and not isinstance(v, list):
            raise ValueError("user property: list of pairs")
        if t == _PAIR or k == SUBSCRIPTION_ID and isinstance(v, list):
            vs = v
        else:
            vs = (v,)
        for x in vs:
            out.append(k)
            if t == _PAIR:
                n, x = x
                out += _s(n) + _s(x)
            elif t == _STR:
                if k == RESPONSE_TOPIC:
                    check_topic(x)
                out += _s(x)
            elif t == _BIN:
                out += _bin(x)
            else:
                if not (1 if k in _NZ else 0) <= x <= _MAX[t]:
                    raise ValueError("property 0x%02x out of range" % k)
                out += varint(x) if t == _VBI else x.to_bytes((1, 2, 4)[t - 1], "big")
    if alias:
        out += bytes((TOPIC_ALIAS, alias >> 8, alias & 0xFF))
    return bytes(varint(len(out)) + out)


def _vbi(b, i, end):
    # Variable Byte Integer (§1.5.5): at most 4 bytes, the fewest that fit.
    n = s = 0
    while True:
        if i >= end or s > 21:
            raise ProtocolError("bad varint (§1.5.5)")
        c = b[i]
        i += 1
        n |= (c & 0x7F) << s
        if c < 0x80:
            if s and not c:
                raise ProtocolError("bad varint (§1.5.5)")
            return n, i
        s += 7


def _field(b, i, end):
    # Two-byte length + data (§1.5.4, §1.5.6).
    j = i + 2
    if j > end:
        raise ProtocolError("truncated")
    j += b[i] << 8 | b[i + 1]
    if j > end:
        raise ProtocolError("truncated")
    return bytes(b[i + 2:j]), j


def decode_props(buf, i, end, ptype):
    """Read Property Length and properties at buf[i] (§2.2.2); returns
    ({id: value}, next_i). ptype is the packet type, 0 for will properties.
    User properties give a list of (name, value); subscription identifiers
    in PUBLISH a list of ints (§3.3.2.3.8)."""
    n, i = _vbi(buf, i, end)
    if i + n > end:
        raise ProtocolError("truncated")
    end = i + n
    d = {}
    while i < end:
        k = buf[i]
        i += 1
        t = _PT.get(k, 0)
        if not t >> 3 & 1 << ptype:
            raise ProtocolError("property 0x%02x not allowed (§2.2.2.2)" % k)
        t &= 7
        if t == _VBI:
            v, i = _vbi(buf, i, end)
        elif t < _VBI:
            w = (1, 2, 4)[t - 1]
            if i + w > end:
                raise ProtocolError("truncated")
            v = int.from_bytes(bytes(buf[i:i + w]), "big")
            i += w
        else:
            v, i = _field(buf, i, end)
            if t == _PAIR:
                x, i = _field(buf, i, end)
                v = (check_utf8(v), check_utf8(x))
            elif t == _STR:
                v = check_utf8(v)
                if k == RESPONSE_TOPIC and ("+" in v or "#" in v or not v):
                    raise ProtocolError("bad response topic (§3.3.2.3.5)")
        if t < _STR and not (1 if k in _NZ else 0) <= v <= _MAX[t]:
            raise ProtocolError("property 0x%02x out of range" % k)
        if t == _PAIR or k == SUBSCRIPTION_ID and ptype == PUBLISH:
            d.setdefault(k, []).append(v)
        elif k in d:
            raise ProtocolError("property 0x%02x twice (§2.2.2.2)" % k)
        else:
            d[k] = v
    if AUTH_DATA in d and AUTH_METHOD not in d:
        raise ProtocolError("auth data without method (§3.1.2.11.10)")
    return d, i


# ---- encoding ---------------------------------------------------------------

def connect(client_id, clean_start=True, keepalive=60, will=None, username=None,
            password=None, props=None):
    """CONNECT (§3.1), protocol level 5. will is (topic, payload, qos, retain,
    will properties or None)."""
    if not 0 <= keepalive <= 65535:
        raise ValueError("bad keepalive")
    flags = 2 if clean_start else 0
    parts = [b"\x00\x04MQTT\x05", None, keepalive.to_bytes(2, "big"),
             encode_props(props, CONNECT), _s(client_id)]
    if will:
        topic, payload, qos, retain = will[:4]
        check_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError("bad QoS")
        flags |= 4 | qos << 3 | (0x20 if retain else 0)
        parts += (encode_props(will[4] if len(will) > 4 else None, WILL), _s(topic),
                  _bin(payload))
    if username is not None:
        flags |= 0x80
        parts.append(_s(username))
    if password is not None:  # allowed without a user name in v5 (§3.1.2.9)
        flags |= 0x40
        parts.append(_bin(password))
    parts[1] = bytes((flags,))
    return packet(0x10, *parts)


def publish(topic, payload, qos=0, retain=False, pid=0, dup=False, props=None, alias=0):
    """PUBLISH (§3.3); alias: a Topic Alias (§3.3.2.3.4) to send with it. topic
    may be "" when there is an alias."""
    if not (topic or alias or props and TOPIC_ALIAS in props):
        check_topic(topic)   # raises: no topic and no alias
    if qos and not 0 < pid < 65536 or dup and not qos:
        raise ValueError("bad packet id or DUP")
    # the 3.1.1 packet with the properties after the packet id (§3.3.2)
    return codec.publish(topic, payload, qos, retain, pid, dup, encode_props(props, PUBLISH, alias))


def check_options(f, o):
    """Subscription options for filter f (§3.8.3.1); returns o or raises ValueError."""
    check_filter(f)
    if not 0 <= o < 0x40 or o & 3 == 3 or o & 0x30 == 0x30:
        raise ValueError("bad options (§3.8.3.1)")
    if f[:7] == "$share/":
        p = f.split("/", 2)
        if len(p) < 3 or not p[1] or not p[2] or "+" in p[1] or "#" in p[1]:
            raise ValueError("bad share name (§4.8.2)")
        if o & NO_LOCAL:
            raise ValueError("no local on a share (§3.8.3.1)")
    return o


def subscribe(pid, filters, props=None):
    """SUBSCRIBE (§3.8): filters is a list of (filter, options byte)."""
    if not filters:
        raise ValueError("no filter")
    parts = [pid.to_bytes(2, "big"), encode_props(props, SUBSCRIBE)]
    for f, o in filters:
        parts += (_s(f), bytes((check_options(f, o),)))
    return packet(0x82, *parts)


def unsubscribe(pid, filters, props=None):
    """UNSUBSCRIBE (§3.10): filters is a list of topic filters."""
    if not filters:
        raise ValueError("no filter")
    parts = [pid.to_bytes(2, "big"), encode_props(props, UNSUBSCRIBE)]
    for f in filters:
        parts.append(_s(check_filter(f)))
    return packet(0xA2, *parts)


def _tail(t, head, reason, props, codes):
    # head + reason + properties, in the shortest form allowed (§3.4.2.1,
    # §3.14.2.1, §3.15.2.1): nothing for reason 0 without properties, the
    # reason alone (property length omitted) when there are no properties.
    if reason not in codes:
        raise ValueError("bad reason code")
    b0 = t << 4 | (2 if t == PUBREL else 0)
    if props:
        return packet(b0, head, bytes((reason,)), encode_props(props, t))
    if reason:
        return packet(b0, head, bytes((reason,)), b"\x00" if t == AUTH else b"")
    return packet(b0, head)


def ack(kind, pid, reason=0, props=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP (§3.4-§3.7)."""
    if kind not in (PUBACK, PUBREC, PUBREL, PUBCOMP) or not 0 < pid < 65536:
        raise ValueError("bad ack")
    return _tail(kind, pid.to_bytes(2, "big"), reason, props, _RC[kind])


def disconnect(reason=0, props=None):
    """DISCONNECT from a client (§3.14); b"\\xe0\\x00" for reason 0 without properties."""
    return _tail(DISCONNECT, b"", reason, props, _DISC_C)


def auth(reason=0, props=None):
    """AUTH (§3.15); b"\\xf0\\x00" for reason 0 without properties."""
    return _tail(AUTH, b"", reason, props, _RC[AUTH])


# ---- decoding ---------------------------------------------------------------

def _more(b, i, t, codes):
    # Reason code + properties from b[i] to the end; absent parts mean reason 0
    # and no properties (§3.4.2.1, §3.4.2.2.1, §3.14.2.1, §3.15.2.1).
    n = len(b)
    if i == n:
        return 0, {}
    r = b[i]
    if r not in codes:
        raise ProtocolError("bad reason code")
    if i + 1 == n and t != AUTH:
        return r, {}
    p, i = decode_props(b, i + 1, n, t)
    if i != n:
        raise ProtocolError("trailing bytes")
    return r, p


def decode(b0, body):
    """Decode one packet a server sends (body: bytes or memoryview). Returns
    a Message with .props for PUBLISH, else (CONNACK, session_present, reason,
    props), (PUBACK/PUBREC/PUBREL/PUBCOMP, pid, reason, props), (SUBACK or
    UNSUBACK, pid, reason codes, props), (PINGRESP,), (DISCONNECT, reason,
    props) or (AUTH, reason, props)."""
    t = b0 >> 4
    f = b0 & 15
    n = len(body)
    if t == PUBLISH:
        qos = f >> 1 & 3
        if qos == 3 or f & 8 and not qos:
            raise ProtocolError("bad PUBLISH flags (§3.3.1)")
        if n < 2:
            raise ProtocolError("truncated")
        i = 2 + (body[0] << 8 | body[1])
        if i + (2 if qos else 0) > n:
            raise ProtocolError("truncated")
        topic = check_utf8(bytes(body[2:i]))
        if "+" in topic or "#" in topic:
            raise ProtocolError("bad topic (§3.3.2.1)")
        pid = 0
        if qos:
            pid = _pid(body, i)
            i += 2
        p, i = decode_props(body, i, n, PUBLISH)
        if not topic and TOPIC_ALIAS not in p:
            raise ProtocolError("no topic, no alias (§3.3.2.3.4)")
        m = Message(topic, bytes(body[i:]), qos, bool(f & 1), bool(f & 8), pid)
        m.props = p
        return m
    if f != (2 if t == PUBREL else 0):
        raise ProtocolError("reserved flags (§2.1.3)")
    codes = _RC.get(t)
    if t == CONNACK:
        if n < 3 or body[0] > 1:
            raise ProtocolError("malformed CONNACK (§3.2.2.1)")
        r, p = _more(body, 1, t, codes)
        if body[0] and r:
            raise ProtocolError("malformed CONNACK (§3.2.2.1)")
        return (t, body[0] == 1, r, p)
    if PUBACK <= t <= PUBCOMP:
        if n < 2:
            raise ProtocolError("truncated")
        return (t, _pid(body, 0)) + _more(body, 2, t, codes)
    if t in (SUBACK, UNSUBACK):
        if n < 3:
            raise ProtocolError("truncated")
        p, i = decode_props(body, 2, n, t)
        rc = bytes(body[i:])
        if not rc:
            raise ProtocolError("truncated")
        for c in rc:
            if c not in codes:
                raise ProtocolError("bad reason code")
        return (t, _pid(body, 0), rc, p)
    if t == PINGRESP:
        if n:
            raise ProtocolError("trailing bytes")
        return (t,)
    if t in (DISCONNECT, AUTH):
        return (t,) + _more(body, 0, t, codes)
    raise ProtocolError("unexpected packet type %d" % t)
