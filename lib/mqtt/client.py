# The asyncio MQTT client: one connection task that connects, reconnects
# with backoff, reads, and keeps the link alive; everything protocol-shaped
# is delegated to the sans-I/O Session.
import asyncio
import socket
from random import getrandbits

from .codec import Message, const, match
from .compat import open_connection, sleep_ms, ticks_ms
from .errors import ConnectRefused, ConnectionLost
from .session import Session

_SUBACK = const(9)  # codec.SUBACK; UNSUBACK (11) is the only event type above it


class MQTTClient:
    """An MQTT 3.1.1 client that stays connected.

    host, port: the broker; a host name is resolved once and cached.
    client_id: "" only with clean=True (the broker then assigns one).
    will: (topic, payload, qos, retain), published by the broker if this
      client vanishes without DISCONNECT.
    connect_timeout: seconds for TCP connect plus CONNACK.
    backoff: (first, cap) seconds between reconnect attempts; the delay
      doubles up to the cap, with jitter, and resets once connected.
    window, queue, max_packet: see Session. inbox: messages held for
      messages(); QoS 0 beyond it is dropped and counted.
    tls: a mqtt.tls.TLS (verifies the broker by default); None is plain TCP.
    log: a function taking one line of text, for warnings (a password sent
      without TLS); the library prints nothing itself.
    """

    def __init__(self, host, port=1883, client_id="", clean=True, keepalive=60,
                 will=None, username=None, password=None, connect_timeout=10,
                 backoff=(1, 60), window=16, queue=32, inbox=16, max_packet=8192,
                 tls=None, log=None):
        self.session = Session(client_id, clean, keepalive, will, username, password,
                               max_packet, window, queue)
        self.host = host
        self.port = port
        self.tls = tls
        if password is not None and tls is None and log:
            log("password sent without TLS to %s:%d" % (host, port))
        self.connect_timeout = connect_timeout
        self.backoff = backoff
        self.up = asyncio.Event()     # set while connected
        self.down = asyncio.Event()   # set while not connected
        self.down.set()
        self.connects = 0             # connections made so far (CONNACK accepted)
        self.last_error = None        # why the last connection attempt or link ended
        self.handler_errors = 0       # exceptions raised by subscription handlers
        self.stopped = False          # disconnect() was called
        self._in = Inbox(self, inbox)   # what messages() returns
        self._rt = {}                 # routes: filter -> handler
        self._acks = {}               # SUBSCRIBE/UNSUBSCRIBE pid -> result when it arrives
        self._ai = None               # the broker's address (a getaddrinfo entry)
        self._task = None             # the connection task (_run)
        self._w = None                # the stream writer of the current link
        self._lk = asyncio.Lock()     # held while writing
        self._ev = asyncio.Event()    # set (and replaced) on every state change
        self._ref = None              # a ConnectRefused for connect() to raise
        self._dead = asyncio.Event()  # set when the current link dies
        self._lost = None             # why it died
        self._hold = False            # the reader waits for room in the inbox

    # ---- public API ----

    async def connect(self, timeout=None):
        """Start the connection task (it reconnects for as long as the
        client runs) and wait until connected; returns session_present.
        Raises ConnectRefused if the broker refuses (the task keeps
        retrying with backoff), or asyncio.TimeoutError after timeout s."""
        if not self._task:
            self._ref = None
            self.stopped = False
            self._task = asyncio.create_task(self._run())
        await self._wait(self._is_up, timeout)
        return self.session.session_present

    async def disconnect(self, timeout=5):
        """Send DISCONNECT (the broker discards the will), close the link and
        stop reconnecting. Unacknowledged QoS 1/2 messages stay in the
        session; call flush() first to wait for them."""
        t = self._task
        self._task = None
        self.stopped = True
        if not t:
            return
        if self.session.connected:
            self.session.disconnect()
            try:
                await asyncio.wait_for(self._send(), timeout)  # OSError ends in _die
            except asyncio.TimeoutError:
                pass
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass

    async def publish(self, topic, payload, qos=0, retain=False, timeout=None):
        """Publish; returns the packet id (0 for QoS 0).

        QoS 0 is written at once and raises NotConnected while offline.
        QoS 1/2 returns once the message is sent or queued: while connected
        it waits (up to timeout s) for room in the queue, so a burst is
        pipelined through the window; while offline it is queued, and the
        oldest queued message is dropped (counted in session.dropped) when
        the queue is full. An empty retained payload clears the topic's
        retained message."""
        if qos:
            await self._wait(self._has_room, timeout)
        pid = self.session.publish(topic, payload, qos, retain)
        await self._send()
        return pid

    async def flush(self, timeout=None):
        """Wait until every QoS 1/2 publish is acknowledged."""
        await self._wait(self.session.idle, timeout)

    async def subscribe(self, topic, qos=0, handler=None, timeout=None):
        """Subscribe to a filter, or to a list of (filter, qos) pairs in one
        packet. Returns the granted QoS per filter (0x80 is a failure).
        With handler, messages matching these filters are passed to
        handler(msg) (a plain function, called in the reader) instead of
        messages(). Made again after a reconnect when the broker has no
        session; if offline, it is made on connect."""
        filters = [(topic, qos)] if isinstance(topic, str) else list(topic)
        pid = self.session.subscribe(filters)  # checks every filter and QoS
        if handler:
            for f, q in filters:
                self._rt[f] = handler
        return await self._request(pid, timeout)

    async def unsubscribe(self, topic, timeout=None):
        """Unsubscribe from a filter or a list of filters; drops their handlers."""
        filters = [topic] if isinstance(topic, str) else list(topic)
        pid = self.session.unsubscribe(filters)
        for f in filters:
            self._rt.pop(f, None)
        await self._request(pid, timeout)

    def messages(self):
        """The async iterator of messages no handler took:
        `async for msg in client.messages():`. It holds up to `inbox`
        messages; QoS 1/2 messages are acknowledged when taken from it, so a
        slow reader slows the broker down instead of losing them; QoS 0
        messages that find it full are dropped and counted in `.dropped`.
        With inbox=0 it is off: such messages are acknowledged and counted
        as dropped. It ends after disconnect()."""
        return self._in

    # ---- waiting ----

    def _is_up(self):
        e = self._ref
        if e:
            self._ref = None
            raise e
        return self.up.is_set()   # set once CONNACK is in and re-sends are written

    def _has_room(self):
        return not (self.session.connected and self.session.full())

    async def _wait(self, cond, timeout):
        # Wait until cond() is true; every state change sets _ev.
        t0 = ticks_ms()
        while not cond():
            ev = self._ev
            if timeout is None:
                await ev.wait()
            else:
                left = timeout - (ticks_ms() - t0 & 0x3FFFFFFF) / 1000
                if left <= 0:
                    raise asyncio.TimeoutError()
                try:
                    await asyncio.wait_for(ev.wait(), left)
                except asyncio.TimeoutError:
                    pass

    def _signal(self):
        ev = self._ev
        self._ev = asyncio.Event()
        ev.set()

    async def _request(self, pid, timeout):
        acks = self._acks
        acks[pid] = None
        try:
            await self._send()
            await self._wait(lambda: acks[pid] is not None, timeout)
            return list(acks[pid])
        finally:
            del acks[pid]

    # ---- the connection task ----

    async def _run(self):
        first, cap = self.backoff
        delay = first
        while True:
            n = self.connects
            try:
                await self._connection()
            except Exception as e:  # OSError, MQTTError, TimeoutError: all mean retry
                self.last_error = e
                if isinstance(e, ConnectRefused):
                    self._ref = e
            finally:
                self._close()
            if self.stopped:
                # disconnect() cancelled us, but asyncio.wait_for (CPython
                # 3.11) can swallow a cancel that meets the end of its wait
                return
            if self.connects != n:  # it was up: start again from the first delay
                delay = first
            # Equal jitter: half the delay fixed, half random, so a fleet
            # that lost the same broker does not come back in lockstep.
            await sleep_ms(int(delay * 500 + getrandbits(16) * delay * 500 // 65536))
            delay = min(delay * 2, cap)

    async def _connection(self):
        if not self._ai:
            # Blocking on MicroPython, so done once per client (DESIGN §2).
            self._ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
        self._lost = None
        self._dead = dead = asyncio.Event()
        # connect_timeout bounds the TCP connect, TLS handshake and CONNACK
        r = await asyncio.wait_for(self._open(), self.connect_timeout)
        if self.stopped:  # a cancel that wait_for swallowed (see _run)
            return
        await self._send()  # re-sends and re-subscribes queued by the CONNACK
        self.connects += 1
        self.up.set()
        self.down.clear()
        self._signal()
        reader = asyncio.create_task(self._reader(r))
        timer = asyncio.create_task(self._timer())
        try:
            await dead.wait()
        finally:
            reader.cancel()
            timer.cancel()
        raise self._lost

    async def _open(self):
        # The link up to an accepted CONNACK; returns its reader.
        tls = self.tls
        r, w = await (tls.open(self._ai, self.host) if tls else open_connection(self._ai))
        self._w = w
        # One write per packet, so Nagle only adds latency (40 ms with delayed
        # ACK): turn it off where the port lets us (IPPROTO_TCP=6,
        # TCP_NODELAY=1). MicroPython's Stream keeps its socket in .s.
        try:
            (getattr(w, "s", 0) or w.get_extra_info("socket")).setsockopt(6, 1, 1)
        except (AttributeError, OSError):
            pass  # a port without the option: Nagle stays on
        self.session.start(ticks_ms())
        await self._send()
        while not self.session.connected:
            await self._read(r)
        return r

    async def _read(self, r):
        data = await r.read(512)
        if not data:
            raise ConnectionLost("closed by the broker")
        self._dispatch(self.session.feed(data, ticks_ms()))

    async def _reader(self, r):
        try:
            while True:
                # QoS 1/2 messages are kept until taken; the broker's in-flight
                # limit should bound them, but mosquitto 2.0.11 lets more out
                # than its max_inflight_messages once acks flow. Past inbox +
                # 20 held (mosquitto's default in-flight), stop reading until
                # the application takes one, so TCP holds the broker back and
                # memory stays bounded.
                while self._in.size and len(self._in) >= self._in.size + 20:
                    self._hold = True
                    await self._ev.wait()
                self._hold = False
                await self._read(r)
                await self._send()
        except Exception as e:
            self._die(e)

    async def _timer(self):
        s = self.session
        try:
            while True:
                if self._hold:
                    # Not reading: PINGRESP waits in the socket, so do not
                    # count it as missing; PINGREQ still goes out every
                    # keepalive period, so the broker keeps the link.
                    s._ping = None
                ms = s.poll(ticks_ms())
                await self._send()
                await sleep_ms(ms)
        except Exception as e:
            self._die(e)

    def _die(self, e):
        # The link is broken (the first reason is kept): _connection ends it.
        self._lost = self._lost or e
        self._dead.set()

    def _close(self):
        w = self._w
        self._w = None
        if w:
            s = getattr(w, "s", 0)
            if s:
                # MicroPython: Stream.close() leaves the socket open (only
                # wait_closed() closes it), so close the socket itself, now.
                s.close()
            else:
                w.transport.abort()  # CPython: drop, do not linger
        self.session.closed()
        self.up.clear()
        self.down.set()
        self._signal()

    async def _send(self):
        # Write what the session has queued, one write per packet, in order:
        # take() happens under the lock so concurrent senders keep order.
        if not self.session.tx:
            return
        async with self._lk:
            w = self._w
            tx = self.session.take(ticks_ms())
            if not (w and tx):
                return
            try:
                for p in tx:
                    w.write(p)
                await w.drain()
            except OSError as e:
                if self._w is w:  # not a link that is already gone
                    self._die(e)

    def _dispatch(self, events):
        acks = self._acks
        for e in events:
            if isinstance(e, Message):
                routed = False
                for f in self._rt:
                    if match(f, e.topic):
                        routed = True
                        try:
                            self._rt[f](e)
                        except Exception as x:
                            self.handler_errors += 1
                            self.last_error = x
                if not routed:
                    q = self._in
                    if len(q._q) < q.size or e.qos and q.size:
                        q._q.append(e)  # for messages(); the change is signalled below
                        continue
                    # a QoS 0 message that finds messages() full (any
                    # message, with inbox=0) is dropped, and counted
                    q.dropped += 1
                self.session.ack(e)
            elif e[0] >= _SUBACK and e[1] in acks:  # SUBACK or UNSUBACK
                acks[e[1]] = e[2] if e[0] == _SUBACK else b""
        if events:
            self._signal()


class Inbox:
    """Async iterator over received messages (see MQTTClient.messages)."""

    def __init__(self, client, size):
        self._c = client
        self._q = []
        self.size = size
        self.dropped = 0

    def __len__(self):
        return len(self._q)

    def __aiter__(self):
        return self

    async def __anext__(self):
        c = self._c
        while not self._q:
            if c.stopped:
                raise StopAsyncIteration
            await c._ev.wait()
        m = self._q.pop(0)
        if c._hold:
            c._signal()  # room again: the reader goes on
        c.session.ack(m)
        await c._send()
        return m
