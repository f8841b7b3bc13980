# The client against tests/faults/bad_broker.py, on CPython and MicroPython:
#   <python> bad_broker_client.py PORT KEEPALIVE MAX_PACKET
# Connects, waits until the client has dropped the bad connection and made a new
# one (or, when the bad bytes came before CONNACK, until the first connect
# succeeds), then proves the new connection works: a QoS 1 publish acknowledged
# and a subscription granted. Any exception reaching this code fails the run.
import sys
import asyncio

from mqtt import MQTTClient

PORT, KA, MAXP = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
got = []


async def main():
    c = MQTTClient("127.0.0.1", PORT, "bad-input", keepalive=KA, backoff=(0.2, 0.5),
                   connect_timeout=3, max_packet=MAXP)
    # made on connect; acknowledged on the first connection that lives long enough
    sub = asyncio.create_task(c.subscribe("t/#", 1, handler=got.append))
    await c.connect(timeout=20)
    print("up", c.connects)
    if "--stay" in sys.argv:         # the bad bytes must not end the link
        for _ in range(20):
            await asyncio.sleep(0.05)
        print("unsolicited", c.session.unsolicited)
    elif "--pre" not in sys.argv:    # else connect() returned after the bad attempt
        for _ in range(400):
            if c.connects >= 2:
                break
            await asyncio.sleep(0.05)
    e = c.last_error
    print("error", type(e).__name__, e)
    print("connects", c.connects)
    await c.publish("t/ok", b"x", 1, timeout=5)
    await c.flush(timeout=5)
    print("flushed")
    print("granted", await c.subscribe("u/#", 1, timeout=5), await asyncio.wait_for(sub, 5))
    print("handler", len(got), c.handler_errors)
    await c.disconnect()
    print("done")


asyncio.run(main())
