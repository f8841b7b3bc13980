# MQTT 5.0 request/response (§4.10) for MQTTClient.request(): one response
# topic per client, subscribed once; requests are told apart by their
# correlation data (§3.3.2.3.6). Loaded only when request() is first called.
import asyncio
from random import getrandbits

from .codec5 import CORRELATION_DATA, RESPONSE_TOPIC
from .session5 import Session5

PENDING_MAX = 8  # requests waiting for a response at once, per client


class Requests:
    """The response side of one client: its response topic and the
    requests waiting, correlation data -> [Event, response or None]."""

    def __init__(self):
        self.topic = "mqnode/resp/%08x%08x" % (getrandbits(32), getrandbits(32))
        self.waiting = {}
        self.n = 0
        self.subscribed = False

    def take(self, m):
        # The subscription handler (one bound method, not one per request).
        # A response nobody waits for (late, or a duplicate) is dropped.
        w = self.waiting.get(getattr(m, "props", {}).get(CORRELATION_DATA))
        if w is not None and w[1] is None:
            w[1] = m
            w[0].set()


async def request(c, topic, payload, timeout, qos, props):
    if not isinstance(c.session, Session5):
        raise ValueError("request() needs version=5")
    rr = getattr(c, "_rr", None)
    if rr is None:
        rr = c._rr = Requests()
    if not rr.subscribed:
        codes = await c.subscribe(rr.topic, 1, handler=rr.take, timeout=timeout)
        if codes[0] >= 0x80:
            raise ValueError("response topic refused: 0x%02x" % codes[0])
        rr.subscribed = True
    if len(rr.waiting) >= PENDING_MAX:
        raise ValueError("%d requests already wait for a response" % PENDING_MAX)
    rr.n = rr.n % 0xFFFFFFFF + 1
    corr = rr.n.to_bytes(4, "big")
    p = dict(props or ())
    p[RESPONSE_TOPIC] = rr.topic
    p[CORRELATION_DATA] = corr
    w = rr.waiting[corr] = [asyncio.Event(), None]
    try:
        await c.publish(topic, payload, qos, timeout=timeout, props=p)
        await asyncio.wait_for(w[0].wait(), timeout)
        return w[1]
    finally:
        del rr.waiting[corr]
