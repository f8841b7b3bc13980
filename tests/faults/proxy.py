"""A fault-injecting TCP proxy between an MQTT client and a broker, plus two
listeners that misbehave at connect time. CPython asyncio on loopback; each
runs its own event loop in a background thread, so a test drives it from
plain synchronous code while a client runs in another process.

    p = Proxy(broker.port).start()      # client connects to 127.0.0.1:p.port
    p.mode = "blackhole"                # pass | blackhole | cut | reset | fragment | delay
    p.cut_all()                         # close every open link (FIN both ways)
    p.cut_after(PUBREC, "b2c")          # forward the next PUBREC to the client, then cut
    p.random_cuts(seed=7, lo=0.3, hi=1.0)
    p.stop()

Modes (read per chunk, so a change applies to open links at once):
    pass       forward bytes as they come
    blackhole  drop every byte both ways; sockets stay open (a half-open link).
               New connections are accepted and then ignored as well.
    cut        close both sides (FIN) of every link; new connections are closed
               at once
    reset      like cut but with RST (SO_LINGER 0, then close)
    fragment   forward one byte per write, `fragment_s` apart
    delay      sleep `delay_ms` before forwarding each chunk

What it records (for assertions):
    connections     connections accepted so far
    accepts         [(monotonic time, conn no)] of each accept
    client_ids      {conn no: client id from its CONNECT}
    upstream_failures  accepts whose upstream connect failed (broker down); the
                    client side is then closed after its CONNECT was read (or 1 s);
                    their conn nos are in `failed`
    packets         [Packet] every MQTT packet forwarded (time, conn, dir "c2b"/"b2c",
                    type, flags, pid, payload of PUBLISH)
    cuts            [(monotonic time, action, links affected)]
    active          links open right now
"""
import asyncio
import random
import socket
import struct
import threading
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT"}
MODES = ("pass", "blackhole", "cut", "reset", "fragment", "delay")


class Packet:
    __slots__ = ("t", "conn", "dir", "type", "flags", "pid", "payload")

    def __init__(self, t, conn, direction, ptype, flags, pid, payload):
        self.t, self.conn, self.dir, self.type = t, conn, direction, ptype
        self.flags, self.pid, self.payload = flags, pid, payload

    @property
    def dup(self):
        return bool(self.flags & 8)

    @property
    def qos(self):
        return self.flags >> 1 & 3

    def __repr__(self):
        return "<%s %s conn=%d pid=%s flags=%x%s>" % (
            self.dir, NAMES.get(self.type, self.type), self.conn, self.pid, self.flags,
            " %r" % self.payload if self.payload is not None else "")


def split_packets(buf):
    """Complete MQTT packets at the start of buf: [(start, end)] and the bytes used."""
    out = []
    i = 0
    n = len(buf)
    while i + 2 <= n:
        mult, length, j = 1, 0, i + 1
        while True:
            if j >= n:
                return out, i
            b = buf[j]
            length += (b & 0x7F) * mult
            mult *= 128
            j += 1
            if not b & 0x80:
                break
            if mult > 128 ** 4:
                raise ValueError("bad remaining length")
        if j + length > n:
            break
        out.append((i, j, j + length))  # start, body start, end
        i = j + length
    return out, i


def _describe(buf, start, body, end):
    b0 = buf[start]
    t, flags = b0 >> 4, b0 & 15
    pid = None
    payload = None
    try:
        if t == PUBLISH:
            tl = buf[body] << 8 | buf[body + 1]
            k = body + 2 + tl
            if flags & 6:
                pid = buf[k] << 8 | buf[k + 1]
                k += 2
            payload = bytes(buf[k:end])
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK):
            pid = buf[body] << 8 | buf[body + 1]
    except IndexError:
        pass
    return t, flags, pid, payload


def _client_id(buf, body):
    try:
        k = body
        k += 2 + (buf[k] << 8 | buf[k + 1])  # protocol name
        level = buf[k]
        k += 4                               # level, flags, keepalive
        if level == 5:                       # MQTT 5: properties first (5.0 §3.1.2.11)
            n = shift = 0
            while True:
                n |= (buf[k] & 0x7F) << shift
                shift += 7
                k += 1
                if not buf[k - 1] & 0x80:
                    break
            k += n
        n = buf[k] << 8 | buf[k + 1]
        return bytes(buf[k + 2:k + 2 + n]).decode()
    except (IndexError, UnicodeError):
        return None


def _rst(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _fin(writer):
    try:
        writer.close()
    except Exception:  # already closed
        pass


class _LoopThread:
    """An asyncio loop in a daemon thread; call(coro_or_fn) runs things in it."""

    def _start_loop(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()
            self.loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)

    def call(self, fn, *args, timeout=10):
        """Run fn(*args) in the loop (a coroutine function is awaited); return its result."""

        async def wrap():
            r = fn(*args)
            if asyncio.iscoroutine(r):
                r = await r
            return r

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def _stop_loop(self):
        if getattr(self, "loop", None) is None or not self._thread.is_alive():
            return

        async def shutdown():
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

        try:
            self.call(shutdown)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class _Link:
    def __init__(self, no, cr, cw):
        self.no = no
        self.cr, self.cw = cr, cw      # client side
        self.ur = self.uw = None       # upstream (broker) side
        self.blackholed = False
        self.closed = False
        self.bufs = {"c2b": bytearray(), "b2c": bytearray()}
        self.tasks = []


class Proxy(_LoopThread):
    def __init__(self, upstream_port, upstream_host="127.0.0.1", host="127.0.0.1", port=0):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self._port = port
        self.port = None
        self._mode = "pass"
        self.delay_ms = 20
        self.fragment_s = 0.001
        self.connections = 0
        self.accepts = []
        self.client_ids = {}
        self.upstream_failures = 0
        self.failed = set()          # conn nos whose upstream connect failed
        self.packets = []
        self.cuts = []
        self._links = {}
        self._triggers = []
        self._server = None
        self._random = None

    # ---- control (call from any thread) ----

    def start(self):
        self._start_loop()

        async def listen():
            self._server = await asyncio.start_server(self._accept, self.host, self._port)
            return self._server.sockets[0].getsockname()[1]

        self.port = self.call(listen)
        return self

    def stop(self):
        if self._server is not None:
            def close():
                self._server.close()
                self._cut(list(self._links.values()), "reset", log=False)
            try:
                self.call(close)
            except Exception:
                pass
            self._server = None
        self._stop_loop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, m):
        if m not in MODES:
            raise ValueError("mode must be one of %s" % (MODES,))
        self.call(self._set_mode, m)

    @property
    def active(self):
        return len(self._links)

    def cut_all(self, reset=False):
        """Close every open link now (FIN, or RST with reset=True); returns how many."""
        return self.call(lambda: self._cut(list(self._links.values()), "reset" if reset else "cut"))

    def cut_after(self, ptype, direction, action="cut", count=1):
        """After the count-th packet of type ptype (from now) has been forwarded in
        direction ("c2b" client->broker, "b2c" broker->client), apply action
        ("cut", "reset", "blackhole") to that link and drop the rest of the chunk."""
        trig = {"type": ptype, "dir": direction, "action": action, "left": count, "fired": None}
        self.call(self._triggers.append, trig)
        return trig

    def random_cuts(self, seed, lo=0.3, hi=1.0, actions=("cut", "reset")):
        """Cut every open link at random intervals uniform in [lo, hi] s, each time
        with a random action from actions; reproducible from seed."""
        rng = random.Random(seed)

        async def cutter():
            while True:
                await asyncio.sleep(rng.uniform(lo, hi))
                self._cut(list(self._links.values()), rng.choice(actions))

        def go():
            self._random = asyncio.ensure_future(cutter())

        self.call(go)

    def stop_random_cuts(self):
        def halt():
            if self._random:
                self._random.cancel()
                self._random = None
        self.call(halt)

    def wait_connections(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.connections < n:
            if time.monotonic() > deadline:
                raise TimeoutError("%d connections, wanted %d" % (self.connections, n))
            time.sleep(0.01)

    def packets_of(self, ptype=None, direction=None, conn=None):
        return [p for p in list(self.packets)
                if (ptype is None or p.type == ptype) and (direction is None or p.dir == direction)
                and (conn is None or p.conn == conn)]

    # ---- in the loop ----

    def _set_mode(self, m):
        self._mode = m
        if m in ("cut", "reset"):
            self._cut(list(self._links.values()), m)

    def _cut(self, links, action, log=True):
        n = 0
        for link in links:
            if action == "blackhole":
                link.blackholed = True
                n += 1
                continue
            if link.closed:
                continue
            link.closed = True
            n += 1
            self._links.pop(link.no, None)
            for w in (link.cw, link.uw):
                if w is not None:
                    (_rst if action == "reset" else _fin)(w)
            for t in link.tasks:
                if t is not asyncio.current_task():
                    t.cancel()
        if log:
            self.cuts.append((time.monotonic(), action, n))
        return n

    async def _accept(self, cr, cw):
        self.connections += 1
        no = self.connections
        self.accepts.append((time.monotonic(), no))
        link = _Link(no, cr, cw)
        mode = self._mode
        if mode in ("cut", "reset"):
            (_rst if mode == "reset" else _fin)(cw)
            return
        if mode != "blackhole":
            try:
                link.ur, link.uw = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.upstream_failures += 1
                self.failed.add(no)
                # Log who tried (their CONNECT), then close: a broker that is down.
                try:
                    data = await asyncio.wait_for(cr.read(1024), 1.0)
                    pk, _ = split_packets(data)
                    if pk and data[0] >> 4 == CONNECT:
                        self.client_ids[no] = _client_id(data, pk[0][1])
                except (asyncio.TimeoutError, OSError, ValueError):
                    pass
                _fin(cw)
                return
        else:
            link.blackholed = True
        self._links[no] = link
        link.tasks.append(asyncio.current_task())
        if link.ur is not None:
            link.tasks.append(asyncio.ensure_future(self._pump(link, link.ur, link.cw, "b2c")))
        try:
            await self._pump(link, cr, link.uw, "c2b")
        except asyncio.CancelledError:
            pass

    async def _pump(self, link, r, w, direction):
        buf = link.bufs[direction]
        try:
            while True:
                data = await r.read(4096)
                if not data:
                    break
                if link.blackholed or self._mode == "blackhole" or w is None:
                    continue
                base = len(buf)
                buf.extend(data)
                pk, used = split_packets(buf)
                cut_at, action = len(data), None
                now = time.monotonic()
                for start, body, end in pk:
                    t, flags, pid, payload = _describe(buf, start, body, end)
                    self.packets.append(Packet(now, link.no, direction, t, flags, pid, payload))
                    if t == CONNECT and direction == "c2b":
                        self.client_ids[link.no] = _client_id(buf, body)
                    for trig in self._triggers:
                        if trig["fired"] is None and trig["type"] == t and trig["dir"] == direction:
                            trig["left"] -= 1
                            if trig["left"] <= 0:
                                trig["fired"] = (now, link.no, pid)
                                action = trig["action"]
                    if action:
                        cut_at = end - base
                        break
                del buf[:used]
                await self._forward(w, data[:cut_at])
                if action:
                    if action == "blackhole":
                        self._cut([link], "blackhole")
                        continue
                    self._cut([link], action)
                    return
        except (OSError, asyncio.CancelledError):
            pass
        except ValueError:  # not MQTT: give up on this link
            pass
        if not link.closed:
            self._cut([link], "cut", log=False)

    async def _forward(self, w, data):
        if not data:
            return
        mode = self._mode
        if mode == "fragment":
            for i in range(len(data)):
                w.write(data[i:i + 1])
                await w.drain()
                await asyncio.sleep(self.fragment_s)
            return
        if mode == "delay":
            await asyncio.sleep(self.delay_ms / 1000)
        w.write(data)
        await w.drain()


class BadListener(_LoopThread):
    """A listener that misbehaves at connect time.

    kind "silent":        accepts, reads everything, never answers
    kind "half_connack":  accepts, sends the first 2 bytes of a CONNACK, then nothing
    kind "full_backlog":  listen(0) and never accept, with the backlog filled by
                          the listener itself, so a client's TCP connect hangs
                          (SYNs dropped) until its own timeout
    Records accepts [(time, no)], closes [(time, no)] (client went away) and
    open_now (connections the client has not closed).
    """

    def __init__(self, kind, host="127.0.0.1"):
        self.kind = kind
        self.host = host
        self.port = None
        self.accepts = []
        self.closes = []
        self._open = set()
        self._server = None
        self._fillers = []
        self._raw = None

    @property
    def open_now(self):
        return len(self._open)

    def start(self):
        if self.kind == "full_backlog":
            s = socket.socket()
            s.bind((self.host, 0))
            s.listen(0)
            self._raw = s
            self.port = s.getsockname()[1]
            # Fill the accept queue so further SYNs are dropped by the kernel.
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                try:
                    f.connect((self.host, self.port))
                except (BlockingIOError, OSError):
                    pass
                self._fillers.append(f)
            time.sleep(0.2)
            return self
        self._start_loop()

        async def listen():
            self._server = await asyncio.start_server(self._accept, self.host, 0)
            return self._server.sockets[0].getsockname()[1]

        self.port = self.call(listen)
        return self

    async def _accept(self, r, w):
        no = len(self.accepts) + 1
        self.accepts.append((time.monotonic(), no))
        self._open.add(no)
        if self.kind == "half_connack":
            w.write(b"\x20\x02")
        try:
            while await r.read(1024):
                pass
        except OSError:
            pass
        self._open.discard(no)
        self.closes.append((time.monotonic(), no))
        _fin(w)

    def stop(self):
        for f in self._fillers:
            f.close()
        if self._raw is not None:
            self._raw.close()
        if self._server is not None:
            try:
                self.call(self._server.close)
            except Exception:
                pass
        self._stop_loop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
