# Acknowledgements for packet ids nothing waits for, at the MQTT 5 session, on
# this runtime (CPython or MicroPython): tests/test_v5.py checks the lines.
#   <python> session5_acks.py
from mqtt import codec5
import codec5_broker as B  # tests/codec5_broker.py
from mqtt.codec import PUBACK, PUBCOMP, PUBREC, PUBREL, frame
from mqtt.session5 import Session5

s = Session5("dev")
s.start(0)
s.take(0)
s.feed(B.connack(False, 0, {}), 0)
p1 = s.publish("t", b"1", 1)
s.take(0)
bad = (codec5.ack(PUBACK, 900) + codec5.ack(PUBACK, 901, 0x87) + codec5.ack(PUBCOMP, 902)
       + B.suback(903, [0]) + B.unsuback(904, [0]) + codec5.ack(PUBREC, 905)
       + codec5.ack(PUBREL, 906))
print("events", s.feed(bad, 1), "connected", s.connected, "unsolicited", s.unsolicited)
for p in s.take(1):
    p = bytes(p)
    f = frame(p, 1 << 20)
    print("answer", B.decode_client(p[0], p[f[0]:f[1]]))
print("then", s.feed(codec5.ack(PUBACK, p1), 2) == [(PUBACK, p1)], s.idle(), s.failed)
