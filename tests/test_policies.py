"""The client's robustness policies and API promises (issue 13, items 8-15), each on CPython
and the MicroPython unix port, against a real mosquitto where it shows the behaviour and the
misbehaving broker (tests/faults/bad_broker.py) or fault proxy (tests/faults/proxy.py) where
a real broker cannot. The scenarios are in tests/scenarios/policy_scenarios.py."""
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent / "faults"))
from bad_broker import BadBroker  # noqa: E402
from faults.proxy import Proxy  # noqa: E402

SCEN = Path(__file__).parent / "scenarios" / "policy_scenarios.py"


def scenario(run_py, runtime, name, port, prefix, *args, timeout=60, **kw):
    r = run_py(runtime, SCEN, (name, port, prefix) + args, timeout=timeout, **kw)
    assert r.returncode == 0, r.output
    return r.lines


@pytest.fixture
def proxy_to():
    made = []

    def make(port):
        p = Proxy(port).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


# ---- 8: backoff after a refusal; reconnect=False -------------------------------------------


@pytest.mark.parametrize("version, code", [(4, 5), (5, 0x87)])
def test_refused_credentials_back_off_to_the_cap_and_reconnect_false_stops(
        run_py, runtime, mosquitto_factory, proxy_to, prefix, version, code):
    # CONNACK 5 (not authorised, 3.1.1 §3.2.2.3) or 0x87 (not authorized, 5.0 §3.2.2.2; what
    # mosquitto answers a wrong password with) will not change by retrying soon: the next
    # attempts wait the long end of the schedule (cap), never the first delay.
    broker = mosquitto_factory(users={"node": "right-pw"})
    proxy = proxy_to(broker.port)
    cap = 1.5
    lines = scenario(run_py, runtime, "refused", proxy.port, prefix, "node", "wrong", cap,
                     version)
    assert lines == ["refused %d" % code, "refused %d stopped True" % code,
                     "publish-after-stop NotConnected"]
    by = {}
    for t, no in proxy.accepts:
        by.setdefault(proxy.client_ids.get(no), []).append(t)
    times = by["rb-" + prefix[2:]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) >= 2 and all(g >= cap - 0.05 for g in gaps), gaps
    # reconnect=False: one attempt, then the client stopped
    assert len(by["rn-" + prefix[2:]]) == 1, by


def test_reconnect_false_stops_when_the_link_is_lost(start_py, runtime, mosquitto, prefix):
    p = start_py(runtime, SCEN, ("no_reconnect", mosquitto.port, prefix))
    p.expect("ready")
    mosquitto.restart()
    # the client stopped: the cause is in last_error, messages() ended
    assert p.expect("stopped", timeout=20) == "stopped True ConnectionLost StopAsyncIteration"
    assert p.expect("restart", timeout=20) == "restart ok"
    assert p.wait(timeout=15) == 0


# ---- 9: disconnect() waits for the broker to close ----------------------------------------


def test_disconnect_returns_after_the_broker_closed_the_link(run_py, runtime):
    # §3.14.4: the server closes the connection on DISCONNECT. This broker waits 0.5 s first;
    # the next connect() must not start before the old link is closed.
    with BadBroker([["connack", ("linger", 0.5)]]) as b:
        assert scenario(run_py, runtime, "bye", b.port, "t/x", 3) == ["rounds 3"]
        conns = b.connections
        assert len(conns) == 3
        for old, new in zip(conns, conns[1:]):
            assert old.closed_by_broker_at is not None
            assert new.opened >= old.closed_by_broker_at, (new.opened, old.closed_by_broker_at)


def test_disconnect_is_bounded_when_the_broker_never_closes(run_py, runtime):
    with BadBroker([["connack", ("linger", 30)]]) as b:
        t0 = time.monotonic()
        assert scenario(run_py, runtime, "bye_bound", b.port, "t/x") == ["returned True"]
        assert time.monotonic() - t0 < 20   # not the broker's 30 s


# ---- 10: stopping wakes every waiter; no unretrieved exception -----------------------------


def test_disconnect_wakes_every_waiter_while_the_broker_is_down(run_py, runtime, prefix):
    lines = scenario(run_py, runtime, "stop_wakes", free_port(), prefix)
    assert lines[0].startswith("pending 4 last_error "), lines    # all four were waiting
    assert lines[1:] == [
        "woke NotConnected NotConnected NotConnected StopAsyncIteration",
        "last_error NoneType",                        # 15: a clean stop clears the outage
        "publish-after-disconnect NotConnected",      # 15: no silent queueing once stopped
    ]


def test_disconnect_wakes_a_publisher_waiting_for_room(run_py, runtime):
    with BadBroker([["connack", ("mute", {3})]]) as b:     # PUBLISH never acknowledged
        assert scenario(run_py, runtime, "stop_wakes_publisher", b.port, "t/x") == [
            "waiting True", "woke NotConnected"]


def test_no_unretrieved_exception_under_tcp_resets(run_py, runtime, mosquitto, proxy_to, prefix):
    import threading
    proxy = proxy_to(mosquitto.port)
    started = threading.Timer(1.0, lambda: proxy.random_cuts(7, lo=0.2, hi=0.6,
                                                           actions=("reset",)))
    started.start()
    try:
        r = run_py(runtime, SCEN, ("resets", proxy.port, prefix, 5), timeout=90,
                   env={"PYTHONASYNCIODEBUG": "1"})
    finally:
        started.cancel()
        proxy.stop_random_cuts()
    assert r.returncode == 0, r.output
    assert r.lines[-1] == "done True True", r.output
    assert len(proxy.cuts) >= 3, proxy.cuts
    for bad in ("never retrieved", "Exception ignored", "Traceback", "was destroyed"):
        assert bad not in r.output, r.output


# ---- 13: connect(timeout) carries the cause; each failure logged once -----------------------


def test_connect_timeout_carries_the_cause(run_py, runtime, prefix):
    lines = scenario(run_py, runtime, "cause", free_port(), prefix)
    assert lines[0] == "timeout OSError True" or lines[0] == "timeout ConnectionRefusedError True"
    n = int(lines[1].split()[1])
    assert n >= 2 and lines[1].endswith("True"), lines


def test_each_failed_attempt_is_logged_once(run_py, runtime, proxy_to, mosquitto, prefix):
    proxy = proxy_to(mosquitto.port)
    proxy.mode = "cut"          # every connection closed at once: no CONNACK
    lines = scenario(run_py, runtime, "cause_count", proxy.port, prefix, 2)
    # the cause: the link closed before CONNACK (how it shows depends on the timing)
    assert lines[0].split()[1] in ("ConnectionLost", "ConnectionResetError", "OSError",
                                   "BrokenPipeError"), lines
    logged = int(lines[1].split()[1])
    # the attempt in progress when connect() gave up may not have failed yet
    assert logged in (len(proxy.accepts), len(proxy.accepts) - 1), (lines, proxy.accepts)
    assert logged >= 2
    assert lines[2] == lines[1].replace("logs", "logs-after")   # disconnect() is no failure


# ---- 14: handlers ---------------------------------------------------------------------------


def test_async_handlers_refused_and_handler_errors_logged_not_last_error(run_py, runtime,
                                                                        mosquitto, prefix):
    lines = scenario(run_py, runtime, "handlers", mosquitto.port, prefix)
    mp = runtime != "cpython"   # both MicroPython runtimes
    assert lines == [
        "async-def TypeError",
        # MicroPython cannot tell an async bound method until it is called: then it is
        # refused, logged and counted as a handler error instead
        "async-method " + ("ok" if mp else "TypeError"),
        "got g",
        "handler_errors %d last_error NoneType" % (3 if mp else 2),
        "logged 2",
    ], lines


# ---- 15: async with -------------------------------------------------------------------------


def test_async_with_connects_and_disconnects(run_py, runtime, mosquitto, prefix, sub):
    watch = sub(mosquitto, f"{prefix}/x", qos=1)
    assert scenario(run_py, runtime, "context", mosquitto.port, prefix) == [
        "inside True", "after False True"]
    assert watch.wait_for(1) == [f"{prefix}/x x"]
    log = mosquitto.log_text()
    assert "Client cx-%s disconnected." % prefix[2:] in log, log   # a DISCONNECT, not a drop


# ---- 12, 17: what an acknowledgement means --------------------------------------------------


def test_puback_means_accepted_not_delivered(run_py, runtime, mosquitto_factory, prefix, sub,
                                             tmp_path):
    # mosquitto answers a QoS 1 publish its ACL denies with a 3.1.1 PUBACK (which has no code,
    # §3.4) and drops the message: flush() succeeds although nobody can receive it. MQTT 5 has
    # reason codes (§3.4.2.1): the refusal is reported per message.
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite {prefix}/ok\ntopic read {prefix}/#\n")
    broker = mosquitto_factory(extra=[f"acl_file {acl}"])
    watch = sub(broker, f"{prefix}/#", qos=1)
    assert scenario(run_py, runtime, "acl", broker.port, prefix, 4) == ["flushed"]
    assert scenario(run_py, runtime, "acl", broker.port, prefix, 5) == ["undelivered 0x87"]
    time.sleep(0.5)
    watch.stop()
    assert watch.messages == [f"{prefix}/ok x", f"{prefix}/ok x"]   # the denied ones never came
