# MQTT 5.0 codec round trips on this runtime (CPython or MicroPython):
#   <python> codec5_roundtrip.py
# Encodes packets with properties, frames and decodes them, compares with
# bytes written from the MQTT 5.0 layouts; prints each failure, then OK if none.
from mqtt import codec5 as c
import codec5_broker as b  # tests/codec5_broker.py
from mqtt.codec import PUBACK, PUBREL, SUBSCRIBE, frame
from mqtt.errors import ProtocolError

bad = []


def check(name, got, want):
    if got != want:
        bad.append(name)
        print("FAIL", name, got, want)


def split(p):
    p = bytes(p)
    f = frame(p, 1 << 20)
    return p[0], p[f[0]:f[1]]


# CONNECT with will properties (§3.1.3.2): exact bytes, then decode
p = c.connect("c", keepalive=30, will=("st/x", b"off", 1, True, {c.WILL_DELAY: 5}),
              username="u", password=b"pw", props={c.SESSION_EXPIRY: 3600})
check("connect bytes", bytes(p),
      b"\x10\x2b\x00\x04MQTT\x05\xee\x00\x1e\x05\x11\x00\x00\x0e\x10\x00\x01c"
      b"\x05\x18\x00\x00\x00\x05\x00\x04st/x\x00\x03off\x00\x01u\x00\x02pw")
d = b.decode_client(*split(p))
check("connect will", d["will"], ("st/x", b"off", 1, True, {c.WILL_DELAY: 5}))
check("connect props", d["props"], {c.SESSION_EXPIRY: 3600})

# PUBLISH with topic alias and message expiry (§3.3.2.3)
p = c.publish("a/b", b"hi", 1, pid=10, props={c.TOPIC_ALIAS: 1, c.MESSAGE_EXPIRY: 120})
check("publish bytes", bytes(p),
      b"\x32\x12\x00\x03a/b\x00\x0a\x08\x02\x00\x00\x00\x78\x23\x00\x01hi")
props = {c.USER_PROPERTY: [("k", "v"), ("k", "w")], c.SUBSCRIPTION_ID: [1, 300],
         c.CONTENT_TYPE: "text/plain", c.CORRELATION_DATA: b"\x00\xff", c.TOPIC_ALIAS: 9}
m = c.decode(*split(c.publish("", "\u00e9", 2, True, 65535, True, props)))
check("publish message", (m.topic, m.payload, m.qos, m.retain, m.dup, m.pid),
      ("", b"\xc3\xa9", 2, True, True, 65535))
check("publish props", m.props, props)

# SUBSCRIBE options (§3.8.3.1) and a subscription identifier
fl = [("a/b", 1 | c.NO_LOCAL | c.RETAIN_AS_PUBLISHED | c.RETAIN_NEVER),
      ("$share/g/c", 2 | c.RETAIN_SEND_NEW)]
p = c.subscribe(1, fl, {c.SUBSCRIPTION_ID: 200})
check("subscribe bytes", bytes(p), b"\x82\x19\x00\x01\x03\x0b\xc8\x01\x00\x03a/b\x2d"
      b"\x00\x0a$share/g/c\x12")
check("subscribe", b.decode_client(*split(p)), (SUBSCRIBE, 1, fl, {c.SUBSCRIPTION_ID: 200}))

# short-form acks (§3.4.2.1), DISCONNECT and AUTH
check("puback", bytes(c.ack(PUBACK, 10)), b"\x40\x02\x00\x0a")
check("pubrel", bytes(c.ack(PUBREL, 10, 0x92)), b"\x62\x03\x00\x0a\x92")
check("puback decode", c.decode(0x40, b"\x00\x0a"), (PUBACK, 10, 0, {}))
p = b.disconnect(0x8B, {c.REASON_STRING: "bye"})
check("disconnect bytes", bytes(p), b"\xe0\x08\x8b\x06\x1f\x00\x03bye")
check("disconnect", c.decode(*split(p)), (c.DISCONNECT, 0x8B, {c.REASON_STRING: "bye"}))
check("disconnect short", bytes(c.disconnect()), b"\xe0\x00")
p = c.auth(0x18, {c.AUTH_METHOD: "x", c.AUTH_DATA: b"\x01"})
check("auth", c.decode(*split(p)), (c.AUTH, 0x18, {c.AUTH_METHOD: "x", c.AUTH_DATA: b"\x01"}))

# CONNACK with properties, SUBACK
p = b.connack(True, 0, {c.RECEIVE_MAXIMUM: 20, c.MAXIMUM_QOS: 1,
                        c.USER_PROPERTY: [("a", "b")]})
check("connack", c.decode(*split(p)),
      (c.CONNACK, True, 0, {c.RECEIVE_MAXIMUM: 20, c.MAXIMUM_QOS: 1,
                            c.USER_PROPERTY: [("a", "b")]}))
check("suback", c.decode(*split(b.suback(3, [1, 0x9E]))), (c.SUBACK, 3, b"\x01\x9e", {}))
check("reason", c.reason_name(0x87), "not authorized")

# malformed properties are ProtocolError, never anything else
for buf in (b"\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02",  # duplicate
            b"\x05\x11\x00\x00\x00\x01",                      # not allowed in PUBLISH
            b"\x02\x05\x00",                                  # unknown id
            b"\x03\x02\x00\x00",                              # truncated
            b"\x09\x23\x00\x01",                              # length past the end
            b"\x04\x03\x00\x01\xff",                          # bad UTF-8
            b"\x06\x03\x00\x03\xed\xa0\x80",                  # surrogate
            b"\x02\x0b\x00"):                                 # subscription identifier 0
    try:
        c.decode_props(buf, 0, len(buf), c.PUBLISH)
        check("refused %r" % buf, "decoded", "ProtocolError")
    except ProtocolError:
        pass
for v in ({c.TOPIC_ALIAS: 0}, {c.PAYLOAD_FORMAT: 2}, {c.MESSAGE_EXPIRY: 1 << 32}):
    try:
        c.encode_props(v)
        check("encode refused %r" % v, "encoded", "ValueError")
    except ValueError:
        pass

print("bad", len(bad))
if not bad:
    print("OK")
