# A minimal blocking MQTT 3.1.1 client for the benchmarks: one socket, packets
# built by hand, each PUBLISH in one write, one message at a time. It is the
# "one-at-a-time ceiling": what the interpreter and the broker allow a client
# that waits for each acknowledgement before the next publish. No keepalive,
# no reconnect, no checks beyond what the bench needs. Runs on the MicroPython
# unix port and on CPython (the suite's QoS 0 counter and node driver use it).
import socket


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


class RawClient:
    def __init__(self, host, port, client_id, keepalive=0, clean=True):
        self.sock = socket.socket()
        self.sock.connect(socket.getaddrinfo(host, port)[0][-1])
        self.rb = b""
        self.ro = 0
        self.pid = 0
        self.inbox = []  # (topic bytes, payload bytes, qos) taken by wait_msg()
        body = (_str("MQTT") + bytes((4, 2 if clean else 0, keepalive >> 8, keepalive & 0xFF))
                + _str(client_id))
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        t, b = self.read_packet()
        if t != 0x20 or b[1] != 0:
            raise OSError("CONNACK %x %r" % (t, b))

    # ---- reading ----

    def _read(self, n):
        while len(self.rb) - self.ro < n:
            d = self.sock.recv(4096)
            if not d:
                raise OSError("connection closed")
            self.rb = self.rb[self.ro:] + d if self.ro else self.rb + d
            self.ro = 0
        s = self.rb[self.ro:self.ro + n]
        self.ro += n
        return s

    def read_packet(self):
        """(first byte, body bytes) of the next packet."""
        t = self._read(1)[0]
        n = sh = 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                break
            sh += 7
        return t, self._read(n)

    def _handle(self, t, b):
        """Incoming PUBLISH (acknowledged at once) and PUBREL; returns t."""
        if t & 0xF0 == 0x30:
            qos = (t >> 1) & 3
            tl = (b[0] << 8) | b[1]
            i = 2 + tl
            if qos:
                pid = b[i:i + 2]
                i += 2
                self.sock.sendall((b"\x40\x02" if qos == 1 else b"\x50\x02") + pid)
            self.inbox.append((b[2:2 + tl], b[i:], qos))
        elif t == 0x62:  # PUBREL -> PUBCOMP
            self.sock.sendall(b"\x70\x02" + b[:2])
        return t

    def _expect(self, want, pid):
        while True:
            t, b = self.read_packet()
            if t == want and b[:2] == pid:
                return b
            self._handle(t, b)

    def wait_msg(self):
        """The next incoming message: (topic, payload, qos)."""
        while not self.inbox:
            self._handle(*self.read_packet())
        return self.inbox.pop(0)

    # ---- sending ----

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return bytes((self.pid >> 8, self.pid & 0xFF))

    def publish(self, topic, payload, qos=0, retain=False):
        """Sends one PUBLISH in one write; at QoS 1/2 returns after its flow ends."""
        vh = _str(topic)
        pid = b""
        if qos:
            pid = self._next_pid()
        body_len = len(vh) + len(pid) + len(payload)
        self.sock.sendall(bytes((0x30 | qos << 1 | retain,)) + _varint(body_len) + vh + pid + payload)
        if qos == 1:
            self._expect(0x40, pid)
        elif qos == 2:
            self._expect(0x50, pid)
            self.sock.sendall(b"\x62\x02" + pid)
            self._expect(0x70, pid)

    def subscribe(self, topic, qos=0):
        pid = self._next_pid()
        body = pid + _str(topic) + bytes((qos,))
        self.sock.sendall(b"\x82" + _varint(len(body)) + body)
        b = self._expect(0x90, pid)
        if b[2] == 0x80:
            raise OSError("subscription refused")
        return b[2]

    def disconnect(self):
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()
