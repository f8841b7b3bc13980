"""Where a whole node's heap goes on the 32-bit board image, step by step.

The host board's image from tools/firmware.py, built from boards/host/manifest.py (what the
tests run as micropython32), runs bench/_node_steps_worker.py: gc.mem_alloc() after
gc.collect() after each import of a boot, the config, the Node, connect, the first telemetry
and 100 commanded readings later, on the suite's bench config (BME280, SHT3x, battery;
discovery on). Frozen: the image's modules, main.py as .mpy in RAM (a file on a board);
.mpy: all of the node's code (firmware, boards/host, lib) as .mpy in RAM, asyncio frozen.
--before REV measures REV's tree (git archive) too, for a before/after table.
Writes bench/results/node_heap32.md. Figures only; nothing is asserted.

usage: .venv/bin/python bench/heap32_steps.py [--before REV] [--n 100]
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import _common as c  # noqa: E402
import firmware  # noqa: E402
import suite  # noqa: E402

WORKER = os.path.join(HERE, "_node_steps_worker.py")


def tree(rev, tmp):
    """The repository root to measure: the work tree, or REV exported by git."""
    if not rev:
        return c.ROOT
    dst = os.path.join(tmp, "tree-" + rev.replace("/", "_"))
    os.makedirs(dst)
    arch = subprocess.run(["git", "-C", c.ROOT, "archive", rev, "lib", "firmware", "boards"],
                          check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dst], input=arch, check=True)
    return dst


def prepare(root, tmp):
    """(image, folder with the node's code as .mpy and bench_config.json)."""
    man = os.path.join(tmp, "manifest.py")
    with open(man, "w") as f:
        f.write('include("%s")\n' % os.path.join(root, "boards", "host", "manifest.py"))
    exe = str(firmware.build("host", out=os.path.join(tmp, "image"), manifest=man,
                             say=lambda *a: None))
    ndir = os.path.join(tmp, "node")
    lib = os.path.join(root, "lib")
    srcs = [(p, os.path.relpath(p, lib)) for p in glob.glob(os.path.join(lib, "*", "*.py"))]
    srcs += [(p, os.path.basename(p)) for p in glob.glob(os.path.join(root, "firmware", "*.py"))]
    srcs += [(p, os.path.basename(p)) for p in glob.glob(os.path.join(root, "boards", "host",
                                                                      "*.py"))]
    for src, rel in srcs:
        if not rel.endswith("manifest.py"):
            suite.mpy(src, os.path.join(ndir, rel[:-3] + ".mpy"), rel)
    with open(os.path.join(root, "boards", "host", "config.json")) as f:
        cfg = json.load(f)
    cfg["sensors"] = [s for s in cfg["sensors"] if s["type"] != "ds18b20"]   # as suite.py's
    cfg["telemetry"]["interval_s"] = 86400
    cfg["topic_prefix"] = "benchnode"
    with open(os.path.join(ndir, "bench_config.json"), "w") as f:
        json.dump(cfg, f)
    return exe, ndir


def steps(exe, ndir, mode, broker, n, keep_config):
    """[(step, bytes, modules loaded by this step)]."""
    path = ".frozen:" + ndir if mode == "frozen" else ndir + ":.frozen"
    argv = [exe, "-X", "heapsize=256k", WORKER, os.path.join(ndir, "bench_config.json"),
            "%s:%d" % (broker.host, broker.port), str(n)] + (["--keep-config"] * keep_config)
    r = subprocess.run(argv, env=dict(os.environ, MICROPYPATH=path), cwd=ndir,
                       capture_output=True, text=True, timeout=300)
    lines = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("step ")]
    if r.returncode or "done" not in r.stdout:
        sys.exit("heap32_steps: %s worker failed: %s" % (mode, (r.stdout + r.stderr)[-2000:]))
    out, seen = [], set()
    for ln in lines:
        mods = set(ln[3:])
        out.append((ln[1].replace("_", " "), int(ln[2]), sorted(mods - seen)))
        seen = mods
    return out


def report(runs, n, args):
    names = list(runs)
    L = ["# where a whole node's heap goes on the 32-bit board image", "",
         "`.venv/bin/python bench/heap32_steps.py%s`: the host image (MicroPython v1.28.0 "
         "unix port, i686) from boards/host/manifest.py; gc.mem_alloc() after gc.collect() "
         "at each step of bench/_node_steps_worker.py, in bytes from the heap in use before "
         "`import asyncio` (whose 2 KiB are in every row). The suite's bench config (BME280, "
         "SHT3x, battery; discovery on), each of the %d readings commanded. Frozen: the "
         "image's modules, main.py as .mpy in RAM; .mpy: all of the node's code as .mpy in "
         "RAM. The modules column lists what a step loaded (frozen run). Figures only." % (
             " " + " ".join(args) if args else "", n), ""]
    for name in names:
        fr, mp, keep = runs[name]
        L += ["## " + name + (" (main.py kept the config module)" if keep else ""), "",
              "| step | frozen | + | .mpy in RAM | + | modules loaded |",
              "|---|---:|---:|---:|---:|---|"]
        pf = pm = 0
        mpd = {s: b for s, b, _ in mp}
        for s, b, mods in fr:
            m = mpd.get(s, 0)
            L.append("| %s | %d | %+d | %d | %+d | %s |" % (s, b, b - pf, m, m - pm,
                                                             " ".join(mods)))
            pf, pm = b, m
        L.append("")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", metavar="REV", help="also measure REV's tree (git archive)")
    ap.add_argument("--n", type=int, default=100, help="commanded readings")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mqnode-steps-")
    runs = {}
    try:
        with suite.broker() as b:
            for rev in ([a.before] if a.before else []) + [None]:
                root = tree(rev, tmp)
                d = os.path.join(tmp, rev or "work")
                os.makedirs(d, exist_ok=True)
                exe, ndir = prepare(root, d)
                with open(os.path.join(root, "firmware", "main.py")) as f:
                    keep = 'del sys.modules["config"]' not in f.read()
                runs["before (%s)" % rev if rev else "now (work tree)"] = (
                    steps(exe, ndir, "frozen", b, a.n, keep),
                    steps(exe, ndir, "mpy", b, a.n, keep), keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(runs, a.n, sys.argv[1:])
    print(text)
    print("written to", c.write_result("node_heap32.md", text))


if __name__ == "__main__":
    main()
