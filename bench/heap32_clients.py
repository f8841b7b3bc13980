"""Where a client's heap goes on the 32-bit board image (issue 18): the breakdown.

On the image bench/heap32.py builds (the host board's 32-bit MicroPython v1.28.0 unix port with
boards/host/manifest.py, umqtt.simple 1.8.0 and Peter Hinch's mqtt_as 0.8.3 frozen in), each
client runs bench/_clients_steps_worker.py at -X heapsize=64k, code frozen, and prints gc.mem_alloc()
after gc.collect() at each step of its life: import asyncio, import the client (what its
modules' globals, classes and functions take, frozen; and the asyncio parts it pulls in), make
the client, connect, subscribe, 3 and 103 QoS 1 round trips to itself, disconnect. mqnode's
import is split further by importing its modules one by one, from a second frozen copy of
lib/mqtt, `mqtt_parts`, whose __init__ imports nothing. Writes bench/results/heap32_clients.md.
Figures only; nothing is asserted.

usage: .venv/bin/python bench/heap32_clients.py
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common as c  # noqa: E402
import heap32  # noqa: E402
import suite  # noqa: E402

CLIENTS = (("mqnode", "mqnode 3.1.1 (lib/mqtt)"), ("mqnode5", "mqnode version=5"),
           ("mqtt_as", "Peter Hinch's mqtt_as 0.8.3"), ("umqtt", "umqtt.simple 1.8.0"))
# mqnode's import, module by module (each line imports one more; the asyncio parts first)
IMPORTS = [("asyncio", "import asyncio"),
           ("asyncio.Event (the client's one asyncio part beyond the core)",
            "from asyncio import Event"),
           ("the package, errors", "import mqtt_parts.errors"),
           ("compat", "import mqtt_parts.compat"),
           ("codec", "import mqtt_parts.codec"),
           ("session", "import mqtt_parts.session"),
           ("client", "import mqtt_parts.client"),
           ("the v5 session (version=5): codec5, session5", "import mqtt_parts.session5")]


def run(exe, script, args):
    env = dict(os.environ, MICROPYPATH=".frozen")
    out = subprocess.run([exe, "-X", "heapsize=64k", script] + [str(a) for a in args], env=env,
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.split("\n")
    if "done" not in lines:
        raise SystemExit("heap32_clients: %s %s failed: %s" % (script, args, out.stdout + out.stderr))
    return [(ln.split()[1:-1], int(ln.split()[-1])) for ln in lines if ln.startswith("step ")]


def imports(exe, tmp):
    """[(what, bytes it adds)] for mqnode's modules imported one at a time."""
    script = os.path.join(tmp, "imports.py")
    with open(script, "w") as f:
        f.write("import gc\ngc.collect()\nA0 = gc.mem_alloc()\n")
        for what, stmt in IMPORTS:
            f.write("%s\ngc.collect()\nprint('step', %r, gc.mem_alloc() - A0)\n" % (stmt, what))
        f.write("print('done')\n")
    return [(" ".join(w), n) for w, n in run(exe, script, [])]


def main():
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="mqnode-steps-")
    try:
        parts = os.path.join(tmp, "parts", "mqtt_parts")
        shutil.copytree(os.path.join(c.LIB, "mqtt"), parts,
                        ignore=shutil.ignore_patterns("__pycache__", "*.json"))
        with open(os.path.join(parts, "__init__.py"), "w"):
            pass
        exe = heap32.bench_image(tmp, heap32.anchors(), [
            'package("mqtt_parts", base_path="%s")' % os.path.dirname(parts)])
        with suite.broker() as b:
            R = {cl: [(" ".join(w), n) for w, n in run(exe, os.path.join(HERE, "_clients_steps_worker.py"),
                                                      [cl, b.host, b.port])]
                 for cl, _ in CLIENTS}
        imp = imports(exe, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps = [s for s, _ in R["mqnode"]]
    L = ["# where the heap goes, on the 32-bit board image", "",
         "One run of `.venv/bin/python bench/heap32_clients.py`, %.0f s; mosquitto %s on 127.0.0.1. "
         "The image of bench/heap32.py (MicroPython v1.28.0 unix port, i686, code frozen). "
         "gc.mem_alloc() after gc.collect(), in bytes, at each step of bench/_clients_steps_worker.py "
         "(-X heapsize=64k), from the script's start; in brackets what the step added. "
         "Figures only; nothing is asserted." % (time.monotonic() - t0, suite.mosquitto_version()),
         "", "| step | " + " | ".join(name for _, name in CLIENTS) + " |",
         "|---|" + "---:|" * len(CLIENTS)]
    for s in steps:
        cells = []
        for cl, _ in CLIENTS:
            d = dict(R[cl])
            if s not in d:
                cells.append("-")
                continue
            i = [k for k, _ in R[cl]].index(s)
            prev = R[cl][i - 1][1] if i else 0
            cells.append("{:,} (+{:,})".format(d[s], d[s] - prev))
        L.append("| %s | %s |" % (s, " | ".join(cells)))
    L += ["", "## mqnode's import, module by module", "",
          "Each line imports one more, from `mqtt_parts` (a frozen copy of lib/mqtt whose "
          "__init__ imports nothing): frozen, the modules' globals, classes and function "
          "objects are what the heap holds.", "", "| import | heap in use | added |",
          "|---|---:|---:|"]
    prev = 0
    for what, n in imp:
        L.append("| %s | {:,} | {:,} |".format(n, n - prev) % what)
        prev = n
    text = "\n".join(L) + "\n"
    print(text)
    print("written to", c.write_result("heap32_clients.md", text))


if __name__ == "__main__":
    main()
