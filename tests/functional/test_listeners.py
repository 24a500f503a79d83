# SPDX-License-Identifier: MIT
"""Listener hardening of the memory node: admission caps, the handshake and
idle timeouts, the pre-authentication buffer, and the HTTP listener's caps.

Floods come from other loopback addresses (127.0.0.3 ...) than the real
clients (127.0.0.1), as an attacker's would from another host.
"""
import json
import os
import re
import resource
import socket
import struct
import time
import urllib.request

import pytest

import dproto as dp

CLIENT = 7
FLOOD = 2000


@pytest.fixture(autouse=True)
def enough_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FLOOD + 512
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def metrics(d):
    text = urllib.request.urlopen(f"http://{d.http}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(disagg_memnode_connections\S*) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def rejected(m, reason):
    return m.get(f'disagg_memnode_connections_rejected_total{{reason="{reason}"}}', 0)


def closed(m, reason):
    return m.get(f'disagg_memnode_connections_closed_total{{reason="{reason}"}}', 0)


def flood(addr, n, src="127.0.0.3"):
    """Open n connections from src that send nothing; returns the sockets."""
    host, port = addr.rsplit(":", 1)
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(5)
        try:
            s.connect((host, int(port)))
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def closed_by_peer(s, timeout):
    """True if the server closes s (EOF or reset) within timeout seconds."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def login(addr, src=None):
    """A protocol connection (not logged in yet), from src if given."""
    c = dp.Conn(addr)
    if src:
        c.sock.close()
        host, port = addr.rsplit(":", 1)
        c.sock = socket.create_connection((host, int(port)), timeout=10,
                                          source_address=(src, 0))
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_flood_of_silent_connections_is_refused_and_counted(memnodes, key):
    d = memnodes.start(pool="256M", extra=["--handshake-timeout-ms", "2000"])
    with login(d.addr).login(key, CLIENT) as c:
        sec, gen = c.alloc()
        g = dp.mint_grant(key, d.node_id, CLIENT, sec, gen, dp.R_READ | dp.R_WRITE)
        data = dp.pattern(3, sec, 16)
        c.write(g, [(0, 16)], data)
        socks = flood(d.addr, FLOOD)
        try:
            # The connected client is served during the flood ...
            assert c.read(g, [(0, 16)]) == data
            # ... and so is a new one, from its own address.
            with login(d.addr).login(key, CLIENT + 1) as c2:
                c2.call(dp.OP["PING"])
            # 64 unauthenticated connections per address are let in, the rest refused.
            m = wait_for(lambda: (lambda m: m if rejected(m, "unauthenticated") >= FLOOD - 64
                                  else None)(metrics(d)), 10, "refusals")
            assert m["disagg_memnode_connections_unauthenticated"] == 64, m
            # Refused connections got a BUSY frame and were closed.
            busy = 0
            for s in socks[-10:]:
                s.settimeout(5)
                h = s.recv(dp.HDR.size)
                if len(h) == dp.HDR.size and dp.HDR.unpack(h)[6] == dp.ST["BUSY"]:
                    busy += 1
            assert busy == 10
            # The admitted ones are closed at the handshake timeout.
            m = wait_for(lambda: (lambda m: m if closed(m, "handshake_timeout") >= 64
                                  else None)(metrics(d)), 10, "handshake timeouts")
            assert m["disagg_memnode_connections_unauthenticated"] == 0, m
            assert c.read(g, [(0, 16)]) == data
        finally:
            for s in socks:
                s.close()
    assert d.alive()


def test_connections_per_address_are_capped(memnodes, key):
    d = memnodes.start(pool="256M", extra=["--max-conns-per-addr", "4"])
    conns = [login(d.addr, "127.0.0.4").login(key, CLIENT) for _ in range(4)]
    try:
        # A fifth from the same address is refused with BUSY ...
        with login(d.addr, "127.0.0.4") as c:
            _, st, _, _ = c.recv()          # unasked: the refusal
            assert st == dp.ST["BUSY"]
            assert closed_by_peer(c.sock, 5)
        assert rejected(metrics(d), "per_addr") == 1
        # ... another address is not, and the four are still served.
        with login(d.addr).login(key, CLIENT) as other:
            other.call(dp.OP["PING"])
        for c in conns:
            c.call(dp.OP["PING"])
    finally:
        for c in conns:
            c.close()
    # Closed connections no longer count.
    wait_for(lambda: metrics(d)["disagg_memnode_connections"] == 0, 5, "closes")
    with login(d.addr, "127.0.0.4").login(key, CLIENT) as c:
        c.call(dp.OP["PING"])


def test_half_a_hello_is_closed_at_the_handshake_timeout(memnodes, key):
    d = memnodes.start(pool="256M", extra=["--handshake-timeout-ms", "1000"])
    hello = dp.hdr(dp.OP["HELLO"], dp.HELLO_REQ.size, 1) + dp.HELLO_REQ.pack(
        1, 1, 0, CLIENT, os.urandom(32))
    # The timeout runs from the accept, so the clock starts before the connects
    # (authed's login before the half HELLO takes a while under load).
    t0 = time.time()
    with login(d.addr) as half, login(d.addr) as no_auth, login(d.addr) as authed:
        authed.login(key, CLIENT)
        half.send_raw(hello[:40])
        no_auth.hello(key, CLIENT)          # HELLO but never AUTH
        assert closed_by_peer(half.sock, 5)
        took = time.time() - t0
        assert 0.9 <= took <= 3.0, took
        assert closed_by_peer(no_auth.sock, 2)
        # An authenticated connection is not subject to it (no idle timeout by default).
        time.sleep(0.5)
        authed.call(dp.OP["PING"])
    assert closed(metrics(d), "handshake_timeout") == 2


def test_idle_timeout_closes_only_idle_authenticated_connections(memnodes, key):
    d = memnodes.start(pool="256M", extra=["--idle-timeout-ms", "1000"])
    with login(d.addr).login(key, CLIENT) as idle, login(d.addr).login(key, CLIENT) as busy:
        end = time.time() + 2.5
        while time.time() < end:
            busy.call(dp.OP["PING"])
            time.sleep(0.2)
        assert closed_by_peer(idle.sock, 0.1)
        busy.call(dp.OP["PING"])
    assert closed(metrics(d), "idle_timeout") == 1


def test_large_frames_before_authentication_are_refused(memnodes, key):
    d = memnodes.start(pool="256M")
    # A WRITE header announcing 1 MiB: NOAUTH at once, nothing read or kept.
    with login(d.addr) as c:
        c.send_raw(dp.hdr(dp.OP["WRITE"], 1 << 20, 5))
        rid, st, _, _ = c.recv()
        assert (rid, st) == (5, dp.ST["NOAUTH"])
        assert closed_by_peer(c.sock, 5)
    # An oversized HELLO is malformed.
    with login(d.addr) as c:
        c.send_raw(dp.hdr(dp.OP["HELLO"], 8192, 6) + bytes(8192))
        rid, st, _, _ = c.recv()
        assert (rid, st) == (6, dp.ST["BADMSG"])
        assert closed_by_peer(c.sock, 5)
    assert closed(metrics(d), "preauth_oversize") == 2
    # After AUTH the same sizes are fine.
    with login(d.addr).login(key, CLIENT) as c:
        sec, gen = c.alloc()
        g = dp.mint_grant(key, d.node_id, CLIENT, sec, gen, dp.R_READ | dp.R_WRITE)
        data = dp.pattern(9, sec, 256)
        c.write(g, [(0, 256)], data)
        assert c.read(g, [(0, 256)]) == data


def healthz(url, src=None):
    host, port = url.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5,
                                 source_address=(src, 0) if src else None)
    with s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {url}\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf


def test_http_listener_survives_a_flood(memnodes):
    d = memnodes.start(pool="256M")
    socks = flood(d.http, FLOOD)
    try:
        t0 = time.time()
        reply = healthz(d.http)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["status"] == "ok"
        assert time.time() - t0 < 5
        # The flooding address itself is at its cap: closed without a reply.
        try:
            r = healthz(d.http, "127.0.0.3")
        except (ConnectionResetError, BrokenPipeError):
            r = b""
        assert r == b""
    finally:
        for s in socks:
            s.close()
    assert d.alive()


def test_http_connection_without_a_header_is_closed(memnodes):
    d = memnodes.start(pool="256M")
    host, port = d.http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as silent, \
            socket.create_connection((host, int(port)), timeout=5) as slow:
        t0 = time.time()
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert closed_by_peer(silent, 20)
        assert closed_by_peer(slow, 5)
        took = time.time() - t0
        assert 9 <= took <= 15, took
    assert healthz(d.http).startswith(b"HTTP/1.1 200")
