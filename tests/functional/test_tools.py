# SPDX-License-Identifier: MIT
"""disagg-grant and disagg-mnctl as users see them: key files, grants that
an independent implementation (dproto) accepts, usage errors that say what
is wrong, and JSON output that matches what the node reports."""
import json
import os
import re
import stat
import subprocess
import time

import pytest

import dproto as dp
import progs  # noqa: E402
from conftest import find_prog

CLIENT = 7
SAN_RE = re.compile(r"runtime error:|Sanitizer")


def tool(name, *args, timeout=30, **kw):
    """Run a tool; a hang, a crash or a sanitizer report fails the test."""
    try:
        p = subprocess.run([find_prog(name), *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} {args} hung")
    assert p.returncode >= 0, f"{name} {args} died of signal {-p.returncode}:\n{p.stderr}"
    assert not SAN_RE.search(p.stderr), p.stderr[-4000:]
    return p


def grant_tool(*args, **kw):
    return tool("disagg-grant", *args, **kw)


def refused(p, match):
    """Exit 1 with nothing on stdout and an error matching `match`."""
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", p.stdout
    assert re.search(match, p.stderr, re.I), p.stderr
    return p


def mnctl(d, keyfile, *args, node_id=CLIENT):
    return tool("disagg-mnctl", "--addr", d.addr, "--key", keyfile, "--node-id", node_id,
                *progs.fabric_args(node_id, "orchestrator"), *args, timeout=120)


def mnctl_ok(d, keyfile, *args):
    p = mnctl(d, keyfile, *args)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


# ---- disagg-grant --new-key -------------------------------------------------------

def test_new_key_is_0600_and_never_overwritten(tmp_path):
    k = tmp_path / "cluster.key"
    # Even under a permissive umask the key is private.
    p = grant_tool("--new-key", k, preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, p.stderr
    st = k.stat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_size == 32
    first = k.read_bytes()
    assert first != bytes(32)

    refused(grant_tool("--new-key", k), r"cannot create key .*exists")
    assert k.read_bytes() == first
    # Two keys differ.
    k2 = tmp_path / "other.key"
    assert grant_tool("--new-key", k2).returncode == 0
    assert k2.read_bytes() != first
    # A symlink or a directory in the way is not followed or clobbered either.
    (tmp_path / "link").symlink_to(tmp_path / "target")
    refused(grant_tool("--new-key", tmp_path / "link"), r"cannot create key")
    assert not (tmp_path / "target").exists()
    refused(grant_tool("--new-key", tmp_path), r"cannot create key")
    refused(grant_tool("--new-key", tmp_path / "no" / "such" / "dir"),
            r"cannot create key .*no such file")


# ---- disagg-grant minting -----------------------------------------------------------

def parse_grant(hexstr, key):
    raw = bytes.fromhex(hexstr)
    assert len(raw) == dp.GRANT.size == 104
    f = dp.GRANT.unpack(raw)
    assert dp.grant_signed_by(key.grant, raw), "signature does not verify"
    # Independently: the grant dproto mints for the same fields is identical
    # (Ed25519 signatures are deterministic).
    assert dp.mint_grant(key, *f[:5], expiry=f[6], epoch=f[5]) == raw
    return dict(memnode=f[0], holder=f[1], section=f[2], generation=f[3], rights=f[4],
                epoch=f[5], expiry=f[6])


def gkey(keyfile):
    return dp.grant_files(keyfile)[0]


# ---- disagg-grant --new-grant-key ---------------------------------------------------

def test_new_grant_key_pair(tmp_path):
    priv, pub = tmp_path / "grant.key", tmp_path / "grant.pub"
    p = grant_tool("--new-grant-key", priv, "--public", pub, preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    first = priv.read_bytes()
    refused(grant_tool("--new-grant-key", priv), r"cannot create grant key .*exists")
    assert priv.read_bytes() == first
    # The public half cannot mint.
    refused(grant_tool("--grant-key", pub, *BASE), r"the private key is needed")


GRANT_ARGS = ("--memnode", 0x1122334455667788, "--holder", 18446744073709551615,
              "--section", 4294967295, "--generation", 7)


@pytest.mark.parametrize("rights,bits", [("r", 1), ("w", 2), ("rw", 3), ("wr", 3), ("f", 4),
                                         ("rwf", 7)])
def test_grant_verifies_and_fields_match(keyfile, key, rights, bits):
    p = grant_tool("--grant-key", gkey(keyfile), *GRANT_ARGS, "--rights", rights,
                   "--expiry", 1234567890)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{208}", out), out
    g = parse_grant(out, key)
    assert g == dict(memnode=0x1122334455667788, holder=2**64 - 1, section=2**32 - 1,
                     generation=7, rights=bits, epoch=0, expiry=1234567890)


def test_grant_epoch(keyfile, key):
    base = ("--grant-key", gkey(keyfile), *GRANT_ARGS, "--rights", "rw")
    assert parse_grant(grant_tool(*base, "--epoch", 4294967295).stdout.strip(),
                       key)["epoch"] == 2**32 - 1
    assert parse_grant(grant_tool(*base, "--epoch", 3).stdout.strip(), key)["epoch"] == 3
    refused(grant_tool(*base, "--epoch", 2**32), r"32-bit")
    refused(grant_tool(*base, "--epoch", "x"), r"epoch")


def test_grant_expiry_forms(keyfile, key):
    base = ("--grant-key", gkey(keyfile), "--memnode", 1, "--holder", 2, "--section", 3,
            "--generation", 4, "--rights", "r")
    g = parse_grant(grant_tool(*base).stdout.strip(), key)
    assert g["expiry"] == 0                                   # never expires
    t0 = int(time.time())
    g = parse_grant(grant_tool(*base, "--ttl", 600).stdout.strip(), key)
    assert t0 + 600 <= g["expiry"] <= int(time.time()) + 600
    g = parse_grant(grant_tool(*base, "--expiry", "0x7fffffff").stdout.strip(), key)
    assert g["expiry"] == 0x7fffffff
    # A ttl that would wrap around must not yield an already expired grant.
    p = grant_tool(*base, "--ttl", 2**64 - 1)
    if p.returncode == 0:
        assert parse_grant(p.stdout.strip(), key)["expiry"] >= t0
    else:
        refused(p, r"ttl")
    refused(grant_tool(*base, "--ttl", 5, "--expiry", 5), r"exclude")


def test_grant_with_another_key_does_not_verify(keyfile, key, tmp_path):
    other = tmp_path / "other.key"
    grant_tool("--new-grant-key", other)
    out = grant_tool("--grant-key", other, *GRANT_ARGS, "--rights", "rw").stdout.strip()
    with pytest.raises(AssertionError, match="signature"):
        parse_grant(out, key)


BASE = ("--memnode", 1, "--holder", 2, "--section", 3, "--generation", 4, "--rights", "rw")


def _without(opt):
    args = list(BASE)
    i = args.index(opt)
    del args[i:i + 2]
    return args


@pytest.mark.parametrize("args,match", [
    (("--rights", "x"), r"invalid rights 'x'"),
    (("--rights", ""), r"invalid rights"),
    (("--rights", "rwx"), r"invalid rights"),
    (("--rights", "rr"), r"invalid rights"),
    (("--rights", "R"), r"invalid rights"),
    (("--section", "abc"), r"invalid number for --section"),
    (("--section", "-1"), r"invalid number for --section"),
    (("--section", "1x"), r"invalid number for --section"),
    (("--section", ""), r"invalid number for --section"),
    (("--section", 2**32), r"32-bit"),
    (("--generation", 2**32), r"32-bit"),
    (("--memnode", "99999999999999999999"), r"invalid number for --memnode"),
    (("--holder", " 5"), r"invalid number for --holder"),
    (("--holder", " -1"), r"invalid number for --holder"),
    (("--memnode", "+1"), r"invalid number for --memnode"),
    (("--ttl", "1.5"), r"invalid number for --ttl"),
    (("--expiry", "soon"), r"invalid number for --expiry"),
])
def test_grant_bad_arguments(keyfile, args, match):
    # Later options override the good ones in BASE.
    refused(grant_tool("--grant-key", gkey(keyfile), *BASE, *args), match)


@pytest.mark.parametrize("missing", ["--memnode", "--holder", "--section", "--generation",
                                     "--rights"])
def test_grant_missing_arguments(keyfile, missing):
    refused(grant_tool("--grant-key", gkey(keyfile), *_without(missing)),
            r"required.*\n.*usage")


def test_grant_usage_errors(keyfile):
    refused(grant_tool(*BASE), r"--grant-key.*required")          # no --grant-key
    refused(grant_tool(), r"required|usage")                      # nothing at all
    refused(grant_tool("--grant-key", gkey(keyfile), *BASE, "extra"), r"usage")
    refused(grant_tool("--bogus"), r"unrecognized option.*\n.*usage")
    refused(grant_tool("--grant-key"), r"requires an argument")
    refused(grant_tool("--key", keyfile, *BASE), r"unrecognized option")   # the old form
    p = grant_tool("--help")
    assert p.returncode == 0 and "usage" in p.stdout


def key_cases(tmp_path):
    """(path, what) for key files that must be refused."""
    out = []
    for mode in (0o644, 0o640, 0o604, 0o700 | 0o060):
        k = tmp_path / f"mode{mode:o}.key"
        k.write_bytes(os.urandom(32))
        k.chmod(mode)
        out.append((k, r"operation not permitted.*chmod 600"))
    for size in (0, 16, 31, 33, 64):
        k = tmp_path / f"size{size}.key"
        k.write_bytes(os.urandom(size))
        k.chmod(0o600)
        out.append((k, r"invalid argument.*32 bytes"))
    out.append((tmp_path, r"invalid argument"))                    # a directory
    out.append((tmp_path / "absent.key", r"no such file"))
    return out


def test_grant_refuses_bad_key_files(tmp_path):
    priv = tmp_path / "g.key"
    assert grant_tool("--new-grant-key", priv).returncode == 0
    cases = []
    for mode in (0o644, 0o640, 0o604):
        k = tmp_path / f"g{mode:o}.key"
        k.write_bytes(priv.read_bytes())
        k.chmod(mode)
        cases.append((k, r"operation not permitted.*chmod 600"))
    k = tmp_path / "cluster.key"                          # a cluster key is no grant key
    k.write_bytes(os.urandom(32))
    k.chmod(0o600)
    cases += [(k, r"invalid argument.*Ed25519"), (tmp_path, r"invalid argument"),
              (tmp_path / "absent.key", r"no such file")]
    for path, match in cases:
        p = refused(grant_tool("--grant-key", path, *BASE),
                    rf"cannot load grant key {re.escape(str(path))}: " + match)
        assert "usage" not in p.stderr, p.stderr


# ---- disagg-mnctl argument errors (no node needed) --------------------------------------

def test_mnctl_refuses_bad_key_files(tmp_path):
    for path, match in key_cases(tmp_path):
        refused(tool("disagg-mnctl", "--addr", "127.0.0.1:1", "--key", path, "--node-id", 1,
                     "ping"), rf"cannot load key .*: {match}")


@pytest.mark.parametrize("args,match", [
    ((), r"--addr, --key, --node-id and a command are required"),
    (("--addr", "127.0.0.1:1", "--node-id", 1, "ping"), r"required"),
    (("--key", "K", "--node-id", 1, "ping"), r"required"),
    (("--addr", "127.0.0.1:1", "--key", "K", "ping"), r"required"),
    (("--addr", "127.0.0.1:1", "--key", "K", "--node-id", 1), r"required"),
    (("--addr", "127.0.0.1:1", "--key", "K", "--node-id", 1, "frobnicate"),
     r"unknown command 'frobnicate'"),
    (("--addr", "127.0.0.1:1", "--key", "K", "--node-id", "x", "ping"),
     r"invalid number for --node-id"),
    (("--addr", "127.0.0.1:1", "--key", "K", "--node-id", 1, "--timeout", "-5", "ping"),
     r"invalid number for --timeout"),
    (("--addr", "127.0.0.1:1", "--key", "K", "--node-id", 1, "--timeout", 2**40, "ping"),
     r"--timeout .*too large"),
    (("--addr", "127.0.0.1:1", "--key", "K", "--node-id", 1, "--bogus", "ping"),
     r"unrecognized option"),
])
def test_mnctl_usage_errors(keyfile, args, match):
    args = [keyfile if a == "K" else a for a in args]
    refused(tool("disagg-mnctl", *args), match)


# ---- disagg-mnctl against a real memory node ------------------------------------------------

@pytest.fixture
def node(memnodes):
    return memnodes.start(pool="256M", section="32M", node_id=321)


def test_verify_zero_on_fresh_section_then_after_fill(node, keyfile, key):
    s = json.loads(mnctl_ok(node, keyfile, "alloc", "--owner", 55).stdout)
    assert set(s) == {"section", "generation", "owner"} and s["owner"] == 55
    sg = (s["section"], s["generation"])
    p = mnctl_ok(node, keyfile, "verify", *sg, "--zero")
    assert json.loads(p.stdout) == {"pages": 8192, "mismatches": 0}
    mnctl_ok(node, keyfile, "fill", *sg, "--seed", 4, "--first", 100, "--pages", 10)
    p = mnctl(node, keyfile, "verify", *sg, "--zero")
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"pages": 8192, "mismatches": 10}
    assert "first at page 100" in p.stderr
    # Around the filled range it is still zero, and the range holds the pattern.
    mnctl_ok(node, keyfile, "verify", *sg, "--zero", "--pages", 100)
    mnctl_ok(node, keyfile, "verify", *sg, "--zero", "--first", 110)
    p = mnctl_ok(node, keyfile, "verify", *sg, "--seed", 4, "--first", 100, "--pages", 10)
    assert json.loads(p.stdout) == {"pages": 10, "mismatches": 0}
    # dproto reads the same bytes: page 100 is not zero, page 99 is.
    with dp.Conn(node.addr).login(key, CLIENT) as c:
        g = dp.mint_grant(key, node.node_id, CLIENT, *sg, dp.R_READ)
        assert c.read(g, [(99, 1)]) == bytes(4096)
        assert c.read(g, [(100, 1)]) != bytes(4096)


def test_mnctl_argument_errors_with_a_node(node, keyfile):
    s = json.loads(mnctl_ok(node, keyfile, "alloc").stdout)
    sg = (s["section"], s["generation"])
    cases = [
        (("fill", *sg), r"fill needs --seed"),
        (("verify", *sg), r"verify needs --seed or --zero"),
        (("fill", s["section"], "--seed", 1), r"fill needs SECTION GEN"),
        (("free", s["section"]), r"free needs SECTION GEN"),
        (("free", *sg, 9), r"free needs SECTION GEN"),
        (("free", "x", 1), r"invalid number for SECTION"),
        (("free", 2**32, 1), r"32-bit"),
        (("fill", *sg, "--seed", 1, "--first", 8192), r"--first 8192 is outside"),
        (("fill", *sg, "--seed", 1, "--first", 8000, "--pages", 193), r"runs past"),
        (("verify", *sg, "--zero", "--pages", 2**40), r"runs past"),
        (("cas", *sg, "--offset", 0, "--value", 1), r"cas needs --offset, --expect, --value"),
        (("fadd", *sg, "--offset", 0), r"fadd needs"),
        (("copy", *sg, "--to", node.addr), r"copy needs --to, --to-section"),
        (("fill", *sg, "--seed", "1e3"), r"invalid number for --seed"),
    ]
    for args, match in cases:
        p = refused(mnctl(node, keyfile, *args), match)
        assert "mismatches" not in p.stdout
    # Refusals by the node name what the node refused.
    refused(mnctl(node, keyfile, "free", s["section"], s["generation"] + 1),
            r"free: .*stale")
    refused(mnctl(node, keyfile, "verify", s["section"], s["generation"] + 1, "--zero"),
            r"read: .*stale")
    refused(mnctl(node, keyfile, "cas", *sg, "--offset", 3, "--expect", 0, "--value", 1),
            r"cas: ")
    # None of it changed the section.
    mnctl_ok(node, keyfile, "verify", *sg, "--zero")


def test_list_and_stats_json_match_dproto(node, keyfile, key):
    owners = [11, 12, 13]
    secs = [json.loads(mnctl_ok(node, keyfile, "alloc", "--owner", o).stdout) for o in owners]
    mnctl_ok(node, keyfile, "free", secs[1]["section"], secs[1]["generation"])
    mnctl_ok(node, keyfile, "fill", secs[0]["section"], secs[0]["generation"], "--seed", 1,
             "--pages", 3)

    listed = json.loads(mnctl_ok(node, keyfile, "list").stdout)
    stats = json.loads(mnctl_ok(node, keyfile, "stats").stdout)
    with dp.Conn(node.addr).login(key, CLIENT, features=dp.FEAT_EVERY) as c:
        seen = c.list()
        st = c.stats()
        info = c.info
    assert sorted((e["section"], e["generation"], e["owner"]) for e in listed) == sorted(seen)
    assert sorted(e["owner"] for e in listed) == [11, 13]
    assert {(s["section"], s["generation"]) for s in (secs[0], secs[2])} == \
        {(e["section"], e["generation"]) for e in listed}

    (node_id, ssize, nsec, nused, requests, errors, bread, bwritten, conns) = st
    assert stats["node_id"] == node_id == node.node_id == info["node_id"]
    assert stats["section_size"] == ssize == info["section_size"] == 32 << 20
    assert stats["nsections"] == nsec == info["nsections"] == 8
    assert stats["nused"] == nused == 2
    assert stats["bytes_written"] == bwritten == 3 * 4096
    assert stats["max_pages"] == info["max_pages"]
    assert stats["max_inflight"] == info["max_inflight"]
    assert stats["features"] == info["features"] and stats["version"] == info["version"] == dp.VERSION
    # Counters only grow: dproto's view came after mnctl's.
    for name, val in (("requests", requests), ("errors", errors), ("bytes_read", bread)):
        assert 0 <= stats[name] <= val, name
    # `connections` is the number open now: at least the one asking.
    assert stats["connections"] >= 1 and conns >= 1

    # An empty node lists as an empty array, not nothing.
    for e in listed:
        mnctl_ok(node, keyfile, "free", e["section"], e["generation"])
    assert json.loads(mnctl_ok(node, keyfile, "list").stdout) == []


def test_ping_and_atomics_json(node, keyfile):
    p = json.loads(mnctl_ok(node, keyfile, "ping").stdout)
    assert p["node_id"] == node.node_id and p["rtt_us"] >= 0
    s = json.loads(mnctl_ok(node, keyfile, "alloc").stdout)
    sg = (s["section"], s["generation"])
    assert json.loads(mnctl_ok(node, keyfile, "fadd", *sg, "--offset", 8, "--value", 5)
                      .stdout) == {"old": 0}
    assert json.loads(mnctl_ok(node, keyfile, "cas", *sg, "--offset", 8, "--expect", 5,
                               "--value", 2**64 - 1).stdout) == {"old": 5}
    assert json.loads(mnctl_ok(node, keyfile, "fadd", *sg, "--offset", 8, "--value", 1)
                      .stdout) == {"old": 2**64 - 1}
