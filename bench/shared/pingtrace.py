#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where the spinning strict ping-pong's time goes, from the kernel's view.

Sets up what sharedbench.py sets up (a memory node, two compute agents,
one guest each, a strict region attached to both), then runs one spinning
ping-pong (RPINGPONG) while tracefs records the scheduler's events
(sched_switch, sched_waking, sched_wakeup; root and a mounted
/sys/kernel/tracing needed). It prints:

- the guests' rounds (mean, median, rounds of 1 ms or more);
- the daemons' counters per round (directory requests and recalls, takes,
  clean hand-backs, hold-window waits, faults);
- per kind of thread that moves the page (the recall and fault threads,
  the memory node's worker, the vCPUs), and per kind of waker (its
  channel's socket, a timer, another thread), how long a woken thread
  waited for a CPU: count, median, mean, waits over 300 us and their sum;
- the guests' strict faults as seen by the trace (from the vCPU waking
  the fault thread to the fault thread waking the vCPU): median, p90 and
  a histogram;
- with --probes (perf needed: `perf probe` puts uprobes on the agent's
  pager_serve_strict and pager_strict_recall), each hand-over's critical
  path in two parts: *transfer*, from the holder's recall returning (its
  answer goes out) to the taker's fault returning (the page installed,
  the vCPU woken), and *turn*, from there to the taker's own recall
  returning (its vCPU ran, wrote, and its recall thread saw the write),
  with when the taker's recall came relative to its install;
- per kind of thread that moves the page, who took its CPU while it could
  still run (switched out runnable), and how long until it ran again.

No target: an explanation of strict_pingpong_ratio (bench/README.md,
"Taken pages held until written"). --keep writes the raw trace.
"""
import argparse
import collections
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import sharedbench as sb  # noqa: E402

vmlib = sb.vmlib
TRACING = pathlib.Path("/sys/kernel/tracing")
EVENTS = "sched:sched_switch sched:sched_waking sched:sched_wakeup"
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\](.{5,6})\s+([\d.]+): (\w+): (.*)$")
MOVERS = ("strict-recall", "pager-fault", "mn-worker")
SWITCH = re.compile(r"prev_comm=(.+?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) "
                    r"==> next_comm=(.+?) next_pid=(\d+)")
PROBES = ("pager_serve_strict", "pager_serve_strict%return",
          "pager_strict_recall", "pager_strict_recall%return")


def tracing(on, events=None):
    if events is not None:
        (TRACING / "set_event").write_text(events)
    (TRACING / "tracing_on").write_text("1" if on else "0")


def parse(path):
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if m:
            comm, pid, cpu, flags, ts, name, rest = m.groups()
            yield comm, int(pid), int(cpu), flags, float(ts), name, rest


def wake_waits(path):
    """(woken kind, waker kind) -> list of waits in us, waking to switch-in."""
    waking, out = {}, collections.defaultdict(list)
    for comm, _pid, _cpu, flags, ts, name, rest in parse(path):
        if name == "sched_waking":
            m = re.search(r"comm=(.+?) pid=(\d+)", rest)
            woken = m.group(1)
            if woken in MOVERS or "TCG" in woken:
                kind = "timer" if "h" in flags else "socket" if "s" in flags else comm
                waking[int(m.group(2))] = (ts, "vCPU" if "TCG" in woken else woken,
                                           "vCPU" if "TCG" in kind else kind)
        elif name == "sched_switch":
            nxt = int(re.search(r"next_pid=(\d+)", rest).group(1))
            if nxt in waking:
                t0, who, by = waking.pop(nxt)
                out[(who, by)].append((ts - t0) * 1e6)
    return out


def preemptions(path):
    """(preempted kind, by whom) -> list of waits in us, switched out
    runnable to switched back in."""
    out, waits = {}, collections.defaultdict(list)
    for _comm, _pid, _cpu, _flags, ts, name, rest in parse(path):
        if name != "sched_switch":
            continue
        m = SWITCH.search(rest)
        prev, prev_pid, state, nxt, nxt_pid = m.groups()
        if state.startswith("R") and prev in MOVERS:
            out[int(prev_pid)] = (ts, prev, "vCPU" if "TCG" in nxt else nxt)
        t0 = out.pop(int(nxt_pid), None)
        if t0:
            waits[t0[1:]].append((ts - t0[0]) * 1e6)
    return waits


def fault_spans(path):
    """The guests' faults: the vCPU wakes its fault thread ... which wakes it."""
    start, spans = {}, []
    for comm, pid, _cpu, _flags, ts, name, rest in parse(path):
        if name != "sched_waking":
            continue
        m = re.search(r"comm=(.+?) pid=(\d+)", rest)
        if m.group(1) == "pager-fault" and "TCG" in comm:
            start[pid] = ts
        elif "TCG" in m.group(1) and comm == "pager-fault" and int(m.group(2)) in start:
            spans.append((ts - start.pop(int(m.group(2)))) * 1e6)
    return sorted(spans)


def probes(binary, on):
    """Put (or take off) the uprobes of the hand-over path on `binary`;
    returns their tracefs event names."""
    if not on:
        subprocess.run(["perf", "probe", "-q", "-d", "probe_disagg*:*"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return ""
    probes(binary, False)
    args = ["perf", "probe", "-q", "-x", binary]
    for p in PROBES:
        args += ["-a", p]
    subprocess.run(args, check=True)
    return " ".join(f"probe_disagg:{p.replace('%return', '__return')}" for p in PROBES)


def thread_sides(agents):
    """tid -> 0 or 1: the agent (and its QEMU) each thread belongs to."""
    sides = {}
    for side, a in enumerate(agents):
        for pid in (a.pid, *a.qemu_pids):
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    sides[int(tid)] = side
            except OSError:
                pass
    return sides


def handovers(path, sides):
    """Each hand-over's transfer and turn (see the top), in us, and the
    taker's recall arrival relative to its install (negative: before)."""
    ev = []
    for comm, pid, _cpu, _flags, ts, name, _rest in parse(path):
        if name.startswith(("pager_serve_strict", "pager_strict_recall")) and pid in sides:
            kind = ("F" if "serve" in name else "R") + ("out" if "return" in name else "in")
            ev.append((ts, sides[pid], kind))
    out = {"transfer": [], "turn": [], "recall_lead": []}
    pending = {}          # holder side -> the time its recall returned
    installed = {}        # taker side -> (its install, the holder's answer)
    recall_in = {0: None, 1: None}
    for ts, side, kind in ev:
        if kind == "Rin":
            recall_in[side] = ts
        elif kind == "Rout":
            if side in installed:
                t_w, _ = installed.pop(side)
                out["turn"].append((ts - t_w) * 1e6)
                if recall_in[side] is not None:
                    out["recall_lead"].append((recall_in[side] - t_w) * 1e6)
            pending[1 - side] = ts
        elif kind == "Fout" and side in pending:
            t_a = pending.pop(side)
            out["transfer"].append((ts - t_a) * 1e6)
            installed[side] = (ts, t_a)
    return out


def counters(before, after, iters):
    (m0, a0), (m1, a1) = before, after
    rows = {}
    for k, v in m1.items():
        if "_bucket" in k or "_sum" in k or not re.search(r"_(total|count)(\{|$)", k):
            continue   # counters only
        if k.startswith(("disagg_memnode_dir_", "disagg_memnode_requests_total{op=\"dir")):
            rows["memnode " + k.replace("disagg_memnode_", "")] = (v - m0.get(k, 0)) / iters
    for (vm, x0), (_, x1) in zip(a0, a1):
        for k, v in x1.items():
            if ("strict" in k or "faults" in k) and re.search(r"_(total|count)(\{|$)", k):
                name = re.sub(r"\{.*\}", "", k.replace("disagg_pager_", ""))
                rows[f"{vm} {name}"] = (v - x0.get(k, 0)) / iters
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--keep", help="write the raw trace here (and its threads' sides to KEEP.sides.json)")
    ap.add_argument("--probes", action="store_true",
                    help="also time each hand-over's path (uprobes through perf probe)")
    args = ap.parse_args()
    if not (TRACING / "trace").exists() or not os.access(TRACING / "tracing_on", os.W_OK):
        sys.exit(f"pingtrace: {TRACING} is not there or not writable (root and tracefs needed)")

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pingtrace-"))
    keyfile, key = vmlib.new_keyfile(tmp)
    mn = vmlib.Memnode(tmp, key, keyfile, node_id=101, pool="1G")
    agents = [vmlib.Agent(tmp, keyfile, node_id=n) for n in (1, 2)]
    try:
        pairs = list(zip(agents, ("va", "vb")))
        strict = vmlib.Region(mn, "st", "strict")
        for n, (a, vm) in enumerate(pairs, 1):
            a.create(vm, [{"kind": "local"}, {"kind": "local"}], vcpus=2)
            a.call("POST", f"/v1/vms/{vm}/regions", strict.attach_body(n, True))
        for a, vm in pairs:
            if not vmlib.wait_for(lambda: sb.PCI_STRICT in str(a.guest(vm, "REGIONS")), 30):
                raise RuntimeError(f"{vm} does not see its region")
        sb.job(agents[0], "va", f"RPOKE {sb.PCI_STRICT} 8192 0")
        sb.wait(agents[0], "va")
        (TRACING / "buffer_size_kb").write_text("20000")
        (TRACING / "trace").write_text("")
        before = sb.metrics_now(mn, pairs)
        events = EVENTS
        if args.probes:
            events += " " + probes(vmlib.find_prog("disagg-compute"), True)
        tracing(True, events)
        try:
            r = sb.both([pairs[1], pairs[0]],
                        [f"RPINGPONG {sb.PCI_STRICT} 1 {args.iters}",
                         f"RPINGPONG {sb.PCI_STRICT} 0 {args.iters}"])
        finally:
            tracing(False, "")
        after = sb.metrics_now(mn, pairs)
        sides = thread_sides(agents)
        raw = tmp / "trace.txt"
        shutil.copyfile(TRACING / "trace", raw)
        (TRACING / "trace").write_text("")
    finally:
        if args.probes:   # after the copy: taking an event off clears the buffer
            probes(None, False)
        for a in agents:
            a.close()
        mn.stop()

    rounds = sb.round_spread(r, args.iters)
    print(f"rounds: mean {statistics.mean(float(x['rtt_us']) for x in r):.0f} us, "
          f"median {rounds['strict_pingpong_p50_us']:.0f} us, "
          f"1 ms or more {rounds['strict_pingpong_slow_share']:.2f}")
    print("\nper round:")
    for k, v in sorted(counters(before, after, args.iters).items()):
        if v:
            print(f"  {k:50s} {v:8.3f}")
    print("\nwoken -> on a CPU (us):")
    waits = wake_waits(raw)
    for (who, by), w in sorted(waits.items(), key=lambda kv: -sum(kv[1]))[:14]:
        w.sort()
        print(f"  {who:14s} by {by[:14]:14s} n={len(w):5d} median {w[len(w) // 2]:6.0f} "
              f"mean {statistics.mean(w):6.0f} over 300: {sum(x > 300 for x in w):4d} "
              f"sum {sum(w) / 1000:7.1f} ms")
    print("\nswitched out runnable -> on a CPU again (us):")
    pre = preemptions(raw)
    for (who, by), w in sorted(pre.items(), key=lambda kv: -sum(kv[1]))[:10]:
        w.sort()
        print(f"  {who:14s} by {by[:14]:14s} n={len(w):5d} median {w[len(w) // 2]:6.0f} "
              f"over 300: {sum(x > 300 for x in w):4d} sum {sum(w) / 1000:7.1f} ms")
    spans = fault_spans(raw)
    if spans:
        bins = ((0, 200), (200, 400), (400, 600), (600, 1000), (1000, 2000), (2000, 1e9))
        print(f"\nguest strict faults: n={len(spans)} median {spans[len(spans) // 2]:.0f} us, "
              f"p90 {spans[len(spans) * 9 // 10]:.0f} us; "
              + ", ".join(f"{lo:.0f}-{hi:.0f}: {sum(lo <= x < hi for x in spans)}"
                          for lo, hi in bins))
    if args.probes:
        h = handovers(raw, sides)
        print("\nhand-overs (us): median, p25-p75, p90")
        for k, v in h.items():
            v.sort()
            if v:
                print(f"  {k:12s} n={len(v):5d} median {v[len(v) // 2]:7.0f} "
                      f"p25-p75 {v[len(v) // 4]:6.0f}-{v[len(v) * 3 // 4]:6.0f} "
                      f"p90 {v[len(v) * 9 // 10]:7.0f}")
    if args.keep:
        shutil.copyfile(raw, args.keep)
        with open(args.keep + ".sides.json", "w") as f:   # tid -> side, to read the trace
            json.dump(sides, f)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
