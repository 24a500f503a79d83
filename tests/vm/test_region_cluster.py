# SPDX-License-Identifier: MIT
"""A shared region in mode exclusive through the orchestrator and the CLI,
with real guests on two compute nodes (`disagg up --computes 2`).

Slot a and slot b run on different compute nodes and both map region
`shr` (128 MiB on the memory node). Ten rounds, alternating: the writer
locks the region, fills 1 MiB with a new seed and unlocks (its pages are
written back and the other slot's copies invalidated); the reader locks
and verifies, 0 mismatches, and unlocks. A lock while the other holds it
is refused with the holder's name. Deleting an attached region is
refused; detach, then delete, leaves nothing behind.
"""
import json
import os
import signal
import time

import pytest

from test_cluster import Cluster, alive, need_vm_host

ROUNDS = 10
MiB = 1 << 20
PAGES = 256


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "1", "--computes", "2", "--pool", "1G", "--accel", "tcg",
             timeout=180)
    comps = c.info()["components"]
    try:
        yield c
    finally:
        c.disagg("down", check=False, timeout=120)
        time.sleep(0.2)
        for x in comps:
            if alive(x["pid"]):
                os.kill(x["pid"], signal.SIGKILL)
                raise AssertionError(f"{x['name']} (pid {x['pid']}) survived disagg down")
        c.logs_clean()


def guest_ok(c, slot, cmd):
    rc, out = c.guest(slot, cmd)
    assert rc == 0 and out.startswith("OK"), (slot, cmd, out)
    return dict(t.split("=", 1) for t in out.split()[1:] if "=" in t)


def wait_seen(c, slot, pci, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if pci in guest_ok(c, slot, "REGIONS").get("regions", ""):
            return
        time.sleep(0.2)
    raise AssertionError(f"{slot} never saw {pci}")


def test_exclusive_rounds_through_the_orchestrator(cluster):
    c = cluster
    for name in ("a", "b"):
        # two vCPUs: a write that waits for the lock must not stop the guest channel
        c.disagg("slot", "create", name, "--vcpus", "2", "--memory", "256M", timeout=300)
    nodes = {c.json("slot", "show", n)["compute"] for n in ("a", "b")}
    assert len(nodes) == 2, nodes                # spread over the two compute nodes

    c.disagg("region", "create", "shr", "--size", "128M")
    for name in ("a", "b"):
        c.disagg("region", "attach", "shr", "--slot", name, timeout=120)
    reg = c.json("region", "show", "shr")
    pci = {x["slot"]: x["pci"] for x in reg["attachments"]}
    assert set(pci) == {"a", "b"}, reg
    for name in ("a", "b"):
        wait_seen(c, name, pci[name])

    p = c.disagg("region", "delete", "shr", check=False)
    assert p.returncode != 0 and "attached" in (p.stdout + p.stderr), p

    writer, reader = "a", "b"
    for rnd in range(ROUNDS):
        seed = 500 + rnd
        c.disagg("region", "lock", "shr", "--slot", writer)
        p = c.disagg("region", "lock", "shr", "--slot", reader, check=False)
        assert p.returncode == 1 and writer in (p.stdout + p.stderr), p
        f = guest_ok(c, writer, f"RFILL {pci[writer]} {seed} {PAGES}")
        assert int(f["pages"]) == PAGES, f
        c.disagg("region", "unlock", "shr", "--slot", writer)
        c.disagg("region", "lock", "shr", "--slot", reader)
        v = guest_ok(c, reader, f"RVERIFY {pci[reader]} {seed} {PAGES}")
        assert int(v["mismatches"]) == 0, (rnd, v)
        c.disagg("region", "unlock", "shr", "--slot", reader)
        writer, reader = reader, writer

    out = c.disagg("--json", "events", "--limit", "1000").stdout
    kinds = [json.loads(line)["kind"] for line in out.splitlines() if line.strip()]
    assert kinds.count("region_locked") >= 2 * ROUNDS, kinds[-40:]

    for name in ("a", "b"):
        c.disagg("region", "detach", "shr", "--slot", name, timeout=120)
    c.disagg("region", "delete", "shr")
    assert json.loads(c.disagg("--json", "region", "ls").stdout) in ([], {"regions": []})
    for name in ("a", "b"):
        assert c.json("slot", "show", name)["state"] == "running"


def wait_job(c, slot, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        j = guest_ok(c, slot, "RJOB")
        if j.get("state") == "done":
            assert j.get("result") == "ok", j
            return j
        time.sleep(0.5)
    raise AssertionError(f"{slot}: job still running: {j}")


def test_strict_counter_through_the_orchestrator(cluster):
    """Mode strict through the CLI: two guests on two compute nodes add 20,000
    each to one counter under a spinlock in the region: exactly 40,000."""
    c = cluster
    for name in ("a", "b"):
        c.disagg("slot", "create", name, "--vcpus", "2", "--memory", "256M", timeout=300)
    c.disagg("region", "create", "st", "--size", "128M", "--mode", "strict")
    for name in ("a", "b"):
        c.disagg("region", "attach", "st", "--slot", name, timeout=120)
    pci = {x["slot"]: x["pci"] for x in c.json("region", "show", "st")["attachments"]}
    for name in ("a", "b"):
        wait_seen(c, name, pci[name])
    p = c.disagg("region", "lock", "st", "--slot", "a", check=False)
    assert p.returncode == 1 and "mode_strict" in (p.stdout + p.stderr), p
    for name in ("a", "b"):
        guest_ok(c, name, f"RCOUNTER {pci[name]} 20000")
    ja, jb = wait_job(c, "a"), wait_job(c, "b")
    assert max(int(ja["counter"]), int(jb["counter"])) == 40000, (ja, jb)
    for name in ("a", "b"):
        c.disagg("region", "detach", "st", "--slot", name, timeout=120)
    c.disagg("region", "delete", "st")


def test_lock_from_inside_the_guest(cluster):
    """Mode exclusive, locked by the guests themselves: a write to the
    region's LOCK page (its last page but one) waits until the slot holds
    the region, a write to its UNLOCK page (the last) releases it. a locks,
    fills and unlocks from inside; b's lock, asked meanwhile, waits for a's
    unlock, then b verifies."""
    c = cluster
    for name in ("a", "b"):
        c.disagg("slot", "create", name, "--vcpus", "2", "--memory", "256M", timeout=300)
    c.disagg("region", "create", "g", "--size", "128M")
    for name in ("a", "b"):
        c.disagg("region", "attach", "g", "--slot", name, timeout=120)
    pci = {x["slot"]: x["pci"] for x in c.json("region", "show", "g")["attachments"]}
    for name in ("a", "b"):
        wait_seen(c, name, pci[name])
    lock, unlock = 128 * MiB - 8192, 128 * MiB - 4096

    guest_ok(c, "a", f"RPOKE {pci['a']} {lock} 1")
    wait_job(c, "a", 60)
    assert c.json("region", "show", "g")["holder"] == "a"
    guest_ok(c, "a", f"RFILL {pci['a']} 77 {PAGES}")
    guest_ok(c, "b", f"RPOKE {pci['b']} {lock} 1")      # waits: a holds it
    # b's vCPU is blocked in that store: no guest command to b until it is let go
    time.sleep(1.5)
    assert c.json("region", "show", "g")["holder"] == "a"
    guest_ok(c, "a", f"RPOKE {pci['a']} {unlock} 1")
    wait_job(c, "a", 60)
    wait_job(c, "b", 60)                                 # b's lock went through
    assert c.json("region", "show", "g")["holder"] == "b"
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 77 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    guest_ok(c, "b", f"RPOKE {pci['b']} {unlock} 1")
    wait_job(c, "b", 60)
    assert c.json("region", "show", "g")["holder"] is None
