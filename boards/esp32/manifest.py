# Freeze manifest: make BOARD=ESP32_GENERIC FROZEN_MANIFEST=<repo>/boards/esp32/manifest.py
# (in a MicroPython tree, ports/esp32). Relative paths are resolved against this file's
# directory (manifestfile.py runs a manifest with its own directory as the cwd).
# What the port freezes for ESP32_GENERIC (asyncio, ntptime, onewire, ...): that board has no
# manifest.py of its own, so the port builds it with boards/manifest.py, and so do we.
include("$(PORT_DIR)/boards/manifest.py")

package("mqtt", base_path="../../lib")
package("sensors", base_path="../../lib")
module("board.py")

# The firmware's modules. main.py is deliberately NOT frozen: at boot MicroPython runs a
# frozen main.py in preference to /main.py (pyexec_file_if_exists checks frozen modules
# first), so a frozen one could never be replaced or removed without reflashing. /main.py
# stays on the filesystem (tools deploy it) and imports these.
for name in ("config.py", "node.py", "probes.py", "discovery.py", "ota.py", "otaboot.py"):
    module(name, base_path="../../firmware")
