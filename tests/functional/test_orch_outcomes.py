# SPDX-License-Identifier: MIT
"""Indeterminate outcomes: the orchestrator asks, it never guesses.

A step whose answer is lost (a commit without answer, an orchestrator
restart, a compute migration whose source stops answering) is decided
from the participants' own state: the agent's view of the slot (which
memory node, section and generation it uses), the source's and the
destination's VM state. A section is freed only once no agent can still
use it; when nobody can be asked, the slot is `unresolved`, nothing is
freed, and the orchestrator asks again until it knows (docs/api.md,
"Migration").

The orchestrator runs for real, against fake compute agents (fakes.py,
which answer like the real one) and fake memory nodes.
"""
import threading
import time

from dproto import mint_grant
from fakes import Api
from test_orchestrator import (_set_migrating, cluster, computes, err, fakemem,  # noqa: F401
                               hb_factory, memmig_calls, orch, orch_factory)


def events(orch):
    return [e for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]


def kinds(orch):
    return [e["kind"] for e in events(orch)]


def wait_state(orch, name, state, timeout=30):
    end = time.time() + timeout
    while True:
        s = orch.call("GET", f"/v1/slots/{name}")[1]
        if s["state"] == state or time.time() > end:
            return s
        time.sleep(0.1)


def packed_slot(orch, fakemem, computes, hb_factory, ncomp=1):
    """A slot `web` with its 2 sections on one memory node; (hb, comps, slot, src, dst)."""
    hb, comps = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=ncomp)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                            "policy": "pack"})
    assert st == 201, s
    src = s["sections"][0]["memnode"]
    return hb, comps, s, src, 203 - src


def agent_uses(c, name="web"):
    """(memnode, section, generation) of each remote section in the fake agent's view."""
    st, vm = Api(c.http, token=c.auth.orch_token(c.node_id) if c.auth else None).call(
        "GET", f"/v1/vms/{name}")
    assert st == 200, vm
    return [(x["memnode"], x["section"], x["generation"])
            for x in vm["sections"] + vm["hot_sections"] if x["kind"] == "remote"]


def on_memnode(fakemem, node):
    """{section: generation} allocated on a fake memory node."""
    n = fakemem.nodes[node]
    with fakemem.lock:
        return {sec: gen for sec, (gen, _owner) in n.sections.items()}


def test_commit_without_answer_after_the_agent_switched(orch, fakemem, computes, hb_factory):
    """The agent committed but both commit answers were lost: it is asked,
    and the section it uses is kept; the one it left is freed."""
    hb, (c,), s, src, dst = packed_slot(orch, fakemem, computes, hb_factory)
    c.memmig_hangup = {"commit": "apply"}
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory",
                        {"from": src, "to": dst, "section": 0})
    assert st == 200, ans
    phases = memmig_calls(c)
    assert phases[0] == "begin" and phases.count("commit") >= 2 and phases[-1] == "abort"
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["sections"][0]["memnode"] == dst, s2
    x = s2["sections"][0]
    assert (x["memnode"], x["section"], x["generation"]) in agent_uses(c)
    assert on_memnode(fakemem, dst) == {x["section"]: x["generation"]}
    assert s["sections"][0]["section"] not in on_memnode(fakemem, src)     # left: freed
    assert s["sections"][1]["section"] in on_memnode(fakemem, src)
    assert "section_migrated" in kinds(orch)


def test_commit_without_answer_before_the_agent_switched(orch, fakemem, computes, hb_factory):
    """The commit never reached the agent: the section stays, the target goes."""
    hb, (c,), s, src, dst = packed_slot(orch, fakemem, computes, hb_factory)
    c.memmig_hangup = {"commit": "drop"}
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory",
                        {"from": src, "to": dst, "section": 0})
    assert st == 503 and err(ans) == "node_unreachable", ans
    assert "stays on" in ans["error"]["message"], ans
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["sections"] == s["sections"], s2
    assert on_memnode(fakemem, dst) == {} and len(on_memnode(fakemem, src)) == 2
    assert memmig_calls(c)[-1] == "abort"


def test_commit_without_answer_and_agent_gone(orch, fakemem, computes, hb_factory):
    """The agent committed, then answered nothing at all: neither section is
    freed, the slot is `unresolved` (busy for other requests) until the
    agent answers again; then the orchestrator settles it by itself."""
    hb, (c,), s, src, dst = packed_slot(orch, fakemem, computes, hb_factory)
    hb.start()                                      # the compute node stays up
    c.memmig_hangup = {"commit": "apply-die"}
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory",
                        {"from": src, "to": dst, "section": 0})
    assert st == 503 and err(ans) == "migration_unresolved", ans
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "unresolved" and s2["migration"]["kind"] == "memory", s2
    assert "answer" in s2["reason"], s2
    old = s["sections"][0]
    assert old["section"] in on_memnode(fakemem, src) and len(on_memnode(fakemem, dst)) == 1
    assert "migration_unresolved" in kinds(orch)
    for method, path, body in [
            ("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst}),
            ("POST", "/v1/slots/web/resize", {"memory": "384M"}),
            ("DELETE", "/v1/slots/web", None)]:
        st, ans = orch.call(method, path, body)
        assert st == 409 and err(ans) == "busy", (path, ans)
    time.sleep(3)                                   # asked again meanwhile: still unknown
    assert orch.call("GET", "/v1/slots/web")[1]["state"] == "unresolved"
    assert len(on_memnode(fakemem, dst)) == 1

    c.memmig_hangup = {}
    c.dead = False                                  # it answers again
    s2 = wait_state(orch, "web", "running")
    assert s2["state"] == "running", s2
    x = s2["sections"][0]
    assert x["memnode"] == dst and (x["memnode"], x["section"], x["generation"]) in agent_uses(c)
    assert old["section"] not in on_memnode(fakemem, src)
    assert on_memnode(fakemem, dst) == {x["section"]: x["generation"]}
    assert "migration_resolved" in kinds(orch)
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.allocated() == 0


def test_restart_with_agent_unreachable(orch, fakemem, computes, hb_factory):
    """An orchestrator restarted during a memory migration, the agent not
    answering: nothing is freed and the slot is `unresolved`; once the agent
    answers, the section it uses is kept and the other freed."""
    hb, (c,), s, src, dst = packed_slot(orch, fakemem, computes, hb_factory)
    old = s["sections"][0]
    n = fakemem.nodes[dst]
    with fakemem.lock:
        n.generation += 1
        n.sections[5] = (n.generation, 1)
    new = {"memnode": dst, "section": 5, "generation": n.generation}
    op = {"kind": "memory", "from": src, "to": dst, "index": 0,
          "src": {k: old[k] for k in ("memnode", "section", "generation")}, "dst": new}
    with c.lock:                                    # the agent had committed
        c.vms["web"]["sections"][0] = {
            "kind": "remote", "addr": n.addr,
            "grant": mint_grant(fakemem.key, dst, 10, 5, n.generation, 3).hex()}
    orch.stop()
    _set_migrating(orch.db, "web", op)
    c.dead = True
    orch.start()
    hb.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "unresolved", s2
    assert old["section"] in on_memnode(fakemem, src) and 5 in on_memnode(fakemem, dst)
    c.dead = False
    s2 = wait_state(orch, "web", "running")
    assert s2["state"] == "running" and s2["sections"][0]["memnode"] == dst, s2
    assert old["section"] not in on_memnode(fakemem, src) and 5 in on_memnode(fakemem, dst)
    assert "abort" in memmig_calls(c)


# ---------------------------------------------------------------------------
# compute migration: the source's own state decides

def flip_later(delay, *changes):
    """After `delay` s, apply (fake, vm name, {member: value}) changes under the fakes' locks."""
    def run():
        time.sleep(delay)
        for fake, name, upd in changes:
            with fake.lock:
                fake.vms[name].update(upd)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_source_answer_lost_while_migrating(orch, fakemem, computes, hb_factory):
    """The source's answer to migrate is lost while it still migrates: the
    destination is not deleted; once the source says `migrated`, the
    destination owns the VM and the slot moves there."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    c1.migrate_hangup = True
    out = {}
    t = threading.Thread(target=lambda: out.update(
        r=Api(orch.addr, token=orch.auth.token).call("POST", "/v1/slots/web/migrate", {"to": 11})))
    t.start()
    end = time.time() + 10
    while time.time() < end and not c1.vms["web"].get("migrating"):
        time.sleep(0.01)
    time.sleep(1.0)                              # the orchestrator asks meanwhile
    assert "web" in c2.vms and c2.vms["web"]["state"] == "incoming"
    assert orch.call("GET", "/v1/slots/web")[1]["state"] == "migrating"
    flip_later(0, (c2, "web", {"state": "running"}),
               (c1, "web", {"state": "migrated", "migrating": False})).join()
    t.join(60)
    st, ans = out["r"]
    assert st == 200, ans
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["compute"] == 11, s2
    assert "web" in c2.vms and "web" not in c1.vms


def interrupted_move(orch, fakemem, computes, hb_factory, source):
    """Slot `web` stopped in the middle of its move from compute node 10 to
    11 by an orchestrator restart: the destination has an incoming VM, the
    source's VM gets `source` (members). Returns (hb, c1, c2); the
    orchestrator is stopped."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    orch.stop()
    _set_migrating(orch.db, "web", {"kind": "compute", "from": 10, "to": 11})
    with c1.lock:
        c2.vms["web"] = dict(c1.vms["web"], state="incoming")
        c1.vms["web"].update(source)
    return hb, c1, c2


def test_recovery_source_migrated_destination_not_yet_running(orch, fakemem, computes,
                                                               hb_factory):
    """Restart: the source says `migrated`, the destination still loads the
    VM: the destination owns it and is kept; the slot moves there."""
    hb, c1, c2 = interrupted_move(orch, fakemem, computes, hb_factory, {"state": "migrated"})
    t = flip_later(1.0, (c2, "web", {"state": "running"}))
    orch.start()
    t.join()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["compute"] == 11, s2
    assert "web" in c2.vms and "web" not in c1.vms
    assert "slot_recovered" in kinds(orch)


def test_recovery_source_still_migrating(orch, fakemem, computes, hb_factory):
    """Restart: the source is still migrating: nothing is decided, both VMs
    are kept and the slot is `unresolved` until the source says how it
    ended."""
    hb, c1, c2 = interrupted_move(orch, fakemem, computes, hb_factory, {"migrating": True})
    orch.start()
    hb.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "unresolved" and s2["compute"] == 10, s2
    assert "migrating" in s2["reason"], s2
    assert "web" in c1.vms and "web" in c2.vms
    assert orch.call("POST", "/v1/slots/web/migrate", {"to": 11})[0] == 409
    time.sleep(3)                                 # asked again: still migrating
    assert orch.call("GET", "/v1/slots/web")[1]["state"] == "unresolved"
    flip_later(0, (c2, "web", {"state": "running"}),
               (c1, "web", {"state": "migrated", "migrating": False})).join()
    s2 = wait_state(orch, "web", "running")
    assert s2["state"] == "running" and s2["compute"] == 11, s2
    assert "web" in c2.vms and "web" not in c1.vms
    assert "migration_resolved" in kinds(orch)


def test_recovery_source_failed_migration(orch, fakemem, computes, hb_factory):
    """Restart: the source runs the VM and no longer migrates it: the
    destination's VM is deleted, the slot stays on the source."""
    hb, c1, c2 = interrupted_move(orch, fakemem, computes, hb_factory, {"migrating": False})
    orch.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["compute"] == 10, s2
    assert "web" in c1.vms and "web" not in c2.vms


def test_source_vm_dies_during_migration(orch, fakemem, computes, hb_factory):
    """The source's QEMU dies in the middle of the move: the destination's VM
    is deleted and the slot is `failed` with a reason that says what
    happened, never `lost` without one."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    c1.migrate_dies = "QEMU exited: killed by signal 9"
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 503, ans
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "failed" and s2["compute"] == 10, s2
    assert "migration to" in s2["reason"] and "killed by signal 9" in s2["reason"], s2
    assert "web" not in c2.vms


def test_recovery_source_vm_died(orch, fakemem, computes, hb_factory):
    """Restart in the middle of a move whose source VM has died since: the
    slot is `failed` with the source's reason; the destination's VM goes."""
    hb, c1, c2 = interrupted_move(orch, fakemem, computes, hb_factory,
                                  {"state": "failed", "migrating": False,
                                   "reason": "QEMU exited: killed by signal 9"})
    orch.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "failed" and s2["compute"] == 10, s2
    assert "killed by signal 9" in s2["reason"], s2
    assert "web" not in c2.vms
