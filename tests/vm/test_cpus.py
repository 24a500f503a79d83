# SPDX-License-Identifier: MIT
"""VM test: CPU placement (docs/compute.md, "CPU placement").

An agent with --vcpu-cpus and --housekeeping-cpus runs a guest with two
vCPUs: every vCPU thread of its QEMU may run on the vCPU set only, and
every other thread of that QEMU and of the agent on the housekeeping set
only (/proc/PID/task/TID/status, Cpus_allowed_list), and the guest works.
A restarted agent with the sets swapped adopts the QEMU and places its
threads anew. A memory node's --cpus holds all of its threads. Bad lists
are refused at start (tests/functional/test_daemon_args.py).
"""
import os

import pytest

import vmlib

AGENT = 1


def allowed(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {pid}/{tid}")


def threads(pid):
    """{tid: (name, allowed CPUs)} of every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            out[int(tid)] = (name, allowed(pid, tid))
        except (FileNotFoundError, ProcessLookupError):
            pass    # a thread that just ended
    return out


def placement(pid):
    """(CPUs of the vCPU threads, CPUs of the others, vCPU thread count)."""
    t = threads(pid)
    vcpu = {cpus for name, cpus in t.values() if name.startswith("CPU ")}
    other = {cpus for name, cpus in t.values() if not name.startswith("CPU ")}
    return vcpu, other, sum(1 for name, _ in t.values() if name.startswith("CPU "))


@pytest.fixture
def two_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("CPU placement needs two CPUs")
    return str(cpus[0]), str(cpus[1])


def test_vcpus_and_housekeeping_on_their_cpus_and_again_after_adoption(
        tmp_path, key, keyfile, two_cpus):
    h, v = two_cpus
    m = vmlib.Memnode(tmp_path, key, keyfile, node_id=101, pool="1G")
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, keep_vms=True,
                     extra=("--vcpu-cpus", v, "--housekeeping-cpus", h))
    a2 = None
    try:
        j = a1.create("pin", [m.section(), m.section()], vcpus=2)
        qemu = j["pid"]
        vcpu, other, n = placement(qemu)
        assert n == 2 and vcpu == {v}, threads(qemu)
        assert other == {h}, threads(qemu)
        assert {c for _, c in threads(a1.proc.pid).values()} == {h}, threads(a1.proc.pid)
        a1.guest("pin", "FILL 1 3 32")
        out = a1.guest("pin", "VERIFY 1")
        assert out["mismatches"] == 0, out
        log = (tmp_path / f"compute-{AGENT}.log").read_text()
        assert f"vm pin: 2 vCPU threads on CPUs {v}" in log, log[-2000:]

        # A new agent, the sets swapped: it adopts the QEMU and moves its threads.
        a1.proc.kill()
        a1.proc.wait()
        a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, run_dir=a1.run_dir,
                         extra=("--vcpu-cpus", h, "--housekeeping-cpus", v))
        a2.qemu_pids.add(qemu)
        st = a2.status("pin")
        assert st["state"] == "running" and st["pid"] == qemu, st
        vcpu, other, n = placement(qemu)
        assert n == 2 and vcpu == {h} and other == {v}, threads(qemu)
        out = a2.guest("pin", "VERIFY 1")
        assert out["mismatches"] == 0, out
        a2.delete("pin")
    finally:
        if a2:
            assert a2.close() == []
        else:
            a1.close()
        m.stop()


def test_memnode_cpus(tmp_path, key, keyfile, two_cpus):
    h, _ = two_cpus
    m = vmlib.Memnode(tmp_path, key, keyfile, node_id=101, pool="256M", extra=("--cpus", h))
    try:
        assert {c for _, c in threads(m.pid).values()} == {h}, threads(m.pid)
    finally:
        m.stop()


def test_housekeeping_alone_leaves_the_vcpus_where_the_agent_was(tmp_path, key, keyfile,
                                                                 two_cpus):
    """--housekeeping-cpus without --vcpu-cpus: the agent and QEMU's other
    threads on the set, the vCPUs on every CPU the agent had before (not on
    the housekeeping set QEMU inherits)."""
    h, _ = two_cpus
    mine = cpulist(os.sched_getaffinity(0))
    m = vmlib.Memnode(tmp_path, key, keyfile, node_id=101, pool="1G")
    a = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, extra=("--housekeeping-cpus", h))
    try:
        qemu = a.create("hk", [m.section(), m.section()], vcpus=2)["pid"]
        vcpu, other, n = placement(qemu)
        assert n == 2 and vcpu == {mine} and other == {h}, threads(qemu)
        a.delete("hk")
    finally:
        a.close()
        m.stop()


def cpulist(cpus):
    """The kernel's list form of a set of CPUs ("0-1,3")."""
    out, cpus = [], sorted(cpus)
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)
