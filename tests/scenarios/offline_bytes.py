# The offline queue's bounds, on CPython and MicroPython (also compiled, on a
# 64 KiB heap): tests/test_resilience.py drives it through the fault proxy.
#   <python> offline_bytes.py offline_bytes PORT PREFIX n size queue queue_bytes
import sys
import gc
import asyncio

from mqtt import MQTTClient
from mqtt.outcome import Undelivered
from mqtt.session import DROPPED

NAME, PORT, PREFIX = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = sys.argv[4:]
ID = PREFIX[2:]
MP = sys.implementation.name == "micropython"


def say(*a):
    print(*a)


def client(cid, **kw):
    return MQTTClient("127.0.0.1", PORT, cid, **kw)


def free():
    gc.collect()
    return gc.mem_free() if MP else -1


async def offline_bytes():
    # ARGS: n size queue queue_bytes [stop]. As offline, with n messages of
    # `size` bytes: the queue is bounded by queue_bytes as well as by count,
    # and running out of memory while queueing (a 64k heap with a big bound)
    # drops like a full queue: publish() never raises. With stop, the run
    # ends there (the queue has taken the heap: nothing else would fit).
    n, size, qmax, qbytes = (int(a) for a in ARGS[:4])
    c = client("ob-" + ID, queue=qmax, queue_bytes=qbytes, backoff=(0.2, 0.5),
               connect_timeout=2)
    s = c.session
    body = b"." * (size - 8)
    longest = most = 0
    for i in range(n):
        await c.publish(PREFIX + "/ob", b"%07d " % i + body, 1)
        q = s._queue
        longest = max(longest, len(q))
        b = 0
        for e in q:
            b += len(e[1])
        most = max(most, b)
    say("queue", longest, "bytes", most, "dropped", s.dropped, "kept", len(s._queue))
    say("record", len(s.failed), all(code == DROPPED for _, code in s.failed))
    if ARGS[4:] == ["stop"]:
        return
    kept = [e[0] for e in s._queue]
    say("ready")
    await c.connect(30)
    try:
        await c.flush(30)
        say("flushed")
    except Undelivered as e:
        say("undelivered", len(e.failed), all(code == DROPPED for _, code in e.failed),
            all(pid not in kept for pid, _ in e.failed))
    await c.disconnect()


asyncio.run(offline_bytes())
