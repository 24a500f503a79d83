# SPDX-License-Identifier: MIT
"""Authenticated control APIs (docs/api.md#authentication), against real
daemons: the orchestrator's people tokens, node credentials (registration,
heartbeats, the orchestrator's calls to agents), an agent and a memory node
that take requests from their orchestrator only, compute-migration targets,
HTTPS with a self-made CA, the CLI's token, and the tools that issue them.
Every refusal has its control request that succeeds, and is counted in
disagg_http_auth_failures_total on the daemon's /metrics.
"""
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import authkit
from conftest import Daemon, find_prog, run
import progs  # noqa: E402
from dproto import grant_files, wait_for
from fakes import Api, FakeCompute, FakeMemnodes, Heartbeats


def get(url, token=None, method="GET", body=None, ctx=None, timeout=10):
    """(status, headers, text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def failures(text, daemon, reason):
    m = re.search(r'^disagg_http_auth_failures_total\{daemon="%s",reason="%s"\} (\d+)$'
                  % (daemon, reason), text, re.M)
    assert m, text[-2000:]
    return int(m.group(1))


def assert_refused(ans, status=401):
    st, hdrs, text = ans
    assert st == status, ans
    assert json.loads(text)["error"]["code"] == ("unauthorized" if status == 401
                                                 else "forbidden"), text
    if status == 401:
        assert hdrs.get("WWW-Authenticate", "").startswith("Bearer realm=\"disagg\""), hdrs


@pytest.fixture
def auth(tmp_path):
    d = tmp_path / "auth"
    d.mkdir()
    return authkit.ClusterAuth(d)


@pytest.fixture
def daemons():
    made = []
    yield made
    for d in made:
        if d.alive():
            assert d.stop() == 0, d.stderr()[-3000:]


def start_orch(tmp_path, keyfile, auth, daemons, extra=(), name="orch"):
    argv = [find_prog("disagg-orchestrator"), "--http", "127.0.0.1:0",
            "--db", str(tmp_path / f"{name}.db"), "--key", keyfile,
            "--grant-key", grant_files(keyfile)[0],
            *(auth.orch_args() if auth else ["--api-open"]),
            *progs.fabric_args(1, "orchestrator"), *extra]
    d = Daemon(argv, str(tmp_path / f"{name}.log"), r"disagg-orchestrator listening on (\S+)")
    daemons.append(d)
    return d


@pytest.fixture
def image(tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"")
    (tmp_path / "initrd").write_bytes(b"")
    return ["--kernel", str(tmp_path / "vmlinuz"), "--initrd", str(tmp_path / "initrd")]


@pytest.fixture
def shm_dir():
    d = tempfile.mkdtemp(prefix="disagg-auth-", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_agent(tmp_path, keyfile, image, run_dir, daemons, node_id, extra=()):
    argv = [find_prog("disagg-compute"), "--key", keyfile, "--node-id", str(node_id),
            "--http", "127.0.0.1:0", "--accel", "tcg", "--qemu", "/bin/true", *image,
            "--run-dir", os.path.join(run_dir, str(node_id)),
            *progs.fabric_args(node_id, "compute"), *extra]
    if "--node-credential" not in extra:
        argv.append("--api-open")
    d = Daemon(argv, str(tmp_path / f"compute-{node_id}.log"),
               r"disagg-compute listening on (\S+)")
    daemons.append(d)
    return d


def start_memnode(tmp_path, keyfile, daemons, node_id, extra=()):
    argv = [find_prog("disagg-memnode"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--pool", "256M", "--section-size", "128M", "--key", keyfile,
            "--grant-pubkey", grant_files(keyfile)[1], "--node-id", str(node_id),
            *progs.fabric_args(node_id, "memory"), *extra]
    if "--node-credential" not in extra:
        argv.append("--api-open")
    d = Daemon(argv, str(tmp_path / f"memnode-{node_id}.log"),
               r"listening on (\S+)(?: http (?P<http>\S+))?")
    daemons.append(d)
    return d


# ---------------------------------------------------------------------------
# the orchestrator's REST API

def test_orchestrator_needs_a_people_token(tmp_path, keyfile, auth, daemons):
    o = start_orch(tmp_path, keyfile, auth, daemons)
    base = "http://" + o.addr
    # Liveness probes need nothing.
    st, _, text = get(base + "/healthz")
    assert st == 200 and json.loads(text)["status"] == "ok"
    # Every /v1 path, the event stream, console reads and /metrics need a token.
    paths = [("GET", "/v1/nodes"), ("GET", "/v1/slots"), ("GET", "/v1/sections"),
             ("GET", "/v1/events"), ("GET", "/v1/slots/web/console"),
             ("POST", "/v1/slots"), ("DELETE", "/v1/slots/web"),
             ("POST", "/v1/slots/web/migrate"), ("POST", "/v1/slots/web/guest"),
             ("GET", "/metrics")]
    for method, path in paths:
        assert_refused(get(base + path, method=method, body={} if method == "POST" else None))
    # A wrong token, and a malformed header.
    assert_refused(get(base + "/v1/nodes", token="dgt_" + "0" * 64))
    st, hdrs, text = get(base + "/v1/nodes", token=None)
    req = urllib.request.Request(base + "/v1/nodes")
    req.add_header("Authorization", "Basic " + auth.token)
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("Basic auth accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    # Control: the people token works everywhere.
    st, _, text = get(base + "/v1/nodes", token=auth.token)
    assert st == 200 and json.loads(text)["nodes"] == []
    st, _, text = get(base + "/v1/events", token=auth.token)
    assert st == 200
    st, _, metrics = get(base + "/metrics", token=auth.token)
    assert st == 200
    assert failures(metrics, "orchestrator", "missing") == len(paths) + 2
    assert failures(metrics, "orchestrator", "invalid") == 1
    # Refusals are counted among the requests too.
    assert re.search(r'disagg_orch_requests_total\{route="other",code="4xx"\} \d+', metrics)


def test_node_credentials_at_the_orchestrator(tmp_path, keyfile, auth, daemons):
    o = start_orch(tmp_path, keyfile, auth, daemons)
    api = Api(o.addr)
    reg = {"node_id": 21, "kind": "compute", "http": "127.0.0.1:9", "vcpus": 4}
    node = auth.headers(auth.node_token(21))
    other = auth.headers(auth.node_token(22))
    # Without a credential, with a people token, with node 22's credential: refused.
    st, ans = api.call("POST", "/v1/nodes/register", reg)
    assert st == 401 and ans["error"]["code"] == "unauthorized"
    st, ans = api.call("POST", "/v1/nodes/register", reg, auth.headers())
    assert st == 403 and ans["error"]["code"] == "forbidden"
    st, ans = api.call("POST", "/v1/nodes/register", reg, other)
    assert st == 401 and "node 22 cannot register node 21" in ans["error"]["message"], ans
    # A credential made with another secret.
    forged = authkit.bearer(authkit.node_cred(os.urandom(32), 21), 21, False)
    st, ans = api.call("POST", "/v1/nodes/register", reg, auth.headers(forged))
    assert st == 401
    # The token of the other direction (what the orchestrator sends node 21).
    st, ans = api.call("POST", "/v1/nodes/register", reg, auth.headers(auth.orch_token(21)))
    assert st == 401
    assert api.call("GET", "/v1/nodes", headers=auth.headers())[1]["nodes"] == []
    # Control: node 21 registers as itself and heartbeats.
    st, ans = api.call("POST", "/v1/nodes/register", reg, node)
    assert st == 200, ans
    assert api.call("POST", "/v1/nodes/21/heartbeat", {}, node)[0] == 200
    # Node 22's credential cannot heartbeat for 21, nor a node read the API.
    st, ans = api.call("POST", "/v1/nodes/21/heartbeat", {}, other)
    assert st == 401 and "for node 21" in ans["error"]["message"]
    st, ans = api.call("GET", "/v1/nodes", headers=node)
    assert st == 403
    st, ans = api.call("POST", "/v1/nodes/21/drain", {}, node)
    assert st == 403
    metrics = api.call("GET", "/metrics", headers=auth.headers())[1]
    assert failures(metrics, "orchestrator", "wrong_node") == 2
    assert failures(metrics, "orchestrator", "forbidden") == 3
    assert failures(metrics, "orchestrator", "invalid") == 2
    assert failures(metrics, "orchestrator", "missing") == 1
    api.close()


def test_orchestrator_refuses_open_or_unsafe_setups(tmp_path, keyfile, auth):
    o = [find_prog("disagg-orchestrator"), "--db", str(tmp_path / "x.db"), "--key", keyfile,
         "--grant-key", grant_files(keyfile)[0], "--fabric-plaintext"]
    # No credentials and no --api-open; an open API on a non-loopback address.
    p = run(o + ["--http", "127.0.0.1:0"], check=False, timeout=30)
    assert p.returncode == 2 and "needs credentials" in p.stderr, p.stderr
    p = run(o + ["--http", "0.0.0.0:0", "--api-open"], check=False, timeout=30)
    assert p.returncode == 2 and "not a loopback address" in p.stderr, p.stderr
    p = run(o + ["--http", "127.0.0.1:0", "--api-open", *auth.orch_args()], check=False,
            timeout=30)
    assert p.returncode == 2 and "exclude each other" in p.stderr, p.stderr
    # Tokens without the node secret.
    p = run(o + ["--api-tokens", auth.tokens_file], check=False, timeout=30)
    assert p.returncode == 2 and "go together" in p.stderr, p.stderr
    # A token file others may read.
    os.chmod(auth.tokens_file, 0o644)
    p = run(o + ["--http", "127.0.0.1:0", *auth.orch_args()], check=False, timeout=30)
    assert p.returncode == 1 and "chmod 600" in p.stderr, p.stderr
    os.chmod(auth.tokens_file, 0o600)
    # A token too short to be one.
    bad = authkit.write_private(tmp_path / "short.tokens", "abc\n")
    p = run(o + ["--http", "127.0.0.1:0", "--api-tokens", bad, "--node-secret",
                 auth.secret_file], check=False, timeout=30)
    assert p.returncode == 1 and "cannot load the API tokens" in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# a real compute agent and a real memory node

def agent_cases(auth, node_id):
    """(method, path, token): the requests both agents must answer alike."""
    return [
        ("GET", "/healthz", None),
        ("GET", "/v1/vms", None),
        ("GET", "/v1/vms", auth.token),                       # a people token
        ("GET", "/v1/vms", auth.orch_token(node_id + 1)),     # another node's
        ("GET", "/v1/vms", auth.node_token(node_id)),         # the other direction
        ("GET", "/v1/vms", "orch.%d.%s" % (node_id, "0" * 64)),
        ("DELETE", "/v1/vms/web", None),
        ("POST", "/v1/vms/web/migrate", None),
        ("POST", "/v1/vms/web/migrate", auth.token),
        ("POST", "/v1/vms/web/guest", auth.token),
        ("GET", "/v1/vms/web/console", auth.token),
        ("GET", "/v1/vms", auth.orch_token(node_id)),         # controls
        ("GET", "/v1/vms/web", auth.orch_token(node_id)),
        ("GET", "/metrics", None),
    ]


def test_agent_takes_requests_from_its_orchestrator_only(tmp_path, keyfile, image, shm_dir,
                                                         auth, daemons):
    a = start_agent(tmp_path, keyfile, image, shm_dir, daemons, 8,
                    ["--node-credential", auth.cred_file(8)])
    fake = FakeCompute(8, auth=auth)
    try:
        real_ans, fake_ans = [], []
        for method, path, tok in agent_cases(auth, 8):
            body = {"uri": "tcp:127.0.0.1:4444"} if path.endswith("/migrate") else (
                {"command": "ping"} if path.endswith("/guest") else None)
            for addr, out in ((a.addr, real_ans), (fake.http, fake_ans)):
                st, hdrs, text = get(f"http://{addr}{path}", token=tok, method=method,
                                     body=body)
                code = json.loads(text)["error"]["code"] if st >= 400 else None
                out.append((method, path, st, code, bool(hdrs.get("WWW-Authenticate"))))
        # The fake agents check credentials exactly as the real one does (the
        # fakes have no /healthz or /metrics).
        assert ([x for x in fake_ans if x[1].startswith("/v1")] ==
                [x for x in real_ans if x[1].startswith("/v1")])
        expect = [200] + [401] * 10 + [200, 404, 401]
        assert [x[2] for x in real_ans] == expect, real_ans
        assert all(x[4] for x in real_ans if x[2] == 401)
        # Control: the orchestrator's token for node 8 reads /metrics, where
        # each refusal was counted.
        st, _, metrics = get(f"http://{a.addr}/metrics", token=auth.orch_token(8))
        assert st == 200
        assert failures(metrics, "compute", "missing") == 4
        assert failures(metrics, "compute", "invalid") == 6
        assert failures(metrics, "compute", "wrong_node") == 1
        # The migration request without the orchestrator's credential never
        # reached the VM code; the fake recorded none of the refused calls.
        assert [c for c in fake.calls if c[0] != "GET"] == []
        assert len(fake.refused) == 11
    finally:
        fake.close()


def test_agent_migration_uri_is_checked_strictly(tmp_path, keyfile, image, shm_dir, auth,
                                                 daemons):
    # Without a VM the agent answers 404 after the auth check; the URI check
    # happens on a VM: an orchestrator-authenticated request with a bad URI
    # must be refused as bad input, never started (tests/vm cover a good one).
    a = start_agent(tmp_path, keyfile, image, shm_dir, daemons, 8,
                    ["--node-credential", auth.cred_file(8)])
    st, _, text = get(f"http://{a.addr}/v1/vms/web/migrate", token=auth.orch_token(8),
                      method="POST", body={"uri": "exec:touch /tmp/x"})
    assert st == 404, text


def test_agent_credential_must_be_its_own(tmp_path, keyfile, image, shm_dir, auth):
    argv = [find_prog("disagg-compute"), "--key", keyfile, "--node-id", "8", "--http",
            "127.0.0.1:0", "--accel", "tcg", "--qemu", "/bin/true",
            *image, "--run-dir", os.path.join(shm_dir, "x"), "--fabric-plaintext"]
    p = run(argv + ["--node-credential", auth.cred_file(9)], check=False, timeout=60)
    assert p.returncode == 1 and "node 9's, not node 8's" in p.stderr, p.stderr
    p = run(argv, check=False, timeout=60)
    assert p.returncode == 1 and "needs credentials" in p.stderr, p.stderr
    p = run(argv[:6] + ["0.0.0.0:0"] + argv[7:] + ["--api-open"], check=False, timeout=60)
    assert p.returncode == 1 and "not a loopback address" in p.stderr, p.stderr
    cred = auth.cred_file(8)
    os.chmod(cred, 0o640)
    p = run(argv + ["--node-credential", cred], check=False, timeout=60)
    assert p.returncode == 1 and "chmod 600" in p.stderr, p.stderr


def test_memnode_metrics_and_registration(tmp_path, keyfile, auth, daemons):
    o = start_orch(tmp_path, keyfile, auth, daemons)
    mtok = authkit.write_private(tmp_path / "scrape.tokens", "scrape-token-0123456789\n")
    good = start_memnode(tmp_path, keyfile, daemons, 101,
                         ["--node-credential", auth.cred_file(101), "--orchestrator", o.addr,
                          "--metrics-tokens", mtok])
    # A memory node whose credential comes from another secret never registers.
    other = authkit.ClusterAuth(tmp_path)
    start_memnode(tmp_path, keyfile, daemons, 102,
                  ["--node-credential", other.cred_file(102), "--orchestrator", o.addr])
    api = Api(o.addr, token=auth.token)
    assert wait_for(lambda: [n["node_id"] for n in api.call("GET", "/v1/nodes")[1]["nodes"]] == [101],
             timeout=20)
    base = "http://" + good.http
    assert get(base + "/healthz")[0] == 200
    assert_refused(get(base + "/metrics"))
    assert_refused(get(base + "/metrics", token=auth.token))
    assert_refused(get(base + "/metrics", token=auth.orch_token(102)))
    # Controls: the orchestrator's token for node 101, and a metrics token.
    st, _, text = get(base + "/metrics", token=auth.orch_token(101))
    assert st == 200 and "disagg_memnode_" in text
    st, _, text = get(base + "/metrics", token="scrape-token-0123456789")
    assert st == 200
    assert failures(text, "memnode", "missing") == 1
    assert failures(text, "memnode", "invalid") == 1
    assert failures(text, "memnode", "wrong_node") == 1
    time.sleep(1.5)
    assert [n["node_id"] for n in api.call("GET", "/v1/nodes")[1]["nodes"]] == [101]
    metrics = api.call("GET", "/metrics")[1]
    assert failures(metrics, "orchestrator", "invalid") >= 1
    api.close()


def test_real_agent_registers_with_its_credential(tmp_path, keyfile, image, shm_dir, auth,
                                                  daemons):
    o = start_orch(tmp_path, keyfile, auth, daemons)
    start_agent(tmp_path, keyfile, image, shm_dir, daemons, 8,
                ["--node-credential", auth.cred_file(8), "--orchestrator", o.addr])
    # Node 9 holds node 8's credential file: it refuses to start with it.
    argv = [find_prog("disagg-compute"), "--key", keyfile, "--node-id", "9", "--http",
            "127.0.0.1:0", "--accel", "tcg", "--qemu", "/bin/true", *image,
            "--run-dir", os.path.join(shm_dir, "9"), "--orchestrator", o.addr,
            "--node-credential", os.path.join(str(auth.dir), "node-8.cred"),
            "--fabric-plaintext"]
    p = run(argv, check=False, timeout=60)
    assert p.returncode == 1 and "node 8's, not node 9's" in p.stderr, p.stderr
    api = Api(o.addr, token=auth.token)
    assert wait_for(lambda: [(n["node_id"], n["state"]) for n in
                             api.call("GET", "/v1/nodes")[1]["nodes"]] == [(8, "up")],
                    timeout=20)
    # The orchestrator's calls to agents carry each agent's own token: with
    # fake agents that check it as the real one does, test_migration_targets;
    # with real agents, the VM tests (tests/vm/test_cluster.py).
    api.close()


# ---------------------------------------------------------------------------
# compute-migration targets (the orchestrator against fake agents)

def test_migration_targets(tmp_path, keyfile, key, auth, daemons):
    o = start_orch(tmp_path, keyfile, auth, daemons)
    api = Api(o.addr, token=auth.token)
    mem = FakeMemnodes(key, fabric=progs.CURRENT)
    hb = Heartbeats(o.addr, auth=auth)
    comps = [FakeCompute(10, auth=auth), FakeCompute(11, auth=auth), FakeCompute(12, auth=auth)]
    try:
        for c in comps:
            hb.register(c.registration())
        for nid in (101, 102):
            n = mem.add(nid, nsections=8)
            hb.register(mem.registration(nid), capacity=lambda n=n: {"sections_free": n.free})
        st, s = api.call("POST", "/v1/slots", {"name": "web", "memory": "256M"})
        assert st == 201, s
        src = s["compute"]
        dst, bad = [i for i in (10, 11, 12) if i != src]
        cases = [({"to": 999}, 404), ({"to": 101}, 400), ({"to": "tcp:10.0.0.9:4444"}, 400)]
        for body, status in cases:
            st, ans = api.call("POST", "/v1/slots/web/migrate", body)
            assert st == status, (body, ans)
        # A destination that answers a migration URI of its choosing (another
        # host, another transport) is not believed.
        fbad = comps[bad - 10]
        orig = fbad._incoming

        def evil(body, orig=orig):
            vm = orig(body)
            vm["uri"] = "exec:touch /tmp/pwned"
            return vm
        fbad._incoming = evil
        st, ans = api.call("POST", "/v1/slots/web/migrate", {"to": bad})
        assert st == 502 and "not tcp:PORT on its registered host" in ans["error"]["message"], ans
        assert api.call("GET", "/v1/slots/web")[1]["compute"] == src
        # Control: the registered, live compute node.
        st, ans = api.call("POST", "/v1/slots/web/migrate", {"to": dst})
        assert st == 200 and ans["slot"]["compute"] == dst, ans
        (_, _, mb), = [x for x in comps[src - 10].calls if x[:2] == ("POST", "/v1/vms/web/migrate")]
        assert mb["uri"].startswith("tcp:127.0.0.1:"), mb
        # Every call the orchestrator made carried each agent's own token.
        assert [r for c in comps for r in c.refused] == []
        assert sum(len(c.calls) for c in comps) > 0
    finally:
        hb.stop()
        for c in comps:
            c.close()
        mem.close()
        api.close()


# ---------------------------------------------------------------------------
# TLS

def make_ca(d):
    """A CA and a certificate for 127.0.0.1 signed by it (openssl CLI)."""
    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=disagg test CA")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    os.chmod(d / "srv.key", 0o600)
    return str(d / "ca.pem"), str(d / "srv.pem"), str(d / "srv.key")


def test_https(tmp_path, keyfile, image, shm_dir, auth, daemons):
    d = tmp_path / "pki"
    d.mkdir()
    ca, cert, key_pem = make_ca(d)
    tls = ["--http-cert", cert, "--http-key", key_pem]
    o = start_orch(tmp_path, keyfile, auth, daemons, tls + ["--http-ca", ca])
    base = "https://" + o.addr
    good = ssl.create_default_context(cafile=ca)
    # Control: with the CA and the token.
    st, _, text = get(base + "/v1/nodes", token=auth.token, ctx=good)
    assert st == 200, text
    # Without the CA, the client refuses the server.
    with pytest.raises(urllib.error.URLError) as e:
        get(base + "/v1/nodes", token=auth.token, ctx=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
    # Plain HTTP to a TLS port gets no answer.
    with pytest.raises(Exception):
        get("http://" + o.addr + "/healthz", timeout=5)
    # A memory node and an agent register over HTTPS, verifying with --http-ca;
    # the agent serves HTTPS too and the orchestrator calls it with --http-ca.
    start_memnode(tmp_path, keyfile, daemons, 101,
                  ["--node-credential", auth.cred_file(101), "--orchestrator", base,
                   "--http-ca", ca])
    a = start_agent(tmp_path, keyfile, image, shm_dir, daemons, 8,
                    ["--node-credential", auth.cred_file(8), "--orchestrator", base,
                     "--http-ca", ca, *tls])
    # One without the CA cannot register.
    start_memnode(tmp_path, keyfile, daemons, 102,
                  ["--node-credential", auth.cred_file(102), "--orchestrator", base])

    def ids():
        _, _, t = get(base + "/v1/nodes", token=auth.token, ctx=good)
        return sorted(n["node_id"] for n in json.loads(t)["nodes"] if n["state"] == "up")
    assert wait_for(lambda: ids() == [8, 101], timeout=30)
    st, _, _ = get(f"https://{a.addr}/v1/vms", token=auth.orch_token(8), ctx=good)
    assert st == 200
    # The CLI: https with DISAGG_CA and DISAGG_TOKEN; without the CA it fails.
    env = dict(os.environ, DISAGG_URL=base, DISAGG_TOKEN=auth.token, DISAGG_CA=ca,
               DISAGG_DATA=str(tmp_path / "nodata"))
    p = run([find_prog("disagg"), "node", "ls"], check=False, env=env, timeout=60)
    assert p.returncode == 0 and "memnode-101" in p.stdout, (p.stdout, p.stderr)
    env.pop("DISAGG_CA")
    p = run([find_prog("disagg"), "node", "ls"], check=False, env=env, timeout=60)
    assert p.returncode == 3 and "certificate" in p.stderr.lower(), p.stderr
    time.sleep(1)
    assert ids() == [8, 101]


# ---------------------------------------------------------------------------
# the CLI and the tools

def test_cli_token(tmp_path, keyfile, auth, daemons):
    o = start_orch(tmp_path, keyfile, auth, daemons)
    env = dict(os.environ, DISAGG_URL="http://" + o.addr, DISAGG_DATA=str(tmp_path / "none"))
    env.pop("DISAGG_TOKEN", None)
    p = run([find_prog("disagg"), "node", "ls"], check=False, env=env, timeout=60)
    assert p.returncode == 1 and "DISAGG_TOKEN" in p.stderr, p.stderr
    p = run([find_prog("disagg"), "node", "ls"], check=False, timeout=60,
            env=dict(env, DISAGG_TOKEN="dgt_" + "1" * 64))
    assert p.returncode == 1 and "refused the token from DISAGG_TOKEN" in p.stderr, p.stderr
    p = run([find_prog("disagg"), "node", "ls"], check=False, timeout=60,
            env=dict(env, DISAGG_TOKEN=auth.token))
    assert p.returncode == 0, p.stderr


def test_grant_tool_issues_credentials(tmp_path, auth):
    g = find_prog("disagg-grant")
    out = tmp_path / "n7.cred"
    run([g, "--node-secret", auth.secret_file, "--node", "7", "--node-credential", str(out)])
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert out.read_text() == "7:%s\n" % auth.cred(7).hex()
    p = run([g, "--node-secret", auth.secret_file, "--node", "7", "--orchestrator-token"])
    assert p.stdout.strip() == auth.orch_token(7)
    # It never overwrites a credential.
    p = run([g, "--node-secret", auth.secret_file, "--node", "7", "--node-credential",
             str(out)], check=False)
    assert p.returncode == 1 and "File exists" in p.stderr
    tokens = tmp_path / "t"
    t1 = run([g, "--new-api-token", str(tokens)]).stdout.strip()
    t2 = run([g, "--new-api-token", str(tokens)]).stdout.strip()
    assert t1 != t2 and tokens.read_text() == f"{t1}\n{t2}\n"
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    os.chmod(tokens, 0o644)
    p = run([g, "--new-api-token", str(tokens)], check=False)
    assert p.returncode == 1 and "chmod 600" in p.stderr
