# SPDX-License-Identifier: MIT
"""The benchmark tools refuse bad arguments with a clear message and a
failing exit code, before they start anything: disagg-dnbench (--cpus,
--size, the required options) and bench/devices/devbench.py (--workloads,
--backends)."""
import pathlib
import subprocess
import sys

import pytest

import progs

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("args,msg", [
    (["--cpus", "1"], "--cpus wants A,B"),
    (["--cpus", "0,1x"], "--cpus wants A,B"),
    (["--cpus", "-1,0"], "--cpus wants A,B"),
    (["--cpus", "a,b"], "--cpus wants A,B"),
    (["--size", "0"], "--size wants MiB"),
    (["--size", "12q"], "--size wants MiB"),
    (["--size", "99999999"], "--size wants MiB"),
    ([], "--addr, --key, --grant-key and --data are required"),
])
def test_dnbench_refuses(args, msg):
    rc, out = run([progs.find_prog("disagg-dnbench"), *args])
    assert rc != 0 and msg in out, out


@pytest.mark.parametrize("args,msg", [
    (["--workloads", "foo"], "unknown workload foo"),
    (["--workloads", "randread_qd1,bar"], "unknown workload bar"),
    (["--workloads", ""], "unknown workload (none)"),
    (["--backends", "baz"], "unknown back end baz"),
])
def test_devbench_refuses(args, msg):
    rc, out = run([sys.executable, str(ROOT / "bench" / "devices" / "devbench.py"), *args])
    assert rc == 2 and msg in out, out
