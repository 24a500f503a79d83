# SPDX-License-Identifier: MIT
"""Migration both ways through the orchestrator, with real guests on a
one-machine cluster (`disagg up --computes 2 --memnodes 3`).

A slot whose memory is all on memory nodes writes a pattern, moves to the
other compute node (`disagg slot migrate`), verifies, then moves its
sections from one memory node to another (`disagg slot migrate-memory`)
while the guest rewrites the pattern, and verifies again: 0 mismatches.
A second migration request while one runs is 409 busy.

A slot with local memory moves too: its local sections go to memory nodes
first, with the guest's data.

Failures: the destination compute node killed in the middle of a compute
migration (the VM keeps running on the source and verifies), and the
target memory node killed in the middle of a memory migration (the copy is
abandoned, the section stays on its node, the guest verifies).
"""
import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from test_cluster import Cluster, alive, forget_run_dirs, need_vm_host

MiB = 1 << 20


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "3", "--computes", "2", "--pool", "1G",
             "--accel", "tcg", timeout=180)
    comps = c.info()["components"]
    TOKENS.update({x["http"]: c.token_for(x["http"]) for x in comps if x.get("http")})
    try:
        yield c
    finally:
        c.disagg("down", check=False, timeout=120)
        time.sleep(0.2)
        for x in comps:
            if alive(x["pid"]):
                os.kill(x["pid"], signal.SIGKILL)
                raise AssertionError(f"{x['name']} (pid {x['pid']}) survived disagg down")
        forget_run_dirs([x["pid"] for x in comps])
        c.logs_clean()


TOKENS = {}                       # HTTP address -> bearer token (Cluster.token_for)


def http(addr, method, path, body=None, timeout=300, token=None):
    """(status, JSON answer) of a request to the orchestrator or an agent,
    with the token for that address (TOKENS) unless one is given."""
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + (token or TOKENS[addr])})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def orch(c):
    return c.component("orchestrator")["http"]


def verify(c, slot, region=1):
    rc, out = c.guest(slot, f"VERIFY {region}")
    assert rc == 0 and "mismatches=0" in out, out


def events(c):
    out = c.disagg("--json", "events", "--limit", "1000").stdout
    return [json.loads(line)["kind"] for line in out.splitlines() if line.strip()]


def slot(c, name):
    return c.json("slot", "show", name)


class Rewriter:
    """REWRITE region 1 with new seeds in a thread, through the orchestrator."""

    def __init__(self, c, name, seed):
        self.c, self.name, self.seed = c, name, seed
        self.stop, self.err, self.rounds = threading.Event(), None, 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            while not self.stop.is_set():
                rc, out = self.c.guest(self.name, f"REWRITE 1 {self.seed + 1}")
                assert rc == 0, out
                self.seed += 1
                self.rounds += 1
        except Exception as e:  # noqa: BLE001 - reported by join()
            self.err = e

    def join(self):
        self.stop.set()
        self.t.join(600)
        assert not self.t.is_alive() and self.err is None, self.err
        return self.rounds


def create(c, name, memory="512M", policy="spread", cache=None):
    c.disagg("slot", "create", name, "--vcpus", "1", "--memory", memory,
             "--policy", policy, *(["--cache", cache] if cache else []), timeout=300)
    s = slot(c, name)
    assert s["state"] == "running" and all(x["kind"] == "remote" for x in s["sections"])
    return s


def test_migrate_both_ways_under_writes(cluster):
    c = cluster
    s = create(c, "web")
    assert c.guest("web", "FILL 1 7 200")[0] == 0
    verify(c, "web")

    # Compute migration, there and back.
    src = s["compute"]
    dst = next(x["node_id"] for x in c.info()["components"]
               if x["kind"] == "compute" and x["node_id"] != src)
    p = c.disagg("slot", "migrate", "web", "--to", str(dst), timeout=300)
    assert f"moved from compute node {src} to {dst}" in p.stdout, p.stdout
    assert slot(c, "web")["compute"] == dst
    # Each move is a change of owner: the sections' epochs advance (and the
    # memory nodes were fenced: test_fencing.py shows what that refuses).
    assert [x["epoch"] for x in slot(c, "web")["sections"]] == [1] * len(s["sections"])
    verify(c, "web")
    j = c.json("slot", "migrate", "web", "--to", str(src))
    assert j["slot"]["compute"] == src and j["migration"]["ram_transferred_bytes"] < 4 * MiB
    assert [x["epoch"] for x in j["slot"]["sections"]] == [2] * len(s["sections"])
    # The hot-page list went to the destination, not into the answer.
    assert j["migration"]["hot_pages"] > 0 and "hot" not in j["migration"], j["migration"]
    verify(c, "web")

    # Memory migration while the guest rewrites region 1.
    frm = s["sections"][0]["memnode"]
    others = {x["memnode"] for x in s["sections"]}
    to = next(n for n in (100, 101, 102) if n != frm)
    nfrom = sum(x["memnode"] == frm for x in s["sections"])
    w = Rewriter(c, "web", 100)
    time.sleep(1.0)
    j = c.json("slot", "migrate-memory", "web", "--from", str(frm), "--to", str(to))
    rounds = w.join()
    assert rounds >= 1
    assert len(j["sections"]) == nfrom and others
    assert all(x["memnode"] != frm for x in j["slot"]["sections"])
    moved = {x["index"] for x in j["sections"]}
    assert [x["epoch"] for x in j["slot"]["sections"]] == \
        [3 if x["index"] in moved else 2 for x in j["slot"]["sections"]]
    assert [x["memnode"] for x in c.json("section", "ls", "--node", str(frm))["sections"]] == []
    for x in j["sections"]:
        assert x["pause_us"] is not None and x["pause_us"] < 10000, x   # <= 10 ms
    verify(c, "web")

    # A second migration while one runs: 409 busy (compute during memory, and
    # memory during compute).
    to2 = next(n for n in (100, 101, 102) if n not in (frm, to))
    for attempt in range(3):
        out = {}
        t = threading.Thread(target=lambda: out.update(r=http(
            orch(c), "POST", "/v1/slots/web/migrate-memory", {"from": to, "to": to2})))
        t.start()
        end = time.time() + 30
        while time.time() < end and http(orch(c), "GET", "/v1/slots/web")[1]["state"] \
                != "migrating" and t.is_alive():
            time.sleep(0.005)
        st, ans = http(orch(c), "POST", "/v1/slots/web/migrate", {"to": dst})
        t.join(300)
        assert out["r"][0] == 200, out
        if st == 409:
            assert ans["error"]["code"] == "busy", ans
            break
        assert st == 200, ans               # too late: it ran after the first one
        to, to2 = to2, to
    else:
        pytest.fail("never caught the slot migrating")
    verify(c, "web")
    c.disagg("slot", "delete", "web", timeout=120)
    assert c.json("section", "ls")["sections"] == []


def test_migrate_slot_with_local_memory(cluster):
    # Half of the slot's memory is local to its compute node: it moves to
    # memory nodes first (evacuation), with the guest's data, then the VM
    # moves; and back again.
    c = cluster
    c.disagg("slot", "create", "half", "--vcpus", "1", "--memory", "512M", "--remote", "50",
             timeout=300)
    s = slot(c, "half")
    kinds = [x["kind"] for x in s["sections"]]
    assert kinds.count("local") == 2 and kinds.count("remote") == 2, s
    assert c.guest("half", "FILL 1 9 300")[0] == 0       # spans local and remote sections
    src = s["compute"]
    dst = next(x["node_id"] for x in c.info()["components"]
               if x["kind"] == "compute" and x["node_id"] != src)
    j = c.json("slot", "migrate", "half", "--to", str(dst))
    assert j["slot"]["compute"] == dst
    assert all(x["kind"] == "remote" for x in j["slot"]["sections"]), j["slot"]
    assert j["slot"]["remote_percent"] == 100, j["slot"]
    assert j["migration"]["ram_transferred_bytes"] < 4 * MiB, j["migration"]
    assert events(c).count("section_evacuated") == 2
    verify(c, "half")
    j = c.json("slot", "migrate", "half", "--to", str(src))
    assert j["slot"]["compute"] == src
    verify(c, "half")
    c.disagg("slot", "delete", "half", timeout=120)
    assert c.json("section", "ls")["sections"] == []


def migrate_killing_destination(c, name, dname):
    """Migrate slot `name` to compute node `dname` and kill that agent and
    its QEMU once the VM waits there (state incoming): the orchestrator's
    (status, answer). The killed agent's run directory of the VM is removed."""
    d = c.component(dname)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http(
        orch(c), "POST", f"/v1/slots/{name}/migrate", {"to": d["node_id"]})))
    t.start()
    # Kill it once it waits for the VM: the source then flushes what the
    # guest wrote since boot before QEMU connects.
    qemu = None
    end = time.time() + 60
    while time.time() < end and t.is_alive():
        st, vm = http(d["http"], "GET", f"/v1/vms/{name}", timeout=5)
        if st == 200 and vm.get("state") == "incoming":
            qemu = vm["pid"]
            break
        time.sleep(0.002)
    assert qemu, "never saw the incoming VM"
    os.kill(d["pid"], signal.SIGKILL)
    os.kill(qemu, signal.SIGKILL)
    t.join(300)
    # What the killed agent leaves behind: its VM's run directory.
    log = (c.data / "logs" / f"{dname}.log").read_text()
    run_dir = re.search(r"run dir (\S+),", log).group(1)
    shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)
    return out["r"]


def test_destination_killed_mid_migration(cluster):
    c = cluster
    s = create(c, "web")
    # Much to flush on the first migration: a window to kill the destination in.
    assert c.guest("web", "FILL 1 9 300")[0] == 0
    src = s["compute"]
    dname = next(x["name"] for x in c.info()["components"]
                 if x["kind"] == "compute" and x["node_id"] != src)
    st, ans = migrate_killing_destination(c, "web", dname)
    assert st == 503 and ans["error"]["code"] in ("migration_failed", "node_unreachable"), ans
    assert "keeps running" in ans["error"]["message"], ans
    s2 = slot(c, "web")
    assert s2["state"] == "running" and s2["compute"] == src and "migration" not in s2
    verify(c, "web")
    kinds = events(c)
    assert "migration_failed" in kinds
    c.disagg("slot", "delete", "web", timeout=120)


def test_target_memnode_killed_mid_copy(cluster):
    c = cluster
    # A small cache: the guest's pages are written back, so the section on
    # the memory node is full and its COPY takes a while.
    s = create(c, "web", memory="384M", policy="pack", cache="64M")
    frm = s["sections"][0]["memnode"]
    assert all(x["memnode"] == frm for x in s["sections"])
    assert c.guest("web", "FILL 1 5 200")[0] == 0
    to = next(n for n in (100, 101, 102) if n != frm)
    target = c.component(f"memnode-{to}")
    w = Rewriter(c, "web", 200)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http(
        orch(c), "POST", "/v1/slots/web/migrate-memory",
        {"from": frm, "to": to, "section": 0})))
    t.start()
    end = time.time() + 30
    while time.time() < end and t.is_alive() and \
            http(orch(c), "GET", "/v1/slots/web")[1]["state"] != "migrating":
        time.sleep(0.002)
    time.sleep(0.02)            # past the allocation and begin, into the COPY
    os.kill(target["pid"], signal.SIGKILL)
    t.join(300)
    w.join()
    st, ans = out["r"]
    assert st != 200, ans
    assert ans["error"]["code"] in ("copy_failed", "target_failed", "node_unreachable",
                                    "capacity"), ans
    s2 = slot(c, "web")
    assert s2["state"] == "running" and s2["sections"] == s["sections"], s2
    verify(c, "web")
    kinds = events(c)
    assert "memory_migration_failed" in kinds
    c.disagg("slot", "delete", "web", timeout=120)
    assert all(x["memnode"] != frm for x in c.json("section", "ls")["sections"])
