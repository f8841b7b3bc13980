# Worker for suite.py, on the MicroPython unix port or CPython.
# argv: client mode host port qos n tmax_ms topic client_id
#   client  mqnode (lib/mqtt) | mqnode5 (lib/mqtt, version=5) | raw (_raw_client.py) | umqtt (umqtt.simple)
#           | mqtt_async (tve's, PyPI micropython-mqtt) | mqtt_as (Peter Hinch's mqtt_as)
#   mode    tput: publish up to n 64-byte messages at qos (or until tmax_ms), at QoS 1/2
#                 until the last acknowledgement; prints "sent <count> <us>"
#           rtt:  subscribe to topic at qos, then publish -> own receive, one at a time,
#                 up to n (or tmax_ms); prints "rtt <us> <us> ..."
#           heap: as rtt, n round trips, no samples kept (the heap bisection)
# Ends with "done". Timings only; nothing is asserted.
import sys

try:
    from time import ticks_us, ticks_diff
except ImportError:  # CPython
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b

PAYLOAD = b"x" * 64
argv = sys.argv[1:]
CLIENT, MODE, HOST, PORT, QOS, N, TMAX, TOPIC, CID = argv[:9]
PORT, QOS, N, TMAX = int(PORT), int(QOS), int(N), int(TMAX) * 1000
KEEP = MODE == "rtt"


def report_tput(count, us):
    print("sent", count, us)


def report_rtt(samples):
    if KEEP:
        print("rtt", " ".join(str(x) for x in samples))


# ---- blocking clients ----

def run_blocking():
    if CLIENT == "raw":
        from _raw_client import RawClient
        c = RawClient(HOST, PORT, CID)
        got = c.inbox

        def pub(qos):
            c.publish(TOPIC, PAYLOAD, qos)

        def sub(qos):
            c.subscribe(TOPIC, qos)

        def wait():
            while not got:
                c._handle(*c.read_packet())
            got.pop()
    else:  # umqtt.simple
        from umqtt.simple import MQTTClient
        c = MQTTClient(CID, HOST, PORT)
        got = []
        c.set_callback(lambda t, m: got.append(m))
        c.connect()

        def pub(qos):
            c.publish(TOPIC, PAYLOAD, qos=qos)

        def sub(qos):
            c.subscribe(TOPIC, qos)

        def wait():
            while not got:
                c.wait_msg()
            got.pop()
    t0 = ticks_us()
    if MODE == "tput":
        i = 0
        while i < N:
            pub(QOS)
            i += 1
            if i & 15 == 0 and ticks_diff(ticks_us(), t0) > TMAX:
                break
        report_tput(i, ticks_diff(ticks_us(), t0))
    else:
        sub(QOS)
        samples = []
        t0 = ticks_us()
        for i in range(N):
            t = ticks_us()
            pub(QOS)
            wait()
            if KEEP:
                samples.append(ticks_diff(ticks_us(), t))
                if ticks_diff(ticks_us(), t0) > TMAX:
                    break
        report_rtt(samples)
    c.disconnect()


# ---- asyncio clients ----

async def run_async():
    import asyncio
    if CLIENT in ("mqnode", "mqnode5"):
        from mqtt import MQTTClient
        c = MQTTClient(HOST, PORT, CID, keepalive=60, version=5 if CLIENT == "mqnode5" else 4)
        await c.connect(10)
        inbox = c.messages() if MODE != "tput" else None

        async def pub(qos):
            await c.publish(TOPIC, PAYLOAD, qos, timeout=10)

        async def last():
            await c.flush(10)

        async def sub(qos):
            await c.subscribe(TOPIC, qos, timeout=10)

        # No asyncio.wait_for around the waits of either asyncio client: on
        # MicroPython it costs ~40 us a call (it runs the awaitable as a new
        # task), as much as the round trip measured. The suite's subprocess
        # timeout bounds a hang instead.
        async def wait():
            await inbox.__anext__()
    elif CLIENT == "mqtt_as":  # Peter Hinch's mqtt_as (0.8.3 from ../shared/vendor/anchors)
        from mqtt_as import MQTTClient, config
        ev = asyncio.Event()

        def cb(topic, msg, retained):
            ev.set()
        config.update(server=HOST, port=PORT, client_id=CID, subs_cb=cb)
        c = MQTTClient(config)
        # quick: no 5 s "Wi-Fi integrity" check (bench/_stubs' network is always up)
        await c.connect(quick=True)

        async def pub(qos):
            await c.publish(TOPIC, PAYLOAD, False, qos)   # QoS 1: returns on its PUBACK

        async def last():
            pass

        async def sub(qos):
            await c.subscribe(TOPIC, qos)

        async def wait():
            await ev.wait()
            ev.clear()
    else:  # mqtt_async: tve's (PyPI micropython-mqtt 0.7b4), a fork of an older mqtt_as
        import mqtt_async
        ev = asyncio.Event()
        cfg = mqtt_async.MQTTConfig()
        cfg.server, cfg.port, cfg.client_id = HOST, PORT, CID

        def cb(topic, msg, retained, qos):
            ev.set()
        cfg.subs_cb = cb
        c = mqtt_async.MQTTClient(cfg)
        # its _dns_lookup keeps getaddrinfo()[0][-1], which on the unix port is a raw
        # sockaddr, and then calls asyncio.open_connection(addr[0], addr[1]): give it
        # the (host, port) pair a board's getaddrinfo would have returned
        c._dns_lookup = lambda: setattr(c, "_addr", (HOST, PORT))
        await c.connect()
        pend = [0]

        async def pub(qos):
            # sync=False: the ack of one QoS 1 publish is awaited after the next one is sent
            await c.publish(TOPIC, PAYLOAD, qos=qos, sync=MODE != "tput")

        async def last():
            await c.publish(TOPIC, PAYLOAD, qos=QOS, sync=True)  # waits for the previous ack too
            pend[0] = 1

        async def sub(qos):
            await c.subscribe(TOPIC, qos)

        async def wait():
            await ev.wait()
            ev.clear()
    t0 = ticks_us()
    if MODE == "tput":
        i = 0
        while i < N:
            await pub(QOS)
            i += 1
            if i & 15 == 0 and ticks_diff(ticks_us(), t0) > TMAX:
                break
        if QOS:
            await last()
        if CLIENT == "mqtt_async" and QOS:
            i += 1  # the synchronous last publish
        report_tput(i, ticks_diff(ticks_us(), t0))
    else:
        await sub(QOS)
        samples = []
        t0 = ticks_us()
        for i in range(N):
            t = ticks_us()
            await pub(QOS)
            await wait()
            if KEEP:
                samples.append(ticks_diff(ticks_us(), t))
                if ticks_diff(ticks_us(), t0) > TMAX:
                    break
        report_rtt(samples)
    await c.disconnect()


if CLIENT in ("raw", "umqtt"):
    run_blocking()
else:
    import asyncio
    asyncio.run(run_async())
print("done")
