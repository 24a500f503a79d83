# SPDX-License-Identifier: MIT
"""The real compute agent refuses malformed replicas in POST /v1/vms with
400 and the parser's message, and leaves nothing behind (no VM, nothing
in its run directory). The messages themselves, and the same parser on
the VM's record, are tests/unit/test_replica_json.c's."""
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import Daemon
import dproto
import test_agent_paths as paths


@pytest.fixture
def agent(keyfile, tmp_path):
    for name in ("vmlinuz", "initrd"):
        (tmp_path / name).write_bytes(b"")
    image = ["--kernel", str(tmp_path / "vmlinuz"), "--initrd", str(tmp_path / "initrd")]
    d = tempfile.mkdtemp(prefix="disagg-repin-", dir="/dev/shm")
    os.chmod(d, 0o700)
    a = Daemon(paths.agent(keyfile, image, d), str(tmp_path / "agent.log"),
               r"listening on (\S+)")
    a.run_dir = d
    yield a
    assert a.stop() == 0
    shutil.rmtree(d, ignore_errors=True)


def grant(key, mn):
    return dproto.mint_grant(key, mn, 8, 3, 1, dproto.R_READ | dproto.R_WRITE).hex()


def post(a, body):
    req = urllib.request.Request(f"http://{a.addr}/v1/vms", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    return e.value.code, json.load(e.value)["error"]["message"]


def rep(key, mn):
    return {"addr": f"127.0.0.1:{7000 + mn}", "grant": grant(key, mn)}


CASES = [
    ("three replicas", lambda k: {"replicas": [rep(k, 101), rep(k, 102), rep(k, 103)]},
     "\"replicas\" must be an array of at most 2 sections"),
    ("on position 0's node", lambda k: {"replicas": [rep(k, 100)]},
     "replicas[0] is on memory node 100, as position 0"),
    ("two on one node", lambda k: {"replicas": [rep(k, 101), rep(k, 101)]},
     "replicas[1] and replicas[0] are on one memory node"),
    ("a bad grant", lambda k: {"replicas": [{"addr": "127.0.0.1:1", "grant": "zz"}]},
     "\"replicas[0]\".grant must be 208 hex digits"),
    ("out past the positions", lambda k: {"replicas": [rep(k, 101)], "out": [2]},
     "\"out\"[0] is not a replica position of the section"),
    ("out repeated", lambda k: {"replicas": [rep(k, 101)], "out": [1, 1]},
     "\"out\"[1] is not a replica position of the section"),
    ("every position out", lambda k: {"replicas": [rep(k, 101)], "out": [1, 0]},
     "\"out\" names every replica of the section"),
    ("out without replicas", lambda k: {"out": [0]},
     "\"out\"[0] is not a replica position of the section"),
]


@pytest.mark.parametrize("what,extra,want", CASES, ids=[c[0] for c in CASES])
def test_bad_replicas_are_refused(agent, key, what, extra, want):
    sec = {"kind": "remote", "addr": "127.0.0.1:7100", "grant": grant(key, 100), **extra(key)}
    code, msg = post(agent, {"name": "rv", "sections": [sec]})
    assert code == 400 and want in msg, (what, code, msg)
    with urllib.request.urlopen(f"http://{agent.addr}/v1/vms", timeout=30) as r:
        assert json.load(r)["vms"] == [], what
    assert [n for n in os.listdir(agent.run_dir) if not n.startswith(".")] == [], what
