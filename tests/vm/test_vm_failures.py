# SPDX-License-Identifier: MIT
"""VM test: failures and bad input at the compute agent.

- QEMU killed with SIGKILL: the VM becomes `failed` with a reason naming
  the signal, its free_on_release sections go back to the memory node,
  and DELETE removes the VM and its run directory.
- Bad requests: unknown JSON field, bad grant hex, unknown VM, duplicate
  name, and grants the memory node rejects (another holder, a wrong MAC, a
  freed section). A rejected grant must fail the request at once with a
  clear message, never leave a guest blocked in a page fault.
- The agent killed with SIGKILL: the next agent on its run directory
  adopts the VM whose QEMU still runs (same QEMU, memory intact) and
  removes the directory of one whose QEMU died; an agent of another
  cluster or node, or a second one while the first runs, refuses the run
  directory.
- A guest that panics while booting (no init): the error quotes the panic
  line from its console.
- The memory node dies while the guest boots: the start fails with the
  pager's error well before the guest channel's two-minute timeout.
"""
import os
import signal
import subprocess
import time

import pytest

import dproto
import vmlib


def test_qemu_sigkill(cluster):
    mn = cluster.memnode()
    agent = cluster.agent()
    before = mn.count()
    secs = [mn.section(free_on_release=True) for _ in range(2)]
    kept = mn.section(free_on_release=False)
    vm = agent.create("victim", secs + [kept, {"kind": "local"}])
    pid = vm["pid"]
    assert mn.count() == before + 3
    vmdir = os.path.join(agent.run_dir, "victim")
    assert os.path.exists(os.path.join(vmdir, "ram-base"))
    agent.guest("victim", "FILL 1 3 32")

    os.kill(pid, signal.SIGKILL)
    st = vmlib.wait_for(lambda: (lambda s: s if s["state"] == "failed" else None)(
        agent.status("victim")), 15)
    assert st, agent.status("victim")
    assert "signal 9" in st["reason"] and "Killed" in st["reason"], st["reason"]
    assert not vmlib.pid_alive(pid)
    # The two free_on_release sections are freed, the third is left to its owner.
    assert vmlib.wait_for(lambda: mn.count() == before + 1, 10), mn.count()
    assert not os.path.exists(os.path.join(vmdir, "ram-base"))
    # A failed VM refuses work with an error, not a hang.
    s, j = agent.request("POST", "/v1/vms/victim/guest", {"command": "PING"}, timeout=30)
    assert s in (404, 409, 503) and "error" in j, (s, j)
    s, j = agent.request("POST", "/v1/vms/victim/sections", {"section": mn.section()},
                         timeout=30)
    assert s == 409 and "failed" in j["error"]["message"], (s, j)

    agent.delete("victim")
    assert not os.path.exists(vmdir)
    assert agent.request("GET", "/v1/vms/victim")[0] == 404
    mn.free(kept)
    # The agent still starts VMs afterwards (the name is free again).
    agent.create("victim", [{"kind": "local"}] * 2)
    agent.delete("victim")


def sigkill_agent(cluster, agent):
    """SIGKILL an agent; the next agent on its run directory takes over
    its QEMUs and its directory (so the fixture no longer checks them)."""
    agent.proc.kill()
    agent.proc.wait()
    agent.proc.stdout.close()
    agent.log.close()
    cluster.agents.remove(agent)


def test_agent_sigkill_adopts_its_vms(cluster):
    """An agent killed with SIGKILL leaves its QEMUs running. The next agent
    on its run directory adopts a VM whose QEMU still runs: same QEMU, the
    guest's memory intact (pages the dead agent had resident and dirty,
    faults it had read and never served), the pager serving it again. A VM
    whose QEMU died meanwhile is cleaned up (its directory goes, its
    sections stay allocated), and nothing that is not a VM directory is
    touched."""
    mn = cluster.memnode()
    a1 = cluster.agent(1)
    before = mn.count()
    secs = [mn.section(free_on_release=True) for _ in range(2)]
    vm = a1.create("keep", secs + [{"kind": "local"}], cache_bytes=32 << 20)
    pid = vm["pid"]
    gone = a1.create("gone", [{"kind": "local"}] * 2)
    gone_pid = gone["pid"]
    # More than the cache: pages go to the memory node and come back.
    assert a1.guest("keep", "FILL 1 7 96")["mb"] == 96
    assert a1.guest("keep", "WRITELOOP 1 16")["id"] == 1
    time.sleep(1)
    sigkill_agent(cluster, a1)
    assert vmlib.pid_alive(pid), "QEMU died with the agent"
    os.kill(gone_pid, signal.SIGKILL)
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(gone_pid), 10)
    other = os.path.join(a1.run_dir, "not-a-vm")
    os.mkdir(other)
    open(os.path.join(other, "qemu.log"), "w").close()

    a2 = cluster.agent(1, run_dir=a1.run_dir)
    st = a2.status("keep")
    assert st["state"] == "running" and st["pid"] == pid, st
    assert vmlib.pid_alive(pid)
    a2.qemu_pids.add(pid)
    assert "adopted QEMU" in a2.stderr(), a2.stderr()[-2000:]
    # The writer went on through the restart; stop it and check every page.
    assert a2.guest("keep", "STOP")["mb"] > 0
    v = a2.guest("keep", "VERIFY 1")
    assert v["mismatches"] == 0, v
    p = a2.status("keep")["pager"]
    assert p["failed"] == 0 and p["errors"] == 0, p
    # The new pager works: a smaller cache evicts, a rewrite comes back right.
    a2.call("PUT", "/v1/vms/keep/budget", {"bytes": 16 << 20})
    a2.guest("keep", "REWRITE 1 8")
    assert a2.guest("keep", "VERIFY 1")["mismatches"] == 0
    assert a2.status("keep")["pager"]["pages_evicted"] > 0

    # The VM whose QEMU died is gone; the stranger's directory is left alone.
    assert a2.request("GET", "/v1/vms/gone")[0] == 404
    assert not os.path.exists(os.path.join(a1.run_dir, "gone"))
    assert os.path.exists(os.path.join(other, "qemu.log"))
    os.unlink(os.path.join(other, "qemu.log"))
    os.rmdir(other)
    a2.delete("keep")
    assert not vmlib.pid_alive(pid)
    assert mn.count() == before      # free_on_release: freed by the agent that adopted it


def leave_agent(cluster, agent):
    """SIGTERM an agent started with keep_vms: its VMs keep running for the next one."""
    assert agent.stop() == 0
    cluster.agents.remove(agent)


@pytest.mark.parametrize("mode", ["dimm", "virtio-mem"])
def test_agent_restart_keeps_hot_sections(cluster, mode):
    """Hot-plugged remote sections survive a SIGKILL of the agent and a
    SIGTERM (which leaves running VMs to the next agent): the adopting
    agents know the same sections at the same places, the guest's memory
    on them verifies, and they can be removed afterwards."""
    mn = cluster.memnode()
    before = mn.count()
    a1 = cluster.agent(1)
    a1.create("hot", [mn.section() for _ in range(2)], hotplug=mode, max_sections=2,
              cache_bytes=64 << 20)
    idx = a1.add_section("hot", mn.section())["index"]
    free_mb = a1.meminfo("hot")["memfree_kb"] // 1024
    a1.guest("hot", f"FILL 1 9 {free_mb - 48}")       # reaches into the hot section
    st1 = a1.status("hot")
    pid = st1["pid"]
    sigkill_agent(cluster, a1)

    a2 = cluster.agent(1, run_dir=a1.run_dir, keep_vms=True)
    st2 = a2.status("hot")
    assert st2["pid"] == pid and st2["state"] == "running", st2
    assert st2["hot_sections"] == st1["hot_sections"], (st1, st2)
    assert st2["memory_bytes"] == st1["memory_bytes"]
    assert a2.guest("hot", "VERIFY 1")["mismatches"] == 0
    leave_agent(cluster, a2)
    assert vmlib.pid_alive(pid), "SIGTERM stopped the VM"

    a3 = cluster.agent(1, run_dir=a1.run_dir)
    a3.qemu_pids.add(pid)
    assert a3.status("hot")["hot_sections"] == st1["hot_sections"]
    assert a3.guest("hot", "VERIFY 1")["mismatches"] == 0
    a3.guest("hot", "FREE 1")
    a3.remove_section("hot", idx)
    st3 = a3.status("hot")
    assert not st3["hot_sections"] and st3["memory_bytes"] == 2 * vmlib.SECTION, st3
    a3.delete("hot")
    assert vmlib.wait_for(lambda: mn.count() == before, 10), (mn.count(), before)


def test_agent_restart_refuses_a_run_dir_in_use(cluster, tmp_path):
    """A run directory belongs to one agent of one cluster: a second agent
    (same or other cluster) refuses it while the first runs, and an agent
    of another cluster refuses it for good; neither touches the VM."""
    a1 = cluster.agent(1)
    vm = a1.create("mine", [{"kind": "local"}] * 2)
    argv = [a for a in a1.argv if a != "--stop-vms-on-exit"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "in use by another running agent" in p.stderr, p.stderr
    assert f"pid {a1.pid}" in p.stderr, p.stderr
    (tmp_path / "other").mkdir()
    other_key, _ = vmlib.new_keyfile(tmp_path / "other")
    argv2 = list(argv)
    argv2[argv2.index("--key") + 1] = other_key
    sigkill_agent(cluster, a1)           # the lock goes with it; the owner record stays
    p = subprocess.run(argv2, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "another cluster" in p.stderr, p.stderr
    argv3 = list(argv)
    argv3[argv3.index("--node-id") + 1] = "2"
    argv3[argv3.index("--node-credential") + 1] = a1.auth.cred_file(2)   # node 2's own
    cert, key = vmlib.fabric().cert(2, "compute")                        # and certificate
    argv3[argv3.index("--tls-cert") + 1] = cert
    argv3[argv3.index("--tls-key") + 1] = key
    p = subprocess.run(argv3, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "belongs to node 1" in p.stderr, p.stderr
    assert vmlib.pid_alive(vm["pid"])
    a2 = cluster.agent(1, run_dir=a1.run_dir)
    assert a2.status("mine")["pid"] == vm["pid"]
    a2.qemu_pids.add(vm["pid"])


def test_guest_dies_at_boot_says_why(agent):
    """A guest kernel that panics while booting (here: no init to run) makes
    the start fail with the panic line from its console, not only with the
    guest channel's "Broken pipe"."""
    st, j = agent.request("POST", "/v1/vms", {"name": "noinit", "append": "rdinit=/nonexistent",
                                              "sections": [{"kind": "local"}] * 2},
                          timeout=300)
    assert st == 503 and j["error"]["code"] == "start_failed", (st, j)
    assert "Kernel panic - not syncing" in j["error"]["message"], j
    assert agent.request("GET", "/v1/vms/noinit")[0] == 404     # nothing left behind


def expect_error(agent, method, path, body, status, code=None, timeout=60):
    s, j = agent.request(method, path, body, timeout=timeout)
    assert s == status, (s, j)
    assert isinstance(j, dict) and "error" in j, j
    assert j["error"].get("message"), j
    if code:
        assert j["error"]["code"] == code, j
    return j["error"]["message"]


def test_bad_requests(cluster, key):
    mn = cluster.memnode()
    agent = cluster.agent()
    count0 = mn.count()
    local = {"kind": "local"}

    expect_error(agent, "POST", "/v1/vms", {"name": "x", "sections": [local], "colour": 1},
                 400, "unknown_field")
    expect_error(agent, "POST", "/v1/vms",
                 {"name": "x", "sections": [dict(local, size=1)]}, 400)
    sec = mn.section()
    bad = dict(sec, grant=sec["grant"][:-2] + "zz")
    msg = expect_error(agent, "POST", "/v1/vms", {"name": "x", "sections": [bad]}, 400)
    assert "hex" in msg, msg
    short = dict(sec, grant=sec["grant"][:100])
    expect_error(agent, "POST", "/v1/vms", {"name": "x", "sections": [short]}, 400)
    expect_error(agent, "POST", "/v1/vms", b"{not json", 400)
    expect_error(agent, "POST", "/v1/vms", {"name": "x", "sections": []}, 400)
    expect_error(agent, "POST", "/v1/vms", {"name": "x", "sections": [local],
                                            "hotplug": "floppy"}, 400)
    expect_error(agent, "POST", "/v1/vms", {"name": "../x", "sections": [local]}, 400)
    expect_error(agent, "GET", "/v1/vms/nosuch", None, 404)
    expect_error(agent, "DELETE", "/v1/vms/nosuch", None, 404)
    expect_error(agent, "POST", "/v1/vms/nosuch/guest", {"command": "PING"}, 404)

    # Grants the memory node rejects: fail fast and say why.
    def rejected(section, what):
        t0 = time.monotonic()
        msg = expect_error(agent, "POST", "/v1/vms",
                           {"name": "g", "sections": [local, section]}, 400,
                           "start_failed", timeout=60)
        assert time.monotonic() - t0 < 10, f"{what}: took {time.monotonic() - t0:.1f} s"
        assert "section 1" in msg, msg
        assert agent.request("GET", "/v1/vms/g")[0] == 404
        return msg

    other = mn.section(holder=2)
    msg = rejected(other, "other holder")
    assert "holder" in msg, msg
    raw = bytearray(bytes.fromhex(sec["grant"]))
    raw[-1] ^= 1                                        # a wrong signature
    msg = rejected(dict(sec, grant=raw.hex()), "forged grant")
    assert "grant rejected" in msg.lower() or "key" in msg.lower(), msg
    wrong_node = dproto.mint_grant(key, mn.node_id + 1, 1, 0, 1, 3)
    msg = rejected(dict(sec, grant=wrong_node.hex()), "other memory node")
    assert "memory node" in msg, msg
    gone = mn.section()
    mn.free(gone)                                       # a stale generation
    rejected(gone, "freed section")
    assert not agent.qemu_alive()

    # Duplicate names, and a rejected hot-add leaves the VM running.
    agent.create("dup", [local, local], max_sections=2)   # 128 MiB is too small to boot
    msg = expect_error(agent, "POST", "/v1/vms", {"name": "dup", "sections": [local]}, 409,
                       "exists")
    assert "dup" in msg
    s, j = agent.request("POST", "/v1/vms/dup/sections", {"section": other}, timeout=60)
    assert s == 400 and "holder" in j["error"]["message"], (s, j)
    s, j = agent.request("POST", "/v1/vms/dup/sections", {"section": sec, "x": 1})
    assert s == 400, (s, j)
    expect_error(agent, "DELETE", "/v1/vms/dup/sections/7", None, 404)
    expect_error(agent, "DELETE", "/v1/vms/dup/sections/abc", None, 400)
    expect_error(agent, "POST", "/v1/vms/dup/guest", {"command": "PING", "x": 1}, 400)
    assert agent.guest("dup", "PING") == {}
    assert agent.status("dup")["state"] == "running"
    agent.delete("dup")
    for s in (sec, other):
        mn.free(s)
    assert mn.count() == count0


def test_memnode_dies_during_boot(cluster):
    mn = cluster.memnode()
    agent = cluster.agent()
    secs = [mn.section() for _ in range(2)]
    t0 = time.monotonic()
    # The request checks the grants first (the node is up), then boots QEMU.
    import threading
    out = {}

    def create():
        out["r"] = agent.request("POST", "/v1/vms", {"name": "orphan", "sections": secs},
                                 timeout=300)

    th = threading.Thread(target=create)
    th.start()
    time.sleep(0.3)
    mn.proc.kill()
    mn.proc.wait()
    cluster.memnodes.remove(mn)
    th.join(300)
    took = time.monotonic() - t0
    s, j = out["r"]
    assert s >= 500 and "error" in j, (s, j)
    msg = j["error"]["message"]
    assert "pager" in msg or "memory node" in msg, msg
    assert took < 60, f"start failed only after {took:.0f} s: {msg}"
    assert not agent.qemu_alive()
    assert agent.request("GET", "/v1/vms/orphan")[0] == 404
