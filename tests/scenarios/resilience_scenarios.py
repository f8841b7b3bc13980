# Resilience scenarios that run unchanged on CPython and the MicroPython unix port.
#   <python> resilience_scenarios.py NAME PORT PREFIX [ARGS...]
# PORT is usually the fault-injecting proxy (tests/faults/proxy.py) that the
# test drives; a direct broker port, when needed, is in ARGS. Each scenario
# prints result lines ("key value ...") that tests/test_resilience.py checks;
# "ready" lines tell the test when to act.
import sys
import gc
import asyncio

from mqtt import MQTTClient
from mqtt.outcome import Undelivered
from tally import Tally
from mqtt.compat import ticks_ms, sleep_ms

HOST = "127.0.0.1"
NAME, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]
ID = PREFIX[2:]
MP = sys.implementation.name == "micropython"


def ticks_diff(a, b):
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


def client(cid, port=None, **kw):
    kw.setdefault("backoff", (0.2, 1))
    kw.setdefault("connect_timeout", 5)
    return MQTTClient(HOST, port or PORT, cid, **kw)


def say(*a):
    print(*a)


_tm = None


def mem():
    """Bytes in use after a collection: gc.mem_alloc() on MicroPython, the
    tracemalloc figure on CPython (started by the first call)."""
    global _tm
    gc.collect()
    if MP:
        return gc.mem_alloc()
    if _tm is None:
        import tracemalloc
        _tm = tracemalloc
        _tm.start()
    return _tm.get_traced_memory()[0]


def free():
    gc.collect()
    return gc.mem_free() if MP else -1


def fds():
    """Open file descriptors of this process (Linux)."""
    import os
    if MP:
        return len(list(os.ilistdir("/proc/self/fd")))
    return len(os.listdir("/proc/self/fd"))


def tasks():
    # CPython only: the tasks alive besides the current one (-1 on MicroPython)
    if MP:
        return -1
    return len(asyncio.all_tasks()) - 1


async def until(cond, timeout, step=20):
    t0 = ticks_ms()
    while not cond():
        if ticks_diff(ticks_ms(), t0) > timeout * 1000:
            raise asyncio.TimeoutError()
        await sleep_ms(step)


# ---- half-open link -------------------------------------------------------


async def half_open():
    # keepalive 2 s; the test blackholes the proxy after "ready", then lets
    # traffic pass again after "down".
    c = client("ho-" + ID, keepalive=2, connect_timeout=2, backoff=(0.2, 1))
    await c.connect(10)
    say("ready")
    await asyncio.wait_for(c.down.wait(), 30)
    # how long the link had been silent (nothing received) when it was declared lost
    say("down", type(c.last_error).__name__, ticks_diff(ticks_ms(), c.session._last_rx))
    await asyncio.wait_for(c.up.wait(), 30)
    say("up", c.connects)
    await c.disconnect()


# ---- broker down, back off, come back ------------------------------------


async def backoff():
    # ARGS: clients first cap. The broker behind the proxy is down; the test
    # records every attempt at the proxy and starts the broker after a while.
    n, first, cap = int(ARGS[0]), float(ARGS[1]), float(ARGS[2])
    cs = [client("bo-%d-%s" % (i, ID), backoff=(first, cap), connect_timeout=2)
          for i in range(n)]
    waits = [asyncio.create_task(c.connect()) for c in cs]
    say("ready")
    for w in waits:
        await asyncio.wait_for(w, 120)
    say("up", n, sum(c.connects for c in cs))
    for c in cs:
        await c.disconnect()


# ---- QoS 1/2 in flight across a cut ---------------------------------------


async def qos_cut():
    # ARGS: qos reconnects. One message; the test's proxy cuts the link at a
    # chosen step of the flow. We wait until the client has reconnected
    # `reconnects` times so the re-sends (or their absence) are on the wire.
    q, want = int(ARGS[0]), int(ARGS[1])
    c = client("qc-" + ID, clean=False, keepalive=5, backoff=(0.1, 0.5))
    await c.connect(10)
    pid = await c.publish(PREFIX + "/q", b"cut-%d" % q, q)
    say("pid", pid)
    await until(lambda: c.connects >= want, 20)
    await c.flush(20)
    await sleep_ms(500)  # anything re-sent after the resume is on the wire by now
    say("done", c.connects, c.session.session_present, c.session.unknown)
    await c.disconnect()


# ---- soak --------------------------------------------------------------------


# ---- offline publishing ----------------------------------------------------


async def offline():
    # ARGS: n queue. The proxy refuses every connection until the test sets it
    # to pass after "ready"; meanwhile we publish n QoS 1 messages.
    n, qmax = int(ARGS[0]), int(ARGS[1])
    mem()
    c = client("of-" + ID, queue=qmax, backoff=(0.2, 0.5), connect_timeout=2)
    try:
        await c.connect(1)
    except asyncio.TimeoutError:
        say("offline", type(c.last_error).__name__)
    longest = 0
    m = []
    for i in range(n):
        await c.publish(PREFIX + "/off", b"%d" % i + b"." * 60, 1)
        longest = max(longest, len(c.session._queue))
        if (i + 1) % (n // 4) == 0:
            m.append(mem())
    say("queue", longest, "dropped", c.session.dropped)
    say("mem", *m)
    say("ready")
    await c.connect(30)
    try:
        await c.flush(20)
    except Undelivered as e:
        say("undelivered", len(e.failed))
    say("flushed", c.session.dropped, c.session.idle())
    await c.disconnect()


# ---- inbound flood, slow application --------------------------------------


async def flood():
    # ARGS: direct_port n sleep_ms stall_s [size]. B (through the proxy,
    # keepalive 2) reads slowly, and once stalls for stall_s (> keepalive)
    # without reading; P (direct) publishes n QoS 1 messages (of size bytes)
    # at once.
    dport, n, slow, stall = int(ARGS[0]), int(ARGS[1]), int(ARGS[2]), float(ARGS[3])
    pad = b" " * (int(ARGS[4]) - 4) if len(ARGS) > 4 else b""
    mem()
    b = client("fb-" + ID, keepalive=2, inbox=4)
    await b.connect(10)
    await b.subscribe(PREFIX + "/f", 1, timeout=10)
    p = client("fp-" + ID, port=dport, window=32, queue=64)
    await p.connect(10)
    for i in range(n):
        await p.publish(PREFIX + "/f", b"%d" % i + pad, 1)
    say("published", n)
    t = Tally(n)
    held = 0
    m = []
    k = 0
    it = b.messages()
    while t.distinct < n:
        msg = await asyncio.wait_for(it.__anext__(), 30)
        t.add(int(msg.payload))
        held = max(held, len(it) + 1)  # the one taken is still being worked on
        k += 1
        if k == n // 2:
            say("stall")
            await sleep_ms(int(stall * 1000))
        else:
            await sleep_ms(slow)
        if k % (n // 5) == 0:
            m.append(mem())
    await p.flush(10)
    say("got", t.distinct, "dups", t.dups, "disorder", t.disorder)
    say("held", held, "dropped", it.dropped)
    say("connects", b.connects, type(b.last_error).__name__)
    say("mem", *m)
    await p.disconnect()
    await b.disconnect()


# ---- a broker that never answers CONNECT -----------------------------------


async def no_connack():
    # ARGS: rounds connect_timeout. PORT is a listener that accepts and never
    # sends a (whole) CONNACK, or one whose TCP connect never completes. Each
    # round: a client tries for a while (several attempts), then disconnects.
    rounds, cto = int(ARGS[0]), float(ARGS[1])
    mem()  # starts tracemalloc on CPython
    base_fd, base_tasks = fds(), tasks()
    m = []
    for r in range(rounds):
        c = client("nc-%d-%s" % (r, ID), connect_timeout=cto, backoff=(0.05, 0.1))
        try:
            await c.connect(cto * 3 + 0.5)
            say("connected?!")
        except asyncio.TimeoutError:
            pass
        say("round", r, type(c.last_error).__name__)
        await c.disconnect()
        c = None
        await sleep_ms(50)
        m.append(mem())
    await sleep_ms(200)
    say("fds", base_fd, fds())
    say("tasks", base_tasks, tasks())
    say("mem", *m)


# ---- cancellation, a hundred times -----------------------------------------


async def cancels():
    # ARGS: rounds silent_port refused_port stuck_port. PORT is a working
    # broker (through the proxy). Each round cancels things mid-way:
    #  0: publish tasks waiting for room (connected, queue full), one cancelled
    #     in the middle of its send; then disconnect
    #  1: the task awaiting connect() cancelled while the client waits for a
    #     CONNACK that never comes; then disconnect (cancels the retry loop)
    #  2: disconnect during the backoff sleep (broker refuses TCP)
    #  3: disconnect while the TCP connect itself hangs (full backlog)
    rounds = int(ARGS[0])
    silent, refused, stuck = int(ARGS[1]), int(ARGS[2]), int(ARGS[3])
    mem()  # starts tracemalloc on CPython
    base_fd, base_tasks = fds(), tasks()
    m = []
    seed = 12345
    for r in range(rounds):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        jitter = seed % 150
        kind = r % 4
        if kind == 0:
            c = client("cx-%d-%s" % (r, ID), queue=1, window=1)
            await c.connect(10)
            ps = [asyncio.create_task(c.publish(PREFIX + "/c", b"x", 1, timeout=10))
                  for _ in range(4)]
            await sleep_ms(jitter % 5)
            for t in ps:
                t.cancel()
            for t in ps:
                try:
                    await t
                except asyncio.CancelledError:
                    pass
            await c.disconnect()
        else:
            port = (silent, refused, stuck)[kind - 1]
            c = client("cx-%d-%s" % (r, ID), port=port, connect_timeout=0.5, backoff=(0.05, 0.2))
            t = asyncio.create_task(c.connect())
            await sleep_ms(20 + jitter)
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass
            await c.disconnect()
        c = None
        if r % 20 == 19:
            m.append(mem())
    await sleep_ms(300)
    say("fds", base_fd, fds())
    say("tasks", base_tasks, tasks())
    say("mem", *m)
    say("done", rounds)


asyncio.run(globals()[NAME]())
