# SPDX-License-Identifier: MIT
"""Memory migration of a shared region with real guests on a one-machine
cluster of two memory nodes and two compute nodes (`disagg up --memnodes 2
--computes 2`): the region's sections move to the other memory node while
both guests map it (docs/sharing.md, "Moving a region to another memory
node").

- exclusive: a holds the lock, fills the region, then counts (RCOUNTER,
  alone) while it moves: its writes wait during the pause, none fails or
  is lost (the count is exact); b then locks and verifies the fill and
  the count. a writes again on the new node, b verifies again. The pause
  the users saw is measured (the answer's pause_ms) and printed.
- strict: the spinlocked counter (RCOUNTER) runs in both guests on two
  compute nodes while the region moves, and back: the count is exact.
  Then a third user on one of those nodes counts with the other user of
  its node: exact too (the move kept each VM's holder tag).
- release: a and b write opposite halves of every line of the same pages
  and release nothing; the region moves (its users' quiesce publishes
  their diffs, as an early release may); both release and acquire on the
  new node and read the union.
- failure: the target memory node is killed (SIGKILL) during the move:
  the region stays on its node, `ready`, nothing lost (b verifies what a
  wrote), event region_migration_failed; a writes again afterwards.
- failure: b's compute agent is killed (SIGKILL): the move is refused, a
  is resumed and writes on; once the agent is back (it adopts its VM) the
  move succeeds and b reads what a wrote.
"""
import json
import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

from test_cluster import running
from test_migration_cluster import TOKENS, http, orch
from test_region_cluster import guest_ok, wait_job, wait_seen
from test_region_migration import ITERS, coherent_then_gone, start_counters, wait_progress

SAME_NODE_ITERS = 2_000_000
FILL = 32768          # pages of 128 MiB (the last two of a region are its control pages)


@pytest.fixture
def cluster(tmp_path):
    with running(tmp_path, "--memnodes", "2", "--computes", "2", "--pool", "2G",
                 timeout=240) as c:
        TOKENS.update({x["http"]: c.token_for(x["http"])
                       for x in c.info()["components"] if x.get("http")})
        yield c


def events(c):
    out = c.disagg("--json", "events", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def users(c, mode, region, size="128M"):
    for name in ("a", "b"):
        c.disagg("slot", "create", name, "--vcpus", "2", "--memory", "256M", timeout=300)
    on = {n: c.json("slot", "show", n)["compute"] for n in ("a", "b")}
    assert on["a"] != on["b"], on
    return attach_users(c, mode, region, size)


def attach_users(c, mode, region, size="128M"):
    """A new region attached to slots a and b, seen by both guests: their PCI addresses."""
    c.disagg("region", "create", region, "--size", size, "--mode", mode)
    for name in ("a", "b"):
        c.disagg("region", "attach", region, "--slot", name, timeout=120)
    pci = {x["slot"]: x["pci"] for x in c.json("region", "show", region)["attachments"]}
    for name in ("a", "b"):
        wait_seen(c, name, pci[name])
    return pci


def other_memnode(c, region):
    home = c.json("region", "show", region)["home"]
    return home, next(x["node_id"] for x in c.info()["components"]
                      if x["kind"] == "memnode" and x["node_id"] != home)


def migrate(c, region, to):
    return http(orch(c), "POST", f"/v1/regions/{region}/migrate", {"to": to})


def test_exclusive_region_moves_while_the_holder_writes(cluster):
    c = cluster
    pci = users(c, "exclusive", "ex")
    home, other = other_memnode(c, "ex")
    c.disagg("region", "lock", "ex", "--slot", "a")
    # b has read (cached) the region before the move: it must not read that copy after.
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 900 16")
    assert int(v["mismatches"]) == 16, v
    guest_ok(c, "a", f"RFILL {pci['a']} 901 {FILL - 2}")
    # Page 0 becomes the counter's (lock word at 0, counter at 64): a counts
    # alone, as the holder, across the move; every increment must land.
    for off in (0, 64):
        guest_ok(c, "a", f"RPOKE {pci['a']} {off} 0")
        wait_job(c, "a", 60)
    guest_ok(c, "a", f"RCOUNTER {pci['a']} {ITERS}")
    j = wait_progress(c, "a", 1)
    assert j.get("state") == "running", ("a finished before the move", j)
    st, ans = migrate(c, "ex", other)
    assert st == 200, ans
    j = guest_ok(c, "a", "RJOB")
    assert j.get("state") == "running", ("a's count ended before the move ended", j)
    print(f"exclusive move: pause {ans['pause_ms']} ms, copy {ans['copy_ms']} ms of "
          f"{ans['bytes_copied']} bytes, total {ans['total_ms']} ms, users {ans['users']}")
    assert int(wait_job(c, "a")["counter"]) == ITERS
    reg = ans["region"]
    assert reg["home"] == other and reg["state"] == "ready" and reg["holder"] == "a", reg
    assert all(x["memnode"] == other for x in reg["sections"])
    assert [e for e in events(c) if e["kind"] == "region_migrated"]
    c.disagg("region", "unlock", "ex", "--slot", "a")
    c.disagg("region", "lock", "ex", "--slot", "b")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 901 {FILL - 2}")
    assert int(v["mismatches"]) == 1 and v["first"] == "0", v     # page 0: the counter
    assert guest_ok(c, "b", f"RPEEK {pci['b']} 64").get("value") == str(ITERS)
    c.disagg("region", "unlock", "ex", "--slot", "b")
    # a writes again after the move, on the new node; b verifies.
    c.disagg("region", "lock", "ex", "--slot", "a")
    guest_ok(c, "a", f"RFILL {pci['a']} 902 4096")
    c.disagg("region", "unlock", "ex", "--slot", "a")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 902 4096")
    assert int(v["mismatches"]) == 0, v
    # The CLI moves it back.
    out = c.disagg("region", "migrate", "ex", "--to", str(home)).stdout
    assert out.startswith(f"region ex moved from memory node {other} to {home}"), out
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 902 4096")
    assert int(v["mismatches"]) == 0, v
    for name in ("a", "b"):
        c.disagg("region", "detach", "ex", "--slot", name, timeout=120)
    c.disagg("region", "delete", "ex")


def test_release_region_moves_with_unreleased_writes(cluster):
    c = cluster
    pci = users(c, "release", "rl")
    home, other = other_memnode(c, "rl")
    pages = 2048
    for name in ("a", "b"):
        guest_ok(c, name, f"RACQUIRE {pci[name]}")
    guest_ok(c, "a", f"RFILL {pci['a']} 31 {pages} lo")
    guest_ok(c, "b", f"RFILL {pci['b']} 31 {pages} hi")
    st, ans = migrate(c, "rl", other)
    assert st == 200, ans
    reg = ans["region"]
    assert reg["home"] == other and reg["state"] == "ready", reg
    print(f"release move: pause {ans['pause_ms']} ms, users {ans['users']}")
    for name in ("a", "b"):
        guest_ok(c, name, f"RRELEASE {pci[name]}")
    for name in ("a", "b"):
        guest_ok(c, name, f"RACQUIRE {pci[name]}")
        v = guest_ok(c, name, f"RVERIFY {pci[name]} 31 {pages}")
        assert int(v["mismatches"]) == 0, (name, v)
    # They write on the new node, and it still merges.
    guest_ok(c, "a", f"RFILL {pci['a']} 32 16 hi")
    guest_ok(c, "b", f"RFILL {pci['b']} 32 16 lo")
    for name in ("a", "b"):
        guest_ok(c, name, f"RRELEASE {pci[name]}")
    for name in ("a", "b"):
        guest_ok(c, name, f"RACQUIRE {pci[name]}")
        v = guest_ok(c, name, f"RVERIFY {pci[name]} 32 16")
        assert int(v["mismatches"]) == 0, (name, v)
    for name in ("a", "b"):
        c.disagg("region", "detach", "rl", "--slot", name, timeout=120)
    c.disagg("region", "delete", "rl")


def test_strict_counter_while_the_region_moves(cluster):
    c = cluster
    pci = users(c, "strict", "st")
    # A third user shares a compute node with a or b: two holders of one
    # node, told apart at the directory by their tags, which the move keeps.
    c.disagg("slot", "create", "c", "--vcpus", "2", "--memory", "256M", timeout=300)
    c.disagg("region", "attach", "st", "--slot", "c", timeout=120)
    pci["c"] = next(x["pci"] for x in c.json("region", "show", "st")["attachments"]
                    if x["slot"] == "c")
    wait_seen(c, "c", pci["c"])
    on = {n: c.json("slot", "show", n)["compute"] for n in ("a", "b", "c")}
    partner = "a" if on["a"] == on["c"] else "b"
    home, other = other_memnode(c, "st")
    start_counters(c, pci)
    j = wait_progress(c, "a", 1)
    assert j.get("state") == "running", ("a finished before the move", j)
    st, ans = migrate(c, "st", other)
    assert st == 200, ans
    print(f"strict move: pause {ans['pause_ms']} ms, copy {ans['copy_ms']} ms, "
          f"total {ans['total_ms']} ms")
    st, back = migrate(c, "st", home)
    assert st == 200, back
    j = guest_ok(c, "a", "RJOB")
    ja, jb = wait_job(c, "a"), wait_job(c, "b")
    assert max(int(ja["counter"]), int(jb["counter"])) == 2 * ITERS, (ja, jb)
    assert j.get("state") == "running", ("a's count ended before both moves", j)
    reg = c.json("region", "show", "st")
    assert reg["state"] == "ready" and reg["home"] == home, reg
    # The two users of one compute node count together after the moves.
    for off in (0, 64):
        guest_ok(c, "c", f"RPOKE {pci['c']} {off} 0")
        wait_job(c, "c", 60)
    start_counters(c, pci, ("c", partner), SAME_NODE_ITERS)
    jc, jp = wait_job(c, "c"), wait_job(c, partner)
    assert max(int(jc["counter"]), int(jp["counter"])) == 2 * SAME_NODE_ITERS, (jc, jp)
    c.disagg("region", "detach", "st", "--slot", "c", timeout=120)
    # Still coherent: b reads what a wrote last.
    coherent_then_gone(c, "st", pci)


def test_target_memnode_killed_during_the_move(cluster):
    c = cluster
    pci = users(c, "exclusive", "ek", size="512M")
    home, other = other_memnode(c, "ek")
    target = next(x for x in c.info()["components"] if x.get("node_id") == other)
    c.disagg("region", "lock", "ek", "--slot", "a")
    guest_ok(c, "a", f"RFILL {pci['a']} 903 {4 * FILL - 2}")
    out = {}
    t = threading.Thread(target=lambda: out.update(r=migrate(c, "ek", other)))
    t.start()
    end = time.time() + 30
    while time.time() < end and t.is_alive() and \
            http(orch(c), "GET", "/v1/regions/ek")[1]["state"] != "moving":
        time.sleep(0.002)
    time.sleep(0.05)            # into the write-back or the COPY
    os.kill(target["pid"], signal.SIGKILL)
    t.join(300)
    st, ans = out["r"]
    assert st != 200, ans
    assert ans["error"]["code"] in ("copy_failed", "node_unreachable",
                                    "memnode_unreachable"), ans
    print(f"target killed: {st} {ans['error']}")
    reg = c.json("region", "show", "ek")
    assert reg["state"] == "ready" and reg["home"] == home and reg["holder"] == "a", reg
    assert all(x["memnode"] == home for x in reg["sections"])
    assert [e for e in events(c) if e["kind"] == "region_migration_failed"]
    # Nothing lost, and the users go on where it is.
    guest_ok(c, "a", f"RFILL {pci['a']} 904 64")
    c.disagg("region", "unlock", "ek", "--slot", "a")
    c.disagg("region", "lock", "ek", "--slot", "b")
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 904 64")
    assert int(v["mismatches"]) == 0, v
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 903 {4 * FILL - 2}")
    assert int(v["mismatches"]) == 64 and v["first"] == "0", v
    c.disagg("region", "unlock", "ek", "--slot", "b")
    for name in ("a", "b"):
        c.disagg("region", "detach", "ek", "--slot", name, timeout=120)
    c.disagg("region", "delete", "ek")


def test_agent_killed_then_back(cluster):
    """b's compute agent is killed (SIGKILL; its QEMU runs on): the move is
    refused (b cannot quiesce), a is resumed and writes on, nothing moved.
    The agent is started again (it adopts the VM and its region): the move
    then succeeds and b reads what a wrote."""
    c = cluster
    pci = users(c, "exclusive", "ea")
    home, other = other_memnode(c, "ea")
    c.disagg("region", "lock", "ea", "--slot", "a")
    guest_ok(c, "a", f"RFILL {pci['a']} 905 1024")
    agent = next(x for x in c.info()["components"]
                 if x.get("node_id") == c.json("slot", "show", "b")["compute"])
    argv = pathlib.Path(f"/proc/{agent['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
    os.kill(agent["pid"], signal.SIGKILL)
    restarted = None
    try:
        st, ans = migrate(c, "ea", other)
        assert st == 503 and ans["error"]["code"] == "node_unreachable", ans
        reg = c.json("region", "show", "ea")
        assert reg["state"] == "ready" and reg["home"] == home and reg["holder"] == "a", reg
        failed = [e for e in events(c) if e["kind"] == "region_migration_failed"]
        assert failed and "stays on" in failed[-1]["message"], failed
        guest_ok(c, "a", f"RFILL {pci['a']} 906 64")      # a was resumed
        log = open(c.data / "logs" / f"{agent['name']}-restarted.log", "ab")
        restarted = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        end = time.time() + 120
        while time.time() < end and c.guest("b", "PING")[0] != 0:
            time.sleep(0.5)
        st, ans = migrate(c, "ea", other)
        assert st == 200 and ans["region"]["home"] == other, ans
        c.disagg("region", "unlock", "ea", "--slot", "a")
        c.disagg("region", "lock", "ea", "--slot", "b")
        v = guest_ok(c, "b", f"RVERIFY {pci['b']} 906 64")
        assert int(v["mismatches"]) == 0, v
        v = guest_ok(c, "b", f"RVERIFY {pci['b']} 905 1024")
        assert int(v["mismatches"]) == 64 and v["first"] == "0", v
        c.disagg("region", "unlock", "ea", "--slot", "b")
    finally:
        if restarted:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(60)
