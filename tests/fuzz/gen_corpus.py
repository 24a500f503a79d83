#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz_frame (tests/fuzz/corpus/frame/).

Each seed starts with the mode byte fuzz_frame.c expects, followed by a
valid input for that mode, so the fuzzer starts from inputs that pass the
decoders and mutates from there. Rerun after changing the wire format:
    tests/fuzz/gen_corpus.py tests/fuzz/corpus/frame
"""
import os
import struct
import sys

MAGIC, VERSION = 0x31475344, 1
MODE_FRAME, MODE_IO_READ, MODE_IO_WRITE, MODE_FIXED, MODE_GRANT_HEX, MODE_GRANT_RAW = range(6)
OP = dict(HELLO=1, AUTH=2, PING=3, ALLOC=4, FREE=5, LIST=6, READ=7, WRITE=8, CAS=9,
          FADD=10, COPY=11, STATS=12, FENCE=13)
PAGE = 4096


def hdr(op, payload, reply=False, status=0, req_id=1, version=VERSION):
    return struct.pack("<IHHIIQII", MAGIC, version, op, 1 if reply else 0, len(payload),
                       req_id, status, 0) + payload


def grant(memnode=1, holder=2, section=3, gen=1, rights=3, expiry=0, mac=b"\x5a" * 32,
          epoch=0):
    return struct.pack("<QQIIIIQ", memnode, holder, section, gen, rights, epoch, expiry) + mac


def io(extents, pages=0):
    body = grant() + struct.pack("<II", len(extents), 0)
    body += b"".join(struct.pack("<II", p, c) for p, c in extents)
    return body + bytes((i * 7) & 0xFF for i in range(pages * PAGE))


def seeds():
    yield "frame-ping", bytes([MODE_FRAME]) + hdr(OP["PING"], b"")
    yield "frame-hello", bytes([MODE_FRAME]) + hdr(
        OP["HELLO"], struct.pack("<HHIQ", 1, 1, 3, 42) + b"\x01" * 32)
    yield "frame-hello-rep", bytes([MODE_FRAME]) + hdr(
        OP["HELLO"], struct.pack("<HHIQIIQII", 1, 0, 3, 7, 256, 256, 128 << 20, 64, 0)
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
        OP["COPY"], struct.pack("<II", 3, 1) + grant() + b"127.0.0.1:7001".ljust(256, b"\0"))
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


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                            "corpus", "frame"))
