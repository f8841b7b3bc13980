"""tools/mqnode.py build and flash, without hardware: what the build puts where, and the
flash command's image checks and the commands it would run."""
import hashlib
import json
import subprocess
import sys

import pytest

from conftest import REPO

CLI = [sys.executable, str(REPO / "tools" / "mqnode.py")]


def mqnode(*args, cwd=REPO):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("board", ["esp32", "rp2_pico_w", "host"])
def test_build_compiles_everything_a_node_needs(board, tmp_path):
    out = tmp_path / "b"
    r = mqnode("build", "--board", board, "--out", out)
    assert r.returncode == 0, r.stderr
    stamp = json.loads((out / "mqnode.json").read_text())
    arch = json.loads((REPO / "boards" / board / "board.json").read_text())["mpy_arch"]
    assert (stamp["board"], stamp["mpy"], stamp["arch"]) == (board, 6, arch)
    files = set(stamp["files"])
    must = {"main.py", "lib/board.mpy", "lib/config.mpy", "lib/node.mpy", "lib/probes.mpy",
            "lib/mqtt/client.mpy", "lib/mqtt/session.mpy", "lib/mqtt/codec.mpy",
            "lib/sensors/bme280.mpy", "lib/sensors/ds18b20.mpy"}
    assert must <= files, must - files
    assert "lib/mqtt/codec_broker.mpy" not in files        # the broker's half stays home
    assert "lib/mqtt/codec5_broker.mpy" not in files
    assert ("lib/fake_i2c.mpy" in files) == (board == "host")
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"mqnode.json"}
    assert on_disk == files
    for path, digest in stamp["files"].items():
        data = (out / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
        if path.endswith(".mpy"):
            assert data[:2] == b"M\x06", path                # mpy v6 header
    assert (out / "main.py").read_text() == (REPO / "firmware" / "main.py").read_text()
    # the size report: one row per file and a total
    assert "lib/node.mpy" in r.stdout and "total" in r.stdout


def test_rebuild_replaces_the_old_build_but_keeps_the_firmware_image(tmp_path):
    # build/<board>/ is shared with `mqnode firmware` (firmware.uf2, frozen.txt): a build
    # (and so every deploy) must not delete the image a user is about to flash
    out = tmp_path / "b"
    assert mqnode("build", "--board", "rp2_pico_w", "--out", out).returncode == 0
    (out / "firmware.uf2").write_bytes(b"UF2\n")
    (out / "frozen.txt").write_text("mqtt/client.py\n")
    (out / "lib" / "gone.mpy").write_bytes(b"M\x06")           # a module since removed
    assert mqnode("build", "--board", "rp2_pico_w", "--out", out).returncode == 0
    assert (out / "firmware.uf2").read_bytes() == b"UF2\n"
    assert (out / "frozen.txt").exists()
    assert not (out / "lib" / "gone.mpy").exists()


def test_build_unknown_board_is_a_clear_error():
    r = mqnode("build", "--board", "esp8266")
    assert r.returncode == 1
    assert "unknown board 'esp8266'; known: esp32, host, rp2_pico_w" in r.stderr


def test_build_reports_a_syntax_error_with_its_file(tmp_path):
    # a copy of the repository's tools + sources with one broken module
    import shutil
    repo = tmp_path / "repo"
    for d in ("tools", "lib", "firmware", "boards"):
        shutil.copytree(REPO / d, repo / d)
    (repo / "firmware" / "probes.py").write_text("def broken(:\n")
    r = subprocess.run([sys.executable, str(repo / "tools" / "mqnode.py"), "build",
                        "--board", "esp32"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "mpy-cross failed on firmware/probes.py" in r.stderr


# ---- flash: image checks and commands, no hardware


def esp_image(chip_id=0):
    hdr = bytearray(64)
    hdr[0] = 0xE9          # magic
    hdr[1] = 3             # segments
    hdr[12:14] = chip_id.to_bytes(2, "little")
    return bytes(hdr) + b"\xff" * 1024


def uf2(blocks=2, family=0xE48BFF56, bad_block=None):
    out = b""
    for i in range(blocks):
        b = bytearray(512)
        b[0:4] = (0x0A324655).to_bytes(4, "little")
        b[4:8] = (0x9E5D5157 if i != bad_block else 0).to_bytes(4, "little")
        b[8:12] = (0x2000).to_bytes(4, "little")
        b[12:16] = (0x10000000 + 256 * i).to_bytes(4, "little")
        b[16:20] = (256).to_bytes(4, "little")
        b[20:24] = i.to_bytes(4, "little")
        b[24:28] = blocks.to_bytes(4, "little")
        b[28:32] = family.to_bytes(4, "little")
        b[508:512] = (0x0AB16F30).to_bytes(4, "little")
        out += bytes(b)
    return out


def test_flash_esp32_dry_run_prints_erase_then_write(tmp_path):
    fw = tmp_path / "ESP32_GENERIC-v1.29.0.bin"
    fw.write_bytes(esp_image())
    r = mqnode("flash", "--board", "esp32", "--port", "/dev/ttyUSB7", "--firmware", fw, "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    base = f"$ {sys.executable} -m esptool --chip esp32 --port /dev/ttyUSB7 --baud 460800"
    assert lines == [f"{base} erase-flash", f"{base} write-flash -z 0x1000 {fw}"]


@pytest.mark.parametrize("data, why", [
    (b"\x00" * 2048, "not an ESP firmware image"),
    (esp_image(chip_id=9), "the image is for esp32s3, not esp32"),
    (uf2(), "not an ESP firmware image"),
])
def test_flash_esp32_refuses_wrong_images(tmp_path, data, why):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(data)
    r = mqnode("flash", "--board", "esp32", "--port", "/dev/ttyUSB7", "--firmware", fw, "--dry-run")
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert "esptool" not in r.stdout


def test_flash_rp2_copies_the_uf2_to_the_drive(tmp_path):
    drive = tmp_path / "RPI-RP2"     # what the board in BOOTSEL mode mounts
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\n")
    fw = tmp_path / "RPI_PICO_W-v1.29.0.uf2"
    fw.write_bytes(uf2(4))
    r = mqnode("flash", "--board", "rp2_pico_w", "--firmware", fw, "--drive", drive)
    assert r.returncode == 0, r.stderr
    assert (drive / fw.name).read_bytes() == fw.read_bytes()


@pytest.mark.parametrize("data, why", [
    (uf2(2)[:700], "size is not a multiple of 512"),
    (uf2(3, bad_block=2), "bad magic in the block at byte 1024"),
    (uf2(2, family=0x1C5F21B0), "not for an RP2040"),
    (esp_image() + b"\x00" * (512 - (len(esp_image()) % 512)), "bad magic"),
])
def test_flash_rp2_refuses_wrong_images(tmp_path, data, why):
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader\n")
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(data)
    r = mqnode("flash", "--board", "rp2_pico_w", "--firmware", fw, "--drive", drive)
    assert r.returncode == 1 and why in r.stderr, r.stderr
    assert [p.name for p in drive.iterdir()] == ["INFO_UF2.TXT"]


def test_flash_rp2_without_a_drive_says_how_to_get_one(tmp_path):
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(uf2(1))
    r = mqnode("flash", "--board", "rp2_pico_w", "--firmware", fw, "--drive", tmp_path / "nope")
    assert r.returncode == 1 and "hold BOOTSEL" in r.stderr


def test_flash_needs_a_port_for_esptool_boards(tmp_path):
    r = mqnode("flash", "--board", "esp32", "--firmware", tmp_path / "x.bin")
    assert r.returncode == 2 and "--port is required" in r.stderr


def test_every_subcommand_has_help():
    for cmd in ("build", "deploy", "flash", "logs"):
        r = mqnode(cmd, "--help")
        assert r.returncode == 0 and "usage: mqnode " + cmd in r.stdout
