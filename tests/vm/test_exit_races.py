# SPDX-License-Identifier: MIT
"""VM test: QEMU dies while a long operation of the agent uses the VM's
pager (src/compute/vm/pager_use.c).

When QEMU exits, the agent releases the VM's pager, files and sections. An
operation that is using the pager at that moment (a compute migration's
final flush, a memory migration's commit, an evacuation, a hot-add) must
either finish with the live pager or fail cleanly ("QEMU has exited");
the pager is freed by whoever uses it last. Before, the agent freed the
pager under the operation and crashed (use after free), taking every VM of
the node with it.

Each test holds the operation where it uses the pager (at pre-switchover,
or with the memory node it talks to stopped by SIGSTOP), kills QEMU with
SIGKILL, lets the operation go on (SIGCONT) and then checks that the agent
is alive, answers and reports the VM as failed. Run under the ASan build,
a sanitizer report in the agent's log fails the test too.
"""
import os
import signal
import threading
import time

import vmlib
from test_compute_migration import incoming, regrant


class Paused:
    """A memory node stopped with SIGSTOP inside a `with` block."""

    def __init__(self, mn):
        self.mn = mn

    def __enter__(self):
        os.kill(self.mn.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.mn.pid, signal.SIGCONT)


def in_thread(fn):
    """Run fn() in a thread; the returned thread's .out holds its result
    (or the exception it raised)."""
    def run():
        try:
            t.out = fn()
        except Exception as e:  # noqa: BLE001 - checked by check_survived
            t.out = e

    t = threading.Thread(target=run, daemon=True)
    t.out = None
    t.start()
    return t


def kill_qemu(vm):
    os.kill(vm["pid"], signal.SIGKILL)


def check_survived(agent, name, t, what):
    """The operation answered with an error or success, the agent runs and
    answers, and the VM is failed (QEMU was killed)."""
    t.join(120)
    assert not t.is_alive(), f"{what}: no answer"
    assert agent.alive(), f"the agent died during {what}:\n{agent.stderr()[-4000:]}"
    assert isinstance(t.out, tuple), f"{what}: {t.out!r}"
    st, j = t.out
    print(f"{what}: {st} {j if st >= 300 else ''}")
    assert not vmlib.SANITIZER_RE.search(agent.stderr()), agent.stderr()[-6000:]
    assert agent.request("GET", "/healthz", timeout=30)[0] == 200
    s = vmlib.wait_for(lambda: agent.status(name)["state"] == "failed", 15)
    assert s, agent.status(name)
    if st >= 300:
        assert "error" in j and j["error"]["message"], j
    agent.delete(name)


def writing_vm(agent, mn, name, secs=None):
    """A VM whose guest rewrites 96 MiB all the time (dirty pages to flush)."""
    vm = agent.create(name, secs or [mn.section() for _ in range(2)])
    agent.guest(name, "FILL 1 7 96")
    agent.guest(name, "WRITELOOP 1 64")
    return vm


def test_qemu_dies_during_compute_migration(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    secs = [mn.section(holder=1) for _ in range(2)]
    vm = writing_vm(a1, mn, "cm", secs)
    dst = incoming(a2, "cm", [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])
    # Held at pre-switchover, where the final flush comes next.
    t = in_thread(lambda: a1.request(
        "POST", "/v1/vms/cm/migrate", {"uri": dst["migration_uri"],
                                      "hold_at_switchover_ms": 2000}, timeout=120))
    assert vmlib.wait_for(lambda: a1.status("cm").get("migration_phase") == "pre-switchover",
                          60, 0.02), a1.status("cm")
    kill_qemu(vm)
    check_survived(a1, "cm", t, "compute migration")
    # The destination never got the guest.
    assert vmlib.wait_for(lambda: a2.status("cm")["state"] == "failed", 30), a2.status("cm")
    a2.delete("cm")


def test_qemu_dies_during_memory_migration_commit(cluster):
    a, b = cluster.memnode(), cluster.memnode()
    agent = cluster.agent()
    secs = [a.section() for _ in range(2)]
    vm = writing_vm(agent, a, "mm", secs)
    frm = {"addr": secs[0]["addr"], "grant": secs[0]["grant"]}
    to = b.section()
    agent.call("POST", "/v1/vms/mm/sections/migrate",
               {"phase": "begin", "from": frm, "to": {"addr": to["addr"], "grant": to["grant"]}})
    time.sleep(1.5)                     # dual write-backs: pages to re-send at commit
    with Paused(b):
        t = in_thread(lambda: agent.request(
            "POST", "/v1/vms/mm/sections/migrate",
            {"phase": "commit", "from": frm, "to": {"addr": to["addr"], "grant": to["grant"]}},
            timeout=120))
        time.sleep(0.5)                 # the commit re-sends to the stopped target
        kill_qemu(vm)
        time.sleep(1.0)
    check_survived(agent, "mm", t, "memory migration commit")
    # Committed: the VM's record was `to`, freed with the VM; else `to` is ours.
    if t.out[0] == 200:
        assert b.count() == 0
        a.free(secs[0])
    else:
        b.free(to)
    assert a.count() == 0 and b.count() == 0


def test_qemu_dies_during_evacuation(cluster):
    mn, c = cluster.memnode(), cluster.memnode()
    agent = cluster.agent()
    # Evacuation of a local section: the grant of the target is checked on c.
    vm = agent.create("ev", [{"kind": "local"}, mn.section()])
    agent.guest("ev", "FILL 1 3 32")
    to = c.section()
    with Paused(c):
        t = in_thread(lambda: agent.request(
            "POST", "/v1/vms/ev/sections/evacuate",
            {"boot_index": 0, "to": {"addr": to["addr"], "grant": to["grant"]}}, timeout=120))
        time.sleep(0.5)
        kill_qemu(vm)
        time.sleep(1.0)
    check_survived(agent, "ev", t, "evacuation")
    c.free(to)


def test_qemu_dies_during_hot_add(cluster):
    mn, c = cluster.memnode(), cluster.memnode()
    agent = cluster.agent()
    # virtio-mem hot-add: the new section's grant is checked on c.
    vm = agent.create("ha", [mn.section() for _ in range(2)], hotplug="virtio-mem",
                      max_sections=2)
    sec = c.section()
    with Paused(c):
        t = in_thread(lambda: agent.request("POST", "/v1/vms/ha/sections", {"section": sec},
                                            timeout=120))
        time.sleep(0.5)
        kill_qemu(vm)
        time.sleep(1.0)
    check_survived(agent, "ha", t, "hot-add")
    assert c.count() == 1           # refused: the section is still the caller's
    c.free(sec)


def qemu_named(name):
    """Pids of QEMU processes whose -name is guest=NAME."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if f"guest={name},".encode() in b" ".join(argv):
            pids.append(int(d))
    return pids


def test_delete_during_start(cluster):
    """A DELETE while the VM starts (its boot section's check waits on a
    stopped memory node): the DELETE answers at once, the start then fails
    with 409 instead of starting a QEMU nobody owns, the section is
    released as for any DELETE and the agent lives. Before, the agent freed
    the VM twice, and a DELETE waited for the check's memory node."""
    mn = cluster.memnode()
    agent = cluster.agent()
    sec = mn.section()
    with Paused(mn):
        t = in_thread(lambda: agent.request("POST", "/v1/vms", {"name": "ds", "sections": [sec]},
                                            timeout=120))
        assert vmlib.wait_for(lambda: agent.request("GET", "/v1/vms/ds", timeout=30)[0] == 200,
                              30, 0.02), "the VM never showed while it started"
        st, j = agent.request("GET", "/v1/vms/ds", timeout=30)
        assert j["state"] == "starting", j
        st, j = agent.request("DELETE", "/v1/vms/ds", timeout=60)
        assert st == 204, (st, j)
    t.join(120)
    assert not t.is_alive(), "the start never answered"
    assert isinstance(t.out, tuple), repr(t.out)
    st, j = t.out
    assert st == 409 and "stopped while it started" in j["error"]["message"], (st, j)
    assert agent.alive(), agent.stderr()[-4000:]
    assert not vmlib.SANITIZER_RE.search(agent.stderr()), agent.stderr()[-6000:]
    assert agent.request("GET", "/v1/vms/ds", timeout=30)[0] == 404
    assert qemu_named("ds") == []
    assert vmlib.wait_for(lambda: mn.count() == 0, 15), mn.count()   # free_on_release
    # The name is free again: a new VM of that name starts.
    agent.create("ds", [mn.section() for _ in range(2)])
    agent.delete("ds")
