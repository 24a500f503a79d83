# SPDX-License-Identifier: MIT
"""Revocation on device nodes, against real daemons: `disagg node revoke`
reaches a device node, which closes the revoked node's open connection at
once, refuses its TLS handshakes and (in plaintext) its HELLOs, keeps the
list in DATA/revoked across a restart, and takes REVOKE from the
orchestrator only. Every refusal has its control case."""
import json
import os
import time
import urllib.request

import pytest

import authkit
import dproto as dp
from conftest import Daemon, find_prog
from test_fabric_tls import ORCH, ctx_for, cut_off, login_fails, start_orch

COMPUTE = 7          # the node revoked
OTHER = 8            # a compute node that is not
DEVNODE = 301
MiB = 1 << 20
REVOKE = dp.OP["REVOKE"]


def revoke_req(*ids, count=None, rsvd=0):
    count = len(ids) if count is None else count
    return (count.to_bytes(4, "little") + rsvd.to_bytes(4, "little") +
            b"".join(i.to_bytes(8, "little") for i in ids))


def metric(d, name, labels=""):
    req = urllib.request.Request(f"http://{d.http}/metrics", headers=getattr(d, "headers", {}))
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def start_devnode(tmp_path, keyfile, node_id, data, fabric=None, orch_url=None):
    argv = [find_prog("disagg-devnode"), "--data", str(data), "--listen", "127.0.0.1:0",
            "--http", "127.0.0.1:0", "--key", keyfile,
            "--grant-pubkey", dp.grant_files(keyfile)[1], "--node-id", str(node_id)]
    argv += fabric.args(node_id, "device") if fabric else ["--fabric-plaintext"]
    headers = {}
    if orch_url:
        auth = authkit.shared(tmp_path)
        argv += ["--orchestrator", orch_url, "--node-credential", auth.cred_file(node_id)]
        headers = auth.headers(auth.orch_token(node_id))
    else:
        argv.append("--api-open")
    d = Daemon(argv, str(tmp_path / f"devnode-{node_id}-{time.time_ns()}.log"),
               r"listening on (\S+)(?: http (?P<http>\S+))?")
    d.node_id, d.headers, d.data = node_id, headers, data
    return d


def open_volume(d, key, conn, holder, name, vkey):
    conn.login(key, holder, orch=False)
    h, _ = conn.blk_open(dp.volume_grant(key, d.node_id, holder, vkey), name)
    conn.blk_write(h, 0, b"\x5a" * 4096)
    return h


def test_revoke_reaches_device_nodes_over_tls(tmp_path, keyfile, key, fabric):
    orch = start_orch(tmp_path, keyfile, fabric)
    url = "http://" + orch.addr

    def up(node_id):
        try:
            with urllib.request.urlopen(f"{url}/v1/nodes/{node_id}", timeout=5) as r:
                return json.load(r).get("state") == "up"
        except OSError:
            return False

    daemons = []
    try:
        data = tmp_path / "dn.data"
        d = start_devnode(tmp_path, keyfile, DEVNODE, data, fabric, url)
        daemons.append(d)
        assert dp.wait_for(lambda: up(DEVNODE), 15)
        with dp.DevConn(d.addr, tls=ctx_for(fabric, ORCH, "orchestrator")) as o:
            o.login(key, ORCH)
            v = o.vol("VOL_CREATE", "v", 4 * MiB)
        ck = dp.Keys(bytes(key))          # the cluster key, no grant key
        victim = dp.DevConn(d.addr, tls=ctx_for(fabric, COMPUTE, "compute"))
        h = open_volume(d, key, victim, COMPUTE, "v", v["key"])
        other = dp.DevConn(d.addr, tls=ctx_for(fabric, OTHER, "compute"))
        oh = open_volume(d, key, other, OTHER, "v", v["key"])

        req = urllib.request.Request(f"{url}/v1/nodes/{COMPUTE}/revoke", data=b"",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            ans = json.load(r)
        assert ans["devnodes_told"] == 1 and ans["devnodes_failed"] == [], ans
        assert ans["memnodes_told"] == 0 and ans["memnodes_failed"] == [], ans
        # Its open connection, with a volume open, is closed at once.
        t0 = time.monotonic()
        victim.sock.settimeout(5)
        with pytest.raises((dp.ProtoError, ConnectionError, OSError)):
            victim.blk_read(h, 0, 4096)
        assert time.monotonic() - t0 < 3
        victim.close()
        assert metric(d, "disagg_devnode_revoked_connections_closed_total") == 1
        # Control: the other compute node's connection goes on.
        assert other.blk_read(oh, 0, 4096) == b"\x5a" * 4096
        other.close()
        # Its TLS handshakes are refused, and counted; node 8 still logs in.
        with dp.DevConn(d.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
            login_fails(c, ck, COMPUTE)
        assert metric(d, "disagg_devnode_revocation_refusals_total", '{stage="handshake"}') == 1
        with dp.DevConn(d.addr, tls=ctx_for(fabric, OTHER, "compute")) as c:
            c.login(ck, OTHER, orch=False)
            c.call(dp.OP["PING"])
        # The list is in DATA/revoked and survives a restart without the orchestrator.
        assert (data / "revoked").read_text() == f"{COMPUTE}\n"
        assert d.stop() == 0, d.stderr()[-3000:]
        d2 = start_devnode(tmp_path, keyfile, DEVNODE, data, fabric)
        daemons.append(d2)
        assert metric(d2, "disagg_devnode_revoked_nodes") == 1
        with dp.DevConn(d2.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
            login_fails(c, ck, COMPUTE)
        assert d2.stop() == 0, d2.stderr()[-3000:]
        # A device node that joins later gets the list at the next sweep.
        d3 = start_devnode(tmp_path, keyfile, DEVNODE + 1, tmp_path / "dn3.data", fabric, url)
        daemons.append(d3)
        assert dp.wait_for(lambda: metric(d3, "disagg_devnode_revoked_nodes") == 1, 20)
        with dp.DevConn(d3.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
            login_fails(c, ck, COMPUTE)
        with dp.DevConn(d3.addr, tls=ctx_for(fabric, OTHER, "compute")) as c:
            c.login(ck, OTHER, orch=False)
    finally:
        for x in daemons:
            if x.alive():
                assert x.stop() == 0, x.stderr()[-3000:]
        assert orch.stop() == 0, orch.stderr()[-3000:]


@pytest.fixture
def plain(tmp_path, keyfile):
    import progs
    progs.CURRENT = None
    d = start_devnode(tmp_path, keyfile, DEVNODE, tmp_path / "plain.data")
    yield d
    if d.alive():
        assert d.stop() == 0, d.stderr()[-3000:]


def test_revoke_is_the_orchestrators_alone(plain, key):
    """REVOKE from a compute node is DENIED; a malformed one is BADMSG; the
    node stays up and its list unchanged."""
    with dp.DevConn(plain.addr, tls=False) as c:
        c.login(key, COMPUTE, orch=False, features=dp.FEAT_BLK | dp.FEAT_REVOKE)
        with pytest.raises(dp.ProtoError) as e:
            c.call(REVOKE, revoke_req(42))
        assert e.value.status == dp.ST["DENIED"]
    assert metric(plain, "disagg_devnode_revoked_nodes") == 0
    assert metric(plain, "disagg_devnode_denied_requests_total") == 1
    with dp.DevConn(plain.addr, tls=False) as c:
        c.login(key, 1, features=dp.FEAT_BLK | dp.FEAT_REVOKE)
        for bad in (revoke_req(42, count=2), revoke_req(42, rsvd=1), revoke_req(0),
                    revoke_req(42)[:6], revoke_req(42) + b"\0",
                    revoke_req(count=4097)):
            with pytest.raises(dp.ProtoError) as e:
                c.call(REVOKE, bad)
            assert e.value.status == dp.ST["BADMSG"], bad
        c.call(REVOKE, revoke_req(42))
    assert metric(plain, "disagg_devnode_revoked_nodes") == 1
    assert (plain.data / "revoked").read_text() == "42\n"
    # Control: REVOKE without the feature negotiated is not served.
    with dp.DevConn(plain.addr, tls=False) as c:
        c.login(key, 1)
        with pytest.raises(dp.ProtoError) as e:
            c.call(REVOKE, revoke_req(43))
        assert e.value.status == dp.ST["NOTSUP"]
    assert metric(plain, "disagg_devnode_revoked_nodes") == 1
    assert plain.alive()


def test_revoke_in_plaintext_closes_and_refuses_hello(plain, key):
    o = dp.DevConn(plain.addr, tls=False).login(key, 1, features=dp.FEAT_BLK | dp.FEAT_REVOKE)
    v = o.vol("VOL_CREATE", "p", MiB)
    victim = dp.DevConn(plain.addr, tls=False)
    h = open_volume(plain, key, victim, COMPUTE, "p", v["key"])
    other = dp.DevConn(plain.addr, tls=False)
    oh = open_volume(plain, key, other, OTHER, "p", v["key"])
    o.call(REVOKE, revoke_req(COMPUTE))
    assert cut_off(victim, timeout=3)
    victim.close()
    assert metric(plain, "disagg_devnode_revoked_connections_closed_total") == 1
    assert other.blk_read(oh, 0, 4096) == b"\x5a" * 4096
    other.close()
    # A HELLO naming it is refused (NOAUTH), and counted.
    with dp.DevConn(plain.addr, tls=False) as c:
        with pytest.raises(dp.ProtoError) as e:
            c.login(key, COMPUTE, orch=False)
        assert e.value.status == dp.ST["NOAUTH"]
    assert metric(plain, "disagg_devnode_revocation_refusals_total", '{stage="hello"}') == 1
    with dp.DevConn(plain.addr, tls=False) as c:
        c.login(key, OTHER, orch=False)
        c.call(dp.OP["PING"])
    # An empty list lets it in again (the orchestrator never sends one that
    # drops an id; the node takes the list it is given).
    o.call(REVOKE, revoke_req())
    assert (plain.data / "revoked").read_text() == ""
    with dp.DevConn(plain.addr, tls=False) as c:
        c.login(key, COMPUTE, orch=False)
    o.close()
