# Freeze manifest for the unix port: make -C ports/unix FROZEN_MANIFEST=<repo>/boards/host/manifest.py
# (in a MicroPython tree). Relative paths are resolved against this file's directory.
# The unix port's standard variant: its variants/manifest.py (ssl, mip) plus asyncio. (The
# port's variants/manifest.py alone has no asyncio, and `import mqtt` would fail.)
include("$(PORT_DIR)/variants/standard/manifest.py")

package("mqtt", base_path="../../lib")
package("sensors", base_path="../../lib")
module("board.py")
# the simulated chips the host board ships
for name in ("fake_i2c.py", "fake_onewire.py", "fake_adc.py"):
    module(name)

# main.py stays a file (a frozen main.py would run instead of /main.py; see ../esp32).
for name in ("config.py", "node.py", "probes.py", "discovery.py", "ota.py", "otaboot.py"):
    module(name, base_path="../../firmware")
