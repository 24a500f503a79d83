# SPDX-License-Identifier: MIT
"""Fixtures for the VM tests (suite 'vm'): a cluster key, memory nodes and
compute agents that boot real guests under QEMU TCG.

Every test skips (pytest.skip, with the reason) when qemu-system-x86_64 or
the guest image is missing. Teardown stops every daemon, fails the test on
a sanitizer report in a daemon's stderr, on a QEMU process left running, or
on files the agent left in its run directory, and removes that directory.
"""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import vmlib  # noqa: E402  (puts tests/functional on the path)
import dproto  # noqa: E402


@pytest.fixture(autouse=True)
def _prereqs():
    try:
        vmlib.check_prereqs()
    except vmlib.Skip as e:
        pytest.skip(str(e))


@pytest.fixture
def keyfile(tmp_path):
    return vmlib.new_keyfile(tmp_path)[0]


@pytest.fixture
def key(keyfile):
    """The cluster key with the grant key (dproto.Keys): the test is the orchestrator."""
    return dproto.load_keys(keyfile)


class Cluster:
    """Memory nodes and compute agents of one test."""

    def __init__(self, tmp_path, keyfile, key):
        self.tmp, self.keyfile, self.key = tmp_path, keyfile, key
        self.memnodes, self.agents, self.devnodes = [], [], []

    def memnode(self, node_id=None, pool="2G", backing=None):
        m = vmlib.Memnode(self.tmp, self.key, self.keyfile,
                          node_id or 101 + len(self.memnodes), pool, backing)
        self.memnodes.append(m)
        return m

    def devnode(self, node_id=300):
        d = vmlib.Devnode(self.tmp, self.key, self.keyfile, node_id)
        self.devnodes.append(d)
        return d

    def agent(self, node_id=1, **kw):
        a = vmlib.Agent(self.tmp, self.keyfile, node_id, **kw)
        self.agents.append(a)
        return a

    def save_logs(self):
        """Keep every VM's serial console and QEMU log in the test's tmp dir."""
        for a in self.agents:
            if not a.alive():
                continue
            try:
                vms = a.call("GET", "/v1/vms", timeout=30)["vms"]
            except Exception:  # noqa: BLE001 - best effort, for failure reports
                continue
            for vm in vms:
                n = vm["name"]
                for leaf in ("console.log", "qemu.log"):
                    src = os.path.join(a.run_dir, n, leaf)
                    if os.path.exists(src):
                        shutil.copy(src, self.tmp / f"{n}-{leaf}")

    def close(self):
        problems = []
        self.save_logs()
        for a in self.agents:
            try:
                problems += a.close()
            except AssertionError as e:
                problems.append(str(e))
        for m in self.memnodes + self.devnodes:
            try:
                rc = m.stop()
                if rc != 0:
                    problems.append(f"{m.argv[0]} exited with {rc}: {m.stderr()[-2000:]}")
            except AssertionError as e:
                problems.append(str(e))
        return problems


@pytest.fixture
def cluster(tmp_path, keyfile, key):
    c = Cluster(tmp_path, keyfile, key)
    yield c
    problems = c.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def memnode(cluster):
    return cluster.memnode()


@pytest.fixture
def agent(cluster):
    return cluster.agent()


def pytest_sessionfinish(session, exitstatus):
    """All tests skipped: exit 77 so that meson reports SKIP, not OK."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus == 0 and tr is not None and tr.stats.get("skipped") \
            and not tr.stats.get("passed"):
        session.exitstatus = 77
