#!/usr/bin/env python3
"""firmware: build a MicroPython image for a board, with the board's modules frozen in.

    python tools/firmware.py --board B [--out DIR] [--manifest FILE]
    (the same as `python tools/mqnode.py firmware --board B` and `make firmware BOARD=B`)

Boards (boards/<b>/manifest.py says what is frozen):
    host        the unix port as a 32-bit (i686) static binary: ssl on mbedTLS, asyncio
    rp2_pico_w  firmware.uf2 for boards/rp2_pico_w/RPI_PICO_W_PPP (RPI_PICO_W plus
                network.PPP; picotool is built from source for the UF2 step)
    esp32       ESP32_GENERIC firmware.bin; needs ESP-IDF (prints the commands if absent)

Source: MicroPython v1.28.0 from the vendor tarball (../shared/vendor/, or $MQNODE_VENDOR)
when present, checked against the sha256 pinned below; otherwise a clone of the tag and the
port's submodules from GitHub. The image and frozen.txt (the frozen modules, one a line, as
the image names them: "mqtt/client.py") land in build/<board>/ (or --out).

Cache ($MQNODE_CACHE, default ~/.cache/mqnode; everything under firmware/):
    src/<board>/            that board's source tree with its build folder, kept, so that a
                            changed lib/ only recompiles the frozen content
    picotool-<version>/     the installed picotool
    images/<board>/<key>/   finished images; key = sha256 of the MicroPython pin, the board,
                            the make flags and every file the manifest freezes (4 kept a board)

Python API (tests, bench, the emulator harness):
    build(board, out=None, manifest=None, say=print) -> Path of the image in `out`
    cached(board, manifest=None) -> Path of the cached image for the current sources, or None
    frozen(image) -> the frozen module names listed next to an image (its frozen.txt)
    BOARDS, Failure (raised with a message that says what to do)
Exit codes: 0 built, 1 failed, 2 usage.
"""
import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MICROPYTHON = {
    "version": "v1.28.0",
    "tarball": "micropython-1.28.0-src.tar.xz",
    "sha256": "e32fb14fbb0b8fe83145be17d022eb30659e2d80f1211f26c10ad49ab1faad1e",
    "tarball_ports": ("unix", "rp2"),          # the vendor tarball has the other ports removed
    "git": "https://github.com/micropython/micropython.git",
}
PICOTOOL = {
    "version": "2.2.0",
    "tarball": "picotool-2.2.0-src.tar.xz",
    "sha256": "90c37e3b8e11dd1018bcade954f87e412471f1c04e5d901a5fc2d1f857b3e495",
    "git": "https://github.com/raspberrypi/picotool.git",
}
ESP_IDF = "v5.4.2"      # an ESP-IDF release MicroPython v1.28.0's esp32 port builds with

# needs: (executable on PATH or an absolute file, Debian package that provides it)
BOARDS = {
    "host": {
        "port": "unix", "board": None, "image": "micropython", "built": "build-standard/micropython",
        # FFI and btree need libraries we do not cross-build; -static: runs without ld-linux.so.2
        "make": ["CROSS_COMPILE=i686-linux-gnu-", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0",
                 "LDFLAGS_EXTRA=-static"],
        "needs": [("make", "make"), ("gcc", "gcc"), ("i686-linux-gnu-gcc", "gcc-i686-linux-gnu"),
                  ("/usr/i686-linux-gnu/lib/libc.a", "libc6-dev-i386-cross")],
    },
    "rp2_pico_w": {
        # our out-of-tree board folder (BOARD_DIR): the stock RPI_PICO_W with network.PPP
        "port": "rp2", "board": "RPI_PICO_W", "board_dir": "boards/rp2_pico_w/RPI_PICO_W_PPP",
        "image": "firmware.uf2", "built": "build-RPI_PICO_W_PPP/firmware.uf2", "make": [],
        "needs": [("make", "make"), ("gcc", "gcc"), ("g++", "g++"), ("cmake", "cmake"),
                  ("arm-none-eabi-gcc", "gcc-arm-none-eabi"),
                  ("/usr/lib/arm-none-eabi/include/stdio.h", "libnewlib-arm-none-eabi"),
                  ("/usr/lib/arm-none-eabi/include/c++", "libstdc++-arm-none-eabi-newlib")],
    },
    "esp32": {
        "port": "esp32", "board": "ESP32_GENERIC", "image": "firmware.bin",
        "built": "build-ESP32_GENERIC/firmware.bin", "make": ["BOARD=ESP32_GENERIC"],
        "needs": [("make", "make"), ("gcc", "gcc"), ("git", "git")],
    },
}
KEEP_IMAGES = 4
LOG_TAIL = 30


class Failure(Exception):
    """The image could not be built; the message says why and what to do."""


def cache_dir():
    root = os.environ.get("MQNODE_CACHE") or Path.home() / ".cache" / "mqnode"
    return Path(root) / "firmware"


def vendor_dir():
    """The vendor folder: $MQNODE_VENDOR, else ../shared/vendor beside this checkout or beside
    the main checkout of a git worktree. None when absent (then the sources are cloned)."""
    if os.environ.get("MQNODE_VENDOR"):
        return Path(os.environ["MQNODE_VENDOR"])
    tops = [REPO]
    try:
        r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--path-format=absolute",
                            "--git-common-dir"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            tops.append(Path(r.stdout.strip()).parent)
    except OSError:     # no git: not a worktree either
        pass
    for top in tops:
        if (top.parent / "shared" / "vendor").is_dir():
            return top.parent / "shared" / "vendor"
    return None


def spec(board):
    if board not in BOARDS:
        raise Failure(f"unknown board {board!r}; known: {', '.join(sorted(BOARDS))}")
    return BOARDS[board]


def check_toolchain(board):
    missing = [pkg for need, pkg in spec(board)["needs"]
               if not (Path(need).exists() if need.startswith("/") else shutil.which(need))]
    if missing:
        raise Failure(f"{board}: toolchain missing; install it with: "
                      f"apt-get install {' '.join(dict.fromkeys(missing))}")


# ---------------------------------------------------------------------------- sources


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(argv, log, cwd=None, env=None):
    """Run a build step, its output appended to `log`; a failure raises with the log's tail."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(str(a) for a in argv) + "\n")
        f.flush()
        r = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, stdout=f,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if r.returncode:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-LOG_TAIL:])
        raise Failure(f"{argv[0]} failed (exit {r.returncode}); the last lines of {log}:\n{tail}")


def _unpack(pin, tarball, dest, log):
    """Unpack a pinned vendor tarball into dest (its top folder stripped)."""
    got = _sha256(tarball)
    if got != pin["sha256"]:
        raise Failure(f"{tarball} does not match its pin: sha256 {got}, expected "
                      f"{pin['sha256']} ({pin['version']}); replace it or remove it to clone "
                      f"{pin['git']} instead")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(["tar", "-xJf", tarball, "-C", tmp, "--strip-components=1"], log)
    tmp.rename(dest)


def _clone(pin, dest, log, submodule_make=None):
    """Clone the pinned tag; submodule_make: the port's `make submodules` arguments."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _run(["git", "clone", "--depth", "1", "--branch", pin["version"], pin["git"], tmp], log)
    if submodule_make:
        _run(["make", "-C", tmp / submodule_make[0], *submodule_make[1:], "submodules"], log)
    else:
        _run(["git", "-C", tmp, "submodule", "update", "--init", "--depth", "1"], log)
    tmp.rename(dest)


def source_tree(board, log):
    """That board's MicroPython tree in the cache (unpacked or cloned on first use), with
    mpy-cross built."""
    s = spec(board)
    tree = cache_dir() / "src" / board
    if not (tree / ".mqnode-source").exists():
        shutil.rmtree(tree, ignore_errors=True)
        vendor = vendor_dir()
        tarball = vendor / MICROPYTHON["tarball"] if vendor else None
        if tarball and tarball.exists() and s["port"] in MICROPYTHON["tarball_ports"]:
            _unpack(MICROPYTHON, tarball, tree, log)
        else:
            _clone(MICROPYTHON, tree, log, [f"ports/{s['port']}"]
                   + ([f"BOARD={s['board']}"] if s["board"] else []))
        (tree / ".mqnode-source").write_text(json.dumps(MICROPYTHON) + "\n")
    if not (tree / "mpy-cross" / "build" / "mpy-cross").exists():
        _run(["make", "-C", tree / "mpy-cross", f"-j{os.cpu_count() or 1}"], log)
    return tree


def picotool(tree, log):
    """picotool_DIR for the rp2 build: picotool built and installed into the cache once."""
    prefix = cache_dir() / f"picotool-{PICOTOOL['version']}"
    config = prefix / "picotool" / "picotoolConfig.cmake"
    if config.exists():
        return config.parent
    src = cache_dir() / "src" / f"picotool-{PICOTOOL['version']}"
    if not src.exists():
        vendor = vendor_dir()
        tarball = vendor / PICOTOOL["tarball"] if vendor else None
        if tarball and tarball.exists():
            _unpack(PICOTOOL, tarball, src, log)
        else:
            _clone(PICOTOOL, src, log)
    build = src / "build"
    build.mkdir(exist_ok=True)
    _run(["cmake", "-S", src, "-B", build, f"-DPICO_SDK_PATH={tree / 'lib' / 'pico-sdk'}",
          "-DPICOTOOL_NO_LIBUSB=1", "-DPICOTOOL_FLAT_INSTALL=1",
          f"-DCMAKE_INSTALL_PREFIX={prefix}"], log)
    _run(["make", "-C", build, f"-j{os.cpu_count() or 1}", "install"], log)
    if not config.exists():
        raise Failure(f"picotool installed no {config}; see {log}")
    return config.parent


# ---------------------------------------------------------------------------- the key


def _manifest(board, manifest):
    return Path(manifest).resolve() if manifest else REPO / "boards" / board / "manifest.py"


def _path_vars(board, tree):
    s = spec(board)
    port = tree / "ports" / s["port"]
    return {"MPY_DIR": str(tree), "MPY_LIB_DIR": str(tree / "lib" / "micropython-lib"),
            "PORT_DIR": str(port), "BOARD_DIR": str(_board_dir(board, tree))}


def _board_dir(board, tree):
    """The MicroPython board folder: ours (in boards/) if the board has one, else the port's."""
    s = spec(board)
    if s.get("board_dir"):
        return REPO / s["board_dir"]
    return tree / "ports" / s["port"] / "boards" / s["board"] if s["board"] else None


def frozen_files(board, tree, manifest=None):
    """What the manifest freezes, evaluated by MicroPython's own tools/manifestfile.py:
    [(target path, source file, opt)]."""
    spec_ = importlib.util.spec_from_file_location("_mp_manifestfile",
                                                   tree / "tools" / "manifestfile.py")
    mf = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mf)
    m = mf.ManifestFile(mf.MODE_FREEZE, _path_vars(board, tree))
    try:
        m.execute(str(_manifest(board, manifest)))
    except mf.ManifestFileError as e:
        raise Failure(f"{_manifest(board, manifest)}: {e}") from None
    return [(f.target_path, f.full_path, f.opt) for f in m.files()]


def key(board, tree, manifest=None):
    """sha256 of the pin, the board, its make flags, our board folder's files and every file
    its manifest freezes."""
    s = spec(board)
    h = hashlib.sha256(json.dumps([MICROPYTHON, PICOTOOL if s["port"] == "rp2" else None,
                                   board, s["make"], s.get("board_dir")]).encode())
    if s.get("board_dir"):
        for f in sorted(p for p in (REPO / s["board_dir"]).iterdir() if p.is_file()):
            h.update(f"{f.name}\0{_sha256(f)}\n".encode())
    for target, path, opt in sorted(frozen_files(board, tree, manifest), key=str):
        h.update(f"{target}\0{opt}\0{_sha256(path)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- build


def frozen(image):
    """The frozen module names of a built image, from the frozen.txt beside it."""
    return Path(image).with_name("frozen.txt").read_text().split()


def _frozen_names(frozen_c):
    """Module names in the build's frozen_content.c (mpy-tool's mp_frozen_names table)."""
    text = Path(frozen_c).read_text()
    table = text.split("const char mp_frozen_names[] = {", 1)[1].split("};", 1)[0]
    return [n for n in re.findall(r'"([^"]*)\\0"', table) if n]


def _images(board):
    return cache_dir() / "images" / board


def cached(board, manifest=None):
    """The cached image built from the current sources, or None (build() makes it)."""
    tree = cache_dir() / "src" / board
    if spec(board)["port"] == "esp32" or not (tree / ".mqnode-source").exists():
        return None
    image = _images(board) / key(board, tree, manifest) / spec(board)["image"]
    return image if image.exists() else None


def _esp_idf_missing(board, manifest):
    s = spec(board)
    tree = cache_dir() / "src" / board
    raise Failure(
        "esp32 needs ESP-IDF, which is not installed (no IDF_PATH, or idf.py not on PATH).\n"
        "Install it, then run this again; the build is then:\n"
        f"  git clone --depth 1 --branch {ESP_IDF} --recursive "
        "https://github.com/espressif/esp-idf.git ~/esp-idf\n"
        "  ~/esp-idf/install.sh esp32\n"
        "  . ~/esp-idf/export.sh\n"
        f"  git clone --depth 1 --branch {MICROPYTHON['version']} {MICROPYTHON['git']} {tree}\n"
        f"  make -C {tree}/mpy-cross\n"
        f"  make -C {tree}/ports/esp32 BOARD={s['board']} submodules\n"
        f"  make -C {tree}/ports/esp32 {' '.join(s['make'])} "
        f"FROZEN_MANIFEST={_manifest(board, manifest)}\n"
        f"  -> {tree}/ports/esp32/{s['built']}")


def build(board, out=None, manifest=None, say=print):
    """Build (or take from the cache) the image for `board`; copy it and frozen.txt into
    `out` (default build/<board>). Returns the image's path in `out`."""
    s = spec(board)
    if s["port"] == "esp32" and not (os.environ.get("IDF_PATH") and shutil.which("idf.py")):
        _esp_idf_missing(board, manifest)
    check_toolchain(board)
    if not _manifest(board, manifest).exists():
        raise Failure(f"no manifest {_manifest(board, manifest)}")
    out = Path(out or REPO / "build" / board)
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{board}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)    # one build of a board at a time (its tree is shared)
        log = root / f"{board}.log"
        log.write_text("")
        tree = source_tree(board, log)
        k = key(board, tree, manifest)
        done = _images(board) / k
        if (done / s["image"]).exists():
            os.utime(done)      # recently used: _prune keeps it
            say(f"firmware {board}: cached ({k[:12]})")
        else:
            say(f"firmware {board}: building MicroPython {MICROPYTHON['version']} "
                f"(log: {log})")
            _make(board, tree, manifest, log, done)
            _prune(board)
    out.mkdir(parents=True, exist_ok=True)
    for name in (s["image"], "frozen.txt"):
        shutil.copyfile(done / name, out / name)
    shutil.copymode(done / s["image"], out / s["image"])
    say(f"firmware {board}: {out / s['image']} ({(out / s['image']).stat().st_size} bytes, "
        f"{len(frozen(out / s['image']))} frozen modules in {out / 'frozen.txt'})")
    return out / s["image"]


def _make(board, tree, manifest, log, done):
    s = spec(board)
    port = tree / "ports" / s["port"]
    env = dict(os.environ)
    if s["port"] == "rp2":
        env["picotool_DIR"] = str(picotool(tree, log))
    board_dir = [f"BOARD_DIR={REPO / s['board_dir']}"] if s.get("board_dir") else []
    built = port / s["built"]
    frozen_c = built.parent / "frozen_content.c"
    # makemanifest.py recompiles a frozen module, and regenerates frozen_content.c, only when
    # a source is newer than its output: the last build in this tree may have frozen another
    # checkout's (newer) files or another manifest. Its frozen outputs go, so this build
    # freezes exactly these sources (a few seconds of mpy-cross; the C is not rebuilt).
    shutil.rmtree(built.parent / "frozen_mpy", ignore_errors=True)
    frozen_c.unlink(missing_ok=True)
    if s["port"] == "rp2":
        # ports/rp2/Makefile runs cmake only when its build folder has no Makefile, so the
        # FROZEN_MANIFEST and BOARD_DIR of the first checkout that built here would stick:
        # configure again (the cache keeps the compiled objects).
        (built.parent / "Makefile").unlink(missing_ok=True)
    _run(["make", "-C", port, f"-j{os.cpu_count() or 1}", *s["make"], *board_dir,
          f"FROZEN_MANIFEST={_manifest(board, manifest)}"], log, env=env)
    if not built.exists() or not frozen_c.exists():
        raise Failure(f"the build made no {built} (or no {frozen_c}); see {log}")
    names = sorted(_frozen_names(frozen_c))
    want = sorted(target for target, _, _ in frozen_files(board, tree, manifest))
    if names != want:
        raise Failure(f"the image's frozen modules are not what {_manifest(board, manifest)} "
                      f"freezes: {sorted(set(names) ^ set(want))}; see {log}")
    if board == "host":     # a static i686 binary runs as is; prove it before caching it
        _run([built, "-c", "import sys; print(sys.implementation, sys.maxsize)"], log)
    tmp = done.with_name(done.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(built, tmp / s["image"])
    (tmp / "frozen.txt").write_text("\n".join(names) + "\n")
    shutil.copyfile(log, tmp / "build.log")
    tmp.rename(done)


def _prune(board):
    """Keep the KEEP_IMAGES most recently built or used images of a board."""
    dirs = sorted((d for d in _images(board).iterdir() if not d.name.endswith(".tmp")),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for d in dirs[KEEP_IMAGES:]:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- CLI


def main(argv=None):
    p = argparse.ArgumentParser(prog="firmware", description=__doc__.split("\n")[0])
    p.add_argument("--board", required=True, help=", ".join(BOARDS))
    p.add_argument("--out", help="output folder (default build/<board>)")
    p.add_argument("--manifest", help="freeze manifest (default boards/<board>/manifest.py)")
    a = p.parse_args(argv)
    try:
        build(a.board, a.out, a.manifest)
    except Failure as e:
        print(f"firmware: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
