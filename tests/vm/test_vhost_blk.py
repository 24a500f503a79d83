# SPDX-License-Identifier: MIT
"""VM tests: a real guest's virtio-blk disk served by disagg's
vhost-user-blk back end (disagg-vublk), on a local file and on a device
node's volume over the fabric.

Stock QEMU (vmlib.StockQemu) with guest RAM on a shared memory-backend-file
and -device vhost-user-blk-pci; the guest's disagg-guest writes and
verifies with O_DIRECT (DWRITE, DVERIFY), so every byte goes through the
back end. The device node is killed (kill -9) and brought back on the
same port while the guest's I/O waits for it.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import dproto as dp
import vmlib

MiB = 1 << 20
HOLDER = 5           # the node id the back end presents (the grant's holder)
DEVNODE = 300


@pytest.fixture
def shm():
    d = tempfile.mkdtemp(prefix="disagg-vublk-", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Devnode(vmlib.Proc):
    def __init__(self, tmp, keyfile, port, data):
        self.port = port
        super().__init__([vmlib.find_prog("disagg-devnode"), "--data", data, "--listen",
                          f"127.0.0.1:{port}", "--key", keyfile, "--grant-pubkey",
                          dp.grant_files(keyfile)[1], "--node-id", str(DEVNODE),
                          "--fabric-plaintext"],
                         os.path.join(tmp, f"devnode-{port}.log"), r"listening on (\S+)")
        self.addr = self.match.group(1)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


class Vublk(vmlib.Proc):
    def __init__(self, tmp, sock, *args):
        super().__init__([vmlib.find_prog("disagg-vublk"), "--socket", sock, *args],
                         os.path.join(tmp, "vublk.log"), r"listening on (\S+)")


def guest_with_disk(tmp, shm, sock, name="g"):
    """A stock QEMU whose RAM is shared (vhost-user needs it) with the disk at sock."""
    q = vmlib.StockQemu(tmp, name, extra=[
        "-object", f"memory-backend-file,id=mem0,size=256M,mem-path={shm}/ram-{name},share=on",
        "-machine", "memory-backend=mem0",
        "-chardev", f"socket,id=vb0,path={sock}",
        "-device", "vhost-user-blk-pci,chardev=vb0,num-queues=1"])
    try:
        q.connect(timeout=180)
    except Exception:
        print(q.logs())
        q.stop()
        raise
    return q


def pattern_page(seed, page):
    return b"".join(vmlib.pattern_word(seed, page, i).to_bytes(8, "little")
                    for i in range(512))


def test_local_file_disk(tmp_path, shm):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)
    sock = str(tmp_path / "vb.sock")
    b = Vublk(str(tmp_path), sock, "--file", str(disk), "--serial", "local-1")
    q = guest_with_disk(str(tmp_path), shm, sock)
    try:
        f = q.chan.ok("DISKS")
        assert f["disks"] == f"vda:{64 * MiB}:local-1", f
        assert q.chan.ok(f"DWRITE vda {4 * MiB} {8 * MiB} 7", timeout=300)["bytes"] == 8 * MiB
        q.chan.ok("DFLUSH vda")
        f = q.chan.ok(f"DVERIFY vda {4 * MiB} {8 * MiB} 7", timeout=300)
        assert f["mismatches"] == 0, f
        # What the guest wrote is in the file, where it wrote it.
        with open(disk, "rb") as fh:
            fh.seek(4 * MiB + 5 * 4096)
            assert fh.read(4096) == pattern_page(7, (4 * MiB) // 4096 + 5)
            fh.seek(0)
            assert fh.read(4096) == bytes(4096)
        # The check can fail: another seed mismatches, and zeroed ranges do.
        f = q.chan.ok(f"DVERIFY vda {4 * MiB} {MiB} 8")
        assert f["mismatches"] == 256 and f["first"] == 4 * MiB, f
        q.chan.ok(f"DZERO vda {4 * MiB} 65536")
        q.chan.ok(f"DDISCARD vda {4 * MiB + 65536} 65536")
        f = q.chan.ok(f"DVERIFY vda {4 * MiB} {MiB} 7")
        assert f["mismatches"] == 32, f
        with open(disk, "rb") as fh:
            fh.seek(4 * MiB)
            assert fh.read(131072) == bytes(131072)
    finally:
        q.stop()
        assert b.stop() == 0


def test_read_only_disk(tmp_path, shm):
    disk = tmp_path / "ro.img"
    with open(disk, "wb") as f:
        f.write(pattern_page(3, 0) * 16)
        f.truncate(16 * MiB)
    sock = str(tmp_path / "vb.sock")
    b = Vublk(str(tmp_path), sock, "--file", str(disk), "--read-only")
    q = guest_with_disk(str(tmp_path), shm, sock)
    try:
        assert q.chan.cmd("DWRITE vda 0 4096 1").startswith("ERR")
        f = q.chan.ok("DVERIFY vda 0 4096 3")
        assert f["mismatches"] == 0, f
    finally:
        q.stop()
        assert b.stop() == 0
    with open(disk, "rb") as fh:
        assert fh.read(4096) == pattern_page(3, 0)


def remote_disk(tmp_path, keyfile, key, size=64 * MiB, outage_ms=30000):
    """A device node with volume "disk1", and disagg-vublk serving it with a grant."""
    data = str(tmp_path / "volumes")
    dn = Devnode(str(tmp_path), keyfile, free_port(), data)
    c = dp.DevConn(dn.addr, tls=False).login(key, 1)
    v = c.vol("VOL_CREATE", "disk1", size)
    c.close()
    grant = dp.volume_grant(key, DEVNODE, HOLDER, v["key"]).hex()
    sock = str(tmp_path / "vb.sock")
    b = Vublk(str(tmp_path), sock, "--devnode", dn.addr, "--volume", "disk1", "--grant", grant,
              "--key", keyfile, "--node-id", str(HOLDER), "--serial", "remote-1",
              "--outage-ms", str(outage_ms))
    return dn, b, sock, os.path.join(data, "disk1.vol")


def test_remote_disk_through_a_device_node(tmp_path, shm, keyfile, key):
    dn, b, sock, volfile = remote_disk(tmp_path, keyfile, key)
    q = guest_with_disk(str(tmp_path), shm, sock)
    try:
        assert q.chan.ok("DISKS")["disks"] == f"vda:{64 * MiB}:remote-1"
        q.chan.ok(f"DWRITE vda 0 {16 * MiB} 11", timeout=300)
        q.chan.ok("DFLUSH vda")
        f = q.chan.ok(f"DVERIFY vda 0 {16 * MiB} 11", timeout=300)
        assert f["mismatches"] == 0, f
        # The bytes are in the device node's volume file.
        with open(volfile, "rb") as fh:
            fh.seek(9 * 4096)
            assert fh.read(4096) == pattern_page(11, 9)
        q.chan.ok("DZERO vda 0 65536")
        f = q.chan.ok(f"DVERIFY vda 0 {MiB} 11")
        assert f["mismatches"] == 16, f
    finally:
        q.stop()
        assert b.stop() == 0
        assert dn.stop() == 0


def test_flushed_writes_survive_a_device_node_kill9_and_waiting_io_heals(tmp_path, shm,
                                                                         keyfile, key):
    dn, b, sock, volfile = remote_disk(tmp_path, keyfile, key)
    q = guest_with_disk(str(tmp_path), shm, sock)
    try:
        q.chan.ok(f"DWRITE vda 0 {8 * MiB} 21", timeout=300)
        q.chan.ok("DFLUSH vda")
        dn.kill9()
        # The guest reads while the node is gone: the reads wait (hard mode) ...
        q.chan.send(f"DVERIFY vda 0 {8 * MiB} 21")
        with pytest.raises(TimeoutError):
            q.chan.answer(timeout=3)
        # ... and complete, with every flushed byte, once it is back on its port.
        dn2 = Devnode(str(tmp_path), keyfile, dn.port, str(tmp_path / "volumes"))
        f = vmlib.fields(q.chan.answer(timeout=120))
        assert f["mismatches"] == 0, f
        # Writes go on to the new node too.
        q.chan.ok(f"DWRITE vda {8 * MiB} {MiB} 22", timeout=300)
        q.chan.ok("DFLUSH vda")
        assert q.chan.ok(f"DVERIFY vda {8 * MiB} {MiB} 22")["mismatches"] == 0
        assert "back after" in b.stderr()
    finally:
        q.stop()
        assert b.stop() == 0
        if dn.alive():
            dn.stop()
    assert dn2.stop() == 0


def test_an_outage_past_its_time_fails_with_eio_then_heals(tmp_path, shm, keyfile, key):
    dn, b, sock, volfile = remote_disk(tmp_path, keyfile, key, outage_ms=2000)
    q = guest_with_disk(str(tmp_path), shm, sock)
    dn2 = None
    try:
        q.chan.ok(f"DWRITE vda 0 {MiB} 31")
        q.chan.ok("DFLUSH vda")
        dn.kill9()
        t0 = time.time()
        ans = q.chan.cmd(f"DVERIFY vda 0 {MiB} 31", timeout=120)
        assert ans.startswith("ERR") and "error" in ans.lower(), ans
        assert time.time() - t0 >= 1.5
        dn2 = Devnode(str(tmp_path), keyfile, dn.port, str(tmp_path / "volumes"))
        # The back end finds it again by itself; the guest's next read works.
        ok = False
        for _ in range(50):
            ans = q.chan.cmd(f"DVERIFY vda 0 {MiB} 31", timeout=120)
            if ans.startswith("OK"):
                ok = vmlib.fields(ans)["mismatches"] == 0
                break
            time.sleep(0.2)
        assert ok, ans
    finally:
        q.stop()
        assert b.stop() == 0
        if dn2:
            assert dn2.stop() == 0
