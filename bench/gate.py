#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The benchmark regression gate (make bench, make bench-compare).

  gate.py run NAME [--reps N] -- CMD ... {json} ...
      Run a benchmark N times (default 1); each run writes its JSON where
      CMD has `{json}` (build/bench/NAME.rep<i>.json). The last one is also
      copied to build/bench/NAME.json. A run that fails stops the benchmark.
  gate.py summary [--out build/bench/summary.json]
      Collect every headline figure of FIGURES from the runs present:
      median, minimum and maximum over the repetitions, in summary.json.
  gate.py compare [--baseline bench/baseline.json] [--summary ...] [--markdown]
      A table: figure, baseline, now (min-max), ratio, verdict. Exit 1 if a
      figure is worse than its baseline beyond its tolerance, or missing
      (unless --allow-missing: a benchmark that was not run).
  gate.py baseline [--from summary.json] [--out bench/baseline.json] [--only PREFIX]
      Write the summary's medians as the new baseline (only the figures
      named PREFIX..., with --only), keeping each figure's tolerance. Do it only with a note in bench/README.md that
      says why.

A figure is better lower or higher. "worse by r" is now/baseline for a
lower-is-better figure and baseline/now for a higher-is-better one; the
verdict is "regression" when r > 1 + tolerance, "better" when
r < 1 / (1 + tolerance), else "ok". Tolerances are wide where the machine
is noisy (absolute times on a shared 2-CPU host) and narrow for ratios
whose baseline runs in the same process.

A figure that is a difference of two noisy figures (a cost "with minus
without", which can be near zero or negative) has an absolute slack
instead ("slack" in its unit, SLACK below): it is a regression when it is
worse than its baseline by more than the slack, and "worse by" is that
difference. A ratio of such a figure means nothing.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = pathlib.Path(os.environ.get("DISAGG_BENCH_DIR", ROOT / "build" / "bench"))


def pager_row(setup, pct, key):
    def get(j):
        for r in j.get("rows", []):
            if r.get("setup") == setup and r.get("budget_pct") == pct:
                return r.get(key)
        return None
    return get


def key(k):
    return lambda j: j.get(k)


def spread(k, n_param="reps"):
    """A figure with its own spread in one run: k, k_min, k_max, and its
    number of samples in params[n_param] (bench/vm, bench/migration)."""
    def get(j):
        if not isinstance(j.get(k), (int, float)):
            return None
        n = (j.get("params") or {}).get(n_param, 1)
        return (j[k], j.get(f"{k}_min", j[k]), j.get(f"{k}_max", j[k]), n)
    return get


# name: (benchmark, extractor, unit, better, what it is)
FIGURES = {
    "devices.ours_over_nbd_qd1": ("devices", spread("ours_over_nbd_qd1"), "x", "higher",
                                  "guest 4 KiB random read QD1, our remote disk over QEMU's NBD "
                                  "client to qemu-nbd (target >= 1)"),
    "devices.ours_over_nbd_qd32": ("devices", spread("ours_over_nbd_qd32"), "x", "higher",
                                   "the same at QD32 (target >= 1.5)"),
    "devices.ours_over_local_qd1": ("devices", spread("ours_over_local_qd1"), "x", "higher",
                                    "guest 4 KiB random read QD1, our remote disk over QEMU's "
                                    "virtio-blk on the file"),
    "devices.ours_seqread_1m_MBps": ("devices", spread("ours_seqread_1m_MBps"), "MB/s",
                                     "higher", "guest 1 MiB sequential read, our remote disk"),
    "devices.devnode_overhead_us": ("devices", spread("devnode_overhead_us"), "us", "lower",
                                    "device node 4 KiB read - io_uring read - loopback round "
                                    "trip, both ends on one CPU (target <= 15)"),
    "devices.devnode_overhead_xcpu_us": ("devices", spread("devnode_overhead_us_xcpu"), "us",
                                         "lower", "the same with the device node and the echo "
                                         "server on the other CPU"),
    "memnode.read_4k_ratio": ("memnode", key("read_4k_ratio"), "x", "lower",
                              "4 KiB READ at QD1 over a bare TCP round trip of the same sizes"),
    "memnode.write_4k_ratio": ("memnode", key("write_4k_ratio"), "x", "lower",
                               "4 KiB WRITE at QD1 over the bare TCP round trip"),
    "memnode.read_64k_qd32_MBps": ("memnode", key("read_64k_qd32_MBps"), "MB/s", "higher",
                                   "64 KiB READs at QD32, one connection"),
    "memnode.tls_read_4k_latency_ratio": (
        "memnode", lambda j: (j.get("tls") or {}).get("read_4k_latency_ratio"), "x", "lower",
        "4 KiB READ at QD1 over TLS 1.3, over the same on plaintext in the same run "
        "(target <= 1.3)"),
    "memnode.tls_read_64k_qd32_fraction": (
        "memnode", lambda j: (j.get("tls") or {}).get("read_64k_qd32_fraction"), "x", "higher",
        "64 KiB READs at QD32 over TLS 1.3, as a fraction of plaintext in the same run "
        "(target >= 0.6)"),
    "pager.remote_fault_us": ("pager", key("remote_fault_us"), "us", "lower",
                              "a fault served from a memory node over loopback"),
    "pager.pager_overhead_us": ("pager", key("pager_overhead_us"), "us", "lower",
                                "remote fault - raw uffd floor - loopback round trip, "
                                "16-page cluster"),
    "pager.pager_overhead_1p_us": ("pager", key("pager_overhead_1p_us"), "us", "lower",
                                   "the same, one page per fault"),
    "pager.fault_ratio": ("pager", key("fault_ratio"), "x", "lower",
                          "remote fault over the pager's local-backend fault (second row)"),
    "pager.seq_read_remote_MBps": ("pager", key("seq_read_remote_MBps"), "MB/s", "higher",
                                   "sequential read through the pager from a memory node"),
    "pager.sealed_fault_cost_us": ("pager", key("sealed_fault_cost_us"), "us", "lower",
                                   "a fault with pages sealed (guest memory at rest) minus "
                                   "the same fault in clear, same run, 16-page cluster"),
    "pager.sealed_fault_1p_cost_us": ("pager", key("sealed_fault_1p_cost_us"), "us", "lower",
                                      "the same, one page per fault: the faulting page's "
                                      "own cipher cost"),
    "pager.seq_read_sealed_ratio": ("pager", key("seq_read_sealed_ratio"), "x", "higher",
                                    "sequential read with pages sealed over in clear, same run"),
    "pager.randrw_remote_100_ops": ("pager", pager_row("remote", 100, "randrw_ops"), "op/s",
                                    "higher", "random read/write, remote, budget 100%"),
    "pager.randrw_remote_25_ops": ("pager", pager_row("remote", 25, "randrw_ops"), "op/s",
                                   "higher", "random read/write, remote, budget 25% (eviction)"),
    "orchestrator.create_p50_ms": ("orchestrator", key("create_p50_ms"), "ms", "lower",
                                   "slot create, 1,000 fake memory nodes"),
    "orchestrator.delete_p50_ms": ("orchestrator", key("delete_p50_ms"), "ms", "lower",
                                   "slot delete, 1,000 fake memory nodes"),
    "vm.local_ratio": ("vm", spread("local_ratio"), "x", "lower",
                       "warm FILL+VERIFY, agent with local RAM, over stock QEMU"),
    "vm.remote_100_ratio": ("vm", spread("remote_100_ratio"), "x", "lower",
                            "warm FILL+VERIFY, all remote, budget 100%, over stock QEMU"),
    "vm.remote_100_cold_ratio": ("vm", spread("remote_100_cold_ratio"), "x", "lower",
                                 "cold FILL+VERIFY, all remote, over stock QEMU"),
    "vm.cleaner_cost": ("vm", spread("cleaner_cost"), "x", "lower",
                        "warm remote_100, write-back on over off, runs alternating, "
                        "guest rewriting back to back"),
    "vm.cleaner_cost_idle": ("vm", spread("cleaner_cost_idle"), "x", "lower",
                             "the same, each run after write-back settled (worst case)"),
    "vm.remote_25_ratio": ("vm", spread("remote_25_ratio"), "x", "lower",
                           "warm FILL+VERIFY, budget 25%, over stock QEMU"),
    "vm.remote_25_random_ratio": ("vm", spread("remote_25_random_ratio"), "x", "lower",
                                  "random access at budget 25%: stock QEMU's op/s over ours"),
    "vm.replicated_25_ratio": ("vm", spread("replicated_25_ratio"), "x", "lower",
                               "warm FILL+VERIFY, budget 25%, two replicas over one "
                               "(same run; target <= 1.3)"),
    "vm.replicated_25_random_ratio": ("vm", spread("replicated_25_random_ratio"), "x", "lower",
                                      "random access at budget 25%: one replica's op/s over "
                                      "two replicas' (same run)"),
    "replicas.replica_stall_ms": ("replicas", spread("replica_stall_ms"), "ms", "lower",
                                  "longest guest heartbeat gap after a memory node holding "
                                  "one replica is SIGKILLed (target <= 50)"),
    "replicas.replica_detect_ms": ("replicas", key("replica_detect_ms"), "ms", "lower",
                                   "from the kill until the agent reports the replica out"),
    "replicas.repair_ratio_inv": ("replicas", spread("repair_ratio_inv"), "x", "lower",
                                  "memory node COPY bandwidth over repair bandwidth with the "
                                  "guest writing 50 MiB/s (target <= 2: repair at >= 50%)"),
    "vm.hotplug_dimm_ms": ("vm", spread("hotplug_dimm_ms", "hot"), "ms", "lower",
                           "hot-add of a remote section as a pc-dimm, until the guest sees it"),
    "shared.strict_pingpong_ratio": ("shared", spread("strict_pingpong_ratio"), "x", "lower",
                                     "strict region: one page written in turn by two guests "
                                     "on two nodes, a round over a remote 4 KiB fault "
                                     "(target <= 4)"),
    "shared.strict_pingpong_nap_ratio": ("shared", spread("strict_pingpong_nap_ratio"), "x",
                                         "lower", "the same with a waiter that sleeps 20 us "
                                         "between looks (its vCPU leaves the CPU to the "
                                         "agents and the memory node)"),
    "shared.readmostly_ratio": ("shared", spread("readmostly_ratio"), "x", "higher",
                                "strict region read by 4 readers on 2 nodes after warm-up, "
                                "over the same readers on private memory (target >= 0.9)"),
    "shared.exclusive_handover_ratio": ("shared", spread("exclusive_handover_ratio"), "x",
                                        "lower", "exclusive region: release with 1 MiB "
                                        "dirty then acquire, over a bare client's 1 MiB "
                                        "write to the memory node (target <= 3)"),
    "shared.release_publish_MBps": ("shared", spread("release_publish_MBps"), "MB/s",
                                    "higher", "release region: 64 MiB with half of every "
                                    "line changed, published as diffs (region bytes over "
                                    "the release's time)"),
    "shared.memnode_write_MBps": ("shared", spread("memnode_write_MBps"), "MB/s", "higher",
                                  "a bare client's 1 MiB write to the memory node, the "
                                  "release's baseline"),
    "shared.release_publish_fraction": ("shared", spread("release_publish_fraction"), "x",
                                        "higher", "release_publish_MBps over "
                                        "memnode_write_MBps of the same repetition "
                                        "(target >= 0.5)"),
    "migration.speedup_total": ("migration", spread("speedup_total"), "x", "higher",
                                "busy guest: pre-copy total time over ours (medians of "
                                "the busy moves)"),
    "migration.ours_total_ms": ("migration", spread("ours_total_ms"), "ms", "lower",
                                "busy guest: our compute migration, request to running"),
    "migration.ours_over_floor": ("migration", spread("ours_over_floor"), "x", "lower",
                                  "busy guest: ours over the x-ignore-shared floor (both "
                                  "with the destination QEMU's start)"),
    "migration.speedup_idle_total": ("migration", key("speedup_idle_total"), "x", "higher",
                                     "idle guest: pre-copy total time over ours"),
    "migration.speedup_filled_total": ("migration", key("speedup_filled_total"), "x",
                                       "higher", "just-filled guest: pre-copy over ours"),
    "migration.ours_worst_gap_ms": ("migration", key("ours_worst_gap_ms"), "ms", "lower",
                                    "worst guest-visible gap over all our moves"),
    "migration.ours_downtime_ms": ("migration", key("ours_downtime_ms"), "ms", "lower",
                                   "guest-visible gap of a compute migration"),
    "migration.memmig_25_guest_gap_ms": ("migration",
                                         spread("memmig_25_guest_gap_ms", "memmig_moves"),
                                         "ms", "lower", "longest guest heartbeat gap during a "
                                         "memory migration at 25% cache budget (median "
                                         "over the moves)"),
    "migration.memmig_25_guest_p99_ms": ("migration",
                                         spread("memmig_25_guest_p99_ms", "memmig_moves"),
                                         "ms", "lower", "99th percentile of the guest's "
                                         "heartbeat gaps during a memory migration at 25% "
                                         "cache budget (median over the moves)"),
    "migration.memmig_max_pause_ms": ("migration", key("memmig_max_pause_ms"), "ms", "lower",
                                      "longest fence of a memory migration"),
}

# Absolute slack (in the figure's unit) for differences near zero: the cost
# of sealing, fault with pages sealed minus the same fault in clear, swung
# from -6.5 to +26 us (16 pages) on unchanged code (bench/README.md, "The
# gate's two unstable rows"). The slack is what a real regression would
# exceed: AES-256-GCM of 64 KiB done twice more per fault.
SLACK = {"pager.sealed_fault_cost_us": 40.0, "pager.sealed_fault_1p_cost_us": 10.0,
         "devices.devnode_overhead_us": 10.0}

# Tolerances a new baseline starts with (else --tolerance, 30%): wider for
# absolute times that swing with the shared host, for figures of one run
# (migration), for ratios over stock QEMU's pre-copy (its median of five
# moves flips between two modes, about 1.9 s and 5 s, from run to run:
# bench/README.md, "The gate at 0d648b1"), and for microsecond pauses
# whose ratio is all noise.
TOLERANCE = {
    "pager.remote_fault_us": 0.5, "pager.pager_overhead_us": 0.5,
    "pager.pager_overhead_1p_us": 0.5, "pager.randrw_remote_25_ops": 0.5,
    "orchestrator.create_p50_ms": 0.5, "orchestrator.delete_p50_ms": 0.5,
    "vm.hotplug_dimm_ms": 0.5,
    "migration.speedup_total": 1.0, "migration.speedup_idle_total": 1.0,
    "migration.speedup_filled_total": 1.0, "migration.ours_total_ms": 1.0,
    "migration.ours_over_floor": 1.0, "migration.ours_worst_gap_ms": 1.0,
    # Bimodal: whether the write history adapts within the pass depends on
    # the host's speed (bench/README, "The cleaner measured in alternating pairs").
    "vm.cleaner_cost_idle": 1.0,
    "migration.ours_downtime_ms": 3.0, "migration.memmig_25_guest_gap_ms": 1.0,
    "migration.memmig_25_guest_p99_ms": 0.5,
    "migration.memmig_max_pause_ms": 20.0,
    "shared.strict_pingpong_ratio": 0.5, "shared.exclusive_handover_ratio": 0.5,
    "shared.strict_pingpong_nap_ratio": 0.5,
    "shared.release_publish_MBps": 0.5, "shared.memnode_write_MBps": 0.5,
    "shared.release_publish_fraction": 0.5,
    # In-guest figures under TCG swing with the host (the guest's CPU is the limit).
    "devices.ours_over_nbd_qd1": 0.5, "devices.ours_over_nbd_qd32": 1.0,
    "devices.ours_over_local_qd1": 0.5, "devices.ours_seqread_1m_MBps": 0.5,
    # The longest heartbeat gap is an extreme value, as wide as the load's own
    # (a control window of the same VM: 31-91 ms); detection, a few requests.
    "replicas.replica_stall_ms": 1.0, "replicas.replica_detect_ms": 2.0,
    "replicas.repair_ratio_inv": 0.5, "vm.replicated_25_random_ratio": 0.5,
}


def runs_of(bench):
    reps = sorted(OUT.glob(f"{bench}.rep*.json"))
    if not reps and (OUT / f"{bench}.json").exists():
        reps = [OUT / f"{bench}.json"]
    out = []
    for p in reps:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError) as e:
            print(f"gate: {p}: {e}", file=sys.stderr)
    return out


def cmd_run(a):
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob(f"{a.name}.rep*.json"):
        old.unlink()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        sys.exit("gate run: no command")
    last = None
    for i in range(1, a.reps + 1):
        path = OUT / f"{a.name}.rep{i}.json"
        argv = [x.replace("{json}", str(path)) for x in cmd]
        print(f"== {a.name}: run {i} of {a.reps}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(argv)
        print(f"== {a.name}: run {i} took {time.monotonic() - t0:.0f} s, exit {rc}", flush=True)
        if rc == 77:
            print(f"== {a.name}: skipped")
            return 0
        if rc != 0 or not path.exists():
            print(f"gate: {a.name}: run {i} failed (exit {rc})", file=sys.stderr)
            return 1
        last = path
    shutil.copyfile(last, OUT / f"{a.name}.json")
    return 0


def summarize():
    figs, cache = {}, {}
    for name, (bench, get, unit, better, what) in FIGURES.items():
        if bench not in cache:
            cache[bench] = runs_of(bench)
        got = [v for v in (get(j) for j in cache[bench]) if v is not None]
        vals = [v[0] if isinstance(v, tuple) else v for v in got]
        if not vals:
            continue
        f = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
             "n": len(vals)}
        if len(got) == 1 and isinstance(got[0], tuple):
            f.update(min=got[0][1], max=got[0][2], n=got[0][3])   # its own repetitions
        figs[name] = dict(f, unit=unit, better=better, what=what)
    return figs


def git_head():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cmd_summary(a):
    figs = summarize()
    out = {"commit": git_head(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "figures": figs}
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"gate: {len(figs)} figures in {a.out}")
    return 0


def verdict(base, now, better, tol, slack=None):
    if base is None or now is None:
        return None, "missing"
    if slack is not None:
        worse = now - base if better == "lower" else base - now
        return worse, "regression" if worse > slack else "better" if worse < -slack else "ok"
    if base == 0 or now == 0:
        worse = 1.0 if base == now else float("inf")
    else:
        worse = now / base if better == "lower" else base / now
    if worse > 1 + tol:
        return worse, "regression"
    if worse < 1 / (1 + tol):
        return worse, "better"
    return worse, "ok"


def fmt(v):
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def cmd_compare(a):
    try:
        base = json.loads(pathlib.Path(a.baseline).read_text())["figures"]
    except (OSError, ValueError, KeyError) as e:
        print(f"bench-compare: cannot read the baseline {a.baseline}: {e}; after a run on a "
              f"quiet machine, `bench/gate.py baseline` writes one", file=sys.stderr)
        return 2
    try:
        now = json.loads(pathlib.Path(a.summary).read_text())["figures"]
    except OSError:
        now = {}
    rows, bad = [], []
    for name, b in base.items():
        n = now.get(name)
        worse, v = verdict(b["value"], n and n["median"], b["better"], b["tolerance"],
                           b.get("slack"))
        if v == "missing" and a.allow_missing:
            v = "not run"
        rng = f"{fmt(n['min'])}-{fmt(n['max'])} (n={n['n']})" if n else "-"
        rows.append((name, f"{fmt(b['value'])} {b.get('unit', '')}".strip(),
                     fmt(n and n["median"]), rng,
                     "-" if worse is None else f"{worse:+.3g} {b.get('unit', '')}"
                     if "slack" in b else f"{worse:.2f}",
                     f"±{fmt(b['slack'])} {b.get('unit', '')}" if "slack" in b
                     else f"±{b['tolerance'] * 100:.0f}%", v))
        if v in ("regression", "missing"):
            bad.append(name)
    head = ("figure", "baseline", "now (median)", "min-max", "worse by", "tolerance", "verdict")
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
        for r in [head] + rows:
            print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)))
    if bad:
        print(f"bench-compare: FAILED: {', '.join(bad)}")
        return 1
    print("bench-compare: no regression beyond tolerance")
    return 0


def cmd_baseline(a):
    figs = json.loads(pathlib.Path(a.src).read_text())["figures"]
    old = {}
    if pathlib.Path(a.out).exists():
        old = json.loads(pathlib.Path(a.out).read_text()).get("figures", {})
    out = {}
    for name, f in figs.items():
        if a.only and not name.startswith(a.only):
            continue   # not asked for: the old baseline's entry stays
        out[name] = {"value": f["median"], "unit": f["unit"], "better": f["better"],
                     "tolerance": old.get(name, {}).get("tolerance",
                                                        TOLERANCE.get(name, a.tolerance)),
                     "what": f["what"]}
        slack = old.get(name, {}).get("slack", SLACK.get(name))
        if slack is not None:
            out[name]["slack"] = slack
    for name, f in old.items():
        out.setdefault(name, f)
    pathlib.Path(a.out).write_text(json.dumps({"commit": git_head(), "figures": out},
                                              indent=1) + "\n")
    print(f"gate: wrote {len(out)} figures to {a.out}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    r = sub.add_parser("run")
    r.add_argument("name")
    r.add_argument("--reps", type=int, default=1)
    r.add_argument("cmd", nargs="*", help="after --: the benchmark's command line")
    s = sub.add_parser("summary")
    s.add_argument("--out", default=str(OUT / "summary.json"))
    c = sub.add_parser("compare")
    c.add_argument("--baseline", default=str(ROOT / "bench" / "baseline.json"))
    c.add_argument("--summary", default=str(OUT / "summary.json"))
    c.add_argument("--allow-missing", action="store_true")
    c.add_argument("--markdown", action="store_true")
    b = sub.add_parser("baseline")
    b.add_argument("--from", dest="src", default=str(OUT / "summary.json"))
    b.add_argument("--out", default=str(ROOT / "bench" / "baseline.json"))
    b.add_argument("--tolerance", type=float, default=0.3)
    b.add_argument("--only", default="",
                   help="update only the figures whose name starts with this (e.g. migration.)")
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        # Everything after -- is the benchmark's (argparse would take its options).
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    if a.cmd_name == "run":
        a.cmd = a.cmd + cmd
    return {"run": cmd_run, "summary": cmd_summary, "compare": cmd_compare,
            "baseline": cmd_baseline}[a.cmd_name](a)


if __name__ == "__main__":
    sys.exit(main())
