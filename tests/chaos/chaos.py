#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault injection with real guests: kill or freeze one component in the
middle of an operation, let the cluster recover, check the invariants.

A one-machine cluster (`disagg up --persistent`: 3 memory nodes with pool
files, 2 compute nodes) runs two slots whose guests keep data in their
memory: region 1 is rewritten with new seeds during each step (REWRITE,
then VERIFY), region 2 is rewritten in the background by the guest itself
(WRITELOOP). Each injection:

  1. starts an operation: none, resize (grow or shrink by one section),
     compute migration, or memory migration (which for a slot with local
     memory includes the evacuation of its local sections);
  2. after a random delay, injects one fault into one component:
     SIGKILL (then a restart with the same arguments and addresses) or
     SIGSTOP (then SIGCONT after a random hold) of a memory node, a
     compute agent or the orchestrator, or SIGKILL of a slot's QEMU; a
     partition of the memory node in its own network namespace; or
     (memnode-lose, once per cluster) SIGKILL for good of a memory node
     that holds replicas of the replicated slot `r` (--replicas 2) and no
     section of another slot: `r` runs on and is repaired elsewhere;
  3. waits for the operation's answer and for every slot to settle;
  4. checks the invariants:
     - a slot shown `running` answers PING within 5 s;
     - the guest's memory is right byte for byte (VERIFY of both regions,
       0 mismatches), or the slot is `failed`/`lost` with a reason (it is
       then deleted and created again);
     - no section is held by two slots;
     - no section leaks: each memory node's own list (SECTION_LIST over the
       fabric) equals the orchestrator's list for that node.

The random choices come from the seed, so a seed names a run. Results
(one line per injection, and a fault x outcome table) go to --json and to
standard output. The exit status is 1 if any invariant was violated.

    tests/chaos/chaos.py --seeds 1,2,3 --per-seed 5 --json out.json
"""
import argparse
import collections
import json
import os
import re
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "functional"))

import authkit  # noqa: E402
import dproto  # noqa: E402

OPS = ["none", "resize", "migrate", "migrate-memory"]
FAULTS = ["memnode-kill", "memnode-stop", "agent-kill", "agent-stop",
          "orchestrator-kill", "orchestrator-stop", "qemu-kill", "partition", "memnode-lose"]
SETTLED = ("running", "degraded", "failed", "lost")
SLOTS = {"a": ["--memory", "512M", "--cache", "128M"],
         "b": ["--memory", "384M", "--remote", "67"],
         # Replicated far memory (docs/replication.md): created after the
         # namespace's memory node joined, so that node holds replicas only.
         "r": ["--memory", "384M", "--cache", "96M", "--replicas", "2"]}
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")
MB1, MB2 = 64, 32          # guest regions 1 (REWRITE/VERIFY) and 2 (WRITELOOP)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Cluster:
    def __init__(self, data, bindir):
        self.data, self.bin = pathlib.Path(data), pathlib.Path(bindir)
        self.env = dict(os.environ, DISAGG_DATA=str(self.data))
        self.argv = {}     # component name -> argv (with fixed addresses)
        self.started = []  # processes this harness restarted
        self.key = None
        self.extra_memnodes = []   # not in cluster.json (the partitionable one)
        self.lost = set()          # memory nodes lost for good (memnode-lose)

    def disagg(self, *args, timeout=300, check=True):
        try:
            p = subprocess.run([str(self.bin / "disagg"), *args], env=self.env,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise
            return subprocess.CompletedProcess(args, 124, "", "timed out")
        if check and p.returncode != 0:
            raise RuntimeError(f"disagg {' '.join(args)} -> {p.returncode}: "
                               f"{p.stdout}{p.stderr}")
        return p

    def json(self, *args, timeout=60):
        return json.loads(self.disagg("--json", *args, timeout=timeout).stdout)

    def info(self):
        return json.loads((self.data / "cluster.json").read_text())

    def comps(self, kind=None):
        return [c for c in self.info()["components"] if kind in (None, c["kind"])]

    def comp(self, name):
        return next(c for c in self.comps() if c["name"] == name)

    def up(self, address="127.0.0.1"):
        self.disagg("up", "--memnodes", "3", "--computes", "2", "--pool", "1G",
                    "--persistent", "--accel", os.environ.get("DISAGG_ACCEL", "tcg"),
                    "--address", address, timeout=300)
        self.key = dproto.load_keys(self.data / "cluster.key")   # grant.key beside it
        for c in self.comps():
            with open(f"/proc/{c['pid']}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
            # Restarts keep the addresses: grants and the other nodes name them.
            for flag, key in (("--listen", "addr"), ("--http", "http")):
                if flag in argv and c.get(key):
                    argv[argv.index(flag) + 1] = c[key]
            self.argv[c["name"]] = argv

    def set_pid(self, name, pid):
        """Record a restarted component's pid and start time, so that
        `disagg down` stops it (it checks both: a pid alone may be reused)."""
        path = self.data / "cluster.json"
        info = json.loads(path.read_text())
        with open(f"/proc/{pid}/stat") as f:
            starttime = int(f.read().rsplit(")", 1)[1].split()[19])
        for c in info["components"]:
            if c["name"] == name:
                c["pid"] = pid
                c["starttime"] = starttime
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)

    def restart(self, name):
        """Start a killed component again; wait until it answers and registered."""
        logf = open(self.data / "logs" / f"{name}.log", "a")
        p = subprocess.Popen(self.argv[name], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append(p)
        self.set_pid(name, p.pid)
        http = self.comp(name)["http"]
        end = time.time() + 60
        while time.time() < end and p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://{http}/healthz", timeout=2):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        time.sleep(1.0)   # its registration (or the nodes' next heartbeats)
        return p

    def qemus(self):
        """The pids of the QEMUs of this cluster (their command line names its directory)."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            if argv and b"qemu-system" in argv[0] and \
                    any(str(self.data).encode() in a for a in argv):
                out.append(int(pid))
        return out

    def down(self):
        """Stop the cluster. Returns the QEMUs of this cluster that were
        still running afterwards (killed now): `disagg down` stops every
        agent it knows, and they stop their VMs, so there must be none."""
        self.disagg("down", timeout=180, check=False)
        left = self.qemus()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.started:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        return left

    def guest(self, slot, cmd, timeout=120):
        p = self.disagg("slot", "guest", slot, cmd, timeout=timeout, check=False)
        return p.returncode, (p.stdout + p.stderr).strip()

    def slots(self):
        return {s["name"]: self.json("slot", "show", s["name"])
                for s in self.json("slot", "ls")["slots"]}

    def add_partitionable_memnode(self, ns):
        """Start memory node 103 inside `ns`. The rest of the cluster runs
        on the host's end of the veth (up(address=...)), so that node 103
        reaches every daemon as they reach each other: the orchestrator,
        and the other memory nodes it copies sections to (memory migration,
        repair of a replica)."""
        port = self.comp("orchestrator")["http"].rsplit(":", 1)[1]
        argv = list(self.argv["memnode-100"])
        cert, key = self.tls_cert(103, "memory")
        cred = self.data / "node-103.cred"      # its own API credential (disagg up's secret)
        if not cred.exists():
            subprocess.run([str(self.bin / "disagg-grant"), "--node-secret",
                            str(self.data / "node.secret"), "--node", "103",
                            "--node-credential", str(cred)], check=True, capture_output=True)
        for flag, val in (("--node-id", "103"), ("--listen", f"{ns.net}.2:7300"),
                          ("--tls-cert", cert), ("--tls-key", key),
                          ("--node-credential", str(cred)),
                          ("--state-dir", f"{self.data}/memnode-103.state"),
                          ("--http", f"{ns.net}.2:7301"),
                          ("--backing", f"file:{self.data}/memnode-103.pool"),
                          ("--orchestrator", f"http://{ns.net}.1:{port}")):
            argv[argv.index(flag) + 1] = val
        logf = open(self.data / "logs" / "memnode-103.log", "a")
        p = subprocess.Popen(["ip", "netns", "exec", ns.name] + argv, stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.started.append(p)
        self.extra_memnodes = [{"name": "memnode-103", "node_id": 103, "kind": "memnode",
                                "addr": f"{ns.net}.2:7300", "pid": p.pid}]
        end = time.time() + 60
        while time.time() < end:
            nodes = {n["node_id"]: n for n in self.json("node", "ls")["nodes"]}
            if nodes.get(103, {}).get("state") == "up":
                return True
            time.sleep(0.2)
        raise RuntimeError("memory node 103 (in its namespace) did not register")

    def tls_cert(self, node_id, role):
        """A certificate of the cluster's CA (disagg up's DIR/tls) for node_id."""
        cert = self.data / "tls" / f"chaos-{role}-{node_id}.pem"
        key = self.data / "tls" / f"chaos-{role}-{node_id}.key"
        if not cert.exists():
            subprocess.run([str(self.bin / "disagg-cert"), "--ca", str(self.data / "tls"),
                            "--issue", str(node_id), "--role", role, "--cert", str(cert),
                            "--key", str(key)], check=True, capture_output=True)
        return str(cert), str(key)

    def memnode_sections(self, c):
        ctx = dproto.tls_context(str(self.data / "tls" / "ca.pem"),
                                 *self.tls_cert(900, "orchestrator"))
        conn = dproto.Conn(c["addr"], timeout=10.0, tls=ctx).login(self.key, 900)
        try:
            return {(sec, gen) for sec, gen, _ in conn.list()}
        finally:
            conn.close()


class Netns:
    """A memory node of its own behind a veth pair, so that the network
    between it and the rest of the cluster can be cut (partition) and
    healed. Created and removed by the harness; traffic stays on the veth."""

    def __init__(self, tag):
        self.name, self.host, self.peer = f"dgc{tag}", f"dgch{tag}", f"dgcn{tag}"
        self.net = f"10.199.{tag % 250}"
        self.ok = False

    def ip(self, *args, ns=False):
        argv = (["ip", "netns", "exec", self.name, "ip"] if ns else ["ip"]) + list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def create(self):
        if not shutil.which("ip"):
            return False
        steps = [(("netns", "add", self.name), False),
                 (("link", "add", self.host, "type", "veth", "peer", "name", self.peer), False),
                 (("link", "set", self.peer, "netns", self.name), False),
                 (("addr", "add", f"{self.net}.1/24", "dev", self.host), False),
                 (("link", "set", self.host, "up"), False),
                 (("addr", "add", f"{self.net}.2/24", "dev", self.peer), True),
                 (("link", "set", self.peer, "up"), True),
                 (("link", "set", "lo", "up"), True)]
        for args, ns in steps:
            p = self.ip(*args, ns=ns)
            if p.returncode != 0:
                log(f"no network namespace for partitions: ip {' '.join(args)}: {p.stderr}")
                self.remove()
                return False
        self.ok = True
        return True

    def cut(self):
        # The namespace's end goes down: the host's end loses its carrier
        # but keeps its route, so packets to the node are dropped (a
        # partition: no answer at all). Taking the host's end down would
        # remove the route and send them to the default route instead.
        return self.ip("link", "set", self.peer, "down", ns=True).returncode == 0

    def heal(self):
        self.ip("link", "set", self.peer, "up", ns=True)

    def remove(self):
        self.ip("link", "del", self.host)
        self.ip("netns", "del", self.name)


def redundant(slot):
    """A slot with all its replicas in (one without replicas is)."""
    return (slot.get("redundancy") or {}).get("state", "ok") == "ok"


def out_replicas(slot):
    """The replicas that are not in (replica 0's state is its section's)."""
    out = []
    for x in slot.get("sections", []):
        first = {"replica": 0, "memnode": x.get("memnode"), "state": x.get("state", "in"),
                 "reason": x.get("reason", "")}
        for r in [first] + x.get("replicas", []):
            if r.get("state", "in") != "in":
                out.append(f"section {x.get('index')} replica {r.get('replica')} on memory "
                           f"node {r.get('memnode')}: {r.get('state')} ({r.get('reason', '')})")
    return "; ".join(out) or "no replica named"


class Chaos:
    def __init__(self, c, seed, log_json, ns=None):
        self.c, self.rng, self.seed, self.out = c, random.Random(seed), seed, log_json
        self.ns = ns
        self.faults = FAULTS
        self.seeds = {}

    # ---- slots and workload ------------------------------------------------
    def create(self, name):
        self.c.disagg("slot", "create", name, "--vcpus", "1", *SLOTS[name], timeout=300)
        s = self.rng.randrange(1, 1 << 30)
        for cmd in (f"FILL 1 {s} {MB1}", f"FILL 2 {s + 1} {MB2}", "WRITELOOP 2 8"):
            rc, out = self.c.guest(name, cmd)
            if rc != 0:
                raise RuntimeError(f"slot {name}: {cmd}: {out}")

    def recreate(self, name):
        self.c.disagg("slot", "delete", name, timeout=300, check=False)
        if name in self.c.slots():
            raise RuntimeError(f"slot {name} cannot be deleted")
        self.create(name)

    def rewrite_loop(self, name, stop, errors, rng):
        while not stop.is_set():
            rc, out = self.c.guest(name, f"REWRITE 1 {rng.randrange(1, 1 << 30)}",
                                   timeout=60)
            if rc == 0:
                rc, out = self.c.guest(name, "VERIFY 1", timeout=60)
                if rc == 0 and "mismatches=0" not in out:
                    errors.append(f"{name}: VERIFY during the step: {out}")
            if rc != 0:
                time.sleep(0.3)   # a component is down: try again

    # ---- one injection -----------------------------------------------------
    def operation(self, op, name, result):
        c, s = self.c, self.c.slots().get(name)
        try:
            if op == "none" or not s or s["state"] != "running":
                result["rc"] = 0
                return
            if op == "resize":
                mem = s["memory"] >> 20
                new = mem + 128 if mem <= 512 or self.rng.random() < 0.5 else mem - 128
                p = c.disagg("slot", "resize", name, "--memory", f"{new}M", check=False)
            elif op == "migrate":
                dst = next(x["node_id"] for x in c.comps("compute")
                           if x["node_id"] != s["compute"])
                p = c.disagg("slot", "migrate", name, "--to", str(dst), check=False)
            else:
                nodes = sorted({x["memnode"] for x in s["sections"] if x["kind"] == "remote"})
                if not nodes:
                    result["rc"] = 0
                    return
                frm = self.rng.choice(nodes)
                to = self.rng.choice([x["node_id"] for x in c.comps("memnode")
                                      if x["node_id"] != frm and x["node_id"] not in c.lost])
                p = c.disagg("slot", "migrate-memory", name, "--from", str(frm), "--to",
                             str(to), check=False)
            result["rc"], result["out"] = p.returncode, (p.stdout + p.stderr)[-400:]
        except Exception as e:  # noqa: BLE001 - recorded
            result["rc"], result["out"] = -1, repr(e)

    def victim(self, fault, name):
        c = self.c
        if fault.startswith("memnode"):
            return self.rng.choice([x for x in c.comps("memnode") if x["node_id"] not in c.lost])
        if fault.startswith("agent"):
            s = c.slots().get(name)
            comps = c.comps("compute")
            if s:
                return next((x for x in comps if x["node_id"] == s.get("compute")), comps[0])
            return self.rng.choice(comps)
        return c.comp("orchestrator")

    def lose_victim(self):
        """A live memory node that holds sections of the replicated slot and
        none of an unreplicated one (its loss must be survivable), or None."""
        c = self.c
        secs = c.json("section", "ls")["sections"]
        unrep = {x["memnode"] for x in secs if x.get("slot") != "r"}
        rep = {x["memnode"] for x in secs if x.get("slot") == "r"}
        cands = [x for x in c.comps("memnode") + c.extra_memnodes
                 if x["node_id"] in rep and x["node_id"] not in unrep | c.lost]
        return self.rng.choice(cands) if cands else None

    def inject(self, fault, name, record):
        c = self.c
        if fault == "memnode-lose":
            # One memory node per cluster dies for good: the replicated slot
            # runs on, its replicas there are repaired elsewhere.
            comp = self.lose_victim() if not c.lost else None
            if not comp:
                record["victim"] = "none (no memory node holds only replicas, or one is lost)"
                return
            record["victim"] = comp["name"] + " (for good)"
            c.lost.add(comp["node_id"])
            os.kill(comp["pid"], signal.SIGKILL)
            return
        if fault == "partition":
            if not self.ns or not self.ns.ok:
                record["victim"] = "none (no network namespace here)"
                return
            record["victim"] = "memnode-103 <-> the rest"
            hold = self.rng.uniform(0.5, 6.0)
            record["hold_s"] = round(hold, 2)
            if self.ns.cut():
                time.sleep(hold)
            self.ns.heal()
            return
        if fault == "qemu-kill":
            s = c.slots().get(name)
            agent = next((x for x in c.comps("compute") if s and x["node_id"] == s["compute"]),
                         None)
            if not agent:
                return
            try:
                # The agent answers its orchestrator only: the orchestrator's token.
                auth = authkit.ClusterAuth(c.data, existing=True)
                req = urllib.request.Request(
                    f"http://{agent['http']}/v1/vms/{name}",
                    headers=auth.headers(auth.orch_token(agent["node_id"])))
                with urllib.request.urlopen(req, timeout=10) as r:
                    pid = json.loads(r.read())["pid"]
                os.kill(pid, signal.SIGKILL)
                record["victim"] = f"qemu {pid}"
            except Exception as e:  # noqa: BLE001 - the VM may be moving
                record["victim"] = f"qemu: not found ({e})"
            return
        comp = self.victim(fault, name)
        record["victim"] = comp["name"]
        if fault.endswith("kill"):
            os.kill(comp["pid"], signal.SIGKILL)
            time.sleep(self.rng.uniform(0.2, 3.0))
            c.restart(comp["name"])
        else:
            os.kill(comp["pid"], signal.SIGSTOP)
            hold = self.rng.uniform(0.5, 6.0)
            record["hold_s"] = round(hold, 2)
            time.sleep(hold)
            os.kill(comp["pid"], signal.SIGCONT)

    def settle(self, timeout=180):
        end = time.time() + timeout
        while time.time() < end:
            try:
                slots = self.c.slots()
                # Settled: no slot is degraded, and each replicated one is
                # back to all its replicas (repair has had its time).
                if all(s["state"] in SETTLED for s in slots.values()) and \
                        not any(s["state"] == "degraded" for s in slots.values()) and \
                        not any(s["state"] == "running" and not redundant(s)
                                for s in slots.values()):
                    return slots
            except Exception:  # noqa: BLE001 - the orchestrator may be restarting
                pass
            time.sleep(0.5)
        return self.c.slots()

    # ---- invariants ----------------------------------------------------------
    def check(self, record):
        c, bad = self.c, []
        slots = self.settle()
        record["states"] = {n: s["state"] for n, s in slots.items()}
        for name in SLOTS:
            s = slots.get(name)
            if not s:
                bad.append(f"slot {name} is gone without a delete")
                continue
            if s["state"] in ("failed", "lost"):
                if not s.get("reason"):
                    bad.append(f"slot {name} is {s['state']} without a reason")
                record.setdefault("recreated", []).append(name)
                continue
            if s["state"] != "running":
                bad.append(f"slot {name} stays {s['state']}: {s.get('reason')}")
                continue
            if not redundant(s):
                bad.append(f"slot {name} stays {s['redundancy'].get('text')}: "
                           f"{out_replicas(s)}")
            # Running: PING answers within 5 s, or the slot stops showing
            # `running` within those 5 s (a failure the orchestrator is
            # being told of; it must then carry a reason).
            t0, out = time.time(), ""
            while time.time() - t0 < 5:
                rc, out = c.guest(name, "PING", timeout=5)
                if rc == 0 and "pong" in out:
                    break
                s = c.json("slot", "show", name)
                if s["state"] != "running":
                    break
                time.sleep(0.2)
            if s["state"] in ("failed", "lost"):
                record["states"][name] = s["state"]
                if not s.get("reason"):
                    bad.append(f"slot {name} is {s['state']} without a reason")
                record.setdefault("recreated", []).append(name)
                continue
            if rc != 0 or "pong" not in out:
                bad.append(f"slot {name} is {s['state']} but PING failed for "
                           f"{time.time() - t0:.1f} s: {out}")
                continue
            for cmd in ("VERIFY 1", "STOP", "VERIFY 2", "WRITELOOP 2 8"):
                rc, out = c.guest(name, cmd)
                if cmd.startswith("VERIFY") and (rc != 0 or "mismatches=0" not in out):
                    bad.append(f"slot {name}: {cmd}: {out}")
        # No section in two slots; the memory nodes agree with the orchestrator.
        end = time.time() + 30
        while True:
            leak = []
            try:
                secs = c.json("section", "ls")["sections"]
                seen = collections.Counter((x["memnode"], x["section"]) for x in secs)
                leak += [f"section {k} held {n} times" for k, n in seen.items() if n > 1]
                for mn in c.comps("memnode") + c.extra_memnodes:
                    if mn["node_id"] in c.lost:
                        continue
                    mine = {(x["section"], x["generation"]) for x in secs
                            if x["memnode"] == mn["node_id"]}
                    theirs = c.memnode_sections(mn)
                    if mine != theirs:
                        leak.append(f"{mn['name']}: only on the node {sorted(theirs - mine)},"
                                    f" only in the orchestrator {sorted(mine - theirs)}")
            except Exception as e:  # noqa: BLE001 - retried
                leak.append(f"cannot list sections: {e!r}")
            # One QEMU per slot that has a VM: none left behind by a move,
            # a failed start or an agent restart.
            live = [n for n, x in slots.items() if x["state"] != "failed"]
            q = c.qemus()
            if len(q) > len(live):
                leak.append(f"{len(q)} QEMUs {q} for {len(live)} slots with a VM")
            if not leak or time.time() > end:
                break
            time.sleep(1)
        return bad + leak

    def step(self, i):
        op, fault = self.rng.choice(OPS), self.rng.choice(self.faults)
        name = self.rng.choice(list(SLOTS))
        delay = round(self.rng.uniform(0.0, 2.0), 2)
        record = {"seed": self.seed, "step": i, "op": op, "slot": name, "fault": fault,
                  "delay_s": delay}
        log(f"seed {self.seed} step {i}: {op} of {name}, {fault} after {delay} s")
        stop, errors, result = threading.Event(), [], {}
        w = threading.Thread(target=self.rewrite_loop, daemon=True,
                             args=(name, stop, errors, random.Random(self.rng.random())))
        o = threading.Thread(target=self.operation, args=(op, name, result), daemon=True)
        w.start()
        o.start()
        time.sleep(delay)
        self.inject(fault, name, record)
        o.join(600)
        stop.set()
        w.join(300)
        record["op_rc"] = result.get("rc")
        if result.get("rc"):
            record["op_out"] = result.get("out", "")[-300:]
        bad = errors + self.check(record)
        record["violations"] = bad
        record["outcome"] = "violation" if bad else (
            "recovered (slot failed, recreated)" if record.get("recreated") else
            "ok (operation failed cleanly)" if result.get("rc") else "ok")
        for name in record.get("recreated", []):
            self.recreate(name)
        log(f"  -> {record['outcome']}{': ' + '; '.join(bad) if bad else ''}")
        self.out.append(record)
        return not bad


def table(records):
    t = collections.defaultdict(collections.Counter)
    for r in records:
        t[r["fault"]][r["outcome"]] += 1
    outcomes = sorted({r["outcome"] for r in records})
    lines = ["| fault | " + " | ".join(outcomes) + " |",
             "|---|" + "---:|" * len(outcomes)]
    for f in FAULTS:
        if f in t:
            lines.append(f"| {f} | " + " | ".join(str(t[f][o]) for o in outcomes) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1", help="comma-separated seeds (one cluster each)")
    ap.add_argument("--per-seed", type=int, default=5, help="injections per seed")
    ap.add_argument("--json", help="write the records here")
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="comma-separated faults to choose from (default: all)")
    ap.add_argument("--data", help="cluster directory (default: a temporary one)")
    build = os.environ.get("DISAGG_BUILD")
    ap.add_argument("--bin", default=str(pathlib.Path(build) / "bin") if build
                    else str(ROOT / "build" / "bin"), help="where disagg and the daemons are")
    a = ap.parse_args()

    records, ok = [], True
    for seed in [int(s) for s in a.seeds.split(",") if s]:
        # On tmpfs, the agents keep their run directories inside it (disagg up).
        data = pathlib.Path(a.data or tempfile.mkdtemp(prefix="disagg-chaos-", dir="/dev/shm")) / f"seed-{seed}"
        shutil.rmtree(data, ignore_errors=True)
        c = Cluster(data, a.bin)
        ns = Netns(os.getpid() % 200 + seed % 50)
        ch = Chaos(c, seed, records, ns)
        ch.faults = [f for f in a.faults.split(",") if f in FAULTS] or FAULTS
        try:
            c.up(f"{ns.net}.1" if ns.create() else "127.0.0.1")
            for name in ("a", "b"):
                ch.create(name)
            if ns.ok:
                c.add_partitionable_memnode(ns)
            ch.create("r")
            for i in range(a.per_seed):
                ok &= ch.step(i)
        except Exception as e:  # noqa: BLE001 - a harness failure is a failure
            log(f"seed {seed}: harness stopped: {e!r}")
            records.append({"seed": seed, "outcome": "violation", "fault": "harness",
                            "violations": [repr(e)]})
            ok = False
        finally:
            left = c.down()
            ns.remove()
            if left:
                log(f"seed {seed}: QEMU {left} still running after disagg down")
                records.append({"seed": seed, "outcome": "violation", "fault": "harness",
                                "violations": [f"QEMU {left} still running after disagg down"]})
                ok = False
            for lf in sorted((data / "logs").glob("*.log")):
                text = lf.read_text(errors="replace")
                if SANITIZER_RE.search(text):
                    log(f"seed {seed}: sanitizer report in {lf}")
                    records.append({"seed": seed, "outcome": "violation", "fault": "harness",
                                    "violations": [f"sanitizer report in {lf.name}"]})
                    ok = False
            if a.json:
                pathlib.Path(a.json).write_text(json.dumps(records, indent=1))
        if not a.data and ok:
            shutil.rmtree(data.parent, ignore_errors=True)
    n = len(records)
    nbad = sum(r["outcome"] == "violation" for r in records)
    print(table(records))
    print(f"{n} injections, {nbad} with invariant violations; seeds {a.seeds}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
