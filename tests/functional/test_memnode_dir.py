# SPDX-License-Identifier: MIT
"""The coherence directory of shared regions in mode strict, on a real
memory node (docs/protocol.md, "Coherence directory"): Python holders
attach recall channels, ask for read copies and ownership of pages, and
answer (or do not answer) the recalls the node sends them.

Each holder has two connections, as a compute node would: its recall
channel and one (or more) for its requests."""
import os
import pathlib
import select
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import dproto as dp
import progs  # noqa: E402

ORCH = 5            # allocates sections, as the orchestrator
A, B, C = 7, 8, 9   # holders
PAGE = dp.PAGE
LEASE_MS = 400
RECL = dp.FEAT_ALL | dp.FEAT_DIR_RECLAIM   # a holder that can hand its pages back


class Holder:
    """A holder node: a recall channel and a connection for requests."""

    def __init__(self, d, key, node, sec, gen, rights=dp.R_READ | dp.R_WRITE, epoch=0,
                 features=dp.FEAT_ALL):
        self.node = node
        self.grant = dp.mint_grant(key, d.node_id, node, sec, gen, rights, epoch=epoch)
        self.chan_conn = dp.Conn(d.addr).login(key, node, orch=False, features=features)
        self.io = dp.Conn(d.addr).login(key, node, orch=False, features=features)
        self.chan = dp.Channel(self.chan_conn)

    def attach(self):
        self.chan_conn.dir_attach(self.grant)
        return self

    def read(self, page):
        return self.io.dir_read(self.grant, page)

    def write(self, page):
        return self.io.dir_write(self.grant, page)

    def close(self):
        self.chan_conn.close()
        self.io.close()


def start(memnodes, lease_ms=LEASE_MS, pool="64M", extra_args=(), **kw):
    return memnodes.start(pool=pool, section="16M",
                          extra=["--dir-lease-ms", str(lease_ms), *extra_args], **kw)


def section(d, key):
    with dp.Conn(d.addr).login(key, ORCH) as o:
        return o.alloc(owner=1)


def two_holders(memnodes, key, features=dp.FEAT_ALL, **kw):
    """A node, a section, and holders A and B attached to it."""
    d = start(memnodes, **kw)
    sec, gen = section(d, key)
    return (d, sec, gen, Holder(d, key, A, sec, gen, features=features).attach(),
            Holder(d, key, B, sec, gen, features=features).attach())


def plain(key, d, node, sec, gen, rights=dp.R_READ | dp.R_WRITE):
    """A connection and grant of `node` for plain READ/WRITE."""
    return (dp.Conn(d.addr).login(key, node, orch=False),
            dp.mint_grant(key, d.node_id, node, sec, gen, rights))


def metrics(d):
    text = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(("disagg_memnode_dir_", "disagg_memnode_requests",
                            "disagg_memnode_worker_", "disagg_memnode_connections_total",
                            "disagg_memnode_posts_total")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def refused(status, fn, *a, **kw):
    with pytest.raises(dp.ProtoError) as e:
        fn(*a, **kw)
    assert e.value.status == dp.ST[status], dp.ST_NAME.get(e.value.status)


def reply(conn, rid):
    """The reply to request rid: (status, payload)."""
    got, status, data, _ = conn.recv()
    assert got == rid, (got, rid)
    return status, data


def write_reply(data):
    flags, rsvd = dp.DIR_WRITE_REP.unpack_from(data)
    return bool(flags & dp.HAD_COPY), data[dp.DIR_WRITE_REP.size:]


def test_invalidate_then_downgrade_moves_the_page_between_two_holders(memnodes, key):
    d = start(memnodes)
    sec, gen = section(d, key)
    base = dp.pattern(1, sec, 1, first=5)
    w, wg = plain(key, d, A, sec, gen)
    w.write(wg, [(5, 1)], base)
    a = Holder(d, key, A, sec, gen).attach()
    b = Holder(d, key, B, sec, gen).attach()

    # A reads: nobody owns the page, no recall; the page is the node's.
    assert a.read(5) == base
    # B writes: A is recalled with INVALIDATE first, then B owns the page.
    rid = b.io.send_dir("DIR_WRITE", b.grant, 5)
    r = a.chan.recall()
    assert (r["section"], r["generation"], r["page"], r["mode"]) == (sec, gen, 5, dp.INVALIDATE)
    assert r["grants"] == 1                       # A's one DIR_READ was answered before
    with pytest.raises(socket.timeout):           # B waits for A's answer
        b.io.sock.settimeout(0.2)
        b.io.recv()
    b.io.sock.settimeout(10)
    a.chan.ack(r["seq"])
    status, data = reply(b.io, rid)
    assert status == 0 and write_reply(data) == (False, base)

    # A reads again: B is recalled with DOWNGRADE and answers with its dirty page.
    mine = dp.pattern(2, sec, 1, first=5)
    rid = a.io.send_dir("DIR_READ", a.grant, 5)
    r = b.chan.recall()
    assert (r["page"], r["mode"], r["grants"]) == (5, dp.DOWNGRADE, 1)
    b.chan.ack(r["seq"], dirty=mine)
    assert reply(a.io, rid) == (0, mine)
    assert w.read(wg, [(5, 1)]) == mine            # stored on the node
    assert a.chan.recall(0.2) is None              # A was recalled nothing else

    # B writes again: it kept a read copy (had_copy, no data); A is invalidated.
    rid = b.io.send_dir("DIR_WRITE", b.grant, 5)
    r = a.chan.recall()
    assert (r["page"], r["mode"], r["grants"]) == (5, dp.INVALIDATE, 2)
    a.chan.ack(r["seq"])
    status, data = reply(b.io, rid)
    assert status == 0 and write_reply(data) == (True, b"")
    # ... and again: it owns the page, nothing to recall.
    assert b.write(5) == (True, None)
    # A reads a page nobody holds: no recall at all.
    assert a.read(6) == bytes(PAGE)

    m = metrics(d)
    assert m['disagg_memnode_dir_recalls_total{mode="invalidate"}'] == 2
    assert m['disagg_memnode_dir_recalls_total{mode="downgrade"}'] == 1
    assert m["disagg_memnode_dir_dirty_pages_total"] == 1
    assert m["disagg_memnode_dir_holders"] == 2 and m["disagg_memnode_dir_sections"] == 1
    assert m['disagg_memnode_requests_total{op="dir_write"}'] == 3
    assert m["disagg_memnode_dir_recall_seconds_count"] == 3
    assert m["disagg_memnode_dir_holders_lost_total"] == 0
    a.close()
    b.close()


def test_directory_connections_are_served_by_worker_0(memnodes, key):
    """A connection that offers FEAT_DIR_CONN moves to worker 0 once its
    HELLO is answered, so that a recall and the reply it unblocks stay on
    one thread; the others stay spread over the workers, and the moved
    ones work as any other (over TLS when the tests run it)."""
    workers = 3
    d = start(memnodes, extra_args=["--workers", str(workers)])
    sec, gen = section(d, key)

    def per_worker():
        m = metrics(d)
        return [m[f'disagg_memnode_worker_connections{{worker="{i}"}}'] for i in range(workers)]

    others = [plain(key, d, C, sec, gen) for _ in range(workers)]
    assert dp.wait_for(lambda: per_worker() == [1] * workers)   # round robin, one each
    m = metrics(d)
    assert m["disagg_memnode_dir_conn_moves_total"] == 0
    first = int(m["disagg_memnode_connections_total"]) % workers   # where the next one goes

    feats = dp.FEAT_ALL | dp.FEAT_DIR_CONN
    a = Holder(d, key, A, sec, gen, features=feats).attach()
    b = Holder(d, key, B, sec, gen, features=feats).attach()
    assert a.chan_conn.info["features"] & dp.FEAT_DIR_CONN
    assert per_worker() == [1 + 4] + [1] * (workers - 1)
    assert metrics(d)["disagg_memnode_dir_connections"] == 4
    moved = sum(1 for k in range(4) if (first + k) % workers != 0)
    assert metrics(d)["disagg_memnode_dir_conn_moves_total"] == moved

    # A hand-over between the moved connections: B's write recalls A's copy.
    assert a.read(5) == bytes(PAGE)
    m0 = metrics(d)
    rid = b.io.send_dir("DIR_WRITE", b.grant, 5)
    r = a.chan.recall()
    assert (r["page"], r["mode"]) == (5, dp.INVALIDATE)
    a.chan.ack(r["seq"])
    status, data = reply(b.io, rid)
    assert status == 0 and write_reply(data) == (False, bytes(PAGE))
    # The recall and the reply it unblocked went from worker 0 to worker 0:
    # sent from the pump, not through the post queue.
    m1 = metrics(d)
    posts = lambda m, path: m[f'disagg_memnode_posts_total{{path="{path}"}}']  # noqa: E731
    assert posts(m1, "local") - posts(m0, "local") == 2
    assert posts(m1, "queued") == posts(m0, "queued")
    for c, g in others:                            # the ones left where they were
        assert c.read(g, [(6, 1)]) == bytes(PAGE)
    a.close()
    b.close()
    for c, _ in others:
        c.close()
    assert dp.wait_for(lambda: per_worker() == [0] * workers)
    assert metrics(d)["disagg_memnode_dir_connections"] == 0


def test_connections_moving_to_worker_0_while_others_come_and_go(memnodes, key):
    """Many clients at once, half of them offering FEAT_DIR_CONN: every one
    is served (the moved ones from worker 0), and once they are gone no
    connection is left counted on any worker."""
    workers = 4
    d = start(memnodes, extra_args=["--workers", str(workers)])
    sec, gen = section(d, key)
    g = dp.mint_grant(key, d.node_id, C, sec, gen, dp.R_READ | dp.R_WRITE)
    errors = []
    dp.Conn(d.addr).login(key, C, orch=False).close()   # C's certificate, made once

    def client(i):
        try:
            feats = dp.FEAT_ALL | (dp.FEAT_DIR_CONN if i % 2 else 0)
            with dp.Conn(d.addr).login(key, C, orch=False, features=feats) as c:
                assert c.read(g, [(i % 64, 1)]) == bytes(PAGE)
        except Exception as e:            # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    m = metrics(d)
    assert m["disagg_memnode_dir_conn_moves_total"] >= 16   # 32 hinted, 1 in 4 lands on 0
    assert dp.wait_for(lambda: [metrics(d)[f'disagg_memnode_worker_connections{{worker="{i}"}}']
                                for i in range(workers)] == [0] * workers)
    assert metrics(d)["disagg_memnode_dir_connections"] == 0


def test_two_vms_of_one_node_are_two_holders(memnodes, key):
    """Holder tags: node A's two VMs (tags 1 and 2) each have a recall
    channel and copies of their own; a write of one recalls the other."""
    d = start(memnodes)
    sec, gen = section(d, key)
    feats = dp.FEAT_ALL | dp.FEAT_DIR_TAG
    grant = dp.mint_grant(key, d.node_id, A, sec, gen, dp.R_READ | dp.R_WRITE)
    vm = {}
    for tag in (1, 2):
        chan = dp.Conn(d.addr).login(key, A, orch=False, features=feats)
        io = dp.Conn(d.addr).login(key, A, orch=False, features=feats)
        assert chan.info["features"] & dp.FEAT_DIR_TAG
        chan.dir_attach(grant, tag)
        vm[tag] = (io, dp.Channel(chan), chan)
    (io1, ch1, _), (io2, ch2, _) = vm[1], vm[2]
    mine = dp.pattern(5, sec, 1, first=3)

    assert io1.dir_write(grant, 3, tag=1) == (False, bytes(PAGE))
    # VM 2 reads: VM 1 (same node, another holder) is downgraded and hands its page over.
    rid = io2.send_dir("DIR_READ", grant, 3, tag=2)
    r = ch1.recall()
    assert (r["page"], r["mode"]) == (3, dp.DOWNGRADE)
    ch1.ack(r["seq"], dirty=mine)
    assert reply(io2, rid) == (0, mine)
    # VM 2 writes: VM 1's read copy is invalidated; VM 2 had its own copy.
    rid = io2.send_dir("DIR_WRITE", grant, 3, tag=2)
    r = ch1.recall()
    assert (r["page"], r["mode"]) == (3, dp.INVALIDATE)
    ch1.ack(r["seq"])
    assert write_reply(reply(io2, rid)[1]) == (True, b"")
    assert ch2.recall(0.2) is None
    # Tag 0, the node itself, is a third holder: not attached, so refused.
    refused("DIR_DETACHED", io1.dir_read, grant, 3)
    # VM 1 leaves; VM 2 stays attached.
    io1.dir_detach(grant, 1)
    refused("DIR_DETACHED", io1.dir_read, grant, 3, tag=1)
    assert metrics(d)["disagg_memnode_dir_holders"] == 1
    for io, _, chan in vm.values():
        io.close()
        chan.close()


def take(h, page, recalled, mode, dirty=None):
    """h reads `page` with REQ_TAKE while holder `recalled` is recalled with
    `mode` and answers (dirty: its page): (owned, page)."""
    rid = h.io.send_dir("DIR_READ", h.grant, page, dp.REQ_TAKE)
    r = recalled.chan.recall()
    assert (r["page"], r["mode"]) == (page, mode)
    recalled.chan.ack(r["seq"], dirty=dirty)
    status, data = reply(h.io, rid)
    assert status == 0
    flags, rsvd = dp.DIR_WRITE_REP.unpack_from(data)
    assert rsvd == 0 and flags in (0, dp.OWNED) and len(data) == dp.DIR_WRITE_REP.size + PAGE
    return bool(flags), data[dp.DIR_WRITE_REP.size:]


def test_a_page_that_moves_from_writer_to_writer_migrates_with_one_request(memnodes, key):
    d = start(memnodes)
    sec, gen = section(d, key)
    a, b = (Holder(d, key, n, sec, gen) for n in (A, B))
    for h in (a, b):   # request connections that offer REQ_TAKE
        h.io.close()
        h.io = dp.Conn(d.addr).login(key, h.node, orch=False,
                                     features=dp.FEAT_ALL | dp.FEAT_DIR_TAKE)
        assert h.io.info["features"] & dp.FEAT_DIR_TAKE
        h.attach()
    pa, pb = dp.pattern(3, sec, 1, first=5), dp.pattern(4, sec, 1, first=5)

    assert a.write(5) == (False, bytes(PAGE))           # A writes first
    # B reads: not migratory yet, A is only downgraded; B gets a read copy.
    assert take(b, 5, a, dp.DOWNGRADE, dirty=pa) == (False, pa)
    # B writes its read copy after A's write: the page is migratory from now on.
    rid = b.io.send_dir("DIR_WRITE", b.grant, 5)
    r = a.chan.recall()
    assert r["mode"] == dp.INVALIDATE
    a.chan.ack(r["seq"])
    assert write_reply(reply(b.io, rid)[1]) == (True, b"")
    # A reads: B is invalidated (not downgraded) and A owns the page at once...
    assert take(a, 5, b, dp.INVALIDATE, dirty=pb) == (True, pb)
    # ... so its write asks nothing of anyone.
    assert a.write(5) == (True, None)
    assert b.chan.recall(0.2) is None
    # B reads it back the same way: one request, one recall.
    assert take(b, 5, a, dp.INVALIDATE, dirty=pa) == (True, pa)
    # B only read it: handed back clean, the page is read-shared again.
    assert take(a, 5, b, dp.INVALIDATE) == (True, pa)
    assert take(b, 5, a, dp.DOWNGRADE) == (False, pa)
    # A plain DIR_READ never takes ownership, and a read-only grant may not ask.
    assert a.read(5) == pa
    ro = dp.mint_grant(key, d.node_id, A, sec, gen, dp.R_READ)
    refused("RIGHTS", a.io.dir_take, ro, 6)

    m = metrics(d)
    assert m["disagg_memnode_dir_migrated_total"] == 3
    assert m["disagg_memnode_dir_dirty_pages_total"] == 3
    a.close()
    b.close()


def test_quiet_answers_get_no_reply_unless_refused(memnodes, key):
    """DIR_RECALL_ACK with QUIET (FEAT_DIR_QUIET): the node takes it and
    says nothing; a PING after it is answered next, so the holder knows the
    answer was taken. A refused one is answered (its error), and QUIET
    without the feature is a bad message."""
    d = start(memnodes)
    sec, gen = section(d, key)
    feats = dp.FEAT_ALL | dp.FEAT_DIR_QUIET
    a = Holder(d, key, A, sec, gen, features=feats).attach()
    b = Holder(d, key, B, sec, gen, features=feats).attach()
    assert a.chan_conn.info["features"] & dp.FEAT_DIR_QUIET
    w, wg = plain(key, d, C, sec, gen)

    # A reads, B writes: A's quiet clean answer lets B's write through.
    assert a.read(5) == bytes(PAGE)
    rid = b.io.send_dir("DIR_WRITE", b.grant, 5)
    r = a.chan.recall()
    assert r["mode"] == dp.INVALIDATE
    a.chan.ack_quiet(r["seq"])
    status, data = reply(b.io, rid)
    assert status == 0 and write_reply(data) == (False, bytes(PAGE))

    # A reads again: B answers quietly with its page, which A gets and the
    # node stores; the first frame back on B's channel is its ping's reply.
    mine = dp.pattern(3, sec, 1, first=5)
    rid = a.io.send_dir("DIR_READ", a.grant, 5)
    r = b.chan.recall()
    assert r["mode"] == dp.DOWNGRADE
    b.chan.ack_quiet(r["seq"], dirty=mine)
    assert reply(a.io, rid) == (0, mine)
    ping = b.chan_conn.send(dp.OP["PING"])
    assert b.chan.next_reply() == (ping, 0, dp.OP["PING"])
    assert w.read(wg, [(5, 1)]) == mine
    assert a.chan.recall(0.2) is None and b.chan.recall(0.2) is None

    # A quiet answer to no recall: refused, and the refusal does come back.
    bad = b.chan.ack_quiet(12345)
    assert b.chan.next_reply() == (bad, dp.ST["NOENT"], dp.OP["DIR_RECALL_ACK"])

    m = metrics(d)
    assert m['disagg_memnode_dir_acks_total{reply="quiet"}'] == 2
    assert m['disagg_memnode_dir_acks_total{reply="answered"}'] == 0
    assert m["disagg_memnode_dir_dirty_pages_total"] == 1

    # Without the feature, QUIET is refused.
    c = Holder(d, key, C, sec, gen).attach()
    assert not c.chan_conn.info["features"] & dp.FEAT_DIR_QUIET
    assert c.read(6) == bytes(PAGE)
    rid = a.io.send_dir("DIR_WRITE", a.grant, 6)
    r = c.chan.recall()
    bad = c.chan.ack_quiet(r["seq"])
    assert c.chan.next_reply() == (bad, dp.ST["BADMSG"], dp.OP["DIR_RECALL_ACK"])
    # The bad frame closed C's channel: C is dropped, and A's write goes on.
    assert reply(a.io, rid)[0] == 0
    for h in (a, b, c):
        h.close()
    w.close()


def test_writes_of_different_pages_recall_in_parallel(memnodes, key):
    d, sec, gen, a, b = two_holders(memnodes, key)
    for p in range(8):
        assert a.write(p) == (False, bytes(PAGE))
    # B asks for all eight at once: eight recalls are outstanding together.
    rids = {b.io.send_dir("DIR_WRITE", b.grant, p): p for p in range(8)}
    recalls = [a.chan.recall() for _ in range(8)]
    assert sorted(r["page"] for r in recalls) == list(range(8))
    assert all(r["mode"] == dp.INVALIDATE and r["grants"] == 8 for r in recalls)
    # B cannot answer A's recalls: an answer counts on its own holder's channel only.
    refused("NOENT", b.chan.ack, recalls[0]["seq"])
    # A page nobody else holds is served meanwhile, on another connection.
    with dp.Conn(d.addr).login(key, B, orch=False) as other:
        assert other.dir_read(b.grant, 100) == bytes(PAGE)
    # Answers in any order, each with its page written.
    for r in reversed(recalls):
        a.chan.ack(r["seq"], dirty=dp.pattern(3, sec, 1, first=r["page"]))
    got = {}
    for _ in range(8):
        rid, status, data, _ = b.io.recv()
        assert status == 0
        got[rids[rid]] = write_reply(data)
    assert got == {p: (False, dp.pattern(3, sec, 1, first=p)) for p in range(8)}
    a.close()
    b.close()


def test_requests_for_one_page_are_served_in_order(memnodes, key):
    d = start(memnodes)
    sec, gen = section(d, key)
    a, b, c = (Holder(d, key, n, sec, gen).attach() for n in (A, B, C))
    assert a.write(3)[0] is False
    rb = b.io.send_dir("DIR_WRITE", b.grant, 3)
    time.sleep(0.05)
    rc = c.io.send_dir("DIR_READ", c.grant, 3)
    r = a.chan.recall()
    assert r["mode"] == dp.INVALIDATE
    assert b.chan.recall(0.2) is None           # C's read waits behind B's write
    a.chan.ack(r["seq"], dirty=b"\xa1" * PAGE)
    status, data = reply(b.io, rb)
    assert status == 0 and write_reply(data) == (False, b"\xa1" * PAGE)
    r = b.chan.recall()                         # now C's read: B is downgraded
    assert (r["mode"], r["grants"]) == (dp.DOWNGRADE, 1)
    b.chan.ack(r["seq"], dirty=b"\xb2" * PAGE)
    assert reply(c.io, rc) == (0, b"\xb2" * PAGE)
    for h in (a, b, c):
        h.close()


def test_a_silent_holder_is_dropped_after_the_lease(memnodes, key):
    d, sec, gen, a, b = two_holders(memnodes, key)
    assert a.write(1)[0] is False and a.write(2)[0] is False
    t0 = time.monotonic()
    rid = b.io.send_dir("DIR_WRITE", b.grant, 1)
    r = a.chan.recall()                          # and never answered
    status, data = reply(b.io, rid)
    waited = time.monotonic() - t0
    assert status == 0 and write_reply(data) == (False, bytes(PAGE))   # the page as stored
    assert LEASE_MS / 1000 * 0.9 <= waited < 5, waited
    m = metrics(d)
    assert m["disagg_memnode_dir_holders_lost_total"] == 1
    assert m["disagg_memnode_dir_pages_lost_total"] == 2     # both pages A owned
    assert "did not answer the recall of page 1" in d.stderr()
    # A is out: the node closed its channel, so that it learns at once ...
    with pytest.raises((ConnectionError, OSError)):
        a.chan.ack(r["seq"])
    # ... and its requests get DIR_DETACHED.
    refused("DIR_DETACHED", a.read, 2)
    refused("DIR_DETACHED", a.write, 7)
    assert b.write(2) == (False, bytes(PAGE))    # A lost page 2 too: no recall
    # Attached again (on a new channel), it is a holder like any other.
    a.chan_conn = dp.Conn(d.addr).login(key, A, orch=False)
    a.chan = dp.Channel(a.chan_conn)
    a.attach()
    assert a.read(5) == bytes(PAGE)              # a page B does not own: no recall
    assert metrics(d)["disagg_memnode_dir_detached_total"] == 2
    assert metrics(d)["disagg_memnode_dir_holders_lost_total"] == 1   # not again at the close
    a.close()
    b.close()


def no_reply(conn, wait=0.3):
    """Nothing has come on conn within `wait` seconds."""
    sock = conn.sock
    if getattr(sock, "pending", None) and sock.pending():
        return False
    return not select.select([sock], [], [], wait)[0]


def test_a_holder_whose_channel_closed_is_dropped_when_not_back_in_time(memnodes, key):
    """Its channel closed while it held pages: it is away for --dir-grace-ms
    (its pages wait for it), then dropped as at a lease."""
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL, lease_ms=30000,
                                    extra_args=["--dir-grace-ms", "1000"])
    assert a.write(4)[0] is False
    a.read(5)
    t0 = time.monotonic()
    a.chan_conn.close()
    assert dp.wait_for(lambda: metrics(d)["disagg_memnode_dir_holders_away"] == 1)
    assert "the recall channel of node 7 closed" in d.stderr()
    assert "is away: its pages wait 1000 ms" in d.stderr()
    # A page it does not hold: no waiting.
    assert b.write(6) == (False, bytes(PAGE))
    # Its own requests: ask again (it is to hand its pages back first).
    refused("DIR_GRACE", a.read, 7)
    # One it owns: the write waits until A is dropped, then gets the node's page.
    assert b.write(4) == (False, bytes(PAGE))
    waited = time.monotonic() - t0
    assert 0.9 <= waited < 5, waited
    m = metrics(d)
    assert m["disagg_memnode_dir_holders_lost_total"] == 1
    assert m["disagg_memnode_dir_pages_lost_total"] == 1
    assert m["disagg_memnode_dir_holders_away"] == 0
    assert m["disagg_memnode_dir_holders_back_total"] == 0
    assert "not back in time after its channel closed: unpublished writes lost" in d.stderr()
    refused("DIR_DETACHED", a.read, 4)
    # A holder whose request waits when it is dropped: the request ends.
    rid = b.io.send_dir("DIR_WRITE", b.grant, 5)   # A's read copy is gone with it
    assert reply(b.io, rid)[0] == 0
    a.io.close()
    b.close()


def test_a_holder_that_cannot_hand_back_is_dropped_when_its_channel_closes(memnodes, key):
    """Without FEAT_DIR_RECLAIM it could never say DONE: dropped at once."""
    d, sec, gen, a, b = two_holders(memnodes, key, lease_ms=30000)
    assert a.write(4)[0] is False
    a.chan_conn.close()
    assert dp.wait_for(lambda: metrics(d)["disagg_memnode_dir_holders_lost_total"] == 1)
    t0 = time.monotonic()
    assert b.write(4) == (False, bytes(PAGE))    # no recall to a holder that is gone
    assert time.monotonic() - t0 < 2
    refused("DIR_DETACHED", a.read, 4)
    assert metrics(d)["disagg_memnode_dir_holders_away"] == 0
    # A holder whose request waits when its channel closes: the request ends.
    rid = a.io.send_dir("DIR_READ", a.grant, 4)
    assert reply(a.io, rid)[0] == dp.ST["DIR_DETACHED"]
    a.io.close()
    b.close()


def test_a_holder_without_pages_is_dropped_when_its_channel_closes(memnodes, key):
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL, lease_ms=30000)
    a.chan_conn.close()
    assert dp.wait_for(lambda: metrics(d)["disagg_memnode_dir_holders"] == 1)
    m = metrics(d)
    assert m["disagg_memnode_dir_holders_away"] == 0
    assert m["disagg_memnode_dir_holders_lost_total"] == 0    # nothing of it is lost
    assert "dropped: its channel closed, it owned no page" in d.stderr()
    refused("DIR_DETACHED", a.read, 4)
    a.io.close()
    b.close()


def test_an_away_holder_hands_back_its_pages(memnodes, key):
    """An agent restarting: its channel closes while it owns pages and while
    a recall of one of them waits for its answer. Attached again, it hands
    back what its guest wrote; the node stores only the pages it still
    owns (a page given up in a recall answer: only while that recall still
    waits for it), and the requests that waited read them."""
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL, lease_ms=30000)
    assert a.write(4)[0] is False and a.write(9)[0] is False and a.write(3)[0] is False
    a.read(5)
    rid9 = b.io.send_dir("DIR_WRITE", b.grant, 9)
    assert a.chan.recall()["page"] == 9            # never answered
    a.chan_conn.close()
    assert dp.wait_for(lambda: metrics(d)["disagg_memnode_dir_holders_away"] == 1)
    io2 = dp.Conn(d.addr).login(key, B, orch=False)
    rid4 = io2.send_dir("DIR_WRITE", b.grant, 4)  # waits for A too
    assert no_reply(b.io) and no_reply(io2)
    # The lease passes nothing: an away holder has none (30 s here anyway).
    a.chan_conn = dp.Conn(d.addr).login(key, A, orch=False, features=RECL)
    a.chan = dp.Channel(a.chan_conn)
    a.attach()
    assert "node 7/0 attached again after its channel closed" in d.stderr()
    refused("DIR_GRACE", a.read, 7)                # not done yet
    x, y, z = b"\x11" * PAGE, b"\x22" * PAGE, b"\x33" * PAGE
    a.chan_conn.dir_reclaim(a.grant, 4, x)
    a.chan_conn.dir_reclaim(a.grant, 9, y, recalled=True)   # its unsent answer
    a.chan_conn.dir_reclaim(a.grant, 6, z)         # never its page: ignored
    a.chan_conn.dir_reclaim(a.grant, 3, z, recalled=True)   # no recall of 3: an old answer
    assert no_reply(b.io) and no_reply(io2)        # nothing goes on before DONE
    a.chan_conn.dir_reclaim(a.grant)               # DONE
    status, data = reply(b.io, rid9)
    assert status == 0 and write_reply(data) == (False, y)
    status, data = reply(io2, rid4)
    assert status == 0 and write_reply(data) == (False, x)
    m = metrics(d)
    assert m["disagg_memnode_dir_holders_back_total"] == 1
    assert m["disagg_memnode_dir_holders_away"] == 0
    assert m["disagg_memnode_dir_holders_lost_total"] == 0
    assert m["disagg_memnode_dir_reclaimed_pages_total"] == 2
    assert m["disagg_memnode_dir_reclaim_superseded_total"] == 2
    assert "is back: the 3 pages it owned are as it handed them back" in d.stderr()
    # It holds nothing now: B takes its read copy and its last page without a recall.
    assert b.write(5) == (False, bytes(PAGE))
    assert b.write(3) == (False, bytes(PAGE))     # not handed back: the node's page
    assert a.chan.recall(0.2) is None
    # And it is an ordinary holder again.
    rid = a.io.send_dir("DIR_READ", a.grant, 4)
    r = b.chan.recall()
    b.chan.ack(r["seq"])
    assert reply(a.io, rid) == (0, x)
    # A second DONE changes nothing.
    a.chan_conn.dir_reclaim(a.grant)
    assert metrics(d)["disagg_memnode_dir_holders_back_total"] == 1
    io2.close()
    a.close()
    b.close()


def test_an_away_holder_that_comes_back_twice_keeps_its_first_deadline(memnodes, key):
    """Attached again and gone again before DONE: still away, until the
    first deadline."""
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL, lease_ms=30000,
                                    extra_args=["--dir-grace-ms", "1500"])
    assert a.write(4)[0] is False
    t0 = time.monotonic()
    a.chan_conn.close()
    assert dp.wait_for(lambda: metrics(d)["disagg_memnode_dir_holders_away"] == 1)
    for _ in range(2):
        a.chan_conn = dp.Conn(d.addr).login(key, A, orch=False, features=RECL)
        a.attach()
        a.chan_conn.close()
        time.sleep(0.2)
    assert b.write(4) == (False, bytes(PAGE))
    assert 1.3 <= time.monotonic() - t0 < 5
    assert metrics(d)["disagg_memnode_dir_holders_lost_total"] == 1
    a.io.close()
    b.close()


def test_the_channel_closing_while_a_recall_waits(memnodes, key):
    """With --dir-grace-ms 0 a closed channel drops its holder at once, as
    before holders could be away: the waiting request goes on."""
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL, lease_ms=30000,
                                    extra_args=["--dir-grace-ms", "0"])
    assert a.write(9)[0] is False
    rid = b.io.send_dir("DIR_WRITE", b.grant, 9)
    assert a.chan.recall()["page"] == 9
    t0 = time.monotonic()
    a.chan_conn.close()                          # instead of an answer
    status, data = reply(b.io, rid)
    assert status == 0 and write_reply(data) == (False, bytes(PAGE))
    assert time.monotonic() - t0 < 2
    assert metrics(d)["disagg_memnode_dir_holders_away"] == 0
    a.io.close()
    b.close()


def test_rights_epochs_and_generations(memnodes, key):
    d = start(memnodes, pool="16M")                # one section: allocated again, the same
    sec, gen = section(d, key)
    r = Holder(d, key, A, sec, gen, rights=dp.R_READ).attach()
    assert r.read(0) == bytes(PAGE)
    refused("RIGHTS", r.write, 0)                 # a read grant cannot own a page
    w = Holder(d, key, B, sec, gen, epoch=3).attach()
    assert w.write(0)[0] is False                  # raises the section's epoch to 3
    old = dp.mint_grant(key, d.node_id, A, sec, gen, dp.R_READ | dp.R_WRITE, epoch=2)
    refused("FENCED", r.io.dir_write, old, 1)      # an older epoch never owns
    # Attaching needs read rights; a write-only grant does not do.
    wo = dp.mint_grant(key, d.node_id, C, sec, gen, dp.R_WRITE)
    with dp.Conn(d.addr).login(key, C, orch=False) as c:
        refused("RIGHTS", c.dir_attach, wo)
        refused("GRANT", c.dir_attach, r.grant)    # A's grant, on C's connection
        forged = dp.mint_grant(Ed25519PrivateKey.generate(), d.node_id, C, sec, gen, dp.R_READ)
        refused("GRANT", c.dir_attach, forged)
        refused("STALE", c.dir_attach, dp.mint_grant(key, d.node_id, C, sec, gen + 1, dp.R_READ))
        refused("NOENT", c.dir_attach, dp.mint_grant(key, d.node_id, C, 3, 1, dp.R_READ))
    # The section freed and allocated again: its directory is of no generation now.
    with dp.Conn(d.addr).login(key, ORCH) as o:
        o.free(sec, gen, 3)
        sec2, gen2 = o.alloc()
    assert sec2 == sec
    refused("STALE", r.read, 0)
    n = Holder(d, key, C, sec2, gen2).attach()     # the new generation starts afresh
    assert n.write(0) == (False, bytes(PAGE))      # no recall to the old holders
    refused("STALE", w.read, 0)
    assert "freed and allocated again" in d.stderr()
    for h in (r, w, n):
        h.close()


def test_a_seventeenth_holder_is_refused(memnodes, key):
    d = start(memnodes)
    sec, gen = section(d, key)
    hs = [Holder(d, key, 100 + i, sec, gen).attach() for i in range(dp.DIR_MAX_HOLDERS)]
    extra = Holder(d, key, 200, sec, gen)
    refused("DIR_FULL", extra.attach)
    refused("DIR_DETACHED", extra.read, 0)
    hs[0].attach()                                 # attaching again takes no new slot
    hs[5].chan_conn.dir_detach(hs[5].grant)
    refused("DIR_DETACHED", hs[5].read, 0)
    refused("DIR_DETACHED", hs[5].chan_conn.dir_detach, hs[5].grant)
    extra.attach()
    assert extra.read(0) == bytes(PAGE)
    assert metrics(d)["disagg_memnode_dir_holders"] == dp.DIR_MAX_HOLDERS
    for h in hs + [extra]:
        h.close()
    assert dp.wait_for(lambda: metrics(d)["disagg_memnode_dir_sections"] == 0)


def test_attaching_again_hands_back_and_forgets_the_copies(memnodes, key):
    """A new channel while the node still has the old one open: the holder
    lost its channel first. It is away until it has handed its pages back."""
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL)
    a.read(1)
    assert a.write(2)[0] is False
    old = a.chan_conn
    a.chan_conn = dp.Conn(d.addr).login(key, A, orch=False, features=RECL)
    a.chan = dp.Channel(a.chan_conn)
    a.attach()                                     # a new channel replaces the old one
    assert "node 7/0 attached on a new channel" in d.stderr()
    rid = b.io.send_dir("DIR_WRITE", b.grant, 2)
    assert no_reply(b.io)                          # waits for A's page
    mine = b"\x5a" * PAGE
    a.chan_conn.dir_reclaim(a.grant, 2, mine)
    a.chan_conn.dir_reclaim(a.grant)               # DONE
    status, data = reply(b.io, rid)
    assert status == 0 and write_reply(data) == (False, mine)
    assert b.write(1) == (False, bytes(PAGE))      # no recall: A's copies are forgotten
    rid = a.io.send_dir("DIR_READ", a.grant, 2)
    r = b.chan.recall()
    assert r["grants"] == 2
    b.chan.ack(r["seq"])
    assert reply(a.io, rid)[0] == 0
    assert a.chan.recall(0.1) is None
    old.close()                                    # no longer a channel: nothing happens
    time.sleep(0.1)
    assert metrics(d)["disagg_memnode_dir_holders_lost_total"] == 0
    assert a.read(2) == mine
    a.close()
    b.close()


def test_attaching_again_without_pages_forgets_the_holder_at_once(memnodes, key):
    d, sec, gen, a, b = two_holders(memnodes, key, features=RECL)
    old = a.chan_conn
    a.chan_conn = dp.Conn(d.addr).login(key, A, orch=False)
    a.chan = dp.Channel(a.chan_conn)
    a.attach()
    assert "attached again: its copies are forgotten" in d.stderr()
    assert metrics(d)["disagg_memnode_dir_holders_away"] == 0
    assert b.write(1) == (False, bytes(PAGE))
    old.close()
    a.close()
    b.close()


def test_plain_reads_and_writes_leave_the_directory_alone(memnodes, key):
    d, sec, gen, a, b = two_holders(memnodes, key)
    assert b.write(7)[0] is False
    # B writes its owned page back (eviction), with a plain WRITE.
    page = dp.pattern(4, sec, 1, first=7)
    b.io.write(b.grant, [(7, 1)], page)
    assert a.io.read(a.grant, [(7, 1)]) == page    # plain READ works for anyone
    rid = a.io.send_dir("DIR_READ", a.grant, 7)
    r = b.chan.recall()                            # B still owns it: downgraded
    assert r["mode"] == dp.DOWNGRADE
    b.chan.ack(r["seq"])                           # clean: the node has it
    assert reply(a.io, rid) == (0, page)
    # Data from a holder that does not own the page is not stored.
    rid = b.io.send_dir("DIR_WRITE", b.grant, 7)
    r = a.chan.recall()
    a.chan.ack(r["seq"], dirty=b"\xee" * PAGE)
    status, data = reply(b.io, rid)
    assert write_reply(data) == (True, b"")
    assert b.io.read(b.grant, [(7, 1)]) == page
    a.close()
    b.close()


def test_malformed_frames_get_clear_statuses(memnodes, key):
    d = start(memnodes)
    sec, gen = section(d, key)
    a = Holder(d, key, A, sec, gen)
    c = a.io
    req = dp.DIR_REQ.pack(a.grant, 0, 0, 0)
    refused("DIR_DETACHED", a.read, 0)                       # not attached yet
    refused("DIR_DETACHED", c.dir_detach, a.grant)
    refused("DIR_DETACHED", dp.Channel(c).ack, 1)            # no channel of anything
    a.attach()
    for op in ("DIR_READ", "DIR_WRITE"):
        refused("BADMSG", c.call, dp.OP[op], req[:-1])       # short
        refused("BADMSG", c.call, dp.OP[op], req + b"\0")    # long
        refused("BADMSG", c.call, dp.OP[op], dp.DIR_REQ.pack(a.grant, 0, 2, 0))   # unknown flag
        # REQ_TAKE: a read's flag, and only on a connection that negotiated it.
        refused("BADMSG", c.call, dp.OP[op], dp.DIR_REQ.pack(a.grant, 0, dp.REQ_TAKE, 0))
        # A holder tag, also only on a connection that negotiated it.
        refused("BADMSG", c.call, dp.OP[op], dp.DIR_REQ.pack(a.grant, 0, 0, 3))
        refused("RANGE", c.call, dp.OP[op], dp.DIR_REQ.pack(a.grant, 4096, 0, 0))
        refused("RANGE", c.call, dp.OP[op], dp.DIR_REQ.pack(a.grant, 0xFFFFFFFF, 0, 0))
    refused("BADMSG", c.call, dp.OP["DIR_ATTACH"], a.grant[:-1])
    refused("BADMSG", c.call, dp.OP["DIR_DETACH"], a.grant + b"\0")
    refused("BADMSG", c.call, dp.OP["DIR_ATTACH"], a.grant + dp.DIR_WHO.pack(3, 0, 0))
    refused("BADMSG", c.call, dp.OP["DIR_ATTACH"], a.grant + dp.DIR_WHO.pack(0, 1, 0))
    refused("BADMSG", c.call, dp.OP["DIR_ATTACH"], a.grant + dp.DIR_WHO.pack(0, 0, 1))
    ch = a.chan
    refused("NOENT", ch.ack, 12345)                          # no such recall
    refused("BADMSG", ch.ack, 1, flags=dp.DIRTY)             # DIRTY without the page
    refused("BADMSG", ch.ack, 1, tail=b"\0" * PAGE)          # a page without DIRTY
    refused("BADMSG", ch.ack, 1, flags=4)                    # an unknown flag
    refused("BADMSG", c.call, dp.OP["DIR_RECALL_ACK"], struct.pack("<QI", 1, 0))
    refused("BADMSG", c.call, dp.OP["DIR_RECALL_ACK"], struct.pack("<QII", 1, 0, 1))
    refused("NOTSUP", c.call, dp.OP["DIR_RECALL"], dp.DIR_RECALL.pack(1, sec, gen, 0, 1, 0, 0))
    # Still serving, on the same connections.
    assert a.read(0) == bytes(PAGE)
    c.call(dp.OP["PING"])
    a.close()


def test_the_directory_is_negotiated(memnodes, key):
    d = start(memnodes)
    sec, gen = section(d, key)
    g = dp.mint_grant(key, d.node_id, A, sec, gen, dp.R_READ | dp.R_WRITE)
    with dp.Conn(d.addr) as c:
        cn = os.urandom(32)
        rep = c.call(dp.OP["HELLO"], dp.HELLO_REQ.pack(dp.VERSION, dp.VERSION,
                                                       dp.FEAT_FENCE, A, cn))
        c.info = dict(node_id=d.node_id)
        c.auth(key, A, cn, dp.HELLO_REP.unpack(rep)[9], orch=False)
        refused("NOTSUP", c.dir_attach, g)
        refused("NOTSUP", c.dir_read, g, 0)
    with dp.Conn(d.addr).login(key, A, orch=False) as c:
        assert c.info["features"] & dp.FEAT_DIR


def test_a_restarted_node_has_forgotten_its_holders(memnodes, key, tmp_path):
    """With --dir-grace-ms 0 a restart forgets the holders (the default
    gives them a grace period: test_memnode_dir_restart.py)."""
    img = tmp_path / "pool.img"
    args = dict(backing=f"file:{img}", node_id=611, extra_args=["--dir-grace-ms", "0"])
    d = start(memnodes, **args)
    sec, gen = section(d, key)
    a = Holder(d, key, A, sec, gen).attach()
    assert a.write(0)[0] is False
    a.io.write(a.grant, [(0, 1)], b"\x5a" * PAGE)   # written back before the restart
    d.kill9()
    d = start(memnodes, **args)
    # The old connections are gone; new ones find no directory: attach again.
    a2 = Holder(d, key, A, sec, gen)
    refused("DIR_DETACHED", a2.read, 0)
    a2.attach()
    assert a2.read(0) == b"\x5a" * PAGE
    with pytest.raises((ConnectionError, OSError)):
        a.read(0)
    a2.close()


def dirholder(d, keyfile, key, node, sec, gen, *extra):
    """A disagg-dirholder process (tests/functional/dirholder.c): a holder
    through the C client library, with its own recall thread."""
    build = pathlib.Path(os.environ.get("DISAGG_BUILD") or progs.ROOT / "build" / "release")
    exe = build / "tests" / "functional" / "disagg-dirholder"
    if not exe.exists():
        pytest.fail(f"{exe} is not built")
    g = dp.mint_grant(key, d.node_id, node, sec, gen, dp.R_READ | dp.R_WRITE)
    return subprocess.Popen([str(exe), "--addr", d.addr, "--key", keyfile, "--node-id", str(node),
                             "--grant", g.hex(), *extra, *progs.fabric_args(node, "compute")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def ask(p, *lines):
    p.stdin.write("".join(line + "\n" for line in lines))
    p.stdin.flush()
    out = [p.stdout.readline().split() for _ in lines]
    assert all(out), (out, p.stderr.read() if p.poll() is not None else "")
    return out


@pytest.mark.parametrize("quiet", [False, True], ids=["answered", "quiet"])
def test_two_holders_through_the_client_library_count_without_losing_one(memnodes, key,
                                                                           keyfile, quiet):
    """Two holders add one to the same words, 400 and 100 times each, at
    once: ownership moves back and forth with every recall, the dirty page
    travels in the answers, and not one increment is lost. Quiet: the
    answers get no reply (a ping confirms them now and then)."""
    d = start(memnodes, lease_ms=5000)
    sec, gen = section(d, key)
    hs = [dirholder(d, keyfile, key, n, sec, gen, *(["--quiet"] if quiet else []))
          for n in (A, B)]
    for p in hs:
        p.stdin.write("inc 0 400 200\ninc 1 100 200\n")
        p.stdin.flush()
    for p in hs:
        got = [p.stdout.readline().split() for _ in range(2)]
        assert [g[:2] for g in got] == [["inc", "0"], ["inc", "1"]], (got, p.stderr.read())
    # Every holder now reads what both wrote (its read copy comes from the owner).
    for p in hs:
        assert ask(p, "read 0", "read 1") == [["read", "0", "800"], ["read", "1", "200"]]
    quits = [ask(p, "quit")[0] for p in hs]
    for p in hs:
        assert p.wait(10) == 0, p.stderr.read()
    recalls = sum(int(q[1]) for q in quits)
    dirty = sum(int(q[2]) for q in quits)
    print("recalls, dirty, waits:", quits)
    assert recalls > 50 and dirty > 50, quits
    m = metrics(d)
    assert m["disagg_memnode_dir_holders_lost_total"] == 0
    assert recalls == (m['disagg_memnode_dir_recalls_total{mode="invalidate"}'] +
                       m['disagg_memnode_dir_recalls_total{mode="downgrade"}'])
    assert m["disagg_memnode_dir_holders"] == 0
    assert m['disagg_memnode_dir_acks_total{reply="quiet"}' if quiet else
             'disagg_memnode_dir_acks_total{reply="answered"}'] == recalls
    # Published and detached: the node has the counts.
    c, g = plain(key, d, C, sec, gen)
    assert struct.unpack_from("<Q", c.read(g, [(0, 1)]))[0] == 800
    assert struct.unpack_from("<Q", c.read(g, [(1, 1)]))[0] == 200
    c.close()
