# SPDX-License-Identifier: MIT
"""The baseline of bench/vm: stock QEMU with no shim and no agent.

PlainVM boots the command line the compute agent built for a VM (read from
/proc/PID/cmdline), so machine, CPU model, memory layout, kernel, initrd
and devices are the same, with every path of the agent's VM directory
moved to a directory of its own on tmpfs: the RAM is then a plain
memory-backend-file on tmpfs that QEMU maps itself. No LD_PRELOAD, no
userfaultfd. The guest is driven over the same host channel (docs/guest.md).
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import vmlib  # tests/vm, on the path of vmbench.py


def qemu_cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def vm_dir_of(argv):
    """The agent's VM directory: where the QMP socket of the command line is."""
    q = argv[argv.index("-qmp") + 1]
    return str(pathlib.Path(q.split(":", 1)[1].split(",", 1)[0]).parent)


class PlainVM:
    def __init__(self, agent_argv, boot_timeout=120):
        src = vm_dir_of(agent_argv)
        self.dir = tempfile.mkdtemp(prefix="disagg-plain-", dir="/dev/shm")
        self.argv = [a.replace(src, self.dir) for a in agent_argv]
        env = {k: v for k, v in os.environ.items()
               if k != "LD_PRELOAD" and not k.startswith(("DISAGG_", "ASAN_", "UBSAN_"))}
        self.log = open(pathlib.Path(self.dir) / "qemu.log", "wb")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.sock = None
        self.buf = b""
        try:
            self._connect(boot_timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout):
        path = str(pathlib.Path(self.dir) / "guest.sock")
        end = time.time() + timeout
        while True:
            if self.p.poll() is not None:
                raise RuntimeError(f"plain QEMU exited {self.p.returncode}: "
                                   f"{(pathlib.Path(self.dir) / 'qemu.log').read_text()[-500:]}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.time() > end:
                    raise TimeoutError("plain QEMU: no guest channel")
                time.sleep(0.05)
        self.sock = s
        while True:
            line = self._line(max(1.0, end - time.time()))
            if line.startswith("READY"):
                return

    def _line(self, timeout):
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise RuntimeError("plain QEMU: the guest channel closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def guest(self, command, timeout=600):
        """One disagg-guest command; the reply's key=value fields (as Agent.guest)."""
        self.sock.sendall(command.encode() + b"\n")
        while True:
            line = self._line(timeout)
            if line.startswith("OK"):
                return vmlib.fields(line)
            if line.startswith("ERR"):
                raise AssertionError(f"plain guest {command!r}: {line}")

    def close(self):
        if self.sock:
            self.sock.close()
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
