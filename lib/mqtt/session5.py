# The MQTT 5.0 client session: Session with what version 5 adds. Sans I/O
# like Session. Only a client made with version=5 imports this module (and
# codec5 with it); a 3.1.1 client never loads either.
# Section numbers (§) refer to the MQTT 5.0 OASIS standard.
from . import codec, codec5
from .codec import PUBLISH, CONNACK, PUBACK, PUBREC, SUBACK, UNSUBACK, DISCONNECT, Message
from .codec5 import (AUTH, ASSIGNED_CLIENT_ID, MAXIMUM_PACKET_SIZE, MAXIMUM_QOS,
                     MESSAGE_EXPIRY, REASON_STRING, RECEIVE_MAXIMUM, RETAIN_AVAILABLE,
                     SERVER_KEEPALIVE, SESSION_EXPIRY, TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM,
                     reason_name)
from .errors import ConnectionLost, ConnectRefused, NotConnected, ProtocolError
from .session import Session, ticks_diff


class Disconnected(ConnectionLost):
    """The broker closed the link with a DISCONNECT (§3.14): .code is its
    reason code, .reason its text (with the reason string property 0x1F when
    the broker sent one), .props all its properties."""

    def __init__(self, code, props):
        self.code = code
        self.props = props
        self.reason = reason_name(code)
        if REASON_STRING in props:
            self.reason += ": " + props[REASON_STRING]
        super().__init__("disconnected by the broker: %s (0x%02x)" % (self.reason, code))


class Session5(Session):
    """An MQTT 5.0 session. Beyond Session:

    session_expiry: seconds the broker keeps the session after the link
      ends (§3.1.2.11.2); will: (topic, payload, qos, retain[, props]).
    topic_aliases: topic aliases per direction (§3.2.2.3.8): we accept that
      many from the broker and use at most that many (and at most what the
      broker allows) ourselves; 0 turns them off both ways.
    announce_max_packet: tell the broker max_packet in CONNECT
      (§3.1.2.11.4); it then discards bigger messages for us unseen, so
      this is off unless asked (bigger ones are otherwise skipped here,
      counted in `oversized`, and acknowledged).
    connect_props: more CONNECT properties, {id: value}.
    After CONNACK: client_id (the assigned one, §3.2.2.3.7), ka, window
    (min(ours, the broker's receive maximum), §3.3.4), max_send (largest
    packet the broker takes, §3.2.2.3.6), alias_max (outgoing aliases allowed,
    §3.2.2.3.8), retain_available, max_qos, connack_props.
    failed (see Session) also holds (pid, reason code) of publishes the
    broker refused (PUBACK/PUBREC reason >= 0x80, §3.4.2.1); failures counts
    those refusals.
    """

    _codec = codec5
    _NF = (0x92,)  # Packet Identifier not found (§3.6.2.1, §3.7.2.1)

    def __init__(self, client_id, clean=True, keepalive=60, will=None, username=None,
                 password=None, max_packet=16384, window=16, queue=32, session_expiry=0,
                 topic_aliases=8, connect_props=None, announce_max_packet=False):
        # Session's 3.1.1 CONNECT rules (no empty id without clean, no
        # password without user) do not hold in v5 (§3.1.3.1, §3.1.2.9): its
        # CONNECT is replaced below.
        Session.__init__(self, client_id or "x", clean, keepalive, None, None, None,
                         max_packet, window, queue)
        props = dict(connect_props or ())
        if session_expiry:
            props[SESSION_EXPIRY] = session_expiry
        props[RECEIVE_MAXIMUM] = min(window, 65535)
        if announce_max_packet:
            props[MAXIMUM_PACKET_SIZE] = max_packet
        if topic_aliases:
            props[TOPIC_ALIAS_MAXIMUM] = topic_aliases
        self._cargs = [client_id, clean, keepalive, will, username, password, props]
        self._connect = codec5.connect(*self._cargs)
        self.client_id = client_id
        self.keepalive = keepalive
        self.window0 = window
        self.in_alias_max = topic_aliases
        self.max_send = 268435460  # §2.2.3 bound until CONNACK says less
        self.alias_max = 0
        self.retain_available = True
        self.max_qos = 2
        self.connack_props = {}
        self.failures = 0
        self.auth = None      # the last AUTH packet (AUTH, reason, props), §3.15
        self._now = 0
        self._t0 = None       # the ticks at which _secs was last advanced
        self._secs = 0        # whole seconds since then (see _tick)
        self._aliases = {}    # topic -> alias we assigned on this connection (§3.3.2.3.4)
        self._in_aliases = {}  # alias -> topic the broker set on this connection
        self._sprops = {}     # filter -> the SUBSCRIBE properties it was made with

    # ---- connection lifecycle ----

    def start(self, now):
        # Topic aliases live for one connection (§3.3.2.3.4). A PUBLISH
        # re-sent after reconnecting carries its topic again, no alias, and
        # its remaining expiry interval (§3.3.2.3.3).
        self._tick(now)
        self._aliases = {}
        self._in_aliases = {}
        for e in self._out:
            if e[1] is not None and e[2]:
                e[1] = self._build(e[0], e[2], False)
        Session.start(self, now)

    def poll(self, now):
        self._tick(now)
        return Session.poll(self, now)

    def feed(self, data, now):
        self._tick(now)
        return Session.feed(self, data, now)

    def _tick(self, now):
        # The ms tick clock wraps, and a difference of ticks is sound only
        # below 2**29 ms (6.2 days), while a message expiry interval may be
        # 0xFFFFFFFF s (§3.3.2.3.3): whole seconds are moved into _secs (a
        # small int for 34 years even on a 32-bit board). The client calls
        # poll() at least every backoff cap, connected or not.
        self._now = now
        if self._t0 is None:
            self._t0 = now
        d = ticks_diff(now, self._t0)
        if d >= 1000:
            self._secs += d // 1000
            self._t0 = (self._t0 + d // 1000 * 1000) & 0x3FFFFFFF

    def _ms(self):
        # ms since the session's clock started, without wrapping (grows
        # past a small int after 12 days: only used for message expiry)
        if self._t0 is None:   # not told the time yet
            self._tick(self._now)
        return self._secs * 1000 + ticks_diff(self._now, self._t0)

    def _fits(self, p):
        # No packet over the broker's Maximum Packet Size [MQTT-3.2.2-15]
        # (§3.1.2.11.4): refused here, before it is queued or written.
        if len(p) > self.max_send:
            raise ValueError("packet of %d bytes over the broker's maximum packet size %d "
                             "[MQTT-3.2.2-15]" % (len(p), self.max_send))
        return p

    # ---- application requests ----

    def publish(self, topic, payload, qos=0, retain=False, props=None, now=None):
        """As Session.publish, with PUBLISH properties (§3.3.2.3); now (ms)
        is needed with MESSAGE_EXPIRY. A packet larger than the broker's
        maximum packet size raises ValueError and is not queued
        (§3.1.2.11.4). A queued message whose expiry passes before it is
        sent is dropped and counted in `dropped`."""
        if now is not None:
            self._tick(now)
        if not topic:
            codec.check_topic(topic)   # raises: the session alone sends an empty one
        if props and TOPIC_ALIAS in props:
            raise ValueError("topic aliases are assigned by the session")
        if qos > self.max_qos or retain and not self.retain_available:
            # what the broker said it does not support (§3.2.2.3.4, §3.2.2.3.5)
            raise ValueError("QoS %d or retain not available on this broker" % qos)
        if not qos:
            # Sent now: built once, with its whole expiry and _wire's alias
            # rule inline (the hot path; a call costs on MicroPython).
            if not self.connected:
                raise NotConnected("offline: QoS 0 message not sent")
            al = self._aliases
            alias = al.get(topic)
            t = "" if alias else topic
            if alias is None and len(al) < self.alias_max:
                alias = al[topic] = len(al) + 1
            p = codec.publish(t, payload, 0, retain, 0, False,
                              codec5.encode_props(props, PUBLISH, alias or 0) if props else
                              bytes((3, TOPIC_ALIAS, alias >> 8, alias & 0xFF)) if alias else
                              b"\x00")
            if len(p) > self.max_send:
                if alias and t:   # assigned just now, but the topic must go instead
                    del al[topic]
                p = self._fits(codec.publish(topic, payload, 0, retain, 0, False,
                                             codec5.encode_props(props, PUBLISH)))
            self.tx.append(p)
            return 0
        if isinstance(payload, str):
            payload = payload.encode()
        pid = self._newpid()
        full = self._fits(codec5.publish(topic, payload, qos, retain, pid, props=props))
        dl = None
        if props and MESSAGE_EXPIRY in props:
            dl = self._ms() + props[MESSAGE_EXPIRY] * 1000   # see _tick
        self._put([pid, full, (topic, payload, qos, retain, props, dl)])
        return pid

    def subscribe(self, filters, props=None):
        """filters: list of (filter, options), options being the QoS plus
        codec5 option bits (§3.8.3.1); props e.g. {SUBSCRIPTION_ID: n}.
        The properties go with the filters when a lost session makes the
        client subscribe again. A packet over the broker's maximum packet
        size raises ValueError [MQTT-3.2.2-15]."""
        pid = self._request(codec5.subscribe, filters, True, props)
        for f, o in filters:
            if props:
                self._sprops[f] = props
            else:
                self._sprops.pop(f, None)
        return pid

    def unsubscribe(self, filters, props=None):
        """As Session.unsubscribe, with UNSUBSCRIBE properties (§3.10.2.1)."""
        pid = self._request(codec5.unsubscribe, filters, False, props)
        for f in filters:
            self._sprops.pop(f, None)
        return pid

    def _request(self, encode, filters, sub, props=None):
        fits = self._fits
        return Session._request(self, lambda pid, fl: fits(encode(pid, fl, props)), filters, sub)

    def disconnect(self, reason=0, props=None):
        """Queue a DISCONNECT with a reason code and properties (§3.14.2);
        0x04 makes the broker publish the will (§3.14.2.1)."""
        self.tx.append(self._fits(codec5.disconnect(reason, props)))
        self.connected = False

    # ---- sending ----

    def _promote(self):
        # Queued messages enter the window in order; one whose expiry passed
        # is dropped instead (§3.3.2.3.3). The window is at most the broker's
        # receive maximum (§3.3.4, §4.9). In the window, e[1] is the packet
        # sent and e[2] the message, kept only when a reconnect must rebuild
        # the packet (it used an alias or carries an expiry).
        while self.connected and self._queue and len(self._out) < self.window:
            e = self._queue.pop(0)
            a = e[2]
            if a and a[5] is not None and a[5] <= self._ms():
                self._fail(e[0])
                continue
            if len(e[1]) > self.max_send:  # queued before this broker's CONNACK
                self._fail(e[0])
                continue
            p = self._wire(e[0], a, e[1]) if a else e[1]
            if p is e[1]:
                e[2] = None
            e[1] = p
            self._out.append(e)
            self.tx.append(p)

    def _wire(self, pid, a, full):
        # The packet as it goes out now: with a topic alias when the broker
        # allows them (§3.3.2.3.4), the topic only the first time; with the
        # remaining expiry interval (§3.3.2.3.3). full: the packet without
        # either, known to fit (QoS 0 does this inline, in publish).
        topic = a[0]
        alias = self._aliases.get(topic)
        known = alias is not None
        if not known and len(self._aliases) < self.alias_max:
            alias = self._aliases[topic] = len(self._aliases) + 1
        if alias is None and a[5] is None:
            return full
        p = self._build(pid, a, alias, known)
        if len(p) > self.max_send:
            # The alias property made it too big [MQTT-3.2.2-15]: send the
            # topic instead (the packet without an alias fits: see publish).
            if not known:
                del self._aliases[topic]
            p = self._build(pid, a, 0)
        p[0] |= full[0] & 8  # a re-send keeps DUP (§3.3.1.1)
        return p

    def _build(self, pid, a, alias, known=False):
        # PUBLISH with these properties, the alias and what is left of the
        # expiry: the session's own packet id and alias need no checks.
        topic, payload, qos, retain, props, dl = a
        if dl is not None:
            props = dict(props)
            # whole seconds left, at least 1: it has not expired yet
            props[MESSAGE_EXPIRY] = max(1, (dl - self._ms() + 999) // 1000)
        return codec.publish("" if known else topic, payload, qos, retain, pid, False,
                             codec5.encode_props(props, PUBLISH, alias))

    # ---- incoming packets ----

    def _handle(self, pkt, events):
        if isinstance(pkt, Message):
            a = pkt.props.get(TOPIC_ALIAS)
            if a is not None and self.connected:
                # §3.3.2.3.4: a topic sets the alias, an empty one uses it.
                if a > self.in_alias_max:
                    raise ProtocolError("topic alias %d over our maximum (§3.3.2.3.4)" % a)
                if pkt.topic:
                    self._in_aliases[a] = pkt.topic
                else:
                    t = self._in_aliases.get(a)
                    if t is None:
                        raise ProtocolError("unknown topic alias %d (§3.3.2.3.4)" % a)
                    pkt.topic = t
            return Session._handle(self, pkt, events)
        t = pkt[0]
        if t == CONNACK:
            if self.connected:
                raise ProtocolError("second CONNACK")
            r, props = pkt[2], pkt[3]
            if r >= 0x80:
                text = reason_name(r)
                if REASON_STRING in props:
                    text += ": " + props[REASON_STRING]
                raise ConnectRefused(r, text)
            self._connacked(props)
            self._resume(pkt[1])
            events.append(pkt)
            self._oversized(events)
            return
        if t == DISCONNECT:
            # §3.14: the broker closes the link; say why.
            raise Disconnected(pkt[1], pkt[2])
        if t == AUTH:
            # Enhanced authentication (§4.12) is not started by this client:
            # keep the packet for the application to see.
            self.auth = pkt
            events.append(pkt)
            return
        if not self.connected:
            raise ProtocolError("packet type %d before CONNACK (§3.2)" % t)
        if t in (PUBACK, PUBREC) and pkt[2] >= 0x80:
            self._failed(t, pkt[1], pkt[2], events)
            return
        if t == SUBACK:
            req = self._pending.get(pkt[1])
            Session._handle(self, pkt, events)
            if not req or req[0][0] != 0x82:
                return   # not a SUBSCRIBE's: ignored there (unsolicited)
            # §3.9.3: a reason code >= 0x80 is a refused filter.
            for (f, o), c in zip(req[1], pkt[2]):
                if c >= 0x80:
                    self.subs.pop(f, None)
                    self._sprops.pop(f, None)
            return
        Session._handle(self, pkt, events)

    def _failed(self, t, pid, reason, events):
        # The broker refused the publish (§3.4.2.1, §3.5.2.1): it is done,
        # with no PUBREL after a failed PUBREC (§4.3.3). Record it.
        for i, e in enumerate(self._out):
            if e[0] == pid and e[1] is not None and e[1][0] & 6 == (2 if t == PUBACK else 4):
                del self._out[i]
                self.failures += 1
                self._fail(pid, reason)
                events.append((t, pid, reason))
                self._promote()
                return
        self.unsolicited += 1  # ignored, as in Session._acked

    def _resume(self, present):
        # The publishes in flight before count against this connection's
        # Receive Maximum, which may be smaller (§4.9): the oldest that fit
        # are re-sent now; the newer ones wait at the head of the queue,
        # marked as re-sends (DUP, §3.3.1.1), and follow as acks free room.
        # Those past PUBREC stay: their PUBREL is re-sent (§4.4).
        if not present:
            # No session: subscriptions are made again here (Session._resume
            # then finds none left). A subscription identifier belongs to its
            # SUBSCRIBE (§3.8.2.1.2): filters made with properties each go in
            # their own; the others in as few packets as fit the broker's
            # maximum packet size [MQTT-3.2.2-15].
            pend = {f for p, fl in self._pending.values() if p[0] == 0x82 for f, _ in fl}
            fl = []
            for fo in self.subs.items():
                if fo[0] in pend:
                    continue
                props = self._sprops.get(fo[0])
                if props:
                    self._resub([fo], props)
                    continue
                if fl and len(codec5.subscribe(1, fl + [fo])) > self.max_send:
                    self._resub(fl)
                    fl = []
                fl.append(fo)
            if fl:
                self._resub(fl)
        out = self._out
        i = len(out)
        while i > self.window and out[i - 1][1] is not None:
            i -= 1
        for e in out[i:]:
            e[1][0] |= 8
        self._queue[:0] = out[i:]
        del out[i:]
        Session._resume(self, present)

    def _resub(self, fl, props=None):
        pid = self._newpid()
        self._pending[pid] = (codec5.subscribe(pid, fl, props), fl)

    def _oversized(self, events):
        # What this CONNACK's maximum packet size no longer lets out
        # [MQTT-3.2.2-15] is taken back before a byte is written: a publish
        # in flight is dropped (counted in `dropped`); a SUBSCRIBE or
        # UNSUBSCRIBE is answered here, reason 0x95 (too large) per filter.
        m = self.max_send
        if all(len(p) <= m for p in self.tx):
            return
        self.tx = [p for p in self.tx if len(p) <= m]
        for pid, (p, fl) in list(self._pending.items()):
            if len(p) > m:
                del self._pending[pid]
                if p[0] == 0x82:
                    for f, o in fl:
                        self.subs.pop(f, None)
                        self._sprops.pop(f, None)
                events.append((SUBACK if p[0] == 0x82 else UNSUBACK, pid, b"\x95" * len(fl), {}))
        n = len(self._out)
        self._out = [e for e in self._out if e[1] is None or len(e[1]) <= m]
        self.dropped += n - len(self._out)
        self._promote()

    def _connacked(self, p):
        # CONNACK properties (§3.2.2.3) apply to this connection.
        self.connack_props = p
        cid = p.get(ASSIGNED_CLIENT_ID)
        if cid:
            # reconnects use it, so they find the session (§3.2.2.3.7)
            self.client_id = cid
            self._cargs[0] = cid
            self._connect = codec5.connect(*self._cargs)
        self.ka = p.get(SERVER_KEEPALIVE, self.keepalive) * 1000  # §3.2.2.3.14
        self.window = min(self.window0, p.get(RECEIVE_MAXIMUM, 65535))  # §3.2.2.3.3
        self.max_send = p.get(MAXIMUM_PACKET_SIZE, 268435460)  # §3.2.2.3.6
        self.alias_max = min(p.get(TOPIC_ALIAS_MAXIMUM, 0), self.in_alias_max)  # §3.2.2.3.8
        self.retain_available = bool(p.get(RETAIN_AVAILABLE, 1))  # §3.2.2.3.5
        self.max_qos = p.get(MAXIMUM_QOS, 2)  # §3.2.2.3.4
