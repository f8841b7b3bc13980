"""Unit tests of lib/mqtt/codec5.py and tests/codec5_broker.py: MQTT 5.0 bytes on the wire.

Expected byte strings are written by hand from the packet layouts of the
MQTT 5.0 OASIS standard (section numbers in the comments), not produced by
the code under test. The property table below is copied from §2.2.2.2, not
from codec5.
"""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mqtt import codec5  # noqa: E402
import codec5_broker  # noqa: E402  (tests/codec5_broker.py)
from mqtt.codec import (  # noqa: E402
    CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC,
    PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE, Message, frame)
from mqtt.codec5 import (  # noqa: E402
    AUTH, AUTH_DATA, AUTH_METHOD, CONTENT_TYPE, CORRELATION_DATA, MAXIMUM_PACKET_SIZE,
    MAXIMUM_QOS, MESSAGE_EXPIRY, NO_LOCAL, PAYLOAD_FORMAT, REASON_STRING, RECEIVE_MAXIMUM,
    RESPONSE_TOPIC, RETAIN_AS_PUBLISHED, RETAIN_NEVER, RETAIN_SEND_NEW, SESSION_EXPIRY,
    SUBSCRIPTION_ID, TOPIC_ALIAS, USER_PROPERTY, WILL, WILL_DELAY, decode_props,
    encode_props, reason_name)
from mqtt.errors import ProtocolError  # noqa: E402
from test_codec import BIG, h, split  # noqa: E402  (framing helpers shared with 3.1.1)

REPO = Path(__file__).resolve().parent.parent
SCEN = REPO / "tests" / "scenarios" / "codec5_roundtrip.py"


def dec(pkt):
    return codec5.decode(*split(pkt))


def dec_client(pkt):
    return codec5_broker.decode_client(*split(pkt))


def msg_tuple(m):
    assert isinstance(m, Message)
    return (m.topic, m.payload, m.qos, m.retain, m.dup, m.pid, m.props)


def s16(b):
    """A length-prefixed string or binary field (§1.5.4, §1.5.6)."""
    b = b.encode() if isinstance(b, str) else b
    return len(b).to_bytes(2, "big") + b


PROTO = h("00 04") + b"MQTT" + h("05")  # §3.1.2.1 protocol name, §3.1.2.2 level 5

# §2.2.2.2: id -> (data type, packet types where it may appear; 0 = will properties)
B, U16, U32, VBI, STR, BIN, PAIR = "byte", "u16", "u32", "vbi", "str", "bin", "pair"
ACKS = {PUBACK, PUBREC, PUBREL, PUBCOMP}
SPEC = {
    0x01: (B, {PUBLISH, WILL}),
    0x02: (U32, {PUBLISH, WILL}),
    0x03: (STR, {PUBLISH, WILL}),
    0x08: (STR, {PUBLISH, WILL}),
    0x09: (BIN, {PUBLISH, WILL}),
    0x0B: (VBI, {PUBLISH, SUBSCRIBE}),
    0x11: (U32, {CONNECT, CONNACK, DISCONNECT}),
    0x12: (STR, {CONNACK}),
    0x13: (U16, {CONNACK}),
    0x15: (STR, {CONNECT, CONNACK, AUTH}),
    0x16: (BIN, {CONNECT, CONNACK, AUTH}),
    0x17: (B, {CONNECT}),
    0x18: (U32, {WILL}),
    0x19: (B, {CONNECT}),
    0x1A: (STR, {CONNACK}),
    0x1C: (STR, {CONNACK, DISCONNECT}),
    0x1F: (STR, {CONNACK, SUBACK, UNSUBACK, DISCONNECT, AUTH} | ACKS),
    0x21: (U16, {CONNECT, CONNACK}),
    0x22: (U16, {CONNECT, CONNACK}),
    0x23: (U16, {PUBLISH}),
    0x24: (B, {CONNACK}),
    0x25: (B, {CONNACK}),
    0x26: (PAIR, {CONNECT, CONNACK, PUBLISH, WILL, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK,
                  DISCONNECT, AUTH} | ACKS),
    0x27: (U32, {CONNECT, CONNACK}),
    0x28: (B, {CONNACK}),
    0x29: (B, {CONNACK}),
    0x2A: (B, {CONNACK}),
}
NONZERO = {0x0B, 0x21, 0x23, 0x27}  # 0 is a Protocol Error for these


# --------------------------------------------------------------------------- property table

@pytest.mark.parametrize("ptype", range(16))
def test_property_table_matches_spec(ptype):
    # every id 0..127 is accepted (here with a zero-byte value list) only where §2.2.2.2 allows
    for k in range(128):
        allowed = k in SPEC and ptype in SPEC[k][1]
        kind = SPEC.get(k, (B,))[0]
        value = {B: "00", U16: "00 01", U32: "00 00 00 01", VBI: "01", STR: "00 00",
                 BIN: "00 00", PAIR: "00 00 00 00"}[kind]
        if k == RESPONSE_TOPIC:
            value = "00 01 61"  # a topic name is never empty (§3.3.2.3.5)
        body = bytes((k,)) + h(value)
        buf = bytes((len(body),)) + body
        if allowed and k != AUTH_DATA:
            d, i = decode_props(buf, 0, len(buf), ptype)
            assert i == len(buf) and k in d
        else:
            with pytest.raises(ProtocolError):
                decode_props(buf, 0, len(buf), ptype)
        if k in SPEC and k != AUTH_DATA:
            v = {B: 1, U16: 1, U32: 1, VBI: 1, STR: "x", BIN: b"x", PAIR: [("a", "b")]}[kind]
            if allowed:
                encode_props({k: v}, ptype)
            else:
                with pytest.raises(ValueError):
                    encode_props({k: v}, ptype)


# --------------------------------------------------------------------------- exact bytes

class TestProperties:
    def test_each_type_bytes(self):
        # §2.2.2: Property Length (VBI) then id + value; values per §1.5; in id order
        props = {PAYLOAD_FORMAT: 1, MESSAGE_EXPIRY: 0x01020304, CONTENT_TYPE: "j",
                 CORRELATION_DATA: b"\x00\xff", SUBSCRIPTION_ID: 128, TOPIC_ALIAS: 0x0102,
                 USER_PROPERTY: [("a", "b"), ("a", "c")]}
        want = (h("01 01") + h("02 01 02 03 04") + h("03 00 01") + b"j"
                + h("09 00 02 00 ff") + h("0b 80 01") + h("23 01 02")
                + h("26 00 01") + b"a" + h("00 01") + b"b" + h("26 00 01") + b"a"
                + h("00 01") + b"c")
        got = encode_props(props)
        assert got == bytes((len(want),)) + want
        d, i = decode_props(got, 0, len(got), PUBLISH)
        assert i == len(got)
        assert d[SUBSCRIPTION_ID] == [128]  # a list in PUBLISH (§3.3.2.3.8)
        assert d[USER_PROPERTY] == [("a", "b"), ("a", "c")]
        assert {k: v for k, v in d.items() if k != SUBSCRIPTION_ID} == {
            k: v for k, v in props.items() if k != SUBSCRIPTION_ID}

    def test_empty(self):
        assert encode_props(None) == h("00")
        assert encode_props({}) == h("00")
        assert decode_props(h("00"), 0, 1, CONNECT) == ({}, 1)

    def test_two_byte_property_length(self):
        # property length 130 -> VBI 82 01 (§1.5.5)
        props = {REASON_STRING: "r" * 127}
        got = encode_props(props, PUBACK)
        assert got[:5] == h("82 01 1f 00 7f") and len(got) == 2 + 130
        assert decode_props(got, 0, len(got), PUBACK) == (props, len(got))

    def test_offset_and_end(self):
        buf = h("aa bb 03 23 00 05 cc")
        assert decode_props(buf, 2, 6, PUBLISH) == ({TOPIC_ALIAS: 5}, 6)

    def test_subscription_id_in_subscribe_is_one_int(self):
        got = encode_props({SUBSCRIPTION_ID: 268435455}, SUBSCRIBE)
        assert got == h("05 0b ff ff ff 7f")
        assert decode_props(got, 0, len(got), SUBSCRIBE) == ({SUBSCRIPTION_ID: 268435455}, 6)
        # twice in SUBSCRIBE is a Protocol Error (§3.8.2.1.2), twice in PUBLISH is fine
        two = h("04 0b 01 0b 02")
        with pytest.raises(ProtocolError):
            decode_props(two, 0, 5, SUBSCRIBE)
        assert decode_props(two, 0, 5, PUBLISH) == ({SUBSCRIPTION_ID: [1, 2]}, 5)

    @pytest.mark.parametrize("props", [
        {PAYLOAD_FORMAT: 2}, {MESSAGE_EXPIRY: 1 << 32}, {MESSAGE_EXPIRY: -1},
        {TOPIC_ALIAS: 0}, {TOPIC_ALIAS: 65536}, {SUBSCRIPTION_ID: 0},
        {SUBSCRIPTION_ID: 268435456}, {RECEIVE_MAXIMUM: 0}, {MAXIMUM_PACKET_SIZE: 0},
        {CONTENT_TYPE: "a\x00"}, {CONTENT_TYPE: "\ud800"}, {CORRELATION_DATA: bytes(65536)},
        {USER_PROPERTY: ("a", "b")}, {USER_PROPERTY: [("a", "\x00")]},
        {RESPONSE_TOPIC: "a/#"}, {0x05: 1}, {0x80: 1},
    ])
    def test_encode_refuses(self, props):
        with pytest.raises(ValueError):
            encode_props(props)

    def test_encode_not_allowed_in_packet(self):
        with pytest.raises(ValueError):
            codec5.connect("a", props={TOPIC_ALIAS: 1})
        with pytest.raises(ValueError):
            codec5.publish("t", b"", props={SESSION_EXPIRY: 1})
        with pytest.raises(ValueError):
            codec5.connect("a", will=("t", b"", 0, False, {SESSION_EXPIRY: 1}))


# every one of these is a Protocol Error / Malformed Packet in a PUBLISH (§2.2.2.2, §1.5)
BAD_PROPS = {
    "duplicate message expiry": "0a 02 00 00 00 01 02 00 00 00 02",
    "duplicate topic alias": "06 23 00 01 23 00 02",
    "duplicate content type": "07 03 00 01 61 03 00 00",
    "session expiry not in PUBLISH": "05 11 00 00 00 01",
    "reason string not in PUBLISH": "03 1f 00 00",
    "will delay not in PUBLISH": "05 18 00 00 00 01",
    "unknown id 0x00": "02 00 00",
    "unknown id 0x05": "02 05 00",
    "unknown id 0x7f": "02 7f 00",
    "unknown id 0x80": "03 80 01 00",
    "truncated u32": "03 02 00 00",
    "truncated u16": "02 23 00",
    "truncated byte": "01 01",
    "truncated string length": "02 03 00",
    "truncated string": "04 03 00 05 61",
    "truncated pair value": "06 26 00 01 61 00 01",
    "truncated vbi": "02 0b 80",
    "property length past the end": "09 23 00 01",
    "property length varint truncated": "80",
    "property length varint 5 bytes": "80 80 80 80 01",
    "property length varint not minimal": "80 00",
    "sub id varint not minimal": "03 0b 81 00",
    "bad utf-8 content type": "04 03 00 01 ff",
    "surrogate in content type": "06 03 00 03 ed a0 80",
    "nul in user property name": "07 26 00 01 00 00 01 61",
    "bad utf-8 user property value": "07 26 00 01 61 00 01 c3",
    "subscription identifier 0": "02 0b 00",
    "topic alias 0": "03 23 00 00",
    "payload format 2": "02 01 02",
    "wildcard response topic": "06 08 00 03 61 2f 23",
    "empty body": "",
}


@pytest.mark.parametrize("buf", list(BAD_PROPS.values()), ids=list(BAD_PROPS))
def test_malformed_properties(buf):
    buf = h(buf)
    with pytest.raises(ProtocolError):
        decode_props(buf, 0, len(buf), PUBLISH)


@pytest.mark.parametrize("ptype,buf", [
    (CONNECT, "03 21 00 00"),               # receive maximum 0 (§3.1.2.11.3)
    (CONNECT, "05 27 00 00 00 00"),         # maximum packet size 0 (§3.1.2.11.4)
    (CONNECT, "02 17 02"),                  # request problem information 2 (§3.1.2.11.7)
    (CONNECT, "04 16 00 01 78"),            # auth data without method (§3.1.2.11.10)
    (CONNACK, "02 24 02"),                  # maximum QoS 2 (§3.2.2.3.4)
    (CONNACK, "02 25 05"),                  # retain available 5 (§3.2.2.3.5)
    (CONNACK, "06 13 00 01 13 00 02"),      # server keep alive twice
    (WILL, "03 23 00 01"),                  # topic alias is not a will property
])
def test_malformed_properties_other_packets(ptype, buf):
    buf = h(buf)
    with pytest.raises(ProtocolError):
        decode_props(buf, 0, len(buf), ptype)


def test_property_length_past_end_argument():
    # the bytes are there, but beyond `end`: still refused
    buf = h("03 23 00 01 ff")
    assert decode_props(buf, 0, 4, PUBLISH) == ({TOPIC_ALIAS: 1}, 4)
    with pytest.raises(ProtocolError):
        decode_props(buf, 0, 3, PUBLISH)


class TestConnect:
    def test_minimal(self):
        # §3.1: 0x10; variable header: protocol name, level 5, flags 0x02 (clean start),
        # keepalive 60, property length 0; payload: client id "a"
        want = h("10 0e") + PROTO + h("02 00 3c 00 00 01") + b"a"
        assert codec5.connect("a") == want
        assert dec_client(want) == {
            "client_id": "a", "clean_start": True, "keepalive": 60, "will": None,
            "username": None, "password": None, "props": {}}

    def test_will_properties_user_password(self):
        # flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04
        # | clean start 0x02 = 0xEE (§3.1.2.3). Properties: session expiry 3600 (§3.1.2.11.2).
        # Payload (§3.1.3): client id, will properties (will delay 5, §3.1.3.2.2), will
        # topic, will payload, user name, password.
        payload = (s16("c") + h("05 18 00 00 00 05") + s16("st/x") + s16(b"off") + s16("u")
                   + s16(b"pw"))
        vh = PROTO + h("ee 00 1e") + h("05 11 00 00 0e 10")
        want = h("10") + bytes((len(vh) + len(payload),)) + vh + payload
        assert len(vh) + len(payload) == 0x2B
        got = codec5.connect("c", keepalive=30,
                             will=("st/x", b"off", 1, True, {WILL_DELAY: 5}),
                             username="u", password=b"pw", props={SESSION_EXPIRY: 3600})
        assert got == want
        assert dec_client(want) == {
            "client_id": "c", "clean_start": True, "keepalive": 30,
            "will": ("st/x", b"off", 1, True, {WILL_DELAY: 5}),
            "username": "u", "password": b"pw", "props": {SESSION_EXPIRY: 3600}}

    def test_will_payload_format_and_expiry(self):
        # will properties in id order: payload format 1, message expiry 60, content type
        wp = h("0e 01 01 02 00 00 00 3c 03 00 04") + b"text"
        want = (h("10 27") + PROTO + h("16 00 3c 00 00 01") + b"c" + wp + s16("w/t")
                + s16(b"bye"))
        assert len(want) == 2 + 0x27
        got = codec5.connect("c", will=("w/t", "bye", 2, False,
                                        {CONTENT_TYPE: "text", MESSAGE_EXPIRY: 60,
                                         PAYLOAD_FORMAT: 1}))
        assert got == want
        assert dec_client(want)["will"] == (
            "w/t", b"bye", 2, False, {CONTENT_TYPE: "text", MESSAGE_EXPIRY: 60,
                                      PAYLOAD_FORMAT: 1})

    def test_password_without_user_is_allowed_in_v5(self):
        # §3.1.2.9: v5 allows a password with no user name; flags 0x40 | 0x00
        want = h("10 12") + PROTO + h("40 00 3c 00 00 01") + b"a" + s16(b"pw")
        assert codec5.connect("a", clean_start=False, password=b"pw") == want
        d = dec_client(want)
        assert (d["clean_start"], d["username"], d["password"]) == (False, None, b"pw")

    def test_four_tuple_will(self):
        assert codec5.connect("a", will=("t", b"x", 0, False)) == codec5.connect(
            "a", will=("t", b"x", 0, False, None))

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5.connect("a", keepalive=65536)
        with pytest.raises(ValueError):
            codec5.connect("a", will=("a/#", b"x", 0, False, None))
        with pytest.raises(ValueError):
            codec5.connect("a", will=("a", b"x", 3, False, None))
        with pytest.raises(ValueError):
            codec5.connect("\ud800")


class TestConnack:
    @pytest.mark.parametrize("sp,code,props,want", [
        (False, 0, None, "20 03 00 00 00"),
        (True, 0, None, "20 03 01 00 00"),
        (False, 0x87, None, "20 03 00 87 00"),
        # receive maximum 20, maximum QoS 1 (§3.2.2.3.3, §3.2.2.3.4)
        (False, 0, {RECEIVE_MAXIMUM: 20, MAXIMUM_QOS: 1}, "20 08 00 00 05 21 00 14 24 01"),
        # assigned client identifier "ab" (§3.2.2.3.7)
        (False, 0, {0x12: "ab"}, "20 08 00 00 05 12 00 02 61 62"),
    ])
    def test_bytes_and_decode(self, sp, code, props, want):
        assert codec5_broker.connack(sp, code, props) == h(want)
        assert dec(h(want)) == (CONNACK, sp, code, props or {})

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5_broker.connack(False, 0x01)  # not a CONNACK reason code
        with pytest.raises(ValueError):
            codec5_broker.connack(True, 0x80)   # session present only on success


class TestPublish:
    def test_topic_alias_and_message_expiry(self):
        # §3.3.2: topic, packet id, property length 8: message expiry 120 (§3.3.2.3.3),
        # topic alias 1 (§3.3.2.3.4); payload
        want = h("32 12 00 03 61 2f 62 00 0a 08 02 00 00 00 78 23 00 01 68 69")
        got = codec5.publish("a/b", b"hi", qos=1, pid=10,
                             props={TOPIC_ALIAS: 1, MESSAGE_EXPIRY: 120})
        assert got == want
        expect = ("a/b", b"hi", 1, False, False, 10, {MESSAGE_EXPIRY: 120, TOPIC_ALIAS: 1})
        assert msg_tuple(dec(want)) == expect
        assert msg_tuple(dec_client(want)) == expect

    def test_empty_topic_with_alias(self):
        # a zero-length topic name plus a topic alias (§3.3.2.3.4)
        want = h("30 08 00 00 03 23 00 07 68 69")
        assert codec5.publish("", b"hi", props={TOPIC_ALIAS: 7}) == want
        assert msg_tuple(dec(want)) == ("", b"hi", 0, False, False, 0, {TOPIC_ALIAS: 7})
        with pytest.raises(ValueError):
            codec5.publish("", b"hi")
        with pytest.raises(ProtocolError):
            dec(h("30 05 00 00 00 68 69"))  # empty topic, no alias

    @pytest.mark.parametrize("kw,want", [
        (dict(), "30 08 00 03 61 2f 62 00 68 69"),
        (dict(retain=True), "31 08 00 03 61 2f 62 00 68 69"),
        (dict(qos=2, pid=0x1234, dup=True), "3c 0a 00 03 61 2f 62 12 34 00 68 69"),
    ])
    def test_no_properties(self, kw, want):
        assert codec5.publish("a/b", b"hi", **kw) == h(want)

    def test_subscription_ids_from_server(self):
        # two subscription identifiers, 1 and 300 = VBI ac 02 (§3.3.2.3.8)
        want = h("30 0b 00 01 74 05 0b 01 0b ac 02 78 79")
        assert msg_tuple(dec(want)) == ("t", b"xy", 0, False, False, 0,
                                        {SUBSCRIPTION_ID: [1, 300]})
        assert codec5.publish("t", b"xy", props={SUBSCRIPTION_ID: [1, 300]}) == want
        # a client must not send one (§3.3.4)
        with pytest.raises(ProtocolError):
            dec_client(want)

    def test_user_properties_and_response(self):
        want = (h("30 19 00 01") + b"t" + h("14") + h("08 00 03") + b"r/x"
                + h("09 00 02 01 02") + h("26 00 01") + b"k" + h("00 03") + b"val" + b"p")
        props = {RESPONSE_TOPIC: "r/x", CORRELATION_DATA: b"\x01\x02",
                 USER_PROPERTY: [("k", "val")]}
        assert codec5.publish("t", b"p", props=props) == want
        assert dec(want).props == props

    def test_refused(self):
        for bad in ("a/+", "#"):
            with pytest.raises(ValueError):
                codec5.publish(bad, b"x")
        with pytest.raises(ValueError):
            codec5.publish("a", b"x", qos=3)
        with pytest.raises(ValueError):
            codec5.publish("a", b"x", qos=1, pid=0)
        with pytest.raises(ValueError):
            codec5.publish("a", b"x", dup=True)


class TestSubscribe:
    def test_options_bytes(self):
        # §3.8.3.1 options: QoS bits 0-1, no local bit 2, retain as published bit 3,
        # retain handling bits 4-5. 0x2d = RH 2 | RAP | NL | QoS 1; 0x12 = RH 1 | QoS 2.
        # Properties: subscription identifier 200 = VBI c8 01 (§3.8.2.1.2)
        want = (h("82 1d 00 01 03 0b c8 01") + s16("a/b") + h("2d") + s16("$share/g/c")
                + h("12") + s16("d") + h("00"))
        filters = [("a/b", 1 | NO_LOCAL | RETAIN_AS_PUBLISHED | RETAIN_NEVER),
                   ("$share/g/c", 2 | RETAIN_SEND_NEW), ("d", 0)]
        assert [o for _, o in filters] == [0x2D, 0x12, 0x00]
        got = codec5.subscribe(1, filters, {SUBSCRIPTION_ID: 200})
        assert got == want
        assert dec_client(want) == (SUBSCRIBE, 1, filters, {SUBSCRIPTION_ID: 200})

    def test_no_properties(self):
        want = h("82 09 00 05 00") + s16("a/b") + h("01")
        assert codec5.subscribe(5, [("a/b", 1)]) == want
        assert dec_client(want) == (SUBSCRIBE, 5, [("a/b", 1)], {})

    @pytest.mark.parametrize("f,o", [
        ("a", 3),             # QoS 3
        ("a", 0x30),          # retain handling 3
        ("a", 0x40),          # reserved bit 6
        ("a", 0x80),          # reserved bit 7
        ("a", 256), ("a", -1),
        ("$share/g/a", NO_LOCAL),   # no local on a shared subscription (§3.8.3.1)
        ("$share/g", 0), ("$share//a", 0), ("$share/g+/a", 0),  # bad share names (§4.8.2)
        ("a/#/b", 0),
    ])
    def test_refused(self, f, o):
        with pytest.raises(ValueError):
            codec5.subscribe(1, [(f, o)])

    def test_empty_refused(self):
        with pytest.raises(ValueError):
            codec5.subscribe(1, [])

    @pytest.mark.parametrize("opt", ["03", "30", "40", "80"])
    def test_broker_refuses_bad_options(self, opt):
        with pytest.raises(ProtocolError):
            dec_client(h("82 07 00 01 00 00 01 61") + h(opt))

    def test_broker_refuses_no_local_share(self):
        with pytest.raises(ProtocolError):
            dec_client(h("82 12 00 01 00") + s16("$share/g/a/b") + h("04"))


class TestSuback:
    def test_bytes_and_decode(self):
        # §3.9: pid, property length, one reason code per filter (§3.9.3)
        pkt = codec5_broker.suback(1, [0, 1, 2, 0x9E])
        assert pkt == h("90 07 00 01 00 00 01 02 9e")
        assert dec(pkt) == (SUBACK, 1, h("00 01 02 9e"), {})
        pkt = codec5_broker.suback(2, [0x80], {REASON_STRING: "no"})
        assert pkt == h("90 09 00 02 05 1f 00 02 6e 6f 80")
        assert dec(pkt) == (SUBACK, 2, h("80"), {REASON_STRING: "no"})

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5_broker.suback(1, [0x11])
        with pytest.raises(ValueError):
            codec5_broker.suback(1, [])


class TestUnsubscribe:
    def test_bytes_and_decode(self):
        # §3.10: 0xA2; pid; property length; filters
        want = h("a2 0d 00 02 00") + s16("a/b") + s16("c/#")
        assert codec5.unsubscribe(2, ["a/b", "c/#"]) == want
        assert dec_client(want) == (UNSUBSCRIBE, 2, ["a/b", "c/#"], {})
        props = {USER_PROPERTY: [("a", "b")]}
        want = h("a2 0d 00 03 07 26 00 01 61 00 01 62") + s16("x")
        assert codec5.unsubscribe(3, ["x"], props) == want
        assert dec_client(want) == (UNSUBSCRIBE, 3, ["x"], props)

    def test_unsuback(self):
        # §3.11: pid, property length, reason codes (§3.11.3)
        pkt = codec5_broker.unsuback(2, [0, 0x11])
        assert pkt == h("b0 05 00 02 00 00 11")
        assert dec(pkt) == (UNSUBACK, 2, h("00 11"), {})

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5.unsubscribe(2, [])
        with pytest.raises(ValueError):
            codec5.unsubscribe(2, ["a/#/b"])
        with pytest.raises(ValueError):
            codec5.unsubscribe(2, ["a"], {SUBSCRIPTION_ID: 1})


class TestAcks:
    @pytest.mark.parametrize("kind,b0", [
        (PUBACK, 0x40), (PUBREC, 0x50), (PUBREL, 0x62), (PUBCOMP, 0x70)])
    def test_short_form(self, kind, b0):
        # §3.4.2.1: reason 0 and no properties -> remaining length 2
        pkt = codec5.ack(kind, 0x0A0B)
        assert pkt == bytes((b0, 2, 0x0A, 0x0B))
        assert dec(pkt) == (kind, 0x0A0B, 0, {})
        assert dec_client(pkt) == (kind, 0x0A0B, 0, {})
        # remaining length 3: a reason code, no property length (§3.4.2.2.1)
        assert dec(bytes((b0, 3, 0, 1, 0))) == (kind, 1, 0, {})
        # remaining length 4: reason code and an empty property length
        assert dec(bytes((b0, 4, 0, 1, 0, 0))) == (kind, 1, 0, {})

    def test_reason_without_properties(self):
        assert codec5.ack(PUBACK, 10, 0x10) == h("40 03 00 0a 10")
        assert dec(h("40 03 00 0a 10")) == (PUBACK, 10, 0x10, {})
        assert codec5.ack(PUBREC, 10, 0x97) == h("50 03 00 0a 97")
        assert codec5.ack(PUBREL, 10, 0x92) == h("62 03 00 0a 92")
        assert dec(h("70 03 00 0a 92")) == (PUBCOMP, 10, 0x92, {})

    def test_reason_string(self):
        # pid, reason 0, property length 5, reason string "ok" (§3.7.2.2.2)
        want = h("70 09 00 0a 00 05 1f 00 02 6f 6b")
        assert codec5.ack(PUBCOMP, 10, 0, {REASON_STRING: "ok"}) == want
        assert dec(want) == (PUBCOMP, 10, 0, {REASON_STRING: "ok"})

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5.ack(PUBREL, 1, 0x10)        # not a PUBREL reason (§3.6.2.1)
        with pytest.raises(ValueError):
            codec5.ack(PUBACK, 1, 0x92)        # not a PUBACK reason (§3.4.2.1)
        with pytest.raises(ValueError):
            codec5.ack(SUBACK, 1)
        with pytest.raises(ValueError):
            codec5.ack(PUBACK, 0)
        with pytest.raises(ValueError):
            codec5.ack(PUBACK, 1, 0, {SESSION_EXPIRY: 1})


class TestDisconnect:
    def test_short_form(self):
        # §3.14.2.1: reason 0 without properties -> remaining length 0
        assert codec5.disconnect() == h("e0 00")
        assert dec(h("e0 00")) == (DISCONNECT, 0, {})
        assert dec_client(h("e0 00")) == (DISCONNECT, 0, {})

    def test_with_will(self):
        # 0x04 disconnect with will message: client only; remaining length 1 (§3.14.2.2.1)
        assert codec5.disconnect(4) == h("e0 01 04")
        assert dec_client(h("e0 01 04")) == (DISCONNECT, 4, {})
        with pytest.raises(ProtocolError):
            dec(h("e0 01 04"))

    def test_reason_and_reason_string(self):
        # server shutting down 0x8B, property length 6, reason string "bye" (§3.14.2.2.3)
        want = h("e0 08 8b 06 1f 00 03 62 79 65")
        assert codec5_broker.disconnect(0x8B, {REASON_STRING: "bye"}) == want
        assert dec(want) == (DISCONNECT, 0x8B, {REASON_STRING: "bye"})
        # session expiry and server reference (§3.14.2.2.2, §3.14.2.2.5)
        want = h("e0 0c 9c 0a 11 00 00 00 00 1c 00 02 68 32")
        assert codec5_broker.disconnect(0x9C, {SESSION_EXPIRY: 0, 0x1C: "h2"}) == want
        assert dec(want) == (DISCONNECT, 0x9C, {SESSION_EXPIRY: 0, 0x1C: "h2"})

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5.disconnect(0x8B)   # a server's reason code
        with pytest.raises(ValueError):
            codec5_broker.disconnect(4)
        with pytest.raises(ValueError):
            codec5.disconnect(0, {TOPIC_ALIAS: 1})


class TestAuth:
    def test_bytes_and_decode(self):
        # §3.15: remaining length 0 for success without properties (§3.15.2.1)
        assert codec5.auth() == h("f0 00")
        assert dec(h("f0 00")) == (AUTH, 0, {})
        want = h("f0 0a 18 08 15 00 01 78 16 00 01 01")
        props = {AUTH_METHOD: "x", AUTH_DATA: b"\x01"}
        assert codec5.auth(0x18, props) == want
        assert dec(want) == (AUTH, 0x18, props)
        assert dec_client(want) == (AUTH, 0x18, props)
        # a reason code needs a property length in AUTH
        assert codec5.auth(0x19) == h("f0 02 19 00")
        with pytest.raises(ProtocolError):
            dec(h("f0 01 19"))

    def test_refused(self):
        with pytest.raises(ValueError):
            codec5.auth(0x80)


class TestPing:
    def test_pingresp_pingreq(self):
        assert dec(h("d0 00")) == (PINGRESP,)
        assert codec5_broker.PINGRESP_PACKET == h("d0 00")
        assert dec_client(h("c0 00")) == (PINGREQ,)


def test_reason_names():
    assert reason_name(0) == "success"
    assert reason_name(0x87) == "not authorized"
    assert reason_name(0x03) == "reason 0x03"
    assert reason_name(0xA2) == "no wildcards"   # the last of the table
    assert reason_name(0x97) == "quota exceeded"
    # every reason code any packet may carry has its own short name (§2.4)
    names = {c: reason_name(c) for codes in codec5._RC.values() for c in codes}
    assert len(set(names.values())) == len(names), names
    assert all(n and len(n) <= 24 and not n.startswith("reason 0x") for n in names.values())


# --------------------------------------------------------------------------- malformed input

MALFORMED_FROM_SERVER = {
    "publish qos 3": "36 0a 00 03 61 2f 62 00 01 00 68 69",
    "publish dup on qos 0": "38 08 00 03 61 2f 62 00 68 69",
    "publish no property length": "30 05 00 03 61 2f 62",
    "publish qos 1 no property length": "32 07 00 03 61 2f 62 00 01",
    "publish pid 0": "32 08 00 03 61 2f 62 00 00 00",
    "publish wildcard": "30 06 00 03 61 2f 23 00",
    "publish topic beyond": "30 04 00 09 61 00",
    "publish session expiry": "30 09 00 01 74 05 11 00 00 00 01",
    "connack short": "20 02 00 00",
    "connack reserved ack flags": "20 03 02 00 00",
    "connack session present on refusal": "20 03 01 80 00",
    "connack bad reason 0x01": "20 03 00 01 00",
    "connack bad reason 0x8b": "20 03 00 8b 00",
    "connack trailing": "20 04 00 00 00 00",
    "connack topic alias": "20 06 00 00 03 23 00 01",
    "connack flags": "21 03 00 00 00",
    "puback flags": "41 02 00 01",
    "pubrel flags": "60 02 00 01",
    "puback short": "40 01 00",
    "puback pid 0": "40 02 00 00",
    "puback reason 0x92": "40 03 00 01 92",
    "pubrel reason 0x10": "62 03 00 01 10",
    "puback props past end": "40 05 00 01 00 05 1f",
    "puback trailing": "40 05 00 01 00 00 00",
    "suback no codes": "90 03 00 01 00",
    "suback reason 0x11": "90 04 00 01 00 11",
    "suback no props": "90 02 00 01",
    "unsuback reason 0x01": "b0 04 00 01 00 01",
    "unsuback flags": "b2 04 00 01 00 00",
    "pingresp body": "d0 01 00",
    "disconnect 0x04 from server": "e0 01 04",
    "disconnect bad reason": "e0 01 01",
    "disconnect flags": "e1 00",
    "disconnect trailing": "e0 03 00 00 00",
    "auth bad reason": "f0 02 01 00",
    "auth flags": "f1 00",
    "type 0": "00 00",
    "connect": "10 00",
    "subscribe": "82 07 00 01 00 00 01 61 00",
    "pingreq": "c0 00",
}


@pytest.mark.parametrize("pkt", list(MALFORMED_FROM_SERVER.values()),
                         ids=list(MALFORMED_FROM_SERVER))
def test_malformed_server_packet(pkt):
    with pytest.raises(ProtocolError):
        codec5.decode(*split(h(pkt)))


CONNECT_OK = PROTO + h("02 00 3c 00 00 01") + b"a"

MALFORMED_FROM_CLIENT = {
    "connack": "20 03 00 00 00",
    "suback": "90 04 00 01 00 00",
    "unsuback": "b0 04 00 01 00 00",
    "pingresp": "d0 00",
    "connect level 4": (PROTO[:-1] + h("04") + CONNECT_OK[7:]).hex(),
    "connect reserved flag": (PROTO + h("03") + CONNECT_OK[8:]).hex(),
    "connect will qos 3": (PROTO + h("1e 00 3c 00 00 01") + b"a" + h("00") + s16("w")
                           + s16(b"")).hex(),
    "connect will retain without will": (PROTO + h("22") + CONNECT_OK[8:]).hex(),
    "connect no property length": (PROTO + h("02 00 3c")).hex(),
    "connect topic alias": (PROTO + h("02 00 3c 03 23 00 01 00 01") + b"a").hex(),
    "connect will no properties": (PROTO + h("06 00 3c 00 00 01") + b"a").hex(),
    "connect will wildcard topic": (PROTO + h("06 00 3c 00 00 01") + b"a" + h("00")
                                    + s16("a/#") + s16(b"")).hex(),
    "connect will session expiry": (PROTO + h("06 00 3c 00 00 01") + b"a"
                                    + h("05 11 00 00 00 01") + s16("w") + s16(b"")).hex(),
    "connect trailing": (CONNECT_OK + b"z").hex(),
    "connect flags": None,
    "subscribe flags 0": "80 07 00 01 00 00 01 61 00",
    "subscribe no options": "82 06 00 01 00 00 01 61",
    "subscribe no filter": "82 03 00 01 00",
    "subscribe pid 0": "82 07 00 00 00 00 01 61 00",
    "subscribe reason string": "82 0b 00 01 04 1f 00 01 61 00 01 61 00",
    "subscribe sub id twice": "82 0b 00 01 04 0b 01 0b 02 00 01 61 00",
    "subscribe sub id 0": "82 09 00 01 02 0b 00 00 01 61 00",
    "unsubscribe sub id": "a2 08 00 01 02 0b 01 00 01 61",
    "unsubscribe no filter": "a2 03 00 01 00",
    "unsubscribe bad filter": "a2 07 00 01 00 00 02 61 2b",
    "disconnect server reason": "e0 01 8b",
    "disconnect flags": "e2 00",
    "pingreq body": "c0 01 00",
    "publish with sub id": "30 07 00 01 74 02 0b 01 78",
}


def _client_pkt(name, v):
    if v is None:  # CONNECT with flags 0001
        return b"\x11" + bytes((len(CONNECT_OK),)) + CONNECT_OK
    b = h(v)
    if name.startswith("connect"):
        return b"\x10" + bytes((len(b),)) + b
    return b


@pytest.mark.parametrize("name", list(MALFORMED_FROM_CLIENT))
def test_malformed_client_packet(name):
    pkt = _client_pkt(name, MALFORMED_FROM_CLIENT[name])
    with pytest.raises(ProtocolError):
        codec5_broker.decode_client(*split(pkt))


# --------------------------------------------------------------------------- hypothesis

TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
TOPIC_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00+#")
topics = st.text(TOPIC_CHARS, min_size=1, max_size=30)
pids = st.integers(1, 65535)
qoss = st.integers(0, 2)

VALUES = {
    B: st.integers(0, 1),
    U16: st.integers(0, 65535),
    U32: st.integers(0, 0xFFFFFFFF),
    VBI: st.integers(1, 268435455),
    STR: st.text(TEXT, max_size=20),
    BIN: st.binary(max_size=20),
    PAIR: st.lists(st.tuples(st.text(TEXT, max_size=8), st.text(TEXT, max_size=8)),
                   min_size=1, max_size=3),
}


def _value(k):
    kind = SPEC[k][0]
    v = VALUES[kind]
    if k in NONZERO:
        v = v.filter(bool)
    if k == RESPONSE_TOPIC:
        v = topics
    return v


@st.composite
def props_for(draw, ptype):
    """A random valid property dict for packet type ptype (decoded form)."""
    ids = [k for k in SPEC if ptype in SPEC[k][1] and k != AUTH_DATA]
    chosen = draw(st.lists(st.sampled_from(ids), unique=True, max_size=6)) if ids else []
    d = {k: draw(_value(k)) for k in chosen}
    if AUTH_METHOD in d and ptype in SPEC[AUTH_DATA][1] and draw(st.booleans()):
        d[AUTH_DATA] = draw(VALUES[BIN])
    if ptype == PUBLISH and SUBSCRIPTION_ID in d:
        d[SUBSCRIPTION_ID] = draw(st.lists(_value(SUBSCRIPTION_ID), min_size=1, max_size=3))
    return d


PTYPES = [WILL, CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE,
          SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH]


@st.composite
def typed_props(draw):
    ptype = draw(st.sampled_from(PTYPES))
    return ptype, draw(props_for(ptype))


@given(typed_props(), st.binary(max_size=4), st.binary(max_size=4))
def test_property_round_trip(tp, before, after):
    ptype, props = tp
    buf = encode_props(props, ptype)
    data = before + buf + after
    assert decode_props(data, len(before), len(before) + len(buf), ptype) == (
        props, len(before) + len(buf))


@settings(max_examples=300)
@given(st.sampled_from(sorted(SPEC)), st.data())
def test_every_property_alone_round_trips(k, data):
    ptype = data.draw(st.sampled_from(sorted(SPEC[k][1])))
    v = data.draw(_value(k))
    props = {k: v}
    if k == AUTH_DATA:
        props[AUTH_METHOD] = "m"
    want = dict(props)
    if k == SUBSCRIPTION_ID and ptype == PUBLISH:
        want[k] = [v]
    buf = encode_props(props, ptype)
    assert decode_props(buf, 0, len(buf), ptype) == (want, len(buf))


@st.composite
def publishes(draw):
    qos = draw(qoss)
    pid = draw(pids) if qos else 0
    dup = draw(st.booleans()) if qos else False
    props = draw(props_for(PUBLISH))
    topic = draw(topics | st.just("")) if TOPIC_ALIAS in props else draw(topics)
    payload = draw(st.binary(max_size=200))
    retain = draw(st.booleans())
    pkt = codec5.publish(topic, payload, qos, retain, pid, dup, props)
    return bytes(pkt), (topic, payload, qos, retain, dup, pid, props)


@given(publishes())
def test_publish_round_trip(p):
    pkt, want = p
    assert msg_tuple(dec(pkt)) == want
    if SUBSCRIPTION_ID not in want[-1]:
        assert msg_tuple(dec_client(pkt)) == want


LEVEL_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00+#/")
levels = st.one_of(st.just("+"), st.text(LEVEL_CHARS, max_size=6))


@st.composite
def _filters(draw):
    lv = draw(st.lists(levels, min_size=1, max_size=4))
    if draw(st.booleans()):
        lv.append("#")
    f = "/".join(lv)
    if f and draw(st.integers(0, 4)) == 0:
        f = "$share/" + draw(st.text(LEVEL_CHARS, min_size=1, max_size=5)) + "/" + f
    return f


filters = _filters().filter(bool)


@st.composite
def sub_items(draw):
    f = draw(filters)
    o = draw(qoss) | draw(st.sampled_from([0, 0x10, 0x20])) | (
        RETAIN_AS_PUBLISHED if draw(st.booleans()) else 0)
    if not f.startswith("$share/") and draw(st.booleans()):
        o |= NO_LOCAL
    return f, o


@given(pids, st.lists(sub_items(), min_size=1, max_size=5), props_for(SUBSCRIBE))
def test_subscribe_round_trip(pid, fl, props):
    assert dec_client(codec5.subscribe(pid, fl, props)) == (SUBSCRIBE, pid, fl, props)


@given(pids, st.lists(filters, min_size=1, max_size=5), props_for(UNSUBSCRIBE))
def test_unsubscribe_round_trip(pid, fl, props):
    assert dec_client(codec5.unsubscribe(pid, fl, props)) == (UNSUBSCRIBE, pid, fl, props)


@st.composite
def connects(draw):
    will = None
    if draw(st.booleans()):
        will = (draw(topics), draw(st.binary(max_size=40)), draw(qoss), draw(st.booleans()),
                draw(props_for(WILL)))
    username = draw(st.none() | st.text(TEXT, max_size=12))
    return dict(client_id=draw(st.text(TEXT, max_size=23)), clean_start=draw(st.booleans()),
                keepalive=draw(st.integers(0, 65535)), will=will, username=username,
                password=draw(st.none() | st.binary(max_size=12)),
                props=draw(props_for(CONNECT)))


@given(connects())
def test_connect_round_trip(kw):
    assert dec_client(codec5.connect(**kw)) == kw


@given(st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP]), pids, st.data())
def test_ack_round_trip(kind, pid, data):
    reason = data.draw(st.sampled_from(list(codec5._RC[kind])))
    props = data.draw(props_for(kind))
    pkt = codec5.ack(kind, pid, reason, props)
    assert dec(pkt) == (kind, pid, reason, props)
    assert dec_client(pkt) == (kind, pid, reason, props)


SERVER_REASONS = {
    CONNACK: [0, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
              0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F],                    # §3.2.2.2
    SUBACK: [0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2],       # §3.9.3
    UNSUBACK: [0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],                             # §3.11.3
    DISCONNECT: [0, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
                 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
                 0xA0, 0xA1, 0xA2],                                                # §3.14.2.1
    AUTH: [0, 0x18, 0x19],                                                         # §3.15.2.1
}


@pytest.mark.parametrize("t", sorted(SERVER_REASONS))
def test_server_reason_code_sets(t):
    # exactly the codes of the spec's table decode; every other byte is refused
    for c in range(256):
        if t == CONNACK:
            pkt = bytes((0x20, 3, 0, c, 0))
        elif t in (SUBACK, UNSUBACK):
            pkt = bytes((t << 4, 4, 0, 1, 0, c))
        else:
            pkt = bytes((t << 4, 2, c, 0))
        if c in SERVER_REASONS[t]:
            dec(pkt)
        else:
            with pytest.raises(ProtocolError):
                dec(pkt)


@st.composite
def server_packets(draw):
    kind = draw(st.sampled_from(["publish", "ack", "suback", "unsuback", "connack",
                                 "pingresp", "disconnect", "auth"]))
    if kind == "publish":
        pkt, want = draw(publishes())
        return pkt, ("PUBLISH",) + want
    if kind == "ack":
        t = draw(st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP]))
        pid = draw(pids)
        reason = draw(st.sampled_from(list(codec5._RC[t])))
        props = draw(props_for(t))
        return bytes(codec5.ack(t, pid, reason, props)), (t, pid, reason, props)
    if kind in ("suback", "unsuback"):
        t = SUBACK if kind == "suback" else UNSUBACK
        pid = draw(pids)
        codes = draw(st.lists(st.sampled_from(SERVER_REASONS[t]), min_size=1, max_size=6))
        props = draw(props_for(t))
        enc = codec5_broker.suback if t == SUBACK else codec5_broker.unsuback
        return bytes(enc(pid, codes, props)), (t, pid, bytes(codes), props)
    if kind == "connack":
        code = draw(st.sampled_from(SERVER_REASONS[CONNACK]))
        sp = draw(st.booleans()) if code == 0 else False
        props = draw(props_for(CONNACK))
        return bytes(codec5_broker.connack(sp, code, props)), (CONNACK, sp, code, props)
    if kind == "disconnect":
        code = draw(st.sampled_from(SERVER_REASONS[DISCONNECT]))
        props = draw(props_for(DISCONNECT))
        return bytes(codec5_broker.disconnect(code, props)), (DISCONNECT, code, props)
    if kind == "auth":
        code = draw(st.sampled_from(SERVER_REASONS[AUTH]))
        props = draw(props_for(AUTH))
        return bytes(codec5.auth(code, props)), (AUTH, code, props)
    return codec5_broker.PINGRESP_PACKET, (PINGRESP,)


def norm(p):
    if isinstance(p, Message):
        return ("PUBLISH",) + msg_tuple(p)
    return p


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(server_packets(), min_size=1, max_size=4))
def test_server_stream_round_trip(pkts):
    stream = b"".join(p for p, _ in pkts)
    got, i = [], 0
    while i < len(stream):
        f = frame(stream, BIG, i)
        got.append(norm(codec5.decode(stream[i], memoryview(stream)[f[0]:f[1]])))
        i = f[1]
    assert got == [w for _, w in pkts]


@given(st.integers(0, 255), st.binary(max_size=80))
def test_random_packet_only_protocol_error(b0, body):
    for decoder in (codec5.decode, codec5_broker.decode_client):
        try:
            out = decoder(b0, body)
        except ProtocolError:
            continue
        assert isinstance(out, (Message, tuple, dict))


@given(st.sampled_from(PTYPES), st.binary(max_size=60), st.integers(0, 8))
def test_random_properties_only_protocol_error(ptype, data, cut):
    end = max(0, len(data) - cut)
    try:
        d, i = decode_props(data, 0, end, ptype)
    except ProtocolError:
        return
    assert isinstance(d, dict) and i <= end


@st.composite
def mutated(draw):
    pkt, _ = draw(server_packets())
    b = bytearray(pkt)
    for _ in range(draw(st.integers(1, 3))):
        b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    return bytes(b)


@given(mutated())
def test_mutated_packets_only_protocol_error(pkt):
    # a valid packet with a few bytes changed: decodes or is refused, nothing else
    try:
        f = frame(pkt, BIG)
    except ProtocolError:
        return
    if f is None or f[1] > len(pkt):
        return
    for decoder in (codec5.decode, codec5_broker.decode_client):
        try:
            decoder(pkt[0], pkt[f[0]:f[1]])
        except ProtocolError:
            pass


# --------------------------------------------------------------------------- both runtimes

def test_round_trips_on_both_runtimes(run_py, runtime):
    r = run_py(runtime, SCEN, timeout=60, pythonpath=(REPO / "tests",))  # codec5_broker
    assert r.returncode == 0 and r.lines[-1:] == ["OK"], r
