# SPDX-License-Identifier: MIT
"""VM test: a guest whose RAM is all on a memory node.

- 100% remote boot RAM (4 sections = 512 MiB): the guest fills and verifies
  256 MiB, the pager fetched pages from the memory node, and deleting the
  VM gives the sections back (free_on_release).
- A local cache budget of 25% of the remote RAM: the guest writes and
  verifies 384 MiB, so pages are evicted and written back to the memory
  node and fetched again, and the pattern still matches.
"""
import vmlib


def test_all_remote_fill_verify(cluster):
    mn = cluster.memnode()
    agent = cluster.agent()
    before = mn.count()
    secs = [mn.section() for _ in range(4)]
    assert mn.count() == before + 4
    vm = agent.create("remote100", secs, vcpus=1)
    assert vm["state"] == "running", vm
    assert vm["memory_bytes"] == 4 * vmlib.SECTION
    assert all(s["kind"] == "remote" for s in vm["sections"])
    boot = agent.status("remote100")["pager"]
    assert boot["pages_fetched"] > 0, boot   # booting alone reads remote pages

    f = agent.guest("remote100", "FILL 1 7 256")
    assert f["mb"] == 256
    v = agent.guest("remote100", "VERIFY 1")
    assert v["mismatches"] == 0, v

    st = agent.status("remote100")
    p = st["pager"]
    assert p["errors"] == 0 and p["failed"] == 0, p
    # The guest touched 256 MiB that it never had before: all served by the pager.
    assert p["pages_fetched"] >= boot["pages_fetched"] + (256 << 20) // 4096 // 2, p
    assert p["pages_evicted"] == 0, p            # no budget: nothing leaves
    assert st["guest_memtotal_kb"] > 400 * 1024

    agent.delete("remote100")
    assert vmlib.wait_for(lambda: mn.count() == before, 10), mn.count()
    assert agent.request("GET", "/v1/vms/remote100")[0] == 404


def test_quarter_budget_eviction(cluster):
    mn = cluster.memnode()
    agent = cluster.agent()
    nsec = 6
    secs = [mn.section() for _ in range(nsec)]
    budget = nsec * vmlib.SECTION // 4                  # 192 MiB of 768
    vm = agent.create("remote25", secs, vcpus=1, cache_bytes=budget)
    assert vm["cache_bytes"] == budget

    f = agent.guest("remote25", "FILL 1 11 384")
    assert f["mb"] == 384
    v = agent.guest("remote25", "VERIFY 1")
    assert v["mismatches"] == 0, v
    # A second pass with a new pattern: pages written back must come back right.
    agent.guest("remote25", "REWRITE 1 12")
    v = agent.guest("remote25", "VERIFY 1")
    assert v["mismatches"] == 0, v

    p = agent.status("remote25")["pager"]
    # `errors` counts every retried backend attempt: under the sanitizers a
    # fresh-clone run saw one now and then (errors=1, a quarter of the runs,
    # not explained yet); a failed fault or a wrong page is never allowed.
    # The agent logs each counted error ("pager NAME: error N: what: why").
    why = [ln for ln in agent.stderr().splitlines() if ": error " in ln and "pager" in ln]
    if p["errors"]:
        print("counted pager errors:", *why, sep="\n  ")
    assert p["failed"] == 0 and p["errors"] <= 2, (p, why)
    assert len(why) >= min(p["errors"], 32), (p, why)
    assert p["pages_evicted"] > 0, p
    assert p["pages_written_back"] > 0, p
    # The budget holds (with the pager's small slack for in-flight faults).
    assert p["resident_pages"] * 4096 <= budget * 1.1, p
    assert p["max_resident_pages"] * 4096 <= budget * 1.25, p
    agent.delete("remote25")
