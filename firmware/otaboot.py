# Over-the-air updates, the boot half (firmware/ota.py stages the files): main.py
# imports this only while an update is in progress (there is an ota.d/state).
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
import json
import os
import sys

_STATE = "ota.d/state"
_cut = [None]   # tests: a power cut after this many steps (file ota.d/cut)


def boot():
    """Complete or undo an update in progress; True if files changed."""
    s = _read()
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
        _write(s)
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
    _write(s)
    return True


def failed(why):
    """The new version failed on trial: True if it is to be rolled back."""
    s = _read()
    if not s or s["phase"] != "trial":
        return False
    s["phase"], s["why"] = "undo", why
    _write(s)
    return True


def _read():
    for p in (_STATE, _STATE + ".tmp"):   # the .tmp: see _write
        try:
            with open(p) as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            pass
    return None


def _write(s):
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
