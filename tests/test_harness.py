"""Proof that the harness in conftest.py works: brokers, CLI observers, the runtimes."""


def test_pub_sub_round_trip(mosquitto, prefix, sub, pub):
    s = sub(mosquitto, f"{prefix}/#", count=2, qos=1)
    pub(mosquitto, f"{prefix}/a", "hello", qos=1)
    pub(mosquitto, f"{prefix}/b", b"\x00bin", qos=0)
    assert s.lines(timeout=10) == [f"{prefix}/a hello", f"{prefix}/b \x00bin"]
    assert s.returncode == 0


def test_retained_message_seen_by_late_subscriber(mosquitto, prefix, sub, pub):
    pub(mosquitto, f"{prefix}/status", "online", retain=True)
    s = sub(mosquitto, f"{prefix}/status", count=1)
    assert s.wait_for(1) == [f"{prefix}/status online"]


def test_restart_keeps_port(mosquitto, prefix, sub, pub):
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.running
    s = sub(mosquitto, prefix, count=1)
    pub(mosquitto, prefix, "after-restart")
    assert s.lines() == [f"{prefix} after-restart"]
    assert mosquitto.log_text().count("running") >= 2  # one log across restarts


def test_persistence_keeps_session_across_restart(mosquitto_factory, prefix, sub, pub):
    broker = mosquitto_factory(persistence=True)
    # A persistent QoS 1 session subscribes, then goes away.
    cid = ["-i", f"h-{prefix[2:]}", "-c"]
    s = sub(broker, prefix, qos=1, extra=cid)
    s.stop()
    pub(broker, prefix, "queued", qos=1)
    broker.restart()
    s = sub(broker, prefix, qos=1, count=1, extra=cid)
    assert s.lines(timeout=10) == [f"{prefix} queued"]


def test_password_file(mosquitto_factory, prefix, pub):
    broker = mosquitto_factory(users={"alice": "s3cret", "bob": "hunter2"})
    assert pub(broker, prefix, "x", check=False).returncode != 0  # anonymous refused
    assert pub(broker, prefix, "x", username="alice", password="wrong", check=False).returncode != 0
    assert pub(broker, prefix, "x", username="alice", password="s3cret").returncode == 0
    assert pub(broker, prefix, "x", username="bob", password="hunter2").returncode == 0


ASYNC_SCRIPT = """\
import sys
import asyncio

async def main(tag):
    await asyncio.sleep(0.01)
    return tag + "-done"

print(sys.implementation.name, 64 if sys.maxsize > 2 ** 32 else 32, asyncio.run(main(sys.argv[1])))
"""
# what each runtime is: the interpreter and its word size
IS = {"cpython": "cpython 64", "micropython": "micropython 64", "micropython32": "micropython 32"}


def test_run_py_asyncio(runtime, run_py, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text(ASYNC_SCRIPT)
    r = run_py(runtime, script, args=["x"], timeout=30)
    assert r.returncode == 0, r
    assert r.lines == [f"{IS[runtime]} x-done"]


def test_run_py_reports_failure(runtime, run_py, tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("import sys\nprint('before')\nsys.exit(3)\n")
    r = run_py(runtime, script)
    assert (r.returncode, r.lines) == (3, ["before"])


def test_micropython_small_heap(run_py, mp_runtime, tmp_path):
    script = tmp_path / "heap.py"
    script.write_text("b = bytearray(100 * 1024)\n")
    assert run_py(mp_runtime, script, heapsize="256k").returncode == 0
    r = run_py(mp_runtime, script, heapsize="64k")
    assert r.returncode != 0 and "MemoryError" in r.output


def test_start_py_kill(runtime, start_py, tmp_path):
    script = tmp_path / "forever.py"
    script.write_text(
        "import asyncio\n"
        "async def main():\n"
        "    print('ready')\n"
        "    while True:\n"
        "        await asyncio.sleep(0.05)\n"
        "asyncio.run(main())\n")
    p = start_py(runtime, script)
    assert p.expect("ready", timeout=20) == "ready"
    p.kill_now()
    assert p.returncode != 0
