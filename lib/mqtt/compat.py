# The few things MicroPython and CPython spell differently: the ms clock,
# and the link to the broker. A link k is what open_connection returns;
# recv(k, buf), write(k, packets), drain(k), nodelay(k, on) and close(k)
# use it. CPython: asyncio streams. MicroPython: the non-blocking socket
# itself, waited on through asyncio's own poller (as asyncio/stream.py
# does), so no stream module is loaded and no buffer is copied.
try:
    from time import ticks_ms
except ImportError:  # CPython: a ms clock that wraps at 2**30 like MicroPython's
    from time import monotonic_ns

    def ticks_ms():
        return monotonic_ns() // 1000000 & 0x3FFFFFFF

try:
    from asyncio import sleep_ms
except ImportError:  # CPython
    import asyncio

    LIMIT = 2048  # the stream's read limit

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

    async def open_connection(ai, ssl=None, server_hostname=None):
        """ai: a getaddrinfo() entry. Returns the link: (reader, writer)."""
        # The stream stops reading the socket once it holds 2 x LIMIT bytes
        # the reader has not taken, and (max_size) one socket read brings at
        # most LIMIT: a stalled application holds the broker back through
        # TCP instead of growing memory. Cancel-safe.
        r, w = await asyncio.open_connection(ai[-1][0], ai[-1][1], ssl=ssl,
                                             server_hostname=server_hostname, limit=LIMIT)
        w.transport.max_size = LIMIT
        return r, w

    def recv(k, buf):
        """Bytes from the broker, at most len(buf); empty at EOF."""
        return k[0].read(len(buf))

    def write(k, ps):
        """Write the packets, in order; True when a drain is due."""
        for p in ps:
            k[1].write(p)
        # drain() applies the transport's flow control and only waits when
        # it is over its high-water mark: always call it.
        return True

    def drain(k):
        return k[1].drain()

    def nodelay(k, on):
        """Nagle off (on=1) or on; a socket without the option keeps it."""
        try:
            k[1].get_extra_info("socket").setsockopt(6, 1, on)  # IPPROTO_TCP, TCP_NODELAY
        except (AttributeError, OSError):
            pass

    def close(k):
        w = k[1]
        w.transport.abort()  # drop, do not linger
        # Take the close's outcome: a TCP reset set on the stream's close
        # future may else be logged by the GC as "Future exception was never
        # retrieved".
        asyncio.ensure_future(w.wait_closed()).add_done_callback(
            lambda f: f.cancelled() or f.exception())
else:
    import select
    import socket
    from asyncio import core
    from errno import EINPROGRESS, ECONNREFUSED

    # The link: [socket, bytes it has not taken yet, n]. n > 0: a write of
    # the first n of them returned None; a TLS socket then holds that record
    # half sent and must be offered the same bytes again (mbedTLS).

    async def open_connection(ai, ssl=None, server_hostname=None):
        # Every way out (an error, a cancel by the connect deadline or
        # disconnect()) closes the socket. With ssl (an SSLContext) the TLS
        # handshake runs, non-blocking, on the first write: before any MQTT
        # byte leaves in the clear.
        s = socket.socket(ai[0], ai[1], ai[2])
        try:
            s.setblocking(False)
            try:
                s.connect(ai[-1])
            except OSError as e:
                if e.errno != EINPROGRESS:
                    raise
            p = select.poll()
            p.register(s, select.POLLOUT)
            while True:
                ev = p.poll(0)
                if ev:
                    break
                await sleep_ms(5)
            if ev[0][1] & (select.POLLERR | select.POLLHUP):
                s.connect(ai[-1])  # raises the connect's error
                raise OSError(ECONNREFUSED)
            if ssl:
                s = ssl.wrap_socket(s, server_hostname=server_hostname,
                                    do_handshake_on_connect=False)
            return [s, b"", 0]
        except BaseException:  # CancelledError included
            s.close()
            raise

    def recv(k, buf):  # async: awaited like stream.py's
        # Into the caller's buffer: no allocation per read. A TLS socket
        # gives None until a whole record is in.
        while True:
            yield core._io_queue.queue_read(k[0])
            n = k[0].readinto(buf)
            if n is not None:
                return memoryview(buf)[:n]

    def _push(k, b):
        # Offer b to the socket; keep what it did not take (a copy: the
        # session's packets are never changed).
        m = k[2] or len(b)
        n = k[0].write(b if m == len(b) else b[:m])
        if n is None:
            k[1] = b
            k[2] = m
        else:
            k[1] = b[n:]
            k[2] = 0

    def write(k, ps):
        # Bytes that wait keep their order behind earlier ones.
        for p in ps:
            if k[1]:
                k[1] = k[1] + p
            else:
                _push(k, p)
        return k[1]

    def drain(k):  # async
        # Until the socket has taken every byte; one task at a time (the
        # poller holds one writer per socket). Always yields, so a loop of
        # writes cannot starve the reader.
        if not k[1]:
            yield from sleep_ms(0)
        while k[1]:
            yield core._io_queue.queue_write(k[0])
            _push(k, k[1])

    def nodelay(k, on):
        try:
            k[0].setsockopt(6, 1, on)  # IPPROTO_TCP, TCP_NODELAY; a TLS socket has none
        except (AttributeError, OSError):
            pass

    def close(k):
        k[0].close()
