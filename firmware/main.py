# The node's entry point: /main.py on a board. On the host board (from the
# repository root):
#   MICROPYPATH=lib:boards/host:.frozen micropython firmware/main.py --id n1
# A config error stops the node with the field named; anything else that
# ends the node (reboot command, deep sleep, a crash) boots it again.
import asyncio
import sys

import board
from config import load
from node import Node, log


def main():
    while True:
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
            ms = 5000
        if ms:
            board.deep_sleep(ms)
        else:
            board.reset()


if __name__ == "__main__":
    rc = main()
    # Run as a script (the host board from a shell), the exit code says why it
    # stopped. On a board main.py just ends and leaves the REPL to the user:
    # SystemExit there would be a soft reset, which runs main.py again.
    if rc and sys.argv and sys.argv[0].endswith("main.py"):
        sys.exit(rc)
