"""A private network namespace for one test: made with `ip netns add`, deleted at the end.

    with NetNamespace() as ns:
        p = ns.popen(["mosquitto", "-c", conf])     # runs inside the namespace
        ...

Everything started through popen() runs inside it and is stopped by its pid (SIGTERM, then
SIGKILL) before the namespace goes; loopback is up. Needs root (CAP_SYS_ADMIN) and iproute2.
"""

import shutil
import subprocess
import uuid


class NetNamespace:
    def __init__(self):
        self.name = "mqnode-" + uuid.uuid4().hex[:8]
        self._procs = []

    def __enter__(self):
        ip = shutil.which("ip") or "/usr/sbin/ip"
        self.ip = ip
        r = subprocess.run([ip, "netns", "add", self.name], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"ip netns add {self.name}: {r.stderr.strip()} (needs root and "
                               "iproute2: apt-get install iproute2)")
        subprocess.run(self.cmd(["ip", "link", "set", "lo", "up"]), check=True)
        return self

    def __exit__(self, *exc):
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        subprocess.run([self.ip, "netns", "del", self.name], check=True)

    def cmd(self, argv):
        """argv run inside the namespace."""
        return [self.ip, "netns", "exec", self.name] + [str(a) for a in argv]

    def popen(self, argv, **kw):
        """Start argv inside the namespace; stopped by pid when the namespace goes."""
        p = subprocess.Popen(self.cmd(argv), **kw)
        self._procs.append(p)
        return p
