# SPDX-License-Identifier: MIT
"""Images (docs/api.md, "Images"; docs/cli.md, "Images"): a real
orchestrator and a real device node on loopback. `disagg image import`
of a small raw file, of a qcow2 made here with qemu-img, and of a
directory shaped like scripts/build-image.sh's output; the bytes read back
from the base volume through the device node (the independent Python
client, with a grant); ls, show, clone and resize of the base volume,
delete; and the refusals: unknown formats, garbage and empty files,
duplicate names, delete while cloned, the volume routes on a base volume,
bad JSON and bad uploads. Needs no Debian image."""
import hashlib
import http.client
import json
import os
import re
import subprocess
import time

import pytest

import dproto as dp
from test_cli import cli_env, disagg, table
from test_disks import dc  # noqa: F401
from test_orchestrator import computes, hb_factory, orch_factory  # noqa: F401
from test_volumes import CLIENT, cl, err, events, on_node, open_with  # noqa: F401

MiB = 1 << 20
QEMU_IMG = "qemu-img"


def have_qemu_img():
    try:
        return subprocess.run([QEMU_IMG, "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


needs_qemu_img = pytest.mark.skipif(not have_qemu_img(), reason="qemu-img is not installed")


def patterned(path, size, holes=()):
    """A file of `size` bytes: a pattern, with the (offset, len) holes left as zeros."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, MiB):
            if any(h <= off < h + n for h, n in holes):
                continue
            block = hashlib.sha256(b"%d" % off).digest() * (min(MiB, size - off) // 32 + 1)
            f.seek(off)
            f.write(block[:min(MiB, size - off)])
    return path


def read_volume(orch, d, key, name, length, offset=0):
    """length bytes of the volume from offset, read through the device node with a grant."""
    st, g = orch.call("POST", f"/v1/volumes/{name}/grant", {"holder": CLIENT, "rights": "r"})
    assert st == 200, g
    c, h, vsize = open_with(d, key, name, g["grant"], flags=1)
    try:
        assert offset + length <= vsize
        out = bytearray()
        for off in range(offset, offset + length, MiB):
            out += c.blk_read(h, off, min(MiB, offset + length - off))
        return bytes(out)
    finally:
        c.close()


def node_name(orch, node_id):
    return orch.call("GET", f"/v1/nodes/{node_id}")[1]["name"]


@pytest.fixture
def cli(cl):  # noqa: F811
    env = cli_env(DISAGG_TOKEN=cl.auth.token)

    def run(*args, rc=0, timeout=120):
        return disagg("--url", f"http://{cl.addr}", *args, env=env, check_rc=rc, timeout=timeout)
    return run


# ---------------------------------------------------------------------------

def test_import_raw_reads_back(cl, cli, key, tmp_path):
    d = cl.devnodes.start(301)
    # 9 MiB + 1000 bytes: the last chunk is padded to a sector; a 4 MiB hole is skipped.
    raw = patterned(tmp_path / "disk.raw", 9 * MiB + 1000, holes=[(4 * MiB, 4 * MiB)])
    p = cli("image", "import", "tiny", raw)
    assert re.match(r"image tiny imported: \S+ raw, \d+ MiB of data sent to device node 301",
                    p.stdout), p.stdout
    size = 9 * MiB + 1024
    st, img = cl.call("GET", "/v1/images/tiny")
    assert st == 200, img
    assert img["state"] == "ready" and img["format"] == "raw" and img["size"] == size
    assert img["volume"] == "tiny" and img["devnode"] == 301
    assert img["kernel"] is None and img["initrd"] is None and img["clones"] == []
    st, v = cl.call("GET", "/v1/volumes/tiny")
    assert v["image"] is True and v["size"] == size
    # Only the data went to the device node: the hole stays a hole.
    assert v["allocated"] < 7 * MiB, v
    data = read_volume(cl, d, key, "tiny", size)
    want = raw.read_bytes()
    assert data[:len(want)] == want and data[len(want):] == bytes(size - len(want))
    # The catalog keeps it across a restart.
    cl.restart()
    st, again = cl.call("GET", "/v1/images/tiny")
    assert st == 200 and {k: again[k] for k in img} == img
    assert [e["message"] for e in events(cl, "image_imported")] == [
        f"image tiny imported: {size} bytes in volume tiny on device node {node_name(cl, 301)}"]


@needs_qemu_img
def test_import_qcow2_and_clone(cl, cli, key, tmp_path):
    d = cl.devnodes.start(301)
    raw = patterned(tmp_path / "src.raw", 6 * MiB, holes=[(MiB, 2 * MiB)])
    qcow = tmp_path / "disk.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow],
                   check=True)
    p = cli("image", "import", "q1", qcow, "--devnode", "301")
    assert "image q1 imported: 6M qcow2" in p.stdout, p.stdout
    st, img = cl.call("GET", "/v1/images/q1")
    assert img["format"] == "qcow2" and img["size"] == 6 * MiB and img["state"] == "ready"
    assert read_volume(cl, d, key, "q1", 6 * MiB) == raw.read_bytes()

    # A guest's root disk: a clone of the base volume, larger.
    p = cli("volume", "create", "root1", "16M", "--from", "q1")
    assert "a clone of q1, 16M" in p.stdout
    assert read_volume(cl, d, key, "root1", 16 * MiB)[:6 * MiB] == raw.read_bytes()
    cli("volume", "resize", "root1", "32M")
    head, rows = table(cli("image", "ls").stdout)
    assert head == ["NAME", "STATE", "FORMAT", "SIZE", "DEVNODE", "KERNEL", "AGE"]
    assert [r[:6] for r in rows] == [["q1", "ready", "qcow2", "6M", "301", "-"]]
    p = cli("image", "show", "q1")
    assert re.search(r"^clones:\s+root1$", p.stdout, re.M), p.stdout
    assert re.search(r"^imported from:\s+qcow2$", p.stdout, re.M)

    # Deleting the image while a clone exists is refused, with the clone named.
    p = cli("image", "delete", "q1", rc=1)
    assert "image q1 has volumes cloned from it: [\"root1\"]" in p.stderr
    assert "(409 image_in_use)" in p.stderr
    # The base volume is the image's: the volume routes refuse to change it.
    st, ans = cl.call("DELETE", "/v1/volumes/q1")
    assert st == 409 and err(ans) == "image_volume", ans
    st, ans = cl.call("POST", "/v1/volumes/q1/resize", {"size": "64M"})
    assert st == 409 and err(ans) == "image_volume", ans
    cli("volume", "delete", "root1")
    p = cli("image", "delete", "q1")
    assert p.stdout == "image q1 deleted\n"
    assert cl.call("GET", "/v1/images/q1")[0] == 404
    assert cl.call("GET", "/v1/volumes/q1")[0] == 404
    assert "q1" not in on_node(key, d)
    assert len(events(cl, "image_deleted")) == 1


def test_import_build_image_dir(cl, cli, key, tmp_path):
    """A directory like scripts/build-image.sh's: rootfs, kernel, initramfs, image.json."""
    d = cl.devnodes.start(301)
    out = tmp_path / "out"
    out.mkdir()
    patterned(out / "debian-12.ext4", 3 * MiB)
    kernel = os.urandom(5 * MiB + 17)       # more than one upload
    (out / "vmlinuz").write_bytes(kernel)
    (out / "initrd.img").write_bytes(b"initramfs" * 1000)
    (out / "image.json").write_text(json.dumps(
        {"rootfs": "debian-12.ext4", "kernel": "vmlinuz", "initrd": "initrd.img",
         "cmdline": "root=LABEL=root console=ttyS0"}))
    p = cli("image", "import", "deb", out)
    assert "with a kernel and an initramfs" in p.stdout, p.stdout
    st, img = cl.call("GET", "/v1/images/deb")
    assert img["kernel"] == len(kernel) and img["initrd"] == 9000
    assert img["cmdline"] == "root=LABEL=root console=ttyS0"
    head, rows = table(cli("image", "ls").stdout)
    assert rows[0][5] == "yes"
    # The files come back whole (what a compute node boots).
    conn = http.client.HTTPConnection(*cl.addr.rsplit(":", 1), timeout=30)
    for part, want in (("kernel", kernel), ("initrd", b"initramfs" * 1000)):
        conn.request("GET", f"/v1/images/deb/{part}",
                     headers={"Authorization": "Bearer " + cl.auth.token})
        r = conn.getresponse()
        assert r.status == 200 and r.read() == want
    conn.close()
    assert read_volume(cl, d, key, "deb", 3 * MiB) == (out / "debian-12.ext4").read_bytes()
    cli("image", "delete", "deb")
    assert not list((tmp_path / "images").glob("deb.*"))


@needs_qemu_img
def test_import_refusals(cl, cli, tmp_path):
    cl.devnodes.start(301)
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "vmdk", vmdk, "1M"], check=True)
    p = cli("image", "import", "x", vmdk, rc=1)
    assert "is a vmdk image: import raw or qcow2 images" in p.stderr
    garbage = tmp_path / "garbage.qcow2"
    garbage.write_bytes(b"QFI\xfb" + os.urandom(1000))
    p = cli("image", "import", "x", garbage, rc=1)
    assert "is not a disk image that qemu-img can read" in p.stderr, p.stderr
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    p = cli("image", "import", "x", empty, rc=1)
    assert "is empty: nothing to import" in p.stderr
    base = tmp_path / "base.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", base, "1M"], check=True)
    top = tmp_path / "top.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top],
                   check=True)
    p = cli("image", "import", "x", top, rc=1)
    assert "names a backing file" in p.stderr
    p = cli("image", "import", "x", tmp_path / "missing", rc=1)
    assert "cannot read" in p.stderr
    p = cli("image", "import", "x", tmp_path, rc=1)
    assert "has no image.json" in p.stderr
    # Nothing was created by any of them.
    assert cl.call("GET", "/v1/images")[1] == {"images": []}
    assert cl.call("GET", "/v1/volumes")[1] == {"volumes": []}

    raw = patterned(tmp_path / "ok.raw", MiB)
    cli("image", "import", "one", raw)
    p = cli("image", "import", "one", raw, rc=1)
    assert "(409 exists)" in p.stderr
    # A volume's name is taken too (the base volume is named after the image).
    cl.call("POST", "/v1/volumes", {"name": "vol", "size": "1M"})
    p = cli("image", "import", "vol", raw, rc=1)
    assert "(409 exists)" in p.stderr
    assert cl.call("GET", "/v1/volumes/vol")[1]["image"] is False
    p = cli("image", "import", "Bad.Name", raw, rc=1)
    assert "(400 bad_request)" in p.stderr
    p = cli("image", "delete", "nope", rc=1)
    assert "(404 not_found)" in p.stderr


def test_api_refusals(cl, tmp_path):
    cl.devnodes.start(301)

    def post(body, path="/v1/images"):
        return cl.call("POST", path, body)

    st, ans = post("{not json")
    assert st == 400 and err(ans) == "bad_json"
    for body, code in [({"size": "1M", "format": "raw"}, "bad_request"),
                       ({"name": "a", "format": "raw"}, "bad_size"),
                       ({"name": "a", "size": 1000, "format": "raw"}, "bad_size"),
                       ({"name": "a", "size": "1M"}, "bad_format"),
                       ({"name": "a", "size": "1M", "format": "vmdk"}, "bad_format"),
                       ({"name": "a", "size": "1M", "format": "raw", "extra": 1},
                        "unknown_field"),
                       ({"name": "a", "size": "1M", "format": "raw", "initrd_size": 10},
                        "bad_request"),
                       ({"name": "a", "size": "1M", "format": "raw", "kernel_size": -1},
                        "bad_request"),
                       ({"name": "a", "size": "1M", "format": "raw", "cmdline": 7},
                        "bad_request"),
                       ({"name": "a", "size": "1M", "format": "raw", "devnode": "x"},
                        "bad_request")]:
        st, ans = post(body)
        assert st == 400 and err(ans) == code, (body, st, ans)
    st, ans = post({"name": "a", "size": "1M", "format": "raw", "devnode": 999})
    assert st == 404, ans
    assert cl.call("GET", "/v1/images")[1] == {"images": []}

    st, img = post({"name": "a", "size": "1M", "format": "raw", "kernel_size": 10})
    assert st == 201 and img["state"] == "importing", img
    # Cloning a base volume before its import is committed is refused.
    st, ans = post({"name": "c", "from": "a"}, "/v1/volumes")
    assert st == 409 and err(ans) == "image_not_ready", ans
    for path, body, status, code in [
            ("/v1/images/a/disk", b"x" * 512, 400, "bad_request"),          # no offset
            ("/v1/images/a/disk?offset=1", b"x" * 512, 400, "bad_range"),   # not a sector
            ("/v1/images/a/disk?offset=0", b"x" * 100, 400, "bad_range"),
            ("/v1/images/a/disk?offset=1048576", b"x" * 512, 400, "bad_range"),
            ("/v1/images/a/disk?offset=0", b"", 400, "bad_request"),
            ("/v1/images/a/initrd?offset=0", b"x", 400, "bad_range"),       # has none
            ("/v1/images/a/kernel?offset=5", b"x" * 6, 400, "bad_range"),
            ("/v1/images/nope/disk?offset=0", b"x" * 512, 404, "not_found"),
            ("/v1/images/a/other?offset=0", b"x", 404, "not_found")]:
        st, ans = cl.call("PUT", path, body, headers={"Content-Type": "application/octet-stream"})
        assert st == status and err(ans) == code, (path, st, ans)
    # The kernel is not whole yet: the commit says so.
    st, ans = post(None, "/v1/images/a/commit")
    assert st == 409 and err(ans) == "incomplete", ans
    st, ans = cl.call("PUT", "/v1/images/a/kernel?offset=0", b"0123456789")
    assert st == 200, ans
    st, ans = post(None, "/v1/images/a/commit")
    assert st == 200 and ans["state"] == "ready", ans
    st, ans = post(None, "/v1/images/a/commit")
    assert st == 200 and ans["state"] == "ready"       # committed already
    st, ans = cl.call("PUT", "/v1/images/a/disk?offset=0", b"x" * 512)
    assert st == 409 and err(ans) == "not_importing"
    assert cl.call("PATCH", "/v1/images/a")[0] == 405
    assert cl.call("GET", "/v1/images/a/disk")[0] == 405
    assert cl.call("DELETE", "/v1/images/a")[0] == 204
    assert cl.call("GET", "/v1/images/a")[0] == 404


def test_delete_while_importing_and_node_down(cl, tmp_path):
    d = cl.devnodes.start(301)
    st, img = cl.call("POST", "/v1/images", {"name": "half", "size": "2M", "format": "raw"})
    assert st == 201
    d.kill9()
    st, ans = cl.call("DELETE", "/v1/images/half")
    assert st == 503 and err(ans) == "node_unreachable", ans
    st, img = cl.call("GET", "/v1/images/half")
    assert img["state"] == "importing"      # as it was
    cl.devnodes.start(301, listen=d.addr)
    assert cl.call("DELETE", "/v1/images/half")[0] == 204
    assert cl.call("GET", "/v1/volumes")[1] == {"volumes": []}


@pytest.mark.skipif(not os.environ.get("DISAGG_IMAGE_DIR"),
                    reason="opt-in: DISAGG_IMAGE_DIR=OUTDIR of scripts/build-image.sh")
def test_import_built_image(cl, cli, key):
    """The real Debian image: imported, its kernel whole, a 4 GiB root disk cloned."""
    out = os.environ["DISAGG_IMAGE_DIR"]
    meta = json.load(open(os.path.join(out, "image.json")))
    d = cl.devnodes.start(301)
    t0 = time.monotonic()
    p = cli("image", "import", "debian-12", out, timeout=1800)
    took = time.monotonic() - t0
    print(f"\n{p.stdout.strip()} (test: {took:.1f} s)")
    st, img = cl.call("GET", "/v1/images/debian-12")
    assert img["state"] == "ready" and img["size"] == meta["size"]
    assert img["kernel"] == os.path.getsize(os.path.join(out, meta["kernel"]))
    assert img["cmdline"] == meta["cmdline"]
    st, v = cl.call("GET", "/v1/volumes/debian-12")
    # Only data was sent: what is allocated is about what the image file has.
    assert v["allocated"] <= meta["allocated"] + 64 * MiB, (v, meta)
    with open(os.path.join(out, meta["rootfs"]), "rb") as f:
        sb = f.read(4096)
    assert read_volume(cl, d, key, "debian-12", 4096) == sb   # the ext4 superblock
    cli("volume", "create", "root1", "4G", "--from", "debian-12", timeout=600)
    cli("volume", "delete", "root1")
    cli("image", "delete", "debian-12")



def test_base_volume_attaches_read_only_only(dc, tmp_path):  # noqa: F811
    """An image's base volume is not a guest's disk to write: read-only only."""
    st, img = dc.call("POST", "/v1/images", {"name": "img", "size": "1M", "format": "raw"})
    assert st == 201, img
    assert dc.call("POST", "/v1/images/img/commit")[0] == 200
    st, ans = dc.call("POST", "/v1/slots/a/disks", {"volume": "img"})
    assert st == 409 and err(ans) == "image_volume", ans
    assert "cannot be attached read-write" in ans["error"]["message"]
    assert dc.call("GET", "/v1/volumes/img")[1]["attached"] is None
    st, ans = dc.call("POST", "/v1/slots/a/disks", {"volume": "img", "read_only": True})
    assert st == 201 and ans["read_only"] is True, ans
    assert dc.call("DELETE", "/v1/slots/a/disks/img")[0] == 200
