#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Migration benchmark (make bench-migration): the same guest (1 vCPU, TCG,
2 GiB by default, 75% filled with a non-zero pattern) moved three ways,
each with the same history (run_states):

  busy    (the headline) from boot on, a host thread REWRITEs a 16 MiB
          region at --busy-mbps MiB/s; the guest FILLs, stays busy
          --busy-s more seconds, and is moved while the writes go on,
          --busy-moves times (5) on each side: the headline totals are
          the medians of those moves, with min and max
  idle    the writes stop, --idle-s seconds pass, the guest is moved
  filled  the guest rewrites the whole fill (REWRITE) and is moved at once

  ours     compute migration through the orchestrator (POST
           /v1/slots/NAME/migrate on `disagg up --computes 2 --memnodes 2`,
           all RAM on memory nodes): only CPU and device state cross; the
           source writes its dirty pages back first. Two moves per state:
           first, and steady (straight back). In the busy state also the
           hot-page prefetch off and on, and a memory migration of every
           section (memmig).
  precopy  the baseline a user has today: two stock QEMUs (no shim, no
           agent, memory-backend-ram), same kernel and initramfs,
           `migrate tcp:127.0.0.1:PORT`, default settings except
           max-bandwidth (unlimited; QEMU 7.2's default is 32 MiB/s);
           query-migrate's total-time and downtime.
  floor    the physical limit of this design, a second baseline: two stock
           QEMUs sharing one RAM file on tmpfs (memory-backend-file,
           share=on) migrated with x-ignore-shared: only device state and
           the dirty log cross. Its total includes starting the
           destination's QEMU, as ours does (total_with_start_ms).
  memmig_25  a slot with a cache budget of 25% of its RAM, WRITELOOP in
           the guest, moved to the other memory node: the longest gap
           between two guest heartbeats during it, and in a control window
           of --memmig-control-s with no migration before it.

Guest-felt downtime: the guest sends `HB SEQ NS` every --hb-ms ms; the gap
is NS of the first heartbeat on the destination minus NS of the last one on
the source. Under TCG the guest's clock stands still while the vCPUs are
stopped, so this gap is the time the guest lost *while running* (getting
going again, faults on the destination), not the stop itself: QEMU's
downtime is reported next to it. ours_worst_gap_ms is the worst over every
move of ours.

Headline (--json, default build/bench/migration.json): ours_total_ms,
precopy_total_ms, speedup_total (precopy / ours), floor_total_with_start_ms,
ours_over_floor, ours_worst_gap_ms (with ours_worst_gap_qemu_ms and the
move), ours_control_gap_ms and precopy_control_gap_ms (the longest gap in
--control-s of the busy load with no move, just before the busy move: what
the load alone costs), memmig_25_guest_gap_ms (and
memmig_25_control_gap_ms); the same with
idle_ and filled_ for the other two states; targets and pass flags.
"""
import argparse
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "vm"))

import vmlib  # noqa: E402  (puts tests/functional on the path)
import authkit  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import probe  # noqa: E402

MiB = 1 << 20
PROBE_MS = 0    # --probe-ms
CPU = os.environ.get("MIGBENCH_CPU", "max")
TARGETS = {"speedup_total": (">=", 10.0), "ours_over_floor": ("<=", 3.0),
           "ours_worst_gap_ms": ("<=", 50.0), "memmig_25_guest_gap_ms": ("<=", 20.0)}
STATES = ("busy", "idle", "filled")   # the headline, then the second and third rows


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- HTTP ---------------------------------------------------------------

TOKENS = {}     # HTTP address -> bearer token (Cluster: the cluster `disagg up` made)


def http(addr, method, path, body=None, timeout=600):
    hdrs = {"Content-Type": "application/json"}
    if addr in TOKENS:
        hdrs["Authorization"] = "Bearer " + TOKENS[addr]
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers=hdrs)
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
        # A QEMU that stops answering (seen once after a failed pre-copy,
        # QEMU 7.2 TCG) is an error of this run, never a wedged benchmark.
        self.s.settimeout(120)
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
                "-smp", "1,maxcpus=2", "-m", f"{mem_mb}M",  # as the agent starts QEMU
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


class QemuDied(RuntimeError):
    """A stock QEMU of the baseline went away during a move (its QMP socket
    broke): QEMU 7.2 under TCG does that now and then. Not our code: the
    side is run again from boot (run_precopy), and the JSON says so."""


def qemu_tail(q, n=5):
    try:
        lines = (q.dir / "qemu.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def precopy_move(src, d, name, mem_mb, timeout_s, mem_path=None):
    """A stock QEMU migration to a new QEMU on this host. mem_path: both
    share that RAM file and migrate with x-ignore-shared (only device state
    and the dirty log cross: the floor of moving a VM whose memory stays).
    Raises QemuDied when the source or the destination QEMU goes away."""
    try:
        return _precopy_move(src, d, name, mem_mb, timeout_s, mem_path)
    except (OSError, json.JSONDecodeError) as e:
        who = "source" if src.p.poll() is not None else "destination"
        raise QemuDied(f"{who} QEMU went away during the move ({e!r}; source exit "
                       f"{src.p.poll()}; its log: {qemu_tail(src)!r})") from e


def _precopy_move(src, d, name, mem_mb, timeout_s, mem_path=None):
    port = free_port()
    t_start = time.monotonic()
    # The destination's guest channel is connected once the migration
    # completed: a client connected to it during the incoming migration made
    # the guest's virtio_console crash after the switchover (QEMU 7.2, TCG).
    dst = PlainQemu(d, name, mem_mb, incoming="defer" if mem_path else
                    f"tcp:127.0.0.1:{port}", connect=False, mem_path=mem_path)
    try:
        return _precopy_run(src, dst, port, t_start, timeout_s, mem_path)
    except BaseException:
        dst.stop()
        raise


def _precopy_run(src, dst, port, t_start, timeout_s, mem_path):
    if mem_path:
        caps = [{"capability": "x-ignore-shared", "state": True}]
        src.qmp.run("migrate-set-capabilities", capabilities=caps)
        dst.qmp.run("migrate-set-capabilities", capabilities=caps)
        dst.qmp.run("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
    src.qmp.run("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    t0 = time.monotonic()
    start_ms = (t0 - t_start) * 1000
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
           "wall_ms": round(wall), "start_ms": round(start_ms)}
    if res["status"] == "completed" and not res["total_ms"]:
        # QEMU 7.2 once said total-time 0 for a completed pre-copy that moved
        # 1.7 GB in 3.5 s (the gate at 06f5bec): its wall time stands in.
        res["total_ms"], res["total_from"] = res["wall_ms"], "wall"
    if res["total_ms"] is not None:
        # Ours includes starting the destination's QEMU: so does this figure.
        res["total_with_start_ms"] = res["total_ms"] + res["start_ms"]
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


class Busy:
    """The guest kept busy the same way on every side: a host thread that
    REWRITEs region 2 (16 MiB) at about --busy-mbps MiB/s through guest(cmd),
    which reaches the guest wherever it runs. (Not the guest's own WRITELOOP
    thread: with it running, the pre-copy guest's kernel crashed after every
    switchover here; see bench/README.md.) A command that fails while the
    guest moves is retried."""

    def __init__(self, guest, mbps):
        self.guest, self.mbps, self.mb = guest, mbps, 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        seed, t0 = 100, time.monotonic()
        while not self.stop_ev.is_set():
            seed += 1
            try:
                self.guest(f"REWRITE 2 {seed}", 10)
                self.mb += 16
            except (OSError, RuntimeError, TimeoutError, AttributeError):
                self.stop_ev.wait(0.05)
                continue
            due = t0 + self.mb / self.mbps
            self.stop_ev.wait(max(0.0, due - time.monotonic()))

    def stop(self):
        self.stop_ev.set()
        self.t.join(60)
        return self.mb


def run_states(args, sysm, fill):
    """The same history on every side: boot, FILL region 1 while region 2 is
    rewritten (busy from the start), --busy-s more seconds busy, then move
    (state busy, the headline); stop writing, --idle-s idle, move (idle);
    rewrite all of region 1 and move at once (filled). sysm.move(state)
    does the moves of a state and returns their figures."""
    out = {}
    sysm.guest("FILL 2 8 16")
    busy = Busy(sysm.guest, args.busy_mbps)
    try:
        out["fill_ms"] = sysm.guest(f"FILL 1 7 {fill}", 900)["ms"]
        time.sleep(args.busy_s)
        out["busy"] = sysm.move("busy")
        if out["busy"] is not None:
            # More moves of the busy guest: the headline is their median.
            out["busy_more"] = sysm.more_moves(args.busy_moves)
    finally:
        out["busy_rewritten_mb"] = busy.stop()
    if out["busy"] is None:
        return out
    time.sleep(args.idle_s)
    out["idle"] = sysm.move("idle")
    if out["idle"] is None:
        return out
    out["refill_ms"] = sysm.guest("REWRITE 1 9", 900)["ms"]
    out["filled"] = sysm.move("filled")
    if out["filled"] is None:
        return out
    try:
        out["verify_mismatches"] = (sysm.guest("VERIFY 1", 900)["mismatches"] +
                                    sysm.guest("VERIFY 2", 900)["mismatches"])
    except (OSError, RuntimeError, TimeoutError) as e:
        out["guest_lost_after_move"] = str(e)
        log(f"  the guest is gone after the moves: {e}")
    return out


PRECOPY_ATTEMPTS = 3


class PlainSys:
    """Stock QEMU moved by pre-copy, or over a shared RAM file with
    x-ignore-shared (shared: the floor); one move per state."""

    def __init__(self, args, d, mem_mb, shared, attempt=1):
        self.args, self.d, self.mem_mb, self.n = args, d, mem_mb, 0
        self.lock = threading.Lock()
        self.tag = ("xis" if shared else "pc") + (f"a{attempt}" if attempt > 1 else "")
        self.mem_path = str(d / f"{self.tag}{mem_mb}.ram") if shared else None
        self.cur = PlainQemu(d, f"{self.tag}{mem_mb}-0", mem_mb, mem_path=self.mem_path)
        self.cur.chan.wait_for("READY", 180)
        self.cur.chan.cmd(f"HEARTBEAT {args.hb_ms}")

    def guest(self, cmd, timeout=600):
        with self.lock:   # one command at a time, as the agent's guest channel does
            return self.cur.chan.cmd(cmd, timeout=timeout)

    def move(self, state):
        self.n += 1
        with self.lock:
            src = self.cur
        ctl = None
        if state == "busy":
            t_end = time.monotonic_ns()
            time.sleep(self.args.control_s)
            ctl = max_gap_ms([h for h in list(src.chan.hb) if h[2] > t_end])
        nxt, r = precopy_move(src, self.d, f"{self.tag}{self.mem_mb}-{self.n}",
                              self.mem_mb, self.args.timeout, self.mem_path)
        r["control_gap_ms"] = ctl
        log(f"  {state}: {r}")
        if nxt is None:
            return None
        with self.lock:
            self.cur = nxt
        return r

    def more_moves(self, total):
        """Moves after the state's first, up to `total` in all."""
        out = []
        for _ in range(total - 1):
            r = self.move("busy, again")
            if r is None:
                break
            out.append(r)
        return out

    def close(self):
        self.cur.stop()
        if self.mem_path:
            pathlib.Path(self.mem_path).unlink(missing_ok=True)


def run_precopy(args, d, mem_mb, shared=False):
    """Pre-copy of stock QEMU; shared: the x-ignore-shared floor instead."""
    fill = mem_mb * 3 // 4
    died = []
    for attempt in range(1, PRECOPY_ATTEMPTS + 1):
        log(f"{'x-ignore-shared' if shared else 'precopy'} {mem_mb} MiB: boot, "
            f"FILL {fill} MiB" + (f" (attempt {attempt})" if attempt > 1 else ""))
        sysm = PlainSys(args, d, mem_mb, shared, attempt)
        try:
            out = run_states(args, sysm, fill)
            out["qemu_died"] = died
            return out
        except (QemuDied, OSError, RuntimeError, TimeoutError) as e:
            if not isinstance(e, QemuDied) and sysm.cur.p.poll() is None:
                raise   # not a QEMU that went away: a real failure
            log(f"  stock QEMU died: {e}; this side starts again from boot")
            died.append(f"{e} (exit {sysm.cur.p.poll()}, log: {qemu_tail(sysm.cur)!r})")
        finally:
            sysm.close()
    return {"qemu_died": died}


# ---- ours: the cluster --------------------------------------------------

class Cluster:
    def __init__(self, data, pool, plaintext=False):
        self.data = data
        self.bin = ROOT / "build" / "bin"
        self.env = dict(os.environ, DISAGG_DATA=str(data))
        self.disagg("up", "--memnodes", "2", "--computes", "2", "--pool", pool,
                    "--accel", "tcg", *(["--fabric-plaintext"] if plaintext else []),
                    timeout=300)
        self.info = json.loads((data / "cluster.json").read_text())
        self.orch = self.comp("orchestrator")["http"]
        # The people token for the orchestrator, the orchestrator's for agents.
        auth = authkit.ClusterAuth(data, existing=True)
        for c in self.info["components"]:
            if c.get("http"):
                TOKENS[c["http"]] = (auth.token if c["kind"] == "orchestrator"
                                     else auth.orch_token(c["node_id"]))

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
    prober = None
    if PROBE_MS:
        def dst_pid(addr=c.compute_http(to)):
            st, j = http(addr, "GET", f"/v1/vms/{name}", timeout=5)
            return j.get("pid") if st == 200 and j.get("pid") else None
        prober = probe.Probe(dst_pid, window_ms=PROBE_MS)
        st, sj = http(c.compute_http(frm), "GET", f"/v1/vms/{name}", timeout=5)
        src_prober = probe.Probe(lambda: sj.get("pid"), window_ms=3000, from_start=True)
    t0 = time.monotonic()
    try:
        j = ok(c.orch, "POST", f"/v1/slots/{name}/migrate", {"to": to, "prefetch": prefetch})
    finally:
        wall = (time.monotonic() - t0) * 1000
        stop.set()
        if prober:
            time.sleep(PROBE_MS / 1000 + 0.3)
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
    if prober:
        res["probe"] = prober.close()
        res["probe_source"] = src_prober.close()
        try:
            addr = c.compute_http(to)
            req = urllib.request.Request(f"http://{addr}/metrics",
                                         headers={"Authorization": "Bearer " + TOKENS[addr]})
            with urllib.request.urlopen(req, timeout=10) as f:
                text = f.read().decode()
            res["probe_faults"] = probe.fault_hist(text, name)
            res["probe_fetches"] = probe.fault_hist(text, name, "disagg_pager_fetch_seconds")
        except OSError as e:
            res["probe_faults"] = {"error": str(e)}
    last = m.get("last_heartbeat")
    if last:
        end = time.time() + 30
        while time.time() < end:
            hb = ok(c.compute_http(to), "GET", f"/v1/vms/{name}/heartbeats")
            later = [h for h in hb["heartbeats"] if h[0] > last["seq"]]
            if later:
                first = min(later)
                res["guest_gap_ms"] = (first[1] - last["ns"]) / 1e6
                # Heartbeats the guest sent that neither agent read: lost in the switch.
                res["hb_missing"] = first[0] - last["seq"] - 1
                res["hot_prefetched"] = ok(c.compute_http(to), "GET", f"/v1/vms/{name}")[
                    "pager"].get("pages_hot_prefetched")
                if rx_poll:
                    src_last = seen.get(last["seq"], [0, 0, last.get("rx_ns", 0)])
                    dst_first = seen.get(first[0], first)
                    res["rx_gap_ms"] = (dst_first[2] - src_last[2]) / 1e6
                break
            time.sleep(0.02)
    return res


def max_gap_ms(hbs):
    """Longest gap between consecutive heartbeats (seq, guest ns, ...)."""
    hbs = sorted(hbs)
    gaps = [(b[1] - a[1]) / 1e6 for a, b in zip(hbs, hbs[1:]) if b[0] == a[0] + 1]
    return round(max(gaps), 2) if gaps else None


def ours_control(c, name, node, seconds):
    """The longest heartbeat gap of a running slot in `seconds` with no move:
    what its load alone costs the guest (the control of a move's gap)."""
    seen, lo, end = {}, None, time.monotonic() + seconds
    while time.monotonic() < end:
        st, hb = http(c.compute_http(node), "GET", f"/v1/vms/{name}/heartbeats", timeout=10)
        if st == 200:
            if lo is None:
                # The agent keeps heartbeats from before the window: start after them.
                lo = max((h[0] for h in hb["heartbeats"]), default=0)
            for h in hb["heartbeats"]:
                seen.setdefault(h[0], h)
        time.sleep(0.2)
    return max_gap_ms([h for q, h in seen.items() if lo is not None and q >= lo])


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
            "pages_resent": sum(x.get("pages_resent") or 0 for x in j["sections"]),
            "copy_ms": [x.get("copy_ms") for x in j["sections"]]}


PHASES = ("fault", "fetch", "space_wait", "busy_wait", "evict", "writeback", "memmig_pause")


def fault_buckets(addr, vm, names=PHASES):
    """The cumulative buckets {phase: {le_seconds: count}} of one VM's
    pager histograms disagg_pager_<phase>_seconds, from its agent's
    /metrics (empty if it cannot be read)."""
    try:
        req = urllib.request.Request(f"http://{addr}/metrics",
                                     headers={"Authorization": "Bearer " + TOKENS[addr]})
        with urllib.request.urlopen(req, timeout=10) as f:
            text = f.read().decode()
    except OSError:
        return {}
    out = {n: {} for n in names}
    for line in text.splitlines():
        if f'vm="{vm}"' not in line or "_bucket" not in line:
            continue
        for n in names:
            if line.startswith(f"disagg_pager_{n}_seconds_bucket"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out[n][float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def slow_phase(before, after, over_s=0.016):
    """From two bucket snapshots of one histogram: how many were observed
    in between, how many slower than over_s, and the upper bound (ms) of
    the slowest bucket that gained any."""
    les = sorted(after)
    inf = float("inf")
    total = after.get(inf, 0) - before.get(inf, 0)
    n_over = total - next(((after[le] - before.get(le, 0)) for le in les if le >= over_s), 0)
    worst = None
    prev = 0
    for le in les:
        d = after[le] - before.get(le, 0)
        if d > prev:
            worst = le
        prev = d
    return {"n": int(total), "over_16ms": int(n_over),
            "slowest_le_ms": None if worst is None else round(worst * 1e3, 3)}


def slow_faults(before, after):
    """Per phase of the fault path (PHASES) over a window: slow_phase();
    the fault's own row also as faults_over_16ms / slowest_fault_le_ms.
    A fault's time is its fetch plus its wait for cache space (the
    evictor's batches, each a write-back) plus its locks; a fault parked
    by a commit's fence shows in memmig_pause, not in fault."""
    ph = {n: slow_phase(before.get(n, {}), after.get(n, {})) for n in after}
    f = ph.get("fault", {})
    return {"faults_over_16ms": f.get("over_16ms", 0),
            "slowest_fault_le_ms": f.get("slowest_le_ms"), "phases": ph}


def memmig_under_budget(args, c, mem_mb):
    """A slot with a cache budget of 25% of its RAM, 75% filled and busy
    (WRITELOOP), moved between the two memory nodes --memmig-moves times
    (there and back) while its heartbeats are collected. For each move: the
    longest gap between two heartbeats the guest sent from the start of the
    move until --memmig-control-s after it, on the guest's clock (a vCPU
    waiting for a page shows as a gap; the VM is never stopped). The
    control is a window as long with no migration, before the first move.
    The headline is the median over the moves, with their minimum and
    maximum."""
    name, fill = f"ours{mem_mb}c", mem_mb * 3 // 4
    log(f"ours {mem_mb} MiB, cache 25%: create, FILL {fill} MiB, "
        f"{args.memmig_moves} memory migrations")
    j = ok(c.orch, "POST", "/v1/slots", {"name": name, "vcpus": 1, "memory": mem_mb * MiB,
                                         "cache": mem_mb * MiB // 4, "policy": "pack",
                                         "encrypt": not args.clear_pages})
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

    def gap_stats(lo, hi):
        hbs = sorted(h for q, h in seen.items() if lo <= q <= hi)
        gaps = [(b[1] - a[1]) / 1e6 for a, b in zip(hbs, hbs[1:]) if b[0] == a[0] + 1]
        return hbs, gaps

    def top(seq):
        return max(seen) if seen else seq
    try:
        c.guest(name, f"FILL 1 7 {fill}")
        c.guest(name, f"WRITELOOP 1 {args.busy_mbps}")
        c.guest(name, f"HEARTBEAT {args.hb_ms}")
        time.sleep(2.0)
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        time.sleep(1.0)
        # The control: the same slot, load and polling, as long, with no migration.
        seq_c = top(0)
        t_c = time.monotonic()
        fb0 = fault_buckets(agent, name)
        time.sleep(args.memmig_control_s)
        r = {"control_s": round(time.monotonic() - t_c, 2), "moves": []}
        r["control_faults"] = slow_faults(fb0, fault_buckets(agent, name))
        windows, src, dst = [], m1, m2
        for _ in range(args.memmig_moves):
            seq0, t_m = top(0), time.monotonic()
            fb0 = fault_buckets(agent, name)
            mv = ours_memmig(c, name, src, dst)
            mv.update(slow_faults(fb0, fault_buckets(agent, name)))
            time.sleep(max(0.0, args.memmig_control_s - (time.monotonic() - t_m)))
            # Let the poller catch the window's last heartbeats.
            time.sleep(0.6)
            windows.append((seq0, top(seq0), t_m))
            r["moves"].append(mv)
            src, dst = dst, src
        stop.set()
        t.join(30)
        _, cg = gap_stats(seq_c, windows[0][0])
        r["control_max_gap_ms"] = round(max(cg), 2) if cg else None
        r["control_p99_gap_ms"] = round(sorted(cg)[int(len(cg) * 0.99)], 2) if cg else None
        worst = []
        for mv, (lo, hi, t_m) in zip(r["moves"], windows):
            hbs, gaps = gap_stats(lo, hi)
            mv["heartbeats"] = len(hbs)
            # When the longest gap began, in ms from the move's request on
            # this host's clock: the guest's clock mapped by the smallest
            # delay between a heartbeat and its reading (the agent reads
            # every 200 ms at most, so some are read at once).
            pairs = [(a, b) for a, b in zip(hbs, hbs[1:]) if b[0] == a[0] + 1]
            if pairs:
                off = min(h[2] - h[1] for h in hbs if len(h) > 2 and h[2])
                a, _ = max(pairs, key=lambda ab: ab[1][1] - ab[0][1])
                mv["guest_max_gap_at_ms"] = round((a[1] + off) / 1e6 - t_m * 1000, 1)
            mv["heartbeats_missing"] = (hbs[-1][0] - hbs[0][0] + 1 - len(hbs)) if hbs else None
            mv["guest_max_gap_ms"] = round(max(gaps), 2) if gaps else None
            mv["guest_p99_gap_ms"] = round(sorted(gaps)[int(len(gaps) * 0.99)], 2) if gaps else None
            if mv["guest_max_gap_ms"] is not None:
                worst.append(mv["guest_max_gap_ms"])
        if worst:
            r["guest_max_gap_ms"] = statistics.median(worst)
            r["guest_max_gap_ms_min"], r["guest_max_gap_ms_max"] = min(worst), max(worst)
        p99 = [mv["guest_p99_gap_ms"] for mv in r["moves"] if mv["guest_p99_gap_ms"] is not None]
        if p99:
            r["guest_p99_gap_ms"] = statistics.median(p99)
            r["guest_p99_gap_ms_min"], r["guest_p99_gap_ms_max"] = min(p99), max(p99)
        r["heartbeats_missing"] = sum(mv.get("heartbeats_missing") or 0 for mv in r["moves"])
        r["max_pause_ms"] = max(mv["max_pause_ms"] for mv in r["moves"])
        c.guest(name, "STOP")
        r["verify_mismatches"] = c.guest(name, "VERIFY 1")["mismatches"]
        log(f"  memmig at 25%: {r}")
        return r
    finally:
        stop.set()
        http(c.orch, "DELETE", f"/v1/slots/{name}")


class OursSys:
    """A slot on the cluster; each state moves it to the other compute node
    and back (first, steady). In the busy state also the hot-page prefetch
    off and on, and a memory migration of all its sections."""

    def __init__(self, args, c, mem_mb):
        self.args, self.c, self.name = args, c, f"ours{mem_mb}"
        j = ok(c.orch, "POST", "/v1/slots", {"name": self.name, "vcpus": 1,
                                             "memory": mem_mb * MiB, "policy": "pack",
                                             "encrypt": not args.clear_pages})
        self.a = j["compute"]
        self.b = next(x["node_id"] for x in c.info["components"]
                      if x["kind"] == "compute" and x["node_id"] != self.a)
        self.m1 = j["sections"][0]["memnode"]
        self.m2 = next(x["node_id"] for x in c.info["components"]
                       if x["kind"] == "memnode" and x["node_id"] != self.m1)
        self.guest(f"HEARTBEAT {args.hb_ms}")

    def guest(self, cmd, timeout=600):
        return self.c.guest(self.name, cmd, timeout=timeout)

    def move(self, state):
        r = {}
        if state == "busy":
            r["control_gap_ms"] = ours_control(self.c, self.name, self.a, self.args.control_s)
        r["first"] = ours_move(self.c, self.name, self.b, self.a, self.args.rx_poll)
        log(f"  {state} first: {r['first']}")
        time.sleep(self.args.settle_s)
        r["steady"] = ours_move(self.c, self.name, self.a, self.b, self.args.rx_poll)
        log(f"  {state} steady: {r['steady']}")
        if state == "busy":
            time.sleep(self.args.settle_s)
            r["prefetch"] = prefetch_effect(self.c, self.name, self.a, self.b)
            log(f"  {state} prefetch off/on: {r['prefetch']}")
            r["memmig"] = ours_memmig(self.c, self.name, self.m1, self.m2)
            log(f"  {state} memmig: {r['memmig']}")
            self.m1, self.m2 = self.m2, self.m1
        return r

    def more_moves(self, total):
        """Moves after the state's first and steady, up to `total` in all; the
        slot is on a after move() (prefetch off went to b, on back to a)."""
        out, to, frm = [], self.b, self.a
        for _ in range(total - 2):
            m = ours_move(self.c, self.name, to, frm, self.args.rx_poll)
            log(f"  busy, again: {m}")
            out.append(m)
            to, frm = frm, to
        self.a, self.b = frm, to   # where the slot is now, and the other node
        return out

    def close(self):
        http(self.c.orch, "DELETE", f"/v1/slots/{self.name}")


def run_ours(args, c, mem_mb):
    fill = mem_mb * 3 // 4
    log(f"ours {mem_mb} MiB: create, FILL {fill} MiB")
    sysm = OursSys(args, c, mem_mb)
    try:
        return run_states(args, sysm, fill)
    finally:
        sysm.close()


def keep_logs(tmp, dest):
    """A run that failed: its daemons' logs and the QEMU logs and consoles
    go to dest (the run directory itself, with its RAM files, is removed)."""
    shutil.rmtree(dest, ignore_errors=True)
    n = 0
    for f in tmp.rglob("*"):
        if f.is_file() and f.suffix in (".log", ".json") and f.stat().st_size < (64 << 20):
            to = dest / f.relative_to(tmp)
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, to)
            n += 1
    log(f"the run failed: {n} logs kept in {dest}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=str(ROOT / "build" / "bench" / "migration.json"))
    ap.add_argument("--sizes", default="2048", help="guest RAM in MiB, comma-separated "
                    "(the headline is the largest)")
    ap.add_argument("--busy-mbps", type=int, default=50)
    ap.add_argument("--busy-moves", type=int, default=5,
                    help="moves of the busy guest on each side (the headline is their median)")
    ap.add_argument("--busy-s", type=float, default=3.0,
                    help="seconds the guest stays busy after its fill before the busy move")
    ap.add_argument("--control-s", type=float, default=2.0,
                    help="before the busy move, seconds of heartbeats with no move: the "
                         "control of the move's gap (the load's own gaps); the same on "
                         "every side")
    ap.add_argument("--settle-s", type=float, default=0.0,
                    help="seconds between two moves of ours in a row (diagnosis: how much "
                         "of a move's gap is the previous move's aftermath)")
    ap.add_argument("--memmig-control-s", type=float, default=6.0,
                    help="heartbeats watched with no migration, as the control of memmig_25, "
                         "and the window watched from the start of each of its moves (at "
                         "least as long as a move, here 2-7 s: a longest gap over a longer "
                         "window is longer by itself)")
    ap.add_argument("--memmig-moves", type=int, default=3,
                    help="memory migrations of the memmig_25 slot, there and back (the "
                         "headline is the median of their longest guest gaps)")
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
    ap.add_argument("--probe-ms", type=int, default=0,
                    help="diagnosis: sample the destination vCPU of each of our moves for "
                         "its first N ms (on a CPU, waiting for one, asleep and where; "
                         "probe.py); perturbs the moves")
    ap.add_argument("--fabric", choices=("tls", "plaintext"), default="tls",
                    help="memory-node connections: TLS 1.3 (default, as deployed) or "
                         "plaintext (`disagg up --fabric-plaintext`), to see what TLS costs")
    ap.add_argument("--clear-pages", action="store_true",
                    help="slots with \"encrypt\": false (pages in clear on the memory nodes; "
                         "the default seals them, as deployed): what sealing costs, as an A/B")
    ap.add_argument("--only-memmig", action="store_true",
                    help="diagnosis: run memmig_25 alone (no compute migration, pre-copy or "
                         "floor); the headlines of the others are then missing")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run directory (daemon logs, QEMU consoles) for debugging")
    args = ap.parse_args()
    global PROBE_MS
    PROBE_MS = args.probe_ms
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
    ok_run = False
    try:
        pool = f"{max(sizes) * 2 // 1024 + 1}G"
        c = Cluster(tmp / "cluster", pool, plaintext=args.fabric == "plaintext")
        try:
            for mb in sizes if not args.only_memmig else []:
                res["ours"][str(mb)] = run_ours(args, c, mb)
            res["memmig_25"] = memmig_under_budget(args, c, min(sizes))
        finally:
            c.down()
        if not args.skip_precopy and not args.only_memmig:
            for mb in sizes:
                d = tmp / f"precopy-{mb}"
                d.mkdir()
                res["precopy"][str(mb)] = run_precopy(args, d, mb)
        for mb in sizes if not args.only_memmig else []:
            d = tmp / f"floor-{mb}"
            d.mkdir()
            res["floor"][str(mb)] = run_precopy(args, d, mb, shared=True)
        ok_run = True
    finally:
        if not ok_run:
            keep_logs(tmp, pathlib.Path(args.json).parent / "migration-failed")
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    big = str(max(sizes))
    o, p, fl = (res[k].get(big, {}) for k in ("ours", "precopy", "floor"))
    for st in STATES:
        pre = "" if st == "busy" else f"{st}_"
        of = (o.get(st) or {}).get("first") or {}
        res[f"ours_{pre}total_ms"] = of.get("total_ms")
        res[f"ours_{pre}steady_total_ms"] = ((o.get(st) or {}).get("steady") or {}).get("total_ms")
        res[f"ours_{pre}downtime_ms"] = of.get("guest_gap_ms")
        res[f"ours_{pre}qemu_downtime_ms"] = of.get("downtime_ms")
        for k, r in (("precopy", p), ("floor", fl)):
            m = r.get(st) or {}
            res[f"{k}_{pre}total_ms"] = m.get("total_ms")
            res[f"{k}_{pre}total_with_start_ms"] = m.get("total_with_start_ms")
            res[f"{k}_{pre}downtime_ms"] = m.get("guest_gap_ms")
            res[f"{k}_{pre}qemu_downtime_ms"] = m.get("downtime_ms")
        ot = res[f"ours_{pre}total_ms"]
        if ot and res[f"precopy_{pre}total_ms"]:
            res[f"speedup_{pre}total"] = round(res[f"precopy_{pre}total_ms"] / ot, 1)
        if ot and res[f"floor_{pre}total_with_start_ms"]:
            # Both include starting the destination's QEMU.
            res[f"ours_{pre}over_floor"] = round(ot / res[f"floor_{pre}total_with_start_ms"], 2)
    # The busy headline: the median over every busy move of each side, with
    # the spread (the worst and best pairing of the two sides' extremes).
    def busy_totals(r, ours, key="total_ms"):
        b = r.get("busy") or {}
        lst = ([b.get("first"), b.get("steady")] if ours else [b]) + r.get("busy_more", [])
        return [m[key] for m in lst if m and m.get(key) is not None]
    ot, pt = busy_totals(o, True), busy_totals(p, False)
    ft = busy_totals(fl, False, "total_with_start_ms")
    res["ours_first_total_ms"] = res["ours_total_ms"]
    res["busy_moves"] = {"ours": ot, "precopy": pt, "floor_with_start": ft}
    if ot:
        res["ours_total_ms"] = statistics.median(ot)
        res["ours_total_ms_min"], res["ours_total_ms_max"] = min(ot), max(ot)
    if pt:
        res["precopy_total_ms"] = statistics.median(pt)
    if ft:
        res["floor_total_with_start_ms"] = statistics.median(ft)
    for k, other, better in (("speedup_total", pt, "div"), ("ours_over_floor", ft, "over")):
        if not ot or not other:
            continue
        if better == "div":   # precopy / ours
            med, lo, hi = (statistics.median(other) / statistics.median(ot),
                           min(other) / max(ot), max(other) / min(ot))
        else:                 # ours / floor
            med, lo, hi = (statistics.median(ot) / statistics.median(other),
                           min(ot) / max(other), max(ot) / min(other))
        res[k], res[f"{k}_min"], res[f"{k}_max"] = round(med, 2), round(lo, 2), round(hi, 2)
    res["params"] = {"reps": min(len(ot), len(pt) or len(ot)), "busy_moves": args.busy_moves,
                     "sizes": sizes, "sealed": not args.clear_pages,
                     "fabric": args.fabric,
                     "memmig_moves": len((res.get("memmig_25") or {}).get("moves", []))}
    # The worst guest-visible gap over every move of ours (every state and
    # size, first and steady, prefetch off and on), with QEMU's downtime of it.
    moves = []
    for mb, r in res["ours"].items():
        for st in STATES:
            for k, m in ((r.get(st) or {}).items()):
                if k == "prefetch":
                    moves += [(f"{mb} {st} prefetch {x}", m[x]) for x in ("off", "on")]
                elif k in ("first", "steady"):
                    moves.append((f"{mb} {st} {k}", m))
        moves += [(f"{mb} busy again {i + 1}", m) for i, m in enumerate(r.get("busy_more", []))]
    gaps = [(m["guest_gap_ms"], m.get("downtime_ms"), name) for name, m in moves
            if m.get("guest_gap_ms") is not None]
    if gaps:
        worst = max(gaps)
        res["ours_worst_gap_ms"], res["ours_worst_gap_qemu_ms"] = worst[0], worst[1]
        res["ours_worst_gap_move"] = worst[2]
        res["ours_gaps_ms"] = {name: round(g, 2) for g, _, name in gaps}
    res["ours_control_gap_ms"] = (o.get("busy") or {}).get("control_gap_ms")
    res["precopy_control_gap_ms"] = (p.get("busy") or {}).get("control_gap_ms")
    pauses = [(r.get("busy") or {}).get("memmig", {}).get("max_pause_ms")
              for r in res["ours"].values()]
    pauses = [x for x in pauses if x is not None]
    res["memmig_max_pause_ms"] = max(pauses) if pauses else None
    m25 = res.get("memmig_25") or {}
    res["memmig_25_guest_gap_ms"] = m25.get("guest_max_gap_ms")
    res["memmig_25_guest_gap_ms_min"] = m25.get("guest_max_gap_ms_min")
    res["memmig_25_guest_gap_ms_max"] = m25.get("guest_max_gap_ms_max")
    res["memmig_25_control_gap_ms"] = m25.get("control_max_gap_ms")
    for k in ("", "_min", "_max"):
        res[f"memmig_25_guest_p99_ms{k}"] = m25.get(f"guest_p99_gap_ms{k}")
    res["memmig_25_control_p99_ms"] = m25.get("control_p99_gap_ms")
    res["idle_s"], res["busy_s"] = args.idle_s, args.busy_s
    res["targets"] = {k: list(v) for k, v in TARGETS.items()}
    res["pass"] = {k: res.get(k) is not None and
                   (res[k] >= v if op == ">=" else res[k] <= v)
                   for k, (op, v) in TARGETS.items()}
    res["wall_s"] = round(time.monotonic() - t0, 1)
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    log(json.dumps({k: res.get(k) for k in [
        f"{w}_{pre}{f}" for pre in ("", "idle_", "filled_")
        for w, f in (("ours", "total_ms"), ("ours", "steady_total_ms"), ("precopy", "total_ms"),
                     ("floor", "total_ms"), ("floor", "total_with_start_ms"),
                     ("speedup", "total"), ("ours", "over_floor"))] + [
        "ours_downtime_ms", "ours_qemu_downtime_ms", "ours_control_gap_ms",
        "precopy_control_gap_ms", "precopy_downtime_ms",
        "precopy_qemu_downtime_ms", "ours_worst_gap_ms", "ours_worst_gap_qemu_ms",
        "ours_worst_gap_move", "memmig_25_guest_gap_ms", "memmig_25_control_gap_ms",
        "memmig_25_guest_p99_ms", "memmig_25_control_p99_ms",
        "memmig_max_pause_ms", "pass", "wall_s"]}, indent=1))
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
