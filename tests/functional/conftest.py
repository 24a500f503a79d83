# SPDX-License-Identifier: MIT
"""Fixtures for functional tests: real daemons on loopback.

Programs come from the meson build that runs the tests (DISAGG_BUILD, set
by tests/functional/meson.build), or from build/bin when pytest is run by
hand. Every daemon a test starts is stopped at the end; a daemon that
crashed, or printed a sanitizer report, fails the test.
"""
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import authkit  # noqa: E402
import dproto  # noqa: E402
import progs  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def find_prog(name):
    try:
        return progs.find_prog(name)
    except FileNotFoundError as e:
        pytest.fail(str(e))


SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")


class Daemon:
    """A daemon that prints 'NAME listening on ADDR [http ADDR]' when ready."""

    def __init__(self, argv, logpath, ready_re, timeout=20.0):
        self.argv = argv
        self.logpath = logpath
        self.log = open(logpath, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=self.log, close_fds=True)
        self.addr = self.http = None
        end = time.time() + timeout
        while time.time() < end:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            m = re.search(ready_re, line)
            if m:
                self.addr = m.group(1)
                self.http = m.groupdict().get("http")
                break
        if not self.addr:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{argv[0]} did not start:\n{self.stderr()}")

    def stderr(self):
        self.log.flush()
        return pathlib.Path(self.logpath).read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def stop(self, timeout=20):
        """SIGTERM; returns the exit code. Fails on sanitizer reports."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.argv[0]} ignored SIGTERM")
        self.proc.stdout.close()
        err = self.stderr()
        assert not SANITIZER_RE.search(err), err[-4000:]
        return self.proc.returncode


@pytest.fixture(autouse=True)
def fabric(tmp_path):
    """TLS on the fabric by default: a CA for this test (progs.Fabric); the
    daemons, disagg-mnctl and dproto connections take their certificates
    from it. A test that wants plaintext sets progs.CURRENT = None (or
    passes --fabric-plaintext / tls=False itself)."""
    f = progs.Fabric(tmp_path / "fabric")
    progs.CURRENT = f
    yield f
    progs.CURRENT = None


@pytest.fixture
def keyfile(tmp_path):
    """A cluster key file; the grant key pair is made beside it
    (dproto.grant_files)."""
    p = tmp_path / "cluster.key"
    p.write_bytes(os.urandom(32))
    p.chmod(0o600)
    dproto.grant_files(p)
    return str(p)


@pytest.fixture
def key(keyfile):
    """The cluster key's bytes, carrying the grant key (dproto.Keys): a test
    that holds it acts as the orchestrator."""
    return dproto.load_keys(keyfile)


class MemnodeFactory:
    def __init__(self, tmp_path, keyfile):
        self.tmp = tmp_path
        self.keyfile = keyfile
        self.daemons = []
        self.n = 0

    def start(self, node_id=None, pool="512M", section="128M", backing="anon",
              listen="127.0.0.1:0", extra=()):
        self.n += 1
        node_id = node_id or 100 + self.n
        if "--orchestrator" in extra and "--node-credential" not in extra:
            # It registers with the test's orchestrator (authkit.shared) as itself.
            extra = [*extra, "--node-credential",
                     authkit.shared(self.tmp).cred_file(node_id)]
        argv = [find_prog("disagg-memnode"), "--listen", listen,
                "--http", "127.0.0.1:0", "--pool", pool, "--section-size",
                section, "--backing", backing, "--key", self.keyfile,
                "--grant-pubkey", dproto.grant_files(self.keyfile)[1],
                "--node-id", str(node_id), *extra]
        if "--node-credential" not in extra:
            argv.append("--api-open")
        if "--fabric-plaintext" not in extra and "--tls-ca" not in extra:
            argv += progs.fabric_args(node_id, "memory")
        d = Daemon(argv, str(self.tmp / f"memnode-{node_id}-{self.n}.log"),
                   r"listening on (\S+)(?: http (?P<http>\S+))?")
        d.node_id = node_id
        # Its /metrics answer the orchestrator only once it holds a credential.
        d.headers = (authkit.shared(self.tmp).headers(
            authkit.shared(self.tmp).orch_token(node_id))
            if "--node-credential" in extra else {})
        self.daemons.append(d)
        return d

    def stop_all(self):
        bad = []
        for d in self.daemons:
            if d.proc.returncode is not None and d.proc.stdout.closed:
                continue
            rc = d.stop()
            if rc != 0:
                bad.append((d.argv, rc, d.stderr()[-2000:]))
        assert not bad, bad


@pytest.fixture
def cluster_auth(tmp_path):
    """The test's people token, node secret and node credentials (authkit)."""
    return authkit.shared(tmp_path)


@pytest.fixture
def memnodes(tmp_path, keyfile):
    f = MemnodeFactory(tmp_path, keyfile)
    yield f
    f.stop_all()


def run(argv, check=True, timeout=300, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def memnode_metrics(d):
    """A memory node's disagg_memnode_* samples (its /metrics, with the
    orchestrator's token when it holds a credential: MemnodeFactory)."""
    req = urllib.request.Request(f"http://{d.http}/metrics", headers=getattr(d, "headers", {}))
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(disagg_memnode_\w+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m[1] + (m[2] or "")] = float(m[3])
    return out


def memnode_counter(d, name, reason=None):
    key = f'{name}{{reason="{reason}"}}' if reason else name
    return memnode_metrics(d).get(key, 0)
