# SPDX-License-Identifier: MIT
"""VM test: a slot made from an image moves to another compute node
(docs/compute.md, "Booting an image"; docs/api.md, "Disks in a compute
migration"), through the orchestrator of `disagg up --computes 2`.

The image is the project's own guest (build/guest: its kernel and
initramfs) with a small root volume. `disagg slot create --image
--user-data` boots it: the agent fetches the kernel and initramfs from
the orchestrator, the root volume is disk0 and the cloud-init seed the
next slot. Such a VM runs no guest channel of the agent's (an image's
kernel need not have disagg-guest), so the test speaks to the guest's
disagg-guest on QEMU's guest.sock itself (vmlib.GuestChan): the guest
writes a pattern to its root disk and reads the seed, then stays idle
while `disagg slot migrate` moves it. On the destination: the agent says
the same boot, cloud-init and seed slot (GET /v1/vms/NAME/boot), QEMU's
seed device is at the same PCI address with a seed of the same bytes,
and the guest answers, its disk's data verifies, its seed reads. The
same after the source's agent was killed and restarted before the move:
the restarted agent still says the boot, cloud-init and seed slot.
"""
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

import pytest

import vmlib
from test_cluster import ROOT, Cluster, need_vm_host
from test_migration_cluster import TOKENS, http, orch

MiB = 1 << 20
MARKER = "seed-marker-5150"


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    for tool in ("mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the cloud-init seed)")
    c = Cluster(tmp_path / "cluster")
    c.disagg("up", "--memnodes", "1", "--computes", "2", "--pool", "1G", "--accel", "tcg",
             timeout=180)
    TOKENS.update({x["http"]: c.token_for(x["http"]) for x in c.info()["components"]
                   if x.get("http")})
    try:
        yield c
    finally:
        c.disagg("down", check=False, timeout=120)
        c.logs_clean()
    # A clean exit with no VM left takes the default run directory away,
    # the boot cache's kernels and initramfs with it (they are in memory).
    logs = "".join(f.read_text(errors="replace") for f in (c.data / "logs").glob("compute-*.log"))
    run_dirs = set(re.findall(r", run dir (\S+), ", logs))
    assert run_dirs, "no agent said where its run directory is"
    left = [d for d in run_dirs if os.path.exists(d)]
    assert not left, f"run directories left after disagg down: {left}"


def guest_image(tmp_path):
    """An image directory: build/guest's kernel and initramfs, an 8 MiB root."""
    d = tmp_path / "img"
    d.mkdir()
    for f in ("vmlinuz", "initrd.img"):
        shutil.copy(ROOT / "build" / "guest" / f, d / f)
    with open(d / "root.img", "wb") as f:
        f.truncate(8 * MiB)
    (d / "image.json").write_text(json.dumps(
        {"rootfs": "root.img", "kernel": "vmlinuz", "initrd": "initrd.img"}))
    return d


def agent_of(c, slot):
    """(compute node id, its agent's HTTP address) of slot."""
    node = c.json("slot", "show", slot)["compute"]
    return node, c.component(f"compute-{node}")["http"]


def qemu_of(addr, slot):
    """The VM's QEMU command line (its pid from the agent), one string."""
    st, vm = http(addr, "GET", f"/v1/vms/{slot}")
    assert st == 200 and vm["state"] == "running", vm
    return vmlib.pid_cmdline(vm["pid"])


def guest_chan(cmdline):
    sock = re.search(r"path=([^,\s]+/guest\.sock)", cmdline).group(1)
    return vmlib.GuestChan(sock, timeout=60)


def seed_of(cmdline):
    """(PCI slot of the seed device, sha256 of its file) from QEMU's command line."""
    addr = re.search(r"id=seed-dev,drive=seed,addr=(0x[0-9a-f]+)", cmdline).group(1)
    path = re.search(r"file=([^,\s]+/seed\.img),", cmdline).group(1)
    with open(path, "rb") as f:
        return int(addr, 16), hashlib.sha256(f.read()).hexdigest()


def test_image_slot_moves_with_its_boot_files_and_seed(cluster, tmp_path):
    c = cluster
    c.disagg("image", "import", "tiny", guest_image(tmp_path), timeout=300)
    ud = tmp_path / "user-data"
    ud.write_text(f"#cloud-config\nruncmd: [echo {MARKER}]\n")
    t0 = time.monotonic()
    c.disagg("slot", "create", "img", "--image", "tiny", "--memory", "256M", "--remote", "100",
             "--user-data", str(ud), timeout=300)
    src, a1 = agent_of(c, "img")
    st, b1 = http(a1, "GET", "/v1/vms/img/boot")
    assert st == 200, b1
    assert b1["boot"]["kernel"].endswith("/v1/images/tiny/kernel"), b1
    assert b1["cloud_init"]["user_data"] == ud.read_text(), b1
    # The root volume is disk0 (slot 0x18): the seed takes the next slot.
    assert b1["seed"] == {"pci": "0000:00:19.0", "size": MiB}, b1
    line1 = qemu_of(a1, "img")
    seed1 = seed_of(line1)
    assert seed1[0] == 0x19 and "-kernel" in line1 and "boot-cache" in line1, line1

    # Its READY went to no one (QEMU drops what the guest writes to an
    # unconnected channel); a command waits in the socket until it reads.
    g = guest_chan(line1)
    disks = sorted(g.ok("DISKS", timeout=600)["disks"].split(","))
    assert disks[0].startswith("vda:") and disks[0].endswith(":img-root"), disks
    assert disks[1] == f"vdb:{MiB}:-", disks
    g.ok(f"DWRITE vda 0 {4 * MiB} 61")
    g.ok("DFLUSH vda")
    assert g.ok(f"DVERIFY vda 0 {4 * MiB} 61")["mismatches"] == 0
    assert g.ok(f"DFIND vdb {MiB} {MARKER}")["found"] == 1
    g.close()
    booted = time.monotonic() - t0

    # The guest idles while it moves (a busy TCG guest is not what is tested here).
    (dst,) = [x["node_id"] for x in c.info()["components"]
              if x["name"].startswith("compute-") and x["node_id"] != src]
    t1 = time.monotonic()
    c.disagg("slot", "migrate", "img", "--to", str(dst), timeout=300)
    moved = time.monotonic() - t1
    node, a2 = agent_of(c, "img")
    assert node == dst
    st, s = http(orch(c), "GET", "/v1/slots/img")
    assert s["state"] == "running" and s["image"] == "tiny", s

    # The destination has the same boot, cloud-init and seed, at the same slot.
    st, b2 = http(a2, "GET", "/v1/vms/img/boot")
    assert st == 200 and b2 == b1, (b1, b2)
    line2 = qemu_of(a2, "img")
    assert "-incoming" in line2 and "-kernel" in line2, line2
    assert seed_of(line2) == seed1, (seed1, line2)
    # The guest runs there: it answers, its disk verifies, its seed reads.
    g = guest_chan(line2)
    assert g.ok(f"DVERIFY vda 0 {4 * MiB} 61", timeout=300)["mismatches"] == 0
    assert g.ok(f"DFIND vdb {MiB} {MARKER}")["found"] == 1
    g.ok(f"DWRITE vda {4 * MiB} {MiB} 62")
    assert g.ok(f"DVERIFY vda {4 * MiB} {MiB} 62")["mismatches"] == 0
    g.close()
    print(f"\nimage slot: booted and written in {booted:.1f} s, moved in {moved:.1f} s (TCG)")
    c.disagg("slot", "delete", "img", timeout=120)
    assert "img-root" not in c.disagg("volume", "ls").stdout


def test_image_slot_moves_after_its_agent_restarted(cluster, tmp_path):
    c = cluster
    c.disagg("image", "import", "tiny", guest_image(tmp_path), timeout=300)
    ud = tmp_path / "user-data"
    ud.write_text(f"#cloud-config\nruncmd: [echo {MARKER}]\n")
    c.disagg("slot", "create", "rs", "--image", "tiny", "--memory", "256M", "--remote", "100",
             "--user-data", str(ud), timeout=300)
    src, a1 = agent_of(c, "rs")
    st, b1 = http(a1, "GET", "/v1/vms/rs/boot")
    assert st == 200 and b1["seed"] == {"pci": "0000:00:19.0", "size": MiB}, b1
    qemu = http(a1, "GET", "/v1/vms/rs")[1]["pid"]
    # SIGKILL the source's agent and start it again: it adopts the VM.
    comp = c.component(f"compute-{src}")
    argv = pathlib.Path(f"/proc/{comp['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
    os.kill(comp["pid"], signal.SIGKILL)
    logpath = c.data / "logs" / f"compute-{src}-restarted.log"
    log = open(logpath, "ab")
    restarted = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
    log.close()
    try:
        # Registered again (its HTTP port may even be the old one again).
        def registered():
            assert restarted.poll() is None, logpath.read_text(errors="replace")[-3000:]
            return "registered with the orchestrator" in logpath.read_text(errors="replace")
        assert vmlib.wait_for(registered, 120, 0.5), logpath.read_text(errors="replace")[-3000:]
        a1b = next(x for x in c.json("node", "ls")["nodes"] if x["node_id"] == src)["http"]
        TOKENS[a1b] = TOKENS[a1]
        assert vmlib.wait_for(lambda: http(a1b, "GET", "/v1/vms/rs")[1].get("state")
                              == "running", 60, 0.5)
        assert http(a1b, "GET", "/v1/vms/rs")[1]["pid"] == qemu
        st, b2 = http(a1b, "GET", "/v1/vms/rs/boot")
        assert st == 200 and b2 == b1, (b1, b2)
        (dst,) = [x["node_id"] for x in c.info()["components"]
                  if x["name"].startswith("compute-") and x["node_id"] != src]
        c.disagg("slot", "migrate", "rs", "--to", str(dst), timeout=300)
        node, a2 = agent_of(c, "rs")
        assert node == dst
        line2 = qemu_of(a2, "rs")
        assert seed_of(line2)[0] == 0x19, line2
        g = guest_chan(line2)
        assert g.ok(f"DFIND vdb {MiB} {MARKER}", timeout=300)["found"] == 1
        g.close()
        c.disagg("slot", "delete", "rs", timeout=120)
    finally:
        # A failed step leaves the slot: its QEMU outlives a stopped agent.
        c.disagg("slot", "delete", "rs", check=False, timeout=120)
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(60)
