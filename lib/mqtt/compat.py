# The few things MicroPython and CPython spell differently: the ms clock,
# and the link to the broker. A link k is what open_connection returns;
# recv(k, buf), write(k, packets), drain(k), nodelay(k, on) and close(k)
# use it. MicroPython (here): the non-blocking socket itself, waited on
# through asyncio's own poller (as asyncio/stream.py does), so no stream
# module is loaded and no buffer is copied. CPython: asyncio streams, in
# cpython.py (never loaded on a board).
try:
    from time import ticks_ms
    from asyncio import sleep_ms
except ImportError:  # CPython
    from .cpython import *  # noqa: F401,F403  (the same names as below)
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
            k[1] = b[n:] if n < len(b) else b""   # (no empty copy per packet)
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

    def is_async(h):
        # An async def (or generator) function: calling it runs nothing.
        # (A bound method's type is its own: dispatch finds those.)
        return type(h).__name__ == "generator"
