# The node's entry point: /main.py on a board. On the host board (from the
# repository root):
#   MICROPYPATH=lib:boards/host:.frozen micropython firmware/main.py --id n1
# A config error stops the node with the field named; anything else that
# ends the node (reboot command, deep sleep, a crash) boots it again.
import asyncio
import gc
import os
import sys


def main():
    _lib_first()
    keep = list(sys.modules)
    while True:
        ota = _ota()
        if ota and ota.boot():   # other files now: load the modules again from them
            for k in list(sys.modules):
                if k not in keep and k != "otaboot":   # (it counts the steps on: tests)
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
        if _failed("import: " + repr(e)):
            return None
        raise
    try:
        cfg = load(*board.config(), auto_id=board.NAME + "-" + board.uid())
    except (OSError, ValueError) as e:   # ConfigError is a ValueError
        log("config:", e)
        return 2
    # checked once: the checker's functions and schema leave the heap until the next boot
    del sys.modules["config"], load
    try:
        ms = asyncio.run(Node(cfg, board).run())
    except KeyboardInterrupt:
        log("stopped")
        return 1
    except Exception as e:  # a bug: report it and boot again, as a watchdog would
        log("crashed:", repr(e))
        if hasattr(sys, "print_exception"):
            sys.print_exception(e)
        if _failed("crashed: " + repr(e)):
            return None
        ms = 5000
    if ms:
        board.deep_sleep(ms)
    else:
        board.reset()
    return None


def _ota():
    """firmware/otaboot.py while an update is in progress (it has a journal), else None:
    a node that is not being updated never loads it."""
    for p in ("ota.d/state", "ota.d/state.tmp"):
        try:
            os.stat(p)
        except OSError:
            continue
        import otaboot
        return otaboot
    return None


def _failed(why):
    # the new version failed on trial: True if it is to be rolled back
    ota = _ota()
    return bool(ota) and ota.failed(why)


if __name__ == "__main__":
    rc = main()
    # Run as a script (the host board from a shell), the exit code says why it
    # stopped. On a board main.py just ends and leaves the REPL to the user:
    # SystemExit there would be a soft reset, which runs main.py again.
    if rc and sys.argv and sys.argv[0].endswith("main.py"):
        sys.exit(rc)
