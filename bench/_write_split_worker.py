# Worker for write_split.py; runs on CPython and MicroPython with plain
# blocking sockets. argv: host port mode n
#   one    the PUBLISH from mqtt.codec.publish in one write
#   split3 the same bytes in three writes (fixed header / variable header / payload)
#   split3_nodelay  split3 with TCP_NODELAY set
# Prints one line per round trip in microseconds, then "done".
import socket
import sys
import time

from mqtt import codec

try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:  # CPython
    def ticks_us():
        return time.perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b

WARMUP = 5
TOPIC = "bench/write_split"
PAYLOAD = b"x" * 64


def send(s, b):
    # sock.write on MicroPython, sendall on CPython: one call per piece
    w = getattr(s, "write", None) or s.sendall
    w(b)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed by broker")
        buf += chunk
    return buf


def read_packet(s):
    b0 = recv_exact(s, 1)[0]
    n = 0
    shift = 0
    while True:
        b = recv_exact(s, 1)[0]
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return b0, recv_exact(s, n) if n else b""


def main():
    host, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    addr = socket.getaddrinfo(host, port)[0][-1]
    s = socket.socket()
    if mode.endswith("nodelay"):
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (MicroPython's unix socket has no names)
    s.connect(addr)
    send(s, codec.connect("ws-" + mode + "-" + sys.implementation.name, keepalive=60))
    b0, body = read_packet(s)
    if b0 >> 4 != codec.CONNACK or body[1] != 0:
        raise OSError("CONNACK refused: %r" % (body,))
    for i in range(WARMUP + n):
        pid = i % 65535 + 1
        pkt = bytes(codec.publish(TOPIC, PAYLOAD, qos=1, pid=pid))
        hl = 1
        while pkt[hl] & 0x80:
            hl += 1
        hl += 1  # fixed header: type byte + remaining length
        vl = hl + 2 + len(TOPIC) + 2  # variable header: topic length, topic, packet id
        t0 = ticks_us()
        if mode == "one":
            send(s, pkt)
        else:
            send(s, pkt[:hl])
            send(s, pkt[hl:vl])
            send(s, pkt[vl:])
        b0, body = read_packet(s)
        dt = ticks_diff(ticks_us(), t0)
        if b0 >> 4 != codec.PUBACK or (body[0] << 8 | body[1]) != pid:
            raise OSError("expected PUBACK %d, got %02x %r" % (pid, b0, body))
        if i >= WARMUP:
            print(dt)
    send(s, codec.DISCONNECT_PACKET)
    s.close()
    print("done")


main()
