# The few things MicroPython and CPython spell differently.
try:
    from time import ticks_ms
except ImportError:  # CPython: a ms clock that wraps at 2**30 like MicroPython's
    from time import monotonic_ns

    def ticks_ms():
        return monotonic_ns() // 1000000 & 0x3FFFFFFF

try:
    from asyncio import sleep_ms
except ImportError:  # CPython
    from asyncio import sleep

    def sleep_ms(ms):
        return sleep(ms / 1000)
