# SPDX-License-Identifier: MIT
"""Renewed grants at the compute agent (POST /v1/vms/NAME/grants, docs/compute.md).

A VM starts on grants that expire a few seconds later. The test, acting as
the orchestrator, sends renewed ones before that; the guest keeps faulting
pages in from the memory node long after the first grants expired, and
VERIFY finds every byte. Wrong renewals (another holder, a section the VM
does not have, an older epoch, bad hex) are refused and change nothing."""
import pathlib
import threading
import time

import dproto
import vmlib


def regrant(key, sec_json, **kw):
    g = dproto.GRANT.unpack(bytes.fromhex(sec_json["grant"]))
    f = dict(memnode_id=g[0], holder_id=g[1], section=g[2], generation=g[3], rights=g[4],
             epoch=g[5], expiry=g[6])
    f.update(kw)
    return dproto.mint_grant(key, f["memnode_id"], f["holder_id"], f["section"],
                             f["generation"], f["rights"], expiry=f["expiry"],
                             epoch=f["epoch"]).hex()


def test_renewed_grants_keep_the_vm_running(cluster, key):
    mn = cluster.memnode()
    agent = cluster.agent()
    # Boot takes a few seconds under TCG, and far longer on a busy host:
    # the first grants must outlive it.
    soon = int(time.time()) + 60
    secs = [mn.section(expiry=soon) for _ in range(2)]
    vm = agent.create("renew", secs, vcpus=1, cache_bytes=32 << 20)   # an eighth: evicts
    assert vm["state"] == "running", vm

    def post(grants):
        return agent.request("POST", "/v1/vms/renew/grants", {"grants": grants})

    # Refused, and nothing changes.
    st, ans = post([regrant(key, secs[0], holder_id=2)])
    assert st == 400 and "holder" in ans["error"]["message"], ans
    st, ans = post([regrant(key, secs[0], section=7)])
    assert st == 404 and ans["error"]["code"] == "no_section", ans
    st, ans = post([regrant(key, secs[0], epoch=1, expiry=soon + 3600)])
    assert st == 200 and ans["renewed"] == 1, ans                 # epoch 1 now in force
    st, ans = post([regrant(key, secs[0], epoch=0, expiry=soon + 3600)])
    assert st == 409 and ans["error"]["code"] == "stale_epoch", ans
    st, ans = post(["00" * 3])
    assert st == 400, ans
    st, ans = post([])
    assert st == 400, ans

    # Renew both for an hour (section 0 keeps its epoch 1), then outlive the first grants.
    later = int(time.time()) + 3600
    st, ans = post([regrant(key, secs[0], epoch=1, expiry=later),
                    regrant(key, secs[1], expiry=later)])
    assert st == 200 and ans["renewed"] == 2, ans
    agent.guest("renew", "FILL 1 5 100")          # 100 MiB through a 32 MiB cache
    time.sleep(max(0.0, soon + 2 - time.time()))
    v = agent.guest("renew", "VERIFY 1")          # every page fetched again, after expiry
    assert v["mismatches"] == 0, v
    st = agent.status("renew")
    # `errors` counts backend attempts that were retried (a write-back of
    # the boot's pages refused under epoch 0 once epoch 1 was in force, a
    # slow answer on a busy host): they may happen. The VM must never
    # have paused for its grants.
    assert st["state"] == "running" and st["pager"]["failed"] == 0, st
    log = pathlib.Path(agent.logpath).read_text()
    assert "pausing" not in log, log[-3000:]
    assert st["pager"]["pages_fetched"] > 0
    # The renewed grants are what the agent keeps: they survive its restart too.
    assert "grant" not in st["sections"][0]


def test_expired_grants_make_the_vm_degraded_until_renewed(cluster, key):
    """Grants that run out: the memory node refuses them, the guest's next
    fault waits, and the VM shows `degraded` with the reason (not `running`
    with a hung guest). Renewed grants wake it: `running`, every byte there."""
    mn = cluster.memnode()
    agent = cluster.agent()
    secs = [mn.section(expiry=int(time.time()) + 3600) for _ in range(2)]
    vm = agent.create("late", secs, vcpus=1, cache_bytes=32 << 20)
    assert vm["state"] == "running", vm
    agent.guest("late", "FILL 1 6 100")          # most of it evicted to the memory node
    code, ans = agent.request("POST", "/v1/vms/late/flush")
    assert code == 200, ans                      # nothing left to write back after expiry
    # Only now grants that run out a few seconds later: however slow the
    # boot and the FILL were, the expiry falls after them.
    soon = int(time.time()) + 3
    code, ans = agent.request("POST", "/v1/vms/late/grants",
                              {"grants": [regrant(key, s, expiry=soon) for s in secs]})
    assert code == 200 and ans["renewed"] == 2, ans
    time.sleep(max(0.0, soon + 1 - time.time()))
    result = {}

    def verify():
        try:
            result.update(agent.guest("late", "VERIFY 1"))
        except vmlib.ApiError as e:
            # The pager met the refusal first (another fault, or its own
            # traffic to the memory node), so the VM paused before VERIFY
            # could start: the same wait. VERIFY runs once it is renewed.
            result["refused"] = str(e)

    t = threading.Thread(target=verify)
    t.start()
    assert vmlib.wait_for(lambda: agent.status("late")["state"] == "degraded", 60), \
        agent.status("late")
    st = agent.status("late")
    assert "grant" in st["reason"], st
    later = int(time.time()) + 3600
    code, ans = agent.request("POST", "/v1/vms/late/grants",
                              {"grants": [regrant(key, s, expiry=later) for s in secs]})
    assert code == 200 and ans["renewed"] == 2, ans
    t.join(300)
    assert not t.is_alive(), "VERIFY still waits after the renewal"
    assert vmlib.wait_for(lambda: agent.status("late")["state"] == "running", 60), \
        agent.status("late")
    if "refused" in result:
        assert "No such process" in result["refused"], result      # ESRCH: not running
        result.update(agent.guest("late", "VERIFY 1"))
    assert result.get("mismatches") == 0, result
