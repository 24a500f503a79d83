# SPDX-License-Identifier: MIT
"""VM test: hot-add and hot-remove remote sections through the agent, in
pc-dimm and in virtio-mem mode.

The VM boots with 256 MiB of remote RAM. Two remote sections
(free_on_release) are hot-added: MemTotal grows by 256 MiB, and a region
larger than the memory that was free before the add is filled and
verified, so the new memory is used and served by the pager. After the
region is freed both sections are removed: MemTotal is back where it was
and the memory node holds as many sections as before the add.
"""
import time

import pytest

import vmlib

SLACK_KB = 4096


@pytest.mark.parametrize("mode", ["dimm", "virtio-mem"])
def test_hotplug_remote_sections(cluster, mode):
    mn = cluster.memnode()
    agent = cluster.agent()
    name = "hp-" + mode.replace("-", "")
    agent.create(name, [mn.section() for _ in range(2)], hotplug=mode, max_sections=4)
    m0 = agent.meminfo(name)
    count0 = mn.count()

    idx = []
    for i in range(2):
        t0 = time.monotonic()
        r = agent.add_section(name, mn.section())
        client_ms = (time.monotonic() - t0) * 1000
        assert r["ms"] <= client_ms + 1, (r["ms"], client_ms)
        idx.append(r["index"])
        print(f"{mode} add {i}: agent {r['ms']} ms, client {client_ms:.0f} ms")
    assert mn.count() == count0 + 2
    m1 = agent.meminfo(name)
    grown = m1["memtotal_kb"] - m0["memtotal_kb"]
    assert abs(grown - 2 * 131072) <= SLACK_KB, (m0, m1)
    assert m1["movable"] >= 2 or mode == "virtio-mem", m1
    st = agent.status(name)
    assert st["memory_bytes"] == 4 * vmlib.SECTION, st
    assert st["guest_memtotal_kb"] == m1["memtotal_kb"]
    assert [h["index"] for h in st["hot_sections"]] == idx, st["hot_sections"]
    assert all(h["kind"] == "remote" and h["plugged"] for h in st["hot_sections"])

    # More than was free before the add: the new sections must hold part of it.
    mb = m0["memfree_kb"] // 1024 + 64
    assert mb * 1024 < m1["memfree_kb"] - 32 * 1024, (mb, m1)
    fetched0 = st["pager"]["pages_fetched"]
    agent.guest(name, f"FILL 3 21 {mb}")
    v = agent.guest(name, "VERIFY 3")
    assert v["mismatches"] == 0, v
    p = agent.status(name)["pager"]
    assert p["errors"] == 0 and p["failed"] == 0, p
    assert p["pages_fetched"] > fetched0, p
    agent.guest(name, "FREE 3")

    # virtio-mem gives back the last section first; DIMMs go in any order.
    for i in reversed(idx) if mode == "virtio-mem" else idx:
        t0 = time.monotonic()
        r = agent.remove_section(name, i)
        print(f"{mode} remove {i}: agent {r['ms']} ms, "
              f"client {(time.monotonic() - t0) * 1000:.0f} ms")
    m2 = agent.meminfo(name)
    assert abs(m2["memtotal_kb"] - m0["memtotal_kb"]) <= SLACK_KB, (m0, m2)
    assert vmlib.wait_for(lambda: mn.count() == count0, 10), (mn.count(), count0)
    st = agent.status(name)
    assert st["memory_bytes"] == 2 * vmlib.SECTION and not st["hot_sections"], st

    # The VM still works, and a section can be added again after the removal.
    r = agent.add_section(name, mn.section())
    agent.guest(name, "FILL 4 5 64")
    assert agent.guest(name, "VERIFY 4")["mismatches"] == 0
    agent.guest(name, "FREE 4")
    agent.remove_section(name, r["index"])
    assert vmlib.wait_for(lambda: mn.count() == count0, 10)

    agent.delete(name)
    assert vmlib.wait_for(lambda: mn.count() == count0 - 2, 10), mn.count()
