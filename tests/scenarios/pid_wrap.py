# Packet ids wrap past 65,535 while one stays unacknowledged (MQTT 3.1.1 §2.3.1):
#   <python> pid_wrap.py N
# Publishes N QoS 1 messages through a Session, acknowledging all but the first;
# prints any id that is 0 or that is still in flight when handed out again.
import sys

from mqtt.codec import PUBACK, ack
from codec_broker import connack
from mqtt.session import Session

N = int(sys.argv[1])
s = Session("wrap", keepalive=0, window=4, queue=4)
s.start(0)
s.take(0)
s.feed(connack(False, 0), 0)
held = s.publish("t", b"held", 1)
inflight = {held}
bad = []
wrapped = 0
for i in range(N):
    pid = s.publish("t", b"x", 1)
    if pid == 0 or pid in inflight:
        bad.append(pid)
    if pid < 3:
        wrapped += 1
    inflight.add(pid)
    s.take(0)
    s.feed(ack(PUBACK, pid), 0)
    inflight.discard(pid)
print("held", held, "still in flight", not s.idle())
print("wrapped", wrapped > 0, "bad", bad)
