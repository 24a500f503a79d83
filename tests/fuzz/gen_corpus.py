#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<name>/).

Each seed is a valid input in the layout its target expects (see the
comment at the top of fuzz_<name>.c): real frames, real handshakes and
replies with the request ids the client will use, real QMP and guest
channel lines, real API requests. The fuzzer mutates from there. Rerun
after changing a wire format or an input layout:
    tests/fuzz/gen_corpus.py            every target
    tests/fuzz/gen_corpus.py qmp shim   some of them
Seeds named regress-* are reproducers of fixed bugs, kept by hand: this
script never writes or removes them.
"""
import json
import os
import struct
import sys

MAGIC, VERSION = 0x31475344, 2
MODE_FRAME, MODE_IO_READ, MODE_IO_WRITE, MODE_FIXED, MODE_GRANT_HEX, MODE_GRANT_RAW = range(6)
OP = dict(HELLO=1, AUTH=2, PING=3, ALLOC=4, FREE=5, LIST=6, READ=7, WRITE=8, CAS=9,
          FADD=10, COPY=11, STATS=12, FENCE=13, REVOKE=14, DIR_ATTACH=15, DIR_READ=16, DIR_WRITE=17,
          DIR_RECALL=18, DIR_RECALL_ACK=19, DIR_DETACH=20, WRITE_DIFF=21, DIR_RECLAIM=22,
          BLK_OPEN=23, BLK_READ=24, BLK_WRITE=25, BLK_FLUSH=26, BLK_DISCARD=27,
          BLK_WRITE_ZEROES=28, BLK_CLOSE=29, VOL_CREATE=30, VOL_DELETE=31, VOL_RESIZE=32,
          VOL_CLONE=33, VOL_STAT=34, VOL_LIST=35)
FEAT_DIR = 16
PAGE = 4096


def hdr(op, payload, reply=False, status=0, req_id=1, version=VERSION):
    return struct.pack("<IHHIIQII", MAGIC, version, op, 1 if reply else 0, len(payload),
                       req_id, status, 0) + payload


def grant(memnode=1, holder=2, section=3, gen=1, rights=3, expiry=0, sig=b"\x5a" * 64,
          epoch=0):
    """A grant (104 bytes); the targets re-sign it where they need a valid one."""
    return struct.pack("<QQIIIIQ", memnode, holder, section, gen, rights, epoch, expiry) + sig


def io(extents, pages=0):
    body = grant() + struct.pack("<II", len(extents), 0)
    body += b"".join(struct.pack("<II", p, c) for p, c in extents)
    return body + bytes((i * 7) & 0xFF for i in range(pages * PAGE))


def diff(pages, g=None, once=None):
    """A WRITE_DIFF payload: pages is [(page, [(offset, bytes), ...]), ...];
    once, (stream, batch, frame): the ONCE ids."""
    body = (g or grant()) + struct.pack("<II", len(pages), 1 if once else 0)
    if once:
        body += struct.pack("<QQII", *once, 0)
    for page, runs in pages:
        body += struct.pack("<IHH", page, len(runs), 0)
        body += b"".join(struct.pack("<HH", off, len(data)) for off, data in runs)
        body += b"".join(data for _, data in runs)
    return body


def frame_seeds():
    yield "frame-ping", bytes([MODE_FRAME]) + hdr(OP["PING"], b"")
    yield "frame-hello", bytes([MODE_FRAME]) + hdr(
        OP["HELLO"], struct.pack("<HHIQ", VERSION, VERSION, 3, 42) + b"\x01" * 32)
    yield "frame-hello-rep", bytes([MODE_FRAME]) + hdr(
        OP["HELLO"], struct.pack("<HHIQIIQII", VERSION, 0, 3, 7, 256, 256, 128 << 20, 64, 0)
        + b"\x02" * 32 + b"\x03" * 32, reply=True)
    yield "frame-auth", bytes([MODE_FRAME]) + hdr(OP["AUTH"], b"\x04" * 32)
    yield "frame-alloc", bytes([MODE_FRAME]) + hdr(OP["ALLOC"], struct.pack("<QII", 9, 0, 0))
    yield "frame-free", bytes([MODE_FRAME]) + hdr(OP["FREE"], struct.pack("<IIII", 3, 1, 2, 0))
    yield "frame-list-rep", bytes([MODE_FRAME]) + hdr(
        OP["LIST"], struct.pack("<II", 1, 64) + struct.pack("<IIQ", 3, 1, 9), reply=True)
    yield "frame-read", bytes([MODE_FRAME]) + hdr(OP["READ"], io([(0, 4), (100, 1)]))
    yield "frame-write", bytes([MODE_FRAME]) + hdr(OP["WRITE"], io([(5, 1)], pages=1))
    yield "frame-cas", bytes([MODE_FRAME]) + hdr(OP["CAS"], grant() + struct.pack("<QQQ", 8, 0, 1))
    yield "frame-copy", bytes([MODE_FRAME]) + hdr(
        OP["COPY"], grant(rights=1) + grant() + b"127.0.0.1:7001".ljust(256, b"\0"))
    yield "frame-fence", bytes([MODE_FRAME]) + hdr(OP["FENCE"], grant(epoch=7))
    yield "frame-fence-rep", bytes([MODE_FRAME]) + hdr(OP["FENCE"], struct.pack("<II", 7, 0),
                                                         reply=True)
    yield "frame-error-rep", bytes([MODE_FRAME]) + hdr(OP["READ"], b"", reply=True, status=4)
    yield "io-read", bytes([MODE_IO_READ]) + struct.pack("<II", 32768, 256) + io([(0, 2), (7, 3)])
    yield "io-read-edge", bytes([MODE_IO_READ]) + struct.pack("<II", 0xFFFFFFFF, 256) + io(
        [(0xFFFFFFFE, 1)])
    yield "io-write", bytes([MODE_IO_WRITE]) + struct.pack("<II", 32768, 256) + io(
        [(1, 1), (3, 1)], pages=2)
    yield "fixed-stats", bytes([MODE_FIXED, 12]) + bytes(range(64))
    yield "fixed-grant", bytes([MODE_FIXED, 13]) + grant()
    yield "grant-hex", bytes([MODE_GRANT_HEX]) + grant(expiry=1700000000).hex().encode()
    yield "grant-raw", bytes([MODE_GRANT_RAW]) + grant(rights=1, epoch=0xFFFFFFFF)
    yield "fixed-fence-rep", bytes([MODE_FIXED, 15]) + struct.pack("<II", 3, 0)
    yield "frame-dir-attach", bytes([MODE_FRAME]) + hdr(OP["DIR_ATTACH"], grant(rights=1))
    yield "frame-dir-read", bytes([MODE_FRAME]) + hdr(OP["DIR_READ"],
                                                      grant() + struct.pack("<II", 7, 0))
    yield "frame-dir-write-rep", bytes([MODE_FRAME]) + hdr(
        OP["DIR_WRITE"], struct.pack("<II", 0, 0) + bytes(PAGE), reply=True)
    yield "frame-dir-recall", bytes([MODE_FRAME]) + hdr(
        OP["DIR_RECALL"], struct.pack("<QIIIIII", 9, 3, 1, 7, 2, 5, 0), req_id=9)
    yield "frame-dir-ack", bytes([MODE_FRAME]) + hdr(
        OP["DIR_RECALL_ACK"], struct.pack("<QII", 9, 2, 0) + bytes(range(256)) * 16)
    yield "frame-dir-ack-clean", bytes([MODE_FRAME]) + hdr(OP["DIR_RECALL_ACK"],
                                                           struct.pack("<QII", 9, 0, 0))
    yield "frame-dir-ack-quiet", bytes([MODE_FRAME]) + hdr(   # QUIET | DIRTY
        OP["DIR_RECALL_ACK"], struct.pack("<QII", 9, 10, 0) + bytes(PAGE))
    yield "frame-write-diff", bytes([MODE_FRAME]) + hdr(OP["WRITE_DIFF"], diff(
        [(1, [(0, b"\x01\x02"), (9, b"\x03")]), (7, [(4000, bytes(96))])]))
    yield "frame-write-diff-odd", bytes([MODE_FRAME]) + hdr(OP["WRITE_DIFF"], diff(
        [(2, [(i, b"\x5a") for i in range(1, PAGE, 2)])]))
    yield "frame-write-diff-once", bytes([MODE_FRAME]) + hdr(OP["WRITE_DIFF"], diff(
        [(3, [(8, b"\x01\x02")])], once=(0x1234, 7, 2)))



# ---- fuzz_memnode: flags, then the byte stream to the node -----------------------

MN_HANDSHAKE, MN_SIGN, MN_ADDRESSED, MN_RIVAL, MN_RIVAL_ANSWERS = 1, 0x10, 0x20, 0x40, 0x80
MN_FEAT_ALL = 7 << 1
NODE_ID, PEER_ID = 7, 42


def mn_grant(section=0, gen=1, rights=3, epoch=0):
    return grant(memnode=NODE_ID, holder=PEER_ID, section=section, gen=gen, rights=rights,
                 epoch=epoch, sig=b"\0" * 64)


def mn_io(extents, pages=0, **kw):
    body = mn_grant(**kw) + struct.pack("<II", len(extents), 0)
    body += b"".join(struct.pack("<II", p, c) for p, c in extents)
    return body + bytes((i * 13) & 0xFF for i in range(pages * PAGE))


def revoke_frames():
    """REVOKE as the orchestrator: a list, a malformed one, then our own id."""
    yield hdr(OP["REVOKE"], struct.pack("<II", 2, 0) + struct.pack("<QQ", 7, 9), req_id=1)
    yield hdr(OP["REVOKE"], struct.pack("<II", 3, 0) + struct.pack("<Q", 7), req_id=2)
    yield hdr(OP["REVOKE"], struct.pack("<II", 1, 0) + struct.pack("<Q", 0), req_id=3)
    yield hdr(OP["PING"], b"", req_id=4)
    yield hdr(OP["REVOKE"], struct.pack("<II", 0, 0), req_id=5)
    yield hdr(OP["REVOKE"], struct.pack("<II", 1, 0) + struct.pack("<Q", PEER_ID), req_id=6)
    yield hdr(OP["PING"], b"", req_id=7)


def memnode_seeds():
    authed = bytes([MN_HANDSHAKE | MN_FEAT_ALL | MN_SIGN | MN_ADDRESSED])
    hello = struct.pack("<HHIQ", VERSION, VERSION, 7, PEER_ID) + b"\x01" * 32
    yield "hello-then-bad-auth", b"\0" + hdr(OP["HELLO"], hello) + hdr(OP["AUTH"], b"\x02" * 32,
                                                                        req_id=2)
    yield "no-auth-ping", b"\0" + hdr(OP["PING"], b"")
    yield "bad-magic", b"\0" + b"\0" * 32
    yield "reply-flag", authed + hdr(OP["PING"], b"", reply=True)
    yield "too-big", authed + hdr(OP["WRITE"], b"")[:12] + struct.pack("<I", 0xFFFFFFF0) + \
        hdr(OP["WRITE"], b"")[16:]
    yield "sections", authed + b"".join([
        hdr(OP["ALLOC"], struct.pack("<QII", 9, 0, 0), req_id=10),
        hdr(OP["ALLOC"], struct.pack("<QII", 9, 0, 0), req_id=11),
        hdr(OP["ALLOC"], struct.pack("<QII", 9, 0, 0), req_id=12),
        hdr(OP["LIST"], struct.pack("<II", 0, 0), req_id=13),
        hdr(OP["FREE"], struct.pack("<IIII", 1, 1, 0, 0), req_id=14),
        hdr(OP["FREE"], struct.pack("<II", 0, 1), req_id=15),
        hdr(OP["STATS"], b"", req_id=16),
        hdr(OP["PING"], b"", req_id=17)])
    yield "page-io", authed + b"".join([
        hdr(OP["ALLOC"], struct.pack("<QII", PEER_ID, 0, 0), req_id=1),
        hdr(OP["WRITE"], mn_io([(0, 1), (5, 2)], pages=3), req_id=2),
        hdr(OP["READ"], mn_io([(0, 1), (4, 4)]), req_id=3),
        hdr(OP["READ"], mn_io([(511, 1)], rights=1), req_id=4),
        hdr(OP["WRITE"], mn_io([(600, 1)], pages=1), req_id=5),
        hdr(OP["READ"], mn_io([(0, 1)], gen=2), req_id=6)])
    yield "big-write", authed + hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0)) + \
        hdr(OP["WRITE"], mn_io([(0, 24)], pages=24), req_id=2) + \
        hdr(OP["READ"], mn_io([(0, 24)]), req_id=3)
    yield "atomics-fence", authed + b"".join([
        hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0), req_id=1),
        hdr(OP["CAS"], mn_grant() + struct.pack("<QQQ", 8, 0, 5), req_id=2),
        hdr(OP["FADD"], mn_grant() + struct.pack("<QQQ", 8, 0, 3), req_id=3),
        hdr(OP["FADD"], mn_grant() + struct.pack("<QQQ", 9, 0, 3), req_id=4),
        hdr(OP["FENCE"], mn_grant(epoch=4), req_id=5),
        hdr(OP["WRITE"], mn_io([(0, 1)], pages=1, epoch=3), req_id=6),
        hdr(OP["FREE"], struct.pack("<IIII", 0, 1, 4, 0), req_id=7)])
    yield "copy", authed + hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0)) + hdr(
        OP["COPY"], mn_grant(rights=1) + grant() + b"10.0.0.1:7001".ljust(256, b"\0"),
        req_id=2) + hdr(OP["PING"], b"", req_id=3)
    yield "pipelined-pings", authed + b"".join(hdr(OP["PING"], b"", req_id=i)
                                                for i in range(300))
    yield "revoke", authed + b"".join(revoke_frames())

    # The directory: section 0 of generation 1 is the rival's (fuzz_memnode.c bit 6).
    def dreq(page, rights=3):
        return mn_grant(rights=rights) + struct.pack("<II", page, 0)

    dirs = b"".join([
        hdr(OP["DIR_ATTACH"], mn_grant(rights=1), req_id=1),
        hdr(OP["DIR_READ"], dreq(0), req_id=2),          # the rival is downgraded
        hdr(OP["DIR_WRITE"], dreq(1), req_id=3),         # ... invalidated
        hdr(OP["DIR_WRITE"], dreq(2), req_id=4),
        hdr(OP["DIR_READ"], dreq(2), req_id=5),
        hdr(OP["DIR_WRITE"], dreq(9, rights=1), req_id=6),
        hdr(OP["DIR_READ"], dreq(4096), req_id=7),
        hdr(OP["DIR_RECALL_ACK"], struct.pack("<QII", 1, 0, 0), req_id=8),
        hdr(OP["DIR_RECALL_ACK"], struct.pack("<QII", 2, 2, 0) + bytes(PAGE), req_id=9),
        hdr(OP["DIR_RECALL"], struct.pack("<QIIIIII", 1, 0, 1, 0, 1, 0, 0), req_id=10),
        hdr(OP["DIR_DETACH"], mn_grant(rights=1), req_id=11),
        hdr(OP["DIR_READ"], dreq(3), req_id=12),
        hdr(OP["DIR_RECALL_ACK"], struct.pack("<QII", 3, 8, 0), req_id=14),   # quiet
        hdr(OP["PING"], b"", req_id=13)])
    yield "dir-alone", authed + hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0)) + dirs
    # WRITE_DIFF (feature bit 7) is negotiated with MN_SIGN (fuzz_memnode.c).
    yield "write-diff", authed + b"".join([
        hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0), req_id=1),
        hdr(OP["WRITE_DIFF"], diff([(3, [(0, b"\x01"), (2, b"\x02\x03")])], mn_grant()), req_id=2),
        hdr(OP["READ"], mn_io([(3, 1)]), req_id=3),
        hdr(OP["WRITE_DIFF"], diff([(3, [(4090, b"\x01" * 9)])], mn_grant()), req_id=4),
        hdr(OP["WRITE_DIFF"], diff([(4096, [(0, b"\x01")])], mn_grant()), req_id=5),
        hdr(OP["WRITE_DIFF"], diff([(3, [(0, b"\x01")])], mn_grant(rights=1)), req_id=6),
        hdr(OP["PING"], b"", req_id=7)])
    # ONCE ids (diff_once, negotiated with MN_SIGN): a frame, the same again, an older batch.
    yield "write-diff-once", authed + b"".join([
        hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0), req_id=1),
        hdr(OP["WRITE_DIFF"], diff([(3, [(0, b"\x01")])], mn_grant(), (5, 2, 0)), req_id=2),
        hdr(OP["WRITE_DIFF"], diff([(3, [(0, b"\x02")])], mn_grant(), (5, 2, 0)), req_id=3),
        hdr(OP["WRITE_DIFF"], diff([(3, [(1, b"\x03")])], mn_grant(), (5, 1, 1)), req_id=4),
        hdr(OP["WRITE_DIFF"], diff([(3, [(1, b"\x04")])], mn_grant(), (6, 1, 255)), req_id=5),
        hdr(OP["READ"], mn_io([(3, 1)]), req_id=6),
        hdr(OP["PING"], b"", req_id=7)])
    # DIR_RECLAIM (negotiated with MN_SIGN): no grace period here, so pages are
    # refused; DONE is taken from an attached holder; bad flags and lengths.
    def rreq(page, flags, rights=3):
        return mn_grant(rights=rights) + struct.pack("<IHH", page, flags, 0)

    yield "dir-reclaim", authed + b"".join([
        hdr(OP["ALLOC"], struct.pack("<QII", 1, 0, 0), req_id=1),
        hdr(OP["DIR_RECLAIM"], rreq(0, 2), req_id=2),                 # not attached
        hdr(OP["DIR_ATTACH"], mn_grant(rights=1), req_id=3),
        hdr(OP["DIR_RECLAIM"], rreq(0, 0) + bytes(PAGE), req_id=4),   # no grace: refused
        hdr(OP["DIR_RECLAIM"], rreq(1, 4) + bytes(PAGE), req_id=5),   # recalled
        hdr(OP["DIR_RECLAIM"], rreq(0, 2), req_id=6),                 # done
        hdr(OP["DIR_RECLAIM"], rreq(4096, 0) + bytes(PAGE), req_id=7),
        hdr(OP["DIR_RECLAIM"], rreq(0, 6), req_id=8),                 # done and recalled
        hdr(OP["DIR_RECLAIM"], rreq(1, 12) + struct.pack("<II", 3, 0) + bytes(PAGE),
            req_id=9),                                                # recalled, its version
        hdr(OP["DIR_RECLAIM"], rreq(1, 8) + struct.pack("<II", 3, 0) + bytes(PAGE),
            req_id=10),                                               # version, not recalled
        hdr(OP["PING"], b"", req_id=11)])
    yield "dir-rival-silent", bytes([authed[0] | MN_RIVAL]) + dirs
    yield "dir-rival-answers", bytes([authed[0] | MN_RIVAL | MN_RIVAL_ANSWERS]) + dirs


# ---- fuzz_mnclient: flags, HELLO reply, AUTH status, operations, the node's stream ----

# ---- fuzz_devnode: flags, then the byte stream to the node -----------------------

DN_HANDSHAKE, DN_SIGN = 1, 2


def dn_open(name=b"v", flags=0, rights=3):
    return grant(memnode=9, holder=PEER_ID, rights=rights, sig=b"\0" * 64) + \
        struct.pack("<64sII", name, flags, 0)


def dn_io(handle, length, offset, data=False):
    return struct.pack("<IIQ", handle, length, offset) + \
        (bytes((i * 7) & 0xFF for i in range(length)) if data else b"")


def dn_vol(name, size=0, flags=0, src=b""):
    return struct.pack("<64sQII64s", name, size, flags, 0, src)


def devnode_seeds():
    authed = bytes([DN_HANDSHAKE | DN_SIGN])
    hello = struct.pack("<HHIQ", VERSION, VERSION, 512, PEER_ID) + b"\x01" * 32
    yield "hello-then-bad-auth", b"\0" + hdr(OP["HELLO"], hello) + \
        hdr(OP["AUTH"], b"\x02" * 32, req_id=2)
    yield "no-auth-open", b"\0" + hdr(OP["BLK_OPEN"], dn_open())
    yield "preauth-too-big", b"\0" + hdr(OP["HELLO"], bytes(4096))
    yield "io", authed + b"".join([
        hdr(OP["BLK_OPEN"], dn_open(), req_id=1),
        hdr(OP["BLK_WRITE"], dn_io(0, 4096, 8192, data=True), req_id=2),
        hdr(OP["BLK_READ"], dn_io(0, 8192, 4096), req_id=3),
        hdr(OP["BLK_FLUSH"], struct.pack("<II", 0, 0), req_id=4),
        hdr(OP["BLK_DISCARD"], dn_io(0, 4096, 8192), req_id=5),
        hdr(OP["BLK_WRITE_ZEROES"], dn_io(0, 512, 0), req_id=6),
        hdr(OP["BLK_READ"], dn_io(0, 512, 1 << 20), req_id=7),
        hdr(OP["BLK_READ"], dn_io(1, 512, 0), req_id=8),
        hdr(OP["BLK_CLOSE"], struct.pack("<II", 0, 0), req_id=9),
        hdr(OP["BLK_READ"], dn_io(0, 512, 0), req_id=10)])
    yield "big-write", authed + hdr(OP["BLK_OPEN"], dn_open()) + \
        hdr(OP["BLK_WRITE"], dn_io(0, 98304, 0, data=True), req_id=2) + \
        hdr(OP["BLK_READ"], dn_io(0, 98304, 0), req_id=3)
    yield "read-only", authed + hdr(OP["BLK_OPEN"], dn_open(flags=1, rights=1)) + \
        hdr(OP["BLK_WRITE"], dn_io(0, 512, 0, data=True), req_id=2)
    yield "pipelined-reads", authed + hdr(OP["BLK_OPEN"], dn_open()) + b"".join(
        hdr(OP["BLK_READ"], dn_io(0, 4096, (i % 256) * 4096), req_id=i + 2) for i in range(64))
    yield "volumes", authed + b"".join([
        hdr(OP["VOL_CREATE"], dn_vol(b"a", 1 << 20), req_id=1),
        hdr(OP["VOL_CREATE"], dn_vol(b"a", 1 << 20), req_id=2),
        hdr(OP["VOL_CLONE"], dn_vol(b"b", src=b"v"), req_id=3),
        hdr(OP["VOL_RESIZE"], dn_vol(b"b", 1 << 21), req_id=4),
        hdr(OP["VOL_RESIZE"], dn_vol(b"b", 512, flags=1), req_id=5),
        hdr(OP["VOL_STAT"], dn_vol(b"b"), req_id=6),
        hdr(OP["VOL_LIST"], struct.pack("<II", 0, 512), req_id=7),
        hdr(OP["VOL_DELETE"], dn_vol(b"a"), req_id=8),
        hdr(OP["VOL_CREATE"], dn_vol(b"Bad", 512), req_id=9),
        hdr(OP["PING"], b"", req_id=10)])
    yield "revoke", authed + b"".join(revoke_frames())


# ---- fuzz_vhost: guest memory, then vhost-user messages, kicks and memory writes ----

def vu(req, payload=b"", flags=1):
    return struct.pack("<III", req, flags, len(payload)) + payload


def vu_rec(msg):
    return b"\0" + struct.pack("<H", len(msg)) + msg


def vhost_seeds():
    # Guest RAM at guest address 0 = QEMU address 0x10000 (user_addr), 1 MiB.
    region = struct.pack("<QQQQ", 0, 1 << 20, 0x10000, 0)
    desc, avail, used = 0x1000, 0x2000, 0x3000           # guest addresses of ring 0
    ring_addr = struct.pack("<IIQQQQ", 0, 0, 0x10000 + desc, 0x10000 + used,
                            0x10000 + avail, 0)
    mem = bytearray(0x8000)
    # One read request: header at 0x4000 (IN, sector 1), data 0x5000 (4 KiB), status 0x6000.
    struct.pack_into("<QIHH", mem, desc + 0, 0x4000, 16, 1, 1)
    struct.pack_into("<QIHH", mem, desc + 16, 0x5000, 4096, 3, 2)
    struct.pack_into("<QIHH", mem, desc + 32, 0x6000, 1, 2, 0)
    struct.pack_into("<HHH", mem, avail, 0, 1, 0)
    struct.pack_into("<IIQ", mem, 0x4000, 0, 0, 1)
    setup = b"".join(vu_rec(m) for m in [
        vu(1), vu(15), vu(16, struct.pack("<Q", 0x8209)), vu(17), vu(36), vu(3),
        vu(24, struct.pack("<III", 0, 60, 0) + bytes(60)),
        vu(2, struct.pack("<Q", (1 << 32) | (1 << 30) | (1 << 28) | (1 << 9) | (1 << 13) |
                          (1 << 14))),
        vu(37, struct.pack("<Q", 0) + region),
        vu(8, struct.pack("<II", 0, 8)), vu(10, struct.pack("<II", 0, 0)),
        vu(9, ring_addr), vu(12, struct.pack("<Q", 0)), vu(13, struct.pack("<Q", 0)),
        vu(18, struct.pack("<II", 0, 1))])
    head = struct.pack("<H", len(mem)) + bytes(mem)
    yield "read-one-sector", head + setup + b"\x01\x00"
    # The same, then the guest makes a write and a flush available and kicks.
    w = b"\x02" + struct.pack("<HH", 0x4100, 16) + struct.pack("<IIQ", 1, 0, 8)
    w += b"\x02" + struct.pack("<HH", desc + 48, 48) + \
        struct.pack("<QIHH", 0x4100, 16, 1, 4) + struct.pack("<QIHH", 0x5000, 4096, 1, 5) + \
        struct.pack("<QIHH", 0x6001, 1, 2, 0)
    w += b"\x02" + struct.pack("<HH", avail + 2, 4) + struct.pack("<HH", 2, 3)
    yield "write-after-read", head + setup + b"\x01\x00" + w + b"\x01\x00"
    # A descriptor loop, and a message of the wrong size.
    loop = bytearray(mem)
    struct.pack_into("<QIHH", loop, desc + 32, 0x6000, 1, 3, 0)
    yield "descriptor-loop", struct.pack("<H", len(loop)) + bytes(loop) + setup + b"\x01\x00"
    yield "bad-size", struct.pack("<H", 0) + vu_rec(vu(2, b"\0" * 3)) + vu_rec(vu(1))
    # In-flight logs: QEMU's GET, then a SET naming guest RAM (its bytes as the log,
    # a flagged descriptor among them) before the ring starts: what a restarted back end sees.
    inflight = bytearray(mem)
    struct.pack_into("<QHHHH", inflight, 0, 0, 1, 8, 0, 0)       # version 1, 8 descriptors
    struct.pack_into("<BxxxxxHQ", inflight, 16, 1, 0, 5)          # descriptor 0 in flight
    infl_setup = setup.replace(vu_rec(vu(16, struct.pack("<Q", 0x8209))),
                               vu_rec(vu(16, struct.pack("<Q", 0x9209))))
    infl_msgs = b"".join(vu_rec(m) for m in [
        vu(31, struct.pack("<QQHHI", 0, 0, 1, 8, 0)),
        vu(32, struct.pack("<QQHHI", 1 << 20, 0, 1, 8, 0))])
    cut = infl_setup.index(vu_rec(vu(8, struct.pack("<II", 0, 8))))
    yield "inflight-resubmit", struct.pack("<H", len(inflight)) + bytes(inflight) + \
        infl_setup[:cut] + infl_msgs + infl_setup[cut:] + b"\x01\x00"
    yield "mem-table", struct.pack("<H", 0) + vu_rec(vu(5, struct.pack("<II", 1, 0) + region)) + \
        vu_rec(vu(38, struct.pack("<Q", 0) + region)) + vu_rec(vu(36))


def rep(op, payload=b"", req_id=0, status=0):
    return hdr(op, payload, reply=True, status=status, req_id=req_id)


def rid(seq, slot=0):
    return seq << 16 | slot


def mnc_input(ops, stream, max_inflight=16, sign=1, auth_status=0, features=7):
    hello = struct.pack("<HHIQIIQII", VERSION, 0, features, NODE_ID, 256, max_inflight, 2 << 20,
                        2, 0)
    hello += b"\x07" * 32 + b"\0" * 32
    body = b"".join(struct.pack("<BBBBI", k, a, b, 0, d) for k, a, b, d in ops)
    return bytes([sign]) + hello + bytes([auth_status, len(ops)]) + body + stream


def mnclient_seeds():
    page = bytes(range(256)) * 16
    yield "sync-calls", mnc_input(
        [(0, 0, 0, 0), (1, 0, 0, 9), (3, 0, 0, 64), (6, 0, 0, 0), (7, 0, 0, 0), (10, 0, 0, 1),
         (11, 0, 0, 1), (13, 0, 0, 0), (14, 0, 0, 0), (2, 0, 1, 0), (12, 0, 1, 0)],
        b"".join([
            rep(OP["PING"], req_id=rid(1)),
            rep(OP["ALLOC"], struct.pack("<IIQ", 0, 1, 9), rid(2)),
            rep(OP["LIST"], struct.pack("<II", 1, 2) + struct.pack("<IIQ", 0, 1, 9), rid(3)),
            rep(OP["READ"], page, rid(4)),
            rep(OP["WRITE"], req_id=rid(5)),
            rep(OP["CAS"], struct.pack("<Q", 0), rid(6)),
            rep(OP["FADD"], struct.pack("<Q", 5), rid(7)),
            rep(OP["STATS"], bytes(range(64)), rid(8)),
            rep(OP["FENCE"], struct.pack("<II", 1, 0), rid(9)),
            rep(OP["FREE"], req_id=rid(10)),
            rep(OP["COPY"], struct.pack("<QQ", 3, 100), rid(11))]))
    yield "async-out-of-order", mnc_input(
        [(4, 4, 0, 0), (4, 0, 0, 100), (5, 0, 0, 7), (15, 0, 0, 0)],
        rep(OP["READ"], page, rid(2, 1)) + rep(OP["WRITE"], req_id=rid(3, 2)) +
        rep(OP["READ"], page * 2, rid(1, 0)))
    yield "error-replies", mnc_input(
        [(0, 0, 0, 0), (6, 0, 0, 0), (1, 0, 0, 1)],
        rep(OP["PING"], b"busy", rid(1), status=10) + rep(OP["READ"], b"", rid(2), status=4) +
        rep(OP["ALLOC"], b"full", rid(3), status=8))
    yield "ranges", mnc_input(
        [(8, 2, 0, 10), (9, 1, 0, 20)],
        rep(OP["READ"], page * 3, rid(1)) + rep(OP["WRITE"], req_id=rid(2)))
    yield "bad-hello-mac", mnc_input([(0, 0, 0, 0)], rep(OP["PING"], req_id=rid(1)), sign=0)
    yield "auth-refused", mnc_input([(0, 0, 0, 0)], b"", auth_status=3)
    yield "wrong-id", mnc_input([(0, 0, 0, 0), (0, 0, 0, 0)],
                                rep(OP["PING"], req_id=rid(7)) + rep(OP["PING"], req_id=rid(2)))

    # A recall channel: recalls before, between and after the replies to its calls.
    def recall(seq, page, mode, grants=0):
        return hdr(OP["DIR_RECALL"], struct.pack("<QIIIIII", seq, 0, 1, page, mode, grants, 0),
                   req_id=seq)

    yield "dir-channel", mnc_input(
        [(16, 0, 0, 0), (19, 1, 0, 0), (20, 0, 0, 1), (19, 0, 0, 0), (20, 1, 0, 2),
         (17, 0, 0, 5), (18, 0, 0, 6), (18, 0, 0, 7), (19, 1, 0, 0), (19, 0, 0, 0)],
        b"".join([
            rep(OP["DIR_ATTACH"], req_id=rid(1)),
            recall(1, 5, 2),
            recall(2, 6, 1, grants=3),
            rep(OP["DIR_RECALL_ACK"], req_id=rid(2)),
            recall(3, 7, 2),
            rep(OP["DIR_RECALL_ACK"], req_id=rid(3)),
            rep(OP["DIR_READ"], page, rid(4)),
            rep(OP["DIR_WRITE"], struct.pack("<II", 0, 0) + page, rid(5)),
            recall(4, 6, 2, grants=2),
            rep(OP["DIR_WRITE"], struct.pack("<II", 1, 0), rid(6))]), features=7 | FEAT_DIR)
    yield "dir-no-channel", mnc_input(
        [(17, 0, 0, 5), (19, 1, 0, 0)],
        recall(1, 5, 2) + rep(OP["DIR_READ"], page, rid(1)), features=7 | FEAT_DIR)
    yield "dir-not-offered", mnc_input([(16, 0, 0, 0), (17, 0, 0, 1)], b"")


# ---- fuzz_shim: messages (descriptor count, length, bytes) -----------------------

SHIM_MAP, SHIM_UNMAP, SHIM_READOPT, SHIM_READOPT_DONE = 1, 2, 3, 4


def shim_msg(op, addr=0x7f0000000000, length=2 << 20, offset=0, path=b"/run/disagg/vm0/ram0",
             pid=1234):
    return struct.pack("<IIQQQ", op, pid, addr, length, offset) + path.ljust(256, b"\0")


def shim_frame(msg, nfds=0):
    return bytes([nfds]) + struct.pack("<H", len(msg)) + msg


def shim_seeds():
    yield "map-unmap", shim_frame(shim_msg(SHIM_MAP), 1) + shim_frame(shim_msg(SHIM_UNMAP))
    yield "map-refused", shim_frame(shim_msg(SHIM_MAP, addr=0x7f0000000001), 1)
    yield "map-without-fd", shim_frame(shim_msg(SHIM_MAP))
    yield "readopt", shim_frame(shim_msg(SHIM_READOPT), 1) + shim_frame(
        shim_msg(SHIM_READOPT, addr=0x7f0000200000, offset=2 << 20), 1) + shim_frame(
        shim_msg(SHIM_READOPT_DONE, length=2))
    yield "unknown-op", shim_frame(shim_msg(9), 1)
    yield "short", shim_frame(shim_msg(SHIM_MAP)[:100], 1)
    yield "long", shim_frame(shim_msg(SHIM_MAP) + b"x" * 32, 1)
    yield "two-fds", shim_frame(shim_msg(SHIM_MAP), 2)
    yield "unterminated-path", shim_frame(shim_msg(SHIM_MAP, path=b"A" * 256), 1)


# ---- fuzz_qmp and fuzz_guestchan: operations, then the peer's stream -----------------

def qmp_lines(*objs):
    return b"".join(json.dumps(o).encode() + b"\r\n" for o in objs)


QMP_GREETING = ({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 8}},
                         "capabilities": []}}, {"return": {}, "id": 1})


def ops2(ops):
    return bytes([len(ops)]) + b"".join(bytes([k, a]) for k, a in ops)


def qmp_seeds():
    ts = {"seconds": 1, "microseconds": 2}
    yield "status-and-event", ops2([(0, 0), (2, 0x81)]) + qmp_lines(
        *QMP_GREETING, {"timestamp": ts, "event": "RESUME"},
        {"return": {"status": "running", "running": True}, "id": 2},
        {"timestamp": ts, "event": "DEVICE_DELETED", "data": {"id": "dimm0", "path": "/x"}})
    yield "vmem-query-and-error", ops2([(5, 0), (0, 3), (7, 0)]) + qmp_lines(
        *QMP_GREETING, {"return": 134217728, "id": 2}, {"return": 67108864, "id": 3},
        {"error": {"class": "GenericError", "desc": "migration is disabled"}, "id": 4})
    yield "dimm-add-where", ops2([(6, 0), (4, 0), (1, 0), (3, 0)]) + qmp_lines(
        *QMP_GREETING, {"return": {}, "id": 2},
        {"timestamp": ts, "event": "ACPI_DEVICE_OST", "data": {"info": {"status": 0}}},
        {"return": {}, "id": 3},
        {"return": [{"type": "dimm", "data": {"id": "dimm0", "addr": 4294967296, "slot": 0,
                                               "size": 134217728, "node": 0}}], "id": 4},
        {"return": 5, "id": 5}, {"return": {}, "id": 99})
    yield "no-greeting", ops2([]) + qmp_lines({"return": {}, "id": 1})
    yield "bad-json", ops2([(0, 1)]) + qmp_lines(*QMP_GREETING) + b"{\"return\": \r\n"


def guestchan_seeds():
    yield "ready-hb-cmds", ops2([(0, 0), (1, 1), (1, 0), (4, 0)]) + (
        b"READY disagg-guest 1 memtotal_kb=1024000\r\nHB 1 1000\n"
        b"OK balloon 1 pages=12\nHB 2 2000\nERR no such thing\n")
    yield "heartbeats", ops2([(3, 1)]) + b"".join(b"HB %d %d\n" % (i, i * 1000000)
                                                  for i in range(64))
    yield "resync", ops2([(2, 0), (1, 1)]) + b"OK stale\nERR unknown command SYNC-1-1\nOK ok\n"
    yield "long-line", ops2([(1, 1)]) + b"HB " + b"9" * 17000 + b"\nOK after\n"


# ---- fuzz_compute_api and fuzz_orch_api: requests (method, path, body) -----------------

METHOD = {"GET": 0, "POST": 1, "PUT": 2, "DELETE": 3, "PATCH": 4}


def req(method, path, body=None):
    b = b"" if body is None else json.dumps(body).encode()
    return bytes([METHOD[method]]) + path.encode() + b"\0" + struct.pack("<H", len(b)) + b


def remote(section=1):
    return {"kind": "remote", "addr": "127.0.0.1:7001",
            "grant": grant(memnode=1, holder=3, section=section, expiry=0).hex()}


def compute_api_seeds():
    yield "reads", req("GET", "/healthz") + req("GET", "/metrics") + req("GET", "/v1/vms") + \
        req("GET", "/v1/vms/vm0") + req("GET", "/v1/vms/vm1/console") + \
        req("GET", "/v1/vms/vm0/heartbeats") + req("GET", "/v1/vms/nope") + \
        req("GET", "/v1/vms/vm0/boot") + req("POST", "/v1/vms/vm1/boot")
    yield "create", req("POST", "/v1/vms", {
        "name": "a", "vcpus": 2, "sections": [{"kind": "local"}, remote()],
        "cache_bytes": 1 << 20, "hotplug": "dimm", "max_sections": 4, "append": "quiet"})
    yield "create-incoming", req("POST", "/v1/vms", {
        "name": "b", "sections": [{"kind": "local"}], "hotplug": "virtio-mem",
        "incoming": {"listen": "127.0.0.1:4444"},
        "hot_sections": [dict(remote(2), index=0, gpa=4294967296, slot=1, plugged=True)]})
    yield "create-incoming-image", req("POST", "/v1/vms", {
        "name": "c", "sections": [{"kind": "local"}], "incoming": {"listen": "127.0.0.1:4445"},
        "boot": {"firmware": True}, "cloud_init": {"hostname": "c", "user_data": "#x\n"},
        "seed": {"pci": "0000:00:19.0", "size": 1048576}})
    yield "vm-ops", b"".join([
        req("POST", "/v1/vms/vm0/sections", {"section": remote(3)}),
        req("DELETE", "/v1/vms/vm0/sections/3"),
        req("PUT", "/v1/vms/vm0/budget", {"bytes": 4096}),
        req("POST", "/v1/vms/vm0/flush"),
        req("POST", "/v1/vms/vm0/guest", {"command": "balloon 3", "timeout_ms": 100}),
        req("POST", "/v1/vms/vm0/migrate", {"uri": "tcp:127.0.0.1:4444", "max_flush_rounds": 3,
                                            "dirty_threshold_pages": 10,
                                            "hold_at_switchover_ms": 5, "timeout_ms": 2000}),
        req("POST", "/v1/vms/vm1/stop"), req("DELETE", "/v1/vms/vm1")])
    yield "memory-moves", b"".join([
        req("POST", "/v1/vms/vm0/sections/migrate",
            {"phase": "begin", "from": remote(1), "to": remote(2)}),
        req("POST", "/v1/vms/vm0/sections/migrate", {"phase": "abort", "from": remote(1)}),
        req("POST", "/v1/vms/vm0/sections/evacuate",
            {"boot_index": 0, "to": remote(4), "free_on_release": True}),
        req("POST", "/v1/vms/vm0/prefetch",
            {"hot": [{"memnode": 1, "section": 2, "generation": 3, "page": 4, "count": 5}]})])


def orch_input(reqs, script=b""):
    return bytes([len(reqs)]) + b"".join(reqs) + script


def cc_answer(status, body=None):
    b = b"" if body is None else json.dumps(body).encode()
    return struct.pack("<HH", status, len(b)) + b


def orch_api_seeds():
    mem = {"node_id": 11, "kind": "memnode", "addr": "127.0.0.1:7001", "http": "127.0.0.1:8001",
           "section_size": 2 << 20, "sections_total": 64, "sections_free": 64,
           "labels": {"rack": "a"}}
    comp = {"node_id": 21, "kind": "compute", "http": "127.0.0.1:9001", "vcpus": 16,
            "vms": 0, "vm_states": []}
    slot = {"name": "s1", "vcpus": 2, "memory": 4 << 20, "remote_percent": 50,
            "policy": "spread", "constraints": {"compute": {}, "memory": {"rack": "a"}}}
    regs = [req("POST", "/v1/nodes/register", mem), req("POST", "/v1/nodes/register", comp)]
    yield "reads", orch_input([req("GET", "/healthz"), req("GET", "/metrics"),
                               req("GET", "/v1/nodes"), req("GET", "/v1/slots"),
                               req("GET", "/v1/sections"), req("GET", "/v1/events"),
                               req("GET", "/v1/nodes/11"), req("GET", "/v1/slots/x")])
    yield "web-view", orch_input(regs + [
        req("GET", "/v1/events?since=0&limit=5&wait=30"), req("GET", "/v1/events?wait=31"),
        req("GET", "/ui"), req("GET", "/ui/"), req("GET", "/ui/app.js"),
        req("GET", "/ui/../orchestrator.db"), req("POST", "/v1/slots", slot),
        req("GET", "/v1/slots/s1/pager"), req("POST", "/v1/slots/s1/pager")])
    yield "register-heartbeat-drain", orch_input(regs + [
        req("POST", "/v1/nodes/21/heartbeat",
            {"vcpus": 16, "vms": 1, "vm_states": [{"name": "s1", "state": "running"}]}),
        req("POST", "/v1/nodes/11/drain"), req("POST", "/v1/nodes/11/undrain"),
        req("GET", "/v1/nodes/21")])
    vm = {"name": "s1", "state": "running", "sections": []}
    yield "slot-lifecycle", orch_input(regs + [
        req("POST", "/v1/slots", slot), req("GET", "/v1/slots/s1"),
        req("POST", "/v1/slots/s1/resize", {"memory": 6 << 20}),
        req("GET", "/v1/slots/s1/console"),
        req("POST", "/v1/slots/s1/guest", {"command": "ping"}),
        req("DELETE", "/v1/slots/s1")],
        b"\0\1\0\1" + b"\0\2\0\1" + cc_answer(201, vm) + b"\0\3\0\1" + cc_answer(200, vm) +
        cc_answer(200, {"ok": True, "reply": "OK pong"}) + cc_answer(204) + b"\0\0")
    yield "migrations", orch_input(regs + [
        req("POST", "/v1/nodes/register", dict(comp, node_id=22, http="127.0.0.1:9002")),
        req("POST", "/v1/nodes/register", dict(mem, node_id=12, addr="127.0.0.1:7002")),
        req("POST", "/v1/slots", dict(slot, remote_percent=100)),
        req("POST", "/v1/slots/s1/migrate", {"to": 22, "prefetch": True}),
        req("POST", "/v1/slots/s1/migrate-memory", {"from": 11, "to": 12, "section": 0})],
        b"\0\1\0\1" + b"\0\2\0\1" + cc_answer(201, vm) + cc_answer(201, vm) +
        cc_answer(200, {"state": "migrated", "hot": []}) + cc_answer(200, dict(vm)) +
        b"\0\4\0\1" + cc_answer(200, {"phase": "begin"}) + b"\0\x10\0" +
        cc_answer(200, {"phase": "commit"}))
    yield "regions", orch_input(regs + [
        req("POST", "/v1/slots", dict(slot, remote_percent=0)),
        req("POST", "/v1/regions", {"name": "r1", "size_bytes": 2 << 20, "mode": "exclusive"}),
        req("POST", "/v1/regions/r1/attach", {"slot": "s1"}),
        req("POST", "/v1/regions/r1/lock", {"slot": "s1"}),
        req("POST", "/v1/regions/r1/unlock", {"slot": "s1"}),
        req("POST", "/v1/regions/r1/detach", {"slot": "s1"}),
        req("GET", "/v1/regions"), req("DELETE", "/v1/regions/r1")],
        cc_answer(201, vm) + b"\0\2\0\1" +
        cc_answer(201, {"region": "r1", "pci": "0000:00:04.0", "ms": 1}) +
        b"\0\0" + cc_answer(200, {"dropped_pages": 0, "ms": 1}) +
        cc_answer(200, {"flushed_pages": 1, "ms": 1}) + cc_answer(200, {"flushed_pages": 0}) +
        b"\0\0" + b"\0")
    # The catalog starts with device node 31 and volumes v1, v2 (fuzz_orch_api.c).
    disk = {"id": "disk0", "volume": "v1", "devnode": "127.0.0.1:7301", "size": 1 << 20,
            "read_only": False, "serial": "v1", "socket": "/run/x/disk0.sock"}
    yield "disks", orch_input(regs + [
        req("POST", "/v1/slots", dict(slot, remote_percent=0)),
        req("POST", "/v1/slots/s1/disks", {"volume": "v1"}),
        req("POST", "/v1/slots/s1/disks", {"volume": "v2", "read_only": True}),
        req("GET", "/v1/slots/s1"), req("GET", "/v1/slots/s1/disks"),
        req("GET", "/v1/slots/s1/disks/v1"), req("GET", "/v1/volumes/v1"),
        req("DELETE", "/v1/volumes/v1"), req("POST", "/v1/slots/s1/migrate", {"to": 21}),
        req("DELETE", "/v1/slots/s1/disks/v1"), req("DELETE", "/v1/slots/s1/disks/v2"),
        req("DELETE", "/v1/slots/s1")],
        cc_answer(201, vm) + cc_answer(201, disk) +
        cc_answer(409, {"error": {"code": "attach_failed", "message": "8 disks already"}}) +
        b"\x02" + cc_answer(200, {"detached": "disk0"}) + cc_answer(204))
    yield "disks-unknown", orch_input(regs + [
        req("POST", "/v1/slots", dict(slot, remote_percent=0)),
        req("POST", "/v1/slots/s1/disks", {"volume": "v1", "read_only": False}),
        req("DELETE", "/v1/slots/s1/disks/v1"),
        req("POST", "/v1/slots/s1/disks", {"volume": "nope"}),
        req("POST", "/v1/slots/nope/disks", {"volume": "v2"}),
        req("DELETE", "/v1/slots/s1/disks/v2"), req("PUT", "/v1/slots/s1/disks")],
        cc_answer(201, vm) + b"\x01\0\0\0" + b"\x02\0\0\0" + cc_answer(200, {"disks": [disk]}) +
        cc_answer(504, {
            "error": {"code": "detach_failed", "message": "the guest did not let go"}}))
    yield "volumes", orch_input(regs + [
        req("POST", "/v1/volumes", {"name": "v3", "size": "1M"}),
        req("POST", "/v1/volumes", {"name": "v4", "size": 4096, "devnode": 31, "image": True}),
        req("POST", "/v1/volumes", {"name": "v5", "from": "v2", "size": "2M"}),
        req("GET", "/v1/volumes"), req("GET", "/v1/volumes?devnode=31"),
        req("POST", "/v1/volumes/v1/resize", {"size": "2M"}),
        req("POST", "/v1/volumes/v1/resize", {"size": 512, "shrink": True}),
        req("POST", "/v1/volumes/v2/grant", {"holder": 21, "rights": "r", "ttl": 60}),
        req("DELETE", "/v1/volumes/v2"), req("GET", "/v1/nodes/31"), req("GET", "/metrics"),
        req("POST", "/v1/volumes/v9/adopt", {"devnode": 31}),
        req("POST", "/v1/volumes/v1/adopt", {"devnode": 31, "epoch": 2})],
        b"\x00\x01\x02\x03\x04\x05\x06\x07\x00")
    # v2 is also the base volume of image v2, being imported (fuzz_orch_api.c).
    yield "images", orch_input(regs + [
        req("POST", "/v1/images", {"name": "i1", "size": "1M", "format": "raw",
                                   "kernel_size": 4096, "initrd_size": 512,
                                   "cmdline": "root=LABEL=root"}),
        req("GET", "/v1/images"), req("GET", "/v1/images/v2"),
        req("PUT", "/v1/images/v2/disk?offset=0", {"x": 1}),
        req("PUT", "/v1/images/v2/kernel?offset=0", {"x": 1}),
        req("GET", "/v1/images/v2/kernel"), req("POST", "/v1/images/v2/commit"),
        req("POST", "/v1/volumes", {"name": "c1", "from": "v2"}),
        req("POST", "/v1/volumes/v2/resize", {"size": "2M"}),
        req("DELETE", "/v1/volumes/v2"), req("DELETE", "/v1/images/v2"),
        req("GET", "/metrics")],
        b"\x00\x01\x02\x03")


TARGETS = {
    "frame": frame_seeds,
    "memnode": memnode_seeds,
    "devnode": devnode_seeds,
    "vhost": vhost_seeds,
    "mnclient": mnclient_seeds,
    "shim": shim_seeds,
    "qmp": qmp_seeds,
    "guestchan": guestchan_seeds,
    "compute_api": compute_api_seeds,
    "orch_api": orch_api_seeds,
}


def main(names):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    for name in names or TARGETS:
        out = os.path.join(root, name)
        os.makedirs(out, exist_ok=True)
        for seed, data in TARGETS[name]():
            with open(os.path.join(out, seed), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main(sys.argv[1:])
