# The broker's half of the MQTT 5.0 codec: encode what a server sends and
# decode what a client sends. Only tests use it (the scripted and fake brokers),
# so it lives in tests/ and is in no package or image. PUBLISH, the publish acks
# and AUTH are the same both ways and stay in lib/mqtt/codec5.py. Section numbers
# (§) refer to MQTT 5.0.
from mqtt.codec import (CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK,
                        PINGREQ, PINGRESP, DISCONNECT, check_filter, packet)
from codec_broker import PINGRESP_PACKET, _Cursor
from mqtt.codec5 import (SUBSCRIPTION_ID, WILL, _DISC_C, _RC, _more, _tail, auth,
                         check_options, decode, decode_props, encode_props)
from mqtt.errors import ProtocolError

__all__ = ("connack", "suback", "unsuback", "disconnect", "auth", "decode_client",
           "PINGRESP_PACKET")


def connack(session_present, reason=0, props=None):
    """CONNACK (§3.2); session present only with reason 0 (§3.2.2.1.1)."""
    if reason not in _RC[CONNACK] or session_present and reason:
        raise ValueError("bad CONNACK reason code")
    return packet(CONNACK << 4, bytes((1 if session_present else 0, reason)),
                  encode_props(props, CONNACK))


def _codes(t, pid, codes, props):
    for c in codes:
        if c not in _RC[t]:
            raise ValueError("reason code 0x%02x not valid in packet type %d" % (c, t))
    if not codes:
        raise ValueError("at least one reason code")
    return packet(t << 4, pid.to_bytes(2, "big"), encode_props(props, t), bytes(codes))


def suback(pid, codes, props=None):
    """SUBACK (§3.9): one reason code per filter (§3.9.3)."""
    return _codes(SUBACK, pid, codes, props)


def unsuback(pid, codes, props=None):
    """UNSUBACK (§3.11): one reason code per filter (§3.11.3)."""
    return _codes(UNSUBACK, pid, codes, props)


def disconnect(reason=0, props=None):
    """DISCONNECT from the server (§3.14): the server's reason codes (§3.14.2.1)."""
    return _tail(DISCONNECT, b"", reason, props, _RC[DISCONNECT])


def _props(c, t):
    p, c.i = decode_props(c.b, c.i, len(c.b), t)
    return p


def decode_client(b0, body):
    """Decode one packet a client sends. CONNECT gives a dict with the keys
    client_id, clean_start, keepalive, will (topic, payload, qos, retain,
    props) or None, username, password, props; SUBSCRIBE gives (SUBSCRIBE,
    pid, [(filter, options)], props); UNSUBSCRIBE gives (UNSUBSCRIBE, pid,
    [filter], props); PINGREQ gives (PINGREQ,); DISCONNECT gives
    (DISCONNECT, reason, props); PUBLISH, the publish acks and AUTH decode as
    in codec5.decode."""
    t = b0 >> 4
    if t in (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT):
        if b0 & 15 != (2 if t in (SUBSCRIBE, UNSUBSCRIBE) else 0):
            raise ProtocolError("reserved flags set in packet type %d (§2.1.3)" % t)
    else:
        if t in (CONNACK, SUBACK, UNSUBACK, PINGRESP):
            raise ProtocolError("packet type %d not expected from a client" % t)
        r = decode(b0, body)
        if t == PUBLISH and SUBSCRIPTION_ID in r.props:
            raise ProtocolError("subscription identifier from a client (§3.3.4)")
        return r
    c = _Cursor(body)
    if t == CONNECT:
        return _connect(c)
    if t == PINGREQ:
        if c.more():
            raise ProtocolError("PINGREQ with a body")
        return (t,)
    if t == DISCONNECT:
        return (t,) + _more(body, 0, t, _DISC_C)
    pid = c.u16()
    if not pid:
        raise ProtocolError("packet id 0")
    props = _props(c, t)
    items = []
    while c.more():
        f = c.string()
        try:
            if t == SUBSCRIBE:
                o = c.take(1)[0]
                items.append((f, check_options(f, o)))
            else:
                items.append(check_filter(f))
        except ValueError as e:
            raise ProtocolError(str(e))
    if not items:
        raise ProtocolError("no topic filter (§3.8.3, §3.10.3)")
    return (t, pid, items, props)


def _connect(c):
    if c.binary() != b"MQTT" or c.take(1) != b"\x05":
        raise ProtocolError("not MQTT 5.0 (§3.1.2.1, §3.1.2.2)")
    flags = c.take(1)[0]
    if flags & 1:
        raise ProtocolError("reserved CONNECT flag set (§3.1.2.3)")
    wq = flags >> 3 & 3
    if wq == 3 or not flags & 4 and (wq or flags & 0x20):
        raise ProtocolError("bad will flags (§3.1.2.5-§3.1.2.7)")
    r = {"clean_start": bool(flags & 2), "keepalive": c.u16()}
    r["props"] = _props(c, CONNECT)
    r["client_id"] = c.string()
    r["will"] = None
    if flags & 4:
        wp = _props(c, WILL)
        topic = c.string()
        if not topic or "+" in topic or "#" in topic:
            raise ProtocolError("bad will topic (§3.1.3.3)")
        r["will"] = (topic, c.binary(), wq, bool(flags & 0x20), wp)
    r["username"] = c.string() if flags & 0x80 else None
    r["password"] = c.binary() if flags & 0x40 else None
    if c.more():
        raise ProtocolError("bytes after the CONNECT payload")
    return r
