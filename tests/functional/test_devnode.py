# SPDX-License-Identifier: MIT
"""The device node, end to end over loopback with the independent Python
client (dproto.DevConn): volumes, block I/O through grants, pipelining and
the depth bound, flush durability across kill -9, hostile input."""
import json
import os
import socket
import struct
import time
import urllib.request

import pytest

import dproto as dp
import progs
from conftest import Daemon, find_prog

CLIENT = 7           # node id of the test's compute node
DEVNODE = 301
MiB = 1 << 20


class Devnodes:
    def __init__(self, tmp_path, keyfile):
        self.tmp = tmp_path
        self.keyfile = keyfile
        self.daemons = []

    def start(self, data=None, node_id=DEVNODE, extra=()):
        data = data or str(self.tmp / "volumes")
        argv = [find_prog("disagg-devnode"), "--data", data, "--listen", "127.0.0.1:0",
                "--http", "127.0.0.1:0", "--api-open", "--key", self.keyfile,
                "--grant-pubkey", dp.grant_files(self.keyfile)[1], "--node-id", str(node_id),
                "--fabric-plaintext", *extra]
        d = Daemon(argv, str(self.tmp / f"devnode-{len(self.daemons)}.log"),
                   r"listening on (\S+)(?: http (?P<http>\S+))?")
        d.node_id, d.data = node_id, data
        self.daemons.append(d)
        return d

    def stop_all(self):
        for d in self.daemons:
            if d.proc.returncode is None:
                assert d.stop() == 0, d.stderr()[-3000:]


@pytest.fixture
def devnodes(tmp_path, keyfile):
    progs.CURRENT = None          # the device node speaks plaintext only, for now
    f = Devnodes(tmp_path, keyfile)
    yield f
    f.stop_all()


def orch(d, key):
    return dp.DevConn(d.addr, tls=False).login(key, 1)


def client(d, key, node_id=CLIENT):
    return dp.DevConn(d.addr, tls=False).login(key, node_id, orch=False)


def open_volume(d, key, name, vkey, rights=dp.R_READ | dp.R_WRITE, flags=0, c=None):
    c = c or client(d, key)
    h, size = c.blk_open(dp.volume_grant(key, d.node_id, CLIENT, vkey, rights), name, flags)
    return c, h, size


def status_of(fn):
    with pytest.raises(dp.ProtoError) as e:
        fn()
    return dp.ST_NAME[e.value.status]


def metrics(d):
    with urllib.request.urlopen(f"http://{d.http}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(d, name):
    for line in metrics(d).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_volume_lifecycle(devnodes, key):
    d = devnodes.start()
    o = orch(d, key)
    a = o.vol("VOL_CREATE", "a", 8 * MiB)
    assert a["name"] == "a" and a["size"] == 8 * MiB and a["key"] and a["users"] == 0
    assert status_of(lambda: o.vol("VOL_CREATE", "a", MiB)) == "EXIST"
    assert status_of(lambda: o.vol("VOL_CREATE", "Bad", MiB)) == "BADMSG"
    assert status_of(lambda: o.vol("VOL_CREATE", "b", 1000)) == "BADMSG"
    assert status_of(lambda: o.vol("VOL_CREATE", "b", 0)) == "BADMSG"
    assert status_of(lambda: o.vol("VOL_STAT", "nope")) == "NOENT"
    b = o.vol("VOL_CLONE", "b", src="a")
    assert b["size"] == 8 * MiB and b["key"] != a["key"]
    assert o.vol("VOL_RESIZE", "b", 16 * MiB)["size"] == 16 * MiB
    assert status_of(lambda: o.vol("VOL_RESIZE", "b", MiB)) == "BADMSG"   # shrink not asked
    assert o.vol("VOL_RESIZE", "b", MiB, flags=dp.VOL_SHRINK)["size"] == MiB
    assert o.vol("VOL_STAT", "b")["key"] == b["key"]        # resize keeps the key
    vols, nxt = o.vol_list()
    assert [v["name"] for v in vols] == ["a", "b"] and nxt == 2
    vols, nxt = o.vol_list(start=1, max_=1)
    assert [v["name"] for v in vols] == ["b"] and nxt == 2
    # An open volume cannot be deleted.
    c, h, size = open_volume(d, key, "a", a["key"])
    assert size == 8 * MiB and o.vol("VOL_STAT", "a")["users"] == 1
    assert status_of(lambda: o.vol("VOL_DELETE", "a")) == "BUSY"
    c.blk_close(h)
    assert o.vol("VOL_DELETE", "a") is None
    assert status_of(lambda: o.vol("VOL_DELETE", "a")) == "NOENT"
    # A volume made again under the same name is another volume: its old grant is refused.
    a2 = o.vol("VOL_CREATE", "a", 8 * MiB)
    assert a2["key"] != a["key"]
    assert status_of(lambda: open_volume(d, key, "a", a["key"], c=c)) == "GRANT"
    # Volume operations are the orchestrator's.
    assert status_of(lambda: c.vol("VOL_CREATE", "x", MiB)) == "DENIED"
    assert status_of(lambda: c.vol_list()) == "DENIED"
    assert metric(d, "disagg_devnode_denied_requests_total") == 2


def test_block_io_round_trip(devnodes, key):
    d = devnodes.start()
    v = orch(d, key).vol("VOL_CREATE", "disk", 64 * MiB)
    c, h, size = open_volume(d, key, "disk", v["key"])
    data = os.urandom(MiB)
    c.blk_write(h, 3 * MiB, data)
    assert c.blk_read(h, 3 * MiB, MiB) == data
    assert c.blk_read(h, 3 * MiB + 4096, 512) == data[4096:4608]
    assert c.blk_read(h, 0, 4096) == b"\0" * 4096               # never written: zeros
    c.blk_io("BLK_DISCARD", h, 3 * MiB, 64 * 1024)
    assert c.blk_read(h, 3 * MiB, 64 * 1024) == b"\0" * 65536
    c.blk_io("BLK_WRITE_ZEROES", h, 3 * MiB + 65536, 4096)
    assert c.blk_read(h, 3 * MiB + 65536, 8192) == b"\0" * 4096 + data[69632:73728]
    c.blk_flush(h)
    c.blk_write(h, size - 512, b"\x5a" * 512)                  # the last sector
    assert c.blk_read(h, size - 512, 512) == b"\x5a" * 512
    # What is refused, and how.
    assert status_of(lambda: c.blk_read(h, size, 512)) == "RANGE"
    assert status_of(lambda: c.blk_read(h, size - 512, 1024)) == "RANGE"
    assert status_of(lambda: c.blk_read(h, 100, 512)) == "BADMSG"         # unaligned
    assert status_of(lambda: c.blk_read(h, 0, 0)) == "BADMSG"
    assert status_of(lambda: c.blk_read(h, 0, 2 * MiB)) == "TOOBIG"
    assert status_of(lambda: c.blk_io("BLK_WRITE", h, 0, 1024, b"x" * 512)) == "BADMSG"
    assert status_of(lambda: c.blk_read(h + 1, 0, 512)) == "NOENT"         # no such handle
    assert status_of(lambda: c.blk_read(2 ** 31, 0, 512)) == "NOENT"
    # A read-only handle reads and refuses the rest.
    _, ro, _ = open_volume(d, key, "disk", v["key"], rights=dp.R_READ, flags=dp.BLK_RDONLY,
                           c=c)
    assert c.blk_read(ro, 3 * MiB + 32 * 4096, 4096) == data[32 * 4096:33 * 4096]
    assert status_of(lambda: c.blk_write(ro, 0, b"y" * 512)) == "RIGHTS"
    assert status_of(lambda: c.blk_io("BLK_DISCARD", ro, 0, 512)) == "RIGHTS"
    c.blk_close(ro)
    assert status_of(lambda: c.blk_close(ro)) == "NOENT"
    assert metric(d, "disagg_devnode_bytes_written_total") >= MiB + 512


def test_grants_are_checked(devnodes, key):
    d = devnodes.start()
    v = orch(d, key).vol("VOL_CREATE", "g", MiB)
    c = client(d, key)

    def opens(grant, flags=0):
        return status_of(lambda: c.blk_open(grant, "g", flags))

    g = dp.volume_grant(key, d.node_id, CLIENT, v["key"])
    assert opens(g[:40] + bytes(64)) == "GRANT"                                # forged
    assert opens(dp.volume_grant(key, d.node_id + 1, CLIENT, v["key"])) == "GRANT"  # other node
    assert opens(dp.volume_grant(key, d.node_id, CLIENT + 1, v["key"])) == "GRANT"  # other holder
    assert opens(dp.volume_grant(key, d.node_id, CLIENT, v["key"] ^ 1)) == "GRANT"  # other volume
    assert opens(dp.volume_grant(key, d.node_id, CLIENT, v["key"],
                                 expiry=int(time.time()) - 5)) == "GRANT"       # expired
    assert opens(dp.volume_grant(key, d.node_id, CLIENT, v["key"], rights=dp.R_READ)) == "RIGHTS"
    other = dp.Keys(key, dp.Ed25519PrivateKey.generate())                      # another signer
    assert opens(dp.volume_grant(other, d.node_id, CLIENT, v["key"])) == "GRANT"
    assert metric(d, "disagg_devnode_grants_rejected_total") == 7
    # The good one works, read-only with the read right alone.
    h, _ = c.blk_open(dp.volume_grant(key, d.node_id, CLIENT, v["key"], rights=dp.R_READ),
                      "g", dp.BLK_RDONLY)
    assert c.blk_read(h, 0, 512) == bytes(512)
    # A missing volume, with a grant of a key that exists nowhere.
    assert status_of(lambda: c.blk_open(g, "nope")) == "NOENT"


def test_authentication(devnodes, key):
    d = devnodes.start()
    # Before AUTH, nothing but HELLO and AUTH; the connection is closed after.
    with dp.DevConn(d.addr, tls=False) as c:
        assert status_of(lambda: c.call(dp.OP["VOL_LIST"], struct.pack("<II", 0, 10))) == "NOAUTH"
    # A client without the cluster key cannot prove itself, nor check the server.
    wrong = os.urandom(32)
    with dp.DevConn(d.addr, tls=False) as c:
        with pytest.raises(dp.ProtoError):
            c.hello(wrong, CLIENT)
    with dp.DevConn(d.addr, tls=False) as c:
        cn, sn = c.hello(wrong, CLIENT, check_server=False)
        assert status_of(lambda: c.auth(wrong, CLIENT, cn, sn, orch=False)) == "NOAUTH"
    # A forged orchestrator's proof fails AUTH.
    fake = dp.Keys(key, dp.Ed25519PrivateKey.generate())
    with dp.DevConn(d.addr, tls=False) as c:
        cn, sn = c.hello(fake, 1, features=dp.FEAT_BLK)
        assert status_of(lambda: c.auth(fake, 1, cn, sn, orch=True)) == "NOAUTH"
    assert metric(d, "disagg_devnode_auth_failures_total") == 2
    # The device node offers BLK and nothing of a memory node's.
    c = client(d, key)
    assert c.info["features"] == dp.FEAT_BLK and c.info["max_inflight"] == 64
    assert status_of(lambda: c.call(dp.OP["SECTION_ALLOC"], bytes(16))) == "NOTSUP"


def test_memnode_refuses_block_opcodes(memnodes, key):
    progs.CURRENT = None
    m = memnodes.start(pool="256M", extra=["--fabric-plaintext"])
    c = dp.Conn(m.addr, tls=False).login(key, CLIENT, features=dp.FEAT_ALL | dp.FEAT_BLK)
    assert not c.info["features"] & dp.FEAT_BLK
    assert status_of(lambda: c.call(dp.OP["BLK_READ"], dp.BLK_IO.pack(0, 512, 0))) == "NOTSUP"


def test_pipelined_answers_and_the_depth_bound(devnodes, key):
    d = devnodes.start(extra=["--depth", "4"])
    v = orch(d, key).vol("VOL_CREATE", "p", 16 * MiB)
    c, h, _ = open_volume(d, key, "p", v["key"])
    assert c.info["max_inflight"] == 4
    blocks = {i: os.urandom(64 * 1024) for i in range(200)}
    # 200 writes sent before any answer is read: the node stops reading at 4
    # in flight, TCP holds the rest back, and every one is answered once.
    ids = {}
    for i, b in blocks.items():
        ids[c.send(dp.OP["BLK_WRITE"], dp.BLK_IO.pack(h, len(b), i * 65536) + b)] = i
    got = set()
    for _ in blocks:
        rid, st, payload, op = c.recv()
        assert st == 0 and op == dp.OP["BLK_WRITE"] and rid in ids and rid not in got
        got.add(rid)
    # Reads pipelined the same way; each answer carries its own block.
    ids = {c.send(dp.OP["BLK_READ"], dp.BLK_IO.pack(h, 65536, i * 65536)): i for i in blocks}
    for _ in blocks:
        rid, st, payload, op = c.recv()
        assert st == 0 and payload == blocks[ids.pop(rid)]
    assert not ids
    assert metric(d, "disagg_devnode_queue_full_total") > 0


def test_flushed_writes_survive_kill9(devnodes, key):
    d = devnodes.start()
    v = orch(d, key).vol("VOL_CREATE", "dur", 32 * MiB)
    c, h, _ = open_volume(d, key, "dur", v["key"])
    data = os.urandom(4 * MiB)
    for off in range(0, len(data), MiB):
        c.blk_write(h, off, data[off:off + MiB])
    c.blk_flush(h)
    d.kill9()
    # The volume file holds every flushed byte, and a new node serves it.
    with open(os.path.join(d.data, "dur.vol"), "rb") as f:
        assert f.read(len(data)) == data
    d2 = devnodes.start(data=d.data)
    c2, h2, size = open_volume(d2, key, "dur", v["key"])
    assert size == 32 * MiB
    assert b"".join(c2.blk_read(h2, off, MiB) for off in range(0, len(data), MiB)) == data


def test_hostile_input_keeps_the_node_up(devnodes, key):
    d = devnodes.start(extra=["--handshake-timeout-ms", "500"])
    host, port = d.addr.rsplit(":", 1)
    # Garbage, a huge frame before AUTH, a reply flag, a bad version.
    for frame in (b"\xff" * 64, dp.hdr(dp.OP["HELLO"], 1 << 20, 1),
                  dp.hdr(dp.OP["PING"], 0, 1, flags=dp.F_REPLY),
                  dp.hdr(dp.OP["PING"], 0, 1, version=9)):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(frame)
            s.settimeout(5)
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break                          # closed by the node
                got += chunk
            assert len(got) in (0, dp.HDR.size)
    # A connection that never authenticates is closed after the timeout.
    with socket.create_connection((host, int(port)), timeout=5) as s:
        t0 = time.time()
        assert s.recv(1) == b""
        assert time.time() - t0 < 4
    # Bad payloads after AUTH: an error each, and the connection goes on.
    c = client(d, key)
    v = orch(d, key).vol("VOL_CREATE", "h", MiB)
    for op, payload in (("BLK_OPEN", b"\0" * 10), ("BLK_READ", b"\0" * 15),
                        ("BLK_FLUSH", struct.pack("<II", 0, 1)),
                        ("BLK_OPEN", dp.BLK_OPEN_REQ.pack(bytes(104), b"h", 4, 0))):
        assert status_of(lambda: c.call(dp.OP[op], payload)) == "BADMSG"
    _, h, _ = open_volume(d, key, "h", v["key"], c=c)
    assert c.blk_read(h, 0, 512) == bytes(512)
    assert metric(d, "disagg_devnode_bad_frames_total") >= 3
    assert metric(d, "disagg_devnode_handshake_timeouts_total") >= 1
    assert d.alive()


def test_health_and_metrics(devnodes, key):
    d = devnodes.start()
    orch(d, key).vol("VOL_CREATE", "m", 4 * MiB)
    with urllib.request.urlopen(f"http://{d.http}/healthz", timeout=10) as r:
        h = json.loads(r.read())
    assert h["status"] == "ok" and h["node_id"] == DEVNODE and h["volumes"] == 1
    assert metric(d, "disagg_devnode_volumes") == 1
    assert metric(d, "disagg_devnode_volume_bytes") == 4 * MiB


def test_bad_options(tmp_path, keyfile):
    exe = find_prog("disagg-devnode")
    base = [exe, "--data", str(tmp_path / "v"), "--key", keyfile, "--grant-pubkey",
            dp.grant_files(keyfile)[1], "--node-id", "5"]
    import subprocess
    for extra, words in ((["--tls-ca", "x", "--tls-cert", "y", "--tls-key", "z"], "tls key z"),
                         (["--fabric-plaintext", "--depth", "0"], "depth"),
                         ([], "plaintext")):
        p = subprocess.run(base + extra, capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and words in p.stderr.lower(), p.stderr


def dnctl(d, keyfile, *args, node=1, grant_key=True, check=True):
    import subprocess
    argv = [find_prog("disagg-dnctl"), "--addr", d.addr, "--key", keyfile, "--node-id",
            str(node), "--fabric-plaintext"]
    if grant_key:
        argv += ["--grant-key", dp.grant_files(keyfile)[0]]
    p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_the_c_client_agrees_with_the_node(devnodes, key, keyfile, tmp_path):
    """disagg-dnctl (dnclient.c) against the real node, checked with the Python client."""
    d = devnodes.start()
    v = json.loads(dnctl(d, keyfile, "vol-create", "c1", "8M").stdout)
    assert v["name"] == "c1" and v["size"] == 8 * MiB
    # Its key is the one the Python client sees.
    assert int(v["key"], 16) == orch(d, key).vol("VOL_STAT", "c1")["key"]
    data = os.urandom(3 * MiB + 4096)
    src, back = tmp_path / "in", tmp_path / "out"
    src.write_bytes(data)
    dnctl(d, keyfile, "write", "c1", str(MiB), str(src))
    dnctl(d, keyfile, "read", "c1", str(MiB), str(len(data)), str(back))
    assert back.read_bytes() == data
    # What the C client wrote, the Python client reads.
    c, h, _ = open_volume(d, key, "c1", int(v["key"], 16))
    assert c.blk_read(h, MiB + 4096, 4096) == data[4096:8192]
    c.blk_close(h)
    # A grant it mints for another holder does not open the volume for us.
    g = dnctl(d, keyfile, "--holder", "99", "grant", "c1").stdout.strip()
    assert status_of(lambda: client(d, key).blk_open(bytes.fromhex(g), "c1")) == "GRANT"
    # Without the orchestrator's key, no volume operation; errors are clear.
    p = dnctl(d, keyfile, "vol-create", "c2", "1M", grant_key=False, check=False)
    assert p.returncode != 0 and p.stderr.strip()
    p = dnctl(d, keyfile, "vol-create", "c1", "1M", check=False)
    assert p.returncode != 0 and "exist" in p.stderr.lower(), p.stderr
    vols = json.loads(dnctl(d, keyfile, "vol-ls").stdout)
    assert [x["name"] for x in vols] == ["c1"]
    dnctl(d, keyfile, "vol-delete", "c1")
    assert json.loads(dnctl(d, keyfile, "vol-ls").stdout) == []


def test_tls_fabric(tmp_path, keyfile, key, fabric):
    """The device node on a TLS fabric: its certificate has role device; the
    Python client and disagg-dnctl speak TLS to it; a plaintext client gets
    nothing."""
    argv = [find_prog("disagg-devnode"), "--data", str(tmp_path / "tv"), "--listen",
            "127.0.0.1:0", "--http", "127.0.0.1:0", "--api-open", "--key", keyfile,
            "--grant-pubkey", dp.grant_files(keyfile)[1], "--node-id", str(DEVNODE),
            *progs.fabric_args(DEVNODE, "device")]
    d = Daemon(argv, str(tmp_path / "devnode-tls.log"), r"listening on (\S+)(?: http (?P<http>\S+))?")
    d.node_id = DEVNODE
    try:
        o = dp.DevConn(d.addr).login(key, 1)
        v = o.vol("VOL_CREATE", "t1", 4 * MiB)
        c = dp.DevConn(d.addr).login(key, CLIENT, orch=False)
        h, _ = c.blk_open(dp.volume_grant(key, DEVNODE, CLIENT, v["key"]), "t1")
        data = os.urandom(64 * 1024)
        c.blk_write(h, 0, data)
        assert c.blk_read(h, 0, len(data)) == data
        # The C client over TLS, with the orchestrator's certificate.
        import subprocess
        p = subprocess.run([find_prog("disagg-dnctl"), "--addr", d.addr, "--key", keyfile,
                            "--node-id", "1", "--grant-key", dp.grant_files(keyfile)[0],
                            *progs.fabric_args(1, "orchestrator"), "vol-ls"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and json.loads(p.stdout)[0]["name"] == "t1", p.stderr
        # Plaintext: the handshake fails and the connection is closed.
        with pytest.raises((ConnectionError, OSError, dp.ProtoError)):
            dp.DevConn(d.addr, tls=False).login(key, CLIENT, orch=False)
        assert metric(d, "disagg_devnode_tls_failures_total") >= 1
    finally:
        assert d.stop() == 0


def test_epochs_and_takeover_fence_writers(devnodes, key):
    d = devnodes.start()
    v = orch(d, key).vol("VOL_CREATE", "f", MiB)

    def opener(epoch, holder=CLIENT, flags=0, rights=dp.R_READ | dp.R_WRITE):
        c = client(d, key, node_id=holder)
        g = dp.mint_grant(key, d.node_id, holder, v["key"] & 0xffffffff, v["key"] >> 32,
                          rights, epoch=epoch)
        h, _ = c.blk_open(g, "f", flags)
        return c, h

    a, ha = opener(1)
    a.blk_write(ha, 0, b"a" * 512)
    # A read-only open of a newer epoch takes nothing from the writer.
    p, hp = opener(2, flags=dp.BLK_RDONLY, rights=dp.R_READ)
    a.blk_write(ha, 0, b"a" * 512)
    assert p.blk_read(hp, 0, 512) == b"a" * 512
    # A newer epoch fences the older handle's writes and flushes; its reads go on.
    b, hb = opener(2)
    assert status_of(lambda: a.blk_write(ha, 0, b"x" * 512)) == "FENCED"
    assert status_of(lambda: a.blk_flush(ha)) == "FENCED"
    assert status_of(lambda: a.blk_io("BLK_DISCARD", ha, 0, 512)) == "FENCED"
    assert a.blk_read(ha, 0, 512) == b"a" * 512
    b.blk_write(hb, 0, b"b" * 512)
    b.blk_flush(hb)
    # An older epoch cannot open for writing any more; reading is fine.
    assert status_of(lambda: opener(1)) == "FENCED"
    r, hr = opener(1, flags=dp.BLK_RDONLY, rights=dp.R_READ)
    assert r.blk_read(hr, 0, 512) == b"b" * 512
    # TAKEOVER: the same holder's other handle is fenced, another holder's is not.
    other, ho = opener(2, holder=CLIENT + 1)
    c, hc = opener(2, flags=dp.BLK_TAKEOVER)
    assert status_of(lambda: b.blk_write(hb, 0, b"y" * 512)) == "FENCED"
    other.blk_write(ho, 512, b"o" * 512)
    c.blk_write(hc, 0, b"c" * 512)
    # The epoch survives a restart of the node.
    d.stop()
    d2 = devnodes.start(data=d.data)
    d2_client = dp.DevConn(d2.addr, tls=False).login(key, CLIENT, orch=False)
    old = dp.mint_grant(key, d2.node_id, CLIENT, v["key"] & 0xffffffff, v["key"] >> 32,
                        dp.R_READ | dp.R_WRITE, epoch=1)
    assert status_of(lambda: d2_client.blk_open(old, "f")) == "FENCED"
