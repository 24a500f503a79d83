#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Replicated far memory under loss (make bench-replicas,
docs/replication.md): what a guest sees when a memory node that holds one
replica of its RAM dies, and how fast the replica is repaired.

Each repetition: a fresh memory node B and repair target C beside the run's
memory node A; a VM (TCG, 1 vCPU) whose --sections sections all have
replicas on A and B, with a cache of 25%; the guest FILLs a region larger
than the cache, rewrites it (WRITELOOP at --mbps MiB/s) and beats
(HEARTBEAT 1). Then:

  control   the longest gap between the guest's heartbeats over --window-s
            seconds with nothing happening: what the load alone costs (the
            baseline of the stall, same VM, same run)
  stall     B is SIGKILLed: the longest heartbeat gap over the next
            --window-s seconds (target: at most 50 ms)
  detect    from the kill until the agent's status lists the replica out
            (the pager takes it out at its first failed request; no
            heartbeat timeout is involved)
  repair    each section's out replica moves to C (begin, A COPYs the
            section to C, commit), with the guest writing: MB/s of section
            copied, over the COPY bandwidth of A to C measured in the same
            repetition on an idle section of the same size (target: at
            least 50%)
  verify    STOP, then A's replicas are dropped (POST .../sections/replica)
            and the guest VERIFYs its region, its evicted pages read from the
            repaired replicas on C: 0 mismatches or the run fails.

Writes --json (default build/bench/replicas.json). Each figure is the
median of the repetitions with min and max.
"""
import argparse
import json
import os
import pathlib
import signal
import statistics
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "vm"))
sys.path.insert(0, str(ROOT / "tests" / "functional"))

import dproto  # noqa: E402
import vmlib  # noqa: E402

SECTION = 128 << 20
TARGETS = {"replica_stall_ms": 50, "repair_ratio_inv": 2.0}


def spread(vals):
    return {"median": round(statistics.median(vals), 3), "min": round(min(vals), 3),
            "max": round(max(vals), 3), "n": len(vals)}


def grant_fields(sec):
    memnode, holder, s, gen, *_ = dproto.GRANT.unpack(bytes.fromhex(sec["grant"]))
    return memnode, holder, s, gen


def copy(key, src_mn, frm, dst_mn, to):
    """src_mn COPYs section frm to section to on dst_mn: (pages, seconds)."""
    _, _, ssec, sgen = grant_fields(frm)
    _, _, dsec, dgen = grant_fields(to)
    w = dproto.mint_grant(key, dst_mn.node_id, src_mn.node_id, dsec, dgen, dproto.R_WRITE)
    r = dproto.mint_grant(key, src_mn.node_id, 900, ssec, sgen, dproto.R_READ)
    c = dproto.Conn(src_mn.addr, timeout=300.0).login(key, 900)
    t0 = time.monotonic()
    try:
        pages, _ = c.copy(r, w, dst_mn.addr)
    finally:
        c.close()
    return pages, time.monotonic() - t0


def ref(sec):
    return {"addr": sec["addr"], "grant": sec["grant"]}


class Beats:
    """Poll the agent's heartbeats of a VM in a thread."""

    def __init__(self, agent, name):
        self.agent, self.name, self.seen = agent, name, {}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                hb = self.agent.call("GET", f"/v1/vms/{self.name}/heartbeats", timeout=10)
                for h in hb["heartbeats"]:
                    self.seen.setdefault(h[0], h)
            except Exception:   # noqa: BLE001 - a slow answer is only a missed poll
                pass
            time.sleep(0.005)

    def top(self):
        return max(self.seen) if self.seen else 0

    def max_gap_ms(self, lo, hi):
        hbs = sorted(h for q, h in self.seen.items() if lo <= q <= hi)
        gaps = [(b[1] - a[1]) / 1e6 for a, b in zip(hbs, hbs[1:]) if b[0] == a[0] + 1]
        return max(gaps) if gaps else None

    def close(self):
        self.stop.set()
        self.t.join(30)


def one_rep(i, tmp, key, keyfile, agent, a, args):
    b = vmlib.Memnode(tmp, key, keyfile, node_id=200 + i, pool=f"{(args.sections + 1) * 128}M")
    cmn = vmlib.Memnode(tmp, key, keyfile, node_id=300 + i,
                        pool=f"{(args.sections + 2) * 128}M")
    name = f"repl{i}"
    res = {}
    try:
        secs, reps = [], []
        for _ in range(args.sections):
            s, r = a.section(), b.section()
            s["replicas"] = [ref(r)]
            secs.append(s)
            reps.append(r)
        agent.create(name, secs, vcpus=1, cache_bytes=args.sections * SECTION // 4)
        agent.guest(name, f"FILL 1 7 {args.mb}")
        agent.guest(name, f"WRITELOOP 1 {args.mbps}")
        agent.guest(name, "HEARTBEAT 1")
        beats = Beats(agent, name)
        try:
            time.sleep(2.0)
            lo = beats.top()
            time.sleep(args.window_s)
            res["control_ms"] = beats.max_gap_ms(lo, beats.top())
            lo = beats.top()
            t_kill = time.monotonic()
            os.kill(b.pid, signal.SIGKILL)
            detect = None
            while time.monotonic() - t_kill < args.window_s:
                if detect is None and agent.status(name).get("replicas_out"):
                    detect = time.monotonic() - t_kill
                time.sleep(0.01)
            res["stall_ms"] = beats.max_gap_ms(lo, beats.top())
            res["detect_ms"] = round(detect * 1000, 1) if detect is not None else None
        finally:
            beats.close()
        st = agent.status(name)
        res["replicas_out"] = len(st.get("replicas_out") or [])
        # Repair each section's replica on B onto C, the guest writing.
        t_rep, pages = time.monotonic(), 0
        for s, r in zip(secs, reps):
            to = cmn.section()
            agent.call("POST", f"/v1/vms/{name}/sections/migrate",
                       {"phase": "begin", "from": ref(r), "to": ref(to)})
            n, _ = copy(key, a, s, cmn, to)
            agent.call("POST", f"/v1/vms/{name}/sections/migrate",
                       {"phase": "commit", "from": ref(r), "to": ref(to)})
            pages += n
        rep_s = time.monotonic() - t_rep
        res["repair_mbps"] = round(pages * 4096 / 1e6 / rep_s, 1)
        # The baseline: A COPYs an idle section holding as many pages as a
        # repaired one did (COPY skips pages never written) to C.
        idle_a, idle_c = a.section(), cmn.section()
        _, _, isec, igen = grant_fields(idle_a)
        wg = dproto.mint_grant(key, a.node_id, 900, isec, igen, dproto.R_WRITE)
        want = max(pages // len(secs), 256)
        with dproto.Conn(a.addr, timeout=120.0).login(key, 900) as c:
            c.write_range(wg, 0, bytes([0x5a]) * (want * 4096))
        n, sec_s = copy(key, a, idle_a, cmn, idle_c)
        res["copy_mbps"] = round(n * 4096 / 1e6 / sec_s, 1) if sec_s > 0 else None
        a.free(idle_a)
        cmn.free(idle_c)
        agent.guest(name, "STOP")
        # Served by the repaired replicas: A's are dropped first.
        for s in secs:
            _, _, sec, gen = grant_fields(s)
            agent.call("POST", f"/v1/vms/{name}/sections/replica",
                       {"action": "drop",
                        "replica": {"memnode": a.node_id, "section": sec, "generation": gen}})
        out = agent.guest(name, "VERIFY 1")
        if out.get("mismatches") != 0:
            raise AssertionError(f"VERIFY from the repaired replicas: {out}")
        agent.delete(name)
    finally:
        for m in (b, cmn):
            if m.alive():
                m.proc.kill()
            m.proc.wait()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sections", type=int, default=3)
    ap.add_argument("--mb", type=int, default=160, help="the guest's region (MiB)")
    ap.add_argument("--mbps", type=int, default=50, help="WRITELOOP rate (MiB/s)")
    ap.add_argument("--window-s", type=float, default=4.0)
    ap.add_argument("--json", default=str(ROOT / "build" / "bench" / "replicas.json"))
    args = ap.parse_args()
    try:
        vmlib.check_prereqs()
    except vmlib.Skip as e:
        print(f"replbench: skipped: {e}")
        return 77
    tmp = tempfile.mkdtemp(prefix="disagg-replbench-")
    keyfile, key = vmlib.new_keyfile(tmp)
    a = vmlib.Memnode(tmp, key, keyfile, node_id=101,
                      pool=f"{(args.sections * args.reps + 4) * 128}M")
    agent = vmlib.Agent(tmp, keyfile)
    runs = []
    try:
        for i in range(args.reps):
            r = one_rep(i, tmp, key, keyfile, agent, a, args)
            runs.append(r)
            print(f"  rep {i}: control {r['control_ms']:.1f} ms  stall {r['stall_ms']:.1f} ms  "
                  f"detect {r['detect_ms']} ms  repair {r['repair_mbps']} MB/s "
                  f"(copy {r['copy_mbps']} MB/s)", flush=True)
    finally:
        agent.close()
        a.stop()
    out = {
        "replica_stall_ms": spread([r["stall_ms"] for r in runs]),
        "control_gap_ms": spread([r["control_ms"] for r in runs]),
        "detect_ms": spread([r["detect_ms"] for r in runs if r["detect_ms"] is not None]),
        "repair_mbps": spread([r["repair_mbps"] for r in runs]),
        "copy_mbps": spread([r["copy_mbps"] for r in runs]),
        "runs": runs,
    }
    ratios = [r["copy_mbps"] / r["repair_mbps"] for r in runs]
    out["repair_ratio_inv"] = spread(ratios)   # copy / repair: <= 2 means >= 50%
    flat = {"replica_stall_ms": out["replica_stall_ms"]["median"],
            "replica_stall_ms_min": out["replica_stall_ms"]["min"],
            "replica_stall_ms_max": out["replica_stall_ms"]["max"],
            "control_gap_ms": out["control_gap_ms"]["median"],
            "replica_detect_ms": out["detect_ms"]["median"],
            "repair_mbps": out["repair_mbps"]["median"],
            "repair_ratio_inv": out["repair_ratio_inv"]["median"],
            "repair_ratio_inv_min": out["repair_ratio_inv"]["min"],
            "repair_ratio_inv_max": out["repair_ratio_inv"]["max"]}
    out.update(flat)
    out.update({"params": {"reps": args.reps, "sections": args.sections, "mb": args.mb,
                           "mbps": args.mbps, "window_s": args.window_s},
                "targets": TARGETS,
                "pass": {k: flat[k] <= v for k, v in TARGETS.items()}})
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(flat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
