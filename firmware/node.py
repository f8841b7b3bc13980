# The node application: read the sensors on a drift-free schedule, publish
# telemetry, keep a retained status with a will, answer commands. Hardware
# comes only through `board` (see boards/README.md).
#
# Topics, under base = <prefix>/<node_id>/:
#   base + "status"      retained: "online" after every connect; the will sets
#                        "offline"; a deep-sleeping node says "sleeping <s>"
#   base + "telemetry"   {"node", "seq", "uptime_s", "interval_s", "readings":
#                        {"<sensor>.<quantity>": [value, unit]}, "errors":
#                        {"<sensor>": "why"}, "dropped", "ts"}; ts (UTC seconds
#                        when read) only once the clock is set
#   base + "cmd/<name>"  commands in: interval (payload: seconds), read, ping,
#                        reboot
#   base + "reply/<name>" {"cmd", "ok", ...} or {"cmd", "ok": false, "error"}
#   base + "ota/#"       over-the-air updates (firmware/ota.py, loaded on demand)
import asyncio
import json
import os
import time

from mqtt import MQTTClient, __version__
from mqtt.compat import sleep_ms, ticks_ms
from mqtt.errors import ConnectRefused, MQTTError
from mqtt.session import ticks_diff

from probes import Probe

_LINK_CHECK_S = 1      # how often the sender looks at a quiet link
_NET_RETRY_MS = 30000  # offline this long: ask the board to bring the network up again
_MAX_ECHO = 64         # bytes of a ping payload echoed back
_MIN_YEAR = 2025       # a clock before this has not been set since boot
_SAME_CAUSE_MS = 10000 # failures with the cause of the last one: one line per 10 s
# CONNACK codes for a refused login: bad user name or password, not authorised
# (3.1.1 §3.2.2.3: 4, 5; 5.0 §3.2.2.2: 0x86, 0x87). Retrying soon cannot help and
# makes the broker log (or lock out) every try, so the next waits the longest delay.
_AUTH = (4, 5, 0x86, 0x87)


def log(*args):
    print("mqnode:", *args)


class Node:
    def __init__(self, cfg, board):
        self.cfg = cfg
        self.board = board
        self.id = cfg["node_id"]
        base = cfg["topic_prefix"] + "/" + self.id + "/"
        self.t_status = base + "status"
        self.t_telemetry = base + "telemetry"
        self.t_cmd = base + "cmd/"
        self.t_reply = base + "reply/"
        self.t_ota = base + "ota/"
        self.ota = None                 # firmware/ota.py, once needed
        self.ota_result = None          # how the last update ended (cmd/ping tells)
        self.settings = getattr(board, "SETTINGS", None)   # where cmd/interval is kept
        self.interval = _setting(self.settings, cfg["telemetry.interval_s"])
        self.qos = cfg["telemetry.qos"]
        self.probes = [Probe(s, board) for s in cfg["sensors"]]
        self.buffer = []       # telemetry payloads not yet handed to the client
        self.dropped = 0       # payloads dropped because the buffer was full
        self.seq = 0
        self.uptime_ms = 0
        sec = cfg["secrets"]
        self.tls = _tls(cfg)
        will = (self.t_status, b"offline", 1, True)
        v5 = {}
        if cfg["broker.mqtt_version"] == 5:
            # MQTT 5.0 will delay (§3.1.3.2.2): a node back within the delay
            # raises no will. The broker sends the will at the earlier of the
            # delay and the session's end, so the session outlives the delay
            # and a reconnect resumes it (clean start 0) instead of ending it.
            delay = cfg["broker.will_delay_s"]
            will += ({0x18: delay},)   # Will Delay Interval
            v5 = {"version": 5, "session_expiry": delay}
        self.client = MQTTClient(
            cfg["broker.host"], cfg["broker.port"], cfg["broker.client_id"],
            clean=not v5 or not v5["session_expiry"],
            keepalive=cfg["broker.keepalive"], will=will,
            username=sec["broker_username"], password=sec["broker_password"], inbox=4,
            tls=self.tls, log=lambda text: log(self.id, text), **v5)
        self._wake = asyncio.Event()    # the schedule has news (command)
        self._poke = asyncio.Event()    # the buffer has news
        self._read_now = False
        self._new_interval = False
        self._done = None               # set to stop run()
        self._last = ticks_ms()
        self.failures = 0               # connection attempts that failed
        self.drops = 0                  # links that ended after a connect
        self.cause = None               # why the last attempt or link failed
        self.readings = {}              # every reading seen so far: key -> unit
        self.discovery = None
        if cfg["discovery.prefix"]:
            from discovery import Discovery   # loaded only when it is on
            self.discovery = Discovery(self, cfg["discovery.prefix"])
        self._announced = []            # readings whose discovery config went out

    # ---- running ----

    async def run(self):
        """Run until a reboot or deep sleep is due; returns the milliseconds
        to sleep (0: reboot)."""
        self._done = asyncio.Event()
        self._tick()
        await self._network()
        if self.tls and not self.tls.insecure:
            await self._clock()
        if self.cfg["deep_sleep"]:
            return await self._sleep_cycle()
        log(self.id, "broker", self.cfg["broker.host"], self.cfg["broker.port"])
        tasks = [asyncio.create_task(f()) for f in
                 (self._connect, self._schedule, self._sender, self._commands, self._link_watch)]
        try:
            os.stat("ota.d/state")   # an update to confirm, or to report
            tasks.append(asyncio.create_task(self._ota().after_boot()))
        except OSError:
            pass
        await self._done.wait()
        for t in tasks:
            t.cancel()
        await self.client.disconnect()
        return 0   # a reboot

    def _tick(self):
        # uptime by summing short ticks differences: ticks_ms wraps (2**30 ms)
        now = ticks_ms()
        self.uptime_ms += ticks_diff(now, self._last)
        self._last = now
        return now

    async def _network(self):
        delay = 5
        while True:
            try:
                ip = await self.board.network(self.cfg["wifi.ssid"],
                                              self.cfg["secrets"]["wifi_password"])
                log(self.id, "network up", ip)
                return
            except OSError as e:
                log(self.id, "network:", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 300)

    async def _clock(self):
        # A certificate is valid between two dates: checking the broker's
        # needs the time, and a board's clock starts at 2000 until set.
        while time.gmtime()[0] < _MIN_YEAR:
            log(self.id, "TLS: not connecting while the clock is not set (it says %d); the "
                "board sets it from NTP when the network comes up" % time.gmtime()[0])
            await asyncio.sleep(10)
            await self._network()

    async def _connect(self):
        # The client connects and retries with backoff by itself; this says
        # why each attempt failed and when the next one comes.
        c = self.client
        first, cap = c.backoff
        seen, n, said, said_ms, quiet = c.last_error, 0, None, 0, 0
        while True:
            try:
                await asyncio.wait_for(c.connect(), 1)
                n = 0
                await c.down.wait()
                seen = c.last_error   # the link dropped: _link_watch says why
                continue
            except (asyncio.TimeoutError, ConnectRefused):
                pass
            except MemoryError:   # the heap was short for a moment (the client goes on)
                await sleep_ms(100)
                continue
            e = c.last_error
            if e is None or e is seen:
                continue
            seen = e
            n = min(n + 1, 16)   # 2 ** 15 s is past any cap
            self.failures += 1
            self.cause = _cause(e, self.cfg["broker.host"], self.cfg["broker.port"], self.tls)
            auth = isinstance(e, ConnectRefused) and e.code in _AUTH
            wait = cap if auth else min(first * 2 ** (n - 1), cap)
            now = ticks_ms()
            if self.cause != said or ticks_diff(now, said_ms) >= _SAME_CAUSE_MS:
                log(self.id, "connect failed: %s; next try in %s%d s%s" % (
                    self.cause, "" if auth else "at most ", wait,
                    " (%d more failed the same way)" % quiet if quiet else ""))
                said, said_ms, quiet = self.cause, now, 0
            else:
                quiet += 1
            if auth:   # stop the client's own retries, wait the longest, start again
                await c.disconnect()
                await asyncio.sleep(cap)

    async def _link_watch(self):
        # The client reconnects by itself; if the link stays down, the Wi-Fi
        # may be what is gone.
        c = self.client
        while True:
            await c.down.wait()
            try:
                await asyncio.wait_for(c.up.wait(), _NET_RETRY_MS / 1000)
                log(self.id, "connected")
            except asyncio.TimeoutError:
                log(self.id, "offline:", repr(c.last_error))
                await self._network()
            await c.up.wait()
            await c.down.wait()
            self.drops += 1
            self.cause = _cause(c.last_error, self.cfg["broker.host"], self.cfg["broker.port"],
                                self.tls)
            log(self.id, "disconnected:", self.cause)

    # ---- the schedule ----

    async def _schedule(self):
        wdt_s = self.cfg["watchdog_s"]
        wdt = self.board.watchdog(wdt_s) if wdt_s else None
        # Fed every 2 s at most: a board may shorten the timeout (rp2: 8.3 s).
        nap = min(wdt_s * 500, 2000) if wdt else 3600000
        due = self._tick()
        while True:
            if wdt:
                wdt.feed()   # fed only while this loop runs: a hang means a reset
            now = self._tick()
            if self._wake.is_set():   # a command
                self._wake.clear()
                if self._new_interval:
                    self._new_interval = False
                    due = (now + self.interval * 1000) & 0x3FFFFFFF
                if self._read_now:
                    self._read_now = False
                    await self._read()
                continue
            wait = ticks_diff(due, now)
            if wait <= 0:
                # Drift-free: the next slot is one interval after this slot,
                # not after now; slots already missed are skipped.
                due = (due + self.interval * 1000) & 0x3FFFFFFF
                if ticks_diff(due, now) <= 0:
                    due = (now + self.interval * 1000) & 0x3FFFFFFF
                await self._read()
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), min(wait, nap) / 1000)
            except asyncio.TimeoutError:
                pass

    async def _read(self):
        try:
            self._queue(await self.measure())
        except MemoryError:   # the heap was short for a moment: read again shortly
            self._read_now = True
            self._wake.set()
            await sleep_ms(100)

    async def measure(self):
        """Read every sensor (conversions overlap); the telemetry payload."""
        readings, errors, started = {}, {}, []
        wait = 0
        for p in self.probes:
            try:
                wait = max(wait, p.start())
                started.append(p)
            except Exception as e:  # any failure of one sensor is its own
                errors[p.name] = _why(e)
                p.failed()
        await sleep_ms(wait)
        for p in started:
            try:
                p.finish(readings)
            except Exception as e:
                errors[p.name] = _why(e)
                p.failed()
        for k in readings:
            if k not in self.readings:   # a new one: discovery announces it
                self.readings[k] = readings[k][1]
        self._tick()
        t = {"node": self.id, "seq": self.seq + 1, "uptime_s": self.uptime_ms // 1000,
             "interval_s": self.interval, "readings": readings, "errors": errors,
             "dropped": self.dropped}
        ts = utc()
        if ts is not None:
            t["ts"] = ts
        t = json.dumps(t)
        self.seq += 1   # only now: a MemoryError above reads again with the same number
        log(self.id, "#%d" % self.seq, len(readings), "readings",
            ("errors: " + ", ".join(errors)) if errors else "")
        return t

    def _queue(self, payload):
        if len(self.buffer) >= self.cfg["buffer"]:
            self.buffer.pop(0)   # oldest first; the count goes out with the next telemetry
            self.dropped += 1
            log(self.id, "buffer full, dropped the oldest reading (%d so far)" % self.dropped)
        self.buffer.append(payload)
        self._poke.set()

    # ---- the link: status and buffered telemetry ----

    async def _sender(self):
        c = self.client
        announced = 0
        while True:
            if not c.up.is_set():
                await c.up.wait()
                continue
            try:
                if announced != c.connects:
                    n = c.connects
                    await c.publish(self.t_status, b"online", 1, True, timeout=10)
                    announced = n
                    self._announced = []   # discovery again after every connect
                    if n == 1:
                        asyncio.create_task(self._subscribe())
                elif self.discovery and len(self._announced) < len(self.readings):
                    # before the first telemetry that has the reading
                    k = [k for k in self.readings if k not in self._announced][0]
                    t, config = self.discovery.config(k, self.readings[k])
                    await c.publish(t, config, 1, True, timeout=10)
                    self._announced.append(k)
                elif self.buffer:
                    await c.publish(self.t_telemetry, self.buffer[0], self.qos, timeout=10)
                    self.buffer.pop(0)   # only once the client has it
                else:
                    self._poke.clear()
                    await asyncio.wait_for(self._poke.wait(), _LINK_CHECK_S)
            except (MQTTError, OSError, asyncio.TimeoutError, MemoryError):
                # the link went down (or the heap was short for a moment): the payload
                # stays at the head of the buffer; try again shortly
                await sleep_ms(100)

    async def _subscribe(self):
        # The client subscribes again by itself after a reconnect.
        while True:
            try:
                await self.client.subscribe(self.t_cmd + "#", 1, timeout=30)
                await self.client.subscribe(self.t_ota + "#", 1, timeout=30)
                return
            except (MQTTError, OSError, asyncio.TimeoutError, MemoryError) as e:
                log(self.id, "subscribe failed:", repr(e))
                await sleep_ms(100)
                await self.client.up.wait()

    # ---- commands ----

    async def _commands(self):
        while True:   # messages() ends when _connect stops the client for a while
            async for msg in self.client.messages():
                if msg.topic.startswith(self.t_cmd):
                    for _ in range(50):   # the heap short for a moment: again, 5 s at most
                        try:
                            await self.command(msg.topic[len(self.t_cmd):], msg.payload,
                                               msg.retain)
                            break
                        except MemoryError:
                            await sleep_ms(100)
                elif msg.topic.startswith(self.t_ota) and not msg.retain:
                    try:
                        ota = self._ota()
                    except ImportError:   # an image built without it
                        log(self.id, "ota: this build has no ota module")
                        continue
                    await ota.handle(msg.topic[len(self.t_ota):], msg.payload)
            await self.client.up.wait()

    async def command(self, name, payload, retained=False):
        """Carry out one command and publish the reply."""
        reply = {"cmd": name, "ok": True}
        reboot = False
        try:
            if retained:
                # a retained command would run again at every subscribe
                raise ValueError("retained commands are ignored; publish without retain")
            if name == "interval":
                s = _int(payload)
                if not 1 <= s <= 86400:
                    raise ValueError("interval: want whole seconds 1..86400")
                self.interval = s
                reply["interval_s"] = s
                self._save()
                self._new_interval = True
                self._wake.set()
            elif name == "read":
                self._read_now = True
                self._wake.set()
            elif name == "ping":
                self._tick()
                reply["version"] = __version__    # mqnode's, of the code that runs
                reply["uptime_s"] = self.uptime_ms // 1000
                reply["seq"] = self.seq
                reply["echo"] = _text(payload[:_MAX_ECHO])
                reply["last_error"] = self.cause
                reply["connects"] = self.client.connects
                reply["failures"] = self.failures
                reply["drops"] = self.drops
                reply["buffered"] = len(self.buffer)
                reply["dropped"] = self.dropped
                if self.ota_result:
                    reply["ota"] = self.ota_result
            elif name == "reboot":
                reboot = True
            else:
                raise ValueError("unknown command; known: interval, read, ping, reboot")
        except ValueError as e:
            reply = {"cmd": name, "ok": False, "error": str(e)}
        log(self.id, "command", name, "ok" if reply["ok"] else reply["error"])
        try:
            await self.client.publish(self.t_reply + name, json.dumps(reply), 1, timeout=10)
            if reboot:
                await self.client.publish(self.t_status, b"rebooting", 1, True, timeout=10)
                await self.client.flush(timeout=5)
        except (MQTTError, OSError, asyncio.TimeoutError):
            pass
        if reboot:
            self._done.set()

    def _ota(self):
        if not self.ota:
            from ota import Ota   # loaded only for an update
            self.ota = Ota(self)
        return self.ota

    def _save(self):
        # Atomic: a power cut leaves the old file or the new one, never half of
        # one. rename() replaces the target on littlefs; FAT refuses, so the
        # old one goes first there (and _setting() then finds the .tmp).
        path = self.settings
        if not path:
            return
        try:
            with open(path + ".tmp", "w") as f:
                f.write(json.dumps({"interval_s": self.interval}))
            try:
                os.rename(path + ".tmp", path)
            except OSError:
                os.remove(path)
                os.rename(path + ".tmp", path)
        except OSError as e:
            log(self.id, "cannot save the settings to", path, repr(e))

    # ---- deep sleep ----

    async def _sleep_cycle(self):
        # Wake, read, publish at QoS 1, say when we wake again, disconnect
        # cleanly (so no will), sleep. Readings that cannot be sent are lost:
        # the buffer does not survive deep sleep.
        c = self.client
        try:
            await c.connect(timeout=30)
            await c.publish(self.t_status, b"online", 1, True, timeout=10)
            await c.publish(self.t_telemetry, await self.measure(), 1, timeout=10)
            await c.publish(self.t_status, "sleeping %d" % self.interval, 1, True, timeout=10)
            await c.flush(timeout=10)
        except (MQTTError, OSError, asyncio.TimeoutError) as e:
            log(self.id, "could not publish before sleep:", repr(e))
        await c.disconnect()
        log(self.id, "sleeping", self.interval, "s")
        return self.interval * 1000


def utc():
    """UTC seconds since 1970, or None while the clock is not set (a board's
    RTC starts at 2000). Bare-metal ports count from 2000, the unix port and
    CPython from 1970: gmtime(0) says which. time_ns, not time(): a port with
    single-precision floats would round time() to minutes."""
    if time.gmtime()[0] < _MIN_YEAR:
        return None
    return time.time_ns() // 1000000000 + (946684800 if time.gmtime(0)[0] == 2000 else 0)


def _setting(path, interval):
    # the interval a command set before the last reboot (see Node._save)
    for p in (path, path + ".tmp") if path else ():
        try:
            with open(p) as f:
                s = json.loads(f.read())["interval_s"]
            if isinstance(s, int) and 1 <= s <= 86400:
                return s
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return interval


def _tls(cfg):
    if not (cfg["tls.ca"] or cfg["tls.insecure"]):
        return None
    from mqtt.tls import TLS   # loaded only by nodes that use TLS
    return TLS(cfg["tls.ca"], cfg["tls.cert"], cfg["tls.key"], cfg["tls.server_hostname"],
               cfg["tls.insecure"])


def _cause(e, host, port, tls):
    """Why a connection attempt failed, in words a person can act on, on one
    line; never a secret (the client's errors carry none)."""
    if isinstance(e, ConnectRefused):
        return "the broker refused the connection: %s (CONNACK code %d)" % (e.reason, e.code)
    if isinstance(e, asyncio.TimeoutError):
        return "timeout: no answer from %s:%d" % (host, port)
    text = " ".join(str(e).split())
    code = e.args[0] if isinstance(e, OSError) and e.args else None
    if "addrinfo" in text or isinstance(code, int) and -300 < code < 0:
        return "DNS: cannot resolve %r (%s)" % (host, text)
    if code == 111:   # ECONNREFUSED on Linux, lwIP and MicroPython's own errno
        return "connection refused: nothing listens on %s:%d" % (host, port)
    # MicroPython's ssl: ValueError (certificate checks) or OSError with an
    # mbedTLS code (large negatives); CPython's: ssl.SSLError, an OSError
    if tls and (isinstance(e, ValueError) or "SSL" in text or isinstance(code, int) and
                code < -300):
        return "TLS: " + text
    return _why(e)


def _why(e):
    return "%s: %s" % (type(e).__name__, e)


def _text(payload):
    try:
        return bytes(payload).decode()
    except UnicodeError:
        raise ValueError("payload is not UTF-8")


def _int(payload):
    try:
        return int(_text(payload).strip())
    except ValueError:
        raise ValueError("interval: want whole seconds 1..86400, got %r" % bytes(payload[:20]))
