# SPDX-License-Identifier: MIT
"""The trust model at the memory node, one attack per test, each against a
real disagg-memnode, refused and counted in its metrics (docs/security.md):
forged grants, grants minted by a compute node, expired grants, grants for
another section or holder, writes of an old epoch, a replayed AUTH, a
reflected challenge, and the orchestrator's capability claimed by a node
that does not hold the grant key."""
import os
import struct
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import dproto as dp
import progs  # noqa: E402
from fakes import FakeMemnodes

COMPUTE = 7          # a compute node: the cluster key, no grant key
ORCH = 1000          # the orchestrator's id


from conftest import memnode_counter as counter, memnode_metrics as metrics  # noqa: E402


def refused(fn, status):
    with pytest.raises(dp.ProtoError) as e:
        fn()
    assert e.value.status == dp.ST[status], dp.ST_NAME.get(e.value.status)


def cluster_only(key):
    """What a compute node holds: the cluster key without the grant key."""
    return dp.Keys(bytes(key))


@pytest.fixture
def node(memnodes):
    return memnodes.start(pool="256M", section="64M")


@pytest.fixture
def section(node, key):
    """A section allocated by the orchestrator, and a read-write grant for the compute node."""
    with dp.Conn(node.addr).login(key, ORCH) as o:
        sec, gen = o.alloc(owner=COMPUTE)
    g = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, dp.R_READ | dp.R_WRITE)
    return sec, gen, g


def test_forged_grant_is_refused_and_counted(node, key, section):
    sec, gen, good = section
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        c.write(good, [(0, 1)], b"\x11" * dp.PAGE)
        before = counter(node, "disagg_memnode_grants_rejected_total", "forged")
        forged = good[:40] + bytes(64)                                  # no signature
        refused(lambda: c.read(forged, [(0, 1)]), "GRANT")
        flipped = bytearray(good)
        flipped[24] ^= dp.R_FREE                                         # rights raised
        refused(lambda: c.read(bytes(flipped), [(0, 1)]), "GRANT")
        assert counter(node, "disagg_memnode_grants_rejected_total", "forged") == before + 2
        assert c.read(good, [(0, 1)]) == b"\x11" * dp.PAGE


def test_grant_minted_by_a_compute_node_is_refused(node, key, section):
    """A compute node cannot mint: it lacks the grant key. Its own signing
    key, or the cluster key's HMAC in the signature's place, both fail."""
    sec, gen, _ = section
    body = dp.GRANT.pack(node.node_id, COMPUTE, sec, gen, 3, 0, 0, b"\0" * 64)[:40]
    hmac_style = body + dp.mac(key, b"disagg-grant", body) * 2
    own_key = dp.mint_grant(Ed25519PrivateKey.generate(), node.node_id, COMPUTE, sec, gen, 3)
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        for g in (hmac_style, own_key):
            refused(lambda g=g: c.write(g, [(0, 1)], bytes(dp.PAGE)), "GRANT")
            refused(lambda g=g: c.fence(g), "GRANT")
    assert counter(node, "disagg_memnode_grants_rejected_total", "forged") >= 4


def test_expired_grant_is_refused_and_counted(node, key, section):
    sec, gen, _ = section
    old = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, dp.R_READ,
                        expiry=int(time.time()) - 1)
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        refused(lambda: c.read(old, [(0, 1)]), "GRANT")
        refused(lambda: c.read(old, [(0, 1)]), "GRANT")       # cached: still expired
    assert counter(node, "disagg_memnode_grants_rejected_total", "expired") == 2


def test_grant_for_another_section_or_holder_is_refused(node, key, section):
    sec, gen, good = section
    with dp.Conn(node.addr).login(key, ORCH) as o:
        sec2, gen2 = o.alloc(owner=COMPUTE + 1)
    theirs = dp.mint_grant(key, node.node_id, COMPUTE + 1, sec2, gen2, 3)
    moved = bytearray(good)
    struct.pack_into("<I", moved, 16, sec2)                      # section rewritten
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        refused(lambda: c.read(theirs, [(0, 1)]), "GRANT")       # another holder's
        refused(lambda: c.read(bytes(moved), [(0, 1)]), "GRANT")
    other_node = dp.mint_grant(key, node.node_id + 1, COMPUTE, sec, gen, 3)
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        refused(lambda: c.read(other_node, [(0, 1)]), "GRANT")  # another memory node's


def test_write_with_an_old_epoch_is_refused_and_counted(node, key, section):
    sec, gen, _ = section
    old = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, 3, epoch=1)
    new = dp.mint_grant(key, node.node_id, COMPUTE + 1, sec, gen, 3, epoch=2)
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE + 1) as n:
        assert n.fence(new) == 2
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        before = counter(node, "disagg_memnode_fenced_requests_total")
        refused(lambda: c.write(old, [(0, 1)], b"\x22" * dp.PAGE), "FENCED")
        assert counter(node, "disagg_memnode_fenced_requests_total") == before + 1
        assert c.read(old, [(0, 1)]) == bytes(dp.PAGE)           # never applied


def test_orchestrator_capability_needs_the_grant_key(node, key, section):
    """ALLOC, LIST, COPY and FREE without a grant are the orchestrator's: a
    node with the cluster key alone, even claiming the orchestrator's id,
    is refused (DENIED) and counted."""
    sec, gen, good = section
    for who in (COMPUTE, ORCH):
        with dp.Conn(node.addr).login(cluster_only(key), who) as c:
            refused(lambda: c.alloc(), "DENIED")
            refused(lambda: c.list(), "DENIED")
            refused(lambda: c.free(sec, gen), "DENIED")
            refused(lambda: c.free(sec, gen, epoch=0), "DENIED")
            src = dp.mint_grant(key, node.node_id, who, sec, gen, dp.R_READ)
            refused(lambda: c.copy(src, good, "127.0.0.1:1"), "DENIED")
            c.call(dp.OP["PING"])                              # still connected
    assert counter(node, "disagg_memnode_denied_requests_total") == 10
    with dp.Conn(node.addr).login(key, ORCH) as o:             # the real one
        assert (sec, gen, COMPUTE) in o.list()


def test_free_with_a_grant_needs_the_free_right(node, key, section):
    sec, gen, good = section
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        before = counter(node, "disagg_memnode_grants_rejected_total", "rights")
        refused(lambda: c.free_grant(good), "RIGHTS")            # read-write only
        assert counter(node, "disagg_memnode_grants_rejected_total", "rights") == before + 1
        stranger = dp.mint_grant(key, node.node_id, COMPUTE + 1, sec, gen, dp.R_FREE)
        refused(lambda: c.free_grant(stranger), "GRANT")         # someone else's
        mine = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, dp.R_FREE)
        c.free_grant(mine)
        refused(lambda: c.free_grant(mine), "NOENT")
    with dp.Conn(node.addr).login(key, ORCH) as o:
        assert all(s[0] != sec for s in o.list())


def test_replayed_auth_is_refused(node, key):
    """An eavesdropper replays the orchestrator's AUTH (MAC and proof) on a
    new connection: the server's challenge is new, so both fail."""
    with dp.Conn(node.addr) as c:
        cn, sn = c.hello(key, ORCH)
        recorded = (dp.mac(key, b"disagg-hello-cli", sn, cn, struct.pack("<Q", ORCH),
                           struct.pack("<Q", node.node_id)) +
                    dp.orch_proof(key, cn, sn, ORCH, node.node_id))
        c.call(dp.OP["AUTH"], recorded)
        c.alloc()
    before = counter(node, "disagg_memnode_auth_failures_total")
    with dp.Conn(node.addr) as c:
        c.send(dp.OP["HELLO"], dp.HELLO_REQ.pack(dp.VERSION, dp.VERSION, 7, ORCH, cn))
        c.recv()                                                  # the same client nonce
        refused(lambda: c.call(dp.OP["AUTH"], recorded), "NOAUTH")
        with pytest.raises((ConnectionError, OSError)):
            c.recv()
    # The MAC alone replayed, with a fresh proof the attacker cannot make:
    # a proof for the old challenge on the new one.
    with dp.Conn(node.addr) as c:
        c.hello(key, ORCH)
        refused(lambda: c.call(dp.OP["AUTH"], recorded), "NOAUTH")
    assert counter(node, "disagg_memnode_auth_failures_total") == before + 2


def test_reflected_challenge_is_refused(node, key):
    """An attacker without the cluster key opens A, takes A's server
    challenge, opens B with that challenge as its own client nonce, and
    offers B's server proof as A's client proof: the two proofs differ by
    label and order, so A refuses."""
    wrong = os.urandom(32)
    with dp.Conn(node.addr) as a, dp.Conn(node.addr) as b:
        cn_a, sn_a = a.hello(wrong, COMPUTE, check_server=False)
        rep = b.call(dp.OP["HELLO"], dp.HELLO_REQ.pack(dp.VERSION, dp.VERSION, 7, COMPUTE,
                                                       sn_a))
        server_proof_b = dp.HELLO_REP.unpack(rep)[10]
        refused(lambda: a.call(dp.OP["AUTH"], server_proof_b), "NOAUTH")
    assert counter(node, "disagg_memnode_auth_failures_total") >= 1


def test_bad_orchestrator_proof_fails_auth(node, key):
    """A valid MAC with a proof made by another key: AUTH fails (not a plain login)."""
    with dp.Conn(node.addr) as c:
        cn, sn = c.hello(key, ORCH)
        m = dp.mac(key, b"disagg-hello-cli", sn, cn, struct.pack("<Q", ORCH),
                   struct.pack("<Q", node.node_id))
        fake = dp.orch_proof(Ed25519PrivateKey.generate(), cn, sn, ORCH, node.node_id)
        refused(lambda: c.call(dp.OP["AUTH"], m + fake), "NOAUTH")
    with dp.Conn(node.addr) as c:                                 # wrong length
        cn, sn = c.hello(key, ORCH)
        m = dp.mac(key, b"disagg-hello-cli", sn, cn, struct.pack("<Q", ORCH),
                   struct.pack("<Q", node.node_id))
        refused(lambda: c.call(dp.OP["AUTH"], m + bytes(10)), "BADMSG")


def test_a_verified_grant_stays_bound_to_its_holder(node, key, section):
    """The node remembers grants whose signature verified (for every
    connection): a grant used by its holder is still refused to a node that
    presents a copy of it under another id, and still expires."""
    sec, gen, good = section
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        c.read(good, [(0, 1)])                                    # verified, remembered
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE + 1) as thief:
        refused(lambda: thief.read(good, [(0, 1)]), "GRANT")
    soon = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, dp.R_READ,
                         expiry=int(time.time()) + 2)
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        c.read(soon, [(0, 1)])
    time.sleep(2.2)
    with dp.Conn(node.addr).login(cluster_only(key), COMPUTE) as c:
        refused(lambda: c.read(soon, [(0, 1)]), "GRANT")        # from the node-wide cache


def trust_script(addr, node_id, key):
    """The same requests against any memory node: the status of each."""
    out = []

    def st(fn):
        try:
            fn()
            out.append("OK")
        except dp.ProtoError as e:
            out.append(dp.ST_NAME.get(e.status, e.status))

    with dp.Conn(addr).login(key, ORCH) as o:
        sec, gen = o.alloc(owner=COMPUTE)
        sec2, gen2 = o.alloc(owner=COMPUTE)
    with dp.Conn(addr).login(cluster_only(key), COMPUTE) as c:
        st(lambda: c.alloc())                                               # DENIED
        st(lambda: c.list())                                                # DENIED
        st(lambda: c.free(sec, gen))                                        # DENIED
        st(lambda: c.copy(dp.mint_grant(key, node_id, COMPUTE, sec, gen, dp.R_READ),
                          dp.mint_grant(key, node_id, node_id, sec2, gen2, dp.R_WRITE),
                          "127.0.0.1:1"))                                   # DENIED
        rw = dp.mint_grant(key, node_id, COMPUTE, sec, gen, dp.R_READ | dp.R_WRITE)
        st(lambda: c.free_grant(rw))                                        # RIGHTS
        st(lambda: c.free_grant(rw[:40] + bytes(64)))                       # GRANT
        other = dp.mint_grant(key, node_id, COMPUTE + 1, sec, gen, dp.R_FREE)
        st(lambda: c.free_grant(other))                                     # GRANT
        late = dp.mint_grant(key, node_id, COMPUTE, sec, gen, dp.R_FREE,
                             expiry=int(time.time()) - 1)
        st(lambda: c.free_grant(late))                                      # GRANT
        stale = dp.mint_grant(key, node_id, COMPUTE, sec, gen + 1, dp.R_FREE)
        st(lambda: c.free_grant(stale))                                     # STALE
        mine = dp.mint_grant(key, node_id, COMPUTE, sec, gen, dp.R_FREE)
        st(lambda: c.free_grant(mine))                                      # OK
        st(lambda: c.free_grant(mine))                                      # NOENT
    return out


def test_the_fake_memory_node_answers_as_the_real_one(node, key):
    """The orchestrator's tests run against fake memory nodes (fakes.py):
    for the trust model's requests they must answer what disagg-memnode
    answers."""
    real = trust_script(node.addr, node.node_id, key)
    assert real == ["DENIED"] * 4 + ["RIGHTS", "GRANT", "GRANT", "GRANT", "STALE", "OK",
                                     "NOENT"], real
    fm = FakeMemnodes(key, fabric=progs.CURRENT)
    try:
        f = fm.add(555)
        assert trust_script(f.addr, 555, key) == real
    finally:
        fm.close()
