# SPDX-License-Identifier: MIT
"""VM test: the compute agent attaches a device node's volume to a running
VM as a virtio-blk disk, being its vhost-user-blk back end (POST
/v1/vms/NAME/disks; docs/compute.md, "Disks"), and detaches it.

A real guest under the agent writes and verifies through the hot-plugged
disk; the bytes are in the device node's volume file; after the detach the
guest has no disk and the volume is closed on the node. A VM whose memory
is all remote, under a small cache budget, moves data between its memory
and the disk both ways and nothing is zeros or lost (the pager serves the
agent's mapping of guest RAM). The fabric is TLS, as deployed: the device
node's certificate has role device.
"""
import json
import os
import re
import signal
import threading
import time

import pytest

import dproto as dp
import vmlib

MiB = 1 << 20
DEVNODE = 300
AGENT = 1


@pytest.fixture
def devnode(tmp_path, key, keyfile):
    d = vmlib.Devnode(tmp_path, key, keyfile, DEVNODE)
    yield d
    assert d.stop() == 0


@pytest.fixture
def agent(tmp_path, keyfile):
    a = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT)
    yield a
    a.close()


def volume(d, key, name, size=32 * MiB):
    c = dp.DevConn(d.addr).login(key, 9)
    v = c.vol("VOL_CREATE", name, size)
    c.close()
    return v, dp.volume_grant(key, DEVNODE, AGENT, v["key"]).hex()


def users(d, key, name):
    c = dp.DevConn(d.addr).login(key, 9)
    try:
        return c.vol("VOL_STAT", name)["users"]
    finally:
        c.close()


def test_attach_write_verify_detach(agent, devnode, key):
    v, grant = volume(devnode, key, "data1")
    agent.create("vm1", [{"kind": "local"}, {"kind": "local"}], vcpus=2)
    assert agent.guest("vm1", "DISKS")["disks"] == ""
    d = agent.call("POST", "/v1/vms/vm1/disks", {"volume": "data1", "devnode": devnode.addr,
                                                  "grant": grant, "serial": "data1"})
    assert d["id"] == "disk0" and d["size"] == 32 * MiB and d["volume"] == "data1"
    assert d["queues"] == 2                  # one per vCPU
    assert users(devnode, key, "data1") == 1
    assert [x["id"] for x in agent.call("GET", "/v1/vms/vm1/disks")["disks"]] == ["disk0"]
    assert [x["id"] for x in agent.status("vm1")["disks"]] == ["disk0"]
    # The guest's hot-plug of the PCI device takes a moment.
    vmlib.wait_for(lambda: agent.guest("vm1", "DISKS")["disks"] != "", timeout=60)
    assert agent.guest("vm1", "DISKS")["disks"] == f"vda:{32 * MiB}:data1"
    agent.guest("vm1", f"DWRITE vda 0 {4 * MiB} 41")
    agent.guest("vm1", "DFLUSH vda")
    assert agent.guest("vm1", f"DVERIFY vda 0 {4 * MiB} 41")["mismatches"] == 0
    assert agent.guest("vm1", f"DVERIFY vda 0 {MiB} 42")["mismatches"] == 256
    with open(os.path.join(devnode.data, "data1.vol"), "rb") as f:
        f.seek(3 * 4096)
        page = f.read(4096)
    assert page == b"".join(vmlib.pattern_word(41, 3, i).to_bytes(8, "little")
                            for i in range(512))
    # Twice the same volume, a bad grant, a device node that is not there: clear errors.
    st, j = agent.request("POST", "/v1/vms/vm1/disks", {"volume": "data1", "devnode":
                                                          devnode.addr, "grant": grant})
    assert st == 409 and "attached already" in j["error"]["message"], j
    v2, _ = volume(devnode, key, "data2")
    bad = dp.volume_grant(key, DEVNODE, AGENT + 1, v2["key"]).hex()
    st, j = agent.request("POST", "/v1/vms/vm1/disks", {"volume": "data2", "devnode":
                                                          devnode.addr, "grant": bad})
    assert st == 502 and "data2" in j["error"]["message"], j
    st, j = agent.request("POST", "/v1/vms/vm1/disks", {"volume": "data2", "grant": grant})
    assert st == 400, j
    # Detach: the guest lets go, the volume is closed on the node.
    agent.call("DELETE", "/v1/vms/vm1/disks/disk0")
    vmlib.wait_for(lambda: agent.guest("vm1", "DISKS")["disks"] == "", timeout=60)
    assert agent.call("GET", "/v1/vms/vm1/disks")["disks"] == []
    assert users(devnode, key, "data1") == 0
    st, j = agent.request("DELETE", "/v1/vms/vm1/disks/disk0")
    assert st == 404, j
    # Attached again, the data is still there.
    agent.call("POST", "/v1/vms/vm1/disks", {"volume": "data1", "devnode": devnode.addr,
                                              "grant": grant})
    vmlib.wait_for(lambda: agent.guest("vm1", "DISKS")["disks"] != "", timeout=60)
    assert agent.guest("vm1", f"DVERIFY vda 0 {4 * MiB} 41")["mismatches"] == 0
    agent.delete("vm1")
    assert users(devnode, key, "data1") == 0


def test_disk_with_remote_memory(agent, devnode, key, tmp_path, keyfile):
    """A guest whose memory is all on a memory node, with a cache budget far
    below what it touches: the disk's back end reads guest pages that are
    not fetched (the data goes to the disk, never zeros) and writes guest
    pages that are evicted right after (never lost): the pager serves the
    agent's own mapping of guest RAM as an alias of QEMU's."""
    mn = vmlib.Memnode(str(tmp_path), key, keyfile)
    try:
        _, grant = volume(devnode, key, "r1", size=192 * MiB)
        secs = [mn.section(holder=AGENT) for _ in range(4)]
        budget = 48 * MiB
        agent.create("rvm", secs, vcpus=2, cache_bytes=budget)
        agent.call("POST", "/v1/vms/rvm/disks", {"volume": "r1", "devnode": devnode.addr,
                                                 "grant": grant})
        vmlib.wait_for(lambda: agent.guest("rvm", "DISKS")["disks"] != "", timeout=60)
        mb = 128
        agent.guest("rvm", f"FILL 1 7 {mb}")            # most of it evicted at once
        before = agent.status("rvm")["pager"]
        # Memory -> disk: the device reads pages that are on the memory node.
        assert int(agent.guest("rvm", "DSAVE vda 0 1")["bytes"]) == mb * MiB
        agent.guest("rvm", "DFLUSH vda")
        v = agent.guest("rvm", f"DVERIFY vda 0 {mb * MiB} 7")
        assert v["mismatches"] == 0, v
        with open(os.path.join(devnode.data, "r1.vol"), "rb") as f:
            f.seek(100 * MiB + 5 * 4096)
            page = f.read(4096)
        want = (100 * MiB + 5 * 4096) // 4096
        assert page == b"".join(vmlib.pattern_word(7, want, i).to_bytes(8, "little")
                                for i in range(512))
        # Disk -> memory: the device writes pages that eviction takes away next.
        agent.guest("rvm", "REWRITE 1 8")
        agent.guest("rvm", "DLOAD vda 0 1 7")
        agent.guest("rvm", "FILL 2 9 96")               # region 1 leaves the cache
        assert agent.guest("rvm", "VERIFY 1")["mismatches"] == 0
        assert agent.guest("rvm", "VERIFY 2")["mismatches"] == 0
        p = agent.status("rvm")["pager"]
        print("pager before DSAVE:", before, "\nafter:", p)
        assert p["faults_alias"] > before["faults_alias"], p
        assert p["pages_evicted"] > before["pages_evicted"] + (mb * MiB) // 4096 // 2, p
        assert p["failed"] == 0, p
        agent.delete("rvm")
        assert users(devnode, key, "r1") == 0
    finally:
        mn.stop()


def test_disk_survives_agent_restart(tmp_path, devnode, key, keyfile):
    """The agent killed (SIGKILL) while the guest writes, with the device
    node frozen so that requests are surely in flight: QEMU's chardev
    reconnects to the restarted agent, which takes the disk back from the
    VM record and serves again what the dead agent took and never answered
    (the in-flight log QEMU keeps). The guest's write completes, nothing
    is lost, and the disk goes on working and detaches."""
    _, grant = volume(devnode, key, "ar", size=64 * MiB)
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, keep_vms=True)
    a2 = None
    try:
        j = a1.create("avm", [{"kind": "local"}, {"kind": "local"}], vcpus=2)
        pid = j["pid"]
        a1.call("POST", "/v1/vms/avm/disks", {"volume": "ar", "devnode": devnode.addr,
                                               "grant": grant, "serial": "ar"})
        vmlib.wait_for(lambda: a1.guest("avm", "DISKS")["disks"] != "", timeout=60)
        a1.guest("avm", f"DWRITE vda {32 * MiB} {8 * MiB} 61")
        a1.guest("avm", "DFLUSH vda")
        # The node frozen, a write: its first requests wait on the agent for an answer.
        os.kill(devnode.pid, signal.SIGSTOP)
        def write():
            try:
                a1.request("POST", "/v1/vms/avm/guest",
                           {"command": f"DWRITE vda 0 {24 * MiB} 62", "timeout_ms": 600000},
                           timeout=30)
            except OSError:
                pass                    # the agent is killed before it answers

        t = threading.Thread(target=write, daemon=True)
        t.start()
        time.sleep(2.0)
        a1.proc.kill()
        a1.proc.wait()
        os.kill(devnode.pid, signal.SIGCONT)
        assert os.kill(pid, 0) is None                  # QEMU runs on
        a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, run_dir=a1.run_dir)
        a2.qemu_pids.add(pid)
        st = a2.status("avm")
        assert st["state"] == "running" and st["pid"] == pid, st
        assert [(d["id"], d["volume"], d["pci"]) for d in st["disks"]] == \
            [("disk0", "ar", "0000:00:18.0")], st
        # The guest's write finishes (a guest command waits for the one before).
        v = a2.guest("avm", f"DVERIFY vda 0 {24 * MiB} 62")
        assert v["mismatches"] == 0, v
        v = a2.guest("avm", f"DVERIFY vda {32 * MiB} {8 * MiB} 61")
        assert v["mismatches"] == 0, v
        # What the dead agent had taken was served again from QEMU's in-flight log.
        log = (tmp_path / "compute-1.log").read_text()
        assert re.search(r"virtqueue \d+: \d+ requests taken before the back end restarted "
                         r"are served again", log), log[-3000:]
        # It goes on: a new write, flushed, is on the node; then a detach.
        a2.guest("avm", f"DWRITE vda {40 * MiB} {4 * MiB} 63")
        a2.guest("avm", "DFLUSH vda")
        with open(os.path.join(devnode.data, "ar.vol"), "rb") as f:
            f.seek(40 * MiB + 7 * 4096)
            page = f.read(4096)
        want = (40 * MiB + 7 * 4096) // 4096
        assert page == b"".join(vmlib.pattern_word(63, want, i).to_bytes(8, "little")
                                for i in range(512))
        vmlib.wait_for(lambda: users(devnode, key, "ar") == 1, timeout=30)
        a2.call("DELETE", "/v1/vms/avm/disks/disk0")
        vmlib.wait_for(lambda: a2.guest("avm", "DISKS")["disks"] == "", timeout=60)
        assert users(devnode, key, "ar") == 0
        a2.delete("avm")
    finally:
        if a2:
            assert a2.close() == []
        else:
            a1.close()


def test_disk_adopted_while_its_device_node_is_down(tmp_path, key, keyfile):
    """The agent stops (SIGTERM, leaving its VM running) and starts again
    while the disk's device node is down: the VM is adopted all the same (its disk starts in an outage, from the size the
    record keeps), the guest's I/O waits, and completes once the node is
    back on its address. Then, the node gone again, a VM delete does not
    wait for the requests that wait for it."""
    dn = vmlib.Devnode(tmp_path, key, keyfile, DEVNODE)
    _, grant = volume(dn, key, "dd", size=32 * MiB)
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, keep_vms=True)
    a2 = None
    try:
        pid = a1.create("dvm", [{"kind": "local"}, {"kind": "local"}], vcpus=1)["pid"]
        a1.call("POST", "/v1/vms/dvm/disks", {"volume": "dd", "devnode": dn.addr,
                                               "grant": grant, "outage_ms": 120000})
        vmlib.wait_for(lambda: a1.guest("dvm", "DISKS")["disks"] != "", timeout=60)
        a1.guest("dvm", f"DWRITE vda 0 {4 * MiB} 71")
        a1.guest("dvm", "DFLUSH vda")
        assert a1.stop() == 0            # SIGTERM: it leaves the VM running, its disk closed
        port = int(dn.addr.rsplit(":", 1)[1])
        assert dn.stop() == 0
        a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, run_dir=a1.run_dir)
        a2.qemu_pids.add(pid)
        st = a2.status("dvm")
        assert st["state"] == "running" and st["disks"][0]["outage_ms"] == 120000, st
        done = {}

        def write():
            done["r"] = a2.guest("dvm", f"DWRITE vda {8 * MiB} {4 * MiB} 72")

        t = threading.Thread(target=write, daemon=True)
        t.start()
        time.sleep(3)
        assert t.is_alive() and not done, "the write did not wait for the device node"
        dn = vmlib.Devnode(tmp_path, key, keyfile, DEVNODE, port=port)
        t.join(timeout=120)
        assert done.get("r"), "the write did not complete once the node was back"
        assert a2.guest("dvm", f"DVERIFY vda 0 {4 * MiB} 71")["mismatches"] == 0
        assert a2.guest("dvm", f"DVERIFY vda {8 * MiB} {4 * MiB} 72")["mismatches"] == 0
        # The node gone again, a write waiting: deleting the VM does not wait for it.
        assert dn.stop() == 0
        threading.Thread(target=lambda: a2.request(
            "POST", "/v1/vms/dvm/guest", {"command": f"DWRITE vda 0 {MiB} 73",
                                          "timeout_ms": 600000}, timeout=60),
            daemon=True).start()
        time.sleep(2)
        t0 = time.monotonic()
        a2.delete("dvm")
        assert time.monotonic() - t0 < 20, "the delete waited for the device node"
        dn = vmlib.Devnode(tmp_path, key, keyfile, DEVNODE, port=port)
    finally:
        if a2:
            assert a2.close() == []
        else:
            a1.close()
        dn.stop()


def test_a_bad_disk_record_is_not_adopted(tmp_path, devnode, key, keyfile):
    """A VM record whose disks are malformed is input like any other: the
    restarted agent says what is wrong, stops that QEMU and keeps running."""
    _, grant = volume(devnode, key, "br", size=8 * MiB)
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, keep_vms=True)
    pid = a1.create("bvm", [{"kind": "local"}, {"kind": "local"}], vcpus=1)["pid"]
    a1.call("POST", "/v1/vms/bvm/disks", {"volume": "br", "devnode": devnode.addr,
                                           "grant": grant})
    assert a1.stop() == 0
    rec = os.path.join(a1.run_dir, "bvm", "vm.json")
    with open(rec) as f:
        j = json.load(f)
    assert j["disks"][0]["volume"] == "br", j
    j["disks"][0]["id"] = "disk99"
    with open(rec, "w") as f:
        json.dump(j, f)
    a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, run_dir=a1.run_dir)
    try:
        a2.qemu_pids.add(pid)
        st, _ = a2.request("GET", "/v1/vms/bvm")
        assert st == 404
        vmlib.wait_for(lambda: not vmlib.pid_alive(pid), timeout=30)
        log = (tmp_path / "compute-1.log").read_text()
        assert re.search(r"vm bvm: cannot adopt QEMU \d+: disk: \"id\" must be disk0", log), \
            log[-2000:]
    finally:
        assert a2.close() == []
