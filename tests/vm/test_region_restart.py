# SPDX-License-Identifier: MIT
"""A strict shared region whose home memory node is killed (SIGKILL) and
started again on its persistent pool while two guests on two compute nodes
count in it (`disagg up --persistent --computes 2`; docs/sharing.md,
"Failure").

Each guest adds ITERS to one counter under a test-and-set spinlock in the
region. The memory node dies in the middle. The guests' accesses to the
region wait; the agents keep the pages they owned and had changed, attach
again to the restarted node, hand those pages back (DIR_RECLAIM) within
its grace period, and the count goes on. Exactly 2 * ITERS at the end:
no increment was lost and none was counted twice.

Then guest a stores a word and the node dies at once, before a's
background write-back: after the restart guest b reads that word. The
memory node reports the page it took back.

test_exclusive_and_release_survive_a_memnode_restart: the other two
modes. A locks an exclusive region and fills it, the node dies and comes
back, A unlocks (its write-back waits for the node), B locks and
verifies; A fills a release region without releasing, the node dies and
comes back, A releases and B acquires and verifies. The restart loses
nothing either guest wrote.

Last, the node dies with a recall answer unread: b reads a page that a
wrote while a's agent is frozen (SIGSTOP), so the recall waits in a's
socket; the node is frozen, a thawed, and a answers quietly (no reply
comes for a recall answer the node takes) into the frozen node's socket.
The node is killed and started again: a never saw its answer confirmed,
hands the page back as given up in a recall, and b reads a's store.

test_strict_writes_survive_an_agent_restart and
test_release_writes_survive_an_agent_restart: a compute agent is killed
(SIGKILL; its QEMU runs on) and started again; what its guest wrote and
had not published is not lost.

test_a_gone_release_slot_is_fenced_out: a release region's user whose
compute agent is killed becomes lost; its detach fences it out. The other
user's agent takes grants of the new epoch and its release lands; the
killed agent, started again, cannot publish what its guest wrote.
test_a_lost_lock_holder_is_read_only_at_its_return: an exclusive holder
whose agent is killed loses the lock (the lease); when its agent is back
the region is read-only in its VM again and its stale pages dropped.
"""
import threading
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from test_cluster import running
from test_migration_cluster import http
from test_region_cluster import guest_ok, wait_job, wait_seen
from test_region_memmig import attach_users, users

ITERS = 20000000


@pytest.fixture
def cluster(tmp_path):
    with running(tmp_path, "--memnodes", "1", "--computes", "2", "--pool", "1G",
                 "--persistent") as c:
        c.extra = []   # the memory nodes the test started again
        try:
            yield c
        finally:
            for p in c.extra:
                if p.poll() is None:
                    p.terminate()
                    p.wait(30)


def memnode_metric(c, mn, name):
    req = urllib.request.Request(f"http://{mn['http']}/metrics",
                                 headers={"Authorization": f"Bearer {c.token_for(mn['http'])}"})
    try:
        text = urllib.request.urlopen(req, timeout=10).read().decode()
    except OSError as e:
        # Which memory node process was it, and what did it say last?
        logs = sorted((c.data / "logs").glob("memnode-restarted-*.log"))
        last = logs[-1].read_text(errors="replace")[-3000:] if logs else "(none restarted)"
        alive = [(p.pid, p.poll()) for p in c.extra]
        raise AssertionError(f"{mn['http']}: {e}; restarted (pid, exit): {alive}; "
                             f"last log: {last}") from e
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def restart(c, pid, argv, n):
    """SIGKILL the memory node, and start it again 2 s later: the new pid."""
    os.kill(pid, signal.SIGKILL)
    time.sleep(2)
    log = open(c.data / "logs" / f"memnode-restarted-{n}.log", "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    c.extra.append(p)
    return p.pid


def progress(c, slot):
    j = guest_ok(c, slot, "RJOB")
    assert j.get("state") == "running", (slot, j)
    return int(j["progress"])


def agent_logs(c):
    return "".join(f.read_text(errors="replace") for f in (c.data / "logs").glob("*.log"))


def quiet_answer_lost(c, pci, mn, pid, argv):
    """b's read of a page a wrote; the node dies with a's answer unread."""
    guest_ok(c, "a", f"RPOKE {pci['a']} 12288 {0x5151}")
    end = time.time() + 60
    while (j := guest_ok(c, "a", "RJOB")).get("state") != "done":
        assert time.time() < end, "the poke did not finish"
        time.sleep(0.02)
    assert j.get("result") == "ok", j
    node_a = c.json("slot", "show", "a")["compute"]
    agent_a = next(x["pid"] for x in c.info()["components"]
                   if x["kind"] == "compute" and x["node_id"] == node_a)
    before = agent_logs(c).count("quiet recall answers not confirmed")
    got = {}
    os.kill(agent_a, signal.SIGSTOP)       # well within the 1 s of a's background write-back
    try:
        peek = threading.Thread(target=lambda: got.update(
            guest_ok(c, "b", f"RPEEK {pci['b']} 12288")))
        peek.start()
        time.sleep(0.3)                    # b faults; the node recalls the page from a
        os.kill(pid, signal.SIGSTOP)
    finally:
        os.kill(agent_a, signal.SIGCONT)
    time.sleep(1)                          # a answers, into the frozen node's socket
    restart(c, pid, argv, "3")
    peek.join(120)
    assert not peek.is_alive(), "b's read never came back"
    assert int(got["value"]) == 0x5151, got
    assert agent_logs(c).count("quiet recall answers not confirmed") > before
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0


def test_strict_counter_survives_a_memnode_restart(cluster):
    c = cluster
    pci = users(c, "strict", "st")
    mn, argv = memnode_argv(c)

    for name in ("a", "b"):
        guest_ok(c, name, f"RCOUNTER {pci[name]} {ITERS}")
    end = time.time() + 120
    while min(progress(c, "a"), progress(c, "b")) < 2000:
        assert time.time() < end, "the counters did not start"
        time.sleep(0.2)

    pid = restart(c, mn["pid"], argv, "1")
    ja, jb = wait_job(c, "a", timeout=600), wait_job(c, "b", timeout=600)
    assert max(int(ja["counter"]), int(jb["counter"])) == 2 * ITERS, (ja, jb)
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0
    assert memnode_metric(c, mn, "disagg_memnode_dir_grace_sections") == 0

    # A store that only a's copy holds when the node dies (the background
    # write-back waits a second): b reads it after the restart.
    guest_ok(c, "a", f"RPOKE {pci['a']} 8192 {0xabcdef}")
    end = time.time() + 60
    while (j := guest_ok(c, "a", "RJOB")).get("state") != "done":   # well within the 1 s
        assert time.time() < end, "the poke did not finish"
        time.sleep(0.02)
    assert j.get("result") == "ok", j
    pid = restart(c, pid, argv, "2")
    v = guest_ok(c, "b", f"RPEEK {pci['b']} 8192")
    assert int(v["value"]) == 0xabcdef, v
    assert memnode_metric(c, mn, "disagg_memnode_dir_reclaimed_pages_total") >= 1
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0
    agents = "".join(f.read_text(errors="replace") for f in (c.data / "logs").glob("*.log"))
    assert "handed back to the directory" in agents

    # The node dies with a's quiet answer unread (see the top).
    quiet_answer_lost(c, pci, mn, pid, argv)
    for name in ("a", "b"):
        c.disagg("region", "detach", "st", "--slot", name, timeout=120)
    c.disagg("region", "delete", "st")


PAGES = 256


def test_exclusive_and_release_survive_a_memnode_restart(cluster):
    c = cluster
    for name in ("a", "b"):
        c.disagg("slot", "create", name, "--vcpus", "2", "--memory", "256M", timeout=300)
    assert len({c.json("slot", "show", n)["compute"] for n in ("a", "b")}) == 2
    pci = {}
    for region, mode in (("ex", "exclusive"), ("rl", "release")):
        c.disagg("region", "create", region, "--size", "128M", "--mode", mode)
        for name in ("a", "b"):
            c.disagg("region", "attach", region, "--slot", name, timeout=120)
        pci[region] = {x["slot"]: x["pci"] for x in c.json("region", "show", region)["attachments"]}
        for name in ("a", "b"):
            wait_seen(c, name, pci[region][name])
    mn = next(x for x in c.info()["components"] if x["kind"] == "memnode")
    with open(f"/proc/{mn['pid']}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    argv[argv.index("--listen") + 1] = mn["addr"]
    argv[argv.index("--http") + 1] = mn["http"]

    # Exclusive: a's changes are only in its agent when the node dies.
    ex = pci["ex"]
    c.disagg("region", "lock", "ex", "--slot", "a")
    f = guest_ok(c, "a", f"RFILL {ex['a']} 611 {PAGES}")
    assert int(f["pages"]) == PAGES, f
    pid = restart(c, mn["pid"], argv, "1")
    c.disagg("region", "unlock", "ex", "--slot", "a", timeout=120)
    c.disagg("region", "lock", "ex", "--slot", "b", timeout=120)
    v = guest_ok(c, "b", f"RVERIFY {ex['b']} 611 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    c.disagg("region", "unlock", "ex", "--slot", "b", timeout=120)

    # Release: a's diffs are published after the restart.
    rl = pci["rl"]
    guest_ok(c, "a", f"RFILL {rl['a']} 612 {PAGES}")
    pid = restart(c, pid, argv, "2")
    out = c.disagg("region", "release", "rl", "--slot", "a", timeout=120).stdout
    assert f"({PAGES} pages published" in out, out
    c.disagg("region", "acquire", "rl", "--slot", "b", timeout=120)
    v = guest_ok(c, "b", f"RVERIFY {rl['b']} 612 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    for region in ("ex", "rl"):
        for name in ("a", "b"):
            c.disagg("region", "detach", region, "--slot", name, timeout=120)
        c.disagg("region", "delete", region)


def restart_agent(c, slot):
    """SIGKILL the compute agent of `slot` (its QEMU runs on) and start it
    again at once; back when the slot's guest answers."""
    on = c.json("slot", "show", slot)["compute"]
    agent = next(x for x in c.info()["components"] if x.get("node_id") == on)
    restarted = getattr(c, "restarted", {})   # name: the agent started again here
    pid = restarted[agent["name"]].pid if agent["name"] in restarted else agent["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    os.kill(pid, signal.SIGKILL)
    name = c.data / "logs" / f"{agent['name']}-restarted-{len(c.extra)}.log"
    log = open(name, "w")
    # Started at once: the new agent waits for the dying one's lock of the run directory.
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    log.close()
    c.extra.append(p)
    c.restarted = {**restarted, agent["name"]: p}
    end = time.time() + 120
    while c.guest(slot, "PING")[0] != 0:
        assert time.time() < end and p.poll() is None, open(name).read()[-2000:]
        time.sleep(0.5)
    return name


def poke(c, slot, pci, off, value):
    guest_ok(c, slot, f"RPOKE {pci} {off} {value}")
    end = time.time() + 60
    while (j := guest_ok(c, slot, "RJOB")).get("state") != "done":
        assert time.time() < end, "the poke did not finish"
        time.sleep(0.02)
    assert j.get("result") == "ok", j


def test_strict_writes_survive_an_agent_restart(cluster):
    """A strict region's pages that a's node owns survive a restart of a's
    compute agent (SIGKILL; QEMU runs on). The directory keeps them while
    a's agent is away (its recall channel closed); the restarted agent
    hands back what the region's file holds, and b reads a's stores. First
    a store made just before the kill (the background write-back waits a
    second), then the spinlocked counter, with a's agent killed in the
    middle: exactly 2 * N at the end. Before, the directory dropped a at
    the close, and a's unwritten stores were lost."""
    c = cluster
    pci = users(c, "strict", "sa")
    mn = next(x for x in c.info()["components"] if x["kind"] == "memnode")
    poke(c, "a", pci["a"], 8192, 0xabcdef)
    log = restart_agent(c, "a")
    got = guest_ok(c, "b", f"RPEEK {pci['b']} 8192")
    assert int(got["value"]) == 0xabcdef, (got, open(log).read()[-3000:])
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_back_total") == 1
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0
    assert "pages of its file to hand back to the directory" in open(log).read()

    n = 5 * ITERS
    for name in ("a", "b"):
        guest_ok(c, name, f"RCOUNTER {pci[name]} {n}")
    end = time.time() + 120
    while min(progress(c, "a"), progress(c, "b")) < 2000:
        assert time.time() < end, "the counters did not start"
        time.sleep(0.2)
    restart_agent(c, "a")
    ja, jb = wait_job(c, "a", timeout=600), wait_job(c, "b", timeout=600)
    assert max(int(ja["counter"]), int(jb["counter"])) == 2 * n, (ja, jb)
    lost = [x for x in open(mn["log"]).read().splitlines()
            if "dropped" in x or "did not answer" in x or "away" in x or "is back" in x]
    # Back, unless it held no page at the kill (then dropped at once, nothing lost).
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_back_total") in (1, 2), lost
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0, lost
    for name in ("a", "b"):
        c.disagg("region", "detach", "sa", "--slot", name, timeout=120)
    c.disagg("region", "delete", "sa")


def test_a_strict_region_keeps_its_holder_tag_across_an_agent_restart(cluster):
    """The directory knows a's place by (compute node, tag). a attaches t1
    (tag 1) then t2 (tag 2) and detaches t1: the restarted agent would give
    t2 tag 1, the lowest free, and the directory would take it for another
    holder, refuse what it hands back and keep waiting for tag 2. vm.json
    keeps t2's tag, and b reads a's store."""
    c = cluster
    users(c, "strict", "t1")
    pci = attach_users(c, "strict", "t2")
    c.disagg("region", "detach", "t1", "--slot", "a", timeout=120)
    poke(c, "a", pci["a"], 8192, 0x7a7a)
    mn = next(x for x in c.info()["components"] if x["kind"] == "memnode")
    log = restart_agent(c, "a")
    got = guest_ok(c, "b", f"RPEEK {pci['b']} 8192")
    assert int(got["value"]) == 0x7a7a, (got, open(log).read()[-3000:])
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0
    assert re.search(r"node \d+/2 attached again after its channel closed",
                     open(mn["log"]).read()), open(mn["log"]).read()[-3000:]


def memnode_argv(c):
    """The memory node, and the command line that starts it again as it was."""
    mn = next(x for x in c.info()["components"] if x["kind"] == "memnode")
    with open(f"/proc/{mn['pid']}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    argv[argv.index("--listen") + 1] = mn["addr"]     # the grants name these addresses
    argv[argv.index("--http") + 1] = mn["http"]
    return mn, argv


def test_strict_writes_survive_a_memnode_down_and_an_agent_restart(cluster):
    """Two failures at once: the memory node dies, a's agent keeps the page
    it owned and changed (on the region's answers file too), then a's
    agent dies before the node is back. The node comes back on its pool
    and waits for its holders; the restarted agent hands back what the
    dead one kept, and b reads a's store. Before, the kept pages were only
    in the dead agent's heap."""
    c = cluster
    pci = users(c, "strict", "sd")
    mn, argv = memnode_argv(c)
    poke(c, "a", pci["a"], 4096, 0x5d5d)
    before = agent_logs(c).count("changed ones kept to hand back")
    os.kill(mn["pid"], signal.SIGKILL)
    end = time.time() + 30
    while agent_logs(c).count("changed ones kept to hand back") <= before:
        assert time.time() < end, "a's agent never kept its pages"
        time.sleep(0.1)
    on_a = c.json("slot", "show", "a")["compute"]
    agent = next(x for x in c.info()["components"] if x.get("node_id") == on_a)
    with open(f"/proc/{agent['pid']}/cmdline", "rb") as f:
        agent_argv = [a.decode() for a in f.read().split(b"\0") if a]
    os.kill(agent["pid"], signal.SIGKILL)
    log = open(c.data / "logs" / "memnode-restarted-d.log", "w")
    c.extra.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
    log.close()
    name = c.data / "logs" / f"{agent['name']}-restarted-d.log"
    with open(name, "w") as log:
        p = subprocess.Popen(agent_argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    c.extra.append(p)
    c.restarted = {agent["name"]: p}
    got = guest_ok(c, "b", f"RPEEK {pci['b']} 4096")
    assert int(got["value"]) == 0x5d5d, (got, open(name).read()[-3000:])
    assert memnode_metric(c, mn, "disagg_memnode_dir_reclaimed_pages_total") >= 1
    assert memnode_metric(c, mn, "disagg_memnode_dir_holders_lost_total") == 0
    assert "pages of its file to hand back to the directory" in open(name).read()


def test_release_writes_survive_an_agent_restart(cluster):
    """A release region's writes that were not released yet survive a
    restart of their compute agent (SIGKILL; QEMU runs on): the twins are
    in a file of the VM's run directory (REGION.twins), so the restarted
    agent releases the same diffs. a and b write different bytes of the
    same pages; a's agent dies and comes back; both release and acquire,
    and each reads both halves. Before, the restarted agent dropped a's
    pages with its twins, and a's writes were lost."""
    c = cluster
    pci = users(c, "release", "rr")
    guest_ok(c, "a", f"RFILL {pci['a']} 713 {PAGES} lo")
    guest_ok(c, "b", f"RFILL {pci['b']} 713 {PAGES} hi")

    restart_agent(c, "a")

    out = c.disagg("region", "release", "rr", "--slot", "a", timeout=120).stdout
    assert f"({PAGES} pages published" in out, out
    c.disagg("region", "release", "rr", "--slot", "b", timeout=120)
    for name in ("a", "b"):
        c.disagg("region", "acquire", "rr", "--slot", name, timeout=120)
        v = guest_ok(c, name, f"RVERIFY {pci[name]} 713 {PAGES}")
        assert int(v["mismatches"]) == 0, (name, v)
    for name in ("a", "b"):
        c.disagg("region", "detach", "rr", "--slot", name, timeout=120)
    c.disagg("region", "delete", "rr")


def kill_agent(c, slot):
    """SIGKILL the compute agent of `slot` (its QEMU runs on): its node id,
    its cluster.json entry and its command line, to start it again."""
    on = c.json("slot", "show", slot)["compute"]
    agent = next(x for x in c.info()["components"] if x.get("node_id") == on)
    with open(f"/proc/{agent['pid']}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    os.kill(agent["pid"], signal.SIGKILL)
    return on, agent, argv


def start_again(c, agent, argv):
    """Start a killed agent again (kill_agent): its process."""
    log = open(c.data / "logs" / f"{agent['name']}-restarted-{len(c.extra)}.log", "w")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    log.close()
    c.extra.append(p)
    return p


def test_a_gone_release_slot_is_fenced_out(cluster):
    """Mode release: a and b write different halves of the same pages.
    a's compute agent is killed (its QEMU runs on) and slot a becomes
    lost; `region detach` fences it out at a new epoch, b's agent took
    read-write grants of it (the real agent's POST /grants), and b's
    release and acquire go through. a's agent, started again, still maps
    the region with its old grants: the orchestrator unplugs it, its
    release on the way is refused, and b never reads a's half."""
    c = cluster
    pci = users(c, "release", "rf")
    guest_ok(c, "a", f"RFILL {pci['a']} 41 {PAGES} lo")
    guest_ok(c, "b", f"RFILL {pci['b']} 41 {PAGES} hi")
    on, agent, argv = kill_agent(c, "a")
    end = time.time() + 90
    while c.json("slot", "show", "a")["state"] != "lost":
        assert time.time() < end, c.json("slot", "show", "a")
        time.sleep(0.5)
    epoch = c.json("region", "show", "rf")["epoch"]
    out = c.disagg("region", "detach", "rf", "--slot", "a", timeout=120).stdout
    assert out == (f"region rf detached from slot a; its VM is gone: fenced at epoch "
                   f"{epoch + 1}; new grants: b\n"), out
    out = c.disagg("region", "release", "rf", "--slot", "b", timeout=120).stdout
    assert f"({PAGES} pages published" in out, out
    c.disagg("region", "acquire", "rf", "--slot", "b", timeout=120)
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 41 {PAGES} hi")
    assert int(v["mismatches"]) == 0, v

    # a's agent comes back with a's VM, which still maps the region.
    p = start_again(c, agent, argv)
    end = time.time() + 120
    while c.guest("a", "PING")[0] != 0:
        assert time.time() < end and p.poll() is None
        time.sleep(0.5)
    # The monitor unplugs the region from a's VM: its agent's last release is refused.
    o = c.component("orchestrator")["http"]

    def unplugged():
        evs = http(o, "GET", "/v1/events?limit=1000", token=c.token_for(o))[1]["events"]
        return [e for e in evs if e["kind"] == "region_detached"
                and "unplugged from slot a at its return" in e["message"]]
    end = time.time() + 60
    while not (ev := unplugged()):
        assert time.time() < end, agent_logs(c)[-3000:]
        time.sleep(0.5)
    assert "fenced out" in ev[0]["message"], ev
    nodes = http(o, "GET", "/v1/nodes", token=c.token_for(o))[1]["nodes"]
    addr = next(n["http"] for n in nodes if n["node_id"] == on)
    st, ans = http(addr, "GET", "/v1/vms/a", token=c.auth().orch_token(on))
    assert st == 200 and ans["regions"] == [], (st, ans)
    end = time.time() + 60                   # guest a runs on, without the device
    while pci["a"] in guest_ok(c, "a", "REGIONS").get("regions", ""):
        assert time.time() < end, "guest a still sees the region"
        time.sleep(0.5)
    c.disagg("region", "acquire", "rf", "--slot", "b", timeout=120)
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 41 {PAGES} lo")
    assert int(v["mismatches"]) == PAGES, v
    v = guest_ok(c, "b", f"RVERIFY {pci['b']} 41 {PAGES} hi")
    assert int(v["mismatches"]) == 0, v
    c.disagg("region", "detach", "rf", "--slot", "b", timeout=120)
    c.disagg("region", "delete", "rf")


def test_a_lost_lock_holder_is_read_only_at_its_return(cluster):
    """Mode exclusive: a locks and fills the region; its compute agent is
    killed (its QEMU runs on), slot a becomes lost and the monitor takes
    the lock back (the lease). b locks, fills another pattern and
    unlocks. a's agent, started again, still holds the region writable
    with a's stale pages: the orchestrator makes it read-only and drops
    its cached pages (event region_demoted), so a's guest reads b's
    pattern, not its own."""
    c = cluster
    pci = users(c, "exclusive", "ex2")
    c.disagg("region", "lock", "ex2", "--slot", "a", timeout=120)
    guest_ok(c, "a", f"RFILL {pci['a']} 51 {PAGES}")
    on, agent, argv = kill_agent(c, "a")
    end = time.time() + 90
    while c.json("region", "show", "ex2")["holder"] is not None:
        assert time.time() < end, c.json("region", "show", "ex2")
        time.sleep(0.5)
    c.disagg("region", "lock", "ex2", "--slot", "b", timeout=120)
    guest_ok(c, "b", f"RFILL {pci['b']} 52 {PAGES}")
    c.disagg("region", "unlock", "ex2", "--slot", "b", timeout=120)

    p = start_again(c, agent, argv)
    o = c.component("orchestrator")["http"]

    def demoted():
        evs = http(o, "GET", "/v1/events?limit=1000", token=c.token_for(o))[1]["events"]
        return [e for e in evs if e["kind"] == "region_demoted" and e["slot"] == "a"]
    end = time.time() + 120
    while not demoted():
        assert time.time() < end and p.poll() is None, agent_logs(c)[-3000:]
        time.sleep(0.5)
    nodes = http(o, "GET", "/v1/nodes", token=c.token_for(o))[1]["nodes"]
    addr = next(n["http"] for n in nodes if n["node_id"] == on)
    st, ans = http(addr, "GET", "/v1/vms/a", token=c.auth().orch_token(on))
    assert st == 200 and [r["writable"] for r in ans["regions"]] == [False], (st, ans)
    v = guest_ok(c, "a", f"RVERIFY {pci['a']} 52 {PAGES}")
    assert int(v["mismatches"]) == 0, v
    for name in ("a", "b"):
        c.disagg("region", "detach", "ex2", "--slot", name, timeout=120)
    c.disagg("region", "delete", "ex2")
