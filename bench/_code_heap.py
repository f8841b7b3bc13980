# Worker for suite.py (MicroPython): the heap that loading modules takes
# (their bytecode, constants, functions and globals), i.e. what freezing
# them into the firmware, as boards/*/manifest.py do, gives back.
# argv: module names, imported in order; a leading "+" imports the module
# before the measurement starts (asyncio: frozen into every port, and part
# of every asyncio client's harness). Prints "code <bytes>", then "done".
import gc
import sys

for m in sys.argv[1:]:
    if m[0] == "+":
        __import__(m[1:])
gc.collect()
free = gc.mem_free()
for m in sys.argv[1:]:
    if m[0] != "+":
        __import__(m)
gc.collect()
print("code", free - gc.mem_free())
print("done")
