# SPDX-License-Identifier: MIT
"""A coherence directory that restarts (docs/memnode.md, "Coherence
directory"; DIR_RECLAIM in docs/protocol.md), on a real memory node with a
file pool, killed with SIGKILL and started again on the same file.

- A holder that owned a page and changed it (not written back) hands it
  back after the restart; until every holder attached before the restart
  has said it is done, the others' requests answer DIR_GRACE; then they
  read what the owner had written.
- A holder that the node had dropped before the crash (a recall left
  unanswered past the lease) is refused: its older copy never overwrites
  what the new owner wrote. So is a holder that never was attached, and a
  reclaim from a holder that did not attach again.
- A holder that does not come back within the grace period is dropped as
  at a lease (counted); the others go on.
- A page given up in a recall answer that the node may not have stored
  (RECALLED) is stored only if the page's next owner does not hand back
  its own, whichever comes first.
- With the page's ownership version (FEAT_DIR_VERSION): such an answer is
  stored only if nobody was made the page's owner after it, so it never
  overwrites what a later owner wrote back, or answered itself, before
  the crash.
- DONE outside a grace period is harmless; malformed reclaims get BADMSG.
- The node dying again in its grace period waits for the same holders
  at the next start; answers that come twice change nothing more.
"""
import struct
import time

import pytest

import dproto as dp
from test_memnode_dir import A, B, C, PAGE, Holder, metrics, refused, section, start

FEATS = dp.FEAT_ALL | dp.FEAT_DIR_RECLAIM
GRACE_MS = 3000


def node(memnodes, tmp_path, grace_ms=GRACE_MS, lease_ms=400):
    args = dict(backing=f"file:{tmp_path / 'pool.img'}", node_id=612,
                extra_args=["--dir-grace-ms", str(grace_ms)], lease_ms=lease_ms)
    return start(memnodes, **args), args


def holder(d, key, who, sec, gen):
    return Holder(d, key, who, sec, gen, features=FEATS)


def test_an_owner_hands_its_changes_back_after_a_restart(memnodes, key, tmp_path):
    d, args = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a, b = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    assert b.read(1) == bytes(PAGE)              # B: a read copy of page 1
    assert a.write(0)[0] is False                # A owns page 0 ...
    changed = b"\x5a" * PAGE                     # ... and changes it, not written back
    d.kill9()
    d = start(memnodes, **args)
    a2, b2 = holder(d, key, A, sec, gen), holder(d, key, B, sec, gen)
    b2.attach()
    # Nobody reads page 0 before its owner is back: the node's copy is older.
    refused("DIR_GRACE", b2.read, 0)
    refused("DIR_GRACE", b2.write, 1)
    m = metrics(d)
    assert m["disagg_memnode_dir_grace_sections"] == 1, m
    # A reclaim needs the holder attached again, on that connection.
    refused("DIR_DETACHED", a2.chan_conn.dir_reclaim, a2.grant, 0, changed)
    a2.attach()
    a2.chan_conn.dir_reclaim(a2.grant, 0, changed)
    a2.chan_conn.dir_reclaim(a2.grant)           # A is done
    refused("DIR_GRACE", b2.read, 0)             # B has not said so yet
    b2.chan_conn.dir_reclaim(b2.grant)           # B had nothing changed
    assert b2.read(0) == changed
    assert a2.write(5)[0] is False               # an ordinary directory again
    m = metrics(d)
    assert m["disagg_memnode_dir_reclaimed_pages_total"] == 1, m
    assert m["disagg_memnode_dir_grace_sections"] == 0, m
    assert m["disagg_memnode_dir_holders_lost_total"] == 0, m
    # After the grace period a page is refused: what A still has is not taken.
    refused("DIR_DETACHED", a2.chan_conn.dir_reclaim, a2.grant, 0, bytes(PAGE))
    a2.chan_conn.dir_reclaim(a2.grant)           # DONE again: harmless
    for h in (a, b, a2, b2):
        h.close()


def test_a_holder_dropped_before_the_crash_is_refused(memnodes, key, tmp_path):
    d, args = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a, b = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    assert b.write(0)[0] is False                # B owns page 0 ...
    rid = a.io.send(dp.OP["DIR_WRITE"], dp.DIR_REQ.pack(a.grant, 0, 0, 0))
    # ... and never answers the recall: dropped at the lease, A owns the page.
    status, data = a.io.recv()[1:3]
    assert status == 0 and len(data) == dp.DIR_WRITE_REP.size + PAGE, (rid, status)
    newer = b"\x11" * PAGE
    a.io.write(a.grant, [(0, 1)], newer)         # A writes it back, the newest content
    d.kill9()
    d = start(memnodes, **args)
    a2, b2 = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    # B still has its old page 0, changed: the node does not take it.
    refused("DIR_DETACHED", b2.chan_conn.dir_reclaim, b2.grant, 0, b"\x22" * PAGE)
    b2.chan_conn.dir_reclaim(b2.grant)           # DONE from a holder nobody waits for
    refused("DIR_GRACE", b2.read, 0)
    a2.chan_conn.dir_reclaim(a2.grant)
    assert b2.read(0) == newer
    for h in (a, b, a2, b2):
        h.close()


def test_a_holder_not_back_in_time_is_dropped(memnodes, key, tmp_path):
    d, args = node(memnodes, tmp_path, grace_ms=1000)
    sec, gen = section(d, key)
    a, b = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    assert a.write(2)[0] is False
    d.kill9()
    d = start(memnodes, **args)
    b2 = holder(d, key, B, sec, gen).attach()
    b2.chan_conn.dir_reclaim(b2.grant)
    refused("DIR_GRACE", b2.read, 2)             # A is awaited
    # A never comes back: after the grace period B goes on, A is counted lost.
    deadline = 50
    while deadline:
        try:
            assert b2.read(2) == bytes(PAGE)
            break
        except dp.ProtoError as e:
            assert e.status == dp.ST["DIR_GRACE"], e
            deadline -= 1
            time.sleep(0.1)
    assert deadline, "still in the grace period after 5 s"
    m = metrics(d)
    assert m["disagg_memnode_dir_holders_lost_total"] == 1, m
    # A late reclaim of A's is refused; A attaching now is a new holder.
    a2 = holder(d, key, A, sec, gen).attach()
    refused("DIR_DETACHED", a2.chan_conn.dir_reclaim, a2.grant, 2, b"\x33" * PAGE)
    for h in (a, b, a2, b2):
        h.close()


def owner_then_crash(memnodes, key, tmp_path):
    """A node, a section, holder A owning page 0 (changed), the node killed:
    (args to start it again, sec, gen, the old holder)."""
    d, args = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a = holder(d, key, A, sec, gen).attach()
    assert a.write(0)[0] is False
    d.kill9()
    return args, sec, gen, a


def test_only_holders_of_before_may_reclaim(memnodes, key, tmp_path):
    args, sec, gen, a = owner_then_crash(memnodes, key, tmp_path)
    d = start(memnodes, **args)
    c = holder(d, key, C, sec, gen).attach()     # new: may attach, must wait
    refused("DIR_DETACHED", c.chan_conn.dir_reclaim, c.grant, 0, b"\x44" * PAGE)
    refused("DIR_GRACE", c.read, 0)
    a2 = holder(d, key, A, sec, gen).attach()
    a2.chan_conn.dir_reclaim(a2.grant)
    assert c.read(0) == bytes(PAGE)              # A changed nothing
    for h in (a, a2, c):
        h.close()


def test_malformed_reclaims(memnodes, key, tmp_path):
    d, _ = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a = holder(d, key, A, sec, gen).attach()
    op = dp.OP["DIR_RECLAIM"]
    cases = [
        dp.DIR_REQ.pack(a.grant, 0, 0, 0),                               # no page
        dp.DIR_REQ.pack(a.grant, 0, 0, 0) + bytes(PAGE - 1),             # short page
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_DONE, 0) + bytes(PAGE),       # DONE with a page
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_TAKE, 0) + bytes(PAGE),       # a read's flag
        dp.DIR_REQ.pack(a.grant, 0, 16, 0) + bytes(PAGE),                # unknown flag
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_DONE | dp.REQ_RECALLED, 0),  # DONE, recalled
    ]
    ver = dp.DIR_VERSION.pack(1, 0)
    vcases = [
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_VERSION, 0) + ver + bytes(PAGE),  # not RECALLED
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_RECALLED | dp.REQ_VERSION, 0) + bytes(PAGE),
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_RECALLED | dp.REQ_VERSION, 0) +
        dp.DIR_VERSION.pack(1, 1) + bytes(PAGE),                         # rsvd
        dp.DIR_REQ.pack(a.grant, 0, dp.REQ_DONE | dp.REQ_VERSION, 0) + ver,
    ]
    # REQ_VERSION only once FEAT_DIR_VERSION is negotiated.
    cases += [(dp.DIR_REQ.pack(a.grant, 0, dp.REQ_RECALLED | dp.REQ_VERSION, 0) + ver +
               bytes(PAGE), FEATS)]
    for payload in cases + [(c, VFEATS) for c in vcases]:
        payload, feats = payload if isinstance(payload, tuple) else (payload, FEATS)
        conn = dp.Conn(d.addr).login(key, A, orch=False, features=feats)
        refused("BADMSG", conn.call, op, payload)
        conn.close()
    refused("RANGE", a.chan_conn.dir_reclaim, a.grant, 1 << 20, bytes(PAGE))
    # Without the feature negotiated the opcode is unknown.
    with dp.Conn(d.addr).login(key, A, orch=False) as plain:
        refused("NOTSUP", plain.call, op, dp.DIR_REQ.pack(a.grant, 0, dp.REQ_DONE, 0))
    # A read-only grant may say DONE, not hand back a page.
    ro = dp.mint_grant(key, d.node_id, B, sec, gen, dp.R_READ)
    with dp.Conn(d.addr).login(key, B, orch=False, features=FEATS) as b:
        b.dir_attach(ro)
        b.dir_reclaim(ro)
        refused("RIGHTS", b.dir_reclaim, ro, 0, bytes(PAGE))
    a.close()


@pytest.mark.parametrize("owner_first", [True, False])
def test_a_recall_answer_never_overwrites_the_next_owners_page(memnodes, key, tmp_path,
                                                               owner_first):
    d, args = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a, b = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    old, newer = b"\x0a" * PAGE, b"\x0b" * PAGE
    assert a.write(3)[0] is False                 # A owns page 3 and changes it (old)
    b.io.send(dp.OP["DIR_WRITE"], dp.DIR_REQ.pack(b.grant, 3, 0, 0))
    r = a.chan.recall()
    assert r and r["mode"] == dp.INVALIDATE and r["page"] == 3, r
    a.chan.ack(r["seq"], dirty=old)               # stored, and B owns the page ...
    assert b.io.recv()[1] == 0
    d.kill9()                                     # ... then B changes it (newer), and the node dies
    d = start(memnodes, **args)
    a2, b2 = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    # Say A never saw its answer confirmed: it hands the page back, RECALLED.
    steps = [lambda: b2.chan_conn.dir_reclaim(b2.grant, 3, newer),
             lambda: a2.chan_conn.dir_reclaim(a2.grant, 3, old, recalled=True)]
    for step in (steps if owner_first else steps[::-1]):
        step()
    a2.chan_conn.dir_reclaim(a2.grant)
    b2.chan_conn.dir_reclaim(b2.grant)
    assert a2.read(3) == newer
    # A recall answer alone is stored (nobody owned the page since).
    d.kill9()                                     # a2 and b2 still attached
    for h in (a, b, a2, b2):
        h.close()
    d = start(memnodes, **args)
    a3, b3 = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    a3.chan_conn.dir_reclaim(a3.grant, 4, old, recalled=True)
    a3.chan_conn.dir_reclaim(a3.grant)
    b3.chan_conn.dir_reclaim(b3.grant)
    assert b3.read(4) == old
    for h in (a3, b3):
        h.close()


VFEATS = FEATS | dp.FEAT_DIR_VERSION


def handed_over(d, key, sec, gen, page, old):
    """A owns `page` and changes it (old); B's DIR_WRITE recalls it, A's
    answer is stored and B owns it: (a, b, the version of A's ownership)."""
    a = Holder(d, key, A, sec, gen, features=VFEATS).attach()
    b = Holder(d, key, B, sec, gen, features=VFEATS).attach()
    assert a.write(page)[0] is False
    b.io.send(dp.OP["DIR_WRITE"], dp.DIR_REQ.pack(b.grant, page, 0, 0))
    r = a.chan.recall()
    assert r and r["mode"] == dp.INVALIDATE and r["page"] == page, r
    a.chan.ack(r["seq"], dirty=old)
    assert b.io.recv()[1] == 0
    return a, b, r["version"]


def both_back(memnodes, key, args, sec, gen):
    """Start the node again; A and B attach again: (node, a2, b2)."""
    d = start(memnodes, **args)
    return (d, Holder(d, key, A, sec, gen, features=VFEATS).attach(),
            Holder(d, key, B, sec, gen, features=VFEATS).attach())


def done_and_read(a2, b2, page):
    """Both say they are done; what B reads of the page then."""
    a2.chan_conn.dir_reclaim(a2.grant)
    b2.chan_conn.dir_reclaim(b2.grant)
    return b2.read(page)


@pytest.mark.parametrize("how", ["written_back", "answered_first", "answered_last"])
def test_a_stale_recall_answer_loses_to_a_later_owner(memnodes, key, tmp_path, how):
    """A's answer was stored and B owned the page after it; B's newer
    content reached the node before the crash, by B's write-back (so B has
    nothing to hand back) or by B's own recall answer, which B hands back
    too (it was not confirmed either). A hands back its answer, RECALLED,
    after the restart: the node keeps B's content, whatever the order."""
    d, args = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    old, newer = b"\x0a" * PAGE, b"\x0b" * PAGE
    a, b, va = handed_over(d, key, sec, gen, 3, old)
    vb = None
    if how == "written_back":
        b.io.write(b.grant, [(3, 1)], newer)       # B's background write-back
    else:
        a.io.send(dp.OP["DIR_READ"], dp.DIR_REQ.pack(a.grant, 3, 0, 0))
        r = b.chan.recall()
        assert r and r["mode"] == dp.DOWNGRADE and r["page"] == 3, r
        vb = r["version"]
        assert vb != va, (va, vb)                  # B's ownership came after A's
        b.chan.ack(r["seq"], dirty=newer)
        assert a.io.recv()[1] == 0
    d.kill9()
    d, a2, b2 = both_back(memnodes, key, args, sec, gen)
    steps = [lambda: a2.chan_conn.dir_reclaim(a2.grant, 3, old, recalled=True, version=va)]
    if vb is not None:
        step_b = lambda: b2.chan_conn.dir_reclaim(b2.grant, 3, newer, recalled=True, version=vb)
        steps = [step_b] + steps if how == "answered_first" else steps + [step_b]
    for step in steps:
        step()
    assert done_and_read(a2, b2, 3) == newer
    m = metrics(d)
    assert m["disagg_memnode_dir_reclaim_superseded_total"] == 1, m   # A's answer
    assert m["disagg_memnode_dir_reclaimed_pages_total"] == len(steps) - 1, m
    for h in (a, b, a2, b2):
        h.close()


def test_recalls_carry_the_version_only_once_negotiated(memnodes, key, tmp_path):
    """Every new owner counts: the recall to the owner carries the count of
    its ownership, to a holder that negotiated FEAT_DIR_VERSION only."""
    d, _ = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a = Holder(d, key, A, sec, gen, features=VFEATS).attach()
    b = holder(d, key, B, sec, gen).attach()        # without the feature
    seen = {}
    assert a.write(2)[0] is False                    # A owns page 2: the first owner
    for who, other in ((a, b), (b, a), (a, b)):
        other.io.send(dp.OP["DIR_WRITE"], dp.DIR_REQ.pack(other.grant, 2, 0, 0))
        r = who.chan.recall()
        assert r and r["page"] == 2, r
        seen.setdefault(who.node, []).append(r["version"])
        who.chan.ack(r["seq"])
        assert other.io.recv()[1] == 0
    assert seen[B] == [0], seen                      # not negotiated: 0
    assert seen[A] == [1, 3], seen                   # B owned it in between (2)
    for h in (a, b):
        h.close()


def test_an_unstored_recall_answer_with_its_version_is_stored(memnodes, key, tmp_path):
    """The node dies with A's answer unread: nobody owned the page after A,
    so the answer's version is still the page's, and it is stored."""
    d, args = node(memnodes, tmp_path)
    sec, gen = section(d, key)
    a = Holder(d, key, A, sec, gen, features=VFEATS).attach()
    b = Holder(d, key, B, sec, gen, features=VFEATS).attach()
    assert a.write(6)[0] is False
    b.io.send(dp.OP["DIR_WRITE"], dp.DIR_REQ.pack(b.grant, 6, 0, 0))
    r = a.chan.recall()
    assert r and r["page"] == 6, r
    d.kill9()                                      # A's answer never reaches it
    d, a2, b2 = both_back(memnodes, key, args, sec, gen)
    mine = b"\x66" * PAGE
    a2.chan_conn.dir_reclaim(a2.grant, 6, mine, recalled=True, version=r["version"])
    assert done_and_read(a2, b2, 6) == mine
    assert metrics(d)["disagg_memnode_dir_reclaim_superseded_total"] == 0
    for h in (a, b, a2, b2):
        h.close()


def test_a_damaged_holder_table_forgets_the_holders(memnodes, key, tmp_path):
    args, sec, gen, a = owner_then_crash(memnodes, key, tmp_path)
    table = tmp_path / "pool.img.dir"
    data = bytearray(table.read_bytes())
    data[0:8] = b"garbage!"
    table.write_bytes(bytes(data))
    d = start(memnodes, **args)
    a2 = holder(d, key, A, sec, gen)
    refused("DIR_DETACHED", a2.read, 0)          # no grace period: forgotten
    a2.attach()
    refused("DIR_DETACHED", a2.chan_conn.dir_reclaim, a2.grant, 0, bytes(PAGE))
    assert a2.read(0) == bytes(PAGE)
    for h in (a, a2):
        h.close()


@pytest.mark.parametrize("cut_short", [False, True])
def test_a_format_1_holder_table_is_upgraded_with_its_holders(memnodes, key, tmp_path,
                                                              cut_short):
    """A table written before page versions (format 1: the holders only) is
    kept: the holders still get their grace period, and every page's
    version starts at 0. An upgrade cut short (extended, header not yet
    rewritten) is done again."""
    args, sec, gen, a = owner_then_crash(memnodes, key, tmp_path)
    table = tmp_path / "pool.img.dir"
    data = table.read_bytes()
    assert data[:8] == b"DGDIRTAB" and struct.unpack_from("<I", data, 8)[0] == 2
    nsections = struct.unpack_from("<I", data, 12)[0]
    v1 = bytearray(data[:32 + nsections * dp.DIR_MAX_HOLDERS * 16])
    struct.pack_into("<IIII", v1, 8, 1, nsections, dp.DIR_MAX_HOLDERS, 0)
    table.write_bytes(bytes(v1) + (bytes(len(data) - len(v1)) if cut_short else b""))
    d = start(memnodes, **args)
    assert "upgraded to format 2" in d.stderr()
    a2 = holder(d, key, A, sec, gen).attach()
    changed = b"\x77" * PAGE
    a2.chan_conn.dir_reclaim(a2.grant, 0, changed)
    a2.chan_conn.dir_reclaim(a2.grant)
    assert a2.read(0) == changed
    assert table.stat().st_size == len(data)
    for h in (a, a2):
        h.close()


def test_a_second_crash_in_the_grace_period_and_answers_twice(memnodes, key, tmp_path):
    """The node dies again before its holder reclaimed: the next start waits
    for it again. A page handed back twice, and DONE twice, change nothing
    more."""
    args, sec, gen, a = owner_then_crash(memnodes, key, tmp_path)
    d = start(memnodes, **args)
    a2 = holder(d, key, A, sec, gen).attach()    # back, but the node dies again
    d.kill9()
    d = start(memnodes, **args)
    a3, b3 = holder(d, key, A, sec, gen).attach(), holder(d, key, B, sec, gen).attach()
    refused("DIR_GRACE", b3.read, 0)             # A is still awaited
    changed = b"\x66" * PAGE
    a3.chan_conn.dir_reclaim(a3.grant, 0, changed)
    a3.chan_conn.dir_reclaim(a3.grant, 0, changed)
    a3.chan_conn.dir_reclaim(a3.grant)
    a3.chan_conn.dir_reclaim(a3.grant)
    assert b3.read(0) == changed
    assert metrics(d)["disagg_memnode_dir_holders_lost_total"] == 0
    for h in (a, a2, a3, b3):
        h.close()
