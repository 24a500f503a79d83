# SPDX-License-Identifier: MIT
"""Shared regions on the fake compute agent (fakes.FakeCompute).

The agent's region endpoints as the orchestrator drives them (the compute
agent API of the shared-regions contract, docs/api.md "Shared regions"):

    POST   /v1/vms/NAME/regions                 attach (201 {region, pci, ms})
    GET    /v1/vms/NAME/regions                 list for a migration ({regions: [...]})
    DELETE /v1/vms/NAME/regions/ID              detach ({flushed_pages, fenced})
    POST   /v1/vms/NAME/regions/ID/acquire      take the lock's grants ({dropped_pages, ms})
    POST   /v1/vms/NAME/regions/ID/release      write back, read-only ({flushed_pages, ms})
    POST   /v1/vms/NAME/regions/ID/invalidate   drop cached pages ({dropped_pages})
    POST   /v1/vms/NAME/regions/ID/move         {"phase": "quiesce" | "switch" | "resume"}:
                                                a region moving to another memory node
                                                (and "writeback" ahead of the quiesce)

and, for a region in mode release, release ({published_pages, diff_bytes,
ms}) and acquire ({dropped_pages, ms}) with an empty body: the agent's
own sync points, no grants.

with the checks the agent makes (size a power of two and a whole number
of sections, one grant per section held by this node, read-only grants
unless writable, read-write ones to acquire), bookkeeping only. A VM's
regions show in GET /v1/vms/NAME (without grants) and renewals take their
grants (fakes.FakeCompute._renew).

Failure knobs on the FakeCompute, per operation ("attach", "detach",
"acquire", "release", "invalidate", and the move's phases "writeback",
"quiesce", "switch", "resume"):
    fail_region[op] = (status, code)   answer that error, do nothing
    region_hangup[op] = "drop"         hang up, do nothing
    region_hangup[op] = "apply"        do it, then hang up (the answer is lost)
    region_hangup[op] = "apply-die"    the same, then answer nothing (fake.dead)
LOG records every region call any fake took, in order:
(node id, op, vm, region, body).
"""
import re
import struct
import threading

from dproto import GRANT

SECTION_SIZE = 128 << 20
PATH = re.compile(r"/v1/vms/([^/]+)/regions(?:/([^/]+)(?:/(acquire|release|invalidate|move))?)?")
ATTACH_KEYS = {"region", "mode", "size", "sections", "writable"}
R_READ, R_WRITE = 1, 2
LOG = []
_log_lock = threading.Lock()


class _Silent:
    """Stands in for a request handler whose answer is lost."""

    def _send(self, *a, **kw):
        return None

    _err = _send


def knobs(fake, h, what, fails, hangups):
    """The failure knobs of a request `what` to `fake`: refused (fails[what]
    = (status, code)) or hung up on (hangups[what] = "drop"): None, answered;
    "apply" or "apply-die": the handler to do it through, whose answer is
    lost ("apply-die": the fake answers nothing more until `dead` is False
    again); else h itself."""
    if what in fails:
        st, code = fails[what]
        h._err(st, code, f"{what} refused by the fake")
        return None
    hang = hangups.get(what)
    if hang == "drop":
        h.close_connection = True
        return None
    if hang in ("apply", "apply-die"):
        h.close_connection = True
        fake.dead = hang == "apply-die"
        return _Silent()
    return h


def grant_fields(hexgrant):
    """(memnode, holder, section, generation, rights, epoch, expiry) of a grant in hex."""
    return GRANT.unpack(bytes.fromhex(hexgrant))[:7]


def section_json(s):
    """A region's section as the agent reports it: where it lives, not its grant."""
    memnode, _, sec, gen = grant_fields(s["grant"])[:4]
    return {"kind": "remote", "addr": s["addr"], "memnode": memnode, "section": sec,
            "generation": gen, "free_on_release": False}


def region_json(r):
    return {"region": r["region"], "mode": r["mode"], "size": r["size"], "pci": r["pci"],
            "writable": r["writable"], "sections": [section_json(s) for s in r["sections"]]}


def _check_grants(fake, grants, count, write):
    """Why a list of grants is refused (None: it is fine)."""
    if not isinstance(grants, list) or len(grants) != count:
        return f"{count} grants expected, one per section"
    for hx in grants:
        try:
            f = grant_fields(hx) if isinstance(hx, str) and len(hx) == 2 * GRANT.size else None
        except (ValueError, struct.error):
            f = None
        if f is None:
            return "not a grant"
        if f[1] != fake.node_id:
            return f"a grant held by node {f[1]}, not this one"
        if bool(f[4] & R_WRITE) != write or not f[4] & R_READ:
            return "read-write grants expected" if write else "read-only grants expected"
    return None


def dispatch(fake, h, method, groups, body):
    """A region request to FakeCompute `fake` (its lock held)."""
    name, rid, op = groups
    what = {("POST", None, None): "attach", ("GET", None, None): "list",
            ("DELETE", "id", None): "detach",
            ("POST", "id", "acquire"): "acquire", ("POST", "id", "release"): "release",
            ("POST", "id", "invalidate"): "invalidate"}.get(
                (method, "id" if rid else None, op))
    if (method, op) == ("POST", "move") and rid:
        what = str((body or {}).get("phase"))
    if what is None:
        return h._err(405, "method_not_allowed", "no such method here")
    with _log_lock:
        LOG.append((fake.node_id, what, name, rid or (body or {}).get("region"), body))
    h = knobs(fake, h, what, fake.fail_region, fake.region_hangup)
    if h is None:
        return None
    vm = fake.vms.get(name)
    if vm is None:
        return h._err(404, "not_found", "no such VM")
    regions = vm.setdefault("regions", {})
    if what == "list":
        return h._send(200, {"regions": [dict(region_json(r), mapped=True, bar=BAR)
                                         for r in regions.values()]})
    if what == "attach":
        return _attach(fake, h, vm, regions, body)
    r = regions.get(rid)
    if r is None:
        return h._err(404, "no_region", f"region {rid} is not attached to {name}")
    if op == "move":
        return _move(fake, h, r, what, body)
    if what == "detach":
        del regions[rid]
        flushed = r.pop("dirty", 0) if r["writable"] else 0
        return h._send(200, {"flushed_pages": flushed, "fenced": False})
    if what == "invalidate":
        if body not in ({}, None):
            return h._err(400, "bad_request", "an empty object expected")
        dropped, r["cached"] = r.get("cached", 0), 0
        return h._send(200, {"dropped_pages": dropped, "ms": 0})
    if r["mode"] == "release":
        if body not in ({}, None):
            return h._err(400, "bad_request", "release and acquire take an empty object")
        if what == "acquire":
            dropped, r["cached"] = r.get("cached", 0), 0
            return h._send(200, {"dropped_pages": dropped, "ms": 1})
        return h._send(200, {"published_pages": r.pop("dirty", 0), "diff_bytes": 0, "ms": 2})
    if not isinstance(body, dict) or set(body) != {"grants"}:
        return h._err(400, "bad_request", "{\"grants\": [...]} expected")
    why = _check_grants(fake, body["grants"], len(r["sections"]), what == "acquire")
    if why:
        return h._err(400, "bad_request", why)
    epochs = [grant_fields(s["grant"])[5] for s in r["sections"]]
    if any(grant_fields(g)[5] < e for g, e in zip(body["grants"], epochs)):
        return h._err(409, "stale_epoch", "grants of an older epoch")
    for s, g in zip(r["sections"], body["grants"]):
        s["grant"] = g
    if what == "acquire":
        dropped, r["cached"] = r.get("cached", 0), 0
        r["writable"] = True
        return h._send(200, {"dropped_pages": dropped, "ms": 1})
    r["writable"] = False
    return h._send(200, {"flushed_pages": r.pop("dirty", 0), "ms": 2})


def _attach(fake, h, vm, regions, body):
    if not isinstance(body, dict) or set(body) - ATTACH_KEYS or \
            ATTACH_KEYS - {"writable"} - set(body):
        return h._err(400, "unknown_field", "bad body")
    if vm.get("state", "running") != "running":
        return h._err(409, "not_running", "the VM is not running")
    rid, size, secs = body["region"], body["size"], body["sections"]
    if rid in regions:
        return h._err(409, "region_attached", f"region {rid} is attached already")
    if body["mode"] not in ("exclusive", "strict", "release"):
        return h._err(400, "bad_request", "mode exclusive, strict or release")
    if not isinstance(size, int) or size <= 0 or size & (size - 1) or size % SECTION_SIZE:
        return h._err(400, "bad_request", "size: a power of two, a multiple of the section")
    if not isinstance(secs, list) or any(set(s) != {"kind", "addr", "grant"} or
                                         s["kind"] != "remote" for s in secs):
        return h._err(400, "bad_request", "bad sections")
    # the real agent: every user of a strict or release region writes
    write = bool(body.get("writable", False)) or body["mode"] != "exclusive"
    why = _check_grants(fake, [s["grant"] for s in secs], size // SECTION_SIZE, write)
    if why:
        return h._err(400, "bad_request", why)
    fake.next_pci = getattr(fake, "next_pci", 3) + 1
    regions[rid] = {"region": rid, "mode": body["mode"], "size": size,
                    "pci": "0000:00:%02x.0" % fake.next_pci, "writable": write,
                    "sections": [dict(s) for s in secs]}
    return h._send(201, {"region": rid, "pci": regions[rid]["pci"], "ms": 3})


def _move(fake, h, r, phase, body):
    """The phases of a move: writeback, quiesce parks (a holder's pages are
    written back), switch takes other sections (only parked), resume."""
    if phase == "writeback":
        return h._send(200, {"phase": phase, "flushed_pages": r.pop("dirty", 0), "ms": 1})
    if phase == "quiesce":
        r["parked"] = True
        return h._send(200, {"phase": phase, "flushed_pages": r.pop("dirty", 0),
                             "dropped_pages": r.pop("cached", 0), "ms": 1})
    if phase == "resume":
        was, r["parked"] = r.get("parked", False), False
        return h._send(200, {"phase": phase, "already": not was, "attached": True})
    if phase != "switch":
        return h._err(400, "bad_request", "phase quiesce, switch or resume")
    secs = body.get("sections")
    if not isinstance(secs, list) or any(not isinstance(s, dict) or
                                         set(s) != {"kind", "addr", "grant"} for s in secs):
        return h._err(400, "bad_request", "bad sections")
    why = _check_grants(fake, [s["grant"] for s in secs], len(r["sections"]), r["writable"])
    if why:
        return h._err(400, "bad_request", why)
    if not r.get("parked"):
        return h._err(409, "not_quiesced", "quiesce it first")
    r["sections"] = [dict(s) for s in secs]
    return h._send(200, {"phase": phase})


BAR = 0xf0000000   # where the fake's guests map every region's BAR2


def incoming(regions):
    """The regions an incoming VM brings (POST /v1/vms "regions"), as attach keeps them."""
    return {r["region"]: {"region": r["region"], "mode": r["mode"], "size": r["size"],
                          "pci": r["pci"], "writable": r["writable"],
                          "sections": [dict(s) for s in r["sections"]]} for r in regions}


def calls(op=None, region=None):
    """LOG entries of one operation and region (None: any)."""
    with _log_lock:
        return [e for e in LOG if (op is None or e[1] == op) and
                (region is None or e[3] == region)]
