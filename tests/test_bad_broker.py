"""Bad input from the broker (tests/faults/bad_broker.py), on CPython and MicroPython.

For each: the client closes the connection and makes a new one, no exception reaches the
application, nothing is allocated in proportion to a claimed length, and the client keeps
working (a QoS 1 publish is acknowledged and a subscription granted on the new connection)."""
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(Path(__file__).resolve().parent / "faults"))
from bad_broker import BadBroker  # noqa: E402
from mqtt import codec  # noqa: E402

SCEN = REPO / "tests" / "scenarios" / "bad_broker_client.py"


def pub(topic, payload=b"x", b0=0x30, pid=None):
    """A PUBLISH with a raw topic (bytes) and fixed-header byte; no checks."""
    body = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if pid is not None
                                                    else b"") + payload
    return bytes([b0, len(body)]) + body


CONNACK = b"\x20\x02\x00\x00"


def big_pub(b0, pid, size=9000):
    """A PUBLISH of `size` body bytes (over the client's 8192), topic t/big."""
    body = b"\x00\x05t/big" + pid.to_bytes(2, "big")
    body += b"p" * (size - len(body))
    n = len(body)
    return bytes([b0, 0x80 | n & 0x7F, n >> 7]) + body

# name -> (steps on the first connection after CONNECT, the error the client reports)
AFTER_CONNACK = {
    "remaining length over 4 bytes": (b"\x30\xff\xff\xff\xff\x7f", "remaining length over 4 bytes"),
    "topic length beyond the packet": (b"\x30\x05\x00\x10abc", "topic length beyond the packet"),
    "invalid UTF-8 topic": (pub(b"t/\xff\xfe"), "UTF-8"),
    "NUL in topic": (pub(b"t/a\x00b"), "NUL"),
    "surrogate in topic": (pub(b"t/\xed\xa0\x80"), "UTF-8"),
    # [MQTT-1.5.3-1]: ill-formed UTF-8 that MicroPython's str() would take
    "overlong NUL in topic": (pub(b"t/\xc0\x80"), "UTF-8"),
    "code point past U+10FFFF in topic": (pub(b"t/\xf4\x90\x80\x80"), "UTF-8"),
    "truncated UTF-8 in topic": (pub(b"t/\xe2\x82"), "UTF-8"),
    "PUBLISH with QoS 3": (pub(b"t/a", b0=0x36, pid=1), "QoS 3"),
    "QoS 1 with packet id 0": (pub(b"t/a", b0=0x32, pid=0), "packet id 0"),
    "reserved flags in PUBACK": (b"\x41\x02\x00\x01", "reserved flags"),
    "reserved flags in SUBACK": (b"\x91\x03\x00\x01\x00", "reserved flags"),
    "CONNECT from the broker": (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
                                "not expected from a server"),
    "SUBSCRIBE from the broker": (b"\x82\x06\x00\x01\x00\x01a\x00", "packet type 8"),
    "PINGREQ from the broker": (b"\xc0\x00", "not expected from a server"),
    "a second CONNACK": (CONNACK, "second CONNACK"),
    # a PUBLISH over max_packet is skipped, not held; one that is malformed still closes
    "oversized PUBLISH with packet id 0": (big_pub(0x32, 0), "packet id 0"),
    "oversized PUBLISH with QoS 3": (big_pub(0x36, 1), "QoS 3"),
}


@pytest.mark.parametrize("case", list(AFTER_CONNACK))
def test_bad_packet_after_connack(run_py, runtime, case):
    bad, why = AFTER_CONNACK[case]
    # the pause: the client is up (CONNACK handled) before the bad bytes arrive
    with BadBroker([["connack", ("sleep", 0.3), bad], ["connack"]]) as b:
        r = run_py(runtime, SCEN, [b.port, 30, 8192], timeout=60)
        assert r.returncode == 0, r
        assert r.lines[0] == "up 1", r
        assert r.lines[1].startswith("error ProtocolError ") and why in r.lines[1], r
        assert r.lines[2:] == ["connects 2", "flushed", "granted [1] [1]", "handler 0 0", "done"], r
        first = b.connections[0]
        assert first.closed_by_client, "the client must hang up on bad input"
        assert first.received[0] == 1   # CONNECT; the rest, if any, came before the bad bytes


def test_unsolicited_acks_are_ignored_and_answered(run_py, runtime):
    # Acks for packet ids nothing waits for (a duplicate, a broker that failed over) are
    # ignored and counted, the link stays up; a PUBREC for an unknown id is answered with
    # PUBREL and a PUBREL with PUBCOMP, so the broker can finish its flow (§4.3.3, §4.3.2).
    acks = (b"\x40\x02\x12\x34" b"\x70\x02\x12\x35" b"\x90\x03\x12\x36\x00"
            b"\xb0\x02\x12\x37" b"\x50\x02\x12\x38" b"\x62\x02\x12\x39")
    # (muted: the bad broker would answer our PUBREL with a PUBCOMP, one more unsolicited)
    with BadBroker([["connack", ("mute", {codec.PUBREL}), ("sleep", 0.3), acks]]) as b:
        r = run_py(runtime, SCEN, [b.port, 30, 8192, "--stay"], timeout=60)
        assert r.returncode == 0, r
        assert r.lines[:3] == ["up 1", "unsolicited 6", "error NoneType None"], r
        assert r.lines[3:] == ["connects 1", "flushed", "granted [1] [1]", "handler 0 0", "done"], r
        (conn,) = b.connections
        assert conn.acks[:2] == [(codec.PUBREL, 0x1238), (codec.PUBCOMP, 0x1239)], conn.acks
        assert conn.received[-1] == codec.DISCONNECT   # the link lived until we left


@pytest.mark.parametrize("case, before", [
    ("SUBACK before CONNACK", b"\x90\x03\x00\x01\x00"),
    ("PUBLISH before CONNACK", pub(b"t/a")),
    ("half a CONNACK, then nothing", ("trickle", b"\x20\x02", 0.01)),
])
def test_bad_packet_before_connack(run_py, runtime, case, before):
    with BadBroker([[before], ["connack"]]) as b:
        r = run_py(runtime, SCEN, [b.port, 30, 8192, "--pre"], timeout=60)
        assert r.returncode == 0, r
        want = "ConnectionLost" if "half" in case else "ProtocolError"
        if "half" in case:   # the connect timeout (3 s) ends the attempt
            assert r.lines[1].startswith("error TimeoutError"), r
        else:
            assert r.lines[1].startswith("error " + want) and "before CONNACK" in r.lines[1], r
        assert r.lines[2:] == ["connects 1", "flushed", "granted [1] [1]", "handler 0 0", "done"], r
        assert b.connections[0].closed_by_client


def test_packet_over_the_maximum_is_refused_from_its_header(run_py, runtime):
    # A SUBACK whose header claims 200 kB; the body never comes. The client must refuse from
    # the header alone (nothing allocated for the claimed length) and hang up at once, not
    # wait. (A PUBLISH that big is skipped instead: test_client.py's poison message test.)
    header = b"\x90" + bytes([0x80 | 0x40, 0x9a, 0x0c])      # remaining length 200,000
    with BadBroker([["connack", header, ("sleep", 30)], ["connack"]]) as b:
        r = run_py(runtime, SCEN, [b.port, 30, 8192], timeout=60)
        assert r.returncode == 0, r
        assert "over the 8192 limit" in r.lines[1], r
        first = b.connections[0]
        assert first.closed_by_client
        # hung up while the broker was still in its 30 s sleep
        assert first.closed_at - first.opened < 10


def test_one_byte_every_few_seconds_is_found_by_keepalive(run_py, runtime):
    # A PUBLISH trickled at one byte per 1.5 s never completes; with keepalive 2 s the
    # client gives up on the link 1.5 x keepalive after the last whole packet (CONNACK).
    with BadBroker([["connack", ("trickle", pub(b"t/slow", b"y" * 40), 1.5)], ["connack"]]) as b:
        r = run_py(runtime, SCEN, [b.port, 2, 8192], timeout=60)
        assert r.returncode == 0, r
        assert r.lines[1] == "error ConnectionLost no answer within 1.5 x keepalive", r
        assert r.lines[2:] == ["connects 2", "flushed", "granted [1] [1]", "handler 0 0", "done"], r
        first = b.connections[0]
        assert first.closed_by_client and first.closed_at - first.opened < 3 + 1.5 + 1


def test_session_lost_is_reported(run_py, runtime):
    # Connection 1: the QoS 2 message gets PUBREC, its PUBREL no PUBCOMP, then the broker
    # closes. Connection 2: session-present 0 although the client asked for a persistent one.
    scripts = [[("connack", False), ("mute", {6}), ("sleep", 1.0), "close"], [("connack", False)]]
    with BadBroker(scripts) as b:
        r = run_py(runtime, REPO / "tests" / "scenarios" / "session_lost.py", [b.port], timeout=60)
        assert r.returncode == 0, r
        # flush() reports the message of unknown outcome by its packet id (§4.1: the broker
        # without a session cannot finish its QoS 2 flow), then the client works on
        assert r.lines == ["present False", "connects 2 present False unknown 1 idle True",
                           "undelivered True", "flushed"], r
        first, second = b.connections[:2]
        assert [p[3] for p in first.publishes] == [b"past PUBREC"]
        assert 6 in first.received                       # its PUBREL was sent
        # the lost one is neither published again nor released on the new session
        assert [p[3] for p in second.publishes] == [b"after"]
        assert second.received.count(6) == 1             # the PUBREL of "after" only


def test_packet_ids_wrap_past_65535_around_one_in_flight(run_py, runtime):
    r = run_py(runtime, REPO / "tests" / "scenarios" / "pid_wrap.py", [70000], timeout=120,
               pythonpath=(REPO / "tests",))
    assert r.returncode == 0, r
    assert r.lines == ["held 1 still in flight True", "wrapped True bad []"], r


def test_session_present_answering_a_clean_session_closes(run_py, runtime):
    # [MQTT-3.2.2-1]: a broker accepting CleanSession=1 MUST answer Session Present 0. The
    # client (clean session) cannot trust such a CONNACK: it closes, says why, reconnects.
    with BadBroker([[("connack", True), ("sleep", 5)], ["connack"]]) as b:
        r = run_py(runtime, SCEN, [b.port, 30, 8192, "--pre"], timeout=60)
        assert r.returncode == 0, r
        assert r.lines[1] == ("error ProtocolError session present answering a clean session "
                              "[MQTT-3.2.2-1, -4]"), r
        assert r.lines[2:] == ["connects 1", "flushed", "granted [1] [1]", "handler 0 0", "done"], r
        first = b.connections[0]
        assert first.closed_by_client and first.received == [1]   # CONNECT, nothing more
        assert first.closed_at - first.opened < 4                  # at once, not at the sleep's end
