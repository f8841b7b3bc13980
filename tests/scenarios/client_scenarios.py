# Client scenarios that run unchanged on CPython and the MicroPython unix port.
#   <python> client_scenarios.py NAME PORT PREFIX [ARGS...]
# Each prints result lines ("key value ...") that tests/test_client.py checks;
# "ready" lines tell the test when to act (restart the broker, kill us, ...).
import sys
import asyncio

from mqtt import MQTTClient, ConnectRefused

HOST = "127.0.0.1"
NAME, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]


def client(cid, **kw):
    kw.setdefault("backoff", (0.2, 1))
    kw.setdefault("connect_timeout", 5)
    return MQTTClient(HOST, PORT, cid, **kw)


def say(*a):
    print(*a)


async def take(it, n, timeout=10):
    got = []
    for _ in range(n):
        got.append(await asyncio.wait_for(it.__anext__(), timeout))
    return got


async def quiet(it, secs=1.0):
    # Messages that arrive before `secs` pass without any.
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(it.__anext__(), secs))
        except asyncio.TimeoutError:
            return got


async def connect_disconnect():
    c = client("cd-" + PREFIX[2:])
    say("session_present", await c.connect(5))
    say("connected", c.session.connected, c.up.is_set(), c.down.is_set())
    await c.disconnect()
    say("disconnected", c.session.connected, c.up.is_set(), c.down.is_set())


async def refused():
    # ARGS: user password [client_id] ("-" for none, "" for an empty id)
    user, pw = (None if a == "-" else a for a in ARGS[:2])
    c = client(ARGS[2] if len(ARGS) > 2 else "rf-" + PREFIX[2:], username=user, password=pw)
    try:
        await c.connect(5)
        say("connected")
    except ConnectRefused as e:
        say("refused", e.code, e.reason)
    await c.disconnect()


async def empty_id():
    try:
        client("", clean=False)
        say("accepted")
    except ValueError as e:
        say("ValueError", e)
    c = client("", clean=True)
    say("clean-empty-id-connects", await c.connect(5) is False)
    await c.disconnect()


async def qos_round_trip():
    c = client("rt-" + PREFIX[2:])
    await c.connect(5)
    say("granted", *await c.subscribe(PREFIX + "/#", 2, timeout=5))
    for q in (0, 1, 2):
        await c.publish(PREFIX + "/q%d" % q, b"payload %d" % q, q)
    await c.flush(5)
    for m in await take(c.messages(), 3):
        say("got", m.topic, m.payload.decode(), m.qos, m.retain, m.dup)
    say("idle", c.session.idle())
    await c.disconnect()


async def burst():
    # ARGS: count qos; pipelined publishes counted by an outside subscriber.
    n, q = int(ARGS[0]), int(ARGS[1])
    c = client("bu-" + PREFIX[2:], window=8, queue=8)
    await c.connect(5)
    for i in range(n):
        await c.publish(PREFIX + "/burst", str(i), q, timeout=10)
    await c.flush(20)
    say("flushed", n, c.session.dropped)
    await c.disconnect()


async def retained():
    c = client("re-" + PREFIX[2:])
    await c.connect(5)
    await c.publish(PREFIX + "/status", b"online", 1, retain=True)
    await c.flush(5)
    await c.subscribe(PREFIX + "/status", 1, timeout=5)
    m = (await take(c.messages(), 1))[0]
    say("retained", m.topic, m.payload.decode(), m.retain)
    await c.unsubscribe(PREFIX + "/status", timeout=5)
    await c.publish(PREFIX + "/status", b"", 1, retain=True)  # clears it (§3.3.1.3)
    await c.flush(5)
    await c.subscribe(PREFIX + "/status", 1, timeout=5)
    say("after-clear", len(await quiet(c.messages())))
    await c.disconnect()


async def will():
    # ARGS: "kill" (the test kills us) or "disconnect" (clean exit).
    c = client("wi-" + PREFIX[2:], will=(PREFIX + "/status", b"offline", 1, True), keepalive=5)
    await c.connect(5)
    await c.publish(PREFIX + "/status", b"online", 1, retain=True)
    await c.flush(5)
    say("ready")
    if ARGS[0] == "disconnect":
        await c.disconnect()
        say("disconnected")
    else:
        await asyncio.sleep(60)


async def persistent():
    # A clean=False session subscribes, leaves, comes back to what was sent meanwhile.
    cid = "ps-" + PREFIX[2:]
    c = client(cid, clean=False)
    say("first-session_present", await c.connect(5))
    await c.subscribe(PREFIX + "/p", 1, timeout=5)
    await c.disconnect()
    p = client("pp-" + PREFIX[2:])
    await p.connect(5)
    for i in range(3):
        await p.publish(PREFIX + "/p", "away %d" % i, 1)
    await p.flush(5)
    await p.disconnect()
    c = client(cid, clean=False)
    # Asked while offline (packet id 1): goes out after the CONNACK, whose
    # session-present flag must not be taken for its SUBACK.
    sub = asyncio.create_task(c.subscribe(PREFIX + "/q", 1, timeout=5))
    say("second-session_present", await c.connect(5))
    say("offline-subscribe", await sub)
    for m in await take(c.messages(), 3):
        say("got", m.payload.decode(), m.qos)
    await c.disconnect()
    c = client(cid, clean=True)  # leave no session behind
    await c.connect(5)
    await c.disconnect()


async def qos2_once():
    # ARGS: count. Messages are held unacknowledged while the test restarts
    # the (persistent) broker; it re-sends them with DUP; each must reach the
    # application once.
    n = int(ARGS[0])
    c = client("q2-" + PREFIX[2:], clean=False)
    await c.connect(5)
    await c.subscribe(PREFIX + "/q2", 2, timeout=5)
    p = client("q2p-" + PREFIX[2:])
    await p.connect(5)
    for i in range(n):
        await p.publish(PREFIX + "/q2", str(i), 2)
    await p.flush(5)
    await p.disconnect()
    it = c.messages()
    for _ in range(100):
        if len(it) >= n:
            break
        await asyncio.sleep(0.1)
    say("held", len(it))
    say("ready")
    await asyncio.wait_for(c.down.wait(), 20)
    await asyncio.wait_for(c.up.wait(), 20)
    say("reconnected", c.session.session_present)
    got = await quiet(it, 1.5)
    say("delivered", len(got), "distinct", len(set(m.payload for m in got)))
    await c.disconnect()


async def inbox_overflow():
    # ARGS: count. QoS 0 messages beyond the inbox are dropped and counted;
    # QoS 1 ones are kept (acknowledged only when taken).
    n = int(ARGS[0])
    c = client("io-" + PREFIX[2:], inbox=2)
    await c.connect(5)
    await c.subscribe(PREFIX + "/#", 1, timeout=5)
    for i in range(n):
        await c.publish(PREFIX + "/q0", str(i), 0)
    for i in range(n):
        await c.publish(PREFIX + "/q1", str(i), 1)
    await c.flush(5)
    it = c.messages()
    for _ in range(100):
        if len(it) >= 2 + n:
            break
        await asyncio.sleep(0.05)
    got = await quiet(it)
    say("q0", *[m.payload.decode() for m in got if m.qos == 0])
    say("q1", *[m.payload.decode() for m in got if m.qos == 1])
    say("dropped", it.dropped)
    await c.disconnect()


async def routing():
    c = client("ro-" + PREFIX[2:])
    await c.connect(5)
    seen = {"a": [], "b": []}
    await c.subscribe(PREFIX + "/a/+", 1, handler=lambda m: seen["a"].append(m.topic), timeout=5)
    await c.subscribe(PREFIX + "/b/#", 1, handler=lambda m: seen["b"].append(m.topic), timeout=5)
    await c.subscribe(PREFIX + "/c", 1, timeout=5)
    for t in ("a/1", "a/2", "a/1/deep", "b", "b/x/y", "c"):
        await c.publish(PREFIX + "/" + t, b"x", 1)
    await c.flush(5)
    rest = await quiet(c.messages())
    say("a", *sorted(t[len(PREFIX) + 1:] for t in seen["a"]))
    say("b", *sorted(t[len(PREFIX) + 1:] for t in seen["b"]))
    say("inbox", *sorted(m.topic[len(PREFIX) + 1:] for m in rest))
    await c.disconnect()


async def restart():
    # The test restarts the broker (no persistence): we come back and
    # subscribe again by ourselves.
    c = client("rs-" + PREFIX[2:], keepalive=5)
    await c.connect(5)
    await c.subscribe(PREFIX + "/r", 1, timeout=5)
    say("ready")
    await asyncio.wait_for(c.down.wait(), 20)
    say("down", type(c.last_error).__name__)
    await asyncio.wait_for(c.up.wait(), 30)
    say("up", c.session.session_present)
    while c.session._pending:  # the restoring SUBSCRIBE is not acknowledged yet
        await asyncio.sleep(0.05)
    say("ready2")
    m = (await take(c.messages(), 1, 20))[0]
    say("got", m.topic[len(PREFIX) + 1:], m.payload.decode())
    await c.disconnect()


async def first_connect_fails():
    # The broker is not there yet; the test starts it after "ready".
    c = client("fc-" + PREFIX[2:])
    say("ready")
    try:
        await c.connect(2)
    except asyncio.TimeoutError:
        say("timeout", type(c.last_error).__name__)
    await c.publish(PREFIX + "/early", b"queued while offline", 1, retain=True)
    await c.connect(30)
    say("connected")
    await c.flush(10)
    say("flushed")
    await c.disconnect()


async def poison():
    # ARGS: version. Retained messages over our max_packet wait on the topics
    # we subscribe to (QoS 1 and 2): each is skipped, acknowledged and logged;
    # the link stays up, and after a reconnect to the same session the broker
    # does not send them again. Then a small message arrives as usual.
    # "5a": version 5 with announce_max_packet: the broker holds them back.
    logs = []
    v5 = {"session_expiry": 60, "announce_max_packet": ARGS[0] == "5a"}
    c = client("po-" + PREFIX[2:], clean=False, max_packet=1024, version=int(ARGS[0][0]),
               log=logs.append, **(v5 if ARGS[0][0] == "5" else {}))
    await c.connect(5)
    say("granted", *await c.subscribe(PREFIX + "/#", 2, timeout=5))
    for _ in range(40 if ARGS[0] == "5a" else 100):
        if c.session.oversized >= 2:
            break
        await asyncio.sleep(0.05)
    say("oversized", c.session.oversized, "connects", c.connects, "error", c.last_error)
    await c.disconnect()
    await c.connect(5)
    say("present", c.session.session_present)
    print("ready")
    m = await asyncio.wait_for(c.messages().__anext__(), 10)
    say("got", m.topic[len(PREFIX):], m.payload)
    say("oversized", c.session.oversized, "connects", c.connects)
    for line in logs:
        say("log", line)
    await c.disconnect()


async def keepalive():
    # The test freezes the broker (SIGSTOP): the link is up but silent.
    c = client("ka-" + PREFIX[2:], keepalive=2, connect_timeout=2)
    await c.connect(5)
    say("ready")
    await asyncio.wait_for(c.down.wait(), 20)
    say("down", type(c.last_error).__name__)
    await asyncio.wait_for(c.up.wait(), 30)
    say("up")
    await c.disconnect()


asyncio.run(globals()[NAME]())
