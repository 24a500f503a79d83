# SPDX-License-Identifier: MIT
"""A production-like CPU layout for a bench on one host: the guests' vCPU
threads on their own CPUs, every other thread of the daemons and of QEMU
(pager fault and recall threads, memory-node workers, QEMU's main loop)
on a housekeeping CPU, as libvirt's vcpupin and emulatorpin would place
them. A thread of this process polls /proc every 50 ms and pins each
thread of a disagg-* or qemu-system-* process by its name (a vCPU thread
is "CPU N/TCG" or "CPU N/KVM"), again whenever a thread is renamed."""
import os
import threading

NAMES = ("disagg-", "qemu-system")


def _comm(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


class Split:
    """with Split(): CPU 0 for housekeeping, the others for vCPUs."""

    def __init__(self, cpus=None):
        cpus = sorted(cpus or os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise RuntimeError("the split CPU layout needs at least 2 CPUs")
        self.house, self.vcpu = {cpus[0]}, set(cpus[1:])
        self.seen = {}
        self.pinned = 0
        self.stop = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)

    def _pin_all(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or not (_comm(f"/proc/{pid}/comm") or "").startswith(NAMES):
                continue
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                name = _comm(f"/proc/{pid}/task/{tid}/comm")
                if name is None or self.seen.get(tid) == name:
                    continue
                vcpu = name.startswith("CPU ") and name.endswith(("/TCG", "/KVM"))
                try:
                    os.sched_setaffinity(int(tid), self.vcpu if vcpu else self.house)
                except OSError:
                    continue
                self.seen[tid] = name
                self.pinned += 1

    def _run(self):
        while not self.stop.wait(0.05):
            self._pin_all()

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.th.join()
        print(f"cpu layout split: {self.pinned} threads pinned (housekeeping CPU "
              f"{sorted(self.house)}, vCPUs on {sorted(self.vcpu)})", flush=True)
        return False
