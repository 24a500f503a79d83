# SPDX-License-Identifier: MIT
"""VM test: the switchover of a compute migration is decided by QEMU's own
migration state, never by a deadline or a missing answer (docs/compute.md,
"Compute migration", src/compute/vm_switchover.c).

Two compute agents (node ids 1 and 2) and a memory node on loopback. Once
the source has sent migrate-continue, the guest may already run on the
destination: resuming the source then would make two guests write the same
memory. The source resumes only when QEMU says the migration failed or was
cancelled, and becomes `migrated` when QEMU says it completed.

- the switchover comes after the request's timeout_ms (the source is held
  at pre-switchover past it): the migration completes, the source is
  `migrated` and its guest sends no heartbeat any more, the destination
  runs the guest and its memory verifies;
- the source QEMU stops answering (SIGSTOP) at pre-switchover, so neither
  migrate-continue nor query-migrate gets an answer: the source answers
  503 `migration_indeterminate` and stays in state `switchover` (not
  resumed); once QEMU goes on (SIGCONT) and completes the migration, the
  source becomes `migrated` by itself and only the destination runs.
"""
import os
import signal
import threading
import time

import vmlib
from test_compute_migration import incoming, regrant, running, heartbeats


def one_guest_runs_on(a_old, a_new, name):
    """Heartbeats go on at a_new and have stopped at a_old."""
    n_old = heartbeats(a_old, name)["count"]
    n_new = heartbeats(a_new, name)["count"]
    time.sleep(1.0)
    assert heartbeats(a_old, name)["count"] == n_old, "the source guest still runs"
    assert heartbeats(a_new, name)["count"] > n_new, "the destination guest does not run"


def prepare(cluster, key, name):
    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    secs = [mn.section(holder=1) for _ in range(2)]
    vm = a1.create(name, secs)
    a1.guest(name, "FILL 1 61 64")
    a1.guest(name, "HEARTBEAT 20")
    a1.call("POST", f"/v1/vms/{name}/flush")     # few dirty pages: pre-switchover comes fast
    dst = incoming(a2, name, [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])
    return a1, a2, vm, dst


def test_switchover_after_deadline_does_not_resume_source(cluster, key):
    a1, a2, vm, dst = prepare(cluster, key, "late")
    # Held at pre-switchover for longer than the whole request may take: the
    # deadline passes before migrate-continue is sent.
    st, res = a1.request("POST", "/v1/vms/late/migrate",
                         {"uri": dst["migration_uri"], "timeout_ms": 2000,
                          "hold_at_switchover_ms": 4000}, timeout=300)
    print("migration past its deadline:", st, res.get("error") or res.get("total_ms"))
    src = a1.status("late")
    # QEMU completed the migration: the source never runs the guest again.
    assert src["state"] == "migrated", (st, res, src)
    assert st == 200 and res["ok"] is True, (st, res)
    running(a2, "late")
    one_guest_runs_on(a1, a2, "late")
    assert a2.guest("late", "VERIFY 1")["mismatches"] == 0
    a1.delete("late")
    a2.delete("late")
    assert vmlib.wait_for(lambda: not a1.qemu_alive(), 10)


def test_source_qemu_silent_at_switchover_is_indeterminate(cluster, key):
    a1, a2, vm, dst = prepare(cluster, key, "mute")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", a1.request(
        "POST", "/v1/vms/mute/migrate", {"uri": dst["migration_uri"], "timeout_ms": 3000,
                                        "hold_at_switchover_ms": 1500}, timeout=300)))
    t.start()
    try:
        assert vmlib.wait_for(
            lambda: a1.status("mute").get("migration_phase") == "pre-switchover", 60, 0.02)
        os.kill(vm["pid"], signal.SIGSTOP)   # migrate-continue gets no answer
        t.join(200)
        assert not t.is_alive()
        st, j = out["r"]
        print("silent source QEMU:", st, j)
        assert st == 503 and j["error"]["code"] == "migration_indeterminate", (st, j)
        assert "not resumed" in j["error"]["message"], j
        s = a1.status("mute")
        assert s["state"] == "switchover" and s["migrating"] is True, s
        assert s["last_migration"]["outcome"] == "indeterminate", s
        # Nothing may change a VM in switchover.
        st, j = a1.request("POST", "/v1/vms/mute/migrate", {"uri": dst["migration_uri"]})
        assert st == 409, (st, j)
        st, j = a1.request("POST", "/v1/vms/mute/guest", {"command": "PING"}, timeout=30)
        assert st >= 400, (st, j)
    finally:
        os.kill(vm["pid"], signal.SIGCONT)
    # QEMU had the continue queued: it completes, and the source follows it.
    assert vmlib.wait_for(lambda: a1.status("mute")["state"] == "migrated", 60), \
        a1.status("mute")
    s = a1.status("mute")
    assert s["migrating"] is False and s["last_migration"]["outcome"] == "completed", s
    running(a2, "mute")
    one_guest_runs_on(a1, a2, "mute")
    assert a2.guest("mute", "VERIFY 1")["mismatches"] == 0
    a1.delete("mute")
    a2.delete("mute")
