"""The virtual board (tests/vboard/) driven by STOCK mpremote, as a deploy tool would drive a
real ESP32/RP2040: every test starts its own VirtualBoard (MicroPython unix port + bootstrap
behind a pty supervisor) on a tmp flash dir and runs `mpremote connect <symlink> ...`.

Design notes: /work/shared/notes/virtual-board.md.
"""

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "vboard"))
from vboard import VirtualBoard  # noqa: E402

MPREMOTE = Path(sys.executable).parent / "mpremote"
VBOARD_PY = REPO / "tests" / "vboard" / "vboard.py"
MPREMOTE_TIMEOUT = 60   # generous: 2 cores, other suites may run concurrently


class Board:
    """A started VirtualBoard plus helpers to run mpremote against it."""

    def __init__(self, tmp_path, **kwargs):
        self.flash = tmp_path / "flash"
        self.host = tmp_path / "host"      # mpremote's cwd: nothing may land here
        self.flash.mkdir()
        self.host.mkdir()
        self.log = tmp_path / "console.log"
        self.vb = VirtualBoard(self.flash, link=tmp_path / "ttyVB", log=self.log, **kwargs)

    def mpremote(self, *args, check=True, timeout=MPREMOTE_TIMEOUT):
        argv = [str(MPREMOTE), "connect", self.vb.device] + [str(a) for a in args]
        try:
            r = subprocess.run(argv, cwd=self.host, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"mpremote {args} timed out after {timeout}s; stdout={e.stdout!r} "
                        f"console tail:\n{self.vb.console_text()[-1500:]}", pytrace=False)
        if check and r.returncode != 0:
            pytest.fail(f"mpremote {args} failed ({r.returncode})\nstdout: {r.stdout}\n"
                        f"stderr: {r.stderr}\nconsole tail:\n{self.vb.console_text()[-1500:]}",
                        pytrace=False)
        return r

    def out(self, *args):
        return self.mpremote(*args).stdout


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def board(tmp_path):
    b = Board(tmp_path)
    b.vb.start()
    # the first boot must be over before a test puts boot.py/main.py into the flash
    assert b.vb.wait_idle(timeout=30), b.vb.console_text()
    try:
        yield b
    finally:
        pid = b.vb.pid
        b.vb.stop()
        assert pid is None or not _pid_alive(pid), "interpreter survived stop()"


def test_exec_and_eval(board):
    assert board.out("exec", "print(6 * 7)").splitlines() == ["42"]
    assert board.out("eval", "'%d-%s' % (40 + 2, 'x')").strip() == "42-x"
    r = board.mpremote("exec", "1/0", check=False)
    assert r.returncode == 1
    assert "ZeroDivisionError" in r.stdout + r.stderr


def test_state_resume_and_implicit_soft_reset(board):
    boots = board.vb.boots
    # within one invocation state persists; the first command soft-resets (new interpreter)
    assert board.out("exec", "vb_state = 41", "exec", "print(vb_state + 1)").split() == ["42"]
    assert board.vb.boots == boots + 1
    # `resume` skips the soft reset: state is kept across invocations
    assert board.out("resume", "exec", "print(vb_state + 1)").split() == ["42"]
    assert board.vb.boots == boots + 1
    # without resume, the implicit soft reset clears it (and the bootstrap's own names)
    out = board.out("exec", "print('vb_state' in globals(), sorted(globals()))")
    assert out.split(None, 1)[0] == "False", out
    assert "_vb_main" not in out and "FlashFS" not in out
    assert board.vb.boots == boots + 2
    assert "soft reboot" in board.vb.console_text()


def test_fs_commands_land_in_flash_dir(board, tmp_path):
    tok = uuid.uuid4().hex[:8]
    name, libname = f"vb_{tok}.py", f"vb_{tok}_x.py"
    src = tmp_path / name
    payload = (f"# {tok}\n" + "".join(f"v{i} = {i * i}\n" for i in range(300))).encode()
    src.write_bytes(payload)

    board.out("fs", "mkdir", ":lib")
    board.out("fs", "cp", src, ":")
    board.out("fs", "cp", src, f":lib/{libname}")
    assert (board.flash / name).read_bytes() == payload
    assert (board.flash / "lib" / libname).read_bytes() == payload
    # ... and nowhere else on the host
    for d in (board.host, Path("/"), Path("/lib"), Path.cwd(), REPO, REPO / "lib"):
        assert not (d / name).exists(), d
        assert not (d / libname).exists(), d

    ls = board.out("fs", "ls")
    assert re.search(rf"^\s*{len(payload)} {name}$", ls, re.M), ls
    assert re.search(r"^\s*0 lib/$", ls, re.M), ls
    ls_lib = board.out("fs", "ls", ":lib")
    assert re.search(rf"^\s*{len(payload)} {libname}$", ls_lib, re.M), ls_lib

    assert board.out("fs", "cat", f":{name}").encode() == payload
    digest = board.out("fs", "sha256sum", f":lib/{libname}").split()
    assert hashlib.sha256(payload).hexdigest() in digest

    # the app imports from /lib like on a board
    assert board.out("exec", f"import {libname[:-3]} as m; print(m.v17)").split() == ["289"]

    board.out("fs", "rm", f":{name}")
    assert not (board.flash / name).exists()
    assert name not in board.out("fs", "ls")
    board.out("fs", "mkdir", ":data")
    assert (board.flash / "data").is_dir()
    r = board.mpremote("fs", "cat", ":missing.txt", check=False)
    assert r.returncode != 0


def test_df_reports_2mib_flash(board):
    (board.flash / "blob.bin").write_bytes(b"\0" * 10000)
    out = board.out("df")
    row = [ln.split() for ln in out.splitlines() if ln.rstrip().endswith(" /")]
    assert row, out
    size, used, avail = (int(x) for x in row[0][1:4])
    assert size == 2 * 1024 * 1024
    assert used >= 12288 and size - used == avail   # 10000 bytes -> 3 blocks of 4 KiB


def test_reset_runs_boot_then_main(board, tmp_path):
    tok = uuid.uuid4().hex[:8]
    (tmp_path / "boot.py").write_text(f"print('BOOT-{tok}')\nboot_var = 7\n")
    (tmp_path / "main.py").write_text(
        f"import machine\nprint('MAIN-{tok}', boot_var, machine.reset_cause())\n")
    board.out("fs", "cp", tmp_path / "boot.py", tmp_path / "main.py", ":")
    hard, mark = board.vb.hard_resets, board.vb.console_mark()

    board.out("reset")
    assert board.vb.wait_for_console(f"MAIN-{tok} 7 1", timeout=30, since=mark), \
        board.vb.console_text()[-1500:]
    assert board.vb.hard_resets == hard + 1
    text = board.log.read_text(errors="replace")
    tail = text[text.rindex(f"BOOT-{tok}"):]
    assert f"MAIN-{tok}" in tail      # boot.py printed before main.py, in the --log capture

    # the next (soft-resetting) command does not run main.py, but does run boot.py
    mark = board.vb.console_mark()
    assert board.out("exec", "print(boot_var * 6)").split() == ["42"]
    assert board.vb.wait_for_console(f"BOOT-{tok}", timeout=5, since=mark)
    assert f"MAIN-{tok}" not in board.vb.console_since(mark)


def test_soft_reset_command(board, tmp_path):
    (board.flash / "boot.py").write_text("boot_flag = 'from-boot'\n")
    soft = board.vb.soft_resets
    out = board.out("exec", "scratch = 1", "soft-reset", "resume", "exec",
                    "print('scratch' in globals(), boot_flag)")
    assert out.split() == ["False", "from-boot"]
    assert board.vb.soft_resets == soft + 2   # implicit one + soft-reset


def test_main_asyncio_loop_is_interrupted_by_next_command(board, tmp_path):
    tok = uuid.uuid4().hex[:8]
    (tmp_path / "main.py").write_text(
        "import asyncio\n"
        "async def app():\n"
        f"    print('LOOP-{tok}')\n"
        "    while True:\n"
        "        await asyncio.sleep_ms(20)\n"
        "asyncio.run(app())\n")
    board.out("fs", "cp", tmp_path / "main.py", ":")
    mark = board.vb.console_mark()
    board.out("reset")
    assert board.vb.wait_for_console(f"LOOP-{tok}", timeout=30, since=mark)
    pid, hard = board.vb.pid, board.vb.hard_resets

    t = time.monotonic()
    assert board.out("exec", "print('alive')").split() == ["alive"]
    assert time.monotonic() - t < 8, "Ctrl-C did not interrupt main.py (mpremote waited)"
    assert board.vb.wait_for_console("KeyboardInterrupt", timeout=5, since=mark)
    assert board.vb.hard_resets == hard, "interpreter died instead of handling Ctrl-C"
    assert pid != board.vb.pid       # then the implicit soft reset started a new one


def test_no_follow_loop_is_interrupted_by_ctrl_c(board):
    board.out("exec", "--no-follow", "import time\nwhile True:\n    time.sleep_ms(5)\n")
    pid = board.vb.pid
    # `resume`: no soft reset, so only the SIGINT path can stop the loop
    out = board.out("resume", "exec", "print('interrupted')")
    assert out.split() == ["interrupted"]
    assert board.vb.pid == pid


def test_machine_proxy(board):
    code = ("import machine, binascii\n"
            "u = machine.unique_id()\n"
            "print(type(u).__name__, len(u), binascii.hexlify(u).decode(), machine.freq())")
    first = board.out("exec", code).split()
    assert first[:2] == ["bytes", "6"] and first[3] == "160000000", first
    assert board.out("exec", code).split() == first    # stable across boots
    # machine.reset() = hard reset; real machine attributes pass through
    assert board.out("exec", "import machine; print(machine.mem8 is not None)").split() == ["True"]


def test_platform_shim(tmp_path):
    b = Board(tmp_path, platform="esp32", env={"VB_MPY_ARCH": "10"})
    with b.vb:
        out = b.out("exec", "import sys; print(sys.platform, sys.implementation._mpy >> 10 & 15,"
                            " sys.implementation.version[:2])")
    assert out.split() == ["esp32", "10", "(1,", "29)"]


def test_cli_supervisor(tmp_path):
    flash, link, log = tmp_path / "flash", tmp_path / "ttyCLI", tmp_path / "cli.log"
    flash.mkdir()
    (flash / "boot.py").write_text("print('CLI-BOOT')\n")
    proc = subprocess.Popen([sys.executable, str(VBOARD_PY), "--flash", str(flash),
                             "--link", str(link), "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        slave = proc.stdout.readline().strip()
        assert slave.startswith("/dev/pts/"), (slave, proc.stderr.read() if proc.poll() else "")
        assert os.path.realpath(link) == slave
        r = subprocess.run([str(MPREMOTE), "connect", str(link), "exec", "print(3 * 14)"],
                           capture_output=True, text=True, timeout=MPREMOTE_TIMEOUT)
        assert r.stdout.split() == ["42"], r
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    assert rc == 0
    assert "CLI-BOOT" in log.read_text(errors="replace")
    assert not link.exists()


def test_reset_and_exit_from_main_py(board, tmp_path):
    # main.py calls machine.reset() twice (counter in flash), then sys.exit() once (soft
    # reboot: boot.py + main.py again), then prints DONE. Under `micropython -i` neither would
    # end the process by itself; the bootstrap reports them to the supervisor.
    (board.flash / "main.py").write_text(
        "import machine, os, sys\n"
        "try:\n"
        "    n = int(open('count').read())\n"
        "except OSError:\n"
        "    n = 0\n"
        "open('count', 'w').write(str(n + 1))\n"
        "print('MAIN', n, machine.reset_cause())\n"
        "if n < 2:\n"
        "    machine.reset()\n"
        "if n == 2:\n"
        "    sys.exit()\n"
        "print('DONE')\n")
    hard, soft, mark = board.vb.hard_resets, board.vb.soft_resets, board.vb.console_mark()
    board.out("reset")
    assert board.vb.wait_for_console("DONE", timeout=30, since=mark), board.vb.console_since(mark)
    text = board.vb.console_since(mark)
    assert re.findall(r"MAIN \d \d", text) == \
        ["MAIN 0 1", "MAIN 1 1", "MAIN 2 1", "MAIN 3 5"], text
    assert board.vb.hard_resets == hard + 3
    assert board.vb.soft_resets == soft + 2   # the implicit one before `reset`, sys.exit()
    assert (board.flash / "count").read_text() == "4"
    assert board.out("exec", "print(1)").split() == ["1"]


def test_stale_output_is_flushed_when_mpremote_opens(board):
    # main.py floods the console while nobody reads: the supervisor keeps at most 1 MiB and
    # drops it when pyserial flushes its input on open (TIOCPKT_FLUSHREAD), so mpremote is
    # not stuck reading a megabyte of stale output byte by byte (~40 s without the flush).
    (board.flash / "main.py").write_text(
        "n = 0\nwhile True:\n    print('spam %d ' % n + 'x' * 200)\n    n += 1\n")
    mark = board.vb.console_mark()
    board.out("reset")
    assert board.vb.wait_for_console("spam 3000 ", timeout=30, since=mark)
    t = time.monotonic()
    assert board.out("exec", "print('quiet')").split() == ["quiet"]
    assert time.monotonic() - t < 10
