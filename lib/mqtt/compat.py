# The few things MicroPython and CPython spell differently.
try:
    from time import ticks_ms
except ImportError:  # CPython: a ms clock that wraps at 2**30 like MicroPython's
    from time import monotonic_ns

    def ticks_ms():
        return monotonic_ns() // 1000000 & 0x3FFFFFFF

try:
    from asyncio import sleep_ms
except ImportError:  # CPython
    from asyncio import sleep

    def sleep_ms(ms):
        return sleep(ms / 1000)

try:
    from asyncio import sleep_ms as _mp  # noqa: F401  (only MicroPython's asyncio has it)
except ImportError:  # CPython: open_connection is cancel-safe
    from asyncio import open_connection

    def must_drain(w):
        # drain() applies the transport's flow control and only waits when
        # it is over its high-water mark: always call it.
        return True

    async def recv(r, buf):
        """Bytes from the stream, at most len(buf); empty at EOF."""
        return await r.read(len(buf))
else:
    import select
    import socket
    from asyncio import StreamReader as _Stream
    from errno import EINPROGRESS, ECONNREFUSED

    def must_drain(w):
        # Bytes the socket did not take wait in the stream's out_buf.
        return w.out_buf

    async def recv(r, buf):
        # Into the caller's buffer: no allocation per read. A TLS socket
        # gives None until a whole record is in.
        while True:
            n = await r.readinto(buf)
            if n is not None:
                return memoryview(buf)[:n]

    async def open_connection(host, port, ssl=None, server_hostname=None, limit=0):
        # MicroPython's asyncio.open_connection leaks its socket when it is
        # cancelled while the TCP connect is pending (wait_for timing out,
        # disconnect()): connect here, so every way out closes the socket.
        # With ssl (an SSLContext) the TLS handshake runs, non-blocking, on
        # the first write: before any MQTT byte leaves in the clear. No
        # limit: the stream holds no buffer (we read into our own).
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]  # an IP literal
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
            st = _Stream(s)
            return st, st
        except BaseException:  # CancelledError included
            s.close()
            raise
