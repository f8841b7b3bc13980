# compat for CPython (see compat.py): the ms clock and the link to the
# broker over asyncio streams. Loaded only on CPython, never on a board.
import asyncio
from time import monotonic_ns



def ticks_ms():
    # a ms clock that wraps at 2**30 like MicroPython's
    return monotonic_ns() // 1000000 & 0x3FFFFFFF


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


def is_async(h):
    # An async def (or generator) function or method: calling it runs nothing.
    c = getattr(getattr(h, "__func__", h), "__code__", None)
    return c and c.co_flags & 0x2A0
