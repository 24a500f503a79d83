# SPDX-License-Identifier: MIT
"""Volumes attached to slots as disks (docs/api.md, "Disks"; docs/cli.md,
"Disks"): a real orchestrator, a real device node (disagg-devnode) that
holds the volumes, a fake memory node and fake compute agents
(fake_disks.py) that open each attached volume on the real device node
with the grant the orchestrator minted, their answers checked against
tests/schema/compute-agent.json.

Attach and detach through the API (the grant decoded: device node,
holder, key, rights; the volume open on the device node while attached;
the slot's and the volume's views; events), the refusals (volume or slot
missing 404, attached elsewhere 409, slot not running 409, the agent's
refusal with its code and text, a slot with remote memory taking a disk, the device node's refusal, an agent that
does not answer, or answers after having attached), a volume that cannot
be deleted while attached, a slot delete that takes its disks with it, an
attach interrupted by a restart settled from the agent, and `disagg device
attach|ls|detach`. A compute migration of a slot with disks:
test_disks_migrate.py.
"""
import re
import sqlite3
import time

import pytest

import fake_disks as fd
import progs
from dproto import GRANT, wait_for
from fakes import FakeMemnodes
from test_cli import cli_env, disagg, table
from test_orchestrator import computes, err, hb_factory, orch_factory  # noqa: F401
from test_volumes import Devnodes, events

MiB = 1 << 20
COMPUTE, OTHER = 10, 11         # the fake compute nodes
R, RW = 1, 3


@pytest.fixture(autouse=True)
def _fresh_log():
    fd.LOG.clear()


def disk_cluster(tmp_path, keyfile, key, orch_factory, computes, hb_factory,  # noqa: F811
                 extra=(), devnode_extra=()):
    """An orchestrator on a plaintext fabric (device nodes speak no TLS yet),
    fake compute nodes 10 and 11 that open disks on the real device node
    301, a fake memory node 101; slots a and b (local memory) and r (remote
    memory), placed by the orchestrator; volumes data1 (8M) and data2 (4M).
    devnode_extra: more options of the device node (--block-device)."""
    progs.CURRENT = None
    orch = orch_factory(timeout=5, extra=["--fabric-plaintext", *extra])
    mem = FakeMemnodes(key, fabric=None)
    hb = orch.hb = hb_factory(orch)
    c1, c2 = computes(COMPUTE), computes(OTHER)
    for c in (c1, c2):
        c.disk_key = key
        hb.register(c.registration())
    n = mem.add(101, nsections=8)
    hb.register(mem.registration(101), capacity=lambda: {"sections_free": n.free})
    hb.start()
    dn = Devnodes(tmp_path, keyfile, orch)
    orch.devnodes, orch.c1, orch.c2, orch.mem = dn, c1, c2, mem
    orch.d301 = dn.start(301, extra=devnode_extra)
    for name, remote in (("a", 0), ("b", 0), ("r", 100)):
        st, s = orch.call("POST", "/v1/slots", {"name": name, "memory": "128M",
                                                "remote_percent": remote})
        assert st == 201, s
    for name, size in (("data1", 8 * MiB), ("data2", 4 * MiB)):
        st, v = orch.call("POST", "/v1/volumes", {"name": name, "size": size})
        assert st == 201, v
    yield orch
    dn.stop_all()
    mem.close()


@pytest.fixture
def dc(tmp_path, keyfile, key, orch_factory, computes, hb_factory):  # noqa: F811
    yield from disk_cluster(tmp_path, keyfile, key, orch_factory, computes, hb_factory)


@pytest.fixture
def dc_ttl(tmp_path, keyfile, key, orch_factory, computes, hb_factory):  # noqa: F811
    """The same with --grant-ttl 12: renewals every 4 s."""
    yield from disk_cluster(tmp_path, keyfile, key, orch_factory, computes, hb_factory,
                            extra=["--grant-ttl", "12"])


def slot_compute(o, name):
    return o.call("GET", f"/v1/slots/{name}")[1]["compute"]


def fake_of(o, slot):
    return o.c1 if slot_compute(o, slot) == COMPUTE else o.c2


def attach(o, slot, volume, **kw):
    return o.call("POST", f"/v1/slots/{slot}/disks", {"volume": volume, **kw})


def detach(o, slot, volume):
    return o.call("DELETE", f"/v1/slots/{slot}/disks/{volume}")


def volume(o, name):
    st, v = o.call("GET", f"/v1/volumes/{name}")
    assert st == 200, v
    return v


# ---------------------------------------------------------------------------

def test_attach_and_detach(dc, key):
    v1 = volume(dc, "data1")
    st, d = attach(dc, "a", "data1")
    assert st == 201, d
    assert d["volume"] == "data1" and d["slot"] == "a" and d["disk"] == "disk0"
    assert d["devnode"] == 301 and d["size"] == 8 * MiB and d["read_only"] is False
    assert d["state"] == "attached" and d["serial"] == "data1"

    # The agent was asked with a grant of its own for the volume on device node 301.
    fake = fake_of(dc, "a")
    (entry,) = fd.calls("attach")
    assert entry[0] == fake.node_id and entry[2] == "a"
    body = entry[3]
    assert body["volume"] == "data1" and body["devnode"] == dc.d301.addr
    assert body["read_only"] is False and len(body["grant"]) == 2 * GRANT.size
    key_ = int(v1["key"], 16)
    mem, holder, sec, gen, rights, epoch, expiry = fd.grant_of(entry)
    assert (mem, holder, sec, gen, rights, epoch) == \
        (301, fake.node_id, key_ & 0xffffffff, key_ >> 32, RW, 1)     # the first owner
    assert time.time() + 60 < expiry < time.time() + 2 * 86400
    # ... which the real device node took: the volume is open there, once.
    v = volume(dc, "data1")
    assert v["attached"] == "a" and v["disk"] == "disk0" and v["read_only"] is False
    assert v["open"] == 1 and v["state"] == "ready"
    assert v["epoch"] == 1 and v["holder"] == fake.node_id and v1["epoch"] == 0
    assert [x["attached"] for x in dc.call("GET", "/v1/volumes")[1]["volumes"]] == ["a", None]

    # The slot's views.
    s = dc.call("GET", "/v1/slots/a")[1]
    assert [(x["volume"], x["disk"]) for x in s["disks"]] == [("data1", "disk0")]
    assert "disks" not in dc.call("GET", "/v1/slots/b")[1]
    assert dc.call("GET", "/v1/slots/a/disks")[1] == {"disks": s["disks"]}
    assert dc.call("GET", "/v1/slots/a/disks/data1")[1] == s["disks"][0]
    assert dc.call("GET", "/v1/slots/a/disks/data2")[0] == 404
    assert dc.call("GET", "/v1/slots/b/disks")[1] == {"disks": []}
    ev = events(dc, "volume_attached")
    assert len(ev) == 1 and ev[0]["slot"] == "a" and ev[0]["node"] == fake.node_id
    assert "disk0" in ev[0]["message"]

    # Attached: no delete, no shrink, no second attach, here or elsewhere.
    st, ans = dc.call("DELETE", "/v1/volumes/data1")
    assert st == 409 and err(ans) == "volume_attached"
    st, ans = dc.call("POST", "/v1/volumes/data1/resize", {"size": MiB, "shrink": True})
    assert st == 409 and err(ans) == "volume_attached"
    st, ans = attach(dc, "a", "data1")
    assert st == 409 and err(ans) == "volume_attached" and "already" in ans["error"]["message"]
    st, ans = attach(dc, "b", "data1")
    assert st == 409 and err(ans) == "volume_attached" and "slot a" in ans["error"]["message"]
    assert len(fd.calls("attach")) == 1          # the agents were not asked

    # Read-only: the grant reads only, the device node opens it so.
    st, d2 = attach(dc, "b", "data2", read_only=True)
    assert st == 201 and d2["read_only"] is True, d2
    assert fd.grant_of(fd.calls("attach")[-1])[4] == R
    assert volume(dc, "data2")["read_only"] is True

    # Detach: the agent lets go, the device node closes it, the volume is free.
    st, ans = detach(dc, "a", "data1")
    assert st == 200 and ans == {"volume": "data1", "slot": "a", "disk": "disk0"}, ans
    assert [(e[0], e[2]) for e in fd.calls("detach")] == [(fake.node_id, "a")]
    v = volume(dc, "data1")
    assert v["attached"] is None and "disk" not in v and v["open"] == 0
    assert "disks" not in dc.call("GET", "/v1/slots/a")[1]
    st, ans = detach(dc, "a", "data1")
    assert st == 409 and err(ans) == "not_attached"
    st, ans = detach(dc, "a", "data2")
    assert st == 409 and err(ans) == "not_attached" and "slot b" in ans["error"]["message"]
    assert len(events(dc, "volume_detached")) == 1
    assert dc.call("DELETE", "/v1/volumes/data1")[0] == 204

    st, text = dc.call("GET", "/metrics")
    for route in ("disks_attach", "disks_detach", "disks_list"):
        assert f'route="{route}"' in text, route


def test_refusals(dc):
    for body, code in [({}, "bad_request"), ({"volume": "Bad!"}, "bad_request"),
                       ({"volume": 7}, "bad_request"),
                       ({"volume": "data1", "read_only": "yes"}, "bad_request"),
                       ({"volume": "data1", "colour": 1}, "unknown_field")]:
        st, ans = dc.call("POST", "/v1/slots/a/disks", body)
        assert st == 400 and err(ans) == code, (body, ans)
    st, ans = attach(dc, "a", "nope")
    assert st == 404 and err(ans) == "not_found" and "volume nope" in ans["error"]["message"]
    st, ans = attach(dc, "nope", "data1")
    assert st == 404 and err(ans) == "not_found" and "slot nope" in ans["error"]["message"]
    assert detach(dc, "a", "nope")[0] == 404
    assert detach(dc, "nope", "data1")[0] == 404
    assert dc.call("GET", "/v1/slots/nope/disks")[0] == 404
    assert dc.call("PUT", "/v1/slots/a/disks")[0] == 405
    assert dc.call("POST", "/v1/slots/a/disks/data1/x")[0] == 404

    # The agent's refusal, with its code and its text.
    fake = fake_of(dc, "r")
    fake.fail_disk["attach"] = (409, "attach_failed")
    st, ans = attach(dc, "r", "data1")
    del fake.fail_disk["attach"]
    assert st == 409 and err(ans) == "attach_failed", ans
    assert "slot r" in ans["error"]["message"]
    assert volume(dc, "data1")["attached"] is None
    # A slot whose memory is remote takes a disk like any other.
    st, ans = attach(dc, "r", "data1")
    assert st == 201, ans
    assert detach(dc, "r", "data1")[0] == 200

    # A slot that does not run takes no disk (its compute node reported the VM failed).
    fake = fake_of(dc, "b")
    fake.vms["b"]["state"] = "failed"
    st, ans = dc.call("POST", f"/v1/nodes/{fake.node_id}/heartbeat", {
        "vm_states": [{"name": "b", "state": "failed", "reason": "QEMU died"}]})
    assert st == 200, ans
    assert dc.call("GET", "/v1/slots/b")[1]["state"] == "failed"
    st, ans = attach(dc, "b", "data1")
    assert st == 409 and err(ans) == "not_running", ans
    assert not [e for e in fd.calls("attach") if e[2] == "b"]

    # The device node refuses (it is down): the agent's 502 attach_failed, nothing attached.
    dc.d301.stop()
    st, ans = attach(dc, "a", "data1")
    assert st == 502 and err(ans) == "attach_failed", ans
    assert "data1" in ans["error"]["message"]
    st, v = dc.call("GET", "/v1/volumes")
    assert [x["attached"] for x in v["volumes"]] == [None, None]
    assert all(x["state"] == "ready" for x in v["volumes"])


def test_an_agent_that_does_not_answer(dc):
    fake = fake_of(dc, "a")
    # It hangs up without doing anything: asked afterwards, it has no such disk.
    fake.disk_hangup["attach"] = "drop"
    st, ans = attach(dc, "a", "data1")
    assert st == 503 and err(ans) == "node_unreachable", ans
    assert volume(dc, "data1")["attached"] is None
    # (libcurl sends a request again when a kept-alive connection closes unanswered)
    ops = [e[1] for e in fd.calls()]
    assert ops[-1] == "list" and set(ops[:-1]) == {"attach"}, ops
    # It attaches, then hangs up: asked afterwards (after the repeated request
    # was refused, "attached already"), it has it; recorded attached.
    fake.disk_hangup["attach"] = "apply"
    st, d = attach(dc, "a", "data1")
    assert st == 201 and d["disk"] == "disk0", d
    assert volume(dc, "data1")["attached"] == "a"
    del fake.disk_hangup["attach"]
    # Its refusal to detach leaves the volume attached.
    fake.fail_disk["detach"] = (504, "detach_failed")
    st, ans = detach(dc, "a", "data1")
    assert st == 504 and err(ans) == "detach_failed", ans
    v = volume(dc, "data1")
    assert v["attached"] == "a" and v["state"] == "ready"
    del fake.fail_disk["detach"]
    # Nobody can tell: the agent does not answer the attach, nor the question after it.
    fake.disk_hangup.update(attach="drop", list="drop")
    st, ans = attach(dc, "a", "data2")
    assert st == 503 and err(ans) == "node_unreachable", ans
    v = volume(dc, "data2")
    assert v["attached"] == "a" and v["disk"] is None     # kept: a detach cleans up
    fake.disk_hangup.clear()
    st, ans = detach(dc, "a", "data2")
    assert st == 200 and ans["disk"] is None, ans        # the agent had none
    assert volume(dc, "data2")["attached"] is None
    assert detach(dc, "a", "data1")[0] == 200


def test_slot_delete_takes_its_disks(dc):
    assert attach(dc, "a", "data1")[0] == 201
    assert attach(dc, "b", "data2")[0] == 201
    assert dc.call("DELETE", "/v1/slots/a")[0] == 204
    v = volume(dc, "data1")
    assert v["attached"] is None and "disk" not in v
    assert wait_for(lambda: volume(dc, "data1")["open"] == 0, 10)   # the VM closed it
    assert dc.call("DELETE", "/v1/volumes/data1")[0] == 204
    assert volume(dc, "data2")["attached"] == "b"
    # A new slot of the same name has none of the old one's disks.
    st, s = dc.call("POST", "/v1/slots", {"name": "a", "memory": "128M", "remote_percent": 0})
    assert st == 201 and "disks" not in s


def test_restart_settles_an_interrupted_attach(dc):
    """The orchestrator stopped while attaching (data1: the agent has it) and
    while detaching (data2: the agent does not have it)."""
    assert attach(dc, "a", "data1")[0] == 201
    assert attach(dc, "a", "data2")[0] == 201
    assert detach(dc, "a", "data2")[0] == 200
    dc.stop()
    db = sqlite3.connect(dc.db, timeout=10)
    sid = db.execute("SELECT id FROM slots WHERE name = 'a'").fetchone()[0]
    db.execute("UPDATE volumes SET state = 'attaching', run = 12345 WHERE name = 'data1'")
    db.execute("UPDATE volume_disks SET disk = '' WHERE volume_id = "
               "(SELECT id FROM volumes WHERE name = 'data1')")
    db.execute("UPDATE volumes SET state = 'detaching', run = 12345, slot_id = ? "
               "WHERE name = 'data2'", (sid,))
    db.execute("UPDATE volume_disks SET disk = 'disk1' WHERE volume_id = "
               "(SELECT id FROM volumes WHERE name = 'data2')")
    db.commit()
    db.close()
    dc.start()
    v1, v2 = volume(dc, "data1"), volume(dc, "data2")
    assert v1["state"] == "ready" and v1["attached"] == "a" and v1["disk"] == "disk0", v1
    assert v2["state"] == "ready" and v2["attached"] is None, v2
    msgs = [e["message"] for e in events(dc, "volume_settled")]
    assert len(msgs) == 2 and any("attached to slot a as disk0" in m for m in msgs), msgs


def test_device_commands(dc):
    env = cli_env(DISAGG_TOKEN=dc.auth.token)

    def cli(*args, rc=0):
        return disagg("--url", f"http://{dc.addr}", *args, env=env, check_rc=rc)

    p = cli("device", "attach", "a", "data1")
    assert p.stdout.strip() == "volume data1 attached to slot a as disk0 " \
        "(read-write, 8M on device node 301)", p.stdout
    assert "attaching volume data1 to slot a" in p.stderr
    cli("device", "attach", "b", "data2", "--read-only")
    head, rows = table(cli("device", "ls").stdout)
    assert head == ["SLOT", "VOLUME", "DISK", "SIZE", "DEVNODE", "COMPUTE", "EPOCH", "MODE",
                    "STATE"]
    ca, cb = str(slot_compute(dc, "a")), str(slot_compute(dc, "b"))
    assert rows == [["a", "data1", "disk0", "8M", "301", ca, "1", "rw", "attached"],
                    ["b", "data2", "disk0", "4M", "301", cb, "1", "ro", "attached"]], rows
    head, rows = table(cli("device", "ls", "b").stdout)
    assert [r[:2] for r in rows] == [["b", "data2"]]
    assert "disks:" in cli("slot", "show", "a").stdout
    out = cli("volume", "show", "data1").stdout
    assert f"attached to:    slot a as disk0, on compute node {ca}" in out, out
    assert "epoch:          1" in out
    p = cli("device", "attach", "r", "data1", rc=1)
    assert "(409 volume_attached)" in p.stderr
    p = cli("device", "detach", "a", "data1")
    assert p.stdout.strip() == "volume data1 detached from slot a"
    fake_of(dc, "r").fail_disk["attach"] = (409, "attach_failed")
    p = cli("device", "attach", "r", "data1", rc=1)
    del fake_of(dc, "r").fail_disk["attach"]
    assert "(409 attach_failed)" in p.stderr and "slot r" in p.stderr
    p = cli("--json", "device", "ls", "a")
    assert p.stdout.strip().replace(" ", "").replace("\n", "") == '{"disks":[]}'
    assert "no volumes attached to slot a" in cli("device", "ls", "a").stderr
    cli("device", "detach", "b", "data2")
    assert "no volumes attached" in cli("device", "ls").stderr


@pytest.mark.parametrize("args, match", [
    (["device", "attach", "a"], r"needs SLOT VOLUME"),
    (["device", "detach", "a"], r"needs SLOT VOLUME"),
    (["device", "ls", "a", "b"], r"unexpected argument `b`"),
])
def test_device_usage_errors_exit_2(args, match):
    p = disagg("--url", "http://127.0.0.1:1", *args, check_rc=2)
    assert re.search(match, p.stderr), p.stderr


def test_disk_grants_are_renewed(dc_ttl):
    """A disk's volume grant expires with --grant-ttl like a section's, and
    the renewal round sends the slot's compute node a new one for it too:
    the same device node, volume, holder and epoch, a later expiry."""
    t0 = time.time()
    st, d = attach(dc_ttl, "a", "data1")
    assert st == 201, d
    fake = fake_of(dc_ttl, "a")
    first = fake.vms["a"]["disks"]["disk0"]["grant"]
    assert t0 + 11 <= first[6] <= time.time() + 12, first       # expiry: now + ttl
    def of_a():
        return [x for x in fake.renewals if x[0] == "a"]

    # Slot a's memory is local: its renewals carry its disk's grant only.
    assert wait_for(lambda: len(of_a()) >= 2, 15), fake.renewals
    _, when, grants = of_a()[-1]
    got = [GRANT.unpack(bytes.fromhex(hx)) for hx in grants]
    mine = [g for g in got if g[0] == 301]
    assert len(mine) == 1 and len(got) == 1, got
    g = mine[0]
    assert g[:6] == first[:6] and g[6] > first[6] and g[6] >= when + 11, (g, first)
    # The fake took it: its disk's grant is the renewed one.
    assert fake.vms["a"]["disks"]["disk0"]["grant"][6] >= g[6]
