"""The board images tools/firmware.py builds from MicroPython v1.28.0 and boards/<b>/manifest.py:
what each has frozen (everything the node needs, nothing only the tests need), that the
micropython32 runtime really runs that frozen code on a 32-bit interpreter, and a clear error
for bad input (an unknown board, a missing toolchain, a source tarball off its pin, a failing
build, ESP-IDF absent)."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import REPO, frozen_modules, micropython32_exe, run_py

sys.path.insert(0, str(REPO / "tools"))
import firmware  # noqa: E402

FIRMWARE = REPO / "tools" / "firmware.py"
IMAGES = {"host": "micropython", "rp2_pico_w": "firmware.uf2"}


def lib_modules(pkg):
    return {pkg if f.stem == "__init__" else f"{pkg}.{f.stem}" for f in (REPO / "lib" / pkg).glob("*.py")}


# what a node imports on every board: the client (all of it: v5 and TLS load on demand), the
# drivers, the board, the firmware's modules, and the port's asyncio
NODE = lib_modules("mqtt") | lib_modules("sensors") | {
    "board", "config", "node", "probes", "discovery", "ota", "otaboot", "asyncio", "asyncio.core",
    "asyncio.stream"}
MUST = {
    "host": NODE | {"fake_i2c", "fake_onewire", "fake_adc", "ssl"},
    # RPI_PICO_W's own manifest: bundle-networking (ntptime sets the clock for TLS), onewire
    "rp2_pico_w": NODE | {"ntptime", "mip", "requests", "onewire", "ds18x20"},
}
# test-only code and main.py (a frozen main.py would run instead of the board's /main.py)
MUST_NOT = {"codec_broker", "codec5_broker", "mqtt.codec_broker", "mqtt.codec5_broker", "main"}


def tool(*args, env=None, timeout=900):
    full = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, str(FIRMWARE), *args], capture_output=True, text=True,
                          env=full, timeout=timeout)


@pytest.mark.parametrize("board", sorted(IMAGES))
def test_image_freezes_what_the_node_needs_and_nothing_else(board, tmp_path):
    image = firmware.build(board, out=tmp_path, say=lambda *a: None)   # cached: instant
    assert image == tmp_path / IMAGES[board] and image.stat().st_size > 100_000
    names = firmware.frozen(image)
    assert (tmp_path / "frozen.txt").read_text().split() == names
    got = frozen_modules(str(image))
    assert MUST[board] <= got, sorted(MUST[board] - got)
    assert not MUST_NOT & got, sorted(MUST_NOT & got)
    if board == "rp2_pico_w":
        data = image.read_bytes()
        assert data[:8] == b"UF2\n\x57\x51\x5d\x9e"                 # UF2 block magic
        assert int.from_bytes(data[28:32], "little") == 0xE48BFF56   # family: RP2040


def test_build_freezes_its_own_sources_whatever_the_tree_built_last(tmp_path):
    # A board's cached source tree is shared by every checkout and manifest, and MicroPython's
    # makemanifest.py goes by timestamps: after a build of newer files, a build of older ones
    # (the same names, other content: another checkout) must still freeze exactly its own.
    host = REPO / "boards" / "host" / "manifest.py"
    tags = [uuid.uuid4().hex[:8] for _ in range(3)]     # new sources each run: all really build

    def build(i, name, old):
        d = tmp_path / str(i)
        d.mkdir()
        (d / name).write_text(f"X = {tags[i]!r}\n")
        if old:
            os.utime(d / name, (946684800, 946684800))     # 2000-01-01
        (d / "manifest.py").write_text(f'include("{host}")\nmodule("{name}")\n')
        return firmware.build("host", out=d / "out", manifest=d / "manifest.py",
                              say=lambda *a: None)

    build(0, "extra_old.py", old=True)
    newer = build(1, f"extra_{tags[1]}.py", old=False)
    image = build(2, "extra_old.py", old=True)
    assert f"extra_{tags[1]}.py" in firmware.frozen(newer)
    names = firmware.frozen(image)
    assert "extra_old.py" in names and f"extra_{tags[1]}.py" not in names, names
    r = subprocess.run([str(image), "-c", "import extra_old; print(extra_old.X)"],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, MICROPYPATH=".frozen"))
    assert r.stdout.split() == [tags[2]], r


def test_micropython32_runs_the_frozen_code_on_32_bits(tmp_path):
    # lib/ is not on the path and .frozen comes first: what runs is what the image froze
    script = tmp_path / "where.py"
    script.write_text(
        "import sys, mqtt, mqtt.client, sensors, board, node, config\n"
        "print(mqtt.__path__, sensors.__path__)\n"
        "print(mqtt.client.__file__, board.__file__, node.__file__, config.__file__)\n"
        "print(sys.maxsize, sys.implementation._mpy >> 10)\n")
    r = run_py("micropython32", script, pythonpath=(REPO / "lib", REPO / "boards" / "host"))
    assert r.returncode == 0, r
    assert r.lines[0].split() == [".frozen/mqtt", ".frozen/sensors"], r
    # a frozen module's __file__ is its name in the image; one loaded from lib/ or boards/host
    # would have the (absolute) path it was found at
    assert r.lines[1].split() == ["mqtt/client.py", "board.py", "node.py", "config.py"], r
    assert r.lines[2].split() == [str(2 ** 31 - 1), "1"], r     # 32-bit, native arch x86


def test_micropython32_image_is_the_cached_one_for_these_sources():
    # the conftest runs (a copy of) the image the cache holds for the current lib/, firmware/
    # and boards/host
    image = Path(micropython32_exe())
    assert image.read_bytes() == firmware.cached("host").read_bytes()
    assert image.name == "micropython" and os.access(image, os.X_OK)


def test_unknown_board_is_a_clear_error():
    r = tool("--board", "esp8266")
    assert r.returncode == 1
    assert r.stderr.strip() == "firmware: unknown board 'esp8266'; known: esp32, host, rp2_pico_w"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "mqnode.py"), "firmware", "--board",
                        "esp8266"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown board 'esp8266'" in r.stderr


@pytest.mark.parametrize("board, package", [("host", "gcc-i686-linux-gnu"),
                                            ("rp2_pico_w", "gcc-arm-none-eabi")])
def test_missing_toolchain_names_the_debian_package(board, package, tmp_path):
    r = tool("--board", board, env={"PATH": str(tmp_path), "MQNODE_CACHE": str(tmp_path / "c")})
    assert r.returncode == 1
    assert "toolchain missing; install it with: apt-get install " in r.stderr
    assert package in r.stderr.split("apt-get install ", 1)[1].split()
    assert not (tmp_path / "c").exists()                  # nothing started


def test_tarball_off_its_pin_is_refused(tmp_path):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / firmware.MICROPYTHON["tarball"]).write_bytes(b"not the pinned source")
    cache = tmp_path / "cache"
    r = tool("--board", "host", env={"MQNODE_VENDOR": str(vendor), "MQNODE_CACHE": str(cache)})
    assert r.returncode == 1
    assert "does not match its pin" in r.stderr and firmware.MICROPYTHON["sha256"] in r.stderr
    assert not (cache / "firmware" / "src" / "host").exists()    # nothing unpacked or kept
    assert not (cache / "firmware" / "images").exists()


def test_failing_build_shows_the_end_of_its_log(tmp_path):
    (tmp_path / "bad.py").write_text("def broken(:\n")
    (tmp_path / "manifest.py").write_text('module("bad.py")\n')
    r = tool("--board", "host", "--manifest", str(tmp_path / "manifest.py"), "--out",
             str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    assert "make failed" in r.stderr and "the last lines of" in r.stderr
    assert "SyntaxError" in r.stderr or "invalid syntax" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    assert firmware.cached("host", manifest=tmp_path / "manifest.py") is None


def test_esp32_without_esp_idf_prints_the_commands():
    env = {k: v for k, v in os.environ.items() if k != "IDF_PATH"}
    r = subprocess.run([sys.executable, str(FIRMWARE), "--board", "esp32"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "esp32 needs ESP-IDF, which is not installed" in r.stderr
    assert f"git clone --depth 1 --branch {firmware.ESP_IDF} --recursive " \
           "https://github.com/espressif/esp-idf.git" in r.stderr
    assert "ports/esp32 BOARD=ESP32_GENERIC submodules" in r.stderr
    assert f"FROZEN_MANIFEST={REPO / 'boards' / 'esp32' / 'manifest.py'}" in r.stderr
