# SPDX-License-Identifier: MIT
"""Shared regions in the orchestrator (docs/api.md, "Shared regions"),
against a real disagg-memnode and fake compute agents (fake_regions.py).

Create, list, show, delete; attach two slots on two compute nodes; the
exclusive lock (try-lock, idempotent for the holder, fenced at a new epoch
on the real memory node, released before the others are invalidated, in
that order); the grants each step mints (holder, rights, epoch, decoded
from their hex); bad input; every failure of a multi-step operation (an
agent that refuses, does not answer, answers after having done it); slot
delete detaches; compute migration moves the regions (grants for the
destination, the holder fenced, strict one slot per node, a failed move),
memory migration of a slot moves its own sections; the store across a restart, a database
from before regions, an operation interrupted by a restart; renewal and
the orphan sweep. The CLI's region commands are in test_regions_cli.py.
"""
import sqlite3
import time

import pytest

import fake_regions as fr
from dproto import FEAT_ALL, FEAT_DIR_TAG, GRANT, ST, Conn, ProtoError, mint_grant, wait_for
from test_orchestrator import (computes, decode_grant, err, hb_factory,  # noqa: F401
                               orch, orch_factory, real_allocated)

MiB = 1 << 20
SEC = 128 * MiB
OWNER = 1 << 62                  # ORCH_REGION_OWNER
ORCH_ID = 1                      # the orchestrator's --node-id (its FENCE grants)
R, RW = 1, 3


@pytest.fixture(autouse=True)
def _fresh_log():
    fr.LOG.clear()


def events(o, kind=None):
    ev = o.call("GET", "/v1/events?limit=10000")[1]["events"]
    return [e for e in ev if kind is None or e["kind"] == kind]


def kinds(o):
    return [e["kind"] for e in events(o)]


def start(orch, memnodes, computes, hb_factory, pool="1G", slots=("a", "b"), remote=0):
    """Compute nodes 10 and 11 (fake), memory node 101 (real); slot a runs
    on 10 and b on 11 (local memory unless `remote`: the memory node is the
    regions'). Their heartbeats: orch.hb."""
    hb = orch.hb = hb_factory(orch)
    c1, c2 = computes(10), computes(11)
    hb.register(c1.registration())
    hb.register(c2.registration())
    hb.start()
    m = memnodes.start(node_id=101, pool=pool, extra=["--orchestrator", orch.addr])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 3, 10)
    for name in slots:
        st, s = orch.call("POST", "/v1/slots", {"name": name, "memory": "128M",
                                                "remote_percent": remote})
        assert st == 201, s
    return c1, c2, m


def grants_of(body, key="grants"):
    """Decoded grants: (memnode, holder, section, generation, rights, epoch)."""
    gs = body[key] if key == "grants" else [s["grant"] for s in body["sections"]]
    return [decode_grant(g)[:6] for g in gs]


def check_grants(gs, region, holder, rights, epoch):
    want = [(x["memnode"], holder, x["section"], x["generation"], rights, epoch)
            for x in region["sections"]]
    assert gs == want, (gs, want)


def region_calls(op=None):
    return [(e[0], e[1], e[2]) for e in fr.calls(op)]


def post(o, name, verb, slot):
    return o.call("POST", f"/v1/regions/{name}/{verb}", {"slot": slot})


# ---------------------------------------------------------------------------

def test_region_lifecycle_and_the_lock(orch, memnodes, computes, hb_factory, key):
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    st, r = orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": 256 * MiB,
                                              "mode": "exclusive"})
    assert st == 201, r
    assert r["name"] == "r1" and r["mode"] == "exclusive" and r["size_bytes"] == 256 * MiB
    assert r["state"] == "ready" and r["home"] == 101 and r["holder"] is None
    assert r["epoch"] == 0 and r["attachments"] == [] and r["created"].endswith("Z")
    assert [(x["memnode"], x["epoch"]) for x in r["sections"]] == [(101, 0), (101, 0)]
    held = {(s, g): o for s, g, o in real_allocated(m, key)}
    ids = {o for o in held.values()}
    assert len(ids) == 1 and ids.pop() & OWNER           # allocated for the region
    assert set(held) == {(x["section"], x["generation"]) for x in r["sections"]}
    assert orch.call("GET", "/v1/regions/r1")[1] == r
    assert orch.call("GET", "/v1/regions")[1] == {"regions": [r]}
    assert orch.call("GET", "/v1/nodes/101")[1]["sections_free"] == 6

    # Attach a (compute node 10) and b (11): read-only grants held by each node.
    st, ra = post(orch, "r1", "attach", "a")
    assert st == 200, ra
    (_, _, body), = [x for x in c1.calls if x[:2] == ("POST", "/v1/vms/a/regions")]
    assert body["region"] == "r1" and body["mode"] == "exclusive"
    assert body["size"] == 256 * MiB and body["writable"] is False
    assert all(s["kind"] == "remote" and s["addr"] == m.addr for s in body["sections"])
    check_grants(grants_of(body, "sections"), r, 10, R, 0)
    assert ra["attachments"] == [{"slot": "a", "compute": 10, "pci": "0000:00:04.0"}]
    st, rb = post(orch, "r1", "attach", "b")
    assert st == 200, rb
    (_, _, body), = [x for x in c2.calls if x[:2] == ("POST", "/v1/vms/b/regions")]
    check_grants(grants_of(body, "sections"), r, 11, R, 0)
    assert [a["slot"] for a in rb["attachments"]] == ["a", "b"]
    st, ans = post(orch, "r1", "attach", "a")
    assert st == 409 and err(ans) == "already_attached", ans
    vm = c1.vms["a"]["regions"]["r1"]
    assert vm["writable"] is False and vm["pci"] == "0000:00:04.0"

    # Lock a: a new epoch, fenced on the real memory node, read-write grants of it.
    st, la = post(orch, "r1", "lock", "a")
    assert st == 200, la
    assert la["holder"] == "a" and la["epoch"] == 1 and la["acquire"]["dropped_pages"] == 0
    assert [x["epoch"] for x in la["sections"]] == [1, 1]
    (_, _, acq), = [x for x in c1.calls if x[1] == "/v1/vms/a/regions/r1/acquire"]
    check_grants(grants_of(acq), r, 10, RW, 1)
    a_rw = [bytes.fromhex(g) for g in acq["grants"]]
    old = mint_grant(key, 101, 10, r["sections"][0]["section"],
                     r["sections"][0]["generation"], RW, epoch=0)
    with Conn(m.addr).login(key, 10) as x:
        with pytest.raises(ProtoError) as e:           # epoch 0 is fenced out
            x.write(old, [(0, 1)], b"\x01" * 4096)
        assert e.value.status == ST["FENCED"]
        x.write(a_rw[0], [(0, 1)], b"\xaa" * 4096)      # the holder writes
    assert c1.vms["a"]["regions"]["r1"]["writable"] is True

    # b cannot take it while a holds it; a again is a no-op; b cannot unlock it.
    st, ans = post(orch, "r1", "lock", "b")
    assert st == 409 and err(ans) == "region_locked" and "slot a" in ans["error"]["message"]
    n = len(fr.LOG)
    st, again = post(orch, "r1", "lock", "a")
    assert st == 200 and again["holder"] == "a" and again["epoch"] == 1 and len(fr.LOG) == n
    st, ans = post(orch, "r1", "unlock", "b")
    assert st == 409 and err(ans) == "not_holder", ans

    # Unlock a: a releases (read-only grants) first, then b invalidates.
    fr.LOG.clear()
    c1.vms["a"]["regions"]["r1"]["dirty"] = 7
    st, ua = post(orch, "r1", "unlock", "a")
    assert st == 200, ua
    assert ua["holder"] is None and ua["epoch"] == 1
    assert ua["release"] == {"flushed_pages": 7, "ms": 2}
    assert ua["invalidated"] == ["b"] and ua["not_invalidated"] == []
    assert region_calls() == [(10, "release", "a"), (11, "invalidate", "b")]
    check_grants(grants_of(fr.calls("release")[0][4]), r, 10, R, 1)
    assert c1.vms["a"]["regions"]["r1"]["writable"] is False

    # Lock b: epoch 2; a's read-write grant of epoch 1 no longer writes.
    st, lb = post(orch, "r1", "lock", "b")
    assert st == 200 and lb["holder"] == "b" and lb["epoch"] == 2, lb
    acq = fr.calls("acquire")[-1][4]
    check_grants(grants_of(acq), r, 11, RW, 2)
    with Conn(m.addr).login(key, 10) as x:
        with pytest.raises(ProtoError) as e:
            x.write(a_rw[0], [(1, 1)], b"\x02" * 4096)
        assert e.value.status == ST["FENCED"]
    with Conn(m.addr).login(key, 11) as x:
        g = bytes.fromhex(acq["grants"][0])
        assert x.read(g, [(0, 2)]) == b"\xaa" * 4096 + bytes(4096)   # what a released
        x.write(g, [(1, 1)], b"\xbb" * 4096)

    # Delete refused while attached; detach b (the holder) releases first.
    st, ans = orch.call("DELETE", "/v1/regions/r1")
    assert st == 409 and err(ans) == "region_attached", ans
    fr.LOG.clear()
    st, db = post(orch, "r1", "detach", "b")
    assert st == 200, db
    assert db["holder"] is None and [a["slot"] for a in db["attachments"]] == ["a"]
    assert region_calls() == [(11, "release", "b"), (10, "invalidate", "a"),
                              (11, "detach", "b")]
    assert "r1" not in c2.vms["b"].get("regions", {})
    st, ans = post(orch, "r1", "detach", "b")
    assert st == 409 and err(ans) == "not_attached", ans
    st, da = post(orch, "r1", "detach", "a")
    assert st == 200 and da["attachments"] == [], da
    assert orch.call("DELETE", "/v1/regions/r1")[0] == 204
    assert orch.call("GET", "/v1/regions/r1")[0] == 404
    assert real_allocated(m, key) == []
    assert orch.call("GET", "/v1/nodes/101")[1]["sections_free"] == 8
    for k in ("region_created", "region_attached", "region_locked", "region_unlocked",
              "region_detached", "region_deleted"):
        assert k in kinds(orch), (k, kinds(orch))
    ev = events(orch, "region_locked")
    assert [(e["slot"], e["node"]) for e in ev] == [("a", 10), ("b", 11)]


def test_strict_region_every_slot_writes(orch, memnodes, computes, hb_factory):
    """Mode strict: both slots get read-write grants at attach and renew them,
    the agents are told the mode, and there is no lock to take."""
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    st, r = orch.call("POST", "/v1/regions", {"name": "s", "size_bytes": SEC, "mode": "strict"})
    assert st == 201 and r["mode"] == "strict", r
    for slot, comp, node in (("a", c1, 10), ("b", c2, 11)):
        st, ans = post(orch, "s", "attach", slot)
        assert st == 200, ans
        (_, _, body), = [x for x in comp.calls if x[:2] == ("POST", f"/v1/vms/{slot}/regions")]
        assert body["mode"] == "strict" and body["writable"] is True, body
        check_grants(grants_of(body, "sections"), r, node, RW, 0)
    for verb in ("lock", "unlock"):
        st, ans = post(orch, "s", verb, "a")
        assert st == 409 and err(ans) == "mode_strict", ans
    # A home asked for: that memory node, or a clear error.
    st, h = orch.call("POST", "/v1/regions", {"name": "h", "size_bytes": SEC, "home": 101})
    assert st == 201 and h["home"] == 101, h
    assert orch.call("DELETE", "/v1/regions/h")[0] in (200, 204)
    st, ans = orch.call("POST", "/v1/regions", {"name": "h", "size_bytes": SEC, "home": 999})
    assert st == 404 and err(ans) == "not_found", ans
    st, ans = orch.call("POST", "/v1/regions", {"name": "h", "size_bytes": SEC, "home": "x"})
    assert st == 400, ans
    # A second slot of a compute node that has one already: each VM is a
    # holder of its own at the directory (the agent's tag), so it is attached too.
    st, c = orch.call("POST", "/v1/slots", {"name": "c", "memory": "128M", "remote_percent": 0})
    assert st == 201, c
    st, ans = post(orch, "s", "attach", "c")
    assert st == 200, ans
    assert post(orch, "s", "detach", "c")[0] == 200
    assert [x["slot"] for x in orch.call("GET", "/v1/regions/s")[1]["attachments"]] == ["a", "b"]
    assert orch.call("GET", "/v1/regions/s")[1]["holder"] is None
    for slot in ("a", "b"):
        st, ans = post(orch, "s", "detach", slot)
        assert st == 200, ans
    assert orch.call("DELETE", "/v1/regions/s")[0] in (200, 204)
    assert "region_attached" in kinds(orch)


def test_release_region_sync_points(orch, memnodes, computes, hb_factory):
    """Mode release: every slot gets read-write grants, several on one compute
    node; no lock (409 mode_release); release and acquire go to the slot's
    agent with an empty body and its answer comes back."""
    c1, c2, m = start(orch, memnodes, computes, hb_factory, slots=("a", "b", "c"))
    st, r = orch.call("POST", "/v1/regions", {"name": "p", "size_bytes": SEC, "mode": "release"})
    assert st == 201 and r["mode"] == "release", r
    nodes = {}
    for slot in ("a", "b", "c"):
        st, ans = post(orch, "p", "attach", slot)
        assert st == 200, ans
        for comp, node in ((c1, 10), (c2, 11)):
            calls = [x for x in comp.calls if x[:2] == ("POST", f"/v1/vms/{slot}/regions")]
            if calls:
                body = calls[0][2]
                assert body["mode"] == "release" and body["writable"] is True, body
                check_grants(grants_of(body, "sections"), r, node, RW, 0)
                nodes[slot] = node
    assert sorted(nodes) == ["a", "b", "c"] and len(set(nodes.values())) == 2, nodes
    for verb in ("lock", "unlock"):
        st, ans = post(orch, "p", verb, "a")
        assert st == 409 and err(ans) == "mode_release", ans
    fr.LOG.clear()
    st, ans = post(orch, "p", "release", "a")
    assert st == 200 and ans["published_pages"] == 0 and ans["slot"] == "a", ans
    st, ans = post(orch, "p", "acquire", "b")
    assert st == 200 and ans["dropped_pages"] == 0 and ans["region"] == "p", ans
    assert [(e[1], e[2], e[4]) for e in fr.calls()] == [("release", "a", {}),
                                                         ("acquire", "b", {})]
    assert orch.call("GET", "/v1/regions/p")[1]["state"] == "ready"
    # Refusals: an exclusive region, a slot that does not map it, bad bodies.
    assert orch.call("POST", "/v1/regions", {"name": "x", "size_bytes": SEC})[0] == 201
    assert post(orch, "x", "attach", "a")[0] == 200
    st, ans = post(orch, "x", "release", "a")
    assert st == 409 and err(ans) == "mode_not_release", ans
    assert post(orch, "p", "detach", "c")[0] == 200
    st, ans = post(orch, "p", "acquire", "c")
    assert st == 409 and err(ans) == "not_attached", ans
    st, ans = post(orch, "p", "release", "ghost")
    assert st == 404, ans
    st, ans = post(orch, "nope", "release", "a")
    assert st == 404, ans
    st, ans = orch.call("POST", "/v1/regions/p/release", {})
    assert st == 400, ans
    st, ans = orch.call("POST", "/v1/regions/p/release", {"slot": "a", "extra": 1})
    assert st == 400, ans
    # The agent's refusal comes back as it said.
    (c1 if nodes["a"] == 10 else c2).fail_region["release"] = (503, "release_failed")
    st, ans = post(orch, "p", "release", "a")
    assert st == 503 and err(ans) == "release_failed", ans


def test_bad_input(orch, memnodes, computes, hb_factory):
    start(orch, memnodes, computes, hb_factory, pool="512M", slots=("a",))
    for body, status, code in [
            ({"name": "r", "size_bytes": 384 * MiB}, 400, "bad_size"),      # not a power of 2
            ({"name": "r", "size_bytes": 64 * MiB}, 400, "bad_size"),       # under a section
            ({"name": "r", "size_bytes": 100 * MiB}, 400, "bad_size"),
            ({"name": "r", "size_bytes": 0}, 400, "bad_size"),
            ({"name": "r", "size_bytes": "12X"}, 400, "bad_size"),
            ({"name": "r"}, 400, "bad_size"),
            ({"name": "r", "size_bytes": SEC, "mode": "weird"}, 400, "bad_mode"),
            ({"name": "r", "size_bytes": SEC, "mode": 3}, 400, "bad_mode"),
            ({"name": "../x", "size_bytes": SEC}, 400, "bad_request"),
            ({"size_bytes": SEC}, 400, "bad_request"),
            ({"name": "r", "size_bytes": SEC, "colour": "red"}, 400, "unknown_field"),
            ({"name": "r", "size_bytes": 2 << 30}, 400, "bad_size"),       # over 8 sections
            ({"name": "r", "size_bytes": 1 << 30}, 409, "capacity"),       # 4 sections free
    ]:
        st, ans = orch.call("POST", "/v1/regions", body)
        assert (st, err(ans)) == (status, code), (body, st, ans)
    assert orch.call("POST", "/v1/regions", "not json")[0] == 400
    st, r = orch.call("POST", "/v1/regions", {"name": "r", "size_bytes": "128M"})
    assert st == 201 and r["size_bytes"] == SEC, r
    st, ans = orch.call("POST", "/v1/regions", {"name": "r", "size_bytes": SEC})
    assert st == 409 and err(ans) == "exists", ans
    assert orch.call("GET", "/v1/regions/nope")[0] == 404
    assert orch.call("DELETE", "/v1/regions/nope")[0] == 404
    assert orch.call("PUT", "/v1/regions/r")[0] == 405
    assert orch.call("GET", "/v1/regions/r/lock")[0] == 405
    assert orch.call("POST", "/v1/regions/r/explode", {"slot": "a"})[0] == 404
    for verb in ("attach", "detach", "lock", "unlock"):
        st, ans = post(orch, "nope", verb, "a")
        assert st == 404 and err(ans) == "not_found", (verb, ans)
        st, ans = post(orch, "r", verb, "ghost")
        assert st == 404 and "unknown slot" in ans["error"]["message"], (verb, ans)
        st, ans = orch.call("POST", f"/v1/regions/r/{verb}", {})
        assert st == 400 and err(ans) == "bad_request", (verb, ans)
        st, ans = orch.call("POST", f"/v1/regions/r/{verb}", {"slot": "a", "x": 1})
        assert st == 400 and err(ans) == "unknown_field", (verb, ans)
    for verb, code in (("detach", "not_attached"), ("lock", "not_attached"),
                       ("unlock", "not_holder")):
        st, ans = post(orch, "r", verb, "a")
        assert st == 409 and err(ans) == code, (verb, ans)
    # Nothing was allocated for the refused ones: 1 of 4 sections is the region's.
    assert orch.call("GET", "/v1/nodes/101")[1]["sections_free"] == 3
    assert orch.call("DELETE", "/v1/regions/r")[0] == 204


def test_agent_failures(orch, memnodes, computes, hb_factory, key):
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    assert orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})[0] == 201

    # Attach refused: nothing recorded. No answer, and it did not attach: nothing
    # either. No answer, but it did: recorded with its PCI address.
    c1.fail_region["attach"] = (409, "not_running")
    st, ans = post(orch, "r1", "attach", "a")
    assert st == 409 and err(ans) == "not_running", ans
    c1.fail_region.clear()
    c1.region_hangup["attach"] = "drop"
    st, ans = post(orch, "r1", "attach", "a")
    assert st == 503 and err(ans) == "node_unreachable", ans
    assert orch.call("GET", "/v1/regions/r1")[1]["attachments"] == []
    c1.region_hangup["attach"] = "apply"
    st, ans = post(orch, "r1", "attach", "a")
    assert st == 200 and ans["attachments"][0]["pci"] == "0000:00:04.0", ans
    c1.region_hangup.clear()
    assert post(orch, "r1", "attach", "b")[0] == 200

    # Lock: acquire refused after the fence: not given, the epoch stays raised.
    c1.fail_region["acquire"] = (500, "internal")
    st, ans = post(orch, "r1", "lock", "a")
    assert st == 502 and err(ans) == "agent_refused", ans
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["holder"] is None and r["epoch"] == 1 and r["state"] == "ready"
    c1.fail_region.clear()
    # Acquire without an answer, not done (the agent says it does not write): not given.
    c1.region_hangup["acquire"] = "drop"
    st, ans = post(orch, "r1", "lock", "a")
    assert st == 503 and err(ans) == "node_unreachable", ans
    assert orch.call("GET", "/v1/regions/r1")[1]["holder"] is None
    # Done, its answer lost: the agent says it writes: given.
    c1.region_hangup["acquire"] = "apply"
    st, ans = post(orch, "r1", "lock", "a")
    assert st == 200 and ans["holder"] == "a" and ans["epoch"] == 3, ans
    c1.region_hangup.clear()
    assert "region_lock_failed" in kinds(orch)

    # Release answers 503 (its memory node did not acknowledge): the lock stays.
    c1.fail_region["release"] = (503, "release_failed")
    st, ans = post(orch, "r1", "unlock", "a")
    assert st == 503 and err(ans) == "release_failed", ans
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["holder"] == "a" and r["state"] == "ready"
    assert fr.calls("invalidate") == []
    # Detaching the holder needs the same release: refused the same way, still attached.
    st, ans = post(orch, "r1", "detach", "a")
    assert st == 503, ans
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["holder"] == "a" and [a["slot"] for a in r["attachments"]] == ["a", "b"]
    c1.fail_region.clear()
    # Release without an answer, not done: the lock stays. Done, answer lost: free.
    c1.region_hangup["release"] = "drop"
    assert post(orch, "r1", "unlock", "a")[0] == 503
    assert orch.call("GET", "/v1/regions/r1")[1]["holder"] == "a"
    c1.region_hangup["release"] = "apply"
    st, ans = post(orch, "r1", "unlock", "a")
    assert st == 200 and ans["holder"] is None and ans["invalidated"] == ["b"], ans
    c1.region_hangup.clear()

    # An invalidation that fails: the unlock stands, b is stale until the
    # monitor reaches it.
    assert post(orch, "r1", "lock", "a")[0] == 200
    c2.fail_region["invalidate"] = (503, "unavailable")
    st, ans = post(orch, "r1", "unlock", "a")
    assert st == 200 and ans["not_invalidated"] == ["b"], ans
    assert ans["attachments"][1] == {"slot": "b", "compute": 11, "pci": "0000:00:04.0",
                                     "stale": True}
    assert "region_invalidate_failed" in kinds(orch)
    n = len(fr.calls("invalidate"))
    c2.fail_region.clear()
    assert wait_for(lambda: "stale" not in orch.call("GET", "/v1/regions/r1")[1]
                    ["attachments"][1], 10)
    assert len(fr.calls("invalidate")) >= n + 1

    # An agent that answers nothing at all: lock not given, detach refused.
    c2.dead = True
    st, ans = post(orch, "r1", "lock", "b")
    assert st == 503 and err(ans) == "node_unreachable", ans
    st, ans = post(orch, "r1", "detach", "b")
    assert st == 503 and err(ans) == "node_unreachable", ans
    c2.dead = False
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["holder"] is None and len(r["attachments"]) == 2 and r["state"] == "ready"
    assert post(orch, "r1", "detach", "b")[0] == 200
    assert post(orch, "r1", "detach", "a")[0] == 200
    assert orch.call("DELETE", "/v1/regions/r1")[0] == 204
    assert real_allocated(m, key) == []


def incoming_regions(c, name):
    """The "regions" of the last incoming VM `name` created on fake compute c."""
    bodies = [x[2] for x in c.calls if x[:2] == ("POST", "/v1/vms") and x[2]["name"] == name]
    return bodies[-1].get("regions") if bodies else None


def test_compute_migration_moves_regions(orch, memnodes, computes, hb_factory, key):
    """A slot moves with its regions (docs/sharing.md, "Migration"): the
    destination gets each at the source's PCI address and BAR with grants
    of its own (read-write and a raised epoch for the holder), the holder
    is fenced at that epoch after the move; a strict region also moves to
    a compute node where another slot maps it; a failed move leaves the
    regions as they were."""
    c1, c2, m = start(orch, memnodes, computes, hb_factory, remote=100)
    assert orch.call("POST", "/v1/regions", {"name": "s1", "size_bytes": SEC,
                                             "mode": "strict"})[0] == 201
    assert orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})[0] == 201
    for name in ("s1", "r1"):
        assert post(orch, name, "attach", "a")[0] == 200
        assert post(orch, name, "attach", "b")[0] == 200
    assert post(orch, "s1", "detach", "b")[0] == 200

    assert post(orch, "r1", "lock", "a")[0] == 200
    epoch = orch.call("GET", "/v1/regions/r1")[1]["epoch"]
    st, ans = orch.call("POST", "/v1/slots/a/migrate", {"to": 11})
    assert st == 200 and ans["slot"]["compute"] == 11, ans
    got = {r["region"]: r for r in incoming_regions(c2, "a")}
    assert set(got) == {"s1", "r1"}, got
    r1 = orch.call("GET", "/v1/regions/r1")[1]
    s1 = orch.call("GET", "/v1/regions/s1")[1]
    assert r1["holder"] == "a" and r1["epoch"] == epoch + 1 and r1["state"] == "ready", r1
    assert got["r1"]["writable"] is True and got["r1"]["bar"] == fr.BAR
    check_grants(grants_of(got["r1"], "sections"), r1, 11, RW, epoch + 1)
    assert got["s1"]["writable"] is True and got["s1"]["mode"] == "strict"
    check_grants(grants_of(got["s1"], "sections"), s1, 11, RW, s1["epoch"])
    for reg in (r1, s1):
        att = {x["slot"]: x for x in reg["attachments"]}
        assert att["a"]["compute"] == 11, reg
        assert got[reg["name"]]["pci"] == att["a"]["pci"]
    assert len(events(orch, "region_moved")) == 2
    # The holder's sections were fenced at the raised epoch: an older write is refused.
    x = r1["sections"][0]
    old = mint_grant(key, 101, 10, x["section"], x["generation"], RW, epoch=epoch)
    with Conn(m.addr).login(key, 10) as c:
        with pytest.raises(ProtoError) as e:
            c.write(old, [(0, 1)], b"\x01" * 4096)
        assert e.value.status == ST["FENCED"], e.value

    # A move that fails leaves the regions where they were.
    c2.fail_migrate = (503, "migration_failed")
    st, ans = orch.call("POST", "/v1/slots/a/migrate", {"to": 10})
    assert st == 503, ans
    c2.fail_migrate = None
    r1 = orch.call("GET", "/v1/regions/r1")[1]
    assert r1["state"] == "ready" and r1["holder"] == "a", r1
    assert {x["slot"]: x["compute"] for x in r1["attachments"]} == {"a": 11, "b": 11}
    assert post(orch, "r1", "unlock", "a")[0] == 200
    assert post(orch, "s1", "detach", "a")[0] == 200
    assert post(orch, "r1", "detach", "a")[0] == 200
    assert post(orch, "r1", "detach", "b")[0] == 200
    for name in ("s1", "r1"):
        assert orch.call("DELETE", f"/v1/regions/{name}")[0] == 204


def test_slot_delete_detaches(orch, memnodes, computes, hb_factory, key):
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    assert orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})[0] == 201
    assert post(orch, "r1", "attach", "a")[0] == 200
    assert post(orch, "r1", "attach", "b")[0] == 200
    assert post(orch, "r1", "lock", "a")[0] == 200

    # A release that fails stops the delete: the slot stays as it was.
    c1.fail_region["release"] = (503, "release_failed")
    st, ans = orch.call("DELETE", "/v1/slots/a")
    assert st == 503, ans
    assert orch.call("GET", "/v1/slots/a")[1]["state"] == "running"
    assert orch.call("GET", "/v1/regions/r1")[1]["holder"] == "a"
    c1.fail_region.clear()
    fr.LOG.clear()
    assert orch.call("DELETE", "/v1/slots/a")[0] == 204
    assert region_calls() == [(10, "release", "a"), (11, "invalidate", "b"),
                              (10, "detach", "a")]
    assert [x[:2] for x in c1.calls[-1:]] == [("DELETE", "/v1/vms/a")]
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["holder"] is None and [a["slot"] for a in r["attachments"]] == ["b"]

    # A slot whose VM is gone (its compute node lost it): detached without its
    # agent; its lock is fenced out at a new epoch first.
    assert post(orch, "r1", "lock", "b")[0] == 200
    c2.dead = True                   # answers nothing any more
    db = sqlite3.connect(orch.db)
    db.execute("UPDATE slots SET state = 'lost' WHERE name = 'b'")
    db.commit()
    db.close()
    st, ans = post(orch, "r1", "unlock", "b")
    assert st == 200 and ans["forced"] is True and ans["epoch"] == 3, ans
    assert post(orch, "r1", "detach", "b")[0] == 200
    assert orch.call("DELETE", "/v1/regions/r1")[0] == 204


def test_a_lost_holder_loses_the_lock_after_the_lease(orch_factory, memnodes, computes,
                                                      hb_factory, key):
    """The lock's lease is the node timeout: a holder whose compute node
    misses heartbeats that long is lost, and the monitor takes the lock
    back (fenced at a new epoch: the lost VM's late writes are refused);
    the other slot locks next. When a's node comes back with its VM, which
    still writes the region, the monitor makes it read-only there and
    drops its cached pages (event region_demoted)."""
    orch = orch_factory(timeout=2)
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    assert orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})[0] == 201
    for slot in ("a", "b"):
        assert post(orch, "r1", "attach", slot)[0] == 200
    assert post(orch, "r1", "lock", "a")[0] == 200
    epoch = orch.call("GET", "/v1/regions/r1")[1]["epoch"]
    st, ans = post(orch, "r1", "lock", "b")
    assert st == 409 and err(ans) == "region_locked", ans

    orch.hb.pause(10)                # compute node 10 goes silent
    c1.dead = True
    assert wait_for(lambda: orch.call("GET", "/v1/slots/a")[1]["state"] == "lost", 15)
    assert wait_for(lambda: orch.call("GET", "/v1/regions/r1")[1]["holder"] is None, 15)
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["epoch"] == epoch + 1 and r["state"] == "ready", r
    ev = [e for e in events(orch, "region_unlocked") if "its VM is gone" in e["message"]]
    assert ev, events(orch)
    # A write of the lost holder at its old epoch is refused.
    x = r["sections"][0]
    old = mint_grant(key, 101, 10, x["section"], x["generation"], RW, epoch=epoch)
    with Conn(m.addr).login(key, 10) as c:
        with pytest.raises(ProtoError) as e:
            c.write(old, [(0, 1)], b"\x01" * 4096)
        assert e.value.status == ST["FENCED"], e.value
    # The other user goes on: b takes the lock.
    st, ans = post(orch, "r1", "lock", "b")
    assert st == 200 and ans["holder"] == "b", ans
    # a's node comes back with its VM, which still writes r1: read-only again, cache dropped.
    assert c1.vms["a"]["regions"]["r1"]["writable"] is True
    fr.LOG.clear()
    c1.dead = False
    orch.hb.resume(10)
    assert wait_for(lambda: orch.call("GET", "/v1/slots/a")[1]["state"] == "running", 15)
    assert wait_for(lambda: c1.vms["a"]["regions"]["r1"]["writable"] is False, 15)
    assert wait_for(lambda: [e[1] for e in fr.calls() if e[2] == "a"] == ["release",
                                                                         "invalidate"], 10)
    rel = [e[4] for e in fr.calls() if e[1] == "release"][0]
    r = orch.call("GET", "/v1/regions/r1")[1]
    check_grants(grants_of(rel), r, 10, R, epoch + 2)
    assert r["holder"] == "b" and r["state"] == "ready", r
    assert wait_for(lambda: events(orch, "region_demoted"), 10)
    assert "a" in [x["slot"] for x in r["attachments"]], r


def release_users(orch, memnodes, computes, hb_factory):
    """Release region p attached to slots a (node 10) and b (node 11):
    start()'s three nodes, the region and its epoch."""
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    st, r = orch.call("POST", "/v1/regions", {"name": "p", "size_bytes": SEC, "mode": "release"})
    assert st == 201, r
    for slot in ("a", "b"):
        assert post(orch, "p", "attach", slot)[0] == 200
    return c1, c2, m, r, orch.call("GET", "/v1/regions/p")[1]["epoch"]


def test_a_gone_release_slot_is_fenced_out_at_its_detach(orch_factory, memnodes, computes,
                                                        hb_factory, key):
    """Mode release: every slot holds write grants. Detaching a slot whose
    compute node is lost gives the other slots read-write grants of a new
    epoch first, then fences every section at it: a late release of the
    lost VM is refused on the real memory node ("fenced out" in
    docs/sharing.md), the other slot's writes with its new grants land.
    When a's node comes back with its VM, the monitor unplugs the region
    it no longer is attached to."""
    orch = orch_factory(timeout=2)
    c1, c2, m, r, epoch = release_users(orch, memnodes, computes, hb_factory)
    x = r["sections"][0]
    page = [(0, [(8, b"\xa1")])]
    with Conn(m.addr).login(key, 10) as c:          # a writes at the epoch it holds
        c.write_diff(mint_grant(key, 101, 10, x["section"], x["generation"], RW, epoch=epoch),
                     page)

    orch.hb.pause(10)                # compute node 10 (slot a) goes silent
    c1.dead = True
    assert wait_for(lambda: orch.call("GET", "/v1/slots/a")[1]["state"] == "lost", 15)
    c2.renewals.clear()
    st, ans = post(orch, "p", "detach", "a")
    assert st == 200, ans
    assert ans["fenced_epoch"] == epoch + 1 and ans["not_fenced_sections"] == 0, ans
    assert ans["regranted"] == ["b"] and ans["not_regranted"] == [], ans
    r = orch.call("GET", "/v1/regions/p")[1]
    assert r["epoch"] == epoch + 1 and r["state"] == "ready", r
    assert [a["slot"] for a in r["attachments"]] == ["b"], r
    # b took read-write grants of the new epoch (as the agent checks them).
    got = [g for vm, _, gs in c2.renewals if vm == "b" for g in gs]
    check_grants([decode_grant(g)[:6] for g in got], r, 11, RW, epoch + 1)
    # A late release of the lost VM (its old grant) is refused; b's lands.
    with Conn(m.addr).login(key, 10) as c:
        with pytest.raises(ProtoError) as e:
            c.write_diff(mint_grant(key, 101, 10, x["section"], x["generation"], RW,
                                    epoch=epoch), [(0, [(9, b"\xa2")])])
        assert e.value.status == ST["FENCED"], e.value
    with Conn(m.addr).login(key, 11) as c:
        c.write_diff(bytes.fromhex(got[0]), [(0, [(10, b"\xb1")])])
        data = c.read(bytes.fromhex(got[0]), [(0, 1)])
    assert data[8:11] == b"\xa1\x00\xb1", data[:16]
    ev = [e for e in events(orch, "region_detached") if e["slot"] == "a"]
    assert ev, events(orch)
    # a's node comes back with its VM, which still maps p: the monitor unplugs it.
    assert "p" in c1.vms["a"]["regions"]
    c1.dead = False
    orch.hb.resume(10)
    assert wait_for(lambda: orch.call("GET", "/v1/slots/a")[1]["state"] == "running", 15)
    assert wait_for(lambda: "p" not in c1.vms["a"]["regions"], 15), c1.calls[-5:]
    assert ("DELETE", "/v1/vms/a/regions/p") in [x[:2] for x in c1.calls], c1.calls[-5:]
    assert wait_for(lambda: [e for e in events(orch, "region_detached")
                             if "unplugged from slot a at its return" in e["message"]], 10)
    assert not post(orch, "p", "release", "a")[0] == 200


def test_a_release_slot_not_reached_at_a_fence_out_gets_the_grants_at_renewal(
        orch_factory, memnodes, computes, hb_factory, key):
    """The fence-out of a gone release slot when another slot's agent does
    not take the new grants: the detach stands (the other slot is listed
    as not regranted), that slot's writes with its old grant are refused,
    and the next renewal brings it grants of the new epoch."""
    orch = orch_factory(timeout=2, extra=["--grant-ttl", "10"])
    c1, c2, m, r, epoch = release_users(orch, memnodes, computes, hb_factory)
    orch.hb.pause(10)
    c1.dead = True
    assert wait_for(lambda: orch.call("GET", "/v1/slots/a")[1]["state"] == "lost", 15)
    c2.fail_renew = (409, "not_running")   # as the agent answers
    st, ans = post(orch, "p", "detach", "a")
    assert st == 200 and ans["regranted"] == [] and ans["not_regranted"] == ["b"], ans
    assert ans["fenced_epoch"] == epoch + 1, ans
    x = ans["sections"][0]
    with Conn(m.addr).login(key, 11) as c:
        with pytest.raises(ProtoError) as e:
            c.write_diff(mint_grant(key, 101, 11, x["section"], x["generation"], RW,
                                    epoch=epoch), [(0, [(1, b"\x01")])])
        assert e.value.status == ST["FENCED"], e.value
    c2.fail_renew = None
    c2.renewals.clear()
    assert wait_for(lambda: [g for vm, _, gs in c2.renewals if vm == "b" for g in gs], 15)
    got = [g for vm, _, gs in c2.renewals if vm == "b" for g in gs]
    check_grants([decode_grant(g)[:6] for g in got], orch.call("GET", "/v1/regions/p")[1], 11,
                 RW, epoch + 1)


def test_a_lost_strict_holder_is_an_event(orch_factory, memnodes, computes, hb_factory, key):
    """A strict region's directory drops a holder that leaves a recall
    unanswered for the lease; the memory node says so in its heartbeats and
    the orchestrator records event region_holder_lost (region, compute
    node, pages lost), once."""
    orch = orch_factory(timeout=3)         # memory nodes heartbeat every second
    hb = hb_factory(orch)
    c1, c2 = computes(10), computes(11)
    for c in (c1, c2):
        hb.register(c.registration())
    hb.start()
    m = memnodes.start(node_id=101, pool="1G",
                       extra=["--orchestrator", orch.addr, "--dir-lease-ms", "300"])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 3, 10)
    st, r = orch.call("POST", "/v1/regions", {"name": "s1", "size_bytes": SEC,
                                             "mode": "strict"})
    assert st == 201, r
    x = r["sections"][0]
    g = {n: mint_grant(key, 101, n, x["section"], x["generation"], RW, epoch=r["epoch"])
         for n in (10, 11)}
    feats = FEAT_ALL | FEAT_DIR_TAG
    io = {n: Conn(m.addr).login(key, n, orch=False, features=feats) for n in (10, 11)}
    chan = {n: Conn(m.addr).login(key, n, orch=False, features=feats) for n in (10, 11)}
    chan[10].dir_attach(g[10], 3)
    chan[11].dir_attach(g[11])
    assert io[10].dir_write(g[10], 4, tag=3) == (False, bytes(4096))
    assert io[10].dir_write(g[10], 5, tag=3) == (False, bytes(4096))
    # Node 11 writes page 4: node 10 (tag 3) is recalled and never answers.
    assert io[11].dir_write(g[11], 4)[0] is False
    assert wait_for(lambda: events(orch, "region_holder_lost"), 10), m.stderr()[-3000:]
    ev = events(orch, "region_holder_lost")
    assert len(ev) == 1, ev
    msg = ev[0]["message"]
    assert "region s1" in msg and "(10, holder tag 3)" in msg and "2 pages" in msg, msg
    assert "within the lease" in msg, msg
    time.sleep(2.5)                       # more heartbeats: not reported again
    assert len(events(orch, "region_holder_lost")) == 1
    for c in (*io.values(), *chan.values()):
        c.close()


def test_store_survives_restart(orch, memnodes, computes, hb_factory, key):
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    assert orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})[0] == 201
    assert post(orch, "r1", "attach", "a")[0] == 200
    assert post(orch, "r1", "attach", "b")[0] == 200
    st, before = post(orch, "r1", "lock", "a")
    assert st == 200
    del before["acquire"]
    orch.restart()
    assert orch.call("GET", "/v1/regions/r1")[1] == before
    st, ans = post(orch, "r1", "lock", "b")
    assert st == 409 and err(ans) == "region_locked"
    st, ans = post(orch, "r1", "unlock", "a")
    assert st == 200 and ans["holder"] is None

    # An operation cut short by a restart is settled from the agent's view:
    # b took the lock (its agent says it writes), the orchestrator died first.
    assert post(orch, "r1", "lock", "b")[0] == 200
    orch.stop()
    db = sqlite3.connect(orch.db)
    db.execute("UPDATE regions SET state = 'locking', holder = NULL, "
               "pending = (SELECT id FROM slots WHERE name = 'b')")
    db.commit()
    db.close()
    orch.start()
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["state"] == "ready" and r["holder"] == "b", r
    assert "region_recovered" in kinds(orch)
    # An unlock cut short after the release: the agent no longer writes.
    c2.vms["b"]["regions"]["r1"]["writable"] = False
    orch.stop()
    fr.LOG.clear()
    db = sqlite3.connect(orch.db)
    db.execute("UPDATE regions SET state = 'unlocking', "
               "pending = (SELECT id FROM slots WHERE name = 'b')")
    db.commit()
    db.close()
    orch.start()
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["state"] == "ready" and r["holder"] is None, r
    # ... and a owes an invalidation, which the monitor delivers.
    assert wait_for(lambda: fr.calls("invalidate"), 10)

    # An attach and a detach cut short: what the agents' VMs map decides.
    del c1.vms["a"]["regions"]["r1"]              # a's agent had detached it
    orch.stop()
    db = sqlite3.connect(orch.db)
    a_id, b_id = (db.execute("SELECT id FROM slots WHERE name = ?", (n,)).fetchone()[0]
                  for n in ("a", "b"))
    db.execute("UPDATE regions SET state = 'detaching', pending = ?", (a_id,))
    db.execute("UPDATE region_attachments SET state = 'detaching' WHERE slot_id = ?", (a_id,))
    db.execute("UPDATE region_attachments SET state = 'attaching' WHERE slot_id = ?", (b_id,))
    db.commit()
    db.close()
    orch.start()
    r = orch.call("GET", "/v1/regions/r1")[1]
    assert r["state"] == "ready" and [a["slot"] for a in r["attachments"]] == ["b"], r
    assert events(orch, "region_detached")[-1]["slot"] == "a"
    # (b is owed an invalidation: a may have released just before; the monitor gives it.)
    assert wait_for(lambda: orch.call("GET", "/v1/regions/r1")[1]["attachments"] == [
        {"slot": "b", "compute": 11, "pci": "0000:00:04.0"}], 10)


def test_database_from_before_regions(orch_factory, memnodes, computes, hb_factory):
    o = orch_factory()
    start(o, memnodes, computes, hb_factory, slots=("a",))
    o.stop()
    db = sqlite3.connect(o.db)
    for t in ("region_attachments", "region_sections", "regions"):
        db.execute(f"DROP TABLE {t}")
    db.execute("ALTER TABLE slots DROP COLUMN net")          # a version-5 database had none,
    db.execute("ALTER TABLE volumes DROP COLUMN kind")       # nor volume kinds
    for t, c in (("slots", "replicas"), ("sections", "state"), ("sections", "reason")):
        db.execute(f"ALTER TABLE {t} DROP COLUMN {c}")   # nor replicas (version 13's)
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    o.start()
    assert o.call("GET", "/v1/slots/a")[0] == 200
    st, r = o.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})
    assert st == 201, r
    db = sqlite3.connect(o.db)
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 6
    assert db.execute("SELECT name, epoch FROM regions").fetchall() == [("r1", 0)]
    db.close()


def test_grants_renewed_with_the_slot(orch_factory, memnodes, computes, hb_factory):
    o = orch_factory(extra=["--grant-ttl", "10"])
    c1, c2, m = start(o, memnodes, computes, hb_factory)
    st, r = o.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})
    assert st == 201
    assert post(o, "r1", "attach", "a")[0] == 200
    assert post(o, "r1", "attach", "b")[0] == 200
    assert post(o, "r1", "lock", "b")[0] == 200
    c1.renewals.clear()
    c2.renewals.clear()
    assert wait_for(lambda: c1.renewals and c2.renewals, 15)
    (_, _, ga), (_, _, gb) = c1.renewals[-1], c2.renewals[-1]
    check_grants([decode_grant(g)[:6] for g in ga], r, 10, R, 1)
    check_grants([decode_grant(g)[:6] for g in gb], r, 11, RW, 1)


def test_orphan_sweep_and_regions(orch_factory, memnodes, computes, hb_factory, key):
    o = orch_factory(extra=["--orphan-sweep", "1"])
    c1, c2, m = start(o, memnodes, computes, hb_factory, slots=())
    st, r = o.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})
    assert st == 201
    mine = {(x["section"], x["generation"]) for x in r["sections"]}
    owner = {ow for s, g, ow in real_allocated(m, key)}.pop()
    with Conn(m.addr) as x:
        x.login(key, 9999)
        stray = x.alloc(owner=owner)                 # the region's, but not in it
        ghost = x.alloc(owner=OWNER | 4242)          # a region that does not exist
    assert wait_for(lambda: {(s, g) for s, g, _ in real_allocated(m, key)} == mine, 15)
    assert len([e for e in events(o, "section_orphan_freed")
                if "region" in e["message"]]) == 2
    assert stray not in mine and ghost not in mine
    assert o.call("DELETE", "/v1/regions/r1")[0] == 204
    assert real_allocated(m, key) == []


def test_people_token_needed(orch, memnodes, computes, hb_factory):
    start(orch, memnodes, computes, hb_factory, pool="512M", slots=())
    for method, path in (("GET", "/v1/regions"), ("POST", "/v1/regions"),
                         ("GET", "/v1/regions/r1"), ("POST", "/v1/regions/r1/lock")):
        st, ans = orch.api.call(method, path, {}, headers={"Authorization": "Bearer nope"})
        assert st == 401, (method, path, ans)
        tok = orch.auth.node_token(10)
        st, ans = orch.api.call(method, path, {},
                                headers={"Authorization": "Bearer " + tok})
        assert st == 403, (method, path, ans)


def test_node_locks_for_its_own_slots(orch, memnodes, computes, hb_factory):
    """POST /v1/nodes/ID/regions/NAME/lock|unlock (a guest's control page):
    node ID's token, for a slot of node ID only; nobody else's token."""
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    assert orch.call("POST", "/v1/regions", {"name": "g", "size_bytes": SEC})[0] == 201
    for slot in ("a", "b"):
        assert post(orch, "g", "attach", slot)[0] == 200

    def node_call(node, verb, slot, token_node=None):
        tok = orch.auth.node_token(token_node or node)
        return orch.api.call("POST", f"/v1/nodes/{node}/regions/g/{verb}", {"slot": slot},
                             headers={"Authorization": "Bearer " + tok})

    st, ans = node_call(10, "lock", "b")            # b runs on node 11
    assert st == 403, ans
    st, ans = node_call(11, "lock", "b", token_node=10)
    assert st == 401 and "for node 11" in ans["error"]["message"], ans   # another node's path
    st, ans = orch.api.call("POST", "/v1/nodes/10/regions/g/lock", {"slot": "a"},
                            headers={"Authorization": "Bearer " + orch.auth.token})
    assert st == 403, ans                            # a people token on a node route
    st, ans = node_call(10, "lock", "a")
    assert st == 200 and ans["holder"] == "a", ans
    st, ans = node_call(11, "lock", "b")
    assert st == 409 and err(ans) == "region_locked", ans
    st, ans = node_call(10, "unlock", "a")
    assert st == 200 and ans["holder"] is None, ans
    st, ans = node_call(11, "lock", "b")
    assert st == 200 and ans["holder"] == "b", ans
    st, ans = orch.api.call("POST", "/v1/nodes/11/regions/g/frob", {"slot": "b"},
                            headers={"Authorization": "Bearer " + orch.auth.node_token(11)})
    assert st in (403, 404), ans


def test_sections_and_metrics_list_regions(orch, memnodes, computes, hb_factory):
    """GET /v1/sections lists a region's sections beside the slots' (filter
    region=, never with slot=); /metrics counts regions by state and their
    sections."""
    start(orch, memnodes, computes, hb_factory, remote=100)
    st, r = orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": 256 * MiB,
                                              "mode": "strict"})
    assert st == 201, r
    mine = sorted((x["memnode"], x["section"], x["generation"], i)
                  for i, x in enumerate(r["sections"]))
    st, ans = orch.call("GET", "/v1/sections")
    assert st == 200, ans
    regs = [x for x in ans["sections"] if "region" in x]
    assert sorted((x["memnode"], x["section"], x["generation"], x["index"]) for x in regs) == mine
    assert all(x["region"] == "r1" and "slot" not in x for x in regs)
    slots = {x["slot"] for x in ans["sections"] if "slot" in x}
    assert slots == {"a", "b"}
    assert orch.call("GET", "/v1/sections?region=r1")[1]["sections"] == regs
    assert orch.call("GET", "/v1/sections?region=r1&node=101")[1]["sections"] == regs
    assert orch.call("GET", "/v1/sections?region=r1&node=999")[1] == {"sections": []}
    assert orch.call("GET", "/v1/sections?region=nope")[1] == {"sections": []}
    assert all("slot" in x for x in orch.call("GET", "/v1/sections?slot=a")[1]["sections"])
    st, ans = orch.call("GET", "/v1/sections?slot=a&region=r1")
    assert st == 400 and err(ans) == "bad_request", ans
    # The memory node's own view lists them too.
    node = orch.call("GET", "/v1/nodes/101")[1]
    assert sorted((x["section"], x["generation"], x["index"]) for x in node["sections"]
                  if x.get("region") == "r1") == sorted(m[1:] for m in mine)
    assert {x["slot"] for x in node["sections"] if "slot" in x} == {"a", "b"}
    st, text = orch.call("GET", "/metrics")
    assert st == 200
    assert 'disagg_orch_regions{state="ready"} 1' in text, text
    assert 'disagg_orch_regions{state="deleting"} 0' in text
    assert f"disagg_orch_region_sections_allocated {len(mine)}" in text
