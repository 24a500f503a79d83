# SPDX-License-Identifier: MIT
"""A slot's page key at the orchestrator (guest memory at rest,
docs/security.md): made at create unless "encrypt": false, kept in the
database, sent to the compute node and to a compute migration's
destination, never shown; the page metadata is handed over before the
source is fenced. Fake compute and memory nodes (fakes.py)."""
import sqlite3

from test_orchestrator import (cluster, computes, err, fakemem, hb_factory,  # noqa: F401
                               orch, orch_factory)


def test_a_slot_gets_its_own_page_key(orch, fakemem, computes, hb_factory):
    hb, (c1,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8)
    st, s = orch.call("POST", "/v1/slots", {"name": "a", "memory": "256M"})
    assert st == 201 and s["encrypted"] is True, s
    st, s2 = orch.call("POST", "/v1/slots", {"name": "b", "memory": "256M", "encrypt": True})
    assert st == 201 and s2["encrypted"] is True, s2
    ka, kb = c1.vms["a"]["key"], c1.vms["b"]["key"]
    assert len(ka) == 64 and int(ka, 16) and ka != kb          # 32 random bytes each
    # Never shown: not in the slot, not in the list.
    for path in ("/v1/slots/a", "/v1/slots"):
        text = str(orch.call("GET", path)[1])
        assert ka not in text and kb not in text
    db = sqlite3.connect(orch.db)
    keys = dict(db.execute("SELECT name, page_key FROM slots").fetchall())
    db.close()
    assert keys == {"a": ka, "b": kb}


def test_encrypt_false_and_bad_values(orch, fakemem, computes, hb_factory):
    hb, (c1,) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8)
    st, s = orch.call("POST", "/v1/slots", {"name": "clear", "memory": "256M", "encrypt": False})
    assert st == 201 and s["encrypted"] is False, s
    assert not c1.vms["clear"].get("key")
    for bad in ("yes", 1, None, {}):
        st, ans = orch.call("POST", "/v1/slots", {"name": "x", "memory": "256M", "encrypt": bad})
        assert st == 400 and err(ans) == "bad_request", (bad, ans)
        assert "encrypt" in ans["error"]["message"]
    assert "x" not in c1.vms


def test_compute_migration_hands_the_key_and_metadata_over(orch, fakemem, computes, hb_factory):
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "m", "memory": "256M"})
    assert st == 201, s
    key = c1.vms["m"]["key"]
    st, ans = orch.call("POST", "/v1/slots/m/migrate", {"to": 11})
    assert st == 200 and ans["slot"]["compute"] == 11 and ans["slot"]["encrypted"], ans
    assert c2.vms["m"]["key"] == key                  # the same slot key
    assert c2.vms["m"]["meta_pending"] is False       # its faults were let go


def test_a_failed_hand_over_fails_the_slot(orch, fakemem, computes, hb_factory):
    """The destination refuses the last part of the page metadata (after
    the switchover; test_page_meta.py has the pre-copy): the guest there
    would wait for ever, so the slot is failed with the reason, not running."""
    hb, (c1, c2) = cluster(orch, fakemem, computes, hb_factory, nmem=2, nsec=8, ncomp=2)
    st, s = orch.call("POST", "/v1/slots", {"name": "f", "memory": "256M"})
    assert st == 201, s
    c2.refuse_path("/page-meta?done=1")
    st, ans = orch.call("POST", "/v1/slots/f/migrate", {"to": 11})
    assert st == 503 and err(ans) == "migration_failed", ans
    assert "page metadata" in ans["error"]["message"], ans
    s = orch.call("GET", "/v1/slots/f")[1]
    assert s["state"] == "failed" and "page metadata" in s["reason"], s
