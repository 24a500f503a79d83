# SPDX-License-Identifier: MIT
"""The compute agent's run directory and paths: it takes only a real
directory (never a symbolic link) of its own user that nobody else may
write, and it refuses, with a message, any path that it would otherwise
have to cut short: a too-long option, a run directory whose VM sockets
would not fit a UNIX socket address, a VM name too long for them."""
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import Daemon, find_prog, run
import progs  # noqa: E402


@pytest.fixture
def shm_dir():
    d = tempfile.mkdtemp(prefix="disagg-paths-", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def image(tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"")
    (tmp_path / "initrd").write_bytes(b"")
    return ["--kernel", str(tmp_path / "vmlinuz"), "--initrd", str(tmp_path / "initrd")]


def agent(keyfile, image, run_dir, *extra):
    return [find_prog("disagg-compute"), "--key", keyfile, "--node-id", "8", "--http",
            "127.0.0.1:0", "--accel", "tcg", "--qemu", "/bin/true", *image,
            "--run-dir", run_dir, "--api-open", *progs.fabric_args(8, "compute"), *extra]


def refused(argv, rc=1):
    p = run(argv, check=False, timeout=60)
    assert p.returncode == rc, (p.returncode, p.stderr)
    return p.stderr


def test_a_symlink_is_refused(keyfile, image, shm_dir):
    real = os.path.join(shm_dir, "real")
    os.mkdir(real, 0o700)
    link = os.path.join(shm_dir, "link")
    os.symlink(real, link)
    err = refused(agent(keyfile, image, link))
    assert f"the run directory {link} is a symbolic link" in err, err
    assert os.listdir(real) == [], "nothing may be made through the link"


@pytest.mark.parametrize("mode,who", [(0o777, "others"), (0o1777, "others"),
                                      (0o770, "its group")])
def test_a_directory_others_may_write_is_refused(keyfile, image, shm_dir, mode, who):
    d = os.path.join(shm_dir, "rd")
    os.mkdir(d)
    os.chmod(d, mode)
    err = refused(agent(keyfile, image, d))
    assert f"is writable by {who} (mode {mode:04o})" in err, err
    assert os.listdir(d) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_directory_of_another_user_is_refused(keyfile, image, shm_dir):
    d = os.path.join(shm_dir, "rd")
    os.mkdir(d, 0o700)
    os.chown(d, 65534, 65534)
    err = refused(agent(keyfile, image, d))
    assert "belongs to uid 65534, not to this agent's user (uid 0)" in err, err
    assert os.listdir(d) == []


def test_a_directory_of_its_own_is_taken(keyfile, image, shm_dir, tmp_path):
    d = os.path.join(shm_dir, "rd")
    os.mkdir(d, 0o755)          # readable by others is fine, writable is not
    a = Daemon(agent(keyfile, image, d), str(tmp_path / "agent.log"), r"listening on (\S+)")
    try:
        assert os.path.exists(os.path.join(d, ".owner"))
    finally:
        assert a.stop() == 0


@pytest.mark.parametrize("opt", ["--run-dir", "--qemu", "--shim", "--kernel", "--initrd"])
def test_a_path_option_too_long_is_refused(keyfile, image, shm_dir, opt):
    argv = agent(keyfile, image, shm_dir) + [opt, "/" + "x" * 5000]
    err = refused(argv, rc=2)
    assert f"{opt} is too long (5001 bytes, at most 4095)" in err, err


def test_a_run_directory_too_long_for_vm_sockets_is_refused(keyfile, image, shm_dir):
    d = os.path.join(shm_dir, "d" * 100)
    os.mkdir(d, 0o700)
    err = refused(agent(keyfile, image, d))
    assert "is too long: the sockets of its VMs" in err, err


def test_a_vm_name_too_long_for_its_sockets_is_refused(keyfile, image, shm_dir, tmp_path):
    # 58 bytes of run directory leave 107 - 58 - 15 = 34 for a VM name.
    d = os.path.join(shm_dir, "r" * (58 - len(shm_dir) - 1))
    os.mkdir(d, 0o700)
    a = Daemon(agent(keyfile, image, d), str(tmp_path / "agent.log"), r"listening on (\S+)")
    try:
        body = json.dumps({"name": "v" * 50, "sections": [{"kind": "local"}]}).encode()
        req = urllib.request.Request(f"http://{a.addr}/v1/vms", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 400
        msg = json.load(e.value)["error"]["message"]
        assert "longer than a UNIX socket address allows" in msg, msg
        assert "VM names of up to 34 characters" in msg, msg
        assert [n for n in os.listdir(d) if not n.startswith(".")] == []
    finally:
        assert a.stop() == 0
