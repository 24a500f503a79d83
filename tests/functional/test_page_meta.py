# SPDX-License-Identifier: MIT
"""A sealed slot's page metadata in a compute migration (docs/security.md,
"Guest memory at rest"): the orchestrator copies the source's table to the
destination as application/octet-stream, most of it while the guest still
runs (pre-copy), then only the records changed since (delta) and "done".
Fake compute agents (fakes.py) whose page-meta endpoints answer as the
real agent does (tests/vm/test_sealed_memory.py compares the two)."""
import json
import os
import time

import pagemeta_cases as pm
from test_orchestrator import (cluster, computes, err, fakemem, hb_factory,  # noqa: F401
                               orch, orch_factory)


def table(pages, ver=1):
    return {i: pm.record(i, pm.STORED | ver, os.urandom(16))[4:] for i in pages}


def meta_posts(fake, name):
    """(path, records) of each POST of page metadata the fake took."""
    return [(p, len(b) // pm.RECORD) for m, p, b in fake.calls
            if m == "POST" and p.startswith(f"/v1/vms/{name}/page-meta") and
            isinstance(b, bytes)]


def test_the_delta_carries_what_changed_after_the_precopy(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "m", "memory": "256M"})
    assert st == 201 and s["encrypted"], s
    # 150,000 written pages: the pre-copy goes in two parts.
    src = c1.vms["m"]                     # the source forgets it once it moved
    src["meta"] = table(range(150000))
    # While it migrates (after the pre-copy) the guest rewrites 10 pages
    # it had and writes 5 new ones.
    changed = table(list(range(0, 100, 10)) + list(range(200000, 200005)), ver=2)
    c1.meta_writes_on_migrate = changed
    st, ans = orch.call("POST", "/v1/slots/m/migrate", {"to": 11})
    assert st == 200 and ans["slot"]["compute"] == 11, ans
    # The destination's table is the source's final one, record for record.
    assert c2.vms["m"]["meta"] == src["meta_final"]
    assert c2.vms["m"]["meta"][0] == changed[0] != src["meta_base"][0]
    assert c2.vms["m"]["meta_pending"] is False
    posts = meta_posts(c2, "m")
    # Pre-copy: every record, in parts of at most 131,072; then the delta
    # alone, with done.
    assert posts == [("/v1/vms/m/page-meta", 131072), ("/v1/vms/m/page-meta", 150000 - 131072),
                     ("/v1/vms/m/page-meta?done=1", 15)], posts
    ph = ans["phases_ms"]
    assert "page_meta_precopy" in ph and "page_meta" in ph, ph
    # The source was asked for its pre-copy while it still ran: before migrate.
    order = [p.split("?")[0] for m, p, _ in c1.calls if m == "POST"]
    assert order.index("/v1/vms/m/page-meta/precopy") < order.index("/v1/vms/m/migrate")
    assert c1.meta_refused == c2.meta_refused == 0


def test_no_delta_at_the_source_sends_every_record(orch, fakemem, computes, hb_factory):
    """The source lost its pre-copy (say, its agent restarted): the
    orchestrator sends the whole final table instead, never a partial one."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "r", "memory": "256M"})[0] == 201
    src = c1.vms["r"]
    src["meta"] = table(range(50))
    orig = c1._migrate

    def forget(h, vm, body):
        out = orig(h, vm, body)
        vm["meta_delta"] = None
        return out

    c1._migrate = forget
    c1.meta_writes_on_migrate = table([3], ver=5)
    st, ans = orch.call("POST", "/v1/slots/r/migrate", {"to": 11})
    assert st == 200, ans
    assert c2.vms["r"]["meta"] == src["meta_final"]
    assert meta_posts(c2, "r")[-1] == ("/v1/vms/r/page-meta?done=1", 50)


def test_a_failed_precopy_snapshot_keeps_the_vm_on_the_source(orch, fakemem, computes,
                                                              hb_factory):
    """The source cannot take its pre-copy: nothing has moved yet, so the
    migration ends there, the destination's VM is deleted and the VM keeps
    running on the source."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "p", "memory": "256M"})[0] == 201
    src = c1.vms["p"]
    src["meta"] = table(range(10))
    orig = c1.refuse_path("/page-meta/precopy")
    st, ans = orch.call("POST", "/v1/slots/p/migrate", {"to": 11})
    assert st == 503 and err(ans) == "migration_failed", ans
    assert "page metadata" in ans["error"]["message"], ans
    assert "keeps running on" in ans["error"]["message"], ans
    s = orch.call("GET", "/v1/slots/p")[1]
    assert s["state"] == "running" and s["compute"] == 10, s
    assert "p" not in c2.vms and src.get("state", "running") == "running"
    assert not [c for c in c1.calls if c[1].startswith("/v1/vms/p/migrate")]
    # The control: the same migration goes through once the source takes it.
    c1._dispatch = orig
    st, ans = orch.call("POST", "/v1/slots/p/migrate", {"to": 11})
    assert st == 200 and c2.vms["p"]["meta"] == src["meta_final"], ans


def test_a_failed_precopy_transfer_sends_every_record_after(orch, fakemem, computes,
                                                            hb_factory):
    """The destination refuses the pre-copy's parts (they go while the
    source migrates): after the switchover every record goes, not a delta
    against records it never took."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "q", "memory": "256M"})[0] == 201
    src = c1.vms["q"]
    src["meta"] = table(range(40))
    c1.meta_writes_on_migrate = table([1, 2], ver=4)
    c2.refuse_path("/page-meta", "POST")
    st, ans = orch.call("POST", "/v1/slots/q/migrate", {"to": 11})
    assert st == 200, ans
    assert c2.vms["q"]["meta"] == src["meta_final"] and len(src["meta_final"]) == 40
    assert meta_posts(c2, "q")[-1] == ("/v1/vms/q/page-meta?done=1", 40)


def test_the_fake_refuses_bad_page_meta_as_the_agent_does(computes):
    """Each bad request is a clear 4xx and counted; the statuses and codes
    are the real agent's (tests/vm/test_sealed_memory.py checks the fake
    against it with the same cases)."""
    c = computes(10)
    hdr = c.auth.headers(c.auth.orch_token(10))
    body = {"name": "v", "vcpus": 1, "sections": [], "encryption_key": "ab" * 32}
    assert pm.request(c.http, "POST", "/v1/vms", json.dumps(body).encode(),
                      "application/json", hdr)[0] == 201
    got = pm.run_cases(c.http, pm.source_cases("v"), hdr)
    assert {k: v[:2] for k, v in got.items()} == {k: pm.EXPECTED[k] for k in got}, got
    assert c.meta_refused == len(got)
    # The control: a pre-copy answers records.
    st, data, _ = pm.request(c.http, "POST", "/v1/vms/v/page-meta/precopy", headers=hdr)
    assert st == 200, data
    st, data, h = pm.request(c.http, "GET", "/v1/vms/v/page-meta?of=precopy", headers=hdr)
    assert st == 200 and data == b"" and h["x-page-meta-total"] == "0"
    assert h["content-type"] == pm.OCTETS
    # A destination: refusals take nothing; a good part, done, then too late.
    body = {"name": "w", "vcpus": 1, "sections": [], "max_sections": 1,
            "encryption_key": "ab" * 32, "incoming": {"listen": "127.0.0.1:0"}}
    assert pm.request(c.http, "POST", "/v1/vms", json.dumps(body).encode(),
                      "application/json", hdr)[0] == 201
    before = c.meta_refused
    got = pm.run_cases(c.http, pm.pending_cases("w"), hdr)
    assert {k: v[:2] for k, v in got.items()} == {k: pm.EXPECTED[k] for k in got}, got
    assert c.meta_refused == before + len(got) and c.vms["w"]["meta"] == {}
    st, data, _ = pm.request(c.http, "POST", "/v1/vms/w/page-meta?done=1",
                             pm.record(7, pm.STORED | 3), headers=hdr)
    assert st == 200 and c.vms["w"]["meta_pending"] is False, data
    got = pm.run_cases(c.http, pm.done_cases("w"), hdr)
    assert {k: v[:2] for k, v in got.items()} == {k: pm.EXPECTED[k] for k in got}, got
    assert list(c.vms["w"]["meta"]) == [7]


# ---- an orchestrator restart in the middle of the hand-over ------------------------------

def restarted_mid_hand_over(orch, fakemem, computes, hb_factory):
    """Slot `web` moved from compute node 10 to 11 and the orchestrator
    stopped after the switchover, before the destination had its table
    (`done`): the source says `migrated` and keeps its final snapshot,
    the destination runs the guest and waits for the table."""
    from test_orch_outcomes import interrupted_move
    hb, c1, c2 = interrupted_move(orch, fakemem, computes, hb_factory, {"state": "migrated"})
    with c1.lock:
        assert c1.vms["web"].get("key"), "slots made by the orchestrator are sealed"
        c1.vms["web"]["meta"] = table(range(1000), ver=3)
        c2.vms["web"].update(state="running", meta={}, meta_pending=True)
    return c1, c2


def test_a_restart_mid_hand_over_finishes_it_from_the_source(orch, fakemem, computes,
                                                              hb_factory):
    c1, c2 = restarted_mid_hand_over(orch, fakemem, computes, hb_factory)
    final = dict(c1.vms["web"]["meta"])
    orch.start()
    s = orch.call("GET", "/v1/slots/web")[1]
    assert s["state"] == "running" and s["compute"] == 11, s
    # The destination has the source's final table, whole, and is complete.
    assert c2.vms["web"]["meta"] == final and c2.vms["web"]["meta_pending"] is False
    assert meta_posts(c2, "web")[-1] == ("/v1/vms/web/page-meta?done=1", 1000)
    # Only then was the source's VM, which held the snapshot, deleted.
    assert "web" not in c1.vms
    assert c1.meta_refused == c2.meta_refused == 0


def test_a_restart_mid_hand_over_without_the_source_snapshot_fails_the_slot(
        orch, fakemem, computes, hb_factory):
    c1, c2 = restarted_mid_hand_over(orch, fakemem, computes, hb_factory)
    with c1.lock:
        del c1.vms["web"]                 # its agent restarted: snapshots live in memory
    orch.start()
    s = orch.call("GET", "/v1/slots/web")[1]
    # Never a table made up: the guest's remote pages stay parked, the slot says why.
    assert s["state"] == "failed" and s["compute"] == 11, s
    assert "page metadata is lost" in s["reason"], s
    assert c2.vms["web"]["meta_pending"] is True and not meta_posts(c2, "web")


def test_a_restart_mid_hand_over_with_the_source_silent_asks_again(orch, fakemem, computes,
                                                                   hb_factory):
    c1, c2 = restarted_mid_hand_over(orch, fakemem, computes, hb_factory)
    orig = c1._dispatch

    def silent(h, method, path, body):
        if method == "GET" and "/page-meta" in path:
            return h._err(503, "unavailable", "refused by the test")
        return orig(h, method, path, body)

    c1._dispatch = silent
    orch.start()
    s = orch.call("GET", "/v1/slots/web")[1]
    assert s["state"] == "unresolved" and "must still learn its page metadata from" in s["reason"], s
    assert c2.vms["web"]["meta_pending"] is True and "web" in c1.vms
    # The source answers again: the monitor finishes the hand-over.
    c1._dispatch = orig
    end = time.time() + 30
    while time.time() < end and orch.call("GET", "/v1/slots/web")[1]["state"] != "running":
        time.sleep(0.2)
    s = orch.call("GET", "/v1/slots/web")[1]
    assert s["state"] == "running" and s["compute"] == 11, s
    assert c2.vms["web"]["meta_pending"] is False and "web" not in c1.vms
