# SPDX-License-Identifier: MIT
"""An independent Python implementation of the disagg wire protocol.

Written from docs/protocol.md, not from the C code, so the functional tests
also check that the two agree. The standard library, and the cryptography
package for Ed25519 (grants and the orchestrator's proof).

Keys: a test's cluster key is a `Keys` object, the key's bytes (HMAC, HELLO)
that also carry the grant key's private half (`.grant`): with it a test
mints grants and proves the orchestrator's capability, as the
orchestrator does. `grant_files(keyfile)` makes (once) the grant key pair
beside a cluster key file and returns the paths of its two halves.
"""
import hashlib
import hmac
import os
import pathlib
import socket
import ssl
import struct
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MAGIC = 0x31475344
VERSION = 2
HDR = struct.Struct("<IHHIIQII")
PAGE = 4096

OP = dict(HELLO=1, AUTH=2, PING=3, SECTION_ALLOC=4, SECTION_FREE=5,
          SECTION_LIST=6, READ=7, WRITE=8, CAS=9, FADD=10, COPY=11, STATS=12,
          FENCE=13, REVOKE=14, DIR_ATTACH=15, DIR_READ=16, DIR_WRITE=17,
          DIR_RECALL=18, DIR_RECALL_ACK=19, DIR_DETACH=20, WRITE_DIFF=21,
          DIR_RECLAIM=22,
          # device nodes
          BLK_OPEN=23, BLK_READ=24, BLK_WRITE=25, BLK_FLUSH=26, BLK_DISCARD=27,
          BLK_WRITE_ZEROES=28, BLK_CLOSE=29, VOL_CREATE=30, VOL_DELETE=31,
          VOL_RESIZE=32, VOL_CLONE=33, VOL_STAT=34, VOL_LIST=35)
F_REPLY = 1
ST = dict(OK=0, BADMSG=1, VERSION=2, NOAUTH=3, GRANT=4, RIGHTS=5, NOENT=6,
          RANGE=7, NOSPC=8, TOOBIG=9, BUSY=10, IO=11, NOTSUP=12, STALE=13,
          INTERNAL=14, FENCED=15, DENIED=16, DIR_DETACHED=17, DIR_FULL=18,
          DIR_GRACE=19, EXIST=20)
ST_NAME = {v: k for k, v in ST.items()}
R_READ, R_WRITE, R_FREE = 1, 2, 4
FEAT_ATOMICS, FEAT_COPY, FEAT_FENCE, FEAT_REVOKE, FEAT_DIR = 1, 2, 4, 8, 16
FEAT_DIR_TAKE = 32                     # DIR_READ with REQ_TAKE (migratory pages)
FEAT_DIR_TAG = 64                      # directory holders (node, tag)
FEAT_DIFF = 128                        # WRITE_DIFF (release regions)
FEAT_DIR_RECLAIM = 256                 # DIR_RECLAIM, DIR_GRACE (a restarted directory)
FEAT_BLK = 512                         # a device node: BLK_* and VOL_*
FEAT_DIR_CONN = 1024                   # a hint: directory traffic, served on the node's worker 0
FEAT_DIR_QUIET = 2048                  # DIR_RECALL_ACK with QUIET: no reply unless refused
FEAT_DIR_VERSION = 4096                # DIR_RECALL carries the page's ownership version
FEAT_DIFF_ONCE = 8192                  # WRITE_DIFF with ONCE: a frame applied at most once
# What a Conn offers by default: not the directory's REQ_TAKE and holder
# tags (tests of the plain directory frames rely on them being refused);
# FEAT_EVERY is every bit this client knows.
FEAT_ALL = FEAT_ATOMICS | FEAT_COPY | FEAT_FENCE | FEAT_REVOKE | FEAT_DIR | FEAT_DIFF
FEAT_EVERY = (FEAT_ALL | FEAT_DIR_TAKE | FEAT_DIR_TAG | FEAT_DIR_RECLAIM | FEAT_DIR_QUIET |
              FEAT_DIR_VERSION | FEAT_DIFF_ONCE)
# The coherence directory (docs/protocol.md, "Coherence directory").
DOWNGRADE, INVALIDATE = 1, 2          # recall modes
HAD_COPY, DIRTY, OWNED = 1, 2, 4      # DIR_WRITE reply flag, DIR_RECALL_ACK flag, DIR_READ (TAKE) reply flag
QUIET = 8                              # DIR_RECALL_ACK flag (FEAT_DIR_QUIET): no reply if taken
REQ_TAKE = 1                           # DIR_REQ flag: a read that may take ownership
REQ_DONE = 2                           # DIR_RECLAIM flag: no page, the holder is done
REQ_RECALLED = 4                       # DIR_RECLAIM flag: the page of an unconfirmed recall answer
REQ_VERSION = 8                        # DIR_RECLAIM flag (RECALLED): a DIR_VERSION precedes the page
DIR_MAX_HOLDERS = 16

GRANT = struct.Struct("<QQIIIIQ64s")      # 104 bytes
HELLO_REQ = struct.Struct("<HHIQ32s")     # 48
HELLO_REP = struct.Struct("<HHIQIIQII32s32s")  # 104
SECTION = struct.Struct("<IIQ")           # 16
STATS = struct.Struct("<QQIIQQQQQ")       # 64
DIR_REQ = struct.Struct("<104sIHH")       # 112: grant, page, flags, tag
DIR_WHO = struct.Struct("<HHI")           # 8 after DIR_ATTACH/DETACH's grant: tag, rsvd
DIR_WRITE_REP = struct.Struct("<II")      # 8: flags, rsvd (+ the page unless HAD_COPY)
DIR_RECALL = struct.Struct("<QIIIIII")    # 32: seq, section, generation, page, mode, grants, version
DIR_VERSION = struct.Struct("<II")        # 8 (DIR_RECLAIM with REQ_VERSION): version, rsvd
DIR_ACK = struct.Struct("<QII")           # 16: seq, flags, rsvd (+ the page if DIRTY)
# Device nodes (docs/protocol.md, "Device nodes").
BLK_OPEN_REQ = struct.Struct("<104s64sII")  # 176: grant, name, flags, rsvd
BLK_OPEN_REP = struct.Struct("<IIQ")        # 16: handle, flags, size
BLK_IO = struct.Struct("<IIQ")              # 16: handle, len, offset (+ data for WRITE)
BLK_HANDLE = struct.Struct("<II")           # 8: handle, rsvd
VOL_REQ = struct.Struct("<64sQII64s")       # 144: name, size, flags, rsvd, src
VOLUME = struct.Struct("<64sQQQII")         # 96: name, size, allocated, key, users, flags
BLK_RDONLY = 1
BLK_TAKEOVER = 2
VOL_SHRINK = VOL_REFLINKED = 1
VOL_BLOCK = 2
SECTOR = 512
BLK_MAX_IO = 1 << 20


def volume_grant(key, devnode_id, holder_id, vkey, rights=R_READ | R_WRITE, expiry=0, epoch=0):
    """A grant for the volume of key `vkey` (section = low half, generation = high),
    of ownership epoch `epoch`."""
    return mint_grant(key, devnode_id, holder_id, vkey & 0xffffffff, vkey >> 32, rights,
                      expiry, epoch)


def unpack_volume(b):
    name, size, alloc, vkey, users, flags = VOLUME.unpack(b)
    return dict(name=name.rstrip(b"\0").decode(), size=size, allocated=alloc, key=vkey,
                users=users, reflinked=bool(flags & VOL_REFLINKED),
                kind="block" if flags & VOL_BLOCK else "file")


class ProtoError(Exception):
    def __init__(self, status, op=""):
        self.status = status
        super().__init__(f"{op}: status {ST_NAME.get(status, status)}")


def mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class Keys(bytes):
    """A cluster key (its bytes) with the grant key's private half (.grant)."""

    def __new__(cls, cluster, grant=None):
        k = super().__new__(cls, cluster)
        k.grant = grant
        return k


def grant_files(keyfile):
    """(private, public) paths of the grant key pair beside `keyfile`,
    created (PEM, the private half 0600) if missing."""
    d = pathlib.Path(keyfile).parent
    priv, pub = d / "grant.key", d / "grant.pub"
    if not priv.exists():
        k = Ed25519PrivateKey.generate()
        priv.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        priv.chmod(0o600)
        pub.write_bytes(k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(priv), str(pub)


def load_keys(keyfile):
    """The Keys of a cluster key file and the grant key beside it."""
    priv, _ = grant_files(keyfile)
    g = serialization.load_pem_private_key(pathlib.Path(priv).read_bytes(), None)
    return Keys(pathlib.Path(keyfile).read_bytes(), g)


def grant_key_of(key):
    """The Ed25519 private key to sign with: `key` itself, or its .grant."""
    return key if isinstance(key, Ed25519PrivateKey) else key.grant


def mint_grant(key, memnode_id, holder_id, section, generation, rights,
               expiry=0, epoch=0):
    """A grant signed with the grant key (Keys or Ed25519PrivateKey);
    `epoch` is the holder's ownership epoch of the section."""
    body = GRANT.pack(memnode_id, holder_id, section, generation, rights, epoch,
                      expiry, b"\0" * 64)[:40]
    return body + grant_key_of(key).sign(b"disagg-grant" + body)


def grant_signed_by(pub, grant):
    """Does the grant's signature verify with public key `pub`?"""
    if isinstance(pub, Ed25519PrivateKey):
        pub = pub.public_key()
    try:
        pub.verify(grant[40:104], b"disagg-grant" + grant[:40])
        return True
    except Exception:
        return False


def orch_proof(key, cnonce, snonce, client_id, server_id):
    """The orchestrator's AUTH proof (docs/protocol.md)."""
    return grant_key_of(key).sign(b"disagg-orch" + snonce + cnonce +
                                  struct.pack("<QQ", client_id, server_id))


def orch_proof_ok(pub, proof, cnonce, snonce, client_id, server_id):
    if isinstance(pub, Ed25519PrivateKey):
        pub = pub.public_key()
    try:
        pub.verify(proof, b"disagg-orch" + snonce + cnonce +
                   struct.pack("<QQ", client_id, server_id))
        return True
    except Exception:
        return False


def hdr(op, length, req_id, flags=0, status=0, version=VERSION,
        magic=MAGIC, rsvd=0):
    return HDR.pack(magic, version, op, flags, length, req_id, status, rsvd)


def tls_context(ca, cert=None, key=None):
    """A TLS 1.3 client context for the fabric: the server's certificate
    must be of CA `ca`; (cert, key) is ours, if any."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class Conn:
    """One connection; synchronous unless the caller uses send()/recv().

    TLS: `tls` is an ssl.SSLContext, False for plaintext, or None for the
    running test's fabric (progs.CURRENT, plaintext if none). With the
    fabric, the handshake happens before the first frame, with a
    certificate for the node id HELLO names (orchestrator role when the key
    carries the grant key), or `tls_id`/`tls_role` if given."""

    def __init__(self, addr, timeout=10.0, tls=None, tls_id=None, tls_role=None):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_id = 1
        self.info = None
        self._tls = tls
        self._tls_id = tls_id
        self._tls_role = tls_role
        self._wrapped = False
        if tls is None:
            import progs
            self._fabric = progs.CURRENT
        else:
            self._fabric = None

    def _ensure_tls(self):
        if self._wrapped:
            return
        self._wrapped = True
        ctx = self._tls
        if ctx is None and self._fabric is not None:
            cert, key = self._fabric.cert(self._tls_id or 999, self._tls_role or "compute")
            ctx = tls_context(self._fabric.ca(), cert, key)
        if ctx:
            self.sock = ctx.wrap_socket(self.sock)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data):
        self._ensure_tls()
        self.sock.sendall(data)

    def send(self, op, payload=b"", **kw):
        if (not self._wrapped and self._tls_id is None and op == OP["HELLO"] and
                len(payload) == HELLO_REQ.size):
            # A HELLO built by the test itself: the certificate of the node
            # id it names, with the most rights (the layers under test are
            # the MAC and the orchestrator's proof).
            self._tls_id = HELLO_REQ.unpack(payload)[3] or 999
            self._tls_role = self._tls_role or "orchestrator"
        self._ensure_tls()
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(hdr(op, len(payload), rid, **kw) + payload)
        return rid

    def _read(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed the connection")
            buf += chunk
        return bytes(buf)

    def recv(self):
        """Returns (req_id, status, payload, opcode)."""
        rid, status, payload, op, flags = self.recv_frame()
        assert flags & F_REPLY, (op, flags)
        return rid, status, payload, op

    def recv_frame(self):
        """Any frame, a request of the node's (DIR_RECALL) too:
        (req_id, status, payload, opcode, flags)."""
        h = self._read(HDR.size)
        magic, ver, op, flags, length, rid, status, rsvd = HDR.unpack(h)
        assert magic == MAGIC and rsvd == 0, h
        payload = self._read(length) if length else b""
        return rid, status, payload, op, flags

    def call(self, op, payload=b""):
        rid = self.send(op, payload)
        got, status, data, rop = self.recv()
        assert got == rid and rop == op, (got, rid, rop, op)
        if status != 0:
            raise ProtoError(status, [k for k, v in OP.items() if v == op][0])
        return data

    # -- handshake ---------------------------------------------------------
    def hello(self, key, node_id, check_server=True, features=FEAT_ALL):
        if self._tls_id is None:
            self._tls_id = node_id
        if self._tls_role is None and getattr(key, "grant", None) is not None:
            self._tls_role = "orchestrator"
        cnonce = os.urandom(32)
        data = self.call(OP["HELLO"], HELLO_REQ.pack(VERSION, VERSION, features, node_id, cnonce))
        (ver, _, feats, sid, max_pages, max_inflight, ssize, nsec, _,
         snonce, smac) = HELLO_REP.unpack(data)
        expect = mac(key, b"disagg-hello-srv", cnonce, snonce,
                     struct.pack("<Q", sid), struct.pack("<Q", node_id))
        if check_server and not hmac.compare_digest(expect, smac):
            raise ProtoError(ST["NOAUTH"], "server proof")
        self.info = dict(version=ver, features=feats, node_id=sid,
                         max_pages=max_pages, max_inflight=max_inflight,
                         section_size=ssize, nsections=nsec)
        return cnonce, snonce

    def auth(self, key, node_id, cnonce, snonce, orch=None):
        """AUTH; with orch (default: when `key` carries a grant key), also
        the orchestrator's proof."""
        m = mac(key, b"disagg-hello-cli", snonce, cnonce,
                struct.pack("<Q", node_id),
                struct.pack("<Q", self.info["node_id"]))
        if orch is None:
            orch = getattr(key, "grant", None) is not None
        if orch:
            m += orch_proof(key, cnonce, snonce, node_id, self.info["node_id"])
        self.call(OP["AUTH"], m)

    def login(self, key, node_id, orch=None, features=FEAT_ALL):
        cn, sn = self.hello(key, node_id, features=features)
        self.auth(key, node_id, cn, sn, orch)
        return self

    # -- operations --------------------------------------------------------
    def alloc(self, owner=0):
        data = self.call(OP["SECTION_ALLOC"], struct.pack("<QII", owner, 0, 0))
        sec, gen, own = SECTION.unpack(data)
        return sec, gen

    def free(self, sec, gen, epoch=None):
        """FREE as the orchestrator, at `epoch`; without one, the short form
        (epoch 0)."""
        body = struct.pack("<II", sec, gen)
        if epoch is not None:
            body += struct.pack("<II", epoch, 0)
        self.call(OP["SECTION_FREE"], body)

    def free_grant(self, grant):
        """FREE with a grant that carries the free right (anyone may)."""
        self.call(OP["SECTION_FREE"], grant)

    def list(self):
        out, start = [], 0
        while True:
            data = self.call(OP["SECTION_LIST"], struct.pack("<II", start, 4096))
            count, nxt = struct.unpack_from("<II", data)
            for i in range(count):
                out.append(SECTION.unpack_from(data, 8 + 16 * i))
            if nxt >= self.info["nsections"] or count == 0:
                return out
            start = nxt

    @staticmethod
    def io_req(grant, extents):
        return (grant + struct.pack("<II", len(extents), 0) +
                b"".join(struct.pack("<II", p, c) for p, c in extents))

    def read(self, grant, extents):
        return self.call(OP["READ"], self.io_req(grant, extents))

    def write(self, grant, extents, data):
        self.call(OP["WRITE"], self.io_req(grant, extents) + data)

    @staticmethod
    def diff_req(grant, pages, npages=None, once=None):
        """A WRITE_DIFF payload: pages is [(page, [(offset, bytes), ...]), ...];
        once, (stream, batch, frame): applied at most once (DIFF_ONCE)."""
        body = b""
        for page, runs in pages:
            body += struct.pack("<IHH", page, len(runs), 0)
            body += b"".join(struct.pack("<HH", off, len(data)) for off, data in runs)
            body += b"".join(data for _, data in runs)
        head = struct.pack("<II", len(pages) if npages is None else npages, 1 if once else 0)
        if once:
            head += struct.pack("<QQII", *once, 0)
        return grant + head + body

    def write_diff(self, grant, pages, once=None):
        self.call(OP["WRITE_DIFF"], self.diff_req(grant, pages, once=once))

    def read_range(self, grant, first, count, chunk=256):
        """Pipelined read of `count` pages from `first`."""
        ids = {}
        for p in range(first, first + count, chunk):
            n = min(chunk, first + count - p)
            ids[self.send(OP["READ"], self.io_req(grant, [(p, n)]))] = p
        parts = {}
        for _ in range(len(ids)):
            rid, status, data, _ = self.recv()
            if status:
                raise ProtoError(status, "read")
            parts[ids[rid]] = data
        return b"".join(parts[p] for p in sorted(parts))

    def write_range(self, grant, first, data, chunk=256):
        count = len(data) // PAGE
        sent = 0
        for p in range(first, first + count, chunk):
            n = min(chunk, first + count - p)
            off = (p - first) * PAGE
            self.send(OP["WRITE"], self.io_req(grant, [(p, n)]) +
                      data[off:off + n * PAGE])
            sent += 1
        for _ in range(sent):
            rid, status, _, _ = self.recv()
            if status:
                raise ProtoError(status, "write")

    def cas(self, grant, offset, expect, value):
        d = self.call(OP["CAS"], grant + struct.pack("<QQQ", offset, expect, value))
        return struct.unpack("<Q", d)[0]

    def fadd(self, grant, offset, value):
        d = self.call(OP["FADD"], grant + struct.pack("<QQQ", offset, 0, value))
        return struct.unpack("<Q", d)[0]

    def copy(self, src_grant, dst_grant, addr):
        """COPY the section of src_grant (read, held by us) to addr's section
        of dst_grant (held by this node)."""
        a = addr.encode().ljust(256, b"\0")
        d = self.call(OP["COPY"], src_grant + dst_grant + a)
        return struct.unpack("<QQ", d)

    def stats(self):
        return STATS.unpack(self.call(OP["STATS"]))

    def fence(self, grant):
        """Present `grant`: the section's epoch becomes at least its epoch.
        Returns the section's epoch."""
        return struct.unpack("<II", self.call(OP["FENCE"], grant))[0]


    # -- coherence directory ------------------------------------------------
    def dir_attach(self, grant, tag=None):
        """This connection becomes the recall channel of the holder (the
        grant's node, tag) (use a Channel to answer its recalls). tag None:
        the grant alone, as before holder tags."""
        self.call(OP["DIR_ATTACH"], grant + (b"" if tag is None else DIR_WHO.pack(tag, 0, 0)))

    def dir_detach(self, grant, tag=None):
        self.call(OP["DIR_DETACH"], grant + (b"" if tag is None else DIR_WHO.pack(tag, 0, 0)))

    def dir_read(self, grant, page, tag=0):
        return self.call(OP["DIR_READ"], DIR_REQ.pack(grant, page, 0, tag))

    def dir_take(self, grant, page, tag=0):
        """DIR_READ that may take ownership: (owned, page)."""
        d = self.call(OP["DIR_READ"], DIR_REQ.pack(grant, page, REQ_TAKE, tag))
        flags, rsvd = DIR_WRITE_REP.unpack_from(d)
        assert rsvd == 0 and flags in (0, OWNED), d[:8]
        assert len(d) == DIR_WRITE_REP.size + PAGE, len(d)
        return bool(flags), d[DIR_WRITE_REP.size:]

    def dir_reclaim(self, grant, page=0, data=None, tag=0, recalled=False, version=None):
        """DIR_RECLAIM on the recall channel: a page changed before the node
        restarted (recalled: given up in an unconfirmed recall answer, to
        the recall of that `version` when given), or with data None the
        holder's DONE for the section."""
        flags = REQ_DONE if data is None else REQ_RECALLED if recalled else 0
        extra = b""
        if version is not None:
            flags |= REQ_VERSION
            extra = DIR_VERSION.pack(version, 0)
        req = DIR_REQ.pack(grant, page, flags, tag)
        self.call(OP["DIR_RECLAIM"], req + extra + (data or b""))

    def dir_write(self, grant, page, tag=0):
        """(had_copy, page or None)."""
        d = self.call(OP["DIR_WRITE"], DIR_REQ.pack(grant, page, 0, tag))
        flags, rsvd = DIR_WRITE_REP.unpack_from(d)
        assert rsvd == 0 and flags in (0, HAD_COPY), d[:8]
        assert len(d) == DIR_WRITE_REP.size + (0 if flags else PAGE), len(d)
        return bool(flags), (None if flags else d[DIR_WRITE_REP.size:])

    def send_dir(self, op, grant, page, flags=0, tag=0):
        """DIR_READ or DIR_WRITE without waiting: the request id."""
        return self.send(OP[op], DIR_REQ.pack(grant, page, flags, tag))


class DevConn(Conn):
    """A connection to a device node (BLK_* and VOL_*)."""

    def login(self, key, node_id, orch=None, features=FEAT_BLK):
        return super().login(key, node_id, orch, features)

    def vol(self, op, name, size=0, flags=0, src=b""):
        name = name.encode() if isinstance(name, str) else name
        src = src.encode() if isinstance(src, str) else src
        data = self.call(OP[op], VOL_REQ.pack(name, size, flags, 0, src))
        return unpack_volume(data) if data else None

    def vol_list(self, start=0, max_=512):
        data = self.call(OP["VOL_LIST"], struct.pack("<II", start, max_))
        count, nxt = struct.unpack_from("<II", data)
        assert len(data) == 8 + count * VOLUME.size, (len(data), count)
        return [unpack_volume(data[8 + i * VOLUME.size:8 + (i + 1) * VOLUME.size])
                for i in range(count)], nxt

    def blk_open(self, grant, name, flags=0):
        name = name.encode() if isinstance(name, str) else name
        h, f, size = BLK_OPEN_REP.unpack(self.call(OP["BLK_OPEN"],
                                                   BLK_OPEN_REQ.pack(grant, name, flags, 0)))
        return h, size

    def blk_io(self, op, handle, offset, length, data=b""):
        return self.call(OP[op], BLK_IO.pack(handle, length, offset) + data)

    def blk_read(self, handle, offset, length):
        return self.blk_io("BLK_READ", handle, offset, length)

    def blk_write(self, handle, offset, data):
        return self.blk_io("BLK_WRITE", handle, offset, len(data), data)

    def blk_flush(self, handle):
        return self.call(OP["BLK_FLUSH"], BLK_HANDLE.pack(handle, 0))

    def blk_close(self, handle):
        return self.call(OP["BLK_CLOSE"], BLK_HANDLE.pack(handle, 0))


class Channel:
    """A holder's recall channel: an attached Conn on which the node sends
    DIR_RECALL frames and the holder answers DIR_RECALL_ACK. Recalls that
    arrive while an ack waits for its reply are kept, in order."""

    def __init__(self, conn):
        self.conn = conn
        self.pending = []

    def _frame(self, timeout):
        self.conn.sock.settimeout(timeout)
        try:
            rid, status, payload, op, flags = self.conn.recv_frame()
        finally:
            self.conn.sock.settimeout(10.0)
        if not flags & F_REPLY:
            assert op == OP["DIR_RECALL"] and status == 0, (op, status)
            seq, sec, gen, page, mode, grants, version = DIR_RECALL.unpack(payload)
            assert rid == seq and mode in (DOWNGRADE, INVALIDATE)
            self.pending.append(dict(seq=seq, section=sec, generation=gen, page=page,
                                     mode=mode, grants=grants, version=version))
            return None
        return rid, status, payload, op

    def recall(self, timeout=5.0):
        """The next recall (a dict), or None if none comes within timeout."""
        end = time.time() + timeout
        while not self.pending:
            left = end - time.time()
            if left <= 0:
                return None
            try:
                got = self._frame(left)
            except (socket.timeout, TimeoutError):
                return None
            assert got is None, f"an unexpected reply on the channel: {got}"
        return self.pending.pop(0)

    def ack_quiet(self, seq, dirty=None):
        """Answer recall seq with QUIET: sent, nothing awaited (its request id)."""
        return self.conn.send(OP["DIR_RECALL_ACK"],
                              DIR_ACK.pack(seq, QUIET | (DIRTY if dirty is not None else 0), 0) +
                              (dirty or b""))

    def next_reply(self, timeout=5.0):
        """The next frame that is not a recall: (request id, status, opcode)."""
        end = time.time() + timeout
        while True:
            got = self._frame(max(end - time.time(), 0.01))
            if got is not None:
                return got[0], got[1], got[3]

    def ack(self, seq, dirty=None, flags=None, tail=b""):
        """Answer recall seq (dirty: the page written); raises ProtoError."""
        if flags is None:
            flags = DIRTY if dirty is not None else 0
        rid = self.conn.send(OP["DIR_RECALL_ACK"], DIR_ACK.pack(seq, flags, 0) +
                             (dirty or b"") + tail)
        while True:
            got = self._frame(10.0)
            if got is None:
                continue
            grid, status, _, op = got
            assert grid == rid and op == OP["DIR_RECALL_ACK"], got
            if status:
                raise ProtoError(status, "DIR_RECALL_ACK")
            return


def pattern(seed, section, npages, first=0):
    """Deterministic page contents, distinct per seed, section and page."""
    import random
    out = bytearray()
    for p in range(first, first + npages):
        r = random.Random((seed << 40) ^ (section << 24) ^ p)
        out += r.randbytes(PAGE)
    return bytes(out)


def wait_for(pred, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False
