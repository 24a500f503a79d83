# SPDX-License-Identifier: MIT
"""A slot's network card and console through the orchestrator, with fake
compute nodes (fakes.py, which answer as the real agent does and are held
to tests/schema/compute-agent.json).

The create request's "net" is checked, stored, sent to the compute node
at create and at compute migration (where the destination's own ssh port
replaces the source's), and shown; the console's output and input routes
reach the compute node; `disagg slot create --net`, `slot show`,
`slot ssh --json` and the piped `slot console` use them. A database from
before network cards is upgraded and its slots show no card.
"""
import json
import sqlite3

import pytest

from test_cli import cli_env, disagg
from test_orchestrator import (cluster, computes, fakemem, hb_factory, orch,  # noqa: F401
                               orch_factory)


def vm_create(c, name):
    (_, _, body), = [x for x in c.calls if x[:2] == ("POST", "/v1/vms") and
                     x[2]["name"] == name]
    return body


def test_net_at_create_and_migration(orch, fakemem, computes, hb_factory):
    _, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 1, "memory": "256M"})
    assert st == 201, s
    assert vm_create(c1, "web")["net"] == {"mode": "user"}
    net = s["net"]
    assert net == c1.vms["web"]["net"] and net["ssh"].startswith("127.0.0.1:"), net
    assert orch.call("GET", "/v1/slots/web")[1]["net"] == net

    st, ans = orch.call("POST", "/v1/slots/web/migrate", {"to": 11})
    assert st == 200, ans
    assert vm_create(c2, "web")["net"] == {"mode": "user"}
    moved = orch.call("GET", "/v1/slots/web")[1]["net"]
    assert moved == c2.vms["web"]["net"] and moved["ssh"] != net["ssh"], (net, moved)
    assert moved["mac"] == net["mac"]
    orch.restart()
    assert orch.call("GET", "/v1/slots/web")[1]["net"] == moved   # kept in the database

    st, s = orch.call("POST", "/v1/slots", {"name": "br", "vcpus": 1, "memory": "128M",
                                            "net": {"mode": "bridge", "bridge": "br0"}})
    assert st == 201 and s["net"]["mode"] == "bridge" and s["net"]["bridge"] == "br0", s
    assert vm_create(c1, "br")["net"] == {"mode": "bridge", "bridge": "br0"}
    st, s = orch.call("POST", "/v1/slots", {"name": "quiet", "vcpus": 1, "memory": "128M",
                                            "net": {"mode": "none"}})
    assert st == 201 and s["net"] == {"mode": "none"}, s
    for name in ("web", "br", "quiet"):
        assert orch.call("DELETE", f"/v1/slots/{name}")[0] == 204


@pytest.mark.parametrize("net", [
    "user", {"mode": "wifi"}, {"mode": "bridge"}, {"mode": "user", "bridge": "br0"},
    {"mode": "bridge", "bridge": "a/b"}, {"mode": "bridge", "bridge": "x" * 16},
    {"mode": "user", "mac": "52:54:00:00:00:01"},
])
def test_bad_net_is_refused(orch, fakemem, computes, hb_factory, net):
    _, (c1,) = cluster(orch, fakemem, computes, hb_factory)
    st, e = orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 1, "memory": "128M",
                                            "net": net})
    assert st == 400 and "\"net\"" in e["error"]["message"], e
    assert c1.vms == {} and fakemem.allocated() == 0


def test_console_routes(orch, fakemem, computes, hb_factory):
    _, (c1,) = cluster(orch, fakemem, computes, hb_factory)
    assert orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 1, "memory": "128M"})[0] == 201
    st, out = orch.call("GET", "/v1/slots/web/console/output")
    assert st == 200 and out["hex"] == "" and out["from"] == out["next"] > 0, out
    st, ans = orch.call("POST", "/v1/slots/web/console/input", {"hex": b"ls\r".hex()})
    assert st == 200 and ans == {"bytes": 3}, ans
    assert c1.console_input == [b"ls\r"]
    st, out2 = orch.call("GET", f"/v1/slots/web/console/output?from={out['next']}&wait_ms=100")
    assert st == 200 and bytes.fromhex(out2["hex"]) == b"ls\r\n", out2
    st, out3 = orch.call("GET", "/v1/slots/web/console/output?from=0")
    assert bytes.fromhex(out3["hex"]).startswith(b"console of web\n"), out3
    for q in ("from=x", "wait_ms=5001", "wait_ms=-1"):
        st, e = orch.call("GET", f"/v1/slots/web/console/output?{q}")
        assert st == 400, (q, e)
    assert orch.call("GET", "/v1/slots/nope/console/output")[0] == 404
    assert orch.call("GET", "/v1/slots/web/console/input")[0] == 405
    assert orch.call("DELETE", "/v1/slots/web")[0] == 204


def test_cli_net_ssh_console(orch, fakemem, computes, hb_factory):
    _, (c1,) = cluster(orch, fakemem, computes, hb_factory)
    env = cli_env(DISAGG_URL=f"http://{orch.addr}", DISAGG_TOKEN=orch.auth.token)
    disagg("slot", "create", "web", "--vcpus", "1", "--memory", "128M", "--net", "user",
           env=env, check_rc=0)
    net = orch.call("GET", "/v1/slots/web")[1]["net"]
    out = disagg("slot", "show", "web", env=env, check_rc=0).stdout
    assert f"network:        user, ssh {net['ssh']} (mac {net['mac']})" in out, out
    j = json.loads(disagg("--json", "slot", "ssh", "web", "--", "-v", "uptime",
                          env=env, check_rc=0).stdout)
    host, port = net["ssh"].rsplit(":", 1)
    assert j["argv"] == ["ssh", "-p", port, "-o", "HostKeyAlias=disagg-slot-web",
                         f"debian@{host}", "-v", "uptime"], j
    p = disagg("slot", "console", "web", env=env, check_rc=0)   # piped: the log
    assert p.stdout == "console of web\n", p.stdout
    p = disagg("slot", "console", "web", "-i", env=env, input="ls\n\x1d", check_rc=0)
    assert "Detached from the console of slot web" in p.stderr, p.stderr
    assert c1.console_input == [b"ls\n"], c1.console_input   # up to Ctrl-], not after
    for bad in ("bridge:", "tap", "bridge"):
        p = disagg("slot", "create", "x", "--vcpus", "1", "--memory", "128M", "--net", bad,
                   env=env, check_rc=2)
        assert "--net is user, bridge:BRIDGE or none" in p.stderr, p.stderr
    disagg("slot", "create", "quiet", "--vcpus", "1", "--memory", "128M", "--net", "none",
           env=env, check_rc=0)
    p = disagg("slot", "ssh", "quiet", env=env, check_rc=1)
    assert "slot quiet has no ssh forward: its network is none" in p.stderr, p.stderr
    disagg("slot", "delete", "web", env=env, check_rc=0)
    disagg("slot", "delete", "quiet", env=env, check_rc=0)


def test_database_from_before_cards(orch, fakemem, computes, hb_factory):
    cluster(orch, fakemem, computes, hb_factory)
    assert orch.call("POST", "/v1/slots", {"name": "old", "vcpus": 1, "memory": "128M"})[0] == 201
    orch.stop()
    db = sqlite3.connect(orch.db)
    db.execute("ALTER TABLE slots DROP COLUMN net")          # as a database of version 10
    db.execute("ALTER TABLE volumes DROP COLUMN kind")       # (version 12's)
    for t, c in (("slots", "replicas"), ("sections", "state"), ("sections", "reason")):
        db.execute(f"ALTER TABLE {t} DROP COLUMN {c}")   # nor replicas (version 13's)
    db.execute("PRAGMA user_version = 10")
    db.commit()
    db.close()
    orch.start()
    assert orch.call("GET", "/v1/slots/old")[1]["net"] == {"mode": "none"}
    assert orch.call("DELETE", "/v1/slots/old")[0] == 204
