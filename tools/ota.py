"""mqnode ota: update nodes over MQTT (the operator's half; firmware/ota.py is the node's).

    python tools/mqnode.py ota --board B (--node ID [--node ID ...] | --all) --host H
                               [--port 1883] [--prefix mqnode] [--username U]
                               [--secrets secrets.json] [--trial-s 120] [--timeout 30]

Builds the board's files (tools/mqnode.py build), signs the manifest (the new mqnode.json
plus the size of each file) with HMAC-SHA256 under the fleet key (`ota_key` in secrets.json,
or the environment variable MQNODE_OTA_KEY), publishes it to <prefix>/<node>/ota/manifest;
the node compares it with what it runs and asks for the files that changed, which follow in
chunks at QoS 1 on <prefix>/<node>/ota/c/<k>/<offset>, 8 KiB at a time (the node says how
far it got after each: the window). The node verifies each file's sha256, swaps them in at
the next boot, and confirms once the new version reaches the broker, or rolls back. Nodes
are updated in parallel; a line per step and node, then a summary. Exit 0 when every node
runs the new build (or already did), 1 if any failed, 2 usage. The key is never printed.
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHUNK = 1024        # bytes per PUBLISH: well under a node's max_packet (8 KiB)
ACK_BYTES = 8192    # must match firmware/ota.py: the node answers every 8 KiB
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class Failure(Exception):
    pass


def manifest(build_dir, key, trial_s):
    """The signed manifest: 64 hex digits of HMAC-SHA256(key, body), then body (JSON)."""
    stamp = json.loads((Path(build_dir) / "mqnode.json").read_text())
    stamp["sizes"] = {p: (Path(build_dir) / p).stat().st_size for p in stamp["files"]}
    stamp["trial_s"] = trial_s
    body = json.dumps(stamp, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode() + body


def fleet_key(secrets):
    key = os.environ.get("MQNODE_OTA_KEY")
    if secrets:
        try:
            key = json.loads(Path(secrets).read_text()).get("ota_key")
        except (OSError, ValueError) as e:
            raise Failure(f"--secrets {secrets}: cannot read it ({type(e).__name__})")
    if not key or len(key) < 16:
        raise Failure("no fleet key: give --secrets FILE with an ota_key of at least 16 "
                      "characters (or set MQNODE_OTA_KEY)")
    return key


class Updater:
    """One broker connection, one subscription to every node's reply/ota, a task per node."""

    def __init__(self, client, prefix, build_dir, signed, timeout, trial_s, out):
        self.c, self.prefix, self.dir, self.signed = client, prefix, Path(build_dir), signed
        self.timeout, self.trial_s, self.out = timeout, trial_s, out
        self.replies = {}   # node -> [reply dicts not yet read], Event

    def handler(self, msg):
        node = msg.topic[len(self.prefix) + 1:].split("/", 1)[0]
        if node in self.replies:
            try:
                r = json.loads(bytes(msg.payload))
            except ValueError:
                return
            q, ev = self.replies[node]
            q.append(r)
            ev.set()

    def say(self, node, text):
        print(f"{node}: {text}", file=self.out, flush=True)

    async def reply(self, node, timeout=None):
        q, ev = self.replies[node]
        while not q:
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), timeout or self.timeout)
            except asyncio.TimeoutError:
                raise Failure(f"no answer within {timeout or self.timeout:g} s") from None
        r = q.pop(0)
        if not r.get("ok"):
            raise Failure(r.get("error") or r.get("why") or json.dumps(r))
        return r

    async def update(self, node):
        """'updated ...' / 'up to date'; raises Failure with the cause."""
        base = f"{self.prefix}/{node}/"
        await self.c.publish(base + "ota/manifest", self.signed, 1, timeout=self.timeout)
        r = await self.reply(node)
        if r["stage"] == "current":
            return f"up to date (version {r.get('version')})"
        need = r["need"]
        self.say(node, f"runs build {r.get('built')}; sending {len(need)} changed files"
                       + (": " + ", ".join(need) if need else ""))
        for k, path in enumerate(need):
            data = (self.dir / path).read_bytes()
            for off in range(0, len(data), CHUNK) or [0]:
                end = min(off + CHUNK, len(data))
                await self.c.publish(f"{base}ota/c/{k}/{off}", data[off:end], 1,
                                     timeout=self.timeout)
                if end == len(data):
                    r = await self.reply(node)
                    if r.get("file") != path:
                        raise Failure(f"{path}: unexpected answer {r}")
                    self.say(node, f"{path} {len(data)} bytes, sha256 verified")
                elif end % ACK_BYTES == 0:
                    r = await self.reply(node)
                    self.say(node, f"{path} {r.get('pos')}/{len(data)}")
        r = await self.reply(node)
        if r["stage"] != "swap":
            raise Failure(f"unexpected answer {r}")
        self.say(node, "all files staged; the node reboots into the new build")
        r = await self.reply(node, self.trial_s + self.timeout)
        if r["stage"] != "confirmed":
            raise Failure(f"unexpected answer {r}")
        return f"updated to version {r['version']} (built {r['built']}), confirmed"


async def _nodes_online(c, prefix, quiet_s=1.0):
    # every node the monitor would know: a retained status "online" (firmware/node.py)
    found = {}

    def seen(msg):
        if msg.retain:
            found[msg.topic.split("/")[-2]] = bytes(msg.payload)

    await c.subscribe(f"{prefix}/+/status", 1, handler=seen, timeout=10)
    n = -1
    while n != len(found):
        n = len(found)
        await asyncio.sleep(quiet_s)
    await c.unsubscribe(f"{prefix}/+/status", timeout=10)
    return sorted(k for k, v in found.items() if v == b"online")


async def run(a, signed, build_dir, out):
    sys.path.insert(0, str(REPO / "lib"))
    from mqtt import MQTTClient

    c = MQTTClient(a.host, a.port, "", username=a.username,
                   password=os.environ.get("MQNODE_PASSWORD"), backoff=(1, 2))
    try:
        await c.connect(timeout=10)
    except (OSError, asyncio.TimeoutError) as e:
        raise Failure(f"cannot connect to the broker {a.host}:{a.port}: {c.last_error or e!r}")
    try:
        nodes = a.node or await _nodes_online(c, a.prefix)
        if not nodes:
            raise Failure(f"no node is online under {a.prefix}/")
        u = Updater(c, a.prefix, build_dir, signed, a.timeout, a.trial_s, out)
        for n in nodes:
            u.replies[n] = ([], asyncio.Event())
        await c.subscribe(f"{a.prefix}/+/reply/ota", 1, handler=u.handler, timeout=10)

        async def one(n):
            try:
                return await u.update(n), True
            except (Failure, OSError, asyncio.TimeoutError) as e:
                return f"FAILED: {e}", False

        results = await asyncio.gather(*(one(n) for n in nodes))
    finally:
        await c.disconnect()
    for n, (text, _) in zip(nodes, results):
        print(f"{n}: {text}", file=out)
    ok = sum(1 for _, good in results if good)
    print(f"{ok} of {len(nodes)} nodes updated", file=out, flush=True)
    return EXIT_OK if ok == len(nodes) else EXIT_FAIL


def parse_args(argv):
    p = argparse.ArgumentParser(prog="mqnode ota", description=__doc__.split("\n")[0])
    p.add_argument("--board", required=True)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--node", action="append", help="a node id; repeat for several")
    who.add_argument("--all", action="store_true", help="every node online under --prefix")
    p.add_argument("--host", required=True, help="the broker")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default="mqnode", help="the nodes' topic_prefix")
    p.add_argument("--username", help="broker user (password: env MQNODE_PASSWORD)")
    p.add_argument("--secrets", help="secrets.json with the fleet's ota_key")
    p.add_argument("--trial-s", type=int, default=120,
                   help="the new build must reach the broker within this, else it is rolled back")
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for each answer")
    return p.parse_args(argv)


def main(argv=None, out=sys.stdout):
    a = parse_args(argv)
    sys.path.insert(0, str(REPO / "tools"))
    import mqnode
    try:
        key = fleet_key(a.secrets)
        build_dir = REPO / "build" / a.board
        mqnode.build(a.board, build_dir, quiet=True)
        signed = manifest(build_dir, key, a.trial_s)
        return asyncio.run(run(a, signed, build_dir, out))
    except (Failure, mqnode.Failure) as e:
        print(f"mqnode ota: {e}", file=sys.stderr, flush=True)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
