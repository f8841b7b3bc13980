# A small lib/mqtt example; `make demo` runs it on the MicroPython unix port.
#   micropython examples/hello.py [HOST [PORT]]      (lib/ on MICROPYPATH)
import sys
import asyncio
from mqtt import MQTTClient

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 1883


def on_command(msg):
    print("command    ", msg.topic, msg.payload)


async def main():
    node = "demo/hello"
    c = MQTTClient(HOST, PORT, "hello-node", keepalive=30,
                   will=(node + "/status", b"offline", 1, True))
    await c.connect(timeout=10)
    print("connected   to %s:%d" % (HOST, PORT))
    await c.publish(node + "/status", b"online", qos=1, retain=True)
    await c.subscribe(node + "/cmd/#", qos=1, handler=on_command)
    await c.subscribe(node + "/telemetry", qos=2)
    await c.publish(node + "/cmd/ping", b"from myself", qos=1)
    for i in range(3):
        await c.publish(node + "/telemetry", b'{"seq": %d}' % i, qos=i)
    n = 0
    async for msg in c.messages():
        print("received   ", msg.topic, msg.payload, "qos", msg.qos)
        n += 1
        if n == 3:
            break
    await c.flush(timeout=5)
    await c.publish(node + "/status", b"", qos=1, retain=True)  # clear the retained status
    await c.disconnect()
    print("disconnected cleanly")


asyncio.run(main())
