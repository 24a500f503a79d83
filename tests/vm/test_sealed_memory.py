# SPDX-License-Identifier: MIT
"""VM test: guest memory at rest (docs/security.md, "Guest memory at rest").

Real guests whose RAM is on a memory node with a file backing (the
persistent mode, where guest pages would sit on a disk):

- a guest with a slot page key FILLs a pattern through a small cache: the
  memory node's file has no trace of it; one bit flipped in the file, in a
  page the guest wrote, makes the guest's VERIFY stop at that page: the VM
  turns `degraded` with the reason, the agent counts it in
  disagg_pager_integrity_failures_total, and VERIFY never returns a
  mismatch (the guest is never handed the page);
- the control: the same guest without a key leaves the pattern in the file;
- a compute migration of a sealed VM: the destination gets the source's
  page metadata as the orchestrator hands it over (a pre-copy while the
  guest runs, then the delta after the final flush, both as
  application/octet-stream) and the guest's memory verifies there; bad
  page-meta requests are refused and counted by the real agents exactly as
  by the fake one (tests/functional/fakes.py);
- the same with the guest writing after the pre-copy and during the
  migration: the delta carries the pages it changed, nothing stale stays.
"""
import json
import mmap
import os
import struct
import threading
import time

import dproto
import vmlib

import fakes
import pagemeta_cases as pm

MiB = 1 << 20
PAGE = 4096
SEC_PAGES = (128 * MiB) // PAGE
M64 = (1 << 64) - 1


def pattern_word(seed, page, i):
    """disagg-guest's FILL pattern (guest_pattern_word in src/guest/guestutil.h)."""
    x = ((seed * 0x9E3779B97F4A7C15) & M64) ^ (page << 9 | i)
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    return x | 1


def page_head(seed, page, words=4):
    return b"".join(struct.pack("<Q", pattern_word(seed, page, i)) for i in range(words))


def find(path, needle):
    """Offsets of needle in the file (page-aligned ones)."""
    out = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        at = m.find(needle)
        while at >= 0:
            if at % PAGE == 0:
                out.append(at)
            at = m.find(needle, at + 1)
    return out


def resident_pattern_pages(path, seed, mb):
    """{region page: slot page} for the pages of a FILLed region found in
    a guest RAM file, with read(): a read of a tmpfs hole allocates
    nothing, where a mapping would fill the holes behind the pager's back
    (DESIGN.md, section 2)."""
    heads = {page_head(seed, p): p for p in range(mb * MiB // PAGE)}
    out, slot_page = {}, 0
    with open(path, "rb", buffering=0) as f:
        while True:
            data = f.read(16 * MiB)
            if not data:
                return out
            for off in range(0, len(data), PAGE):
                p = heads.get(data[off:off + 32])
                if p is not None:
                    out[p] = slot_page
                slot_page += 1


def pattern_hits(path, seed, mb):
    """Pages of a FILLed region (a sample of 64 and the last) found in the file."""
    pages = mb * MiB // PAGE
    sample = sorted(set(list(range(0, pages, max(pages // 64, 1))) + [pages - 1]))
    return sum(len(find(path, page_head(seed, p))) for p in sample)


def resident(agent, name):
    return agent.status(name)["pager"]["resident_pages"]


def evict_all(agent, name, cache):
    """Every page out to the memory node, then the cache back."""
    agent.call("POST", f"/v1/vms/{name}/flush")
    agent.call("PUT", f"/v1/vms/{name}/budget", {"bytes": 0})
    assert vmlib.wait_for(lambda: resident(agent, name) == 0, 60), agent.status(name)
    agent.call("PUT", f"/v1/vms/{name}/budget", {"bytes": cache})


def metric(agent, name):
    text = agent.request("GET", "/metrics", raw=True)[1]
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_sealed_pages_leave_no_trace_and_a_flipped_bit_is_caught(cluster, key, tmp_path):
    pool = tmp_path / "mn-sealed.pool"
    mn = cluster.memnode(pool="512M", backing=f"file:{pool}")
    agent = cluster.agent()
    secs = [mn.section() for _ in range(2)]
    cache = 32 * MiB
    vm = agent.create("sealed", secs, vcpus=1, cache_bytes=cache,
                      encryption_key=os.urandom(32).hex())
    assert vm["state"] == "running" and vm["encrypted"] is True, vm
    agent.guest("sealed", "FILL 1 7 64")            # 64 MiB through a 32 MiB cache

    # A page of the pattern that is resident now, and where it is in the
    # slot's memory. Which pages stayed is the evictor's choice (CLOCK over
    # guest-physical pages, whose order the guest's allocator picks), so
    # the test takes whichever it finds, the region's last page first.
    ram = os.path.join(agent.run_dir, "sealed", "ram-base")
    at = resident_pattern_pages(ram, 7, 64)
    assert at, "no page of the pattern is resident after FILL"
    slot_page = at[max(at)]
    evict_all(agent, "sealed", cache)

    # The memory node's file: no trace of the guest's pattern.
    assert pattern_hits(str(pool), 7, 64) == 0
    st = agent.status("sealed")["pager"]
    assert st["pages_sealed"] > 0 and st["integrity_failures"] == 0, st

    # One bit flipped in that page's ciphertext, in the memory node's file.
    g = bytes.fromhex(secs[slot_page // SEC_PAGES]["grant"])
    with dproto.Conn(mn.addr).login(key, 1) as c:
        ct = c.read(g, [(slot_page % SEC_PAGES, 1)])
    assert len(ct) == PAGE
    where = find(str(pool), ct)
    assert len(where) == 1, where
    with open(pool, "r+b") as f:
        f.seek(where[0] + 1000)
        b = f.read(1)
        f.seek(where[0] + 1000)
        f.write(bytes([b[0] ^ 0x10]))

    # The guest reads its region: it stops at that page, the VM turns degraded.
    result = {}

    def verify():
        try:
            result.update(agent.guest("sealed", "VERIFY 1", timeout_ms=30000))
        except Exception as e:        # noqa: BLE001 - the agent closes on teardown
            result["error"] = str(e)

    t = threading.Thread(target=verify, daemon=True)
    t.start()
    assert vmlib.wait_for(lambda: agent.status("sealed")["state"] == "degraded", 120), \
        (agent.status("sealed"), result)
    s = agent.status("sealed")
    assert "fails authentication" in s["reason"], s
    assert s["pager"]["integrity_failures"] >= 1, s
    assert metric(agent, "disagg_pager_integrity_failures_total") >= 1
    # Never handed the page: VERIFY does not come back, with a mismatch or
    # otherwise; the agent gives up waiting for the guest's answer.
    t.join(90)
    assert not t.is_alive() and "mismatches" not in result, result
    assert "guest" in result.get("error", ""), result
    assert agent.status("sealed")["state"] == "degraded"


def test_clear_pages_are_in_the_memory_node_file(cluster, tmp_path):
    """The control: "encrypt" off (no key), the pattern is there to read."""
    pool = tmp_path / "mn-clear.pool"
    mn = cluster.memnode(pool="512M", backing=f"file:{pool}")
    agent = cluster.agent()
    cache = 32 * MiB
    vm = agent.create("clear", [mn.section() for _ in range(2)], vcpus=1, cache_bytes=cache)
    assert vm["encrypted"] is False, vm
    agent.guest("clear", "FILL 1 7 64")
    evict_all(agent, "clear", cache)
    assert pattern_hits(str(pool), 7, 64) > 0
    assert agent.status("clear")["pager"]["pages_sealed"] == 0
    assert agent.guest("clear", "VERIFY 1")["mismatches"] == 0


def regrant(key, section, holder):
    g = bytes.fromhex(section["grant"])
    mnid, _, sec, gen, *_ = dproto.GRANT.unpack(g)
    out = {k: v for k, v in section.items() if k in ("kind", "addr", "free_on_release")}
    free = dproto.R_FREE if section.get("free_on_release") else 0
    out["grant"] = dproto.mint_grant(key, mnid, holder, sec, gen,
                                     dproto.R_READ | dproto.R_WRITE | free).hex()
    return out


def hdrs(agent):
    return agent.auth.headers(agent.auth.orch_token(agent.node_id))


def move(src, dst, name, of, base=0, done=False):
    """One snapshot from src to dst as the orchestrator moves it: {page: entry}."""
    frm, got = 0, {}
    while True:
        q = f"of={of}&from={frm}&max={pm.PART_MAX}" + (f"&base={base}" if of == "delta" else "")
        st, data, h = pm.request(src.http, "GET", f"/v1/vms/{name}/page-meta?{q}",
                                 headers=hdrs(src))
        assert st == 200 and h["content-type"] == pm.OCTETS, (st, data[:200])
        n = len(data) // pm.RECORD
        last = n < pm.PART_MAX
        if n or (last and done):
            st, ans, _ = pm.request(dst.http, "POST", f"/v1/vms/{name}/page-meta" +
                                    ("?done=1" if last and done else ""), data,
                                    headers=hdrs(dst))
            assert st == 200, ans
        got.update(pm.records(data))
        frm += n
        if last:
            assert frm == int(h["x-page-meta-total"]), h
            return got


def precopy(src, name):
    return src.call("POST", f"/v1/vms/{name}/page-meta/precopy")["snapshot"]


def compare_with_fake(agent, fake, name, fname, cases_of):
    """The same bad requests to the real agent and to the fake one: the same
    statuses and codes, each counted by both."""
    r0, f0 = metric(agent, "disagg_compute_page_meta_refused_total") or 0, fake.meta_refused
    real = pm.run_cases(agent.http, cases_of(name), hdrs(agent))
    faked = pm.run_cases(fake.http, cases_of(fname))
    for label, (st, code, msg) in real.items():
        assert (st, code) == pm.EXPECTED[label] == faked[label][:2], (label, real, faked)
        assert msg, (label, real)                      # a clear error: it says what
    assert metric(agent, "disagg_compute_page_meta_refused_total") == r0 + len(real)
    assert fake.meta_refused == f0 + len(faked)
    return real


def fake_vm(fake, name, incoming):
    body = {"name": name, "vcpus": 1, "sections": [{"kind": "local"}] * 2,
            "max_sections": 0, "encryption_key": "ab" * 32}
    if incoming:
        body["incoming"] = {"listen": "127.0.0.1:0"}
    st, data, _ = pm.request(fake.http, "POST", "/v1/vms", json.dumps(body).encode(),
                             "application/json")
    assert st == 201, data


def test_migrate_sealed(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    fake = fakes.FakeCompute(99)
    page_key = os.urandom(32).hex()
    secs = [mn.section(holder=1) for _ in range(2)]
    vm = a1.create("smover", secs, vcpus=1, cache_bytes=32 * MiB, encryption_key=page_key)
    assert vm["encrypted"] is True
    a1.guest("smover", "FILL 1 7 64")                 # most of it on the memory node
    # Not migrating: no snapshot; bad queries. The fake answers the same.
    fake_vm(fake, "fsrc", incoming=False)
    compare_with_fake(a1, fake, "smover", "fsrc", pm.source_cases)

    dst = a2.create("smover", [regrant(key, s, 2) for s in secs], vcpus=1,
                    cache_bytes=32 * MiB, encryption_key=page_key,
                    incoming={"listen": "127.0.0.1:0"})
    assert dst["state"] == "incoming", dst
    a2.qemu_pids.add(dst["pid"])
    # The status says it waits for its table (what a restarted orchestrator
    # reads, migrate_recover.c); the fake says the same of its own.
    assert a2.status("smover")["page_meta_pending"] is True
    assert a1.status("smover")["page_meta_pending"] is False
    gen = precopy(a1, "smover")
    pre = move(a1, a2, "smover", "precopy")
    assert len(pre) > 64 * MiB // PAGE // 2, len(pre)  # at least the evicted half
    # A destination waiting for its table refuses bad parts and takes none.
    fake_vm(fake, "fdst", incoming=True)
    assert fake._vm_json(fake.vms["fdst"])["page_meta_pending"] is True
    assert fake._vm_json(fake.vms["fsrc"])["page_meta_pending"] is False
    compare_with_fake(a2, fake, "smover", "fdst", pm.pending_cases)
    st, res = a1.request("POST", "/v1/vms/smover/migrate", {"uri": dst["migration_uri"]},
                         timeout=300)
    assert st == 200 and res["ok"] is True, res
    assert res["ram_transferred_bytes"] < 16 * MiB, res
    delta = move(a1, a2, "smover", "delta", base=gen, done=True)
    assert a2.status("smover")["page_meta_pending"] is False
    print(f"page metadata: {len(pre)} pages pre-copied, {len(delta)} in the delta")
    assert len(delta) < len(pre), (len(delta), len(pre))   # the guest was idle
    # Complete: never overwritten.
    pm.request(fake.http, "POST", "/v1/vms/fdst/page-meta?done=1", pm.record(1, pm.STORED | 1))
    compare_with_fake(a2, fake, "smover", "fdst", pm.done_cases)
    assert vmlib.wait_for(lambda: a2.status("smover")["state"] == "running", 60)
    v = a2.guest("smover", "VERIFY 1")
    assert v["mismatches"] == 0, v
    p = a2.status("smover")["pager"]
    assert p["pages_fetched"] > 0 and p["integrity_failures"] == 0 and p["failed"] == 0, p
    fake.close()
    a1.delete("smover")
    a2.delete("smover")


def test_migrate_sealed_while_the_guest_writes(cluster, key):
    """Pages the guest changes after the pre-copy (and during the
    migration) reach the destination with their final version and tag: the
    delta carries them, VERIFY finds nothing wrong and nothing is refused."""
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    page_key = os.urandom(32).hex()
    secs = [mn.section(holder=1) for _ in range(2)]
    a1.create("swriter", secs, vcpus=1, cache_bytes=32 * MiB, encryption_key=page_key)
    a1.guest("swriter", "FILL 1 7 64")
    a1.guest("swriter", "FILL 2 3 8")
    dst = a2.create("swriter", [regrant(key, s, 2) for s in secs], vcpus=1,
                    cache_bytes=32 * MiB, encryption_key=page_key,
                    incoming={"listen": "127.0.0.1:0"})
    a2.qemu_pids.add(dst["pid"])
    gen = precopy(a1, "swriter")
    pre = move(a1, a2, "swriter", "precopy")
    # After the pre-copy: the whole 64 MiB again through a 32 MiB cache
    # (pages sealed anew), and region 2 rewritten while the VM moves.
    a1.guest("swriter", "REWRITE 1 9")
    stop, writes = threading.Event(), []

    def busy():
        seed = 100
        while not stop.is_set():
            seed += 1
            try:
                a1.guest("swriter", f"REWRITE 2 {seed}", 20000)
                writes.append(seed)
            except Exception:        # the guest left mid-command: it finishes there
                stop.wait(0.05)

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    time.sleep(0.5)
    st, res = a1.request("POST", "/v1/vms/swriter/migrate", {"uri": dst["migration_uri"]},
                         timeout=300)
    stop.set()
    t.join(60)
    assert st == 200 and res["ok"] is True, res
    delta = move(a1, a2, "swriter", "delta", base=gen, done=True)
    stale = [i for i in delta if i in pre and pre[i] != delta[i]]
    print(f"page metadata: {len(pre)} pre-copied, {len(delta)} in the delta, "
          f"{len(stale)} of them changed after the pre-copy; {len(writes)} rewrites while moving")
    # Without the delta these pages would have a stale version/tag there.
    assert len(stale) > 64 * MiB // PAGE // 4, len(stale)
    assert vmlib.wait_for(lambda: a2.status("swriter")["state"] == "running", 60)
    for region in (1, 2):
        v = a2.guest("swriter", f"VERIFY {region}")
        assert v["mismatches"] == 0, (region, v)
    p = a2.status("swriter")["pager"]
    assert p["pages_fetched"] > 0 and p["integrity_failures"] == 0 and p["failed"] == 0, p
    assert metric(a2, "disagg_compute_page_meta_refused_total") == 0
    assert metric(a2, "disagg_pager_integrity_failures_total") in (0, None)
    a1.delete("swriter")
    a2.delete("swriter")
