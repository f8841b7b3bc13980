"""Fetch the benchmark-only comparison clients from PyPI into bench/.deps/.

  micropython-umqtt.simple 1.3.4  -> bench/.deps/umqtt/simple.py
  micropython-mqtt 0.7b4          -> bench/.deps/mqtt_async.py   (tve's mqtt_async,
                                     "largely compatible with Peter Hinch's mqtt_as")

Both are MicroPython (upip-era) source distributions: a .tar.gz with the .py
files and PKG-INFO, no setup.py or pyproject.toml, so `pip download` /
`pip install` refuse them ("does not appear to be a Python project"). This
does what upip did: take the file from PyPI's simple index, check it against
the sha256 pinned here, and copy its .py files out. Not in requirements.txt:
only bench/suite.py uses them. Idempotent (does nothing when present).

usage: .venv/bin/python bench/deps.py [--force]
"""
import hashlib
import io
import os
import re
import shutil
import ssl
import sys
import tarfile
import urllib.request

DEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".deps")
INDEX = os.environ.get("BENCH_PYPI_SIMPLE", "https://pypi.org/simple")
PKGS = [  # (project, sdist file name, sha256)
    ("micropython-umqtt-simple", "micropython-umqtt.simple-1.3.4.tar.gz",
     "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"),
    ("micropython-mqtt", "micropython-mqtt-0.7b4.tar.gz",
     "254a0af13d37cb92372538b6ded44c5f26e2e77c0d8b9b4e2d73c4f26f43e042"),
]
WANT = [os.path.join(DEST, "umqtt", "simple.py"), os.path.join(DEST, "mqtt_async.py")]


def fetch(url):
    cafile = os.environ.get("PIP_CERT")
    ctx = ssl.create_default_context(cafile=cafile if cafile and os.path.exists(cafile) else None)
    with urllib.request.urlopen(url, timeout=60, context=ctx) as r:
        return r.read()


def main():
    if "--force" not in sys.argv and all(os.path.exists(p) for p in WANT):
        print("bench deps present in", DEST)
        return
    shutil.rmtree(DEST, ignore_errors=True)
    os.makedirs(DEST)
    with open(os.path.join(DEST, ".gitignore"), "w") as f:
        f.write("*\n")
    for project, fname, sha in PKGS:
        page = fetch("%s/%s/" % (INDEX, project)).decode()
        m = re.search(r'href="([^"#]*/%s)(#[^"]*)?"' % re.escape(fname), page)
        if not m:
            sys.exit("bench/deps.py: %s not in the index page of %s" % (fname, project))
        url = urllib.parse.urljoin("%s/%s/" % (INDEX, project), m.group(1))
        data = fetch(url)
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            sys.exit("bench/deps.py: %s: sha256 %s, expected %s" % (fname, got, sha))
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for mem in t.getmembers():
                if mem.isfile() and mem.name.endswith(".py"):
                    rel = mem.name.split("/", 1)[1]  # drop "<name>-<version>/"
                    out = os.path.join(DEST, rel)
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    with open(out, "wb") as f:
                        f.write(t.extractfile(mem).read())
                    print("bench deps:", fname, "->", os.path.relpath(out))


if __name__ == "__main__":
    main()
