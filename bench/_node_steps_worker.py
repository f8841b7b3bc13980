# Worker for heap32_steps.py (MicroPython): the heap a whole host-board node
# holds at each step of its life, gc.mem_alloc() after gc.collect(): the
# imports in the order a boot makes them (mqtt first: the client's own part),
# the config, the Node, then the node's own run() as a task, watched from
# here: connected, discovery sent, the first telemetry sent, and the steady
# state after n readings, each commanded by a cmd/read this worker publishes
# through the node's own client (what suite.py's driver does from outside).
# argv: config_path host:port n [--keep-config]. Prints "step <name> <bytes>
# <modules loaded so far>" lines, then "done".
import gc
import sys

gc.collect()
A0 = gc.mem_alloc()


def step(name):
    gc.collect()
    print("step", name.replace(" ", "_"), gc.mem_alloc() - A0, " ".join(sys.modules))


import asyncio  # noqa: E402 (frozen into every port: not the node's)
step("asyncio")
for m in ("json", "os", "mqtt", "board", "config", "node", "main"):
    __import__(m)
    step("import " + m)
import board  # noqa: E402
import config  # noqa: E402
import node  # noqa: E402

cfg_path, broker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = config.load(*board.config(["--config", cfg_path, "--id", "steps", "--broker", broker]),
                  auto_id="auto")
step("config loaded")
if "--keep-config" not in sys.argv:   # main.py drops it once checked (before f/main.py kept it)
    del sys.modules["config"], config
    step("config dropped")
nd = node.Node(cfg, board)
step("Node built")


async def until(cond):
    for _ in range(1000):
        if cond():
            return
        await asyncio.sleep_ms(10)
    raise OSError("timeout")


async def watch():
    t = asyncio.create_task(nd.run())
    c = nd.client
    await until(lambda: c.up.is_set())
    step("connected")
    await until(lambda: nd.seq >= 1 and not nd.buffer)
    step("first telemetry sent")
    for i in range(n):
        seq = nd.seq
        await c.publish(nd.t_cmd + "read", b"", 1, timeout=10)
        await until(lambda: nd.seq > seq and not nd.buffer)
    step("%d readings later" % n)
    nd._done.set()
    await t
    step("stopped")


asyncio.run(watch())
print("done")
