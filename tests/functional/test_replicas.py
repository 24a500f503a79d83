# SPDX-License-Identifier: MIT
"""Replicated far memory, the orchestrator's half (docs/replication.md):
a real orchestrator, real memory nodes and the fake compute agent.

A slot created with "replicas": N has each remote section on N distinct
memory nodes (and zones, when memory nodes carry a zone label), refused
with 409 no_capacity when that cannot be; the agent is sent the replicas
with their grants; a replica the agent reports out makes the slot
degraded until it is repaired onto another memory node (a COPY from the
live replica); a memory node killed and declared down gets its replicas
dropped and repaired; grant renewal covers the replicas; delete frees
every replica."""
import struct
import threading

from dproto import Conn, wait_for
from test_orchestrator import (computes, hb_factory, orch_factory,  # noqa: F401
                               real_allocated)

PAGE = 4096


def start_cluster(orch_factory, memnodes, computes, hb_factory, zones, extra=(), timeout=3):
    """An orchestrator, compute node 10 (fake, heartbeating its VM states
    every second at most) and one real memory node per entry of zones
    (None: no zone label)."""
    orch = orch_factory(timeout=timeout, extra=["--orphan-sweep", "1", *extra])
    hb = hb_factory(orch, interval=min(1, timeout / 3))
    c = computes(10)
    hb.register(c.registration(), capacity=c.vm_states)
    hb.start()
    mns = [start_memnode(orch, memnodes, 101 + i, z) for i, z in enumerate(zones)]
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 1 + len(zones),
                    15)
    return orch, c, mns


def start_memnode(orch, memnodes, node_id, zone=None):
    extra = ["--orchestrator", orch.addr] + (["--label", f"zone={zone}"] if zone else [])
    return memnodes.start(node_id=node_id, pool="1G", extra=extra)


def positions(slot):
    """{section index: [(memnode, section, generation, state), ...]} by position."""
    out = {}
    for x in slot["sections"]:
        if x["kind"] != "remote":
            continue
        out[x["index"]] = [(x["memnode"], x["section"], x["generation"], x.get("state", "in"))]
        out[x["index"]] += [(r["memnode"], r["section"], r["generation"], r["state"])
                            for r in x.get("replicas", [])]
    return out


def grant_key(hexgrant):
    memnode, _, sec, gen = struct.unpack_from("<QQII", bytes.fromhex(hexgrant))
    return memnode, sec, gen


def events(orch, kind=None):
    evs = orch.call("GET", "/v1/events?limit=1000")[1]["events"]
    return [e for e in evs if kind is None or e["kind"] == kind]


def slot(orch, name):
    st, s = orch.call("GET", f"/v1/slots/{name}")
    assert st == 200, s
    return s


def held(m, key):
    return {(s, g) for s, g, _ in real_allocated(m, key)}


def test_create_renew_delete(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 3,
                                 extra=["--grant-ttl", "10"])
    for bad in (0, 4, "2", 1.5, None):
        st, e = orch.call("POST", "/v1/slots", {"name": "x", "memory": "256M", "replicas": bad})
        assert st == 400 and "replicas" in e["error"]["message"], (bad, st, e)
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "256M", "replicas": 2})
    assert st == 201, s
    assert s["replicas"] == 2 and s["redundancy"] == {
        "state": "ok", "in": 2, "want": 2, "text": "ok (2/2 replicas)"}, s
    pos = positions(s)
    assert len(pos) == 2
    for reps in pos.values():
        assert len(reps) == 2 and len({r[0] for r in reps}) == 2, pos   # distinct nodes
        assert all(r[3] == "in" for r in reps)
    # The agent got each section's replica, with a grant for it.
    sent = c.create_bodies[-1]["sections"]
    for i, x in enumerate(sent):
        assert len(x["replicas"]) == 1 and set(x["replicas"][0]) == {"addr", "grant"}
        assert grant_key(x["replicas"][0]["grant"]) == pos[i][1][:3]
    assert sum(len(held(m, key)) for m in mns) == 4
    # GET /v1/sections and GET /v1/nodes/ID list the replicas too.
    secs = orch.call("GET", "/v1/sections?slot=r")[1]["sections"]
    assert sorted((x["index"], x.get("replica", 0)) for x in secs) == [(0, 0), (0, 1), (1, 0),
                                                                       (1, 1)]
    n1 = pos[0][1][0]
    on = orch.call("GET", f"/v1/nodes/{n1}")[1]
    assert {"section": pos[0][1][1], "generation": pos[0][1][2], "slot": "r", "index": 0,
            "replica": 1} in on["sections"], on
    assert "disagg_orch_sections_allocated 4" in orch.call("GET", "/metrics")[1]
    # GET /v1/slots (the list) says the same.
    lst = orch.call("GET", "/v1/slots")[1]["slots"]
    assert lst[0]["redundancy"]["text"] == "ok (2/2 replicas)"
    # An unreplicated slot next to it: one replica, nothing else changes.
    st, u = orch.call("POST", "/v1/slots", {"name": "u", "memory": "128M"})
    assert st == 201 and u["replicas"] == 1 and "replicas" not in c.create_bodies[-1]["sections"][0]
    # Grant renewal renews every replica's grant too.
    want = {p[:3] for reps in pos.values() for p in reps}

    def renewed():
        return any(v == "r" and want <= {grant_key(g) for g in gs} for v, _, gs in c.renewals)
    assert wait_for(renewed, 15), c.renewals
    # Delete frees every replica; the free counts come back.
    assert orch.call("DELETE", "/v1/slots/r")[0] == 204
    assert orch.call("DELETE", "/v1/slots/u")[0] == 204
    assert wait_for(lambda: sum(len(held(m, key)) for m in mns) == 0, 10)
    # The orchestrator's count is its own adjustment and each memory node's
    # heartbeat: one sent just before a free can land after it and lower the
    # count again until the next heartbeat.

    def memnodes_free():
        return [n for n in orch.call("GET", "/v1/nodes")[1]["nodes"] if n["kind"] == "memnode"]
    assert wait_for(lambda: all(n["sections_free"] == n["sections_total"]
                                for n in memnodes_free()), 10), memnodes_free()


def test_zones(orch_factory, memnodes, computes, hb_factory):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory,
                                 ["a", "a", "b"])
    zone = {101: "a", 102: "a", 103: "b"}
    st, s = orch.call("POST", "/v1/slots", {"name": "z", "memory": "512M", "replicas": 2})
    assert st == 201, s
    for reps in positions(s).values():
        assert {zone[r[0]] for r in reps} == {"a", "b"}, reps
    st, e = orch.call("POST", "/v1/slots", {"name": "z3", "memory": "128M", "replicas": 3})
    assert st == 409 and e["error"]["code"] == "no_capacity", e
    assert "zone" in e["error"]["message"], e
    assert orch.call("GET", "/v1/slots/z3")[0] == 404
    # Without labels each node is a zone of its own: a fourth node makes room.
    start_memnode(orch, memnodes, 104)
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 5, 10)
    st, s3 = orch.call("POST", "/v1/slots", {"name": "z3", "memory": "128M", "replicas": 3})
    assert st == 201, s3
    reps = positions(s3)[0]
    assert len({r[0] for r in reps}) == 3 and 104 in {r[0] for r in reps}


def test_agent_reports_out_and_repair(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 2)
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "128M", "replicas": 2})
    assert st == 201, s
    (p0, p1), = positions(s).values()
    addr = {m.node_id: m.addr for m in mns}
    # The guest's data, on the live replica (position 0).
    sec0 = c.vms["r"]["sections"][0]
    data = bytes(range(256)) * (2 * PAGE // 256)
    with Conn(addr[p0[0]]) as x:
        x.login(key, 10)
        x.write(bytes.fromhex(sec0["grant"]), [(3, 2)], data)
    # The pager took replica 1 out: the heartbeat says so.
    c.take_out("r", *p1[:3], reason="connection refused")
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "degraded", 10)
    s = slot(orch, "r")
    assert s["redundancy"] == {"state": "degraded", "in": 1, "want": 2,
                               "text": "degraded (1/2 replicas)"}, s
    rep = s["sections"][0]["replicas"][0]
    assert rep["state"] in ("out", "repairing") and rep["memnode"] == p1[0]
    # No third memory node: the repair has no target and says so.
    assert wait_for(lambda: events(orch, "replica_repair_failed"), 10)
    assert slot(orch, "r")["redundancy"]["state"] == "degraded"
    # A third memory node: repaired onto it, by a COPY from the live replica.
    m3 = start_memnode(orch, memnodes, 103)
    addr[103] = m3.addr
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok", 20), \
        slot(orch, "r")
    s = slot(orch, "r")
    assert s["state"] == "running" and "migration" not in s
    (q0, q1), = positions(s).values()
    assert q0 == p0 and q1[0] == 103 and q1[3] == "in"
    kinds = [e["kind"] for e in events(orch)]
    for k in ("replica_out", "replica_repair_started", "replica_repaired"):
        assert k in kinds, kinds
    assert kinds.index("replica_out") < kinds.index("replica_repaired")
    # The agent was asked to migrate the out replica to the new section.
    assert ("r", p1[:3], q1[:3]) in c.memmig_commits, c.memmig_commits
    new = c.vms["r"]["sections"][0]["replicas"][0]
    assert grant_key(new["grant"]) == q1[:3]
    with Conn(m3.addr) as x:
        x.login(key, 10)
        assert x.read(bytes.fromhex(new["grant"]), [(3, 2)]) == data
    # The out section was freed on its (live) memory node.
    m2 = next(m for m in mns if m.node_id == p1[0])
    assert wait_for(lambda: (p1[1], p1[2]) not in held(m2, key), 10)
    # Reported again (the agent's list still names the old one): ignored.
    assert slot(orch, "r")["redundancy"]["state"] == "ok"
    assert orch.call("DELETE", "/v1/slots/r")[0] == 204
    assert wait_for(lambda: sum(len(held(m, key)) for m in mns + [m3]) == 0, 10)


def test_memnode_down_drop_and_repair(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 3)
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "128M", "replicas": 2})
    assert st == 201, s
    (p0, p1), = positions(s).values()
    victim = next(m for m in mns if m.node_id == p1[0])
    spare = next(m.node_id for m in mns if m.node_id not in (p0[0], p1[0]))
    victim.kill9()
    # Declared down: the replica is out, the agent told to drop it, and repaired.
    assert wait_for(lambda: any(b["replica"] == dict(zip(("memnode", "section", "generation"),
                                                          p1[:3]))
                                for _, b in c.replica_calls), 20), c.replica_calls
    assert all(b["action"] == "drop" for _, b in c.replica_calls)
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok" and
                    positions(slot(orch, "r"))[0][1][0] == spare, 20), slot(orch, "r")
    out = events(orch, "replica_out")
    assert out and "down" in out[0]["message"], out
    assert events(orch, "replica_repaired")
    assert slot(orch, "r")["state"] == "running"
    # An unreplicated slot's section on a down node keeps today's behaviour.
    st, u = orch.call("POST", "/v1/slots", {"name": "u", "memory": "128M"})
    assert st == 201 and u["replicas"] == 1


def test_a_silent_memnode_is_probed_not_awaited(orch_factory, memnodes, computes, hb_factory,
                                                key):
    """Once a pager has taken a replica out, its memory node is probed: a
    node that answers keeps its other replicas; a dead one has them taken
    out and repaired at once, long before its heartbeats are missed
    (--node-timeout 60)."""
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 3,
                                 timeout=60)
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "384M", "replicas": 2})
    assert st == 201, s
    def on(node_id):
        return [(i, p) for i, reps in positions(slot(orch, "r")).items() for p in reps
                if p[0] == node_id]

    # A replica out on a node that answers: only that one is repaired.
    busiest = max(mns, key=lambda m: len(on(m.node_id)))
    assert len(on(busiest.node_id)) >= 2, positions(s)     # 6 replicas on 3 nodes
    c.take_out("r", *on(busiest.node_id)[0][1][:3])
    assert wait_for(lambda: events(orch, "replica_repaired"), 20), events(orch)
    assert len(events(orch, "replica_out")) == 1, events(orch, "replica_out")
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok", 20)
    dead = max(mns, key=lambda m: len(on(m.node_id)))
    on_dead = on(dead.node_id)
    assert len(on_dead) >= 2, positions(slot(orch, "r"))
    # The other node dies; its pager reports one of its replicas out.
    dead.kill9()
    c.take_out("r", *on_dead[0][1][:3])
    msgs = lambda: [e["message"] for e in events(orch, "replica_out")]  # noqa: E731
    silent = len(on_dead) - 1     # the others: taken out by the orchestrator
    assert wait_for(lambda: sum("does not answer" in m for m in msgs()) == silent, 10), msgs()
    assert any(f"section {on_dead[1][1][1]})" in m and "does not answer" in m
               for m in msgs()), msgs()
    # Both repaired elsewhere while its heartbeats still count it up.
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok", 20), \
        slot(orch, "r")
    assert all(p[0] != dead.node_id for reps in positions(slot(orch, "r")).values()
               for p in reps)
    node = orch.call("GET", f"/v1/nodes/{dead.node_id}")[1]
    assert node["state"] == "up", node
    # The agent was told to drop the replica the orchestrator took out.
    ref = dict(zip(("memnode", "section", "generation"), on_dead[1][1][:3]))
    assert any(b["action"] == "drop" and b["replica"] == ref for _, b in c.replica_calls), \
        c.replica_calls


def test_resize_and_memory_migration(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 3)
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "128M", "replicas": 2})
    assert st == 201, s
    # A hot-added section gets its replicas too, and loses them when removed.
    st, s = orch.call("POST", "/v1/slots/r/resize", {"memory": "256M"})
    assert st == 200, s
    pos = positions(s)
    assert len(pos) == 2 and all(len({r[0] for r in reps}) == 2 for reps in pos.values()), pos
    hot = list(c.vms["r"]["hot"].values())[0]
    assert len(hot["replicas"]) == 1 and grant_key(hot["replicas"][0]["grant"]) == pos[1][1][:3]
    assert sum(len(held(m, key)) for m in mns) == 4
    st, s = orch.call("POST", "/v1/slots/r/resize", {"memory": "128M"})
    assert st == 200, s
    assert wait_for(lambda: sum(len(held(m, key)) for m in mns) == 2, 10)
    (p0, p1), = positions(s).values()
    third = next(m.node_id for m in mns if m.node_id not in (p0[0], p1[0]))
    # Never onto a node holding another replica of the section.
    st, e = orch.call("POST", "/v1/slots/r/migrate-memory", {"from": p1[0], "to": p0[0]})
    assert st == 409 and "replica" in e["error"]["message"], e
    assert slot(orch, "r")["state"] == "running"
    # A replica moves on its own: begin, COPY from itself, commit.
    st, ans = orch.call("POST", "/v1/slots/r/migrate-memory", {"from": p1[0], "to": third})
    assert st == 200, ans
    (q0, q1), = positions(ans["slot"]).values()
    assert q0 == p0 and q1[0] == third and q1[3] == "in"
    assert ans["sections"][0]["replica"] == 1
    assert ("r", p1[:3], q1[:3]) in c.memmig_commits
    m_old = next(m for m in mns if m.node_id == p1[0])
    assert (p1[1], p1[2]) not in held(m_old, key)
    # And position 0 cannot go where replica 1 now is.
    st, e = orch.call("POST", "/v1/slots/r/migrate-memory", {"from": p0[0], "to": third})
    assert st == 409, e
    assert slot(orch, "r")["redundancy"]["state"] == "ok"


def test_repair_failure_and_restart(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 3)
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "128M", "replicas": 2})
    assert st == 201, s
    (p0, p1), = positions(s).values()
    # The agent refuses the commit: the repair fails, its target is freed, retried later.
    c.fail_memmig = {"commit": (409, "conflict")}
    c.take_out("r", *p1[:3])
    assert wait_for(lambda: events(orch, "replica_repair_failed"), 15)
    assert slot(orch, "r")["redundancy"]["state"] == "degraded"
    assert wait_for(lambda: slot(orch, "r")["state"] == "running", 10)
    assert wait_for(lambda: sum(len(held(m, key)) for m in mns) == 2, 10)
    # The orchestrator dies in the middle of the next one (the agent slow to begin).
    entered, release = threading.Event(), threading.Event()
    dispatch = c._dispatch

    def slow(h, method, path, body):
        if path.endswith("/sections/migrate") and (body or {}).get("phase") == "begin":
            entered.set()
            release.wait(30)
        return dispatch(h, method, path, body)
    c._dispatch = slow
    c.fail_memmig = {}
    assert entered.wait(15)
    assert slot(orch, "r")["state"] == "migrating"
    assert slot(orch, "r")["migration"]["kind"] == "repair"
    assert sum(len(held(m, key)) for m in mns) == 3      # its target is allocated
    orch.d.kill9()
    c._dispatch = dispatch
    release.set()
    orch.start()
    # Settled at start (aborted, target freed, out again), then repaired anew.
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok", 30), slot(orch, "r")
    msgs = [e["message"] for e in events(orch, "replica_repair_failed")]
    assert any("restart" in m for m in msgs), msgs
    assert events(orch, "replica_repaired")
    assert wait_for(lambda: sum(len(held(m, key)) for m in mns) == 2, 10)
    assert slot(orch, "r")["state"] == "running"


def test_compute_migration(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 2)
    c2 = computes(11)
    hb = hb_factory(orch)
    hb.register(c2.registration(), capacity=c2.vm_states)
    hb.start()
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "256M", "replicas": 2})
    assert st == 201 and s["compute"] == 10, s
    # A replica out (nowhere to repair it yet): the slot does not move.
    c.take_out("r", *positions(s)[1][1][:3])
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "degraded", 10)
    st, e = orch.call("POST", "/v1/slots/r/migrate", {"to": 11})
    assert st == 409 and "repaired before" in e["error"]["message"], e
    assert slot(orch, "r")["state"] == "running" and slot(orch, "r")["compute"] == 10
    mns.append(start_memnode(orch, memnodes, 103))
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok", 20)
    s = slot(orch, "r")
    st, ans = orch.call("POST", "/v1/slots/r/migrate", {"to": 11})
    assert st == 200, ans
    # Every replica is one ownership epoch later, and the destination got them.
    for x, y in zip(s["sections"], ans["slot"]["sections"]):
        assert y["epoch"] == x["epoch"] + 1
        assert [r["epoch"] for r in y["replicas"]] == [r["epoch"] + 1 for r in x["replicas"]]
    (_, _, body), = [x for x in c2.calls if x[:2] == ("POST", "/v1/vms")]
    for sec, rec in zip(body["sections"], ans["slot"]["sections"]):
        (rep,), want = sec["replicas"], rec["replicas"][0]
        g = struct.unpack_from("<QQIIIIQ", bytes.fromhex(rep["grant"]))
        assert (g[0], g[1], g[2], g[3]) == (want["memnode"], 11, want["section"],
                                            want["generation"])
        assert g[5] == want["epoch"], g
    assert slot(orch, "r")["redundancy"]["state"] == "ok"
    assert orch.call("DELETE", "/v1/slots/r")[0] == 204
    assert wait_for(lambda: sum(len(held(m, key)) for m in mns) == 0, 10)


def test_node_label_and_remove(orch_factory, memnodes, computes, hb_factory, key):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 3)
    st, e = orch.call("POST", "/v1/nodes/101/labels", {"labels": {"zone": 7}})
    assert st == 400, e
    assert orch.call("POST", "/v1/nodes/999/labels", {"labels": {"zone": "a"}})[0] == 404
    for nid in (101, 102):
        st, n = orch.call("POST", f"/v1/nodes/{nid}/labels", {"labels": {"zone": "a"}})
        assert st == 200 and n["labels"] == {"zone": "a"}, n
    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "256M", "replicas": 2})
    assert st == 201, s
    for reps in positions(s).values():
        assert 103 in {r[0] for r in reps}, reps      # the only node outside zone a
    # Remove 103: drained, its replicas out at once (the agent drops them), but
    # nowhere to repair them (zone a only): 409 in_use, saying why.
    st, e = orch.call("POST", "/v1/nodes/103/remove")
    assert st == 409 and e["error"]["code"] == "in_use", e
    assert {b["replica"]["memnode"] for _, b in c.replica_calls} == {103}
    assert slot(orch, "r")["redundancy"]["state"] == "degraded"
    assert wait_for(lambda: events(orch, "replica_repair_failed"), 10)
    # 102 in zone b now (null removes a label): repaired there, then 103 goes.
    st, n = orch.call("POST", "/v1/nodes/102/labels", {"labels": {"zone": "b", "x": None}})
    assert st == 200 and n["labels"] == {"zone": "b"}
    assert wait_for(lambda: slot(orch, "r")["redundancy"]["state"] == "ok", 20), slot(orch, "r")
    for reps in positions(slot(orch, "r")).values():
        assert {r[0] for r in reps} == {101, 102}, reps
    m103 = next(m for m in mns if m.node_id == 103)
    assert wait_for(lambda: held(m103, key) == set(), 10)   # the out sections were freed
    m103.kill9()
    st, ans = orch.call("POST", "/v1/nodes/103/remove")
    assert st == 200 and ans == {"node_id": 103, "removed": True}, ans
    assert 103 not in [n["node_id"] for n in orch.call("GET", "/v1/nodes")[1]["nodes"]]
    assert events(orch, "node_removed")


def test_cli(orch_factory, memnodes, computes, hb_factory):
    from test_cli import cli_env, disagg
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 2)
    env = cli_env(DISAGG_URL=orch.addr, DISAGG_TOKEN=orch.auth.token)
    p = disagg("slot", "create", "r", "--vcpus", 1, "--memory", "256M", "--replicas", 2,
               env=env, check_rc=0)
    assert slot(orch, "r")["replicas"] == 2, p.stdout
    disagg("slot", "create", "x", "--vcpus", 1, "--memory", "128M", "--replicas", 4,
           env=env, check_rc=2)
    p = disagg("slot", "create", "y", "--vcpus", 1, "--memory", "128M", "--replicas", 3,
               env=env)
    assert p.returncode != 0 and "no_capacity" in p.stderr + p.stdout, (p.stdout, p.stderr)
    assert "running, ok (2/2 replicas)" in disagg("slot", "ls", env=env, check_rc=0).stdout
    out = disagg("slot", "show", "r", env=env, check_rc=0).stdout
    assert "2 of each remote section, ok (2/2 replicas)" in out, out
    c.take_out("r", *positions(slot(orch, "r"))[0][1][:3])
    assert wait_for(lambda: "degraded (1/2 replicas)" in
                    disagg("slot", "ls", env=env, check_rc=0).stdout, 10)
    p = disagg("node", "label", 101, "zone=a", "rack=", env=env, check_rc=0)
    assert '{"zone":"a"}' in p.stdout, p.stdout
    disagg("node", "label", 101, "zone", env=env, check_rc=2)
    p = disagg("node", "remove", 102, env=env)
    assert p.returncode != 0 and "in_use" in p.stderr + p.stdout, (p.stdout, p.stderr)


def test_default_replicas(orch_factory, memnodes, computes, hb_factory):
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None],
                                 extra=["--replicas", "2"])
    # One memory node: a slot with remote memory cannot have the default 2...
    st, e = orch.call("POST", "/v1/slots", {"name": "a", "memory": "128M"})
    assert st == 409 and e["error"]["code"] == "no_capacity", e
    # ...unless it asks for 1, or has no remote memory.
    st, s = orch.call("POST", "/v1/slots", {"name": "a", "memory": "128M", "replicas": 1})
    assert st == 201 and s["replicas"] == 1, s
    st, s = orch.call("POST", "/v1/slots", {"name": "b", "memory": "128M",
                                            "remote_percent": 0})
    assert st == 201 and s["replicas"] == 2 and s["redundancy"]["state"] == "ok", s
    start_memnode(orch, memnodes, 102)
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 3, 10)
    st, s = orch.call("POST", "/v1/slots", {"name": "c", "memory": "128M"})
    assert st == 201 and s["replicas"] == 2 and len(positions(s)[0]) == 2, s


def handed_over(c, name):
    """The keys of every replica the hand-overs to fake c named for VM name."""
    return [{(e["memnode"], e["section"], e["generation"]) for e in b["out"]}
            for vm, b in c.replica_calls if vm == name and b.get("action") == "hand-over"]


def test_compute_migration_hands_over_replicas_out(orch_factory, memnodes, computes,
                                                   hb_factory, key):
    """A replica that the source takes out while the slot moves (its flush
    rounds or final flush, after the destination was sent every replica):
    the destination is created waiting ("replicas_pending"), the source's
    answer names the replica, the orchestrator takes it out (an event, the
    slot degraded) and tells the destination to drop it before its faults
    go on. A hand-over that gets no answer leaves the slot `unresolved` and
    is done again by the monitor (the source's record asked); one refused
    because it would leave a section with no replica fails the slot."""
    orch, c, mns = start_cluster(orch_factory, memnodes, computes, hb_factory, [None] * 2)
    c2 = computes(11)
    hb = hb_factory(orch)
    hb.register(c2.registration(), capacity=c2.vm_states)
    hb.start()
    fakes = {10: c, 11: c2}

    st, s = orch.call("POST", "/v1/slots", {"name": "r", "memory": "256M", "replicas": 2})
    assert st == 201 and s["compute"] == 10, s
    gone = positions(s)[0][0][:3]               # section 0, position 0
    c.out_on_migrate = [gone]
    st, ans = orch.call("POST", "/v1/slots/r/migrate", {"to": 11})
    assert st == 200, ans
    (_, _, body), = [x for x in c2.calls if x[:2] == ("POST", "/v1/vms")]
    assert body["incoming"]["replicas_pending"] is True, body["incoming"]
    assert handed_over(c2, "r") == [{gone}] and ans["phases_ms"]["replicas"] >= 0, ans
    assert c2.vms["r"]["replicas_pending"] is False and gone in c2.vms["r"]["out"]
    s = slot(orch, "r")
    assert s["compute"] == 11 and s["state"] == "running", s
    assert positions(s)[0][0][3] == "out", positions(s)
    assert s["redundancy"]["state"] == "degraded", s["redundancy"]
    assert any(e["slot"] == "r" for e in events(orch, "replica_out")), events(orch)
    c.out_on_migrate = []

    # An unreplicated slot's destination waits for no hand-over.
    st, u = orch.call("POST", "/v1/slots", {"name": "u", "memory": "128M", "replicas": 1})
    assert st == 201, u
    st, ans = orch.call("POST", "/v1/slots/u/migrate", {"to": 21 - u["compute"]})
    assert st == 200 and ans["phases_ms"]["replicas"] == 0, ans
    body = [b for m, p, b in fakes[21 - u["compute"]].calls
            if (m, p) == ("POST", "/v1/vms") and b["name"] == "u"][-1]
    assert "replicas_pending" not in body["incoming"] and not handed_over(
        fakes[21 - u["compute"]], "u"), body

    # No answer to the hand-over: unresolved, then the monitor hands over.
    st, s = orch.call("POST", "/v1/slots", {"name": "q", "memory": "256M", "replicas": 2})
    assert st == 201, s
    to = 21 - s["compute"]
    src, dst = fakes[s["compute"]], fakes[to]
    gone = positions(s)[1][1][:3]               # section 1, position 1
    src.out_on_migrate = [gone]
    dst.hand_over_fails = (503, "busy")
    st, e = orch.call("POST", "/v1/slots/q/migrate", {"to": to})
    assert st == 503 and e["error"]["code"] == "migration_unresolved", e
    assert "waits for the replicas" in e["error"]["message"], e
    assert slot(orch, "q")["state"] == "unresolved"
    assert dst.vms["q"]["replicas_pending"] is True
    dst.hand_over_fails = None
    assert wait_for(lambda: slot(orch, "q")["state"] == "running", 30), slot(orch, "q")
    s = slot(orch, "q")
    assert s["compute"] == to, s
    assert dst.vms["q"]["replicas_pending"] is False and gone in dst.vms["q"]["out"]
    assert handed_over(dst, "q")[-1] == {gone}
    assert positions(s)[1][1][3] == "out", positions(s)
    src.out_on_migrate = []

    # The source took out both replicas of a section (it cannot: a fake
    # that says so): the destination refuses, the slot fails, nothing is read.
    st, s = orch.call("POST", "/v1/slots", {"name": "w", "memory": "128M", "replicas": 2})
    assert st == 201, s
    src, dst = fakes[s["compute"]], fakes[21 - s["compute"]]
    src.out_on_migrate = [p[:3] for p in positions(s)[0]]
    st, e = orch.call("POST", "/v1/slots/w/migrate", {"to": 21 - s["compute"]})
    assert st == 503 and e["error"]["code"] == "migration_failed", e
    assert "missed writes" in e["error"]["message"], e
    assert slot(orch, "w")["state"] == "failed"
    assert dst.vms["w"]["replicas_pending"] is True
    src.out_on_migrate = []
