"""MQTT 5.0 in lib/mqtt (MQTTClient(..., version=5)).

Broker tests: tests/scenarios/v5_scenarios.py against a real mosquitto, each
on CPython and the MicroPython unix port; observers are mosquitto_sub.
Session tests: the sans-I/O Session5 driven with a scripted broker
(codec5_broker), on CPython.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "lib"))

from mqtt import codec5  # noqa: E402
import codec5_broker as B  # noqa: E402
from mqtt.codec import (  # noqa: E402
    PUBACK, PUBCOMP, PUBREC, PUBREL, SUBSCRIBE, UNSUBSCRIBE, frame)
from mqtt.codec5 import (  # noqa: E402
    AUTH, ASSIGNED_CLIENT_ID, MAXIMUM_PACKET_SIZE, MESSAGE_EXPIRY, RECEIVE_MAXIMUM,
    SERVER_KEEPALIVE, SESSION_EXPIRY, TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM, WILL_DELAY,
    REASON_STRING, REQUEST_PROBLEM_INFO, RETAIN_AVAILABLE, MAXIMUM_QOS)
from mqtt.errors import ConnectionLost, ConnectRefused, ProtocolError  # noqa: E402
from mqtt.session5 import Disconnected, Session5  # noqa: E402

SCEN = Path(__file__).parent / "scenarios" / "v5_scenarios.py"


def scenario(run_py, runtime, name, broker, prefix, *args, timeout=60):
    r = run_py(runtime, SCEN, (name, broker.port, prefix) + args, timeout=timeout)
    assert r.returncode == 0, r.output
    return r.lines


# ---------------------------------------------------------------- against mosquitto


def test_will_delay_reconnect_in_time_suppresses_will(start_py, run_py, runtime, mosquitto,
                                                      prefix, sub):
    watch = sub(mosquitto, f"{prefix}/status", qos=1)
    p = start_py(runtime, SCEN, ("will_delay", mosquitto.port, prefix, "wait"))
    p.expect("ready")
    p.kill_now()
    # Back within the 3 s will delay, staying past it: the will is not sent (§3.1.3.2).
    assert scenario(run_py, runtime, "will_delay", mosquitto, prefix, "return") == [
        "ready", "left"]
    time.sleep(1.0)
    watch.stop()
    assert watch.messages == []


def test_will_delay_will_arrives_when_client_stays_away(start_py, runtime, mosquitto, prefix,
                                                        sub):
    watch = sub(mosquitto, f"{prefix}/status", qos=1)
    p = start_py(runtime, SCEN, ("will_delay", mosquitto.port, prefix, "wait"))
    p.expect("ready")
    p.kill_now()
    assert watch.wait_for(1, timeout=20) == [f"{prefix}/status gone"]


def test_disconnect_with_will_reason_publishes_the_will(run_py, runtime, mosquitto, prefix, sub):
    watch = sub(mosquitto, f"{prefix}/status", qos=1)
    assert scenario(run_py, runtime, "leave_with_will", mosquitto, prefix) == [
        "left True", "v4 a DISCONNECT reason needs MQTT 5 (version=5)", "v4 left False"]
    assert watch.wait_for(1, timeout=10) == [f"{prefix}/status gone"]
    watch.stop()
    # the 3.1.1 client, refused a reason, still left cleanly: its will was discarded
    assert watch.messages == [f"{prefix}/status gone"]


def test_server_disconnect_reason_reaches_the_app(run_py, runtime, mosquitto_factory, prefix):
    # mosquitto 2.0.11 closes a taken-over link without a DISCONNECT (the
    # 0x8E case is covered below with a scripted broker); it does send
    # DISCONNECT 0x95 for a packet over its max_packet_size.
    broker = mosquitto_factory(extra=["max_packet_size 100"])
    assert scenario(run_py, runtime, "server_disconnect", broker, prefix) == [
        "max_send 100",
        "publish-refused ValueError True",
        "lost Disconnected True 0x95 too large",
        "reconnected 2"]


def test_refused_connect_carries_v5_reason(run_py, runtime, mosquitto_factory, prefix):
    broker = mosquitto_factory(users={"node": "right-pw"})
    assert scenario(run_py, runtime, "refused", broker, prefix, "node", "wrong-pw") == [
        "refused 0x87 not authorized"]  # mosquitto 2.0.11 says 0x87
    assert scenario(run_py, runtime, "refused", broker, prefix, "node", "right-pw") == [
        "connected"]


def test_receive_maximum_caps_in_flight(run_py, runtime, mosquitto_factory, prefix, sub):
    broker = mosquitto_factory(extra=["max_inflight_messages 2"])
    n = 50
    outside = sub(broker, f"{prefix}/rm", count=n, qos=1)
    assert scenario(run_py, runtime, "receive_max", broker, prefix, n) == [
        "window 2 most-in-flight 2 dropped 0"]
    assert outside.lines(timeout=20) == [f"{prefix}/rm {i}" for i in range(n)]


def test_message_expiry_drops_old_queued_message(run_py, runtime, mosquitto, prefix, sub):
    outside = sub(mosquitto, f"{prefix}/e", qos=1)
    assert scenario(run_py, runtime, "expiry", mosquitto, prefix) == ["undelivered True",
                                                                      "dropped 1"]
    assert outside.wait_for(2) == [f"{prefix}/e keep", f"{prefix}/e long"]
    time.sleep(0.5)
    outside.stop()
    assert outside.messages == [f"{prefix}/e keep", f"{prefix}/e long"]


def test_topic_alias_cuts_bytes_on_the_wire(run_py, runtime, mosquitto, prefix, sub):
    topic = f"{prefix}/a/rather/long/topic/name/for/a/sensor/node/temperature"
    outside = sub(mosquitto, topic, count=40, qos=1)
    v4 = scenario(run_py, runtime, "alias", mosquitto, prefix, 4)
    v5 = scenario(run_py, runtime, "alias", mosquitto, prefix, 5)
    # mosquitto offers 10; we use at most topic_aliases (8 by default)
    assert v4[0] == "alias_max 0" and v5[0] == "alias_max 8"
    b4, b5 = int(v4[1].split()[1]), int(v5[1].split()[1])
    # 19 of the 20 publishes go without their topic; each v5 PUBLISH adds
    # a property length and a 3-byte alias property.
    assert b5 <= b4 - 19 * (len(topic) - 4) + 4
    assert b5 * 4 < b4
    # The broker resolved every alias: subscribers see the topic.
    assert outside.lines(timeout=20) == [f"{topic} {i}" for i in range(20)] * 2


def test_max_packet_size_refuses_subscribe_and_unsubscribe_locally(run_py, runtime,
                                                                  mosquitto_factory, prefix):
    # [MQTT-3.2.2-15]: the client MUST NOT send a packet over the broker's Maximum
    # Packet Size. mosquitto would answer one with DISCONNECT 0x95 and drop the link.
    broker = mosquitto_factory(extra=["max_packet_size 30"])
    assert scenario(run_py, runtime, "max_packet", broker, prefix, "30") == [
        "max_send 30", "subscribe refused True", "unsubscribe refused True",
        "granted 1", "got hi", "connects 1 up True error None"]
    assert "0x95" not in broker.log_text() and "too large" not in broker.log_text()


def test_max_packet_size_counts_the_topic_alias(run_py, runtime, mosquitto_factory, prefix,
                                                sub):
    # A 256-byte PUBLISH fits a 256-byte limit; with a new topic alias it would be 259
    # [MQTT-3.2.2-15]: it goes with its topic, and no alias, instead.
    broker = mosquitto_factory(extra=["max_packet_size 256"])
    outside = sub(broker, f"{prefix}/big", qos=1, extra=["-F", "%l"])
    assert scenario(run_py, runtime, "max_packet", broker, prefix, "256") == [
        "max_send 256", "flushed 256", "connects 1 up True error None"]
    n = 256 - (1 + 2 + 2 + len(f"{prefix}/big") + 2 + 1)
    assert outside.wait_for(3) == [str(n), str(n), "5"]


def test_long_message_expiry_intervals_arrive_with_what_is_left(run_py, runtime, mosquitto,
                                                                prefix, sub):
    # §3.3.2.3.3: any 4-byte interval; the one sent is the interval less the time the
    # message waited (the ms tick clock wraps after 12.4 days: it must not matter).
    outside = sub(mosquitto, f"{prefix}/le", qos=1, extra=["-V", "5", "-F", "%p %E"])
    assert scenario(run_py, runtime, "long_expiry", mosquitto, prefix) == ["dropped 0"]
    got = [line.split() for line in outside.wait_for(4)]
    assert [p for p, _ in got] == ["offline", "604800", "1123200", "4294967295"], got
    left = [int(e) & 0xFFFFFFFF for _, e in got]   # mosquitto_sub prints %E signed
    assert 13 * 86400 - 4 <= left[0] <= 13 * 86400 - 1, got    # it waited 2 s offline
    for want, e in zip((604800, 1123200, 4294967295), left[1:]):
        assert want - 2 <= e <= want, got


def test_request_response_round_trip(run_py, runtime, mosquitto, prefix):
    assert scenario(run_py, runtime, "request", mosquitto, prefix) == [
        "response re:one", "responses re:n0 re:n1 re:n2"]


def test_shared_subscription_spreads_messages(run_py, runtime, mosquitto, prefix):
    n = 20
    lines = scenario(run_py, runtime, "shared", mosquitto, prefix, n)
    assert lines[:2] == ["granted 1", "granted 1"]
    a, b = map(int, lines[2].split()[1:])
    assert a > 0 and b > 0 and a + b == n
    assert lines[3] == "union True"


def test_user_properties_subscription_id_and_no_local(run_py, runtime, mosquitto, prefix):
    assert scenario(run_py, runtime, "props", mosquitto, prefix) == [
        "granted 1", "granted 1",
        "got p x [('unit', 'C'), ('k', 'v')] [7]"]


def test_v5_client_modules_load_only_for_version_5():
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from mqtt import MQTTClient\n"
            "MQTTClient('127.0.0.1', client_id='a')\n"
            "assert not [m for m in sys.modules if m.endswith('5')], sys.modules\n"
            "c = MQTTClient('127.0.0.1', client_id='a', version=5)\n"
            "assert 'mqtt.session5' in sys.modules and 'mqtt.codec5' in sys.modules\n"
            % str(REPO / "lib"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- sans-I/O Session5


def parse(pkt):
    pkt = bytes(pkt)
    f = frame(pkt, 1 << 20)
    return B.decode_client(pkt[0], pkt[f[0]:f[1]])


def up(now=0, props=None, **kw):
    kw.setdefault("window", 16)
    s = Session5("dev", **kw)
    s.start(now)
    s.take(now)
    s.feed(B.connack(False, 0, props or {}), now)
    s.take(now)
    return s


def test_connect_carries_v5_properties_and_will_props():
    s = Session5("dev", False, 30, ("w", b"bye", 1, True, {WILL_DELAY: 5}), "u", "pw",
                 max_packet=4096, window=5, session_expiry=60, topic_aliases=8,
                 connect_props={REQUEST_PROBLEM_INFO: 0}, announce_max_packet=True)
    s.start(0)
    c = parse(s.take(0)[0])
    assert c["client_id"] == "dev" and c["clean_start"] is False and c["keepalive"] == 30
    assert c["props"] == {SESSION_EXPIRY: 60, RECEIVE_MAXIMUM: 5, MAXIMUM_PACKET_SIZE: 4096,
                          TOPIC_ALIAS_MAXIMUM: 8, REQUEST_PROBLEM_INFO: 0}
    assert c["will"] == ("w", b"bye", 1, True, {WILL_DELAY: 5})
    assert (c["username"], c["password"]) == ("u", b"pw")


def test_connack_properties_are_applied():
    s = up(props={ASSIGNED_CLIENT_ID: "auto-1", SERVER_KEEPALIVE: 7, RECEIVE_MAXIMUM: 3,
                  MAXIMUM_PACKET_SIZE: 200, TOPIC_ALIAS_MAXIMUM: 4, RETAIN_AVAILABLE: 0,
                  MAXIMUM_QOS: 1})
    assert (s.client_id, s.ka, s.window, s.max_send, s.alias_max) == ("auto-1", 7000, 3, 200, 4)
    assert s.retain_available is False and s.max_qos == 1
    for qos, retain in ((2, False), (1, True)):
        with pytest.raises(ValueError):
            s.publish("t", b"x", qos, retain)
    with pytest.raises(ValueError):
        s.publish("t", b"x" * 300, 1)
    assert s.idle()
    s.closed()
    s.start(10)
    assert parse(s.take(10)[0])["client_id"] == "auto-1"  # reconnects keep the assigned id


def test_connack_refusal_carries_v5_code_and_text():
    s = Session5("dev")
    s.start(0)
    with pytest.raises(ConnectRefused) as e:
        s.feed(B.connack(False, 0x86, {REASON_STRING: "nope"}), 0)
    assert e.value.code == 0x86 and e.value.reason == "bad credentials: nope"


def test_failed_puback_and_pubrec_complete_the_message_without_pubrel():
    s = up()
    p1 = s.publish("t", b"1", 1)
    p2 = s.publish("t", b"2", 2)
    s.take(0)
    assert s.feed(codec5.ack(PUBACK, p1, 0x87), 1) == [(PUBACK, p1, 0x87)]
    assert s.feed(codec5.ack(PUBREC, p2, 0x97), 1) == [(PUBREC, p2, 0x97)]
    assert s.take(1) == []   # no PUBREL after a failed PUBREC (§4.3.3)
    assert s.idle() and s.failed == [(p1, 0x87), (p2, 0x97)] and s.failures == 2
    p3 = s.publish("t", b"3", 1)
    s.take(1)
    assert s.feed(codec5.ack(PUBACK, p3, 0x10), 2) == [(PUBACK, p3)]  # 0x10 is success


def test_unsolicited_acks_are_ignored_and_unknown_ids_answered_with_0x92(run_py, runtime):
    # An ack for a packet id not waiting for it is ignored and counted (the link stays);
    # a PUBREC for an unknown id gets PUBREL and a PUBREL gets PUBCOMP, both with reason
    # 0x92 Packet Identifier not found (§3.6.2.1, §3.7.2.1). Sans I/O, on each runtime.
    r = run_py(runtime, REPO / "tests" / "scenarios" / "session5_acks.py", timeout=30,
               pythonpath=(REPO / "tests",))  # codec5_broker
    assert r.returncode == 0, r.output
    assert r.lines == ["events [] connected True unsolicited 7",
                       "answer (%d, 905, 146, {})" % PUBREL,
                       "answer (%d, 906, 146, {})" % PUBCOMP,
                       "then True True []"], r.output


def test_a_smaller_receive_maximum_after_reconnect_bounds_the_resends():
    # §4.9: what was in flight counts against the new connection's Receive
    # Maximum: only that many are re-sent; the rest follow, as re-sends, when
    # acks free room.
    s = up(window=4, clean=False)
    pids = [s.publish("t", b"%d" % i, 1, props={MESSAGE_EXPIRY: 60} if i == 3 else None,
                      now=0) for i in range(4)]
    assert len(s.take(0)) == 4
    s.closed()
    s.start(1)
    s.take(1)
    s.feed(B.connack(True, 0, {RECEIVE_MAXIMUM: 2}), 1)
    sent = [parse(p) for p in s.take(1)]
    assert [(m.pid, m.dup, m.payload) for m in sent] == [(pids[0], True, b"0"),
                                                         (pids[1], True, b"1")]
    for k in (2, 3):
        s.feed(codec5.ack(PUBACK, pids[k - 2]), 2)
        (m,) = [parse(p) for p in s.take(2)]
        assert (m.pid, m.dup, m.payload) == (pids[k], True, b"%d" % k)
        assert len(s._out) == 2
    assert m.props[MESSAGE_EXPIRY] == 60   # rebuilt with its remaining expiry, DUP kept


def test_server_disconnect_raises_typed_connection_lost():
    s = up()
    with pytest.raises(Disconnected) as e:
        s.feed(B.disconnect(0x8B, {REASON_STRING: "maintenance"}), 1)
    assert isinstance(e.value, ConnectionLost)
    assert (e.value.code, e.value.reason) == (0x8B, "shutting down: maintenance")
    assert e.value.props == {REASON_STRING: "maintenance"}


def test_session_taken_over_disconnect():
    s = up()
    with pytest.raises(Disconnected) as e:
        s.feed(B.disconnect(0x8E), 1)
    assert (e.value.code, e.value.reason, e.value.props) == (0x8E, "taken over", {})


def test_auth_is_an_event_not_a_crash():
    s = up()
    assert s.feed(codec5.auth(0x18, {codec5.AUTH_METHOD: "x"}), 1) == [
        (AUTH, 0x18, {codec5.AUTH_METHOD: "x"})]
    assert s.auth[1] == 0x18 and s.connected


def test_subscribe_and_unsubscribe_are_v5_packets_and_restored_as_v5():
    s = up()
    pid = s.subscribe([("a/+", 1 | codec5.NO_LOCAL)], {codec5.SUBSCRIPTION_ID: 9})
    assert parse(s.take(0)[0]) == (SUBSCRIBE, pid, [("a/+", 5)], {codec5.SUBSCRIPTION_ID: 9})
    s.feed(B.suback(pid, [1]), 0)
    pid = s.subscribe([("b", 0)])
    assert parse(s.take(0)[0]) == (SUBSCRIBE, pid, [("b", 0)], {})
    s.feed(B.suback(pid, [0]), 0)
    pid = s.unsubscribe(["b"])
    assert parse(s.take(0)[0]) == (UNSUBSCRIBE, pid, ["b"], {})
    s.feed(B.unsuback(pid, [0]), 0)
    s.closed()
    s.start(1)
    s.take(1)
    s.feed(B.connack(False, 0, {}), 1)  # no session: subscriptions made again (§3.2.2.1.1)
    again = [parse(p) for p in s.take(1)]
    # with its options and its subscription identifier
    assert [(a[0], a[2], a[3]) for a in again] == [
        (SUBSCRIBE, [("a/+", 5)], {codec5.SUBSCRIPTION_ID: 9})]


def test_restored_subscriptions_keep_their_identifiers_apart():
    # A subscription identifier is per SUBSCRIBE (§3.8.2.1.2): filters made
    # with different ones, or none, are made again in separate packets.
    s = up()
    for fl, props in (([("a", 1)], {codec5.SUBSCRIPTION_ID: 1}), ([("b", 0), ("c", 2)], None),
                      ([("d", 1)], {codec5.SUBSCRIPTION_ID: 2})):
        pid = s.subscribe(fl, props)
        s.take(0)
        s.feed(B.suback(pid, [q for _, q in fl]), 0)
    pid = s.subscribe([("d", 0)])    # made again without properties: none on restore
    s.take(0)
    s.feed(B.suback(pid, [0]), 0)
    s.closed()
    s.start(1)
    s.take(1)
    s.feed(B.connack(False, 0, {}), 1)
    again = sorted((sorted(a[2]), a[3]) for a in map(parse, s.take(1)))
    assert again == [([("a", 1)], {codec5.SUBSCRIPTION_ID: 1}),
                     ([("b", 0), ("c", 2), ("d", 0)], {})]


def test_suback_failure_codes_are_returned_and_not_restored():
    s = up()
    pid = s.subscribe([("a", 1), ("b", 2)])
    s.take(0)
    assert s.feed(B.suback(pid, [1, 0x87]), 1) == [(9, pid, b"\x01\x87", {})]
    assert s.subs == {"a": 1}


def test_expired_queued_message_is_dropped_and_remaining_interval_sent():
    s = up(window=1)
    s.publish("t", b"first", 1)
    s.publish("t", b"old", 1, props={MESSAGE_EXPIRY: 2}, now=0)
    s.publish("t", b"later", 1, props={MESSAGE_EXPIRY: 10}, now=0)
    s.take(0)
    s.feed(codec5.ack(PUBACK, 1), 3000)   # "old" expired while waiting for the window
    out = parse(s.take(3000)[0])
    assert out.payload == b"later" and out.props[MESSAGE_EXPIRY] == 7
    assert s.dropped == 1


def test_topic_aliases_outgoing_and_reset_on_reconnect():
    s = up(props={TOPIC_ALIAS_MAXIMUM: 1}, clean=False)
    s.publish("long/topic", b"1", 1)
    s.publish("long/topic", b"2", 1)
    s.publish("other", b"3", 1)
    a, b, c = [parse(p) for p in s.take(0)]
    assert (a.topic, a.props) == ("long/topic", {TOPIC_ALIAS: 1})
    assert (b.topic, b.props) == ("", {TOPIC_ALIAS: 1})
    assert (c.topic, c.props) == ("other", {})  # no alias left
    s.closed()
    s.start(5)
    s.take(5)
    s.feed(B.connack(True, 0, {TOPIC_ALIAS_MAXIMUM: 1}), 5)
    resent = [parse(p) for p in s.take(5)]
    assert [(m.topic, m.dup, m.props) for m in resent] == [
        ("long/topic", True, {}), ("long/topic", True, {}), ("other", True, {})]


def test_incoming_topic_alias_is_resolved():
    s = up()
    s.feed(codec5.publish("x/y", b"1", 0, props={TOPIC_ALIAS: 2}), 1)
    m = s.feed(codec5.publish("", b"2", 0, props={TOPIC_ALIAS: 2}), 1)[0]
    assert m.topic == "x/y" and m.payload == b"2"
    with pytest.raises(ProtocolError):
        s.feed(codec5.publish("", b"3", 0, props={TOPIC_ALIAS: 3}), 1)
    s = up(topic_aliases=2)
    with pytest.raises(ProtocolError):
        s.feed(codec5.publish("z", b"3", 0, props={TOPIC_ALIAS: 3}), 1)


# ---------------------------------------------------------------- sans-I/O, on every runtime

RULES = Path(__file__).parent / "scenarios" / "session5_rules.py"


def test_session5_rules_on_every_runtime(run_py, runtime):
    r = run_py(runtime, RULES, timeout=60, pythonpath=(REPO / "tests",))  # codec5_broker
    assert r.returncode == 0, r
    assert r.lines == [
        # §3.3.2.3.3: any expiry interval; the tick clock wrapping does not shorten one
        # (10 s, 7 and 13 days expired after 20 days; 0xFFFFFFFF goes with 20 days less)
        "expiry after 20 days 4294967295 True dropped 3",
        # none lost or cut short after 5 days: 5 days less on each, to the second
        "expiry after 5 days elapsed [432000, 432000, 432000] dropped 0",
        # [MQTT-3.2.2-15]: each too-big packet refused before anything is queued or sent
        "subscribe refused True tx [] subs {}",
        "unsubscribe refused True tx [] subs {}",
        "publish refused True tx [] subs {}",
        "disconnect refused True tx [] subs {}",
        "small subscribe [True] {'f/a': 1}",
        # 256 bytes under a 256-byte limit: the alias (3 bytes more) is left out
        "alias [(256, 'big/t', None), (256, 'big/t', None), (16, 'big/t', 1), (11, '', 1)]",
        # the same at QoS 0; one too big is refused and leaves no alias assigned
        "alias qos0 True [(256, 'big/t', None), (14, 'big/t', 1), (9, '', 1)]",
        # a lost session, a smaller limit: the subscriptions made again in packets that fit
        "restored [True, True, True] True 6",
        # [MQTT-3.2.2-4]: Session Present 1 answering Clean Start 1 closes the link
        "present to clean True closed True False",
        "present to clean False accepted True",
        # options: Maximum Packet Size only when asked (§3.1.2.11.4); topic_aliases=0 turns
        # aliases off both ways, else at most min(ours, the broker's) are used (§3.2.2.3.8)
        "connect [] None 8 aliases 5 [1, 1]",
        "connect ['topic_aliases'] None None aliases 0 [None, None]",
        "connect ['announce_max_packet'] 2000 8 aliases 5 [1, 1]",
        # §3.10.2.1: UNSUBSCRIBE carries user properties
        "unsubscribe (10, 1, ['a/b'], {38: [('why', 'done')]})",
    ], r
