# The MQTT 3.1.1 client session, sans I/O: bytes and the time (now, in
# ticks_ms units) go in; events come out of feed() and packets to write
# collect in take(). It owns packet ids, the in-flight window, the offline
# queue, QoS 2 duplicate suppression, subscriptions and keepalive deadlines.
# Section numbers (§) refer to the MQTT 3.1.1 OASIS standard.
from . import codec
from .codec import Message, ack, const, decode, frame
from .errors import ProtocolError, ConnectRefused, ConnectionLost, NotConnected

# packet types, as in codec (private consts cost nothing at run time;
# const is micropython.const, or codec's stand-in on CPython)
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_PINGRESP = const(13)


def ticks_diff(a, b):
    # a - b on the ticks_ms clock, which wraps at 2**30 on MicroPython and
    # is made to wrap the same way on CPython (see compat.py).
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


class Session:
    """State of one client session across its connections.

    window: QoS 1/2 publishes in flight at once (sent, not yet acknowledged).
    queue: QoS 1/2 publishes waiting for the window or for a connection;
      when full, the oldest waiting one is dropped and counted in `dropped`.
    max_packet: the largest packet accepted from the broker, in bytes.
    """

    def __init__(self, client_id, clean=True, keepalive=60, will=None,
                 username=None, password=None, max_packet=16384, window=16, queue=32):
        if window < 1 or queue < 1:
            raise ValueError("window and queue must be at least 1")
        self._cp = codec.connect(client_id, clean, keepalive, will, username, password)
        self.ka = keepalive * 1000
        self.limit = max_packet
        self.window = window
        self.queue_max = queue
        self.session_present = False
        self.subs = {}        # filter -> requested QoS, restored when the broker has no session
        self.dropped = 0      # QoS 1/2 messages dropped from the full queue
        self.unknown = 0      # QoS 2 messages past PUBREC whose session the broker lost
        # Outgoing QoS 1/2 publishes, in send order: [pid, PUBLISH packet, or
        # None once PUBREC'd]. The first _n are in flight (sent), the rest wait.
        self._queue = []
        self._n = 0
        self._pending = {}    # pid -> (SUBSCRIBE/UNSUBSCRIBE packet, filters)
        self._rx = {}         # incoming pid -> Message not yet acked, or True once PUBREC sent
        self._pid = 0
        self.closed()

    # ---- connection lifecycle ----

    def start(self, now):
        """A new connection is open: CONNECT is the first packet (§3.1)."""
        self.closed()
        self.tx = [self._cp]
        self._last_tx = self._last_rx = now

    def closed(self):
        """The connection is gone; what is in flight stays for the next one."""
        self.connected = False
        self.tx = []          # packets to write, in order
        self._buf = bytearray()
        self._ping = None     # when the unanswered PINGREQ went out

    def disconnect(self):
        """Queue a DISCONNECT (§3.14): the broker then discards the will."""
        self.tx.append(codec.DISCONNECT_PACKET)
        self.connected = False

    def take(self, now):
        """Packets to write now, in order; each is one complete packet."""
        tx = self.tx
        if tx:
            self.tx = []
            self._last_tx = now
        return tx

    def idle(self):
        """True when no QoS 1/2 publish is queued or unacknowledged."""
        return not self._queue

    def full(self):
        """True when a new QoS 1/2 publish would have to wait for room."""
        return len(self._queue) - self._n >= self.queue_max

    # ---- application requests ----

    def publish(self, topic, payload, qos=0, retain=False):
        """Returns the packet id (0 for QoS 0). QoS 0 needs a connection;
        QoS 1/2 goes out when the window has room, else waits in the queue."""
        if not qos:
            if not self.connected:
                raise NotConnected("offline")
            self.tx.append(codec.publish(topic, payload, 0, retain))
            return 0
        pid = self._newpid()
        q = self._queue
        q.append([pid, codec.publish(topic, payload, qos, retain, pid)])
        if len(q) - self._n > self.queue_max:
            del q[self._n]  # the oldest waiting one
            self.dropped += 1
        self._promote()
        return pid

    def subscribe(self, filters):
        """filters: list of (filter, qos). Returns the packet id."""
        pid = self._request(codec.subscribe, filters)
        for f, q in filters:
            self.subs[f] = q
        return pid

    def unsubscribe(self, filters):
        """filters: list of topic filters. Returns the packet id."""
        pid = self._request(codec.unsubscribe, filters)
        for f in filters:
            self.subs.pop(f, None)
        return pid

    def _request(self, encode, filters):
        pid = self._newpid()
        p = encode(pid, filters)
        self._pending[pid] = (p, filters)
        if self.connected:
            self.tx.append(p)
        return pid

    def ack(self, msg):
        """The application has taken msg: acknowledge it (§4.3.2, §4.3.3).
        QoS 1 gets PUBACK, QoS 2 gets PUBREC; the broker's flow control then
        sends more, so a slow reader holds back the broker, not our memory."""
        pid = msg.pid
        if self._rx.get(pid) is msg:
            if msg.qos == 1:
                del self._rx[pid]
                self.tx.append(ack(_PUBACK, pid))
            else:
                self._rx[pid] = True
                self.tx.append(ack(_PUBREC, pid))

    # ---- time ----

    def poll(self, now):
        """Keepalive (§3.1.2.10): send PINGREQ when nothing was sent or
        received for a keepalive period; declare the link dead when the
        answer has not come within half a period, so a dead link is found
        within 1.5 x keepalive. Returns ms until the next deadline."""
        ka = self.ka
        if not self.connected or not ka:
            return 1000
        if self._ping is not None:
            left = ka // 2 - ticks_diff(now, self._ping)
            if left <= 0:
                raise ConnectionLost("no answer within 1.5 x keepalive")
            return left
        left = ka - max(ticks_diff(now, self._last_tx), ticks_diff(now, self._last_rx))
        if left > 0:
            return left
        self.tx.append(codec.PINGREQ_PACKET)
        self._ping = now
        return ka // 2

    # ---- incoming bytes ----

    def feed(self, data, now):
        """Take bytes from the broker. Returns the events they complete:
        Message for each new PUBLISH (a QoS 2 re-send is suppressed),
        (CONNACK, session_present), (PUBACK or PUBCOMP, pid) when a publish
        is done, (SUBACK, pid, codes), (UNSUBACK, pid). Raises
        ConnectRefused or ProtocolError; the connection must then close."""
        buf = self._buf
        buf.extend(data)
        events = []
        i = 0
        try:
            while True:
                f = frame(buf, self.limit, i)
                if not f or f[1] > len(buf):
                    break
                p = decode(buf[i], memoryview(buf)[f[0]:f[1]])
                i = f[1]
                # Only a whole packet shows the link is alive (§3.1.2.10): a
                # broker that trickles bytes of a packet it never finishes is
                # found by keepalive like a silent one.
                self._last_rx = now
                self._ping = None
                if self._handle(p):
                    events.append(p)
        except Exception:
            # The connection dies with this chunk: messages decoded before the
            # bad packet never reach the application, so forget them; the
            # broker re-sends them (§4.4) instead of us taking them as dups.
            for m in events:
                if isinstance(m, Message) and m.qos:
                    del self._rx[m.pid]
            raise
        buf[:i] = b""
        return events

    def _handle(self, p):
        # One decoded packet; True when it is an event for the application.
        t = _PUBLISH if isinstance(p, Message) else p[0]
        if (t == _CONNACK) == self.connected:
            # CONNACK comes first, and only once (§3.2)
            raise ProtocolError("second CONNACK" if self.connected else
                                "packet type %d before CONNACK" % t)
        if t == _PUBLISH:
            if p.qos:
                seen = self._rx.get(p.pid)
                if seen is not None:
                    # A re-send of a message we hold or have PUBREC'd (§4.3.3):
                    # delivered once already; answer the PUBREC again if it was sent.
                    if seen is True:
                        self.tx.append(ack(_PUBREC, p.pid))
                    return False
                self._rx[p.pid] = p
            return True
        if t == _CONNACK:
            if p[2]:
                raise ConnectRefused(p[2])
            self._resume(p[1])
            return True
        if t == _PINGRESP:
            return False
        pid = p[1]
        if t == _PUBREL:
            self._rx.pop(pid, None)
            self.tx.append(ack(_PUBCOMP, pid))
            return False
        # PUBACK, PUBREC, PUBCOMP, SUBACK or UNSUBACK (11). One that matches
        # nothing in flight, or the wrong ack for the QoS and step in flight,
        # is a broker bug: close the link. Nothing is lost; what is in flight
        # is re-sent on the next connection (§4.4).
        if t >= _SUBACK:
            req = self._pending.get(pid)
            # a SUBACK answers a SUBSCRIBE with one code per filter (§3.9.3)
            if req and (req[0][0] == 0x82) == (t == _SUBACK) and (
                    t != _SUBACK or len(p[2]) == len(req[1])):
                del self._pending[pid]
                if t == _SUBACK:
                    for fq, c in zip(req[1], p[2]):
                        if c == 0x80:  # refused
                            self.subs.pop(fq[0], None)
                return True
        else:
            q = self._queue
            for i in range(self._n):
                e = q[i]
                if e[0] == pid:
                    # 2: a QoS 1 PUBLISH in flight, 4: QoS 2, 0: its PUBREL sent
                    st = e[1][0] & 6 if e[1] else 0
                    if t == _PUBREC and st != 2:
                        # The broker owns the message now (§4.3.3); a repeated
                        # PUBREC after our PUBREL gets the PUBREL again.
                        e[1] = None
                        self.tx.append(ack(_PUBREL, pid))
                        return False
                    if st == (2 if t == _PUBACK else 0):
                        del q[i]
                        self._n -= 1
                        self._promote()
                        return True
                    break
        raise ProtocolError("packet type %d for packet id %d, which is not waiting for it"
                            % (t, pid))

    def _resume(self, present):
        # CONNACK accepted. §4.4: re-send unacknowledged PUBLISH packets (DUP
        # set, same packet id) and PUBRELs, in their original order.
        self.connected = True
        self.session_present = present
        tx = self.tx
        n = self._n
        if not present:
            # The broker has no session (clean, or it lost it): our incoming
            # QoS state is void, subscriptions must be made again, and QoS 2
            # messages past PUBREC have an unknown outcome.
            self._rx = {}
            # Filters of a SUBSCRIBE still pending go out with it, below;
            # asking twice would make the broker re-send retained messages.
            pend = [f for p, fl in self._pending.values() if p[0] == 0x82 for f, _ in fl]
            filters = [fq for fq in self.subs.items() if fq[0] not in pend]
            if filters:
                pid = self._newpid()
                self._pending[pid] = (codec.subscribe(pid, filters), filters)
            q = self._queue
            kept = [e for e in q[:n] if e[1]]
            self.unknown += n - len(kept)
            self._queue = kept + q[n:]
            self._n = n = len(kept)
        for p, _ in self._pending.values():
            tx.append(p)
        for e in self._queue[:n]:
            if e[1]:
                e[1][0] |= 8  # DUP
                tx.append(e[1])
            else:
                tx.append(ack(_PUBREL, e[0]))
        self._promote()

    def _promote(self):
        q = self._queue
        while self.connected and self._n < len(q) and self._n < self.window:
            self.tx.append(q[self._n][1])
            self._n += 1

    def _newpid(self):
        # Packet ids are 1..65535 and never one still in use (§2.3.1).
        while True:
            self._pid = pid = self._pid % 65535 + 1
            for e in self._queue:
                if e[0] == pid:
                    break
            else:
                if pid not in self._pending:
                    return pid
