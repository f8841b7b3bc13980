# The broker lost our persistent session (tests/test_bad_broker.py scripts it):
#   <python> session_lost.py PORT
# A QoS 2 publish gets PUBREC but no PUBCOMP, the link drops, and the broker
# answers the reconnect with session-present 0. The application can tell: the
# CONNACK's session-present is 0 and session.unknown counts the QoS 2 message
# whose outcome is unknown, and flush() says which message that was (it does
# not report success); the client then works on.
import sys
import asyncio

from mqtt import MQTTClient
from mqtt.outcome import Undelivered
from mqtt.session import UNKNOWN


async def main():
    c = MQTTClient("127.0.0.1", int(sys.argv[1]), "lost", clean=False, keepalive=30,
                   backoff=(0.2, 0.5), connect_timeout=3)
    print("present", await c.connect(timeout=10))
    lost = await c.publish("t/a", b"past PUBREC", 2, timeout=5)
    for _ in range(200):
        if c.connects >= 2:
            break
        await asyncio.sleep(0.05)
    print("connects", c.connects, "present", c.session.session_present,
          "unknown", c.session.unknown, "idle", c.session.idle())
    await c.publish("t/b", b"after", 2, timeout=5)
    try:
        await c.flush(timeout=5)
        print("flushed")
    except Undelivered as e:
        print("undelivered", e.failed == [(lost, UNKNOWN)])
    await c.flush(timeout=5)   # the outcome was reported once
    print("flushed")
    await c.disconnect()


asyncio.run(main())
