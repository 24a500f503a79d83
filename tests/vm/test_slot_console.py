# SPDX-License-Identifier: MIT
"""A slot's network and console through the orchestrator (`disagg up`):
`slot show` prints the ssh forward, `slot ssh` runs ssh on it (a stand-in
ssh on PATH checks the address reaches the guest's port 22), and
`slot console` on a terminal (a pty here) is interactive: a command typed
into the guest's shell answers, Ctrl-] detaches with exit status 0 and
the terminal as it was. Piped, the console is printed as before."""
import json
import os
import pathlib
import pty
import select
import socket
import subprocess
import termios
import time

from test_cluster import running

SLOT = ("slot", "create", "web", "--vcpus", "1", "--memory", "256M", "--remote", "0")


def read_until(fd, want, timeout=30):
    out, end = b"", time.time() + timeout
    while want not in out:
        left = end - time.time()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no {want!r} within {timeout}s; got {out[-2000:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:               # EIO: the child is gone
            chunk = b""
        if not chunk:
            raise AssertionError(f"end of output before {want!r}; got {out[-2000:]!r}")
        out += chunk
    return out


def test_ssh_and_interactive_console(tmp_path):
    with running(tmp_path, "--memnodes", "1", "--computes", "1", "--pool", "512M") as c:
        c.disagg(*SLOT, timeout=180)
        net = c.json("slot", "show", "web")["net"]
        assert net["mode"] == "user" and net["ssh"].startswith("127.0.0.1:"), net
        assert f"ssh {net['ssh']}" in c.disagg("slot", "show", "web").stdout

        # slot ssh: the argv it would run, then a stand-in ssh on PATH.
        j = c.json("slot", "ssh", "web", "--user", "root", "--", "-o", "BatchMode=yes", "true")
        port = net["ssh"].rsplit(":", 1)[1]
        assert j["argv"] == ["ssh", "-p", port, "-o", "HostKeyAlias=disagg-slot-web",
                             "root@127.0.0.1", "-o", "BatchMode=yes", "true"], j
        fake = pathlib.Path(tmp_path) / "fakebin"
        fake.mkdir()
        (fake / "ssh").write_text("#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$SSH_ARGS\"\n")
        (fake / "ssh").chmod(0o755)
        env = dict(c.env, PATH=f"{fake}:{os.environ['PATH']}",
                   SSH_ARGS=str(tmp_path / "ssh.args"))
        p = subprocess.run([str(c.bin / "disagg"), "slot", "ssh", "web", "--", "uname"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        args = (tmp_path / "ssh.args").read_text().split("\n")
        assert args[:6] == ["-p", port, "-o", "HostKeyAlias=disagg-slot-web",
                            "debian@127.0.0.1", "uname"], args
        with socket.create_connection(("127.0.0.1", int(port)), timeout=20) as s:
            s.settimeout(20)
            assert s.recv(100).startswith(b"disagg-guest: no ssh server"), "forward"

        # Interactive on a terminal.
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(str(c.bin / "disagg"), ["disagg", "slot", "console", "web"], c.env)
        try:
            read_until(fd, b"Ctrl-] to detach")
            os.write(fd, b"\r")
            read_until(fd, b"# ")
            os.write(fd, b"echo con-$((6*7))\r")
            read_until(fd, b"con-42")
            os.write(fd, b"\x1d")
            out = read_until(fd, b"Detached")
            _, status = os.waitpid(pid, 0)
            pid = 0
        finally:
            if pid:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, out

        # Piped: the log, as before (the guest's answer is in it).
        p = c.disagg("slot", "console", "web")
        assert "disagg-guest-init: up" in p.stdout and "con-42" in p.stdout, p.stdout[-500:]
        j = json.loads(c.disagg("--json", "slot", "console", "web").stdout)
        assert "con-42" in j["console"]
        c.disagg("slot", "delete", "web", timeout=120)


def test_console_restores_the_terminal_on_sigterm(tmp_path):
    with running(tmp_path, "--memnodes", "1", "--computes", "1", "--pool", "512M") as c:
        c.disagg(*SLOT, timeout=180)
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(str(c.bin / "disagg"), ["disagg", "slot", "console", "web"], c.env)
        before = termios.tcgetattr(fd)
        read_until(fd, b"Ctrl-] to detach")
        time.sleep(0.3)
        raw = termios.tcgetattr(fd)
        assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON, "not raw"
        os.kill(pid, 15)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 15, status
        after = termios.tcgetattr(fd)
        assert after[3] == before[3] and after[3] & termios.ECHO, (before, after)
        os.close(fd)
        c.disagg("slot", "delete", "web", timeout=120)
