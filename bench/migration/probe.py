# SPDX-License-Identifier: MIT
"""Where an arriving guest's vCPU spends its first moments (migbench --probe).

A thread waits for the destination agent to report the slot's QEMU pid,
then samples its vCPU threads every `period_s`: /proc/PID/task/TID/schedstat
(time on a CPU, time waiting for one) and, when the thread sleeps, its
kernel stack (/proc/PID/task/TID/stack, root only). The summary splits
the first `window_ms` after the vCPU first ran into time running, time
runnable but waiting for a CPU, and time asleep, and names the kernel
functions it slept in. A diagnostic: the sampling itself takes CPU from a
2-CPU host, so the moves it watches are not headline figures.
"""
import collections
import os
import threading
import time

SKIP = ("__schedule", "schedule", "schedule_hrtimeout", "do_syscall", "entry_SYSCALL",
        "__x64_sys", "x64_sys_call", "schedule_timeout")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _vcpus(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
        if "CPU " in _read(f"/proc/{pid}/task/{tid}/comm"):
            out.append(tid)
    return out


def _where(stack):
    """The first frame of a kernel stack that says why the thread sleeps."""
    for line in stack.splitlines():
        fn = line.split("] ", 1)[-1].split("+", 1)[0].strip()
        if fn and not fn.startswith(SKIP):
            return fn
    return "?"


class Probe:
    def __init__(self, get_pid, window_ms=600, period_s=0.001, wait_s=30, from_start=False):
        """from_start: the window opens when sampling starts (a source that
        already runs), not when the vCPU first runs (a destination)."""
        self.from_start = from_start
        self.get_pid, self.window_ms, self.period_s, self.wait_s = (get_pid, window_ms,
                                                                     period_s, wait_s)
        self.samples = []          # (ns, tid, run_ns, wait_ns, state, where)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        end = time.monotonic() + self.wait_s
        pid = None
        while pid is None and time.monotonic() < end and not self.stop_ev.is_set():
            pid = self.get_pid()
            if pid is None:
                time.sleep(0.005)
        if pid is None:
            return
        tids, first = [], None
        while not self.stop_ev.is_set():
            now = time.monotonic_ns()
            if first is not None and now - first > (self.window_ms + 200) * 1_000_000:
                return
            tids = tids or _vcpus(pid)
            for tid in tids:
                base = f"/proc/{pid}/task/{tid}"
                ss = _read(f"{base}/schedstat").split()
                st = _read(f"{base}/stat").rsplit(")", 1)[-1].split()
                if len(ss) < 2 or not st:
                    return     # gone
                run, wait = int(ss[0]), int(ss[1])
                if first is None and (run > 0 or self.from_start):
                    first = now
                where = _where(_read(f"{base}/stack")) if st[0] in "SD" else ""
                self.samples.append((now, tid, run, wait, st[0], where))
            time.sleep(self.period_s)

    def close(self):
        self.stop_ev.set()
        self.t.join(5)
        return self.summary()

    def summary(self):
        by = collections.defaultdict(list)
        for s in self.samples:
            by[s[1]].append(s)
        out = {}
        for tid, ss in by.items():
            t0 = ss[0][0] if self.from_start else next((s[0] for s in ss if s[2] > 0), None)
            if t0 is None:
                continue
            win = [s for s in ss if t0 <= s[0] <= t0 + self.window_ms * 1_000_000]
            if len(win) < 2:
                continue
            wall = (win[-1][0] - win[0][0]) / 1e6
            run = (win[-1][2] - win[0][2]) / 1e6
            wait = (win[-1][3] - win[0][3]) / 1e6
            sleeps = collections.Counter()
            for a, b in zip(win, win[1:]):
                if a[4] in "SD":
                    sleeps[a[5]] += (b[0] - a[0]) / 1e6
            timeline, step = [], 20_000_000     # 20 ms buckets: run, runqueue, where asleep
            for k in range(int(wall * 1e6) // step):
                b = [s for s in win if t0 + k * step <= s[0] < t0 + (k + 1) * step]
                if len(b) >= 2:
                    w = collections.Counter(s[5] for s in b if s[4] in "SD")
                    timeline.append([k * 20, round((b[-1][2] - b[0][2]) / 1e6, 1),
                                     round((b[-1][3] - b[0][3]) / 1e6, 1),
                                     w.most_common(1)[0][0] if w else ""])
            out[tid] = {"wall_ms": round(wall, 1), "run_ms": round(run, 1),
                        "timeline": timeline,
                        "runqueue_ms": round(wait, 1),
                        "asleep_ms": round(max(wall - run - wait, 0.0), 1),
                        "asleep_in": {k: round(v, 1) for k, v in sleeps.most_common(6)},
                        "samples": len(win)}
        return out


def fault_hist(metrics_text, vm, name="disagg_pager_fault_seconds"):
    """A pager histogram of one VM from an agent's /metrics: count, mean
    and the upper bound of the slowest non-empty bucket, in ms."""
    want = f'vm="{vm}"'
    cum, count, total = [], 0, 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name) or want not in line:
            continue
        val = float(line.rsplit(" ", 1)[1])
        if line.startswith(name + "_bucket") and 'le="+Inf"' not in line:
            le = float(line.split('le="', 1)[1].split('"', 1)[0])
            cum.append((le, val))
        elif line.startswith(name + "_count"):
            count = int(val)
        elif line.startswith(name + "_sum"):
            total = val
    worst, prev = None, 0
    for le, c in cum:
        if c > prev:
            worst = le
        prev = c
    if count > prev:
        worst = float("inf")
    return {"count": count, "mean_ms": round(total / count * 1e3, 3) if count else None,
            "worst_le_ms": None if worst is None else round(worst * 1e3, 3)}
