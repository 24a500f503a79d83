# SPDX-License-Identifier: MIT
"""TLS 1.3 on the fabric, against real memory nodes: node identities bound
to certificates, handshakes refused and counted, roles, the handshake
timeout, and what a wire capture sees. Every attack has its control case."""
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

import dproto as dp
import progs  # noqa: E402
from conftest import find_prog, run
from fakes import FakeMemnodes

COMPUTE = 7
ORCH = 1000


from conftest import memnode_counter as counter, memnode_metrics as metrics  # noqa: E402


def ctx_for(fabric, node_id, role):
    cert, key = fabric.cert(node_id, role)
    return dp.tls_context(fabric.ca(), cert, key)


def compute_keys(key):
    return dp.Keys(bytes(key))        # the cluster key, no grant key


def login_fails(conn, key, node_id):
    """The handshake or the login is refused: an error, never a session."""
    with pytest.raises((dp.ProtoError, ConnectionError, OSError)):
        conn.login(key, node_id)
        conn.call(dp.OP["PING"])


def wait_counter(d, name, reason, want, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if counter(d, name, reason) >= want:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def node(memnodes):
    return memnodes.start(pool="256M", section="64M")


# ---- identities -----------------------------------------------------------------------

def test_hello_must_name_the_certificates_node(node, key, fabric):
    before = counter(node, "disagg_memnode_identity_refusals_total", "node_id")
    # Control: the certificate of node 7, HELLO as node 7.
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(compute_keys(key), COMPUTE)
        c.call(dp.OP["PING"])
    # Attack: the same valid certificate, HELLO claims node 8.
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        with pytest.raises(dp.ProtoError) as e:
            c.login(compute_keys(key), COMPUTE + 1)
        assert e.value.status == dp.ST["NOAUTH"]
    assert counter(node, "disagg_memnode_identity_refusals_total", "node_id") == before + 1


def test_compute_certificate_cannot_use_the_orchestrator_capability(node, key, fabric):
    before = counter(node, "disagg_memnode_identity_refusals_total", "role")
    # Control: an orchestrator certificate with the Ed25519 proof allocates.
    with dp.Conn(node.addr, tls=ctx_for(fabric, ORCH, "orchestrator")) as c:
        c.login(key, ORCH)
        sec, gen = c.alloc()
    # Attack: the grant key's proof from a compute node's certificate.
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        with pytest.raises(dp.ProtoError) as e:
            c.login(key, COMPUTE)
        assert e.value.status == dp.ST["NOAUTH"]
    assert counter(node, "disagg_memnode_identity_refusals_total", "role") == before + 1
    # The same certificate without the capability still does page I/O.
    g = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, dp.R_READ | dp.R_WRITE)
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(compute_keys(key), COMPUTE)
        c.write(g, [(0, 1)], b"\x5a" * dp.PAGE)
        assert c.read(g, [(0, 1)]) == b"\x5a" * dp.PAGE
    # And through the C client: disagg-mnctl with a compute certificate.
    p = run([find_prog("disagg-mnctl"), "--addr", node.addr, "--key", key_path(fabric),
             "--node-id", str(COMPUTE), *fabric.args(COMPUTE, "compute"), "alloc"],
            check=False)
    assert p.returncode != 0 and re.search(r"permission denied|refused", p.stderr, re.I), \
        p.stderr
    p = run([find_prog("disagg-mnctl"), "--addr", node.addr, "--key", key_path(fabric),
             "--node-id", str(ORCH), *fabric.args(ORCH, "orchestrator"), "alloc"])
    assert '"section"' in p.stdout


def key_path(fabric):
    return fabric.keyfile


@pytest.fixture(autouse=True)
def _keyfile_on_fabric(fabric, keyfile):
    fabric.keyfile = keyfile


# ---- handshakes -------------------------------------------------------------------------

def self_signed(tmp_path, node_id, role):
    """A certificate that looks right (the node and role URIs) but that no CA signed."""
    cert, key = tmp_path / "self.pem", tmp_path / "self.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "2",
                    "-subj", f"/CN={role}-{node_id}", "-keyout", str(key), "-out", str(cert),
                    "-addext", f"subjectAltName=URI:disagg://node/{node_id},"
                               f"URI:disagg://role/{role}"],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_clients_without_a_cluster_certificate_fail_the_handshake(node, key, fabric, tmp_path):
    ck = compute_keys(key)
    m = "disagg_memnode_tls_failures_total"
    no_cert, bad_cert = counter(node, m, "no_cert"), counter(node, m, "bad_cert")
    # Control.
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(ck, COMPUTE)
    # No certificate at all.
    with dp.Conn(node.addr, tls=dp.tls_context(fabric.ca())) as c:
        login_fails(c, ck, COMPUTE)
    assert wait_counter(node, m, "no_cert", no_cert + 1)
    # Self-signed, with a plausible identity.
    cert, k = self_signed(tmp_path, COMPUTE, "compute")
    with dp.Conn(node.addr, tls=dp.tls_context(fabric.ca(), cert, k)) as c:
        login_fails(c, ck, COMPUTE)
    # Signed by another cluster's CA.
    other = progs.Fabric(tmp_path / "other")
    oc, ok = other.cert(COMPUTE, "compute")
    with dp.Conn(node.addr, tls=dp.tls_context(fabric.ca(), oc, ok)) as c:
        login_fails(c, ck, COMPUTE)
    assert wait_counter(node, m, "bad_cert", bad_cert + 2)
    # The node still serves its own cluster.
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(ck, COMPUTE)
        c.call(dp.OP["PING"])


def test_plaintext_client_is_refused_by_a_tls_node(node, key, fabric, keyfile):
    before = counter(node, "disagg_memnode_tls_failures_total", "protocol")
    with dp.Conn(node.addr, tls=False) as c:
        login_fails(c, compute_keys(key), COMPUTE)
    assert wait_counter(node, "disagg_memnode_tls_failures_total", "protocol", before + 1)
    p = run([find_prog("disagg-mnctl"), "--addr", node.addr, "--key", keyfile,
             "--node-id", str(ORCH), "--fabric-plaintext", "ping"], check=False)
    assert p.returncode != 0
    # Control: the same tool over TLS.
    run([find_prog("disagg-mnctl"), "--addr", node.addr, "--key", keyfile,
         "--node-id", str(ORCH), *fabric.args(ORCH, "orchestrator"), "ping"])


def test_client_checks_the_memory_nodes_certificate(memnodes, keyfile, key, fabric, tmp_path):
    """The memory node proves its identity too: a node of another cluster's
    CA, or one whose certificate names another node than its HELLO, is
    refused by the client (disagg-mnctl, the C client library)."""
    def ping(addr):
        return run([find_prog("disagg-mnctl"), "--addr", addr, "--key", keyfile,
                    "--node-id", str(ORCH), *fabric.args(ORCH, "orchestrator"), "ping"],
                   check=False)

    other = progs.Fabric(tmp_path / "other")
    oc, ok = other.cert(150, "memory")
    d = memnodes.start(node_id=150, extra=["--tls-ca", other.ca(), "--tls-cert", oc,
                                           "--tls-key", ok], pool="128M", section="64M")
    p = ping(d.addr)
    assert p.returncode != 0, p.stdout
    # A memory node with a valid certificate of node 556 that says it is 555.
    fm = FakeMemnodes(key, fabric=fabric)
    try:
        liar = fm.add(555)
        c, k = fabric.cert(556, "memory")
        liar.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        liar.tls.verify_mode = ssl.CERT_REQUIRED
        liar.tls.load_verify_locations(fabric.ca())
        liar.tls.load_cert_chain(c, k)
        p = ping(liar.addr)
        assert p.returncode != 0 and re.search(r"key was rejected|rejected", p.stderr), p.stderr
        honest = fm.add(557)
        p = ping(honest.addr)
        assert p.returncode == 0, p.stderr
    finally:
        fm.close()
    good = memnodes.start(node_id=151, pool="128M", section="64M")
    p = ping(good.addr)
    assert p.returncode == 0, p.stderr


def test_handshake_timeout_cuts_a_silent_peer(memnodes, key, fabric):
    d = memnodes.start(pool="128M", section="64M", extra=["--handshake-timeout-ms", "600"])
    before = counter(d, "disagg_memnode_connections_closed_total", "handshake_timeout")
    host, port = d.addr.rsplit(":", 1)
    silent = socket.create_connection((host, int(port)), timeout=10)
    # Control, opened at the same time: a peer that completes TLS and AUTH stays.
    with dp.Conn(d.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(compute_keys(key), COMPUTE)
        t0 = time.monotonic()
        assert silent.recv(1) == b""          # closed by the node
        waited = time.monotonic() - t0
        assert 0.2 < waited < 8, waited
        c.call(dp.OP["PING"])
    silent.close()
    assert counter(d, "disagg_memnode_connections_closed_total",
                   "handshake_timeout") >= before + 1


def test_daemons_refuse_to_start_without_a_fabric_choice(tmp_path, keyfile, fabric):
    base = [find_prog("disagg-memnode"), "--key", keyfile, "--node-id", "160",
            "--grant-pubkey", dp.grant_files(keyfile)[1], "--listen", "127.0.0.1:0",
            "--pool", "128M", "--section-size", "64M"]
    p = run(base, check=False, timeout=20)
    assert p.returncode == 2 and "--fabric-plaintext" in p.stderr, p.stderr
    # A certificate of another role or node id is not this daemon's.
    for node_id, role in ((160, "compute"), (161, "memory")):
        c, k = fabric.cert(node_id, role)
        p = run(base + ["--tls-ca", fabric.ca(), "--tls-cert", c, "--tls-key", k],
                check=False, timeout=20)
        assert p.returncode != 0 and "TLS certificate" in p.stderr, p.stderr
    p = run(base + ["--fabric-plaintext", "--tls-ca", fabric.ca()], check=False, timeout=20)
    assert p.returncode == 2
    for prog, extra in (("disagg-orchestrator", ["--grant-key", dp.grant_files(keyfile)[0],
                                                 "--db", str(tmp_path / "o.db"),
                                                 "--api-open"]),):
        p = run([find_prog(prog), "--key", keyfile, *extra], check=False, timeout=20)
        assert p.returncode == 2 and "--fabric-plaintext" in p.stderr, p.stderr


# ---- what the wire carries ---------------------------------------------------------------

class Relay:
    """A TCP relay that records every byte it forwards, both ways."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.captured = bytearray()
        self.lock = threading.Lock()
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self):
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            host, port = self.target.rsplit(":", 1)
            b = socket.create_connection((host, int(port)))
            for src, dst in ((a, b), (b, a)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.captured += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.lsock.close()


SECRET = b"disagg-secret-page-pattern:"


def captured_pattern_count(node_addr, key, tls):
    relay = Relay(node_addr)
    try:
        page = (SECRET * (dp.PAGE // len(SECRET) + 1))[:dp.PAGE]
        orch_tls = tls if tls is False else None
        with dp.Conn(relay.addr, tls=orch_tls) as o:
            o.login(key, ORCH)
            sec, gen = o.alloc(owner=COMPUTE)
        g = dp.mint_grant(key, int(node_addr_id[node_addr]), COMPUTE, sec, gen,
                          dp.R_READ | dp.R_WRITE)
        with dp.Conn(relay.addr, tls=orch_tls) as c:
            c.login(compute_keys(key), COMPUTE)
            c.write_range(g, 0, page * 16)
            assert c.read_range(g, 0, 16) == page * 16     # it did go through
        time.sleep(0.2)
        with relay.lock:
            return bytes(relay.captured).count(SECRET)
    finally:
        relay.close()


node_addr_id = {}


def test_wire_capture_sees_no_page_data_with_tls(memnodes, key):
    tls_node = memnodes.start(node_id=170, pool="128M", section="64M")
    plain_node = memnodes.start(node_id=171, pool="128M", section="64M",
                                extra=["--fabric-plaintext"])
    node_addr_id[tls_node.addr] = 170
    node_addr_id[plain_node.addr] = 171
    assert captured_pattern_count(tls_node.addr, key, None) == 0
    # Control: the same exchange with --fabric-plaintext shows the pages.
    assert captured_pattern_count(plain_node.addr, key, False) > 16


# ---- memory node to memory node ------------------------------------------------------------

def test_copy_between_memory_nodes_over_tls(memnodes, keyfile, key, fabric):
    a = memnodes.start(node_id=180, pool="128M", section="64M")
    b = memnodes.start(node_id=181, pool="128M", section="64M")

    def mnctl(d, *args):
        return run([find_prog("disagg-mnctl"), "--addr", d.addr, "--key", keyfile,
                    "--node-id", str(ORCH), *fabric.args(ORCH, "orchestrator"),
                    *map(str, args)])

    import json
    s = json.loads(mnctl(a, "alloc").stdout)
    t = json.loads(mnctl(b, "alloc", "--owner", 180).stdout)
    mnctl(a, "fill", s["section"], s["generation"], "--seed", 9, "--pages", 64)
    mnctl(a, "copy", s["section"], s["generation"], "--to", b.addr, "--to-section",
          t["section"], "--to-generation", t["generation"], "--to-node-id", 181)
    mnctl(b, "verify", t["section"], t["generation"], "--seed", 9, "--pages", 64,
          "--pattern-node", 180, "--pattern-section", s["section"])
    assert counter(b, "disagg_memnode_tls_handshakes_total") >= 2


# ---- revocation ------------------------------------------------------------------------------

def gauge(d, name, labels=""):
    return metrics(d).get(name + labels, 0)


def cut_off(conn, timeout=10):
    """True once the node has closed conn (a request fails)."""
    conn.sock.settimeout(timeout)
    try:
        conn.call(dp.OP["PING"])
    except (dp.ProtoError, ConnectionError, OSError):
        return True
    return False


def start_orch(tmp_path, keyfile, fabric):
    """An orchestrator on the TLS fabric that sweeps every second (the
    revocation tests here and in test_devnode_revoke.py)."""
    from conftest import Daemon
    return Daemon([find_prog("disagg-orchestrator"), "--http", "127.0.0.1:0",
                   "--db", str(tmp_path / "o.db"), "--key", keyfile,
                   "--grant-key", dp.grant_files(keyfile)[0], "--node-id", str(ORCH),
                   "--orphan-sweep", "1", "--api-open", *fabric.args(ORCH, "orchestrator")],
                  str(tmp_path / "orch.log"), r"disagg-orchestrator listening on (\S+)")


def test_revoke_cuts_a_node_off_and_keeps_it_out(memnodes, keyfile, key, fabric, tmp_path):
    orch = start_orch(tmp_path, keyfile, fabric)
    url = "http://" + orch.addr

    def registered(node_id):
        try:
            with urllib.request.urlopen(f"{url}/v1/nodes/{node_id}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        state_a = tmp_path / "a.state"
        a = memnodes.start(node_id=190, pool="128M", section="64M",
                           extra=["--orchestrator", url, "--state-dir", str(state_a)])
        assert dp.wait_for(lambda: registered(190), 15)
        ck = compute_keys(key)
        victim = dp.Conn(a.addr, tls=ctx_for(fabric, COMPUTE, "compute")).login(ck, COMPUTE)
        other = dp.Conn(a.addr, tls=ctx_for(fabric, 8, "compute")).login(ck, 8)
        victim.call(dp.OP["PING"])
        closed = gauge(a, "disagg_memnode_revoked_connections_closed_total")

        p = run([find_prog("disagg"), "--url", url, "node", "revoke", str(COMPUTE)])
        assert "revoked" in p.stdout, p.stdout
        # Cut off at once; the other compute node is not.
        assert cut_off(victim)
        victim.close()
        assert gauge(a, "disagg_memnode_revoked_connections_closed_total") == closed + 1
        other.call(dp.OP["PING"])
        other.close()
        # It cannot come back: the handshake is refused, and counted.
        refused = gauge(a, "disagg_memnode_revocation_refusals_total", '{stage="handshake"}')
        with dp.Conn(a.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
            login_fails(c, ck, COMPUTE)
        assert gauge(a, "disagg_memnode_revocation_refusals_total",
                     '{stage="handshake"}') == refused + 1
        # Control: node 8 still logs in.
        with dp.Conn(a.addr, tls=ctx_for(fabric, 8, "compute")) as c:
            c.login(ck, 8)
            c.call(dp.OP["PING"])
        # The memory node keeps the list across a restart, before the
        # orchestrator tells it again.
        assert (state_a / "revoked").read_text() == f"{COMPUTE}\n"
        a.stop()
        a2 = memnodes.start(node_id=190, pool="128M", section="64M",
                            extra=["--state-dir", str(state_a)])
        assert gauge(a2, "disagg_memnode_revoked_nodes") == 1
        with dp.Conn(a2.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
            login_fails(c, ck, COMPUTE)
        # A memory node that joins later gets the list from the orchestrator.
        b = memnodes.start(node_id=191, pool="128M", section="64M",
                           extra=["--orchestrator", url, "--state-dir", str(tmp_path / "b")])
        assert dp.wait_for(lambda: gauge(b, "disagg_memnode_revoked_nodes") == 1, 20)
        with dp.Conn(b.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
            login_fails(c, ck, COMPUTE)
        with dp.Conn(b.addr, tls=ctx_for(fabric, 8, "compute")) as c:
            c.login(ck, 8)
        # The orchestrator stored it.
        import sqlite3
        db = sqlite3.connect(str(tmp_path / "o.db"))
        assert db.execute("SELECT node_id FROM revoked").fetchall() == [(COMPUTE,)]
        db.close()
    finally:
        assert orch.stop() == 0, orch.stderr()[-3000:]


def test_revoke_is_the_orchestrators_alone(node, key, fabric):
    """REVOKE from a compute node's connection is DENIED; the list is unchanged."""
    ids = (42).to_bytes(8, "little")
    req = (1).to_bytes(4, "little") + bytes(4) + ids
    with dp.Conn(node.addr, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(compute_keys(key), COMPUTE)
        with pytest.raises(dp.ProtoError) as e:
            c.call(REVOKE, req)
        assert e.value.status == dp.ST["DENIED"]
    assert gauge(node, "disagg_memnode_revoked_nodes") == 0
    # Control: the orchestrator's connection may; a malformed list is refused.
    with dp.Conn(node.addr, tls=ctx_for(fabric, ORCH, "orchestrator")) as c:
        c.login(key, ORCH)
        with pytest.raises(dp.ProtoError) as e:
            c.call(REVOKE, (2).to_bytes(4, "little") + bytes(4) + ids)
        assert e.value.status == dp.ST["BADMSG"]
        c.call(REVOKE, req)
    assert gauge(node, "disagg_memnode_revoked_nodes") == 1


REVOKE = dp.OP["REVOKE"]


# ---- frames the library has decrypted but the socket will not signal ---------------------

def test_pipelined_writes_straddling_the_input_buffer_all_get_answers(node, key, fabric):
    """Two writes sent back to back and then waited for, as a flush does,
    over every pair of sizes from 1 to 16 pages. The memory node reads up to
    its 64 KiB input buffer: when the second frame is cut at its end and the
    rest of the burst is already decrypted in the TLS library, the socket
    never signals it again. Every write must be answered, not only those
    that fit the buffer."""
    with dp.Conn(node.addr, tls=ctx_for(fabric, ORCH, "orchestrator")) as c:
        c.login(key, ORCH)
        sec, gen = c.alloc()
    g = dp.mint_grant(key, node.node_id, COMPUTE, sec, gen, dp.R_READ | dp.R_WRITE)
    with dp.Conn(node.addr, timeout=3.0, tls=ctx_for(fabric, COMPUTE, "compute")) as c:
        c.login(compute_keys(key), COMPUTE)
        for n1 in range(1, 17):
            for n2 in range(1, 17):
                frames, want = b"", {}
                for i, n in enumerate((n1, n2)):
                    data = dp.pattern(n1 * 32 + n2, sec, n, first=i * 16)
                    payload = c.io_req(g, [(i * 16, n)]) + data
                    rid = c.next_id
                    c.next_id += 1
                    frames += dp.hdr(dp.OP["WRITE"], len(payload), rid) + payload
                    want[rid] = (i * 16, n, data)
                c.send_raw(frames)        # one burst, then wait, as a flush does
                for _ in want:
                    try:
                        rid, status, _, _ = c.recv()
                    except OSError as e:  # socket.timeout: the node sat on the frame
                        raise AssertionError(f"writes of {n1} and {n2} pages: {e!r}")
                    assert status == dp.ST["OK"] and rid in want, (n1, n2, rid, status)
                for first, n, data in want.values():
                    assert c.read(g, [(first, n)]) == data, (n1, n2)
