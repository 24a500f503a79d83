# SPDX-License-Identifier: MIT
"""Compute migration of a slot with a shared region attached, with real
guests on a one-machine cluster of three compute nodes (`disagg up
--computes 3`): the region moves with the VM (docs/sharing.md, "Migration").

- strict: two guests on two compute nodes add ITERS each to one counter
  under a spinlock in the region; guest a moves to the third compute node
  in the middle, first to the compute node of the other guest (two users
  of the region on one node: two holders at its directory), then on to
  the third node: the count is still exactly 2 * ITERS.
- exclusive: the holder fills the region, moves with its lock, and
  unlocks on the new node; the other slot locks and verifies: 0
  mismatches. Then the moved slot locks, fills and unlocks on its new
  node, and the other verifies again.
- release: a's unreleased writes reach the memory node with its move (the
  source's flushes publish its diffs), the epoch stays, both read the
  union, and a releases from its new node.
- a guest that waits for an exclusive region's lock (its vCPU blocked in
  a store to the LOCK page) cannot be paused by QEMU: its migration is
  refused at once with 409 `lock_wait`, nothing moves, and once the lock
  comes the store lands and the VM moves with it.
- failure: the destination agent and its QEMU are killed during the move
  while the counter runs: the VM keeps running on the source with its
  region, and the count is still exactly 2 * ITERS.
"""
import json
import threading
import time

import pytest

from test_cluster import running
from test_migration_cluster import TOKENS, http, migrate_killing_destination, orch
from test_region_cluster import guest_ok, wait_job, wait_seen

PAGES = 256
# The test adds 20,000 in each guest; here that ends in about 30 ms
# (a guest does thousands of increments each time it owns the page), long
# before a move could begin (10,000,000 each took 0.5 s): 200,000,000 each
# keep both counting for seconds, across the move.
ITERS = 200_000_000


@pytest.fixture
def cluster(tmp_path):
    with running(tmp_path, "--memnodes", "1", "--computes", "3", "--pool", "2G",
                 timeout=240) as c:
        TOKENS.update({x["http"]: c.token_for(x["http"])
                       for x in c.info()["components"] if x.get("http")})
        yield c


def wait_progress(c, slot, at_least, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        j = guest_ok(c, slot, "RJOB")
        if j.get("state") != "running" or int(j.get("progress", 0)) >= at_least:
            return j
        time.sleep(0.2)
    raise AssertionError(f"{slot}: no progress: {j}")


def start_counters(c, pci, names=("a", "b"), iters=ITERS):
    """RCOUNTER in both guests at once (straight to their agents): both
    must run together, or the first one ends alone in a few ms."""
    comps = {x["node_id"]: x for x in c.info()["components"] if x["kind"] == "compute"}
    res = {}

    def go(name):
        node = comps[c.json("slot", "show", name)["compute"]]
        res[name] = http(node["http"], "POST", f"/v1/vms/{name}/guest",
                         {"command": f"RCOUNTER {pci[name]} {iters}"})

    ts = [threading.Thread(target=go, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for name in names:
        st, ans = res[name]
        assert st == 200 and ans["reply"].startswith("OK"), (name, st, ans)


def events(c):
    out = c.disagg("--json", "events", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def two_users(c, mode, region, memory="256M"):
    """Slots a and b on two compute nodes, region attached to both; the
    id of the third compute node and the PCI addresses."""
    for name in ("a", "b"):
        c.disagg("slot", "create", name, "--vcpus", "2", "--memory", memory, timeout=300)
    on = {n: c.json("slot", "show", n)["compute"] for n in ("a", "b")}
    assert on["a"] != on["b"], on
    third = next(x["node_id"] for x in c.info()["components"]
                 if x["kind"] == "compute" and x["node_id"] not in on.values())
    c.disagg("region", "create", region, "--size", "128M", "--mode", mode)
    for name in ("a", "b"):
        c.disagg("region", "attach", region, "--slot", name, timeout=120)
    pci = {x["slot"]: x["pci"] for x in c.json("region", "show", region)["attachments"]}
    for name in ("a", "b"):
        wait_seen(c, name, pci[name])
    return on, third, pci


def coherent_then_gone(c, region, pci):
    """b reads what a wrote last (strict), then the region is detached and deleted."""
    guest_ok(c, "a", f"RPOKE {pci['a']} 128 4242")
    wait_job(c, "a", 60)
    assert guest_ok(c, "b", f"RPEEK {pci['b']} 128").get("value") == "4242"
    for name in ("a", "b"):
        c.disagg("region", "detach", region, "--slot", name, timeout=120)
    c.disagg("region", "delete", region)


def attachment(c, region, slot):
    return next(x for x in c.json("region", "show", region)["attachments"] if x["slot"] == slot)


def test_strict_counter_with_a_move(cluster):
    c = cluster
    on, third, pci = two_users(c, "strict", "st")
    start_counters(c, pci)
    j = wait_progress(c, "a", 1)
    assert j.get("state") == "running", ("a finished before the move", j)
    # To b's compute node: both users of the region on one node.
    st, ans = http(orch(c), "POST", "/v1/slots/a/migrate", {"to": on["b"]})
    assert st == 200, ans
    assert ans["slot"]["compute"] == on["b"], ans
    assert attachment(c, "st", "a")["compute"] == on["b"]
    j = guest_ok(c, "a", "RJOB")
    assert j.get("state") == "running", ("a's count ended on b's node", j)
    st, ans = http(orch(c), "POST", "/v1/slots/a/migrate", {"to": third})
    assert st == 200, ans
    assert ans["slot"]["compute"] == third, ans
    j = guest_ok(c, "a", "RJOB")
    ja, jb = wait_job(c, "a"), wait_job(c, "b")
    assert max(int(ja["counter"]), int(jb["counter"])) == 2 * ITERS, (ja, jb)
    assert j.get("state") == "running", ("a's count ended before its move", j)

    assert attachment(c, "st", "a")["compute"] == third
    reg = c.json("region", "show", "st")
    assert reg["state"] == "ready", reg
    moved = [e for e in events(c) if e["kind"] == "region_moved"]
    assert moved and "st" in moved[-1]["message"], moved
    # Still coherent after the move: b reads what a wrote last.
    coherent_then_gone(c, "st", pci)


def test_exclusive_holder_moves_with_its_lock(cluster):
    c = cluster
    on, third, pci = two_users(c, "exclusive", "ex")
    c.disagg("region", "lock", "ex", "--slot", "a")
    epoch = c.json("region", "show", "ex")["epoch"]
    f = guest_ok(c, "a", f"RFILL {pci['a']} 901 {PAGES}")
    assert int(f["pages"]) == PAGES, f
    st, ans = http(orch(c), "POST", "/v1/slots/a/migrate", {"to": third})
    assert st == 200, ans
    reg = c.json("region", "show", "ex")
    assert reg["holder"] == "a" and reg["epoch"] > epoch, reg   # the lock moved, fenced
    assert attachment(c, "ex", "a")["compute"] == third
    c.disagg("region", "unlock", "ex", "--slot", "a")
    c.disagg("region", "lock", "ex", "--slot", "b")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 901 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    c.disagg("region", "unlock", "ex", "--slot", "b")
    # The moved slot writes on its new node.
    c.disagg("region", "lock", "ex", "--slot", "a")
    guest_ok(c, "a", f"RFILL {pci['a']} 902 {PAGES}")
    c.disagg("region", "unlock", "ex", "--slot", "a")
    c.disagg("region", "lock", "ex", "--slot", "b")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 902 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    c.disagg("region", "unlock", "ex", "--slot", "b")
    # A reader moves too: b to the source node a left.
    st, ans = http(orch(c), "POST", "/v1/slots/b/migrate", {"to": on["a"]})
    assert st == 200, ans
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 902 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    for name in ("a", "b"):
        c.disagg("region", "detach", "ex", "--slot", name, timeout=120)
    c.disagg("region", "delete", "ex")


def test_release_writer_moves(cluster):
    """Mode release, through the orchestrator and the CLI: a writes the first
    half of every line of PAGES pages and does not release; b writes the
    second half and releases. a moves to the third compute node: its flushes
    publish its diffs, the region keeps its epoch (its users share it), and
    b, after an acquire, reads both halves. On its new node a acquires and
    reads them too, writes again and releases from its guest; b sees it."""
    c = cluster
    on, third, pci = two_users(c, "release", "rl")
    epoch = c.json("region", "show", "rl")["epoch"]
    guest_ok(c, "a", f"RFILL {pci['a']} 903 {PAGES} lo")
    guest_ok(c, "b", f"RFILL {pci['b']} 903 {PAGES} hi")
    out = c.disagg("region", "release", "rl", "--slot", "b").stdout
    assert f"({PAGES} pages published" in out, out
    st, ans = http(orch(c), "POST", "/v1/slots/a/migrate", {"to": third})
    assert st == 200, ans
    reg = c.json("region", "show", "rl")
    assert reg["epoch"] == epoch and reg["state"] == "ready", reg
    assert attachment(c, "rl", "a")["compute"] == third
    c.disagg("region", "acquire", "rl", "--slot", "b")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 903 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    guest_ok(c, "a", f"RACQUIRE {pci['a']}")
    v = guest_ok(c, "a", f"RVERIFY {pci['a']} 903 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    guest_ok(c, "a", f"RFILL {pci['a']} 904 {PAGES}")
    guest_ok(c, "a", f"RRELEASE {pci['a']}")
    guest_ok(c, "b", f"RACQUIRE {pci['b']}")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 904 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    for name in ("a", "b"):
        c.disagg("region", "detach", "rl", "--slot", name, timeout=120)
    c.disagg("region", "delete", "rl")


def agent_regions(c, slot):
    node = next(x for x in c.info()["components"]
                if x.get("node_id") == c.json("slot", "show", slot)["compute"])
    st, ans = http(node["http"], "GET", f"/v1/vms/{slot}/regions")
    assert st == 200, ans
    return ans["regions"]


def test_refused_while_the_guest_waits_for_a_lock(cluster):
    c = cluster
    on, third, pci = two_users(c, "exclusive", "lw")
    lock = 128 * 1024 * 1024 - 8192
    c.disagg("region", "lock", "lw", "--slot", "a")
    guest_ok(c, "b", f"RPOKE {pci['b']} {lock} 1")     # b's store waits: a holds it
    end = time.time() + 30
    while agent_regions(c, "b")[0].get("waiting") != "lock":
        assert time.time() < end, agent_regions(c, "b")
        time.sleep(0.2)
    t0 = time.time()
    st, ans = http(orch(c), "POST", "/v1/slots/b/migrate", {"to": third})
    assert st == 409 and ans["error"]["code"] == "lock_wait", (st, ans)
    assert "waits for region lw's lock" in ans["error"]["message"], ans
    assert time.time() - t0 < 20, "refused at once, not at the migration's deadline"
    s = c.json("slot", "show", "b")
    assert s["state"] == "running" and s["compute"] == on["b"], s
    reg = c.json("region", "show", "lw")
    assert reg["state"] == "ready" and reg["holder"] == "a", reg
    # The lock comes: the store lands, and the VM moves with its lock.
    c.disagg("region", "unlock", "lw", "--slot", "a")
    wait_job(c, "b", 60)
    assert c.json("region", "show", "lw")["holder"] == "b"
    assert agent_regions(c, "b")[0].get("waiting") is None
    st, ans = http(orch(c), "POST", "/v1/slots/b/migrate", {"to": third})
    assert st == 200, ans
    reg = c.json("region", "show", "lw")
    assert reg["holder"] == "b" and attachment(c, "lw", "b")["compute"] == third, reg
    for name in ("a", "b"):
        c.disagg("region", "detach", "lw", "--slot", name, timeout=120)
    c.disagg("region", "delete", "lw")


def test_destination_killed_during_the_move(cluster):
    c = cluster
    on, third, pci = two_users(c, "strict", "sk", memory="512M")
    # Much to flush on the move: a window to kill the destination in.
    assert c.guest("a", "FILL 1 9 300")[0] == 0
    guest_ok(c, "a", f"RPOKE {pci['a']} 0 0")
    wait_job(c, "a", 60)
    guest_ok(c, "a", f"RPOKE {pci['a']} 64 0")
    wait_job(c, "a", 60)
    start_counters(c, pci)
    wait_progress(c, "a", ITERS // 10)
    dname = next(x["name"] for x in c.info()["components"] if x.get("node_id") == third)
    st, ans = migrate_killing_destination(c, "a", dname)
    assert st == 503 and "keeps running" in ans["error"]["message"], ans
    s = c.json("slot", "show", "a")
    assert s["state"] == "running" and s["compute"] == on["a"], s
    assert c.json("region", "show", "sk")["state"] == "ready"
    assert attachment(c, "sk", "a")["compute"] == on["a"]
    ja, jb = wait_job(c, "a"), wait_job(c, "b")
    assert max(int(ja["counter"]), int(jb["counter"])) == 2 * ITERS, (ja, jb)
    for name in ("a", "b"):
        c.disagg("region", "detach", "sk", "--slot", name, timeout=120)
    c.disagg("region", "delete", "sk")
