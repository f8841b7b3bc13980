"""Why each MQTT packet must leave in one write.

Starts its own mosquitto (127.0.0.1, free port) and runs _write_split_worker.py
on CPython and on MicroPython: N QoS 1 PUBLISH -> PUBACK round trips, 64-byte
payload, with the packet from mqtt.codec.publish sent
  one            in one write (Nagle on, the default)
  split3         in three writes: fixed header / variable header / payload,
                 as umqtt.simple does (Nagle on)
  split3_nodelay in three writes with TCP_NODELAY set
Prints a markdown table of median and p90 round trip (ms) and writes it to
bench/results/write_split.md. Figures only; nothing is asserted.

usage: .venv/bin/python bench/write_split.py [-n 100] [--mp-heapsize 256k]
"""
import argparse
import os
import platform
import sys

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_write_split_worker.py")
MODES = [
    ("one", "1 write, Nagle on"),
    ("split3", "3 writes, Nagle on"),
    ("split3_nodelay", "3 writes, TCP_NODELAY"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="round trips per runtime and mode")
    # The .py sources of lib/mqtt do not import under 64k (MemoryError while
    # compiling client.py; see heap.py), so this worker runs with the heap the
    # test suite uses.
    ap.add_argument("--mp-heapsize", default="256k")
    a = ap.parse_args()

    rows = []
    with c.Broker() as b:
        for rt in ("cpython", "micropython"):
            for mode, label in MODES:
                r = c.run(rt, WORKER, (b.host, b.port, mode, a.n), heapsize=a.mp_heapsize)
                out = r.stdout.split()
                if r.returncode or not out or out[-1] != "done":
                    # MicroPython prints an uncaught exception's traceback to stdout
                    tb = (r.stdout + r.stderr).strip()
                    err = (tb.splitlines() or ["exit %d" % r.returncode])[-1]
                    rows.append((rt, label, None, None, None, err))
                    print("%s %s failed:\n%s" % (rt, mode, tb), file=sys.stderr)
                    continue
                us = [int(x) for x in out[:-1]]
                rows.append((rt, label, len(us), c.median(us) / 1000, c.percentile(us, 90) / 1000,
                             "max %.2f" % (max(us) / 1000)))

    lines = [
        "# write_split: QoS 1 PUBLISH -> PUBACK round trip, 64-byte payload",
        "",
        "mosquitto on 127.0.0.1 (loopback), %d round trips per row after 5 warm-up ones; "
        "%s; MicroPython unix port with -X heapsize=%s." % (a.n, platform.platform(), a.mp_heapsize),
        "",
        "| runtime | writes per PUBLISH | n | median ms | p90 ms | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for rt, label, n, med, p90, note in rows:
        if n is None:
            lines.append("| %s | %s | - | - | - | FAILED: %s |" % (rt, label, note))
        else:
            lines.append("| %s | %s | %d | %.3f | %.3f | %s |" % (rt, label, n, med, p90, note))
    text = "\n".join(lines) + "\n"
    print(text)
    print("written to", c.write_result("write_split.md", text))


if __name__ == "__main__":
    main()
