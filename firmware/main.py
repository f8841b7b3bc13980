# The node's entry point: /main.py on a board. On the host board (from the
# repository root):
#   MICROPYPATH=lib:boards/host:.frozen micropython firmware/main.py --id n1
# A config error stops the node with the field named; anything else that
# ends the node (reboot command, deep sleep, a crash) boots it again.
import asyncio
import gc
import json
import os
import sys


def main():
    _lib_first()
    keep = list(sys.modules)
    while True:
        if ota_boot():   # other files now: load the modules again from them
            for k in list(sys.modules):
                if k not in keep:
                    del sys.modules[k]
            gc.collect()
        rc = boot()
        if rc is not None:
            return rc


def _lib_first():
    # A board searches .frozen before /lib; but what a deploy or an update put in
    # /lib is newer than the image (which may freeze the same modules): it wins.
    p = sys.path
    for d in ("/lib", "lib"):
        if ".frozen" in p and d in p and p.index(d) > p.index(".frozen"):
            p.remove(d)
            p.insert(p.index(".frozen"), d)


def boot():
    """One boot (its modules live only in here); an exit code to stop, None to boot again."""
    try:
        import board
        from config import load
        from node import Node, log
    except Exception as e:   # an update that cannot even be imported
        if ota_failed("import: " + repr(e)):
            return None
        raise
    try:
        cfg = load(*board.config(), auto_id=board.NAME + "-" + board.uid())
    except (OSError, ValueError) as e:   # ConfigError is a ValueError
        log("config:", e)
        return 2
    try:
        ms = asyncio.run(Node(cfg, board).run())
    except KeyboardInterrupt:
        log("stopped")
        return 1
    except Exception as e:  # a bug: report it and boot again, as a watchdog would
        log("crashed:", repr(e))
        if hasattr(sys, "print_exception"):
            sys.print_exception(e)
        if ota_failed("crashed: " + repr(e)):
            return None
        ms = 5000
    if ms:
        board.deep_sleep(ms)
    else:
        board.reset()
    return None


# ---- over-the-air updates: the boot half (firmware/ota.py stages the files) ----
#
# ota.d/state is a journal, replaced only by an atomic rename, that says which
# step the update is at; nothing is imported from the files it moves until it
# is done, so a boot sees the old version or the new one, never a mix:
#   swap   the new files are verified in ota.d/new/: move each old file to
#          ota.d/old/, the new one in its place (both renames; a step done
#          before a power cut is seen and skipped), then -> trial
#   trial  the new version runs; the node confirms it once it reaches the
#          broker. A second boot in trial (it crashed or hung), a failed
#          import or the node giving up after trial_s -> undo
#   undo   put every ota.d/old/ file back, remove the added ones -> rolled back
# The node reports "confirmed" or "rolled back" and removes the journal.
_STATE = "ota.d/state"
_cut = [None]   # tests: a power cut after this many steps (file ota.d/cut)


def ota_boot():
    """Complete or undo an update in progress; True if files changed."""
    s = _ota_read()
    if not s:
        return False
    try:
        with open("ota.d/cut") as f:
            _cut[0] = int(f.read())
        os.remove("ota.d/cut")
    except (OSError, ValueError):
        pass
    if s["phase"] == "trial":
        s["boots"] += 1
        if s["boots"] > 1:
            s["phase"], s["why"] = "undo", "rebooted before reaching the broker"
        _ota_write(s)
    ph = s["phase"]
    if ph not in ("swap", "undo"):
        return False
    for p, name, had in s["files"]:
        old = "ota.d/old/" + p.replace("/", ",")
        new = "ota.d/new/" + name
        if ph == "swap":
            if had and _exists(p) and not _exists(old):
                _step(os.rename, p, old)
            if name and _exists(new):
                if _exists(p):
                    _step(os.remove, p)
                _step(os.rename, new, p)
        elif _exists(old):
            if _exists(p):
                _step(os.remove, p)
            _step(os.rename, old, p)
        elif not had and _exists(p):
            _step(os.remove, p)
    if ph == "swap":
        s["phase"], s["boots"] = "trial", 1
    else:
        s = {"phase": "rolled back", "version": s["version"], "built": s["built"],
             "why": s["why"]}
    _ota_write(s)
    return True


def ota_failed(why):
    """The new version failed on trial: True if it is to be rolled back."""
    s = _ota_read()
    if not s or s["phase"] != "trial":
        return False
    s["phase"], s["why"] = "undo", why
    _ota_write(s)
    return True


def _ota_read():
    for p in (_STATE, _STATE + ".tmp"):   # the .tmp: see _ota_write
        try:
            with open(p) as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            pass
    return None


def _ota_write(s):
    # rename() replaces the target on littlefs; FAT refuses, so the old one goes first
    with open(_STATE + ".tmp", "w") as f:
        f.write(json.dumps(s))
    try:
        _step(os.rename, _STATE + ".tmp", _STATE)
    except OSError:
        os.remove(_STATE)
        _step(os.rename, _STATE + ".tmp", _STATE)


def _step(f, *args):
    f(*args)
    if _cut[0] is not None:
        _cut[0] -= 1
        if _cut[0] <= 0:
            print("mqnode: ota: power cut (test)")
            sys.exit(42)   # tests/ota: the process ends here, as at a power cut


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    rc = main()
    # Run as a script (the host board from a shell), the exit code says why it
    # stopped. On a board main.py just ends and leaves the REPL to the user:
    # SystemExit there would be a soft reset, which runs main.py again.
    if rc and sys.argv and sys.argv[0].endswith("main.py"):
        sys.exit(rc)
