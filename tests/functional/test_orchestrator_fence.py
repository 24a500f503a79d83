# SPDX-License-Identifier: MIT
"""Ownership epochs and fencing by the orchestrator (docs/api.md,
"Ownership epochs"), against fake compute nodes and fake or real memory
nodes: every change of owner advances the sections' epochs and fences the
old owner (compute migration, memory-migration commit, delete), the grants
carry the epochs, a failed migration fences nothing, the epochs survive an
orchestrator restart and a database from before epochs is migrated. With
real memory nodes, the old owner's writes are refused after a compute
migration."""
import sqlite3
import urllib.request

from dproto import GRANT, ST, Conn, ProtoError, mint_grant, wait_for
from test_orchestrator import (cluster, computes, decode_grant, err,  # noqa: F401
                               fakemem, hb_factory, orch, orch_factory, real_allocated)

ORCH_ID = 1                   # the orchestrator's default --node-id


def events(orch):
    return [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]


def log(fakemem, kind=None):
    """(memnode, entry) of every FREE/FENCE the fake memory nodes saw."""
    return [(nid, e) for nid, n in sorted(fakemem.nodes.items()) for e in n.log
            if kind is None or e[0] == kind]


def fenced_at(fakemem, sections, epoch):
    """Each remote section was fenced at `epoch` by the orchestrator."""
    got = {(nid, e[1], e[2]) for nid, e in log(fakemem, "fence")
           if e[3] == epoch and e[4] == ORCH_ID}
    return got >= {(x["memnode"], x["section"], x["generation"]) for x in sections}


def grant_epochs(secs):
    return [decode_grant(x["grant"])[5] for x in secs if x.get("kind") == "remote"]


def test_compute_migration_fences_the_source(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    assert orch.call("POST", "/v1/slots/web/resize", {"memory": "384M"})[0] == 200
    s = orch.call("GET", "/v1/slots/web")[1]
    assert [x["epoch"] for x in s["sections"]] == [0, 0, 0]
    vm = c1.vms["web"]
    assert grant_epochs(vm["sections"] + list(vm["hot"].values())) == [0, 0, 0]
    assert log(fakemem, "fence") == []

    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200, ans
    assert [x["epoch"] for x in ans["slot"]["sections"]] == [1, 1, 1]
    (_, _, body), = [x for x in c2.calls if x[:2] == ("POST", "/v1/vms")]
    assert grant_epochs(body["sections"] + body["hot_sections"]) == [1, 1, 1]
    assert fenced_at(fakemem, s["sections"], 1)
    assert len(log(fakemem, "fence")) == 3 and log(fakemem, "free") == []

    # A migration that fails before the switchover fences nothing; the store's
    # epoch has moved on all the same (the failed destination's grants had it).
    c2.fail_migrate = (503, "migration_failed")
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 10})
    assert st == 503 and err(ans) == "migration_failed", ans
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["compute"] == 11 and [x["epoch"] for x in s2["sections"]] == [2, 2, 2]
    assert len(log(fakemem, "fence")) == 3
    c2.fail_migrate = None
    c1.calls.clear()
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 10})
    assert st == 200, ans
    (_, _, body), = [x for x in c1.calls if x[:2] == ("POST", "/v1/vms")]
    assert grant_epochs(body["sections"] + body["hot_sections"]) == [3, 3, 3]
    assert fenced_at(fakemem, s["sections"], 3)
    assert "fence_failed" not in events(orch)

    # The epochs are in the store: a restarted orchestrator goes on from them.
    orch.restart()
    assert [x["epoch"] for x in orch.call("GET", "/v1/slots/web")[1]["sections"]] == [3, 3, 3]

    # Delete: every section is fenced (epoch + 1), then freed.
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    for x in s["sections"]:
        mine = [e for nid, e in log(fakemem) if nid == x["memnode"] and e[1] == x["section"]]
        assert mine[-2:] == [("fence", x["section"], x["generation"], 4, ORCH_ID),
                             ("free", x["section"], x["generation"])], mine
    assert fakemem.allocated() == 0


def test_memory_migration_fences_the_old_section(orch, fakemem, computes, hb_factory):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                            "policy": "pack"})
    assert st == 201
    src = s["sections"][0]["memnode"]
    dst = 203 - src
    old = s["sections"][0]

    # Aborted (the COPY fails): the new section is fenced and freed, the old
    # one keeps its epoch and is not fenced.
    fakemem.nodes[src].fail_copy = ST["IO"]
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory",
                        {"from": src, "to": dst, "section": 0})
    assert st == 503, ans
    (_, sec, gen, _), = fakemem.nodes[src].copies
    assert [e[0] for e in fakemem.nodes[dst].log] == ["fence", "free"]
    assert fakemem.nodes[src].log == []
    assert orch.call("GET", "/v1/slots/web")[1]["sections"] == s["sections"]
    fakemem.nodes[src].fail_copy = None
    hb.register(fakemem.registration(dst))

    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory",
                        {"from": src, "to": dst, "section": 0})
    assert st == 200, ans
    new = ans["slot"]["sections"][0]
    assert new["memnode"] == dst and new["epoch"] == old["epoch"] + 1 == 1
    begin = [x[2] for x in c.calls if x[1] == "/v1/vms/web/sections/migrate"
             and x[2]["phase"] == "begin"][-1]
    assert decode_grant(begin["to"]["grant"])[5] == 1             # the agent's new grant
    assert decode_grant(begin["from"]["grant"])[5] == 0
    cg = GRANT.unpack(fakemem.nodes[src].copies[-1][3])
    assert cg[5] == 1                                             # the COPY's
    # The old section: fenced at the new epoch, then freed.
    assert fakemem.nodes[src].log == [
        ("fence", old["section"], old["generation"], 1, ORCH_ID),
        ("free", old["section"], old["generation"])]
    assert ans["slot"]["sections"][1] == s["sections"][1]       # the other one untouched

    # A compute migration later goes on from each section's own epoch.
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.nodes[dst].log[-2:] == [
        ("fence", new["section"], new["generation"], 2, ORCH_ID),
        ("free", new["section"], new["generation"])]


def test_fence_failure_is_reported_and_the_move_goes_on(orch, fakemem, computes,
                                                         hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=1, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    fakemem.kill(101)
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200 and ans["slot"]["compute"] == 11, ans
    assert events(orch).count("fence_failed") == 2


def test_database_from_before_epochs_is_migrated(orch_factory, fakemem, computes, hb_factory):
    o = orch_factory()
    hb, (c1, c2) = cluster(o, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert o.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    o.stop()
    db = sqlite3.connect(o.db)
    db.execute("ALTER TABLE sections DROP COLUMN epoch")
    db.execute("ALTER TABLE slots DROP COLUMN page_key")     # a version-2 database had neither,
    db.execute("ALTER TABLE slots DROP COLUMN net")          # nor a network card,
    db.execute("ALTER TABLE volumes DROP COLUMN kind")       # nor volume kinds
    for t, c in (("slots", "replicas"), ("sections", "state"), ("sections", "reason")):
        db.execute(f"ALTER TABLE {t} DROP COLUMN {c}")   # nor replicas (version 13's)
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    o.start()
    s = o.call("GET", "/v1/slots/web")[1]
    assert [x["epoch"] for x in s["sections"]] == [0, 0]
    st, ans = o.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200 and [x["epoch"] for x in ans["slot"]["sections"]] == [1, 1], ans
    db = sqlite3.connect(o.db)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 3
    assert db.execute("SELECT epoch FROM sections").fetchall() == [(1,), (1,)]
    db.close()


def metric(http, name, token=None):
    req = urllib.request.Request(f"http://{http}/metrics",
                                 headers={"Authorization": "Bearer " + token} if token else {})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    return next(int(float(line.split()[1])) for line in text.splitlines()
                if line.startswith(name + " "))


def test_old_owner_is_refused_by_real_memory_nodes(orch, memnodes, computes, key, hb_factory):
    hb = hb_factory(orch)
    c1, c2 = computes(10), computes(11)
    hb.register(c1.registration())
    hb.register(c2.registration())
    m = memnodes.start(node_id=101, pool="512M", extra=["--orchestrator", orch.addr])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 3, 10)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})
    assert st == 201, s
    src = [bytes.fromhex(x["grant"]) for x in c1.vms["web"]["sections"]]
    a, b = b"\xaa" * 4096, b"\xbb" * 4096
    with Conn(m.addr).login(key, 10) as old:
        for g in src:
            old.write(g, [(0, 1)], a)                 # the source owns the memory

    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200, ans
    dst = [bytes.fromhex(x["grant"]) for x in c2.vms["web"]["sections"]]
    with Conn(m.addr).login(key, 11) as new, Conn(m.addr).login(key, 10) as old:
        for gs, gd in zip(src, dst):
            # The source's late write-back and atomics, before the destination
            # wrote anything there (the FENCE did it): refused, not applied.
            for late in (lambda: old.write(gs, [(1, 1)], b), lambda: old.fadd(gs, 4096, 1)):
                try:
                    late()
                    raise AssertionError("a write of the old owner landed")
                except ProtoError as e:
                    assert e.status == ST["FENCED"], e
            assert new.read(gd, [(0, 2)]) == a + bytes(4096)    # the data stayed
            new.write(gd, [(1, 1)], b)
            assert old.read(gs, [(1, 1)]) == b        # reading does no harm
            assert new.read(gd, [(1, 1)]) == b
    assert metric(m.http, "disagg_memnode_fenced_requests_total",
                  orch.auth.orch_token(101)) == 4
    # Even a grant the orchestrator never minted, of the old epoch, is refused.
    sec, gen = GRANT.unpack(src[0])[2:4]
    forged_old = mint_grant(key, 101, 10, sec, gen, 3, epoch=0)
    with Conn(m.addr).login(key, 10) as old:
        try:
            old.write(forged_old, [(1, 1)], a)
            raise AssertionError("epoch 0 wrote after the hand-over")
        except ProtoError as e:
            assert e.status == ST["FENCED"]
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert real_allocated(m, key) == []
