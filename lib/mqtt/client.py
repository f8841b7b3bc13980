# The asyncio MQTT client: one connection task that connects, reconnects
# with backoff, reads, and keeps the link alive (with one timer task per
# connection); everything protocol-shaped is delegated to the sans-I/O
# Session, the link's I/O to compat.
import asyncio
import socket
from random import getrandbits

from .codec import Message, SUBACK, UNSUBACK, check_filter, match
from .compat import (close, drain, is_async, nodelay, open_connection, recv, sleep_ms,
                     ticks_ms, write)
from .errors import ConnectRefused, ConnectionLost, NotConnected
from .session import Session


YIELD_MS = 10
BURST = 4       # writes in one ms, the application not yielding, that make a burst
MASK = 0x3FFFFFFF  # ticks_ms() wraps here


class MQTTClient:
    """An MQTT 3.1.1 client that stays connected.

    host, port: the broker; a host name is resolved once and cached.
    client_id: "" only with clean=True (the broker then assigns one).
    will: (topic, payload, qos, retain), published by the broker if this
      client vanishes without DISCONNECT.
    connect_timeout: seconds for TCP connect plus CONNACK.
    backoff: (first, cap) seconds between reconnect attempts; the delay
      doubles from first up to cap, resets once connected, and is drawn
      from [delay, 1.5 x delay] (jitter only lengthens it). A refused
      CONNECT (bad credentials, not authorised, ...) waits cap at once.
    reconnect: False makes the client stop instead of retrying, as after
      disconnect(): connect() then raises the first attempt's error.
    window, queue, queue_bytes, max_packet: see Session. inbox: messages
      held for messages(); QoS 0 beyond it is dropped and counted.
    tls: a mqtt.tls.TLS (verifies the broker by default); None is plain TCP.
    log: a function taking one line of text, for warnings (a password sent
      without TLS, a message over max_packet skipped); the library prints
      nothing itself.
    version: 4 for MQTT 3.1.1, 5 for MQTT 5.0 (see session5.Session5 for
      session_expiry, topic_aliases, connect_props and a will's properties).
    """

    # Class-level defaults: an instance attribute only where it differs.
    tls = None
    connect_timeout = 10
    backoff = (1, 60)
    connects = 0          # connections made so far (CONNACK accepted)
    last_error = None     # why the last connection attempt or link ended
    handler_errors = 0    # exceptions raised by subscription handlers (logged)
    stopped = False       # disconnect() was called, or reconnect=False and it ended
    _task = None          # the connection task
    _k = None             # the link (compat), while there is one
    _addr = None          # the broker's getaddrinfo() entry, once resolved
    _alarm = None         # (task, ticks_ms when it rings): see _wait
    # Per link (set by _run): _lost, why it died (see _die); _drainer, the
    # link being drained (see _drain); _ms, _streak, _yielded (see _write).

    def __init__(self, host, port=1883, client_id="", clean=True, keepalive=60,
                 will=None, username=None, password=None, connect_timeout=10,
                 backoff=(1, 60), window=16, queue=32, inbox=16, max_packet=8192,
                 tls=None, log=None, version=4, queue_bytes=4096, reconnect=True, **v5):
        if version == 5:
            from .session5 import Session5 as S  # only now: 3.1.1 never loads it
        elif v5 or version != 4:
            raise ValueError("version: 4 (MQTT 3.1.1) or 5 (MQTT 5.0)")
        else:
            S = Session
        self.session = S(client_id, clean, keepalive, will, username, password,
                         max_packet, window, queue, **v5)
        if queue_bytes != self.session.queue_bytes:
            self.session.queue_bytes = queue_bytes
        self.host = host
        self.port = port
        if tls is not None:
            self.tls = tls
        if log is not None:
            self.log = log
        if password is not None and tls is None:
            self.log("password sent without TLS to %s:%d" % (host, port))
        if connect_timeout != 10:
            self.connect_timeout = connect_timeout
        if not reconnect:
            self.backoff = None
        elif backoff != (1, 60):
            self.backoff = backoff
        self.up = asyncio.Event()     # set while connected
        self.down = asyncio.Event()   # set while not connected
        self.down.set()
        self._change = asyncio.Event()  # set and cleared at every state change
        self._inbox = Inbox(self, inbox)
        self._routes = []             # [filter, handler]
        self._acks = {}               # SUBSCRIBE/UNSUBSCRIBE pid -> result when it arrives
        self._rbuf = bytearray(256)   # each read lands here

    def log(self, text):
        """Warnings (see log=); none by default: the library prints nothing."""

    # ---- public API ----

    async def connect(self, timeout=None):
        """Start the connection task (it reconnects for as long as the
        client runs) and wait until connected; returns session_present.
        Raises ConnectRefused if the broker refuses (the task keeps
        retrying with backoff), or asyncio.TimeoutError after timeout s,
        with the last attempt's error (DNS, TCP, TLS, ...) as its argument."""
        if not self._task:
            self.stopped = False
            self.last_error = None
            self._task = asyncio.create_task(self._run())
        e0 = self.last_error   # a refusal before this call was reported already

        def is_up():
            if self.up.is_set():   # set once CONNACK is in and re-sends are written
                return True
            e = self.last_error
            if e is not e0 and isinstance(e, ConnectRefused):   # a new refusal
                raise e

        try:
            await self._wait(is_up, timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(self.last_error)  # the cause, or None
        return self.session.session_present

    async def __aenter__(self):
        await self.connect()
        return self

    def __aexit__(self, *exc):
        return self.disconnect()

    async def disconnect(self, timeout=2, reason=0, props=None):
        """Send DISCONNECT (the broker discards the will), wait until the
        broker has closed the link (at most timeout s), and stop. Waiters
        (connect, publish, flush, subscribe) raise NotConnected; messages()
        ends; last_error is cleared. Unacknowledged QoS 1/2 messages stay in
        the session; call flush() first to wait for them. Version 5: a reason
        code (0x04: send the will anyway) and DISCONNECT properties."""
        from .stop import disconnect
        await disconnect(self, timeout, reason, props)

    async def publish(self, topic, payload, qos=0, retain=False, timeout=None, props=None):
        """Publish; returns the packet id (0 for QoS 0).

        QoS 0 is written at once and raises NotConnected while offline.
        QoS 1/2 returns once the message is sent or queued: while connected
        it waits (up to timeout s) for room in the queue, so a burst is
        pipelined through the window; while offline it is queued, and the
        oldest queued message is dropped (counted in session.dropped) when
        the queue is full (or holds queue_bytes); with no memory left to
        queue it, the same. After disconnect() it raises NotConnected. An
        empty retained payload clears the topic's retained message.
        props (version 5): PUBLISH properties."""
        s = self.session
        if qos and not self._has_room():
            await self._wait(self._has_room, timeout)
        if qos and self.stopped:
            raise NotConnected("stopped")
        pid = None
        while pid is None:
            try:
                if props is None:
                    pid = s.publish(topic, payload, qos, retain)
                else:
                    pid = s.publish(topic, payload, qos, retain, props, ticks_ms())
            except MemoryError:
                if not qos:
                    raise
                pid = s.shed()
        if self._write():
            await self._drain()
        return pid

    async def flush(self, timeout=None):
        """Wait until every QoS 1/2 publish is done. Raises
        outcome.Undelivered (.failed: [(pid, code)], taken from
        session.failed) when some since the last flush() were not
        delivered: refused (MQTT 5 reason code), of unknown outcome (the
        broker lost the session) or dropped."""
        s = self.session
        await self._wait(s.idle, timeout)
        f = s.failed
        if f:
            from .outcome import Undelivered
            s.failed = []
            raise Undelivered(f)

    async def subscribe(self, topic, qos=0, handler=None, timeout=None, props=None):
        """Subscribe to a filter, or to a list of (filter, qos) pairs in one
        packet. Returns the granted QoS per filter (0x80 is a failure).
        With handler, messages matching these filters are passed to
        handler(msg) (a plain function, called in the reader; an async def
        one raises TypeError) instead of messages(). Made again after a
        reconnect when the broker has no session; if offline, it is made on
        connect. Version 5: qos may carry codec5 option bits (NO_LOCAL, ...),
        props SUBSCRIBE properties; a packet over the broker's maximum packet
        size raises ValueError."""
        filters = [(topic, qos)] if isinstance(topic, str) else list(topic)
        if handler and is_async(handler):
            raise TypeError("async handler")
        for f, q in filters:
            check_filter(f)
            if handler:
                for r in self._routes:
                    if r[0] == f:
                        r[1] = handler
                        break
                else:
                    self._routes.append([f, handler])
        s = self.session
        pid = s.subscribe(filters, props) if props else s.subscribe(filters)
        return await self._request(pid, timeout)

    async def unsubscribe(self, topic, timeout=None, props=None):
        """Unsubscribe from a filter or a list of filters; drops their
        handlers. Version 5: props UNSUBSCRIBE properties (user properties)."""
        filters = [topic] if isinstance(topic, str) else list(topic)
        s = self.session
        pid = s.unsubscribe(filters, props) if props else s.unsubscribe(filters)
        self._routes = [r for r in self._routes if r[0] not in filters]
        await self._request(pid, timeout)

    async def request(self, topic, payload, timeout=10, qos=1, props=None):
        """Version 5 request/response (§4.10): publish with a response topic
        and correlation data, return the response Message."""
        from .request5 import request
        return await request(self, topic, payload, timeout, qos, props)

    def messages(self):
        """The async iterator of messages no handler took:
        `async for msg in client.messages():`. It holds up to `inbox`
        messages; QoS 1/2 messages are acknowledged when taken from it, so a
        slow reader slows the broker down instead of losing them; QoS 0
        messages that find it full are dropped and counted in `.dropped`.
        With inbox=0 it is off: such messages are acknowledged and counted
        as dropped. It ends after disconnect()."""
        return self._inbox

    # ---- waiting ----

    def _has_room(self):   # a bound method, not a closure: publish allocates no cell
        return not (self.session.connected and self.session.full())

    async def _wait(self, cond, timeout):
        # Wait until cond() is true; every state change sets _change. With
        # a timeout, an alarm task sets it at the deadline; one that rings
        # no later serves every waiter, so a burst of waits (publish, the
        # window full) costs no task each. One alarm at a time: a new one
        # cancels the old (whose waiters then set their own); stopping
        # cancels the last.
        t0 = ticks_ms()
        while not cond():
            if self.stopped:
                # why: the error that ended the last attempt (reconnect=False)
                raise self.last_error or NotConnected("stopped")
            if timeout is not None:
                now = ticks_ms()
                ms = int(timeout * 1000) - (now - t0 & MASK)
                if ms <= 0:
                    raise asyncio.TimeoutError()
                a = self._alarm
                if not a or a[0].done() or (a[1] - now & MASK) > ms:
                    if a:
                        a[0].cancel()
                    self._alarm = (asyncio.create_task(self._ring(ms)), now + ms & MASK)
            await self._change.wait()

    async def _ring(self, ms):
        await sleep_ms(ms)
        self._signal()

    def _signal(self):
        # Wake every waiter; set() schedules them, so clearing at once is safe.
        self._change.set()
        self._change.clear()

    async def _request(self, pid, timeout):
        self._acks[pid] = None
        try:
            await self._send()
            await self._wait(lambda: self._acks[pid] is not None, timeout)
            return list(self._acks[pid])
        finally:
            del self._acks[pid]

    # ---- the connection task ----

    async def _run(self):
        # The connection task. Each round: connect, CONNECT/CONNACK, read
        # until the link dies, back off, again. The timer task holds the
        # connect deadline (TCP, TLS, CONNACK, the re-sends), then keeps the
        # link alive; when it, or a write in another task, finds the link
        # dead, _die cancels this task with the reason in _lost.
        s = self.session
        ib = self._inbox
        b = self.backoff
        delay = b and b[0]
        # disconnect() cancels this task; stop on the flag too, whatever
        # the cancel met on its way.
        while not self.stopped:
            n = self.connects
            self._lost = self._drainer = None
            self._streak = self._ms = self._yielded = 0
            timer = asyncio.create_task(self._timer(int(self.connect_timeout * 1000)))
            try:
                try:
                    if not self._addr:
                        # Blocking on MicroPython, so done once per client (DESIGN §2).
                        self._addr = socket.getaddrinfo(self.host, self.port, 0,
                                                        socket.SOCK_STREAM)[0]
                    t = self.tls
                    if t:
                        # verified against the name we were given, not the resolved address
                        k = await open_connection(self._addr, t.context,
                                                  t.server_hostname or self.host)
                    else:
                        k = await open_connection(self._addr)
                    self._k = k
                    nodelay(k, 1)
                    s.start(ticks_ms())
                    up = False
                    while True:
                        if self._lost:   # a write of ours failed
                            raise self._lost
                        if self._write():
                            await self._drain()
                        # QoS 1/2 messages are kept until taken; the broker's
                        # in-flight limit should bound them, but mosquitto
                        # 2.0.11 lets more out than its max_inflight_messages
                        # once acks flow. Past inbox + Inbox.SLACK held, stop
                        # reading until the application takes one, so TCP holds
                        # the broker back and memory stays bounded.
                        while up and ib._full():
                            await self._change.wait()
                        data = await recv(k, self._rbuf)
                        if not data:
                            raise ConnectionLost("closed by the broker")
                        if self._streak >= BURST:   # the application yielded: no burst
                            nodelay(k, 1)
                        self._streak = 0
                        self._dispatch(s.feed(data, ticks_ms()))
                        if s.connected and not up:
                            if self._write():   # re-sends and re-subscribes the CONNACK queued
                                await self._drain()
                            up = True
                            self.connects += 1
                            timer.cancel()
                            timer = asyncio.create_task(self._timer(0))
                            self.up.set()
                            self.down.clear()
                            self._signal()
                except asyncio.CancelledError:
                    if self._lost and not self.stopped:
                        raise self._lost
                    raise
            except Exception as e:  # OSError, MQTTError, TimeoutError: all mean retry
                if not self.stopped:  # else the end disconnect() asked for
                    self.last_error = e
                    self.log("no link: %r" % (e,))
                    if isinstance(e, ConnectRefused):
                        # Retrying soon will not fix credentials or rights.
                        delay = b and b[1]
            finally:
                timer.cancel()
                k = self._k
                self._k = None
                if k:
                    close(k)
                s.closed()
                self.up.clear()
                self.down.set()
                self._signal()
            if not b:   # reconnect=False
                from .stop import halt
                return halt(self)
            if self.connects != n:   # it was up
                delay = b[0]
            s.poll(ticks_ms())  # its clock (session5._tick), while offline too
            # Never shorter than the delay; the jitter (up to half of it)
            # keeps a fleet that lost the same broker out of lockstep.
            await sleep_ms(int(delay * (1000 + getrandbits(9) * 125 // 128)))
            delay = min(delay * 2, b[1])

    async def _timer(self, ms):
        # ms > 0: the connect deadline; 0: keepalive while up.
        s = self.session
        try:
            if ms:
                await sleep_ms(ms)
                raise asyncio.TimeoutError()
            while True:
                if self._inbox._full():
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
        # The link is dead (e): the connection task ends with e. Another
        # task cancels it; the connection task itself raises _lost next.
        if not self._lost:
            self._lost = e
            t = self._task
            if t and t is not asyncio.current_task():
                t.cancel()

    async def _send(self):
        if self._write():
            await self._drain()

    def _write(self):
        # Write what the session has queued, one write per packet, in order,
        # without a yield: concurrent senders keep the order. In a burst
        # (more than BURST writes within one ms, no task of ours having run
        # in between: the application has not yielded), Nagle is turned on
        # so the kernel gathers the burst's packets into full segments: a
        # segment per small packet costs the broker a read each. It goes off
        # again (which sends what it holds, on Linux) at the next write in a
        # later ms or when the reader runs. True when a drain is due: the
        # socket did not take everything, or YIELD_MS passed since the last
        # one (a burst then costs no scheduler round trip per message, yet
        # the reader and timers run).
        s = self.session
        k = self._k
        if not (k and s.tx):
            return False
        now = ticks_ms()
        if now != self._ms:
            self._ms = now
            if self._streak >= BURST:
                nodelay(k, 1)
            self._streak = 0
        try:
            pending = write(k, s.take(now))
        except OSError as e:
            self._die(e)
            return False
        self._streak += 1
        if self._streak == BURST:
            nodelay(k, 0)
        if pending or (now - self._yielded & MASK) >= YIELD_MS:
            self._yielded = now
            return True
        return False

    async def _drain(self):
        # One drainer per link at a time (MicroPython's poller holds one
        # writer per socket): the others wait until it is done, so each
        # returns once its bytes are taken or the link is gone.
        k = self._k
        while k and self._drainer is k and k is self._k:
            await self._change.wait()
        if not k or k is not self._k:
            return
        self._drainer = k
        try:
            await drain(k)
        except OSError as e:
            if k is self._k:
                self._die(e)
        finally:
            if self._drainer is k:
                self._drainer = None
            self._signal()

    def _dispatch(self, events):
        s = self.session
        for e in events:
            if isinstance(e, Message):
                routed = False
                for f, h in self._routes:
                    if match(f, e.topic):
                        routed = True
                        try:
                            r = h(e)
                            if hasattr(r, "send"):
                                r.close()  # an async method (MicroPython cannot tell at subscribe)
                                raise TypeError("async handler")
                        except Exception as x:
                            self.handler_errors += 1
                            self.log("handler: %r" % (x,))
                ib = self._inbox
                if routed:
                    s.ack(e)
                elif len(ib._q) < ib.size or e.qos and ib.size:
                    ib._q.append(e)
                else:   # full (or off): QoS 0 is dropped
                    ib.dropped += 1
                    s.ack(e)
            elif e[0] in (SUBACK, UNSUBACK) and e[1] in self._acks:
                self._acks[e[1]] = e[2] if e[0] == SUBACK else b""
            elif not e[0]:   # (0, text): a PUBLISH over max_packet skipped (oversize.py)
                self.log(e[1])
        if events:
            self._signal()


class Inbox:
    """Async iterator over received messages (see MQTTClient.messages)."""

    SLACK = 20   # held beyond size: a broker's in-flight (mosquitto's default is 20)
    dropped = 0

    def __init__(self, client, size):
        self._c = client
        self._q = []
        self.size = size

    def __len__(self):
        return len(self._q)

    def _full(self):
        return self.size and len(self._q) >= self.size + self.SLACK

    def __aiter__(self):
        return self

    async def __anext__(self):
        c = self._c
        while not self._q:
            if c.stopped:
                raise StopAsyncIteration
            await c._change.wait()   # the reader signals what it puts here
        if self._full():
            c._signal()   # the reader waits for room
        m = self._q.pop(0)
        c.session.ack(m)
        if c._write():
            await c._drain()
        return m

