# The client's robustness policies and API promises (issue 13, items 8-15),
# on CPython and the MicroPython unix port:
#   <python> policy_scenarios.py NAME PORT PREFIX [ARGS...]
# Each prints result lines that tests/test_policies.py checks.
import sys
import gc
import asyncio

from mqtt import MQTTClient, ConnectRefused, NotConnected
from mqtt.outcome import Undelivered

HOST = "127.0.0.1"
NAME, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]
ID = PREFIX[2:]
MP = sys.implementation.name == "micropython"


def client(cid, port=None, **kw):
    kw.setdefault("backoff", (0.2, 1))
    kw.setdefault("connect_timeout", 2)
    return MQTTClient(HOST, port or PORT, cid, **kw)


def say(*a):
    print(*a)


def name(x):
    return type(x).__name__


async def outcome(aw):
    # The name of the exception an awaitable ends with, or "ok".
    try:
        await aw
        return "ok"
    except Exception as e:  # noqa: BLE001 (what it raised is the result)
        return name(e)


async def refused():
    # ARGS: user password cap version. The broker refuses our credentials:
    # connect() raises at once, and the retries wait the long end of the backoff.
    cap, v = float(ARGS[2]), int(ARGS[3])
    c = client("rb-" + ID, username=ARGS[0], password=ARGS[1], backoff=(0.2, cap), version=v)
    try:
        await c.connect(5)
    except ConnectRefused as e:
        say("refused", e.code)
    await asyncio.sleep(cap * 3.2)
    await c.disconnect()
    # reconnect=False: the application stops instead of retrying
    c = client("rn-" + ID, username=ARGS[0], password=ARGS[1], reconnect=False, version=v)
    try:
        await c.connect(5)
    except ConnectRefused as e:
        say("refused", e.code, "stopped", c.stopped)
    await asyncio.sleep(1.5)
    say("publish-after-stop", await outcome(c.publish(PREFIX + "/x", b"x", 1)))


async def no_reconnect():
    # reconnect=False with the link lost (the test restarts the broker): the
    # client stops, its waiters wake with the cause, messages() ends.
    c = client("nr-" + ID, reconnect=False)
    await c.connect(5)
    it = c.messages()
    waiter = asyncio.create_task(outcome(it.__anext__()))
    say("ready")
    await asyncio.wait_for(c.down.wait(), 20)
    say("stopped", c.stopped, name(c.last_error), await asyncio.wait_for(waiter, 5))
    for _ in range(40):   # connect() starts it again, once the broker is back
        r = await outcome(c.connect(10))
        if r == "ok":
            break
        await asyncio.sleep(0.25)
    say("restart", r)
    await c.disconnect()


async def bye():
    # ARGS: rounds. disconnect() then connect() at once, again and again: the
    # next connection starts only after the broker has closed the last one.
    for i in range(int(ARGS[0])):
        c = client("by-" + ID)
        await c.connect(5)
        await c.disconnect()
    say("rounds", ARGS[0])


async def bye_bound():
    # The broker never closes after DISCONNECT: disconnect(timeout) returns anyway.
    c = client("bb-" + ID)
    await c.connect(5)
    await c.disconnect(timeout=1)
    say("returned", c.stopped)


async def stop_wakes():
    # PORT has no broker. Waiters of connect(), subscribe(), flush() and
    # messages() all wake when another task calls disconnect().
    c = client("sw-" + ID)
    await c.publish(PREFIX + "/x", b"queued", 1)
    ws = [asyncio.create_task(outcome(aw)) for aw in (
        c.connect(), c.subscribe(PREFIX + "/s", 1), c.flush(), c.messages().__anext__())]
    await asyncio.sleep(1.0)
    say("pending", sum(1 for w in ws if not w.done()), "last_error", name(c.last_error))
    await c.disconnect()
    woke = []
    for w in ws:   # (no await in a comprehension on MicroPython)
        woke.append(await asyncio.wait_for(w, 5))
    say("woke", *woke)
    say("last_error", name(c.last_error))   # a clean stop clears the old outage
    say("publish-after-disconnect", await outcome(c.publish(PREFIX + "/x", b"x", 1)))


async def stop_wakes_publisher():
    # ARGS: bad-broker port that never acknowledges: a publisher waiting for
    # room in the queue wakes when disconnect() is called.
    c = client("sp-" + ID, window=1, queue=1)
    await c.connect(5)
    await c.publish(PREFIX + "/x", b"1", 1)   # in flight, never acknowledged
    await c.publish(PREFIX + "/x", b"2", 1)   # queued
    w = asyncio.create_task(outcome(c.publish(PREFIX + "/x", b"3", 1)))
    await asyncio.sleep(0.5)
    say("waiting", not w.done())
    await c.disconnect()
    say("woke", await asyncio.wait_for(w, 5))


async def context():
    # async with: connected inside, disconnected after.
    async with client("cx-" + ID) as c:
        say("inside", c.up.is_set())
        await c.publish(PREFIX + "/x", b"x", 1)
        await c.flush(5)
    say("after", c.up.is_set(), c.stopped)


async def cause():
    # connect(timeout) says why it is not connected, and the log hook hears
    # of each failed attempt once. PORT refuses every TCP connection.
    logs = []
    c = client("ca-" + ID, backoff=(0.2, 0.4), log=logs.append)
    try:
        await c.connect(2)
    except asyncio.TimeoutError as e:
        say("timeout", name(e.args[0]) if e.args else "bare", e.args[0] is c.last_error)
    await c.disconnect()
    say("logs", len(logs), all("no link" in ln for ln in logs))


async def cause_count():
    # ARGS: seconds. As cause, through the test's proxy (which counts the
    # attempts): every attempt is closed at once.
    logs = []
    c = client("cc-" + ID, backoff=(0.2, 0.4), log=logs.append)
    try:
        await c.connect(float(ARGS[0]))
    except asyncio.TimeoutError as e:
        say("timeout", name(e.args[0]) if e.args else "bare")
    say("logs", len(logs))
    await c.disconnect()
    say("logs-after", len(logs))


got = []


def good(m):
    got.append(m.topic)


def bad(m):
    raise ValueError("handler bug")


async def async_handler(m):
    got.append("async " + m.topic)


class Obj:
    async def method(self, m):
        got.append("async-method " + m.topic)


async def handlers():
    # async def handlers are refused at subscribe(); a handler's exception is
    # logged and counted, never put in last_error; the others still run.
    logs = []
    c = client("hd-" + ID, log=logs.append)
    await c.connect(5)
    say("async-def", await outcome(c.subscribe(PREFIX + "/a", 1, handler=async_handler)))
    # MicroPython cannot tell an async bound method: it is refused when called
    say("async-method", await outcome(c.subscribe(PREFIX + "/m", 1, handler=Obj().method,
                                                  timeout=5)))
    await c.subscribe(PREFIX + "/g", 1, handler=good, timeout=5)
    await c.subscribe(PREFIX + "/b", 1, handler=bad, timeout=5)
    for t in ("b", "g", "m", "b"):
        await c.publish(PREFIX + "/" + t, b"x", 1)
    await c.flush(5)
    for _ in range(100):
        if len(got) and c.handler_errors >= 2 + MP:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    say("got", *[t[len(PREFIX) + 1:] for t in got])
    say("handler_errors", c.handler_errors, "last_error", name(c.last_error))
    say("logged", len([ln for ln in logs if "handler bug" in ln]))
    await c.disconnect()


async def resets():
    # ARGS: seconds. QoS 1 both ways across a link the test cuts with TCP
    # resets; then stop. Nothing may end with an unretrieved exception.
    secs = float(ARGS[0])
    c = client("rs-" + ID, backoff=(0.05, 0.2))
    await c.connect(10)
    n = [0]

    def count(m):
        n[0] += 1

    await c.subscribe(PREFIX + "/r", 1, handler=count, timeout=10)
    say("ready")
    i = 0
    t = 0
    while t < secs * 100:
        try:
            await c.publish(PREFIX + "/r", b"%d" % i, 1, timeout=2)
            await c.publish(PREFIX + "/q", b"%d" % i, 0)
        except (NotConnected, asyncio.TimeoutError):
            pass
        i += 1
        t += 1
        await asyncio.sleep(0.01)
    try:
        await c.flush(20)
    except Undelivered:
        pass
    await c.disconnect()
    gc.collect()
    await asyncio.sleep(0.1)
    gc.collect()
    say("done", c.connects > 1, n[0] > 0)


async def acl():
    # ARGS: version. The broker's ACL denies writing to PREFIX/denied. What
    # flush() says about a QoS 1 message there (README: Outcome of each message).
    c = client("acl-" + ID, version=int(ARGS[0]))
    await c.connect(5)
    await c.publish(PREFIX + "/denied", b"x", 1)
    ok = await c.publish(PREFIX + "/ok", b"x", 1)
    try:
        await c.flush(5)
        say("flushed")
    except Undelivered as e:
        say("undelivered", *["0x%02x" % code for pid, code in e.failed if pid != ok])
    await c.disconnect()


asyncio.run(globals()[NAME]())
