# SPDX-License-Identifier: MIT
"""WRITE_DIFF on a real memory node (docs/protocol.md, "WRITE_DIFF"): the
byte runs of a release region's pages land exactly where they say, two
writers' diffs of disjoint bytes of the same pages make the union, and a
malformed request (a run past the page, empty, overlapping or out of
order, too many runs or pages, a page outside the section, bytes missing
or left over, reserved fields set) gets its status and changes nothing;
so does one without the write right, of an older epoch, or on a
connection that did not negotiate the feature. The node keeps serving."""
import struct

import pytest

import dproto as dp

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
    rsvd[108] = 1                                                           # the request's rsvd
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
