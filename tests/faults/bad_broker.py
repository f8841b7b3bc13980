"""A misbehaving MQTT 3.1.1 broker for bad-input tests (CPython, asyncio, 127.0.0.1).

It speaks just enough MQTT to accept a client, then sends what the test scripted, byte for
byte. Each TCP connection takes the next script (the last one repeats); a script is a list of
steps run in order once the client's CONNECT has arrived:

    "connack"             CONNACK accepted (session present 0)
    ("connack", sp)       CONNACK accepted, session present = sp
    ("mute", {types})     from now on, do not answer these client packet types (e.g. 6:
                          PUBREL gets no PUBCOMP; 3: PUBLISH gets no PUBACK/PUBREC)
    ("linger", s)         on the client's DISCONNECT, wait s seconds before closing
    b"..."                these bytes, as they are
    ("trickle", b, s)     the bytes of b one at a time, s seconds apart
    ("sleep", s)          wait
    "close"               close the connection

After its script the connection is served like a plain broker: PINGRESP, PUBACK / PUBREC /
PUBCOMP for the client's publishes, SUBACK granting what was asked, UNSUBACK; DISCONNECT
closes (at once, or after a linger). The broker records, per connection: the packet types the
client sent, whether the client closed the connection (and when), when the broker closed it
after DISCONNECT (closed_by_broker_at), and the bytes sent.

    with BadBroker([["connack", b"\\x30\\xff\\xff\\xff\\xff\\x7f"], ["connack"]]) as b:
        ... point the client at b.port ...
        b.connections[0].closed_by_client   # True: the client hung up on the bad bytes
"""
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: codec_broker

from mqtt import codec  # noqa: E402
from codec_broker import PINGRESP_PACKET, connack, decode_client, suback  # noqa: E402


class Connection:
    def __init__(self, n):
        self.n = n
        self.opened = time.monotonic()
        self.received = []              # packet types from the client, in order
        self.publishes = []             # (pid, qos, dup, payload) of the client's PUBLISHes
        self.acks = []                  # (type, pid) of the client's PUBACK..PUBCOMP
        self.mute = set()
        self.linger = 0
        self.closed_by_broker_at = None
        self.closed_by_client = False
        self.closed_at = None
        self.script_done_at = None


class BadBroker:
    def __init__(self, scripts, max_wait=60.0):
        self.scripts = [list(s) for s in scripts]
        self.connections = []
        self.max_wait = max_wait
        self.port = None
        self._loop = None
        self._thread = None
        self._server = None
        self._ready = threading.Event()

    # ---- lifecycle (a background thread runs the server's event loop) ----

    def start(self):
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("bad broker did not start")
        return self

    def stop(self):
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _main(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(self._loop)
            for t in tasks:
                t.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    def wait_connections(self, n, timeout=20.0):
        """Wait until n connections have been accepted; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.connections) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connections

    # ---- one connection ----

    async def _serve(self, r, w):
        conn = Connection(len(self.connections))
        self.connections.append(conn)
        script = self.scripts[min(conn.n, len(self.scripts) - 1)]
        buf = bytearray()
        steps = None
        try:
            if await self._packet(r, buf, conn) is None:      # CONNECT
                return
            # The script runs while the client is read and answered, so a client
            # that hangs up in the middle of it is seen at once.
            steps = asyncio.ensure_future(self._script(script, w, conn))
            while True:
                pkt = await self._packet(r, buf, conn)
                if pkt is None:
                    return
                if isinstance(pkt, codec.Message):
                    conn.publishes.append((pkt.pid, pkt.qos, pkt.dup, pkt.payload))
                elif isinstance(pkt, tuple) and codec.PUBACK <= pkt[0] <= codec.PUBCOMP:
                    conn.acks.append(pkt[:2])
                t = codec.PUBLISH if isinstance(pkt, codec.Message) else \
                    pkt[0] if isinstance(pkt, tuple) else codec.CONNECT
                if t == codec.DISCONNECT:
                    await asyncio.sleep(conn.linger)
                    conn.closed_by_broker_at = time.monotonic()
                if t not in conn.mute:
                    self._answer(pkt, w)
                await w.drain()
        except (ConnectionError, OSError):
            conn.closed_by_client = True
            conn.closed_at = conn.closed_at or time.monotonic()
        finally:
            if steps and not steps.done():
                steps.cancel()
            w.close()

    async def _script(self, script, w, conn):
        try:
            for step in script:
                if step == "connack":
                    w.write(connack(False, 0))
                elif step[0] == "connack":
                    w.write(connack(step[1], 0))
                elif step[0] == "mute":
                    conn.mute = set(step[1])
                elif step[0] == "linger":
                    conn.linger = step[1]
                elif step == "close":
                    w.close()
                    return
                elif isinstance(step, (bytes, bytearray)):
                    w.write(bytes(step))
                elif step[0] == "sleep":
                    await asyncio.sleep(step[1])
                elif step[0] == "trickle":
                    for b in step[1]:
                        w.write(bytes([b]))
                        await w.drain()
                        await asyncio.sleep(step[2])
                await w.drain()
            conn.script_done_at = time.monotonic()
        except (ConnectionError, OSError):
            conn.closed_by_client = True
            conn.closed_at = conn.closed_at or time.monotonic()

    async def _packet(self, r, buf, conn):
        """The client's next packet (decoded), or None when it closed the connection."""
        while True:
            f = codec.frame(buf, 1 << 20)
            if f and f[1] <= len(buf):
                b0, body = buf[0], bytes(buf[f[0]:f[1]])
                del buf[:f[1]]
                conn.received.append(b0 >> 4)
                return decode_client(b0, body)
            try:
                data = await asyncio.wait_for(r.read(4096), self.max_wait)
            except asyncio.TimeoutError:
                return None
            if not data:
                conn.closed_by_client = True
                conn.closed_at = time.monotonic()
                return None
            buf.extend(data)

    def _answer(self, pkt, w):
        if isinstance(pkt, codec.Message):
            if pkt.qos == 1:
                w.write(codec.ack(codec.PUBACK, pkt.pid))
            elif pkt.qos == 2:
                w.write(codec.ack(codec.PUBREC, pkt.pid))
            return
        t = pkt[0] if isinstance(pkt, tuple) else codec.CONNECT
        if t == codec.PINGREQ:
            w.write(PINGRESP_PACKET)
        elif t == codec.PUBREL:
            w.write(codec.ack(codec.PUBCOMP, pkt[1]))
        elif t == codec.SUBSCRIBE:
            w.write(suback(pkt[1], [q for _, q in pkt[2]]))
        elif t == codec.UNSUBSCRIBE:
            w.write(codec.ack(codec.UNSUBACK, pkt[1]))
        elif t == codec.DISCONNECT:
            w.close()
