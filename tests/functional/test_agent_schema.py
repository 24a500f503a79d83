# SPDX-License-Identifier: MIT
"""The fake compute agent answers like the real one.

tests/schema/compute-agent.json describes the answers of the compute
agent's API that the orchestrator reads. Here: the checker refuses what
it must (a section that carries its grant, as the fake once did, a missing
or mistyped member), and the fake agent's answers on every route the
orchestrator uses fit the schema. The VM tests check the real
disagg-compute's answers against the same file (tests/vm/vmlib.py), and
the orchestrator tests fail on any answer of a fake that does not fit.
"""
import copy
import http.client
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import agentschema
from dproto import mint_grant
from fakes import FakeCompute

KEY = Ed25519PrivateKey.generate()   # the test mints as the orchestrator
REMOTE = {"kind": "remote", "addr": "127.0.0.1:7100", "memnode": 101, "section": 3,
          "generation": 7, "free_on_release": False}
VM = {"name": "web", "state": "running", "pid": 42, "vcpus": 1, "accel": "tcg",
      "hotplug": "dimm", "section_size": 128 << 20, "memory_bytes": 256 << 20,
      "sections": [{"kind": "local"}, REMOTE],
      "hot_sections": [dict(REMOTE, index=0, plugged=True, gpa=1 << 32, slot=0)],
      "guest_memtotal_kb": 200000, "cache_bytes": None, "migrating": False}


def test_schema_is_complete():
    """Every reference resolves, and the checker knows every keyword used."""
    text = agentschema.SCHEMA_PATH.read_text()
    for ref in set(x.split('"')[0] for x in text.split('"$ref": "#/$defs/')[1:]):
        assert ref in agentschema.SCHEMA["$defs"], ref
    for name in json.loads(text)["$defs"]:
        agentschema.errors(VM, name)            # raises on an unsupported keyword


def test_checker_refuses_what_it_must():
    assert agentschema.errors(VM, "vm") == []
    # A section that carries its grant (the fake's old answers): refused.
    bad = copy.deepcopy(VM)
    bad["sections"][1]["grant"] = "00" * 104
    (e,) = agentschema.errors(bad, "vm")
    assert "grant" in e and "sections[1]" in e, e
    bad = copy.deepcopy(VM)
    del bad["sections"][1]["generation"]
    assert agentschema.errors(bad, "vm")
    bad = copy.deepcopy(VM)
    bad["hot_sections"][0]["memnode"] = "101"
    assert agentschema.errors(bad, "vm")
    bad = dict(VM, state="sleeping")
    assert agentschema.errors(bad, "vm")
    bad = dict(VM)
    del bad["hot_sections"]
    assert agentschema.errors(bad, "vm")
    assert agentschema.errors({"vms": [VM]}, "vm_list") == []
    assert agentschema.errors({"error": {"code": "x", "message": "y"}}, "error") == []
    assert agentschema.errors({"error": "x"}, "error")
    # Which definition an answer has.
    assert agentschema.answer_def("GET", "/v1/vms/web?wait=running&timeout_ms=5", 200) == "vm"
    assert agentschema.answer_def("POST", "/v1/vms/web/sections/migrate", 200) == "memmig"
    assert agentschema.answer_def("DELETE", "/v1/vms/web/sections/2", 200) == "hot_remove"
    assert agentschema.answer_def("POST", "/v1/vms/web/migrate", 503) == "error"
    assert agentschema.answer_def("DELETE", "/v1/vms/web", 204) is None
    assert agentschema.answer_def("GET", "/v1/vms/web/console", 200) is None
    assert agentschema.answer_def("GET", "/v1/vms/web/boot", 200) == "vm_boot"


def _call(fake, method, path, body=None):
    host, port = fake.http.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None)
        r = c.getresponse()
        text = r.read()
    finally:
        c.close()
    return r.status, json.loads(text) if text else None


def _remote(memnode, holder, sec, gen):
    return {"kind": "remote", "addr": "127.0.0.1:7100",
            "grant": mint_grant(KEY, memnode, holder, sec, gen, 3).hex()}


def test_fake_answers_fit_the_schema():
    """Every route of the fake the orchestrator uses, good and bad."""
    a, b = FakeCompute(10), FakeCompute(11)
    try:
        st, vm = _call(a, "POST", "/v1/vms", {"name": "web", "vcpus": 1, "sections": [
            {"kind": "local"}, _remote(101, 10, 1, 1)]})
        assert st == 201 and vm["sections"][1]["memnode"] == 101, vm
        assert "grant" not in vm["sections"][1]
        assert _call(a, "GET", "/v1/vms/web")[0] == 200
        assert _call(a, "GET", "/v1/vms")[0] == 200
        assert _call(a, "GET", "/v1/vms/web/boot") == (200, {"boot": None, "cloud_init": None,
                                                            "seed": None})
        st, ans = _call(a, "POST", "/v1/vms", {"name": "img", "vcpus": 1, "sections": [],
                                               "boot": {"firmware": True},
                                               "cloud_init": {"hostname": "img"}})
        assert st == 201, ans
        st, ans = _call(a, "GET", "/v1/vms/img/boot")
        assert st == 200 and ans["seed"] == {"pci": "0000:00:18.0", "size": 1 << 20}, ans
        assert _call(a, "DELETE", "/v1/vms/img")[0] == 204
        st, ans = _call(a, "POST", "/v1/vms/web/sections", {"section": _remote(102, 10, 4, 2)})
        assert st == 200 and ans["vm"]["hot_sections"][0]["section"] == 4, ans
        frm, to = _remote(101, 10, 1, 1), _remote(102, 10, 5, 3)
        for phase in ("begin", "commit", "commit", "abort"):
            st, ans = _call(a, "POST", "/v1/vms/web/sections/migrate",
                            {"phase": phase, "from": frm, "to": to})
        assert st == 404 and ans["error"]["code"] == "no_section", ans
        st, ans = _call(a, "GET", "/v1/vms/web")
        assert ans["sections"][1]["section"] == 5, ans
        assert _call(a, "DELETE", "/v1/vms/web/sections/0")[0] == 200
        st, inc = _call(b, "POST", "/v1/vms", {"name": "web", "vcpus": 1, "sections": [],
                                               "incoming": {"listen": "127.0.0.1:0"}})
        assert st == 201 and inc["state"] == "incoming" and "migration_uri" in inc, inc
        st, ans = _call(a, "POST", "/v1/vms/web/migrate", {"uri": inc["migration_uri"]})
        assert st == 200, ans
        assert _call(a, "GET", "/v1/vms/web")[1]["state"] == "migrated"
        assert _call(a, "DELETE", "/v1/vms/web")[0] == 204
        assert _call(a, "GET", "/v1/vms/web")[0] == 404
        assert _call(a, "POST", "/v1/vms", {"name": "x", "bogus": 1})[0] == 400
        assert len(a.calls) + len(b.calls) >= 14
    finally:
        a.close()
        b.close()
    assert a.schema_errors == [] and b.schema_errors == []


def test_fake_misfit_is_reported():
    """A fake answer that does not fit ends up in schema_errors."""
    a = FakeCompute(10)
    try:
        st, _ = _call(a, "POST", "/v1/vms", {"name": "web", "vcpus": 1, "sections": []})
        assert st == 201
        a.vms["web"]["state"] = "sleeping"
        assert _call(a, "GET", "/v1/vms/web")[0] == 200
    finally:
        a.close()
    assert len(a.schema_errors) == 1 and "sleeping" in a.schema_errors[0], a.schema_errors
