# The sans-I/O MQTT 5.0 session (Session5) against a scripted broker, on this
# runtime (CPython, MicroPython, the 32-bit image): rules that need a clock
# or a broker that misbehaves on purpose. <python> session5_rules.py
# Prints one line per check; tests/test_v5.py compares them.
from mqtt import codec5
import codec5_broker as B  # tests/codec5_broker.py
from mqtt.codec import frame
from mqtt.codec5 import (MAXIMUM_PACKET_SIZE, MESSAGE_EXPIRY, TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM,
                         USER_PROPERTY)
from mqtt.errors import ProtocolError
from mqtt.session5 import Session5

WRAP = 0x3FFFFFFF   # ticks_ms wraps to 0 after this (2**30 ms, 12.4 days)
DAY = 86400


def parse(p):
    p = bytes(p)
    f = frame(p, 1 << 20)
    return B.decode_client(p[0], p[f[0]:f[1]])


def up(now=0, props=None, **kw):
    s = Session5("dev", **kw)
    s.start(now)
    s.take(now)
    s.feed(B.connack(False, 0, props or {}), now)
    s.take(now)
    return s


def run_clock(s, now, secs, step=3600):
    # the client polls the session at least every keepalive / backoff cap
    for _ in range(secs // step):
        now = (now + step * 1000) & WRAP
        s.poll(now)
    return now


# -- message expiry: any interval (§3.3.2.3.3), across wraps of the ms clock
now = WRAP - 500                       # the tick clock is about to wrap
s = up(now, window=1, keepalive=0)   # no PINGREQ in the way
first = s.publish("t", b"first", 1)
for secs in (10, 7 * DAY, 13 * DAY, 0xFFFFFFFF):
    s.publish("t", b"%d" % secs, 1, props={MESSAGE_EXPIRY: secs}, now=now)
s.take(now)
now = run_clock(s, now, 20 * DAY)       # 20 days later; the tick clock wrapped once
s.feed(codec5.ack(codec5.PUBACK, first), now)
m = parse(s.take(now)[0])
# 10 s and 7 and 13 days have passed; 0xFFFFFFFF s has not
print("expiry after 20 days", m.payload.decode(), m.props[MESSAGE_EXPIRY] == 0xFFFFFFFF - 20 * DAY,
      "dropped", s.dropped)

now = 123
s = up(now, window=1, keepalive=0)   # no PINGREQ in the way
first = s.publish("t", b"first", 1)
for secs in (7 * DAY, 13 * DAY, 0xFFFFFFFF):
    s.publish("t", b"%d" % secs, 1, props={MESSAGE_EXPIRY: secs}, now=now)
s.take(now)
now = run_clock(s, now, 5 * DAY)
left = []
for _ in range(3):
    s.feed(codec5.ack(codec5.PUBACK, first), now)
    m = parse(s.take(now)[0])
    first = m.pid
    left.append(int(m.payload) - m.props[MESSAGE_EXPIRY])
print("expiry after 5 days", "elapsed", left, "dropped", s.dropped)

# -- Maximum Packet Size [MQTT-3.2.2-15]: every packet in its final form
s = up(props={MAXIMUM_PACKET_SIZE: 30})
for name, call in (("subscribe", lambda: s.subscribe([("f/" + "x" * 24, 1)])),
                   ("unsubscribe", lambda: s.unsubscribe(["f/" + "x" * 24])),
                   ("publish", lambda: s.publish("t/" + "x" * 24, b"", 1)),
                   ("disconnect", lambda: s.disconnect(0, {codec5.REASON_STRING: "x" * 30}))):
    try:
        call()
        print(name, "accepted")
    except ValueError as e:
        print(name, "refused", "MQTT-3.2.2-15" in str(e), "tx", s.take(1), "subs", s.subs)
pid = s.subscribe([("f/a", 1)])
print("small subscribe", [len(p) <= 30 for p in s.take(1)], s.subs)

# a packet that fits without its topic alias goes without one
s = up(props={MAXIMUM_PACKET_SIZE: 256, TOPIC_ALIAS_MAXIMUM: 4})
n = 256 - len(codec5.publish("big/t", b"", 1, pid=1)) - 1
s.publish("big/t", b"x" * n, 1)
s.publish("big/t", b"y" * n, 1)
s.publish("big/t", b"z", 1)
s.publish("big/t", b"w", 1)
sent = s.take(1)
print("alias", [(len(p), parse(p).topic, parse(p).props.get(TOPIC_ALIAS)) for p in sent])

# the same at QoS 0, built once as it goes out: a refused one leaves no alias behind
s = up(props={MAXIMUM_PACKET_SIZE: 256, TOPIC_ALIAS_MAXIMUM: 4})
n = 256 - len(codec5.publish("big/t", b"", 0)) - 1
s.publish("big/t", b"x" * n, 0)
try:
    s.publish("big/t", b"x" * (n + 1), 0)
    refused = False
except ValueError as e:
    refused = "MQTT-3.2.2-15" in str(e)
s.publish("big/t", b"z", 0)
s.publish("big/t", b"w", 0)
sent = s.take(1)
print("alias qos0", refused, [(len(p), parse(p).topic, parse(p).props.get(TOPIC_ALIAS))
                              for p in sent])

# a lost session under a smaller limit: subscriptions made again in packets that fit
s = up(clean=False)
for i in range(6):
    s.feed(B.suback(s.subscribe([("sub/%d/%s" % (i, "x" * 8), 1)]), [1]), 1)
s.take(1)
s.closed()
s.start(2)
s.take(2)
s.feed(B.connack(False, 0, {MAXIMUM_PACKET_SIZE: 40}), 2)
again = s.take(2)
print("restored", [len(p) <= 40 for p in again],
      sorted(f for p in again for f, _ in parse(p)[2]) == sorted(s.subs), len(s.subs))

# -- Session Present 1 answering Clean Start 1 [MQTT-3.2.2-4]
for clean in (True, False):
    s = Session5("dev", clean=clean)
    s.start(0)
    s.take(0)
    try:
        s.feed(B.connack(True, 0, {}), 0)
        print("present to clean", clean, "accepted", s.connected)
    except ProtocolError as e:
        print("present to clean", clean, "closed", "MQTT-3.2.2-1, -4" in str(e), s.connected)

# -- options: topic_aliases=0, Maximum Packet Size only when asked, UNSUBSCRIBE properties
for kw in ({}, {"topic_aliases": 0}, {"announce_max_packet": True}):
    s = Session5("dev", max_packet=2000, **kw)
    s.start(0)
    props = parse(s.take(0)[0])["props"]
    s.feed(B.connack(False, 0, {TOPIC_ALIAS_MAXIMUM: 5}), 0)
    s.publish("a/b", b"1", 1)
    s.publish("a/b", b"2", 1)
    print("connect", sorted(kw), props.get(MAXIMUM_PACKET_SIZE), props.get(TOPIC_ALIAS_MAXIMUM),
          "aliases", s.alias_max, [parse(p).props.get(TOPIC_ALIAS) for p in s.take(0)])
s = up()
s.unsubscribe(["a/b"], {USER_PROPERTY: [("why", "done")]})
print("unsubscribe", parse(s.take(0)[0]))
