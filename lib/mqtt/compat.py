# The few things MicroPython and CPython spell differently.
try:
    from time import ticks_ms
    from asyncio import sleep_ms
except ImportError:  # CPython
    from asyncio import open_connection as _open, sleep
    from time import monotonic_ns

    def ticks_ms():
        # a ms clock that wraps at 2**30 like MicroPython's
        return monotonic_ns() // 1000000 & 0x3FFFFFFF

    def sleep_ms(ms):
        return sleep(ms / 1000)

    def open_connection(ai):
        # ai: an entry of socket.getaddrinfo(). CPython's open_connection is
        # cancel-safe; it takes the address text and the port.
        return _open(ai[-1][0], ai[-1][1])
else:
    import socket
    from asyncio import StreamReader, core
    from errno import EINPROGRESS

    def _writable(s):
        yield core._io_queue.queue_write(s)  # how asyncio's own streams wait

    async def open_connection(ai):
        # ai: an entry of socket.getaddrinfo(), so no name is resolved here.
        # MicroPython's asyncio.open_connection leaks its socket when it is
        # cancelled while the TCP connect is pending (wait_for timing out,
        # disconnect()): connect here, so every way out closes the socket.
        # A failed connect shows on the first write or read. (mqtt.tls
        # wraps the socket, reached as w.s, in TLS.)
        s = socket.socket(ai[0], ai[1], ai[2])
        try:
            s.setblocking(False)
            try:
                s.connect(ai[-1])
            except OSError as e:
                if e.errno != EINPROGRESS:
                    raise
            await _writable(s)
        except BaseException:  # CancelledError included
            s.close()
            raise
        s = StreamReader(s)
        return s, s
