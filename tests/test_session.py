"""Unit tests of lib/mqtt/session.py: the sans-I/O MQTT 3.1.1 client session.

The session is driven purely: bytes from a (scripted) broker go in through
feed(), packets to write come out of take(), time is an int `now` in ms.
Broker bytes are built with codec / codec_broker; packets the session writes
are decoded with codec_broker.decode_client.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mqtt import codec  # noqa: E402
from mqtt.codec import (  # noqa: E402
    CONNACK, PINGREQ, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK,
    UNSUBSCRIBE, Message, ack, frame)
from codec_broker import PINGRESP_PACKET, connack, decode_client, suback  # noqa: E402
from mqtt.errors import (  # noqa: E402
    ConnectionLost, ConnectRefused, MQTTError, NotConnected, ProtocolError)
from mqtt.session import DROPPED, Session  # noqa: E402

MASK = 0x3FFFFFFF  # MicroPython's ticks_ms() wraps at 2**30


def parse(pkt):
    """Decode one packet the session wrote, as the broker would."""
    pkt = bytes(pkt)
    f = frame(pkt, 1 << 29)
    assert f is not None and f[1] == len(pkt), "take() must give whole packets"
    return decode_client(pkt[0], pkt[f[0]:])


def kinds(pkts):
    out = []
    for p in pkts:
        d = parse(p)
        out.append(CONNECT_KIND if isinstance(d, dict) else PUBLISH if isinstance(d, Message)
                   else d[0])
    return out


CONNECT_KIND = 1


def online(now=0, present=False, **kw):
    """A Session that has sent CONNECT and got CONNACK accepted."""
    kw.setdefault("clean", True)
    s = Session("id", **kw)
    s.start(now)
    assert kinds(s.take(now)) == [CONNECT_KIND]
    assert s.feed(connack(present, 0), now) == [(CONNACK, present, 0)]
    assert s.connected
    return s


def pub_in(topic, payload, qos=0, pid=0, dup=False, retain=False):
    return codec.publish(topic, payload, qos, retain, pid, dup)


# --------------------------------------------------------------------------- connect


def test_start_queues_exactly_connect():
    s = Session("dev1", clean=False, keepalive=30, username="u", password=b"p")
    s.start(0)
    tx = s.take(0)
    assert tx == [codec.connect("dev1", False, 30, None, "u", b"p")]
    d = parse(tx[0])
    assert (d["client_id"], d["clean"], d["keepalive"], d["username"], d["password"]) == (
        "dev1", False, 30, "u", b"p")
    assert s.take(0) == []
    assert not s.connected


def test_connack_accepted():
    s = Session("id")
    s.start(0)
    s.take(0)
    assert s.feed(connack(False, 0), 5) == [(CONNACK, False, 0)]
    assert s.connected and s.session_present is False


@pytest.mark.parametrize("code,reason", [
    (1, "unacceptable protocol version"),
    (2, "identifier rejected"),
    (3, "server unavailable"),
    (4, "bad user name or password"),
    (5, "not authorized"),
])
def test_connack_refused(code, reason):
    s = Session("id")
    s.start(0)
    s.take(0)
    with pytest.raises(ConnectRefused) as ei:
        s.feed(connack(False, code), 0)
    assert ei.value.code == code
    assert ei.value.reason == reason
    assert reason in str(ei.value)
    assert isinstance(ei.value, MQTTError)
    assert not s.connected


@pytest.mark.parametrize("pkt", [
    ack(PUBACK, 1), ack(PUBREL, 1), suback(1, [0]), ack(UNSUBACK, 1), PINGRESP_PACKET,
    pub_in("a", b"x"), pub_in("a", b"x", 1, 1),
])
def test_packet_before_connack(pkt):
    s = Session("id")
    s.start(0)
    s.take(0)
    with pytest.raises(ProtocolError):
        s.feed(pkt, 0)


def test_second_connack():
    s = online()
    with pytest.raises(ProtocolError):
        s.feed(connack(False, 0), 1)


def test_connack_split_across_feeds():
    s = Session("id", clean=False)   # session present 1 needs clean 0 [MQTT-3.2.2-1]
    s.start(0)
    s.take(0)
    c = bytes(connack(True, 0))
    for b in c[:-1]:
        assert s.feed(bytes((b,)), 0) == []
        assert not s.connected
    assert s.feed(c[-1:], 0) == [(CONNACK, True, 0)]
    assert s.session_present is True


def test_empty_client_id_needs_clean_session():
    with pytest.raises(ValueError, match="clean"):
        Session("", clean=False)
    Session("", clean=True)  # allowed: the broker assigns an id (§3.1.3-6)


def test_password_needs_username():
    with pytest.raises(ValueError, match="user name"):
        Session("id", password=b"secret")


@pytest.mark.parametrize("kw", [dict(window=0), dict(queue=0)])
def test_window_and_queue_at_least_one(kw):
    with pytest.raises(ValueError):
        Session("id", **kw)


# --------------------------------------------------------------------------- outgoing publish


def test_qos0_publish():
    s = online()
    assert s.publish("a/b", b"hi") == 0
    assert s.take(1) == [codec.publish("a/b", b"hi")]
    assert s.idle()


def test_qos1_publish():
    s = online()
    pid = s.publish("a/b", b"hi", qos=1)
    assert 1 <= pid <= 65535
    tx = s.take(1)
    assert tx == [codec.publish("a/b", b"hi", 1, False, pid)]
    assert not s.idle()
    assert s.feed(ack(PUBACK, pid), 2) == [(PUBACK, pid)]
    assert s.idle()
    assert s.take(2) == []


def test_qos2_publish():
    s = online()
    pid = s.publish("a/b", b"hi", qos=2, retain=True)
    assert s.take(1) == [codec.publish("a/b", b"hi", 2, True, pid)]
    assert s.feed(ack(PUBREC, pid), 2) == []
    tx = s.take(2)
    assert tx == [bytes((0x62, 0x02, pid >> 8, pid & 0xFF))]
    assert not s.idle()
    assert s.feed(ack(PUBCOMP, pid), 3) == [(PUBCOMP, pid)]
    assert s.idle()


@pytest.mark.parametrize("bad, answer", [
    (lambda p1, p2: ack(PUBACK, 999), None),          # unknown packet ids
    (lambda p1, p2: ack(PUBREC, 999), ack(PUBREL, 999)),
    (lambda p1, p2: ack(PUBCOMP, 999), None),
    (lambda p1, p2: ack(PUBACK, p2), None),           # the wrong ack for the QoS in flight
    (lambda p1, p2: ack(PUBCOMP, p2), None),          # PUBCOMP before PUBREC
    (lambda p1, p2: ack(PUBCOMP, p1), None),
    (lambda p1, p2: suback(77, [0]), None),           # nothing subscribed with that id
    (lambda p1, p2: ack(UNSUBACK, 77), None),
])
def test_unsolicited_acks_are_ignored_and_counted_and_lose_nothing(bad, answer):
    # An ack for a packet id that is not waiting for it (a duplicate, a broker that failed
    # over) is ignored and counted; the link stays up. A PUBREC for an unknown id still gets
    # its PUBREL so the broker can finish its QoS 2 flow (§4.3.3).
    s = online()
    p1 = s.publish("a", b"1", qos=1)
    p2 = s.publish("a", b"2", qos=2)
    s.take(1)
    assert s.feed(bad(p1, p2), 2) == []
    assert s.unsolicited == 1 and s.connected
    assert s.take(2) == ([answer] if answer else [])
    # both are still in flight and complete normally
    assert s.feed(ack(PUBACK, p1), 5) == [(PUBACK, p1)]
    assert s.feed(ack(PUBREC, p2) + ack(PUBREC, p2), 5) == []   # a repeated PUBREC is fine
    assert s.take(5) == [ack(PUBREL, p2), ack(PUBREL, p2)]
    assert s.feed(ack(PUBCOMP, p2), 6) == [(PUBCOMP, p2)]
    assert s.idle() and s.failed == []
    (m2,) = s.feed(pub_in("a/b", b"new", 2, 9), 5)
    assert m2.payload == b"new"


def test_incoming_pubrel_unknown_still_gets_pubcomp():
    # §4.3.3: a PUBREL is always answered, e.g. after our PUBCOMP was lost
    s = online()
    assert s.feed(ack(PUBREL, 42), 1) == []
    assert s.take(1) == [ack(PUBCOMP, 42)]


def test_several_packets_in_one_feed_and_split():
    s = online()
    stream = bytes(pub_in("a", b"1") + pub_in("b", b"2", 1, 3) + pub_in("c", b"3"))
    got = []
    for cut in (1, 5, len(stream) - 1):
        s2 = online()
        got = s2.feed(stream[:cut], 1) + s2.feed(stream[cut:], 1)
        assert [(m.topic, m.payload) for m in got] == [("a", b"1"), ("b", b"2"), ("c", b"3")]
    assert [(m.topic, m.payload) for m in s.feed(stream, 1)] == [
        ("a", b"1"), ("b", b"2"), ("c", b"3")]


# --------------------------------------------------------------------------- resume


def _in_flight_then_drop(s):
    """QoS 1 (pid a), QoS 2 PUBREC'd (pid b), QoS 2 not yet PUBREC'd (pid c); link drops."""
    a = s.publish("t/1", b"one", qos=1)
    b = s.publish("t/2", b"two", qos=2)
    c = s.publish("t/3", b"three", qos=2)
    assert len(s.take(1)) == 3
    s.feed(ack(PUBREC, b), 2)
    assert s.take(2) == [ack(PUBREL, b)]
    s.closed()
    assert not s.connected
    return a, b, c


def test_resume_with_session_present():
    s = online(clean=False)
    a, b, c = _in_flight_then_drop(s)
    s.start(100)
    assert kinds(s.take(100)) == [CONNECT_KIND]       # nothing before CONNACK
    assert s.feed(connack(True, 0), 100) == [(CONNACK, True, 0)]
    tx = s.take(100)
    assert len(tx) == 3
    assert tx[0][0] & 0x08 and tx[2][0] & 0x08         # DUP set on the re-sent PUBLISHes
    m1, rel, m3 = (parse(p) for p in tx)
    assert (m1.pid, m1.payload, m1.qos, m1.dup) == (a, b"one", 1, True)
    assert rel == (PUBREL, b)
    assert bytes(tx[1]) == bytes((0x62, 2, b >> 8, b & 0xFF))
    assert (m3.pid, m3.payload, m3.qos, m3.dup) == (c, b"three", 2, True)
    # and they complete normally
    assert s.feed(ack(PUBACK, a) + ack(PUBCOMP, b), 101) == [(PUBACK, a), (PUBCOMP, b)]
    s.feed(ack(PUBREC, c), 101)
    assert s.take(101) == [ack(PUBREL, c)]
    assert s.feed(ack(PUBCOMP, c), 101) == [(PUBCOMP, c)]
    assert s.idle() and s.unknown == 0


def test_resume_without_session_restores_subscriptions():
    s = online(clean=False)
    sp = s.subscribe([("a/#", 1), ("b", 0)])
    assert [parse(p) for p in s.take(1)] == [(SUBSCRIBE, sp, [("a/#", 1), ("b", 0)])]
    assert s.feed(suback(sp, [1, 0]), 1) == [(SUBACK, sp, b"\x01\x00")]
    a, b, c = _in_flight_then_drop(s)
    s.start(100)
    s.take(100)
    assert s.feed(connack(False, 0), 100) == [(CONNACK, False, 0)]
    tx = [parse(p) for p in s.take(100)]
    assert tx[0][0] == SUBSCRIBE and tx[0][2] == [("a/#", 1), ("b", 0)]
    # the PUBREC'd QoS 2 is gone (its outcome is unknown); the others are re-sent
    assert [(m.pid, m.payload) for m in tx[1:]] == [(a, b"one"), (c, b"three")]
    assert s.unknown == 1
    assert s.feed(suback(tx[0][1], [1, 0]), 101) == [(SUBACK, tx[0][1], b"\x01\x00")]
    assert s.subs == {"a/#": 1, "b": 0}
    assert s.feed(ack(PUBACK, a), 101) == [(PUBACK, a)]
    s.feed(ack(PUBREC, c) + ack(PUBCOMP, c), 101)
    assert s.idle()


def reconnect_after_pubrec(present):
    # An incoming QoS 2 message (pid 5) was taken and PUBREC'd; then the link drops.
    s = online(clean=False)
    (m,) = s.feed(pub_in("x", b"1", 2, 5), 1)
    s.ack(m)
    s.take(1)
    s.closed()
    s.start(2)
    s.take(2)
    s.feed(connack(present, 0), 2)
    return s


def test_resume_without_session_forgets_incoming_qos2():
    s = reconnect_after_pubrec(False)
    # a new session: pid 5 from the broker is a new message
    (m2,) = s.feed(pub_in("x", b"2", 2, 5), 3)
    assert m2.payload == b"2"


def test_resume_with_session_keeps_incoming_qos2():
    s = reconnect_after_pubrec(True)
    # the broker re-sends it (§4.4): not delivered twice, PUBREC again
    assert s.feed(pub_in("x", b"1", 2, 5, dup=True), 3) == []
    assert s.take(3) == [ack(PUBREC, 5)]


def test_subscribe_offline_sent_once_on_connect():
    # subscribe() before the first connection: made on connect, in ONE SUBSCRIBE
    # (a second one would make the broker re-send retained messages, §3.8.4)
    s = Session("id")
    sp = s.subscribe([("a/#", 1)])
    assert s.take(0) == []
    s.start(0)
    s.take(0)
    s.feed(connack(False, 0), 0)
    subs = [parse(p) for p in s.take(0)]
    assert subs == [(SUBSCRIBE, sp, [("a/#", 1)])]
    assert s.feed(suback(sp, [1]), 1) == [(SUBACK, sp, b"\x01")]


def test_unacked_subscribe_resent_once_after_session_loss():
    s = online()
    sp = s.subscribe([("a", 0), ("b", 1)])
    s.take(0)
    s.closed()                                   # no SUBACK came
    s.start(1)
    s.take(1)
    s.feed(connack(False, 0), 1)
    tx = [parse(p) for p in s.take(1)]
    assert [t[0] for t in tx] == [SUBSCRIBE]
    assert sorted(f for t in tx for f in t[2]) == [("a", 0), ("b", 1)]
    assert s.feed(suback(tx[0][1], [0, 1]), 2) == [(SUBACK, tx[0][1], b"\x00\x01")]
    assert tx[0][1] == sp


# --------------------------------------------------------------------------- subscribe


def test_subscribe_and_failure_code():
    s = online()
    pid = s.subscribe([("a", 1), ("b", 2)])
    assert [parse(p) for p in s.take(1)] == [(SUBSCRIBE, pid, [("a", 1), ("b", 2)])]
    assert s.subs == {"a": 1, "b": 2}
    assert s.feed(suback(pid, [1, 0x80]), 2) == [(SUBACK, pid, b"\x01\x80")]
    assert s.subs == {"a": 1}


def test_suback_wrong_number_of_codes():
    s = online()
    pid = s.subscribe([("a", 1), ("b", 2)])
    s.take(1)
    with pytest.raises(ProtocolError):
        s.feed(suback(pid, [1]), 2)


def test_unsubscribe():
    s = online()
    sp = s.subscribe([("a", 1), ("b", 0)])
    s.feed(suback(sp, [1, 0]), 1)
    up = s.unsubscribe(["a"])
    assert up != sp
    assert [parse(p) for p in s.take(1)][-1] == (UNSUBSCRIBE, up, ["a"])
    assert s.subs == {"b": 0}
    assert s.feed(ack(UNSUBACK, up), 2) == [(UNSUBACK, up)]


# --------------------------------------------------------------------------- keepalive


def _ka_session(t):
    s = Session("id", keepalive=10)
    s.start(t(0))
    s.take(t(0))
    s.feed(connack(False, 0), t(0))
    return s


BASES = [0, MASK, MASK - 4000, MASK - 12000, MASK - 14999, 1 << 29]


@pytest.mark.parametrize("base", BASES)
def test_keepalive_ping_and_answer(base):
    def t(x):
        return (base + x) & MASK

    s = _ka_session(t)
    assert s.poll(t(0)) == 10000
    assert s.poll(t(9999)) == 1
    assert s.take(t(9999)) == []
    assert s.poll(t(10000)) == 5000
    assert s.take(t(10000)) == [codec.PINGREQ_PACKET]
    assert kinds([codec.PINGREQ_PACKET]) == [PINGREQ]
    assert s.poll(t(12000)) == 3000
    assert s.take(t(12000)) == []               # one PINGREQ per period
    assert s.feed(PINGRESP_PACKET, t(12000)) == []
    s.poll(t(15000))                            # answered: no dead link
    assert s.poll(t(15000)) == 5000             # next PINGREQ 10 s after the last one sent
    assert s.take(t(15000)) == []
    assert s.poll(t(20000)) == 5000
    assert s.take(t(20000)) == [codec.PINGREQ_PACKET]


@pytest.mark.parametrize("base", BASES)
def test_keepalive_dead_link(base):
    def t(x):
        return (base + x) & MASK

    s = _ka_session(t)
    s.poll(t(10000))
    s.take(t(10000))
    assert s.poll(t(14999)) == 1
    with pytest.raises(ConnectionLost):
        s.poll(t(15000))


@pytest.mark.parametrize("base", BASES)
def test_received_data_counts_as_liveness(base):
    def t(x):
        return (base + x) & MASK

    s = _ka_session(t)
    s.poll(t(10000))
    s.take(t(10000))
    s.feed(pub_in("a", b"x"), t(13000))          # any packet, not only PINGRESP
    assert s.poll(t(15000)) > 0
    assert s.take(t(15000)) == []


def test_keepalive_pings_even_while_receiving():
    # §3.1.2.10: the client must SEND something within each keepalive period,
    # however much it receives
    s = _ka_session(lambda x: x)
    for now in range(1000, 10000, 1000):
        s.feed(pub_in("a", b"x"), now)
        s.poll(now)
        assert s.take(now) == []
    s.poll(10000)
    assert s.take(10000) == [codec.PINGREQ_PACKET]


def test_keepalive_zero_never_pings():
    s = Session("id", keepalive=0)
    s.start(0)
    s.take(0)
    s.feed(connack(False, 0), 0)
    for now in (0, 10 ** 6, 10 ** 8):
        s.poll(now)
        assert s.take(now) == []


def test_no_ping_before_connack():
    s = Session("id", keepalive=10)
    s.start(0)
    s.take(0)
    s.poll(20000)
    assert s.take(20000) == []


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("hdr", [b"\x90\x80\x80\x40", b"\xb0\x80\x80\x80\x01"])
def test_oversize_packet_refused_from_header(hdr):
    # a SUBACK / UNSUBACK over max_packet: no body sent, refused from the header alone
    s = online(max_packet=8192)
    with pytest.raises(ProtocolError):
        s.feed(hdr, 1)                          # 1 MB / 2 MB announced; no body sent


def test_oversize_header_in_pieces():
    s = online(max_packet=8192)
    assert s.feed(b"\x90", 1) == []
    assert s.feed(b"\x80\x80", 1) == []
    with pytest.raises(ProtocolError):
        s.feed(b"\x40", 1)


def _big(qos, pid, size, topic=b"poison/t"):
    body = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if qos else b"")
    body += b"p" * (size - len(body))
    return bytes([0x30 | qos << 1]) + bytes(codec.varint(len(body))) + body


@pytest.mark.parametrize("qos, acks", [(0, []), (1, [(PUBACK, 77)]), (2, [(PUBREC, 77)])])
@pytest.mark.parametrize("chunk", [1, 7, 512, 1 << 20])
def test_oversize_publish_is_discarded_acknowledged_and_counted(qos, acks, chunk):
    # A PUBLISH over max_packet is a poison message: closing the link would get it sent
    # again on every reconnect. It is skipped in pieces (never held), acknowledged per its
    # QoS (§4.3.2, §4.3.3) so the broker does not re-send it, and reported; the packets
    # around it are handled as usual.
    s = online(max_packet=1024)
    data = (codec.publish("a", b"before", 0) + _big(qos, 77, 3000)
            + codec.publish("a", b"after", 1, pid=5))
    events = []
    for k in range(0, len(data), chunk):
        events += s.feed(data[k:k + chunk], 1)
        assert len(s._buf) <= 1024 + chunk       # nothing near 3000 bytes held
    assert [e.payload if isinstance(e, Message) else e for e in events] == [
        b"before", (0, "skipped a PUBLISH of 3003 bytes over max_packet (QoS %d, acknowledged)"
                    % qos), b"after"]
    assert s.oversized == 1 and s.connected
    assert [parse(p) for p in s.take(1)] == acks
    if qos == 2:   # the broker's PUBREL completes the flow
        assert s.feed(ack(PUBREL, 77), 2) == []
        assert [parse(p) for p in s.take(2)] == [(PUBCOMP, 77)]


@pytest.mark.parametrize("bad", [_big(1, 0, 3000),                   # packet id 0
                                 b"\x36\xb8\x17" + _big(1, 1, 3000)[3:],  # QoS 3
                                 b"\x32\xb8\x17\x0f\xff" + b"t" * 2998])  # topic past the end
def test_oversize_publish_that_is_malformed_closes(bad):
    s = online(max_packet=1024)
    with pytest.raises(ProtocolError):
        s.feed(bad, 1)


def test_max_packet_boundary():
    s = online(max_packet=100)
    ok = codec.publish("t", bytes(95))          # exactly 100 bytes
    assert len(ok) == 100
    (m,) = s.feed(ok, 1)
    assert m.payload == bytes(95)
    (e,) = s.feed(codec.publish("t", bytes(96)), 1)   # skipped, reported
    assert e[0] == 0 and "101 bytes" in e[1] and s.oversized == 1


def test_malformed_packet_from_broker():
    s = online()
    with pytest.raises(ProtocolError):
        s.feed(b"\x36\x05\x00\x01a\x00\x01", 1)  # PUBLISH QoS 3


def test_disconnect_packet():
    s = online()
    s.disconnect()
    assert s.take(1) == [codec.DISCONNECT_PACKET]
    assert not s.connected


def test_messages_before_a_bad_packet_are_not_taken_as_received():
    # One chunk: a good QoS 1 PUBLISH, then a malformed packet. The connection dies,
    # the message never reached the application, so the broker's DUP re-send must be
    # delivered (not suppressed as a duplicate).
    from codec_broker import connack
    s = Session("bad-chunk", clean=False)
    s.start(0)
    s.take(0)
    s.feed(bytes(connack(False, 0)), 0)
    good = bytes(codec.publish("a/b", b"x", 1, pid=7))
    with pytest.raises(ProtocolError):
        s.feed(good + b"\x40\x03\x00\x01\x00", 0)   # PUBACK with remaining length 3
    s.closed()
    s.start(0)
    s.take(0)
    s.feed(bytes(connack(True, 0)), 0)
    again = bytes(codec.publish("a/b", b"x", 1, pid=7, dup=True))
    events = s.feed(again, 0)
    assert [(m.topic, m.pid, m.dup) for m in events] == [("a/b", 7, True)]


@pytest.mark.parametrize("clean, present, ok", [(True, True, False), (True, False, True),
                                                (False, True, True), (False, False, True)])
def test_session_present_to_a_clean_session_closes(clean, present, ok):
    # [MQTT-3.2.2-1]: a broker accepting CleanSession=1 MUST set Session Present 0; one
    # that says 1 is broken and the client closes the connection instead of trusting it.
    s = Session("id", clean=clean)
    s.start(0)
    s.take(0)
    if ok:
        assert s.feed(connack(present, 0), 0) == [(CONNACK, present, 0)]
        assert s.connected
    else:
        with pytest.raises(ProtocolError, match="MQTT-3.2.2-1"):
            s.feed(connack(present, 0), 0)
        assert not s.connected


def test_a_new_connection_ends_a_skip():
    # the link died in the middle of an oversized PUBLISH: the next one starts afresh
    s = online(max_packet=1024, clean=False)
    s.feed(_big(1, 9, 3000)[:500], 1)
    s.closed()
    s.start(2)
    s.take(2)
    assert s.feed(connack(True, 0), 2) == [(CONNACK, True, 0)]
    assert [m.payload for m in s.feed(codec.publish("a", b"next", 0), 2)] == [b"next"]
    assert s.oversized == 0


# --------------------------------------------------------------------------- queue bounds


def test_offline_queue_is_bounded_in_bytes_and_drops_the_oldest():
    # Issue 13: a queue bounded by count only ran a 64 KiB board out of memory. Besides
    # queue_max messages, the waiting packets hold less than queue_bytes before the newest
    # is added; the oldest is dropped for it, counted, and recorded by packet id.
    s = Session("c", queue=100)
    s.queue_bytes = 1000
    pids = [s.publish("t", b"x" * 200, 1) for _ in range(10)]   # offline: all wait
    q = [e[0] for e in s._queue]
    assert q == pids[-len(q):]                                    # the newest survive
    assert sum(len(e[1]) for e in s._queue[:-1]) < 1000 <= sum(len(e[1]) for e in s._queue)
    assert s.dropped == 10 - len(q)
    assert s.failed == [(p, DROPPED) for p in pids[:10 - len(q)]]
    big = s.publish("t", b"y" * 5000, 1)     # larger than the bound: it still goes in
    assert s._queue[-1][0] == big and s.full()
    z = s.publish("t", b"z", 1)               # the next one finds no room: all older go
    assert [e[0] for e in s._queue] == [z] and s.failed[-1] == (big, DROPPED)


def test_out_of_memory_while_queueing_is_a_full_queue():
    # publish() ran out of memory building the packet (MemoryError): shed() drops the oldest
    # waiting publish for it (publish is then tried again); with none left the new one is
    # dropped itself. Both are counted and recorded.
    s = Session("c", queue=10)
    p1 = s.publish("t", b"1", 1)
    new = s._newpid()              # what publish() did before the allocation failed
    assert s.shed() is None and s.failed == [(p1, DROPPED)] and s._queue == []
    assert s.shed() == new and s.failed == [(p1, DROPPED), (new, DROPPED)]
    assert s.dropped == 2
    # a MemoryError after the packet was queued: it is kept, not dropped or sent twice
    p3 = s.publish("t", b"3", 1)
    assert s.shed() == p3 and [e[0] for e in s._queue] == [p3] and s.dropped == 2
