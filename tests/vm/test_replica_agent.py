# SPDX-License-Identifier: MIT
"""VM test: a replicated section under the compute agent alone
(docs/replication.md, docs/compute.md "POST /v1/vms/NAME/sections/replica").

Each remote section of the VM has two replicas: position 0 on memory node
B, position 1 on memory node A, with a cache of 25% so that pages live on
the memory nodes.

- A stale replica is never read again, not even by a restarted agent: B is
  frozen (SIGSTOP) while the guest rewrites its region with a new pattern,
  so that B misses writes and the pager takes it out (the VM stays
  `running`, its status lists B in `replicas_out`). The agent is then
  killed (SIGKILL) and started again on the same run directory, B is
  continued, and the guest VERIFYs the new pattern with 0 mismatches: the
  adopted pager reads from A although B (position 0, the first one asked)
  answers with the old pattern. Without the out positions in vm.json it
  would read B's stale pages.
- The drop call: 404 for a replica the VM does not have, 409
  `last_replica` for the only replica in, 200 otherwise.
"""
import os
import signal
import time

import pytest

import dproto

import vmlib

MB = 160
AGENT = 1


def grant_fields(sec):
    memnode, holder, s, gen, *_ = dproto.GRANT.unpack(bytes.fromhex(sec["grant"]))
    return memnode, holder, s, gen


def ref(sec):
    return {"addr": sec["addr"], "grant": sec["grant"]}


def drop_body(sec):
    memnode, _, s, gen = grant_fields(sec)
    return {"action": "drop", "replica": {"memnode": memnode, "section": s, "generation": gen}}


def test_stale_replica_is_never_read_after_agent_restart(tmp_path, key, keyfile):
    a = vmlib.Memnode(tmp_path, key, keyfile, node_id=101, pool="1G")
    b = vmlib.Memnode(tmp_path, key, keyfile, node_id=102, pool="1G")
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, keep_vms=True,
                     extra=("--memnode-timeout-ms", "1000"))
    a2 = None
    try:
        secs, reps = [], []
        for _ in range(3):
            s, r = b.section(), a.section()
            s["replicas"] = [ref(r)]
            secs.append(s)
            reps.append(r)
        j = a1.create("rvm", secs, vcpus=1, cache_bytes=3 * 128 * 1024 * 1024 // 4)
        pid = j["pid"]
        st = a1.status("rvm")
        assert [x["replicas"][0]["in"] for x in st["sections"]] == [True] * 3, st
        a1.guest("rvm", f"FILL 1 7 {MB}")

        os.kill(b.pid, signal.SIGSTOP)
        try:
            a1.guest("rvm", "REWRITE 1 8")
            vmlib.wait_for(lambda: len(a1.status("rvm").get("replicas_out") or []) == 3,
                           timeout=60)
            st = a1.status("rvm")
            assert st["state"] == "running", st
            assert {x["memnode"] for x in st["replicas_out"]} == {b.node_id}, st
            assert all(x["in"] is False for x in st["sections"]), st
        finally:
            a1.proc.kill()
            a1.proc.wait()
            os.kill(b.pid, signal.SIGCONT)
        assert os.kill(pid, 0) is None                  # QEMU runs on
        a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=AGENT, run_dir=a1.run_dir,
                         extra=("--memnode-timeout-ms", "1000"))
        a2.qemu_pids.add(pid)
        st = a2.status("rvm")
        assert st["state"] == "running" and st["pid"] == pid, st
        assert {x["memnode"] for x in st.get("replicas_out") or []} == {b.node_id}, st
        # B answers again, with the old pattern; it is never asked.
        v = a2.guest("rvm", "VERIFY 1")
        assert v["mismatches"] == 0, v

        # The drop call: unknown, the last one in, and one in (A's) is refused
        # as the last; a replica out already is fine.
        _, _, s0, g0 = grant_fields(secs[0])
        with pytest.raises(vmlib.ApiError) as e:
            a2.call("POST", "/v1/vms/rvm/sections/replica",
                    {"action": "drop",
                     "replica": {"memnode": 999, "section": s0, "generation": g0}})
        assert e.value.status == 404
        with pytest.raises(vmlib.ApiError) as e:
            a2.call("POST", "/v1/vms/rvm/sections/replica", drop_body(reps[0]))
        assert e.value.status == 409 and "last_replica" in str(e.value.body), e.value.body
        assert a2.call("POST", "/v1/vms/rvm/sections/replica",
                       drop_body(secs[0]))["dropped"] is True
        with pytest.raises(vmlib.ApiError) as e:
            a2.call("POST", "/v1/vms/rvm/sections/replica", {"action": "keep"})
        assert e.value.status == 400
        a2.delete("rvm")
    finally:
        if a2:
            assert a2.close() == []
        else:
            a1.close()
        for m in (a, b):
            m.stop()


def regrant(key, sec, holder):
    """Section sec (and its replicas) with grants for another holder."""
    def one(x):
        memnode, _, s, gen = grant_fields(x)
        g = dproto.mint_grant(key, memnode, holder, s, gen,
                              dproto.R_READ | dproto.R_WRITE | dproto.R_FREE)
        return {"addr": x["addr"], "grant": g.hex()}
    out = dict(one(sec), kind="remote", free_on_release=True)
    out["replicas"] = [one(r) for r in sec.get("replicas", [])]
    return out


def parked(agent, name):
    st, text = agent.request("GET", "/metrics", raw=True)
    assert st == 200, text
    for line in text.splitlines():
        if line.startswith("disagg_pager_faults_parked_total") and f'"{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no faults_parked of {name} in /metrics")


def test_replica_taken_out_during_a_migration_is_never_read_at_the_destination(
        tmp_path, key, keyfile):
    """A compute migration's destination is given every replica that is in
    when the move begins. The source then takes one out (here: B, position
    0, frozen while the guest rewrites its region, after the destination
    was created), so B misses writes. The destination, created with
    "replicas_pending", parks its faults on remote pages after the
    switchover (QEMU's own load of device state included: it runs only
    then) until the hand-over names B (the source's migrate answer lists
    it in "replicas_out"); it then never asks B although B answers
    again with the old pattern: VERIFY finds 0 mismatches. Without the
    hand-over the destination would read B first."""
    a = vmlib.Memnode(tmp_path, key, keyfile, node_id=101, pool="1G")
    b = vmlib.Memnode(tmp_path, key, keyfile, node_id=102, pool="1G")
    extra = ("--memnode-timeout-ms", "1000")
    a1 = vmlib.Agent(str(tmp_path), keyfile, node_id=1, extra=extra)
    a2 = vmlib.Agent(str(tmp_path), keyfile, node_id=2, extra=extra)
    try:
        secs = []
        for _ in range(3):
            s = b.section()
            s["replicas"] = [ref(a.section())]
            secs.append(s)
        cache = 3 * 128 * 1024 * 1024 // 4
        a1.create("mover", secs, vcpus=1, cache_bytes=cache)
        a1.guest("mover", f"FILL 1 7 {MB}")

        dst = a2.create("mover", [regrant(key, s, 2) for s in secs], vcpus=1, cache_bytes=cache,
                        incoming={"listen": "127.0.0.1:0", "replicas_pending": True})
        assert dst["state"] == "incoming" and dst.get("replicas_pending") is True, dst

        os.kill(b.pid, signal.SIGSTOP)        # B misses the new pattern
        try:
            a1.guest("mover", "REWRITE 1 8")
            assert vmlib.wait_for(
                lambda: len(a1.status("mover").get("replicas_out") or []) == 3, timeout=60)
        finally:
            os.kill(b.pid, signal.SIGCONT)

        st, res = a1.request("POST", "/v1/vms/mover/migrate",
                             {"uri": dst["migration_uri"]}, timeout=300)
        assert st == 200 and res["ok"] is True, res
        outs = res["replicas_out"]
        assert {x["memnode"] for x in outs} == {b.node_id} and len(outs) == 3, outs
        # Nothing remote is read before the hand-over: QEMU's first touch of
        # guest memory (its devices' state) waits, and so does the guest.
        assert vmlib.wait_for(lambda: parked(a2, "mover") > 0, 30), parked(a2, "mover")
        assert a2.status("mover").get("replicas_pending") is True

        bad = [{"action": "hand-over"}, {"action": "hand-over", "out": {}},
               {"action": "hand-over", "out": [{"memnode": 1}]},
               {"action": "hand-over", "out": [dict(memnode=1, section=0, generation=0, x=1)]},
               {"action": "hand-over", "out": [], "replica": {}}]
        for body in bad:
            st, j = a2.request("POST", "/v1/vms/mover/sections/replica", body)
            assert st == 400, (body, st, j)
        assert a2.status("mover").get("replicas_pending") is True

        mine = [{k: x[k] for k in ("memnode", "section", "generation")} for x in outs]
        foreign = dict(memnode=999, section=1, generation=1)
        j = a2.call("POST", "/v1/vms/mover/sections/replica",
                    {"action": "hand-over", "out": mine + [foreign]})
        assert j == {"dropped": 3, "skipped": 1, "pending": False}, j
        assert vmlib.wait_for(lambda: a2.status("mover")["state"] == "running", 60), \
            a2.status("mover")
        st = a2.status("mover")
        assert "replicas_pending" not in st, st
        assert {x["memnode"] for x in st["replicas_out"]} == {b.node_id}, st
        v = a2.guest("mover", "VERIFY 1")
        assert v["mismatches"] == 0, v

        # Again is harmless; naming the last replica in of a section is refused.
        assert a2.call("POST", "/v1/vms/mover/sections/replica",
                       {"action": "hand-over", "out": mine})["pending"] is False
        last = secs[0]["replicas"][0]
        memnode, _, s0, g0 = grant_fields(last)
        with pytest.raises(vmlib.ApiError) as e:
            a2.call("POST", "/v1/vms/mover/sections/replica",
                    {"action": "hand-over",
                     "out": [dict(memnode=memnode, section=s0, generation=g0)]})
        assert e.value.status == 409 and "last_replica" in str(e.value.body), e.value.body
        a1.delete("mover")
        a2.delete("mover")
    finally:
        problems = a1.close() + a2.close()
        for m in (a, b):
            m.stop()
        assert problems == [], problems
