"""Unit tests of lib/mqtt/codec.py and tests/codec_broker.py: bytes on the wire.

Expected byte strings are written by hand from the packet layouts of the
MQTT 3.1.1 OASIS standard (section numbers in the comments), not produced
by the code under test.
"""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mqtt import codec  # noqa: E402
import codec_broker  # noqa: E402  (tests/codec_broker.py)
from mqtt.codec import (  # noqa: E402
    CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC,
    PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE, Message, check_filter, check_topic,
    frame, match, varint)
from mqtt.errors import MQTTError, ProtocolError  # noqa: E402

BIG = 1 << 29  # a frame limit that never gets in the way (max packet is 2**28 + 4)


def split(pkt, limit=BIG):
    """(first byte, body) of one complete packet, via frame()."""
    pkt = bytes(pkt)
    f = frame(pkt, limit)
    assert f is not None and f[1] == len(pkt), "not exactly one packet"
    return pkt[0], pkt[f[0]:f[1]]


def dec(pkt):
    return codec.decode(*split(pkt))


def dec_client(pkt):
    return codec_broker.decode_client(*split(pkt))


def msg_tuple(m):
    assert isinstance(m, Message)
    return (m.topic, m.payload, m.qos, m.retain, m.dup, m.pid)


def h(s):
    """Hex with spaces -> bytes; plain text in quotes is allowed via concatenation."""
    return bytes.fromhex(s)


# --------------------------------------------------------------------------- exact bytes

PROTO = h("00 04") + b"MQTT" + h("04")  # §3.1.2.1 protocol name, §3.1.2.2 level 4


class TestConnect:
    def test_minimal(self):
        # §3.1: fixed header 0x10, remaining 13; flags 0x02 (clean); keepalive 60; id "a"
        want = h("10 0d") + PROTO + h("02 00 3c 00 01") + b"a"
        assert codec.connect("a") == want
        d = dec_client(want)
        assert d == {"client_id": "a", "clean": True, "keepalive": 60, "will": None,
                     "username": None, "password": None}

    def test_not_clean_and_keepalive_bytes(self):
        # §3.1.2.4 clean flag off -> flags 0x00; §3.1.2.10 keepalive MSB first
        want = h("10 10") + PROTO + h("00 12 34 00 04") + b"dev1"
        assert codec.connect("dev1", clean=False, keepalive=0x1234) == want
        d = dec_client(want)
        assert (d["clean"], d["keepalive"], d["client_id"]) == (False, 0x1234, "dev1")

    def test_keepalive_zero_and_max(self):
        assert codec.connect("a", keepalive=0)[10:12] == h("00 00")
        assert codec.connect("a", keepalive=65535)[10:12] == h("ff ff")
        with pytest.raises(ValueError):
            codec.connect("a", keepalive=65536)
        with pytest.raises(ValueError):
            codec.connect("a", keepalive=-1)

    def test_will_user_password(self):
        # flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04
        # | clean 0x02 = 0xEE (§3.1.2.3). Payload order: id, will topic, will message,
        # user name, password (§3.1.3).
        payload = (h("00 01") + b"c" + h("00 04") + b"st/x" + h("00 03") + b"off"
                   + h("00 01") + b"u" + h("00 02") + b"pw")
        want = h("10 1f") + PROTO + h("ee 00 1e") + payload
        got = codec.connect("c", keepalive=30, will=("st/x", b"off", 1, True),
                            username="u", password=b"pw")
        assert got == want
        d = dec_client(want)
        assert d == {"client_id": "c", "clean": True, "keepalive": 30,
                     "will": ("st/x", b"off", 1, True), "username": "u", "password": b"pw"}

    def test_will_qos2_no_retain_user_only(self):
        # will QoS 2 -> bits 4-3 = 10 -> 0x10; user only 0x80; clean 0x02 -> 0x96
        want = (h("10 1b") + PROTO + h("96 00 3c") + h("00 01") + b"c" + h("00 03") + b"w/t"
                + h("00 03") + b"bye" + h("00 02") + b"me")
        assert codec.connect("c", will=("w/t", "bye", 2, False), username="me") == want
        d = dec_client(want)
        assert d["will"] == ("w/t", b"bye", 2, False)
        assert (d["username"], d["password"]) == ("me", None)

    def test_empty_client_id_needs_clean(self):
        want = h("10 0c") + PROTO + h("02 00 3c 00 00")
        assert codec.connect("") == want
        with pytest.raises(ValueError, match="clean"):
            codec.connect("", clean=False)

    def test_password_needs_user(self):
        with pytest.raises(ValueError, match="user"):
            codec.connect("a", password=b"pw")

    def test_will_topic_and_qos_checked(self):
        with pytest.raises(ValueError):
            codec.connect("a", will=("a/#", b"x", 0, False))
        with pytest.raises(ValueError):
            codec.connect("a", will=("a", b"x", 3, False))


class TestConnack:
    @pytest.mark.parametrize("sp,code,want", [
        (False, 0, "20 02 00 00"),
        (True, 0, "20 02 01 00"),
        (False, 5, "20 02 00 05"),
        (False, 1, "20 02 00 01"),
    ])
    def test_bytes_and_decode(self, sp, code, want):
        assert codec_broker.connack(sp, code) == h(want)
        assert dec(h(want)) == (CONNACK, sp, code)


class TestPublish:
    # §3.3: byte 1 = 0x30 | DUP 0x08 | QoS << 1 | RETAIN 0x01; topic; pid if QoS > 0; payload
    @pytest.mark.parametrize("kw,want", [
        (dict(), "30 07 00 03 61 2f 62 68 69"),
        (dict(retain=True), "31 07 00 03 61 2f 62 68 69"),
        (dict(qos=1, pid=10), "32 09 00 03 61 2f 62 00 0a 68 69"),
        (dict(qos=1, pid=10, dup=True), "3a 09 00 03 61 2f 62 00 0a 68 69"),
        (dict(qos=2, pid=0x1234), "34 09 00 03 61 2f 62 12 34 68 69"),
        (dict(qos=2, pid=0x1234, retain=True, dup=True), "3d 09 00 03 61 2f 62 12 34 68 69"),
        (dict(qos=1, pid=65535, retain=True), "33 09 00 03 61 2f 62 ff ff 68 69"),
    ])
    def test_bytes_and_decode(self, kw, want):
        pkt = codec.publish("a/b", b"hi", **kw)
        assert pkt == h(want)
        qos = kw.get("qos", 0)
        expect = ("a/b", b"hi", qos, kw.get("retain", False), kw.get("dup", False),
                  kw.get("pid", 0))
        assert msg_tuple(dec(pkt)) == expect
        # a PUBLISH decodes the same on the broker's side
        assert msg_tuple(dec_client(pkt)) == expect

    def test_str_payload_is_utf8(self):
        assert codec.publish("t", "é") == h("30 05 00 01 74 c3 a9")

    def test_empty_payload(self):
        pkt = codec.publish("a/b", b"")
        assert pkt == h("30 05 00 03 61 2f 62")
        assert dec(pkt).payload == b""

    def test_two_byte_remaining_length(self):
        payload = bytes(range(200))
        pkt = codec.publish("t", payload)
        # remaining = 2 + 1 + 200 = 203 = 0xCB -> varint cb 01 (§2.2.3)
        assert pkt[:5] == h("30 cb 01 00 01") and pkt[5:6] == b"t"
        assert bytes(pkt[6:]) == payload
        assert dec(pkt).payload == payload

    def test_topic_checked(self):
        for bad in ("", "a/+", "a/#", "#", "+"):
            with pytest.raises(ValueError):
                codec.publish(bad, b"x")
        with pytest.raises(ValueError):
            codec.publish("a", b"x", qos=3)

    def test_bom_is_kept(self):
        # §1.5.3-3: EF BB BF is U+FEFF and must not be stripped by a receiver
        topic = "\ufeffa"
        pkt = codec.publish(topic, b"")
        assert pkt == h("30 06 00 04 ef bb bf 61")
        assert dec(pkt).topic == topic


class TestAcks:
    # §3.4-§3.7, §3.11: two-byte packet id, only PUBREL has flags 0b0010
    @pytest.mark.parametrize("kind,b0", [
        (PUBACK, 0x40), (PUBREC, 0x50), (PUBREL, 0x62), (PUBCOMP, 0x70), (UNSUBACK, 0xB0)])
    def test_bytes_and_decode(self, kind, b0):
        pkt = codec.ack(kind, 0x0A0B)
        assert pkt == bytes((b0, 0x02, 0x0A, 0x0B))
        assert dec(pkt) == (kind, 0x0A0B)
        assert codec.ack(kind, 1) == bytes((b0, 2, 0, 1))
        assert dec(codec.ack(kind, 65535)) == (kind, 65535)

    @pytest.mark.parametrize("kind", [PUBACK, PUBREC, PUBREL, PUBCOMP])
    def test_client_side_decoder_takes_publish_acks(self, kind):
        assert dec_client(codec.ack(kind, 7)) == (kind, 7)

    def test_pubrel_flags(self):
        assert codec.ack(PUBREL, 2) == h("62 02 00 02")


class TestSubscribe:
    def test_bytes_and_decode(self):
        # §3.8: 0x82; pid; (filter, requested QoS) pairs
        want = (h("82 12 00 01") + h("00 03") + b"a/b" + h("00") + h("00 03") + b"c/#"
                + h("01") + h("00 01") + b"+" + h("02"))
        filters = [("a/b", 0), ("c/#", 1), ("+", 2)]
        assert codec.subscribe(1, filters) == want
        assert dec_client(want) == (SUBSCRIBE, 1, filters)

    def test_refused(self):
        with pytest.raises(ValueError):
            codec.subscribe(1, [])
        with pytest.raises(ValueError):
            codec.subscribe(1, [("a", 3)])
        with pytest.raises(ValueError):
            codec.subscribe(1, [("a+", 0)])


class TestSuback:
    def test_bytes_and_decode(self):
        # §3.9: pid then one return code per filter (0, 1, 2 or 0x80)
        pkt = codec_broker.suback(1, [0, 1, 2, 0x80])
        assert pkt == h("90 06 00 01 00 01 02 80")
        assert dec(pkt) == (SUBACK, 1, b"\x00\x01\x02\x80")


class TestUnsubscribe:
    def test_bytes_and_decode(self):
        # §3.10: 0xA2; pid; filters
        want = h("a2 0c 00 02 00 03") + b"a/b" + h("00 03") + b"c/#"
        assert codec.unsubscribe(2, ["a/b", "c/#"]) == want
        assert dec_client(want) == (UNSUBSCRIBE, 2, ["a/b", "c/#"])

    def test_refused(self):
        with pytest.raises(ValueError):
            codec.unsubscribe(2, [])
        with pytest.raises(ValueError):
            codec.unsubscribe(2, ["a/#/b"])


class TestNoBody:
    def test_pingreq(self):
        assert codec.PINGREQ_PACKET == h("c0 00")
        assert dec_client(codec.PINGREQ_PACKET) == (PINGREQ,)

    def test_pingresp(self):
        assert codec_broker.PINGRESP_PACKET == h("d0 00")
        assert dec(codec_broker.PINGRESP_PACKET) == (PINGRESP,)

    def test_disconnect(self):
        assert codec.DISCONNECT_PACKET == h("e0 00")
        assert dec_client(codec.DISCONNECT_PACKET) == (DISCONNECT,)

    @pytest.mark.parametrize("pkt", ["c0 01 00", "e0 01 00", "c1 00", "e2 00"])
    def test_body_or_flags_refused_by_broker_decoder(self, pkt):
        with pytest.raises(ProtocolError):
            codec_broker.decode_client(*split(h(pkt)))


# --------------------------------------------------------------------------- remaining length

class TestRemainingLength:
    # §2.2.3 table
    @pytest.mark.parametrize("n,want", [
        (0, "00"), (127, "7f"),
        (128, "80 01"), (16383, "ff 7f"),
        (16384, "80 80 01"), (2097151, "ff ff 7f"),
        (2097152, "80 80 80 01"), (268435455, "ff ff ff 7f"),
    ])
    def test_varint(self, n, want):
        assert varint(n) == h(want)
        # frame() reads it back: header is 1 + len(varint) bytes
        buf = b"\x30" + h(want)
        assert frame(buf, BIG) == (1 + len(h(want)), 1 + len(h(want)) + n)

    @pytest.mark.parametrize("n", [268435456, -1])
    def test_out_of_range(self, n):
        with pytest.raises(ValueError):
            varint(n)

    def test_five_byte_length_refused(self):
        with pytest.raises(ProtocolError):
            frame(h("30 ff ff ff ff 01"), BIG)
        # already refused when the 4th length byte still says "more follows"
        with pytest.raises(ProtocolError):
            frame(h("30 80 80 80 80"), BIG)

    def test_incomplete_header_needs_more(self):
        assert frame(b"", 100) is None
        assert frame(b"\x30", 100) is None
        assert frame(h("30 80"), BIG) is None
        assert frame(h("30 80 80 80"), BIG) is None

    def test_body_not_needed(self):
        # the header alone gives the offsets; the body may still be on its way
        assert frame(h("30 0a 00"), 100) == (2, 12)

    def test_start_offset(self):
        buf = h("d0 00 90 03 00 01 00")
        assert frame(buf, 100, 0) == (2, 2)
        assert frame(buf, 100, 2) == (4, 7)
        assert frame(buf, 100, 7) is None

    @pytest.mark.parametrize("hdr", ["30 80 80 40", "30 80 80 80 01"])
    def test_oversize_refused_from_header_alone(self, hdr):
        # 1 MB (3-byte length) and 2 MB (4-byte) packets, limit 8192: nothing else fed
        with pytest.raises(ProtocolError):
            frame(h(hdr), 8192)

    def test_limit_boundary(self):
        # limit counts the whole packet: fixed header + remaining length
        pkt = codec.publish("t", bytes(100 - 2 - 3))     # 2 + 3 + 95 = 100 bytes
        assert len(pkt) == 100
        assert frame(pkt, 100) == (2, 100)
        with pytest.raises(ProtocolError):
            frame(pkt, 99)


# --------------------------------------------------------------------------- UTF-8

class TestUtf8:
    @pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "x/\udfff"])
    def test_encoders_refuse(self, bad):
        with pytest.raises(ValueError):
            codec.publish(bad, b"")
        with pytest.raises(ValueError):
            codec.subscribe(1, [(bad, 0)])
        with pytest.raises(ValueError):
            codec.unsubscribe(1, [bad])
        with pytest.raises(ValueError):
            codec.connect(bad)
        with pytest.raises(ValueError):
            codec.connect("a", username=bad)
        with pytest.raises(ValueError):
            codec.connect("a", will=(bad, b"", 0, False))

    def test_string_too_long(self):
        with pytest.raises(ValueError):
            codec.publish("a" * 65536, b"")
        assert len(codec.publish("a" * 65535, b"")) == 1 + 3 + 2 + 65535

    @pytest.mark.parametrize("topic", [
        "ff",            # invalid UTF-8
        "61 c3",         # truncated sequence
        "61 00 62",      # U+0000 (§1.5.3-2)
        "ed a0 80",      # encoded surrogate U+D800 (§1.5.3-1)
        "ed bf bf",      # encoded surrogate U+DFFF
        "c0 80",         # overlong NUL: not well-formed UTF-8
    ])
    def test_decode_refuses(self, topic):
        t = h(topic)
        pkt = bytes((0x30, 2 + len(t) + 1)) + len(t).to_bytes(2, "big") + t + b"x"
        with pytest.raises(ProtocolError):
            codec.decode(*split(pkt))

    def test_decode_accepts_non_surrogate_ed(self):
        # ED 9F BF is U+D7FF, the last code point before the surrogates
        pkt = h("30 06 00 03 ed 9f bf 78")
        assert dec(pkt).topic == "\ud7ff"


# --------------------------------------------------------------------------- malformed input

MALFORMED_FROM_SERVER = {
    "publish qos 3": "36 09 00 03 61 2f 62 00 01 68 69",
    "publish qos 1 pid 0": "32 09 00 03 61 2f 62 00 00 68 69",
    "publish qos 2 pid 0": "34 07 00 03 61 2f 62 00 00",
    "publish dup on qos 0": "38 07 00 03 61 2f 62 68 69",
    "publish topic beyond packet": "30 05 00 09 61 2f 62",
    "publish no room for pid": "32 05 00 03 61 2f 62",
    "publish body of 1": "30 01 00",
    "publish empty body": "30 00",
    "publish empty topic": "30 04 00 00 68 69",
    "publish topic with +": "30 07 00 03 61 2f 2b 68 69",
    "publish topic with #": "30 07 00 03 61 2f 23 68 69",
    "puback reserved flags": "41 02 00 01",
    "pubrec reserved flags": "52 02 00 01",
    "pubcomp reserved flags": "72 02 00 01",
    "unsuback reserved flags": "b2 02 00 01",
    "connack reserved flags": "21 02 00 00",
    "suback reserved flags": "92 03 00 01 00",
    "pingresp reserved flags": "d1 00",
    "pubrel without 0010": "60 02 00 01",
    "pubrel other flags": "63 02 00 01",
    "puback long": "40 03 00 01 00",
    "puback short": "40 01 01",
    "pubrec empty": "50 00",
    "pubrel long": "62 03 00 01 00",
    "pubcomp short": "70 01 00",
    "unsuback long": "b0 04 00 01 00 00",
    "puback pid 0": "40 02 00 00",
    "connack code 6": "20 02 00 06",
    "connack code 255": "20 02 00 ff",
    "connack session present on refusal": "20 02 01 05",
    "connack reserved ack flags": "20 02 02 00",
    "connack long": "20 03 00 00 00",
    "connack short": "20 01 00",
    "suback code 3": "90 03 00 01 03",
    "suback code 0x81": "90 04 00 01 00 81",
    "suback without codes": "90 02 00 01",
    "suback pid 0": "90 03 00 00 00",
    "pingresp with body": "d0 01 00",
    "type 0": "00 00",
    "type 15": "f0 00",
    "connect": (h("10 0d") + PROTO + h("02 00 3c 00 01") + b"a").hex(),
    "subscribe": "82 06 00 01 00 01 61 00",
    "subscribe flags 0": "80 06 00 01 00 01 61 00",
    "unsubscribe": "a2 05 00 01 00 01 61",
    "pingreq": "c0 00",
    "disconnect": "e0 00",
}


@pytest.mark.parametrize("pkt", list(MALFORMED_FROM_SERVER.values()),
                         ids=list(MALFORMED_FROM_SERVER))
def test_malformed_server_packet(pkt):
    with pytest.raises(ProtocolError):
        dec(h(pkt))


MALFORMED_FROM_CLIENT = {
    "connack": "20 02 00 00",
    "suback": "90 03 00 01 00",
    "pingresp": "d0 00",
    "subscribe flags 0": "80 06 00 01 00 01 61 00",
    "subscribe qos 3": "82 06 00 01 00 01 61 03",
    "subscribe no qos byte": "82 05 00 01 00 01 61",
    "subscribe no filter": "82 02 00 01",
    "subscribe pid 0": "82 06 00 00 00 01 61 00",
    "subscribe bad filter": "82 07 00 01 00 02 61 2b 00",
    "unsubscribe flags 0": "a0 05 00 01 00 01 61",
    "unsubscribe no filter": "a2 02 00 01",
    "connect protocol 3": (h("10 0d 00 04") + b"MQTT" + h("03 02 00 3c 00 01") + b"a").hex(),
    "connect name MQIsdp": (h("10 0f 00 06") + b"MQIsdp" + h("04 02 00 3c 00 01")
                            + b"a").hex(),
    "connect reserved flag": (h("10 0d") + PROTO + h("03 00 3c 00 01") + b"a").hex(),
    "connect will qos 3": (h("10 12") + PROTO + h("1e 00 3c 00 01") + b"a" + h("00 01")
                           + b"w" + h("00 00")).hex(),
    "connect will qos without will": (h("10 0d") + PROTO + h("0a 00 3c 00 01")
                                      + b"a").hex(),
    "connect password without user": (h("10 11") + PROTO + h("42 00 3c 00 01") + b"a"
                                      + h("00 02") + b"pw").hex(),
    "connect trailing bytes": (h("10 0e") + PROTO + h("02 00 3c 00 01") + b"a"
                               + b"z").hex(),
    "connect truncated": (h("10 0c") + PROTO + h("02 00 3c 00 01")).hex(),
    "connect flags 1": (h("11 0d") + PROTO + h("02 00 3c 00 01") + b"a").hex(),
}


@pytest.mark.parametrize("pkt", list(MALFORMED_FROM_CLIENT.values()),
                         ids=list(MALFORMED_FROM_CLIENT))
def test_malformed_client_packet(pkt):
    with pytest.raises(ProtocolError):
        dec_client(h(pkt))


# --------------------------------------------------------------------------- topic rules

@pytest.mark.parametrize("f", [
    "sport/tennis/player1/#", "sport/tennis/#", "sport/#", "#", "+", "+/tennis/#",
    "sport/+/player1", "/finance", "+/+", "/+", "$SYS/#", "a//b", "Accounts payable",
    "/", "+/+/+", "sport/+",
])
def test_filter_valid(f):
    assert check_filter(f) == f


@pytest.mark.parametrize("f", [
    "", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "#/", "##", "++", "+#",
    "a/b+", "a/#/", "sport/+player1",
])
def test_filter_invalid(f):
    with pytest.raises(ValueError):
        check_filter(f)


@pytest.mark.parametrize("t", ["/finance", "sport/tennis/player1", "$SYS/x", "a//b", "/",
                               "Accounts payable", "ACCOUNTS"])
def test_topic_valid(t):
    assert check_topic(t) == t


@pytest.mark.parametrize("t", ["", "+", "#", "a/+", "sport/#", "sport+", "a#"])
def test_topic_invalid(t):
    with pytest.raises(ValueError):
        check_topic(t)


@pytest.mark.parametrize("flt,topic,ok", [
    # §4.7.1.2
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    # §4.7.1.3
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+", "finance", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    # §4.7.2 topics beginning with $
    ("#", "$SYS/x", False),
    ("#", "$SYS", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    # §4.7.3 case and leading slash matter; exact levels
    ("ACCOUNTS", "Accounts", False),
    ("Accounts payable", "Accounts payable", True),
    ("/finance", "finance", False),
    ("finance", "/finance", False),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
])
def test_match(flt, topic, ok):
    assert match(flt, topic) is ok


# --------------------------------------------------------------------------- properties

TOPIC_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00+#")
topics = st.text(TOPIC_CHARS, min_size=1, max_size=40)
LEVEL_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00+#/")
levels = st.one_of(st.just("+"), st.text(LEVEL_CHARS, max_size=8))


@st.composite
def _filters(draw):
    lv = draw(st.lists(levels, min_size=1, max_size=5))
    if draw(st.booleans()):
        lv.append("#")
    return "/".join(lv)


def filters():
    return _filters().filter(bool)  # a filter is never empty (§4.7.3)


pids = st.integers(1, 65535)
qoss = st.integers(0, 2)


@st.composite
def publishes(draw):
    qos = draw(qoss)
    pid = draw(pids) if qos else 0
    dup = draw(st.booleans()) if qos else False
    topic = draw(topics)
    payload = draw(st.binary(max_size=300))
    retain = draw(st.booleans())
    pkt = codec.publish(topic, payload, qos, retain, pid, dup)
    return bytes(pkt), ("PUBLISH", topic, payload, qos, retain, dup, pid)


@st.composite
def server_packets(draw):
    """(bytes, expected decode) of a random packet a server may send."""
    kind = draw(st.sampled_from(["publish", "ack", "suback", "connack", "pingresp"]))
    if kind == "publish":
        return draw(publishes())
    if kind == "ack":
        t = draw(st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK]))
        pid = draw(pids)
        return bytes(codec.ack(t, pid)), (t, pid)
    if kind == "suback":
        pid = draw(pids)
        codes = draw(st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=8))
        return bytes(codec_broker.suback(pid, codes)), (SUBACK, pid, bytes(codes))
    if kind == "connack":
        code = draw(st.integers(0, 5))
        sp = draw(st.booleans()) if code == 0 else False
        return bytes(codec_broker.connack(sp, code)), (CONNACK, sp, code)
    return codec_broker.PINGRESP_PACKET, (PINGRESP,)


def norm(p):
    if isinstance(p, Message):
        return ("PUBLISH", p.topic, p.payload, p.qos, p.retain, p.dup, p.pid)
    return p


class Reader:
    """Stream reader built on frame() + decode() only, as a device would do it."""

    def __init__(self, limit=BIG, decoder=codec.decode):
        self.buf = bytearray()
        self.limit = limit
        self.decoder = decoder

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            f = frame(self.buf, self.limit)
            if f is None or f[1] > len(self.buf):
                return out
            out.append(norm(self.decoder(self.buf[0], bytes(self.buf[f[0]:f[1]]))))
            del self.buf[:f[1]]


@given(publishes())
def test_publish_round_trip(p):
    pkt, want = p
    assert norm(dec(pkt)) == want
    assert norm(dec_client(pkt)) == want


@given(pids, st.lists(st.tuples(filters(), qoss), min_size=1, max_size=6))
def test_subscribe_round_trip(pid, fl):
    assert dec_client(codec.subscribe(pid, fl)) == (SUBSCRIBE, pid, fl)


@given(pids, st.lists(filters(), min_size=1, max_size=6))
def test_unsubscribe_round_trip(pid, fl):
    assert dec_client(codec.unsubscribe(pid, fl)) == (UNSUBSCRIBE, pid, fl)


@st.composite
def connects(draw):
    clean = draw(st.booleans())
    cid = draw(st.text(TOPIC_CHARS | st.sampled_from("+#"), min_size=0 if clean else 1,
                       max_size=23))
    keepalive = draw(st.integers(0, 65535))
    will = None
    if draw(st.booleans()):
        will = (draw(topics), draw(st.binary(max_size=50)), draw(qoss), draw(st.booleans()))
    username = draw(st.none() | st.text(TOPIC_CHARS, max_size=20))
    password = draw(st.none() | st.binary(max_size=20)) if username is not None else None
    return dict(client_id=cid, clean=clean, keepalive=keepalive, will=will,
                username=username, password=password)


@given(connects())
def test_connect_round_trip(kw):
    assert dec_client(codec.connect(**kw)) == kw


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(server_packets(), min_size=1, max_size=5))
def test_stream_split_anywhere(pkts):
    stream = b"".join(p for p, _ in pkts)
    want = [w for _, w in pkts]
    # frame() directly over the whole stream, walking with start offsets
    got, i = [], 0
    while i < len(stream):
        f = frame(stream, BIG, i)
        got.append(norm(codec.decode(stream[i], stream[f[0]:f[1]])))
        i = f[1]
    assert got == want
    # two pieces, split at every offset
    for cut in range(len(stream) + 1):
        r = Reader()
        assert r.feed(stream[:cut]) + r.feed(stream[cut:]) == want, cut
        assert not r.buf
    # one byte at a time
    r = Reader()
    got = []
    for i in range(len(stream)):
        got += r.feed(stream[i:i + 1])
    assert got == want


@given(st.binary(max_size=200))
def test_random_bytes_only_protocol_error(data):
    for decoder in (codec.decode, codec_broker.decode_client):
        r = Reader(limit=1024, decoder=decoder)
        try:
            r.feed(data)
        except ProtocolError:
            pass


@given(st.integers(0, 255), st.binary(max_size=64))
def test_random_packet_only_protocol_error(b0, body):
    for decoder in (codec.decode, codec_broker.decode_client):
        try:
            out = decoder(b0, body)
        except ProtocolError:
            continue
        assert isinstance(out, (Message, tuple, dict))


@given(st.integers(0, 255), st.binary(max_size=64))
def test_decode_accepts_memoryview(b0, body):
    # Session hands decode() a memoryview of its buffer: same result as bytes
    def run(b):
        try:
            return ("ok", norm(codec.decode(b0, b)))
        except ProtocolError:
            return ("error",)
    assert run(memoryview(bytearray(body))) == run(body)


def test_errors_are_mqtt_errors():
    assert issubclass(ProtocolError, MQTTError)


# --------------------------------------------------------------------------- both runtimes

UTF8_SCEN = Path(__file__).resolve().parent / "scenarios" / "utf8_rules.py"


def test_utf8_well_formedness_on_both_runtimes(run_py, runtime):
    # [MQTT-1.5.3-1]: ill-formed UTF-8 (Unicode Table 3-7: overlong forms, surrogates,
    # code points past U+10FFFF, truncated sequences) is a malformed packet. MicroPython's
    # own str() accepts C0 80, ED A0 80 and F4 90 80 80, so the codec must check itself.
    r = run_py(runtime, UTF8_SCEN, timeout=60)
    assert r.returncode == 0, r
    assert r.lines == [
        "612f62 ok 61 2f 62 True", "c3a9 ok e9 True", "e282ac ok 20ac True",
        "ed9fbf ok d7ff True", "ee8080 ok e000 True", "f09f9880 ok 1f600 True",
        "f48fbfbf ok 10ffff True",
    ] + [c + " ProtocolError" for c in (
        "c080", "c1bf", "e08080", "f0808080", "eda080", "edbfbf", "f4908080", "f5808080",
        "ff", "80", "61e282", "f09f98", "c3c3")], r
