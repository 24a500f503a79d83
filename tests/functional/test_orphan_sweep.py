# SPDX-License-Identifier: MIT
"""The orchestrator's orphan sweep (src/orchestrator/sweep.c) against real
memory nodes: a section held for a slot that does not exist, or for a
settled slot that does not use it, is freed; a section of another owner
(0) and the sections a running slot uses are left alone; --orphan-sweep 0
turns it off. Before the sweep such a section (a free that
failed while its memory node was down) stayed allocated for ever."""
import time

from dproto import Conn, wait_for
from test_orchestrator import (computes, err, hb_factory, orch_factory,  # noqa: F401
                               real_allocated)


def held(m, key):
    return {(s, g) for s, g, _ in real_allocated(m, key)}


def test_orphans_are_freed_and_nothing_else(orch_factory, memnodes, computes, key,
                                           hb_factory):
    orch = orch_factory(extra=["--orphan-sweep", "1"])
    hb = hb_factory(orch)
    c = computes(10)
    hb.register(c.registration())
    m = memnodes.start(node_id=101, pool="1G", extra=["--orchestrator", orch.addr])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 2, 10)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})
    assert st == 201, s
    used = {(x["section"], x["generation"]) for x in s["sections"]}
    assert held(m, key) == used
    owner = {o for _, _, o in real_allocated(m, key)}.pop()   # the slot's id

    with Conn(m.addr) as x:
        x.login(key, 9999)
        ghost = x.alloc(owner=424242)          # a slot that does not exist
        stray = x.alloc(owner=owner)           # the running slot's, but not in it
        foreign = x.alloc(owner=0)             # not allocated for a slot
    assert held(m, key) == used | {ghost, stray, foreign}
    assert wait_for(lambda: held(m, key) == used | {foreign}, 15), held(m, key)
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    assert kinds.count("section_orphan_freed") == 2, kinds
    # The running slot still has its memory, and delete frees it as usual.
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert wait_for(lambda: held(m, key) == {foreign}, 10), held(m, key)
    with Conn(m.addr) as x:
        x.login(key, 9999)
        x.free(*foreign)


def test_sweep_off(orch_factory, memnodes, key, hb_factory):
    orch = orch_factory(extra=["--orphan-sweep", "0"])
    m = memnodes.start(node_id=101, pool="512M", extra=["--orchestrator", orch.addr])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 1, 10)
    with Conn(m.addr) as x:
        x.login(key, 9999)
        ghost = x.alloc(owner=424242)
    time.sleep(2.5)
    assert held(m, key) == {ghost}
