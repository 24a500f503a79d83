# SPDX-License-Identifier: MIT
"""The volume catalog (docs/api.md, "Volumes"; docs/cli.md, "Volumes"): a
real orchestrator and real device nodes (disagg-devnode, registered with
it), driven through the REST API and through `disagg volume ...`:
create, list, show, clone, resize, delete, placement, the refusals (400,
404, 409), a device node killed (503) and back, grants that open the
volume on the device node (the independent Python client, and
disagg-dnctl --grant), settling after a restart, and `disagg up` with a
device node end to end."""
import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

import dproto as dp
import progs
from conftest import Daemon, find_prog
from test_cli import check_down, cli_env, disagg, real_up, table
from test_orchestrator import orch_factory  # noqa: F401

MiB = 1 << 20
GiB = 1 << 30
CLIENT = 7           # the compute node that holds grants
OTHER = 8            # another compute node


class Devnodes:
    """Real device nodes registered with the test's orchestrator."""

    def __init__(self, tmp_path, keyfile, orch):
        self.tmp, self.keyfile, self.orch = tmp_path, keyfile, orch
        self.daemons = {}

    def start(self, node_id, listen="127.0.0.1:0", extra=()):
        data = self.tmp / f"devnode-{node_id}.data"
        argv = [find_prog("disagg-devnode"), "--data", str(data), "--listen", listen, *extra,
                "--key", self.keyfile, "--grant-pubkey", dp.grant_files(self.keyfile)[1],
                "--node-id", str(node_id), "--fabric-plaintext",
                "--orchestrator", f"http://{self.orch.addr}",
                "--node-credential", self.orch.auth.cred_file(node_id)]
        d = Daemon(argv, str(self.tmp / f"devnode-{node_id}-{time.time_ns()}.log"),
                   r"listening on (\S+)")
        d.node_id, d.data = node_id, data
        self.daemons[node_id] = d
        dp.wait_for(lambda: node(self.orch, node_id).get("state") == "up"
                    and node(self.orch, node_id).get("addr") == d.addr, timeout=15)
        return d

    def stop_all(self):
        for d in self.daemons.values():
            if d.alive():
                assert d.stop() == 0, d.stderr()[-3000:]


def node(orch, node_id):
    st, ans = orch.call("GET", f"/v1/nodes/{node_id}")
    return ans if st == 200 else {}


def register_compute(orch, node_id):
    st, ans = orch.call("POST", "/v1/nodes/register",
                        {"node_id": node_id, "kind": "compute", "http": "127.0.0.1:1",
                         "vcpus": 2})
    assert st == 200, ans


@pytest.fixture
def cl(tmp_path, keyfile, orch_factory):  # noqa: F811
    """An orchestrator on a plaintext fabric (device nodes speak no TLS yet),
    a node timeout of 3 s (heartbeats every second), compute nodes 7 and 8
    registered, and a factory of device nodes."""
    progs.CURRENT = None
    orch = orch_factory(timeout=3, extra=["--fabric-plaintext"])
    register_compute(orch, CLIENT)
    register_compute(orch, OTHER)
    dn = Devnodes(tmp_path, keyfile, orch)
    orch.devnodes = dn
    yield orch
    dn.stop_all()


def err(ans):
    return ans["error"]["code"]


def events(orch, kind):
    st, ans = orch.call("GET", "/v1/events?limit=10000")
    return [e for e in ans["events"] if e["kind"] == kind]


def on_node(key, d):
    """The volumes the device node itself lists, by name."""
    c = dp.DevConn(d.addr, tls=False).login(key, 1)
    try:
        return {v["name"]: v for v in c.vol_list()[0]}
    finally:
        c.close()


def open_with(d, key, name, grant_hex, holder=CLIENT, flags=0):
    c = dp.DevConn(d.addr, tls=False).login(key, holder, orch=False)
    h, size = c.blk_open(bytes.fromhex(grant_hex), name, flags)
    return c, h, size


# ---------------------------------------------------------------------------

def test_volume_lifecycle_through_the_api(cl, key):
    d = cl.devnodes.start(301)
    st, v = cl.call("POST", "/v1/volumes", {"name": "disk-a", "size": "8M"})
    assert st == 201, v
    assert v["name"] == "disk-a" and v["state"] == "ready" and v["devnode"] == 301
    assert v["size"] == 8 * MiB and len(v["key"]) == 16 and v["image"] is False
    assert v["origin"] is None and v["attached"] is None and v["created"].endswith("Z")
    # The catalog and the device node agree: same volume, same key.
    assert on_node(key, d)["disk-a"]["key"] == int(v["key"], 16)

    st, img = cl.call("POST", "/v1/volumes", {"name": "base", "size": 4 * MiB, "image": True})
    assert st == 201 and img["image"] is True and img["size"] == 4 * MiB
    st, ans = cl.call("GET", "/v1/volumes")
    assert st == 200 and [x["name"] for x in ans["volumes"]] == ["base", "disk-a"]
    st, ans = cl.call("GET", "/v1/volumes?devnode=301")
    assert len(ans["volumes"]) == 2
    assert cl.call("GET", "/v1/volumes?devnode=302")[1]["volumes"] == []

    st, one = cl.call("GET", "/v1/volumes/disk-a")
    assert st == 200 and one["allocated"] == 0 and one["open"] == 0
    assert one["key"] == v["key"]

    # A clone: on the source's node, a new key, grown to the size asked for.
    st, c = cl.call("POST", "/v1/volumes", {"name": "disk-b", "from": "disk-a", "size": "16M"})
    assert st == 201, c
    assert c["origin"] == "disk-a" and c["devnode"] == 301 and c["size"] == 16 * MiB
    assert c["key"] != v["key"]
    st, c2 = cl.call("POST", "/v1/volumes", {"name": "disk-c", "from": "disk-a"})
    assert st == 201 and c2["size"] == 8 * MiB
    assert cl.call("GET", "/v1/volumes/disk-a")[1]["state"] == "ready"   # the source is back

    # Resize: grow, shrink only when asked, the key stays.
    st, r = cl.call("POST", "/v1/volumes/disk-b/resize", {"size": "32M"})
    assert st == 200 and r["size"] == 32 * MiB and r["key"] == c["key"]
    st, ans = cl.call("POST", "/v1/volumes/disk-b/resize", {"size": "1M"})
    assert st == 400 and err(ans) == "bad_size" and "shrink" in ans["error"]["message"]
    st, r = cl.call("POST", "/v1/volumes/disk-b/resize", {"size": MiB, "shrink": True})
    assert st == 200 and r["size"] == MiB
    assert on_node(key, d)["disk-b"]["size"] == MiB
    st, r = cl.call("POST", "/v1/volumes/disk-b/resize", {"size": MiB})
    assert st == 200 and r["size"] == MiB          # the same size: nothing to do

    # Delete: gone from both.
    st, _ = cl.call("DELETE", "/v1/volumes/disk-b")
    assert st == 204
    assert cl.call("GET", "/v1/volumes/disk-b")[0] == 404
    assert "disk-b" not in on_node(key, d)
    assert sorted(on_node(key, d)) == ["base", "disk-a", "disk-c"]

    kinds = {k: [e["message"] for e in events(cl, k)]
             for k in ("volume_created", "volume_cloned", "volume_resized", "volume_deleted")}
    assert len(kinds["volume_created"]) == 2 and len(kinds["volume_cloned"]) == 2
    assert "volume disk-b: a clone of disk-a" in kinds["volume_cloned"][0]
    assert len(kinds["volume_resized"]) == 2 and len(kinds["volume_deleted"]) == 1
    assert all(e["node"] == 301 for e in events(cl, "volume_deleted"))

    # The device node's report reaches GET /v1/nodes; metrics count the catalog.
    dp.wait_for(lambda: node(cl, 301).get("volumes") == 3, timeout=10)
    n = node(cl, 301)
    assert n["catalog_volumes"] == 3 and n["catalog_bytes"] == 20 * MiB
    st, text = cl.call("GET", "/metrics")
    assert 'disagg_orch_volumes{state="ready"} 3' in text
    assert "disagg_orch_volume_bytes 20971520" in text
    assert 'route="volumes_create"' in text


def test_refusals(cl, key):
    cl.devnodes.start(301)
    assert cl.call("POST", "/v1/volumes", {"name": "a", "size": MiB})[0] == 201

    def post(body, path="/v1/volumes"):
        return cl.call("POST", path, body)

    for body, code, field in [
        ({"name": "Bad", "size": MiB}, "bad_request", '"name"'),
        ({"name": "-a", "size": MiB}, "bad_request", '"name"'),
        ({"name": "x" * 64, "size": MiB}, "bad_request", '"name"'),
        ({"name": 5, "size": MiB}, "bad_request", '"name"'),
        ({"size": MiB}, "bad_request", '"name"'),
        ({"name": "b"}, "bad_size", '"size"'),
        ({"name": "b", "size": 1000}, "bad_size", '"size"'),
        ({"name": "b", "size": 0}, "bad_size", '"size"'),
        ({"name": "b", "size": "lots"}, "bad_size", '"size"'),
        ({"name": "b", "size": "17T"}, "bad_size", '"size"'),
        ({"name": "b", "size": MiB, "devnode": "x"}, "bad_request", '"devnode"'),
        ({"name": "b", "size": MiB, "devnode": 0}, "bad_request", '"devnode"'),
        ({"name": "b", "size": MiB, "image": "yes"}, "bad_request", '"image"'),
        ({"name": "b", "from": "A"}, "bad_request", '"from"'),
        ({"name": "b", "size": MiB, "colour": "red"}, "unknown_field", "colour"),
        ({"name": "b", "from": "a", "size": 512}, "bad_size", '"size"'),
        ({"name": "b", "from": "a", "devnode": 302}, "bad_request", '"devnode"'),
    ]:
        st, ans = post(body)
        assert st == 400 and err(ans) == code and field in ans["error"]["message"], (body, ans)
    st, ans = post({"name": "b", "size": MiB, "devnode": 9999})
    assert st == 404 and "no device node 9999" in ans["error"]["message"]
    st, ans = post({"name": "b", "size": MiB, "devnode": CLIENT})
    assert st == 400 and "not a device node" in ans["error"]["message"]
    st, ans = post({"name": "b", "from": "nope"})
    assert st == 404 and ans["error"]["message"] == "unknown volume nope"
    st, ans = post({"name": "a", "size": MiB})
    assert st == 409 and err(ans) == "exists"
    st, ans = post({"name": "a", "from": "a"})
    assert st == 409 and err(ans) == "exists"
    assert cl.call("GET", "/v1/volumes/a")[1]["state"] == "ready"
    # The names of the catalog are the cluster's: refused before any node is asked.
    assert [x["name"] for x in cl.call("GET", "/v1/volumes")[1]["volumes"]] == ["a"]
    assert len(events(cl, "volume_create_failed")) == 0

    for method, path, body in [("GET", "/v1/volumes/nope", None),
                               ("DELETE", "/v1/volumes/nope", None),
                               ("POST", "/v1/volumes/nope/resize", {"size": MiB}),
                               ("POST", "/v1/volumes/nope/grant", {"holder": CLIENT})]:
        st, ans = cl.call(method, path, body)
        assert st == 404 and err(ans) == "not_found", (path, ans)
    assert cl.call("PUT", "/v1/volumes")[0] == 405
    assert cl.call("POST", "/v1/volumes/a")[0] == 405
    assert cl.call("GET", "/v1/volumes/a/resize")[0] == 405
    assert cl.call("POST", "/v1/volumes/a/explode", {})[0] == 404
    assert cl.call("GET", "/v1/volumes?devnode=x")[0] == 400
    st, ans = post({}, "/v1/volumes/a/resize")
    assert st == 400 and err(ans) == "bad_size"
    st, ans = post({"size": MiB, "shrink": 1}, "/v1/volumes/a/resize")
    assert st == 400 and '"shrink"' in ans["error"]["message"]
    for body, field in [({}, '"holder"'), ({"holder": "7"}, '"holder"'),
                        ({"holder": CLIENT, "rights": "w"}, '"rights"'),
                        ({"holder": CLIENT, "ttl": 5}, '"ttl"'),
                        ({"holder": CLIENT, "ttl": 86401}, '"ttl"')]:
        st, ans = post(body, "/v1/volumes/a/grant")
        assert st == 400 and field in ans["error"]["message"], (body, ans)
    st, ans = post({"holder": 301}, "/v1/volumes/a/grant")
    assert st == 400 and "not a compute node" in ans["error"]["message"]
    st, ans = post({"holder": 4242}, "/v1/volumes/a/grant")
    assert st == 404 and "not registered" in ans["error"]["message"]


def test_attached_volumes_are_kept(cl, key, tmp_path):
    """Attach comes later; its column exists: a volume attached to a slot
    cannot be deleted or shrunk (set here in the database by hand)."""
    cl.devnodes.start(301)
    assert cl.call("POST", "/v1/volumes", {"name": "a", "size": 4 * MiB})[0] == 201
    db = sqlite3.connect(cl.db, timeout=10)
    db.execute("INSERT INTO slots (name, state, vcpus, memory, remote_percent, cache, compute, "
               "policy, hotplug, created) VALUES ('web', 'running', 1, 0, 100, -1, ?, "
               "'spread', 'dimm', 0)", (CLIENT,))
    db.execute("UPDATE volumes SET slot_id = (SELECT id FROM slots WHERE name = 'web') "
               "WHERE name = 'a'")
    db.commit()
    assert cl.call("GET", "/v1/volumes/a")[1]["attached"] == "web"
    st, ans = cl.call("DELETE", "/v1/volumes/a")
    assert st == 409 and err(ans) == "volume_attached" and "slot web" in ans["error"]["message"]
    st, ans = cl.call("POST", "/v1/volumes/a/resize", {"size": MiB, "shrink": True})
    assert st == 409 and err(ans) == "volume_attached"
    st, ans = cl.call("POST", "/v1/volumes/a/resize", {"size": 8 * MiB})
    assert st == 200 and ans["size"] == 8 * MiB          # growing is fine
    db.execute("DELETE FROM slots WHERE name = 'web'")
    db.execute("UPDATE volumes SET slot_id = NULL WHERE name = 'a'")
    db.commit()
    db.close()
    assert cl.call("DELETE", "/v1/volumes/a")[0] == 204


def test_a_volume_open_on_its_node_is_not_deleted(cl, key):
    d = cl.devnodes.start(301)
    cl.call("POST", "/v1/volumes", {"name": "a", "size": 4 * MiB})
    g = cl.call("POST", "/v1/volumes/a/grant", {"holder": CLIENT})[1]
    c, h, size = open_with(d, key, "a", g["grant"])
    st, ans = cl.call("DELETE", "/v1/volumes/a")
    assert st == 409 and err(ans) == "volume_open", ans
    st, ans = cl.call("POST", "/v1/volumes/a/resize", {"size": MiB, "shrink": True})
    assert st == 409 and err(ans) == "volume_open", ans
    v = cl.call("GET", "/v1/volumes/a")[1]
    assert v["state"] == "ready" and v["size"] == 4 * MiB and v["open"] == 1
    c.blk_close(h)
    c.close()
    assert cl.call("DELETE", "/v1/volumes/a")[0] == 204


def test_placement(cl, key):
    a, b = cl.devnodes.start(301), cl.devnodes.start(302)

    def create(name, size, **kw):
        st, v = cl.call("POST", "/v1/volumes", {"name": name, "size": size, **kw})
        assert st == 201, v
        return v["devnode"]

    # Nothing allocated anywhere: the fewest bytes in the catalog, then the lowest id.
    assert create("v1", 64 * MiB) == 301
    assert create("v2", MiB) == 302
    # The bytes on disk come first: write 1 MiB into v2, wait for 302's report.
    g = cl.call("POST", "/v1/volumes/v2/grant", {"holder": CLIENT})[1]
    c, h, _ = open_with(b, key, "v2", g["grant"])
    c.blk_write(h, 0, os.urandom(MiB))
    c.blk_flush(h)
    c.blk_close(h)
    c.close()
    dp.wait_for(lambda: (node(cl, 302).get("volume_bytes_allocated") or 0) >= MiB, timeout=10)
    assert create("v3", MiB) == 301      # 301: more in its catalog, nothing on its disk
    assert create("v4", MiB, devnode=302) == 302
    # Drained: not picked, and refused when named.
    assert cl.call("POST", "/v1/nodes/301/drain")[0] == 200
    assert create("v5", MiB) == 302
    st, ans = cl.call("POST", "/v1/volumes", {"name": "v6", "size": MiB, "devnode": 301})
    assert st == 409 and err(ans) == "conflict" and "drained" in ans["error"]["message"]
    assert cl.call("POST", "/v1/nodes/302/drain")[0] == 200
    st, ans = cl.call("POST", "/v1/volumes", {"name": "v6", "size": MiB})
    assert st == 409 and err(ans) == "capacity"
    for n in (301, 302):
        cl.call("POST", f"/v1/nodes/{n}/undrain")
    assert {x["name"]: x["devnode"] for x in cl.call("GET", "/v1/volumes")[1]["volumes"]} == {
        "v1": 301, "v2": 302, "v3": 301, "v4": 302, "v5": 302}
    assert sorted(on_node(key, a)) == ["v1", "v3"]
    assert sorted(on_node(key, b)) == ["v2", "v4", "v5"]


def test_a_device_node_down_gives_503_then_works_again(cl, key):
    d = cl.devnodes.start(301)
    port = d.addr.rsplit(":", 1)[1]
    cl.call("POST", "/v1/volumes", {"name": "a", "size": 4 * MiB})
    d.kill9()
    for method, path, body in [("POST", "/v1/volumes", {"name": "b", "size": MiB,
                                                        "devnode": 301}),
                               ("POST", "/v1/volumes", {"name": "c", "from": "a"}),
                               ("POST", "/v1/volumes/a/resize", {"size": 8 * MiB}),
                               ("DELETE", "/v1/volumes/a", None)]:
        st, ans = cl.call(method, path, body)
        assert st == 503 and err(ans) == "node_unreachable", (path, ans)
        assert f"device node 301 (devnode-301 at {d.addr}) does not answer" in \
            ans["error"]["message"], ans
    # Nothing changed in the catalog; show still answers, saying why it knows less.
    vols = cl.call("GET", "/v1/volumes")[1]["volumes"]
    assert [(x["name"], x["state"], x["size"]) for x in vols] == [("a", "ready", 4 * MiB)]
    v = cl.call("GET", "/v1/volumes/a")[1]
    assert "allocated" not in v and "refused" in v["devnode_error"].lower()
    # Once the orchestrator marks it down, placement has no node to offer: 503.
    dp.wait_for(lambda: node(cl, 301)["state"] == "down", timeout=15)
    st, ans = cl.call("POST", "/v1/volumes", {"name": "b", "size": MiB})
    assert st == 503 and err(ans) == "node_unreachable" and "no device node is up" in \
        ans["error"]["message"]
    # Back on the same port and data: everything works again.
    d2 = cl.devnodes.start(301, listen=f"127.0.0.1:{port}")
    assert cl.call("POST", "/v1/volumes/a/resize", {"size": 8 * MiB})[1]["size"] == 8 * MiB
    assert cl.call("POST", "/v1/volumes", {"name": "b", "size": MiB})[0] == 201
    assert cl.call("DELETE", "/v1/volumes/a")[0] == 204
    assert sorted(on_node(key, d2)) == ["b"]


def test_grants_open_the_volume_on_the_device_node(cl, key, tmp_path):
    d = cl.devnodes.start(301)
    v = cl.call("POST", "/v1/volumes", {"name": "disk", "size": 4 * MiB})[1]
    st, g = cl.call("POST", "/v1/volumes/disk/grant", {"holder": CLIENT})
    assert st == 200, g
    assert g["volume"] == "disk" and g["devnode"] == 301 and g["addr"] == d.addr
    assert g["holder"] == CLIENT and g["rights"] == "rw" and g["key"] == v["key"]
    assert g["size"] == 4 * MiB and len(g["grant"]) == 208
    assert 3500 < g["expiry"] - time.time() <= 3600      # --grant-ttl's default
    raw = bytes.fromhex(g["grant"])
    assert dp.grant_signed_by(key.grant, raw)
    # Its fields name the node, the holder, the volume's key, read and write.
    f = dp.GRANT.unpack(raw)
    assert f[:6] == (301, CLIENT, int(v["key"], 16) & 0xffffffff, int(v["key"], 16) >> 32,
                     dp.R_READ | dp.R_WRITE, 0)

    c, h, size = open_with(d, key, "disk", g["grant"])
    assert size == 4 * MiB
    data = os.urandom(64 * 1024)
    c.blk_write(h, MiB, data)
    assert c.blk_read(h, MiB, len(data)) == data
    c.blk_close(h)
    c.close()

    # Another holder's grant is refused: the node checks who presents it.
    other = cl.call("POST", "/v1/volumes/disk/grant", {"holder": OTHER})[1]
    with pytest.raises(dp.ProtoError) as e:
        open_with(d, key, "disk", other["grant"], holder=CLIENT)
    assert dp.ST_NAME[e.value.status] == "GRANT"
    # A read-only grant opens read-only only.
    ro = cl.call("POST", "/v1/volumes/disk/grant", {"holder": CLIENT, "rights": "r",
                                                    "ttl": 60})[1]
    assert ro["rights"] == "r" and ro["expiry"] - time.time() <= 60
    with pytest.raises(dp.ProtoError) as e:
        open_with(d, key, "disk", ro["grant"])
    assert dp.ST_NAME[e.value.status] == "RIGHTS"
    c, h, _ = open_with(d, key, "disk", ro["grant"], flags=dp.BLK_RDONLY)
    assert c.blk_read(h, MiB, len(data)) == data
    c.close()

    # disagg-dnctl with the grant's hex, as an operator would use it.
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(os.urandom(8192))
    base = [find_prog("disagg-dnctl"), "--addr", d.addr, "--key", str(cl.keyfile),
            "--node-id", str(CLIENT), "--fabric-plaintext", "--grant", g["grant"]]
    subprocess.run(base + ["write", "disk", "0", str(src)], check=True, capture_output=True)
    subprocess.run(base + ["read", "disk", "0", "8192", str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == src.read_bytes()
    p = subprocess.run([*base[:-2], "--grant", other["grant"], "read", "disk", "0", "512",
                        str(out)], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr

    # A volume deleted and made again under its name does not open with an old grant.
    c2 = cl.call("POST", "/v1/volumes", {"name": "disk2", "from": "disk"})[1]
    assert c2["key"] != v["key"]
    with pytest.raises(dp.ProtoError):
        open_with(d, key, "disk2", g["grant"])


def test_who_may_ask_for_a_grant(cl, key):
    cl.devnodes.start(301)
    cl.call("POST", "/v1/volumes", {"name": "disk", "size": MiB})
    auth = cl.auth
    # A compute node asks for its own grant with its node token...
    st, g = cl.call("POST", "/v1/volumes/disk/grant", {"holder": CLIENT},
                    headers=auth.headers(auth.node_token(CLIENT)))
    assert st == 200 and g["holder"] == CLIENT
    # ... never for another node's.
    st, ans = cl.call("POST", "/v1/volumes/disk/grant", {"holder": OTHER},
                      headers=auth.headers(auth.node_token(CLIENT)))
    assert st == 401 and err(ans) == "unauthorized", ans
    assert "cannot ask for node 8's grants" in ans["error"]["message"]
    # A node token does nothing else with volumes.
    for method, path, body in [("GET", "/v1/volumes", None),
                               ("POST", "/v1/volumes", {"name": "x", "size": MiB}),
                               ("DELETE", "/v1/volumes/disk", None)]:
        st, ans = cl.call(method, path, body, headers=auth.headers(auth.node_token(CLIENT)))
        assert st == 403, (path, ans)
    # No token, a made-up one: 401.
    assert cl.call("POST", "/v1/volumes/disk/grant", {"holder": CLIENT},
                   headers={"Authorization": "Bearer nope-nope-nope-nope"})[0] == 401


def test_restart_settles_interrupted_operations(cl, key):
    """An orchestrator stopped in the middle of an operation: its device
    node's state decides, at the next start."""
    d = cl.devnodes.start(301)
    for name in ("kept", "deleted", "grown"):
        assert cl.call("POST", "/v1/volumes", {"name": name, "size": MiB})[0] == 201
    # What the node did before the "crash": it grew one volume and deleted another.
    o = dp.DevConn(d.addr, tls=False).login(key, 1)
    o.vol("VOL_RESIZE", "grown", 2 * MiB)
    o.vol("VOL_DELETE", "deleted")
    o.vol("VOL_CREATE", "made", 3 * MiB)
    o.close()
    cl.stop()
    db = sqlite3.connect(cl.db, timeout=10)
    db.execute("UPDATE volumes SET state = 'deleting', run = 12345 WHERE name IN "
               "('kept', 'deleted')")
    db.execute("UPDATE volumes SET state = 'resizing', run = 12345 WHERE name = 'grown'")
    dn = db.execute("SELECT devnode FROM volumes WHERE name = 'kept'").fetchone()[0]
    for name in ("made", "ghost"):
        db.execute("INSERT INTO volumes (name, state, devnode, size, run, created) "
                   "VALUES (?, 'creating', ?, 512, 12345, 0)", (name, dn))
    db.commit()
    db.close()
    cl.start()
    vols = {x["name"]: x for x in cl.call("GET", "/v1/volumes")[1]["volumes"]}
    assert sorted(vols) == ["grown", "kept", "made"], vols
    assert all(x["state"] == "ready" for x in vols.values())
    assert vols["grown"]["size"] == 2 * MiB
    assert vols["made"]["size"] == 3 * MiB and vols["made"]["key"]
    assert len(events(cl, "volume_settled")) == 3
    assert any("ghost" in e["message"] for e in events(cl, "volume_create_failed"))
    assert cl.call("DELETE", "/v1/volumes/made")[0] == 204


# ---- the command line ---------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    (["volume"], r"`disagg volume` needs a subcommand"),
    (["volume", "create", "a"], r"needs NAME SIZE"),
    (["volume", "create", "a", "12X"], r"SIZE must be a size"),
    (["volume", "create", "a", "1000"], r"multiple of 512"),
    (["volume", "create", "a", "1M", "--devnode", "x"], r"--devnode must be a number"),
    (["volume", "resize", "a"], r"needs NAME SIZE"),
    (["volume", "clone", "a"], r"needs SRC DST"),
    (["volume", "grant", "a"], r"--holder is required"),
    (["volume", "delete", "a", "b"], r"unexpected argument `b`"),
])
def test_volume_usage_errors_exit_2(args, match):
    p = disagg("--url", "http://127.0.0.1:1", *args, check_rc=2)
    assert re.search(match, p.stderr), p.stderr
    assert "usage: disagg" in p.stderr and p.stdout == ""


def test_volume_commands(cl, key):
    d = cl.devnodes.start(301)
    env = cli_env(DISAGG_TOKEN=cl.auth.token)

    def cli(*args, rc=0):
        return disagg("--url", f"http://{cl.addr}", *args, env=env, check_rc=rc)

    p = cli("volume", "ls")
    assert p.stdout == "" and "no volumes" in p.stderr
    p = cli("volume", "create", "disk1", "1G")
    assert p.stdout == "volume disk1 created: 1G on device node 301\n"
    assert "creating volume disk1 (1G): done in" in p.stderr
    p = cli("volume", "create", "base", "64M", "--devnode", "301", "--image")
    assert p.stdout == "volume base created: 64M on device node 301\n"
    p = cli("volume", "create", "disk1", "1G", rc=1)
    assert "volume disk1 exists (409 exists)" in p.stderr
    p = cli("volume", "clone", "base", "disk2")
    assert p.stdout == "volume disk2 created: a clone of base, 64M on device node 301\n"
    p = cli("volume", "create", "disk3", "128M", "--from", "base")
    assert p.stdout == "volume disk3 created: a clone of base, 128M on device node 301\n"
    head, rows = table(cli("volume", "ls").stdout)
    assert head == ["NAME", "STATE", "KIND", "SIZE", "DEVNODE", "IMAGE", "ORIGIN", "ATTACHED",
                    "AGE"]
    assert [r[:7] for r in rows] == [["base", "ready", "file", "64M", "301", "yes", "-"],
                                     ["disk1", "ready", "file", "1G", "301", "-", "-"],
                                     ["disk2", "ready", "file", "64M", "301", "-", "base"],
                                     ["disk3", "ready", "file", "128M", "301", "-", "base"]]
    j = json.loads(cli("--json", "volume", "ls", "--devnode", "301").stdout)
    assert len(j["volumes"]) == 4
    assert cli("volume", "ls", "--devnode", "302").stdout == ""
    p = cli("volume", "show", "disk2")
    assert re.search(r"^name:\s+disk2$", p.stdout, re.M)
    assert re.search(r"^size:\s+64M \(67108864 bytes\)$", p.stdout, re.M)
    assert re.search(r"^device node:\s+301$", p.stdout, re.M)
    assert re.search(r"^allocated:\s+0 on the device node's disk, open 0 times$", p.stdout,
                     re.M), p.stdout
    assert re.search(r"^cloned from:\s+base$", p.stdout, re.M)
    j = json.loads(cli("--json", "volume", "show", "disk2").stdout)
    assert j["origin"] == "base" and j["size"] == 64 * MiB
    p = cli("volume", "resize", "disk2", "256M")
    assert p.stdout == "volume disk2 now has 256M\n"
    p = cli("volume", "resize", "disk2", "1M", rc=1)
    assert "(400 bad_size)" in p.stderr and "shrink" in p.stderr
    p = cli("volume", "resize", "disk2", "1M", "--shrink")
    assert p.stdout == "volume disk2 now has 1M\n"
    p = cli("volume", "grant", "disk1", "--holder", str(CLIENT), "--read-only", "--ttl", "60")
    grant = p.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{208}", grant)
    assert "grant of volume disk1 for node 7 (r) on device node 301" in p.stderr
    c, h, size = open_with(d, key, "disk1", grant, flags=dp.BLK_RDONLY)
    assert size == GiB
    c.close()
    dp.wait_for(lambda: node(cl, 301).get("volumes") == 4, timeout=10)
    p = cli("node", "show", "301")
    assert re.search(r"^volumes:\s+4 \(\S+ on its disk\); the catalog has 4 \(1\.2G\)$",
                     p.stdout, re.M), p.stdout
    p = cli("volume", "delete", "disk2")
    assert p.stdout == "volume disk2 deleted\n"
    p = cli("volume", "show", "disk2", rc=1)
    assert "unknown volume disk2 (404 not_found)" in p.stderr
    assert cli("--json", "volume", "delete", "disk3").stdout.strip() == "{}"
    d.kill9()
    p = cli("volume", "create", "disk4", "1M", "--devnode", "301", rc=1)
    assert "does not answer" in p.stderr and "(503 node_unreachable)" in p.stderr
    p = cli("volume", "show", "disk1")
    assert "allocated:      unknown: the device node does not answer" in p.stdout


def test_help_lists_the_volume_commands():
    p = disagg("--help", check_rc=0)
    for cmd in ("volume create", "volume ls", "volume show", "volume clone", "volume resize",
                "volume delete", "volume adopt", "volume grant"):
        assert re.search(rf"^  {cmd}\s", p.stdout, re.M), (cmd, p.stdout)
    assert "--devnodes N" in disagg("up", "-h", check_rc=0).stdout


# ---- disagg up ------------------------------------------------------------------------

def test_up_starts_a_device_node(tmp_path):
    data = tmp_path / "data"
    p = disagg("--data", data, "up", "--memnodes", "1", "--computes", "0", "--pool", "256M",
               "--fabric-plaintext", "--timeout", "120", timeout=180)
    try:
        assert p.returncode == 0, p.stderr
        cl = json.loads((data / "cluster.json").read_text())
        assert [c["name"] for c in cl["components"]] == ["orchestrator", "memnode-100",
                                                         "devnode-300"]
        head, rows = table(p.stdout.split("\n\n")[1])
        assert rows[2][:2] == ["devnode", "300"] and re.match(r"127\.0\.0\.1:\d+", rows[2][2])
        assert "disagg volume create disk1 1G" in p.stdout
        log = (data / "logs" / "devnode-300.log").read_text()
        assert "listening on" in log

        def run(*a, rc=0):
            return disagg("--data", data, *a, check_rc=rc)

        head, rows = table(run("node", "ls").stdout)
        assert ["300", "devnode", "devnode-300", "up"] in [r[:4] for r in rows], rows
        assert run("volume", "create", "disk1", "1G").stdout == \
            "volume disk1 created: 1G on device node 300\n"
        assert (data / "devnode-300.data" / "disk1.vol").exists()
        run("volume", "clone", "disk1", "disk2")
        assert [r[0] for r in table(run("volume", "ls").stdout)[1]] == ["disk1", "disk2"]
        run("volume", "delete", "disk2")
    finally:
        if (data / "cluster.json").exists():
            d = disagg("--data", data, "down", timeout=120)
            assert d.returncode == 0, d.stdout + d.stderr
            assert re.search(r"^devnode-300\s+\d+\s+stopped in", d.stdout, re.M), d.stdout
            assert "stopping the device nodes" in d.stderr
    # A new cluster in the same directory starts with no volumes.
    p = disagg("--data", data, "up", "--memnodes", "1", "--computes", "0", "--pool", "256M",
               "--fabric-plaintext", "--timeout", "120", timeout=180)
    try:
        assert p.returncode == 0, p.stderr
        assert not (data / "devnode-300.data" / "disk1.vol").exists()
        assert disagg("--data", data, "volume", "create", "disk1", "1G").returncode == 0
    finally:
        if (data / "cluster.json").exists():
            check_down(data)


def test_up_on_tls_starts_a_device_node_with_tls(tmp_path):
    data, p = real_up(tmp_path, 1, 0, devnodes=1)
    try:
        assert p.returncode == 0, p.stderr
        cl = json.loads((data / "cluster.json").read_text())
        assert [c["kind"] for c in cl["components"]] == ["orchestrator", "memnode", "devnode"]
        assert (data / "tls" / "devnode-300.pem").exists()
        # The orchestrator reaches it over TLS: a volume is made and listed.
        assert disagg("--data", data, "volume", "create", "disk1", "1G").returncode == 0
        assert (data / "devnode-300.data" / "disk1.vol").exists()
        assert [r[0] for r in table(disagg("--data", data, "volume", "ls").stdout)[1]] == ["disk1"]
    finally:
        if (data / "cluster.json").exists():
            check_down(data)
