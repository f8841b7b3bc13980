# A whole MQTT 3.1.1 exchange in memory: the client's Session against a broker built from
# codec_broker (the broker's half of the codec), QoS 1 and QoS 2 in both directions.
#   <python> session_qos_exchange.py      (with lib/ and tests/ importable)
# Prints one line per step; tests/test_rp2emu.py runs it on CPython and on the emulated
# Pico W and compares the lines with the protocol's (§4.3.2, §4.3.3).
from codec_broker import connack, decode_client, suback
from mqtt import codec
from mqtt.codec import Message, PUBACK, PUBCOMP, PUBREC, PUBREL, ack, frame
from mqtt.session import Session

NAMES = {PUBACK: "PUBACK", PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP",
         2: "CONNACK", 8: "SUBSCRIBE", 9: "SUBACK"}


def wire(s):
    """What the client wrote, as the broker decodes it: one short line per packet."""
    out = []
    for p in s.take(0):
        f = frame(p, 1 << 20)
        if f is None or f[1] != len(p):
            raise ValueError("not one whole packet")
        d = decode_client(p[0], memoryview(p)[f[0]:])
        if isinstance(d, dict):
            out.append("CONNECT %s clean=%s keepalive=%d" % (d["client_id"], d["clean"],
                                                              d["keepalive"]))
        elif isinstance(d, Message):
            out.append("PUBLISH %s %r qos=%d pid=%d dup=%s" % (d.topic, bytes(d.payload), d.qos,
                                                              d.pid, d.dup))
        elif d[0] == 8:
            out.append("SUBSCRIBE pid=%d %r" % (d[1], d[2]))
        else:
            out.append("%s pid=%d" % (NAMES[d[0]], d[1]))
    return " | ".join(out) or "-"


def events(evs):
    out = []
    for e in evs:
        if isinstance(e, Message):
            out.append("message %s %r qos=%d" % (e.topic, bytes(e.payload), e.qos))
        else:
            out.append("%s %s" % (NAMES[e[0]], " ".join(
                str(list(x)) if isinstance(x, (bytes, bytearray)) else str(x) for x in e[1:])))
    return " | ".join(out) or "-"


s = Session("emu-1", keepalive=30)
s.start(0)
print("client:", wire(s))
print("events:", events(s.feed(connack(False, 0), 0)))

# QoS 1 out: PUBLISH -> PUBACK (§4.3.2)
pid = s.publish("t/q1", b"one", 1)
print("client:", wire(s))
print("events:", events(s.feed(ack(PUBACK, pid), 0)), "idle", s.idle())

# QoS 2 out: PUBLISH -> PUBREC -> PUBREL -> PUBCOMP (§4.3.3)
pid = s.publish("t/q2", b"two", 2)
print("client:", wire(s))
print("events:", events(s.feed(ack(PUBREC, pid), 0)), "idle", s.idle())
print("client:", wire(s))
print("events:", events(s.feed(ack(PUBCOMP, pid), 0)), "idle", s.idle())

pid = s.subscribe([("t/in/#", 2)])
print("client:", wire(s))
print("events:", events(s.feed(suback(pid, [2]), 0)))

# QoS 1 in: the client answers PUBACK once the application has the message
m = s.feed(codec.publish("t/in/a", b"alpha", 1, False, 7), 0)
print("events:", events(m))
s.ack(m[0])
print("client:", wire(s))

# QoS 2 in: PUBREC; a re-send (DUP) before PUBREL is not delivered again; PUBREL -> PUBCOMP
m = s.feed(codec.publish("t/in/b", b"beta", 2, False, 8), 0)
print("events:", events(m))
s.ack(m[0])
print("client:", wire(s))
print("events:", events(s.feed(codec.publish("t/in/b", b"beta", 2, False, 8, True), 0)))
print("client:", wire(s))
print("events:", events(s.feed(ack(PUBREL, 8), 0)))
print("client:", wire(s))
print("done")
