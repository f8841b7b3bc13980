"""The real Raspberry Pi Pico W image (tools/firmware.py's rp2_pico_w build for the current
sources) booted in the RP2040 emulator (tests/rp2emu: rp2040js + a W25Q16JV flash chip model),
driven with stock mpremote through the emulated board's USB serial port."""
import json
import signal
import struct
import subprocess
import sys
import time

import pytest

from conftest import REPO, PyProcess, cached_image

sys.path.insert(0, str(REPO / "tests" / "rp2emu"))
from rp2board import BoardError, EmulatedBoard  # noqa: E402

MPREMOTE = str(REPO / ".venv" / "bin" / "mpremote")
FLASH_SIZE = 2 * 1024 * 1024
FS_BYTES = 848 * 1024          # RPI_PICO_W's MICROPY_HW_FLASH_STORAGE_BYTES, at the flash's end


def pico_image():
    """The Pico W image built from the current sources (tools/firmware.py's cache); fails,
    never skips, when it has not been built."""
    image, why = cached_image("rp2_pico_w")
    if why:
        pytest.fail(f"Pico W image: {why}", pytrace=False)
    if image is None:
        pytest.fail("the Pico W image for the current sources is not built: run "
                    "`make firmware BOARD=rp2_pico_w` (`make test` does it first)", pytrace=False)
    return image


@pytest.fixture
def pico(tmp_path):
    """make(name="pico", flash=None, **kw) -> a booted EmulatedBoard (flash file in
    tmp_path/name unless given); all are stopped at teardown."""
    made = []
    image = pico_image()

    def make(name="pico", flash=None, **kw):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        board = EmulatedBoard(image, flash or d / "flash.bin", link=d / "tty",
                              log=d / "console.log", **kw)
        made.append(board)
        return board.start()

    yield make
    for board in made:
        board.stop()


def mpremote(board, *args, timeout=120, check=True):
    """Run stock mpremote against the board; returns its stdout (fails the test on error)."""
    r = subprocess.run([MPREMOTE, "connect", board.device, *args], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode:
        pytest.fail(f"mpremote {' '.join(args)} exited {r.returncode}\n{r.stdout}{r.stderr}\n"
                    f"--- board\n{board.last_lines()}", pytrace=False)
    return r.stdout


def exec_lines(board, code, timeout=120):
    return mpremote(board, "exec", code, timeout=timeout).splitlines()


# --------------------------------------------------------------------------- the harness


def test_boots_the_real_rp2040_firmware(pico):
    board = pico()
    out = exec_lines(board, "import sys; i = sys.implementation; "
                            "print(sys.platform, i._machine, i._mpy & 0xff, i._mpy >> 10 & 0xf)")
    # _mpy: mpy version 6, arch index 4 = armv6m (the Cortex-M0+ of an RP2040)
    assert out == ["rp2 Raspberry Pi Pico W with RP2040 6 4"]


def test_a_board_that_never_prompts_times_out_with_its_console(tmp_path):
    # one UF2 block whose code at the start of flash is "b ." (0xe7fe): the core spins
    # before MicroPython ever runs, so no prompt can come
    payload = b"\xfe\xe7" * 128
    block = struct.pack("<8I", 0x0A324655, 0x9E5D5157, 0, 0x10000000, 256, 0, 1, 0)
    block += payload + bytes(476 - len(payload)) + struct.pack("<I", 0x0AB16F30)
    uf2 = tmp_path / "spin.uf2"
    uf2.write_bytes(block)
    board = EmulatedBoard(uf2, tmp_path / "flash.bin", boot_timeout=3)
    with pytest.raises(BoardError, match=r"did not boot: no >>> prompt within 3 s; "
                                         r"last console lines"):
        board.start()


def test_a_bad_uf2_is_refused_by_name(tmp_path):
    uf2 = tmp_path / "bad.uf2"
    uf2.write_bytes(b"not a uf2 block".ljust(512, b"\0"))
    with pytest.raises(BoardError, match=r"emulator exited with status 1(.|\n)*"
                                         r"bad.uf2: block 0 is not a UF2 block"):
        EmulatedBoard(uf2, tmp_path / "flash.bin", boot_timeout=30).start()


# --------------------------------------------------------------------------- the flash chip


# Drives the chip model alone, one SPI transaction (CS low .. CS high) per t() call.
CHIP_SCRIPT = """
import { W25Q16JV } from './flash_chip.mjs';
const mem = new Uint8Array(2 * 1024 * 1024).fill(0xff);
const chip = new W25Q16JV(mem);
const t = (...bytes) => { chip.select(); const r = bytes.map((b) => chip.transfer(b)); chip.deselect(); return r; };
const hex = (a) => Buffer.from(a).toString('hex');
const out = [];
out.push('id ' + hex(t(0x9f, 0, 0, 0).slice(1)));
t(0x02, 0x00, 0x10, 0x00, 0x12);                          // no WREN: ignored
out.push('no-wren ' + hex(mem.subarray(0x1000, 0x1001)));
t(0x06);
out.push('sr-wel ' + hex(t(0x05, 0, 0).slice(1)));
t(0x02, 0x00, 0x10, 0x00, 0x0f, 0xf3);
out.push('sr-after ' + hex(t(0x05, 0).slice(1)));
t(0x06); t(0x02, 0x00, 0x10, 0x00, 0xf0, 0x3f);           // program only clears bits
out.push('and ' + hex(mem.subarray(0x1000, 0x1002)));
t(0x06); t(0x02, 0x00, 0x11, 0xfe, 1, 2, 3, 4);           // wraps inside its page
out.push('wrap ' + hex(mem.subarray(0x11fe, 0x1200)) + ' ' + hex(mem.subarray(0x1100, 0x1103)));
out.push('read ' + hex(t(0x03, 0x00, 0x11, 0xfe, 0, 0, 0, 0).slice(4)));
out.push('fast ' + hex(t(0x0b, 0x00, 0x11, 0xfe, 0, 0, 0).slice(5)));
t(0x06); t(0x20, 0x00, 0x10);                             // CS high before the address ends
out.push('short-erase ' + hex(mem.subarray(0x1000, 0x1001)));
t(0x04);
out.push('wrdi ' + hex(t(0x05, 0).slice(1)));
mem[0x2000] = 0;
t(0x06); t(0x20, 0x00, 0x1f, 0xff);                       // sector 0x1000..0x1fff
out.push('sector ' + hex(mem.subarray(0x0fff, 0x1001)) + ' ' + hex(mem.subarray(0x1fff, 0x2001)));
mem[0x30000] = 0; mem[0x40000] = 0;
t(0x06); t(0xd8, 0x03, 0x80, 0x00);                       // 64 KiB block 0x30000..0x3ffff
out.push('block ' + hex([mem[0x30000], mem[0x3ffff], mem[0x40000]]));
console.log(out.join('\\n'));
"""


def test_flash_chip_model_follows_the_w25q16jv_datasheet():
    r = subprocess.run(["node", "--input-type=module", "-e", CHIP_SCRIPT], cwd=REPO / "tests" /
                       "rp2emu", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "id ef4015",                      # JEDEC ID: Winbond, SPI, 16 Mbit
        "no-wren ff",                     # program needs WREN first (WEL)
        "sr-wel 0202",                    # status 1 repeats while CS stays low
        "sr-after 00",                    # WEL clears when the program completes
        "and 0033",                       # 0x0f & 0xf0, 0xf3 & 0x3f
        "wrap 0102 0304ff",               # bytes past the page end go to its start
        "read 0102ffff",                  # READ streams on into the next page
        "fast 0102",                      # FAST READ: one dummy byte first
        "short-erase 00",                 # CS high inside the address: not executed
        "wrdi 00",                        # WRITE DISABLE clears WEL
        "sector ffff ff00",               # 4 KiB erased, the neighbours kept
        "block ffff00",                   # 64 KiB erased, the next block kept
    ]


def test_first_boot_formats_littlefs_on_the_emulated_flash(pico, tmp_path):
    board = pico()
    out = exec_lines(board, "import os, vfs; print(vfs.mount()[0][0], os.statvfs('/')[0:3])")
    # the firmware's _boot.py found no filesystem on the erased chip and made one itself
    assert out == ["<VfsLfs2> (4096, 4096, 212)"]
    image = (tmp_path / "pico" / "flash.bin").read_bytes()
    assert len(image) == FLASH_SIZE
    # littlefs's superblock, written by the firmware through the bootrom and the SSI
    assert b"littlefs" in image[FLASH_SIZE - FS_BYTES:FLASH_SIZE - FS_BYTES + 4096]


def test_program_only_clears_bits_and_erase_sets_them(pico):
    # rp2.Flash on the real firmware: writeblocks with an offset programs without erasing,
    # ioctl(6) erases one 4 KiB sector (W25Q16JV: page program ANDs, sector erase -> 0xFF)
    board = pico()
    out = exec_lines(board, "\n".join([
        "import rp2",
        "f = rp2.Flash(); n = f.ioctl(4, 0) - 1; b = bytearray(16)",
        "f.ioctl(6, n); f.readblocks(n, b); print(b.hex())",
        "f.writeblocks(n, b'\\x0f' * 16, 0); f.readblocks(n, b); print(b.hex())",
        "f.writeblocks(n, b'\\xf3' * 16, 0); f.readblocks(n, b); print(b.hex())",
        "f.ioctl(6, n); f.readblocks(n, b); print(b.hex())",
    ]))
    assert out == ["ff" * 16, "0f" * 16, "03" * 16, "ff" * 16]


def test_files_survive_a_soft_reset_and_an_emulator_restart(pico, tmp_path):
    board = pico()
    data = bytes(range(256)) * 20   # 5 KiB: more than one sector, more than one page
    (tmp_path / "blob.bin").write_bytes(data)
    mpremote(board, "fs", "cp", str(tmp_path / "blob.bin"), ":blob.bin")
    # every mpremote invocation starts with a soft reset of the board
    assert exec_lines(board, "import os; print(os.stat('blob.bin')[6])") == [str(len(data))]
    board.stop()
    again = pico("again", flash=tmp_path / "pico" / "flash.bin")
    mpremote(again, "fs", "cp", ":blob.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data


# --------------------------------------------------------------------------- the firmware


FROZEN = ("mqtt", "sensors", "board", "config", "node", "probes")
HEAP_RESULTS = REPO / "build" / "rp2_pico_w" / "mem_free.json"
EXCHANGE = REPO / "tests" / "scenarios" / "session_qos_exchange.py"
HEAP_SCRIPT = """
import gc, os
gc.collect(); fresh = gc.mem_free()
import mqtt, sensors, board, config, node, probes
gc.collect(); imported = gc.mem_free()
print("files", os.listdir("/"), [m.__name__ for m in (mqtt, sensors, board, config, node, probes)])
client = mqtt.MQTTClient("127.0.0.1", 1883, "heap", keepalive=30)
gc.collect(); with_client = gc.mem_free()
del client
cfg = config.load('{"node_id": "n1", "topic_prefix": "t", "broker": {"host": "127.0.0.1"},'
                  ' "sensors": [{"type": "bme280", "name": "air"}]}')
n = node.Node(cfg, board)
gc.collect(); with_node = gc.mem_free()
print("mem_free", fresh, imported, with_client, with_node)
"""


def test_the_frozen_modules_import_and_their_heap_is_recorded(pico, tmp_path):
    board = pico()
    script = tmp_path / "heap.py"
    script.write_text(HEAP_SCRIPT)
    out = mpremote(board, "run", str(script)).splitlines()
    # nothing on the filesystem: every module came from the image
    assert out[0] == "files [] " + repr(list(FROZEN)), out
    words = out[1].split()
    assert words[0] == "mem_free", out
    fresh, imported, client, node = (int(w) for w in words[1:])
    figures = {"firmware": str(pico_image()), "fresh": fresh,
               "after_import": imported, "after_client": client, "after_node": node}
    HEAP_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    HEAP_RESULTS.write_text(json.dumps(figures, indent=1) + "\n")
    print("gc.mem_free() on the emulated Pico W:", figures)
    # the heap figures are what they are (bench/ reports them); these are only sanity
    assert fresh > imported > client > node > 0


def test_codec_and_session_run_qos_1_and_2_exchanges(pico, run_py):
    # the same lines on CPython and on the RP2040, each step as §4.3.2 / §4.3.3 have it
    want = [
        "client: CONNECT emu-1 clean=True keepalive=30",
        "events: CONNACK False 0",
        "client: PUBLISH t/q1 b'one' qos=1 pid=1 dup=False",
        "events: PUBACK 1 idle True",            # QoS 1 is done at PUBACK
        "client: PUBLISH t/q2 b'two' qos=2 pid=2 dup=False",
        "events: - idle False",                  # PUBREC: not done, PUBREL goes out
        "client: PUBREL pid=2",
        "events: PUBCOMP 2 idle True",
        "client: SUBSCRIBE pid=3 [('t/in/#', 2)]",
        "events: SUBACK 3 [2]",
        "events: message t/in/a b'alpha' qos=1",
        "client: PUBACK pid=7",                  # the receiver's PUBACK, same packet id
        "events: message t/in/b b'beta' qos=2",
        "client: PUBREC pid=8",
        "events: -",                             # a re-send before PUBREL: not delivered again,
        "client: PUBREC pid=8",                  # answered with PUBREC again
        "events: -",
        "client: PUBCOMP pid=8",                 # PUBREL answered with PUBCOMP
        "done",
    ]
    host = run_py("cpython", EXCHANGE, pythonpath=(REPO / "tests",))
    assert host.returncode == 0 and host.lines == want, host.output
    board = pico()
    assert _scenario_on_board(board, EXCHANGE, [REPO / "tests" / "codec_broker.py"]) == want


def _scenario_on_board(board, scenario, files):
    """Copy `files` to the board's flash, run the scenario there; its output lines."""
    mpremote(board, "fs", "cp", *[str(f) for f in files], ":")
    return mpremote(board, "run", str(scenario)).splitlines()


def test_sensor_drivers_read_the_datasheet_fakes(pico):
    import test_sensors_i2c
    import test_sensors_ow_adc
    board = pico()
    fakes = [REPO / "boards" / "host" / f for f in ("fake_i2c.py", "fake_onewire.py",
                                                     "fake_adc.py")]
    # the frozen drivers (lib/sensors) against the same chip models and the same expected
    # lines as on CPython and the unix port
    i2c = _scenario_on_board(board, test_sensors_i2c.SCENARIO, fakes)
    assert i2c == test_sensors_i2c.EXPECTED
    ow = mpremote(board, "run", str(test_sensors_ow_adc.SCENARIO)).splitlines()
    assert ow == test_sensors_ow_adc.EXPECTED


# --------------------------------------------------------------------------- deploy, logs

from test_tools_deploy import SECRET, copied, deploy, repo_copy  # noqa: E402,F401

# every file on the board's flash: path, size, sha256
LIST_FILES = """
import os, hashlib, binascii
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + '/' + name if d != '/' else '/' + name
        if kind == 0x4000:
            walk(p)
        else:
            h = hashlib.sha256(open(p, 'rb').read()).digest()
            print(p[1:], os.stat(p)[6], binascii.hexlify(h).decode())
walk('/')
"""


def board_files(board):
    out = exec_lines(board, LIST_FILES)
    return {line.split()[0]: line.split()[2] for line in out}


def sha256(path):
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Deploys build in a copy of the repository (repo_copy): `mqnode.py build` replaces
# build/<board>/, where the firmware image is.


def test_deploy_checks_the_real_firmware_abi(pico, repo_copy):
    board = pico()
    # the firmware says armv6m (its _mpy): a build for another board is refused untouched
    r = deploy("--board", "esp32", "--port", board.device, "--no-reset", repo=repo_copy)
    assert r.returncode == 1, r.stdout
    assert "is a armv6m (rp2) machine, not esp32 (xtensawin): check --board" in r.stdout
    assert board_files(board) == {}


def test_fresh_deploy_then_only_what_changed(pico, repo_copy, tmp_path):
    board = pico()
    cfg = {"node_id": "pico-1", "topic_prefix": "t", "broker": {"host": "127.0.0.1"},
           "sensors": [{"type": "bme280", "name": "air"}]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "secrets.json").write_text(json.dumps({"broker_username": "pico",
                                                      "broker_password": SECRET}))
    args = ["--board", "rp2_pico_w", "--port", board.device, "--no-reset",
            "--config", tmp_path / "config.json", "--secrets", tmp_path / "secrets.json"]
    r = deploy(*args, repo=repo_copy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MicroPython 1.28.0;" in r.stdout
    build = repo_copy / "build" / "rp2_pico_w"
    stamp = json.loads((build / "mqnode.json").read_text())
    have = board_files(board)
    assert set(have) == set(stamp["files"]) | {"config.json", "secrets.json", "mqnode.json"}
    for p in stamp["files"]:   # byte for byte what mpy-cross -march=armv6m made
        assert have[p] == sha256(build / p), p

    # a redeploy that changed nothing writes nothing (and does not reset the board)
    r = deploy(*args, repo=repo_copy)
    assert r.returncode == 0 and copied(r.stdout) == [] and "nothing changed" in r.stdout, \
        r.stdout

    node = repo_copy / "firmware" / "node.py"
    node.write_text(node.read_text() + "\n_VERSION_NOTE = \"changed\"\n")
    r = deploy(*args, repo=repo_copy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert copied(r.stdout) == ["lib/node.mpy", "mqnode.json"], r.stdout
    assert board_files(board)["lib/node.mpy"] == sha256(build / "lib" / "node.mpy")


def test_logs_show_what_the_node_prints_after_a_reset(pico, repo_copy):
    board = pico()
    # no config.json deployed: after a reset main.py names what is missing, on the console
    assert deploy("--board", "rp2_pico_w", "--port", board.device, "--no-reset",
                  repo=repo_copy).returncode == 0
    # (logs ending after --duration is tested on the host board, test_tools_deploy.py;
    # here it follows until the line came, then Ctrl-C ends it)
    p = PyProcess([sys.executable, str(REPO / "tools" / "mqnode.py"), "logs",
                   "--port", str(board.device), "--duration", "60"],
                  stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        time.sleep(1)
        board.reset()   # the RUN button: the board boots and runs main.py
        try:
            p.expect("mqnode: config: board rp2_pico_w: cannot read /config.json", timeout=50)
        except (TimeoutError, EOFError) as e:
            pytest.fail(f"{e}\n--- board\n{board.last_lines()}", pytrace=False)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=70)   # at the latest when --duration ends (once under load: > 15 s)
    finally:
        p.kill_now()
    assert p.returncode == 0, p.seen


# --------------------------------------------------------------------------- the network

from netns import NetNamespace  # noqa: E402

PEER = REPO / "tests" / "rp2emu" / "ppp_peer.py"
HOST_IP, BOARD_IP = "10.77.0.1", "10.77.0.2"   # inside the test's own network namespace


def _wait_text(path, text, timeout, what):
    """Wait until the log file at `path` contains `text`; fail after timeout s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    log = path.read_text(errors="replace") if path.exists() else "(no log)"
    pytest.fail(f"{what}: no {text!r} within {timeout} s; log:\n{log[-3000:]}", pytrace=False)


def test_a_node_on_the_real_image_publishes_over_ppp_and_dies_with_a_will(pico, repo_copy,
                                                                        prefix, tmp_path):
    board = pico(uart0=True)
    logs = {name: tmp_path / f"{name}.log" for name in ("peer", "mosquitto", "monitor")}

    def log(name):
        return open(logs[name], "w")

    with NetNamespace() as ns:
        ns.popen([sys.executable, "-u", PEER, "--tty", board.uart0_device, "--local", HOST_IP,
                  "--remote", BOARD_IP], stdout=log("peer"), stderr=subprocess.STDOUT)
        _wait_text(logs["peer"], "ppp: waiting", 10, "ppp_peer.py")
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(f"listener 1883 {HOST_IP}\nallow_anonymous true\npersistence false\n"
                        "log_dest stderr\nlog_type all\nuser root\n")
        ns.popen(["mosquitto", "-c", conf], stdout=log("mosquitto"), stderr=subprocess.STDOUT)
        _wait_text(logs["mosquitto"], " running", 10, "mosquitto in the namespace")
        sub = ns.popen(["mosquitto_sub", "-h", HOST_IP, "-t", f"{prefix}/pico-1/telemetry",
                        "-q", "1", "-C", "2", "-W", "120"], stdout=subprocess.PIPE, text=True)
        monitor = ns.popen([sys.executable, "-u", REPO / "tools" / "monitor.py", "--host",
                            HOST_IP, "--prefix", prefix, "--duration", "300"],
                           stdout=log("monitor"), stderr=subprocess.STDOUT)
        _wait_text(logs["monitor"], "subscribed", 10, "tools/monitor.py")
        cfg = {"node_id": "pico-1", "topic_prefix": prefix, "network": "ppp",
               "broker": {"host": HOST_IP, "keepalive": 5},   # telemetry every 2 s keeps it busy
               "telemetry": {"interval_s": 2, "qos": 1}, "sensors": []}
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        # deploy and reset: the board boots into main.py, brings PPP up, connects, publishes
        r = deploy("--board", "rp2_pico_w", "--port", board.device,
                   "--config", tmp_path / "config.json", repo=repo_copy)
        assert r.returncode == 0, r.stdout + r.stderr
        try:
            out, _ = sub.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no telemetry; board:\n{board.last_lines(30)}\n--- ppp_peer.py\n"
                        f"{logs['peer'].read_text()}", pytrace=False)
        got = [json.loads(line) for line in out.splitlines()]
        assert [t["node"] for t in got] == ["pico-1", "pico-1"], \
            f"{out}\n--- board\n{board.last_lines(30)}\n--- ppp_peer.py\n{logs['peer'].read_text()}"
        assert got[1]["seq"] == got[0]["seq"] + 1 and got[0]["interval_s"] == 2
        assert f"mqnode: pico-1 network up {BOARD_IP}" in board.console_text()

        # a power cut: the broker finds the node gone (1.5 x keepalive, §3.1.2.10) and
        # publishes its will (§3.1.2.5), which the monitor raises as an alert
        # (it may call the node silent first: telemetry stops too)
        board.kill()
        _wait_text(logs["monitor"], "ALERT pico-1: will", 60, "tools/monitor.py")
