# SPDX-License-Identifier: MIT
"""disagg-orchestrator against fake compute nodes and fake or real memory nodes.

Covers every endpoint of docs/api.md with good and bad input, rollback
(nothing left allocated on the memory nodes after a failed create),
placement (policies, labels, drain, vCPU capacity, a memory node that
stops heartbeating), restart safety, X-Request-Id idempotency, the
registrar of disagg-memnode, and a small run of the scale benchmark.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import authkit
from conftest import ROOT, Daemon, find_prog
import progs  # noqa: E402
from dproto import GRANT, ST, Conn, grant_files, grant_signed_by, wait_for
from fakes import Api, FakeCompute, FakeMemnodes, Heartbeats

MiB = 1 << 20
SEC = 128 * MiB


class Orch:
    def __init__(self, tmp_path, keyfile, timeout=15, extra=()):
        self.tmp = tmp_path
        self.keyfile = keyfile
        self.timeout = timeout
        self.extra = list(extra)
        self.db = str(tmp_path / "orch.db")
        self.auth = authkit.shared(tmp_path)   # people token, node secret
        self.n = 0
        self.d = None
        self.addr = None
        self.start()

    def start(self):
        self.n += 1
        # A restart keeps the address: daemons registered with it come back.
        argv = [find_prog("disagg-orchestrator"), "--http", self.addr or "127.0.0.1:0",
                "--db", self.db,
                "--key", self.keyfile, "--grant-key", grant_files(self.keyfile)[0],
                "--node-timeout", str(self.timeout), *self.auth.orch_args(), *self.extra]
        if "--fabric-plaintext" not in self.extra:
            argv += progs.fabric_args(1, "orchestrator")
        self.d = Daemon(argv, str(self.tmp / f"orch-{self.n}.log"),
                        r"disagg-orchestrator listening on (\S+)")
        self.addr = self.d.addr
        self.api = Api(self.addr, token=self.auth.token)

    def stop(self):
        self.api.close()
        rc = self.d.stop()
        assert rc == 0, self.d.stderr()[-3000:]

    def restart(self):
        self.stop()
        self.start()

    def call(self, method, path, body=None, headers=None, **kw):
        """A people call; registrations and heartbeats go as the node they name."""
        m = re.fullmatch(r"/v1/nodes/(?:register|(\d+)/heartbeat)", path)
        if m and not (headers and "Authorization" in headers):
            nid = int(m.group(1)) if m.group(1) else (
                body.get("node_id") if isinstance(body, dict) else None)
            nid = nid if isinstance(nid, int) and nid > 0 else 1
            headers = {**(headers or {}), **self.auth.headers(self.auth.node_token(nid))}
        return self.api.call(method, path, body, headers, **kw)


@pytest.fixture
def orch_factory(tmp_path, keyfile):
    made = []

    def make(**kw):
        o = Orch(tmp_path, keyfile, **kw)
        made.append(o)
        return o
    yield make
    for o in made:
        if o.d.alive() or not o.d.proc.stdout.closed:
            o.stop()


@pytest.fixture
def orch(orch_factory):
    return orch_factory()


@pytest.fixture
def fakemem(key):
    m = FakeMemnodes(key, fabric=progs.CURRENT)
    yield m
    m.close()


@pytest.fixture
def computes(tmp_path):
    made = []

    def make(node_id, vcpus=8):
        # Orchestrator-only, like a real agent with --node-credential.
        c = FakeCompute(node_id, vcpus, auth=authkit.shared(tmp_path))
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()
    # Every answer of a fake had the real agent's shape.
    assert [e for c in made for e in c.schema_errors] == []


@pytest.fixture
def hb_factory():
    made = []

    def make(orch, interval=None):
        h = Heartbeats(orch.addr, interval, auth=orch.auth)
        made.append(h)
        return h
    yield make
    for h in made:
        h.stop()


def cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=1, vcpus=8,
            mem_labels=None, comp_labels=None, heartbeat=False, interval=None):
    hb = hb_factory(orch, interval)
    comps = []
    for i in range(ncomp):
        c = computes(10 + i, vcpus)
        hb.register(c.registration(labels=(comp_labels or {}).get(i)))
        comps.append(c)
    for i in range(nmem):
        nid = 101 + i
        n = fakemem.add(nid, nsections=nsec)
        hb.register(fakemem.registration(nid, labels=(mem_labels or {}).get(i)),
                    capacity=lambda n=n: {"sections_free": n.free})
    if heartbeat:
        hb.start()
    return hb, comps


def err(ans):
    return ans["error"]["code"]


def real_allocated(memnode, key):
    with Conn(memnode.addr) as c:
        c.login(key, 9999)
        return c.list()


# ---------------------------------------------------------------------------

def test_healthz_metrics_and_request_id(orch):
    st, h, r = orch.call("GET", "/healthz", raw=True)
    assert st == 200 and json.loads(h)["status"] == "ok"
    assert r.getheader("X-Request-Id")
    st, h, r = orch.call("GET", "/healthz", headers={"X-Request-Id": "abc-1"}, raw=True)
    assert r.getheader("X-Request-Id") == "abc-1"
    st, text = orch.call("GET", "/metrics")
    assert st == 200
    for m in ("disagg_orch_requests_total", "disagg_orch_request_seconds_bucket",
              "disagg_orch_nodes{", "disagg_orch_slots{", "disagg_orch_sections_allocated"):
        assert m in text, m
    assert orch.call("GET", "/nope")[0] == 404
    assert orch.call("DELETE", "/healthz")[0] == 405
    assert orch.call("PUT", "/v1/slots")[0] == 405


def test_register_heartbeat_nodes(orch, fakemem, computes):
    n = fakemem.add(101, nsections=4)
    reg = fakemem.registration(101, labels={"rack": "r1"}, name="mem-a")
    st, ans = orch.call("POST", "/v1/nodes/register", reg)
    assert st == 200 and ans["node_id"] == 101 and ans["heartbeat_interval_s"] >= 1
    c = computes(10)
    assert orch.call("POST", "/v1/nodes/register", c.registration())[0] == 200

    st, ans = orch.call("GET", "/v1/nodes")
    assert st == 200 and [x["node_id"] for x in ans["nodes"]] == [10, 101]
    m = ans["nodes"][1]
    assert m["kind"] == "memnode" and m["state"] == "up" and m["name"] == "mem-a"
    assert m["labels"] == {"rack": "r1"} and m["addr"] == n.addr
    assert m["sections_total"] == 4 and m["sections_free"] == 4 and m["slots"] == 0
    assert m["last_heartbeat"].endswith("Z")
    st, one = orch.call("GET", "/v1/nodes/101")
    assert st == 200 and one["sections"] == []
    st, one = orch.call("GET", "/v1/nodes/10")
    assert st == 200 and one["slots"] == [] and one["vcpus"] == 8

    st, ans = orch.call("POST", "/v1/nodes/101/heartbeat", {"sections_free": 3})
    assert st == 200
    assert orch.call("GET", "/v1/nodes/101")[1]["sections_free"] == 3
    assert orch.call("POST", "/v1/nodes/101/heartbeat")[0] == 200   # empty body
    # Errors.
    st, ans = orch.call("POST", "/v1/nodes/999/heartbeat", {})
    assert st == 404 and err(ans) == "not_found"
    assert err(orch.call("POST", "/v1/nodes/101/heartbeat", {"bogus": 1})[1]) == "unknown_field"
    assert err(orch.call("POST", "/v1/nodes/101/heartbeat", "{")[1]) == "bad_json"
    assert orch.call("GET", "/v1/nodes/999")[0] == 404
    assert orch.call("GET", "/v1/nodes/abc")[0] == 404
    st, ans = orch.call("POST", "/v1/nodes/register", {**reg, "kind": "compute", "vcpus": 2,
                                                       "http": "127.0.0.1:1"})
    assert st == 409 and err(ans) == "conflict"
    st, ans = orch.call("POST", "/v1/nodes/register", {**reg, "extra": True})
    assert st == 400 and err(ans) == "unknown_field"
    st, ans = orch.call("POST", "/v1/nodes/register", "not json")
    assert st == 400 and err(ans) == "bad_json"
    st, ans = orch.call("POST", "/v1/nodes/register", [1, 2])
    assert st == 400 and err(ans) == "bad_json"
    st, ans = orch.call("POST", "/v1/nodes/register", {"node_id": 5, "kind": "toaster"})
    assert st == 400 and err(ans) == "bad_request"
    st, ans = orch.call("POST", "/v1/nodes/register", {"node_id": "5", "kind": "memnode"})
    assert st == 400 and err(ans) == "bad_request"
    st, ans = orch.call("POST", "/v1/nodes/register", {"node_id": 1, "kind": "compute",
                                                       "http": "x:1", "vcpus": 1})
    assert st == 409     # the orchestrator's own --node-id

    # Drain and undrain.
    st, ans = orch.call("POST", "/v1/nodes/101/drain")
    assert st == 200 and ans["state"] == "drained"
    assert orch.call("POST", "/v1/nodes/101/undrain")[1]["state"] == "up"
    assert orch.call("POST", "/v1/nodes/999/drain")[0] == 404
    assert orch.call("GET", "/v1/nodes/101/drain")[0] == 405
    st, ev = orch.call("GET", "/v1/events?since=0&limit=100")
    kinds = [e["kind"] for e in ev["events"]]
    assert "node_registered" in kinds and "node_drained" in kinds
    assert all(e["seq"] > 0 and e["time"].endswith("Z") for e in ev["events"])
    st, ev2 = orch.call("GET", f"/v1/events?since={ev['events'][0]['seq']}&limit=1")
    assert st == 200 and len(ev2["events"]) == 1 and ev2["events"][0]["seq"] > ev["events"][0]["seq"]
    assert orch.call("GET", "/v1/events?limit=-1")[0] == 400


def decode_grant(hexstr):
    b = bytes.fromhex(hexstr)
    return GRANT.unpack(b)


def test_slot_lifecycle(orch, fakemem, computes, hb_factory, key):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=3, nsec=8)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 2, "memory": "512M",
                                            "remote_percent": 50, "cache": "128M"})
    assert st == 201, s
    assert s["state"] == "running" and s["memory"] == 512 * MiB and s["compute"] == 10
    assert s["cache"] == 128 * MiB and s["policy"] == "spread" and s["vcpus"] == 2
    kinds = [x["kind"] for x in s["sections"]]
    assert kinds == ["local", "local", "remote", "remote"]
    remote = [x for x in s["sections"] if x["kind"] == "remote"]
    assert len({x["memnode"] for x in remote}) == 2          # spread
    assert fakemem.allocated() == 2

    # What the compute node was asked.
    (m, path, body), = [x for x in c.calls if x[0] == "POST"]
    assert path == "/v1/vms" and body["name"] == "web" and body["vcpus"] == 2
    assert body["cache_bytes"] == 128 * MiB and body["hotplug"] == "dimm"
    assert body["max_sections"] >= 8
    assert [x["kind"] for x in body["sections"]] == kinds
    for sec, rec in zip(body["sections"][2:], remote):
        g = decode_grant(sec["grant"])
        assert g[0] == rec["memnode"] and g[1] == 10             # memnode, holder
        assert g[2] == rec["section"] and g[3] == rec["generation"] and g[4] == 3
        assert sec["addr"] == fakemem.nodes[rec["memnode"]].addr

    assert orch.call("GET", "/v1/slots/web")[1]["sections"] == s["sections"]
    st, ls = orch.call("GET", "/v1/slots")
    assert st == 200 and [x["name"] for x in ls["slots"]] == ["web"]
    st, secs = orch.call("GET", "/v1/sections?slot=web")
    assert st == 200 and len(secs["sections"]) == 2
    assert all(x["slot"] == "web" for x in secs["sections"])
    mn = remote[0]["memnode"]
    st, secs = orch.call("GET", f"/v1/sections?node={mn}")
    assert [x["memnode"] for x in secs["sections"]] == [mn]
    assert orch.call("GET", "/v1/sections?slot=nope")[1] == {"sections": []}
    assert orch.call("GET", "/v1/sections?node=x")[0] == 400
    assert orch.call("GET", f"/v1/nodes/{mn}")[1]["slots"] == 1
    assert orch.call("GET", "/v1/nodes/10")[1]["slots"] == ["web"]
    st, text = orch.call("GET", "/v1/slots/web/console")
    assert st == 200 and "console of web" in text

    # Name taken.
    st, ans = orch.call("POST", "/v1/slots", {"name": "web", "memory": "128M"})
    assert st == 409 and err(ans) == "exists"

    # Grow by two sections (50% remote: one local, one remote), then shrink.
    st, s2 = orch.call("POST", "/v1/slots/web/resize", {"memory": "768M"})
    assert st == 200, s2
    assert s2["memory"] == 768 * MiB and len(s2["sections"]) == 6
    assert sum(x["kind"] == "remote" for x in s2["sections"]) == 3
    assert fakemem.allocated() == 3
    hot = [x for x in c.calls if x[0] == "POST" and x[1] == "/v1/vms/web/sections"]
    assert len(hot) == 2
    st, s3 = orch.call("POST", "/v1/slots/web/resize", {"memory": 512 * MiB})
    assert st == 200 and s3["sections"] == s["sections"]
    assert fakemem.allocated() == 2
    dels = [x[1] for x in c.calls if x[0] == "DELETE"]
    assert dels == ["/v1/vms/web/sections/1", "/v1/vms/web/sections/0"]
    st, ans = orch.call("POST", "/v1/slots/web/resize", {"memory": "256M"})
    assert st == 409 and err(ans) == "conflict"      # below the boot memory
    st, ans = orch.call("POST", "/v1/slots/web/resize", {"memory": "100M"})
    assert st == 400 and err(ans) == "bad_size"
    st, ans = orch.call("POST", "/v1/slots/web/resize", {"memory": "768M", "x": 1})
    assert st == 400 and err(ans) == "unknown_field"

    # A heartbeat that already counts the sections as free (it came between
    # the memory node's free and the orchestrator's give-back): the
    # give-back never counts more free sections than the node has.
    assert any(x["memnode"] == 101 for x in s3["sections"] if x["kind"] == "remote"), s3
    assert orch.call("POST", "/v1/nodes/101/heartbeat", {"sections_free": 8})[0] == 200
    st, _ = orch.call("DELETE", "/v1/slots/web")
    assert st == 204
    assert fakemem.allocated() == 0 and c.vms == {}
    assert orch.call("GET", "/v1/slots/web")[0] == 404
    assert orch.call("GET", "/v1/nodes/101")[1]["sections_free"] == 8
    st, text = orch.call("GET", "/metrics")
    assert 'disagg_orch_slots{state="running"} 0' in text
    assert "disagg_orch_sections_allocated 0" in text


@pytest.mark.parametrize("body,code", [
    ("{", "bad_json"),
    ("[]", "bad_json"),
    ({"name": "a", "memory": "512M", "color": "red"}, "unknown_field"),
    ({"name": "a", "memory": "100M"}, "bad_size"),
    ({"name": "a", "memory": "0"}, "bad_size"),
    ({"name": "a", "memory": "-128M"}, "bad_size"),
    ({"name": "a", "memory": "1Q"}, "bad_size"),
    ({"name": "a"}, "bad_request"),
    ({"memory": "128M"}, "bad_request"),
    ({"name": "a/b", "memory": "128M"}, "bad_request"),
    ({"name": "a", "memory": "128M", "vcpus": 0}, "bad_request"),
    ({"name": "a", "memory": "128M", "vcpus": "2"}, "bad_request"),
    ({"name": "a", "memory": "128M", "remote_percent": 101}, "bad_request"),
    ({"name": "a", "memory": "128M", "policy": "random"}, "bad_request"),
    ({"name": "a", "memory": "128M", "hotplug": "acpi"}, "bad_request"),
    ({"name": "a", "memory": "128M", "constraints": {"disk": {}}}, "unknown_field"),
    ({"name": "a", "memory": "128M", "constraints": {"compute": {"rack": 1}}}, "bad_request"),
])
def test_slot_bad_input(orch, body, code):
    st, ans = orch.call("POST", "/v1/slots", body)
    assert st == 400 and err(ans) == code, ans


def test_unknown_slot(orch):
    for m, p, b in [("GET", "/v1/slots/nope", None), ("DELETE", "/v1/slots/nope", None),
                    ("POST", "/v1/slots/nope/resize", {"memory": "256M"}),
                    ("GET", "/v1/slots/nope/console", None)]:
        st, ans = orch.call(m, p, b)
        assert st == 404 and err(ans) == "not_found", (m, p, ans)
    assert orch.call("GET", "/v1/slots/nope/other")[0] == 404


def test_capacity_real_memnodes_nothing_left(orch, memnodes, computes, key, hb_factory):
    """More memory than the cluster has: 409 and no section left on the memnodes."""
    hb = hb_factory(orch)
    c = computes(10)
    hb.register(c.registration())
    m1 = memnodes.start(node_id=101, pool="512M", extra=["--orchestrator", orch.addr,
                                                         "--label", "rack=r1"])
    m2 = memnodes.start(node_id=102, pool="512M", extra=["--orchestrator",
                                                         "http://" + orch.addr + "/"])
    assert wait_for(lambda: len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 3, 10)
    n = orch.call("GET", "/v1/nodes/101")[1]
    assert n["labels"] == {"rack": "r1"} and n["sections_total"] == 4 and n["addr"] == m1.addr

    st, ans = orch.call("POST", "/v1/slots", {"name": "big", "memory": "1280M"})
    assert st == 409 and err(ans) == "capacity", ans
    assert real_allocated(m1, key) == [] and real_allocated(m2, key) == []

    # The orchestrator believes 8 sections are free, but someone took 3 on m2
    # behind its back: the memory node says NOSPC and everything is undone.
    with Conn(m2.addr) as x:
        x.login(key, 9999)
        taken = [x.alloc(owner=0) for _ in range(3)]   # not a slot's: never swept
        st, ans = orch.call("POST", "/v1/slots", {"name": "all", "memory": "1G"})
        assert st == 409 and err(ans) == "capacity", ans
        assert real_allocated(m1, key) == []
        assert sorted((s, g) for s, g, _ in real_allocated(m2, key)) == sorted(taken)
        for s, g in taken:
            x.free(s, g)
    assert orch.call("GET", "/v1/slots/all")[0] == 404
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events")[1]["events"]]
    assert "slot_create_failed" in kinds

    # A slot that fits goes on the real memory nodes; delete frees it there.
    st, s = orch.call("POST", "/v1/slots", {"name": "ok", "memory": "512M"})
    assert st == 201, s
    owners = {o for _, _, o in real_allocated(m1, key) + real_allocated(m2, key)}
    assert len(real_allocated(m1, key)) + len(real_allocated(m2, key)) == 4
    assert len(owners) == 1      # owner = the slot's id
    assert orch.call("DELETE", "/v1/slots/ok")[0] == 204
    assert real_allocated(m1, key) == [] and real_allocated(m2, key) == []


def test_compute_failure_rolls_back(orch, fakemem, computes, hb_factory):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    c.fail_create = (500, "internal")
    st, ans = orch.call("POST", "/v1/slots", {"name": "a", "memory": "512M"})
    assert st == 503 and err(ans) == "node_unreachable", ans
    assert fakemem.allocated() == 0
    assert orch.call("GET", "/v1/slots/a")[0] == 404
    assert [x[0] for x in c.calls] == ["POST", "DELETE"]    # cleanup attempt
    c.fail_create = (409, "capacity")
    st, ans = orch.call("POST", "/v1/slots", {"name": "a", "memory": "512M"})
    assert st == 409 and err(ans) == "capacity"
    assert fakemem.allocated() == 0
    c.fail_create = None
    c.close()                                            # compute node gone
    st, ans = orch.call("POST", "/v1/slots", {"name": "a", "memory": "512M"})
    assert st == 503 and err(ans) == "node_unreachable"
    assert fakemem.allocated() == 0
    assert orch.call("GET", "/v1/nodes/101")[1]["sections_free"] == 4


def test_dead_memnode_is_skipped(orch, fakemem, computes, hb_factory):
    """A memory node that does not answer: its sections go elsewhere."""
    hb, _ = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    fakemem.kill(101)
    time.sleep(0.2)
    st, s = orch.call("POST", "/v1/slots", {"name": "a", "memory": "512M"})
    assert st == 201, s
    assert {x["memnode"] for x in s["sections"]} == {102}
    st, ans = orch.call("POST", "/v1/slots", {"name": "b", "memory": "128M"})
    assert st == 409 and err(ans) == "capacity"
    assert fakemem.allocated() == 4


def test_placement_policies_labels_drain_vcpus(orch, fakemem, computes, hb_factory):
    hb, comps = cluster(orch, fakemem, computes, hb_factory, nmem=3, nsec=4, ncomp=2,
                        vcpus=2, mem_labels={0: {"rack": "r1"}, 1: {"rack": "r2"},
                                             2: {"rack": "r2"}},
                        comp_labels={1: {"gpu": "yes"}})
    # spread: one section per memory node.
    st, s = orch.call("POST", "/v1/slots", {"name": "s", "memory": "384M"})
    assert st == 201 and sorted(x["memnode"] for x in s["sections"]) == [101, 102, 103]
    # pack: everything on one node (the fullest that fits: all have 3 free, 101 wins the tie).
    st, p = orch.call("POST", "/v1/slots", {"name": "p", "memory": "384M", "policy": "pack"})
    assert st == 201 and len({x["memnode"] for x in p["sections"]}) == 1
    # labels.
    st, l = orch.call("POST", "/v1/slots", {"name": "l", "memory": "128M", "vcpus": 1,
                                            "constraints": {"memory": {"rack": "r2"},
                                                            "compute": {"gpu": "yes"}}})
    assert st == 201, l
    assert l["compute"] == 11 and l["sections"][0]["memnode"] in (102, 103)
    st, ans = orch.call("POST", "/v1/slots", {"name": "x", "memory": "128M",
                                              "constraints": {"memory": {"rack": "r3"}}})
    assert st == 409 and err(ans) == "capacity"
    st, ans = orch.call("POST", "/v1/slots", {"name": "x", "memory": "128M",
                                              "constraints": {"compute": {"gpu": "no"}}})
    assert st == 409 and err(ans) == "capacity"
    # vCPUs: compute 10 has s and p (1 each, full), 11 has l (1 of 2).
    st, ans = orch.call("POST", "/v1/slots", {"name": "v", "memory": "128M", "vcpus": 2})
    assert st == 409 and err(ans) == "capacity" and "vCPU" in ans["error"]["message"]
    # drained memory nodes take nothing new.
    for n in (101, 102):
        orch.call("POST", f"/v1/nodes/{n}/drain")
    st, d = orch.call("POST", "/v1/slots", {"name": "d", "memory": "128M"})
    assert st == 201 and d["sections"][0]["memnode"] == 103 and d["compute"] == 11
    for n in ("s", "p", "l", "d"):
        assert orch.call("DELETE", f"/v1/slots/{n}")[0] == 204
    assert fakemem.allocated() == 0


def test_memnode_down_and_back(orch_factory, fakemem, computes, hb_factory):
    orch = orch_factory(timeout=2)
    hb, _ = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4, heartbeat=True,
                    interval=0.3)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})
    assert st == 201 and {x["memnode"] for x in s["sections"]} == {101, 102}
    hb.pause(102)
    assert wait_for(lambda: orch.call("GET", "/v1/nodes/102")[1]["state"] == "down", 8)
    assert orch.call("GET", "/v1/nodes/101")[1]["state"] == "up"
    ev = [e for e in orch.call("GET", "/v1/events")[1]["events"] if e["kind"] == "node_down"]
    assert len(ev) == 1 and ev[0]["node"] == 102 and "web" in ev[0]["message"]
    st, s2 = orch.call("POST", "/v1/slots", {"name": "new", "memory": "256M"})
    assert st == 201 and {x["memnode"] for x in s2["sections"]} == {101}
    st, text = orch.call("GET", "/metrics")
    assert 'disagg_orch_nodes{kind="memnode",state="down"} 1' in text
    hb.resume(102)
    assert wait_for(lambda: orch.call("GET", "/v1/nodes/102")[1]["state"] == "up", 5)
    assert "node_up" in [e["kind"] for e in orch.call("GET", "/v1/events")[1]["events"]]


def test_compute_down_marks_slots_lost(orch_factory, fakemem, computes, hb_factory):
    orch = orch_factory(timeout=2)
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=1, nsec=4, heartbeat=True,
                       interval=0.3)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "128M"})[0] == 201
    hb.pause(10)
    assert wait_for(lambda: orch.call("GET", "/v1/slots/web")[1]["state"] == "lost", 8)
    assert "down" in orch.call("GET", "/v1/slots/web")[1]["reason"]
    hb.resume(10)      # it comes back with the VM still running: reconciled
    assert wait_for(lambda: orch.call("GET", "/v1/slots/web")[1]["state"] == "running", 8)
    assert not [x for x in c.calls if x[0] == "DELETE"]


def test_restart_keeps_state(orch, fakemem, computes, hb_factory):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "512M",
                                            "remote_percent": 50})
    assert st == 201
    assert orch.call("POST", "/v1/slots", {"name": "gone", "memory": "128M"})[0] == 201
    ncalls = len(c.calls)
    orch.restart()
    st, s2 = orch.call("GET", "/v1/slots/web")
    assert st == 200 and s2["state"] == "running" and s2["sections"] == s["sections"]
    assert len(orch.call("GET", "/v1/nodes")[1]["nodes"]) == 3
    assert fakemem.allocated() == 3
    # Reconciliation asked the compute node, and stopped nothing.
    assert wait_for(lambda: any(x[:2] == ("GET", "/v1/vms") for x in c.calls[ncalls:]), 5)
    assert not [x for x in c.calls[ncalls:] if x[0] != "GET"]
    # A VM that vanished while the orchestrator was away is lost after a restart.
    with c.lock:
        del c.vms["gone"]
    orch.restart()
    assert wait_for(lambda: orch.call("GET", "/v1/slots/gone")[1]["state"] == "lost", 5)
    assert orch.call("GET", "/v1/slots/web")[1]["state"] == "running"
    assert orch.call("DELETE", "/v1/slots/gone")[0] == 204
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.allocated() == 0


def test_idempotent_create(orch, fakemem, computes, hb_factory):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    h = {"X-Request-Id": "create-web-1"}
    st1, a1, r1 = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"},
                            headers=h, raw=True)
    st2, a2, r2 = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"},
                            headers=h, raw=True)
    assert st1 == st2 == 201 and a1 == a2
    assert r1.getheader("X-Request-Id") == r2.getheader("X-Request-Id") == "create-web-1"
    assert len([x for x in c.calls if x[0] == "POST"]) == 1
    assert fakemem.allocated() == 2
    # Without the header, a repeat is a second request: 409 exists.
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 409
    # The same id for another path is refused.
    st, ans = orch.call("DELETE", "/v1/slots/web", headers=h)
    assert st == 409 and err(ans) == "conflict"
    # Idempotent delete; and the record survives a restart.
    hd = {"X-Request-Id": "delete-web-1"}
    assert orch.call("DELETE", "/v1/slots/web", headers=hd)[0] == 204
    orch.restart()
    assert orch.call("DELETE", "/v1/slots/web", headers=hd)[0] == 204
    st, a3 = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"}, headers=h)
    assert st == 201 and a3 == json.loads(a1)
    assert orch.call("GET", "/v1/slots/web")[0] == 404
    assert orch.call("GET", "/", headers={"X-Request-Id": "x" * 200})[0] == 400


def test_busy_slot(orch, fakemem, computes, hb_factory):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    c.delay = 1.0
    out = {}

    def grow():
        out["r"] = Api(orch.addr, token=orch.auth.token).call("POST", "/v1/slots/web/resize", {"memory": "384M"})
    t = threading.Thread(target=grow)
    t.start()
    time.sleep(0.4)
    st, ans = orch.call("DELETE", "/v1/slots/web")
    assert st == 409 and err(ans) == "busy"
    assert orch.call("GET", "/v1/slots/web")[1]["state"] == "resizing"
    t.join()
    c.delay = 0
    assert out["r"][0] == 200 and out["r"][1]["memory"] == 384 * MiB
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.allocated() == 0


def test_concurrent_creates_never_overbook(orch, fakemem, computes, hb_factory):
    """Eight clients race for 12 sections and 8 vCPUs: no overbooking, nothing leaks."""
    hb, comps = cluster(orch, fakemem, computes, hb_factory, nmem=3, nsec=4, ncomp=2,
                        vcpus=4)
    results, failures = [], []

    def client(k):
        try:
            run_client(k)
        except Exception as e:          # noqa: BLE001 - reported below
            failures.append(repr(e))

    def run_client(k):
        api = Api(orch.addr, token=orch.auth.token)
        for i in range(6):
            name = f"c{k}-{i}"
            st, ans = api.call("POST", "/v1/slots", {"name": name, "memory": "256M"})
            results.append(st)
            if st == 201:
                assert fakemem.allocated() <= 12
                if i % 2:
                    assert api.call("DELETE", f"/v1/slots/{name}")[0] == 204
            else:
                assert st == 409 and err(ans) == "capacity", ans
        api.close()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert 201 in results and 409 in results
    slots = orch.call("GET", "/v1/slots")[1]["slots"]
    assert all(s["state"] == "running" for s in slots)
    assert len(slots) <= 6 and fakemem.allocated() == 2 * len(slots)
    per_compute = {}
    for s in slots:
        per_compute[s["compute"]] = per_compute.get(s["compute"], 0) + s["vcpus"]
    assert all(v <= 4 for v in per_compute.values())
    assert sum(len(c.vms) for c in comps) == len(slots)
    for s in slots:
        assert orch.call("DELETE", f"/v1/slots/{s['name']}")[0] == 204
    assert fakemem.allocated() == 0


def test_memnode_reregisters(orch_factory, memnodes, tmp_path):
    orch = orch_factory(timeout=3)
    m = memnodes.start(node_id=101, pool="256M", extra=["--orchestrator", orch.addr,
                                                        "--name", "mem-a"])
    assert wait_for(lambda: orch.call("GET", "/v1/nodes/101")[0] == 200, 10)
    n = orch.call("GET", "/v1/nodes/101")[1]
    assert n["name"] == "mem-a" and n["sections_free"] == 2 and n["http"] == m.http
    # A new orchestrator with an empty database: the heartbeat gets 404, the node registers again.
    orch.stop()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(orch.db + suffix):
            os.unlink(orch.db + suffix)
    orch.start()
    assert wait_for(lambda: orch.call("GET", "/v1/nodes/101")[0] == 200, 10)
    assert orch.call("GET", "/v1/nodes/101")[1]["state"] == "up"


def test_memnode_waits_for_orchestrator(orch_factory, memnodes, tmp_path, keyfile):
    """A memory node started before the orchestrator registers once it is up."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    memnodes.start(node_id=101, pool="256M", extra=["--orchestrator", "http://" + addr])
    time.sleep(1.5)                          # a few refused attempts
    orch = orch_factory(extra=["--http", addr])
    assert orch.addr == addr
    assert wait_for(lambda: orch.call("GET", "/v1/nodes/101")[0] == 200, 15)


def test_orchestrator_options(tmp_path, keyfile):
    prog = find_prog("disagg-orchestrator")
    p = subprocess.run([prog, "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--node-timeout" in p.stdout
    p = subprocess.run([prog, "--db", str(tmp_path / "x.db")], capture_output=True, text=True)
    assert p.returncode == 2 and "--key" in p.stderr
    p = subprocess.run([prog, "--key", keyfile, "--grant-key", grant_files(keyfile)[0],
                        "--node-timeout", "0"], capture_output=True, text=True)
    assert p.returncode == 2
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"x" * 32)
    bad.chmod(0o644)
    p = subprocess.run([prog, "--key", str(bad), "--grant-key", grant_files(keyfile)[0],
                        "--db", str(tmp_path / "y.db"), "--fabric-plaintext", "--api-open"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "chmod" in p.stderr


def test_scale_small(tmp_path):
    """The scale benchmark, smaller: 100 memory nodes, 10 compute nodes, 200 cycles."""
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "orchestrator" / "orchbench.py"),
                        "--memnodes", "100", "--computes", "10", "--cycles", "200",
                        "--workdir", str(tmp_path), "--prog", find_prog("disagg-orchestrator")],
                       capture_output=True, text=True, timeout=600)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "create p50" in p.stdout


# ---------------------------------------------------------------------------
# migration (docs/api.md, "Migration")

def memmig_calls(c, name="web"):
    return [x[2]["phase"] for x in c.calls
            if x[0] == "POST" and x[1] == f"/v1/vms/{name}/sections/migrate"]


def test_memory_migration(orch, fakemem, computes, hb_factory, key):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=3, nsec=4)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "384M",
                                            "policy": "pack"})
    assert st == 201, s
    src = s["sections"][0]["memnode"]
    assert all(x["memnode"] == src for x in s["sections"])   # packed on one node
    dst = next(n for n in (101, 102, 103) if n != src)
    assert orch.call("POST", "/v1/slots/web/resize", {"memory": "512M"})[0] == 200

    # One section (a hot-plugged one) first.
    hot = orch.call("GET", "/v1/slots/web")[1]["sections"][3]
    assert hot["memnode"] == src
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory",
                        {"from": src, "to": dst, "section": 3})
    assert st == 200, ans
    (rep,) = ans["sections"]
    assert rep["index"] == 3 and rep["from"]["memnode"] == src and rep["to"]["memnode"] == dst
    assert rep["pages_copied"] == 1234 and rep["pages_resent"] == 3
    assert rep["pause_us"] == 400 and ans["max_pause_us"] == 400
    assert memmig_calls(c) == ["begin", "commit"]
    begin = next(x[2] for x in c.calls if x[1] == "/v1/vms/web/sections/migrate")
    g = decode_grant(begin["to"]["grant"])
    assert g[0] == dst and g[1] == 10 and g[4] == 3             # holder: the compute node
    assert begin["to"]["addr"] == fakemem.nodes[dst].addr
    assert decode_grant(begin["from"]["grant"])[2:4] == (hot["section"], hot["generation"])
    (csrc, cgen, caddr, cgrant), = fakemem.nodes[src].copies
    assert (csrc, cgen) == (hot["section"], hot["generation"])
    assert caddr == fakemem.nodes[dst].addr
    cg = GRANT.unpack(cgrant)
    assert cg[0] == dst and cg[1] == src and cg[4] == 2          # holder: the source, write
    s2 = ans["slot"]
    assert s2["state"] == "running" and "migration" not in s2
    assert s2["sections"][3]["memnode"] == dst
    assert s2["sections"][:3] == orch.call("GET", "/v1/slots/web")[1]["sections"][:3]
    assert fakemem.allocated(src) == 3 and fakemem.allocated(dst) == 1

    # Then all the rest.
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 200, ans
    assert [r["index"] for r in ans["sections"]] == [0, 1, 2]
    assert ans["bytes_copied"] == 3 * 1234 * 4096
    assert fakemem.allocated(src) == 0 and fakemem.allocated(dst) == 4
    assert all(x["memnode"] == dst for x in ans["slot"]["sections"])
    assert orch.call("GET", f"/v1/nodes/{src}")[1]["sections_free"] == 4
    assert orch.call("GET", f"/v1/nodes/{dst}")[1]["sections_free"] == 0
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    assert kinds.count("section_migrated") == 4 and "memory_migration_done" in kinds
    # The agent got the new grants: its records name dst.
    assert {_grant(x["grant"])[0] for x in c.vms["web"]["sections"]} == {dst}
    # Nothing is left on src: a second request has nothing to move.
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 409 and err(ans) == "conflict"
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.allocated() == 0


def _grant(hexstr):
    return decode_grant(hexstr)


@pytest.mark.parametrize("body,status,code", [
    ({"from": 101}, 400, "bad_request"),
    ({"from": 101, "to": 101}, 400, "bad_request"),
    ({"from": 101, "to": "x"}, 400, "bad_request"),
    ({"from": 101, "to": 102, "section": -1}, 400, "bad_request"),
    ({"from": 101, "to": 102, "x": 1}, 400, "unknown_field"),
    ({"from": 101, "to": 999}, 404, "not_found"),
    ({"from": 101, "to": 10}, 400, "bad_request"),               # a compute node
    ({"from": 101, "to": 102, "section": 7}, 409, "conflict"),   # no such section
])
def test_memory_migration_bad_input(orch, fakemem, computes, hb_factory, body, status, code):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})
    assert st == 201
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", body)
    assert st == status and err(ans) == code, ans
    assert memmig_calls(c) == []
    assert orch.call("GET", "/v1/slots/web")[1]["sections"] == s["sections"]
    assert orch.call("GET", "/v1/slots/web")[1]["state"] == "running"
    st, ans = orch.call("POST", "/v1/slots/nope/migrate-memory", {"from": 101, "to": 102})
    assert st == 404 and err(ans) == "not_found"
    assert orch.call("GET", "/v1/slots/web/migrate-memory")[0] == 405


def test_memory_migration_capacity_and_rollback(orch, fakemem, computes, hb_factory):
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=4)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                            "policy": "pack"})
    assert st == 201
    src = s["sections"][0]["memnode"]
    dst = 203 - src
    # The target is full: 409 capacity, nothing asked of the agent.
    fakemem.nodes[dst].fail_alloc = ST["NOSPC"]
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 409 and err(ans) == "capacity", ans
    assert memmig_calls(c) == []
    fakemem.nodes[dst].fail_alloc = None
    hb.register(fakemem.registration(dst))            # report the space again

    def unchanged():
        s2 = orch.call("GET", "/v1/slots/web")[1]
        assert s2["state"] == "running" and s2["sections"] == s["sections"]
        assert fakemem.allocated(src) == 2 and fakemem.allocated(dst) == 0

    # The COPY fails: abort, the target is freed, the section stays.
    fakemem.nodes[src].fail_copy = ST["IO"]
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 503 and err(ans) == "copy_failed", ans
    assert memmig_calls(c) == ["begin", "abort"]
    unchanged()
    fakemem.nodes[src].fail_copy = None

    # The target fails during the window: commit answers 409 target_failed.
    c.fail_memmig = {"commit": (409, "target_failed")}
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 409 and err(ans) == "target_failed", ans
    assert memmig_calls(c)[2:] == ["begin", "commit", "abort"]
    unchanged()

    # The agent refuses to begin.
    c.fail_memmig = {"begin": (409, "conflict")}
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 409 and err(ans) == "conflict", ans
    unchanged()
    c.fail_memmig = {}
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    assert kinds.count("section_migration_failed") == 3
    # And then it works.
    st, ans = orch.call("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": dst})
    assert st == 200, ans
    assert fakemem.allocated(src) == 0 and fakemem.allocated(dst) == 2


def test_compute_migration(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 2, "memory": "256M",
                                            "cache": "128M"})
    assert st == 201 and s["compute"] == 10
    assert orch.call("POST", "/v1/slots/web/resize", {"memory": "512M"})[0] == 200
    s = orch.call("GET", "/v1/slots/web")[1]
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200, ans
    assert ans["from"] == 10 and ans["to"] == 11 and ans["migration"]["downtime_ms"] == 8
    assert ans["slot"]["compute"] == 11 and ans["slot"]["state"] == "running"
    # Where the time went, step by step, adding up to the total.
    ph = ans["phases_ms"]
    assert set(ph) == {"prepare_destination", "page_meta_precopy", "migrate", "replicas",
                       "page_meta", "fence", "wait_running",
                       "prefetch", "finish"}
    assert all(v >= 0 for v in ph.values()) and sum(ph.values()) <= ans["total_ms"] + 1
    # Same sections, one ownership epoch later (test_orchestrator_fence.py).
    assert ans["slot"]["sections"] == [dict(x, epoch=x["epoch"] + 1) for x in s["sections"]]
    # The destination was asked for an incoming VM with grants for itself.
    (_, _, body), = [x for x in c2.calls if x[:2] == ("POST", "/v1/vms")]
    assert body["incoming"]["listen"] == "127.0.0.1:0"
    assert body["vcpus"] == 2 and body["cache_bytes"] == 128 * MiB
    assert body["hotplug"] == "dimm"
    assert len(body["sections"]) == 2 and [x["index"] for x in body["hot_sections"]] == [0, 1]
    for sec, rec in zip(body["sections"] + body["hot_sections"], s["sections"]):
        g = decode_grant(sec["grant"])
        assert g[0] == rec["memnode"] and g[1] == 11 and g[2] == rec["section"]
    # The source migrated to the destination's URI and was then forgotten.
    (_, _, mb), = [x for x in c1.calls if x[:2] == ("POST", "/v1/vms/web/migrate")]
    assert mb["uri"] == c2.vms["web"]["uri"]
    assert "web" not in c1.vms and c2.vms["web"]["state"] == "running"
    assert orch.call("GET", "/v1/nodes/11")[1]["slots"] == ["web"]
    assert orch.call("GET", "/v1/nodes/10")[1]["slots"] == []
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    for k in ("migration_started", "migration_destination_ready", "migration_completed"):
        assert k in kinds
    # Later operations go to the new node; and back again.
    assert orch.call("POST", "/v1/slots/web/resize", {"memory": "384M"})[0] == 200
    assert [x[1] for x in c2.calls if x[0] == "DELETE"] == ["/v1/vms/web/sections/1"]
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 10})
    assert st == 200 and ans["slot"]["compute"] == 10
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert c1.vms == {} and c2.vms == {} and fakemem.allocated() == 0


def test_compute_migration_refusals(orch, fakemem, computes, hb_factory):
    hb, (c1, c2, c3) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=3,
                               vcpus=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})[0] == 201
    assert orch.call("POST", "/v1/slots", {"name": "half", "memory": "256M",
                                           "remote_percent": 50})[0] == 201
    assert orch.call("POST", "/v1/slots", {"name": "big", "vcpus": 2,
                                           "memory": "128M"})[0] == 201
    where = {n: orch.call("GET", f"/v1/slots/{n}")[1]["compute"] for n in ("web", "half", "big")}
    other = next(i for i in (10, 11, 12) if i not in (where["web"],) and i != where["big"])
    cases = [
        ("web", {}, 400, "bad_request"),
        ("web", {"to": "x"}, 400, "bad_request"),
        ("web", {"to": 11, "x": 1}, 400, "unknown_field"),
        ("web", {"to": 11, "prefetch": "yes"}, 400, "bad_request"),
        ("web", {"to": 999}, 404, "not_found"),
        ("web", {"to": 101}, 400, "bad_request"),
        ("web", {"to": where["web"]}, 409, "conflict"),
        ("web", {"to": where["big"]}, 409, "capacity"),               # no vCPU left
        # Local sections move to a memory node first; a fake agent cannot.
        ("half", {"to": next(i for i in (10, 11, 12) if i not in (where["half"], where["big"]))},
         503, "migration_failed"),
        ("nope", {"to": 11}, 404, "not_found"),
    ]
    for name, body, status, code in cases:
        st, ans = orch.call("POST", f"/v1/slots/{name}/migrate", body)
        assert (st, err(ans)) == (status, code), (name, body, ans)
    st, ans = orch.call("POST", "/v1/slots/half/migrate",
                        {"to": next(i for i in (10, 11, 12)
                                    if i not in (where["half"], where["big"]))})
    assert "is local" in ans["error"]["message"] and "keeps running" in ans["error"]["message"]
    half = orch.call("GET", "/v1/slots/half")[1]
    assert [x["kind"] for x in half["sections"]].count("local") == 1, half
    assert orch.call("POST", f"/v1/nodes/{other}/drain")[0] == 200
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": other})
    assert st == 409 and err(ans) == "conflict" and "drained" in ans["error"]["message"]
    for c in (c1, c2, c3):
        assert not [x for x in c.calls if x[1].endswith("/migrate") or "incoming" in
                    (x[2] or {})]
    for n in ("web", "half", "big"):
        s = orch.call("GET", f"/v1/slots/{n}")[1]
        assert s["state"] == "running" and s["compute"] == where[n]


def test_compute_migration_rollback(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})
    assert st == 201 and s["compute"] == 10

    def on_source():
        s2 = orch.call("GET", "/v1/slots/web")[1]
        assert s2["state"] == "running" and s2["compute"] == 10 and "migration" not in s2
        assert c1.vms["web"].get("state", "running") == "running"
        assert "web" not in c2.vms                       # the leftovers were deleted

    # The destination dies mid-migration: the source answers 503 and keeps the VM.
    c1.fail_migrate = (503, "migration_failed")
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 503 and err(ans) == "migration_failed", ans
    assert "keeps running on" in ans["error"]["message"]
    assert ("DELETE", "/v1/vms/web", None) in c2.calls
    on_source()
    # The source refuses (409 migration_refused).
    c1.fail_migrate = (409, "migration_refused")
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 409 and err(ans) == "migration_refused", ans
    on_source()
    c1.fail_migrate = None
    # The destination refuses to create the incoming VM.
    c2.fail_create = (503, "internal")
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 503 and err(ans) == "migration_failed", ans
    on_source()
    c2.fail_create = None
    # The destination does not answer at all.
    c2.close()
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 503, ans
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["compute"] == 10
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    assert kinds.count("migration_failed") == 4
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204


def test_migration_busy(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                           "policy": "pack"})[0] == 201
    src = orch.call("GET", "/v1/slots/web")[1]["sections"][0]["memnode"]
    c1.delay = 1.0
    out = {}

    def move():
        out["r"] = Api(orch.addr, token=orch.auth.token).call("POST", "/v1/slots/web/migrate", {"to": 11})
    t = threading.Thread(target=move)
    t.start()
    time.sleep(1.4)     # after the source said what the VM boots (GET .../boot, delayed too)
    s = orch.call("GET", "/v1/slots/web")[1]
    assert s["state"] == "migrating" and s["migration"]["kind"] == "compute"
    for method, path, body in [
            ("POST", "/v1/slots/web/migrate", {"to": 11}),
            ("POST", "/v1/slots/web/migrate-memory", {"from": src, "to": 203 - src}),
            ("POST", "/v1/slots/web/resize", {"memory": "384M"}),
            ("DELETE", "/v1/slots/web", None)]:
        st, ans = orch.call(method, path, body)
        assert st == 409 and err(ans) == "busy", (path, ans)
    t.join()
    c1.delay = 0
    assert out["r"][0] == 200, out
    # A memory migration blocks too.
    c2.delay = 1.0
    t = threading.Thread(target=lambda: out.update(
        m=Api(orch.addr, token=orch.auth.token).call("POST", "/v1/slots/web/migrate-memory",
                              {"from": src, "to": 203 - src})))
    t.start()
    time.sleep(0.4)
    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 10})
    assert st == 409 and err(ans) == "busy"
    t.join()
    c2.delay = 0
    assert out["m"][0] == 200, out
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.allocated() == 0


def _set_migrating(db, name, op):
    import sqlite3
    con = sqlite3.connect(db)
    con.execute("UPDATE slots SET state = 'migrating', op = ? WHERE name = ?",
                (json.dumps(op), name))
    con.commit()
    con.close()


def test_migration_restart_recovery(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                            "policy": "pack"})
    assert st == 201 and s["compute"] == 10

    # Interrupted after the switchover: the destination runs it.
    orch.stop()
    _set_migrating(orch.db, "web", {"kind": "compute", "from": 10, "to": 11})
    with c1.lock:
        c2.vms["web"] = dict(c1.vms["web"], state="running")
        c1.vms["web"]["state"] = "migrated"
    orch.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["compute"] == 11 and "migration" not in s2
    assert "web" not in c1.vms

    # Interrupted before: the source runs it, the destination's leftovers go.
    orch.stop()
    _set_migrating(orch.db, "web", {"kind": "compute", "from": 11, "to": 10})
    with c1.lock:
        c1.vms["web"] = dict(c2.vms["web"], state="incoming")
    orch.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["compute"] == 11
    assert "web" not in c1.vms and "web" in c2.vms

    # A memory migration interrupted before its commit: abort, target freed.
    src = s["sections"][0]
    dst_node = 203 - src["memnode"]
    n = fakemem.nodes[dst_node]
    with fakemem.lock:
        n.generation += 1
        n.sections[5] = (n.generation, 1)
    op = {"kind": "memory", "from": src["memnode"], "to": dst_node, "index": 0,
          "src": {k: src[k] for k in ("memnode", "section", "generation")},
          "dst": {"memnode": dst_node, "section": 5, "generation": n.generation}}
    orch.stop()
    _set_migrating(orch.db, "web", op)
    orch.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running" and s2["sections"] == s["sections"]
    assert fakemem.allocated(dst_node) == 0
    assert memmig_calls(c2) == ["abort"]

    # Interrupted after the commit: the store follows the agent, the source is freed.
    with fakemem.lock:
        n.generation += 1
        n.sections[6] = (n.generation, 1)
    op["dst"] = {"memnode": dst_node, "section": 6, "generation": n.generation}
    from dproto import mint_grant
    with c2.lock:
        c2.vms["web"]["sections"][0] = {
            "kind": "remote", "addr": n.addr,
            "grant": mint_grant(fakemem.key, dst_node, 11, 6, n.generation, 3).hex()}
    orch.stop()
    _set_migrating(orch.db, "web", op)
    orch.start()
    s2 = orch.call("GET", "/v1/slots/web")[1]
    assert s2["state"] == "running"
    assert s2["sections"][0]["memnode"] == dst_node and s2["sections"][0]["section"] == 6
    assert s2["sections"][1] == s["sections"][1]
    assert fakemem.allocated(src["memnode"]) == 1 and fakemem.allocated(dst_node) == 1
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    assert kinds.count("slot_recovered") == 4
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204
    assert fakemem.allocated() == 0


def test_migration_keeps_dimm_places(orch, fakemem, computes, hb_factory):
    """The destination gets each DIMM at the address and ACPI slot the
    source agent reports for it."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                           "policy": "pack"})[0] == 201
    assert orch.call("POST", "/v1/slots/web/resize", {"memory": "384M"})[0] == 200
    with c1.lock:
        assert list(c1.vms["web"]["hot"]) == [0]
        c1.vms["web"]["hot"][0].update(gpa=0x140000000, slot=2)
    st, j = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200, j
    with c2.lock:
        hot = c2.vms["web"]["hot"]
    assert hot[0]["gpa"] == 0x140000000 and hot[0]["slot"] == 2, hot


def test_evacuation_restart_recovery(orch, fakemem, computes, hb_factory):
    """An orchestrator restart in the middle of evacuating a local section
    before a compute migration: the agent says whether it switched."""
    from dproto import mint_grant
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "half", "memory": "256M",
                                            "remote_percent": 50, "policy": "pack"})
    assert st == 201
    comp = next(c for c in (c1, c2) if "half" in c.vms)
    local = next(x for x in s["sections"] if x["kind"] == "local")
    node = s["sections"][[x["kind"] for x in s["sections"]].index("remote")]["memnode"]
    n = fakemem.nodes[node]

    def reserve(sec):
        with fakemem.lock:
            n.generation += 1
            n.sections[sec] = (n.generation, 1)
        return {"memnode": node, "section": sec, "generation": n.generation}

    def restart_with(op):
        orch.stop()
        _set_migrating(orch.db, "half", op)
        orch.start()
        return orch.call("GET", "/v1/slots/half")[1]

    # The agent had not switched the section: it stays local, the new one is freed.
    before = fakemem.allocated(node)
    dst = reserve(6)
    s2 = restart_with({"kind": "evacuate", "from": s["compute"], "index": local["index"],
                       "dst": dst})
    assert s2["state"] == "running" and s2["sections"] == s["sections"], s2
    assert fakemem.allocated(node) == before
    assert "stays local" in s2["reason"]

    # It had: the store records the section as remote on the new one.
    dst = reserve(7)
    with comp.lock:
        comp.vms["half"]["sections"][local["index"]] = {
            "kind": "remote", "addr": n.addr,
            "grant": mint_grant(fakemem.key, node, s["compute"], 7, dst["generation"],
                                3).hex()}
    s2 = restart_with({"kind": "evacuate", "from": s["compute"], "index": local["index"],
                       "dst": dst})
    assert s2["state"] == "running", s2
    x = s2["sections"][local["index"]]
    assert (x["kind"], x["memnode"], x["section"]) == ("remote", node, 7), s2
    assert fakemem.allocated(node) == before + 1
    kinds = [e["kind"] for e in orch.call("GET", "/v1/events?limit=1000")[1]["events"]]
    assert kinds.count("slot_recovered") == 2 and "section_evacuated" in kinds
    assert orch.call("DELETE", "/v1/slots/half")[0] == 204
    assert fakemem.allocated() == 0


def test_cli_migrations(orch, fakemem, computes, hb_factory):
    """disagg slot migrate / migrate-memory against the orchestrator and fakes."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    assert orch.call("POST", "/v1/slots", {"name": "web", "memory": "256M",
                                           "policy": "pack"})[0] == 201
    src = orch.call("GET", "/v1/slots/web")[1]["sections"][0]["memnode"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISAGG_")}
    env["DISAGG_TOKEN"] = orch.auth.token

    def run(*args):
        p = subprocess.run([find_prog("disagg"), "--url", orch.addr, *map(str, args)],
                           capture_output=True, text=True, timeout=60, env=env)
        assert "runtime error" not in p.stderr and "Sanitizer" not in p.stderr, p.stderr
        return p

    p = run("slot", "migrate", "web", "--to", 11)
    assert p.returncode == 0, p.stderr
    assert "moving slot web to compute node 11 ..." in p.stderr
    assert "slot web moved from compute node 10 to 11 in " in p.stdout
    assert "downtime 8 ms (QEMU), 205K sent between compute nodes" in p.stdout, p.stdout
    p = run("slot", "migrate", "web", "--to", 11)
    assert p.returncode == 1 and "409 conflict" in p.stderr, p.stderr
    # There and back without the prefetch (a fake agent sends no hot pages anyway).
    p = run("slot", "migrate", "web", "--to", 10, "--no-prefetch")
    assert p.returncode == 0 and "moved from compute node 11 to 10" in p.stdout, p.stderr
    p = run("slot", "migrate", "web", "--to", 11)
    assert p.returncode == 0, p.stderr
    p = run("slot", "migrate", "web", "--to", 10, "--no-prefetch=yes")
    assert p.returncode == 2, (p.stdout, p.stderr)
    p = run("slot", "migrate", "web")
    assert p.returncode == 2 and "--to is required" in p.stderr
    p = run("slot", "migrate", "web", "--to", "x")
    assert p.returncode == 2
    p = run("slot", "migrate-memory", "web", "--from", src, "--to", 203 - src, "--section", 1)
    assert p.returncode == 0, p.stderr
    assert "  section 1: memnode %d -> %d" % (src, 203 - src) in p.stdout, p.stdout
    assert "1234 pages (4.8M) copied" in p.stdout and "pause 0.40 ms" in p.stdout
    assert re.search(r"slot web: 1 section moved from memory node %d to %d in \d+ ms: "
                     r"4\.8M copied, max pause 0\.40 ms" % (src, 203 - src), p.stdout), p.stdout
    p = run("--json", "slot", "migrate-memory", "web", "--from", src, "--to", 203 - src)
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert [x["index"] for x in j["sections"]] == [0] and j["max_pause_us"] == 400
    p = run("slot", "migrate-memory", "web", "--from", src, "--to", 203 - src)
    assert p.returncode == 1 and "no section on memory node" in p.stderr
    p = run("slot", "migrate-memory", "web", "--to", src)
    assert p.returncode == 2 and "--from is required" in p.stderr


def test_grants_expire_and_are_renewed(orch_factory, fakemem, computes, hb_factory, key):
    """With --grant-ttl 12 the slot's grants expire 12 s after they are
    minted, and every third of that the orchestrator sends the compute node
    new ones (POST /v1/vms/NAME/grants): same sections, holder and epoch, a
    later expiry, signed with the grant key."""
    orch = orch_factory(extra=["--grant-ttl", "12"])
    hb, (c,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, heartbeat=True)
    t0 = time.time()
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 1, "memory": "256M",
                                            "remote_percent": 100})
    assert st == 201, s
    (_, _, body), = [x for x in c.calls if x[0] == "POST"]
    def which(g):                                    # memory node, section, generation
        return g[0], g[2], g[3]
    first = {which(decode_grant(x["grant"])): decode_grant(x["grant"]) for x in body["sections"]}
    for g in first.values():
        assert t0 + 11 <= g[6] <= time.time() + 12, g            # expiry: now + ttl
    assert wait_for(lambda: len(c.renewals) >= 2, 15), c.renewals
    name, when, grants = c.renewals[-1]
    assert name == "web" and len(grants) == 2
    for hx in grants:
        raw = bytes.fromhex(hx)
        g = decode_grant(hx)
        old = first[which(g)]
        assert g[:6] == old[:6]                                   # the same grant ...
        assert g[6] > old[6] and g[6] >= when + 11                # ... living longer
        assert grant_signed_by(key.grant, raw)
    assert c.renewals[1][1] - c.renewals[0][1] == pytest.approx(4, abs=1.5)
    # A slot not running is not renewed; its agent refusing is logged, not fatal.
    assert orch.d.alive()


def test_grant_ttl_bounds(tmp_path, keyfile):
    prog = find_prog("disagg-orchestrator")
    for bad in ("9", "3601", "x"):
        p = subprocess.run([prog, "--key", keyfile, "--grant-key", grant_files(keyfile)[0],
                            "--grant-ttl", bad, "--db", str(tmp_path / "t.db"), "--api-open"],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and "grant-ttl" in p.stderr, p.stderr
