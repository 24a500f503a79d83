# SPDX-License-Identifier: MIT
"""VM test: a new VM created with its disks, its boot files and a cloud-init
seed (POST /v1/vms "disks", "boot", "cloud_init"; docs/compute.md,
"Booting an image").

The root disk is on QEMU's command line from the start: the guest sees
vda when it boots, with no hot-plug. A "boot" naming this node's own
kernel and initramfs by path boots as the default does. The cloud-init
seed is a read-only local disk after the remote ones (vdb here) whose
bytes hold the user-data. A "boot" of {"firmware": true} boots the root
disk's own boot loader (a boot sector that writes to the serial port).
"""
import os

import pytest

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
    """A volume on d and a grant for this test's agent (vmlib.Devnode.volume)."""
    return d.volume(name, size, holder=AGENT)[1]


def test_disks_boot_and_seed_at_create(agent, devnode, key):
    grant = volume(devnode, key, "root1")
    kernel, initrd = vmlib.guest_image()
    j = agent.create("vm1", [{"kind": "local"}, {"kind": "local"}],
                     disks=[{"volume": "root1", "devnode": devnode.addr, "grant": grant,
                             "serial": "root1"}],
                     boot={"kernel": kernel, "initrd": initrd, "append": "quiet",
                           "guest_agent": True},
                     cloud_init={"hostname": "web", "user_data":
                                 "#cloud-config\nruncmd: [echo seed-marker-1234]\n"})
    assert [d["id"] for d in j["disks"]] == ["disk0"]
    assert j["disks"][0]["pci"] == "0000:00:18.0"
    # At boot, no hot-plug: the root disk first, then the seed (no serial).
    disks = agent.guest("vm1", "DISKS")["disks"].split(",")
    assert sorted(disks) == [f"vda:{32 * MiB}:root1", f"vdb:{1024 * 1024}:-"], disks
    f = agent.guest("vm1", "DFIND vdb 1048576 seed-marker-1234")
    assert f["found"] == 1, f
    assert agent.guest("vm1", "DFIND vdb 1048576 local-hostname:")["found"] == 1
    agent.guest("vm1", f"DWRITE vda 0 {MiB} 5")
    agent.guest("vm1", "DFLUSH vda")
    assert agent.guest("vm1", f"DVERIFY vda 0 {MiB} 5")["mismatches"] == 0
    # A disk hot-plugged later does not take the seed's slot.
    grant2 = volume(devnode, key, "data2")
    d = agent.call("POST", "/v1/vms/vm1/disks", {"volume": "data2", "devnode": devnode.addr,
                                                  "grant": grant2})
    assert d["id"] == "disk2", d
    agent.delete("vm1")


def test_ssh_keys_seed_and_refusals(agent, devnode, key):
    kernel, initrd = vmlib.guest_image()
    agent.create("vm2", [{"kind": "local"}, {"kind": "local"}],
                 cloud_init={"ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza test@x"]})
    assert agent.guest("vm2", "DISKS")["disks"] == f"vda:{1024 * 1024}:-"
    assert agent.guest("vm2", "DFIND vda 1048576 ssh_authorized_keys:")["found"] == 1
    assert agent.guest("vm2", "DFIND vda 1048576 AAAAC3Nza")["found"] == 1
    agent.delete("vm2")
    bad = [
        ({"boot": {"kernel": "relative/vmlinuz"}}, "absolute path"),
        ({"boot": {"kernel": "/nonexistent/vmlinuz"}}, "/nonexistent/vmlinuz"),
        ({"boot": {"initrd": initrd}}, "\"kernel\" (or \"firmware\": true) is required"),
        ({"boot": {"kernel": kernel, "cmdline": "x"}}, "unknown member"),
        ({"boot": {"kernel": kernel, "guest_agent": "yes"}}, "guest_agent"),
        ({"boot": {"kernel": "http://127.0.0.1:9/v1/images/x/kernel"}}, "cannot fetch"),
        ({"cloud_init": {"hostname": "a b"}}, "hostname"),
        ({"cloud_init": {"ssh_authorized_keys": "k"}}, "ssh_authorized_keys"),
        ({"cloud_init": {"ssh_authorized_keys": ["k"], "user_data": "x"}}, "not both"),
        ({"disks": [{"volume": "nope", "devnode": devnode.addr, "grant": "00"}]}, "grant"),
    ]
    for extra, words in bad:
        st, j = agent.request("POST", "/v1/vms", dict(name="bad", sections=[{"kind": "local"}],
                                                      **extra))
        assert st in (400, 502), (extra, st, j)
        assert words in j["error"]["message"], (extra, j)
    assert agent.call("GET", "/v1/vms")["vms"] == [] or all(
        v["name"] != "bad" for v in agent.call("GET", "/v1/vms")["vms"])


def test_no_guest_agent_runs_and_is_adopted(tmp_path, keyfile):
    """A "boot" whose guest runs no disagg-guest ("guest_agent": false, the
    default): the VM runs once QEMU is up, a restarted agent adopts it
    without a guest channel, and guest commands say why they cannot run."""
    kernel, initrd = vmlib.guest_image()
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, keep_vms=True)
    try:
        j = a1.create("img", [{"kind": "local"}, {"kind": "local"}],
                      boot={"kernel": kernel, "initrd": initrd})
        assert j["state"] == "running", j
        pid = j["pid"]
        assert a1.stop() == 0
    except BaseException:
        a1.close()
        raise
    a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, run_dir=a1.run_dir)
    try:
        a2.qemu_pids.add(pid)
        st = a2.status("img")
        assert st["state"] == "running" and st["pid"] == pid, st
        code, j = a2.request("POST", "/v1/vms/img/guest", {"command": "MEMINFO"})
        assert code == 409 and "no disagg-guest" in j["error"]["message"], j
        a2.delete("img")
    finally:
        a2.close()


def boot_sector(text):
    """A 512-byte MBR that writes text to COM1 and halts (16-bit, loaded at 0x7c00)."""
    code = bytes([0xFA,                       # cli
                  0x31, 0xC0,                 # xor ax, ax
                  0x8E, 0xD8,                 # mov ds, ax
                  0xBA, 0xF8, 0x03,           # mov dx, 0x3f8
                  0xBE, 0x16, 0x7C,           # mov si, 0x7c16 (the text, at offset 22)
                  0xAC,                       # 11: lodsb
                  0x84, 0xC0,                 # test al, al
                  0x74, 0x03,                 # jz 19
                  0xEE,                       # out dx, al
                  0xEB, 0xF8,                 # jmp 11
                  0xF4,                       # 19: hlt
                  0xEB, 0xFD])                # jmp 19
    assert len(code) == 22
    sector = code + text.encode() + b"\0"
    return sector.ljust(510, b"\0") + b"\x55\xaa"


def test_firmware_boots_the_disks_own_boot_loader(agent, devnode, key):
    grant = volume(devnode, key, "own1")
    with open(os.path.join(devnode.data, "own1.vol"), "r+b") as f:
        f.write(boot_sector("disagg: booted by the firmware from a remote disk\r\n"))
    j = agent.create("fw", [{"kind": "local"}, {"kind": "local"}],
                     disks=[{"volume": "own1", "devnode": devnode.addr, "grant": grant}],
                     boot={"firmware": True})
    assert j["state"] == "running", j
    assert vmlib.wait_for(lambda: "booted by the firmware" in agent.console("fw"), 60), \
        agent.console("fw")[-2000:]
    # Firmware takes nothing of ours: no kernel, initrd or command line with it.
    st, e = agent.request("POST", "/v1/vms", {"name": "fw2", "sections": [{"kind": "local"}],
                                               "boot": {"firmware": True, "kernel": "/x"}})
    assert st == 400 and "firmware" in e["error"]["message"], e
    agent.delete("fw")
