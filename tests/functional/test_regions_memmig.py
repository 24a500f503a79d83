# SPDX-License-Identifier: MIT
"""Memory migration of a shared region in the orchestrator
(POST /v1/regions/NAME/migrate, docs/api.md), against real memory nodes
(the COPY is real: the bytes written on the old node are read on the new
one) and fake compute agents (fake_regions.py).

The order of the steps on the agents (write back ahead, quiesce every
user, switch every user, resume every user), the grants of the switch
(the holder's read-write, the others' read-only, held by each node, on
the new sections), the old sections freed; the API's errors (unknown
node, not a memory node, same node, busy, capacity, a release region);
failures: an agent that refuses the switch or answers nothing (the region
goes back, every user resumes on the old sections, the new ones are
freed); memory migration of a slot that maps a region moves the slot's
sections only; the orphan sweep leaves a moving region's unrecorded
target sections alone; a region nobody maps, the CLI, a move settled by
an orchestrator restart.
"""
import re
import sqlite3
import time

import pytest

import fake_regions as fr
from dproto import Conn, wait_for
from test_cli import cli_env, disagg
from test_orchestrator import (computes, decode_grant, err, hb_factory,  # noqa: F401
                               orch, orch_factory, real_allocated)
from test_regions import MiB, R, RW, SEC, events, post, start

PATTERN = bytes(range(256)) * 16       # one page


@pytest.fixture(autouse=True)
def _fresh_log():
    fr.LOG.clear()


def owned(m, key):
    return {(s, g) for s, g, o in real_allocated(m, key) if o & (1 << 62)}


def write_page(m, key, region, idx, page, data):
    """Write one page of section idx of the region on memory node m, as the
    orchestrator could (its own grant)."""
    from dproto import mint_grant
    x = region["sections"][idx]
    g = mint_grant(key, x["memnode"], 9999, x["section"], x["generation"], RW,
                   epoch=x["epoch"])
    with Conn(m.addr) as c:
        c.login(key, 9999)
        c.write(g, [(page, 1)], data)


def read_page(m, key, x, page):
    from dproto import mint_grant
    g = mint_grant(key, x["memnode"], 9999, x["section"], x["generation"], R,
                   epoch=x["epoch"])
    with Conn(m.addr) as c:
        c.login(key, 9999)
        return c.read(g, [(page, 1)])


def two_nodes(orch, memnodes, computes, hb_factory, pool2="1G"):
    c1, c2, m1 = start(orch, memnodes, computes, hb_factory)
    m2 = memnodes.start(node_id=102, pool=pool2, extra=["--orchestrator", orch.addr])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 4, 10)
    return c1, c2, m1, m2


def region_with_users(orch, mode="exclusive"):
    st, r = orch.call("POST", "/v1/regions", {"name": "r1", "size_bytes": 2 * SEC,
                                              "mode": mode, "home": 101})
    assert st == 201, r
    for s in ("a", "b"):
        assert post(orch, "r1", "attach", s)[0] == 200
    return r


def move_calls(phases=("quiesce", "switch", "resume")):
    return [(e[0], e[1], e[2]) for e in fr.LOG if e[1] in phases]


def test_exclusive_region_moves(orch, memnodes, computes, hb_factory, key):
    c1, c2, m1, m2 = two_nodes(orch, memnodes, computes, hb_factory)
    r = region_with_users(orch)
    assert post(orch, "r1", "lock", "a")[0] == 200
    r = orch.call("GET", "/v1/regions/r1")[1]
    write_page(m1, key, r, 1, 7, PATTERN)
    old = {(x["section"], x["generation"]) for x in r["sections"]}
    assert owned(m1, key) == old
    fr.LOG.clear()

    st, ans = orch.call("POST", "/v1/regions/r1/migrate", {"to": 102})
    assert st == 200, ans
    assert ans["from"] == 101 and ans["to"] == 102 and ans["sections"] == 2
    assert ans["pause_ms"] >= 0 and ans["not_resumed"] == []
    assert [u["slot"] for u in ans["users"]] == ["a", "b"]
    reg = ans["region"]
    assert reg["state"] == "ready" and reg["home"] == 102 and reg["holder"] == "a"
    assert all(x["memnode"] == 102 for x in reg["sections"])
    assert reg == orch.call("GET", "/v1/regions/r1")[1]
    # write back ahead, quiesce everyone, then switch everyone, then resume everyone
    assert move_calls(("writeback", "quiesce", "switch", "resume")) == [
        (10, "writeback", "a"), (11, "writeback", "b"), (10, "quiesce", "a"),
        (11, "quiesce", "b"), (10, "switch", "a"), (11, "switch", "b"), (10, "resume", "a"),
        (11, "resume", "b")]
    assert move_calls() == [(10, "quiesce", "a"), (11, "quiesce", "b"),
                            (10, "switch", "a"), (11, "switch", "b"),
                            (10, "resume", "a"), (11, "resume", "b")]
    for node, body, rights in ((10, fr.calls("switch", "r1")[0][4], RW),
                               (11, fr.calls("switch", "r1")[1][4], R)):
        gs = [decode_grant(s["grant"])[:6] for s in body["sections"]]
        assert gs == [(102, node, x["section"], x["generation"], rights, reg["epoch"])
                      for x in reg["sections"]], gs
        assert all(s["addr"] == m2.addr for s in body["sections"])
    # the copy is real; the old sections are freed
    assert read_page(m2, key, reg["sections"][1], 7) == PATTERN
    assert owned(m1, key) == set()
    assert owned(m2, key) == {(x["section"], x["generation"]) for x in reg["sections"]}
    assert "region_migrated" in [e["kind"] for e in events(orch)]
    # the lock still works on the new node: unlock, b locks
    assert post(orch, "r1", "unlock", "a")[0] == 200
    assert post(orch, "r1", "lock", "b")[0] == 200
    # and it moves back
    st, ans = orch.call("POST", "/v1/regions/r1/migrate", {"to": 101})
    assert st == 200 and ans["region"]["home"] == 101, ans
    assert read_page(m1, key, ans["region"]["sections"][1], 7) == PATTERN


def test_errors(orch, memnodes, computes, hb_factory, key):
    c1, c2, m1, m2 = two_nodes(orch, memnodes, computes, hb_factory, pool2="128M")
    region_with_users(orch, "strict")
    cases = [({"to": 999}, 404, "not_found"), ({"to": 10}, 400, "bad_request"),
             ({"to": 101}, 409, "same_node"), ({"to": 102}, 409, "capacity"),
             ({}, 400, "bad_request"), ({"to": "x"}, 400, "bad_request"),
             ({"to": 102, "x": 1}, 400, None)]
    for body, status, code in cases:
        st, ans = orch.call("POST", "/v1/regions/r1/migrate", body)
        assert st == status and (code is None or err(ans) == code), (body, st, ans)
    st, ans = orch.call("POST", "/v1/regions/nope/migrate", {"to": 102})
    assert st == 404, ans
    assert orch.call("POST", "/v1/regions", {"name": "rel", "size_bytes": SEC,
                                             "mode": "release", "home": 101})[0] == 201
    st, ans = orch.call("POST", "/v1/regions/rel/migrate", {"to": 102})
    assert st == 200 and ans["region"]["home"] == 102, ans     # release regions move too
    assert orch.call("DELETE", "/v1/regions/rel")[0] == 204
    db = sqlite3.connect(orch.db)
    db.execute("UPDATE regions SET state = 'locking' WHERE name = 'r1'")
    db.commit()
    st, ans = orch.call("POST", "/v1/regions/r1/migrate", {"to": 102})
    assert st == 409 and err(ans) == "busy", ans
    db.execute("UPDATE regions SET state = 'ready' WHERE name = 'r1'")
    db.commit()
    db.close()
    assert move_calls() == []
    assert orch.call("GET", "/v1/regions/r1")[1]["state"] == "ready"
    assert owned(m2, key) == set()


def test_switch_refused_goes_back(orch, memnodes, computes, hb_factory, key):
    c1, c2, m1, m2 = two_nodes(orch, memnodes, computes, hb_factory)
    r = region_with_users(orch, "strict")
    c2.fail_region["switch"] = (503, "memnode_unreachable")
    fr.LOG.clear()
    st, ans = orch.call("POST", "/v1/regions/r1/migrate", {"to": 102})
    assert st == 503 and err(ans) == "memnode_unreachable", ans
    assert move_calls() == [(10, "quiesce", "a"), (11, "quiesce", "b"),
                            (10, "switch", "a"), (11, "switch", "b"),
                            (10, "switch", "a"), (10, "resume", "a"), (11, "resume", "b")]
    back = fr.calls("switch", "r1")[2][4]
    assert [decode_grant(s["grant"])[0] for s in back["sections"]] == [101, 101]
    reg = orch.call("GET", "/v1/regions/r1")[1]
    assert reg["state"] == "ready" and reg["sections"] == r["sections"]
    assert c1.vms["a"]["regions"]["r1"]["parked"] is False
    assert owned(m2, key) == set()
    assert "region_migration_failed" in [e["kind"] for e in events(orch)]
    c2.fail_region.clear()
    assert orch.call("POST", "/v1/regions/r1/migrate", {"to": 102})[0] == 200


def test_agent_dead_at_quiesce(orch, memnodes, computes, hb_factory, key):
    c1, c2, m1, m2 = two_nodes(orch, memnodes, computes, hb_factory)
    r = region_with_users(orch)
    c2.dead = True
    st, ans = orch.call("POST", "/v1/regions/r1/migrate", {"to": 102})
    assert st == 503 and err(ans) == "node_unreachable", ans
    reg = orch.call("GET", "/v1/regions/r1")[1]
    assert reg["state"] == "ready" and reg["sections"] == r["sections"]
    assert c1.vms["a"]["regions"]["r1"]["parked"] is False      # a resumed
    assert owned(m2, key) == set()
    c2.dead = False


def test_slot_memory_migration_keeps_its_region(orch, memnodes, computes, hb_factory, key):
    c1, c2, m1, m2 = two_nodes(orch, memnodes, computes, hb_factory)
    st, s = orch.call("POST", "/v1/slots", {"name": "c", "memory": "128M",
                                            "remote_percent": 100})
    assert st == 201, s
    r = region_with_users(orch)
    assert post(orch, "r1", "attach", "c")[0] == 200
    src = s["sections"][0]["memnode"]
    st, ans = orch.call("POST", "/v1/slots/c/migrate-memory", {"from": src, "to": 203 - src})
    assert st == 200, ans
    assert orch.call("GET", "/v1/regions/r1")[1]["sections"] == r["sections"]


def test_sweep_leaves_a_moving_region_alone(orch_factory, memnodes, computes, hb_factory,
                                            key):
    """The target sections of a move are not recorded until every user
    switched: the orphan sweep must not free them meanwhile."""
    o = orch_factory(extra=["--orphan-sweep", "1"])
    c1, c2, m = start(o, memnodes, computes, hb_factory, slots=())
    st, r = o.call("POST", "/v1/regions", {"name": "r1", "size_bytes": SEC})
    assert st == 201
    owner = {ow for s, g, ow in real_allocated(m, key)}.pop()
    db = sqlite3.connect(o.db)
    db.execute("UPDATE regions SET state = 'moving' WHERE name = 'r1'")
    db.commit()
    with Conn(m.addr) as x:
        x.login(key, 9999)
        target = x.alloc(owner=owner)               # allocated by the move, not recorded
    time.sleep(3)
    assert target in {(s, g) for s, g, _ in real_allocated(m, key)}
    db.execute("UPDATE regions SET state = 'ready' WHERE name = 'r1'")
    db.commit()
    db.close()
    assert wait_for(lambda: target not in {(s, g) for s, g, _ in real_allocated(m, key)}, 15)


def test_no_users_cli_and_restart(orch, memnodes, computes, hb_factory, key):
    """A region nobody maps moves (nothing paused); the CLI's line; a region
    an orchestrator restart caught `moving` is settled at start: every user
    back on the recorded sections (quiesced again if it was not), resumed."""
    c1, c2, m1, m2 = two_nodes(orch, memnodes, computes, hb_factory)
    assert orch.call("POST", "/v1/regions", {"name": "lone", "size_bytes": SEC,
                                             "home": 101})[0] == 201
    env = cli_env(DISAGG_TOKEN=orch.auth.token)
    p = disagg("--url", f"http://{orch.addr}", "region", "migrate", "lone", "--to", "102",
               env=env, check_rc=0)
    assert re.fullmatch(r"region lone moved from memory node 101 to 102: 1 section, "
                        r"\S+ copied in \d+ ms; its 0 users paused \d+ ms\n", p.stdout), p.stdout
    p = disagg("--url", f"http://{orch.addr}", "region", "migrate", "lone", "--to", "102",
               env=env, check_rc=1)
    assert "(409 same_node)" in p.stderr, p.stderr
    assert move_calls() == []

    r = region_with_users(orch, "strict")
    c1.vms["a"]["regions"]["r1"]["parked"] = True       # a quiesced, b restarted since
    db = sqlite3.connect(orch.db)
    db.execute("UPDATE regions SET state = 'moving' WHERE name = 'r1'")
    db.commit()
    db.close()
    orch.restart()
    reg = orch.call("GET", "/v1/regions/r1")[1]
    assert reg["state"] == "ready" and reg["sections"] == r["sections"], reg
    assert move_calls() == [(10, "switch", "a"), (10, "resume", "a"),
                            (11, "switch", "b"), (11, "quiesce", "b"), (11, "switch", "b"),
                            (11, "resume", "b")]
    assert not c1.vms["a"]["regions"]["r1"]["parked"]
    assert not c2.vms["b"]["regions"]["r1"]["parked"]
    assert "region_recovered" in [e["kind"] for e in events(orch)]
