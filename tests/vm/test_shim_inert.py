# SPDX-License-Identifier: MIT
"""VM test: libdisagg-shim.so in a QEMU that the agent did not start
changes nothing.

Plain qemu-system-x86_64 with LD_PRELOAD=libdisagg-shim.so and no
DISAGG_SHIM_* variables, guest RAM on a memory-backend-file (share=on) in
a temporary directory on tmpfs: the guest boots, disagg-guest says READY on
the guest channel, fills and verifies memory, and QEMU holds no
userfaultfd (the shim registered nothing).
"""
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import vmlib


class GuestChan:
    """The disagg-guest line protocol on QEMU's chardev socket."""

    def __init__(self, path, timeout=60):
        self.s = vmlib.unix_connect(path, timeout, 0.05)
        self.buf = b""

    def line(self, timeout):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise ConnectionError("QEMU closed the guest channel")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode().strip("\r")

    def wait_for(self, prefix, timeout):
        end = time.time() + timeout
        while True:
            ln = self.line(max(end - time.time(), 0.1))
            if ln.startswith(prefix):
                return ln

    def cmd(self, c, timeout=120):
        self.s.sendall(c.encode() + b"\n")
        while True:
            ln = self.line(timeout)
            if ln.startswith(("OK", "ERR")):
                return ln

    def close(self):
        self.s.close()


@pytest.fixture
def ramdir():
    d = tempfile.mkdtemp(prefix="disagg-shiminert-", dir="/dev/shm")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def uffds(pid):
    n = 0
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            n += "userfaultfd" in os.readlink(fd)
        except OSError:
            pass
    return n


def test_shim_without_agent_is_inert(ramdir):
    kernel, initrd = vmlib.check_prereqs()
    shim = vmlib.find_prog("libdisagg-shim.so")
    ram = ramdir / "ram0"
    with open(ram, "wb") as f:
        f.truncate(512 << 20)
    chan = ramdir / "guest.sock"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISAGG_SHIM_", "LD_PRELOAD", "ASAN_", "UBSAN_", "LSAN_"))}
    env["LD_PRELOAD"] = shim
    argv = [vmlib.qemu_binary(), "-accel", "tcg", "-machine", "pc", "-cpu", "max",
            "-m", "512M,slots=4,maxmem=2G",
            "-object", f"memory-backend-file,id=ram0,mem-path={ram},size=512M,share=on",
            "-machine", "memory-backend=ram0", "-smp", "1", "-nodefaults",
            "-display", "none", "-serial", f"file:{ramdir / 'console.log'}",
            "-chardev", f"socket,id=gch,path={chan},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=gch,name=org.disagg.guest",
            "-kernel", kernel, "-initrd", initrd, "-no-reboot",
            "-append", "console=ttyS0 memhp_default_state=online_movable panic=1"]
    log = open(ramdir / "qemu.log", "wb")
    q = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    g = None
    try:
        g = GuestChan(str(chan))
        ready = g.wait_for("READY", 120)
        assert ready.startswith("READY disagg-guest 1 memtotal_kb="), ready
        assert q.poll() is None
        assert vmlib.fields(g.cmd("MEMINFO"))["memtotal_kb"] > 400 * 1024
        assert g.cmd("FILL 1 9 128").startswith("OK id=1")
        v = g.cmd("VERIFY 1")
        assert vmlib.fields(v).get("mismatches") == 0, v
        assert uffds(q.pid) == 0, "the shim registered a userfaultfd without the agent"
        # The guest's memory is in the file, as without the shim.
        assert os.stat(ram).st_blocks * 512 >= 128 << 20
        console = (ramdir / "console.log").read_text(errors="replace")
        assert "disagg-guest-init: up" in console, console[-2000:]
    except BaseException:
        print((ramdir / "qemu.log").read_text(errors="replace")[-3000:])
        print((ramdir / "console.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        if g:
            g.close()
        q.send_signal(signal.SIGKILL)
        q.wait()
        log.close()
    assert "disagg-shim" not in (ramdir / "qemu.log").read_text(errors="replace")
