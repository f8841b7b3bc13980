# Stopping an MQTTClient: disconnect() and what wakes when the client stops.
# Loaded on demand (at the first stop), so the core stays small.
import asyncio


async def disconnect(c, timeout, reason, props):
    # See MQTTClient.disconnect.
    s = c.session
    t = c._task
    bye = t and s.connected
    if bye:
        s.disconnect(reason, props)  # a bad reason raises here, before any change
    c._task = None
    c.stopped = True
    if bye:
        try:
            await asyncio.wait_for(_bye(c), timeout)
        except (OSError, asyncio.TimeoutError):
            pass
    if t:
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
    c.last_error = None
    halt(c)


async def _bye(c):
    # The broker closes the link on DISCONNECT (§3.14.4, 5.0 §3.14.4): its
    # EOF ends the link (the connection task closes it), so a connect()
    # right after does not race the old connection.
    k = c._k
    await c._send()
    while k and c._k is k:
        await c._change.wait()


def halt(c):
    # Stopped (disconnect(), or a link lost with reconnect=False): every
    # waiter wakes and raises; messages() ends.
    c.stopped = True
    c._task = None
    a = c._alarm
    if a:
        a[0].cancel()
        c._alarm = None
    c._signal()
