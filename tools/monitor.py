#!/usr/bin/env python3
"""mqnode fleet monitor (host side, CPython only).

    python tools/monitor.py --host H --port P --prefix mqnode [--username U] [--json]
        [--exec CMD] [--grace 2.5] [--exit-on-alert] [--duration S] [--client-id ID]
        [--share GROUP]

The password comes from the environment variable MQNODE_PASSWORD only (never a CLI
argument, never printed).

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
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from mqtt import MQTTClient  # noqa: E402
from mqtt.errors import MQTTError  # noqa: E402

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
        self.stop = asyncio.Event()
        self._procs = set()

    # ---- output ----

    def emit(self, event, node, details=None, text=""):
        if self.json:
            line = json.dumps({"time": round(time.time(), 3), "event": event, "node": node,
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
            t = json.loads(text)
            if not isinstance(t, dict):
                raise ValueError("not an object")
        except ValueError:
            self.emit("bad_telemetry", n.id, {"payload": text[:100]}, f"unparsable: {text[:60]!r}")
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


async def run(args, password):
    mon = Monitor(args.prefix, args.grace, args.json, args.exec, args.exit_on_alert)
    client_id = args.client_id or f"mqnode-monitor-{os.getpid()}"
    # Shared subscriptions are MQTT 5.0 (§4.8.2): speak it when sharing.
    c = MQTTClient(args.host, args.port, client_id, clean=True, keepalive=30,
                   username=args.username, password=password, backoff=(1, 30), inbox=64,
                   version=5 if args.share else 4)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, mon.stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await c.connect(timeout=args.connect_timeout)
        share = f"$share/{args.share}/" if args.share else ""
        granted = await c.subscribe([(f"{share}{mon.prefix}/+/status", 1),
                                     (f"{share}{mon.prefix}/+/telemetry", 1)], timeout=10)
    except (MQTTError, asyncio.TimeoutError, OSError) as e:
        await c.disconnect()
        reason = type(e).__name__ + (f": {e}" if str(e) else "")
        print(f"monitor: cannot connect/subscribe to {args.host}:{args.port}: {reason}",
              file=sys.stderr, flush=True)
        return EXIT_USAGE
    if any(g >= 0x80 for g in granted):   # 3.1.1: 0x80; 5.0: any code >= 0x80
        await c.disconnect()
        print("monitor: subscription refused by the broker", file=sys.stderr, flush=True)
        return EXIT_USAGE
    mon.emit("subscribed", None, {"prefix": mon.prefix, "host": args.host, "port": args.port,
                                  "share": args.share},
             f"monitoring {mon.prefix}/+ on {args.host}:{args.port}"
             + (f" (shared in group {args.share})" if args.share else ""))

    async def reader():
        async for m in c.messages():
            mon.handle(m.topic, m.payload, m.retain)

    tasks = [asyncio.ensure_future(reader())]
    if not args.share:   # a share of the telemetry says nothing about silence
        tasks.append(asyncio.ensure_future(mon.watch()))
    stopper = asyncio.ensure_future(mon.stop.wait())
    try:
        await asyncio.wait([stopper, tasks[0]], timeout=args.duration,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks + [stopper]:
            t.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
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
    return EXIT_ALERT if mon.alerts else EXIT_OK


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="mqnode fleet monitor (password: env MQNODE_PASSWORD)")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="mqnode")
    p.add_argument("--username")
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
    a = p.parse_args(argv)
    if a.grace <= 0:
        p.error("--grace must be > 0")
    if a.duration is not None and a.duration <= 0:
        p.error("--duration must be > 0")
    if a.exec is not None and not shlex.split(a.exec):
        p.error("--exec needs a command")
    if a.share is not None and (not a.share or any(ch in a.share for ch in "/+#")):
        p.error("--share GROUP: a non-empty name without / + # (MQTT 5.0 §4.8.2)")
    return a


def main(argv=None):
    args = parse_args(argv)   # argparse exits with 2 on usage errors
    password = os.environ.get("MQNODE_PASSWORD") or None
    try:
        return asyncio.run(run(args, password))
    except KeyboardInterrupt:   # a second Ctrl-C while shutting down
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
