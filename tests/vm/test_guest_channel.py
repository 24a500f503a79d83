# SPDX-License-Identifier: MIT
"""VM test: the agent drains a running guest's channel by itself.

disagg-guest writes its heartbeats (and any unsolicited line) to the
virtio-serial channel; a channel that nobody reads fills, and the guest's
next write blocks. The agent's supervisor thread reads the channel of
every running VM several times a second (src/compute/vm/supervise.c), so
that a guest never waits for its host to ask. Before, the lines reached
the agent only on a request, and an idle benchmark saw heartbeat gaps of
seconds that no vCPU stall caused: here 15 s unread gave about 700
heartbeats, the longest gap 300 ms.
"""
import time

UNREAD_S = 6


def test_heartbeats_flow_unread(cluster):
    mn = cluster.memnode()
    agent = cluster.agent()
    agent.create("hb", [mn.section() for _ in range(2)])
    agent.guest("hb", "HEARTBEAT 1")
    first = agent.call("GET", "/v1/vms/hb/heartbeats")["count"]
    time.sleep(UNREAD_S)
    j = agent.call("GET", "/v1/vms/hb/heartbeats")
    hbs = sorted(h for h in j["heartbeats"] if h[0] >= first)
    seqs = [h[0] for h in hbs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "heartbeats missing"
    gaps = [(b[1] - a[1]) / 1e6 for a, b in zip(hbs, hbs[1:])]
    print(f"{len(hbs)} heartbeats in {UNREAD_S} s unread, longest gap {max(gaps):.1f} ms")
    # The guest's loop runs at a few hundred per second under TCG (its
    # timer tick); a blocked one manages a few dozen.
    assert len(hbs) >= 100 * UNREAD_S, len(hbs)
    assert max(gaps) < 1000, max(gaps)
    agent.guest("hb", "HEARTBEAT 0")
    agent.delete("hb")
