# SPDX-License-Identifier: MIT
"""The memory node, end to end over loopback: bulk data, concurrency,
authentication, grants, zeroing, copy, persistence and hostile input."""
import json
import os
import struct
import subprocess
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import dproto as dp
import progs  # noqa: E402
from conftest import find_prog, run

CLIENT = 7          # node id of the test client


def mnctl(d, keyfile, *args, check=True):
    return run([find_prog("disagg-mnctl"), "--addr", d.addr, "--key", keyfile,
                "--node-id", str(CLIENT), *progs.fabric_args(CLIENT, "orchestrator"), *args],
               check=check)


def login(d, key, node_id=CLIENT):
    return dp.Conn(d.addr).login(key, node_id)


def grant(key, d, sec, gen, rights=dp.R_READ | dp.R_WRITE, holder=CLIENT, expiry=0):
    return dp.mint_grant(key, d.node_id, holder, sec, gen, rights, expiry)


def test_fill_and_verify_1gib_across_8_sections(memnodes, keyfile):
    d = memnodes.start(pool="1G", section="128M")
    secs = [json.loads(mnctl(d, keyfile, "alloc", "--owner", "1").stdout) for _ in range(8)]
    assert len({s["section"] for s in secs}) == 8
    for i, s in enumerate(secs):
        mnctl(d, keyfile, "fill", str(s["section"]), str(s["generation"]), "--seed", str(i + 1))
    for i, s in enumerate(secs):
        mnctl(d, keyfile, "verify", str(s["section"]), str(s["generation"]), "--seed", str(i + 1))
    # The check can fail: another seed's pattern is a mismatch.
    bad = mnctl(d, keyfile, "verify", str(secs[0]["section"]), str(secs[0]["generation"]),
                "--seed", "99", "--pages", "64", check=False)
    assert bad.returncode != 0
    # A pool of 8 sections is now full.
    full = mnctl(d, keyfile, "alloc", check=False)
    assert full.returncode != 0 and "space" in (full.stderr + full.stdout).lower()


def test_eight_concurrent_clients(memnodes, keyfile, key):
    d = memnodes.start(pool="1G", section="64M")
    secs = [json.loads(mnctl(d, keyfile, "alloc").stdout) for _ in range(8)]
    exe = find_prog("disagg-mnctl")
    base = [exe, "--addr", d.addr, "--key", keyfile, "--node-id", str(CLIENT),
            *progs.fabric_args(CLIENT, "orchestrator")]

    def spawn(cmd):
        return [subprocess.Popen(base + [cmd, str(s["section"]), str(s["generation"]),
                                         "--seed", str(10 + i)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for i, s in enumerate(secs)]

    for cmd in ("fill", "verify"):
        procs = spawn(cmd)
        # Meanwhile a misbehaving client must not disturb them.
        with dp.Conn(d.addr) as bad:
            bad.send_raw(b"\xff" * 64)
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, (cmd, out, err)
    assert d.alive()


def test_client_without_the_key_gets_nothing(memnodes, key):
    d = memnodes.start(pool="256M")
    wrong = os.urandom(32)
    # The server's proof does not verify with the wrong key.
    with dp.Conn(d.addr) as c:
        with pytest.raises(dp.ProtoError):
            c.hello(wrong, CLIENT)
    # Sending a wrong AUTH: NOAUTH, then the server closes.
    with dp.Conn(d.addr) as c:
        cn, sn = c.hello(wrong, CLIENT, check_server=False)
        with pytest.raises(dp.ProtoError) as e:
            c.auth(wrong, CLIENT, cn, sn)
        assert e.value.status == dp.ST["NOAUTH"]
        with pytest.raises((ConnectionError, OSError)):
            c.recv()
    # Skipping AUTH: every request is refused and the connection closed.
    with dp.Conn(d.addr) as c:
        c.hello(key, CLIENT)
        with pytest.raises(dp.ProtoError) as e:
            c.alloc()
        assert e.value.status == dp.ST["NOAUTH"]
        with pytest.raises((ConnectionError, OSError)):
            c.recv()
    # No HELLO at all.
    with dp.Conn(d.addr) as c:
        with pytest.raises(dp.ProtoError) as e:
            c.call(dp.OP["STATS"])
        assert e.value.status == dp.ST["NOAUTH"]
    # The key holder is still served.
    with login(d, key) as c:
        c.alloc()


def test_freed_section_reads_as_zeros_when_reallocated(memnodes, key):
    d = memnodes.start(pool="128M", section="128M")   # one section: reuse is certain
    with login(d, key) as c:
        sec, gen = c.alloc(owner=1)
        g = grant(key, d, sec, gen)
        data = dp.pattern(1, sec, 512)
        c.write_range(g, 0, data)
        c.write_range(g, 32768 - 8, dp.pattern(2, sec, 8))
        assert c.read_range(g, 0, 512) == data
        c.free(sec, gen)
        with pytest.raises(dp.ProtoError) as e:   # freed: no access
            c.read(g, [(0, 1)])
        assert e.value.status in (dp.ST["NOENT"], dp.ST["STALE"])
        sec2, gen2 = c.alloc(owner=2)
        assert sec2 == sec and gen2 != gen
        with pytest.raises(dp.ProtoError) as e:   # the old grant is stale
            c.read(g, [(0, 1)])
        assert e.value.status == dp.ST["STALE"]
        g2 = grant(key, d, sec2, gen2)
        assert c.read_range(g2, 0, 32768) == bytes(128 << 20)
        # Freeing with a stale generation is refused.
        with pytest.raises(dp.ProtoError) as e:
            c.free(sec2, gen)
        assert e.value.status == dp.ST["STALE"]


def test_grants_are_enforced(memnodes, key):
    d = memnodes.start(pool="256M")
    with login(d, key) as c:
        sec, gen = c.alloc()
        ok = grant(key, d, sec, gen)
        c.write(ok, [(0, 1)], b"\x5a" * 4096)
        cases = {
            "GRANT": [
                ok[:40] + bytes(64),                                      # no signature
                ok[:-1] + bytes([ok[-1] ^ 1]),                            # bad signature
                grant(key, d, sec, gen, expiry=int(time.time()) - 5),     # expired
                grant(key, d, sec, gen, holder=CLIENT + 1),               # someone else's
                dp.mint_grant(key, d.node_id + 1, CLIENT, sec, gen, 3),   # other memnode
                # signed with another key: a compute node minting its own
                dp.mint_grant(Ed25519PrivateKey.generate(), d.node_id, CLIENT, sec, gen, 3),
            ],
        }
        for g in cases["GRANT"]:
            with pytest.raises(dp.ProtoError) as e:
                c.read(g, [(0, 1)])
            assert e.value.status == dp.ST["GRANT"]
        ro = grant(key, d, sec, gen, rights=dp.R_READ)
        assert c.read(ro, [(0, 1)]) == b"\x5a" * 4096
        with pytest.raises(dp.ProtoError) as e:
            c.write(ro, [(0, 1)], bytes(4096))
        assert e.value.status == dp.ST["RIGHTS"]
        wo = grant(key, d, sec, gen, rights=dp.R_WRITE)
        with pytest.raises(dp.ProtoError) as e:
            c.read(wo, [(0, 1)])
        assert e.value.status == dp.ST["RIGHTS"]
        # Unallocated section.
        with pytest.raises(dp.ProtoError) as e:
            c.read(grant(key, d, sec + 1, 1), [(0, 1)])
        assert e.value.status in (dp.ST["NOENT"], dp.ST["STALE"])
        assert c.read(ok, [(0, 1)]) == b"\x5a" * 4096


def test_hostile_payloads_get_errors(memnodes, key):
    d = memnodes.start(pool="256M", section="128M")
    with login(d, key) as c:
        sec, gen = c.alloc()
        g = grant(key, d, sec, gen)
        pages = (128 << 20) // 4096
        bad = [
            ([(pages, 1)], "RANGE"),                 # past the end
            ([(pages - 1, 2)], "RANGE"),             # straddles the end
            ([(0xFFFFFFFF, 2)], "RANGE"),            # would wrap
            ([(0, 0)], "BADMSG"),                    # empty extent
            ([(0, 257)], "TOOBIG"),                  # over max pages
            ([(i, 1) for i in range(257)], "TOOBIG"),  # over max extents
            ([], "BADMSG"),                          # no extents
        ]
        for ext, st in bad:
            with pytest.raises(dp.ProtoError) as e:
                c.read(g, ext)
            assert e.value.status == dp.ST[st], (ext[:2], st)
        # WRITE whose data does not match its extents.
        with pytest.raises(dp.ProtoError) as e:
            c.call(dp.OP["WRITE"], c.io_req(g, [(0, 2)]) + bytes(4096))
        assert e.value.status == dp.ST["BADMSG"]
        # Atomics: misaligned and out of range.
        with pytest.raises(dp.ProtoError) as e:
            c.cas(g, 3, 0, 1)
        assert e.value.status in (dp.ST["BADMSG"], dp.ST["RANGE"])
        with pytest.raises(dp.ProtoError) as e:
            c.fadd(g, 128 << 20, 1)
        assert e.value.status == dp.ST["RANGE"]
        # Fixed-size payload of the wrong size.
        with pytest.raises(dp.ProtoError) as e:
            c.call(dp.OP["SECTION_ALLOC"], b"\0" * 15)
        assert e.value.status == dp.ST["BADMSG"]
        assert c.read(g, [(0, 1)]) == bytes(4096)   # still usable

    # Malformed headers: the connection is closed, nothing else happens.
    frames = [
        dp.hdr(dp.OP["PING"], 0, 1, magic=0x12345678),
        dp.hdr(0, 0, 1),
        dp.hdr(200, 0, 1),
        dp.hdr(dp.OP["PING"], 0, 1, version=9),
        dp.hdr(dp.OP["PING"], 0, 1, flags=0x80),
        dp.hdr(dp.OP["PING"], 0, 1, rsvd=1),
        dp.hdr(dp.OP["WRITE"], 0xFFFFFFF0, 1),        # absurd length
        dp.hdr(dp.OP["PING"], 0, 1)[:20],             # truncated
    ]
    for f in frames:
        with dp.Conn(d.addr, timeout=5) as c:
            c.login(key, CLIENT)
            c.send_raw(f)
            if len(f) < dp.HDR.size:
                c.sock.shutdown(1)
            with pytest.raises((ConnectionError, OSError, AssertionError)):
                while True:
                    _, st, _, _ = c.recv()
                    assert st == 0, "error reply"   # an error reply ends the loop
    assert d.alive()
    with login(d, key) as c:
        c.call(dp.OP["PING"])


def test_atomics(memnodes, key):
    d = memnodes.start(pool="256M")
    with login(d, key) as c:
        sec, gen = c.alloc()
        g = grant(key, d, sec, gen)
        assert c.cas(g, 64, 0, 42) == 0
        assert c.cas(g, 64, 0, 7) == 42          # fails, returns current
        assert c.fadd(g, 64, 8) == 42
        assert c.fadd(g, 64, 0) == 50
        assert struct.unpack_from("<Q", c.read(g, [(0, 1)]), 64)[0] == 50
        ro = grant(key, d, sec, gen, rights=dp.R_READ)
        with pytest.raises(dp.ProtoError) as e:
            c.fadd(ro, 64, 1)
        assert e.value.status == dp.ST["RIGHTS"]


def test_copy_between_memory_nodes_page_by_page(memnodes, key):
    a = memnodes.start(pool="256M", section="16M")
    b = memnodes.start(pool="256M", section="16M")
    pages = (16 << 20) // 4096
    with login(a, key) as ca, login(b, key) as cb:
        sa, ga = ca.alloc()
        ga_grant = grant(key, a, sa, ga)
        # Data with holes: every third run of 64 pages stays unwritten.
        written = {}
        for run_start in range(0, pages, 64):
            if (run_start // 64) % 3 == 2:
                continue
            data = dp.pattern(5, sa, 64, first=run_start)
            ca.write_range(ga_grant, run_start, data)
            written[run_start] = data
        sb, gb = cb.alloc()
        # Dirty the target first: allocation must have zeroed it, copy must
        # leave the holes zero.
        dst = dp.mint_grant(key, b.node_id, a.node_id, sb, gb, dp.R_WRITE)
        sent, usec = ca.copy(grant(key, a, sa, ga, rights=dp.R_READ), dst, b.addr)
        assert 0 < sent <= pages
        src = ca.read_range(ga_grant, 0, pages)
        got = cb.read_range(grant(key, b, sb, gb), 0, pages)
        for p in range(pages):
            assert got[p * 4096:(p + 1) * 4096] == src[p * 4096:(p + 1) * 4096], f"page {p}"
        # A grant whose holder is not the source memnode is refused by the target.
        bad = dp.mint_grant(key, b.node_id, CLIENT, sb, gb, dp.R_WRITE)
        with pytest.raises(dp.ProtoError) as e:
            ca.copy(grant(key, a, sa, ga, rights=dp.R_READ), bad, b.addr)
        assert e.value.status in (dp.ST["IO"], dp.ST["GRANT"])
        # An unreachable target gives an error, not a hang.
        with pytest.raises(dp.ProtoError) as e:
            ca.copy(grant(key, a, sa, ga, rights=dp.R_READ), dst, "127.0.0.1:1")
        assert e.value.status == dp.ST["IO"]


def test_file_backing_survives_kill9(memnodes, key, tmp_path):
    img = tmp_path / "pool.img"
    args = dict(pool="256M", section="32M", backing=f"file:{img}", node_id=501)
    d = memnodes.start(**args)
    with login(d, key) as c:
        secs = [c.alloc(owner=10 + i) for i in range(4)]
        for sec, gen in secs:
            c.write_range(grant(key, d, sec, gen), 0, dp.pattern(sec + 1, sec, 2048))
            c.write_range(grant(key, d, sec, gen), 8192 - 16, dp.pattern(sec + 2, sec, 16))
        c.free(*secs[3])
        before = sorted(c.list())
    d.kill9()
    d2 = memnodes.start(**args)
    with login(d2, key) as c:
        assert sorted(c.list()) == before
        for sec, gen in secs[:3]:
            g = grant(key, d2, sec, gen)
            assert c.read_range(g, 0, 2048) == dp.pattern(sec + 1, sec, 2048), sec
            assert c.read_range(g, 8192 - 16, 16) == dp.pattern(sec + 2, sec, 16)
            assert c.read_range(g, 2048, 64) == bytes(64 * 4096)
        # The freed section comes back zeroed, with a new generation.
        sec, gen = c.alloc()
        assert (sec, gen) != secs[3]
        assert c.read_range(grant(key, d2, sec, gen), 0, 2048) == bytes(2048 * 4096)
    # Restarting with different geometry is refused, not silently reformatted.
    with pytest.raises(RuntimeError):
        memnodes.start(pool="256M", section="64M", backing=f"file:{img}", node_id=501)


def test_key_readable_by_others_is_refused(tmp_path):
    k = tmp_path / "k"
    k.write_bytes(os.urandom(32))
    k.chmod(0o644)
    p = run([find_prog("disagg-memnode"), "--key", str(k), "--node-id", "1", *progs.fabric_args(1, "memory"),
             "--grant-pubkey", dp.grant_files(k)[1],
             "--listen", "127.0.0.1:0", "--pool", "128M"], check=False, timeout=20)
    assert p.returncode != 0
    assert "cannot load cluster key" in p.stderr, p.stderr


def test_http_health_and_metrics(memnodes, key):
    d = memnodes.start(pool="256M")
    with login(d, key) as c:
        sec, gen = c.alloc()
        c.write(grant(key, d, sec, gen), [(0, 1)], bytes(4096))
    h = json.load(urllib.request.urlopen(f"http://{d.http}/healthz", timeout=5))
    assert h["status"] == "ok"
    m = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    for name in ("disagg_memnode_requests_total", "disagg_memnode_bytes_written_total",
                 "disagg_memnode_request_seconds_bucket", "disagg_memnode_sections",
                 "disagg_memnode_errors_total"):
        assert name in m, name
