# SPDX-License-Identifier: MIT
"""Readiness notification: every daemon started with NOTIFY_SOCKET sends
READY=1 once it answers requests, and STOPPING=1 when it shuts down, as
systemd's Type=notify expects; without NOTIFY_SOCKET, or with a socket
that cannot be used, it runs as always."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

import dproto as dp
import progs  # noqa: E402
from conftest import SANITIZER_RE, find_prog

CLIENT = 9


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Notified:
    """A daemon run with NOTIFY_SOCKET on a datagram socket of ours."""

    def __init__(self, argv, tmp_path, abstract=False, notify=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"disagg-test-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            addr = "@" + name
        else:
            path = str(tmp_path / "notify.sock")
            self.sock.bind(path)
            addr = path
        env = dict(os.environ, NOTIFY_SOCKET=notify if notify is not None else addr)
        self.log = tmp_path / f"{pathlib.Path(argv[0]).name}.log"
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=open(self.log, "wb"))

    def message(self, timeout=20):
        """The next notification, or None when none came within timeout."""
        self.sock.settimeout(0.2)
        end = time.time() + timeout
        while time.time() < end:
            try:
                return self.sock.recv(4096).decode()
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise AssertionError(f"exited {self.proc.returncode}: "
                                         f"{self.log.read_text()[-2000:]}")
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.proc.stdout.close()
        err = self.log.read_text(errors="replace")
        assert not SANITIZER_RE.search(err), err[-4000:]
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


@pytest.fixture
def notified(tmp_path):
    made = []

    def make(*a, **kw):
        n = Notified(*a, tmp_path=tmp_path, **kw)
        made.append(n)
        return n
    yield make
    for n in made:
        n.close()


def get_json(url):
    return json.load(urllib.request.urlopen(url, timeout=5))


def test_memnode_is_ready_when_it_serves(notified, keyfile, key):
    port, http = free_port(), free_port()
    n = notified([find_prog("disagg-memnode"), "--key", keyfile, "--node-id", "5",
                  "--grant-pubkey", dp.grant_files(keyfile)[1],
                  "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http}",
                  "--pool", "256M", "--api-open", *progs.fabric_args(5, "memory")])
    assert n.message() == "READY=1"
    # At that moment both listeners answer.
    with dp.Conn(f"127.0.0.1:{port}") as c:
        c.login(key, CLIENT)
        c.call(dp.OP["PING"])
    assert get_json(f"http://127.0.0.1:{http}/healthz")["status"] == "ok"
    assert n.stop() == 0
    assert n.message(5) == "STOPPING=1"


def test_orchestrator_is_ready_when_it_serves(notified, keyfile, tmp_path):
    http = free_port()
    n = notified([find_prog("disagg-orchestrator"), "--key", keyfile,
                  "--grant-key", dp.grant_files(keyfile)[0], "--http",
                  f"127.0.0.1:{http}", "--db", str(tmp_path / "o.db"), "--api-open",
                  *progs.fabric_args(1, "orchestrator")], abstract=True)
    assert n.message() == "READY=1"
    assert get_json(f"http://127.0.0.1:{http}/healthz")["status"] == "ok"
    assert isinstance(get_json(f"http://127.0.0.1:{http}/v1/nodes"), (list, dict))
    assert n.stop() == 0
    assert n.message(5) == "STOPPING=1"


def test_compute_agent_is_ready_when_it_serves(notified, keyfile, tmp_path):
    http = free_port()
    (tmp_path / "vmlinuz").write_bytes(b"")
    (tmp_path / "initrd").write_bytes(b"")
    run_dir = tempfile.mkdtemp(prefix="disagg-notify-", dir="/dev/shm")
    try:
        n = notified([find_prog("disagg-compute"), "--key", keyfile, "--node-id", "6",
                      "--http", f"127.0.0.1:{http}", "--run-dir", run_dir, "--accel", "tcg",
                      "--qemu", "/bin/true", "--kernel", str(tmp_path / "vmlinuz"),
                      "--initrd", str(tmp_path / "initrd"), "--api-open",
                      *progs.fabric_args(6, "compute")])
        assert n.message() == "READY=1"
        assert get_json(f"http://127.0.0.1:{http}/healthz")["status"] == "ok"
        assert n.stop() == 0
        assert n.message(5) == "STOPPING=1"
    finally:
        subprocess.run(["rm", "-rf", run_dir], check=False)


@pytest.mark.parametrize("bad", ["", "relative/socket", "/nonexistent/dir/notify.sock",
                                 "@" + "x" * 200])
def test_unusable_notify_socket_changes_nothing(notified, keyfile, key, bad):
    port = free_port()
    n = notified([find_prog("disagg-memnode"), "--key", keyfile, "--node-id", "5",
                  "--grant-pubkey", dp.grant_files(keyfile)[1],
                  "--listen", f"127.0.0.1:{port}", "--pool", "128M",
                  *progs.fabric_args(5, "memory")], notify=bad)
    line = n.proc.stdout.readline().decode()
    assert "listening on" in line, n.log.read_text()
    with dp.Conn(f"127.0.0.1:{port}") as c:
        c.login(key, CLIENT)
        c.call(dp.OP["PING"])
    assert n.message(0.5) is None        # nothing came to our socket
    assert n.stop() == 0
