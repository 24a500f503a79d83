# SPDX-License-Identifier: MIT
"""Slots created from an image (docs/api.md, "Slots", "image"; docs/cli.md,
`disagg slot create --image`): a real orchestrator, a real device node and
fake compute agents (fake_disks.py) that open the disks they are created
with on the device node, as the real agent does before QEMU starts.

The image's base volume is cloned into the slot's root volume (NAME-root),
grown to --disk; the agent gets "disks" (the root disk first, then the
--volume ones, each with its grant), "boot" (the image's kernel and
initramfs on this orchestrator, root=LABEL=root and --append) and
"cloud_init" (the slot's name as hostname, the ssh keys or user data);
the slot shows its image and root disk. It moves to another compute node:
the destination's request has the same "boot" and "cloud_init" and the
seed's slot ("seed") as the source agent says them (GET /v1/vms/NAME/boot);
an agent that cannot say is refused (409 image_slot), nothing changed.
Refusals leave nothing behind (a
disk smaller than the image, an unknown image, `append` for an image
without a kernel (which boots through the firmware),
an attached volume, the agent's refusal: the root volume is deleted). A
slot's delete deletes its root volume unless ?keep_disk=true.
"""
import http.client
import json
import os

import pytest

import fake_disks as fd
from test_cli import cli_env, disagg
from test_disks import COMPUTE, dc, disk_cluster, fake_of, volume  # noqa: F401
from test_images import patterned
from test_orchestrator import computes, hb_factory, orch_factory  # noqa: F401
from test_volumes import events

MiB = 1 << 20


@pytest.fixture
def cli(dc):  # noqa: F811
    env = cli_env(DISAGG_TOKEN=dc.auth.token)

    def run(*args, rc=0, timeout=120):
        return disagg("--url", f"http://{dc.addr}", *args, env=env, check_rc=rc,
                      timeout=timeout)
    return run


def import_image(cli, tmp_path, name="deb", kernel=True):
    out = tmp_path / f"img-{name}"
    out.mkdir()
    patterned(out / "debian-12.ext4", 3 * MiB)
    if not kernel:
        cli("image", "import", name, out / "debian-12.ext4")
        return
    (out / "vmlinuz").write_bytes(os.urandom(64 * 1024))
    (out / "initrd.img").write_bytes(b"initramfs" * 100)
    (out / "image.json").write_text(json.dumps(
        {"rootfs": "debian-12.ext4", "kernel": "vmlinuz", "initrd": "initrd.img"}))
    cli("image", "import", name, out)


def fetch(o, method, path, token):
    conn = http.client.HTTPConnection(*o.addr.rsplit(":", 1), timeout=30)
    conn.request(method, path, headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.getheader("Content-Length"), body


def test_compute_node_fetches_kernel(dc, cli, tmp_path):  # noqa: F811
    """A compute node's own token reads an image's kernel and initramfs (GET,
    and HEAD for the size its cache is named by), and nothing else."""
    import_image(cli, tmp_path)
    tok = dc.auth.node_token(COMPUTE)
    st, length, body = fetch(dc, "GET", "/v1/images/deb/kernel", tok)
    assert st == 200 and len(body) == 64 * 1024
    st, length, body = fetch(dc, "HEAD", "/v1/images/deb/initrd", tok)
    assert st == 200 and int(length) == 900 and body == b""
    assert fetch(dc, "GET", "/v1/images/deb", tok)[0] == 403
    assert fetch(dc, "PUT", "/v1/images/deb/kernel?offset=0", tok)[0] == 403


def vols(o):
    return {v["name"]: v for v in o.call("GET", "/v1/volumes")[1]["volumes"]}


def test_slot_from_image(dc, cli, tmp_path):  # noqa: F811
    import_image(cli, tmp_path)
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAtest user@host\n")
    p = cli("slot", "create", "web", "--memory", "128M", "--image", "deb", "--disk", "8M",
            "--ssh-key", str(key), "--volume", "data1", "--append", "quiet")
    assert "web" in p.stdout
    st, s = dc.call("GET", "/v1/slots/web")
    assert st == 200 and s["state"] == "running", s
    assert s["image"] == "deb" and s["root_disk"] == "web-root"
    assert [(d["volume"], d["disk"]) for d in s["disks"]] == [("data1", "disk1"),
                                                                ("web-root", "disk0")]
    root = volume(dc, "web-root")
    assert root["origin"] == "deb" and root["size"] == 8 * MiB and root["attached"] == "web"
    fake = fake_of(dc, "web")
    body = fake.create_bodies[-1]
    assert [(d["id"], d["volume"]) for d in body["disks"]] == [("disk0", "web-root"),
                                                                 ("disk1", "data1")]
    assert all(d["devnode"] and len(d["grant"]) == 208 for d in body["disks"])
    assert body["boot"]["kernel"] == f"http://{dc.addr}/v1/images/deb/kernel"
    assert body["boot"]["initrd"] == f"http://{dc.addr}/v1/images/deb/initrd"
    assert body["boot"]["append"] == "root=LABEL=root console=ttyS0 quiet"
    assert body["cloud_init"] == {"hostname": "web", "ssh_authorized_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAtest user@host"]}
    # The disks are open on the device node with the grants (the fake opened them).
    assert set(fake.vms["web"]["disks"]) == {"disk0", "disk1"}
    assert len(events(dc, "volume_attached")) == 2
    p = cli("slot", "show", "web")
    assert "deb" in p.stdout and "web-root" in p.stdout, p.stdout
    # It moves: the destination gets the same boot files, cloud-init and the
    # seed's slot (after the two disks) as the source's agent says them.
    here = s["compute"]
    assert fake.vms["web"]["boot"]["seed"] == {"pci": "0000:00:1a.0", "size": MiB}
    p = cli("slot", "migrate", "web", "--to", str(21 - here))   # nodes 10 and 11
    st, s = dc.call("GET", "/v1/slots/web")
    assert s["compute"] == 21 - here and s["state"] == "running", s
    dst = fake_of(dc, "web").create_bodies[-1]
    assert "incoming" in dst and dst["boot"] == body["boot"], dst
    assert dst["cloud_init"] == body["cloud_init"], dst
    assert dst["seed"] == {"pci": "0000:00:1a.0", "size": MiB}, dst
    assert sorted((d["id"], d["pci"]) for d in dst["disks"]) == [
        ("disk0", "0000:00:18.0"), ("disk1", "0000:00:19.0")]
    # Delete: the root volume goes, the other volume stays, free.
    assert dc.call("DELETE", "/v1/slots/web")[0] == 204
    v = vols(dc)
    assert "web-root" not in v and v["data1"]["attached"] is None
    # --keep-disk keeps it, free, with its data.
    cli("slot", "create", "web2", "--memory", "128M", "--image", "deb",
        "--user-data", str(key))
    body = fake_of(dc, "web2").create_bodies[-1]
    assert body["cloud_init"]["user_data"].startswith("ssh-ed25519")
    assert volume(dc, "web2-root")["size"] == 3 * MiB
    cli("slot", "delete", "web2", "--keep-disk")
    assert vols(dc)["web2-root"]["attached"] is None
    assert dc.call("DELETE", "/v1/volumes/web2-root")[0] == 204


def test_slot_image_refusals(dc, cli, tmp_path):  # noqa: F811
    import_image(cli, tmp_path)
    import_image(cli, tmp_path, "nokernel", kernel=False)
    before = set(vols(dc))
    cases = [
        ({"image": "deb", "disk": "1M"}, 400, "at least as large"),
        ({"image": "nope"}, 404, "no image nope"),
        ({"image": "nokernel", "append": "quiet"}, 400, "no kernel of its own"),
        ({"disk": "8M"}, 400, "needs \"image\""),
        ({"image": "deb", "volumes": ["nope"]}, 404, "nope"),
        ({"image": "deb", "ssh_keys": ["a"], "user_data": "x"}, 400, "not both"),
        ({"image": "deb", "ssh_keys": ["a\nb"]}, 400, "one line"),
    ]
    for extra, want_st, words in cases:
        st, ans = dc.call("POST", "/v1/slots", {"name": "x", "memory": "128M", **extra})
        assert st == want_st and words in ans["error"]["message"], (extra, st, ans)
        assert dc.call("GET", "/v1/slots/x")[0] == 404
        assert set(vols(dc)) == before, extra
    # A volume attached elsewhere: refused, the root volume made meanwhile deleted.
    assert dc.call("POST", "/v1/slots/a/disks", {"volume": "data2"})[0] == 201
    st, ans = dc.call("POST", "/v1/slots", {"name": "x", "memory": "128M", "image": "deb",
                                            "volumes": ["data2"]})
    assert st == 409 and "attached to slot a" in ans["error"]["message"], ans
    assert "x-root" not in vols(dc) and vols(dc)["data2"]["attached"] == "a"
    # The agent refuses: nothing is left behind, the volumes are free again.
    for c in (dc.c1, dc.c2):
        c.fail_create = (503, "start_failed")
    st, ans = dc.call("POST", "/v1/slots", {"name": "x", "memory": "128M", "image": "deb",
                                            "volumes": ["data1"]})
    assert st >= 500, ans
    assert dc.call("GET", "/v1/slots/x")[0] == 404
    v = vols(dc)
    assert "x-root" not in v and v["data1"]["attached"] is None and v["data1"]["state"] == "ready"
    assert fd.calls("attach") == [e for e in fd.calls("attach")]


def test_image_without_kernel_boots_through_the_firmware(dc, cli, tmp_path):  # noqa: F811
    """A disk with its own boot loader (imported without a kernel): the VM
    is created with "boot": {"firmware": true} and the root disk first."""
    import_image(cli, tmp_path, "own", kernel=False)
    st, s = dc.call("POST", "/v1/slots", {"name": "fw", "memory": "128M", "image": "own"})
    assert st == 201, s
    body = fake_of(dc, "fw").create_bodies[-1]
    assert body["boot"] == {"firmware": True}, body["boot"]
    assert [d["volume"] for d in body["disks"]] == ["fw-root"]
    # An agent that cannot say what its VM boots (older than GET .../boot):
    # a clear refusal, nothing changed.
    here = dc.call("GET", "/v1/slots/fw")[1]["compute"]
    src = fake_of(dc, "fw")
    src.no_boot_route = True
    st, e = dc.call("POST", "/v1/slots/fw/migrate", {"to": 21 - here})   # nodes 10 and 11
    assert st == 409 and e["error"]["code"] == "image_slot", e
    assert "does not say what its VM boots" in e["error"]["message"], e
    s = dc.call("GET", "/v1/slots/fw")[1]
    assert s["state"] == "running" and s["compute"] == here, s
    assert volume(dc, "fw-root")["state"] == "ready"
    # One that can: the destination boots through the firmware too, same seed.
    src.no_boot_route = False
    st, m = dc.call("POST", "/v1/slots/fw/migrate", {"to": 21 - here})
    assert st == 200, m
    dst = fake_of(dc, "fw").create_bodies[-1]
    assert dst is not body and dst["boot"] == {"firmware": True}, dst
    assert dst["cloud_init"] == body["cloud_init"] and dst["seed"]["pci"] == "0000:00:19.0"
    assert dc.call("DELETE", "/v1/slots/fw")[0] == 204


@pytest.fixture
def dc_url(tmp_path, keyfile, key, orch_factory, computes, hb_factory):  # noqa: F811
    """The disk cluster with --public-url (where compute nodes reach the API)."""
    yield from disk_cluster(tmp_path, keyfile, key, orch_factory, computes, hb_factory,
                            extra=["--public-url", "https://orch.example:7443/"])


def test_public_url(dc_url, tmp_path):
    env = cli_env(DISAGG_TOKEN=dc_url.auth.token)
    import_image(lambda *a: disagg("--url", f"http://{dc_url.addr}", *a, env=env, check_rc=0,
                                   timeout=120), tmp_path)
    st, s = dc_url.call("POST", "/v1/slots", {"name": "u", "memory": "128M", "image": "deb"})
    assert st == 201, s
    body = fake_of(dc_url, "u").create_bodies[-1]
    assert body["boot"]["kernel"] == "https://orch.example:7443/v1/images/deb/kernel"
