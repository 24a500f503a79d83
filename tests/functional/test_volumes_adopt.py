# SPDX-License-Identifier: MIT
"""Volumes a device node has already, brought into the catalog (docs/api.md,
"Volumes": POST /v1/volumes/NAME/adopt; docs/cli.md: `disagg volume
adopt`): a real orchestrator and a real device node.

A file volume made on the node directly (VOL_CREATE from the test's own
fabric client, as disagg-dnctl would): adopted with its size and key,
listed and shown with its kind, cloned from, and deleted on the node like
any; the refusals (404 no such volume on the node, 404 no such device
node, 400 not a device node, 409 in the catalog already, 503 node down).

A block device (a loop device over a sparse file, served with
--block-device; skipped where there is none): adopted as kind block,
attached to a slot through the API (the fake compute agent opens it on the
real device node with the orchestrator's grant, so key and epoch are
checked there) and detached, cloned from (a file), its resize refused
(409 block_device), its delete a forget (the node keeps serving it, and it
can be adopted again), the CLI's words for all of it, and a compute
migration of its slot (the destination opens it at the next epoch). And a database
of schema version 11 migrated: its volumes read as files."""
import re
import sqlite3

import pytest

import dproto as dp
import fake_disks as fd
from test_cli import cli_env, disagg, table
from test_devnode_blockdev import SIZE, loopdev  # noqa: F401
from test_disks import attach, detach, disk_cluster, fake_of, volume
from test_orchestrator import computes, err, hb_factory, orch_factory  # noqa: F401
from test_volumes import cl, events, on_node  # noqa: F401

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _fresh_log():
    fd.LOG.clear()


@pytest.fixture
def bc(loopdev, tmp_path, keyfile, key, orch_factory, computes, hb_factory):  # noqa: F811
    """test_disks' cluster, its device node 301 also serving the loop device as `fast0`."""
    dev, _img = loopdev
    yield from disk_cluster(tmp_path, keyfile, key, orch_factory, computes, hb_factory,
                            devnode_extra=["--block-device", f"fast0={dev}"])


def make_on_node(key, d, name, size):
    """A file volume made on the device node itself, behind the catalog's back."""
    c = dp.DevConn(d.addr, tls=False).login(key, 1)
    try:
        return c.vol("VOL_CREATE", name, size)
    finally:
        c.close()


def adopt(o, name, devnode, **kw):
    return o.call("POST", f"/v1/volumes/{name}/adopt", {"devnode": devnode, **kw})


def cli_of(o):
    env = cli_env(DISAGG_TOKEN=o.auth.token)

    def cli(*args, rc=0):
        return disagg("--url", f"http://{o.addr}", *args, env=env, check_rc=rc)
    return cli


# ---------------------------------------------------------------------------

def test_adopt_a_file_volume(cl, key):
    d = cl.devnodes.start(301)
    made = make_on_node(key, d, "outside", 4 * MiB)
    assert cl.call("GET", "/v1/volumes")[1]["volumes"] == []     # not in the catalog yet

    st, v = adopt(cl, "outside", 301)
    assert st == 201, v
    assert v["name"] == "outside" and v["state"] == "ready" and v["devnode"] == 301
    assert v["kind"] == "file" and v["resizable"] is True and v["delete"] == "node"
    assert v["size"] == 4 * MiB and int(v["key"], 16) == made["key"] and v["epoch"] == 0
    ev = events(cl, "volume_adopted")
    assert len(ev) == 1 and "a file of 4194304 bytes" in ev[0]["message"], ev
    assert [x["name"] for x in cl.call("GET", "/v1/volumes")[1]["volumes"]] == ["outside"]

    # The refusals.
    st, ans = adopt(cl, "outside", 301)
    assert st == 409 and err(ans) == "exists" and "in the catalog already" in \
        ans["error"]["message"], ans
    st, ans = adopt(cl, "nothere", 301)
    assert st == 404 and err(ans) == "not_found" and "has no volume nothere" in \
        ans["error"]["message"], ans
    assert cl.call("GET", "/v1/volumes/nothere")[0] == 404          # no row left behind
    st, ans = adopt(cl, "outside2", 399)
    assert st == 404 and err(ans) == "not_found" and "no device node 399" in \
        ans["error"]["message"], ans
    st, ans = adopt(cl, "outside", 7)
    assert st == 400 and "not a device node" in ans["error"]["message"], ans
    st, ans = cl.call("POST", "/v1/volumes/outside/adopt", {})
    assert st == 400 and "\"devnode\"" in ans["error"]["message"], ans
    st, ans = cl.call("POST", "/v1/volumes/Bad!/adopt", {"devnode": 301})
    assert st in (400, 404), ans

    # Like any: cloned from, resized, deleted on the node.
    st, c = cl.call("POST", "/v1/volumes", {"name": "copy", "from": "outside"})
    assert st == 201 and c["kind"] == "file" and c["origin"] == "outside", c
    st, r = cl.call("POST", "/v1/volumes/outside/resize", {"size": "8M"})
    assert st == 200 and r["size"] == 8 * MiB, r
    assert cl.call("DELETE", "/v1/volumes/outside")[0] == 204
    assert "outside" not in on_node(key, d)

    # Its device node down: 503, and nothing recorded.
    make_on_node(key, d, "later", MiB)
    d.kill9()
    st, ans = adopt(cl, "later", 301)
    assert st == 503 and err(ans) == "node_unreachable", ans
    assert cl.call("GET", "/v1/volumes/later")[0] == 404


def test_adopt_a_block_device(bc, key):
    cli = cli_of(bc)
    assert on_node(key, bc.d301)["fast0"]["kind"] == "block"
    p = cli("volume", "adopt", "fast0", "--devnode", "301")
    assert p.stdout == "volume fast0 adopted: a block device of 64M on device node 301\n", \
        p.stdout
    v = volume(bc, "fast0")
    assert v["kind"] == "block" and v["resizable"] is False and v["delete"] == "forget"
    assert v["size"] == SIZE and int(v["key"], 16) == on_node(key, bc.d301)["fast0"]["key"]
    assert v["allocated"] == SIZE and v["open"] == 0

    head, rows = table(cli("volume", "ls").stdout)
    assert head[:4] == ["NAME", "STATE", "KIND", "SIZE"]
    assert [r[:4] for r in rows] == [["data1", "ready", "file", "8M"],
                                     ["data2", "ready", "file", "4M"],
                                     ["fast0", "ready", "block", "64M"]]
    p = cli("volume", "show", "fast0")
    assert re.search(r"^kind:\s+block: a block device the device node serves \(it cannot be "
                     r"resized,$", p.stdout, re.M), p.stdout

    # Resize: refused, the node is not asked.
    st, ans = bc.call("POST", "/v1/volumes/fast0/resize", {"size": "128M"})
    assert st == 409 and err(ans) == "block_device" and "cannot be resized" in \
        ans["error"]["message"], ans
    p = cli("volume", "resize", "fast0", "32M", "--shrink", rc=1)
    assert "(409 block_device)" in p.stderr
    assert volume(bc, "fast0")["state"] == "ready"

    # Attached to a slot: the agent opens it on the device node with the grant minted
    # from the adopted key (the real device node checks it), at epoch 1.
    st, dsk = attach(bc, "a", "fast0")
    assert st == 201, dsk
    assert dsk["volume"] == "fast0" and dsk["size"] == SIZE and dsk["devnode"] == 301
    fake = fake_of(bc, "a")
    (entry,) = fd.calls("attach")
    assert entry[0] == fake.node_id and entry[3]["devnode"] == bc.d301.addr
    mem, holder, sec, gen, rights, epoch, _exp = fd.grant_of(entry)
    k = int(v["key"], 16)
    assert (mem, holder, sec, gen, epoch) == (301, fake.node_id, k & 0xffffffff, k >> 32, 1)
    v = volume(bc, "fast0")
    assert v["attached"] == "a" and v["open"] == 1 and v["epoch"] == 1
    st, ans = bc.call("DELETE", "/v1/volumes/fast0")
    assert st == 409 and err(ans) == "volume_attached", ans
    st, ans = detach(bc, "a", "fast0")
    assert st == 200, ans
    assert volume(bc, "fast0")["open"] == 0

    # Cloned from: the clone is a file on the same node.
    st, c = bc.call("POST", "/v1/volumes", {"name": "fastcopy", "from": "fast0"})
    assert st == 201 and c["kind"] == "file" and c["size"] == SIZE, c

    # Delete forgets: the node keeps serving it, and it can be adopted again.
    p = cli("volume", "delete", "fast0")
    assert p.stdout.startswith("volume fast0 forgotten: removed from the catalog only; "
                               "device node 301 keeps serving its block device"), p.stdout
    assert bc.call("GET", "/v1/volumes/fast0")[0] == 404
    assert "fast0" in on_node(key, bc.d301)
    assert len(events(bc, "volume_forgotten")) == 1
    st, again = adopt(bc, "fast0", 301)
    assert st == 201 and again["kind"] == "block", again
    st, ans = bc.call("DELETE", "/v1/volumes/fast0")
    assert st == 200 and ans["forgotten"] is True and ans["devnode"] == 301, ans
    p = cli("volume", "adopt", "fast0", rc=2)
    assert "--devnode" in p.stderr


def test_a_database_of_version_11_reads_its_volumes_as_files(cl, key):
    cl.devnodes.start(301)
    assert cl.call("POST", "/v1/volumes", {"name": "old", "size": MiB})[0] == 201
    cl.stop()
    db = sqlite3.connect(cl.db)
    db.execute("ALTER TABLE volumes DROP COLUMN kind")
    for t, c in (("slots", "replicas"), ("sections", "state"), ("sections", "reason")):
        db.execute(f"ALTER TABLE {t} DROP COLUMN {c}")   # nor replicas (version 13's)
    db.execute("PRAGMA user_version = 11")
    db.commit()
    db.close()
    cl.start()
    assert volume(cl, "old")["kind"] == "file"
    db = sqlite3.connect(cl.db)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 13
    db.close()


def test_an_adopted_block_device_moves_with_its_slot(bc, key):
    assert adopt(bc, "fast0", 301)[0] == 201
    assert attach(bc, "r", "fast0")[0] == 201
    src = fake_of(bc, "r")
    dst = bc.c2 if src is bc.c1 else bc.c1
    st, ans = bc.call("POST", "/v1/slots/r/migrate", {"to": dst.node_id})
    assert st == 200 and ans["slot"]["compute"] == dst.node_id, ans
    # The destination opened it on the real device node with its grant of epoch 2.
    (disk,) = dst.vms["r"]["disks"].values()
    assert disk["volume"] == "fast0" and "conn" in disk and "open_error" not in disk, disk
    v = volume(bc, "fast0")
    assert (v["attached"], v["holder"], v["epoch"], v["kind"], v["open"]) == \
        ("r", dst.node_id, 2, "block", 1), v
    # Its kind is in the store.
    bc.stop()
    bc.start()
    assert volume(bc, "fast0")["kind"] == "block"
    st, ans = bc.call("POST", "/v1/volumes/fast0/resize", {"size": "128M"})
    assert st == 409 and err(ans) == "block_device", ans

    # Forgotten at epoch 2: adopted again at epoch 0, the node refuses the next
    # attach's writable open (its epoch 1 is over); adopted at the epoch the
    # forget named, it attaches at epoch 3.
    assert detach(bc, "r", "fast0")[0] == 200
    st, ans = bc.call("DELETE", "/v1/volumes/fast0")
    assert st == 200 and ans["epoch"] == 2 and "adopt it again with epoch 2" in ans["message"]
    assert adopt(bc, "fast0", 301)[0] == 201
    st, ans = attach(bc, "a", "fast0")
    assert st == 502 and err(ans) == "attach_failed", ans
    assert volume(bc, "fast0")["attached"] is None
    assert bc.call("DELETE", "/v1/volumes/fast0")[0] == 200
    assert adopt(bc, "fast0", 301, epoch=2)[0] == 201
    st, ans = attach(bc, "a", "fast0")
    assert st == 201, ans
    assert volume(bc, "fast0")["epoch"] == 3
