# SPDX-License-Identifier: MIT
"""VM test: compute migration, memory stays (docs/compute.md, "Compute
migration").

Two compute agents (node ids 1 and 2) and a memory node on loopback. A VM
whose RAM is all on the memory node moves from agent 1 to agent 2; only
CPU and device state cross (x-ignore-shared), the guest's pattern is
verified on the destination, and the sections stay allocated throughout.

- idle guest with a filled region and heartbeats: 0 mismatches after the
  move, little RAM sent, the guest-felt gap, source "migrated" and its QEMU
  gone, sections freed only when the destination VM is deleted;
- the guest rewrites its region while it moves (the answer to the rewrite
  arrives on the destination and is dropped there), plus a second region
  filled just before: both verify;
- hot-plugged DIMMs and virtio-mem sections move too (hot_sections);
- refusals: local sections, a VM that is not running, a second migrate
  while one runs (409);
- the destination QEMU killed while the source waits at pre-switchover,
  and a destination that is gone before the migration starts: the source
  keeps running (503), its memory verifies, and a later migration works.
"""
import os
import signal
import threading
import time

import dproto
import vmlib

MiB = 1 << 20


def regrant(key, section, holder):
    """The same section with a grant for another holder (the destination)."""
    if section.get("kind") != "remote":
        return dict(section)
    g = bytes.fromhex(section["grant"])
    mnid, _, sec, gen, *_ = dproto.GRANT.unpack(g)
    out = {k: v for k, v in section.items() if k in ("kind", "addr", "free_on_release")}
    free = dproto.R_FREE if section.get("free_on_release") else 0
    out["grant"] = dproto.mint_grant(key, mnid, holder, sec, gen,
                                     dproto.R_READ | dproto.R_WRITE | free).hex()
    return out


def incoming(dst, name, sections, **kw):
    """Create the destination VM; returns its status (state "incoming")."""
    j = dst.create(name, sections, incoming={"listen": "127.0.0.1:0"}, **kw)
    assert j["state"] == "incoming", j
    assert j["migration_uri"].startswith("tcp:127.0.0.1:"), j
    assert not j["migration_uri"].endswith(":0"), j
    return j


def migrate(src, name, uri, expect=(200,), **kw):
    st, j = src.request("POST", f"/v1/vms/{name}/migrate", dict(uri=uri, **kw), timeout=300)
    assert st in expect, (st, j)
    return st, j


def running(agent, name, timeout=30):
    ok = vmlib.wait_for(lambda: agent.status(name)["state"] == "running", timeout)
    assert ok, agent.status(name)
    return agent.status(name)


def heartbeats(agent, name):
    return agent.call("GET", f"/v1/vms/{name}/heartbeats")


def test_migrate_all_remote(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    before = mn.count()
    secs = [mn.section(holder=1) for _ in range(4)]          # 512 MiB, all remote
    vm = a1.create("mover", secs, vcpus=1)
    a1.guest("mover", "FILL 1 7 256")
    a1.guest("mover", "HEARTBEAT 10")
    time.sleep(0.3)

    dst = incoming(a2, "mover", [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])
    st, res = migrate(a1, "mover", dst["migration_uri"])
    print("migration 512 MiB:", res)
    assert res["ok"] is True
    # Only device and CPU state crossed: RAM stayed on the memory node.
    assert res["ram_transferred_bytes"] < 16 * MiB, res
    assert res["downtime_ms"] < 2000, res
    assert res["flush_rounds"] >= 1 and res["pages_flushed"] > 0, res
    for k in ("total_ms", "setup_ms", "final_flush_pages", "final_flush_ms"):
        assert k in res, res

    # The source's recent working set, for the destination to prefetch.
    assert res["hot_pages"] > 0 and sum(h["count"] for h in res["hot"]) == res["hot_pages"], res
    assert "hot" not in a1.status("mover")["last_migration"]
    src = a1.status("mover")
    assert src["state"] == "migrated", src
    # Its QEMU stays paused until the record is deleted (teardown off the move's path).
    assert vmlib.pid_alive(vm["pid"]), "source QEMU gone before the record was deleted"
    running(a2, "mover")
    bad = [{}, {"hot": 1}, {"hot": [{"memnode": 1}]}, {"hot": [dict(res["hot"][0], count=0)]},
           {"hot": [dict(res["hot"][0], x=1)]}, {"hot": [], "x": 1}]
    for b in bad:
        st, j = a2.request("POST", "/v1/vms/mover/prefetch", b)
        assert st == 400, (b, st, j)
    foreign = dict(res["hot"][0], section=res["hot"][0]["section"] + 1000)
    j = a2.call("POST", "/v1/vms/mover/prefetch", {"hot": res["hot"] + [foreign]},
                expect=(202,))
    assert j["queued_pages"] == res["hot_pages"] and j["skipped_pages"] == foreign["count"], j
    assert vmlib.wait_for(lambda: a2.status("mover")["pager"]["pages_hot_prefetched"] > 0, 10)
    v = a2.guest("mover", "VERIFY 1")
    assert v["mismatches"] == 0, v

    # Guest-felt downtime: heartbeat numbers run on across the move.
    time.sleep(0.3)
    h1, h2 = heartbeats(a1, "mover"), heartbeats(a2, "mover")
    assert h1["count"] > 0 and h2["count"] > 0, (h1["count"], h2["count"])
    last, first = h1["heartbeats"][-1], h2["heartbeats"][0]
    assert first[0] == last[0] + 1, (last, first)        # none lost
    gap_ms = (first[1] - last[1]) / 1e6
    print(f"guest-felt gap {gap_ms:.1f} ms (downtime {res['downtime_ms']} ms)")
    assert 0 < gap_ms < 5000, gap_ms
    assert res["last_heartbeat"]["seq"] == last[0], res

    # The source kept the sections for the destination: forgetting it frees nothing.
    assert mn.count() == before + 4
    a1.delete("mover")
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(vm["pid"]), 10), "source QEMU still runs"
    assert mn.count() == before + 4
    # The destination owns them now (free_on_release is back in force there).
    p = a2.status("mover")["pager"]
    assert p["pages_fetched"] > 0 and p["failed"] == 0, p
    a2.delete("mover")
    assert vmlib.wait_for(lambda: mn.count() == before, 10), mn.count()


def test_migrate_while_guest_writes(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    secs = [mn.section(holder=1) for _ in range(4)]
    a1.create("busy", secs)
    a1.guest("busy", "FILL 1 21 192")
    dst = incoming(a2, "busy", [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])

    result = {}

    def rewrite():
        result["rewrite"] = a1.request("POST", "/v1/vms/busy/guest",
                                       {"command": "REWRITE 1 22", "timeout_ms": 120000},
                                       timeout=200)

    t = threading.Thread(target=rewrite)
    a1.guest("busy", "FILL 2 23 32")         # a second region just before the move
    t.start()
    time.sleep(0.2)                           # the rewrite is under way
    # One flush round only: the switchover comes while the guest still writes.
    st, res = migrate(a1, "busy", dst["migration_uri"], max_flush_rounds=1,
                      dirty_threshold_pages=0)
    print("migration under writes:", res)
    t.join(200)
    assert not t.is_alive()
    # The rewrite finished on the source (200) or the source QEMU left under it (503).
    assert result["rewrite"][0] in (200, 503), result
    running(a2, "busy")
    # Region 1 has the new pattern (the guest finished the rewrite wherever it was).
    v = a2.guest("busy", "VERIFY 1")
    assert v["mismatches"] == 0, v
    v = a2.guest("busy", "VERIFY 2")
    assert v["mismatches"] == 0, v
    a2.guest("busy", "REWRITE 2 24")
    assert a2.guest("busy", "VERIFY 2")["mismatches"] == 0
    assert res["ram_transferred_bytes"] < 16 * MiB, res
    a1.delete("busy")
    a2.delete("busy")


def test_migrate_hot_dimm(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    secs = [mn.section(holder=1) for _ in range(2)]
    a1.create("hot", secs, max_sections=4)
    hot = [mn.section(holder=1) for _ in range(3)]
    idx = [a1.add_section("hot", h)["index"] for h in hot]
    # A hole: the middle DIMM goes, so the others are not where plugging them
    # in order would put them (QEMU refuses "Mismatched GPAs" then).
    a1.remove_section("hot", idx[1])
    del hot[1], idx[1]
    mem = a1.status("hot")
    assert mem["memory_bytes"] == 4 * vmlib.SECTION
    where = {h["index"]: (h["gpa"], h["slot"]) for h in mem["hot_sections"]}
    assert sorted(where) == idx and where[idx[1]][1] == 2, where
    a1.guest("hot", "FILL 1 31 300")        # more than the boot RAM: uses the DIMMs

    hot_in = [dict(regrant(key, h, 2), index=i, gpa=where[i][0], slot=where[i][1])
              for h, i in zip(hot, idx)]
    bad = [dict(hot_in[0], gpa=0), dict(hot_in[0], slot=-1), {k: v for k, v in hot_in[0].items()
                                                               if k != "slot"}]
    for b in bad:
        st, j = a2.request("POST", "/v1/vms", {"name": "hot", "vcpus": 1,
                                               "sections": [regrant(key, s, 2) for s in secs],
                                               "max_sections": 4, "hot_sections": [b],
                                               "incoming": {"listen": "127.0.0.1:0"}})
        assert st == 400 and "gpa" in j["error"]["message"], (b, st, j)
    dst = incoming(a2, "hot", [regrant(key, s, 2) for s in secs], max_sections=4,
                   hot_sections=hot_in)
    a2.qemu_pids.add(dst["pid"])
    assert dst["memory_bytes"] == 4 * vmlib.SECTION, dst
    st, res = migrate(a1, "hot", dst["migration_uri"])
    running(a2, "hot")
    assert a2.guest("hot", "VERIFY 1")["mismatches"] == 0
    got = a2.status("hot")
    assert [h["index"] for h in got["hot_sections"]] == [h["index"] for h in hot_in], got
    assert {h["index"]: (h["gpa"], h["slot"]) for h in got["hot_sections"]} == where, got
    # The DIMM can be removed on the destination like any other.
    a2.guest("hot", "FREE 1")
    a2.remove_section("hot", hot_in[-1]["index"])
    assert a2.status("hot")["memory_bytes"] == 3 * vmlib.SECTION
    a1.delete("hot")
    a2.delete("hot")


def test_migrate_virtio_mem(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    before = mn.count()
    secs = [mn.section(holder=1) for _ in range(2)]
    a1.create("vmem", secs, hotplug="virtio-mem", max_sections=4)
    hot = [mn.section(holder=1) for _ in range(2)]
    assert [a1.add_section("vmem", h)["index"] for h in hot] == [0, 1]
    a1.guest("vmem", "FILL 1 51 300")       # more than the boot RAM: uses the device

    dst = incoming(a2, "vmem", [regrant(key, s, 2) for s in secs], hotplug="virtio-mem",
                   max_sections=4,
                   hot_sections=[dict(regrant(key, h, 2), index=i) for i, h in enumerate(hot)])
    a2.qemu_pids.add(dst["pid"])
    assert dst["memory_bytes"] == 4 * vmlib.SECTION, dst
    st, res = migrate(a1, "vmem", dst["migration_uri"])
    running(a2, "vmem")
    assert a2.guest("vmem", "VERIFY 1")["mismatches"] == 0
    # The device shrinks on the destination like any other.
    a2.guest("vmem", "FREE 1")
    assert a2.remove_section("vmem", 1)["vm"]["memory_bytes"] == 3 * vmlib.SECTION
    assert mn.count() == before + 3
    a1.delete("vmem")
    a2.delete("vmem")
    assert vmlib.wait_for(lambda: mn.count() == before, 10), mn.count()


def test_migrated_record_retired(cluster, key):
    # The source keeps its QEMU paused until the record is deleted; if nobody
    # deletes it, the agent stops that QEMU by itself and frees nothing.
    mn = cluster.memnode()
    before = mn.count()
    a1 = cluster.agent(1, extra=("--retire-migrated-ms", "500"))
    a2 = cluster.agent(2)
    secs = [mn.section(holder=1) for _ in range(2)]
    vm = a1.create("left", secs)
    a1.guest("left", "FILL 1 3 64")
    dst = incoming(a2, "left", [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])
    migrate(a1, "left", dst["migration_uri"])
    running(a2, "left")
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(vm["pid"]), 15), "paused QEMU kept"
    assert a1.status("left")["state"] == "migrated"
    assert "not deleted within 500 ms" in a1.stderr()
    assert mn.count() == before + 2
    assert a2.guest("left", "VERIFY 1")["mismatches"] == 0
    a1.delete("left")
    a2.delete("left")
    assert vmlib.wait_for(lambda: mn.count() == before, 10), mn.count()


def test_migrate_refusals(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    # Local sections cannot stay behind: refused, nothing changes.
    a1.create("mixed", [{"kind": "local"}, mn.section(holder=1)])
    st, j = migrate(a1, "mixed", "tcp:127.0.0.1:1", expect=(409,))
    assert "local section" in j["error"]["message"], j
    assert a1.status("mixed")["state"] == "running"
    # GET ?wait=STATE: at once when the VM is in it; bad values are 400.
    t0 = time.monotonic()
    st, j = a1.request("GET", "/v1/vms/mixed?wait=running&timeout_ms=5000")
    assert st == 200 and j["state"] == "running" and time.monotonic() - t0 < 2, (st, j)
    t0 = time.monotonic()
    st, j = a1.request("GET", "/v1/vms/mixed?wait=incoming&timeout_ms=300")
    assert st == 200 and j["state"] == "running" and time.monotonic() - t0 >= 0.25, (st, j)
    for q in ("wait=bogus", "wait=running&timeout_ms=60001", "wait=running&timeout_ms=x"):
        st, j = a1.request("GET", f"/v1/vms/mixed?{q}")
        assert st == 400 and j["error"]["code"] == "bad_request", (q, st, j)
    # Evacuation (what the orchestrator does first): bad requests change nothing.
    a1.guest("mixed", "FILL 1 5 100")
    before = mn.count()
    to = {k: v for k, v in mn.section(holder=1).items() if k != "free_on_release"}
    bad = [({}, 400), ({"boot_index": 0}, 400), ({"boot_index": 0, "hot_index": 0, "to": to}, 400),
           ({"boot_index": -1, "to": to}, 400), ({"boot_index": 0, "to": to, "x": 1}, 400),
           ({"boot_index": 0, "to": {"addr": to["addr"]}}, 400),
           ({"boot_index": 5, "to": to}, 404), ({"hot_index": 0, "to": to}, 404),
           ({"boot_index": 1, "to": to}, 409),                           # remote already
           ({"boot_index": 0, "to": regrant(key, to, 2)}, 400)]          # not this node's grant
    for body, status in bad:
        st, j = a1.request("POST", "/v1/vms/mixed/sections/evacuate", body)
        assert st == status, (body, st, j)
    assert a1.status("mixed")["sections"][0]["kind"] == "local"
    st, j = a1.request("POST", "/v1/vms/mixed/sections/evacuate",
                       {"boot_index": 0, "to": to, "free_on_release": True})
    assert st == 200 and j["pages"] > 0, (st, j)
    assert [x["kind"] for x in j["vm"]["sections"]] == ["remote", "remote"], j
    assert a1.guest("mixed", "VERIFY 1")["mismatches"] == 0
    pages = j["pages"]
    p = a1.call("POST", "/v1/vms/mixed/flush")["pager"]     # the guest runs on: some re-dirty
    assert p["pages_written_back"] >= pages and p["failed"] == 0, (pages, p)
    st, j = a1.request("POST", "/v1/vms/mixed/sections/evacuate", {"boot_index": 0, "to": to})
    assert st == 409, (st, j)
    assert mn.count() == before + 1
    # Now all remote: no longer refused (the destination does not exist: 503, it stays).
    st, j = migrate(a1, "mixed", "tcp:127.0.0.1:1", expect=(503,))
    assert a1.status("mixed")["state"] == "running"
    assert a1.guest("mixed", "VERIFY 1")["mismatches"] == 0
    # Bad input.
    migrate(a1, "mixed", "unix:/tmp/x", expect=(400,))
    st, j = a1.request("POST", "/v1/vms/mixed/migrate", {"uri": "tcp:1.2.3.4:5", "bogus": 1})
    assert st == 400, (st, j)
    st, j = a2.request("POST", "/v1/vms", {"name": "x", "sections": [{"kind": "local"}],
                                          "hot_sections": []})
    assert st == 400 and "incoming" in j["error"]["message"], (st, j)
    st, j = a2.request("POST", "/v1/vms", {"name": "x", "sections": [{"kind": "local"}],
                                          "incoming": {"listen": "nohost"}})
    assert st == 400, (st, j)
    # Not running.
    a1.call("POST", "/v1/vms/mixed/stop")
    st, j = migrate(a1, "mixed", "tcp:127.0.0.1:1", expect=(409,))
    assert "not running" in j["error"]["message"], j
    a1.delete("mixed")

    # A second migrate while one runs (held at pre-switchover).
    secs = [mn.section(holder=1) for _ in range(2)]
    a1.create("twice", secs)
    dst = incoming(a2, "twice", [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "first", migrate(a1, "twice", dst["migration_uri"], hold_at_switchover_ms=3000)))
    t.start()
    assert vmlib.wait_for(lambda: a1.status("twice").get("migrating"), 20)
    st, j = migrate(a1, "twice", dst["migration_uri"], expect=(409,))
    assert "already in progress" in j["error"]["message"], j
    t.join(120)
    assert out["first"][0] == 200, out
    running(a2, "twice")
    a1.delete("twice")
    a2.delete("twice")


def test_destination_dies(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    before = mn.count()
    secs = [mn.section(holder=1) for _ in range(4)]
    vm = a1.create("stay", secs)
    a1.guest("stay", "FILL 1 41 200")
    dsecs = [regrant(key, s, 2) for s in secs]

    # 1. The destination QEMU is killed while the source waits at pre-switchover.
    dst = incoming(a2, "stay", dsecs)
    a2.qemu_pids.add(dst["pid"])
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", migrate(
        a1, "stay", dst["migration_uri"], expect=(503,), hold_at_switchover_ms=1500)))
    t.start()
    assert vmlib.wait_for(lambda: a1.status("stay").get("migration_phase") == "pre-switchover",
                          60, 0.02), a1.status("stay")
    os.kill(dst["pid"], signal.SIGKILL)
    t.join(120)
    st, j = out["r"]
    print("destination killed:", j)
    assert "keeps running here" in j["error"]["message"] or \
        "resumed here" in j["error"]["message"], j
    assert a1.status("stay")["state"] == "running"
    assert a1.guest("stay", "VERIFY 1")["mismatches"] == 0
    a1.guest("stay", "REWRITE 1 42")
    assert a1.guest("stay", "VERIFY 1")["mismatches"] == 0
    d = vmlib.wait_for(lambda: a2.status("stay")["state"] == "failed", 15)
    assert d, a2.status("stay")
    assert mn.count() == before + 4            # the failed destination freed nothing
    a2.delete("stay")

    # 2. The destination is gone before the migration starts.
    dst = incoming(a2, "stay", dsecs)
    a2.qemu_pids.add(dst["pid"])
    a2.delete("stay")
    st, j = migrate(a1, "stay", dst["migration_uri"], expect=(503,))
    assert a1.status("stay")["state"] == "running"
    assert a1.guest("stay", "VERIFY 1")["mismatches"] == 0
    assert mn.count() == before + 4

    # 3. After all that, a migration works.
    dst = incoming(a2, "stay", dsecs)
    a2.qemu_pids.add(dst["pid"])
    migrate(a1, "stay", dst["migration_uri"])
    running(a2, "stay")
    assert a2.guest("stay", "VERIFY 1")["mismatches"] == 0
    a1.delete("stay")
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(vm["pid"]), 10), "source QEMU still runs"
    a2.delete("stay")
    assert vmlib.wait_for(lambda: mn.count() == before, 10), mn.count()
