#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""VM benchmark: a guest's memory workloads on stock QEMU, on local and on
remote RAM through the real compute agent, and memory hotplug latency
(make bench-vm).

Configurations, all in the same run, one VM at a time (except the cleaner
pair), same guest, same machine and boot RAM size:
  plain       the baseline: stock QEMU on the agent's own command line for
              the local VM, RAM a memory-backend-file on tmpfs, no shim, no
              agent, no userfaultfd (plain.py)
  local       the agent, every section local (the uffd zero-page floor)
  remote_100  every section remote, cache budget = all of it
  remote_100_nowb  what the cleaner costs: two remote_100 VMs side by side,
              one on an agent with background write-back at its default,
              one on an agent with it off (--writeback-delay-ms 0). Their
              warm FILL+VERIFY runs alternate (ABBA), so both sides meet the
              same host speed. Two passes: "rewriting", runs back to back
              (a guest that keeps rewriting its memory: the headline), and
              "after idle", where before each timed run both VMs' write-back
              is let settle, so the cleaner has written back (and
              write-protected) every page the run will rewrite: the worst
              case. Each figure is the median of the per-pair ratios
              (on / off), with their min and max.
  remote_50   budget = 50% of the remote RAM
  remote_25   budget = 25%
  remote_25_rep2  budget = 25%, every section with two replicas on two
              memory nodes (docs/replication.md): each write-back goes to
              both; its figure is over remote_25 of the same run
              (replicated_25_ratio, target 1.3)

Workloads in each VM (the guest times itself, docs/guest.md):
  cold    FILL+VERIFY of --cold-mb MiB of memory the guest never touched,
          --reps times (regions 1..reps, none freed: each is fresh)
  warm    FILL+VERIFY of --mb MiB, then FREE, --reps + 1 times; the first
          one warms up and is not counted (the guest reuses the pages it
          freed: they are resident unless the budget evicted them)
  random  RANDOM over a --mb MiB region for --random-s seconds, --reps
          times: one word of a random page per operation, 30% writes
Each figure is the median of its repetitions with min and max. Headline
ratios are over plain (the spread: worst and best pairing of the two
sides' extremes); local is a second row.

Hotplug: a VM with remote boot RAM gets --hot remote sections, one at a
time, through POST /v1/vms/NAME/sections (the agent answers after MemTotal
moved in the guest), in pc-dimm and virtio-mem mode; then they are removed
again. The headline is the median client time per added section.

Writes --json (default build/bench/vm.json).
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

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import plain  # noqa: E402

TARGETS = {"remote_100_ratio": 1.3, "remote_100_cold_ratio": 1.5, "remote_25_ratio": 2.5,
           "hotplug_dimm_ms": 1000, "replicated_25_ratio": 1.3}
CONFIGS = [("plain", None), ("local", None), ("remote_100", 1.0),
           ("remote_100_nowb", 1.0), ("remote_50", 0.5), ("remote_25", 0.25),
           ("remote_25_rep2", 0.25)]


def spread(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def fill_verify(guest, rid, seed, mb):
    """FILL+VERIFY of mb MiB as region rid: seconds, as the guest timed them."""
    f = guest(f"FILL {rid} {seed} {mb}")
    v = guest(f"VERIFY {rid}")
    if v["mismatches"] != 0:
        raise AssertionError(f"VERIFY found {v['mismatches']} mismatches")
    return (f["ms"] + v["ms"]) / 1000.0


def workload(guest, args):
    """The three workloads through guest(cmd) -> fields."""
    def fv(rid, seed, mb):
        return fill_verify(guest, rid, seed, mb)

    cold = [fv(1 + i, 100 + i, args.cold_mb) for i in range(args.reps)]
    for i in range(args.reps):
        guest(f"FREE {1 + i}")
    warm = []
    for i in range(args.reps + 1):
        warm.append(fv(1, 17 + i, args.mb))
        guest("FREE 1")
    rnd = []
    guest(f"FILL 1 7 {args.mb}")
    for i in range(args.reps):
        r = guest(f"RANDOM 1 {args.random_s} 30 {1 + i}")
        if r["mismatches"] != 0:
            raise AssertionError(f"RANDOM found {r['mismatches']} mismatches")
        rnd.append(r["ops_per_s"])
    v = guest("VERIFY 1")
    if v["mismatches"] != 0:
        raise AssertionError(f"VERIFY after RANDOM found {v['mismatches']} mismatches")
    guest("FREE 1")
    return {"cold_runs_s": cold, "warmup_s": warm[0], "warm_runs_s": warm[1:],
            "random_runs_ops": rnd, "cold": spread(cold), "warm": spread(warm[1:]),
            "random": spread(rnd)}


def settle(agent, name, quiet_s=0.6, limit_s=15.0):
    """Wait until name's pager has written nothing back for quiet_s (at most
    limit_s): its background write-back then no longer competes for the
    host while the other side of a pair is timed."""
    def written():
        return (agent.status(name).get("pager") or {}).get("pages_written_back", 0)
    t_end = time.monotonic() + limit_s
    last, since = written(), time.monotonic()
    while time.monotonic() < t_end:
        time.sleep(0.2)
        now = written()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return True
    return False


def minor_faults(pid):
    """Minor page faults of process pid so far (/proc/PID/stat, field 10)."""
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def run_cleaner_pair(agents, mn, args, idle):
    """remote_100 with the cleaner on and off, side by side, runs alternating;
    with idle, both sides' write-back settles before each timed run."""
    nsec = args.sections
    cache = nsec * vmlib.SECTION
    tag = "idle" if idle else "busy"
    sides = {"on": (agents["default"], f"bench-cleaneron{tag}", 1),
             "off": (agents["nowb"], f"bench-cleaneroff{tag}", 2)}
    made = []
    runs = {"on": [], "off": []}
    minflt = {"on": [], "off": []}   # QEMU's minor faults per run: the write faults
    unsettled = 0
    try:
        for side, (agent, name, holder) in sides.items():
            agent.create(name, [mn.section(holder=holder) for _ in range(nsec)], vcpus=1,
                         cache_bytes=cache)
            made.append((agent, name))
        for side, (agent, name, _) in sides.items():   # warm-up: fault everything in
            fill_verify(lambda c, a=agent, n=name: a.guest(n, c), 1, 16, args.mb)
            agent.guest(name, "FREE 1")
        for i in range(args.reps):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for side in order:
                agent, name, _ = sides[side]
                if idle:
                    unsettled += sum(not settle(a, n) for a, n, _ in sides.values())
                pid = agent.status(name)["pid"]
                f0 = minor_faults(pid)
                runs[side].append(fill_verify(lambda c, a=agent, n=name: a.guest(n, c), 1,
                                              17 + i, args.mb))
                minflt[side].append(minor_faults(pid) - f0)
                agent.guest(name, "FREE 1")
        pager = {s: sides[s][0].status(sides[s][1]).get("pager") for s in sides}
    finally:
        for agent, name in made:
            agent.delete(name)
    ratios = [a / b for a, b in zip(runs["on"], runs["off"])]
    out = {"on_runs_s": runs["on"], "off_runs_s": runs["off"], "ratios": ratios,
           "on": spread(runs["on"]), "off": spread(runs["off"]), "ratio": spread(ratios),
           "minflt_on": minflt["on"], "minflt_off": minflt["off"],
           "unsettled": unsettled, "pager": pager}
    print(f"  cleaner {tag}   on {out['on']['median']:6.2f} s   off {out['off']['median']:6.2f} s"
          f"   on/off {out['ratio']['median']:.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
          f"   on: wp {pager['on'].get('faults_wp', 0)} written back "
          f"{pager['on'].get('pages_written_back', 0)}   QEMU minor faults per run on "
          f"{statistics.median(minflt['on']):.0f} off {statistics.median(minflt['off']):.0f}",
          flush=True)
    return out


def run_workloads(agents, mn, mn2, args):
    nsec = args.sections
    remote_bytes = nsec * vmlib.SECTION
    res, plain_argv = {}, None
    want = set(args.configs.split(",")) if args.configs else {c[0] for c in CONFIGS}
    if "plain" in want:
        want.add("local")   # plain runs on local's command line
    for name, frac in [c for c in CONFIGS if c[0] not in ("plain", "remote_100_nowb")
                       and c[0] in want]:
        if frac is None:
            secs, extra = [{"kind": "local"}] * nsec, {}
        else:
            secs = [mn.section() for _ in range(nsec)]
            extra = {"cache_bytes": int(remote_bytes * frac)}
        if name.endswith("_rep2"):
            for sec in secs:
                r = mn2.section()
                sec["replicas"] = [{"addr": r["addr"], "grant": r["grant"]}]
        vmname = "bench-" + name.replace("_", "")
        agent = agents["default"]
        j = agent.create(vmname, secs, vcpus=1, **extra)
        try:
            if name == "local":
                plain_argv = plain.qemu_cmdline(j["pid"])
            w = workload(lambda c, n=vmname: agent.guest(n, c), args)
            st = agent.status(vmname)
        finally:
            agent.delete(vmname)
        res[name] = dict(w, pager=st.get("pager"), cache_bytes=extra.get("cache_bytes"))
        report(name, res[name])
        if name == "local" and "plain" in want:
            vm = plain.PlainVM(plain_argv)
            try:
                res["plain"] = workload(vm.guest, args)
            finally:
                vm.close()
            res["plain"]["argv"] = plain_argv
            report("plain", res["plain"])
    if "remote_100_nowb" in want:
        res["cleaner_pair"] = run_cleaner_pair(agents, mn, args, idle=False)
        res["cleaner_pair_idle"] = run_cleaner_pair(agents, mn, args, idle=True)
    return res


def report(name, r):
    p = r.get("pager") or {}
    print(f"  {name:11s} cold {r['cold']['median']:6.2f} s   warm {r['warm']['median']:6.2f} s"
          f" ({r['warm']['min']:.2f}-{r['warm']['max']:.2f})"
          f"   random {r['random']['median']:9.0f} op/s"
          f"   faults {p.get('faults', 0):8d}  wp {p.get('faults_wp', 0):8d}"
          f"  written back {p.get('pages_written_back', 0):8d}", flush=True)


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
    ap.add_argument("--reps", type=int, default=5,
                    help="repetitions of each workload per VM (default 5)")
    ap.add_argument("--cold-mb", type=int, default=64,
                    help="MiB of fresh memory per cold repetition (default 64)")
    ap.add_argument("--random-s", type=int, default=2,
                    help="seconds per RANDOM repetition (default 2)")
    ap.add_argument("--hot", type=int, default=4, help="sections hot-added per mode")
    ap.add_argument("--configs", default="",
                    help="comma-separated subset of " + ",".join(c[0] for c in CONFIGS)
                    + " (default all; plain needs local, which then runs too)")
    ap.add_argument("--targets", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--fabric", choices=("tls", "plaintext"), default="tls",
                    help="memory-node connections: TLS 1.3 (default, as deployed) or "
                    "--fabric-plaintext, to see what TLS costs")
    args = ap.parse_args()
    if args.fabric == "plaintext":
        os.environ["DISAGG_TEST_FABRIC"] = "plaintext"
    unknown = set(filter(None, args.configs.split(","))) - {c[0] for c in CONFIGS}
    if unknown:
        ap.error(f"--configs: unknown {', '.join(sorted(unknown))} "
                 f"(known: {', '.join(c[0] for c in CONFIGS)})")

    try:
        vmlib.check_prereqs()
    except vmlib.Skip as e:
        print(f"vmbench: skipped: {e}")
        return 77
    tmp = tempfile.mkdtemp(prefix="disagg-vmbench-")
    keyfile, key = vmlib.new_keyfile(tmp)
    pool = f"{(args.sections * 2 + args.hot + 4) * 128}M"   # sections are freed with each VM
    mn = vmlib.Memnode(tmp, key, keyfile, pool=pool)
    mn2 = vmlib.Memnode(tmp, key, keyfile, node_id=102, pool=f"{(args.sections + 2) * 128}M")
    agent = vmlib.Agent(tmp, keyfile)
    nowb = vmlib.Agent(tmp, keyfile, node_id=2, extra=("--writeback-delay-ms", "0"))
    problems = []
    try:
        print(f"workloads in a {args.sections * 128} MiB guest (TCG, 1 vCPU), {args.reps} "
              f"repetitions each: cold FILL+VERIFY {args.cold_mb} MiB, warm FILL+VERIFY "
              f"{args.mb} MiB, RANDOM {args.random_s} s over {args.mb} MiB", flush=True)
        wl = run_workloads({"default": agent, "nowb": nowb}, mn, mn2, args)
        print("hotplug: request -> MemTotal moved in the guest", flush=True)
        hp = {m: run_hotplug(agent, mn, m, args.hot) for m in ("dimm", "virtio-mem")
              if args.hot > 0}
    finally:
        problems = agent.close() + nowb.close()
        mn.stop()
        mn2.stop()
    out = {}
    done = [k for k, _ in CONFIGS if k in wl]   # remote_100_nowb: the pair, below
    for k in done:
        out[f"{k}_s"] = wl[k]["warm"]["median"]
        out[f"{k}_cold_s"] = wl[k]["cold"]["median"]
        out[f"{k}_random_ops"] = wl[k]["random"]["median"]
    for k in (done if "plain" in wl else []):
        if k == "plain":
            continue
        for kind, key in (("warm", ""), ("cold", "_cold")):
            a, b = wl[k][kind], wl["plain"][kind]
            out[f"{k}{key}_ratio"] = round(a["median"] / b["median"], 3)
            out[f"{k}{key}_ratio_min"] = round(a["min"] / b["max"], 3)
            out[f"{k}{key}_ratio_max"] = round(a["max"] / b["min"], 3)
        a, b = wl[k]["random"], wl["plain"]["random"]
        out[f"{k}_random_ratio"] = round(b["median"] / a["median"], 3)   # slowdown
        out[f"{k}_random_ratio_min"] = round(b["min"] / a["max"], 3)
        out[f"{k}_random_ratio_max"] = round(b["max"] / a["min"], 3)
    if hp:
        out.update({
            "hotplug_dimm_ms": hp["dimm"]["add_client_ms"],
            "hotplug_dimm_ms_min": min(x["client_ms"] for x in hp["dimm"]["add"]),
            "hotplug_dimm_ms_max": max(x["client_ms"] for x in hp["dimm"]["add"]),
            "hotplug_virtiomem_ms": hp["virtio-mem"]["add_client_ms"],
            "unplug_dimm_ms": hp["dimm"]["remove_client_ms"],
            "unplug_virtiomem_ms": hp["virtio-mem"]["remove_client_ms"],
        })
    if "remote_25_rep2" in wl and "remote_25" in wl:
        # Replication's cost: the same workload with one replica, same run.
        a, b = wl["remote_25_rep2"]["warm"], wl["remote_25"]["warm"]
        out["replicated_25_ratio"] = round(a["median"] / b["median"], 3)
        out["replicated_25_ratio_min"] = round(a["min"] / b["max"], 3)
        out["replicated_25_ratio_max"] = round(a["max"] / b["min"], 3)
        # Random access: replication's slowdown (one replica's op/s over two's).
        a, b = wl["remote_25_rep2"]["random"], wl["remote_25"]["random"]
        out["replicated_25_random_ratio"] = round(b["median"] / a["median"], 3)
        out["replicated_25_random_ratio_min"] = round(b["min"] / a["max"], 3)
        out["replicated_25_random_ratio_max"] = round(b["max"] / a["min"], 3)
    out["targets"] = TARGETS
    out["pass"] = {k: out[k] <= v for k, v in TARGETS.items() if k in out}
    if "cleaner_pair" in wl:
        pr = wl["cleaner_pair"]
        out["remote_100_nowb_s"] = pr["off"]["median"]
        out["cleaner_cost"] = round(pr["ratio"]["median"], 3)
        out["cleaner_cost_min"] = round(pr["ratio"]["min"], 3)
        out["cleaner_cost_max"] = round(pr["ratio"]["max"], 3)
        # The cleaner at its default is no worse than off: the median pair
        # ratio within the run-to-run spread of the off side.
        off = pr["off"]
        out["pass"]["cleaner_cost"] = pr["ratio"]["median"] <= off["max"] / off["median"]
    if "cleaner_pair_idle" in wl:
        pr = wl["cleaner_pair_idle"]
        out["cleaner_cost_idle"] = round(pr["ratio"]["median"], 3)
        out["cleaner_cost_idle_min"] = round(pr["ratio"]["min"], 3)
        out["cleaner_cost_idle_max"] = round(pr["ratio"]["max"], 3)
    out["params"] = {"mb": args.mb, "cold_mb": args.cold_mb, "random_s": args.random_s,
                     "sections": args.sections, "reps": args.reps,
                     "hot": args.hot, "accel": "tcg", "vcpus": 1, "fabric": args.fabric}
    out["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release()}
    out["workloads"] = wl
    out["hotplug"] = hp
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(out, indent=2) + "\n")

    print(f"\n{'':12s}{'warm s':>8s}{'x plain':>9s}{'cold s':>8s}{'x plain':>9s}"
          f"{'random op/s':>13s}{'slowdown':>10s}")
    for k in done:
        r = out.get(f"{k}_ratio", 1.0)
        rc = out.get(f"{k}_cold_ratio", 1.0)
        rr = out.get(f"{k}_random_ratio", 1.0)
        print(f"{k:12s}{out[f'{k}_s']:8.2f}{r:9.2f}{out[f'{k}_cold_s']:8.2f}{rc:9.2f}"
              f"{out[f'{k}_random_ops']:13.0f}{rr:10.2f}")
    if hp:
        print(f"hotplug pc-dimm {out['hotplug_dimm_ms']:.0f} ms, virtio-mem "
              f"{out['hotplug_virtiomem_ms']:.0f} ms per section (client, median)")
    if "cleaner_cost" in out:
        print(f"cleaner cost: remote_100 warm with background write-back on / off, "
              f"alternating pairs = {out['cleaner_cost']:.3f} "
              f"({out['cleaner_cost_min']:.3f}-{out['cleaner_cost_max']:.3f}); "
              f"after idle {out['cleaner_cost_idle']:.3f} "
              f"({out['cleaner_cost_idle_min']:.3f}-{out['cleaner_cost_idle_max']:.3f})")
    for k, ok in out["pass"].items():
        print(f"target {k} <= {TARGETS.get(k, 'the nowb max')}: {'ok' if ok else 'MISSED'}")
    print(f"wrote {args.json}")
    if problems:
        print("problems:", *problems, sep="\n  ")
        return 1
    if args.targets and not all(out["pass"].values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
