# SPDX-License-Identifier: MIT
"""A whole one-machine cluster with real guests: `disagg up`, slots through
the orchestrator, the guest's memory verified at every step, an orchestrator
killed and restarted under a running VM, and capacity errors that leave
nothing allocated behind."""
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

import authkit  # tests/functional, on the path through conftest (vmlib)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")


def bindir():
    build = os.environ.get("DISAGG_BUILD")
    for d in ([pathlib.Path(build) / "bin"] if build else []) + [ROOT / "build" / "bin"]:
        if (d / "disagg").exists() and (d / "disagg-compute").exists():
            return d
    pytest.skip("the programs are not linked into a bin/ directory (run make)")


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

    def json(self, *args):
        return json.loads(self.disagg("--json", *args).stdout)

    def info(self):
        return json.loads((self.data / "cluster.json").read_text())

    def auth(self):
        """The token and node secret `disagg up` made (authkit.ClusterAuth)."""
        return authkit.ClusterAuth(self.data, existing=True)

    def token_for(self, addr):
        """The bearer token for a component's HTTP address: the people token
        for the orchestrator, the orchestrator's token for a node."""
        a = self.auth()
        for x in self.info()["components"]:
            if x.get("http") == addr:
                return a.token if x["kind"] == "orchestrator" else a.orch_token(x["node_id"])
        return a.token

    def component(self, name):
        return next(c for c in self.info()["components"] if c["name"] == name)

    def guest(self, slot, command):
        out = self.disagg("slot", "guest", slot, command, check=False)
        return out.returncode, out.stdout.strip() + out.stderr.strip()

    def logs_clean(self):
        for log in (self.data / "logs").glob("*.log"):
            text = log.read_text(errors="replace")
            assert not SANITIZER_RE.search(text), f"{log}:\n{text[-3000:]}"


def alive(pid):
    """True for a running process; a zombie waiting for its reaper is gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "2", "--computes", "1", "--pool", "1G",
             "--accel", "tcg", timeout=180)
    pids = [x["pid"] for x in c.info()["components"]]
    try:
        yield c
    finally:
        down(c, pids)


@contextlib.contextmanager
def running(tmp_path, *up_args, timeout=180):
    """A cluster from `disagg up UP_ARGS --accel tcg`, brought down (down())
    after the block."""
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", *up_args, "--accel", "tcg", timeout=timeout)
    pids = [x["pid"] for x in c.info()["components"]]
    try:
        yield c
    finally:
        down(c, pids)


def down(c, pids):
    """`disagg down`: every pid of `pids` must be gone, no log may hold a sanitizer report."""
    c.disagg("down", check=False, timeout=120)
    time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"pid {pid} survived disagg down")
    forget_run_dirs(pids)
    c.logs_clean()


def forget_run_dirs(pids):
    """Remove the empty default run directories (/dev/shm) that agents of
    `pids` left: a test that kills an agent on purpose (SIGKILL) leaves its
    lock and owner record there, which only that agent's next start would
    clean up. A directory that still holds a VM's is left alone (its boot
    cache is not a VM's)."""
    for d in pathlib.Path("/dev/shm").glob("disagg-compute-*"):
        try:
            owner = (d / ".owner").read_text()
            pid = int(re.search(r"^pid (\d+)$", owner, re.M).group(1))
        except (OSError, AttributeError, ValueError):
            continue
        if pid in pids and not alive(pid) and \
                not any(x.is_dir() and x.name != "boot-cache" for x in d.iterdir()):
            shutil.rmtree(d, ignore_errors=True)


def allocated_sections(c):
    return c.json("section", "ls")["sections"]


def test_slot_lifecycle_with_orchestrator_restart(cluster):
    c = cluster
    c.disagg("slot", "create", "web", "--vcpus", "1", "--memory", "512M",
             "--remote", "50", timeout=180)
    slot = c.json("slot", "show", "web")
    assert slot["state"] == "running"
    remote = [s for s in slot["sections"] if s["kind"] == "remote"]
    assert len(remote) == 2 and len(allocated_sections(c)) == 2
    assert c.guest("web", "FILL 1 7 200")[0] == 0
    rc, out = c.guest("web", "VERIFY 1")
    assert rc == 0 and "mismatches=0" in out, out

    # Kill the orchestrator outright; the VM must not notice.
    orch = c.component("orchestrator")
    os.kill(orch["pid"], signal.SIGKILL)
    compute = c.component("compute-1")
    # The agent answers its orchestrator only: the test speaks with its token.
    req = urllib.request.Request(f"http://{compute['http']}/v1/vms/web/guest",
                                 data=json.dumps({"command": "VERIFY 1"}).encode(),
                                 method="POST", headers=c.auth().headers(
                                     c.auth().orch_token(compute["node_id"])))
    answer = json.load(urllib.request.urlopen(req, timeout=120))
    assert answer["ok"] and "mismatches=0" in answer["reply"], answer

    # Restart it on the same address and database: the state is intact.
    prog = c.bin / "disagg-orchestrator"
    log = open(c.data / "logs" / "orchestrator-restarted.log", "ab")
    p = subprocess.Popen([str(prog), "--http", orch["http"], "--db",
                          str(c.data / "orchestrator.db"), "--key",
                          str(c.data / "cluster.key"), "--grant-key",
                          str(c.data / "grant.key"), "--node-id", "1000",
                          "--api-tokens", str(c.data / "api.tokens"),
                          "--node-secret", str(c.data / "node.secret"),
                          "--tls-ca", str(c.data / "tls" / "ca.pem"),
                          "--tls-cert", str(c.data / "tls" / "orchestrator.pem"),
                          "--tls-key", str(c.data / "tls" / "orchestrator.key")],
                         stdout=subprocess.PIPE, stderr=log)
    try:
        assert b"listening on" in p.stdout.readline()
        again = c.json("slot", "show", "web")
        assert again["state"] == "running"
        assert again["sections"] == slot["sections"]
        assert c.guest("web", "VERIFY 1")[0] == 0

        # Grow while it runs, use the new memory, shrink back.
        c.disagg("slot", "resize", "web", "--memory", "768M", timeout=180)
        rc, out = c.guest("web", "MEMINFO")
        assert rc == 0 and int(out.split("memtotal_kb=")[1].split()[0]) > 600000, out
        assert c.guest("web", "FILL 2 9 200")[0] == 0
        assert c.guest("web", "VERIFY 2")[0] == 0
        assert c.guest("web", "FREE 2")[0] == 0
        c.disagg("slot", "resize", "web", "--memory", "512M", timeout=180)
        rc, out = c.guest("web", "VERIFY 1")
        assert rc == 0 and "mismatches=0" in out, out

        c.disagg("slot", "delete", "web", timeout=120)
        assert allocated_sections(c) == []
        nodes = c.json("node", "ls")["nodes"]
        for n in nodes:
            if n["kind"] == "memnode":
                assert n["sections_free"] == n["sections_total"], n
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)


def test_more_memory_than_the_cluster_has_leaves_nothing_behind(cluster):
    c = cluster
    p = c.disagg("slot", "create", "huge", "--vcpus", "1", "--memory", "4G",
                 check=False)
    assert p.returncode == 1
    assert "capacity" in p.stderr or "memory" in p.stderr.lower(), p.stderr
    assert allocated_sections(c) == []
    assert c.json("slot", "ls")["slots"] == []


def test_up_fabric_plaintext(tmp_path):
    """`disagg up --fabric-plaintext` (for measuring what TLS costs): every
    daemon runs without TLS, says so in its log, and a slot's remote memory
    works over it."""
    with running(tmp_path, "--memnodes", "1", "--fabric-plaintext") as c:
        for x in c.info()["components"]:
            text = (c.data / "logs" / f"{x['name']}.log").read_text(errors="replace")
            assert "fabric: plaintext" in text, (x["name"], text[-2000:])
        c.disagg("slot", "create", "pt", "--vcpus", "1", "--memory", "512M", "--cache", "64M",
                 timeout=300)
        rc, out = c.guest("pt", "FILL 1 5 128")
        assert rc == 0, out
        rc, out = c.guest("pt", "VERIFY 1")
        assert rc == 0 and "mismatches=0" in out, out
