"""Over-the-air updates (tools/ota.py, firmware/ota.py, the journal in firmware/main.py) on the
host board against mosquitto: a flash folder holding a build (as `mqnode deploy` leaves it), the
node run from it by MicroPython (cwd = the flash, MICROPYPATH=.frozen:lib: a board's sys.path,
which main.py turns round so that lib/ wins); exit code 42 (a power cut injected in the journal) boots it again."""
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time

import pytest

import conftest
from conftest import REPO, RUNTIMES, micropython_exe

sys.path.insert(0, str(REPO / "tests" / "faults"))
sys.path.insert(0, str(REPO / "tools"))
import ota  # noqa: E402
from proxy import PUBLISH, Proxy  # noqa: E402

KEY = "fleet-key-0123456789abcdef"
MPS = [r for r in RUNTIMES if r != "cpython"]


# RFC 4231 §4: test cases 1 (a short key), 2 (a short key and message) and 6 (a key longer
# than the 64-byte block: hashed first); HMAC-SHA-256 results.
RFC4231 = [
    ("0b" * 20, b"Hi There".hex(),
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe".hex(), b"what do ya want for nothing?".hex(),
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]


def test_hmac_sha256_is_rfc_4231(run_py, runtime, tmp_path):
    (tmp_path / "cases.json").write_text(json.dumps([[key, msg] for key, msg, _ in RFC4231]))
    r = run_py(runtime, REPO / "tests" / "scenarios" / "ota_hmac.py", [tmp_path / "cases.json"],
               pythonpath=(REPO / "firmware", REPO / "boards" / "host"))
    assert r.returncode == 0, r.output
    assert r.lines == [mac for _, _, mac in RFC4231]


def exe(runtime):
    return micropython_exe() if runtime == "micropython" else getattr(
        conftest, runtime + "_exe")()


class Board:
    """A host board on a flash folder; exit code 42 is a reset (a power cut in the tests)."""

    def __init__(self, runtime, flash, log):
        self.exe, self.flash, self.log = exe(runtime), flash, log
        self.boots, self.proc, self.on = 0, None, False

    def start(self):
        self.on = True
        self.t = threading.Thread(target=self._power, daemon=True)
        self.t.start()
        return self

    def _power(self):
        with open(self.log, "ab") as out:
            while self.on:
                self.boots += 1
                self.proc = subprocess.Popen(
                    [self.exe, "-X", "heapsize=256k", "main.py"], cwd=self.flash,
                    env={"MICROPYPATH": ".frozen:lib", "PATH": "/usr/bin:/bin"},
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                if self.proc.wait() != 42:
                    break

    def stop(self):
        self.on = False
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.t.join(timeout=5)

    def console(self):
        return self.log.read_text(errors="replace")

    def files(self):
        """{path: sha256} of the node's code on the flash (what a boot would import)."""
        out = {}
        for p in self.flash.rglob("*"):
            rel = str(p.relative_to(self.flash))
            if p.is_file() and (rel == "main.py" or rel.startswith("lib/")):
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


@pytest.fixture
def repo(tmp_path):
    """A copy of the sources and tools; v1 built into tmp/v1 (the deployed build)."""
    r = tmp_path / "repo"
    for d in ("tools", "lib", "firmware", "boards"):
        shutil.copytree(REPO / d, r / d, ignore=shutil.ignore_patterns("__pycache__"))
    build(r, tmp_path / "v1")
    return r


def build(repo, out):
    subprocess.run([sys.executable, str(repo / "tools" / "mqnode.py"), "build", "--board",
                    "host", "--out", str(out)], check=True, capture_output=True, timeout=120)
    return json.loads((out / "mqnode.json").read_text())


def change(repo, path, old, new):
    p = repo / path
    s = p.read_text()
    assert old in s
    p.write_text(s.replace(old, new, 1))


@pytest.fixture
def board(tmp_path, mosquitto, prefix, repo):
    """start(runtime, broker=mosquitto, cut=None) -> a Board running build v1 as node n1."""
    made = []

    def start(runtime, broker=None, cut=None, name="b"):
        b = broker or mosquitto
        flash = tmp_path / name
        shutil.copytree(tmp_path / "v1", flash)
        (flash / "config.json").write_text(json.dumps({
            "node_id": "n1", "topic_prefix": prefix, "discovery": False,
            "broker": {"host": "127.0.0.1", "port": b.port, "keepalive": 10},
            "telemetry": {"interval_s": 5}, "sensors": [{"type": "bme280", "name": "air"}]}))
        (flash / "secrets.json").write_text(json.dumps({"ota_key": KEY}))
        if cut is not None:
            (flash / "ota.d").mkdir()
            (flash / "ota.d" / "cut").write_text(str(cut))
        bd = Board(runtime, flash, tmp_path / (name + ".log")).start()
        made.append(bd)
        return bd

    yield start
    for b in made:
        b.stop()


def online(sub, mosquitto, prefix, bd, timeout=30):
    s = sub(mosquitto, f"{prefix}/n1/status", qos=1)
    deadline = time.time() + timeout
    seen = 0   # lines looked at (several may come in between two looks)
    while time.time() < deadline:
        s.wait_for(seen + 1, timeout=max(0.0, deadline - time.time()))
        got = list(s.messages)
        if len(got) > seen and got[-1].endswith(" online"):   # the latest status
            s.stop()
            return
        seen = len(got)
    pytest.fail("node not online: " + bd.console()[-3000:])


def run_ota(repo, mosquitto, prefix, tmp_path, *extra, key=KEY, timeout=120,
            who=("--node", "n1")):
    (tmp_path / "op-secrets.json").write_text(json.dumps({"ota_key": key}))
    r = subprocess.run([sys.executable, str(repo / "tools" / "mqnode.py"), "ota", "--board",
                        "host", *who, "--host", "127.0.0.1", "--port",
                        str(mosquitto.port), "--prefix", prefix, "--secrets",
                        str(tmp_path / "op-secrets.json"), "--timeout", "10", *extra],
                       capture_output=True, text=True, timeout=timeout)
    assert key not in r.stdout + r.stderr
    return r


def replies(lines):
    return [json.loads(line.split(" ", 1)[1]) for line in lines]


def v2(repo):
    """Two files changed: node.py (says so when it starts) and config.py."""
    change(repo, "firmware/node.py", 'log(self.id, "broker",', 'log(self.id, "v2 broker",')
    change(repo, "firmware/config.py", '"a host name or IP address"', '"a host name or IP"')


@pytest.mark.parametrize("runtime", MPS)
def test_two_file_update(board, repo, mosquitto, sub, prefix, tmp_path, runtime):
    bd = board(runtime)
    online(sub, mosquitto, prefix, bd)
    v2(repo)
    r = run_ota(repo, mosquitto, prefix, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr + bd.console()[-3000:]
    assert "sending 2 changed files: lib/config.mpy, lib/node.mpy" in r.stdout, r.stdout
    assert "n1: updated to version" in r.stdout and "1 of 1 nodes updated" in r.stdout
    new = json.loads((repo / "build" / "host" / "mqnode.json").read_text())
    assert bd.files() == new["files"]   # every file of the new build, nothing else
    assert json.loads((bd.flash / "mqnode.json").read_text())["built"] == new["built"]
    assert "v2 broker" in bd.console()   # the new code runs
    assert not [p for p in (bd.flash / "ota.d").rglob("*") if p.is_file()]   # nothing left
    # the same build again, to every node online under the prefix: nothing to send
    r = run_ota(repo, mosquitto, prefix, tmp_path, who=("--all",))
    assert r.returncode == 0 and "n1: up to date" in r.stdout, r.stdout + r.stderr
    assert "1 of 1 nodes updated" in r.stdout


@pytest.mark.parametrize("runtime", MPS)
def test_bad_or_missing_signature_is_refused(board, repo, mosquitto, sub, prefix, tmp_path,
                                             pub, runtime):
    bd = board(runtime)
    online(sub, mosquitto, prefix, bd)
    v2(repo)
    old = bd.files()
    r = run_ota(repo, mosquitto, prefix, tmp_path, key="not-the-fleet-key-at-all")
    assert r.returncode == 1 and "FAILED: refused: bad signature" in r.stdout, r.stdout + r.stderr
    # unsigned: the manifest alone
    s = sub(mosquitto, f"{prefix}/n1/reply/ota", qos=1)
    body = (tmp_path / "v1" / "mqnode.json").read_bytes()
    pub(mosquitto, f"{prefix}/n1/ota/manifest", body, qos=1)
    assert replies(s.wait_for(1, timeout=10)) == [
        {"cmd": "ota", "ok": False, "error": "refused: bad signature"}]
    assert bd.files() == old and "v2 broker" not in bd.console()


@pytest.mark.parametrize("runtime", MPS)
def test_corrupted_chunk_is_refused_by_hash(board, repo, mosquitto, sub, prefix, tmp_path, pub,
                                            runtime):
    bd = board(runtime)
    online(sub, mosquitto, prefix, bd)
    v2(repo)
    new = tmp_path / "v2"
    build(repo, new)
    s = sub(mosquitto, f"{prefix}/n1/reply/ota", qos=1)
    pub(mosquitto, f"{prefix}/n1/ota/manifest", ota.manifest(new, KEY, 30), qos=1)
    need = replies(s.wait_for(1, timeout=10))[0]
    assert need["stage"] == "need" and need["need"] == ["lib/config.mpy", "lib/node.mpy"], need
    data = bytearray((new / "lib/config.mpy").read_bytes())
    data[len(data) // 2] ^= 0x01
    for off in range(0, len(data), ota.CHUNK):
        pub(mosquitto, f"{prefix}/n1/ota/c/0/{off}", bytes(data[off:off + ota.CHUNK]), qos=1)
    got = replies(s.wait_for(2, timeout=10))[-1]
    assert got == {"cmd": "ota", "ok": False,
                   "error": "lib/config.mpy: sha256 does not match the manifest, refused"}, got
    assert not (bd.flash / "ota.d" / "part").exists()
    assert bd.files() == json.loads((tmp_path / "v1" / "mqnode.json").read_text())["files"]
    # a good transfer afterwards goes through
    r = run_ota(repo, mosquitto, prefix, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr + bd.console()[-3000:]


@pytest.mark.parametrize("runtime", MPS)
def test_interrupted_transfer_then_the_next_ota_completes_it_with_a_flat_heap(
        board, repo, mosquitto, sub, prefix, tmp_path, runtime):
    p = Proxy(mosquitto.port).start()
    try:
        bd = board(runtime, broker=p)
        online(sub, mosquitto, prefix, bd)
        v2(repo)   # + a 48 KB probes.mpy, sent last
        big = ",\n    ".join(repr("%04d" % i + (bytes(range(256)).hex() * 2)[:1000]) for i in range(48))
        change(repo, "firmware/probes.py", "\nclass Probe", "\n_BIG = (%s)\n\n\nclass Probe" % big)
        s = sub(mosquitto, f"{prefix}/n1/reply/ota", qos=1)
        (tmp_path / "op.json").write_text(json.dumps({"ota_key": KEY}))
        op = subprocess.Popen([sys.executable, str(repo / "tools" / "mqnode.py"), "ota",
                               "--board", "host", "--node", "n1", "--host", "127.0.0.1",
                               "--port", str(mosquitto.port), "--prefix", prefix,
                               "--secrets", str(tmp_path / "op.json"), "--timeout", "5"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:   # mid-file in probes.mpy: cut the node's link
            chunks = [x for x in p.packets_of(PUBLISH, "b2c") if x.payload and
                      len(x.payload) == ota.CHUNK]
            if len(chunks) >= 30:
                break
            time.sleep(0.05)
        p.mode = "blackhole"
        out = op.communicate(timeout=60)[0]
        assert op.returncode == 1 and "n1: FAILED: no answer" in out, out
        assert "0 of 1 nodes updated" in out
        old = json.loads((tmp_path / "v1" / "mqnode.json").read_text())["files"]
        assert bd.files() == old   # the old code is on the flash and runs
        p.mode = "pass"
        p.cut_all()
        online(sub, mosquitto, prefix, bd)
        r = run_ota(repo, mosquitto, prefix, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr + bd.console()[-3000:]
        # the files that arrived before the cut are not sent again
        assert "sending 1 changed files: lib/probes.mpy" in r.stdout, r.stdout
        assert bd.files() == json.loads((repo / "build" / "host" / "mqnode.json").read_text())[
            "files"]
        # the heap while 48 KB streamed through: sampled after each 8 KiB (gc.collect first)
        mem = [x["mem"] for x in replies(s.lines(timeout=2)) if x.get("stage") in ("at", "file")]
        size = (repo / "build" / "host" / "lib" / "probes.mpy").stat().st_size
        assert size > 40000 and len(mem) >= size // ota.ACK_BYTES, mem
        assert max(mem) - min(mem) < 4096, mem
    finally:
        p.stop()


def cut_each_step(board, repo, mosquitto, sub, prefix, tmp_path, runtime, tag):
    """An update with a power cut after step n of the journal, for n = 1, 2, ... until one
    finishes without a cut; [(n, "new" | "old", ota's stdout)]: what each booted into."""
    files = {"new": build(repo, tmp_path / "v2")["files"],
             "old": json.loads((tmp_path / "v1" / "mqnode.json").read_text())["files"]}
    out, n = [], 1
    while True:
        bd = board(runtime, cut=n, name=f"{tag}{n}")
        online(sub, mosquitto, prefix, bd)
        r = run_ota(repo, mosquitto, prefix, tmp_path)
        cut = "ota: power cut (test)" in bd.console()
        got = [k for k in files if bd.files() == files[k]]
        assert got, (n, "a mix of versions on the flash", r.stdout, bd.console()[-3000:])
        assert not (bd.flash / "ota.d" / "state").exists(), (n, r.stdout)   # reported, done
        out.append((n, got[0], r.stdout))
        bd.stop()
        if not cut:
            return out
        assert bd.boots == 2, (n, bd.console()[-3000:])
        n += 1


@pytest.mark.parametrize("runtime", MPS)
def test_a_power_cut_at_each_step_of_the_swap_boots_old_or_new(board, repo, mosquitto, sub,
                                                               prefix, tmp_path, runtime):
    v2(repo)
    runs = cut_each_step(board, repo, mosquitto, sub, prefix, tmp_path, runtime, "b")
    # 3 files (2 changed + the stamp): 6 renames, then the journal says "trial"
    assert len(runs) > 7, runs
    for n, got, stdout in runs:
        if got == "new":
            assert "n1: updated to version" in stdout, (n, stdout)
        else:   # a cut once the new version's trial boot began counts as its failure
            assert "FAILED: rebooted before reaching the broker" in stdout, (n, stdout)
    # a cut anywhere in the swap itself: the boot completes it
    assert [got for n, got, _ in runs[:6]] == ["new"] * 6, runs
    assert runs[-1][1] == "new"


@pytest.mark.parametrize("runtime", MPS)
def test_a_power_cut_at_each_step_of_a_rollback_boots_old_or_new(board, repo, mosquitto, sub,
                                                                 prefix, tmp_path, runtime):
    change(repo, "firmware/node.py", "\nclass Node", '\nraise RuntimeError("v2 is broken")\n'
                                                     "\n\nclass Node")
    runs = cut_each_step(board, repo, mosquitto, sub, prefix, tmp_path, runtime, "r")
    # node.py + the stamp: 4 renames and "trial", then the failed import's "undo", 2 removes
    # and 2 renames back, "rolled back"
    assert len(runs) > 10, runs
    for n, got, stdout in runs:
        assert got == "old" and "FAILED: " in stdout, (n, stdout)


@pytest.mark.parametrize("runtime", MPS)
def test_a_version_that_raises_at_import_is_rolled_back(board, repo, mosquitto, sub, prefix,
                                                        tmp_path, runtime):
    bd = board(runtime)
    online(sub, mosquitto, prefix, bd)
    change(repo, "firmware/node.py", "\nclass Node", '\nraise RuntimeError("v2 is broken")\n'
                                                     "\n\nclass Node")
    r = run_ota(repo, mosquitto, prefix, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "n1: FAILED: import: RuntimeError('v2 is broken'" in r.stdout, r.stdout
    assert bd.files() == json.loads((tmp_path / "v1" / "mqnode.json").read_text())["files"]
    got = ping(sub, mosquitto, prefix)
    assert got["ota"]["stage"] == "rolled back" and "v2 is broken" in got["ota"]["why"], got


def ping(sub, mosquitto, prefix):
    s = sub(mosquitto, f"{prefix}/n1/reply/ping", qos=1)
    conftest.pub(mosquitto, f"{prefix}/n1/cmd/ping", "x", qos=1)
    return replies(s.wait_for(1, timeout=10))[0]


@pytest.mark.parametrize("runtime", MPS)
def test_a_version_that_cannot_reach_the_broker_is_rolled_back(board, repo, mosquitto, sub,
                                                               prefix, tmp_path, runtime):
    bd = board(runtime)
    online(sub, mosquitto, prefix, bd)
    change(repo, "firmware/node.py", 'cfg["broker.host"], cfg["broker.port"], cfg[',
           'cfg["broker.host"], cfg["broker.port"] + 1, cfg[')
    r = run_ota(repo, mosquitto, prefix, tmp_path, "--trial-s", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "n1: FAILED: no broker within 2 s" in r.stdout, r.stdout + bd.console()[-3000:]
    assert bd.files() == json.loads((tmp_path / "v1" / "mqnode.json").read_text())["files"]
    assert ping(sub, mosquitto, prefix)["ota"]["why"] == "no broker within 2 s"


def test_the_readme_acl_lets_only_the_operator_publish_to_ota(mosquitto_factory, sub, pub,
                                                              tmp_path):
    # the ACL exactly as the README gives it
    readme = (REPO / "README.md").read_text()
    acl = readme.split("# the operator: everything under the prefix", 1)[1].split("```", 1)[0]
    (tmp_path / "acl").write_text("# the operator" + acl.replace("\n  ", "\n"))
    pw = {"operator": "op-pw-1", "n1": "n1-pw-1", "n2": "n2-pw-1"}
    b = mosquitto_factory(users=pw, extra=[f"acl_file {tmp_path / 'acl'}"])
    s = sub(b, "mqnode/n1/ota/#", qos=1, username="n1", password=pw["n1"])
    for who in ("n2", "n1"):   # another node, or the node itself: dropped by the broker
        pub(b, "mqnode/n1/ota/manifest", f"from {who}", qos=1, username=who, password=pw[who])
    pub(b, "mqnode/n1/ota/manifest", "from operator", qos=1, username="operator",
        password=pw["operator"])
    assert s.wait_for(1, timeout=10) == ["mqnode/n1/ota/manifest from operator"]
    assert s.wait_for(2, timeout=1) == ["mqnode/n1/ota/manifest from operator"]
    # the node still publishes its own topics; and reads its commands
    t = sub(b, "mqnode/+/status", qos=1, username="operator", password=pw["operator"])
    pub(b, "mqnode/n1/status", "online", qos=1, username="n1", password=pw["n1"])
    pub(b, "mqnode/n1/status", "spoofed", qos=1, username="n2", password=pw["n2"])
    assert t.wait_for(2, timeout=3) == ["mqnode/n1/status online"]
