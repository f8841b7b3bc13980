#!/usr/bin/env python3
"""An emulated Raspberry Pi Pico W: the real firmware UF2 under rp2040js, behind a pty.

    python tests/rp2emu/rp2board.py --uf2 build/rp2_pico_w/firmware.uf2 --flash flash.bin \\
        --link ./ttyPico [--uart0-link ./ttyUART0]

prints the pty path and runs until SIGTERM/SIGINT. From Python:

    with EmulatedBoard(uf2, flash=tmp/"flash.bin", link=tmp/"ttyPico") as pico:
        subprocess.run(["mpremote", "connect", pico.device, "exec", "print(1)"])

rp2emu.mjs (Node) runs one boot of the chip: its stdin/stdout are the USB CDC serial port.
This module keeps a pty for the host (mpremote, or anything that opens a serial port) and
relays it to the current boot, so the port outlives the chip's resets: a watchdog reset
(machine.reset(), exit status 42) starts the next boot on the same flash file. The firmware
does the rest itself, as on a board: soft reset, raw REPL, Ctrl-C.

With uart0 the board's UART0 is a second pty (for pppd: network.PPP on the board).

Connect through the symlink (`link`), not /dev/pts/N: mpremote 1.29 treats /dev/pts/* as a
QEMU pty and then reads without any timeout.
"""

import argparse
import errno
import fcntl
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

HERE = Path(__file__).resolve().parent
EMULATOR = HERE / "rp2emu.mjs"
REPO = HERE.parent.parent
BOOTROM_NAME = "rp2040-bootrom-b1.mjs"
EXIT_RESET = 42
PROMPT = b">>> "
OUT_LIMIT = 1 << 20          # undelivered output kept for the host, like a UART buffer
CONSOLE_LIMIT = 4 << 20      # console capture
STDERR_LIMIT = 64 << 10
TIOCPKT_FLUSHREAD = 1


class BoardError(RuntimeError):
    """The emulated board could not be started or stopped booting."""


def _set_nonblocking(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _host_pty(link):
    """(master, slave, device): a raw pty in packet mode (to see pyserial's input flushes);
    the slave stays open here so a client closing it never hangs the master up."""
    m, s = os.openpty()
    tty.setraw(s)
    fcntl.ioctl(m, termios.TIOCPKT, struct.pack("i", 1))
    _set_nonblocking(m)
    path = os.ttyname(s)
    if link:
        link = Path(link)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)
        return m, s, str(link)
    return m, s, path


def bootrom():
    """The RP2040 B1 bootrom (rp2040js's npm package lacks it), read where it is and never
    copied: the vendor folder tools/firmware.py uses ($MQNODE_VENDOR, or ../shared/vendor)."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import firmware
    finally:
        sys.path.pop(0)
    d = firmware.vendor_dir()
    if d is None or not (d / BOOTROM_NAME).is_file():
        raise BoardError(f"RP2040 bootrom {BOOTROM_NAME} not found (in {d or '../shared/vendor'}"
                         "; set MQNODE_VENDOR to the folder that has it)")
    return d / BOOTROM_NAME


def check_emulator():
    """Raise BoardError naming what is missing to run rp2emu.mjs (node, npm ci, bootrom)."""
    if not shutil.which("node"):
        raise BoardError("node not found: install Node.js >= 18 (Debian: apt-get install nodejs)")
    if not (HERE / "node_modules" / "rp2040js").is_dir():
        raise BoardError(f"rp2040js is not installed: run `npm ci` in {HERE} (make rp2emu)")
    return bootrom()


class EmulatedBoard:
    """One emulated Pico W: one flash file, one host pty, one Node process per boot."""

    def __init__(self, uf2, flash, link=None, uart0=False, uart0_link=None, log=None,
                 boot_timeout=60.0):
        self.uf2 = Path(uf2).resolve()
        self.flash = Path(flash).resolve()
        self.link = link
        self.uart0 = uart0 or uart0_link is not None
        self.uart0_link = uart0_link
        self.log_path = Path(log) if log else None
        self.boot_timeout = boot_timeout
        self.device = None           # the host's serial port (link, or the pty path)
        self.uart0_device = None     # UART0's pty (link, or the pty path)
        self.boots = 0
        self.dead = None             # why the board stopped, if it did
        self._proc = None
        self._fds = {}               # name -> fd owned here
        self._sock = None            # our end of the UART0 socket pair
        self._to_host = bytearray()
        self._to_board = bytearray()
        self._to_uart = bytearray()
        self._to_sock = bytearray()
        self._console = bytearray()
        self._console_len = 0
        self._stderr = bytearray()
        self._log = None
        self._cond = threading.Condition()
        self._thread = None
        self._stopping = False
        self._killed = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<EmulatedBoard {self.device} flash={self.flash} boots={self.boots}>"

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    # ------------------------------------------------------------------ public API

    def start(self):
        """Boot the board and return once its REPL printed `>>> ` (BoardError if not within
        boot_timeout, with the last console lines)."""
        self._bootrom = check_emulator()
        if not self.uf2.is_file():
            raise BoardError(f"firmware not found: {self.uf2} (make firmware BOARD=rp2_pico_w)")
        if self.log_path:
            self._log = open(self.log_path, "ab", buffering=0)
        hm, hs, self.device = _host_pty(self.link)
        self._fds.update(host=hm, host_slave=hs)
        if self.uart0:
            um, us, self.uart0_device = _host_pty(self.uart0_link)
            self._fds.update(uart=um, uart_slave=us)
        wr, ww = os.pipe()
        _set_nonblocking(wr)
        self._fds.update(wake_r=wr, wake_w=ww)
        mark = self.console_mark()
        self._spawn()
        self._thread = threading.Thread(target=self._loop, name="rp2board", daemon=True)
        self._thread.start()
        if not self.wait_for_console(PROMPT, self.boot_timeout, since=mark):
            reason = self.dead or f"no >>> prompt within {self.boot_timeout:.0f} s"
            tail = self.last_lines()
            self.stop()
            raise BoardError(f"emulated Pico W did not boot: {reason}; last console lines:\n"
                             f"{tail}")
        return self

    def stop(self):
        """Stop the relay and the emulator (by its pid) and close the ptys."""
        self._stopping = True
        self._wake()
        if self._thread:
            self._thread.join(timeout=10)
            self._thread = None
        self._end_proc(signal.SIGTERM)
        for name in list(self._fds):
            try:
                os.close(self._fds.pop(name))
            except OSError:
                pass
        if self._sock:
            self._sock.close()
            self._sock = None
        for link in (self.link, self.uart0_link):
            if link and Path(link).is_symlink():
                Path(link).unlink()
        if self._log:
            self._log.close()
            self._log = None

    def reset(self):
        """The RUN pin pulled low: this boot ends at once and the next starts (same flash)."""
        self._end_proc(signal.SIGKILL)   # the relay sees it gone and boots again

    def kill(self):
        """Power cut: SIGKILL the emulator and boot no more (the ptys stay open, silent)."""
        self._killed = True
        self._end_proc(signal.SIGKILL)

    def console_text(self):
        with self._cond:
            return bytes(self._console).decode("utf-8", "replace")

    def console_mark(self):
        """A position in the console stream, for wait_for_console(since=...)."""
        with self._cond:
            return self._console_len

    def console_since(self, mark):
        with self._cond:
            start = max(0, len(self._console) - (self._console_len - mark))
            return bytes(self._console[start:]).decode("utf-8", "replace")

    def last_lines(self, n=15):
        """The last n lines the board printed, then what the emulator said on stderr."""
        lines = self.console_text().splitlines()[-n:]
        err = bytes(self._stderr).decode("utf-8", "replace").strip()
        return "\n".join(lines) + (f"\n[emulator stderr]\n{err}" if err else "")

    def wait_for_console(self, text, timeout=20.0, since=0):
        """True once `text` was printed at or after position `since`; False on timeout."""
        if isinstance(text, str):
            text = text.encode()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = len(self._console) - (self._console_len - since)
                if text in self._console[max(0, start):]:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self.dead:
                    return False
                self._cond.wait(min(left, 0.5))

    # ------------------------------------------------------------------ the emulator

    def _spawn(self):
        cmd = ["node", str(EMULATOR), "--uf2", str(self.uf2), "--bootrom", str(self._bootrom),
               "--flash", str(self.flash)]
        pass_fds = ()
        if self.uart0:
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            if self._sock:
                self._sock.close()
            self._sock = ours
            cmd += ["--uart0-fd", str(theirs.fileno())]
            pass_fds = (theirs.fileno(),)
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=pass_fds,
                                    start_new_session=True, cwd=str(HERE))
        finally:
            if self.uart0:
                theirs.close()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            _set_nonblocking(f.fileno())
        self._proc = proc
        self._to_board.clear()
        self._to_sock.clear()
        self.boots += 1

    def _end_proc(self, sig):
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def _proc_gone(self):
        proc, self._proc = self._proc, None
        rc = proc.wait()
        while True:   # what it said last (its reason to exit) is still in the pipe
            data = self._read(proc.stderr.fileno())
            if not data:
                break
            self._stderr += data
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        if self._stopping or self._killed:
            return
        if rc in (EXIT_RESET, -signal.SIGKILL):
            self._spawn()   # the chip was reset: the next boot, same flash
            return
        with self._cond:
            self.dead = f"emulator exited with status {rc}"
            self._cond.notify_all()

    def _wake(self):
        fd = self._fds.get("wake_w")
        if fd is not None:
            try:
                os.write(fd, b"x")
            except OSError:
                pass

    # ------------------------------------------------------------------ relay

    def _board_output(self, data):
        if self._log:
            self._log.write(data)
        with self._cond:
            self._console += data
            self._console_len += len(data)
            if len(self._console) > CONSOLE_LIMIT:
                del self._console[: len(self._console) - CONSOLE_LIMIT]
            self._cond.notify_all()
        self._to_host += data
        if len(self._to_host) > OUT_LIMIT:
            del self._to_host[: len(self._to_host) - OUT_LIMIT]

    @staticmethod
    def _write(fd, buf):
        try:
            n = os.write(fd, buf)
            del buf[:n]
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in (errno.EIO, errno.EPIPE):
                raise
            buf.clear()

    def _read(self, fd):
        try:
            return os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            if e.errno == errno.EIO:
                return None
            raise

    def _loop(self):
        try:
            while not self._stopping:
                host, uart, wake = self._fds["host"], self._fds.get("uart"), self._fds["wake_r"]
                proc = self._proc
                rl, wl = [host, wake], []
                if proc:
                    rl += [proc.stdout.fileno(), proc.stderr.fileno()]
                    if self._to_board:
                        wl.append(proc.stdin.fileno())
                if self._to_host:
                    wl.append(host)
                if uart is not None:
                    rl.append(uart)
                    if self._to_uart:
                        wl.append(uart)
                    if self._sock and proc:
                        rl.append(self._sock)
                        if self._to_sock:
                            wl.append(self._sock)
                r, w, _ = select.select(rl, wl, [], 1.0)
                if wake in r:
                    os.read(wake, 64)
                    continue
                if host in r:
                    pkt = self._read(host)
                    if pkt and pkt[0] == 0:
                        self._to_board += pkt[1:]
                    elif pkt and pkt[0] & TIOCPKT_FLUSHREAD:
                        self._to_host.clear()   # the client flushed its input: ours is stale
                if uart is not None and uart in r:
                    pkt = self._read(uart)
                    if pkt and pkt[0] == 0:
                        self._to_sock += pkt[1:]
                if self._sock and self._sock in r:
                    try:
                        data = self._sock.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:     # this boot's emulator is gone (killed, reset)
                        data = None
                        self._sock.close()
                        self._sock = None
                    if data:
                        self._to_uart += data
                if proc and proc.stderr.fileno() in r:
                    data = self._read(proc.stderr.fileno())
                    if data:
                        self._stderr += data
                        del self._stderr[: max(0, len(self._stderr) - STDERR_LIMIT)]
                if proc and proc.stdout.fileno() in r:
                    data = self._read(proc.stdout.fileno())
                    if data:
                        self._board_output(data)
                    elif data == b"":
                        self._proc_gone()
                        continue
                if self._proc and self._to_board:
                    self._write(self._proc.stdin.fileno(), self._to_board)
                if self._to_host:
                    self._write(host, self._to_host)
                if uart is not None and self._to_uart:
                    self._write(uart, self._to_uart)
                if self._sock and self._to_sock:
                    try:
                        n = self._sock.send(self._to_sock)
                        del self._to_sock[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._to_sock.clear()
        except Exception as e:  # keep the reason visible: the board is dead
            with self._cond:
                self.dead = f"relay loop crashed: {e!r}"
                self._cond.notify_all()
            raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uf2", required=True, help="the firmware image (firmware.uf2)")
    ap.add_argument("--flash", required=True, help="the flash chip's 2 MiB, kept in this file")
    ap.add_argument("--link", help="create this symlink to the serial port's pty")
    ap.add_argument("--uart0-link", help="UART0 on a second pty, with this symlink to it")
    ap.add_argument("--log", help="append everything the board prints to this file")
    args = ap.parse_args(argv)
    board = EmulatedBoard(args.uf2, args.flash, link=args.link, uart0_link=args.uart0_link,
                          log=args.log)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        board.start()
    except BoardError as e:
        print(f"rp2board: {e}", file=sys.stderr)
        return 1
    print(board.device, flush=True)
    try:
        while not stop.wait(0.5):
            if board.dead:
                print(f"rp2board: {board.dead}\n{board.last_lines()}", file=sys.stderr)
                return 1
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
