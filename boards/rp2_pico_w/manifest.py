# Freeze manifest: make BOARD=RPI_PICO_W FROZEN_MANIFEST=<repo>/boards/rp2_pico_w/manifest.py
# (in a MicroPython tree, ports/rp2). Relative paths are resolved against this file's
# directory (manifestfile.py runs a manifest with its own directory as the cwd).
# RPI_PICO_W's own manifest, as the port builds that board: the port's boards/manifest.py
# (asyncio, onewire, ...) plus bundle-networking (ntptime: a TLS node sets its clock) and aioble.
include("$(BOARD_DIR)/manifest.py")

package("mqtt", base_path="../../lib")
package("sensors", base_path="../../lib")
module("board.py")

# The firmware's modules. main.py is deliberately NOT frozen: at boot MicroPython runs a
# frozen main.py in preference to /main.py (pyexec_file_if_exists checks frozen modules
# first), so a frozen one could never be replaced or removed without reflashing. /main.py
# stays on the filesystem (tools deploy it) and imports these.
for name in ("config.py", "node.py", "probes.py", "discovery.py", "ota.py", "otaboot.py"):
    module(name, base_path="../../firmware")
