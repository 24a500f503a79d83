#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Migration benchmark (make bench-migration): the same guest migrated three
ways, with 1 GiB and 2 GiB of RAM, idle after it filled 75% of its RAM with
a non-zero pattern, and busy (a WRITELOOP thread in the guest rewriting
that pattern at --busy-mbps MiB/s).

  ours     compute migration through the orchestrator (disagg slot migrate,
           `disagg up --computes 2 --memnodes 2`, all RAM on memory nodes):
           only CPU and device state cross; the source writes its dirty
           pages back to the memory nodes first. Measured twice per state:
           `first` (the first move after the fill: the fill is still dirty
           in the source's cache and is written back during the move) and
           `steady` (the move back: what any later move costs).
  precopy  the baseline a user has today: two plain QEMUs (no shim, no
           agent, RAM a normal memory-backend-ram), same kernel and
           initramfs, same fill, `migrate tcp:127.0.0.1:PORT` with default
           settings except max-bandwidth (unlimited; QEMU 7.2's default is
           32 MiB/s); timed with query-migrate (total-time, downtime).
  floor    the physical limit of this design, a second baseline: two stock
           QEMUs on this host sharing one RAM file on tmpfs
           (memory-backend-file, share=on), migrated with the capability
           x-ignore-shared, so only device state and the dirty log cross
           and no agent runs. Same fill, same moves as pre-copy.
  memmig_25  the same with a cache budget of 25% of the RAM, busy: the
           longest gap between two guest heartbeats during it
  memmig   memory migration of all the slot's sections to the other memory
           node (disagg slot migrate-memory), with the largest pause a
           section saw.

Guest-felt downtime: the guest sends `HB SEQ NS` every --hb-ms ms; the gap
is NS of the first heartbeat on the destination minus NS of the last one on
the source (it contains up to one heartbeat interval). Under TCG the
guest's clock (TSC on QEMU's virtual clock) stands still while the vCPUs
are stopped, so this gap is the time the guest lost *while running*
(getting going again, faults on the destination), not the stop itself:
QEMU's downtime is reported next to it. rx_gap_ms is the same gap on the
host's clock, when the lines were read (the baseline's destination channel
is connected after completion, so it includes that; ours only with
--rx-poll). Both QEMUs' channels
are read by this script for the baseline; for ours the source's last
heartbeat comes in the migration answer and the destination's from GET
/v1/vms/NAME/heartbeats on its agent.

Writes --json (default build/bench/migration.json) with every figure, and
the headline: ours_total_ms, ours_downtime_ms, precopy_total_ms,
precopy_downtime_ms, speedup_total (precopy / ours, 2 GiB, idle after the
fill), floor_total_ms and ours_over_floor (ours / the x-ignore-shared
floor), ours_worst_gap_ms (the worst guest-visible gap over all our moves,
with QEMU's downtime of that move beside it) and memmig_max_pause_ms, plus
targets and pass flags.
"""
import argparse
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "vm"))

import vmlib  # noqa: E402

MiB = 1 << 20
CPU = os.environ.get("MIGBENCH_CPU", "max")
TARGETS = {"speedup_total": 20.0, "ours_downtime_ms": 50.0, "memmig_max_pause_ms": 10.0}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- HTTP ---------------------------------------------------------------

def http(addr, method, path, body=None, timeout=600):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(addr, method, path, body=None, timeout=600):
    st, j = http(addr, method, path, body, timeout)
    if st not in (200, 201, 204):
        raise RuntimeError(f"{method} {path}: {st} {j}")
    return j


# ---- the baseline: plain QEMU ------------------------------------------

class Chan:
    """disagg-guest's channel on a QEMU chardev socket; HB lines are kept."""

    def __init__(self, path, timeout=60):
        self.s = vmlib.unix_connect(path, timeout, 0.02)
        self.buf, self.hb, self.replies = b"", [], []
        self.cv = threading.Condition()
        self.closed = False
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
                while b"\n" in self.buf:
                    ln, self.buf = self.buf.split(b"\n", 1)
                    ln = ln.decode(errors="replace").strip("\r")
                    with self.cv:
                        if ln.startswith("HB "):
                            _, seq, ns = ln.split()
                            self.hb.append((int(seq), int(ns), time.monotonic_ns()))
                        else:
                            self.replies.append(ln)
                        self.cv.notify_all()
        except OSError:
            pass
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def wait_for(self, prefix, timeout):
        end = time.time() + timeout
        with self.cv:
            while True:
                for i, ln in enumerate(self.replies):
                    if ln.startswith(prefix):
                        del self.replies[:i + 1]
                        return ln
                if self.closed or time.time() > end:
                    raise TimeoutError(f"no {prefix} line")
                self.cv.wait(0.2)

    def cmd(self, c, timeout=600):
        with self.cv:
            self.replies.clear()
        self.s.sendall(c.encode() + b"\n")
        ln = self.wait_for(("OK", "ERR"), timeout)
        if not ln.startswith("OK"):
            raise RuntimeError(f"guest {c!r}: {ln}")
        return vmlib.fields(ln)

    def close(self):
        self.s.close()


class Qmp:
    def __init__(self, path, timeout=60):
        self.s = vmlib.unix_connect(path, timeout, 0.02)
        self.f = self.s.makefile("rwb")
        json.loads(self.f.readline())
        self.run("qmp_capabilities")

    def run(self, cmd, **args):
        self.f.write(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            j = json.loads(self.f.readline())
            if "return" in j:
                return j["return"]
            if "error" in j:
                raise RuntimeError(f"QMP {cmd}: {j['error']}")

    def close(self):
        self.s.close()


class PlainQemu:
    """Stock QEMU, no shim, no agent. mem_path: RAM is that shared file
    (memory-backend-file, share=on; the x-ignore-shared floor), else a
    normal memory-backend-ram."""

    def __init__(self, d, name, mem_mb, incoming=None, connect=True, mem_path=None):
        kernel, initrd = vmlib.guest_image()
        self.dir = d / name
        self.dir.mkdir()
        ram = (f"memory-backend-file,id=ram0,size={mem_mb}M,mem-path={mem_path},share=on"
               if mem_path else f"memory-backend-ram,id=ram0,size={mem_mb}M")
        argv = [vmlib.qemu_binary(), "-name", name, "-machine", "pc,accel=tcg", "-cpu", CPU,
                "-smp", "1", "-m", f"{mem_mb}M",
                "-object", ram,
                "-machine", "memory-backend=ram0",
                "-kernel", kernel, "-initrd", initrd,
                "-append", "console=ttyS0 memhp_default_state=online_movable panic=1",
                "-nodefaults", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.dir / 'console.log'}",
                "-chardev", f"socket,id=gch,path={self.dir / 'guest.sock'},server=on,wait=off",
                "-device", "virtio-serial-pci",
                "-device", "virtserialport,chardev=gch,name=org.disagg.guest",
                "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off"]
        if incoming:
            argv += ["-incoming", incoming]
        self.log = open(self.dir / "qemu.log", "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        self.qmp = Qmp(str(self.dir / "qmp.sock"))
        self.chan = Chan(str(self.dir / "guest.sock")) if connect else None

    def stop(self):
        for x in (self.chan, self.qmp):
            try:
                if x is not None:
                    x.close()
            except OSError:
                pass
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(30)
        self.log.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hb_gap_ms(src_hb, dst_hb, field=1):
    """Gap between the source's last HB and the destination's next one:
    field 1 = the guest's clock, 2 = when the host read the line."""
    if not src_hb or not dst_hb:
        return None
    last = max(src_hb)
    later = [h for h in dst_hb if h[0] > last[0]]
    if not later:
        return None
    first = min(later)
    return (first[field] - last[field]) / 1e6


def precopy_move(src, d, name, mem_mb, timeout_s, mem_path=None):
    """A stock QEMU migration to a new QEMU on this host. mem_path: both
    share that RAM file and migrate with x-ignore-shared (only device state
    and the dirty log cross: the floor of moving a VM whose memory stays)."""
    port = free_port()
    # The destination's guest channel is connected once the migration
    # completed: a client connected to it during the incoming migration made
    # the guest's virtio_console crash after the switchover (QEMU 7.2, TCG).
    dst = PlainQemu(d, name, mem_mb, incoming="defer" if mem_path else
                    f"tcp:127.0.0.1:{port}", connect=False, mem_path=mem_path)
    if mem_path:
        caps = [{"capability": "x-ignore-shared", "state": True}]
        src.qmp.run("migrate-set-capabilities", capabilities=caps)
        dst.qmp.run("migrate-set-capabilities", capabilities=caps)
        dst.qmp.run("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
    src.qmp.run("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    t0 = time.monotonic()
    src.qmp.run("migrate", uri=f"tcp:127.0.0.1:{port}")
    while True:
        q = src.qmp.run("query-migrate")
        if q.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() - t0 > timeout_s:
            src.qmp.run("migrate_cancel")
            q = dict(q, status="timeout")
            break
        time.sleep(0.005)
    wall = (time.monotonic() - t0) * 1000
    res = {"status": q.get("status"), "total_ms": q.get("total-time"),
           "downtime_ms": q.get("downtime"), "setup_ms": q.get("setup-time"),
           "ram_transferred_bytes": (q.get("ram") or {}).get("transferred"),
           "dirty_sync_count": (q.get("ram") or {}).get("dirty-sync-count"),
           "wall_ms": round(wall)}
    if res["status"] != "completed":
        dst.stop()
        return None, res
    dst.chan = Chan(str(dst.dir / "guest.sock"))
    # The guest's first heartbeats on the destination.
    end = time.time() + 30
    while time.time() < end and not [h for h in dst.chan.hb
                                     if src.chan.hb and h[0] > max(src.chan.hb)[0]]:
        time.sleep(0.02)
    res["guest_gap_ms"] = hb_gap_ms(src.chan.hb, dst.chan.hb)
    res["rx_gap_ms"] = hb_gap_ms(src.chan.hb, dst.chan.hb, 2)
    src.stop()
    return dst, res


def run_precopy(args, d, mem_mb, shared=False):
    """Pre-copy of stock QEMU; shared: the x-ignore-shared floor instead."""
    fill = mem_mb * 3 // 4
    out = {}
    tag = "xis" if shared else "pc"
    mem_path = str(d / f"{tag}{mem_mb}.ram") if shared else None
    log(f"{'x-ignore-shared' if shared else 'precopy'} {mem_mb} MiB: boot, FILL {fill} MiB")
    src = PlainQemu(d, f"{tag}{mem_mb}-a", mem_mb, mem_path=mem_path)
    cur = None
    try:
        src.chan.wait_for("READY", 180)
        f = src.chan.cmd(f"FILL 1 7 {fill}")
        out["fill_ms"] = f["ms"]
        src.chan.cmd(f"HEARTBEAT {args.hb_ms}")
        time.sleep(args.idle_s)
        cur, r = precopy_move(src, d, f"{tag}{mem_mb}-b", mem_mb, args.timeout, mem_path)
        out["idle"] = r
        log(f"  idle: {r}")
        if cur is None:
            return out
        # Busy: the host rewrites a 16 MiB region at about busy_mbps MiB/s
        # (REWRITE, then a pause). Not WRITELOOP: with its writer thread the
        # guest crashed after every pre-copy switchover here (kernel Oops in
        # the destination, QEMU 7.2 TCG), while our migration is immune (no
        # RAM crosses). See bench/README.md.
        cur.chan.cmd("FILL 2 8 16")
        stop = threading.Event()
        written = [0]

        def writer(chan=cur.chan):
            seed, t_start = 100, time.monotonic()
            try:
                while not stop.is_set():
                    seed += 1
                    chan.cmd(f"REWRITE 2 {seed}", timeout=30)
                    written[0] += 16
                    due = t_start + written[0] / args.busy_mbps
                    time.sleep(max(0.0, due - time.monotonic()))
            except (OSError, RuntimeError, TimeoutError):
                pass
        wt = threading.Thread(target=writer, daemon=True)
        wt.start()
        time.sleep(2.0)
        nxt, r = precopy_move(cur, d, f"{tag}{mem_mb}-c", mem_mb, args.timeout, mem_path)
        stop.set()
        wt.join(60)
        r["rewritten_mb"] = written[0]
        out["busy"] = r
        log(f"  busy: {r}")
        if nxt is None:
            return out
        cur = nxt
        try:
            v = cur.chan.cmd("VERIFY 1", timeout=600)
            out["verify_mismatches"] = v["mismatches"]
        except (OSError, RuntimeError, TimeoutError) as e:
            # The baseline's guest did not survive the busy pre-copy move
            # (see bench/README.md): record it, the figures above stand.
            out["busy"]["guest_lost_after_move"] = str(e)
            log(f"  busy: the pre-copy guest is gone after the move: {e}")
        return out
    finally:
        for q in (src, cur):
            if q is not None and q.p.poll() is None:
                q.stop()


# ---- ours: the cluster --------------------------------------------------

class Cluster:
    def __init__(self, data, pool):
        self.data = data
        self.bin = ROOT / "build" / "bin"
        self.env = dict(os.environ, DISAGG_DATA=str(data))
        self.disagg("up", "--memnodes", "2", "--computes", "2", "--pool", pool,
                    "--accel", "tcg", timeout=300)
        self.info = json.loads((data / "cluster.json").read_text())
        self.orch = self.comp("orchestrator")["http"]

    def comp(self, name):
        return next(c for c in self.info["components"] if c["name"] == name)

    def compute_http(self, node_id):
        return next(c["http"] for c in self.info["components"]
                    if c["kind"] == "compute" and c["node_id"] == node_id)

    def disagg(self, *args, timeout=600):
        p = subprocess.run([str(self.bin / "disagg"), *map(str, args)], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"disagg {args}: {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def guest(self, slot, command, timeout=900):
        j = ok(self.orch, "POST", f"/v1/slots/{slot}/guest", {"command": command},
               timeout=timeout)
        if not j["ok"]:
            raise RuntimeError(f"guest {command!r}: {j['reply']}")
        return vmlib.fields(j["reply"])

    def down(self):
        subprocess.run([str(self.bin / "disagg"), "down"], env=self.env,
                       capture_output=True, timeout=300)


def ours_move(c, name, to, frm, rx_poll=False, prefetch=True):
    # Both agents read the guest channel when asked: poll them so that the
    # host receive times (RX_NS, CLOCK_MONOTONIC on this one machine) of the
    # heartbeats are meaningful.
    stop, seen = threading.Event(), {}

    def poll(addr):
        while not stop.is_set():
            st, hb = http(addr, "GET", f"/v1/vms/{name}/heartbeats", timeout=10)
            if st == 200:
                for h in hb["heartbeats"]:
                    seen.setdefault(h[0], h)
            time.sleep(0.002)
    pollers = [threading.Thread(target=poll, args=(c.compute_http(x),), daemon=True)
               for x in (frm, to)]
    for p in pollers if rx_poll else ():
        p.start()
    t0 = time.monotonic()
    try:
        j = ok(c.orch, "POST", f"/v1/slots/{name}/migrate", {"to": to, "prefetch": prefetch})
    finally:
        wall = (time.monotonic() - t0) * 1000
        stop.set()
        for p in pollers if rx_poll else ():
            p.join(30)
    m = j["migration"]
    res = {"total_ms": j["total_ms"], "wall_ms": round(wall),
           "agent_total_ms": m.get("total_ms"), "downtime_ms": m.get("downtime_ms"),
           "qemu_total_ms": m.get("qemu_total_ms"), "pause_ms": m.get("pause_ms"),
           "ram_transferred_bytes": m.get("ram_transferred_bytes"),
           "flush_rounds": m.get("flush_rounds"), "pages_flushed": m.get("pages_flushed"),
           "final_flush_pages": m.get("final_flush_pages"),
           "final_flush_ms": m.get("final_flush_ms"),
           "flush_rounds_ms": m.get("flush_rounds_ms"), "phases_ms": j.get("phases_ms"),
           "hot_pages": m.get("hot_pages")}
    last = m.get("last_heartbeat")
    if last:
        end = time.time() + 30
        while time.time() < end:
            hb = ok(c.compute_http(to), "GET", f"/v1/vms/{name}/heartbeats")
            later = [h for h in hb["heartbeats"] if h[0] > last["seq"]]
            if later:
                first = min(later)
                res["guest_gap_ms"] = (first[1] - last["ns"]) / 1e6
                res["hot_prefetched"] = ok(c.compute_http(to), "GET", f"/v1/vms/{name}")[
                    "pager"].get("pages_hot_prefetched")
                if rx_poll:
                    src_last = seen.get(last["seq"], [0, 0, last.get("rx_ns", 0)])
                    dst_first = seen.get(first[0], first)
                    res["rx_gap_ms"] = (dst_first[2] - src_last[2]) / 1e6
                break
            time.sleep(0.02)
    return res


def prefetch_effect(c, name, a, b):
    """The same busy guest moved twice, without and with the hot-page prefetch:
    page faults that went to a memory node on the destination in the first
    second after the move."""
    out = {}
    for key, to, frm, pf in (("off", b, a, False), ("on", a, b, True)):
        m = ours_move(c, name, to, frm, prefetch=pf)
        time.sleep(1.0)
        st = ok(c.compute_http(to), "GET", f"/v1/vms/{name}")["pager"]
        out[key] = {"total_ms": m["total_ms"], "guest_gap_ms": m.get("guest_gap_ms"),
                    "hot_pages": m.get("hot_pages"), "faults_missing_1s": st["faults_missing"],
                    "pages_hot_prefetched_1s": st.get("pages_hot_prefetched")}
    off, on = out["off"]["faults_missing_1s"], out["on"]["faults_missing_1s"]
    out["faults_ratio"] = round(on / off, 2) if off else None
    return out


def ours_memmig(c, name, frm, to):
    j = ok(c.orch, "POST", f"/v1/slots/{name}/migrate-memory", {"from": frm, "to": to})
    pauses = [x["pause_us"] for x in j["sections"] if x.get("pause_us") is not None]
    return {"total_ms": j["total_ms"], "sections": len(j["sections"]),
            "bytes_copied": j["bytes_copied"], "max_pause_ms": j["max_pause_us"] / 1000,
            "median_pause_ms": sorted(pauses)[len(pauses) // 2] / 1000 if pauses else None,
            "pages_resent": sum(x.get("pages_resent") or 0 for x in j["sections"])}


def memmig_under_budget(args, c, mem_mb):
    """A slot with a cache budget of 25% of its RAM, 75% filled and busy
    (WRITELOOP), moved to the other memory node while its heartbeats are
    collected: the longest gap between two heartbeats the guest sent during
    the memory migration, on the guest's clock (a vCPU waiting for a page
    shows as a gap; the VM is never stopped)."""
    name, fill = f"ours{mem_mb}c", mem_mb * 3 // 4
    log(f"ours {mem_mb} MiB, cache 25%: create, FILL {fill} MiB, memory migration")
    j = ok(c.orch, "POST", "/v1/slots", {"name": name, "vcpus": 1, "memory": mem_mb * MiB,
                                         "cache": mem_mb * MiB // 4, "policy": "pack"})
    agent = c.compute_http(j["compute"])
    m1 = j["sections"][0]["memnode"]
    m2 = next(x["node_id"] for x in c.info["components"]
              if x["kind"] == "memnode" and x["node_id"] != m1)
    seen, stop = {}, threading.Event()

    def poll():
        while not stop.is_set():
            st, hb = http(agent, "GET", f"/v1/vms/{name}/heartbeats", timeout=10)
            if st == 200:
                for h in hb["heartbeats"]:
                    seen.setdefault(h[0], h)
            stop.wait(0.5)
    try:
        c.guest(name, f"FILL 1 7 {fill}")
        c.guest(name, f"WRITELOOP 1 {args.busy_mbps}")
        c.guest(name, f"HEARTBEAT {args.hb_ms}")
        time.sleep(2.0)
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        time.sleep(1.0)
        seq0 = max(seen) if seen else 0
        r = ours_memmig(c, name, m1, m2)
        time.sleep(1.0)
        stop.set()
        t.join(30)
        hbs = sorted(h for q, h in seen.items() if q >= seq0)
        gaps = [(b[1] - a[1]) / 1e6 for a, b in zip(hbs, hbs[1:]) if b[0] == a[0] + 1]
        r["heartbeats"] = len(hbs)
        r["heartbeats_missing"] = (hbs[-1][0] - hbs[0][0] + 1 - len(hbs)) if hbs else None
        r["guest_max_gap_ms"] = round(max(gaps), 2) if gaps else None
        r["guest_p99_gap_ms"] = round(sorted(gaps)[int(len(gaps) * 0.99)], 2) if gaps else None
        c.guest(name, "STOP")
        r["verify_mismatches"] = c.guest(name, "VERIFY 1")["mismatches"]
        log(f"  memmig at 25%: {r}")
        return r
    finally:
        stop.set()
        http(c.orch, "DELETE", f"/v1/slots/{name}")


def run_ours(args, c, mem_mb):
    fill = mem_mb * 3 // 4
    name = f"ours{mem_mb}"
    out = {}
    log(f"ours {mem_mb} MiB: create, FILL {fill} MiB")
    j = ok(c.orch, "POST", "/v1/slots", {"name": name, "vcpus": 1, "memory": mem_mb * MiB,
                                         "policy": "pack"})
    a, b = j["compute"], next(x["node_id"] for x in c.info["components"]
                               if x["kind"] == "compute" and x["node_id"] != j["compute"])
    m1 = j["sections"][0]["memnode"]
    m2 = next(x["node_id"] for x in c.info["components"]
              if x["kind"] == "memnode" and x["node_id"] != m1)
    try:
        out["fill_ms"] = c.guest(name, f"FILL 1 7 {fill}")["ms"]
        c.guest(name, f"HEARTBEAT {args.hb_ms}")
        time.sleep(args.idle_s)
        for state in ("idle", "busy"):
            if state == "busy":
                c.guest(name, f"WRITELOOP 1 {args.busy_mbps}")
                time.sleep(2.0)
            r = {"first": ours_move(c, name, b, a, args.rx_poll)}
            log(f"  {state} first: {r['first']}")
            r["steady"] = ours_move(c, name, a, b, args.rx_poll)
            log(f"  {state} steady: {r['steady']}")
            if state == "busy":
                r["prefetch"] = prefetch_effect(c, name, a, b)
                log(f"  {state} prefetch off/on: {r['prefetch']}")
            r["memmig"] = ours_memmig(c, name, m1, m2)
            log(f"  {state} memmig: {r['memmig']}")
            m1, m2 = m2, m1
            if state == "busy":
                r["writeloop"] = c.guest(name, "STOP")
            out[state] = r
        out["verify_mismatches"] = c.guest(name, "VERIFY 1")["mismatches"]
    finally:
        http(c.orch, "DELETE", f"/v1/slots/{name}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=str(ROOT / "build" / "bench" / "migration.json"))
    ap.add_argument("--sizes", default="1024,2048", help="guest RAM in MiB, comma-separated")
    ap.add_argument("--busy-mbps", type=int, default=50)
    ap.add_argument("--hb-ms", type=int, default=1)
    ap.add_argument("--idle-s", type=float, default=5.0,
                    help="how long the guest stays idle after the fill before the idle "
                         "moves (both ours and pre-copy); the agent's background "
                         "write-back cleans pages dirty for more than 1 s meanwhile")
    ap.add_argument("--rx-poll", action="store_true",
                    help="poll both agents' heartbeats during our moves, for host-side "
                         "receive times (perturbs the guest on a 2-CPU host)")
    ap.add_argument("--timeout", type=int, default=120, help="per pre-copy migration, s")
    ap.add_argument("--skip-precopy", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run directory (daemon logs, QEMU consoles) for debugging")
    args = ap.parse_args()
    try:
        vmlib.check_prereqs()
    except vmlib.Skip as e:
        log(f"skipped: {e}")
        return 77
    sizes = [int(x) for x in args.sizes.split(",")]
    t0 = time.monotonic()
    res = {"host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                    "kernel": platform.release(), "accel": "tcg"},
           "busy_mbps": args.busy_mbps, "hb_ms": args.hb_ms, "ours": {}, "precopy": {},
           "floor": {}}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="disagg-migbench-", dir="/dev/shm"))
    try:
        pool = f"{max(sizes) * 2 // 1024 + 1}G"
        c = Cluster(tmp / "cluster", pool)
        try:
            for mb in sizes:
                res["ours"][str(mb)] = run_ours(args, c, mb)
            res["memmig_25"] = memmig_under_budget(args, c, min(sizes))
        finally:
            c.down()
        if not args.skip_precopy:
            for mb in sizes:
                d = tmp / f"precopy-{mb}"
                d.mkdir()
                res["precopy"][str(mb)] = run_precopy(args, d, mb)
        for mb in sizes:
            d = tmp / f"floor-{mb}"
            d.mkdir()
            res["floor"][str(mb)] = run_precopy(args, d, mb, shared=True)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    big = str(max(sizes))
    o, p = res["ours"].get(big, {}), res["precopy"].get(big, {})
    oi = o.get("idle", {})
    res["ours_total_ms"] = oi.get("first", {}).get("total_ms")
    res["ours_steady_total_ms"] = oi.get("steady", {}).get("total_ms")
    res["ours_downtime_ms"] = oi.get("first", {}).get("guest_gap_ms")
    res["ours_steady_downtime_ms"] = oi.get("steady", {}).get("guest_gap_ms")
    res["ours_qemu_downtime_ms"] = oi.get("first", {}).get("downtime_ms")
    res["precopy_total_ms"] = p.get("idle", {}).get("total_ms")
    res["precopy_downtime_ms"] = p.get("idle", {}).get("guest_gap_ms")
    res["precopy_qemu_downtime_ms"] = p.get("idle", {}).get("downtime_ms")
    res["ours_rx_gap_ms"] = oi.get("first", {}).get("rx_gap_ms")
    res["ours_steady_rx_gap_ms"] = oi.get("steady", {}).get("rx_gap_ms")
    res["precopy_rx_gap_ms"] = p.get("idle", {}).get("rx_gap_ms")
    fl = res["floor"].get(big, {})
    res["floor_total_ms"] = fl.get("idle", {}).get("total_ms")
    res["floor_downtime_ms"] = fl.get("idle", {}).get("guest_gap_ms")
    res["floor_qemu_downtime_ms"] = fl.get("idle", {}).get("downtime_ms")
    res["floor_busy_total_ms"] = fl.get("busy", {}).get("total_ms")
    if res["ours_total_ms"] and res["floor_total_ms"]:
        res["ours_over_floor"] = round(res["ours_total_ms"] / res["floor_total_ms"], 2)
    # The worst guest-visible gap over every move of ours (first and steady,
    # idle and busy, every size), with QEMU's own downtime of that move.
    gaps = [(m.get("guest_gap_ms"), m.get("downtime_ms"), f"{mb} {st} {k}")
            for mb, r in res["ours"].items() for st in ("idle", "busy") if st in r
            for k in ("first", "steady") if isinstance(r[st].get(k), dict)
            and r[st][k].get("guest_gap_ms") is not None]
    if gaps:
        worst = max(gaps)
        res["ours_worst_gap_ms"], res["ours_worst_gap_qemu_ms"] = worst[0], worst[1]
        res["ours_worst_gap_move"] = worst[2]
    if res["ours_total_ms"] and res["precopy_total_ms"]:
        res["speedup_total"] = round(res["precopy_total_ms"] / res["ours_total_ms"], 1)
    if res["ours_steady_total_ms"] and res["precopy_total_ms"]:
        res["speedup_total_steady"] = round(res["precopy_total_ms"] /
                                            res["ours_steady_total_ms"], 1)
    pauses = [r[s]["memmig"]["max_pause_ms"] for r in res["ours"].values()
              for s in ("idle", "busy") if s in r]
    res["memmig_max_pause_ms"] = max(pauses) if pauses else None
    res["memmig_25_guest_gap_ms"] = (res.get("memmig_25") or {}).get("guest_max_gap_ms")
    res["idle_s"] = args.idle_s
    res["targets"] = TARGETS
    res["pass"] = {
        "speedup_total": (res.get("speedup_total") or 0) >= TARGETS["speedup_total"],
        "ours_downtime_ms": res["ours_downtime_ms"] is not None and
        res["ours_downtime_ms"] <= TARGETS["ours_downtime_ms"],
        "memmig_max_pause_ms": res["memmig_max_pause_ms"] is not None and
        res["memmig_max_pause_ms"] <= TARGETS["memmig_max_pause_ms"]}
    res["wall_s"] = round(time.monotonic() - t0, 1)
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    log(json.dumps({k: res.get(k) for k in (
        "ours_total_ms", "ours_steady_total_ms", "ours_downtime_ms", "ours_steady_downtime_ms",
        "precopy_total_ms", "precopy_downtime_ms", "speedup_total", "speedup_total_steady",
        "ours_qemu_downtime_ms", "precopy_qemu_downtime_ms", "ours_rx_gap_ms",
        "ours_steady_rx_gap_ms", "precopy_rx_gap_ms", "floor_total_ms", "floor_downtime_ms",
        "ours_over_floor", "ours_worst_gap_ms", "ours_worst_gap_move", "memmig_25_guest_gap_ms",
        "memmig_max_pause_ms", "pass", "wall_s")}, indent=1))
    bad = [(k, mb) for k in ("ours", "precopy", "floor") for mb, r in res[k].items()
           if r.get("verify_mismatches", 0) != 0]
    if (res.get("memmig_25") or {}).get("verify_mismatches"):
        bad.append(("memmig_25", min(sizes)))
    if bad:
        log(f"VERIFY found mismatches: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
