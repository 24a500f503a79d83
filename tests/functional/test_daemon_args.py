# SPDX-License-Identifier: MIT
"""The daemons refuse bad command lines and bad cluster keys before doing
anything else, with the same message for the same mistake."""
import ctypes
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile

import pytest

import dproto as dp
from conftest import Daemon, find_prog, run

SYS_TGKILL = 234     # x86-64

DAEMONS = {
    "disagg-memnode": ["--listen", "127.0.0.1:0", "--pool", "128M", "--grant-pubkey", "{gpub}"],
    "disagg-orchestrator": ["--http", "127.0.0.1:0", "--db", "{tmp}/o.db", "--grant-key",
                            "{gkey}", "--api-open"],
    "disagg-compute": ["--http", "127.0.0.1:0", "--api-open", "--run-dir", "/dev/shm"],
}


def argv(prog, tmp_path, key, node_id="7"):
    gkey, gpub = dp.grant_files(key)
    extra = [a.replace("{tmp}", str(tmp_path)).replace("{gkey}", gkey).replace("{gpub}", gpub)
             for a in DAEMONS[prog]]
    # The command line is under test here, not the fabric: plaintext.
    return [find_prog(prog), "--key", key, "--node-id", node_id, "--fabric-plaintext", *extra]


@pytest.mark.parametrize("prog,opt", [("disagg-memnode", "--grant-pubkey"),
                                      ("disagg-orchestrator", "--grant-key")])
def test_grant_key_is_required_and_checked(prog, opt, tmp_path, keyfile):
    """Without its grant key a daemon refuses to start; a junk file, or (for
    the orchestrator) the public half only, is refused with a hint."""
    base = argv(prog, tmp_path, keyfile)
    i = base.index(opt)
    p = run(base[:i] + base[i + 2:], check=False, timeout=30)
    assert p.returncode != 0 and f"{opt} FILE is required" in p.stderr, p.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    p = run(base[:i + 1] + [str(junk)] + base[i + 2:], check=False, timeout=30)
    assert p.returncode != 0 and "not an Ed25519 key" in p.stderr, p.stderr
    if prog == "disagg-orchestrator":
        p = run(base[:i + 1] + [dp.grant_files(keyfile)[1]] + base[i + 2:], check=False,
                timeout=30)
        assert p.returncode != 0 and "the private key is needed" in p.stderr, p.stderr
        gkey = pathlib.Path(dp.grant_files(keyfile)[0])
        gkey.chmod(0o644)
        p = run(base, check=False, timeout=30)
        gkey.chmod(0o600)
        assert p.returncode != 0 and "chmod 600" in p.stderr, p.stderr


@pytest.mark.parametrize("prog", sorted(DAEMONS))
@pytest.mark.parametrize("mode,size,hint", [(0o644, 32, "chmod 600"),
                                            (0o600, 31, "exactly 32 bytes")])
def test_bad_key_is_refused_with_a_hint(prog, mode, size, hint, tmp_path):
    k = tmp_path / "k"
    k.write_bytes(os.urandom(size))
    k.chmod(mode)
    p = run(argv(prog, tmp_path, str(k)), check=False, timeout=30)
    assert p.returncode != 0
    assert "cluster key" in p.stderr and hint in p.stderr, p.stderr


@pytest.mark.parametrize("prog", sorted(DAEMONS))
@pytest.mark.parametrize("node_id", ["0", "abc", "-1", " 5", "99999999999999999999999"])
def test_bad_node_id_is_refused(prog, node_id, tmp_path, keyfile):
    p = run(argv(prog, tmp_path, keyfile, node_id), check=False, timeout=30)
    assert p.returncode != 0
    assert "node-id" in p.stderr, p.stderr


@pytest.mark.parametrize("prog,opt,value,hint", [
    ("disagg-compute", "--section-size", "3M", "power of two"),
    ("disagg-orchestrator", "--section-size", "1M", "power of two"),
    ("disagg-memnode", "--section-size", "0", "size such as"),
    ("disagg-memnode", "--pool", "lots", "size such as"),
    ("disagg-memnode", "--workers", "0", "1 to 256"),
    ("disagg-orchestrator", "--node-timeout", "86401", "1 to 86400 seconds"),
    ("disagg-orchestrator", "--replicas", "4", "1 to 3 replicas"),
    ("disagg-orchestrator", "--replicas", "0", "1 to 3 replicas"),
    ("disagg-compute", "--retire-migrated-ms", "0", "1 to 86400000 ms"),
    ("disagg-compute", "--writeback-delay-ms", "-5", "0 to 3600000 ms"),
    ("disagg-compute", "--vcpu-cpus", "1-0", "a CPU list such as"),
    ("disagg-compute", "--vcpu-cpus", "0,,1", "a CPU list such as"),
    ("disagg-compute", "--vcpu-cpus", "5000", "CPU numbers below 1024"),
    ("disagg-compute", "--housekeeping-cpus", "1000", "not among the CPUs this process may use"),
    ("disagg-memnode", "--cpus", "", "a CPU list such as"),
    ("disagg-memnode", "--cpus", "1000", "not among the CPUs this process may use"),
])
def test_bad_values_name_the_option(prog, opt, value, hint, tmp_path, keyfile):
    p = run(argv(prog, tmp_path, keyfile) + [opt, value], check=False, timeout=30)
    assert p.returncode != 0
    assert f"invalid {opt} '{value}'" in p.stderr and hint in p.stderr, p.stderr


@pytest.mark.parametrize("prog", sorted(DAEMONS))
def test_an_open_api_must_be_asked_for_and_stays_on_loopback(prog, tmp_path, keyfile):
    """A daemon with an HTTP API and no credentials refuses to start unless
    --api-open says so, and --api-open never serves beyond loopback."""
    base = [a for a in argv(prog, tmp_path, keyfile) if a != "--api-open"]
    if "--http" not in base:
        base += ["--http", "127.0.0.1:0"]
    creds = "--api-tokens and --node-secret" if prog == "disagg-orchestrator" \
        else "--node-credential"
    p = run(base, check=False, timeout=30)
    assert p.returncode != 0, p.stderr
    assert "needs credentials" in p.stderr and creds in p.stderr and "--api-open" in p.stderr, \
        p.stderr
    i = base.index("--http")
    wide = base[:i + 1] + ["0.0.0.0:0"] + base[i + 2:] + ["--api-open"]
    p = run(wide, check=False, timeout=30)
    assert p.returncode != 0 and "not a loopback address" in p.stderr, p.stderr
    # Credentials and --api-open contradict each other (refused before any file is read).
    creds_args = (["--api-tokens", str(tmp_path / "t"), "--node-secret", str(tmp_path / "s")]
                  if prog == "disagg-orchestrator" else
                  ["--node-credential", str(tmp_path / "c")])
    p = run(base + ["--api-open"] + creds_args, check=False, timeout=30)
    assert p.returncode != 0 and "exclude each other" in p.stderr, p.stderr
    # The control: the same command with --api-open on loopback starts.
    run_dir = tempfile.mkdtemp(prefix="disagg-open-", dir="/dev/shm")
    try:
        d = Daemon(base + ["--api-open"] + (["--run-dir", run_dir, "--accel", "tcg"]
                                           if prog == "disagg-compute" else []),
                   str(tmp_path / "open.log"), r"listening on (\S+)")
        assert d.stop() == 0
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_compute_agent_stops_whichever_thread_takes_sigterm(tmp_path, keyfile):
    """A process-directed SIGTERM may be handled by any thread that does not
    block it; the agent must stop whichever thread it was. Sent here to a
    thread other than the main one (tgkill), as the kernel may choose."""
    run_dir = tempfile.mkdtemp(prefix="disagg-sigterm-", dir="/dev/shm")
    try:
        d = Daemon(argv("disagg-compute", tmp_path, keyfile)[:-2] +
                   ["--run-dir", run_dir, "--accel", "tcg"],
                   str(tmp_path / "compute.log"), r"listening on (\S+)")
        tids = [int(t) for t in os.listdir(f"/proc/{d.proc.pid}/task") if int(t) != d.proc.pid]
        assert tids, "the agent has no threads besides the main one"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL, d.proc.pid, tids[0], signal.SIGTERM) == 0
        try:
            d.proc.wait(20)
        except subprocess.TimeoutExpired:
            d.kill9()
            raise AssertionError("the agent ignored a SIGTERM taken by another thread")
        assert d.stop() == 0
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
