# SPDX-License-Identifier: MIT
"""VM test: the agent names each section as its memory node does.

The orchestrator decides which section a VM uses from the agent's own
view (GET /v1/vms/NAME: memory node, section, generation of every
section). Here a memory node's generations are past 2^31 (a persistent
pool whose sections were allocated many times: the records of its file
say so), and the agent must still report them exactly, as unsigned
numbers, in the shape tests/schema/compute-agent.json describes
(vmlib checks every answer).
"""
import pathlib
import struct

import dproto
import vmlib

REC_OFFSET, REC = 4096, struct.Struct("<IIQ")     # src/memnode/pool.c: state, generation, owner
HIGH = 0xFFFFFF00


def file_memnode(cluster, path, node_id=111):
    argv = [vmlib.find_prog("disagg-memnode"), "--listen", "127.0.0.1:0", "--node-id",
            str(node_id), "--pool", "256M", "--section-size", "128M", "--key",
            cluster.keyfile, "--grant-pubkey", dproto.grant_files(cluster.keyfile)[1],
            "--backing", f"file:{path}", *vmlib.fabric().args(node_id, "memory")]
    m = vmlib.Proc(argv, pathlib.Path(cluster.tmp) / f"memnode-{node_id}.log",
                   r"listening on (\S+)")
    m.addr, m.node_id, m.key = m.match.group(1), node_id, cluster.key
    cluster.memnodes.append(m)
    return m


def test_generations_past_2_31(cluster):
    pool = pathlib.Path(cluster.tmp) / "pool"
    m = file_memnode(cluster, pool)
    assert m.stop() == 0
    cluster.memnodes.remove(m)
    with open(pool, "r+b") as f:                       # two free sections, used often
        for i in range(2):
            f.seek(REC_OFFSET + i * REC.size)
            f.write(REC.pack(0, HIGH + i, 0))
    m = file_memnode(cluster, pool)
    secs = []
    with dproto.Conn(m.addr).login(cluster.key, 900) as c:
        for _ in range(2):
            sec, gen = c.alloc(0)
            assert gen > 1 << 31
            g = dproto.mint_grant(cluster.key, m.node_id, 1, sec, gen,
                                  dproto.R_READ | dproto.R_WRITE | dproto.R_FREE)
            secs.append(({"kind": "remote", "addr": m.addr, "grant": g.hex(),
                          "free_on_release": True}, (m.node_id, sec, gen)))
    agent = cluster.agent()
    vm = agent.create("high", [s for s, _ in secs], vcpus=1)
    assert vm["state"] == "running", vm
    view = agent.status("high")["sections"]
    assert [(x["memnode"], x["section"], x["generation"]) for x in view] == \
        [w for _, w in secs], view
    agent.delete("high")
