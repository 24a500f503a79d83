# SPDX-License-Identifier: MIT
"""Ownership epochs on a real memory node (docs/memnode.md, "Ownership
epochs"): a write through a grant of an older epoch than the section's is
refused with FENCED, counted, and never applied; FENCE and newer grants
raise the epoch; epochs survive a restart of a file-backed node, a version
1 pool file is upgraded, and a fresh allocation starts again at 0."""
import os
import struct
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import dproto as dp
import progs  # noqa: E402
from conftest import find_prog, run

CLIENT = 7          # node id of the test client
PAGE = dp.PAGE


def login(d, key, node_id=CLIENT):
    return dp.Conn(d.addr).login(key, node_id)


def grant(key, d, sec, gen, epoch=0, rights=dp.R_READ | dp.R_WRITE, holder=CLIENT):
    return dp.mint_grant(key, d.node_id, holder, sec, gen, rights, epoch=epoch)


def metric(d, name):
    text = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in /metrics")


def refused(fn, status="FENCED"):
    with pytest.raises(dp.ProtoError) as e:
        fn()
    assert e.value.status == dp.ST[status], dp.ST_NAME.get(e.value.status)


def test_older_epoch_writes_are_refused_and_never_applied(memnodes, key):
    d = memnodes.start(pool="256M", section="128M")     # two sections
    with login(d, key) as c:
        sec, gen = c.alloc(owner=1)
        old, new = grant(key, d, sec, gen, 0), grant(key, d, sec, gen, 1)
        c.write(old, [(0, 2)], b"\x11" * 2 * PAGE)     # epoch 0 owns a fresh section
        assert c.fence(new) == 1                        # the hand-over
        assert metric(d, "disagg_memnode_epoch_raises_total") == 1
        refused(lambda: c.write(old, [(0, 1)], b"\x22" * PAGE))
        refused(lambda: c.cas(old, 8, 0x1111111111111111, 5))
        refused(lambda: c.fadd(old, 8, 1))
        assert metric(d, "disagg_memnode_fenced_requests_total") == 3
        # Nothing of the refused writes landed; the old owner may still read.
        assert c.read(old, [(0, 2)]) == b"\x11" * 2 * PAGE
        c.write(new, [(1, 1)], b"\x33" * PAGE)
        assert c.read(new, [(0, 2)]) == b"\x11" * PAGE + b"\x33" * PAGE

        # A write through a newer grant raises the epoch by itself.
        newer = grant(key, d, sec, gen, 5)
        c.write(newer, [(2, 1)], b"\x44" * PAGE)
        refused(lambda: c.write(new, [(2, 1)], b"\x55" * PAGE))
        assert c.read(new, [(2, 1)]) == b"\x44" * PAGE
        assert metric(d, "disagg_memnode_epoch_raises_total") == 2
        # FENCE never lowers it, and answers the epoch in force.
        assert c.fence(new) == 5
        assert c.fence(grant(key, d, sec, gen, 0xFFFFFFFF)) == 0xFFFFFFFF
        refused(lambda: c.write(newer, [(0, 1)], bytes(PAGE)))

        # FENCE needs a valid grant of the caller's with write rights.
        g9 = grant(key, d, sec, gen, 9, rights=dp.R_READ)
        refused(lambda: c.fence(g9), "RIGHTS")
        refused(lambda: c.fence(grant(key, d, sec, gen, 9, holder=CLIENT + 1)), "GRANT")
        refused(lambda: c.fence(dp.mint_grant(Ed25519PrivateKey.generate(), d.node_id, CLIENT, sec, gen,
                                              dp.R_WRITE, epoch=9)), "GRANT")
        refused(lambda: c.call(dp.OP["FENCE"], new[:-1]), "BADMSG")
        refused(lambda: c.fence(grant(key, d, sec, gen + 1, 9)), "STALE")
        refused(lambda: c.fence(grant(key, d, 1 - sec, 1, 9)), "NOENT")
        refused(lambda: c.fence(grant(key, d, 1 << 30, 1, 9)), "NOENT")

        # Freed and allocated again: a new generation starts at epoch 0 and no
        # grant of the old one writes, whatever its epoch.
        other = c.alloc(owner=2)                         # the other section, first
        c.free(sec, gen, 0xFFFFFFFF)
        sec2, gen2 = c.alloc(owner=2)
        assert sec2 == sec and gen2 != gen and other[0] != sec
        refused(lambda: c.write(grant(key, d, sec, gen, 0xFFFFFFFF), [(0, 1)], bytes(PAGE)),
                "STALE")
        c.write(grant(key, d, sec2, gen2, 0), [(0, 1)], b"\x66" * PAGE)
        assert c.fence(grant(key, d, sec2, gen2, 0)) == 0


def test_an_old_owner_cannot_free(memnodes, key):
    d = memnodes.start(pool="256M", section="128M")
    with login(d, key) as c:
        sec, gen = c.alloc(owner=1)
        c.fence(grant(key, d, sec, gen, 3))
        refused(lambda: c.free(sec, gen))                  # the short form is epoch 0
        refused(lambda: c.free(sec, gen, 2))
        assert metric(d, "disagg_memnode_fenced_requests_total") == 2
        assert [s[:2] for s in c.list()] == [(sec, gen)]   # still there
        refused(lambda: c.call(dp.OP["SECTION_FREE"], struct.pack("<IIII", sec, gen, 3, 1)),
                "BADMSG")
        refused(lambda: c.call(dp.OP["SECTION_FREE"], struct.pack("<III", sec, gen, 3)),
                "BADMSG")
        refused(lambda: c.free(sec, gen + 1, 3), "STALE")
        c.free(sec, gen, 4)                                # the owner (or a newer one)
        assert c.list() == []
        sec, gen = c.alloc(owner=1)
        c.free(sec, gen)                                   # never fenced: epoch 0 frees


def test_fence_is_negotiated(memnodes, key):
    d = memnodes.start(pool="128M", section="128M")
    with dp.Conn(d.addr) as c:
        cn = os.urandom(32)
        rep = c.call(dp.OP["HELLO"], dp.HELLO_REQ.pack(dp.VERSION, dp.VERSION,
                                                       dp.FEAT_ATOMICS, CLIENT, cn))
        assert dp.HELLO_REP.unpack(rep)[2] == dp.FEAT_ATOMICS
    with login(d, key) as c:
        assert c.info["features"] & dp.FEAT_FENCE
        sec, gen = c.alloc()
        # The epoch check itself needs no negotiation: it guards every write.
        c.fence(grant(key, d, sec, gen, 2))
    with dp.Conn(d.addr) as c:
        cnonce = os.urandom(32)
        data = c.call(dp.OP["HELLO"], dp.HELLO_REQ.pack(dp.VERSION, dp.VERSION,
                                                        dp.FEAT_ATOMICS, CLIENT, cnonce))
        snonce = dp.HELLO_REP.unpack(data)[9]
        c.info = dict(node_id=d.node_id)
        c.auth(key, CLIENT, cnonce, snonce)
        refused(lambda: c.fence(grant(key, d, sec, gen, 3)), "NOTSUP")
        refused(lambda: c.write(grant(key, d, sec, gen, 1), [(0, 1)], bytes(PAGE)))


def test_copy_into_a_fenced_section_is_refused(memnodes, key):
    a = memnodes.start(pool="64M", section="16M")
    b = memnodes.start(pool="64M", section="16M")
    with login(a, key) as ca, login(b, key) as cb:
        sa, ga = ca.alloc()
        ca.write_range(grant(key, a, sa, ga), 0, dp.pattern(3, sa, 64))
        sb, gb = cb.alloc()
        mine = grant(key, b, sb, gb, 2)
        cb.write(mine, [(0, 1)], b"\x77" * PAGE)            # the owner of epoch 2
        late = dp.mint_grant(key, b.node_id, a.node_id, sb, gb, dp.R_WRITE, epoch=1)
        refused(lambda: ca.copy(grant(key, a, sa, ga, rights=dp.R_READ), late, b.addr))
        assert cb.read(mine, [(0, 1)]) == b"\x77" * PAGE
        assert cb.read_range(mine, 1, 63) == bytes(63 * PAGE)
        ok = dp.mint_grant(key, b.node_id, a.node_id, sb, gb, dp.R_WRITE, epoch=2)
        ca.copy(grant(key, a, sa, ga, rights=dp.R_READ), ok, b.addr)
        assert cb.read_range(mine, 0, 64) == dp.pattern(3, sa, 64)


def test_epochs_survive_a_restart(memnodes, key, tmp_path):
    img = tmp_path / "pool.img"
    args = dict(pool="64M", section="16M", backing=f"file:{img}", node_id=601)
    d = memnodes.start(**args)
    with login(d, key) as c:
        secs = [c.alloc(owner=5) for _ in range(3)]
        s0, s1, s2 = secs
        c.fence(grant(key, d, *s0, 4))
        c.write(grant(key, d, *s1, 2), [(0, 1)], b"\x88" * PAGE)   # raised by a write
    d.kill9()
    d = memnodes.start(**args)
    with login(d, key) as c:
        refused(lambda: c.write(grant(key, d, *s0, 3), [(0, 1)], bytes(PAGE)))
        refused(lambda: c.write(grant(key, d, *s1, 1), [(0, 1)], bytes(PAGE)))
        assert c.read(grant(key, d, *s1, 1), [(0, 1)]) == b"\x88" * PAGE
        c.write(grant(key, d, *s0, 4), [(0, 1)], b"\x99" * PAGE)
        c.write(grant(key, d, *s2, 0), [(0, 1)], b"\x99" * PAGE)
        # A clean stop keeps them too.
    assert d.stop() == 0
    d = memnodes.start(**args)
    with login(d, key) as c:
        assert c.fence(grant(key, d, *s0, 0)) == 4
        assert c.fence(grant(key, d, *s1, 0)) == 2
        assert c.fence(grant(key, d, *s2, 0)) == 0


def write_v1_pool(path, node_id, section_size, nsections, grown=False):
    """A pool file as version 1 wrote it: one section allocated, with data."""
    data_off = -(-(4096 + 16 * nsections) // (2 << 20)) * (2 << 20)
    size = section_size * nsections
    hdr = struct.pack("<8sIIQQQQQ", b"DSGMNPL1", 1, 4096, section_size, nsections, node_id,
                      data_off, size).ljust(128, b"\0")
    with open(path, "wb") as f:
        f.truncate(data_off + size + (4096 if grown else 0))
        f.write(hdr)
        f.seek(4096 + 16 * 1)
        f.write(struct.pack("<IIQ", 1, 7, 42))           # section 1: used, gen 7, owner 42
        f.seek(data_off + section_size + 5 * PAGE)
        f.write(b"\xab" * PAGE)
    return data_off + size


@pytest.mark.parametrize("grown", [False, True], ids=["v1", "v1-grown-by-a-crash"])
def test_version_1_pool_file_is_upgraded(memnodes, key, tmp_path, grown):
    img = tmp_path / "pool.img"
    end = write_v1_pool(img, 602, 16 << 20, 4, grown)
    args = dict(pool="64M", section="16M", backing=f"file:{img}", node_id=602)
    d = memnodes.start(**args)
    assert "upgraded to version 2" in d.stderr()
    raw = img.read_bytes()[:128]
    assert struct.unpack_from("<I", raw, 8)[0] == 2
    assert struct.unpack_from("<Q", raw, 56)[0] == end          # the epoch table
    assert os.path.getsize(img) == end + 4096
    with login(d, key) as c:
        assert c.list() == [(1, 7, 42)]
        g0 = grant(key, d, 1, 7, 0)
        assert c.read(g0, [(5, 1)]) == b"\xab" * PAGE               # old grants still work
        c.write(g0, [(6, 1)], b"\xcd" * PAGE)
        assert c.fence(grant(key, d, 1, 7, 3)) == 3
        refused(lambda: c.write(g0, [(6, 1)], bytes(PAGE)))
    assert d.stop() == 0
    d = memnodes.start(**args)
    assert "upgraded" not in d.stderr().split("listening")[-1]
    with login(d, key) as c:
        refused(lambda: c.write(grant(key, d, 1, 7, 2), [(0, 1)], bytes(PAGE)))
        assert c.read(grant(key, d, 1, 7, 3), [(5, 2)]) == b"\xab" * PAGE + b"\xcd" * PAGE


def test_truncated_or_foreign_version_2_file_is_refused(memnodes, tmp_path, key):
    img = tmp_path / "pool.img"
    args = dict(pool="64M", section="16M", backing=f"file:{img}", node_id=603)
    d = memnodes.start(**args)
    assert d.stop() == 0
    size = os.path.getsize(img)
    os.truncate(img, size - 4096)                               # the epoch table is gone
    with pytest.raises(RuntimeError, match="truncated"):
        memnodes.start(**args)
    os.truncate(img, size)
    with open(img, "r+b") as f:                                 # a table somewhere else
        f.seek(56)
        f.write(struct.pack("<Q", 4096))
    with pytest.raises(RuntimeError, match="inconsistent"):
        memnodes.start(**args)


def test_mnctl_fence_and_epoch(memnodes, keyfile, key):
    d = memnodes.start(pool="128M", section="128M")
    exe = [find_prog("disagg-mnctl"), "--addr", d.addr, "--key", keyfile,
           "--node-id", str(CLIENT), *progs.fabric_args(CLIENT, "orchestrator")]
    with login(d, key) as c:
        sec, gen = c.alloc()
    sg = (str(sec), str(gen))
    run(exe + ["fill", *sg, "--seed", "3", "--pages", "4"])
    assert run(exe + ["fence", *sg, "--epoch", "2"]).stdout.strip() == '{"epoch": 2}'
    p = run(exe + ["fill", *sg, "--seed", "4", "--pages", "4", "--epoch", "1"], check=False)
    assert p.returncode == 1 and "fenced" in p.stderr, p.stderr
    run(exe + ["verify", *sg, "--seed", "3", "--pages", "4"])   # reads need no epoch
    run(exe + ["fill", *sg, "--seed", "5", "--pages", "4", "--epoch", "2"])
    p = run(exe + ["fadd", *sg, "--offset", "0", "--value", "1"], check=False)
    assert p.returncode == 1 and "fenced" in p.stderr, p.stderr
    assert run(exe + ["fence", *sg]).stdout.strip() == '{"epoch": 2}'
    p = run(exe + ["fence", *sg, "--epoch", str(1 << 32)], check=False)
    assert p.returncode == 1 and "32-bit" in p.stderr, p.stderr
    p = run(exe + ["free", *sg, "--epoch", "1"], check=False)
    assert p.returncode == 1 and "fenced" in p.stderr, p.stderr
    run(exe + ["free", *sg, "--epoch", "2"])
