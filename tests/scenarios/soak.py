# The soak: QoS 1 and 2 both ways across a link the test cuts at random, on
# CPython and MicroPython (also compiled, on a 64 KiB heap, where this file is
# the whole application besides the library): tests/test_resilience.py.
#   <python> soak.py soak PORT PREFIX n pace_ms [one window queue inbox]
import sys
import gc
import asyncio

from mqtt import MQTTClient
from mqtt.compat import ticks_ms, sleep_ms
from tally import Tally

NAME, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]
ID = PREFIX[2:]
MP = sys.implementation.name == "micropython"


def ticks_diff(a, b):
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


def client(cid, **kw):
    return MQTTClient("127.0.0.1", PORT, cid, **kw)


def say(*a):
    print(*a)


def free():
    gc.collect()
    return gc.mem_free() if MP else -1


async def soak():
    # ARGS: n pace_ms. Client A publishes n QoS 1 and n QoS 2 messages
    # ("<seq>") on two topics, pausing pace_ms after each pair (so the run
    # lasts long enough for many cuts); client B (its own connection) subscribes to both. Both go
    # through the proxy, which cuts their links at random (seeded by the test);
    # both have persistent sessions (clean=False).
    n, pace = int(ARGS[0]), int(ARGS[1])
    # optional: one (the same client publishes and subscribes), window, queue, inbox
    one = len(ARGS) > 2 and ARGS[2] == "1"
    win, qmax, inbox = (int(x) for x in (ARGS[3:6] if len(ARGS) > 5 else (16, 32, 16)))
    kw = dict(clean=False, keepalive=5, backoff=(0.05, 0.4), connect_timeout=3)
    b = client("sb-" + ID, inbox=inbox, window=win, queue=qmax, **kw)
    a = b if one else client("sa-" + ID, window=win, queue=qmax, **kw)
    await b.connect(10)
    await b.subscribe([(PREFIX + "/q1", 1), (PREFIX + "/q2", 2)], timeout=10)
    if not one:
        await a.connect(10)
    say("free", free())
    t1, t2 = Tally(n), Tally(n)
    samples = []
    t0 = ticks_ms()
    say("ready")

    async def consume():
        k = 0
        async for m in b.messages():
            i = int(m.payload)
            (t1 if m.qos == 1 else t2).add(i)
            k += 1
            if MP and k % 250 == 0:
                samples.append(free())
            if t1.distinct == n and t2.distinct == n:
                return

    ct = asyncio.create_task(consume())
    l1 = PREFIX + "/q1"
    l2 = PREFIX + "/q2"
    for i in range(n):
        p = b"%d" % i
        for topic, q in ((l1, 1), (l2, 2)):
            # The application's part of "no message missing": never publish
            # into a full queue (offline, that drops the oldest).
            while a.session.full():
                await sleep_ms(5)
            await a.publish(topic, p, q)
        if pace:
            await sleep_ms(pace)
    say("published", 2 * n, "dropped", a.session.dropped)
    await a.flush(60)
    say("flushed", ticks_diff(ticks_ms(), t0))
    try:
        await asyncio.wait_for(ct, 60)
    except asyncio.TimeoutError:
        ct.cancel()
    ms = ticks_diff(ticks_ms(), t0)
    await sleep_ms(1000)  # late duplicates would show up now
    say("q1", t1.distinct, "dups", t1.dups, "disorder", t1.disorder)
    say("q2", t2.distinct, "dups", t2.dups, "disorder", t2.disorder)
    say("lost", a.session.dropped, a.session.unknown, b.messages().dropped)
    say("connects", a.connects, b.connects)
    say("ms", ms)
    if MP:
        say("mem", *samples)
    await a.disconnect()
    if not one:
        await b.disconnect()


asyncio.run(soak())
