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

import vmlib

MB = 160
AGENT = 1


def grant_fields(sec):
    import dproto
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
