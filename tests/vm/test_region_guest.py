# SPDX-License-Identifier: MIT
"""VM test: disagg-guest's shared-region commands (docs/guest.md, "Shared
regions") in two stock QEMUs, without the agent or the orchestrator.

Both guests (-machine pc, TCG, -smp 1,maxcpus=2 so that TCG makes locked
instructions atomic between processes) map ONE memory-backend-file
(share=on) on tmpfs as ivshmem-plain. On one host the page cache makes that
file coherent, so what is checked here is the guest side:
- REGIONS lists the device; RFILL in A then RVERIFY in B finds no
  mismatch, a wrong seed finds every page, and the host file holds FILL's
  pattern; RPOKE in B shows in A's RVERIFY and RPEEK;
- RCOUNTER 20000 in both guests at once ends at exactly 40000;
- RLITMUS mp and sb give forbidden=0 whichever role starts first, and a
  mismatched pair (different ITERS) ends in errors on both sides at once;
- a second job while one runs answers ERR busy; bad names and offsets ERR;
- a device hot-plugged with QMP (object-add + device_add) is found without
  a rescan, and is gone from REGIONS after device_del.
"""
import os
import pathlib
import shutil
import struct
import tempfile
import time

import pytest

import vmlib

SHM = 16 << 20          # the shared region: a power of two (QEMU's BAR rule)
HOT = 8 << 20           # the hot-plugged one
PAGES = SHM // 4096


def host_word(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        return struct.unpack("<Q", f.read(8))[0]


class Guest(vmlib.StockQemu):
    """A stock QEMU with the region file as ivshmem-plain; -smp 1,maxcpus=2
    makes TCG translate locked instructions atomically."""

    def __init__(self, d, name, shm_path):
        super().__init__(d, name, smp="1,maxcpus=2", extra=(
            "-object", f"memory-backend-file,id=shm0,mem-path={shm_path},size={SHM},share=on",
            "-device", "ivshmem-plain,memdev=shm0,id=iv0"))

    def ok(self, command, timeout=120):
        return self.chan.ok(command, timeout)

    def err(self, command):
        ln = self.chan.cmd(command)
        assert ln.startswith("ERR "), f"{command!r} answered {ln!r}"
        return ln

    def job(self, timeout=60):
        """Poll RJOB until the job is done; its fields."""
        end = time.time() + timeout
        while True:
            j = self.ok("RJOB")
            if j["state"] == "done":
                return j
            assert j["state"] == "running", j
            assert time.time() < end, f"job still running after {timeout} s: {j}"
            time.sleep(0.05)

    def regions(self):
        """REGIONS as {address: bytes}."""
        ln = self.chan.cmd("REGIONS")
        assert ln.startswith("OK regions="), ln
        body = ln[len("OK regions="):]
        return {e.rsplit(":", 1)[0]: int(e.rsplit(":", 1)[1]) for e in body.split(",") if e}


@pytest.fixture(scope="module")
def pair():
    try:
        vmlib.check_prereqs()
    except vmlib.Skip as e:
        pytest.skip(str(e))
    d = pathlib.Path(tempfile.mkdtemp(prefix="disagg-regionguest-", dir="/dev/shm"))
    shm = d / "region"
    with open(shm, "wb") as f:
        f.truncate(SHM)
    guests = []
    try:
        for name in ("a", "b"):
            guests.append(Guest(d, name, shm))
        for g in guests:
            g.connect()
        yield guests[0], guests[1], shm
    except BaseException:
        print("\n".join(g.logs() for g in guests))
        raise
    finally:
        for g in guests:
            g.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def _logs_on_failure(request, pair):
    """A failed test shows both guests' QEMU output and console."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed != failed:
        print("\n".join(g.logs() for g in pair[:2]))


def test_regions_listed(pair):
    a, b, _ = pair
    ra, rb = a.regions(), b.regions()
    assert len(ra) == 1 and list(ra.values()) == [SHM], ra
    assert rb == ra, (ra, rb)
    addr = next(iter(ra))
    assert a.ok(f"RPEEK {addr} 0") == a.ok("RPEEK #0 0")


def test_bad_names_and_offsets(pair):
    a, _, _ = pair
    addr = next(iter(a.regions()))
    assert a.err("RPEEK 0000:00:1f.0 0") == "ERR no region 0000:00:1f.0"
    assert a.err("RPEEK 0000:00:00.0 0").startswith(
        "ERR no region 0000:00:00.0 (not an ivshmem device)")
    assert a.err("RPEEK #1 0").startswith("ERR no region #1")
    assert a.err("RPEEK ../../../dev/mem 0").startswith("ERR bad region name")
    assert a.err("RPEEK #x 0").startswith("ERR bad region name")
    assert a.err(f"RPEEK {addr} {SHM}").startswith("ERR offset beyond region")
    assert a.err(f"RPEEK {addr} {2**64 - 8}").startswith("ERR offset beyond region")
    assert a.err(f"RPEEK {addr} 12").startswith("ERR offset 12 is not 8-aligned")
    assert a.err(f"RPEEK {addr} -8").startswith("ERR bad offset")
    assert a.err(f"RPOKE {addr} {SHM} 1").startswith("ERR offset beyond region")
    assert a.err(f"RFILL {addr} 1 {PAGES + 1}").startswith("ERR pages beyond region")
    assert a.err(f"RVERIFY {addr} 1 0").startswith("ERR usage")
    assert a.err("RCOUNTER #0 0").startswith("ERR usage")
    assert a.err("RLITMUS xx #0 0 10").startswith("ERR usage")
    assert a.err("RLITMUS mp #0 2 10").startswith("ERR usage")
    assert a.err("RLITMUS mp #3 0 10").startswith("ERR no region #3")
    assert a.chan.cmd("PING") == "OK pong"


def test_fill_in_a_verify_in_b(pair):
    a, b, shm = pair
    addr = next(iter(a.regions()))
    f = a.ok(f"RFILL {addr} 77")
    assert f["pages"] == PAGES, f
    v = b.ok("RVERIFY #0 77")
    assert v == {"pages": PAGES, "mismatches": 0, "first": -1}, v
    # Another seed: every page differs (RVERIFY can fail).
    v = b.ok("RVERIFY #0 78")
    assert v == {"pages": PAGES, "mismatches": PAGES, "first": 0}, v
    # The pattern is in the host's file, at the place FILL puts it.
    for page, i in ((0, 0), (1, 5), (PAGES - 1, 511)):
        assert host_word(shm, page * 4096 + i * 8) == vmlib.pattern_word(77, page, i), (page, i)
    # A word that B changes shows in A: RVERIFY names its page, RPEEK its value.
    off = 100 * 4096 + 8 * 3
    assert b.chan.cmd(f"RPOKE #0 {off} 0x1234") == "OK started"
    j = b.job()
    assert j["result"] == "ok" and j["offset"] == off and j["value"] == 0x1234, j
    assert a.ok(f"RPEEK {addr} {off}")["value"] == 0x1234
    assert host_word(shm, off) == 0x1234
    v = a.ok(f"RVERIFY {addr} 77")
    assert v == {"pages": PAGES, "mismatches": 1, "first": 100}, v
    v = a.ok(f"RVERIFY {addr} 77 100")
    assert v == {"pages": 100, "mismatches": 0, "first": -1}, v


def zero(g, *offsets):
    for off in offsets:
        assert g.chan.cmd(f"RPOKE #0 {off} 0") == "OK started"
        assert g.job()["result"] == "ok"


def start_both(a, b, ca, cb):
    """Send both commands before reading either answer: the jobs overlap."""
    a.chan.send(ca)
    b.chan.send(cb)
    assert a.chan.answer() == "OK started"
    assert b.chan.answer() == "OK started"


def test_counter_between_guests(pair):
    a, b, shm = pair
    zero(a, 0, 64)
    start_both(a, b, "RCOUNTER #0 20000", "RCOUNTER #0 20000")
    ja, jb = a.job(), b.job()
    assert ja["result"] == "ok" and jb["result"] == "ok", (ja, jb)
    assert max(ja["counter"], jb["counter"]) == 40000, (ja, jb)
    assert min(ja["counter"], jb["counter"]) >= 20000, (ja, jb)
    assert b.ok("RPEEK #0 64")["value"] == 40000
    assert host_word(shm, 0) == 0 and host_word(shm, 64) == 40000
    # Longer runs until two of them surely overlapped: the first to finish
    # then saw increments of the other. (With -smp 1, TCG does not make xchg
    # atomic between the two QEMUs and these runs lose increments.)
    total = 40000
    for iters in (300000, 1000000, 3000000):
        start_both(a, b, f"RCOUNTER #0 {iters}", f"RCOUNTER #0 {iters}")
        ja, jb = a.job(), b.job()
        print(f"counter 2x{iters}:", ja, jb)
        lo, hi = sorted((ja["counter"], jb["counter"]))
        assert hi == total + 2 * iters, (ja, jb)
        assert a.ok("RPEEK #0 64")["value"] == hi
        if lo > total + iters:
            break
        total = hi
    else:
        pytest.fail("the two counter jobs never ran at the same time")


def litmus(first, second, kind, iters, first_role=0):
    start_both(first, second, f"RLITMUS {kind} #0 {first_role} {iters}",
               f"RLITMUS {kind} #0 {1 - first_role} {iters}")
    return first.job(), second.job()


@pytest.mark.parametrize("kind", ["mp", "sb"])
def test_litmus(pair, kind):
    a, b, _ = pair
    seen = 0
    for first, second, role in ((a, b, 0), (b, a, 1)):
        j1, j2 = litmus(first, second, kind, 10000, role)
        print(f"litmus {kind}:", j1, j2)
        for j in (j1, j2):
            assert j["result"] == "ok" and j["test"] == kind, j
            assert j["forbidden"] == 0 and j["iters"] == 10000, j
        assert j1["seen"] == j2["seen"], (j1, j2)
        seen += j1["seen"]
    # mp: the reader saw the flag at times (else forbidden=0 says nothing).
    # (With -smp 1, TCG drops the fences and sb shows forbidden outcomes.)
    assert kind != "mp" or seen > 0


def test_litmus_mismatch_and_busy(pair):
    a, b, _ = pair
    # Role 0 alone waits for its partner: the job runs, a second one is refused.
    assert a.chan.cmd("RLITMUS sb #0 0 50") == "OK started"
    time.sleep(0.3)
    assert a.ok("RJOB")["state"] == "running"
    assert a.err("RCOUNTER #0 10").startswith("ERR busy")
    assert a.err("RPOKE #0 0 0").startswith("ERR busy")
    # The partner asks for other ITERS: both give up at once.
    assert b.chan.cmd("RLITMUS sb #0 1 60") == "OK started"
    jb, ja = b.job(10), a.job(10)
    assert jb["result"] == "error" and jb["reason"] == "mismatch", jb
    assert ja["result"] == "error" and ja["reason"] == "peer_aborted", ja
    # And the region serves the next pair.
    j1, j2 = litmus(a, b, "mp", 100)
    assert j1["result"] == "ok" and j2["result"] == "ok", (j1, j2)


def test_hotplug_found_without_rescan(pair):
    a, _, _ = pair
    hot = pathlib.Path(os.path.dirname(a.dir)) / "hot"
    with open(hot, "wb") as f:
        f.truncate(HOT)
    before = a.regions()
    a.qmp.run("object-add", **{"qom-type": "memory-backend-file", "id": "shm1",
                               "mem-path": str(hot), "size": HOT, "share": True})
    a.qmp.run("device_add", driver="ivshmem-plain", memdev="shm1", id="iv1")

    def two():
        r = a.regions()
        return r if len(r) == 2 else None

    now = vmlib.wait_for(two, 20, 0.2)
    assert now, f"the hot-plugged device did not show: {a.regions()}"
    (addr,) = set(now) - set(before)
    assert now[addr] == HOT, now
    assert a.ok(f"RFILL {addr} 5 3")["pages"] == 3
    assert a.ok(f"RVERIFY {addr} 5")["first"] == 3    # pages 0..2 filled, 3 not
    assert [host_word(hot, p * 4096 + 8) for p in range(3)] == \
        [vmlib.pattern_word(5, p, 1) for p in range(3)]
    a.qmp.run("device_del", id="iv1")
    assert vmlib.wait_for(lambda: a.regions() == before, 20, 0.2), a.regions()
    assert a.err(f"RPEEK {addr} 0").startswith(f"ERR no region {addr}")
