# Worker for heap.py (MicroPython): gc.mem_free() at each step of a client's
# life. argv: host port n. Prints "key value" lines, then "done".
import gc
gc.collect()
free0 = gc.mem_free()

import sys  # noqa: E402

import asyncio  # noqa: E402 (frozen in; measured apart from mqtt's own cost)
gc.collect()
free_asyncio = gc.mem_free()

from mqtt import MQTTClient  # noqa: E402
gc.collect()
free_import = gc.mem_free()

TOPIC = "bench/heap"
PAYLOAD = b"p" * 64


def out(k, v):
    print(k, v)


async def sampler(st):
    # Every 5 ms: heap in use before a collection (live + garbage) and after
    # it (live only); the maxima are the sampled peaks.
    while st[2]:
        a = gc.mem_alloc()
        gc.collect()
        b = gc.mem_alloc()
        if a > st[0]:
            st[0] = a
        if b > st[1]:
            st[1] = b
        await asyncio.sleep_ms(5)


async def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out("free0", free0)
    out("free_asyncio", free_asyncio)
    out("free_import", free_import)
    out("client_file", sys.modules["mqtt.client"].__file__)
    c = MQTTClient(host, port, client_id="heap", keepalive=30)
    await c.connect(5)
    gc.collect()
    out("free_connect", gc.mem_free())
    await c.subscribe(TOPIC, qos=1, timeout=5)
    inbox = c.messages()
    st = [0, 0, 1]
    t = asyncio.create_task(sampler(st))
    for i in range(n):
        await c.publish(TOPIC, PAYLOAD, qos=1, timeout=5)
        m = await asyncio.wait_for(inbox.__anext__(), 5)
        if m.payload != PAYLOAD:
            raise ValueError("round trip %d: got %r" % (i, m))
    st[2] = 0
    await t
    gc.collect()
    out("free_loop", gc.mem_free())
    out("peak_alloc_raw", st[0])
    out("peak_alloc_live", st[1])
    out("heap_total", gc.mem_free() + gc.mem_alloc())
    await c.disconnect()
    gc.collect()
    out("free_disconnect", gc.mem_free())
    print("done")


asyncio.run(main())
