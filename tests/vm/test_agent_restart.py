# SPDX-License-Identifier: MIT
"""An agent restart does not stop VMs, on one-machine clusters (`disagg up`).

- The compute agent killed with SIGKILL while the guest rewrites its memory
  (WRITELOOP), then started again with the same command line: the guest
  keeps its memory (VERIFY: 0 mismatches), its QEMU is the same process,
  and the slot is `running` through the orchestrator.
- The agent killed, and its VM's QEMU too while no agent runs: the
  restarted agent removes the VM's directory, and the orchestrator learns
  at the agent's new registration that the slot is `lost` (without
  waiting for a heartbeat timeout).
- Two clusters on one machine (two `disagg up` with different data
  directories, not on tmpfs, so their agents use their default run
  directories): the second cluster's compute agent never touches the first
  cluster's QEMU.
"""
import json
import os
import pathlib
import re
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from test_cluster import ROOT, Cluster, alive, down, need_vm_host


def up(data):
    c = Cluster(pathlib.Path(data))
    c.disagg("up", "--memnodes", "2", "--computes", "1", "--pool", "1G", "--accel", "tcg",
             timeout=180)
    return c


def agent_vm(c, name, http=None):
    """The compute agent's view of VM `name` (GET /v1/vms/NAME), with the
    orchestrator's token for compute-1; at `http` when it moved."""
    http = http or c.component("compute-1")["http"]
    req = urllib.request.Request(f"http://{http}/v1/vms/{name}",
                                 headers=c.auth().headers(c.auth().orch_token(1)))
    return json.load(urllib.request.urlopen(req, timeout=60))


def run_dir(c):
    log = (c.data / "logs" / "compute-1.log").read_text()
    return re.search(r"run dir (\S+),", log).group(1)


def guest_ok(c, slot, command):
    rc, out = c.guest(slot, command)
    assert rc == 0, out
    return out


def verify(c, slot):
    out = guest_ok(c, slot, "VERIFY 1")
    assert "mismatches=0" in out, out


@pytest.fixture
def data_dirs():
    """Data directories on disk (build/), never tmpfs: like a user's ~/.local."""
    need_vm_host()
    dirs = [tempfile.mkdtemp(prefix="agent-restart-", dir=ROOT / "build") for _ in range(2)]
    yield [pathlib.Path(d) / "cluster" for d in dirs]
    for d in dirs:
        subprocess.run(["rm", "-rf", d], check=False)


def restart_agent(c):
    """SIGKILL compute-1's whole process group; returns its command line
    (for start_agent)."""
    agent = c.component("compute-1")
    argv = pathlib.Path(f"/proc/{agent['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
    os.killpg(os.getpgid(agent["pid"]), signal.SIGKILL)
    return argv


def start_agent(c, argv):
    log = open(c.data / "logs" / "compute-1-restarted.log", "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    log.close()
    return p


def test_agent_sigkill_and_restart_keeps_the_guest(data_dirs):
    c = up(data_dirs[0])
    restarted = None
    try:
        # Remote memory and a small cache: the guest's writes go to the
        # memory nodes and come back while the agent is away and after.
        c.disagg("slot", "create", "web", "--vcpus", "1", "--memory", "512M", "--remote",
                 "100", "--cache", "64M", timeout=300)
        guest_ok(c, "web", "FILL 1 7 160")
        guest_ok(c, "web", "WRITELOOP 1 16")
        qemu = agent_vm(c, "web")["pid"]
        agent = c.component("compute-1")["pid"]
        # Its own process group (no signal to the agent's group reaches
        # it), in the agent's session: with autogroups, a session of its
        # own would be a scheduling group of its own (launch.c).
        assert os.getpgid(qemu) == qemu != os.getpgid(agent)
        assert os.getsid(qemu) == os.getsid(agent)
        time.sleep(1)

        argv = restart_agent(c)
        assert alive(qemu), "QEMU died with its agent"
        restarted = start_agent(c, argv)
        end = time.time() + 120
        while time.time() < end:
            rc, out = c.guest("web", "PING")
            if rc == 0:
                break
            time.sleep(0.5)
        assert rc == 0, f"the slot's guest does not answer after the restart: {out}"
        assert b"adopted QEMU" in (c.data / "logs" / "compute-1-restarted.log").read_bytes()

        out = guest_ok(c, "web", "STOP")            # the writer ran on through the restart
        assert int(out.split("mb=")[1].split()[0]) > 0, out
        verify(c, "web")
        slot = c.json("slot", "show", "web")
        assert slot["state"] == "running", slot
        node = next(n for n in c.json("node", "ls")["nodes"] if n["kind"] == "compute")
        vm = agent_vm(c, "web", node["http"])
        assert vm["pid"] == qemu and vm["state"] == "running", vm
        assert alive(qemu)
        c.disagg("slot", "delete", "web", timeout=120)
        assert not alive(qemu)
    finally:
        if restarted:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(60)
        down(c, [x["pid"] for x in c.info()["components"]])


def test_agent_restart_after_its_qemu_died_reports_the_slot_lost(data_dirs):
    c = up(data_dirs[0])
    restarted = None
    try:
        c.disagg("slot", "create", "web", "--vcpus", "1", "--memory", "256M", timeout=300)
        qemu = agent_vm(c, "web")["pid"]
        vmdir = os.path.join(run_dir(c), "web")
        assert os.path.isdir(vmdir)
        argv = restart_agent(c)
        os.kill(qemu, signal.SIGKILL)
        end = time.time() + 10
        while alive(qemu) and time.time() < end:
            time.sleep(0.05)
        restarted = start_agent(c, argv)
        end = time.time() + 60
        while time.time() < end:
            slot = c.json("slot", "show", "web")
            if slot["state"] != "running":
                break
            time.sleep(0.2)
        assert slot["state"] == "lost" and "does not run it" in slot["reason"], slot
        assert not os.path.exists(vmdir)
        c.disagg("slot", "delete", "web", timeout=120)
    finally:
        if restarted:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(60)
        down(c, [x["pid"] for x in c.info()["components"]])


def test_two_clusters_on_one_host_leave_each_other_alone(data_dirs):
    a = up(data_dirs[0])
    b = None
    try:
        a.disagg("slot", "create", "one", "--vcpus", "1", "--memory", "256M", timeout=300)
        guest_ok(a, "one", "FILL 1 3 32")
        qemu = agent_vm(a, "one")["pid"]

        b = up(data_dirs[1])
        time.sleep(1)
        assert alive(qemu), "the second cluster's agent killed the first cluster's QEMU"
        assert run_dir(a) != run_dir(b), "two clusters share a run directory"
        assert a.json("slot", "show", "one")["state"] == "running"
        verify(a, "one")
        b.disagg("slot", "create", "two", "--vcpus", "1", "--memory", "256M", timeout=300)
        guest_ok(b, "two", "FILL 1 4 32")
        verify(a, "one")
        verify(b, "two")
    finally:
        for x in (b, a):
            if x:
                down(x, [p["pid"] for p in x.info()["components"]])
