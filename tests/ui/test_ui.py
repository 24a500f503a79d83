# SPDX-License-Identifier: MIT
"""The web view (suite 'ui', docs/webview.md) in a real browser: Debian's
chromium, headless, driven by chromedriver through python3-selenium,
against a one-machine cluster from `disagg up` (two compute nodes, two
memory nodes, guests under TCG).

In order, on one cluster and one browser: the page loads with no console
errors and lists every node; a slot created through the page boots and
shows `running`; a resize through the page shows the new sections in the
memory map; a compute migration started from the CLI shows in the page
within 2 s of its event; a memory migration through the page moves the
slot's cells between memory nodes; an error shows the CLI's text; a delete
through the page, from the keyboard. Screenshots (1280x800 and 390x844)
go to ui-screenshots/ in the build tree (build/check/ui-screenshots/
under make check).

Skipped, with the reason, when chromium, chromedriver or selenium is
missing (scripts/install-deps.sh installs them), or when QEMU or the guest
image is.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMEDRIVER = "/usr/bin/chromedriver"
SLOT = "web"
OTHER = "db"   # a second slot, made with the CLI
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False


def build_dir():
    b = os.environ.get("DISAGG_BUILD")
    return pathlib.Path(b) if b else ROOT / "build" / "release"


def bindir():
    for d in (build_dir() / "bin", ROOT / "build" / "bin"):
        if (d / "disagg").exists() and (d / "disagg-compute").exists():
            return d
    pytest.skip("the programs are not linked into a bin/ directory (run make)")


def shots_dir():
    d = build_dir() / "ui-screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def need_browser():
    if not HAVE_SELENIUM:
        pytest.skip("python3-selenium is not installed (scripts/install-deps.sh)")
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (scripts/install-deps.sh)")
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromedriver is not installed: chromium-driver (scripts/install-deps.sh)")


def need_vm_host():
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed")
    if not (ROOT / "build" / "guest" / "initrd.img").exists():
        pytest.skip("no guest image (make builds build/guest)")


class Cluster:
    def __init__(self, data):
        self.data = data
        self.bin = bindir()
        self.env = dict(os.environ, DISAGG_DATA=str(data))

    def disagg(self, *args, check=True, timeout=300):
        p = subprocess.run([str(self.bin / "disagg"), *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"disagg {' '.join(args)} -> {p.returncode}\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    def info(self):
        return json.loads((self.data / "cluster.json").read_text())

    @property
    def url(self):
        o = next(c for c in self.info()["components"] if c["kind"] == "orchestrator")
        return "http://" + o["http"]

    @property
    def token(self):
        return (self.data / "api.tokens").read_text().split()[0]

    def api(self, path, timeout=40):
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())


def alive(pid):
    """True for a running process; a zombie waiting for its reaper is gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def cluster():
    need_browser()
    need_vm_host()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    top = pathlib.Path(tempfile.mkdtemp(prefix="disagg-ui-", dir=shm))
    c = Cluster(top / "cluster")
    up = c.disagg("up", "--memnodes", "2", "--computes", "2", "--pool", "1G",
                  "--accel", "tcg", timeout=180)
    assert f"web view: {c.url}/ui/" in up.stdout, up.stdout
    pids = [x["pid"] for x in c.info()["components"]]
    try:
        yield c
    finally:
        c.disagg("down", check=False, timeout=120)
        time.sleep(0.2)
        left = []
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
                left.append(pid)
        reports = [f"{log}:\n{log.read_text(errors='replace')[-3000:]}"
                   for log in (c.data / "logs").glob("*.log")
                   if SANITIZER_RE.search(log.read_text(errors="replace"))]
        shutil.rmtree(top, ignore_errors=True)
        assert not left, f"pids {left} survived disagg down"
        assert not reports, "\n".join(reports)


@pytest.fixture(scope="module")
def browser(cluster):
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1280,800"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(30)
    viewport(d, 1280, 800)
    try:
        yield d
    finally:
        d.quit()


def viewport(d, w, h, mobile=False):
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})


def shot(d, name):
    d.save_screenshot(str(shots_dir() / name))


def full_shot(d, name, w=1280):
    """The whole page at width w (for docs/webview.png), then 1280x800 again."""
    h = d.execute_script("return document.documentElement.scrollHeight")
    viewport(d, w, min(h, 3000))
    time.sleep(0.3)
    shot(d, name)
    viewport(d, 1280, 800)


def severe(d, allow=()):
    """The browser's SEVERE console entries, but those matching `allow`."""
    return [e for e in d.get_log("browser")
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)]


def wait(d, fn, timeout, what):
    return WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda _: fn(), message=what)


def js(d, code, *args):
    return d.execute_script(code, *args)


def confirm(d):
    wait(d, lambda: js(d, "return document.getElementById('confirm').open"), 5,
         "the confirmation dialog")
    d.find_element(By.ID, "confirm-ok").click()


def slot_state(d):
    return js(d, "const r = document.querySelector('#slot-table tr[data-slot=\"%s\"] .state');"
              "return r ? r.textContent : null" % SLOT)


def test_page_loads_and_lists_every_node(cluster, browser):
    d = browser
    # Without a token: the login form, and not a single call to the API.
    d.get(cluster.url + "/ui/")
    wait(d, lambda: js(d, "return !document.getElementById('login').hidden"), 10, "the login form")
    assert js(d, "return document.getElementById('app').hidden")
    assert severe(d) == []
    # The token typed in the form.
    d.find_element(By.ID, "token").send_keys(cluster.token + Keys.ENTER)
    wait(d, lambda: js(d, "return document.getElementById('conn').textContent") == "connected",
         10, "connected with the typed token")
    # Logged out, then in again with the token in the address's fragment.
    d.find_element(By.ID, "logout").click()
    assert js(d, "return sessionStorage.length") == 0
    t0 = time.monotonic()
    d.get(cluster.url + "/ui/#token=" + cluster.token)
    nodes = cluster.api("/v1/nodes")["nodes"]
    want = sorted(n["node_id"] for n in nodes)
    wait(d, lambda: sorted(int(x) for x in js(
        d, "return [...document.querySelectorAll('article.node')].map(e => e.dataset.node)"))
         == want, 15, f"the page lists nodes {want}")
    print(f"page loaded and listed {len(want)} nodes in {time.monotonic() - t0:.2f} s")
    kinds = js(d, "return [...document.querySelectorAll('article.node')].map(e => e.dataset.kind)")
    assert sorted(kinds) == sorted(n["kind"] for n in nodes)
    # The token left the address bar (it was only ever in the fragment).
    assert "token" not in d.current_url
    assert js(d, "return document.getElementById('conn').textContent") == "connected"
    # The node registrations are in the event list.
    assert js(d, "return document.querySelectorAll('#event-list li[data-kind=node_registered]')"
                 ".length") >= len(nodes)
    shot(d, "cluster-1280x800.png")
    assert severe(d) == []


def test_slot_created_through_the_page_runs(cluster, browser):
    d = browser
    d.find_element(By.CSS_SELECTOR, "#create summary").click()
    name = d.find_element(By.ID, "c-name")
    name.clear()
    name.send_keys(SLOT)
    mem = d.find_element(By.ID, "c-memory")
    mem.clear()
    mem.send_keys("256M")
    d.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    confirm(d)
    t0 = time.monotonic()
    wait(d, lambda: slot_state(d) == "running", 180, "the slot shows running")
    print(f"slot created through the page: running after {time.monotonic() - t0:.1f} s")
    assert cluster.api(f"/v1/slots/{SLOT}")["state"] == "running"
    # Selected after its creation: the detail shows its facts, and the pager
    # figures arrive (the slot is all remote).
    wait(d, lambda: js(d, "return document.getElementById('sd-title').textContent")
         == f"Slot {SLOT}", 10, "the slot's detail")
    wait(d, lambda: js(d, "return document.querySelectorAll('#charts polyline').length") >= 3,
         20, "pager charts with two samples")
    assert severe(d) == []


def map_cells(d):
    return js(d, """
        const slot = [...document.querySelectorAll('#map-slots .maprow[data-slot="%s"] .cell')]
          .map(c => [c.dataset.kind, c.dataset.memnode || null]);
        const mem = [...document.querySelectorAll('#map-memnodes .cell[data-slot="%s"]')]
          .map(c => [c.closest('.maprow').dataset.memnode, c.dataset.section]);
        return [slot, mem];""" % (SLOT, SLOT))


def test_resize_through_the_page_shows_new_sections(cluster, browser):
    d = browser
    slot_cells, mem_cells = map_cells(d)
    assert len(slot_cells) == 2 and len(mem_cells) == 2, (slot_cells, mem_cells)
    box = d.find_element(By.ID, "sd-resize")
    box.clear()
    box.send_keys("512M")
    d.find_element(By.CSS_SELECTOR, "#resize-form button[type=submit]").click()
    confirm(d)
    t0 = time.monotonic()
    wait(d, lambda: len(map_cells(d)[0]) == 4 and len(map_cells(d)[1]) == 4, 120,
         "four sections of the slot in the memory map")
    print(f"resize through the page: 4 sections in the map after {time.monotonic() - t0:.1f} s")
    secs = cluster.api(f"/v1/sections?slot={SLOT}")["sections"]
    assert sorted([str(s["memnode"]), str(s["section"])] for s in secs) == \
        sorted(map_cells(d)[1])
    wait(d, lambda: "resized" in js(d, "return document.getElementById('flash').textContent"),
         10, "the resize's answer")
    # A second slot, half local, from the CLI: the page shows it and its cells.
    cluster.disagg("slot", "create", OTHER, "--vcpus", "1", "--memory", "256M",
                   "--remote", "50")
    wait(d, lambda: js(d, "return document.querySelectorAll("
                          "'#map-slots .maprow[data-slot=\"%s\"] .cell').length" % OTHER) == 2,
         20, f"slot {OTHER} in the memory map")
    assert js(d, "return [...document.querySelectorAll('#map-slots .maprow[data-slot=\"%s\"] "
                 ".cell')].map(c => c.dataset.kind).sort().join()" % OTHER) == "local,remote"
    time.sleep(4)   # a few more pager samples for the charts in the pictures
    shot(d, "slot-1280x800.png")
    full_shot(d, "webview-full.png")
    assert severe(d) == []


def test_cli_migration_shows_within_two_seconds(cluster, browser):
    d = browser
    src = cluster.api(f"/v1/slots/{SLOT}")["compute"]
    dst = next(n["node_id"] for n in cluster.api("/v1/nodes")["nodes"]
               if n["kind"] == "compute" and n["node_id"] != src)
    since = max([e["seq"] for e in cluster.api("/v1/events?limit=10000")["events"]] or [0])
    seen = {}

    def follow():
        # The test's own long poll: when each event of the move was recorded.
        s = since
        while "migration_completed" not in seen and "migration_failed" not in seen:
            for e in cluster.api(f"/v1/events?since={s}&wait=10")["events"]:
                s = e["seq"]
                seen.setdefault(e["kind"], time.monotonic())

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.3)
    p = cluster.disagg("slot", "migrate", SLOT, "--to", str(dst), timeout=120)
    t.join(30)
    assert "migration_completed" in seen, (seen, p.stdout, p.stderr)
    wait(d, lambda: js(d, "const r = document.querySelector('#slot-table tr[data-slot=\"%s\"]');"
                       "return r && r.dataset.compute" % SLOT) == str(dst), 10,
         "the slot on its new compute node")
    t_page = time.monotonic()
    lag = t_page - seen["migration_completed"]
    print(f"compute migration: the page showed the slot on node {dst} "
          f"{lag:.2f} s after the migration_completed event")
    assert lag <= 2.0
    got = js(d, "return [...document.querySelectorAll('#event-list li')].map(e => e.dataset.kind)")
    assert "migration_started" in got and "migration_completed" in got
    assert severe(d) == []


def test_memory_migration_through_the_page(cluster, browser):
    d = browser
    secs = cluster.api(f"/v1/sections?slot={SLOT}")["sections"]
    src = secs[0]["memnode"]
    dst = next(n["node_id"] for n in cluster.api("/v1/nodes")["nodes"]
               if n["kind"] == "memnode" and n["node_id"] != src)
    wait(d, lambda: js(d, "return document.getElementById('sd-title').textContent")
         == f"Slot {SLOT}", 10, "the slot's detail")
    js(d, "document.getElementById('sd-mm-from').value = arguments[0];"
          "document.getElementById('sd-mm-to').value = arguments[1]", str(src), str(dst))
    d.find_element(By.CSS_SELECTOR, "#migmem-form button[type=submit]").click()
    confirm(d)
    t0 = time.monotonic()
    wait(d, lambda: all(m == str(dst) for m, _ in map_cells(d)[1]) and len(map_cells(d)[1]) == 4,
         120, f"every section of the slot on memory node {dst} in the map")
    print(f"memory migration through the page: the map showed it after "
          f"{time.monotonic() - t0:.1f} s")
    assert {s["memnode"] for s in cluster.api(f"/v1/sections?slot={SLOT}")["sections"]} == {dst}
    got = js(d, "return [...document.querySelectorAll('#event-list li')].map(e => e.dataset.kind)")
    assert "memory_migration_started" in got
    assert severe(d) == []


def test_phone_size_and_the_cli_error_text(cluster, browser):
    d = browser
    viewport(d, 390, 844, mobile=True)
    time.sleep(0.5)
    width = js(d, "return document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    shot(d, "cluster-390x844.png")
    d.execute_script("document.getElementById('slots').scrollIntoView()")
    time.sleep(0.3)
    shot(d, "slots-390x844.png")
    viewport(d, 1280, 800)
    # Creating the slot again: the page shows what the CLI prints.
    cli = cluster.disagg("slot", "create", SLOT, "--vcpus", "1", "--memory", "256M",
                         check=False)
    assert cli.returncode != 0
    want = next(line for line in cli.stderr.splitlines() if line.startswith("error: "))
    js(d, "document.getElementById('create').open = true")
    name = d.find_element(By.ID, "c-name")
    name.clear()
    name.send_keys(SLOT)
    d.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    confirm(d)
    wait(d, lambda: js(d, "return document.getElementById('flash').textContent") == want, 10,
         f"the page shows {want!r}")
    # The refused request is the only console error (the browser logs the 409).
    assert severe(d, allow=("/v1/slots - Failed to load resource",)) == []


def test_delete_through_the_page(cluster, browser):
    d = browser
    # From the keyboard: focus the slot's row, Enter selects it.
    js(d, "document.querySelector('#slot-table tr[data-slot=\"%s\"]').focus()" % SLOT)
    ActionChains(d).send_keys(Keys.ENTER).perform()   # to whatever has the focus
    wait(d, lambda: js(d, "return document.getElementById('sd-title').textContent")
         == f"Slot {SLOT}", 10, "the slot's detail")
    js(d, "document.getElementById('sd-delete').click()")
    confirm(d)
    wait(d, lambda: js(d, "return document.querySelector('#slot-table tr[data-slot=\"%s\"]')"
                       % SLOT) is None, 60, "the slot gone from the page")
    cluster.disagg("slot", "delete", OTHER)
    wait(d, lambda: js(d, "return document.querySelectorAll('#slot-table tbody tr').length") == 0,
         20, "no slot left in the page")
    assert cluster.api("/v1/sections")["sections"] == []
    assert js(d, "return document.querySelectorAll('#map-memnodes .cell:not(.free)').length") == 0
    assert severe(d) == []
