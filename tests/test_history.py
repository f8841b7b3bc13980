"""The monitor's history (tools/history.py): what a user gets back out of the SQLite file,
retention, and bad files (locked, newer schema, not a database) that give a clear error and
lose nothing. Against a real mosquitto: a restarted monitor keeps its history, and monitors
sharing one subscription write each message once into the same file."""
import csv
import datetime
import hashlib
import io
import json
import sqlite3
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))

import history  # noqa: E402

MONITOR = REPO / "tools" / "monitor.py"
HISTORY = REPO / "tools" / "history.py"


def tel(node, seq, **readings):
    return json.dumps({"node": node, "seq": seq, "uptime_s": seq, "interval_s": 60,
                       "readings": readings or {"air.temperature": [21.5, "C"]}, "errors": {}})


def telemetry(seq, **readings):
    return {"seq": seq, "readings": readings, "errors": {}}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_records_come_back_in_order_with_units(tmp_path):
    h = history.History(tmp_path / "h.sqlite")
    h.record(100.0, "online", "n1", {"retained": False})
    h.record(101.0, "telemetry", "n1", telemetry(1, **{"air.temperature": [21.5, "C"],
                                                       "count": 3, "label": "x"}))
    h.record(102.0, "telemetry", "n1", {"seq": 2, "readings": {"t": [22.0, "C"]},
                                        "errors": {"leaf": "SensorMissing: 0x44"}})
    h.record(103.0, "alert", "n1", {"kind": "will", "status": "offline"})
    h.record(104.0, "bad_telemetry", "n1", {"payload": "{x", "error": "bad"})
    h.record(105.0, "telemetry", "other", telemetry(1, t=1))
    h.close()
    h = history.History(tmp_path / "h.sqlite", create=False)
    rows = h.rows("n1")
    kinds = [(r[0], r[1], r[2]) for r in rows]
    assert kinds == [(100.0, "online", ""), (101.0, "reading", "air.temperature"),
                     (101.0, "reading", "count"), (102.0, "reading", "t"),
                     (102.0, "sensor_errors", ""), (103.0, "alert", ""), (104.0, "error", "")]
    assert rows[1][3:5] == (21.5, "C") and rows[2][3:5] == (3.0, "")   # "label" is no number
    assert json.loads(rows[5][5]) == {"kind": "will", "status": "offline"}
    assert [r[0] for r in h.rows("n1", since=102.5)] == [103.0, 104.0]
    assert h.series("n1", 0) == {"air.temperature": {"unit": "C", "t": [101.0], "v": [21.5]},
                                 "count": {"unit": "", "t": [101.0], "v": [3.0]},
                                 "t": {"unit": "C", "t": [102.0], "v": [22.0]}}
    assert h.nodes() == ["n1", "other"]
    assert [a[2] for a in h.alerts(0)] == ["error", "alert"]    # newest first


def test_only_numbers_are_readings(tmp_path):
    h = history.History(tmp_path / "h.sqlite")
    h.record(1.0, "telemetry", "n", telemetry(1, a=[1.5, "V"], b=True, c=float("nan"),
                                              d=[float("inf"), "C"], e="text", f=None, g=[1, 2]))
    assert [(r[2], r[3], r[4]) for r in h.rows("n")] == [("a", 1.5, "V")]


def test_retention_drops_only_what_is_older(tmp_path):
    h = history.History(tmp_path / "h.sqlite", retention=3600)
    now = time.time()
    h.record(now - 7200, "telemetry", "n", telemetry(1, t=1))
    h.record(now - 7200, "online", "n", {})
    h.record(now - 60, "telemetry", "n", telemetry(2, t=2))
    h._pruned = 0            # as at the next hourly pass
    h.flush(now=now)
    assert [(r[1], r[3]) for r in h.rows("n")] == [("reading", 2.0)]


def test_durations_and_since():
    assert history.parse_duration("90") == 90 and history.parse_duration("15m") == 900
    assert history.parse_duration("30d") == 30 * 86400
    with pytest.raises(ValueError):
        history.parse_duration("soon")
    assert history.parse_since("2h", now=10000.0) == 2800.0
    assert history.parse_since("1970-01-01T01:00") == 3600.0            # UTC unless it says
    assert history.parse_since("1970-01-01T02:00+01:00") == 3600.0
    with pytest.raises(ValueError, match="neither a duration"):
        history.parse_since("yesterday")


def test_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "h.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE future (x)")
    db.execute(f"PRAGMA user_version = {history.SCHEMA + 1}")
    db.commit()
    db.close()
    before = digest(path)
    with pytest.raises(history.HistoryError, match=r"schema version 2, newer than this "
                                                   r"mqnode's \(1\): upgrade mqnode"):
        history.History(path)
    assert digest(path) == before


def test_not_a_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "h.sqlite"
    path.write_text("my notes, not a database\n" * 100)
    before = digest(path)
    with pytest.raises(history.HistoryError, match="file is not a database"):
        history.History(path)
    assert digest(path) == before


def test_another_programs_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "h.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE contacts (name TEXT)")
    db.execute("INSERT INTO contacts VALUES ('ada')")
    db.commit()
    db.close()
    with pytest.raises(history.HistoryError, match="another program's database"):
        history.History(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("contacts",)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_the_file_is_in_wal_mode(tmp_path):
    history.History(tmp_path / "h.sqlite").close()
    db = sqlite3.connect(tmp_path / "h.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_locked_database_holds_the_rows_then_writes_them(tmp_path):
    path = tmp_path / "h.sqlite"
    h = history.History(path, busy=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")           # another process writing, for a long time
    h.record(1.0, "telemetry", "n", telemetry(1, t=1))
    h.record(2.0, "alert", "n", {"kind": "will"})
    assert len(h.pending) == 2 and "is locked by another process" in h.last_error
    other.execute("ROLLBACK")
    assert h.flush()
    assert h.pending == [] and h.last_error is None
    assert [r[1] for r in h.rows("n")] == ["reading", "alert"]


def test_held_rows_are_bounded_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "PENDING_MAX", 5)
    path = tmp_path / "h.sqlite"
    h = history.History(path, busy=0.01)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    for i in range(8):
        h.record(float(i), "online", "n", {})
    assert len(h.pending) == 5 and h.dropped == 3
    other.execute("ROLLBACK")
    h.flush()
    assert [r[0] for r in h.rows("n")] == [3.0, 4.0, 5.0, 6.0, 7.0]   # the newest kept


# ---- the command ----

T0 = datetime.datetime(2026, 12, 1, 8, 53, 20, tzinfo=datetime.timezone.utc).timestamp()


def make_file(path):
    h = history.History(path)
    h.record(T0, "online", "n1", {"retained": False})
    h.record(T0 + 1.5, "telemetry", "n1", telemetry(1, **{"air.temperature": [21.5, "C"]}))
    h.record(T0 + 3, "alert", "n1", {"kind": "will", "status": "offline"})
    h.close()


def test_cli_prints_and_writes_csv(run_py, tmp_path):
    make_file(tmp_path / "h.sqlite")
    r = run_py("cpython", HISTORY, ["n1", "--db", tmp_path / "h.sqlite"])
    assert r.returncode == 0, r
    assert r.lines == [
        '2026-12-01T08:53:20.000Z  online   {"retained": false}',
        "2026-12-01T08:53:21.500Z  reading  air.temperature=21.5C",
        '2026-12-01T08:53:23.000Z  alert    {"kind": "will", "status": "offline"}'], r
    r = run_py("cpython", HISTORY, ["n1", "--db", tmp_path / "h.sqlite", "--csv", "-",
                                    "--since", "2026-12-01T08:53:21"])
    assert r.returncode == 0, r
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows == [["time", "node", "kind", "name", "value", "unit", "details"],
                    ["2026-12-01T08:53:21.500Z", "n1", "reading", "air.temperature", "21.5",
                     "C", ""],
                    ["2026-12-01T08:53:23.000Z", "n1", "alert", "", "", "",
                     '{"kind": "will", "status": "offline"}']]
    r = run_py("cpython", HISTORY, ["n1", "--db", tmp_path / "h.sqlite", "--csv",
                                    tmp_path / "out.csv"])
    assert r.returncode == 0 and len((tmp_path / "out.csv").read_text().splitlines()) == 4


def test_cli_errors(run_py, tmp_path):
    make_file(tmp_path / "h.sqlite")
    r = run_py("cpython", HISTORY, ["nobody", "--db", tmp_path / "h.sqlite"])
    assert r.returncode == 1 and "nothing recorded about 'nobody'" in r.stderr, r
    r = run_py("cpython", HISTORY, ["n1", "--db", tmp_path / "missing.sqlite"])
    assert r.returncode == 2 and "no such file" in r.stderr, r
    assert not (tmp_path / "missing.sqlite").exists()         # reading creates nothing
    r = run_py("cpython", HISTORY, ["n1", "--db", tmp_path / "h.sqlite", "--since", "soon"])
    assert r.returncode == 2 and "neither a duration" in r.stderr, r


# ---- the monitor writes it ----

def monitor(start_py, broker, prefix, path, *extra):
    args = ["--host", broker.host, "--port", broker.port, "--prefix", prefix, "--json",
            "--history", path] + [str(a) for a in extra]
    p = start_py("cpython", MONITOR, args)
    p.expect('"event": "subscribed"', timeout=10)
    return p


def test_history_survives_a_monitor_restart(mosquitto, pub, prefix, start_py, tmp_path, run_py):
    path = tmp_path / "h.sqlite"
    p = monitor(start_py, mosquitto, prefix, path, "--duration", 1.5)
    pub(mosquitto, f"{prefix}/n1/status", "online", qos=1)
    pub(mosquitto, f"{prefix}/n1/telemetry", tel("n1", 1, t=[20.5, "C"]), qos=1)
    p.expect('"event": "telemetry"', timeout=5)
    assert p.wait(timeout=10) == 0
    p = monitor(start_py, mosquitto, prefix, path, "--duration", 1.5)
    pub(mosquitto, f"{prefix}/n1/telemetry", tel("n1", 2, t=[20.75, "C"]), qos=1)
    pub(mosquitto, f"{prefix}/n1/telemetry", "not json", qos=1)
    pub(mosquitto, f"{prefix}/n1/status", "offline", qos=1)
    p.expect('"kind": "will"', timeout=5)
    assert p.wait(timeout=10) == 3
    r = run_py("cpython", HISTORY, ["n1", "--db", path, "--csv", "-"])
    rows = [(row[2], row[3], row[4]) for row in csv.reader(io.StringIO(r.stdout))][1:]
    assert rows == [("online", "", ""), ("reading", "t", "20.5"), ("reading", "t", "20.75"),
                    ("error", "", ""), ("alert", "", "")], r


def test_shared_monitors_write_each_message_once(mosquitto, pub, prefix, start_py, tmp_path):
    path = tmp_path / "h.sqlite"
    a = monitor(start_py, mosquitto, prefix, path, "--share", "rec", "--duration", 4)
    b = monitor(start_py, mosquitto, prefix, path, "--share", "rec", "--duration", 4)
    for i in range(20):
        pub(mosquitto, f"{prefix}/s{i % 4}/telemetry", tel(f"s{i % 4}", i, t=float(i)), qos=1)
    a.wait(timeout=15)
    b.wait(timeout=15)
    got_a = sum(1 for line in a.seen if '"event": "telemetry"' in line)
    got_b = sum(1 for line in b.seen if '"event": "telemetry"' in line)
    assert got_a + got_b == 20 and got_a and got_b, (got_a, got_b)   # the work was shared
    h = history.History(path, create=False)
    values = sorted(v for n in h.nodes() for v in h.series(n, 0)["t"]["v"])
    assert values == [float(i) for i in range(20)]                  # each once, none lost


def test_monitor_refuses_a_newer_history_before_connecting(start_py, tmp_path):
    path = tmp_path / "h.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {history.SCHEMA + 1}")
    db.commit()
    db.close()
    before = digest(path)
    p = start_py("cpython", MONITOR, ["--host", "127.0.0.1", "--port", "1", "--history", path])
    assert p.wait(timeout=10) == 2
    assert "newer than this mqnode's" in p.stdout.read()
    assert digest(path) == before


def test_monitor_holds_rows_while_the_file_is_locked(mosquitto, pub, prefix, start_py,
                                                     tmp_path):
    path = tmp_path / "h.sqlite"
    p = monitor(start_py, mosquitto, prefix, path, "--duration", 6)
    other = sqlite3.connect(path, isolation_level=None, timeout=10)
    other.execute("BEGIN EXCLUSIVE")
    for i in range(3):
        pub(mosquitto, f"{prefix}/n/telemetry", tel("n", i, t=float(i)), qos=1)
    line = p.expect("is locked by another process", timeout=10)
    assert "row(s) held in memory, retrying" in line
    assert p.poll() is None                                # the monitor goes on
    other.execute("ROLLBACK")
    p.expect("history: written again to", timeout=5)
    pub(mosquitto, f"{prefix}/n/telemetry", tel("n", 3, t=3.0), qos=1)
    assert p.wait(timeout=15) == 0
    h = history.History(path, create=False)
    assert h.series("n", 0)["t"]["v"] == [0.0, 1.0, 2.0, 3.0]
