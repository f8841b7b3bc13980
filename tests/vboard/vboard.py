#!/usr/bin/env python3
"""Virtual board: the MicroPython unix port behind a pty, looking like a real board to mpremote.

    python tests/vboard/vboard.py --flash DIR --link PATH [--log FILE] [--heapsize 256K]
                                  [--platform esp32]

prints the pty slave path on stdout and runs until SIGTERM/SIGINT. Or, from Python:

    with VirtualBoard(flash_dir, link=tmp/"ttyVB", log=tmp/"console.log") as vb:
        subprocess.run(["mpremote", "connect", vb.device, "exec", "print(1)"])

Connect through the symlink (`link`), not /dev/pts/N: mpremote 1.29 treats /dev/pts/* as a
QEMU pty and then reads without any timeout.

How it works (see /work/shared/notes/virtual-board.md):
  * host side: our own pty pair; we keep the slave fd open so mpremote closing the port never
    hangs up the master. The master runs in packet mode (TIOCPKT) so we see when the client
    flushes its input queue (pyserial does on open) and drop our stale output too.
  * one interpreter process == one boot: `micropython -X heapsize=H -i vb_boot.py`, cwd = flash,
    on a second, fully raw pty (no OPOST/ONLCR, no ISIG, no ECHO) that is its controlling tty.
    vb_boot.py mounts the flash dir at "/", installs the machine proxy, runs boot.py (+ main.py
    in friendly boots) and prints markers (MARK_*) that we strip.
  * soft reset: the child exits (raw-REPL Ctrl-D, sys.exit(), machine.soft_reset()); we print
    "MPY: soft reboot\\r\\n" and respawn in the REPL mode it was in. Respawning into the raw
    REPL waits for the boot to finish, sends Ctrl-A and hides the friendly banner, so the host
    sees exactly "soft reboot\\r\\n" [boot.py output] "raw REPL; CTRL-B to exit\\r\\n>".
  * hard reset: exit code 42 (machine.reset() in the proxy) or death by a signal: respawn in
    the friendly REPL, which runs boot.py and main.py.
  * Ctrl-C: for each 0x03 from the host, if the child has a SIGINT handler installed (SigCgt in
    /proc/PID/status: MicroPython is running code with Ctrl-C enabled) send SIGINT (at most one
    per 0.2 s) and drop the byte; otherwise forward it as data (idle REPL, kbd_intr(-1) code).
  * output nobody reads is dropped beyond 1 MiB; --log appends everything the board printed.
"""

import argparse
import errno
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOT_SCRIPT = HERE / "vb_boot.py"

MARK_PREFIX = b"\x1b]vb:"
MARK_END = b"\x07"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()"'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
HARD_RESET_CODE = 42
OUT_LIMIT = 1 << 20          # undelivered output kept for the host, like a UART buffer
CONSOLE_LIMIT = 4 << 20      # in-memory console capture (when no log file)
SIGINT_INTERVAL = 0.2
MAX_FAILED_BOOTS = 3

TIOCPKT_FLUSHREAD = 1


def default_micropython():
    p = Path(sys.executable).parent / "micropython"
    if p.exists():
        return str(p)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError("micropython not found next to sys.executable or on PATH")
    return found


def _set_nonblocking(fd):
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)


def _partial_suffix(buf, token):
    """Length of the longest suffix of buf that is a proper prefix of token."""
    n = min(len(buf), len(token) - 1)
    while n > 0:
        if buf.endswith(token[:n]):
            return n
        n -= 1
    return 0


def sigint_caught(pid):
    """True if process `pid` has a handler installed for SIGINT (procfs SigCgt)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigCgt:"):
                    mask = int(line.split()[1], 16)
                    return bool(mask & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError, IndexError):
        pass
    return False


class VirtualBoard:
    """One virtual board: one flash dir, one host pty, one interpreter process at a time."""

    def __init__(self, flash_dir, link=None, log=None, heapsize="256K", env=None,
                 platform=None, micropython=None, boot_timeout=30.0):
        self.flash_dir = Path(flash_dir).resolve()
        self.link = Path(link) if link else None
        self.log_path = Path(log) if log else None
        self.heapsize = str(heapsize)
        self.extra_env = dict(env or {})
        if platform:
            self.extra_env.setdefault("VB_PLATFORM", platform)
        self.micropython = micropython or default_micropython()
        self.boot_timeout = boot_timeout

        self.device = None          # link path if given, else the pty slave path
        self.slave_path = None
        self.boots = 0              # interpreter starts
        self.hard_resets = 0
        self.soft_resets = 0
        self.mode = "friendly"      # REPL mode of the current boot: "friendly" | "raw"
        self.dead = None            # reason string if the board stopped booting

        self._hm = self._hs = None
        self._cm = None
        self._proc = None
        self._phase = "off"         # starting | booting | hiding | running | exiting | off
        self._exit_code = None
        self._pend = bytearray()    # child output not yet classified
        self._tail = b""            # last bytes printed (REPL mode tracking)
        self._to_host = bytearray()
        self._to_child = bytearray()
        self._hostq = bytearray()   # host input held while the board is (re)booting
        self._last_sigint = 0.0
        self._failed_boots = 0
        self._thread = None
        self._wake_r = self._wake_w = None
        self._stopping = False
        self._cond = threading.Condition()
        self._console = bytearray()
        self._console_len = 0       # total bytes ever printed (monotonic)
        self._log = None
        self._log_start = 0

    # ------------------------------------------------------------------ public API

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<VirtualBoard {self.device} flash={self.flash_dir} boots={self.boots}>"

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def start(self):
        """Create the ptys, boot the board (hard reset) and return once the host pty is
        ready and the first interpreter is running its bootstrap."""
        if self._thread:
            return self
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path:
            self._log = open(self.log_path, "ab", buffering=0)
            self._log_start = self._log.tell()
        self._hm, self._hs = os.openpty()
        tty.setraw(self._hs)
        fcntl.ioctl(self._hm, termios.TIOCPKT, struct.pack("i", 1))
        _set_nonblocking(self._hm)
        self.slave_path = os.ttyname(self._hs)
        if self.link:
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.slave_path)
            self.device = str(self.link)
        else:
            self.device = self.slave_path
        self._wake_r, self._wake_w = os.pipe()
        _set_nonblocking(self._wake_r)
        self._spawn("friendly", "hard")
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.boot_timeout
        with self._cond:
            while self._phase == "starting" and not self.dead:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        if self.dead or self._phase == "starting":
            reason = self.dead or f"no bootstrap marker within {self.boot_timeout}s"
            out = self.console_text()
            self.stop()
            raise RuntimeError(f"virtual board did not boot: {reason}\n{out}")
        return self

    def stop(self):
        """Stop the relay thread, kill the interpreter (by pid) and close everything."""
        self._stopping = True
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=10)
            self._thread = None
        self._kill_child()
        for name in ("_cm", "_hm", "_hs", "_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)
        if self.link and self.link.is_symlink():
            try:
                if os.readlink(self.link) == self.slave_path:
                    self.link.unlink()
            except OSError:
                pass
        if self._log:
            self._log.close()
            self._log = None
        self._phase = "off"

    def console_bytes(self):
        """Everything the board printed since start() (from the log file if there is one)."""
        if self.log_path and self.log_path.exists():
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read()
        with self._cond:
            return bytes(self._console)

    def console_text(self):
        return self.console_bytes().decode("utf-8", "replace")

    def console_since(self, mark):
        """Text printed at or after console position `mark` (see console_mark)."""
        with self._cond:
            start = max(0, len(self._console) - (self._console_len - mark))
            return bytes(self._console[start:]).decode("utf-8", "replace")

    def console_mark(self):
        """A position in the console stream, for wait_for_console(since=...)."""
        with self._cond:
            return self._console_len

    def wait_for_console(self, text, timeout=20.0, since=0):
        """Wait until `text` (str or bytes) was printed at or after position `since`.
        Returns True, or False on timeout."""
        if isinstance(text, str):
            text = text.encode()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = len(self._console) - (self._console_len - since)
                if text in self._console[max(0, start):]:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(min(left, 0.5))

    def wait_idle(self, timeout=20.0):
        """Wait until the current boot has finished (REPL prompt reached)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._phase != "running":
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    # ------------------------------------------------------------------ child process

    def _spawn(self, mode, kind):
        """Start one interpreter process = one boot, in REPL `mode` after a `kind` reset."""
        cm, cs = os.openpty()
        tty.setraw(cs)  # fully raw: no OPOST/ONLCR, no ISIG, no ECHO, no ICRNL
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        env.update({k: str(v) for k, v in self.extra_env.items()})
        env.update({
            "VB_FLASH": str(self.flash_dir),
            "VB_MODE": mode,
            "VB_BOOT": kind,
        })

        def make_ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            proc = subprocess.Popen(
                [self.micropython, "-X", f"heapsize={self.heapsize}", "-i", str(BOOT_SCRIPT)],
                stdin=cs, stdout=cs, stderr=cs, cwd=str(self.flash_dir), env=env,
                start_new_session=True, preexec_fn=make_ctty, close_fds=True,
            )
        finally:
            os.close(cs)
        _set_nonblocking(cm)
        with self._cond:
            self._cm = cm
            self._proc = proc
            self.mode = mode
            self._phase = "starting"
            self._exit_code = None
            self._pend = bytearray()
            self._tail = b""
            self._to_child = bytearray()
            self.boots += 1
            if kind == "hard":
                self.hard_resets += 1
            else:
                self.soft_resets += 1
            self._cond.notify_all()

    def _kill_child(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def _child_gone(self):
        """The interpreter closed its pty: decide soft or hard reset and boot again."""
        proc = self._proc
        rc = None
        if proc is not None:
            try:
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rc = self._kill_child()
        self._proc = None
        if self._cm is not None:
            os.close(self._cm)
            self._cm = None
        phase = self._phase
        if phase == "starting" and self._pend:
            self._emit(bytes(self._pend))   # e.g. a crash before the bootstrap ran
        self._pend = bytearray()
        if self._stopping:
            return
        if phase == "starting":
            self._failed_boots += 1
            if self._failed_boots >= MAX_FAILED_BOOTS:
                with self._cond:
                    self.dead = f"interpreter exited with {rc} before the bootstrap ran"
                    self._phase = "off"
                    self._cond.notify_all()
                return
        else:
            self._failed_boots = 0
        code = self._exit_code if self._exit_code is not None else rc
        if code is None or code == HARD_RESET_CODE or code < 0:
            self._spawn("friendly", "hard")
        else:
            self._emit(SOFT_REBOOT)
            self._spawn(self.mode, "soft")

    # ------------------------------------------------------------------ output handling

    def _emit(self, data):
        """Board -> host: record on the console and queue for the pty (bounded)."""
        if not data:
            return
        data = bytes(data)
        if self._phase in ("booting", "running"):
            # track the REPL mode the board is in (for the next soft reboot)
            window = self._tail + data
            r, f = window.rfind(RAW_BANNER), window.rfind(FRIENDLY_BANNER)
            if r >= 0 or f >= 0:
                self.mode = "raw" if r > f else "friendly"
            self._tail = window[-64:]
        if self._log:
            try:
                self._log.write(data)
            except OSError:
                pass
        with self._cond:
            self._console += data
            self._console_len += len(data)
            if len(self._console) > CONSOLE_LIMIT:
                del self._console[: len(self._console) - CONSOLE_LIMIT]
            self._cond.notify_all()
        self._to_host += data
        if len(self._to_host) > OUT_LIMIT:
            del self._to_host[: len(self._to_host) - OUT_LIMIT]

    def _set_phase(self, phase):
        with self._cond:
            self._phase = phase
            self._cond.notify_all()
        if phase in ("booting", "running") and self._hostq:
            if phase == "running" or self.mode == "friendly":
                q, self._hostq = bytes(self._hostq), bytearray()
                self._host_input(q)

    def _child_output(self, data):
        self._pend += data
        while self._pend:
            phase = self._phase
            pend = self._pend
            if phase == "exiting":
                self._pend = bytearray()
                return
            if phase == "running":
                data, self._pend = bytes(pend), bytearray()
                self._emit(data)
                return
            if phase == "hiding":
                i = pend.find(RAW_BANNER)
                if i < 0:
                    keep = len(RAW_BANNER) - 1
                    if len(pend) > keep:
                        del pend[: len(pend) - keep]
                    return
                del pend[:i]
                self.mode = "raw"
                self._set_phase("running")
                continue
            # starting / booting: look for markers
            i = pend.find(MARK_PREFIX)
            if i < 0:
                if phase == "booting":
                    n = len(pend) - _partial_suffix(pend, MARK_PREFIX)
                    self._emit(pend[:n])
                    del pend[:n]
                return
            j = pend.find(MARK_END, i)
            if j < 0:
                if len(pend) - i > 40:      # not one of ours after all
                    if phase == "booting":
                        self._emit(pend[: i + 1])
                    del pend[: i + 1]
                    continue
                if phase == "booting":
                    self._emit(pend[:i])
                    del pend[:i]
                return
            name = bytes(pend[i + len(MARK_PREFIX): j])
            self._emit(pend[:i])
            del pend[: j + 1]
            if name == b"start":
                self._set_phase("booting")
            elif name == b"ready":
                if self.mode == "raw":
                    self._to_child += b"\x01"
                    self._set_phase("hiding")
                else:
                    self._set_phase("running")
            elif name.startswith(b"exit:"):
                try:
                    self._exit_code = int(name[5:])
                except ValueError:
                    self._exit_code = 1
                self._set_phase("exiting")
                if self._proc is not None and self._proc.poll() is None:
                    os.kill(self._proc.pid, signal.SIGKILL)
            # unknown markers are dropped

    # ------------------------------------------------------------------ input handling

    def _host_input(self, data):
        """Host -> board. Queued while (re)booting; 0x03 becomes SIGINT when code runs."""
        phase = self._phase
        if phase == "booting" and self.mode == "raw":
            # rebooting into the raw REPL: hold data back until the raw banner was shown,
            # but let Ctrl-C interrupt a boot.py that does not finish (as on a board)
            for k, part in enumerate(data.split(b"\x03")):
                if k > 0 and not self._interrupt():
                    self._hostq += b"\x03"
                self._hostq += part
            return
        if phase not in ("booting", "running"):
            self._hostq += data
            return
        for k, part in enumerate(data.split(b"\x03")):
            if k > 0 and not self._interrupt():
                self._to_child += b"\x03"
            self._to_child += part
        self._flush_child()

    def _interrupt(self):
        """Handle one Ctrl-C like a board's UART: if MicroPython is running code with Ctrl-C
        enabled (SIGINT handler installed), deliver SIGINT (at most one per SIGINT_INTERVAL)
        and return True (byte consumed); else return False (the byte is data)."""
        proc = self._proc
        if proc is None or not sigint_caught(proc.pid):
            return False
        now = time.monotonic()
        if now - self._last_sigint >= SIGINT_INTERVAL:
            self._last_sigint = now
            try:
                os.kill(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        return True

    def _flush_child(self):
        if self._to_child and self._cm is not None:
            try:
                n = os.write(self._cm, self._to_child)
                del self._to_child[:n]
            except BlockingIOError:
                pass
            except OSError:
                pass    # child gone; EOF handling follows

    def _flush_host(self):
        if self._to_host:
            try:
                n = os.write(self._hm, self._to_host)
                del self._to_host[:n]
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno != errno.EIO:
                    raise

    # ------------------------------------------------------------------ relay loop

    def _loop(self):
        try:
            while not self._stopping:
                rl = [self._hm, self._wake_r]
                wl = []
                if self._cm is not None:
                    rl.append(self._cm)
                    if self._to_child:
                        wl.append(self._cm)
                if self._to_host:
                    wl.append(self._hm)
                r, w, _ = select.select(rl, wl, [], 1.0)
                if self._wake_r in r:
                    try:
                        os.read(self._wake_r, 64)
                    except BlockingIOError:
                        pass
                    continue
                if self._hm in r:
                    try:
                        pkt = os.read(self._hm, 65536)
                    except (BlockingIOError, InterruptedError):
                        pkt = b""
                    if pkt:
                        if pkt[0] == 0:
                            self._host_input(pkt[1:])
                        elif pkt[0] & TIOCPKT_FLUSHREAD:
                            # the client flushed its input queue (pyserial does on open):
                            # our undelivered output is stale as well
                            self._to_host.clear()
                if self._cm is not None and self._cm in r:
                    try:
                        data = os.read(self._cm, 65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data:
                        self._child_output(data)
                    elif data == b"":
                        self._child_gone()
                if self._cm is not None and self._to_child:
                    self._flush_child()
                if self._to_host:
                    self._flush_host()
        except Exception as e:  # keep the reason visible; the board is dead
            with self._cond:
                self.dead = f"relay loop crashed: {e!r}"
                self._cond.notify_all()
            print(f"vboard: relay loop crashed: {e!r}", file=sys.stderr)
            raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flash", required=True, help="directory that is the board's flash ('/')")
    ap.add_argument("--link", help="create this symlink to the pty slave (connect through it)")
    ap.add_argument("--log", help="append everything the board prints to this file")
    ap.add_argument("--heapsize", default="256K")
    ap.add_argument("--platform", help="make `import sys` report this sys.platform (shim)")
    ap.add_argument("--micropython", help="micropython executable (default: next to python)")
    args = ap.parse_args(argv)

    board = VirtualBoard(args.flash, link=args.link, log=args.log, heapsize=args.heapsize,
                         platform=args.platform, micropython=args.micropython)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    board.start()
    print(board.slave_path, flush=True)
    if board.link:
        print(f"vboard: {board.link} -> {board.slave_path}, flash {board.flash_dir}",
              file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            if board.dead:
                print(f"vboard: {board.dead}", file=sys.stderr)
                return 1
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
