#!/usr/bin/env python3
"""mqnode fleet monitor (host side, CPython only).

    python tools/monitor.py --host H [--port P] --prefix mqnode [--json]
        [--username U [--password-file F]] [--tls-ca CA [--tls-cert C --tls-key K]]
        [--exec CMD] [--grace 2.5] [--exit-on-alert] [--duration S] [--client-id ID]
        [--share GROUP] [--history FILE | --no-history] [--retention 30d]
        [--web 127.0.0.1:8080]

Credentials: --username, with the password read from --password-file (its first line) or
else the environment variable MQNODE_PASSWORD; never a CLI argument, never printed.
TLS: --tls-ca verifies the broker's certificate (and its name against --host); --tls-cert
and --tls-key add a client certificate. The port defaults to 8883 with TLS, else 1883.
A connection that fails says why (certificate, refused password, no broker), not only
that it timed out.

History (tools/history.py): every reading, status change and alert goes into one SQLite
file (default: history.default_path()), kept for --retention (0: for ever). --web
HOST:PORT serves the dashboard (tools/dashboard.py) on that address.

Subscribes (QoS 1) to <prefix>/+/status and <prefix>/+/telemetry and follows each node:

  status "online"             -> state online            (event "online")
  status "offline", live      -> state offline + ALERT "will" (the node vanished)
  status "offline", retained  -> state offline, event "offline" (NOT an alert: a retained
                                 offline seen at startup is history, not news)
  status "sleeping <s>"       -> state sleeping until now + s  (event "sleeping")
  telemetry JSON              -> event "telemetry" (short summary of readings/errors)

ALERT "silent": a node that is online and whose last telemetry is older than
grace x interval_s (checked every 0.5 s) is reported once, until it speaks again.
A sleeping node is silent only after its announced sleep + grace x interval_s.
A node whose interval_s is unknown (no telemetry seen yet) is never judged silent.

--json prints every event as one JSON line {"time", "event", "node", "details"};
otherwise readable text lines. Alerts have event "alert" and details {"kind": ...}.
--exec CMD runs CMD (shlex.split, no shell) per alert with MQNODE_ALERT, MQNODE_NODE,
MQNODE_DETAILS (JSON) in the environment; each run is limited to 10 s and never blocks
the event loop.

--share GROUP: several monitors started with the same GROUP share the work through
MQTT 5.0 shared subscriptions ($share/GROUP/..., §4.8.2; the monitor then speaks
MQTT 5.0): the broker hands each message to one of them, so each will
alert is raised once across the group. Each instance sees only its share of a node's
telemetry, so silence is not judged in this mode, and the broker sends no retained
status at start (§3.8.4).

Exit codes: 0 no alert, 3 at least one alert (--exit-on-alert exits at the first),
2 usage or connection error. --duration S stops after S seconds; SIGINT/SIGTERM stop
cleanly. On exit a summary of the nodes is printed (a table, or a "summary" JSON line).
"""

import argparse
import asyncio
import collections
import json
import os
import shlex
import signal
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mqtt import MQTTClient  # noqa: E402
from mqtt.errors import ConnectRefused, MQTTError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import history  # noqa: E402

EXIT_OK, EXIT_USAGE, EXIT_ALERT = 0, 2, 3
CHECK_PERIOD = 0.5
EXEC_TIMEOUT = 10.0


class Node:
    def __init__(self, node_id):
        self.id = node_id
        self.state = "unknown"      # online / offline / sleeping / unknown
        self.reading = ""           # short summary of the last readings
        self.last_seen = None       # wall time of the last message
        self.last_seen_mono = None
        self.last_tel_mono = None   # monotonic time of the last telemetry
        self.seq = None
        self.interval = None        # interval_s from the last telemetry
        self.sleep_until = None     # monotonic deadline of an announced sleep
        self.silent = False         # "silent" alert already given
        self.readings = {}          # the last telemetry's readings, as the node sent them
        self.sensor_errors = {}     # the last telemetry's "errors"
        self.error = None           # the last malformed payload: {"time", "error", "payload"}
        self.alerts = 0

    def as_dict(self):
        return {"id": self.id, "state": self.state, "silent": self.silent,
                "last_seen": self.last_seen, "seq": self.seq, "interval_s": self.interval,
                "reading": self.reading, "readings": self.readings,
                "sensor_errors": self.sensor_errors, "error": self.error, "alerts": self.alerts}


def _no_constant(name):
    # NaN and Infinity are not JSON (RFC 8259 §6), though Python's parser takes them
    raise ValueError(f"{name} is not a JSON number")


def summarize(readings, limit=80):
    if not isinstance(readings, dict):
        return str(readings)[:limit]
    parts = []
    for k, v in sorted(readings.items()):
        unit = ""
        if isinstance(v, list) and len(v) == 2 and isinstance(v[1], str):
            v, unit = v   # the node's [value, unit]
        if isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}{unit}")
    s = " ".join(parts)
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _ago(seconds):
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.1f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def render_table(nodes, now=None):
    """Return a text table of the nodes (dict id -> Node, or an iterable of Node):
    id, state, seq, interval, last reading, last seen ago."""
    now = time.monotonic() if now is None else now
    items = sorted(nodes.values() if isinstance(nodes, dict) else nodes, key=lambda n: n.id)
    rows = [("NODE", "STATE", "SEQ", "INTERVAL", "LAST SEEN", "LAST READING")]
    for n in items:
        ago = None if n.last_seen_mono is None else max(0.0, now - n.last_seen_mono)
        rows.append((n.id, n.state + (" (silent)" if n.silent else ""),
                     "-" if n.seq is None else str(n.seq),
                     "-" if n.interval is None else f"{n.interval}s",
                     _ago(ago), n.reading or "-"))
    if len(rows) == 1:
        return "(no nodes seen)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return "\n".join(line.rstrip() for line in lines)


class Monitor:
    def __init__(self, prefix, grace=2.5, json_out=False, exec_cmd=None, exit_on_alert=False,
                 out=None):
        self.prefix = prefix.rstrip("/")
        self.grace = grace
        self.json = json_out
        self.exec_cmd = shlex.split(exec_cmd) if exec_cmd else None
        self.exit_on_alert = exit_on_alert
        self.out = out or sys.stdout
        self.nodes = {}
        self.alerts = 0
        self.recent_alerts = collections.deque(maxlen=100)   # (time, node, details)
        self.listeners = []   # fn(time, event, node, details) per event: history, dashboard
        self.stop = asyncio.Event()
        self._procs = set()

    # ---- output ----

    def emit(self, event, node, details=None, text=""):
        now = time.time()
        for fn in self.listeners:
            fn(now, event, node, details or {})
        if self.json:
            line = json.dumps({"time": round(now, 3), "event": event, "node": node,
                               "details": details or {}}, sort_keys=True)
        else:
            stamp = time.strftime("%H:%M:%S")
            who = f" {node}" if node else ""
            line = f"{stamp} {event.upper() if event == 'alert' else event}{who}" + \
                (f": {text}" if text else "")
        print(line, file=self.out, flush=True)

    def alert(self, kind, node, details):
        self.alerts += 1
        d = dict(details, kind=kind)
        self.node(node).alerts += 1
        self.recent_alerts.appendleft((time.time(), node, d))
        self.emit("alert", node, d, f"{kind} {json.dumps(details, sort_keys=True)}")
        if self.exec_cmd:
            t = asyncio.ensure_future(self._run_exec(kind, node, d))
            self._procs.add(t)
            t.add_done_callback(self._procs.discard)
        if self.exit_on_alert:
            self.stop.set()

    async def _run_exec(self, kind, node, details):
        env = dict(os.environ)
        env.pop("MQNODE_PASSWORD", None)  # the hook does not need the broker password
        env.update(MQNODE_ALERT=kind, MQNODE_NODE=node,
                   MQNODE_DETAILS=json.dumps(details, sort_keys=True))
        try:
            p = await asyncio.create_subprocess_exec(
                *self.exec_cmd, env=env, stdin=asyncio.subprocess.DEVNULL)
        except OSError as e:
            print(f"monitor: --exec failed: {e}", file=sys.stderr, flush=True)
            return
        try:
            await asyncio.wait_for(p.wait(), EXEC_TIMEOUT)
        except asyncio.TimeoutError:
            p.kill()
            await p.wait()
            print(f"monitor: --exec killed after {EXEC_TIMEOUT}s", file=sys.stderr, flush=True)
        except asyncio.CancelledError:
            if p.returncode is None:
                p.kill()
            raise

    async def drain_exec(self, timeout=EXEC_TIMEOUT):
        if self._procs:
            await asyncio.wait(set(self._procs), timeout=timeout)

    # ---- input ----

    def node(self, node_id):
        n = self.nodes.get(node_id)
        if n is None:
            n = self.nodes[node_id] = Node(node_id)
        return n

    def handle(self, topic, payload, retain=False, now=None):
        now = time.monotonic() if now is None else now
        head = self.prefix + "/"
        if not topic.startswith(head):
            return
        parts = topic[len(head):].split("/")
        if len(parts) != 2 or not parts[0]:
            return
        node_id, kind = parts
        n = self.node(node_id)
        n.last_seen, n.last_seen_mono = time.time(), now
        text = payload.decode("utf-8", "replace").strip() if isinstance(payload, bytes) \
            else str(payload).strip()
        if kind == "status":
            self._status(n, text, retain, now)
        elif kind == "telemetry":
            self._telemetry(n, text, retain, now)

    def _status(self, n, text, retain, now):
        word, _, rest = text.partition(" ")
        if text == "online":
            n.state, n.sleep_until = "online", None
            # Silence is measured from the moment the node said it is online.
            n.last_tel_mono = now
            n.silent = False
            self.emit("online", n.id, {"retained": retain}, "online" + (" (retained)" if retain else ""))
        elif text == "offline":
            n.state, n.sleep_until = "offline", None
            if retain:
                self.emit("offline", n.id, {"retained": True}, "offline (retained, at start)")
            else:
                self.alert("will", n.id, {"status": "offline"})
        elif word == "sleeping":
            try:
                secs = float(rest)
            except ValueError:
                secs = 0.0
            n.state, n.sleep_until, n.silent = "sleeping", now + secs, False
            self.emit("sleeping", n.id, {"seconds": secs, "retained": retain},
                      f"sleeping {secs:g}s" + (" (retained)" if retain else ""))
        elif text == "":
            n.state = "unknown"   # retained status cleared
        else:
            self.emit("status", n.id, {"status": text[:100], "retained": retain}, text[:100])

    def _telemetry(self, n, text, retain, now):
        try:
            t = json.loads(text, parse_constant=_no_constant)
            if not isinstance(t, dict):
                raise ValueError("not a JSON object")
            if not isinstance(t.get("readings", {}), dict):
                raise ValueError("readings is not an object")
        except ValueError as e:
            n.error = {"time": time.time(), "error": str(e)[:100], "payload": text[:100]}
            self.emit("bad_telemetry", n.id, {"payload": text[:100], "error": str(e)[:100]},
                      f"unparsable: {text[:60]!r}")
            return
        n.last_tel_mono = now
        n.seq = t.get("seq", n.seq)
        iv = t.get("interval_s")
        if isinstance(iv, (int, float)) and iv > 0:
            n.interval = iv
        n.reading = summarize(t.get("readings", {}))
        if n.state != "online" and not retain:
            n.state, n.sleep_until = "online", None   # speaking means awake
        n.silent = False
        errors = t.get("errors") or {}
        n.readings, n.sensor_errors = t.get("readings", {}), errors
        d = {"seq": n.seq, "uptime_s": t.get("uptime_s"), "interval_s": n.interval,
             "readings": t.get("readings", {}), "errors": errors, "retained": retain}
        txt = f"#{n.seq} {n.reading}" + (f" errors={summarize(errors, 60)}" if errors else "")
        self.emit("telemetry", n.id, d, txt)

    # ---- silence ----

    def check_silence(self, now=None):
        now = time.monotonic() if now is None else now
        for n in self.nodes.values():
            if n.silent or n.interval is None or n.last_tel_mono is None:
                continue
            allow = self.grace * n.interval
            if n.state == "online":
                deadline = n.last_tel_mono + allow
            elif n.state == "sleeping" and n.sleep_until is not None:
                deadline = max(n.sleep_until, n.last_tel_mono) + allow
            else:
                continue
            if now > deadline:
                n.silent = True
                self.alert("silent", n.id, {"state": n.state, "interval_s": n.interval,
                                            "silent_s": round(now - n.last_tel_mono, 1)})

    async def watch(self):
        while True:
            await asyncio.sleep(CHECK_PERIOD)
            self.check_silence()


def connect_error(e, client, args):
    """Why the connection failed, in words: the broker's refusal, or the cause of the last
    attempt behind a timeout (a certificate the CA does not vouch for, no broker, ...)."""
    where = f"{args.host}:{args.port}"
    if isinstance(e, asyncio.TimeoutError):
        # connect(timeout) raises TimeoutError(cause of the last attempt), or no cause
        cause = e.args[0] if e.args and isinstance(e.args[0], BaseException) else None
        e = cause or client.last_error or e
    if isinstance(e, ConnectRefused):
        hint = " (check --username and the password)" if e.code in (4, 5, 0x86, 0x87) else ""
        return f"monitor: {where} refused the connection: {e.reason}{hint}"
    if isinstance(e, ssl.SSLCertVerificationError):
        return (f"monitor: TLS to {where}: the broker's certificate was not accepted: "
                f"{e.verify_message} (check --tls-ca and --host)")
    if isinstance(e, ssl.SSLError):
        return f"monitor: TLS to {where} failed: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return f"monitor: nothing listens on {where} (connection refused)"
    if isinstance(e, asyncio.TimeoutError):
        return f"monitor: no answer from {where} within {args.connect_timeout}s"
    return f"monitor: cannot connect/subscribe to {where}: " + type(e).__name__ + \
        (f": {e}" if str(e) else "")


async def connect(client, timeout):
    """client.connect(timeout), but a certificate the CA does not vouch for, or a TLS alert
    from the broker (it refused our side of the handshake: no client certificate, one it does
    not accept), ends the wait at once: trying again cannot change it (the client's retries go
    on until disconnect()). (With TLS 1.3 the alert may come after the handshake, and a retry
    may see only the reset that follows it: the first word is the clear one.)"""
    task = asyncio.ensure_future(client.connect(timeout=timeout))
    while not task.done():
        await asyncio.wait([task], timeout=0.1)
        e = client.last_error
        if not task.done() and (isinstance(e, ssl.SSLCertVerificationError) or
                                isinstance(e, ssl.SSLError) and "ALERT" in str(e.reason)):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise e
    return task.result()


class HistoryWriter:
    """Feeds monitor events into the history; reports a held-back write once, on stderr."""

    def __init__(self, hist):
        self.hist = hist
        self.warned = False

    def __call__(self, t, event, node, details):
        self.hist.record(t, event, node, details)
        self.report()

    def flush(self):
        self.hist.flush()
        self.report()

    def report(self):
        h = self.hist
        if h.last_error and not self.warned:
            print(f"{h.last_error}; {len(h.pending)} row(s) held in memory, retrying",
                  file=sys.stderr, flush=True)
        elif self.warned and not h.last_error:
            print(f"history: written again to {h.path}", file=sys.stderr, flush=True)
        self.warned = bool(h.last_error)

    async def run(self):
        while True:
            await asyncio.sleep(CHECK_PERIOD)
            self.flush()


def open_history(args):
    if args.no_history:
        return None
    retention = history.parse_duration(args.retention) or None
    return history.History(args.history or history.default_path(), retention=retention)


async def run(args, password, tls, hist):
    mon = Monitor(args.prefix, args.grace, args.json, args.exec, args.exit_on_alert)
    writer = HistoryWriter(hist) if hist else None
    if writer:
        mon.listeners.append(writer)
    client_id = args.client_id or f"mqnode-monitor-{os.getpid()}"
    # Shared subscriptions are MQTT 5.0 (§4.8.2): speak it when sharing.
    c = MQTTClient(args.host, args.port, client_id, clean=True, keepalive=30,
                   username=args.username, password=password, backoff=(1, 30), inbox=64,
                   version=5 if args.share else 4, tls=tls,
                   log=lambda text: print(f"monitor: {text}", file=sys.stderr, flush=True))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, mon.stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    web = None
    if args.web:   # before the broker: a bad address is found at once
        import dashboard
        web = dashboard.Dashboard(mon, hist)
        try:
            url = await web.start(*args.web)
        except OSError as e:
            why = os.strerror(e.errno) if e.errno else str(e)
            print(f"monitor: --web {args.web[0]}:{args.web[1]}: {why}", file=sys.stderr,
                  flush=True)
            return EXIT_USAGE
        mon.emit("web", None, {"url": url}, f"dashboard at {url}")
    try:
        await connect(c, args.connect_timeout)
        share = f"$share/{args.share}/" if args.share else ""
        granted = await c.subscribe([(f"{share}{mon.prefix}/+/status", 1),
                                     (f"{share}{mon.prefix}/+/telemetry", 1)], timeout=10)
    except (MQTTError, asyncio.TimeoutError, OSError) as e:
        await c.disconnect()
        if web:
            await web.stop()
        print(connect_error(e, c, args), file=sys.stderr, flush=True)
        return EXIT_USAGE
    if any(g >= 0x80 for g in granted):   # 3.1.1: 0x80; 5.0: any code >= 0x80
        await c.disconnect()
        if web:
            await web.stop()
        print("monitor: subscription refused by the broker", file=sys.stderr, flush=True)
        return EXIT_USAGE
    mon.emit("subscribed", None, {"prefix": mon.prefix, "host": args.host, "port": args.port,
                                  "share": args.share, "tls": tls is not None},
             f"monitoring {mon.prefix}/+ on {args.host}:{args.port}"
             + (" over TLS" if tls else "")
             + (f" (shared in group {args.share})" if args.share else ""))

    async def reader():
        async for m in c.messages():
            mon.handle(m.topic, m.payload, m.retain)

    tasks = [asyncio.ensure_future(reader())]
    if not args.share:   # a share of the telemetry says nothing about silence
        tasks.append(asyncio.ensure_future(mon.watch()))
    if writer:
        tasks.append(asyncio.ensure_future(writer.run()))
    stopper = asyncio.ensure_future(mon.stop.wait())
    try:
        await asyncio.wait([stopper, tasks[0]], timeout=args.duration,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks + [stopper]:
            t.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        if web:
            await web.stop()
        await mon.drain_exec()
        await c.disconnect()
    if mon.json:
        mon.emit("summary", None, {"alerts": mon.alerts, "nodes": {
            n.id: {"state": n.state, "seq": n.seq, "interval_s": n.interval,
                   "reading": n.reading, "silent": n.silent}
            for n in mon.nodes.values()}})
    else:
        print(render_table(mon.nodes), flush=True)
        print(f"{mon.alerts} alert(s)", flush=True)
    if writer:
        hist.db.execute(f"PRAGMA busy_timeout = {int(EXEC_TIMEOUT * 1000)}")
        writer.flush()
        if hist.pending or hist.dropped:
            print(f"monitor: history: {len(hist.pending) + hist.dropped} row(s) could not be "
                  f"written to {hist.path}", file=sys.stderr, flush=True)
    return EXIT_ALERT if mon.alerts else EXIT_OK


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="mqnode fleet monitor (password: --password-file "
                                            "or env MQNODE_PASSWORD)")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, help="default 8883 with --tls-ca, else 1883")
    p.add_argument("--prefix", default="mqnode")
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path,
                   help="file whose first line is the password (else env MQNODE_PASSWORD)")
    p.add_argument("--tls-ca", type=Path, help="CA certificate(s) that signed the broker's")
    p.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    p.add_argument("--tls-key", type=Path, help="the client certificate's private key")
    p.add_argument("--json", action="store_true", help="one JSON line per event")
    p.add_argument("--exec", metavar="CMD", help="command run per alert (no shell)")
    p.add_argument("--grace", type=float, default=2.5,
                   help="silent after grace x interval_s without telemetry (default 2.5)")
    p.add_argument("--exit-on-alert", action="store_true", help="exit 3 at the first alert")
    p.add_argument("--duration", type=float, help="run this many seconds, then exit")
    p.add_argument("--client-id")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--share", metavar="GROUP",
                   help="share the work with other monitors of the same GROUP")
    p.add_argument("--history", type=Path, metavar="FILE",
                   help=f"SQLite history file (default {history.default_path()})")
    p.add_argument("--no-history", action="store_true", help="record nothing")
    p.add_argument("--retention", default="30d",
                   help="how long history is kept: 90s, 12h, 30d; 0 keeps everything")
    p.add_argument("--web", type=host_port, metavar="HOST:PORT",
                   help="serve the dashboard there (e.g. 127.0.0.1:8080; port 0: any free)")
    a = p.parse_args(argv)
    if a.grace <= 0:
        p.error("--grace must be > 0")
    if a.duration is not None and a.duration <= 0:
        p.error("--duration must be > 0")
    if a.exec is not None and not shlex.split(a.exec):
        p.error("--exec needs a command")
    if a.share is not None and (not a.share or any(ch in a.share for ch in "/+#")):
        p.error("--share GROUP: a non-empty name without / + # (MQTT 5.0 §4.8.2)")
    if (a.tls_cert is None) != (a.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if a.tls_cert and not a.tls_ca:
        p.error("--tls-cert needs --tls-ca (the broker's certificate is always verified)")
    try:
        history.parse_duration(a.retention)
    except ValueError as e:
        p.error(f"--retention: {e}")
    if a.port is None:
        a.port = 8883 if a.tls_ca else 1883
    return a


class Usage(Exception):
    """A bad option value found after parsing (a file missing, unreadable or empty)."""


def read_password(args):
    """The password: the first line of --password-file, else $MQNODE_PASSWORD, else None."""
    if args.password_file is None:
        return os.environ.get("MQNODE_PASSWORD") or None
    try:
        with open(args.password_file, encoding="utf-8") as f:
            pw = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:   # the message names the file, not its content
        raise Usage(f"monitor: --password-file {args.password_file}: "
                         f"{getattr(e, 'strerror', None) or type(e).__name__}") from None
    if not pw:
        raise Usage(f"monitor: --password-file {args.password_file} is empty")
    return pw


def make_tls(args):
    if not args.tls_ca:
        return None
    from mqtt.tls import TLS
    for f in (args.tls_ca, args.tls_cert, args.tls_key):
        if f is not None and not f.is_file():
            raise Usage(f"monitor: no such file: {f}")
    try:
        return TLS(ca=str(args.tls_ca), cert=args.tls_cert and str(args.tls_cert),
                   key=args.tls_key and str(args.tls_key))
    except ssl.SSLError as e:
        raise Usage(f"monitor: cannot load the TLS files: {e.reason or e}") from None


def main(argv=None):
    args = parse_args(argv)   # argparse exits with 2 on usage errors
    try:
        password = read_password(args)
        tls = make_tls(args)
    except Usage as e:
        print(e, file=sys.stderr, flush=True)
        return EXIT_USAGE
    try:
        hist = open_history(args)
    except (history.HistoryError, OSError) as e:
        print(f"monitor: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    try:
        return asyncio.run(run(args, password, tls, hist))
    except KeyboardInterrupt:   # a second Ctrl-C while shutting down
        return EXIT_OK
    finally:
        if hist:
            hist.close()


if __name__ == "__main__":
    sys.exit(main())
