# Over-the-air updates, the node's half (tools/ota.py is the operator's).
# Loaded only when an OTA message arrives or an update is in progress at boot.
#
# Messages in, under base = <prefix>/<node_id>/ (QoS 1):
#   base + "ota/manifest"    64 hex digits of HMAC-SHA256(ota_key, body) + body:
#                            the new build's mqnode.json (board, version, built,
#                            files {path: sha256}) plus sizes {path: bytes}, trial_s
#   base + "ota/c/<k>/<off>" bytes off.. of the k-th file the node asked for
# Replies on base + "reply/ota": {"cmd": "ota", "ok", "stage", ...}; stages:
#   need (the files to send), at (bytes received so far), file (one verified),
#   swap (all staged, rebooting), current (nothing to do), confirmed, rolled back.
#
# Flash: ota.d/new/ holds verified files (named <path with , for />.<sha256[:16]>,
# so a transfer cut off mid-way resumes with the files already there); ota.d/part
# the file being received; ota.d/state the journal that otaboot.py completes or
# undoes at boot (its format is shared with otaboot.py: keep them in step).
import asyncio
import gc
import json
import os
from binascii import hexlify
from hashlib import sha256

from mqtt.errors import MQTTError
from node import log

NEW = "ota.d/new/"
PART = "ota.d/part"
STATE = "ota.d/state"
STAMP = "mqnode.json"
ACK_BYTES = 8192   # the node says how far it got every 8 KiB: the operator's window


def hmac_sha256(key, msg):
    """RFC 2104 HMAC over hashlib's SHA-256 (64-byte blocks); MicroPython has no hmac."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def signed(key, body):
    return hexlify(hmac_sha256(key, body)) + body


class Refused(ValueError):
    pass


class Ota:
    def __init__(self, node):
        self.node = node
        self.m = None        # the manifest being received: files, sizes, version...
        self.need = None     # paths the node asked for, in order
        self.f = None        # ota.d/part while a file comes in
        self.h = None
        self.k = -1          # which of need is coming in
        self.next = 0        # the files before this one are staged
        self.pos = 0

    # ---- a transfer ----

    async def handle(self, sub, payload):
        try:
            if sub == "manifest":
                r = self._manifest(bytes(payload))
            elif sub.startswith("c/"):
                r = self._chunk(sub, payload)
            else:
                raise Refused("unknown OTA message " + sub)
        except (ValueError, OSError, KeyError, TypeError) as e:   # Refused is a ValueError
            self._drop()
            r = [{"ok": False, "error": "%s" % e if isinstance(e, Refused) else repr(e)}]
        for x in r:
            await self.reply(x)
        if r and r[-1].get("stage") == "swap":
            await self.node.client.flush(timeout=5)
            self.node._done.set()   # reboot: otaboot.py swaps the files in

    def _manifest(self, payload):
        self._drop()
        self.m = self.need = None
        key = self.node.cfg["secrets"].get("ota_key")
        if not key:
            raise Refused("refused: no ota_key in secrets.json, updates are off")
        sig, body = payload[:64], payload[64:]
        if not _same(sig, hexlify(hmac_sha256(key.encode(), body))):
            raise Refused("refused: bad signature")
        m = json.loads(body)
        if m["board"] != self.node.board.NAME:
            raise Refused("refused: a build for board %s, this is %s" % (m["board"],
                                                                         self.node.board.NAME))
        old = _stamp()
        files, have = m["files"], old.get("files", {})
        if not [p for p in files if have.get(p) != files[p]] and len(files) == len(have):
            return [{"ok": True, "stage": "current", "version": old.get("version")}]
        # a captured manifest sent again must not downgrade the node
        if m["built"] <= old.get("built", ""):
            raise Refused("refused: build %s is not newer than the installed %s" % (
                m["built"], old.get("built")))
        _mkdir("ota.d")
        _mkdir(NEW[:-1])
        keep = [_name(p, files[p]) for p in files] + ["stamp"]
        for n in os.listdir(NEW[:-1]):
            if n not in keep:   # left from an older transfer
                os.remove(NEW + n)
        with open(NEW + "stamp", "wb") as f:
            f.write(body)
        self.m, self.next = m, 0
        self.need = [p for p in sorted(files) if have.get(p) != files[p] and
                     not _exists(NEW + _name(p, files[p]))]
        st = os.statvfs(".")
        want, free = sum(m["sizes"][p] for p in self.need), st[0] * st[4]
        if want + 4096 > free:   # the old files are renamed, not copied: no room needed
            raise Refused("not enough free flash: %d bytes to stage, %d free" % (want, free))
        r = [{"ok": True, "stage": "need", "need": self.need, "version": old.get("version"),
              "built": old.get("built")}]
        if not self.need:
            r.append(self._plan(old))
        return r

    def _chunk(self, sub, data):
        k, _, off = sub[2:].partition("/")
        k, off = int(k), int(off)
        if self.need is None:
            raise Refused("a chunk without a manifest")
        if k < self.next:
            return []   # a QoS 1 message can come twice (MQTT-4.3.2): that file is staged
        p = self.need[k]
        if k != self.k:
            if off or k != self.next:
                raise Refused("%s: starts at byte %d of file %d, not 0 of %d" % (
                    p, off, k, self.next))
            self._drop()
            self.f, self.h, self.k, self.pos = open(PART, "wb"), sha256(), k, 0
        if off < self.pos:
            return []   # a QoS 1 message can come twice (MQTT-4.3.2)
        size = self.m["sizes"][p]
        if off > self.pos or off + len(data) > size:
            raise Refused("%s: bytes %d.. do not follow %d of %d" % (p, off, self.pos, size))
        self.f.write(data)
        self.h.update(data)
        self.pos += len(data)
        if self.pos < size:
            if self.pos // ACK_BYTES != off // ACK_BYTES:
                return [{"ok": True, "stage": "at", "file": p, "pos": self.pos, "mem": _mem()}]
            return []
        self.f.close()
        self.f = None
        self.k = -1
        self.next = k + 1
        if hexlify(self.h.digest()).decode() != self.m["files"][p]:
            os.remove(PART)
            raise Refused("%s: sha256 does not match the manifest, refused" % p)
        os.rename(PART, NEW + _name(p, self.m["files"][p]))
        r = [{"ok": True, "stage": "file", "file": p, "mem": _mem()}]
        if k == len(self.need) - 1:
            r.append(self._plan(_stamp()))
        return r

    def _plan(self, old):
        # The journal for otaboot.py: [path, staged name ("" = delete), had an old copy]
        m, have = self.m, old.get("files", {})
        files = [[p, _name(p, m["files"][p]), _exists(p)] for p in sorted(m["files"])
                 if have.get(p) != m["files"][p]]
        files += [[p, "", True] for p in have if p not in m["files"] and _exists(p)]
        files.append([STAMP, "stamp", _exists(STAMP)])
        for p, _, _ in files:
            _mkdir("ota.d/old")
            d = p.rsplit("/", 1)[0] if "/" in p else ""
            if d:
                _mkdirs(d)
        write_state({"phase": "swap", "files": files, "version": m["version"],
                     "built": m["built"], "trial_s": m.get("trial_s", 120), "boots": 0})
        self.need = None
        return {"ok": True, "stage": "swap", "version": m["version"], "built": m["built"]}

    def _drop(self):
        if self.f:
            self.f.close()
            self.f = None
        self.k = -1

    async def reply(self, r):
        r["cmd"] = "ota"
        try:
            await self.node.client.publish(self.node.t_reply + "ota", json.dumps(r), 1, timeout=10)
        except (MQTTError, OSError, asyncio.TimeoutError) as e:
            log("ota: reply lost:", repr(e))

    # ---- after an update: confirm it, or have it rolled back ----

    async def after_boot(self):
        node, s = self.node, read_state()
        if not s:
            return
        if s["phase"] == "trial":
            try:
                await asyncio.wait_for(node.client.up.wait(), s["trial_s"])
            except asyncio.TimeoutError:
                s["phase"], s["why"] = "undo", "no broker within %d s" % s["trial_s"]
                write_state(s)
                log(node.id, "ota: version", s["version"], "did not reach the broker, rolling back")
                node._done.set()
                return
            write_state({"phase": "confirmed", "version": s["version"], "built": s["built"]})
            s = read_state()
        for d in ("ota.d/old", NEW[:-1]):
            _clear(d)
        await node.client.up.wait()
        r = {"ok": s["phase"] == "confirmed", "stage": s["phase"], "version": s["version"],
             "built": s["built"]}
        if "why" in s:
            r["why"] = s["why"]
        node.ota_result = r
        log(node.id, "ota:", s["phase"], s["version"], s.get("why", ""))
        await self.reply(dict(r))
        os.remove(STATE)


def read_state():
    # otaboot.py has the same reader: the state, or the .tmp a FAT rename left
    for p in (STATE, STATE + ".tmp"):
        try:
            with open(p) as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            pass
    return None


def write_state(s):
    # Atomic: rename() replaces the target on littlefs; FAT refuses, so the
    # old one goes first there (read_state then finds the .tmp).
    with open(STATE + ".tmp", "w") as f:
        f.write(json.dumps(s))
    try:
        os.rename(STATE + ".tmp", STATE)
    except OSError:
        os.remove(STATE)
        os.rename(STATE + ".tmp", STATE)


def _stamp():
    try:
        with open(STAMP) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


def _name(path, sha):
    return path.replace("/", ",") + "." + sha[:16]


def _same(a, b):
    # constant time: a wrong signature takes as long however much of it is right
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _mkdir(d):
    if not _exists(d):
        os.mkdir(d)


def _mkdirs(d):
    path = ""
    for part in d.split("/"):
        path += part
        _mkdir(path)
        path += "/"


def _clear(d):
    try:
        for n in os.listdir(d):
            os.remove(d + "/" + n)
    except OSError:
        pass


def _mem():
    gc.collect()
    return gc.mem_alloc()
