# Virtual-board bootstrap (MicroPython, unix port).
#
# Run by tests/vboard/vboard.py as
#     micropython -X heapsize=256K -i vb_boot.py      (cwd = the flash directory)
# One interpreter process == one "boot" of the virtual board. This file:
#   * remounts "/" on the flash directory (VfsPosix(root) behind a thin FlashFS wrapper that
#     gives ilistdir 4-tuples with sizes and reports a 2 MiB flash in statvfs),
#   * sets sys.path like a board (["", ".frozen", "/lib"]),
#   * installs a `machine` proxy: reset() -> sys.exit(42) (the supervisor turns exit code 42
#     into a hard reset), soft_reset() -> sys.exit(0), unique_id(), freq(), reset_cause(),
#   * optionally (VB_PLATFORM/VB_MACHINE/VB_MPY_ARCH) installs a `sys` proxy so that code doing
#     `import sys` sees e.g. sys.platform == "esp32" (a shim: the real sys module is unchanged),
#   * runs boot.py and, when booting into the friendly REPL (VB_MODE=friendly), main.py,
#     catching exceptions like a board's pyexec_file_if_exists,
#   * prints the markers the supervisor waits for (start, ready, and exit:N when boot.py or
#     main.py raise SystemExit -- `-i` would otherwise swallow it and start the REPL), and deletes every name it defined,
#     so the REPL starts with clean globals (plus whatever boot.py/main.py defined).
#
# Environment (set by the supervisor): VB_FLASH (absolute flash dir), VB_MODE (friendly|raw),
# VB_BOOT (hard|soft), VB_UID (hex), optional VB_PLATFORM, VB_MACHINE, VB_MPY_ARCH,
# VB_MPY (a whole sys.implementation._mpy), VB_VERSION ("1.19.1"); these need VB_PLATFORM.
# VB_FLASH_BYTES: the flash size statvfs reports (default 2 MiB).
# The markers must match vboard.py (MARK_START / MARK_READY / MARK_EXIT).


def _vb_main():
    import sys
    import os
    import vfs

    g = globals()
    for _n in ("_vb_main", "__file__"):
        if _n in g:
            del g[_n]

    getenv = os.getenv
    flash = getenv("VB_FLASH") or os.getcwd()
    mode = getenv("VB_MODE") or "friendly"
    boot_kind = getenv("VB_BOOT") or "hard"

    # ------------------------------------------------------------------ flash filesystem
    FLASH_BYTES = int(getenv("VB_FLASH_BYTES") or 2 * 1024 * 1024)
    BLOCK = 4096

    class FlashFS:
        def __init__(self, fs):
            self._fs = fs
            # pass-through methods as bound methods of the VfsPosix: no wrapper frames in
            # tracebacks (an OSError looks like a board's)
            for name in ("open", "stat", "chdir", "getcwd", "mkdir", "rmdir", "remove",
                         "rename"):
                setattr(self, name, getattr(fs, name))

        def __repr__(self):
            return "<VfsFlash>"

        def __str__(self):
            return "<VfsFlash>"

        def mount(self, readonly, mkfs):
            return self._fs.mount(readonly, mkfs)

        def umount(self):
            return self._fs.umount()

        def _join(self, path, name):
            if not path:
                return name
            if path.endswith("/"):
                return path + name
            return path + "/" + name

        def ilistdir(self, path):
            fs = self._fs
            for ent in fs.ilistdir(path):
                name, typ, ino = ent[0], ent[1], ent[2]
                size = 0
                if typ != 0x4000:
                    try:
                        size = fs.stat(self._join(path, name))[6]
                    except OSError:
                        pass
                yield (name, typ, ino, size)

        def _used(self, path, depth):
            total = 0
            if depth > 16:
                return 0
            for name, typ, _ino, size in self.ilistdir(path):
                if typ == 0x4000:
                    total += BLOCK + self._used(self._join(path, name), depth + 1)
                else:
                    total += (size + BLOCK - 1) // BLOCK * BLOCK
            return total

        def statvfs(self, path):
            blocks = FLASH_BYTES // BLOCK
            try:
                used = self._used("/", 0) // BLOCK
            except OSError:
                used = 0
            free = blocks - used
            if free < 0:
                free = 0
            return (BLOCK, BLOCK, blocks, free, free, 0, 0, 0, 0, 255)

    vfs.umount("/")
    vfs.mount(FlashFS(vfs.VfsPosix(flash)), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]

    # ------------------------------------------------------------------ machine proxy
    import machine as real_machine

    uid_hex = getenv("VB_UID") or ""
    try:
        import binascii

        uid = binascii.unhexlify(uid_hex) if uid_hex else b""
    except Exception:
        uid = b""
    if not uid:
        import hashlib

        uid = hashlib.sha256(flash.encode()).digest()[:6]

    class Machine:
        PWRON_RESET = 1
        HARD_RESET = 2
        WDT_RESET = 3
        DEEPSLEEP_RESET = 4
        SOFT_RESET = 5

        def __init__(self):
            self._freq = 160000000
            self._cause = 5 if boot_kind == "soft" else 1

        def __getattr__(self, name):
            return getattr(real_machine, name)

        def reset(self):
            sys.exit(42)

        def soft_reset(self):
            sys.exit(0)

        def unique_id(self):
            return uid

        def freq(self, hz=None):
            if hz is None:
                return self._freq
            self._freq = int(hz)

        def reset_cause(self):
            return self._cause

    sys.modules["machine"] = Machine()

    # ------------------------------------------------------------------ optional sys identity
    platform = getenv("VB_PLATFORM")
    if platform:
        real_sys = sys
        impl = sys.implementation
        mpy = getattr(impl, "_mpy", 0)
        arch = getenv("VB_MPY_ARCH")
        if arch:
            mpy = (mpy & ~(0xF << 10)) | ((int(arch) & 0xF) << 10)
        if getenv("VB_MPY"):       # a whole _mpy: an older bytecode version, say
            mpy = int(getenv("VB_MPY"))
        mach = getenv("VB_MACHINE") or impl._machine
        ver = impl.version
        if getenv("VB_VERSION"):   # "1.19.1": the MicroPython release to claim
            ver = tuple(int(x) for x in getenv("VB_VERSION").split(".")) + ("",)

        class Impl:
            name = impl.name
            version = ver
            _machine = mach
            _mpy = mpy

            def __getattr__(self, n):
                return getattr(impl, n)

        class Sys:
            def __getattr__(self, n):
                return getattr(real_sys, n)

        shim = Sys()
        shim.platform = platform
        shim.implementation = Impl()
        sys.modules["sys"] = shim

    # ------------------------------------------------------------------ boot.py / main.py
    def run_file(fname):
        # Like pyexec_file_if_exists(): run in __main__'s globals, print exceptions,
        # let SystemExit through (the supervisor turns the process exit into a reset).
        try:
            os.stat(fname)
        except OSError:
            return
        try:
            with open(fname) as f:
                src = f.read()
            exec(compile(src, fname, "exec"), g)
        except SystemExit as e:
            # Under `micropython -i` a SystemExit in the script does not end the process, so
            # tell the supervisor instead; it kills this process and reboots (code 42 = hard).
            code = e.args[0] if e.args else 0
            if code is None:
                code = 0
            elif not isinstance(code, int):
                print(code)
                code = 1
            sys.stdout.write("\x1b]vb:exit:%d\x07" % code)
            import time

            while True:
                time.sleep_ms(1000)
        except BaseException as e:  # KeyboardInterrupt included, as on a board
            sys.print_exception(e)

    import micropython

    try:
        # Marker 1: setup done, boot.py runs next with Ctrl-C enabled. The supervisor holds
        # host input back until it sees this, so a Ctrl-C can never break the setup above.
        sys.stdout.write("\x1b]vb:start\x07")
        run_file("boot.py")
        if mode == "friendly":
            run_file("main.py")
    except KeyboardInterrupt:   # arrived between/around the files
        pass
    # From here on 0x03 is data (SIGINT handler removed, so SigCgt is clear and the supervisor
    # forwards it); the REPL re-enables Ctrl-C for each command it runs.
    micropython.kbd_intr(-1)
    # Marker 2: boot finished, the port's REPL starts next.
    sys.stdout.write("\x1b]vb:ready\x07")


_vb_main()
