# SPDX-License-Identifier: MIT
"""Image suite: a real Debian 12 guest from a remote root disk, end to end.

scripts/build-image.sh builds the image into build/image (reused across
runs), `disagg up` starts a cluster (TCG), `disagg image import` stores
it, `disagg slot create --image --ssh-key` boots it from its clone on the
device node, and the test logs in over ssh as debian (cloud-init put the
key there), runs a command and prints how long the boot took. Then the
slot moves to the other compute node (`disagg slot migrate`: the
destination fetches the same kernel and initramfs and makes the same
seed at the same slot) and the test logs in again there, through the
destination's forwarded port. Skipped, with the reason, when mmdebstrap
cannot run here or QEMU is missing.
"""
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = ROOT / "build" / "image"
SSH_BUDGET_S = 600          # create -> ssh login, at most
MOVED_SSH_BUDGET_S = 180    # migrate -> ssh login on the destination, at most


def bindir():
    build = os.environ.get("DISAGG_BUILD")
    b = pathlib.Path(build) / "bin" if build else ROOT / "build" / "bin"
    return b if (b / "disagg").exists() else ROOT / "build" / "bin"


def need_image():
    if not (IMAGE / "image.json").exists():
        if shutil.which("mmdebstrap") is None:
            pytest.skip("mmdebstrap is not installed (scripts/install-deps.sh --image)")
        if os.geteuid() != 0:
            pytest.skip("scripts/build-image.sh needs root (mmdebstrap's chroot)")
        t0 = time.monotonic()
        p = subprocess.run([str(ROOT / "scripts" / "build-image.sh"), str(IMAGE)], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            pytest.skip(f"scripts/build-image.sh cannot build here: {p.stderr[-600:]}")
        print(f"image built in {time.monotonic() - t0:.0f} s")
    for tool in ("qemu-system-x86_64", "ssh", "ssh-keygen", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@pytest.fixture
def cluster(tmp_path):
    need_image()
    env = dict(os.environ, DISAGG_DATA=str(tmp_path / "cluster"))
    disagg = str(bindir() / "disagg")

    def run(*args, timeout=600, check=True):
        p = subprocess.run([disagg, *map(str, args)], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p
    run("up", "--memnodes", "1", "--computes", "2", "--pool", "2G", "--accel", "tcg",
        "--fabric-plaintext")
    run.data = tmp_path / "cluster"
    try:
        yield run
    finally:
        run("down", check=False)


def ssh_argv(cluster, key):
    """ssh as debian to slot web through its compute node's forwarded port."""
    show = cluster("slot", "show", "web").stdout
    ssh_addr = next(line.split("ssh ")[1].split()[0] for line in show.splitlines()
                    if line.startswith("network:") and "ssh " in line)
    host, port = ssh_addr.rsplit(":", 1)
    return ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "BatchMode=yes", "-i", str(key), "-p", port,
            f"debian@{host}"]


def login(cluster, argv, t0, budget):
    """Seconds from t0 to the first ssh login (pytest.fail after budget)."""
    deadline, last = t0 + budget, None
    while time.monotonic() < deadline:
        last = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=60)
        if last.returncode == 0:
            return time.monotonic() - t0
        time.sleep(5)
    console = cluster("slot", "console", "web", check=False, timeout=30).stdout
    pytest.fail(f"no ssh login within {budget} s: {last.stderr if last else ''}\n"
                f"console:\n{console[-3000:]}")


def test_debian_boots_from_remote_root(cluster, tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cluster("image", "import", "debian-12", IMAGE, timeout=900)
    t0 = time.monotonic()
    cluster("slot", "create", "web", "--image", "debian-12", "--disk", "3G", "--memory", "1G",
            "--remote", "50", "--ssh-key", f"{key}.pub")
    created = time.monotonic() - t0
    show = cluster("slot", "show", "web").stdout
    assert "debian-12, root disk web-root" in show, show
    argv = ssh_argv(cluster, key)
    booted = login(cluster, argv, t0, SSH_BUDGET_S)
    out = subprocess.run([*argv, "cat /etc/debian_version; hostname; lsblk -no LABEL /dev/vda"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0].startswith("12") and lines[1] == "web" and "root" in lines, out.stdout
    print(f"\nimage boot: slot create answered in {created:.1f} s, ssh login after "
          f"{booted:.1f} s (TCG)")

    # It moves, and answers ssh there: same boot files, same seed at the same slot.
    time.sleep(20)          # let the guest settle (an idle guest moves best under TCG)
    here = json.loads(cluster("--json", "slot", "show", "web").stdout)["compute"]
    comps = json.loads((cluster.data / "cluster.json").read_text())["components"]
    (there,) = [x["node_id"] for x in comps
                if x["name"].startswith("compute-") and x["node_id"] != here]
    t1 = time.monotonic()
    cluster("slot", "migrate", "web", "--to", there)
    migrated = time.monotonic() - t1
    assert json.loads(cluster("--json", "slot", "show", "web").stdout)["compute"] == there
    argv = ssh_argv(cluster, key)
    again = login(cluster, argv, t1, MOVED_SSH_BUDGET_S)
    out = subprocess.run([*argv, "hostname; lsblk -no LABEL /dev/vdb; uptime"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split()[0] == "web", (out.stdout, out.stderr)
    assert "cidata" in out.stdout.lower(), out.stdout
    print(f"image slot moved in {migrated:.1f} s, ssh login there {again:.1f} s after the "
          f"migrate command (TCG)")
    cluster("slot", "delete", "web")
    assert "web-root" not in cluster("volume", "ls").stdout
