# SPDX-License-Identifier: MIT
"""VM test: every VM's network card (docs/compute.md, "Networks").

A VM on the default user-mode network gets a virtio-net card with a MAC
derived from its name, the guest brings eth0 up by DHCP from QEMU's
network, reaches a port of the host through 10.0.2.2 (NETCHECK), and the
host port that the agent forwards to the guest's port 22 reaches the
guest's listener there. The forward survives an agent restart that
adopts the QEMU; a compute migration's destination has the same card
and its own forward. A bridge this host lacks is refused with a clear error;
mode none gives a guest without a card.
"""
import socket
import threading

import vmlib

LOCAL = [{"kind": "local"}] * 2


def mac_of(name):
    """vmnet_mac_from_name: 52:54:00 and 24 bits of FNV-1a of the name."""
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return "52:54:00:%02x:%02x:%02x" % ((h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF)


def banner(addr, timeout=20):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        return s.recv(200).decode()


LEASE = {"eth0": "10.0.2.15/24", "gw": "10.0.2.2"}


def lease_settled(agent, name, timeout=30):
    """The guest's DHCP hook sets the address and then the default route
    (two commands), so a connection on the link can work before the
    route exists: wait for both."""
    return vmlib.wait_for(lambda: agent.guest(name, "NETINFO") == LEASE, timeout)


def test_user_network(cluster):
    a = cluster.agent()
    vm = a.create("web", LOCAL)
    net = vm["net"]
    assert net["mode"] == "user" and net["mac"] == mac_of("web"), net
    host, port = net["ssh"].rsplit(":", 1)
    assert host == "127.0.0.1" and 0 < int(port) < 65536, net

    # Out: the guest connects to a port of the host through QEMU's gateway.
    ls = socket.create_server(("127.0.0.1", 0))
    ls.settimeout(30)
    got = []

    def accept():
        c, _ = ls.accept()
        with c:
            got.append(c.recv(200))

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    r = a.guest("web", f"NETCHECK 10.0.2.2 {ls.getsockname()[1]} 20000")
    t.join(10)
    ls.close()
    assert r["src"] == "10.0.2.15", r
    assert got == [b"disagg-guest netcheck from 10.0.2.15\n"], got
    assert lease_settled(a, "web"), a.guest("web", "NETINFO")

    # In: the forwarded ssh port reaches the guest's port 22.
    assert banner(net["ssh"]).startswith("disagg-guest: no ssh server"), net
    assert "disagg-guest-init: eth0 10.0.2.15/24 gw 10.0.2.2" in a.console("web")
    a.delete("web")


def test_forward_survives_an_agent_restart(cluster):
    a1 = cluster.agent(1, keep_vms=True)
    ssh = a1.create("kept", LOCAL, net={"mode": "user"})["net"]["ssh"]
    pid = a1.status("kept")["pid"]
    assert a1.stop() == 0
    cluster.agents.remove(a1)
    a2 = cluster.agent(1, run_dir=a1.run_dir)
    a2.qemu_pids.add(pid)
    st = a2.status("kept")
    assert st["pid"] == pid and st["net"]["ssh"] == ssh, st
    assert banner(ssh).startswith("disagg-guest: no ssh server")
    a2.delete("kept")


def test_bridge_missing_and_mode_none(cluster):
    a = cluster.agent()
    st, j = a.request("POST", "/v1/vms", {"name": "b", "sections": LOCAL,
                                          "net": {"mode": "bridge", "bridge": "nobr-test0"}})
    assert st == 400 and j["error"]["code"] == "no_bridge", j
    assert "no bridge nobr-test0 on this compute node" in j["error"]["message"], j
    st, j = a.request("POST", "/v1/vms", {"name": "b", "sections": LOCAL,
                                          "net": {"mode": "tap"}})
    assert st == 400 and "mode" in j["error"]["message"], j
    assert a.call("GET", "/v1/vms")["vms"] == []

    vm = a.create("quiet", LOCAL, net={"mode": "none"})
    assert vm["net"] == {"mode": "none"}, vm
    assert a.guest("quiet", "NETINFO") == {"eth0": "-", "gw": "-"}
    a.delete("quiet")


def test_card_moves_with_a_compute_migration(cluster, key):
    """The destination has the same card (QEMU migrates only between the
    same devices) and its own ssh port; the guest keeps its address and
    answers on the new port."""
    from test_compute_migration import incoming, migrate, regrant, running

    mn = cluster.memnode()
    a1, a2 = cluster.agent(1), cluster.agent(2)
    secs = [mn.section(holder=1) for _ in range(2)]
    net1 = a1.create("mover", secs)["net"]
    # DHCP runs in the background of the guest's boot.
    assert lease_settled(a1, "mover"), a1.guest("mover", "NETINFO")
    dst = incoming(a2, "mover", [regrant(key, s, 2) for s in secs])
    a2.qemu_pids.add(dst["pid"])
    assert dst["net"]["mac"] == net1["mac"] and dst["net"]["ssh"] != net1["ssh"], dst["net"]
    migrate(a1, "mover", dst["migration_uri"])
    running(a2, "mover")
    assert a2.guest("mover", "NETINFO") == {"eth0": "10.0.2.15/24", "gw": "10.0.2.2"}
    assert banner(dst["net"]["ssh"]).startswith("disagg-guest: no ssh server")
    a1.delete("mover")
    a2.delete("mover")
