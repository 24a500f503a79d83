# SPDX-License-Identifier: MIT
"""WRITE_DIFF on a real memory node (docs/protocol.md, "WRITE_DIFF"): the
byte runs of a release region's pages land exactly where they say, two
writers' diffs of disjoint bytes of the same pages make the union, and a
malformed request (a run past the page, empty, overlapping or out of
order, too many runs or pages, a page outside the section, bytes missing
or left over, reserved fields set) gets its status and changes nothing;
so does one without the write right, of an older epoch, or on a
connection that did not negotiate the feature. The node keeps serving.

A frame with ONCE ids (stream, batch, frame) is applied at most once: sent
again after another writer changed the same bytes, it changes nothing and
is counted; a new frame or batch of the stream applies, an older batch
does not, another writer's stream is its own, a section allocated again
starts afresh, and malformed ids or the flag without the feature are
refused."""
import struct

import pytest

import dproto as dp
from conftest import memnode_metrics

PAGE = dp.PAGE
A, B = 7, 8         # two writers (compute nodes)


def grant(key, d, node, sec, gen, rights=dp.R_READ | dp.R_WRITE, epoch=0):
    return dp.mint_grant(key, d.node_id, node, sec, gen, rights, epoch=epoch)


def login(d, key, node):
    return dp.Conn(d.addr).login(key, node, orch=False)


@pytest.fixture
def section(memnodes, key):
    d = memnodes.start(pool="64M", section="16M")
    with dp.Conn(d.addr).login(key, 5) as o:
        sec, gen = o.alloc(owner=1)
    return d, sec, gen


def test_diffs_apply_exactly_and_two_writers_make_the_union(section, key):
    d, sec, gen = section
    ga, gb = grant(key, d, A, sec, gen), grant(key, d, B, sec, gen)
    with login(d, key, A) as a, login(d, key, B) as b:
        assert a.info["features"] & dp.FEAT_DIFF
        a.write_diff(ga, [(3, [(0, b"\x01\x02"), (100, b"\x03")]), (9, [(4095, b"\x04")])])
        got = a.read(ga, [(3, 1)])
        assert got[:2] == b"\x01\x02" and got[100] == 3 and got.count(0) == PAGE - 3
        assert a.read(ga, [(9, 1)]) == bytes(PAGE - 1) + b"\x04"

        # A owns the even bytes of pages 10..13, B the odd ones: every other byte a run.
        for w, g, odd in ((a, ga, 0), (b, gb, 1)):
            pages = [(pg, [(i, bytes([(pg + i) % 251 + 1])) for i in range(odd, PAGE, 2)])
                     for pg in range(10, 14)]
            w.write_diff(g, pages)
        union = b"".join(bytes((pg + i) % 251 + 1 for i in range(PAGE)) for pg in range(10, 14))
        assert b.read(gb, [(10, 4)]) == union

        # A whole page as one run is a full write.
        a.write_diff(ga, [(20, [(0, b"\x5a" * PAGE)])])
        assert a.read(ga, [(20, 1)]) == b"\x5a" * PAGE


def bad(d, key, g, payload, status, node=A, features=dp.FEAT_ALL):
    with dp.Conn(d.addr) as c:
        cn, sn = c.hello(key, node, features=features)
        c.auth(key, node, cn, sn, orch=False)
        with pytest.raises(dp.ProtoError) as e:
            c.call(dp.OP["WRITE_DIFF"], payload)
        assert e.value.status == dp.ST[status], dp.ST_NAME.get(e.value.status)


def test_malformed_diffs_are_refused_and_change_nothing(section, key):
    d, sec, gen = section
    g = grant(key, d, A, sec, gen)
    req = dp.Conn.diff_req
    one = [(5, [(10, b"\x77")])]
    with login(d, key, A) as c:
        c.write(g, [(5, 1)], b"\x11" * PAGE)
    npages = 16 * 1024 * 1024 // PAGE

    bad(d, key, g, req(g, [(5, [(4090, b"\x77" * 10)])]), "BADMSG")         # past the page
    bad(d, key, g, req(g, [(5, [(10, b"")])]), "BADMSG")                    # empty run
    bad(d, key, g, req(g, [(5, [(10, b"ab"), (11, b"c")])]), "BADMSG")      # overlapping
    bad(d, key, g, req(g, [(5, [(20, b"a"), (10, b"b")])]), "BADMSG")       # out of order
    bad(d, key, g, req(g, [(5, [])]), "BADMSG")                             # no run
    bad(d, key, g, req(g, [], npages=0), "BADMSG")                          # no page
    bad(d, key, g, req(g, one)[:-1], "BADMSG")                              # a byte short
    bad(d, key, g, req(g, one) + b"\x00", "BADMSG")                         # a byte left over
    bad(d, key, g, req(g, one, npages=2), "BADMSG")                         # a page announced, absent
    rsvd = bytearray(req(g, one))
    rsvd[108] = 2                                                           # an unknown flag
    bad(d, key, g, bytes(rsvd), "BADMSG")
    rsvd = bytearray(req(g, one))
    rsvd[112 + 6] = 1                                                       # the page's rsvd
    bad(d, key, g, bytes(rsvd), "BADMSG")
    bad(d, key, g, g[:50], "BADMSG")                                        # not even a header
    # 2049 runs: the count alone is over the limit (no run follows it).
    bad(d, key, g, g + struct.pack("<II", 1, 0) + struct.pack("<IHH", 5, 2049, 0), "TOOBIG")
    bad(d, key, g, g + struct.pack("<II", 257, 0), "TOOBIG")                # too many pages
    bad(d, key, g, req(g, [(npages, [(0, b"x")])]), "RANGE")                # outside the section
    bad(d, key, grant(key, d, A, sec, gen, rights=dp.R_READ), req(
        grant(key, d, A, sec, gen, rights=dp.R_READ), one), "RIGHTS")
    bad(d, key, grant(key, d, B, sec, gen), req(grant(key, d, B, sec, gen), one), "GRANT")
    bad(d, key, g, req(g, one), "NOTSUP", features=dp.FEAT_ALL & ~dp.FEAT_DIFF)

    # An older epoch than the section's (after a FENCE) is fenced.
    with login(d, key, A) as c:
        assert c.fence(grant(key, d, A, sec, gen, epoch=3)) == 3
    bad(d, key, g, req(g, one), "FENCED")

    with login(d, key, A) as c:
        assert c.read(g, [(5, 1)]) == b"\x11" * PAGE, "a refused diff changed the page"
        c.write_diff(grant(key, d, A, sec, gen, epoch=3), one)
        got = c.read(g, [(5, 1)])
        assert got[10] == 0x77 and got.count(0x11) == PAGE - 1
        c.call(dp.OP["PING"])


ONCE = dp.FEAT_ALL | dp.FEAT_DIFF_ONCE


def login_once(d, key, node):
    return dp.Conn(d.addr).login(key, node, orch=False, features=ONCE)


def repeated(d):
    return memnode_metrics(d).get("disagg_memnode_diff_frames_repeated_total", 0)


def test_a_frame_sent_again_is_not_applied_again(section, key):
    d, sec, gen = section
    ga, gb = grant(key, d, A, sec, gen), grant(key, d, B, sec, gen)
    S = 0x5eed0001
    with login_once(d, key, A) as a, login(d, key, B) as b:
        assert a.info["features"] & dp.FEAT_DIFF_ONCE
        a.write_diff(ga, [(4, [(0, b"\xa1")])], once=(S, 7, 0))
        assert a.read(ga, [(4, 1)])[0] == 0xa1
        b.write_diff(gb, [(4, [(0, b"\xb1")])])          # B releases the same byte after A
        a.write_diff(ga, [(4, [(0, b"\xa1")])], once=(S, 7, 0))   # A's frame again
        assert a.read(ga, [(4, 1)])[0] == 0xb1, "a frame sent again undid B's later byte"
        assert repeated(d) == 1

        a.write_diff(ga, [(4, [(1, b"\xa2")])], once=(S, 7, 1))   # the batch's next frame
        a.write_diff(ga, [(4, [(2, b"\xa3")])], once=(S, 8, 0))   # the next batch
        a.write_diff(ga, [(4, [(0, b"\xa4")])], once=(S, 7, 2))   # an older batch: dropped
        a.write_diff(ga, [(4, [(0, b"\xa5")])], once=(S, 8, 0))   # batch 8's frame 0 again
        got = a.read(ga, [(4, 1)])
        assert got[:3] == b"\xb1\xa2\xa3", got[:3]
        assert repeated(d) == 3

        # The same stream from another node, and another stream of A's: writers of their own.
        with login_once(d, key, B) as b2:
            b2.write_diff(gb, [(4, [(3, b"\xb3")])], once=(S, 7, 0))
        a.write_diff(ga, [(4, [(4, b"\xa6")])], once=(S + 1, 7, 0))
        got = a.read(ga, [(4, 1)])
        assert got[3:5] == b"\xb3\xa6" and repeated(d) == 3

        # Frame 255 is the last index a batch has.
        a.write_diff(ga, [(4, [(5, b"\xa7")])], once=(S, 8, 255))
        a.write_diff(ga, [(4, [(5, b"\xa8")])], once=(S, 8, 255))
        assert a.read(ga, [(4, 1)])[5] == 0xa7 and repeated(d) == 4


def test_a_section_allocated_again_forgets_its_frames(memnodes, key):
    d = memnodes.start(pool="16M", section="16M")
    with dp.Conn(d.addr).login(key, 5) as o:
        sec, gen = o.alloc(owner=1)
        with login_once(d, key, A) as a:
            a.write_diff(grant(key, d, A, sec, gen), [(1, [(0, b"\x01")])], once=(9, 1, 0))
        o.free(sec, gen)
        sec2, gen2 = o.alloc(owner=1)
    assert (sec2, gen2) != (sec, gen)
    g2 = grant(key, d, A, sec2, gen2)
    with login_once(d, key, A) as a:
        a.write_diff(g2, [(1, [(0, b"\x02")])], once=(9, 1, 0))
        assert a.read(g2, [(1, 1)])[0] == 2, "the new section took the old one's frame ids"


def test_malformed_ids_are_refused(section, key):
    d, sec, gen = section
    g = grant(key, d, A, sec, gen)
    one = [(5, [(10, b"\x77")])]
    req = dp.Conn.diff_req
    bad(d, key, g, req(g, one, once=(1, 1, 0)), "BADMSG")     # not negotiated
    for ids in ((0, 1, 0), (1, 0, 0), (1, 1, 256)):
        bad(d, key, g, req(g, one, once=ids), "BADMSG", features=ONCE)
    rsvd = bytearray(req(g, one, once=(1, 1, 0)))
    rsvd[112 + 20] = 1                                         # the ids' rsvd
    bad(d, key, g, bytes(rsvd), "BADMSG", features=ONCE)
    bad(d, key, g, req(g, one, once=(1, 1, 0))[:112 + 20], "BADMSG", features=ONCE)
    with login_once(d, key, A) as c:
        assert c.read(g, [(5, 1)]) == bytes(PAGE), "a refused frame changed the page"
        c.write_diff(g, one, once=(1, 1, 0))
        assert c.read(g, [(5, 1)])[10] == 0x77


def test_a_restarted_node_still_knows_the_frames_it_applied(memnodes, key, tmp_path):
    """A persistent pool keeps its diff table beside it (POOL.once): a
    frame applied before a kill -9 is not applied again after the restart,
    even with another writer's byte in between."""
    args = dict(pool="32M", section="16M", backing=f"file:{tmp_path / 'pool.img'}",
                node_id=612)
    d = memnodes.start(**args)
    with dp.Conn(d.addr).login(key, 5) as o:
        sec, gen = o.alloc(owner=1)
    ga, gb = grant(key, d, A, sec, gen), grant(key, d, B, sec, gen)
    with login_once(d, key, A) as a, login(d, key, B) as b:
        a.write_diff(ga, [(2, [(0, b"\xa1")])], once=(77, 3, 0))
        b.write_diff(gb, [(2, [(0, b"\xb1")])])
    assert (tmp_path / "pool.img.once").exists()
    d.kill9()
    d = memnodes.start(**args)
    with login_once(d, key, A) as a:
        a.write_diff(ga, [(2, [(0, b"\xa1")])], once=(77, 3, 0))
        a.write_diff(ga, [(2, [(1, b"\xa2")])], once=(77, 3, 1))
        assert a.read(ga, [(2, 1)])[:2] == b"\xb1\xa2", "the frame was applied again"
    assert repeated(d) == 1
