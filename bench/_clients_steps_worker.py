# Worker for heap32_clients.py (MicroPython, code frozen): the heap in use after
# each step of a client's life, gc.collect()ed, as "step <name> <bytes>" lines
# relative to the start; then "done". argv: client host port.
#   client  mqnode | mqnode5 | mqtt_as | umqtt
# The steps: import asyncio (every client here but umqtt.simple needs it), import
# the client (with the asyncio parts it pulls in), make the client, connect,
# subscribe (QoS 1), the first 3 QoS 1 round trips, 100 more, disconnect.
import gc
import sys

gc.collect()
A0 = gc.mem_alloc()
CLIENT, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
TOPIC = "steps/" + CLIENT
PAYLOAD = b"p" * 64


def step(name):
    gc.collect()
    print("step", name, gc.mem_alloc() - A0)


if CLIENT == "umqtt":
    step("start")
    from umqtt.simple import MQTTClient
    step("import client")
    got = []
    c = MQTTClient("steps-umqtt", HOST, PORT)
    c.set_callback(lambda t, m: got.append(m))
    step("client object")
    c.connect()
    step("connect")
    c.subscribe(TOPIC, 1)
    step("subscribe")
    for n in (3, 100):
        for i in range(n):
            c.publish(TOPIC, PAYLOAD, qos=1)
            while not got:
                c.wait_msg()
            got.pop()
        step("%d round trips" % (3 if n == 3 else 103))
    c.disconnect()
    step("disconnect")
else:
    import asyncio
    step("import asyncio")

    async def main():
        if CLIENT == "mqtt_as":
            from mqtt_as import MQTTClient, config
            step("import client")
            ev = asyncio.Event()
            config.update(server=HOST, port=PORT, client_id="steps-as",
                          subs_cb=lambda t, m, r: ev.set())
            c = MQTTClient(config)
            step("client object")
            await c.connect(quick=True)
            step("connect")
            await c.subscribe(TOPIC, 1)
            step("subscribe")

            async def trip():
                await c.publish(TOPIC, PAYLOAD, False, 1)
                await ev.wait()
                ev.clear()
        else:
            from mqtt import MQTTClient
            step("import client")
            c = MQTTClient(HOST, PORT, "steps-" + CLIENT, keepalive=30,
                           version=5 if CLIENT == "mqnode5" else 4)
            step("client object")
            await c.connect(5)
            step("connect")
            await c.subscribe(TOPIC, 1)
            step("subscribe")
            inbox = c.messages()

            async def trip():
                await c.publish(TOPIC, PAYLOAD, 1)
                await inbox.__anext__()
        for n in (3, 100):
            for i in range(n):
                await trip()
            step("%d round trips" % (3 if n == 3 else 103))
        await c.disconnect()
        step("disconnect")

    asyncio.run(main())
print("done")
