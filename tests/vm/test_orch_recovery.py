# SPDX-License-Identifier: MIT
"""The orchestrator's recovery and retry paths against a real disagg-compute
(`disagg up --memnodes 2 --computes 1`, a real guest under TCG).

The orchestrator reaches the compute agent through a small HTTP proxy of
the test (the compute node is registered again with the proxy's address),
which forwards every request to the real agent and can keep or drop an
answer after the agent acted on it. So a memory migration is stopped for
real at the worst step: the agent has committed (it serves the section
from the new memory node), the orchestrator has not heard it.

1. Restart: the orchestrator is killed while the proxy holds the commit's
   answer, then started again: recovery must keep the section the agent
   uses and free the other one.
2. Retry: the commit's answers are lost (twice), and the agent does not
   answer the questions after it either: the orchestrator keeps both
   sections and marks the slot `unresolved`; once the agent answers again
   the orchestrator asks it by itself and frees only the section it does
   not use.

Each time the outcome is judged by the real agent's own answer (GET
/v1/vms/NAME, directly) and the memory nodes' own section lists, and the
guest's memory must verify. Every answer of the agent that the
orchestrator read through the proxy is checked against
tests/schema/compute-agent.json, which the fake agent of the functional
tests is held to as well.
"""
import http.client as httpclient
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import agentschema
import dproto
from test_cluster import Cluster, alive, need_vm_host
from test_migration_cluster import TOKENS, http


class AgentProxy:
    """HTTP between the orchestrator and one agent. `rule(method, path, body)`
    says what to do with a request: "pass"; "hold" (forward it, keep the
    answer until the test ends: `held` is set); "lose" (forward it, hang up
    without the answer); "none" (hang up, nothing forwarded: the agent
    seems gone). `problems` collects answers that do not fit the schema."""

    def __init__(self, agent_http):
        self.agent = agent_http
        self.rule = lambda method, path, body: "pass"
        self.held, self.release = threading.Event(), threading.Event()
        self.problems, self.log = [], []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n) if n else None
                act = proxy.rule(self.command, self.path, json.loads(data) if data else None)
                proxy.log.append([self.command, self.path, act])
                if act == "none":
                    self.close_connection = True
                    return
                host, port = proxy.agent.rsplit(":", 1)
                conn = httpclient.HTTPConnection(host, int(port), timeout=600)
                try:
                    # The orchestrator's token for the agent, passed on.
                    conn.request(self.command, self.path, body=data,
                                 headers={"Content-Type": "application/json",
                                          "Authorization":
                                          self.headers.get("Authorization", "")})
                    r = conn.getresponse()
                    answer = r.read()
                finally:
                    conn.close()
                proxy.log[-1].append(r.status)
                if answer and r.getheader("Content-Type", "").startswith("application/json"):
                    proxy.problems += agentschema.check_answer(self.command, self.path,
                                                               r.status, json.loads(answer))
                if act == "hold":
                    proxy.held.set()
                    proxy.release.wait()
                if act in ("hold", "lose"):
                    self.close_connection = True
                    return
                self.send_response(r.status)
                self.send_header("Content-Type", r.getheader("Content-Type") or "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = "%s:%d" % self.server.server_address[:2]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cluster(tmp_path):
    need_vm_host()
    # On tmpfs, so that `disagg up` gives the agent a run directory of its
    # own (DIR/run) instead of /dev/shm/disagg-compute-1, which another
    # cluster on this machine may use at the same time.
    data = pathlib.Path(tempfile.mkdtemp(prefix="disagg-orch-recovery-", dir="/dev/shm"))
    c = Cluster(data)
    c.disagg("up", "--memnodes", "2", "--computes", "1", "--pool", "1G",
             "--accel", "tcg", timeout=180)
    comps = c.info()["components"]
    TOKENS.update({x["http"]: c.token_for(x["http"]) for x in comps if x.get("http")})
    c.extra = []                 # what the test starts: orchestrators, the proxy
    try:
        yield c
    finally:
        for p in c.extra:
            if isinstance(p, AgentProxy):
                p.close()
            elif p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        c.disagg("down", check=False, timeout=120)
        time.sleep(0.2)
        shutil.copytree(data / "logs", tmp_path / "logs", dirs_exist_ok=True)
        try:
            for x in comps:
                if alive(x["pid"]) and x["name"] != "orchestrator":
                    os.kill(x["pid"], signal.SIGKILL)
                    raise AssertionError(f"{x['name']} (pid {x['pid']}) survived disagg down")
            c.logs_clean()
        finally:
            shutil.rmtree(data, ignore_errors=True)


def orch_addr(c):
    return c.component("orchestrator")["http"]


def through_proxy(c, agent):
    """Register the compute node again, with a proxy's address as its API."""
    proxy = AgentProxy(agent["http"])
    c.extra.append(proxy)
    node = http(orch_addr(c), "GET", f"/v1/nodes/{agent['node_id']}")[1]
    st, ans = http(orch_addr(c), "POST", "/v1/nodes/register",
                   {"node_id": agent["node_id"], "kind": "compute", "name": agent["name"],
                    "http": proxy.addr, "vcpus": node["vcpus"]},
                   token=c.auth().node_token(agent["node_id"]))   # as the node itself
    assert st == 200, ans
    return proxy


def agent_view(agent, name="web"):
    """(memnode, section, generation) of each remote section, as the real agent says."""
    st, vm = http(agent["http"], "GET", f"/v1/vms/{name}", timeout=30)
    assert agentschema.check_answer("GET", f"/v1/vms/{name}", st, vm) == []
    assert st == 200, vm
    return [where(x) for x in vm["sections"] + vm["hot_sections"] if x["kind"] == "remote"]


def where(x):
    return (x["memnode"], x["section"], x["generation"])


def memnode_sections(c, node):
    """(memnode, section, generation) the memory node itself has allocated."""
    m = c.component(f"memnode-{node}")
    tls = c.data / "tls"
    cert, key = tls / "lister-9999.pem", tls / "lister-9999.key"
    if not cert.exists():    # an orchestrator-role certificate of the cluster's CA for id 9999
        subprocess.run([str(c.bin / "disagg-cert"), "--ca", str(tls), "--issue", "9999", "--role",
                        "orchestrator", "--cert", str(cert), "--key", str(key)],
                       check=True, capture_output=True)
    ctx = dproto.tls_context(str(tls / "ca.pem"), str(cert), str(key))
    with dproto.Conn(m["addr"], tls=ctx) as conn:
        conn.login(dproto.load_keys(c.data / "cluster.key"), 9999)   # grant.key beside it
        return {(node, sec, gen) for sec, gen, _owner in conn.list()}


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while not pred():
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def restart_orchestrator(c):
    """Kill the orchestrator and start it again on its address and database;
    returns once it listens (its restart recovery is done)."""
    orch = c.component("orchestrator")
    procs = [p for p in c.extra if isinstance(p, subprocess.Popen)]
    if procs:
        procs[-1].kill()
        procs[-1].wait(30)
    else:
        os.kill(orch["pid"], signal.SIGKILL)
        wait_until(lambda: not alive(orch["pid"]), 30, "the orchestrator to die")
    log = open(c.data / "logs" / f"orchestrator-{len(procs) + 1}.log", "ab")
    p = subprocess.Popen([str(c.bin / "disagg-orchestrator"), "--http", orch["http"], "--db",
                          str(c.data / "orchestrator.db"), "--key", str(c.data / "cluster.key"),
                          "--grant-key", str(c.data / "grant.key"), "--node-id", "1000",
                          "--api-tokens", str(c.data / "api.tokens"),
                          "--node-secret", str(c.data / "node.secret"),
                          "--tls-ca", str(c.data / "tls" / "ca.pem"),
                          "--tls-cert", str(c.data / "tls" / "orchestrator.pem"),
                          "--tls-key", str(c.data / "tls" / "orchestrator.key")],
                         stdout=subprocess.PIPE, stderr=log)
    c.extra.append(p)
    assert b"listening on" in p.stdout.readline()


def migrate_memory(c, body, out):
    """POST migrate-memory in a thread; out["r"]: (status, answer), or the
    exception when the orchestrator is killed under it."""
    def run():
        try:
            out["r"] = http(orch_addr(c), "POST", "/v1/slots/web/migrate-memory", body,
                            timeout=600)
        except OSError as e:
            out["r"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def is_commit(method, path, body):
    return path.endswith("/sections/migrate") and (body or {}).get("phase") == "commit"


def events(c):
    out = c.disagg("--json", "events", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def verify(agent, name="web"):
    st, ans = http(agent["http"], "POST", f"/v1/vms/{name}/guest",
                   {"command": "VERIFY 1", "timeout_ms": 300000}, timeout=360)
    assert st == 200 and ans["ok"] and "mismatches=0" in ans["reply"], ans


def test_recovery_and_retry_against_the_agent(cluster):
    c = cluster
    c.disagg("slot", "create", "web", "--vcpus", "1", "--memory", "384M", "--policy", "pack",
             "--cache", "64M", timeout=300)
    s = c.json("slot", "show", "web")
    assert s["state"] == "running" and all(x["kind"] == "remote" for x in s["sections"])
    frm = s["sections"][0]["memnode"]
    to = next(n for n in (100, 101) if n != frm)
    assert c.guest("web", "FILL 1 5 200")[0] == 0          # spans every section
    agent = c.component("compute-1")
    assert agent_view(agent) == [where(x) for x in s["sections"]]
    proxy = through_proxy(c, agent)

    # 1. The agent commits; its answer is held; the orchestrator dies.
    proxy.rule = lambda m, p, b: "hold" if is_commit(m, p, b) else "pass"
    old, out = s["sections"][0], {}
    migrate_memory(c, {"from": frm, "to": to, "section": 0}, out)
    assert proxy.held.wait(120), (proxy.log, out)
    new = agent_view(agent)[0]
    assert new[0] == to and new in memnode_sections(c, to)
    assert where(old) in memnode_sections(c, frm)
    proxy.rule = lambda m, p, b: "pass"
    restart_orchestrator(c)
    s2 = c.json("slot", "show", "web")
    assert s2["state"] == "running", s2
    assert [where(x) for x in s2["sections"]] == agent_view(agent)
    assert where(s2["sections"][0]) == new
    assert new in memnode_sections(c, to)                   # the live section is kept
    assert where(old) not in memnode_sections(c, frm)       # the one it left is freed
    assert {where(x) for x in s2["sections"][1:]} <= memnode_sections(c, frm)
    recovered = [e for e in events(c) if e["kind"] == "slot_recovered"]
    assert recovered and "had moved" in recovered[-1]["message"], recovered
    verify(agent)

    # 2. The agent commits, but its answers are lost, twice; then it seems
    # gone: nothing is freed, the slot is unresolved.
    committed = threading.Event()

    def lost_then_gone(m, p, b):
        if is_commit(m, p, b):
            committed.set()
            return "lose"
        return "none" if committed.is_set() else "pass"
    proxy.rule = lost_then_gone
    old, out = s2["sections"][1], {}
    migrate_memory(c, {"from": frm, "to": to, "section": 1}, out)
    wait_until(lambda: "r" in out, 120, "the orchestrator's answer")
    st, ans = out["r"]
    assert st == 503 and ans["error"]["code"] == "migration_unresolved", ans
    s3 = c.json("slot", "show", "web")
    assert s3["state"] == "unresolved" and s3["sections"][1] == old, s3
    target = s3["migration"]["dst"]
    assert agent_view(agent)[1] == where(target)            # the agent switched
    assert where(target) in memnode_sections(c, to)         # both kept
    assert where(old) in memnode_sections(c, frm)
    time.sleep(3)                                           # asked again: no answer
    assert c.json("slot", "show", "web")["state"] == "unresolved"
    assert [x[2] for x in proxy.log].count("lose") >= 2

    # The agent answers again: the orchestrator asks it and settles the slot.
    proxy.rule = lambda m, p, b: "pass"
    wait_until(lambda: c.json("slot", "show", "web")["state"] != "unresolved", 60,
               "the slot to be settled")
    s4 = c.json("slot", "show", "web")
    assert s4["state"] == "running", s4
    assert [where(x) for x in s4["sections"]] == agent_view(agent)
    assert where(s4["sections"][1]) == where(target)
    assert where(target) in memnode_sections(c, to)
    assert where(old) not in memnode_sections(c, frm)
    assert "migration_resolved" in [e["kind"] for e in events(c)]
    verify(agent)
    assert proxy.problems == []

    c.disagg("slot", "delete", "web", timeout=120)
    assert memnode_sections(c, frm) == set() and memnode_sections(c, to) == set()
