# SPDX-License-Identifier: MIT
"""VM test: a frozen source agent across a compute migration cannot
overwrite the destination's memory afterwards (docs/api.md, "Ownership
epochs"; docs/protocol.md, "Ownership epochs and FENCE").

Two compute agents and a memory node on loopback; the test plays the
orchestrator's part: the destination's grants are of epoch 1, and once the
destination runs the VM every section is fenced at epoch 1, as the
orchestrator does at a hand-over.

The source agent is frozen (SIGSTOP) across the switchover: it has sent
migrate-continue to its QEMU (held stopped until then, so that the order is
certain), QEMU completes the migration and the destination runs the guest
while the agent sleeps. When it is let go (SIGCONT) its migration has
outlived its deadline: it gives up and resumes its copy of the guest. That
is a zombie: a second running copy of the VM whose pager still holds grants
for the same sections. Its guest rewrites memory and its pager writes
back: the memory node refuses every write-back (FENCED), the pager drops
them without failing, and the destination's data, read back from the
memory node, stays intact. Deleting the zombie cannot free the
destination's sections either.
"""
import http.client
import os
import re
import signal
import subprocess
import threading

import dproto
import vmlib

MiB = 1 << 20
ORCH = 900                  # the node id the test uses as the orchestrator


def regrant(key, section, holder, epoch):
    """The same section with a grant for `holder` of ownership epoch `epoch`."""
    g = bytes.fromhex(section["grant"])
    mnid, _, sec, gen, *_ = dproto.GRANT.unpack(g)
    return dict(section, grant=dproto.mint_grant(key, mnid, holder, sec, gen,
                                                 dproto.R_READ | dproto.R_WRITE,
                                                 epoch=epoch).hex())


def fence(mn, key, sections, epoch):
    """What the orchestrator does at a hand-over: FENCE every section at `epoch`."""
    with mn.conn(as_node=ORCH) as c:
        for s in sections:
            mnid, _, sec, gen, *_ = dproto.GRANT.unpack(bytes.fromhex(s["grant"]))
            g = dproto.mint_grant(key, mnid, ORCH, sec, gen, dproto.R_WRITE, epoch=epoch)
            assert c.fence(g) == epoch


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def memnode_metric(mn, name):
    addr = re.search(r" http (\S+)", mn.ready_line).group(1)
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request("GET", "/metrics")
        return metric(c.getresponse().read().decode(), name)
    finally:
        c.close()


def qmp_queued(agent, name):
    """Bytes the agent sent to its VM's QEMU on QMP that QEMU has not read."""
    path = os.path.join(agent.run_dir, name, "qmp.sock")
    out = subprocess.run(["ss", "-xH", "src", path], capture_output=True, text=True,
                         check=True).stdout
    return sum(int(line.split()[2]) for line in out.splitlines() if path in line)


def test_frozen_source_cannot_overwrite_after_handover(cluster, key):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    before = mn.count()
    secs = [mn.section(holder=1) for _ in range(4)]          # 512 MiB, all remote, epoch 0
    vm = a1.create("z", secs)
    a1.guest("z", "FILL 1 71 160")
    a1.guest("z", "FILL 2 81 48")
    dst = a2.create("z", [regrant(key, s, 2, epoch=1) for s in secs],
                    incoming={"listen": "127.0.0.1:0"})
    assert dst["state"] == "incoming", dst

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", a1.request(
        "POST", "/v1/vms/z/migrate", {"uri": dst["migration_uri"], "timeout_ms": 1000,
                                      "hold_at_switchover_ms": 2500}, timeout=300)))
    t.start()
    assert vmlib.wait_for(lambda: a1.status("z").get("migration_phase") == "pre-switchover",
                          60, 0.02), a1.status("z")
    qemu = vm["pid"]
    os.kill(qemu, signal.SIGSTOP)              # migrate-continue will wait for it
    frozen = False
    try:
        # After the hold the agent flushes, then sends migrate-continue to the
        # stopped QEMU (it waits in QEMU's socket) and waits for the answer.
        assert vmlib.wait_for(lambda: qmp_queued(a1, "z") > 0, 60, 0.02), \
            "the source never asked its QEMU to continue"
        os.kill(a1.pid, signal.SIGSTOP)
        frozen = True
        os.kill(qemu, signal.SIGCONT)
        qemu = None
        assert vmlib.wait_for(lambda: a2.status("z")["state"] == "running", 60), \
            a2.status("z")
        fence(mn, key, secs, epoch=1)          # the hand-over, as the orchestrator does it
    finally:
        if qemu:
            os.kill(qemu, signal.SIGCONT)
        if frozen:
            os.kill(a1.pid, signal.SIGCONT)
    t.join(300)
    assert not t.is_alive()
    st, res = out["r"]
    print("source after the freeze:", st, res)
    # The source outlived its deadline and resumed its copy of the guest.
    assert st == 503 and "resumed here" in res["error"]["message"], (st, res)
    assert a1.status("z")["state"] == "running"

    # The new owner writes, and writes back.
    a2.guest("z", "REWRITE 1 72")
    a2.call("POST", "/v1/vms/z/flush")
    # The zombie writes, and writes back: refused by the memory node, dropped.
    refused0 = memnode_metric(mn, "disagg_memnode_fenced_requests_total")
    a1.guest("z", "REWRITE 1 73")
    a1.guest("z", "REWRITE 2 83")
    p = a1.call("POST", "/v1/vms/z/flush")["pager"]
    print("zombie pager:", p)
    assert p["writebacks_fenced"] > 0 and p["failed"] == 0, p
    assert memnode_metric(mn, "disagg_memnode_fenced_requests_total") > refused0

    # The destination reads its memory back from the memory node: intact.
    a2.call("PUT", "/v1/vms/z/budget", {"bytes": 16 * MiB})
    assert vmlib.wait_for(lambda: a2.status("z")["pager"]["resident_pages"] <= 16 * MiB // 4096,
                          60), a2.status("z")["pager"]
    # (Without the fence the zombie's write-backs, kernel memory included,
    # land on the destination's sections: its guest hangs or mismatches.)
    v1 = a2.guest("z", "VERIFY 1", timeout_ms=120000)
    v2 = a2.guest("z", "VERIFY 2", timeout_ms=120000)
    assert v1["mismatches"] == 0 and v2["mismatches"] == 0, (v1, v2)
    assert a2.status("z")["pager"]["pages_fetched"] > 0

    # Deleting the zombie: its frees (free_on_release) are refused too.
    a1.delete("z")
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(vm["pid"]), 15), "zombie QEMU still runs"
    assert mn.count() == before + 4
    assert "cannot free section" in a1.stderr()
    assert a2.guest("z", "VERIFY 1", timeout_ms=120000)["mismatches"] == 0
    a2.delete("z")
    assert vmlib.wait_for(lambda: mn.count() == before, 15), mn.count()
