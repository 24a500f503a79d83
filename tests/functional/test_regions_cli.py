# SPDX-License-Identifier: MIT
"""`disagg region ...` as users see it (docs/cli.md, "Shared regions"):
usage errors exit 2 before anything is sent; then every command against a
real orchestrator with a real memory node and fake compute agents (as in
test_regions.py): its line or table, --json, and the server's refusals
(exit 1 with the code)."""
import json
import re

import pytest

import fake_regions as fr
from dproto import wait_for
from test_cli import cli_env, disagg, table
from test_orchestrator import computes, hb_factory, orch, orch_factory  # noqa: F401
from test_regions import start

MiB = 1 << 20


@pytest.mark.parametrize("args, match", [
    (["region"], r"`disagg region` needs a subcommand"),
    (["region", "create"], r"needs NAME"),
    (["region", "create", "r1"], r"--size is required"),
    (["region", "create", "r1", "--size", "12X"], r"--size must be a size"),
    (["region", "create", "r1", "--size", "384M"], r"--size must be a power of two"),
    (["region", "create", "r1", "--size", "128M", "--mode", "weird"], r"--mode is exclusive, strict or release"),
    (["region", "attach", "r1"], r"--slot is required"),
    (["region", "lock", "r1", "--slot="], r"--slot is required"),
    (["region", "unlock", "r1", "b", "--slot", "a"], r"unexpected argument `b`"),
    (["region", "show"], r"needs NAME"),
    (["region", "detach", "r1", "--colour", "red"], r"unknown option --colour"),
    (["region", "migrate", "r1"], r"--to is required"),
    (["region", "migrate", "r1", "--to", "x"], r"--to"),
])
def test_usage_errors_exit_2(args, match):
    p = disagg("--url", "http://127.0.0.1:1", *args, check_rc=2)
    assert re.search(match, p.stderr), p.stderr
    assert "usage: disagg" in p.stderr and p.stdout == ""


def test_help_lists_the_region_commands():
    p = disagg("--help", check_rc=0)
    for cmd in ("region create", "region ls", "region show", "region attach",
                "region detach", "region lock", "region unlock", "region migrate",
                "region delete"):
        assert re.search(rf"^  {cmd}\s", p.stdout, re.M), (cmd, p.stdout)
    p = disagg("region", "create", "-h", check_rc=0)
    assert p.stdout.startswith("usage: disagg region create NAME --size SIZE")
    assert "region lock" in disagg("region", "--help", check_rc=0).stdout


def test_region_commands(orch, memnodes, computes, hb_factory):
    fr.LOG.clear()
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    env = cli_env(DISAGG_TOKEN=orch.auth.token)

    def cli(*args, rc=0):
        return disagg("--url", f"http://{orch.addr}", *args, env=env, check_rc=rc)

    p = cli("region", "ls")
    assert p.stdout == "" and "no regions" in p.stderr
    p = cli("region", "create", "r1", "--size", "256M")
    assert p.stdout == "region r1 created: 256M exclusive, 2 sections on memory node 101\n"
    p = cli("region", "create", "r1", "--size", "128M", rc=1)
    assert "region r1 exists (409 exists)" in p.stderr
    p = cli("region", "create", "r2", "--size", "128M", "--mode", "weird", rc=2)
    assert "--mode is exclusive, strict or release" in p.stderr
    p = cli("region", "create", "r2", "--size", "128M", "--mode", "strict")
    assert p.stdout == "region r2 created: 128M strict, 1 section on memory node 101\n"
    cli("region", "delete", "r2")

    p = cli("region", "attach", "r1", "--slot", "a")
    assert p.stdout == ("region r1 attached to slot a (compute node 10, PCI 0000:00:04.0), "
                        "read-only\n")
    cli("region", "attach", "r1", "--slot", "b")
    p = cli("region", "attach", "r1", "--slot", "ghost", rc=1)
    assert "unknown slot ghost (404 not_found)" in p.stderr
    p = cli("region", "lock", "r1", "--slot", "a")
    assert p.stdout == "region r1 locked by slot a (epoch 1)\n"
    p = cli("region", "lock", "r1", "--slot", "b", rc=1)
    assert "region r1 is locked by slot a (409 region_locked)" in p.stderr

    head, rows = table(cli("region", "ls").stdout)
    assert head == ["NAME", "MODE", "SIZE", "STATE", "HOME", "HOLDER", "EPOCH", "SLOTS", "AGE"]
    assert rows[0][:8] == ["r1", "exclusive", "256M", "ready", "101", "a", "1", "a,b"]

    out = cli("region", "show", "r1").stdout
    assert re.search(r"^name:\s+r1$", out, re.M), out
    assert re.search(r"^size:\s+256M \(2 sections on memory node 101\)$", out, re.M), out
    assert re.search(r"^holder:\s+a \(epoch 1\)$", out, re.M), out
    assert re.search(r"^a\s+10\s+0000:00:04.0\s+holds the lock$", out, re.M), out
    assert re.search(r"^b\s+11\s+0000:00:04.0\s+reads$", out, re.M), out
    assert re.search(r"^\s*1\s+101\s+\d+\s+\d+\s+1$", out, re.M), out
    j = json.loads(cli("--json", "region", "show", "r1").stdout)
    assert j["holder"] == "a" and j["epoch"] == 1 and len(j["sections"]) == 2

    c1.vms["a"]["regions"]["r1"]["dirty"] = 3
    p = cli("region", "unlock", "r1", "--slot", "a")
    assert p.stdout == ("region r1 unlocked by slot a (3 pages written back); "
                        "invalidated: b\n")
    c1.fail_region["invalidate"] = (503, "unavailable")
    cli("region", "lock", "r1", "--slot", "b")
    p = cli("region", "unlock", "r1", "--slot", "b")
    assert p.stdout == ("region r1 unlocked by slot b (0 pages written back); not reached: a "
                        "(they may read older data until they are)\n")
    assert "not invalidated yet" in cli("region", "show", "r1").stdout
    c1.fail_region.clear()

    p = cli("region", "delete", "r1", rc=1)
    assert "(409 region_attached)" in p.stderr
    p = cli("region", "detach", "r1", "--slot", "a")
    assert p.stdout == "region r1 detached from slot a (0 pages written back)\n"
    j = json.loads(cli("--json", "region", "detach", "r1", "--slot", "b").stdout)
    assert j["attachments"] == [] and j["name"] == "r1"
    p = cli("region", "delete", "r1")
    assert p.stdout == "region r1 deleted\n"
    p = cli("region", "show", "r1", rc=1)
    assert "unknown region r1 (404 not_found)" in p.stderr
    assert [e[1] for e in fr.LOG][:2] == ["attach", "attach"]
    p = cli("region", "create", "r3", "--size", "128M", "--mode", "release")
    assert p.stdout == "region r3 created: 128M release, 1 section on memory node 101\n"
    p = cli("region", "attach", "r3", "--slot", "a")
    assert re.fullmatch(r"region r3 attached to slot a \(compute node 10, PCI [0-9a-f:.]+\), "
                        r"read-write, mode release\n", p.stdout), p.stdout
    c1.vms["a"]["regions"]["r3"]["dirty"] = 5
    p = cli("region", "release", "r3", "--slot", "a")
    assert p.stdout == "region r3 released by slot a (5 pages published, 0 bytes changed)\n"
    p = cli("region", "acquire", "r3", "--slot", "a")
    assert p.stdout == "region r3 acquired by slot a (0 cached pages dropped)\n"
    p = cli("region", "lock", "r3", "--slot", "a", rc=1)
    assert "(409 mode_release)" in p.stderr
    p = cli("region", "release", "r3", "--slot", "b", rc=1)
    assert "(409 not_attached)" in p.stderr
    out = cli("region", "show", "r3").stdout
    assert re.search(r"^a\s+10\s+\S+\s+writes$", out, re.M), out
    cli("region", "detach", "r3", "--slot", "a")
    cli("region", "delete", "r3")


def test_detaching_a_gone_release_slot_says_it_was_fenced_out(orch_factory, memnodes, computes,
                                                              hb_factory):
    """`region detach` of a release region's slot whose compute node is
    lost: the line says the region was fenced at a new epoch and who got
    grants of it (test_regions.py checks the fence on the memory node)."""
    orch = orch_factory(timeout=2)
    c1, c2, m = start(orch, memnodes, computes, hb_factory)
    env = cli_env(DISAGG_TOKEN=orch.auth.token)

    def cli(*args, rc=0):
        return disagg("--url", f"http://{orch.addr}", *args, env=env, check_rc=rc)

    cli("region", "create", "p", "--size", "128M", "--mode", "release")
    for slot in ("a", "b"):
        cli("region", "attach", "p", "--slot", slot)
    orch.hb.pause(10)
    c1.dead = True
    assert wait_for(lambda: orch.call("GET", "/v1/slots/a")[1]["state"] == "lost", 15)
    p = cli("region", "detach", "p", "--slot", "a")
    assert p.stdout == ("region p detached from slot a; its VM is gone: fenced at epoch 1; "
                        "new grants: b\n"), p.stdout
