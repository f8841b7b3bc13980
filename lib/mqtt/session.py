# The MQTT 3.1.1 client session, sans I/O: bytes and the time (now, in
# ticks_ms units) go in; events come out of feed() and packets to write
# collect in take(). It owns packet ids, the in-flight window, the offline
# queue, QoS 2 duplicate suppression, subscriptions and keepalive deadlines.
# Section numbers (§) refer to the MQTT 3.1.1 OASIS standard.
try:
    from micropython import const
except ImportError:
    const = lambda x: x

from . import codec
from .codec import Message, ack, frame
from .errors import ProtocolError, ConnectRefused, ConnectionLost, NotConnected

# Packet types (§2.2.1), as in codec: constants here cost no lookup and no RAM.
_CONNACK = const(2)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_UNSUBACK = const(11)


def ticks_diff(a, b):
    # a - b on the ticks_ms clock, which wraps at 2**30 on MicroPython and
    # is made to wrap the same way on CPython (see compat.py).
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


# Outcome codes in Session.failed besides MQTT 5 reason codes (>= 0x80)
UNKNOWN = -1   # sent, but the broker lost the session before it was done
DROPPED = -2   # never sent: dropped from the full queue (or expired, MQTT 5)
FAILED_MAX = 16  # failed publishes remembered in Session.failed


class Session:
    """State of one client session across its connections.

    window: QoS 1/2 publishes in flight at once (sent, not yet acknowledged).
    queue: QoS 1/2 publishes waiting for the window or for a connection;
      when full, the oldest waiting one is dropped and counted in `dropped`.
      queue_bytes bounds their packets' bytes too (checked before a new one
      is added: a bigger one still fits).
    max_packet: the largest packet accepted from the broker, in bytes. A
      bigger PUBLISH is read and thrown away as it comes, acknowledged,
      counted in `oversized` and reported as the event (0, text) (see
      oversize.py); any other bigger packet closes the link.
    """

    _codec = codec  # the packet codec; session5.Session5 puts codec5 here
    # (class defaults keep the instance's attribute dict small until used)
    oversized = 0     # incoming PUBLISHes over max_packet, skipped (oversize.py)
    failed = []       # the last FAILED_MAX (pid, code) of publishes not delivered
    unsolicited = 0   # acks for packet ids not waiting for them, ignored
    queue_bytes = 4096
    _NF = ()          # reason for an unknown packet id (MQTT 5: 0x92)

    def __init__(self, client_id, clean=True, keepalive=60, will=None,
                 username=None, password=None, max_packet=16384, window=16, queue=32):
        if window < 1 or queue < 1:
            raise ValueError("window and queue must be at least 1")
        self._connect = codec.connect(client_id, clean, keepalive, will, username, password)
        self.clean = clean
        self.ka = keepalive * 1000
        self.limit = max_packet
        self.window = window
        self.queue_max = queue
        self.connected = False
        self.session_present = False
        self.subs = {}        # filter -> requested QoS, restored when the broker has no session
        self.dropped = 0      # QoS 1/2 messages dropped from the full queue
        self.unknown = 0      # QoS 2 messages past PUBREC whose session the broker lost
        self.tx = []          # packets to write, in order
        self._out = []        # [pid, packet or None once PUBREC'd], in send order
        self._queue = []      # [pid, packet] not sent yet
        self._pending = {}    # pid -> (SUBSCRIBE/UNSUBSCRIBE packet, filters)
        self._rx = {}         # incoming pid -> Message not yet acked, or True once PUBREC sent
        self._pid = 0
        self._buf = bytearray()
        self._ping = None
        self._last_tx = self._last_rx = 0

    # ---- connection lifecycle ----

    def start(self, now):
        """A new connection is open: CONNECT is the first packet (§3.1)."""
        self.closed()
        self.tx = [self._connect]
        self._last_tx = self._last_rx = now

    def closed(self):
        """The connection is gone; what is in flight stays for the next one."""
        self.connected = False
        self.tx = []
        self._buf = bytearray()
        self._ping = None

    def disconnect(self, reason=0, props=None):
        """Queue a DISCONNECT (§3.14): the broker then discards the will."""
        if reason or props:
            raise ValueError("a DISCONNECT reason needs MQTT 5 (version=5)")
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
        return not self._out and not self._queue

    def full(self):
        """True when a new QoS 1/2 publish would have to wait for room."""
        q = self._queue
        n = 0
        for e in q:
            n += len(e[1])
        return len(q) >= self.queue_max or q and n >= self.queue_bytes

    # ---- application requests ----

    def publish(self, topic, payload, qos=0, retain=False):
        """Returns the packet id (0 for QoS 0). QoS 0 needs a connection;
        QoS 1/2 goes out when the window has room, else waits in the queue."""
        if not qos:
            if not self.connected:
                raise NotConnected("offline: QoS 0 message not sent")
            self.tx.append(codec.publish(topic, payload, 0, retain))
            return 0
        pid = self._newpid()
        self._put([pid, codec.publish(topic, payload, qos, retain, pid)])
        return pid

    def _put(self, e):
        # Queue a publish; with no room for it (queue_max messages, or
        # queue_bytes bytes, waiting) the oldest waiting one is dropped.
        q = self._queue
        while self.full():
            self._fail(q.pop(0)[0])
        q.append(e)
        self._promote()

    def _fail(self, pid, code=DROPPED):
        # The per-message outcome of a publish that was not delivered (a new
        # list each time: the class's empty one stays empty).
        self.failed = self.failed[1 - FAILED_MAX:] + [(pid, code)]
        if code == DROPPED:
            self.dropped += 1

    def subscribe(self, filters):
        """filters: list of (filter, qos). Returns the packet id."""
        return self._request(codec.subscribe, filters, True)

    def unsubscribe(self, filters):
        """filters: list of topic filters. Returns the packet id."""
        return self._request(codec.unsubscribe, filters, False)

    def ack(self, msg):
        """The application has taken msg: acknowledge it (§4.3.2, §4.3.3).
        QoS 1 gets _PUBACK, QoS 2 gets _PUBREC; the broker's flow control then
        sends more, so a slow reader holds back the broker, not our memory."""
        if self._rx.get(msg.pid) is msg:
            if msg.qos == 1:
                del self._rx[msg.pid]
                self.tx.append(ack(_PUBACK, msg.pid))
            else:
                self._rx[msg.pid] = True
                self.tx.append(ack(_PUBREC, msg.pid))

    # ---- time ----

    def poll(self, now):
        """Keepalive (§3.1.2.10): send PINGREQ when nothing was sent or
        received for a keepalive period; declare the link dead when the
        answer has not come within half a period, so a dead link is found
        within 1.5 x keepalive. Returns ms until the next deadline."""
        if not self.connected or not self.ka:
            return 1000
        if self._ping is not None:
            left = self.ka // 2 - ticks_diff(now, self._ping)
            if left <= 0:
                raise ConnectionLost("no answer within 1.5 x keepalive")
            return left
        left = self.ka - max(ticks_diff(now, self._last_tx), ticks_diff(now, self._last_rx))
        if left > 0:
            return left
        self.tx.append(codec.PINGREQ_PACKET)
        self._ping = now
        return self.ka // 2

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
            while i < len(buf):
                # A packet over the limit is refused from its header; a
                # PUBLISH is skipped instead (oversize.py).
                f = frame(buf, 268435460, i)
                if f and f[1] - i > self.limit:
                    from .oversize import skip
                    return events + skip(self, buf, i, f, now)
                if not f or f[1] > len(buf):
                    break
                pkt = self._codec.decode(buf[i], memoryview(buf)[f[0]:f[1]])
                i = f[1]
                # Only a whole packet shows the link is alive (§3.1.2.10): a
                # broker that trickles bytes of a packet it never finishes is
                # found by keepalive like a silent one.
                self._last_rx = now
                self._ping = None
                self._handle(pkt, events)
        except Exception:
            # The connection dies with this chunk: messages decoded before the
            # bad packet never reach the application, so forget them; the
            # broker re-sends them (§4.4) instead of us taking them as dups.
            for m in events:
                if isinstance(m, Message) and m.qos:
                    del self._rx[m.pid]
            raise
        if i:
            buf[:i] = b""
        return events

    def _handle(self, pkt, events):
        if not isinstance(pkt, Message):
            t = pkt[0]
            if t == _CONNACK:
                if self.connected:
                    raise ProtocolError("second CONNACK")
                if pkt[2]:
                    raise ConnectRefused(pkt[2])
                self._resume(pkt[1])
                events.append(pkt)
                return
            if not self.connected:
                raise ProtocolError("packet type %d before CONNACK (§3.2)" % t)
            if t in (_PUBACK, _PUBREC, _PUBCOMP):
                self._acked(t, pkt[1], events)
            elif t == _PUBREL:
                # §4.3.3: always answered (our PUBCOMP may have been lost;
                # MQTT 5 says the id is unknown, §3.7.2.1)
                if self._rx.pop(pkt[1], None) is True:
                    self.tx.append(ack(_PUBCOMP, pkt[1]))
                else:
                    self.unsolicited += 1
                    self.tx.append(self._codec.ack(_PUBCOMP, pkt[1], *self._NF))
            elif t in (_SUBACK, _UNSUBACK):
                req = self._pending.get(pkt[1])
                if not req or (req[0][0] == 0x82) != (t == _SUBACK):
                    self.unsolicited += 1  # see _acked
                    return
                del self._pending[pkt[1]]
                if t == _SUBACK:
                    if len(pkt[2]) != len(req[1]):
                        raise ProtocolError("SUBACK codes do not match the filters (§3.9.3)")
                    for (f, q), c in zip(req[1], pkt[2]):
                        if c == 0x80:
                            self.subs.pop(f, None)
                events.append(pkt)
            return
        if not self.connected:
            raise ProtocolError("PUBLISH before CONNACK (§3.2)")
        if pkt.qos:
            seen = self._rx.get(pkt.pid)
            if seen is not None:
                # A re-send of a message we hold or have PUBREC'd (§4.3.3):
                # delivered once already; answer the PUBREC again if it was sent.
                if seen is True:
                    self.tx.append(ack(_PUBREC, pkt.pid))
                return
            self._rx[pkt.pid] = pkt
        events.append(pkt)

    def _acked(self, t, pid, events):
        for i, e in enumerate(self._out):
            if e[0] == pid:
                p = e[1]
                if t == _PUBREC:
                    if p is not None and p[0] & 6 != 4:
                        break
                    # The broker owns the message now (§4.3.3); a repeated
                    # PUBREC after our PUBREL gets the PUBREL again.
                    e[1] = None
                    self.tx.append(ack(_PUBREL, pid))
                    return
                if (p is None) != (t == _PUBCOMP) or t == _PUBACK and p[0] & 6 != 2:
                    break
                del self._out[i]
                events.append((t, pid))
                self._promote()
                return
        # An ack for an id not waiting for it (a duplicate, a broker that
        # failed over) is ignored and counted: closing the link for it would
        # only make a reconnect storm. A PUBREC still gets its PUBREL, so
        # the broker can finish its flow (§4.3.3; MQTT 5 §3.6.2.1).
        self.unsolicited += 1
        if t == _PUBREC:
            self.tx.append(self._codec.ack(_PUBREL, pid, *self._NF))

    def _resume(self, present):
        # CONNACK accepted. §4.4: re-send unacknowledged PUBLISH packets (DUP
        # set, same packet id) and PUBRELs, in their original order. But a
        # broker accepting a clean session MUST say session present 0
        # [MQTT-3.2.2-1] (5.0: [MQTT-3.2.2-4]); else the client closes.
        if present and self.clean:
            raise ProtocolError("session present answering a clean session [MQTT-3.2.2-1, -4]")
        self.connected = True
        self.session_present = present
        tx = self.tx
        if not present:
            # The broker has no session (clean, or it lost it): our incoming
            # QoS state is void, subscriptions must be made again, and QoS 2
            # messages past PUBREC have an unknown outcome.
            self._rx = {}
            # Filters of a SUBSCRIBE still pending go out with it, below;
            # asking twice would make the broker re-send retained messages.
            pend = {f for p, fl in self._pending.values() if p[0] == 0x82 for f, _ in fl}
            filters = [fq for fq in self.subs.items() if fq[0] not in pend]
            if filters:
                pid = self._newpid()
                self._pending[pid] = (self._codec.subscribe(pid, filters), filters)
            kept = []
            for e in self._out:
                if e[1] is None:
                    self.unknown += 1
                    self._fail(e[0], UNKNOWN)
                else:
                    kept.append(e)
            self._out = kept
        for p, _ in self._pending.values():
            tx.append(p)
        for e in self._out:
            if e[1] is None:
                tx.append(ack(_PUBREL, e[0]))
            else:
                e[1][0] |= 8
                tx.append(e[1])
        self._promote()

    def _promote(self):
        while self.connected and self._queue and len(self._out) < self.window:
            e = self._queue.pop(0)
            self._out.append(e)
            self.tx.append(e[1])

    def _request(self, encode, filters, sub):
        pid = self._newpid()
        p = encode(pid, filters)
        self._pending[pid] = (p, filters)
        for f in filters:
            if sub:
                self.subs[f[0]] = f[1]
            else:
                self.subs.pop(f, None)
        if self.connected:
            self.tx.append(p)
        return pid

    def shed(self):
        """publish() ran out of memory: as with a full queue, drop the oldest
        waiting publish (counted) and return None: publish again. With none
        left to drop, the new one is dropped (counted). Returns the new
        one's packet id once it is no longer to be published again."""
        pid = self._pid
        q = self._queue
        for e in q[-1:] + self._out[-1:]:   # where a new one goes
            if e[0] == pid:
                return pid
        if q:
            self._fail(q.pop(0)[0])
            return None
        self._fail(pid)
        return pid

    def _newpid(self):
        # Packet ids are 1..65535 and never one still in use (§2.3.1).
        while True:
            self._pid = pid = self._pid % 65535 + 1
            if pid not in self._pending and not _has(self._out, pid) and not _has(self._queue, pid):
                return pid


def _has(q, pid):
    for e in q:
        if e[0] == pid:
            return True
