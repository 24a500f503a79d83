# SPDX-License-Identifier: MIT
"""Fake compute and memory nodes for orchestrator tests and its benchmark.

FakeMemnodes: one thread (selectors) serving any number of memory nodes,
one listening socket each, speaking just enough of the wire protocol
(docs/protocol.md, via dproto's constants): HELLO/AUTH with the cluster
key, PING, SECTION_ALLOC/FREE/LIST, STATS, FENCE. Sections are bookkeeping
only; each node's `log` records its FREE and FENCE requests in order.

FakeComputes: compute agents (docs/compute.md) on http.server threads,
implementing POST/GET/DELETE /v1/vms, hot-add/remove of sections, the
console, compute migration (an "incoming" VM, POST .../migrate, which
hands the VM to the fake that owns the URI), memory migration
(POST .../sections/migrate), shared regions (fake_regions.py) and remote
disks (fake_disks.py), answering at once and recording every call.
Their answers have the real agent's shape: each one is checked against
tests/schema/compute-agent.json (agentschema.py) and a misfit is kept in
`schema_errors`, which the tests assert empty. FakeMemnodes answer COPY
too (bookkeeping, with an optional failure).

Both can register with an orchestrator and heartbeat like the real
daemons. Run as a program, it serves many fakes in their own process (so
the load generator of the benchmark does not share a GIL with them):

    python3 fakes.py --orchestrator http://127.0.0.1:7000 --key KEY \\
        --memnodes 1000 --computes 100

prints "fakes ready" once every node is registered and serves until
stdin closes or SIGTERM.
"""
import argparse
import http.client
import hmac
import json
import os
import re
import selectors
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dproto import (F_REPLY, GRANT, HDR, HELLO_REP, HELLO_REQ, MAGIC, OP,  # noqa: E402
                    SECTION, ST, STATS, VERSION, grant_signed_by, load_keys, mac,
                    orch_proof_ok)
import agentschema  # noqa: E402
import authkit  # noqa: E402
import fake_disks  # noqa: E402
import fake_regions  # noqa: E402

SECTION_SIZE = 128 << 20


# --------------------------------------------------------------------------
# memory nodes

class _MemNode:
    def __init__(self, node_id, nsections, section_size, sock):
        self.node_id = node_id
        self.nsections = nsections
        self.section_size = section_size
        self.sock = sock
        self.addr = "%s:%d" % sock.getsockname()[:2]
        self.sections = {}            # index -> (generation, owner)
        self.generation = 0
        self.allocs = self.frees = 0
        self.conns = set()
        self.fail_alloc = None        # e.g. ST["NOSPC"]
        self.fail_copy = None         # e.g. ST["IO"]
        self.copies = []              # (src, src_gen, dst_addr, dst_grant bytes)
        self.epochs = {}              # index -> ownership epoch (FENCE only)
        self.log = []                 # ("free", sec, gen) / ("fence", sec, gen, epoch, holder)
        self.tls = None               # server ssl.SSLContext (fabric TLS), or None

    @property
    def free(self):
        return self.nsections - len(self.sections)


class _Conn:
    def __init__(self, node, sock):
        self.node = node
        self.sock = sock
        self.buf = bytearray()
        self.out = bytearray()
        self.cnonce = self.snonce = None
        self.client_id = None
        self.authed = False
        self.hs = False               # TLS handshake under way


class FakeMemnodes:
    """Many fake memory nodes served by one selector thread."""

    def __init__(self, key, fabric=None):
        """fabric: a progs.Fabric to speak TLS with (each fake node with a
        memory-node certificate of its id), or None for plaintext."""
        self.key = key
        self.fabric = fabric
        self.sel = selectors.DefaultSelector()
        self.nodes = {}
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.pending = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, node_id, nsections=8, section_size=SECTION_SIZE):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.setblocking(False)
        n = _MemNode(node_id, nsections, section_size, s)
        if self.fabric is not None:
            cert, key = self.fabric.cert(node_id, "memory")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.fabric.ca())
            ctx.load_cert_chain(cert, key)
            n.tls = ctx
        with self.lock:
            self.nodes[node_id] = n
            self.pending.append(("listen", n))
        self.wake_w.send(b"x")
        return n

    def kill(self, node_id):
        """Stop serving a node: close its listener and connections."""
        with self.lock:
            n = self.nodes[node_id]
            self.pending.append(("kill", n))
        self.wake_w.send(b"x")

    def close(self):
        self.stopping = True
        self.wake_w.send(b"x")
        self.thread.join(5)
        for n in self.nodes.values():
            for c in list(n.conns):
                c.sock.close()
            n.sock.close()
        self.sel.close()
        self.wake_r.close()
        self.wake_w.close()

    def allocated(self, node_id=None):
        with self.lock:
            if node_id is not None:
                return len(self.nodes[node_id].sections)
            return sum(len(n.sections) for n in self.nodes.values())

    # -- the selector loop -------------------------------------------------
    def _run(self):
        while not self.stopping:
            for k, ev in self.sel.select(1.0):
                kind, obj = k.data
                try:
                    if kind == "wake":
                        self.wake_r.recv(4096)
                        self._apply_pending()
                    elif kind == "listen":
                        self._accept(obj)
                    else:
                        self._io(obj, ev)
                except OSError:
                    if kind == "conn":
                        self._drop(obj)

    def _apply_pending(self):
        with self.lock:
            todo, self.pending = self.pending, []
        for what, n in todo:
            if what == "listen":
                self.sel.register(n.sock, selectors.EVENT_READ, ("listen", n))
            elif what == "kill":
                try:
                    self.sel.unregister(n.sock)
                except (KeyError, ValueError):
                    pass
                n.sock.close()
                for c in list(n.conns):
                    self._drop(c)

    def _accept(self, n):
        try:
            s, _ = n.sock.accept()
        except BlockingIOError:
            return
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if n.tls is not None:
            s = n.tls.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
        c = _Conn(n, s)
        c.hs = n.tls is not None
        n.conns.add(c)
        self.sel.register(s, selectors.EVENT_READ, ("conn", c))

    def _drop(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.node.conns.discard(c)

    def _io(self, c, ev):
        if c.hs:
            try:
                c.sock.do_handshake()
                c.hs = False
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                ("conn", c))
                return
        if ev & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)
                while isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
                    data += c.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                data = None
            if data is None:
                self._flush(c)
                return
            if not data:
                self._drop(c)
                return
            c.buf += data
            while len(c.buf) >= HDR.size:
                magic, ver, op, flags, length, rid, status, rsvd = HDR.unpack_from(c.buf)
                if magic != MAGIC or length > 1 << 20:
                    self._drop(c)
                    return
                if len(c.buf) < HDR.size + length:
                    break
                payload = bytes(c.buf[HDR.size:HDR.size + length])
                del c.buf[:HDR.size + length]
                if not self._handle(c, op, rid, payload):
                    self._flush(c)
                    self._drop(c)
                    return
        self._flush(c)

    def _flush(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                break
            del c.out[:n]
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        try:
            self.sel.modify(c.sock, want, ("conn", c))
        except (KeyError, ValueError):
            pass

    def _reply(self, c, op, rid, status=0, payload=b""):
        c.out += HDR.pack(MAGIC, VERSION, op, F_REPLY, len(payload), rid, status, 0) + payload

    def _handle(self, c, op, rid, p):
        n = c.node
        if op == OP["HELLO"]:
            _, _, feats, cid, cnonce = HELLO_REQ.unpack(p)
            c.cnonce, c.client_id, c.snonce = cnonce, cid, os.urandom(32)
            m = mac(self.key, b"disagg-hello-srv", cnonce, c.snonce,
                    struct.pack("<Q", n.node_id), struct.pack("<Q", cid))
            self._reply(c, op, rid, 0, HELLO_REP.pack(
                VERSION, 0, feats & 7, n.node_id, 256, 256, n.section_size,
                n.nsections, 0, c.snonce, m))
            return True
        if op == OP["AUTH"]:
            want = mac(self.key, b"disagg-hello-cli", c.snonce or b"", c.cnonce or b"",
                       struct.pack("<Q", c.client_id or 0), struct.pack("<Q", n.node_id))
            # The MAC, then (96 bytes) the orchestrator's proof, as a real node checks.
            orch = len(p) == 96
            if c.snonce is None or not hmac.compare_digest(want, p[:32]) or \
                    len(p) not in (32, 96) or \
                    (orch and not orch_proof_ok(self.key.grant, p[32:], c.cnonce, c.snonce,
                                                c.client_id, n.node_id)):
                self._reply(c, op, rid, ST["NOAUTH"])
                return False
            c.authed = True
            c.orch = orch
            self._reply(c, op, rid)
            return True
        if not c.authed:
            self._reply(c, op, rid, ST["NOAUTH"])
            return False
        # Signatures are checked before the lock: in Python a verification
        # takes ~137 us, and under the lock it held up every other fake node
        # (and starved the heartbeats of the 1,000-node benchmark).
        signed = len(p) >= GRANT.size and op in (OP["FENCE"], OP["COPY"], OP["SECTION_FREE"]) \
            and grant_signed_by(self.key.grant, p[:GRANT.size])
        with self.lock:
            return self._handle_authed(c, n, op, rid, p, signed)

    def _handle_authed(self, c, n, op, rid, p, signed=False):
        if op in (OP["SECTION_ALLOC"], OP["SECTION_LIST"], OP["COPY"]) or \
                (op == OP["SECTION_FREE"] and len(p) != GRANT.size):
            if not getattr(c, "orch", False):
                self._reply(c, op, rid, ST["DENIED"])
                return True
        if op == OP["PING"]:
            self._reply(c, op, rid)
        elif op == OP["SECTION_ALLOC"]:
            owner, _, _ = struct.unpack("<QII", p)
            if n.fail_alloc is not None:
                self._reply(c, op, rid, n.fail_alloc)
                return True
            free = [i for i in range(n.nsections) if i not in n.sections]
            if not free:
                self._reply(c, op, rid, ST["NOSPC"])
                return True
            n.generation += 1
            n.sections[free[0]] = (n.generation, owner)
            n.allocs += 1
            self._reply(c, op, rid, 0, SECTION.pack(free[0], n.generation, owner))
        elif op == OP["SECTION_FREE"]:
            if len(p) == GRANT.size:    # the grant form: a grant with the free right
                mem, holder, sec, gen, rights, epoch, expiry, _ = GRANT.unpack(p)
                if not signed or mem != n.node_id or \
                        holder != c.client_id or (expiry and expiry <= time.time()):
                    self._reply(c, op, rid, ST["GRANT"])
                    return True
                if not rights & 4:
                    self._reply(c, op, rid, ST["RIGHTS"])
                    return True
            elif len(p) in (8, 16):
                sec, gen = struct.unpack_from("<II", p)
                epoch = struct.unpack_from("<I", p, 8)[0] if len(p) == 16 else 0
            else:
                self._reply(c, op, rid, ST["BADMSG"])
                return False
            if sec not in n.sections:
                self._reply(c, op, rid, ST["NOENT"])
            elif n.sections[sec][0] != gen:
                self._reply(c, op, rid, ST["STALE"])
            elif epoch < n.epochs.get(sec, 0):
                self._reply(c, op, rid, ST["FENCED"])
            else:
                del n.sections[sec]
                n.epochs.pop(sec, None)
                n.frees += 1
                n.log.append(("free", sec, gen))
                self._reply(c, op, rid)
        elif op == OP["SECTION_LIST"]:
            start, mx = struct.unpack("<II", p)
            ents = [(i, g, o) for i, (g, o) in sorted(n.sections.items()) if i >= start][:mx]
            nxt = ents[-1][0] + 1 if len(ents) == mx else n.nsections
            self._reply(c, op, rid, 0, struct.pack("<II", len(ents), nxt) +
                        b"".join(SECTION.pack(*e) for e in ents))
        elif op == OP["COPY"]:
            g = GRANT.size
            _, sholder, src, sgen, srights, _, _, _ = GRANT.unpack_from(p)
            addr = p[2 * g:].rstrip(b"\0").decode()
            n.copies.append((src, sgen, addr, p[g:2 * g]))
            if not signed or sholder != c.client_id \
                    or not srights & 1:
                self._reply(c, op, rid, ST["GRANT"])
            elif n.fail_copy is not None:
                self._reply(c, op, rid, n.fail_copy)
            elif src not in n.sections or n.sections[src][0] != sgen:
                self._reply(c, op, rid, ST["NOENT"])
            else:
                self._reply(c, op, rid, 0, struct.pack("<QQ", 1234, 5000))
        elif op == OP["FENCE"]:
            _, holder, sec, gen, rights, epoch, _, _ = GRANT.unpack(p)
            if not signed or holder != c.client_id \
                    or not rights & 2:
                self._reply(c, op, rid, ST["GRANT"])
            elif sec not in n.sections:
                self._reply(c, op, rid, ST["NOENT"])
            elif n.sections[sec][0] != gen:
                self._reply(c, op, rid, ST["STALE"])
            else:
                n.epochs[sec] = max(n.epochs.get(sec, 0), epoch)
                n.log.append(("fence", sec, gen, epoch, holder))
                self._reply(c, op, rid, 0, struct.pack("<II", n.epochs[sec], 0))
        elif op == OP["STATS"]:
            self._reply(c, op, rid, 0, STATS.pack(n.node_id, n.section_size, n.nsections,
                                                  len(n.sections), 0, 0, 0, 0, len(n.conns)))
        else:
            self._reply(c, op, rid, ST["NOTSUP"])
        return True

    def registration(self, node_id, labels=None, name=None):
        n = self.nodes[node_id]
        return {"node_id": node_id, "kind": "memnode", "name": name or f"fake-mem-{node_id}",
                "addr": n.addr, "labels": labels or {}, "section_size": n.section_size,
                "sections_total": n.nsections, "sections_free": n.free}


# --------------------------------------------------------------------------
# compute nodes

VM_KEYS = {"name", "vcpus", "sections", "cache_bytes", "hotplug", "max_sections", "append",
           "incoming", "hot_sections", "regions", "encryption_key", "disks", "net", "boot",
           "cloud_init", "seed"}
SEED_SIZE = 1 << 20               # the real agent's cloud-init seed (vm_boot.c)
SECTION_KEYS = {"kind", "addr", "grant", "free_on_release", "replicas"}


def _remotes(vm):
    """Every remote section of a VM and its replicas (dicts with a grant), as
    (section dict, [its replica dicts]) pairs: position 0 first."""
    secs = [s for s in vm["sections"] + list(vm["hot"].values()) if s.get("kind") == "remote"]
    return [(s, s.get("replicas", [])) for s in secs]


def _bad_replicas(s):
    reps = s.get("replicas", [])
    return not isinstance(reps, list) or any(
        not isinstance(r, dict) or set(r) != {"addr", "grant"} or
        len(r["grant"]) != 2 * GRANT.size or not r["addr"] for r in reps)
_incoming = {}                    # migration URI -> (FakeCompute, VM name)
META_RECORD = 28                  # page-meta record: page index (u32 LE) + 24-byte entry
META_PART_MAX = 131072            # records in one part (the agent's VM_META_PART_MAX)
META_STORED = 1 << 63
FAKE_SECTION_PAGES = (128 << 20) // 4096
_incoming_lock = threading.Lock()
_next_port = [40000]
_next_ssh = [22000]


def fake_mac(name):
    """The real agent's MAC of a VM (vmnet_mac_from_name): 52:54:00 and FNV-1a bits."""
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return "52:54:00:%02x:%02x:%02x" % ((h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF)


def _net(name, req):
    """The card of a new VM as the real agent reports it: a new ssh port each time."""
    req = req or {"mode": "user"}
    if req.get("mode") == "none":
        return {"mode": "none"}
    with _incoming_lock:
        _next_ssh[0] += 1
        port = _next_ssh[0]
    n = {"mode": req.get("mode", "user"), "mac": fake_mac(name)}
    if n["mode"] == "bridge":
        n.update(bridge=req["bridge"], tap="dgtap0")
    else:
        n["ssh"] = f"127.0.0.1:{port}"
    return n


def _grant_key(hexgrant):
    """(memnode, section, generation) named by a grant in hex."""
    b = bytes.fromhex(hexgrant)
    memnode, _, sec, gen = struct.unpack_from("<QQII", b)
    return memnode, sec, gen


def _section_json(s):
    """A section as the real agent reports it: where it lives, not its grant."""
    if s["kind"] == "local":
        return {"kind": "local"}
    memnode, sec, gen = _grant_key(s["grant"])
    return {"kind": "remote", "addr": s["addr"], "memnode": memnode, "section": sec,
            "generation": gen, "free_on_release": bool(s.get("free_on_release", False))}


class FakeCompute:
    """One fake compute agent. `calls` records (method, path, body)."""

    def __init__(self, node_id, vcpus=8, auth=None):
        self.node_id = node_id
        self.vcpus = vcpus
        # authkit.ClusterAuth: take requests from the orchestrator only, as
        # the real agent does with --node-credential (authkit.node_check)
        self.auth = auth
        self.refused = []             # (method, path, reason) refused for their credential
        self.vms = {}
        self.calls = []
        self.renewals = []            # (vm, when, [grant hex]) taken by POST /grants
        self.replica_calls = []       # (vm, body) of POST .../sections/replica
        self.out_on_migrate = []      # (memnode, section, generation) its last flushes take out
        self.hand_over_fails = None   # (status, code) to refuse a replicas hand-over
        self.memmig_commits = []      # (vm, from key, to key) of committed section migrations
        self.lock = threading.Lock()
        self.fail_create = None       # (status, code) to refuse POST /v1/vms
        self.fail_renew = None        # (status, code) to refuse POST /v1/vms/NAME/grants (the agent's: 409 not_running)
        self.create_bodies = []       # every POST /v1/vms body, in order
        self.console_input = []       # bytes typed into the consoles, in order
        self.fail_migrate = None      # (status, code) to refuse POST .../migrate
        self.fail_memmig = {}         # phase -> (status, code)
        # phase -> "drop" (hang up, do nothing), "apply" (do it, then hang up) or
        # "apply-die" (do it, then answer nothing until `dead` is False again),
        # on every call of that phase until the test removes it
        self.memmig_hangup = {}
        self.migrate_hangup = False   # POST .../migrate: the VM starts migrating, no answer
        self.migrate_dies = None      # POST .../migrate: QEMU dies meanwhile (this reason)
        self.schema_errors = []       # answers that do not fit tests/schema/compute-agent.json
        self.incoming_fails = False   # an incoming VM fails instead of running
        self.no_boot_route = False    # an agent older than GET /v1/vms/NAME/boot: 404
        # page metadata: a VM's "meta" is its table, {page: 24-byte entry}
        # (a test fills it); meta_writes_on_migrate: {page: entry} written
        # into the source's table while it migrates (after the pre-copy)
        self.meta_writes_on_migrate = {}
        self.meta_refused = 0         # as disagg_compute_page_meta_refused_total
        self.meta_gen = 0
        self.fail_region = {}         # region op -> (status, code) (fake_regions.py)
        self.region_hangup = {}       # region op -> "drop" or "apply"
        self.fail_disk = {}           # disk op -> (status, code) (fake_disks.py)
        self.disk_hangup = {}         # disk op -> "drop" or "apply"
        self.disk_key = None          # dproto.Keys: open disks on the real device node
        self.delay = 0.0
        self.dead = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status, obj=None, text=None, raw=None, headers=()):
                if obj is not None:
                    fake.schema_errors += agentschema.check_answer(self.command, self.path,
                                                                   status, obj)
                body = (json.dumps(obj).encode() if obj is not None
                        else raw if raw is not None else (text or "").encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None
                                 else "application/json" if text is None else "text/plain")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _err(self, status, code, msg):
                self._send(status, {"error": {"code": code, "message": msg}})

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n) if n else b""
                if (self.headers.get("Content-Type") or "").startswith(
                        "application/octet-stream"):
                    return data           # page-meta records, as they are
                return json.loads(data) if n else None

            def _route(self, method):
                if fake.dead:             # hang up without an answer
                    self.close_connection = True
                    return
                body = self._body()
                if fake.auth:
                    why = authkit.node_check(fake.auth.cred(fake.node_id), fake.node_id,
                                             method, self.path,
                                             self.headers.get("Authorization"))
                    if why:
                        with fake.lock:
                            fake.refused.append((method, self.path, why[2]))
                        body = json.dumps({"error": {"code": why[1], "message": why[2]}})
                        self.send_response(why[0])
                        self.send_header("Content-Type", "application/json")
                        self.send_header("WWW-Authenticate", 'Bearer realm="disagg"')
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body.encode())
                        return
                with fake.lock:
                    fake.calls.append((method, self.path, body))
                if fake.delay:
                    time.sleep(fake.delay)
                fake._dispatch(self, method, self.path, body)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_DELETE(self):
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.http = "%s:%d" % self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        """Stop answering, also on connections kept alive."""
        self.dead = True
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for vm in self.vms.values():
                fake_disks.close_all(vm)

    def _vm_json(self, vm):
        hot = []
        for k, s in sorted(vm["hot"].items()):
            h = dict(_section_json(s), index=k, plugged=True)
            h.update({x: s[x] for x in ("gpa", "slot") if x in s})
            hot.append(h)
        j = {"name": vm["name"], "state": vm.get("state", "running"), "pid": 4242,
             "vcpus": vm["vcpus"], "accel": "tcg", "hotplug": vm.get("hotplug", "dimm"),
             "section_size": SECTION_SIZE,
             "memory_bytes": SECTION_SIZE * (len(vm["sections"]) + len(hot)),
             "sections": [_section_json(s) for s in vm["sections"]], "hot_sections": hot,
             "guest_memtotal_kb": 0, "cache_bytes": vm.get("cache_bytes"),
             "encrypted": bool(vm.get("key")), "net": vm["net"]}
        if vm.get("key") and j["state"] != "migrated":   # the real one: not once released
            j["page_meta_pending"] = bool(vm.get("meta_pending"))
        if vm.get("replicas_pending") and j["state"] != "migrated":
            j["replicas_pending"] = True
        if vm.get("out"):                 # as the real agent's status (vm.c)
            j["replicas_out"] = self._outs(vm)
        if "uri" in vm:
            j["migration_uri"] = vm["uri"]
        if "migrating" in vm:
            j["migrating"] = vm["migrating"]
        if vm.get("reason") and j["state"] in ("failed", "degraded"):
            j["reason"] = vm["reason"]     # as the real agent: only in those states
        j["regions"] = [fake_regions.region_json(r) for r in vm.get("regions", {}).values()]
        if vm.get("disks"):               # as the real agent: only when it has any
            j["disks"] = [fake_disks.disk_json(d) for d in vm["disks"].values()]
        return j

    def _incoming(self, body):
        with _incoming_lock:
            _next_port[0] += 1
            uri = "tcp:%s:%d" % (body["incoming"]["listen"].rsplit(":", 1)[0], _next_port[0])
            _incoming[uri] = (self, body["name"])
        hot = {s["index"]: {k: v for k, v in s.items() if k != "index"}
               for s in body.get("hot_sections", [])}
        return {"name": body["name"], "vcpus": body["vcpus"], "sections": body["sections"],
                "hot": hot, "next_hot": max(hot, default=-1) + 1, "state": "incoming",
                "uri": uri, "hotplug": body.get("hotplug", "dimm"),
                "cache_bytes": body.get("cache_bytes"), "key": body.get("encryption_key"),
                "meta_pending": bool(body.get("encryption_key")), "meta": {},
                "replicas_pending": bool(body["incoming"].get("replicas_pending")),
                "max_sections": body.get("max_sections", 0),
                "regions": fake_regions.incoming(body.get("regions", [])),
                "net": _net(body["name"], body.get("net")), "con": bytearray()}

    @staticmethod
    def _boot(body, ndisks):
        """What the real agent keeps of a VM's boot (vm_boot_mig.c) and says at
        GET .../boot: its seed after the disks of a new VM, the source's for
        an incoming one; (record, None) or (None, why)."""
        ci, seed = body.get("cloud_init"), body.get("seed")
        if "incoming" in body and (ci is not None or seed is not None) and (
                ci is None or not isinstance(seed, dict) or set(seed) - {"pci", "size"}
                or seed.get("size", SEED_SIZE) != SEED_SIZE):
            return None, "an incoming VM's \"cloud_init\" comes with \"seed\": {\"pci\", \"size\"}"
        if ci is not None and "incoming" not in body:
            seed = {"pci": "0000:00:%02x.0" % (0x18 + ndisks), "size": SEED_SIZE}
        return {"boot": body.get("boot"), "cloud_init": ci,
                "seed": dict(seed, size=SEED_SIZE) if ci is not None else None}, None

    def _migrate(self, h, vm, body):
        if self.migrate_hangup:
            vm["migrating"] = True
            h.close_connection = True
            return None
        if self.fail_migrate:
            st, code = self.fail_migrate
            return h._err(st, code, "refused by the fake; the VM keeps running here")
        if self.migrate_dies:
            vm.update(state="failed", reason=self.migrate_dies)
            return h._err(503, "migration_failed", f"QEMU died: {self.migrate_dies}")
        with _incoming_lock:
            dst = _incoming.pop(body.get("uri"), None)
        if dst is None or dst[0].dead:
            return h._err(503, "migration_failed",
                          "destination gone; the VM keeps running here")
        fake, name = dst
        fake.vms[name]["state"] = "failed" if fake.incoming_fails else "running"
        if not fake.incoming_fails:
            fake_disks.arrive(fake, fake.vms[name])
        vm["state"] = "migrated"
        if vm.get("key"):                 # the final flush, then the snapshots
            vm["meta"].update(self.meta_writes_on_migrate)
            self._meta_final(vm)
        for k in self.out_on_migrate:     # taken out by its flushes (the pager's view)
            vm.setdefault("out", {})[k] = "it failed while its section was written: it missed writes"
        return h._send(200, {"ok": True, "uri": body["uri"], "total_ms": 21,
                             "downtime_ms": 8, "ram_transferred_bytes": 210100,
                             "pause_ms": 7, "replicas_out": self._outs(vm)})

    def _memmig(self, h, vm, body):
        phase = body.get("phase")
        h = fake_regions.knobs(self, h, phase, self.fail_memmig, self.memmig_hangup)
        if h is None:
            return None
        want = _grant_key(body["from"]["grant"])
        secs = list(enumerate(vm["sections"])) + [(("hot", k), s)
                                                  for k, s in vm["hot"].items()]
        # A replica (any position) may be `from`: repair is this call on an out one.
        secs += [(("replica", i, k), r) for i, s in secs for k, r in enumerate(s.get("replicas", []))]
        hit = [(i, s) for i, s in secs
               if (s.get("kind") == "remote" or isinstance(i, tuple) and i[0] == "replica") and
               _grant_key(s["grant"]) == want]
        mig = vm.setdefault("memmig", {})
        if phase == "begin":
            if not hit:
                return h._err(404, "no_section", "no such section")
            mig[want] = body["to"]
            return h._send(200, {"phase": "begin", "ms": 0})
        if phase == "abort":
            if not hit:
                return h._err(404, "no_section", "the VM has no such section")
            if mig.pop(want, None) is None:
                return h._err(409, "conflict", "no migration of this section is in progress")
            return h._send(200, {"phase": "abort", "ms": 0})
        if phase == "commit":
            to = mig.pop(want, None)
            if to is None and not hit and any(
                    (s.get("kind") == "remote" or isinstance(i, tuple) and i[0] == "replica") and _grant_key(s["grant"]) ==
                    _grant_key(body["to"]["grant"]) for i, s in secs):
                # Committed already (a repeated request): like the real agent.
                return h._send(200, {"phase": "commit", "pages_resent": 0, "pages_dual": 0,
                                     "pause_us": 0, "ms": 0, "already": True,
                                     "vm": self._vm_json(vm)})
            if to is None or not hit:
                return h._err(409, "conflict", "no migration")
            i, s = hit[0]
            s["addr"], s["grant"] = to["addr"], to["grant"]
            vm.get("out", {}).pop(want, None)     # `to` takes its position, in
            self.memmig_commits.append((vm["name"], want, _grant_key(to["grant"])))
            return h._send(200, {"phase": "commit", "pages_resent": 3, "pages_dual": 5,
                                 "pause_us": 400, "ms": 2, "already": False,
                                 "vm": self._vm_json(vm)})
        return h._err(400, "bad_request", "bad phase")

    @staticmethod
    def _outs(vm):
        """The VM's "replicas_out", as the real agent's (vm_replica.c)."""
        addrs = {_grant_key(x["grant"]): x["addr"] for s, reps in _remotes(vm) for x in [s] + reps}
        return [{"memnode": k[0], "section": k[1], "generation": k[2], "addr": addrs.get(k, ""),
                 "reason": why} for k, why in vm.get("out", {}).items()]

    def _hand_over(self, h, vm, body):
        """{"action": "hand-over", "out": [...]}: a migration's destination drops
        those replicas it has, then its faults go on (vm_replica.c)."""
        outs = body.get("out")
        keyset = {"memnode", "section", "generation"}
        if set(body) != {"action", "out"} or not isinstance(outs, list) or any(
                not isinstance(e, dict) or not keyset <= set(e) <= keyset | {"addr"} or
                any(not isinstance(e[k], int) or e[k] < 0 for k in keyset) for e in outs):
            return h._err(400, "bad_request", "bad \"out\"")
        if self.hand_over_fails:
            return h._err(*self.hand_over_fails, "refused by the fake")
        out, dropped, skipped = vm.setdefault("out", {}), 0, 0
        for e in outs:
            key = (e["memnode"], e["section"], e["generation"])
            mine = [[_grant_key(x["grant"]) for x in [s] + reps] for s, reps in _remotes(vm)]
            keys = next((ks for ks in mine if key in ks), None)
            if keys is None:
                skipped += 1
                continue
            if key not in out and len([k for k in keys if k not in out]) == 1:
                return h._err(409, "last_replica", "it is the only replica of its section that is in")
            out.setdefault(key, "dropped by the control plane")
            dropped += 1
        vm["replicas_pending"] = False
        return h._send(200, {"dropped": dropped, "skipped": skipped, "pending": False})

    def _replica(self, h, vm, body):
        """POST .../sections/replica {"action": "drop", "replica": {memnode, section,
        generation}} (docs/replication.md): the replica is out from now on; or
        {"action": "hand-over", "out": [...]} (_hand_over)."""
        self.replica_calls.append((vm["name"], body))
        if isinstance(body, dict) and body.get("action") == "hand-over" and "replica" not in body:
            return self._hand_over(h, vm, body)
        if not isinstance(body, dict) or body.get("action") != "drop" or \
                not isinstance(body.get("replica"), dict):
            return h._err(400, "bad_request", "bad body")
        r = body["replica"]
        key = (r.get("memnode"), r.get("section"), r.get("generation"))
        out = vm.setdefault("out", {})
        for s, reps in _remotes(vm):
            keys = [_grant_key(x["grant"]) for x in [s] + reps]
            if key not in keys:
                continue
            if key in out:
                return h._send(200, {"dropped": True})
            if len([k for k in keys if k not in out]) == 1:
                return h._err(409, "last_replica", "the only replica in")
            out[key] = "dropped by the orchestrator"
            return h._send(200, {"dropped": True})
        return h._err(404, "no_replica", "no such replica")

    def take_out(self, name, memnode, section, generation, reason="connection refused"):
        """The pager took a replica out (as the real one does on a transport error)."""
        with self.lock:
            self.vms[name].setdefault("out", {})[(memnode, section, generation)] = reason

    def vm_states(self):
        """A heartbeat's body: each VM's state and the replicas out (vm_states[])."""
        with self.lock:
            states = []
            for v in self.vms.values():
                e = {"name": v["name"], "state": v.get("state", "running")}
                if v.get("out"):
                    e["replicas_out"] = self._outs(v)
                states.append(e)
            return {"vm_states": states}

    def _console(self, h, vm, method, sub, body):
        """console/output and console/input (vm_console.c): what is typed is echoed."""
        q = dict(p.split("=", 1) if "=" in p else (p, "")
                 for p in h.path.partition("?")[2].split("&") if p)
        con = vm["con"]
        if sub == "input" and method == "POST":
            if not isinstance(body, dict) or set(body) != {"hex"}:
                return h._err(400, "bad_request", "bad body")
            data = bytes.fromhex(body["hex"])
            self.console_input.append(data)
            con += data.replace(b"\r", b"\r\n")
            return h._send(200, {"bytes": len(data)})
        if sub == "output" and method == "GET":
            frm = int(q["from"]) if "from" in q else len(con)
            frm = 0 if frm > len(con) else frm
            data = bytes(con[frm:frm + 65536])
            return h._send(200, {"from": frm, "next": frm + len(data), "hex": data.hex(),
                                 "state": vm.get("state", "running")})
        return h._err(404, "not_found", "no such path")

    def _renew(self, h, vm, body):
        """Renewed grants, checked as the agent checks them (vm_grants.c)."""
        if self.fail_renew:
            return h._err(*self.fail_renew, "refused by the fake")
        if not isinstance(body, dict) or set(body) != {"grants"} or \
                not isinstance(body["grants"], list) or not body["grants"]:
            return h._err(400, "bad_request", "bad body")
        def fields(hx):
            return GRANT.unpack(bytes.fromhex(hx))

        def which(g):                  # memory node, section, generation
            return g[0], g[2], g[3]

        secs = [s for s in vm["sections"] + list(vm["hot"].values()) if s["kind"] == "remote"]
        secs += [r for s in list(secs) for r in s.get("replicas", [])]
        secs += [s for r in vm.get("regions", {}).values() for s in r["sections"]]
        new = []
        for hx in body["grants"]:
            try:
                g = fields(hx)
            except (TypeError, ValueError, struct.error):
                return h._err(400, "bad_request", "not a grant")
            match = [s for s in secs if which(fields(s["grant"])) == which(g)]
            if g[1] != self.node_id:
                return h._err(400, "bad_request", "not our grant")
            disk = [d for d in vm.get("disks", {}).values() if which(d["grant"]) == which(g)]
            if not match and disk:     # a disk's volume (vm_disk_grant): taken for its next open
                if g[5] < disk[0]["grant"][5]:
                    return h._err(409, "stale_epoch", "older epoch")
                new.append((disk[0], hx))
                continue
            if not match:
                return h._err(404, "no_section", "no such section")
            if g[5] < fields(match[0]["grant"])[5]:
                return h._err(409, "stale_epoch", "older epoch")
            new.append((match[0], hx))
        for sec, hx in new:
            if "raw" in sec:           # a disk: its grant is kept unpacked (fake_disks.py)
                sec["grant"], sec["raw"] = GRANT.unpack(bytes.fromhex(hx)), bytes.fromhex(hx)
            else:
                sec["grant"] = hx
        self.renewals.append((vm["name"], time.time(), [hx for _, hx in new]))
        return h._send(200, {"renewed": len(new)})

    @staticmethod
    def _meta_final(vm):
        """The snapshots a source takes after its final flush."""
        vm["meta_final"] = dict(vm["meta"])
        base = vm.get("meta_base")
        vm["meta_delta"] = None if base is None else (
            vm["meta_gen"], {i: e for i, e in vm["meta"].items() if base.get(i) != e})

    def _meta_refuse(self, h, status, code, msg):
        self.meta_refused += 1
        return h._err(status, code, msg)

    def _page_meta(self, h, vm, method, sub, body):
        """The agent's page-meta endpoints (vm_pagemeta.c), same checks in
        the same order, same statuses and codes."""
        q = dict(p.split("=", 1) if "=" in p else (p, "")
                 for p in h.path.partition("?")[2].split("&") if p)
        if sub == "precopy" and method == "POST":
            if vm.get("state", "running") != "running":
                return self._meta_refuse(h, 409, "conflict", "not running")
            if not vm.get("key"):
                return self._meta_refuse(h, 409, "conflict", "not sealed")
            self.meta_gen += 1
            vm["meta_gen"], vm["meta_base"] = self.meta_gen, dict(vm["meta"])
            return h._send(200, {"snapshot": self.meta_gen, "records": len(vm["meta"])})
        if sub is not None:
            return h._err(404, "not_found", "no such path")
        if method == "GET":
            def num(k, default):
                v = q.get(k, default)
                return int(v) if isinstance(v, int) or (v.isdigit() and len(v) < 20) else None
            frm, mx, gen = num("from", 0), num("max", META_PART_MAX), num("base", 0)
            of = q.get("of", "final")
            if (None in (frm, mx, gen) or mx == 0 or of not in ("final", "precopy", "delta")
                    or (of == "delta" and "base" not in q)):
                return self._meta_refuse(h, 400, "bad_request", "bad query")
            if vm.get("state") == "migrated" and "meta_final" not in vm:
                self._meta_final(vm)          # a test made it `migrated` by hand
            snap = {"final": vm.get("meta_final"), "precopy": vm.get("meta_base"),
                    "delta": vm.get("meta_delta")}[of]
            if snap is None:
                return self._meta_refuse(h, 404, "no_snapshot", "no page-metadata snapshot")
            if of == "delta":
                if snap[0] != gen:
                    return self._meta_refuse(h, 409, "stale_snapshot", "another pre-copy")
                snap = snap[1]
            recs = sorted((i, e) for i, e in snap.items() if e[:8] != bytes(8))
            if frm > len(recs):
                return self._meta_refuse(h, 400, "bad_request", "from past the end")
            part = recs[frm:frm + min(mx, META_PART_MAX)]
            return h._send(200, raw=b"".join(struct.pack("<I", i) + e for i, e in part),
                           headers=[("X-Page-Meta-Total", str(len(recs)))])
        if method != "POST":
            return h._err(405, "method_not_allowed", "use GET or POST")
        done = q.get("done")
        if done is not None and done not in ("0", "1", "true", "false"):
            return self._meta_refuse(h, 400, "bad_request", "?done=1|0 expected")
        if not isinstance(body, bytes):
            return self._meta_refuse(h, 415, "unsupported_media_type", "octets expected")
        if len(body) % META_RECORD:
            return self._meta_refuse(h, 400, "bad_request", "not whole records")
        if len(body) // META_RECORD > META_PART_MAX:
            return self._meta_refuse(h, 413, "too_large", "too many records")
        if not vm.get("key"):
            return self._meta_refuse(h, 409, "conflict", "not sealed")
        if not vm.get("meta_pending"):
            return self._meta_refuse(h, 409, "conflict", "complete already")
        npages = (len(vm["sections"]) + vm.get("max_sections", 0)) * FAKE_SECTION_PAGES
        recs = [(struct.unpack_from("<I", body, o)[0], body[o + 4:o + META_RECORD])
                for o in range(0, len(body), META_RECORD)]
        for i, e in recs:
            if i >= npages:
                return self._meta_refuse(h, 400, "bad_request", f"page {i} outside the VM")
            if struct.unpack_from("<Q", e)[0] & ~META_STORED == 0:
                return self._meta_refuse(h, 400, "bad_request", f"page {i} has version 0")
        vm["meta"].update(recs)
        vm["meta_pending"] = done not in ("1", "true")
        return h._send(200, {"pending": vm["meta_pending"], "records": len(recs)})

    def refuse_path(self, suffix, method=None):
        """From now on answer 503 to requests whose path ends with suffix
        (and of that method, if given), as an agent that is unavailable.
        Returns the previous dispatcher: restore it with self._dispatch = it."""
        orig = self._dispatch

        def refuse(h, m, path, body):
            if path.endswith(suffix) and (method is None or m == method):
                return h._err(503, "unavailable", "refused by the test")
            return orig(h, m, path, body)

        self._dispatch = refuse
        return orig

    def _dispatch(self, h, method, path, body):
        # A real agent holds GET ?wait=STATE until the state changes; a
        # fake's states change only when a test says so: answer at once.
        path = path.split("?", 1)[0]
        m = fake_regions.PATH.fullmatch(path)
        if m:
            with self.lock:
                return fake_regions.dispatch(self, h, method, m.groups(), body)
        m = fake_disks.PATH.fullmatch(path)
        if m:
            with self.lock:
                return fake_disks.dispatch(self, h, method, m.groups(), body)
        m = re.fullmatch(r"/v1/vms(?:/([^/]+))?(?:/(sections|console|migrate|grants|page-meta|boot)"
                         r"(?:/(\d+|migrate|precopy|output|input|replica))?)?", path)
        if not m:
            return h._err(404, "not_found", "no such path")
        name, sub, idx = m.groups()
        with self.lock:
            if name is None:
                if method == "GET":
                    return h._send(200, {"vms": [self._vm_json(v) for v in self.vms.values()]})
                if method != "POST":
                    return h._err(405, "method", "no")
                if not isinstance(body, dict) or set(body) - VM_KEYS:
                    return h._err(400, "unknown_field", "bad body")
                self.create_bodies.append(body)
                for s in body.get("sections", []):
                    if set(s) - SECTION_KEYS or s.get("kind") not in ("local", "remote"):
                        return h._err(400, "bad_request", "bad section")
                    if s["kind"] == "remote" and (len(s.get("grant", "")) != 2 * GRANT.size or
                                                  not s.get("addr") or _bad_replicas(s)):
                        return h._err(400, "bad_request", "bad remote section")
                if self.fail_create:
                    st, code = self.fail_create
                    return h._err(st, code, "refused by the fake")
                if body["name"] in self.vms:
                    return h._err(409, "exists", "exists")
                if "seed" in body and "incoming" not in body:
                    return h._err(400, "bad_request", "\"seed\" is for an incoming VM")
                boot, why = self._boot(body, len(body.get("disks", [])))
                if why is not None:
                    return h._err(400, "start_failed", why)
                if "incoming" in body:
                    disks, why = fake_disks.incoming(self, body["name"], body.get("disks", []),
                                                     body["vcpus"])
                    if why is not None:
                        return h._err(400, "bad_request", why)
                    self.vms[body["name"]] = dict(self._incoming(body), disks=disks,
                                                  boot=boot)
                    return h._send(201, self._vm_json(self.vms[body["name"]]))
                disks, why = fake_disks.at_create(self, body.get("disks", []), body["vcpus"])
                if why is not None:
                    return h._err(why[0], "start_failed", why[1])
                self.vms[body["name"]] = {"disks": disks, "boot": boot,
                                          "name": body["name"], "vcpus": body["vcpus"],
                                          "sections": body["sections"], "hot": {},
                                          "next_hot": 0,
                                          "hotplug": body.get("hotplug", "dimm"),
                                          "cache_bytes": body.get("cache_bytes"),
                                          "key": body.get("encryption_key"), "meta": {},
                                          "max_sections": body.get("max_sections", 0),
                                          "net": _net(body["name"], body.get("net")),
                                          "con": bytearray(f"console of {body['name']}\n",
                                                           "ascii")}
                return h._send(201, self._vm_json(self.vms[body["name"]]))
            vm = self.vms.get(name)
            if vm is None:
                return h._err(404, "not_found", "no such VM")
            if sub is None:
                if method == "GET":
                    return h._send(200, self._vm_json(vm))
                if method == "DELETE":
                    fake_disks.close_all(self.vms.pop(name))
                    return h._send(204, text="")
            elif sub == "migrate" and method == "POST":
                return self._migrate(h, vm, body)
            elif sub == "boot" and idx is None and method == "GET" and self.no_boot_route:
                return h._err(404, "not_found", "no such path")
            elif sub == "boot" and idx is None and method == "GET":
                return h._send(200, vm.get("boot") or {"boot": None, "cloud_init": None,
                                                       "seed": None})
            elif sub == "sections" and idx == "migrate" and method == "POST":
                return self._memmig(h, vm, body)
            elif sub == "sections" and idx == "replica" and method == "POST":
                return self._replica(h, vm, body)
            elif sub == "console" and idx is None and method == "GET":
                return h._send(200, text=vm["con"].decode(errors="replace"))
            elif sub == "console":
                return self._console(h, vm, method, idx, body)
            elif sub == "grants" and idx is None and method == "POST":
                return self._renew(h, vm, body)
            elif sub == "page-meta":
                return self._page_meta(h, vm, method, idx, body)
            elif sub == "sections" and idx is None and method == "POST":
                if not isinstance(body, dict) or set(body) != {"section"} or \
                        _bad_replicas(body["section"]):
                    return h._err(400, "bad_request", "bad body")
                k = vm["next_hot"]
                vm["next_hot"] += 1
                vm["hot"][k] = body["section"]
                return h._send(200, {"index": k, "ms": 1, "vm": self._vm_json(vm)})
            elif sub == "sections" and idx is not None and idx.isdigit() and method == "DELETE":
                if int(idx) not in vm["hot"]:
                    return h._err(404, "not_found", "no such section")
                del vm["hot"][int(idx)]
                return h._send(200, {"ms": 1, "vm": self._vm_json(vm)})
            return h._err(405, "method", "no")

    def registration(self, labels=None, name=None):
        return {"node_id": self.node_id, "kind": "compute",
                "name": name or f"fake-compute-{self.node_id}", "http": self.http,
                "labels": labels or {}, "vcpus": self.vcpus}


# --------------------------------------------------------------------------
# talking to the orchestrator

class Api:
    """A keep-alive JSON client of the orchestrator's REST API."""

    def __init__(self, addr, timeout=60, token=None):
        addr = addr.replace("http://", "").rstrip("/")
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.timeout = timeout
        self.token = token            # "Authorization: Bearer" on every call
        self.conn = None

    def call(self, method, path, body=None, headers=None, raw=False):
        data = None if body is None else (body if isinstance(body, (bytes, str))
                                          else json.dumps(body))
        hdrs = {"Content-Type": "application/json",
                **({"Authorization": "Bearer " + self.token} if self.token else {}),
                **(headers or {})}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
                self.conn.connect()
                # http.client sends headers and body separately: without
                # NODELAY, Nagle and delayed ACKs add 40 ms to every POST.
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                text = r.read().decode()
                break
            except (ConnectionError, http.client.HTTPException, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        if raw:
            return r.status, text, r
        try:
            return r.status, (json.loads(text) if text else None)
        except ValueError:
            return r.status, text

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class Heartbeats:
    """Registers nodes and sends their heartbeats from one thread."""

    def __init__(self, addr, interval=None, auth=None):
        self.api = Api(addr, timeout=10)
        self.auth = auth              # authkit.ClusterAuth: each node uses its own token
        self.regs = {}                # node_id -> (registration, capacity fn)
        self.paused = set()
        self.interval = interval
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.thread = None

    def _hdrs(self, node_id):
        return self.auth.headers(self.auth.node_token(node_id)) if self.auth else None

    def register(self, reg, capacity=None):
        st, ans = self.api.call("POST", "/v1/nodes/register", reg, self._hdrs(reg["node_id"]))
        assert st == 200, (st, ans)
        if self.interval is None:
            self.interval = ans["heartbeat_interval_s"]
        with self.lock:
            self.regs[reg["node_id"]] = (reg, capacity)
        return ans

    def pause(self, node_id):
        with self.lock:
            self.paused.add(node_id)

    def resume(self, node_id):
        with self.lock:
            self.paused.discard(node_id)

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        api = Api("%s:%d" % (self.api.host, self.api.port), timeout=10)
        while not self.stop_ev.wait(self.interval or 1):
            with self.lock:
                todo = [(i, r, c) for i, (r, c) in self.regs.items() if i not in self.paused]
            for node_id, reg, cap in todo:
                if self.stop_ev.is_set():
                    break
                try:
                    st, _ = api.call("POST", f"/v1/nodes/{node_id}/heartbeat",
                                     cap() if cap else {}, self._hdrs(node_id))
                    if st == 404:
                        api.call("POST", "/v1/nodes/register", reg, self._hdrs(node_id))
                except OSError:
                    pass
        api.close()

    def stop(self):
        self.stop_ev.set()
        if self.thread:
            self.thread.join(10)
        self.api.close()


# --------------------------------------------------------------------------
# a process full of fakes (for the benchmark)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orchestrator", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--memnodes", type=int, default=1000)
    ap.add_argument("--computes", type=int, default=100)
    ap.add_argument("--sections", type=int, default=16, help="sections per memory node")
    ap.add_argument("--vcpus", type=int, default=64, help="vCPUs per compute node")
    ap.add_argument("--first-id", type=int, default=1000)
    ap.add_argument("--auth-dir", default=None,
                    help="api.tokens and node.secret here (authkit): nodes register with "
                         "their credentials and computes answer the orchestrator only")
    args = ap.parse_args()
    auth = authkit.ClusterAuth(args.auth_dir, existing=True) if args.auth_dir else None

    mem = FakeMemnodes(load_keys(args.key))   # the grant key beside --key (dproto.grant_files)
    hb = Heartbeats(args.orchestrator, auth=auth)
    comps = []
    for i in range(args.computes):
        c = FakeCompute(args.first_id + i, vcpus=args.vcpus, auth=auth)
        comps.append(c)
        hb.register(c.registration(labels={"rack": f"r{i % 4}"}))
    base = args.first_id + args.computes
    for i in range(args.memnodes):
        nid = base + i
        n = mem.add(nid, nsections=args.sections)
        hb.register(mem.registration(nid, labels={"rack": f"r{i % 4}"}),
                    capacity=lambda n=n: {"sections_free": n.free})
    hb.start()
    print("fakes ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    hb.stop()
    st = {"allocated": mem.allocated(),
          "allocs": sum(n.allocs for n in mem.nodes.values()),
          "frees": sum(n.frees for n in mem.nodes.values()),
          "vms": sum(len(c.vms) for c in comps)}
    print(json.dumps(st), flush=True)
    mem.close()
    # Each close waits for its server's poll loop (up to half a second):
    # in turn, 100 of them took 12 s of every benchmark run.
    closers = [threading.Thread(target=c.close) for c in comps]
    for t in closers:
        t.start()
    for t in closers:
        t.join()


if __name__ == "__main__":
    main()
