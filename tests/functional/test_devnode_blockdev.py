# SPDX-License-Identifier: MIT
"""Block devices given to the device node as volumes (--block-device
NAME=PATH), on a real loop device: listed with their kind and size, block
I/O through grants landing on the device, the epoch kept across a kill -9
in the data directory's state file, the refusals (delete, resize, a name
taken), the exclusive open, and the options refused at start."""
import json
import os
import subprocess
import urllib.request

import pytest

import dproto as dp
from conftest import find_prog
from test_devnode import (CLIENT, MiB, Devnodes, client, dnctl, open_volume, orch,  # noqa: F401
                          status_of, devnodes)

SIZE = 64 * MiB


@pytest.fixture
def loopdev(tmp_path):
    """A loop device over a sparse file of SIZE bytes: (device, backing file).
    Skipped where there are no loop devices; always detached at the end."""
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(SIZE)
    try:
        p = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True,
                           text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("losetup is not installed: no loop device to serve")
    dev = p.stdout.strip()
    if p.returncode != 0 or not dev.startswith("/dev/"):
        pytest.skip(f"no loop device on this machine (losetup -f --show: {p.stderr.strip()})")
    try:
        yield dev, img
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60)


def grant(d, key, vkey, epoch, rights=dp.R_READ | dp.R_WRITE, holder=CLIENT):
    return dp.mint_grant(key, d.node_id, holder, vkey & 0xffffffff, vkey >> 32, rights,
                         epoch=epoch)


def read_dev(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def test_a_block_device_is_a_volume(loopdev, devnodes, key, keyfile):
    dev, img = loopdev
    d = devnodes.start(extra=["--block-device", f"disk={dev}"])
    o = orch(d, key)
    o.vol("VOL_CREATE", "afile", 4 * MiB)
    vols, nxt = o.vol_list()
    assert [(v["name"], v["kind"]) for v in vols] == [("afile", "file"), ("disk", "block")]
    disk = o.vol("VOL_STAT", "disk")
    assert disk["kind"] == "block" and disk["size"] == SIZE and disk["key"]
    # The C client shows the kind; /healthz the device's path.
    ls = {v["name"]: v for v in json.loads(dnctl(d, keyfile, "vol-ls").stdout)}
    assert ls["disk"]["kind"] == "block" and ls["afile"]["kind"] == "file"
    assert ls["disk"]["size"] == SIZE
    with urllib.request.urlopen(f"http://{d.http}/healthz", timeout=10) as r:
        h = json.loads(r.read())
    assert h["volumes"] == 2 and h["block_devices"] == [
        {"name": "disk", "device": dev, "size": SIZE}]

    # Block I/O through a grant, as for a file; the data is on the device.
    c, hd, size = open_volume(d, key, "disk", disk["key"])
    assert size == SIZE
    data = os.urandom(MiB)
    c.blk_write(hd, 5 * MiB, data)
    c.blk_write(hd, SIZE - 512, b"\x5a" * 512)
    c.blk_flush(hd)
    assert c.blk_read(hd, 5 * MiB, MiB) == data
    assert read_dev(dev, 5 * MiB, MiB) == data
    assert read_dev(dev, SIZE - 512, 512) == b"\x5a" * 512
    with open(img, "rb") as f:                      # flushed: in the loop device's file too
        f.seek(5 * MiB)
        assert f.read(MiB) == data
    c.blk_io("BLK_DISCARD", hd, 5 * MiB, 64 * 1024)
    c.blk_io("BLK_WRITE_ZEROES", hd, 5 * MiB + 128 * 1024, 4096)
    assert c.blk_read(hd, 5 * MiB, 64 * 1024) == bytes(64 * 1024)
    assert read_dev(dev, 5 * MiB + 128 * 1024, 8192) == bytes(4096) + data[135168:139264]
    assert status_of(lambda: c.blk_read(hd, SIZE, 512)) == "RANGE"
    assert o.vol("VOL_STAT", "disk")["users"] == 1

    # What cannot apply to a device is refused, open or not.
    assert status_of(lambda: o.vol("VOL_DELETE", "disk")) == "NOTSUP"
    assert status_of(lambda: o.vol("VOL_RESIZE", "disk", 2 * SIZE)) == "NOTSUP"
    assert status_of(lambda: o.vol("VOL_CREATE", "disk", MiB)) == "EXIST"
    assert status_of(lambda: o.vol("VOL_CLONE", "disk", src="afile")) == "EXIST"
    p = dnctl(d, keyfile, "vol-delete", "disk", check=False)
    assert p.returncode != 0 and "not supported" in p.stderr.lower(), p.stderr
    c.blk_close(hd)
    assert status_of(lambda: o.vol("VOL_DELETE", "disk")) == "NOTSUP"
    assert "given and taken away with --block-device" in d.stderr()

    # Cloning from the device makes a file volume with its data, zeros left as holes.
    copy = o.vol("VOL_CLONE", "copy", src="disk")
    assert copy["kind"] == "file" and copy["size"] == SIZE and copy["key"] != disk["key"]
    assert copy["allocated"] < 8 * MiB
    with open(os.path.join(d.data, "copy.vol"), "rb") as f:
        f.seek(5 * MiB)
        got = f.read(MiB)
    assert got[:65536] == bytes(65536) and got[65536:131072] == data[65536:131072]
    assert got[131072:135168] == bytes(4096)
    assert o.vol("VOL_STAT", "disk")["size"] == SIZE           # still there, unchanged


def test_block_device_epochs_survive_a_restart(loopdev, devnodes, key, tmp_path):
    dev, _ = loopdev
    flag = ["--block-device", f"bd0={dev}"]
    d = devnodes.start(extra=flag)
    vkey = orch(d, key).vol("VOL_STAT", "bd0")["key"]
    a = client(d, key)
    ha, _ = a.blk_open(grant(d, key, vkey, 1), "bd0")
    a.blk_write(ha, 0, b"a" * 512)
    b = client(d, key)
    hb, _ = b.blk_open(grant(d, key, vkey, 2), "bd0")        # raises the epoch to 2
    assert status_of(lambda: a.blk_write(ha, 0, b"x" * 512)) == "FENCED"
    b.blk_write(hb, 0, b"b" * 512)
    b.blk_flush(hb)
    # Kept in the state file beside the file volumes (a device node holds no xattrs).
    st = json.loads(open(os.path.join(d.data, "bd0.blk")).read())
    assert st["epoch"] == 2 and st["device"] == dev and int(st["key"], 16) == vkey
    # The device is the node's alone: a second node is refused it.
    p = subprocess.run(devnodes_argv(devnodes, tmp_path / "other", flag), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "in use" in p.stderr, p.stderr
    d.kill9()
    d2 = devnodes.start(data=d.data, extra=flag)
    o2 = orch(d2, key)
    assert o2.vol("VOL_STAT", "bd0")["key"] == vkey            # the same volume to grants
    c = client(d2, key)
    assert status_of(lambda: c.blk_open(grant(d2, key, vkey, 1), "bd0")) == "FENCED"
    h, _ = c.blk_open(grant(d2, key, vkey, 2), "bd0")
    assert c.blk_read(h, 0, 512) == b"b" * 512
    r = client(d2, key)                                        # reading needs no epoch
    hr, _ = r.blk_open(grant(d2, key, vkey, 1, rights=dp.R_READ), "bd0", dp.BLK_RDONLY)
    assert r.blk_read(hr, 0, 512) == b"b" * 512


def devnodes_argv(devnodes, data, extra):
    return [find_prog("disagg-devnode"), "--data", str(data), "--listen", "127.0.0.1:0",
            "--key", devnodes.keyfile, "--grant-pubkey", dp.grant_files(devnodes.keyfile)[1],
            "--node-id", "302", "--fabric-plaintext", *extra]


def test_bad_block_devices_are_refused_at_start(tmp_path, keyfile):
    devnodes = Devnodes(tmp_path, keyfile)
    data = tmp_path / "v"
    data.mkdir()
    (data / "taken.vol").write_bytes(b"")
    plain = tmp_path / "plain.img"
    plain.write_bytes(bytes(4096))
    for extra, words in (
            ([f"x={plain}"], "not a block device"),
            ([f"x={tmp_path / 'missing'}"], "no such file"),
            ([f"Bad={plain}"], "not a valid volume name"),
            ([f"{plain}"], "name=path"),
            ([f"x={plain}", f"x={plain}"], "given twice"),
            ([f"taken={plain}"], "taken by a file volume")):
        argv = devnodes_argv(devnodes, data, [a for e in extra for a in ("--block-device", e)])
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and words in p.stderr.lower(), (extra, p.returncode, p.stderr)
