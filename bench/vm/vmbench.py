#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""VM benchmark: a guest's memory workload on local vs remote RAM, and
memory hotplug latency, through the real compute agent (make bench-vm).

1. Workload: the guest's own `FILL 1 SEED MB` then `VERIFY 1` (the guest
   times both and answers with ms=...), then `FREE 1`, repeated --runs
   times in one VM. The first run is cold (every page faults in through
   the pager); later runs are warm (the guest reuses the pages it freed,
   which are resident unless the budget evicted them). Configurations,
   all measured in the same run, one VM at a time, same boot RAM size:
     local       every section local (the uffd zero-page floor)
     remote_100  every section remote, cache budget = all of it
     remote_50   budget = 50% of the remote RAM
     remote_25   budget = 25%
   Each reports the median of the warm runs (runs 2..N); the cold first
   run is kept in the JSON as *_cold_s.
2. Hotplug: a VM with remote boot RAM gets --hot remote sections, one at
   a time, through POST /v1/vms/NAME/sections (the agent answers after
   MemTotal moved in the guest, with "ms"), in pc-dimm and virtio-mem
   mode; then they are removed again. Both the agent's ms and the
   client's round trip are recorded; the headline is the median client
   time per added section.

Writes --json (default build/bench/vm.json): local_s, remote_100_s,
remote_50_s, remote_25_s, hotplug_dimm_ms, hotplug_virtiomem_ms, the
ratios against local_s, targets and pass flags, and every raw figure.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "vm"))

import vmlib  # noqa: E402

TARGETS = {"remote_100_ratio": 1.3, "remote_25_ratio": 3.0, "hotplug_dimm_ms": 1000}


def workload(agent, name, mb, runs):
    out = []
    for i in range(runs):
        f = agent.guest(name, f"FILL 1 {17 + i} {mb}")
        v = agent.guest(name, "VERIFY 1")
        if v["mismatches"] != 0:
            raise AssertionError(f"{name}: VERIFY found {v['mismatches']} mismatches")
        agent.guest(name, "FREE 1")
        out.append({"fill_ms": f["ms"], "verify_ms": v["ms"],
                    "s": (f["ms"] + v["ms"]) / 1000.0})
    return out


def run_workloads(agent, mn, args):
    nsec = args.sections
    remote_bytes = nsec * vmlib.SECTION
    configs = [("local", None), ("remote_100", 1.0), ("remote_50", 0.5),
               ("remote_25", 0.25)]
    res = {}
    for name, frac in configs:
        if frac is None:
            secs, extra = [{"kind": "local"}] * nsec, {}
        else:
            secs = [mn.section() for _ in range(nsec)]
            extra = {"cache_bytes": int(remote_bytes * frac)}
        vmname = "bench-" + name.replace("_", "")
        agent.create(vmname, secs, vcpus=1, **extra)
        try:
            runs = workload(agent, vmname, args.mb, args.runs)
            st = agent.status(vmname)
        finally:
            agent.delete(vmname)
        warm = [r["s"] for r in runs[1:]] or [runs[0]["s"]]
        res[name] = {"runs": runs, "warm_s": statistics.median(warm),
                     "cold_s": runs[0]["s"], "pager": st.get("pager"),
                     "cache_bytes": extra.get("cache_bytes")}
        p = st.get("pager") or {}
        print(f"  {name:11s} cold {runs[0]['s']:6.2f} s   warm {res[name]['warm_s']:6.2f} s"
              f"   fetched {p.get('pages_fetched', 0):8d}  evicted {p.get('pages_evicted', 0):8d}"
              f"  written back {p.get('pages_written_back', 0):8d}", flush=True)
    return res


def run_hotplug(agent, mn, mode, n):
    name = "bench-hp-" + mode.replace("-", "")
    agent.create(name, [mn.section() for _ in range(4)], vcpus=1, hotplug=mode,
                 max_sections=n)
    adds, removes = [], []
    try:
        idx = []
        for _ in range(n):
            sec = mn.section()
            t0 = time.monotonic()
            r = agent.add_section(name, sec)
            adds.append({"agent_ms": r["ms"], "client_ms": (time.monotonic() - t0) * 1000})
            idx.append(r["index"])
        for i in reversed(idx):
            t0 = time.monotonic()
            r = agent.remove_section(name, i)
            removes.append({"agent_ms": r["ms"],
                            "client_ms": (time.monotonic() - t0) * 1000})
    finally:
        agent.delete(name)
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    out = {"add": adds, "remove": removes,
           "add_client_ms": med(adds, "client_ms"), "add_agent_ms": med(adds, "agent_ms"),
           "remove_client_ms": med(removes, "client_ms"),
           "remove_agent_ms": med(removes, "agent_ms")}
    print(f"  {mode:11s} add {out['add_client_ms']:7.1f} ms (agent {out['add_agent_ms']:.0f})"
          f"   remove {out['remove_client_ms']:7.1f} ms (agent {out['remove_agent_ms']:.0f})"
          f"   per section, median of {n}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=str(ROOT / "build" / "bench" / "vm.json"))
    ap.add_argument("--mb", type=int, default=256, help="workload size in MiB (default 256)")
    ap.add_argument("--sections", type=int, default=4,
                    help="boot RAM in 128 MiB sections (default 4 = 512 MiB)")
    ap.add_argument("--runs", type=int, default=3, help="workload runs per VM (default 3)")
    ap.add_argument("--hot", type=int, default=4, help="sections hot-added per mode")
    ap.add_argument("--targets", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()

    try:
        vmlib.check_prereqs()
    except vmlib.Skip as e:
        print(f"vmbench: skipped: {e}")
        return 77
    tmp = tempfile.mkdtemp(prefix="disagg-vmbench-")
    keyfile, key = vmlib.new_keyfile(tmp)
    pool = f"{(args.sections * 2 + args.hot + 4) * 128}M"
    mn = vmlib.Memnode(tmp, key, keyfile, pool=pool)
    agent = vmlib.Agent(tmp, keyfile)
    problems = []
    try:
        print(f"workload: FILL+VERIFY {args.mb} MiB in a {args.sections * 128} MiB guest "
              f"(TCG, 1 vCPU), {args.runs} runs, warm = median of runs 2..{args.runs}",
              flush=True)
        wl = run_workloads(agent, mn, args)
        print("hotplug: request -> MemTotal moved in the guest", flush=True)
        hp = {m: run_hotplug(agent, mn, m, args.hot) for m in ("dimm", "virtio-mem")}
    finally:
        problems = agent.close()
        mn.stop()
    local = wl["local"]["warm_s"]
    out = {
        "local_s": local,
        "remote_100_s": wl["remote_100"]["warm_s"],
        "remote_50_s": wl["remote_50"]["warm_s"],
        "remote_25_s": wl["remote_25"]["warm_s"],
        "local_cold_s": wl["local"]["cold_s"],
        "remote_100_cold_s": wl["remote_100"]["cold_s"],
        "remote_50_cold_s": wl["remote_50"]["cold_s"],
        "remote_25_cold_s": wl["remote_25"]["cold_s"],
        "hotplug_dimm_ms": hp["dimm"]["add_client_ms"],
        "hotplug_virtiomem_ms": hp["virtio-mem"]["add_client_ms"],
        "unplug_dimm_ms": hp["dimm"]["remove_client_ms"],
        "unplug_virtiomem_ms": hp["virtio-mem"]["remove_client_ms"],
    }
    for k in ("remote_100", "remote_50", "remote_25"):
        out[f"{k}_ratio"] = round(out[f"{k}_s"] / local, 3)
        out[f"{k}_cold_ratio"] = round(out[f"{k}_cold_s"] / wl["local"]["cold_s"], 3)
    out["targets"] = TARGETS
    out["pass"] = {
        "remote_100_ratio": out["remote_100_ratio"] <= TARGETS["remote_100_ratio"],
        "remote_25_ratio": out["remote_25_ratio"] <= TARGETS["remote_25_ratio"],
        "hotplug_dimm_ms": out["hotplug_dimm_ms"] <= TARGETS["hotplug_dimm_ms"],
    }
    out["params"] = {"mb": args.mb, "sections": args.sections, "runs": args.runs,
                     "hot": args.hot, "accel": "tcg", "vcpus": 1}
    out["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release()}
    out["workloads"] = wl
    out["hotplug"] = hp
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(out, indent=2) + "\n")

    print(f"\n{'':12s}{'warm s':>8s}{'x local':>9s}{'cold s':>8s}{'x local':>9s}")
    for k in ("local", "remote_100", "remote_50", "remote_25"):
        r = out[f"{k}_ratio"] if k != "local" else 1.0
        rc = out[f"{k}_cold_ratio"] if k != "local" else 1.0
        print(f"{k:12s}{out[f'{k}_s']:8.2f}{r:9.2f}{out[f'{k}_cold_s']:8.2f}{rc:9.2f}")
    print(f"hotplug pc-dimm {out['hotplug_dimm_ms']:.0f} ms, virtio-mem "
          f"{out['hotplug_virtiomem_ms']:.0f} ms per section (client, median)")
    for k, ok in out["pass"].items():
        print(f"target {k} <= {TARGETS[k]}: {'ok' if ok else 'MISSED'}")
    print(f"wrote {args.json}")
    if problems:
        print("problems:", *problems, sep="\n  ")
        return 1
    if args.targets and not all(out["pass"].values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
