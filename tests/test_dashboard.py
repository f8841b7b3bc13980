"""The monitor's web dashboard in a real headless Chromium (Debian chromium + chromium-driver,
driven by selenium): the demo's three host-board nodes on MicroPython appear in the fleet
table, a chart has points, a malformed payload shows as that node's error, and the node the
demo kills turns offline on the page without a reload. Plus the HTTP edges without a browser."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from conftest import REPO, pub

DEMO = [sys.executable, str(REPO / "tools" / "demo.py")]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,1400"]
SCREENSHOT = os.environ.get("MQNODE_SCREENSHOT")   # a path: save one screenshot there


def find(name, *dirs):
    path = shutil.which(name) or next((f"{d}/{name}" for d in dirs
                                       if os.path.exists(f"{d}/{name}")), None)
    if path is None:
        pytest.fail(f"{name} not found: apt-get install chromium chromium-driver (.ci/run "
                    "does this)", pytrace=False)
    return path


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = find("chromium", "/usr/bin")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        opts.add_argument(flag)
    service = Service(find("chromedriver", "/usr/bin", "/usr/lib/chromium"))
    drv = webdriver.Chrome(options=opts, service=service)
    drv.set_script_timeout(10)
    yield drv
    drv.quit()


class Demo:
    """tools/demo.py in the background; its lines collected by a thread."""

    def __init__(self, *args):
        self.p = subprocess.Popen(DEMO + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, "".join(self.lines))
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"{pattern!r} not in the demo's output:\n{''.join(self.lines)}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_js(drv, script, timeout=20):
    """Poll a JS expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = drv.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{script} still {value!r} after {timeout}s; page text:\n"
                + drv.find_element("tag name", "body").text)


ROW = "[...document.querySelectorAll('#fleet tbody tr')].map(r => [...r.children].map(c => " \
      "c.textContent))"


def demo_child(demo_pid, *words):
    """The pid of the demo's child process whose command line has these words."""
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            argv = open(f"/proc/{d}/cmdline").read().split("\0")
        except OSError:
            continue
        if int(stat[1]) == demo_pid and all(w in argv for w in words):
            return int(d)
    pytest.fail(f"no child of the demo runs {words}")


def test_dashboard_in_chromium(browser):
    demo = Demo("--interval", "1", "--kill-after", "0", "--duration", "50")
    try:
        url = demo.wait_for(r"demo: dashboard: (http://127\.0\.0\.1:\d+/)").group(1)
        port = int(demo.wait_for(r"broker \w+ on 127\.0\.0\.1:(\d+)").group(1))
        browser.get(url)
        browser.execute_script("window.loadedOnce = 'yes'")   # gone if the page reloads
        # the three nodes, online, with a reading
        rows = wait_js(browser, f"(r => r.length === 3 && r.every(x => x[1] === 'online' && "
                                f"x[3].includes('air.temperature=')) && r)({ROW})")
        assert [r[0] for r in rows] == ["node-1", "node-2", "node-3"], rows
        # a chart per quantity per node, with points (uPlot draws into a canvas)
        points = wait_js(browser, "(() => { const c = window.mqnode.charts.get('node-1'); "
                                  "const q = c && c.get('air.temperature'); "
                                  "return q && q.plot.data[0].length >= 2 && q.plot.data[0].length; })()")
        assert points >= 2
        assert browser.execute_script(
            "return document.querySelectorAll('section.node canvas').length") >= 3 * 2
        # a malformed telemetry payload: an error for that node, recorded, nothing breaks
        pub(SimpleNamespace(host="127.0.0.1", port=port), "mqnode-demo/node-1/telemetry",
            "{not json", qos=1)
        err = wait_js(browser, f"({ROW}).find(r => r[0] === 'node-1')[5].includes('malformed') "
                               f"&& ({ROW}).find(r => r[0] === 'node-1')[5]")
        assert "{not json" in err, err
        wait_js(browser, "document.getElementById('alerts').textContent.includes("
                         "'node-1: malformed telemetry')")
        # a node killed (no DISCONNECT: the broker sends its will) turns offline, without a
        # reload; the will alert is listed
        os.kill(demo_child(demo.p.pid, "--id", "node-2"), signal.SIGKILL)
        wait_js(browser, f"({ROW}).find(r => r[0] === 'node-2')[1] === 'offline'", timeout=25)
        wait_js(browser, "document.getElementById('alerts').textContent.includes("
                         "'node-2: will')")
        assert browser.execute_script("return window.loadedOnce") == "yes"
        rows = browser.execute_script("return " + ROW)
        assert [r[1] for r in rows] == ["online", "offline", "online"], rows
        assert browser.execute_script("return document.getElementById('conn').textContent") \
            == "live"
        # the recorded history survives a reload: the alert list comes from it
        browser.refresh()
        wait_js(browser, "document.getElementById('alerts').textContent.includes("
                         "'node-1: malformed telemetry')")
        wait_js(browser, f"({ROW}).length === 3")
        # node-2 is dead: its chart's points after the reload can only come from the history
        wait_js(browser, "(() => { const c = window.mqnode.charts.get('node-2'); "
                         "const q = c && c.get('air.temperature'); "
                         "return q && q.plot.data[0].length >= 2; })()")
        # a node name from the network is text, never markup
        evil = "<img src=x onerror=window.pwned=1>"
        pub(SimpleNamespace(host="127.0.0.1", port=port), f"mqnode-demo/{evil}/status",
            "online", qos=1)
        wait_js(browser, f"({ROW}).some(r => r[0] === '{evil}')")
        assert browser.execute_script("return document.querySelectorAll('img').length") == 0
        assert browser.execute_script("return window.pwned") is None
        if SCREENSHOT:
            browser.save_screenshot(SCREENSHOT)
        logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs   # no script error, no failed request
    finally:
        demo.stop()
    out = "".join(demo.lines)
    assert "Traceback" not in out, out


# ---- the HTTP side without a browser ----

def test_a_slow_event_stream_client_is_cut_off_not_buffered():
    import asyncio
    sys.path.insert(0, str(REPO / "tools"))
    import dashboard
    import monitor

    async def main():
        m = monitor.Monitor("fleet", out=open(os.devnull, "w"))
        d = dashboard.Dashboard(m)
        slow, fast = asyncio.Queue(dashboard.CLIENT_QUEUE + 1), asyncio.Queue()
        d.clients.update({slow, fast})
        for i in range(dashboard.CLIENT_QUEUE + 50):
            m.handle("fleet/a/status", b"online")
            if not fast.empty():
                fast.get_nowait()
        assert slow not in d.clients and fast in d.clients
        assert slow.qsize() == dashboard.CLIENT_QUEUE + 1          # bounded: no more kept
        items = [slow.get_nowait() for _ in range(slow.qsize())]
        assert items[-1] is None and all(json.loads(x)["event"] == "online" for x in items[:-1])

    asyncio.run(main())


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_http_edges(mosquitto, prefix, start_py, tmp_path):
    p = start_py("cpython", REPO / "tools" / "monitor.py",
                 ["--host", mosquitto.host, "--port", mosquitto.port, "--prefix", prefix,
                  "--history", tmp_path / "h.sqlite", "--web", "127.0.0.1:0", "--duration", 20])
    url = p.expect("dashboard at ", timeout=10).split("dashboard at ", 1)[1]
    status, ctype, body = get(url)
    assert status == 200 and ctype.startswith("text/html") and b"/uplot/uPlot.iife.min.js" in body
    status, _, body = get(url + "uplot/uPlot.iife.min.js")
    assert status == 200 and len(body) > 40000      # served locally, no CDN
    assert b"http://" not in get(url)[2] and b"https://" not in get(url)[2]
    assert get(url + "nope")[0] == 404
    assert get(url + "api/series?node=x&hours=-1")[0] == 400
    assert get(url + "api/series?hours=1")[0] == 400
    assert json.loads(get(url + "api/series?node=x&hours=1")[2]) == {}
    assert json.loads(get(url + "api/state")[2])["nodes"] == []
    host, port = url[len("http://"):].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:   # not HTTP at all
        s.sendall(b"hello\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection((host, int(port)), timeout=5) as s:   # an endless header
        s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 20000)
        assert s.recv(100) == b""                   # dropped, nothing served
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /api/state HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 405 ")
    assert get(url)[0] == 200                       # still serving


def test_web_address_in_use_is_a_clear_error(mosquitto, prefix, start_py):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = start_py("cpython", REPO / "tools" / "monitor.py",
                     ["--host", mosquitto.host, "--port", mosquitto.port, "--prefix", prefix,
                      "--no-history", "--web", f"127.0.0.1:{port}"])
        assert p.wait(timeout=15) == 2
        assert f"monitor: --web 127.0.0.1:{port}: Address already in use" in p.stdout.read()
    p = start_py("cpython", REPO / "tools" / "monitor.py", ["--host", "h", "--web", "8080"])
    assert p.wait(timeout=10) == 2 and "expected HOST:PORT" in p.stdout.read()
