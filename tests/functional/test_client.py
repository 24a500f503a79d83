# SPDX-License-Identifier: MIT
"""The memory-node client library, through disagg-mnctl, against peers that
misbehave or die.

A small threaded stub memory node (stdlib only, frames from dproto) can be
told to misbehave: hold a different key, fall silent, close mid-reply, send
malformed or unknown replies, answer out of order. Every case must end with
a non-zero exit and a clear message -- never a crash, a hang or data that
silently reads as zeros. The last test kills a real memory node during a
long fill.
"""
import json
import os
import re
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

import dproto as dp
import progs  # noqa: E402
from conftest import find_prog

CLIENT = 7
STUB_ID = 900
SAN_RE = re.compile(r"runtime error:|Sanitizer")
M64 = (1 << 64) - 1


# ---- the fill/verify page pattern (src/tools/toolutil.c), in Python -------

def _splitmix64(x):
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def tool_pattern(seed, memnode, section, page):
    s = _splitmix64(_splitmix64(_splitmix64(seed) ^ memnode) ^ ((section << 32) | page))
    s = s or 1
    out = bytearray(dp.PAGE)
    for i in range(0, dp.PAGE, 8):
        s ^= s >> 12
        s ^= (s << 25) & M64
        s ^= s >> 27
        struct.pack_into("<Q", out, i, (s * 0x2545f4914f6cdd1d) & M64)
    return bytes(out)


# ---- the stub memory node -------------------------------------------------

class Closed(Exception):
    pass


class StubConn:
    def __init__(self, stub, sock):
        self.stub = stub
        self.sock = sock
        self.buf = bytearray()

    def _fill(self, timeout=None):
        if timeout is not None:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return False
        try:
            chunk = self.sock.recv(1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            raise Closed()
        self.buf += chunk
        return True

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def frame(self):
        h = dp.HDR.unpack(self.read(dp.HDR.size))
        return h, self.read(h[4]) if h[4] else b""

    def more_soon(self, timeout=0.05):
        """Is another request (or part of one) about to arrive?"""
        return bool(self.buf) or self._fill(timeout)

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, op, rid, payload=b"", status=0, **kw):
        self.send(dp.hdr(op, len(payload), rid, flags=dp.F_REPLY, status=status, **kw)
                  + payload)


class Stub:
    """A stub memory node on 127.0.0.1. `hook(conn, op, rid, payload)` may
    handle a request itself (return True) to misbehave; otherwise the stub
    serves it correctly from an in-memory store."""

    def __init__(self, key, hook=None, server_key=None, node_id=STUB_ID, pages=256,
                 nsections=4, max_pages=64, max_inflight=64, reorder=False,
                 silent_after=None, store=True):
        self.key = key
        self.server_key = server_key or key
        self.hook = hook
        self.node_id = node_id
        self.section_size = pages * dp.PAGE
        self.nsections = nsections
        self.max_pages = max_pages
        self.max_inflight = max_inflight
        self.reorder = reorder
        self.silent_after = silent_after   # None, "accept", "hello", "auth"
        self.store = store
        self.pages = {}                    # (section, page) -> bytes
        self.sections = {}                 # section -> (generation, owner)
        self.next_gen = 1
        self.errors = []                   # problems the stub saw in the client's frames
        self.max_batch = 0                 # most requests seen in flight at once
        self.reordered = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.addr = "%s:%d" % self.lsock.getsockname()
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.lsock.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(StubConn(self, s),), daemon=True).start()

    def _silence(self, c):
        """Keep the connection open and say nothing until the peer leaves."""
        try:
            while True:
                c.buf.clear()
                c._fill()
        except Closed:
            pass

    def _serve(self, c):
        try:
            self._session(c)
        except (Closed, ConnectionError):
            pass                         # the client left, possibly mid-reply
        except Exception as e:  # noqa: BLE001 -- a stub bug must show up in the test
            if not self.stopping:
                self.errors.append(f"stub: {e!r}")
        finally:
            c.sock.close()

    def _session(self, c):
        if self.silent_after == "accept":
            return self._silence(c)
        h, p = c.frame()
        if h[2] != dp.OP["HELLO"] or len(p) != dp.HELLO_REQ.size:
            self.errors.append(f"expected HELLO, got {h}")
            return
        vmin, vmax, feats, cid, cnonce = dp.HELLO_REQ.unpack(p)
        if self.hook and self.hook(c, h[2], h[5], p):
            return self._silence(c)
        snonce = os.urandom(32)
        mac = dp.mac(self.server_key, b"disagg-hello-srv", cnonce, snonce,
                     struct.pack("<Q", self.node_id), struct.pack("<Q", cid))
        c.reply(dp.OP["HELLO"], h[5], dp.HELLO_REP.pack(
            dp.VERSION, 0, feats & 3, self.node_id, self.max_pages, self.max_inflight,
            self.section_size, self.nsections, 0, snonce, mac))
        if self.silent_after == "hello":
            return self._silence(c)
        h, p = c.frame()
        want = dp.mac(self.key, b"disagg-hello-cli", snonce, cnonce,
                      struct.pack("<Q", cid), struct.pack("<Q", self.node_id))
        # disagg-mnctl acts as the orchestrator: the MAC, then its proof.
        if h[2] != dp.OP["AUTH"] or p[:32] != want or len(p) != 96 or \
                not dp.orch_proof_ok(self.key.grant, p[32:], cnonce, snonce, cid, self.node_id):
            self.errors.append("bad AUTH from the client")
            c.reply(h[2], h[5], status=dp.ST["NOAUTH"])
            return
        c.reply(dp.OP["AUTH"], h[5])
        if self.silent_after == "auth":
            return self._silence(c)
        while True:
            batch = [c.frame()]
            if self.reorder:
                while c.more_soon():
                    batch.append(c.frame())
                self.max_batch = max(self.max_batch, len(batch))
                if len(batch) > 1:
                    self.reordered += 1
                batch.reverse()
            for h, p in batch:
                magic, ver, op, flags, length, rid, status, rsvd = h
                if magic != dp.MAGIC or ver != dp.VERSION or flags or status or rsvd:
                    self.errors.append(f"bad request header {h}")
                if self.hook and self.hook(c, op, rid, p):
                    continue
                self.serve(c, op, rid, p)

    # -- correct service ------------------------------------------------------
    def check_grant(self, g, right):
        mem, holder, sec, gen, rights, rsvd, expiry, sig = dp.GRANT.unpack(g)
        ok = (dp.grant_signed_by(self.key.grant, g) and mem == self.node_id
              and holder == CLIENT and rights & right and (expiry == 0 or expiry > time.time()))
        if not ok:
            self.errors.append(f"bad grant {dp.GRANT.unpack(g)}")
        return sec

    def extents(self, p):
        n = struct.unpack_from("<I", p, dp.GRANT.size)[0]
        ext = [struct.unpack_from("<II", p, dp.GRANT.size + 8 + 8 * i) for i in range(n)]
        return ext, dp.GRANT.size + 8 + 8 * n

    def serve(self, c, op, rid, p):
        if op == dp.OP["PING"]:
            c.reply(op, rid)
        elif op == dp.OP["STATS"]:
            c.reply(op, rid, dp.STATS.pack(self.node_id, self.section_size, self.nsections,
                                           len(self.sections), 1, 0, 0, 0, 1))
        elif op == dp.OP["SECTION_ALLOC"]:
            owner = struct.unpack_from("<Q", p)[0]
            free = [s for s in range(self.nsections) if s not in self.sections]
            if not free:
                return c.reply(op, rid, status=dp.ST["NOSPC"])
            self.next_gen += 1
            self.sections[free[0]] = (self.next_gen, owner)
            c.reply(op, rid, dp.SECTION.pack(free[0], self.next_gen, owner))
        elif op == dp.OP["SECTION_LIST"]:
            ents = sorted(self.sections.items())
            c.reply(op, rid, struct.pack("<II", len(ents), self.nsections) +
                    b"".join(dp.SECTION.pack(s, g, o) for s, (g, o) in ents))
        elif op == dp.OP["WRITE"]:
            sec = self.check_grant(p[:dp.GRANT.size], dp.R_WRITE)
            ext, off = self.extents(p)
            for page, count in ext:
                for i in range(count):
                    if self.store:
                        self.pages[(sec, page + i)] = p[off:off + dp.PAGE]
                    off += dp.PAGE
            if off != len(p):
                self.errors.append("WRITE payload length")
            c.reply(op, rid)
        elif op == dp.OP["READ"]:
            c.reply(op, rid, self.read_data(p))
        else:
            c.reply(op, rid, status=dp.ST["NOTSUP"])

    def read_data(self, p):
        sec = self.check_grant(p[:dp.GRANT.size], dp.R_READ)
        ext, _ = self.extents(p)
        return b"".join(self.pages.get((sec, page + i), bytes(dp.PAGE))
                        for page, count in ext for i in range(count))


@pytest.fixture(autouse=True)
def plaintext_fabric():
    """The client library against scripted peers: plaintext (the fabric's
    TLS has its own tests, test_fabric_tls.py)."""
    progs.CURRENT = None
    yield


# ---- running disagg-mnctl ---------------------------------------------------

def mnctl(addr, keyfile, *args, timeout=20, node_id=CLIENT, limit=None):
    """Run disagg-mnctl; a hang fails the test, and so does a crash or a
    sanitizer report. Returns (CompletedProcess, seconds)."""
    argv = [find_prog("disagg-mnctl"), "--addr", addr, "--key", keyfile,
            "--node-id", str(node_id), *progs.fabric_args(node_id, "orchestrator"),
            *map(str, args)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} hung for {timeout} s")
    secs = time.monotonic() - t0
    assert p.returncode >= 0, f"{args} died of signal {-p.returncode}:\n{p.stderr}"
    assert not SAN_RE.search(p.stderr), p.stderr[-4000:]
    if limit is not None:
        assert secs < limit, f"{args} took {secs:.1f} s (limit {limit} s)"
    return p, secs


def fails(addr, keyfile, *args, match, limit=10, **kw):
    """mnctl must fail (exit 1), quickly, with an error matching `match`."""
    p, secs = mnctl(addr, keyfile, *args, limit=limit, **kw)
    assert p.returncode == 1, (args, p.returncode, p.stdout, p.stderr)
    assert re.search(match, p.stderr, re.I), (args, p.stderr)
    assert "mismatches\": 0" not in p.stdout, p.stdout
    return p


def ok(addr, keyfile, *args, **kw):
    p, _ = mnctl(addr, keyfile, *args, **kw)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


@pytest.fixture
def stubs(key):
    made = []

    def make(**kw):
        s = Stub(key, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()
    for s in made:
        assert not s.errors, s.errors


# ---- handshake --------------------------------------------------------------

def test_server_without_the_key_is_rejected(stubs, keyfile):
    s = stubs(server_key=os.urandom(32))
    fails(s.addr, keyfile, "ping", match=r"cluster key", limit=5)


def test_nothing_listening(keyfile):
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        addr = "%s:%d" % ls.getsockname()
    fails(addr, keyfile, "ping", match=r"cannot connect.*refused", limit=5)


@pytest.mark.parametrize("addr", ["no-port", "127.0.0.1:", "127.0.0.1:99999",
                                  "no.such.host.invalid:1"])
def test_bad_address(keyfile, addr):
    fails(addr, keyfile, "ping", match=r"cannot connect", limit=10)


@pytest.mark.parametrize("when", ["accept", "hello", "auth"])
def test_silent_server_times_out(stubs, keyfile, when):
    """Silence during the handshake or after it: the --timeout bounds the wait."""
    s = stubs(silent_after=when)
    p = fails(s.addr, keyfile, "--timeout", "1000", "ping", match=r"timed out", limit=4)
    assert p.stdout == ""


def test_silent_server_default_timeout(stubs, keyfile):
    """Without --timeout the library's default (5 s) applies."""
    s = stubs(silent_after="auth")
    _, secs = mnctl(s.addr, keyfile, "stats", limit=9)
    assert secs >= 4.5


def test_silent_server_during_fill_and_verify(stubs, keyfile):
    s = stubs(silent_after="auth")
    fails(s.addr, keyfile, "--timeout", "1000", "fill", 0, 1, "--seed", 1,
          match=r"timed out", limit=5)
    fails(s.addr, keyfile, "--timeout", "1000", "verify", 0, 1, "--seed", 1,
          match=r"timed out", limit=5)


def _hello_hook(mutate):
    def hook(c, op, rid, p):
        if op != dp.OP["HELLO"]:
            return False
        mutate(c, rid, p)
        return True
    return hook


@pytest.mark.parametrize("case", ["close", "bad_magic", "wrong_id", "short", "status",
                                  "unknown_status", "garbage"])
def test_broken_hello_reply(stubs, keyfile, case):
    def mutate(c, rid, p):
        body = bytes(dp.HELLO_REP.size)
        if case == "close":
            c.sock.shutdown(socket.SHUT_RDWR)
        elif case == "bad_magic":
            c.send(dp.hdr(1, len(body), rid, flags=dp.F_REPLY, magic=0x12345678) + body)
        elif case == "wrong_id":
            c.reply(1, rid + 1, body)
        elif case == "short":
            c.reply(1, rid, body[:50])
        elif case == "status":
            c.reply(1, rid, status=dp.ST["VERSION"])
        elif case == "unknown_status":
            c.reply(1, rid, status=77)
        elif case == "garbage":
            c.send(os.urandom(200))
    s = stubs(hook=_hello_hook(mutate))
    fails(s.addr, keyfile, "--timeout", "2000", "ping",
          match=r"cannot connect.*(pipe|reset|bad message|protocol|timed out)", limit=5)


# ---- replies after the handshake ------------------------------------------------

def _read_hook(action):
    """Misbehave on the first READ only; serve the rest."""
    state = {"done": False}

    def hook(c, op, rid, p):
        if op != dp.OP["READ"] or state["done"]:
            return False
        state["done"] = True
        data = c.stub.read_data(p)
        action(c, op, rid, data)
        return True
    return hook


def _close(c):
    c.sock.shutdown(socket.SHUT_RDWR)
    raise Closed()


READ_FAULTS = {
    "close_before_reply": lambda c, op, rid, d: _close(c),
    "close_after_header": lambda c, op, rid, d: (
        c.send(dp.hdr(op, len(d), rid, flags=dp.F_REPLY)), _close(c)),
    "close_halfway": lambda c, op, rid, d: (
        c.send(dp.hdr(op, len(d), rid, flags=dp.F_REPLY) + d[:len(d) // 2 + 100]), _close(c)),
    "short_reply": lambda c, op, rid, d: c.reply(op, rid, d[:-dp.PAGE]),
    "long_reply": lambda c, op, rid, d: c.reply(op, rid, d + bytes(dp.PAGE)),
    "empty_ok_reply": lambda c, op, rid, d: c.reply(op, rid),
    "bad_magic": lambda c, op, rid, d: c.send(
        dp.hdr(op, len(d), rid, flags=dp.F_REPLY, magic=0x31475345) + d),
    "bad_version": lambda c, op, rid, d: c.send(
        dp.hdr(op, len(d), rid, flags=dp.F_REPLY, version=9) + d),
    "no_reply_flag": lambda c, op, rid, d: c.send(dp.hdr(op, len(d), rid) + d),
    "unknown_flags": lambda c, op, rid, d: c.send(
        dp.hdr(op, len(d), rid, flags=dp.F_REPLY | 8) + d),
    "rsvd_set": lambda c, op, rid, d: c.send(
        dp.hdr(op, len(d), rid, flags=dp.F_REPLY, rsvd=1) + d),
    "unknown_id": lambda c, op, rid, d: c.reply(op, rid + 12345, d),
    "id_zero": lambda c, op, rid, d: c.reply(op, 0, d),
    "wrong_opcode": lambda c, op, rid, d: c.reply(dp.OP["WRITE"], rid, d),
    "invalid_opcode": lambda c, op, rid, d: c.reply(0, rid, d),
    "unknown_status": lambda c, op, rid, d: c.reply(op, rid, d, status=99),
    "huge_len": lambda c, op, rid, d: c.send(
        dp.hdr(op, 0xFFFFFFFF, rid, flags=dp.F_REPLY) + d),
    "error_with_huge_text": lambda c, op, rid, d: c.send(
        dp.hdr(op, 1 << 20, rid, flags=dp.F_REPLY, status=dp.ST["IO"]) + bytes(1 << 16)),
    "duplicate_reply": lambda c, op, rid, d: (c.reply(op, rid, d), c.reply(op, rid, d)),
    "garbage": lambda c, op, rid, d: c.send(os.urandom(4096)),
}

READ_FAULT_MSG = r"read: (broken pipe|connection reset|bad message|protocol|value too large|" \
                 r"timed out)"


@pytest.mark.parametrize("pages", [1, 300], ids=["one_page", "pipelined"])
@pytest.mark.parametrize("fault", sorted(READ_FAULTS))
def test_broken_read_reply(stubs, keyfile, fault, pages):
    s = stubs(hook=_read_hook(READ_FAULTS[fault]), pages=1024)
    ok(s.addr, keyfile, "fill", 0, 1, "--seed", 5, "--pages", pages)
    if fault == "duplicate_reply" and pages == 1:
        # The duplicate comes after the last reply the client waits for:
        # it cannot see it, and the data it got is right.
        p = ok(s.addr, keyfile, "verify", 0, 1, "--seed", 5, "--pages", pages)
        assert json.loads(p.stdout) == {"pages": 1, "mismatches": 0}
        return
    fails(s.addr, keyfile, "--timeout", "3000", "verify", 0, 1, "--seed", 5, "--pages", pages,
          match=READ_FAULT_MSG, limit=8)
    # The node itself is fine: the same verify against it passes.
    ok(s.addr, keyfile, "verify", 0, 1, "--seed", 5, "--pages", pages)


def test_error_reply_with_short_text_is_an_error(stubs, keyfile):
    """Error replies may carry a short text; the status still decides."""
    s = stubs()
    for pages in (1, 100):
        s.hook = _read_hook(lambda c, op, rid, d: c.reply(
            op, rid, b"page 7 is outside", status=dp.ST["RANGE"]))
        fails(s.addr, keyfile, "verify", 0, 1, "--zero", "--pages", pages,
              match=r"read: numerical result out of range")


def test_server_that_drops_writes_is_caught_by_verify(stubs, keyfile):
    """A node that acknowledges writes but keeps nothing reads back zeros:
    verify must report the mismatch, not pass."""
    s = stubs(store=False)
    ok(s.addr, keyfile, "fill", 1, 1, "--seed", 3, "--pages", 20)
    p, _ = mnctl(s.addr, keyfile, "verify", 1, 1, "--seed", 3, "--pages", 20)
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"pages": 20, "mismatches": 20}
    assert "mismatch" in p.stderr


def test_out_of_order_replies(stubs, keyfile):
    """Pipelined fill/verify against a node answering each batch backwards."""
    s = stubs(reorder=True, pages=1024, max_pages=16)
    ok(s.addr, keyfile, "fill", 2, 1, "--seed", 11)
    assert s.reordered > 0 and s.max_batch > 1, (s.reordered, s.max_batch)
    # What landed at the stub is the pattern, page by page, in the right place.
    assert len(s.pages) == 1024
    for page in (0, 1, 15, 16, 17, 500, 1023):
        assert s.pages[(2, page)] == tool_pattern(11, STUB_ID, 2, page), page
    n = s.reordered
    p = ok(s.addr, keyfile, "verify", 2, 1, "--seed", 11)
    assert json.loads(p.stdout) == {"pages": 1024, "mismatches": 0}
    assert s.reordered > n
    # A changed page is found whatever the order.
    s.pages[(2, 700)] = bytes(dp.PAGE)
    p, _ = mnctl(s.addr, keyfile, "verify", 2, 1, "--seed", 11)
    assert p.returncode == 1 and json.loads(p.stdout)["mismatches"] == 1
    assert "first at page 700" in p.stderr


def _status_hook(opcode, status):
    def hook(c, op, rid, p):
        if op != opcode:
            return False
        c.reply(op, rid, status=status)
        return True
    return hook


@pytest.mark.parametrize("cmd,opcode,status,match", [
    (["verify", 0, 1, "--zero"], "READ", "GRANT", r"grant"),
    (["fill", 0, 1, "--seed", 1], "WRITE", "GRANT", r"grant"),
    (["fill", 0, 1, "--seed", 1], "WRITE", "RIGHTS", r"permi|not permitted|right"),
    (["verify", 0, 1, "--zero"], "READ", "STALE", r"stale"),
    (["verify", 0, 1, "--zero"], "READ", "NOENT", r"no such"),
    (["verify", 0, 1, "--zero"], "READ", "RANGE", r"out of range"),
    (["alloc"], "SECTION_ALLOC", "NOSPC", r"alloc: no space"),
    (["free", 0, 1], "SECTION_FREE", "STALE", r"free: .*stale"),
    (["stats"], "STATS", "BUSY", r"stats: .*busy"),
    (["list"], "SECTION_LIST", "NOAUTH", r"list: permission denied"),
    (["ping"], "PING", "INTERNAL", r"ping: "),
    (["cas", 0, 1, "--offset", 0, "--expect", 0, "--value", 1], "CAS", "NOTSUP",
     r"cas: operation not supported"),
    (["fadd", 0, 1, "--offset", 0, "--value", 1], "FADD", "RIGHTS", r"fadd: .*not permitted"),
])
def test_error_status_messages(stubs, keyfile, cmd, opcode, status, match):
    s = stubs(hook=_status_hook(dp.OP[opcode], dp.ST[status]))
    p = fails(s.addr, keyfile, *cmd, match=match)
    assert p.stdout == ""


def test_list_that_makes_no_progress_ends(stubs, keyfile):
    """A node whose `next` never moves on must not make `list` loop for ever."""
    def hook(c, op, rid, p):
        if op != dp.OP["SECTION_LIST"]:
            return False
        start = struct.unpack_from("<I", p)[0]
        c.reply(op, rid, struct.pack("<II", 1, start) + dp.SECTION.pack(0, 1, 2))
        return True
    s = stubs(hook=hook)
    p, _ = mnctl(s.addr, keyfile, "list", limit=5)
    assert p.returncode in (0, 1)
    if p.returncode == 0:
        json.loads(p.stdout)


@pytest.mark.parametrize("bad", ["count_over_len", "count_over_max", "short"])
def test_malformed_list_reply(stubs, keyfile, bad):
    def hook(c, op, rid, p):
        if op != dp.OP["SECTION_LIST"]:
            return False
        if bad == "count_over_len":
            body = struct.pack("<II", 3, 4) + dp.SECTION.pack(0, 1, 2)
        elif bad == "count_over_max":
            body = struct.pack("<II", 5000, 4) + bytes(16 * 5000)
        else:
            body = b"\1\0\0"
        c.reply(op, rid, body)
        return True
    s = stubs(hook=hook)
    fails(s.addr, keyfile, "list", match=r"list: (bad message|value too large)")


def test_hello_with_zero_limits_is_refused(stubs, keyfile):
    s = stubs(max_pages=0)
    fails(s.addr, keyfile, "ping", match=r"cannot connect.*bad message")


def test_small_server_limits_are_respected(stubs, keyfile):
    """max_pages 1 and max_inflight 1: fill/verify still work, one page a request."""
    s = stubs(max_pages=1, max_inflight=1, pages=40, reorder=True)
    ok(s.addr, keyfile, "fill", 3, 1, "--seed", 9)
    ok(s.addr, keyfile, "verify", 3, 1, "--seed", 9)
    assert s.max_batch == 1


# ---- a real memory node dies during a fill --------------------------------------

def test_memnode_killed_during_fill(memnodes, keyfile, key, tmp_path):
    img = tmp_path / "pool.img"
    args = dict(pool="1G", section="512M", backing=f"file:{img}", node_id=611)
    d = memnodes.start(**args)
    sec = json.loads(ok(d.addr, keyfile, "alloc").stdout)
    sg = (sec["section"], sec["generation"])
    ok(d.addr, keyfile, "fill", *sg, "--seed", 21, "--pages", 256)

    # Now a long fill of the rest of the section, killed while it runs.
    exe = find_prog("disagg-mnctl")
    fill = subprocess.Popen([exe, "--addr", d.addr, "--key", keyfile, "--node-id",
                             str(CLIENT), *progs.fabric_args(CLIENT, "orchestrator"), "fill", *map(str, sg), "--seed", "22",
                             "--first", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with dp.Conn(d.addr).login(key, CLIENT) as c:
        base = c.stats()[7]
        assert dp.wait_for(lambda: c.stats()[7] > base + (4 << 20), timeout=20, step=0.005)
    assert fill.poll() is None, "the fill ended before the kill: make it longer"
    d.kill9()
    t0 = time.monotonic()
    try:
        out, err = fill.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        fill.kill()
        fill.communicate()
        pytest.fail("mnctl hung after its memory node died")
    assert time.monotonic() - t0 < 15
    assert fill.returncode == 1, (fill.returncode, err)
    assert not SAN_RE.search(err), err
    assert re.search(r"write: (broken pipe|connection reset)", err, re.I), err

    # Connecting to the dead node fails at once.
    fails(d.addr, keyfile, "ping", match=r"cannot connect.*refused", limit=5)

    # What was acknowledged before the long fill survives a restart.
    d2 = memnodes.start(**args)
    p = ok(d2.addr, keyfile, "verify", *sg, "--seed", 21, "--pages", 256)
    assert json.loads(p.stdout) == {"pages": 256, "mismatches": 0}
