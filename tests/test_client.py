"""lib/mqtt against a real mosquitto, each scenario on CPython and on the MicroPython unix port.

The scenarios live in tests/scenarios/client_scenarios.py; the same file runs on both runtimes.
Outside observers are mosquitto_sub / mosquitto_pub.
"""
import os
import signal
import time
from pathlib import Path

import pytest

SCEN = Path(__file__).parent / "scenarios" / "client_scenarios.py"


def scenario(run_py, runtime, name, broker, prefix, *args, timeout=60):
    r = run_py(runtime, SCEN, (name, broker.port, prefix) + args, timeout=timeout)
    assert r.returncode == 0, r.output
    return r.lines


def test_connect_disconnect(run_py, runtime, mosquitto, prefix):
    assert scenario(run_py, runtime, "connect_disconnect", mosquitto, prefix) == [
        "session_present False",
        "connected True True False",
        "disconnected False False True",
    ]


def test_bad_password_is_refused(run_py, runtime, mosquitto_factory, prefix):
    broker = mosquitto_factory(users={"node": "right-pw"})
    lines = scenario(run_py, runtime, "refused", broker, prefix, "node", "wrong-pw")
    assert lines == ["refused 5 not authorized"]
    assert scenario(run_py, runtime, "refused", broker, prefix, "node", "right-pw") == ["connected"]


def test_identifier_rejected(run_py, runtime, mosquitto_factory, prefix):
    # With this option mosquitto answers an empty client id with code 2.
    broker = mosquitto_factory(extra=["allow_zero_length_clientid false"])
    assert scenario(run_py, runtime, "refused", broker, prefix, "-", "-", "") == [
        "refused 2 identifier rejected"]


def test_empty_client_id_needs_clean_session(run_py, runtime, mosquitto, prefix):
    lines = scenario(run_py, runtime, "empty_id", mosquitto, prefix)
    assert lines[0].startswith("ValueError") and "clean session" in lines[0]
    assert lines[1] == "clean-empty-id-connects True"


def test_qos_0_1_2_round_trip(run_py, runtime, mosquitto, prefix, sub):
    outside = sub(mosquitto, f"{prefix}/#", count=3, qos=2)
    lines = scenario(run_py, runtime, "qos_round_trip", mosquitto, prefix)
    assert lines[0] == "granted 2"
    assert sorted(lines[1:4]) == [
        f"got {prefix}/q0 payload 0 0 False False",
        f"got {prefix}/q1 payload 1 1 False False",
        f"got {prefix}/q2 payload 2 2 False False",
    ]
    assert lines[4] == "idle True"
    assert sorted(outside.lines()) == [f"{prefix}/q{q} payload {q}" for q in range(3)]


def test_qos1_burst_is_pipelined_and_complete(run_py, runtime, mosquitto, prefix, sub):
    n = 200
    outside = sub(mosquitto, f"{prefix}/burst", count=n, qos=1)
    lines = scenario(run_py, runtime, "burst", mosquitto, prefix, n, 1)
    assert lines == [f"flushed {n} 0"]
    assert outside.lines(timeout=20) == [f"{prefix}/burst {i}" for i in range(n)]


def test_qos2_burst_arrives_once_in_order(run_py, runtime, mosquitto, prefix, sub):
    n = 100
    outside = sub(mosquitto, f"{prefix}/burst", count=n, qos=2)
    assert scenario(run_py, runtime, "burst", mosquitto, prefix, n, 2) == [f"flushed {n} 0"]
    assert outside.lines(timeout=20) == [f"{prefix}/burst {i}" for i in range(n)]


def test_retained_delivery_and_clearing(run_py, runtime, mosquitto, prefix, sub):
    assert scenario(run_py, runtime, "retained", mosquitto, prefix) == [
        f"retained {prefix}/status online True",
        "after-clear 0",
    ]
    late = sub(mosquitto, f"{prefix}/status", timeout=1)
    assert [ln for ln in late.lines(timeout=5) if ln.startswith(prefix)] == []


def test_will_published_when_client_dies(start_py, runtime, mosquitto, prefix, sub):
    watch = sub(mosquitto, f"{prefix}/status", qos=1)
    p = start_py(runtime, SCEN, ("will", mosquitto.port, prefix, "kill"))
    p.expect("ready")
    assert watch.wait_for(1) == [f"{prefix}/status online"]
    p.kill_now()
    assert watch.wait_for(2, timeout=10) == [f"{prefix}/status online", f"{prefix}/status offline"]


def test_no_will_after_clean_disconnect(run_py, runtime, mosquitto, prefix, sub):
    watch = sub(mosquitto, f"{prefix}/status", qos=1)
    assert scenario(run_py, runtime, "will", mosquitto, prefix, "disconnect") == [
        "ready", "disconnected"]
    time.sleep(1.0)
    watch.stop()
    assert watch.messages == [f"{prefix}/status online"]


def test_persistent_session_gets_what_was_sent_while_away(run_py, runtime, mosquitto, prefix):
    assert scenario(run_py, runtime, "persistent", mosquitto, prefix) == [
        "first-session_present False",
        "second-session_present True",
        "offline-subscribe [1]",
        "got away 0 1", "got away 1 1", "got away 2 1",
    ]


def test_qos2_exactly_once_when_broker_resends(start_py, runtime, mosquitto_factory, prefix):
    broker = mosquitto_factory(persistence=True)
    n = 5
    p = start_py(runtime, SCEN, ("qos2_once", broker.port, prefix, n))
    assert p.expect("held") == f"held {n}"
    p.expect("ready")
    broker.restart()
    assert p.expect("reconnected", timeout=30) == "reconnected True"
    assert p.expect("delivered", timeout=30) == f"delivered {n} distinct {n}"
    assert p.wait(timeout=15) == 0


def test_inbox_drops_qos0_when_full_and_keeps_qos1(run_py, runtime, mosquitto, prefix):
    assert scenario(run_py, runtime, "inbox_overflow", mosquitto, prefix, 5) == [
        "q0 0 1",
        "q1 0 1 2 3 4",
        "dropped 3",
    ]


def test_wildcard_routing(run_py, runtime, mosquitto, prefix):
    assert scenario(run_py, runtime, "routing", mosquitto, prefix) == [
        "a a/1 a/2",
        "b b b/x/y",
        "inbox c",
    ]


def test_reconnect_after_broker_restart_restores_subscriptions(start_py, runtime, mosquitto,
                                                              prefix, pub):
    p = start_py(runtime, SCEN, ("restart", mosquitto.port, prefix))
    p.expect("ready")
    mosquitto.restart()
    assert p.expect("down", timeout=20) == "down ConnectionLost"
    assert p.expect("up", timeout=30) == "up False"
    p.expect("ready2", timeout=10)
    pub(mosquitto, f"{prefix}/r", "after restart", qos=1)
    assert p.expect("got", timeout=20) == "got r after restart"
    assert p.wait(timeout=15) == 0


def test_first_connect_failure_is_retried(start_py, runtime, mosquitto_factory, prefix, sub):
    broker = mosquitto_factory()
    broker.stop()
    p = start_py(runtime, SCEN, ("first_connect_fails", broker.port, prefix))
    p.expect("ready")
    assert p.expect("timeout", timeout=20).startswith("timeout ")
    broker.start()
    p.expect("connected", timeout=30)
    p.expect("flushed", timeout=15)
    assert p.wait(timeout=15) == 0
    # The message queued while offline reached the broker (it was retained).
    assert sub(broker, f"{prefix}/early", count=1).lines() == [
        f"{prefix}/early queued while offline"]


def test_silent_link_is_found_by_keepalive(start_py, runtime, mosquitto, prefix):
    # keepalive 2 s: a frozen broker must be declared lost within 1.5 x 2 s (+ scheduling slack).
    p = start_py(runtime, SCEN, ("keepalive", mosquitto.port, prefix))
    p.expect("ready")
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        assert p.expect("down", timeout=10) == "down ConnectionLost"
        assert time.monotonic() - t0 <= 1.5 * 2 + 1.0
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    p.expect("up", timeout=30)
    assert p.wait(timeout=15) == 0


@pytest.mark.parametrize("version", [4, 5])
def test_poison_message_is_skipped_acknowledged_and_not_resent(start_py, runtime, mosquitto,
                                                               prefix, pub, version):
    # Retained messages over the client's max_packet on a subscribed topic: closing the
    # link would get them re-sent at every resubscribe, forever. Each is read and thrown
    # away in pieces, acknowledged as its QoS requires (§4.3.2 PUBACK, §4.3.3 PUBREC ..
    # PUBCOMP) so the broker does not send it again, counted and logged; the link stays.
    pub(mosquitto, f"{prefix}/p1", b"1" * 3000, qos=1, retain=True)
    pub(mosquitto, f"{prefix}/p2", b"2" * 3000, qos=2, retain=True)
    p = start_py(runtime, SCEN, ("poison", mosquitto.port, prefix, version))
    p.expect("ready", timeout=30)
    pub(mosquitto, f"{prefix}/ok", b"small", qos=1)
    assert p.wait(timeout=30) == 0, p.seen + [p.readline(timeout=5) for _ in range(20)]
    size = 1 + 2 + 2 + len(prefix) + 3 + 2 + 3000 + (1 if version == 5 else 0)
    assert p.seen == [
        "granted 2", "oversized 2 connects 1 error None", "present True", "ready",
        "got /ok b'small'", "oversized 2 connects 2",
        f"log skipped a PUBLISH of {size} bytes over max_packet (QoS 1, acknowledged)",
        f"log skipped a PUBLISH of {size} bytes over max_packet (QoS 2, acknowledged)"], p.seen


def test_announced_maximum_packet_size_keeps_poison_at_the_broker(start_py, runtime, mosquitto,
                                                                 prefix, pub):
    # MQTT 5 with announce_max_packet=True: CONNECT carries our Maximum Packet Size, and the
    # broker MUST NOT send a bigger packet [MQTT-3.1.2-24]: nothing to skip, the small one
    # arrives.
    pub(mosquitto, f"{prefix}/p1", b"1" * 3000, qos=1, retain=True)
    p = start_py(runtime, SCEN, ("poison", mosquitto.port, prefix, "5a"))
    p.expect("ready", timeout=30)
    pub(mosquitto, f"{prefix}/ok", b"small", qos=1)
    assert p.wait(timeout=30) == 0, p.seen + [p.readline(timeout=5) for _ in range(20)]
    assert p.seen == ["granted 2", "oversized 0 connects 1 error None", "present True", "ready",
                      "got /ok b'small'", "oversized 0 connects 2"], p.seen
