# SPDX-License-Identifier: MIT
"""VM test: failures and bad input at the compute agent.

- QEMU killed with SIGKILL: the VM becomes `failed` with a reason naming
  the signal, its free_on_release sections go back to the memory node,
  and DELETE removes the VM and its run directory.
- Bad requests: unknown JSON field, bad grant hex, unknown VM, duplicate
  name, and grants the memory node rejects (another holder, a wrong MAC, a
  freed section). A rejected grant must fail the request at once with a
  clear message, never leave a guest blocked in a page fault.
- The agent killed with SIGKILL: the next agent on its run directory kills
  the orphaned QEMU and removes the VM directory.
- A guest that panics while booting (no init): the error quotes the panic
  line from its console.
- The memory node dies while the guest boots: the start fails with the
  pager's error well before the guest channel's two-minute timeout.
"""
import os
import signal
import time

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


def test_agent_sigkill_leftovers(cluster):
    """An agent killed with SIGKILL leaves its QEMU running (orphaned, with
    nobody to serve its page faults) and its VM directory behind. The next
    agent on that run directory kills the QEMU and removes the directory."""
    mn = cluster.memnode()
    a1 = cluster.agent(1)
    before = mn.count()
    kept = mn.section(free_on_release=False)
    vm = a1.create("orphan", [kept, {"kind": "local"}])
    pid = vm["pid"]
    a1.proc.kill()
    a1.proc.wait()
    assert vmlib.pid_alive(pid), "QEMU died with the agent: nothing to test"
    assert os.path.isdir(os.path.join(a1.run_dir, "orphan"))
    # Not a VM directory: left alone (a run directory shared by mistake).
    other = os.path.join(a1.run_dir, "not-a-vm")
    os.mkdir(other)
    open(os.path.join(other, "qemu.log"), "w").close()
    a2 = cluster.agent(1, extra=("--run-dir", a1.run_dir))
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(pid), 10), "orphaned QEMU still runs"
    assert os.listdir(a1.run_dir) == ["not-a-vm"], os.listdir(a1.run_dir)
    os.unlink(os.path.join(other, "qemu.log"))
    os.rmdir(other)
    assert "left" in a2.stderr() and "earlier agent" in a2.stderr()
    # The name is free again, without a .N suffix.
    a2.create("orphan", [{"kind": "local"}] * 2)
    assert os.path.isdir(os.path.join(a1.run_dir, "orphan"))
    a2.delete("orphan")
    assert mn.count() == before + 1       # not freed: free_on_release was false
    mn.free(kept)


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
    raw[-1] ^= 1                                        # a wrong MAC
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
