"""The monitor's web dashboard: one page, live over server-sent events (asyncio streams, no
framework). Started by `monitor.py --web HOST:PORT` inside the monitor's event loop.

    GET /                   the page (web/index.html, web/dashboard.js, charts by web/uplot)
    GET /api/state          {"nodes": [Node.as_dict()...], "alerts": [...], "now": t}
    GET /api/series?node=N&hours=H   that node's readings from the history: {quantity:
                            {"unit", "t": [...], "v": [...]}}
    GET /events             text/event-stream: one `data: {"time", "event", "node",
                            "details", "state"}` per monitor event (state: the node's
                            as_dict() after it)

Each event-stream client has a bounded queue (CLIENT_QUEUE); a client that falls that far
behind is disconnected (its EventSource reconnects and reloads the state). Requests are
read with a timeout and a size limit (MAX_REQUEST); only GET is served.
"""
import asyncio
import json
import time
import urllib.parse
from pathlib import Path

WEB = Path(__file__).resolve().parent / "web"
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
         "/uplot/uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
         "/uplot/uPlot.min.css": ("uplot/uPlot.min.css", "text/css; charset=utf-8"),
         "/uplot/LICENSE": ("uplot/LICENSE", "text/plain; charset=utf-8")}
CLIENT_QUEUE = 256
REQUEST_TIMEOUT = 10.0
MAX_REQUEST = 8192
HEARTBEAT = 15.0
MAX_HOURS = 24 * 31


class Dashboard:
    def __init__(self, monitor, history=None):
        self.mon = monitor
        self.history = history
        self.clients = set()        # asyncio.Queue per event-stream client
        self.server = None
        self._conns = set()
        monitor.listeners.append(self.on_event)

    async def start(self, host, port):
        """Listen on host:port (0: a free port); returns the page's URL."""
        self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST)
        h, p = self.server.sockets[0].getsockname()[:2]
        return f"http://{h if ':' not in h else '[' + h + ']'}:{p}/"

    async def stop(self):
        if self.server:
            self.server.close()
            for t in list(self._conns):
                t.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self.server.wait_closed()

    # ---- monitor events -> event-stream clients ----

    def on_event(self, t, event, node, details):
        if event in ("summary", "subscribed", "web"):
            return
        n = self.mon.nodes.get(node) if node else None
        data = json.dumps({"time": t, "event": event, "node": node, "details": details,
                           "state": n.as_dict() if n else None})
        for q in list(self.clients):
            if q.qsize() >= CLIENT_QUEUE:
                self.clients.discard(q)
                q.put_nowait(None)     # the one slot kept for this: the client is cut off
            else:
                q.put_nowait(data)

    def state(self):
        since = time.time() - 24 * 3600
        if self.history:
            alerts = [{"time": t, "node": node, "kind": kind, "details": json.loads(d)}
                      for t, node, kind, d in self.history.alerts(since)]
        else:
            alerts = [{"time": t, "node": node, "kind": "alert", "details": d}
                      for t, node, d in self.mon.recent_alerts]
        return {"now": time.time(), "prefix": self.mon.prefix, "history": bool(self.history),
                "nodes": [n.as_dict() for n in sorted(self.mon.nodes.values(),
                                                      key=lambda n: n.id)],
                "alerts": alerts}

    # ---- HTTP ----

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            await self._request(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.TimeoutError):
            pass   # the client went away, sent too much (> MAX_REQUEST) or too slowly
        except asyncio.CancelledError:
            # stop() ends this connection. The task must not end cancelled: CPython 3.11's
            # streams callback calls task.exception() on it, which raises and is logged.
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    async def _request(self, reader, writer):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return await self._send(writer, 400, "text/plain", b"bad request\n")
        method, target = parts[0], parts[1]
        if method != "GET":
            return await self._send(writer, 405, "text/plain", b"only GET\n")
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        if url.path in FILES:
            name, ctype = FILES[url.path]
            return await self._send(writer, 200, ctype, (WEB / name).read_bytes())
        if url.path == "/api/state":
            return await self._json(writer, self.state())
        if url.path == "/api/series":
            return await self._series(writer, query)
        if url.path == "/events":
            return await self._events(writer)
        return await self._send(writer, 404, "text/plain", b"not found\n")

    async def _series(self, writer, query):
        node = query.get("node", [""])[0]
        try:
            hours = float(query.get("hours", ["6"])[0])
            if not 0 < hours <= MAX_HOURS:
                raise ValueError
        except ValueError:
            return await self._send(writer, 400, "text/plain",
                                    f"hours: a number in (0, {MAX_HOURS}]\n".encode())
        if not node:
            return await self._send(writer, 400, "text/plain", b"node=... is required\n")
        series = self.history.series(node, time.time() - hours * 3600) if self.history else {}
        return await self._json(writer, series)

    async def _events(self, writer):
        # one slot more than CLIENT_QUEUE, for the None that cuts a slow client off
        q = asyncio.Queue(CLIENT_QUEUE + 1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n: hello\n\n")
        await writer.drain()
        self.clients.add(q)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(q.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    data = ""
                if data is None:
                    return
                writer.write(f"data: {data}\n\n".encode() if data else b": heartbeat\n\n")
                await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        finally:
            self.clients.discard(q)

    async def _json(self, writer, obj):
        await self._send(writer, 200, "application/json", json.dumps(obj).encode())

    async def _send(self, writer, code, ctype, body):
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
        writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\n"
                     "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n".encode()
                     + body)
        await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
