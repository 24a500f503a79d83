# SPDX-License-Identifier: MIT
"""VM test: a source agent frozen across a compute migration cannot
overwrite the destination's memory afterwards (docs/api.md, "Ownership
epochs"; docs/protocol.md, "Ownership epochs and FENCE").

Two compute agents and a memory node on loopback; the test plays the
orchestrator's part: the destination's grants are of epoch 1, and once the
destination runs the VM every section is fenced at epoch 1, as the
orchestrator does at a hand-over.

The source agent is frozen (SIGSTOP) across the switchover: it has sent
migrate-continue to its QEMU (held stopped until then, so that the order is
certain), QEMU completes the migration and the destination runs the guest
while the agent sleeps. Then it is let go (SIGCONT), and after the new
owner has written its memory the old owner writes late, as a source that
woke up too late would: write-backs through its grants (the source's node
id, epoch 0) over pages of every section, and frees of the sections. The
memory node refuses them all (FENCED) and the destination's memory, read
back from the memory node, verifies.

How the woken source agent ends the migration is its own business (it
hands the VM over, or, on agents that gave up at their deadline, resumes
its copy of the guest); when it runs its copy, that copy writes too and
its pager's write-backs are refused and dropped without failing it.
"""
import os
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
    free = dproto.R_FREE if section.get("free_on_release") else 0
    return dict(section, grant=dproto.mint_grant(key, mnid, holder, sec, gen,
                                                 dproto.R_READ | dproto.R_WRITE | free,
                                                 epoch=epoch).hex())


def fence(mn, key, sections, epoch):
    """What the orchestrator does at a hand-over: FENCE every section at `epoch`."""
    with mn.conn(as_node=ORCH) as c:
        for s in sections:
            mnid, _, sec, gen, *_ = dproto.GRANT.unpack(bytes.fromhex(s["grant"]))
            g = dproto.mint_grant(key, mnid, ORCH, sec, gen, dproto.R_WRITE, epoch=epoch)
            assert c.fence(g) == epoch


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
    # timeout_ms bounds the way to pre-switchover only, which includes the
    # flush of what the FILLs left dirty (up to 208 MiB, when background
    # write-back waits longer for a guest that rewrites its memory): 1 s was
    # too short under the sanitizers.
    t = threading.Thread(target=lambda: out.setdefault("r", a1.request(
        "POST", "/v1/vms/z/migrate", {"uri": dst["migration_uri"], "timeout_ms": 30000,
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
    assert st in (200, 503), (st, res)
    zombie = a1.status("z")["state"] == "running"       # resumed its copy of the guest

    # The new owner writes, and writes back.
    a2.guest("z", "REWRITE 1 72")
    a2.call("POST", "/v1/vms/z/flush")
    refused0 = mn.metric("disagg_memnode_fenced_requests_total")

    # The old owner's late write-backs and frees: refused, never applied.
    with mn.conn(as_node=1) as old:
        for s in secs:
            g = bytes.fromhex(s["grant"])
            sec, gen = dproto.GRANT.unpack(g)[2:4]
            for first in range(0, 32768, 4096):
                ext = [(p, 1) for p in range(first, first + 4096, 16)]
                try:
                    old.write(g, ext, b"\xde" * 4096 * len(ext))
                    raise AssertionError(f"a late write-back landed in section {sec}")
                except dproto.ProtoError as e:
                    assert e.status == dproto.ST["FENCED"], e
            try:
                old.free(sec, gen, 0)
                raise AssertionError(f"the old owner freed section {sec}")
            except dproto.ProtoError as e:
                assert e.status == dproto.ST["FENCED"], e
    assert mn.metric("disagg_memnode_fenced_requests_total") == refused0 + 4 * 9
    assert mn.count() == before + 4
    if zombie:
        # Its copy of the guest writes, and its pager writes back: dropped.
        a1.guest("z", "REWRITE 1 73")
        a1.guest("z", "REWRITE 2 83")
        p = a1.call("POST", "/v1/vms/z/flush")["pager"]
        print("zombie pager:", p)
        assert p["writebacks_fenced"] > 0 and p["failed"] == 0, p

    # The destination reads its memory back from the memory node: intact.
    # (Without the fence the late writes, kernel memory included, land on
    # the destination's sections: its guest hangs or mismatches.)
    a2.call("PUT", "/v1/vms/z/budget", {"bytes": 16 * MiB})
    assert vmlib.wait_for(lambda: a2.status("z")["pager"]["resident_pages"] <= 16 * MiB // 4096,
                          60), a2.status("z")["pager"]
    v1 = a2.guest("z", "VERIFY 1", timeout_ms=120000)
    v2 = a2.guest("z", "VERIFY 2", timeout_ms=120000)
    assert v1["mismatches"] == 0 and v2["mismatches"] == 0, (v1, v2)
    assert a2.status("z")["pager"]["pages_fetched"] > 0

    # The source's record goes; it frees nothing of the new owner's.
    a1.delete("z")
    assert vmlib.wait_for(lambda: not vmlib.pid_alive(vm["pid"]), 15), "source QEMU still runs"
    assert mn.count() == before + 4
    assert a2.guest("z", "VERIFY 1", timeout_ms=120000)["mismatches"] == 0
    a2.delete("z")
    assert vmlib.wait_for(lambda: mn.count() == before, 15), mn.count()
