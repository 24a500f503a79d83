# SPDX-License-Identifier: MIT
"""VM test: a VM with a remote disk moves to another compute node
(docs/compute.md, "Disks" and the incoming VM; vm_disk_mig.c).

Two agents, a memory node and a device node on loopback (TLS). The VM's
RAM is all on the memory node and its disk is a device node's volume.

- The guest writes 48 MiB to the disk while the VM moves: on the
  destination, what it wrote before and during the move verifies, the
  destination took the volume over (the device node's epoch is the
  destination grant's) and the source can write no more.
- The destination only checks its grant read-only until the guest runs
  there: a migration that fails after the destination opened the volume
  (its QEMU killed while the source waits at pre-switchover, with the
  disk's rings stopped; or gone before the move) leaves the source
  writing as before, and a later migration works.
"""
import os
import signal
import threading
import time

import pytest

import dproto as dp
import vmlib
from test_compute_migration import incoming, migrate, regrant, running

MiB = 1 << 20


def epoch_of(dn, name):
    raw = os.getxattr(os.path.join(dn.data, f"{name}.vol"), "user.disagg.epoch")
    return int.from_bytes(raw, "little")


def boot_with_disk(cluster, key, name):
    mn = cluster.memnode()
    dn = cluster.devnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    v, g1 = dn.volume(name, 96 * MiB, holder=1, epoch=1)
    secs = [mn.section(holder=1) for _ in range(4)]
    a1.create(name, secs, vcpus=2)
    d = a1.call("POST", f"/v1/vms/{name}/disks", {"volume": name, "devnode": dn.addr,
                                                   "grant": g1, "serial": name})
    assert d["pci"] == "0000:00:18.0", d
    assert vmlib.wait_for(lambda: a1.guest(name, "DISKS")["disks"] != "", timeout=60)
    a1.guest(name, f"DWRITE vda 0 {16 * MiB} 41")
    a1.guest(name, "DFLUSH vda")
    return dn, a1, a2, v, secs


def destination(a1, a2, dn, key, v, name, secs, epoch):
    """The incoming VM on a2, its disks as a1 shows them with grants of `epoch`."""
    disks = [dict(d, grant=dn.grant(v, 2, epoch=epoch)) for d in a1.status(name)["disks"]]
    j = incoming(a2, name, [regrant(key, s, 2) for s in secs], vcpus=2, disks=disks)
    assert [d["id"] for d in j["disks"]] == ["disk0"], j
    return j


def test_disk_moves_with_the_vm_during_io(cluster, key):
    dn, a1, a2, v, secs = boot_with_disk(cluster, key, "dm")
    dst = destination(a1, a2, dn, key, v, "dm", secs, epoch=2)
    # The destination checked its grant read-only: nothing taken from the source yet.
    assert epoch_of(dn, "dm") == 1
    a1.guest("dm", "DWRITE vda 0 4096 41")           # the source still writes

    result = {}

    def write_during_move():
        result["w"] = a1.request("POST", "/v1/vms/dm/guest",
                                 {"command": f"DWRITE vda {16 * MiB} {48 * MiB} 42",
                                  "timeout_ms": 300000}, timeout=400)

    t = threading.Thread(target=write_during_move)
    t.start()
    time.sleep(1.0)                                   # the write is under way
    st, res = migrate(a1, "dm", dst["migration_uri"])
    print("migration with a disk under writes:", {k: v for k, v in res.items() if k != "hot"})
    t.join(400)
    assert not t.is_alive()
    assert result["w"][0] in (200, 503), result
    running(a2, "dm")
    # The guest finishes its write here (one command at a time), then everything verifies.
    a2.guest("dm", "DFLUSH vda")
    assert a2.guest("dm", f"DVERIFY vda 0 {16 * MiB} 41")["mismatches"] == 0
    assert a2.guest("dm", f"DVERIFY vda {16 * MiB} {48 * MiB} 42")["mismatches"] == 0
    assert a2.status("dm")["disks"][0]["volume"] == "dm"
    # The destination took the volume over: its epoch, and the source's handle is fenced.
    assert epoch_of(dn, "dm") == 2
    old = dp.DevConn(dn.addr).login(key, 1, orch=False)
    h, _ = old.blk_open(bytes.fromhex(dn.grant(v, 1, epoch=2)), "dm", dp.BLK_RDONLY)
    assert old.blk_read(h, 0, 512) == b"".join(
        vmlib.pattern_word(41, 0, i).to_bytes(8, "little") for i in range(64))
    with pytest.raises(dp.ProtoError):
        old.blk_open(bytes.fromhex(dn.grant(v, 1, epoch=1)), "dm")   # no writer of epoch 1
    old.close()
    a1.delete("dm")
    a2.delete("dm")


def test_failed_move_leaves_the_source_writing(cluster, key):
    dn, a1, a2, v, secs = boot_with_disk(cluster, key, "st")
    # 1. The destination QEMU dies while the source waits at pre-switchover: QEMU
    #    stopped the disk's rings there and starts them again when it resumes.
    dst = destination(a1, a2, dn, key, v, "st", secs, epoch=2)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", migrate(
        a1, "st", dst["migration_uri"], expect=(503,), hold_at_switchover_ms=1500)))
    t.start()
    assert vmlib.wait_for(lambda: a1.status("st").get("migration_phase") == "pre-switchover",
                          60, 0.02), a1.status("st")
    os.kill(dst["pid"], signal.SIGKILL)
    t.join(120)
    assert "r" in out, "the migration did not answer"
    assert a1.status("st")["state"] == "running", out["r"]
    a1.guest("st", f"DWRITE vda {16 * MiB} {8 * MiB} 43", timeout_ms=120000)
    a1.guest("st", "DFLUSH vda", timeout_ms=60000)
    assert a1.guest("st", f"DVERIFY vda {16 * MiB} {8 * MiB} 43")["mismatches"] == 0
    assert epoch_of(dn, "st") == 1       # the destination only checked its grant
    assert vmlib.wait_for(lambda: a2.status("st")["state"] == "failed", 15)
    a2.delete("st")
    # 2. The destination is gone before the migration starts.
    dst = destination(a1, a2, dn, key, v, "st", secs, epoch=3)
    a2.delete("st")
    migrate(a1, "st", dst["migration_uri"], expect=(503,))
    assert a1.status("st")["state"] == "running"
    a1.guest("st", f"DWRITE vda {24 * MiB} {4 * MiB} 44", timeout_ms=120000)
    # 3. A migration with the epoch after those works.
    dst = destination(a1, a2, dn, key, v, "st", secs, epoch=4)
    migrate(a1, "st", dst["migration_uri"])
    running(a2, "st")
    assert a2.guest("st", f"DVERIFY vda 0 {16 * MiB} 41")["mismatches"] == 0
    assert a2.guest("st", f"DVERIFY vda {16 * MiB} {8 * MiB} 43")["mismatches"] == 0
    assert a2.guest("st", f"DVERIFY vda {24 * MiB} {4 * MiB} 44")["mismatches"] == 0
    a2.guest("st", "DWRITE vda 0 4096 45")
    assert epoch_of(dn, "st") == 4
    a1.delete("st")
    a2.delete("st")
