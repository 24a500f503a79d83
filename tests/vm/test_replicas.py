# SPDX-License-Identifier: MIT
"""Replicated far memory with a real guest (docs/replication.md), on a
one-machine cluster of four memory nodes (`disagg up --memnodes 4`).

A slot with `--replicas 2`, all of its memory remote and a cache of 25%:
the guest FILLs a region larger than the cache (so its pages live on the
memory nodes) and keeps rewriting a second one (WRITELOOP).

- One memory node that holds replicas of the slot is SIGKILLed and never
  comes back. The guest keeps running (it answers, the slot is never
  `degraded`; while a replica is repaired it is `migrating`), VERIFY finds
  0 mismatches, the slot shows
  `degraded (1/2 replicas)` and then is repaired onto another memory node
  (2/2 again, no replica on the dead node, the two replicas of each
  section on different nodes), with the events of each step.
- Then a node of a repaired pair is killed as well: that loss is survived
  too, and VERIFY (of both regions, after STOP) finds 0 mismatches, so the
  repaired replica held the data.
"""
import json
import os
import signal
import time

import pytest

from test_cluster import Cluster, alive, down, need_vm_host
from test_migration_cluster import events, slot

FILL_MB = 200            # region 1: more than the 128 MiB cache
LOOP_MB = 48             # region 2: rewritten all along
# The guest runs through all of it: a repair shows as `migrating` (it is a
# memory migration of the out replica), never as `degraded`.
LIVE = ("running", "migrating")


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "4", "--computes", "1", "--pool", "1G", "--accel", "tcg",
             timeout=180)
    pids = [x["pid"] for x in c.info()["components"]]
    try:
        yield c
    finally:
        down(c, pids)


def guest_ok(c, name, command):
    rc, out = c.guest(name, command)
    assert rc == 0, f"{command}: {out}"
    return out


def verify(c, name, region):
    out = guest_ok(c, name, f"VERIFY {region}")
    assert "mismatches=0" in out, out


def replica_nodes(s):
    """[[memnode of each replica] per remote section] of slot JSON s."""
    out = []
    for sec in s["sections"]:
        if sec.get("kind") != "remote":
            continue
        out.append([sec["memnode"]] + [r["memnode"] for r in sec.get("replicas", [])])
    return out


def memnode_pid(c, node_id):
    for x in c.info()["components"]:
        if x["kind"] == "memnode" and x.get("node_id") == node_id:
            return x["pid"]
    raise AssertionError(f"no memory node {node_id} in {c.info()['components']}")


def kill_memnode(c, node_id):
    pid = memnode_pid(c, node_id)
    os.kill(pid, signal.SIGKILL)
    end = time.time() + 10
    while alive(pid) and time.time() < end:
        time.sleep(0.05)
    assert not alive(pid)


def wait_redundancy(c, name, state, timeout, avoid=()):
    """Slot `name` once its redundancy is `state` with no replica on a node
    of `avoid`. A replica on a dead node that nobody has written or read
    since counts as in until the orchestrator declares the node down
    (--node-timeout, 15 s): the redundancy alone may read ok before."""
    end = time.time() + timeout
    s = slot(c, name)
    while time.time() < end:
        s = slot(c, name)
        if s.get("redundancy", {}).get("state") == state and \
                not any(n in p for p in replica_nodes(s) for n in avoid):
            return s
        time.sleep(0.5)
    raise AssertionError(f"slot {name} never became {state}: "
                         f"{json.dumps(s.get('redundancy'))} {replica_nodes(s)}")


def test_replica_loss_repair_and_second_loss(cluster):
    c = cluster
    c.disagg("slot", "create", "r", "--vcpus", "1", "--memory", "512M", "--remote", "100",
             "--cache", "128M", "--replicas", "2", timeout=300)
    s = slot(c, "r")
    assert s["replicas"] == 2
    assert s["redundancy"]["state"] == "ok", s["redundancy"]
    pairs = replica_nodes(s)
    assert pairs and all(len(p) == 2 and p[0] != p[1] for p in pairs), pairs

    guest_ok(c, "r", f"FILL 1 7 {FILL_MB}")
    guest_ok(c, "r", f"FILL 2 9 {LOOP_MB}")
    guest_ok(c, "r", "WRITELOOP 2 16")
    time.sleep(2)

    # The first loss: a node that holds a replica of the first section.
    dead = pairs[0][0]
    kill_memnode(c, dead)
    t0 = time.time()
    verify(c, "r", 1)
    assert slot(c, "r")["state"] in LIVE

    s = wait_redundancy(c, "r", "ok", 180, avoid=(dead,))
    repaired_s = time.time() - t0
    pairs = replica_nodes(s)
    assert all(dead not in p and len(set(p)) == 2 for p in pairs), pairs
    kinds = events(c)
    assert "replica_out" in kinds and "replica_repaired" in kinds, kinds
    print(f"repaired in {repaired_s:.1f} s: {pairs}")

    # The second loss: a node of a repaired pair, not the first one.
    second = next(n for p in pairs for n in p if n != dead)
    kill_memnode(c, second)
    verify(c, "r", 1)
    guest_ok(c, "r", "STOP")
    verify(c, "r", 2)
    assert slot(c, "r")["state"] in LIVE
    s = wait_redundancy(c, "r", "ok", 180, avoid=(dead, second))
    end = time.time() + 30
    while slot(c, "r")["state"] != "running" and time.time() < end:
        time.sleep(0.2)
    assert slot(c, "r")["state"] == "running"
    assert all(dead not in p and second not in p for p in replica_nodes(s))
    c.disagg("slot", "delete", "r", timeout=120)


def test_replicated_slot_migrates(tmp_path):
    """Compute migration and memory migration of a replicated slot (two
    compute nodes, four memory nodes): the guest's memory verifies after
    each move, every replica's epoch advanced with the compute move, the
    memory move leaves no replica on its source node and never two
    replicas of a section on one node, and a replica's node lost after
    both moves is still survived."""
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "4", "--computes", "2", "--pool", "1G", "--accel", "tcg",
             timeout=180)
    pids = [x["pid"] for x in c.info()["components"]]
    try:
        # One memory node drained while the slot is placed: the memory
        # migration's target, which then holds no replica of any section.
        spare = max(x["node_id"] for x in c.info()["components"] if x["kind"] == "memnode")
        c.disagg("node", "drain", str(spare))
        c.disagg("slot", "create", "m", "--vcpus", "1", "--memory", "512M", "--remote", "100",
                 "--cache", "128M", "--replicas", "2", timeout=300)
        c.disagg("node", "undrain", str(spare))
        s = slot(c, "m")
        assert all(spare not in p for p in replica_nodes(s)), replica_nodes(s)
        guest_ok(c, "m", f"FILL 1 7 {FILL_MB}")

        src = s["compute"]
        dst = next(x["node_id"] for x in c.info()["components"]
                   if x["kind"] == "compute" and x["node_id"] != src)
        c.disagg("slot", "migrate", "m", "--to", str(dst), timeout=300)
        s = slot(c, "m")
        assert s["compute"] == dst and s["redundancy"]["state"] == "ok", s
        for sec in s["sections"]:
            assert sec["epoch"] == 1 and all(r["epoch"] == 1 for r in sec["replicas"]), sec
        verify(c, "m", 1)

        frm, to = replica_nodes(s)[0][1], spare    # frm holds replicas (position 1)
        guest_ok(c, "m", f"FILL 2 9 {LOOP_MB}")
        guest_ok(c, "m", "WRITELOOP 2 16")
        p = c.disagg("slot", "migrate-memory", "m", "--from", str(frm), "--to", str(to),
                     check=False, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        s = slot(c, "m")
        pairs = replica_nodes(s)
        assert all(len(set(pr)) == len(pr) and frm not in pr for pr in pairs), pairs
        assert any(to in pr for pr in pairs), pairs
        guest_ok(c, "m", "STOP")
        verify(c, "m", 1)
        verify(c, "m", 2)

        lost = pairs[0][0]
        kill_memnode(c, lost)
        verify(c, "m", 1)
        verify(c, "m", 2)
        wait_redundancy(c, "m", "ok", 180, avoid=(lost,))
        c.disagg("slot", "delete", "m", timeout=120)
    finally:
        down(c, pids)


def test_frozen_replica_is_fenced_and_discarded(cluster):
    """A memory node that stops answering everyone (SIGSTOP: its connections
    stay open, nothing is refused, as in a partition) while the guest
    writes: the pager takes its replicas out after the stall timeout, the
    orchestrator repairs them elsewhere, and when the node answers again
    (SIGCONT) with its old contents, its stale sections of the slot are
    freed, never read: the guest's new pattern VERIFYs with 0 mismatches."""
    c = cluster
    c.disagg("slot", "create", "p", "--vcpus", "1", "--memory", "512M", "--remote", "100",
             "--cache", "128M", "--replicas", "2", timeout=300)
    s = slot(c, "p")
    guest_ok(c, "p", f"FILL 1 7 {FILL_MB}")
    frozen = replica_nodes(s)[0][0]
    pid = memnode_pid(c, frozen)
    stale = {(x["section"], x["generation"]) for x in
             c.json("section", "ls", "--node", str(frozen))["sections"]}
    assert stale
    os.kill(pid, signal.SIGSTOP)
    try:
        guest_ok(c, "p", "REWRITE 1 8")        # new contents: the frozen node misses them
        assert slot(c, "p")["state"] in LIVE
        s = wait_redundancy(c, "p", "ok", 240, avoid=(frozen,))
        assert all(frozen not in p for p in replica_nodes(s)), replica_nodes(s)
    finally:
        os.kill(pid, signal.SIGCONT)
    # Back, with the old pattern: what it held of the slot is freed, not
    # read. The node's own count (its heartbeats) falls to what the
    # orchestrator still places there.
    end, used, named = time.time() + 120, None, None
    while time.time() < end:
        n = c.json("node", "show", str(frozen))
        used = n["sections_total"] - n["sections_free"]
        named = {(x["section"], x["generation"]) for x in
                 c.json("section", "ls", "--node", str(frozen))["sections"]}
        if used == len(named) and not (stale & named):
            break
        time.sleep(1)
    assert used == len(named) and not (stale & named), (used, named, stale)
    verify(c, "p", 1)
    kinds = events(c)
    assert "replica_out" in kinds and "replica_repaired" in kinds, kinds
    c.disagg("slot", "delete", "p", timeout=120)
