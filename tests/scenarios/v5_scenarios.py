# MQTT 5.0 client scenarios that run unchanged on CPython and the MicroPython unix port.
#   <python> v5_scenarios.py NAME PORT PREFIX [ARGS...]
# Each prints result lines that tests/test_v5.py checks; "ready" lines tell
# the test when to act (kill us, start another client, ...).
import sys
import asyncio

from mqtt import MQTTClient, ConnectionLost, ConnectRefused
from mqtt.outcome import Undelivered
from mqtt.session import DROPPED
from mqtt import codec5
from mqtt.codec5 import (CORRELATION_DATA, MESSAGE_EXPIRY, NO_LOCAL, RESPONSE_TOPIC,
                         SUBSCRIPTION_ID, USER_PROPERTY, WILL_DELAY)

HOST = "127.0.0.1"
NAME, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]
TAG = PREFIX[2:]


def client(cid, **kw):
    kw.setdefault("backoff", (0.2, 1))
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("version", 5)
    return MQTTClient(HOST, PORT, cid, **kw)


def say(*a):
    print(*a)


async def quiet(it, secs=1.0):
    # Messages that arrive before `secs` pass without any.
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(it.__anext__(), secs))
        except asyncio.TimeoutError:
            return got


async def will_delay():
    # ARGS: "wait" (the test kills us) or "return" (we are the same client
    # coming back: stay past the will delay, then leave cleanly).
    c = client("wd-" + TAG, clean=False, keepalive=5, session_expiry=30,
               will=(PREFIX + "/status", b"gone", 1, False, {WILL_DELAY: 3}))
    await c.connect(5)
    say("ready")
    if ARGS[0] == "return":
        await asyncio.sleep(5)
        await c.disconnect()
        say("left")
    else:
        await asyncio.sleep(60)


async def leave_with_will():
    # DISCONNECT with reason 0x04 (§3.14.2.1): a clean exit that still
    # publishes the will. A 3.1.1 client cannot send a reason.
    c = client("lw-" + TAG, will=(PREFIX + "/status", b"gone", 1, False))
    await c.connect(5)
    await c.disconnect(reason=0x04)
    say("left", c.stopped)
    c4 = client("l4-" + TAG, version=4, will=(PREFIX + "/status", b"gone4", 1, False))
    await c4.connect(5)
    try:
        await c4.disconnect(reason=0x04)
    except ValueError as e:
        say("v4", e)
    await c4.disconnect()
    say("v4 left", c4.session.connected)


async def refused():
    # ARGS: user password
    c = client("rf-" + TAG, username=ARGS[0], password=ARGS[1])
    try:
        await c.connect(5)
        say("connected")
    except ConnectRefused as e:
        say("refused", "0x%02x" % e.code, e.reason)
    await c.disconnect()


async def server_disconnect():
    # The broker (max_packet_size 100) closes the link with DISCONNECT 0x95
    # when a packet is too large (§3.14.2.1). The session refuses to queue
    # one; the header of one, written past it, shows the reason reaching
    # the app. (Only the header: the broker then closes with nothing unread,
    # so no TCP reset can overtake its DISCONNECT.)
    c = client("sd-" + TAG)
    await c.connect(5)
    say("max_send", c.session.max_send)
    try:
        await c.publish(PREFIX + "/big", b"x" * 200, 1)
    except ValueError:
        say("publish-refused ValueError", c.session.idle())
    c.session.tx.append(codec5.publish(PREFIX + "/big", b"x" * 200, 0)[:3])
    await c._send()
    await asyncio.wait_for(c.down.wait(), 10)
    e = c.last_error
    say("lost", type(e).__name__, isinstance(e, ConnectionLost), "0x%02x" % e.code, e.reason)
    await asyncio.wait_for(c.up.wait(), 10)
    say("reconnected", c.connects)
    await c.disconnect()


async def max_packet():
    # ARGS: the broker's max_packet_size, 30 or 256. Every packet we send
    # must fit it [MQTT-3.2.2-15]; one that cannot is refused here, and the
    # link and everything else go on.
    c = client("m1", keepalive=30)   # a short id: our CONNECT fits 30 bytes
    await c.connect(5)
    say("max_send", c.session.max_send)
    if ARGS[0] == "30":
        long = PREFIX + "/" + "f" * 20            # a 39-byte SUBSCRIBE
        for what, call in (("subscribe", lambda: c.subscribe(long, 1, timeout=5)),
                           ("unsubscribe", lambda: c.unsubscribe(long, timeout=5))):
            try:
                await call()
                say(what, "sent")
            except ValueError as e:
                say(what, "refused", "MQTT-3.2.2-15" in str(e))
        say("granted", *await c.subscribe(PREFIX + "/a", 1, timeout=5))
        await c.publish(PREFIX + "/a", b"hi", 1)
        m = await asyncio.wait_for(c.messages().__anext__(), 5)
        say("got", m.payload.decode())
    else:
        # 256 bytes without a topic alias; an alias would add 3
        topic = PREFIX + "/big"
        n = 256 - len(codec5.publish(topic, b"", 1, pid=1)) - 1
        for b in (b"x", b"y"):
            await c.publish(topic, b * n, 1)
        await c.publish(topic, b"small", 1)
        await c.flush(5)
        say("flushed", len(codec5.publish(topic, b"x" * n, 1, pid=1)))
    say("connects", c.connects, "up", c.up.is_set(), "error", c.last_error)
    await c.disconnect()


async def long_expiry():
    # Any Message Expiry Interval (§3.3.2.3.3): one queued offline for 2 s,
    # then some sent live; the broker forwards each with what is left.
    c = client("le-" + TAG)
    await c.publish(PREFIX + "/le", b"offline", 1, props={MESSAGE_EXPIRY: 13 * 86400})
    await asyncio.sleep(2)
    await c.connect(5)
    for secs in (7 * 86400, 13 * 86400, 0xFFFFFFFF):
        await c.publish(PREFIX + "/le", b"%d" % secs, 1, props={MESSAGE_EXPIRY: secs})
    await c.flush(5)
    say("dropped", c.session.dropped)
    await c.disconnect()


async def receive_max():
    # ARGS: count. The broker's receive maximum caps our QoS 1 window.
    n = int(ARGS[0])
    c = client("rm-" + TAG, window=16, queue=64)
    await c.connect(5)
    s = c.session
    most = 0
    for i in range(n):
        await c.publish(PREFIX + "/rm", str(i), 1, timeout=10)
        most = max(most, len(s._out))
    await c.flush(20)
    say("window", s.window, "most-in-flight", most, "dropped", s.dropped)
    await c.disconnect()


async def expiry():
    # Published while offline; the first expires before we connect.
    c = client("ex-" + TAG)
    old = await c.publish(PREFIX + "/e", b"old", 1, props={MESSAGE_EXPIRY: 1})
    await c.publish(PREFIX + "/e", b"keep", 1)
    await c.publish(PREFIX + "/e", b"long", 1, props={MESSAGE_EXPIRY: 600})
    await asyncio.sleep(2)
    await c.connect(5)
    try:
        await c.flush(5)
        say("flushed")
    except Undelivered as e:   # flush() names the expired one
        say("undelivered", e.failed == [(old, DROPPED)])
    say("dropped", c.session.dropped)
    await c.disconnect()


async def alias():
    # ARGS: version. Bytes of PUBLISH packets written for 20 messages to one long topic.
    v = int(ARGS[0])
    c = client("al%d-" % v + TAG, version=v)
    s = c.session
    sent = [0]
    take = s.take

    def counting_take(now):
        tx = take(now)
        for p in tx:
            if p[0] >> 4 == 3:
                sent[0] += len(p)
        return tx

    s.take = counting_take
    await c.connect(5)
    say("alias_max", getattr(s, "alias_max", 0))
    topic = PREFIX + "/a/rather/long/topic/name/for/a/sensor/node/temperature"
    for i in range(20):
        await c.publish(topic, str(i), 1)
    await c.flush(10)
    say("bytes", sent[0])
    await c.disconnect()


async def request():
    # A responder answers on the response topic with the correlation data
    # (§4.10); the requester gets each response to its own request.
    r = client("rr-" + TAG)
    await r.connect(5)
    await r.subscribe(PREFIX + "/req", 1, timeout=5)

    async def respond():
        async for m in r.messages():
            p = m.props
            await r.publish(p[RESPONSE_TOPIC], b"re:" + m.payload, 1,
                            props={CORRELATION_DATA: p[CORRELATION_DATA]})

    task = asyncio.create_task(respond())
    c = client("rq-" + TAG)
    await c.connect(5)
    m = await c.request(PREFIX + "/req", b"one", 10)
    say("response", m.payload.decode())
    got = await asyncio.gather(*[c.request(PREFIX + "/req", b"n%d" % i, 10) for i in range(3)])
    say("responses", *[m.payload.decode() for m in got])
    await c.disconnect()
    await r.disconnect()
    task.cancel()


async def shared():
    # ARGS: count. Two members of share group g get the messages between them.
    n = int(ARGS[0])
    a = client("sa-" + TAG)
    b = client("sb-" + TAG)
    for c in (a, b):
        await c.connect(5)
        say("granted", *await c.subscribe("$share/g/" + PREFIX + "/s", 1, timeout=5))
    p = client("sp-" + TAG)
    await p.connect(5)
    for i in range(n):
        await p.publish(PREFIX + "/s", str(i), 1)
    await p.flush(10)
    ga = await quiet(a.messages(), 1.5)
    gb = await quiet(b.messages(), 0.5)
    pa = [int(m.payload) for m in ga]
    pb = [int(m.payload) for m in gb]
    say("counts", len(pa), len(pb))
    say("union", sorted(pa + pb) == list(range(n)))
    for c in (a, b, p):
        await c.disconnect()


async def props():
    # User properties and subscription identifiers reach the receiver
    # (§3.3.2.3.7, §3.3.2.3.8); no local keeps our own messages away (§3.8.3.1).
    c = client("pr-" + TAG)
    await c.connect(5)
    say("granted", *await c.subscribe(PREFIX + "/p", 1, timeout=5, props={SUBSCRIPTION_ID: 7}))
    say("granted", *await c.subscribe(PREFIX + "/nl", 1 | NO_LOCAL, timeout=5))
    await c.publish(PREFIX + "/p", b"x", 1, props={USER_PROPERTY: [("unit", "C"), ("k", "v")]})
    await c.publish(PREFIX + "/nl", b"own", 1)
    await c.flush(5)
    got = await quiet(c.messages())
    for m in got:
        say("got", m.topic[len(PREFIX) + 1:], m.payload.decode(), m.props.get(USER_PROPERTY),
            m.props.get(SUBSCRIPTION_ID))
    await c.disconnect()


asyncio.run(globals()[NAME]())
