# SPDX-License-Identifier: MIT
"""A memory node that stops answering, with a real guest reading its memory
(`disagg up --persistent`, one memory node, a slot whose memory is all on
it, a 64 MiB cache).

- The memory node is frozen (SIGSTOP) for 15 s while the guest VERIFYs
  300 MiB, then continued: the slot goes `degraded` (the reason names the
  node), comes back to `running` by itself, the VERIFY finishes with 0
  mismatches, and both events are listed.
  The compute agent logs one stall report for the connection that timed
  out (docs/compute.md, "Memory-node outages").
- The memory node is killed (SIGKILL) during a VERIFY and restarted on its
  persistent pool file at the same address: the same outcome. A hot-add
  afterwards passes its section check, whose connection kept from the
  slot's start was closed by the kill (the check opens a new one).
"""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from test_cluster import Cluster, alive, need_vm_host
from test_migration_cluster import events, slot

MB = 300


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "1", "--computes", "1", "--pool", "1G", "--persistent",
             "--accel", "tcg", timeout=180)
    comps = c.info()["components"]
    c.extra = []   # processes the test started itself
    try:
        yield c
    finally:
        c.disagg("down", check=False, timeout=120)
        for p in c.extra:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        time.sleep(0.2)
        for x in comps:
            if alive(x["pid"]):
                os.kill(x["pid"], signal.SIGKILL)
                raise AssertionError(f"{x['name']} (pid {x['pid']}) survived disagg down")
        c.logs_clean()


class Verifier:
    """VERIFY region 1 in a thread (through the orchestrator)."""

    def __init__(self, c, name):
        self.out, self.rc = None, None
        self.t = threading.Thread(target=self.run, args=(c, name), daemon=True)
        self.t.start()

    def run(self, c, name):
        self.rc, self.out = c.guest(name, "VERIFY 1")

    def join(self, timeout=600):
        self.t.join(timeout)
        assert not self.t.is_alive(), "VERIFY did not finish"
        return self.rc, self.out


def wait_state(c, name, state, timeout):
    end = time.time() + timeout
    while time.time() < end:
        s = slot(c, name)
        if s["state"] == state:
            return s
        time.sleep(0.2)
    raise AssertionError(f"slot {name} never became {state}: {slot(c, name)}")


def prepare(c, name):
    c.disagg("slot", "create", name, "--vcpus", "1", "--memory", "512M", "--cache", "64M",
             timeout=300)
    s = slot(c, name)
    assert s["state"] == "running" and all(x["kind"] == "remote" for x in s["sections"]), s
    rc, out = c.guest(name, f"FILL 1 11 {MB}")
    assert rc == 0, out
    return next(x for x in c.info()["components"] if x["kind"] == "memnode")


def start_verify(c, name):
    v = Verifier(c, name)
    time.sleep(0.5)
    assert v.t.is_alive(), f"VERIFY ended before the outage: {v.out}"
    return v


def check_after(c, name, v, node_id):
    rc, out = v.join()
    assert rc == 0 and "mismatches=0" in out, out
    kinds = events(c)
    assert "slot_degraded" in kinds and "slot_resumed" in kinds, kinds
    assert kinds.index("slot_degraded") < len(kinds) - 1 - kinds[::-1].index("slot_resumed")
    out = c.disagg("--json", "events", "--limit", "1000").stdout
    assert f"memory node {node_id}" in out, out
    rc, out = c.guest(name, "VERIFY 1")
    assert rc == 0 and "mismatches=0" in out, out


def test_memnode_frozen_15s(cluster):
    c = cluster
    mn = prepare(c, "frozen")
    v = start_verify(c, "frozen")
    os.kill(mn["pid"], signal.SIGSTOP)
    t0 = time.time()
    try:
        s = wait_state(c, "frozen", "degraded", 14)
        assert f"memory node {mn['node_id']}" in s.get("reason", ""), s
        assert v.t.is_alive(), "the guest finished while its memory node was frozen"
        time.sleep(max(0.0, 15 - (time.time() - t0)))
    finally:
        os.kill(mn["pid"], signal.SIGCONT)
    wait_state(c, "frozen", "running", 60)
    check_after(c, "frozen", v, mn["node_id"])
    comp = next(x for x in c.info()["components"] if x["kind"] == "compute")
    text = (c.data / "logs" / f"{comp['name']}.log").read_text(errors="replace")
    stall = re.compile(rf"memory node {mn['node_id']}: .* timed out after \d+ ms: \d+ in flight "
                       r"\(oldest #\d+ \S+, \d+/\d+ bytes sent\).*last byte in -?\d+ ms ago")
    assert stall.search(text), text[-4000:]


def test_memnode_killed_and_restarted(cluster):
    c = cluster
    mn = prepare(c, "reborn")
    with open(f"/proc/{mn['pid']}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    # The same addresses as before: the sections' grants name them.
    argv[argv.index("--listen") + 1] = mn["addr"]
    argv[argv.index("--http") + 1] = mn["http"]
    v = start_verify(c, "reborn")
    os.kill(mn["pid"], signal.SIGKILL)
    s = wait_state(c, "reborn", "degraded", 14)
    assert f"memory node {mn['node_id']}" in s.get("reason", ""), s
    time.sleep(3)
    log = open(c.data / "logs" / "memnode-restarted.log", "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    c.extra.append(p)
    wait_state(c, "reborn", "running", 60)
    check_after(c, "reborn", v, mn["node_id"])
    before = len(slot(c, "reborn")["sections"])
    c.disagg("slot", "resize", "reborn", "--memory", "640M", timeout=180)
    s = slot(c, "reborn")
    assert s["state"] == "running" and len(s["sections"]) == before + 1, s
