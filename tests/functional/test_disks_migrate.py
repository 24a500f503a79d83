# SPDX-License-Identifier: MIT
"""Disks in a compute migration (docs/api.md, "Volume ownership epochs" and
"POST /v1/slots/NAME/migrate"; docs/compute.md, "POST /v1/vms with
incoming"): the setup of test_disks.py (a real orchestrator, a real device
node, fake compute agents that open each disk's volume on it with the
grant they were given, fake_disks.py).

A slot with two volumes attached (one read-only) moves: the destination's
incoming VM gets the disks with grants of a higher epoch held by the
destination, at the source's disk ids and PCI addresses; the destination's
open on the real device node fences the source (its writes are refused
there, its reads go on); the epochs are in the store across a restart;
the views (volume, disk, `disagg device ls`, `volume show`) name the new
compute node. The failure paths: the destination refuses the VM, the
source fails before the switchover (the source keeps writing, a retry
advances the epoch again), an agent without `pci` or without the disk
(409, nothing changed), an answer lost while the source migrates (detach
refused meanwhile, the slot's own resolution decides), a restart in the
middle. A memory migration of a slot with disks is not refused.
"""
import sqlite3
import threading
import time

import dproto as dp
import fake_disks as fd
import pytest
from fakes import Api
from test_cli import cli_env, disagg, table
from test_disks import COMPUTE, OTHER, R, RW, attach, dc, detach, fake_of, volume  # noqa: F401
from test_orch_outcomes import flip_later
from test_orchestrator import computes, err, hb_factory, orch_factory  # noqa: F401
from test_volumes import events

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _fresh_log():
    fd.LOG.clear()


@pytest.fixture
def moved(dc, key):
    """Slot r (remote memory) with data1 (rw) and data2 (ro) attached; a
    connection of the source node of its own to the device node, with
    data1 open through the source's grant (what a source that is slow to
    stop still holds). Yields (orch, src fake, dst fake, (conn, handle))."""
    assert attach(dc, "r", "data1")[0] == 201
    assert attach(dc, "r", "data2", read_only=True)[0] == 201
    src = fake_of(dc, "r")
    dst = dc.c2 if src is dc.c1 else dc.c1
    grant = bytes.fromhex(fd.calls("attach")[0][3]["grant"])
    conn = dp.DevConn(dc.d301.addr, tls=False).login(key, src.node_id, orch=False)
    h, _ = conn.blk_open(grant, "data1")
    conn.blk_write(h, 0, b"s" * 512)
    yield dc, src, dst, (conn, h)
    conn.close()


def status_of(fn):
    try:
        fn()
    except dp.ProtoError as e:
        return dp.ST_NAME.get(e.status, e.status)
    return "OK"


def incoming_bodies(fake):
    return [b for m, p, b in fake.calls if m == "POST" and p == "/v1/vms" and "incoming" in b]


def grant_fields(hexgrant):
    return dp.GRANT.unpack(bytes.fromhex(hexgrant))[:6]


def migrate(o, slot, to):
    return o.call("POST", f"/v1/slots/{slot}/migrate", {"to": to})


# ---------------------------------------------------------------------------

def test_disks_move_with_the_slot(moved, key):
    dc, src, dst, (conn, h) = moved
    before = {n: volume(dc, n) for n in ("data1", "data2")}
    assert [before[n]["epoch"] for n in before] == [1, 1]
    assert {before[n]["holder"] for n in before} == {src.node_id}
    src_disks = {d["volume"]: d for d in src.vms["r"]["disks"].values()}

    st, ans = migrate(dc, "r", dst.node_id)
    assert st == 200, ans
    assert ans["slot"]["compute"] == dst.node_id

    # The destination's incoming VM got the disks: the attach's members,
    # grants of the next epoch held by it, the source's ids and addresses.
    (body,) = incoming_bodies(dst)
    got = {d["volume"]: d for d in body["disks"]}
    assert set(got) == {"data1", "data2"}
    for name, rights in (("data1", RW), ("data2", R)):
        d, s = got[name], src_disks[name]
        assert set(d) == {"volume", "devnode", "grant", "read_only", "serial", "id", "pci"}, d
        assert (d["id"], d["pci"], d["serial"]) == (s["id"], s["pci"], s["serial"])
        assert d["devnode"] == dc.d301.addr and d["read_only"] is (rights == R)
        k = int(before[name]["key"], 16)
        assert grant_fields(d["grant"]) == (301, dst.node_id, k & 0xffffffff, k >> 32, rights, 2)
    assert not dst.schema_errors and not src.schema_errors

    # The destination opened both on the real device node when the VM arrived,
    # which fenced the source's handle: its writes are refused there, reads go on.
    assert all("conn" in d and "open_error" not in d for d in dst.vms["r"]["disks"].values())
    assert status_of(lambda: conn.blk_write(h, 0, b"z" * 512)) == "FENCED"
    assert status_of(lambda: conn.blk_flush(h)) == "FENCED"
    assert conn.blk_read(h, 0, 512) == b"s" * 512
    # ... and the grant of the old epoch opens it writable no more.
    old = bytes.fromhex(fd.calls("attach")[0][3]["grant"])
    assert status_of(lambda: conn.blk_open(old, "data1")) == "FENCED"

    # The catalog: the volumes are attached to r on the destination, at epoch 2.
    for name in ("data1", "data2"):
        v = volume(dc, name)
        assert (v["attached"], v["holder"], v["epoch"], v["state"]) == \
            ("r", dst.node_id, 2, "ready"), v
    s = dc.call("GET", "/v1/slots/r")[1]
    assert {(d["volume"], d["holder"], d["epoch"]) for d in s["disks"]} == \
        {("data1", dst.node_id, 2), ("data2", dst.node_id, 2)}
    ev = events(dc, "volume_moved")
    assert len(ev) == 2 and all(e["node"] == dst.node_id and e["slot"] == "r" for e in ev), ev
    assert "r" not in src.vms

    env = cli_env(DISAGG_TOKEN=dc.auth.token)
    head, rows = table(disagg("--url", f"http://{dc.addr}", "device", "ls", env=env).stdout)
    assert [r[:7] for r in rows] == [
        ["r", "data1", src_disks["data1"]["id"], "8M", "301", str(dst.node_id), "2"],
        ["r", "data2", src_disks["data2"]["id"], "4M", "301", str(dst.node_id), "2"]], rows
    out = disagg("--url", f"http://{dc.addr}", "volume", "show", "data1", env=env).stdout
    assert f"on compute node {dst.node_id}" in out and "epoch:          2" in out, out

    # The epochs are in the store: a restarted orchestrator mints the next one.
    dc.stop()
    dc.start()
    assert volume(dc, "data1")["epoch"] == 2
    assert detach(dc, "r", "data1")[0] == 200
    assert attach(dc, "a", "data1")[0] == 201
    g = grant_fields(fd.calls("attach")[-1][3]["grant"])
    assert g[1] == fake_of(dc, "a").node_id and g[5] == 3
    assert volume(dc, "data1")["holder"] == fake_of(dc, "a").node_id
    st, gr = dc.call("POST", "/v1/volumes/data2/grant", {"holder": dst.node_id, "rights": "r"})
    assert st == 200 and gr["epoch"] == 2 and grant_fields(gr["grant"])[5] == 2, gr


def test_failures_before_the_switchover(moved):
    """The destination refuses the VM, then the source fails before the
    switchover: each time the epoch was raised but nobody opened the volume
    with it, so the source keeps writing at its older one; the retries
    raise it again, and the move that succeeds fences the source."""
    dc, src, dst, (conn, h) = moved
    dst.fail_create = (503, "internal")
    st, ans = migrate(dc, "r", dst.node_id)
    dst.fail_create = None
    assert st == 503 and err(ans) == "migration_failed", ans
    src.fail_migrate = (503, "migration_failed")
    st, ans = migrate(dc, "r", dst.node_id)
    src.fail_migrate = None
    assert st == 503 and err(ans) == "migration_failed", ans
    assert "r" not in dst.vms                  # its incoming VM was deleted
    for name in ("data1", "data2"):
        v = volume(dc, name)
        assert (v["state"], v["holder"], v["epoch"]) == ("ready", src.node_id, 3), v
    s = dc.call("GET", "/v1/slots/r")[1]
    assert s["state"] == "running" and s["compute"] == src.node_id, s
    assert not events(dc, "volume_moved")
    conn.blk_write(h, 512, b"t" * 512)         # the source still writes
    conn.blk_flush(h)

    st, ans = migrate(dc, "r", dst.node_id)
    assert st == 200, ans
    epochs = [[grant_fields(d["grant"])[5] for d in b["disks"]] for b in incoming_bodies(dst)]
    assert epochs == [[2, 2], [3, 3], [4, 4]], epochs
    assert status_of(lambda: conn.blk_write(h, 0, b"z" * 512)) == "FENCED"
    assert volume(dc, "data1")["epoch"] == 4 and volume(dc, "data1")["holder"] == dst.node_id


def test_an_agent_that_cannot_say_where_a_disk_is(moved):
    """No `pci` for a disk (an older agent), or no such disk at all: 409, the
    slot stays, no volume changed, the destination was not asked."""
    dc, src, dst, _ = moved
    disk = next(d for d in src.vms["r"]["disks"].values() if d["volume"] == "data2")
    pci, disk["pci"] = disk["pci"], None
    st, ans = migrate(dc, "r", dst.node_id)
    assert st == 409 and err(ans) == "disk_not_movable", ans
    assert "data2" in ans["error"]["message"] and "pci" in ans["error"]["message"]
    disk["pci"] = pci
    gone = src.vms["r"]["disks"].pop(disk["id"])
    st, ans = migrate(dc, "r", dst.node_id)
    src.vms["r"]["disks"][disk["id"]] = gone
    assert st == 409 and err(ans) == "disk_not_attached", ans
    assert not incoming_bodies(dst)
    for name in ("data1", "data2"):
        v = volume(dc, name)
        assert (v["state"], v["epoch"], v["holder"]) == ("ready", 1, src.node_id), v
    s = dc.call("GET", "/v1/slots/r")[1]
    assert s["state"] == "running" and s["compute"] == src.node_id
    st, ans = migrate(dc, "r", dst.node_id)
    assert st == 200, ans


def test_answer_lost_while_the_source_migrates(moved):
    """The source's answer is lost while it migrates: the volumes stay
    `migrating` (no detach meanwhile) until the source says `migrated`; then
    they are the destination's, at the new epoch."""
    dc, src, dst, _ = moved
    src.migrate_hangup = True
    out = {}
    t = threading.Thread(target=lambda: out.update(r=Api(dc.addr, token=dc.auth.token).call(
        "POST", "/v1/slots/r/migrate", {"to": dst.node_id})))
    t.start()
    end = time.time() + 10
    while time.time() < end and not src.vms["r"].get("migrating"):
        time.sleep(0.01)
    assert volume(dc, "data1")["state"] == "migrating"
    st, ans = detach(dc, "r", "data1")
    assert st == 409 and err(ans) == "busy", ans
    flip_later(0, (dst, "r", {"state": "running"}),
               (src, "r", {"state": "migrated", "migrating": False})).join()
    t.join(60)
    st, ans = out["r"]
    assert st == 200, ans
    v = volume(dc, "data1")
    assert (v["state"], v["holder"], v["epoch"]) == ("ready", dst.node_id, 2), v


def test_restart_in_the_middle(dc):
    """A volume an earlier run left `migrating` is `ready` again at start,
    attached to its slot wherever the slot's own recovery found it."""
    assert attach(dc, "r", "data1")[0] == 201
    dc.stop()
    db = sqlite3.connect(dc.db, timeout=10)
    db.execute("UPDATE volumes SET state = 'migrating', run = 12345 WHERE name = 'data1'")
    db.execute("UPDATE volume_epochs SET epoch = 2 WHERE volume_id = "
               "(SELECT id FROM volumes WHERE name = 'data1')")
    db.commit()
    db.close()
    dc.start()
    v = volume(dc, "data1")
    assert (v["state"], v["attached"], v["epoch"]) == ("ready", "r", 2), v
    assert v["holder"] == dc.call("GET", "/v1/slots/r")[1]["compute"]
    assert any("migrating" in e["message"] for e in events(dc, "volume_settled"))


def test_memory_migration_of_a_slot_with_disks(dc):
    n = dc.mem.add(102, nsections=8)
    dc.hb.register(dc.mem.registration(102), capacity=lambda: {"sections_free": n.free})
    assert attach(dc, "r", "data1")[0] == 201
    st, ans = dc.call("POST", "/v1/slots/r/migrate-memory", {"from": 101, "to": 102})
    assert st == 200, ans
    v = volume(dc, "data1")
    assert (v["attached"], v["epoch"], v["state"]) == ("r", 1, "ready"), v


def test_the_fake_checks_incoming_disks(dc):
    """The fake agent takes an incoming VM's disks as the real one documents
    them: an attach's body plus the source's id and pci; a bad entry is 400
    and no VM is made."""
    fake = dc.c1
    api = Api(fake.http, token=fake.auth.orch_token(fake.node_id) if fake.auth else None)
    good = {"volume": "data1", "devnode": dc.d301.addr, "grant": "00" * dp.GRANT.size,
            "read_only": False, "serial": "data1", "id": "disk0", "pci": "0000:00:18.0"}
    base = {"name": "x", "vcpus": 1, "sections": [{"kind": "local"}],
            "incoming": {"listen": "127.0.0.1:0"}}
    for bad in ({k: v for k, v in good.items() if k != "pci"}, dict(good, id="vd0"),
                dict(good, colour=1), dict(good, grant="zz"), dict(good, read_only="no"),
                dict(good, pci="00:18.0")):
        st, ans = api.call("POST", "/v1/vms", dict(base, disks=[bad]))
        assert st == 400, (bad, ans)
    st, ans = api.call("POST", "/v1/vms", dict(base, disks=[good, dict(good, volume="data2")]))
    assert st == 400, ans                         # the same id twice
    assert "x" not in fake.vms
    st, ans = api.call("POST", "/v1/vms", dict(base, disks=[good]))
    assert st == 201 and ans["disks"][0]["pci"] == "0000:00:18.0", ans
    assert ans["disks"][0]["id"] == "disk0" and "conn" not in fake.vms["x"]["disks"]["disk0"]
    assert not fake.schema_errors
