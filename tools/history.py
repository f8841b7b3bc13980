#!/usr/bin/env python3
"""The monitor's history: every reading, status change and alert in one SQLite file.

    python tools/history.py NODE [--db PATH] [--since 2h | --since 2026-12-01T08:00]
                                 [--csv FILE | --csv -]

prints what the monitor recorded about NODE (readings and events, oldest first), or writes
it as CSV (columns time, node, kind, name, value, unit, details; time in ISO 8601 UTC).

The file (default: $MQNODE_HISTORY, else $XDG_DATA_HOME/mqnode/history.sqlite, else
~/.local/share/mqnode/history.sqlite) is in WAL mode, so several monitors (`--share`)
write into it at once and readers never wait for them. Its schema version is SQLite's
user_version; a file from a newer mqnode is refused, never changed.

Writes that find the database locked stay in memory (up to PENDING_MAX rows, the oldest
dropped first and counted) and are written at the next flush; nothing is lost on a lock.
"""
import argparse
import csv
import datetime
import json
import math
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

SCHEMA = 1
PENDING_MAX = 10000
PRUNE_EVERY = 3600.0        # seconds between retention passes

_TABLES = """
CREATE TABLE readings (t REAL NOT NULL, node TEXT NOT NULL, quantity TEXT NOT NULL,
                       value REAL NOT NULL, unit TEXT NOT NULL, seq INTEGER);
CREATE INDEX readings_node_t ON readings (node, t);
CREATE TABLE events (t REAL NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL,
                     details TEXT NOT NULL);
CREATE INDEX events_node_t ON events (node, t);
"""

# monitor event -> events.kind (telemetry goes to readings; others are not recorded)
_EVENT_KINDS = {"online": "online", "offline": "offline", "sleeping": "sleeping",
                "status": "status", "alert": "alert", "bad_telemetry": "error"}


class HistoryError(Exception):
    """The history file cannot be used (locked, not a database, a newer schema)."""


def default_path():
    if os.environ.get("MQNODE_HISTORY"):
        return Path(os.environ["MQNODE_HISTORY"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mqnode" / "history.sqlite"


def parse_duration(text):
    """'90' or '90s', '15m', '6h', '30d' -> seconds (float). ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 15m, 6h, 30d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parse_since(text, now=None):
    """A duration back from now ('2h') or an ISO 8601 time (UTC unless it says) -> unix time."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since: {text!r} is neither a duration (2h, 30m) nor an ISO "
                         "time (2026-12-01T08:00)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class History:
    """One history file. retention: seconds of history kept (None: everything);
    busy: seconds a write waits for another writer's lock before it is held back."""

    def __init__(self, path, retention=None, busy=0.2, create=True):
        self.path = Path(path)
        self.retention = retention
        self.pending = []           # (table, row) not yet written
        self.dropped = 0            # pending rows dropped because PENDING_MAX was reached
        self.last_error = None      # why the last flush held rows back
        self._pruned = 0.0
        if not create and not self.path.exists():
            raise HistoryError(f"history: no such file {self.path}")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=max(busy, 5.0),
                                      isolation_level=None)
            self._open(create)
        except sqlite3.DatabaseError as e:
            raise HistoryError(self._why(e)) from None
        self.db.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")

    def _why(self, e):
        text = str(e)
        if "locked" in text or "busy" in text:
            return (f"history: {self.path} is locked by another process ({text}); stop it or "
                    "use another --history file")
        return f"history: {self.path}: {text}"

    def _open(self, create):
        db = self.db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA:
            db.close()
            raise HistoryError(
                f"history: {self.path} has schema version {version}, newer than this mqnode's "
                f"({SCHEMA}): upgrade mqnode, or use another --history file; the file is left "
                "as it is")
        if version == 0 and create:
            db.execute("BEGIN IMMEDIATE")
            try:   # two monitors starting at once: only the first creates the tables
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                        raise HistoryError(f"history: {self.path} is another program's "
                                           "database (it has tables, none of mqnode's); "
                                           "the file is left as it is")
                    for stmt in _TABLES.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                    db.execute(f"PRAGMA user_version = {SCHEMA}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        elif version == 0:
            raise HistoryError(f"history: {self.path} holds no mqnode history")
        if create:   # WAL: several monitors write at once, readers never wait for them
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")

    def close(self):
        self.db.close()

    # ---- writing ----

    def record(self, t, event, node, details):
        """Store one monitor event (monitor.Monitor.emit's arguments) and flush."""
        if node is None:
            return
        if event == "telemetry":
            seq = details.get("seq") if isinstance(details.get("seq"), int) else None
            for q, v in sorted((details.get("readings") or {}).items()):
                unit = ""
                if isinstance(v, list) and len(v) == 2 and isinstance(v[1], str):
                    v, unit = v
                if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                        math.isfinite(v):
                    self._add("readings", (t, node, str(q), float(v), unit, seq))
            if details.get("errors"):
                self._add("events", (t, node, "sensor_errors",
                                     json.dumps(details["errors"], sort_keys=True)))
        elif event in _EVENT_KINDS:
            self._add("events", (t, node, _EVENT_KINDS[event], json.dumps(details,
                                                                           sort_keys=True)))
        self.flush()

    def _add(self, table, row):
        if len(self.pending) >= PENDING_MAX:
            del self.pending[0]
            self.dropped += 1
        self.pending.append((table, row))

    def flush(self, now=None):
        """Write what is pending in one transaction. Returns True when nothing is left;
        on a lock the rows stay pending and last_error says why."""
        now = time.time() if now is None else now
        if not self.pending and now - self._pruned < PRUNE_EVERY:
            return True
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for table, row in self.pending:
                    marks = ", ".join("?" * len(row))
                    self.db.execute(f"INSERT INTO {table} VALUES ({marks})", row)
                if self.retention and now - self._pruned >= PRUNE_EVERY:
                    self._prune(now)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            self.last_error = self._why(e)
            return False
        self.pending.clear()
        self.last_error = None
        return True

    def _prune(self, now):
        cut = now - self.retention
        for table in ("readings", "events"):
            self.db.execute(f"DELETE FROM {table} WHERE t < ?", (cut,))
        self._pruned = now

    # ---- reading ----

    def rows(self, node, since=None):
        """(t, kind, name, value, unit, details) of NODE since `since`, oldest first:
        kind "reading" (name = quantity) or the event kind (details = JSON)."""
        since = 0.0 if since is None else since
        q = ("SELECT t, 'reading', quantity, value, unit, '' FROM readings "
             "WHERE node = ? AND t >= ? UNION ALL "
             "SELECT t, kind, '', NULL, '', details FROM events WHERE node = ? AND t >= ? "
             "ORDER BY 1")
        return self.db.execute(q, (node, since, node, since)).fetchall()

    def series(self, node, since, limit=20000):
        """{quantity: {"unit": u, "t": [...], "v": [...]}} of NODE since `since`."""
        out = {}
        for t, q, v, unit in self.db.execute(
                "SELECT t, quantity, value, unit FROM readings WHERE node = ? AND t >= ? "
                "ORDER BY t LIMIT ?", (node, since, limit)):
            s = out.setdefault(q, {"unit": unit, "t": [], "v": []})
            s["t"].append(t)
            s["v"].append(v)
        return out

    def nodes(self):
        return [r[0] for r in self.db.execute(
            "SELECT node FROM readings UNION SELECT node FROM events ORDER BY 1")]

    def alerts(self, since, limit=100):
        """The latest alerts and errors since `since`: (t, node, kind, details), newest first."""
        return self.db.execute(
            "SELECT t, node, kind, details FROM events WHERE kind IN ('alert', 'error') "
            "AND t >= ? ORDER BY t DESC LIMIT ?", (since, limit)).fetchall()


def main(argv=None):
    p = argparse.ArgumentParser(description="print or export what the monitor recorded "
                                            "about one node")
    p.add_argument("node")
    p.add_argument("--db", type=Path, default=None,
                   help=f"history file (default {default_path()})")
    p.add_argument("--since", help="a duration back from now (2h, 30m, 7d) or an ISO time")
    p.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-': standard output)")
    a = p.parse_args(argv)
    try:
        since = parse_since(a.since) if a.since else None
    except ValueError as e:
        p.error(str(e))
    try:
        h = History(a.db or default_path(), create=False)
    except HistoryError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        rows = h.rows(a.node, since)
        known = bool(rows) or a.node in h.nodes()
    except sqlite3.OperationalError as e:
        print(h._why(e), file=sys.stderr)
        return 2
    finally:
        h.close()
    if not known:
        print(f"history: nothing recorded about {a.node!r} in {h.path}", file=sys.stderr)
        return 1
    if a.csv:
        f = sys.stdout if a.csv == "-" else open(a.csv, "w", newline="")
        try:
            w = csv.writer(f)
            w.writerow(["time", "node", "kind", "name", "value", "unit", "details"])
            for t, kind, name, value, unit, details in rows:
                w.writerow([iso(t), a.node, kind, name, "" if value is None else repr(value),
                            unit, details])
        finally:
            if f is not sys.stdout:
                f.close()
        return 0
    for t, kind, name, value, unit, details in rows:
        what = f"{name}={value:g}{unit}" if kind == "reading" else details
        print(f"{iso(t)}  {kind:<8} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
