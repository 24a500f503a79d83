# SPDX-License-Identifier: MIT
"""Remote disks on the fake compute agent (fakes.FakeCompute).

The agent's disk endpoints as the orchestrator drives them (docs/compute.md,
"/v1/vms/NAME/disks"; the real one is src/compute/vm_disk.c):

    POST   /v1/vms/NAME/disks       attach {"volume", "devnode": "HOST:PORT", "grant",
                                    "read_only", "serial", "outage_ms"} -> 201, the disk
                                    (with "queues": one per vCPU, at most 8)
    GET    /v1/vms/NAME/disks       {"disks": [...]}
    DELETE /v1/vms/NAME/disks/ID    detach -> {"detached": ID}; 404 for no such disk

with the real agent's checks in its order: a bad body 400; a VM that does
not run 409 not_running (remote memory is no reason: the real agent's
pager serves the disk's view of guest RAM); 8 disks, or the volume
attached already, 409 attach_failed; a grant that is not hex 400
attach_failed. Then the volume is opened on the device node at "devnode"
with the grant, as this node (BLK_OPEN, read-only if asked), when the fake
has the cluster key (`disk_key`, a dproto.Keys: the real device node then
checks the grant), and stays open until the detach or the VM's delete; the
device node's refusal is 502 attach_failed, as the real agent's. Without
`disk_key` the grant is checked by its fields (held by this node) only.
A VM's disks show in GET /v1/vms/NAME ("disks", when it has any), each with
its "pci" address in the guest (the fake's: disk N at 0000:00:(18+N).0).

Compute migration (docs/compute.md, "POST /v1/vms with incoming"): an
incoming VM takes "disks", each an attach's body plus the source's "id" and
"pci", checked as an attach (400 for a bad one: incoming()); the disks show
in its status at once, but their volumes open on the device node with the
destination's grants only when the VM arrives (arrive(): the real agent
opens at the guest's first use there, once the source has stopped).

Failure knobs on the FakeCompute, per operation ("attach", "detach", "list"),
as fake_regions.knobs:
    fail_disk[op] = (status, code)   answer that error, do nothing
    disk_hangup[op] = "drop"         hang up, do nothing
    disk_hangup[op] = "apply"        do it, then hang up (the answer is lost)
LOG records every disk call any fake took, in order: (node id, op, vm, body).
"""
import re
import threading

import dproto as dp
import fake_regions

PATH = re.compile(r"/v1/vms/([^/]+)/disks(?:/([^/]+))?")
ATTACH_KEYS = {"volume", "devnode", "grant", "read_only", "serial", "outage_ms"}
INCOMING_KEYS = ATTACH_KEYS | {"id", "pci"}
PCI_FIRST_SLOT = 0x18             # disk N at 0000:00:(18+N).0 (the fake's choice)
_PCI = re.compile(r"0000:00:[0-1][0-9a-f]\.0")
MAX_DISKS = 8
MAX_QUEUES = 8                    # a virtqueue per vCPU, at most this many
R_WRITE = 2
LOG = []
_log_lock = threading.Lock()
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def calls(op=None):
    with _log_lock:
        return [e for e in LOG if op is None or e[1] == op]


def disk_json(d):
    return {k: d[k] for k in ("id", "volume", "devnode", "size", "read_only", "serial",
                              "socket", "queues", "pci") if d.get(k) is not None}


def close_all(vm):
    """The VM goes: its disks' volumes close (the real agent's disk_free)."""
    for d in vm.pop("disks", {}).values():
        _close(d)


def _close(d):
    conn = d.pop("conn", None)
    if conn is not None:
        try:
            conn.blk_close(d["handle"])
        except (OSError, dp.ProtoError):
            pass
        conn.close()


def _open(fake, body, grant):
    """Open the volume on the device node with the grant: (conn, handle, size),
    or raises (OSError, dp.ProtoError) as the device node refused."""
    conn = dp.DevConn(body["devnode"], tls=False).login(fake.disk_key, fake.node_id, orch=False)
    try:
        h, size = conn.blk_open(grant, body["volume"],
                                dp.BLK_RDONLY if body.get("read_only") else 0)
    except BaseException:
        conn.close()
        raise
    return conn, h, size


def _entry(body, keys, vcpus):
    """A disk from an attach's body (keys: what it may have): (disk, None), or
    (None, (status, code, message)) as the real agent refuses it."""
    if not isinstance(body, dict) or set(body) - keys:
        return None, (400, "unknown_field", "bad body")
    vol, devnode, grant = body.get("volume"), body.get("devnode"), body.get("grant")
    serial = body.get("serial")
    if not isinstance(vol, str) or not _NAME.fullmatch(vol) or not isinstance(devnode, str) \
            or not isinstance(grant, str) or (serial is not None and
                                              (not isinstance(serial, str) or len(serial) > 20)):
        return None, (400, "bad_request", '"volume" (a volume name), "devnode" (HOST:PORT) '
                      'and "grant" are required; "serial" is at most 20 characters')
    if not isinstance(body.get("read_only", False), bool):
        return None, (400, "bad_request", '"read_only" must be a boolean')
    try:
        g = bytes.fromhex(grant)
        if len(g) != dp.GRANT.size:
            raise ValueError("length")
    except ValueError:
        return None, (400, "attach_failed", '"grant" is not a grant (208 hex digits)')
    return {"volume": vol, "devnode": devnode, "read_only": bool(body.get("read_only")),
            "serial": serial or vol[:20], "grant": dp.GRANT.unpack(g), "raw": g, "size": 0,
            "queues": min(vcpus, MAX_QUEUES)}, None


def _take(fake, d):
    """Open d's volume on its device node with its grant (disk_key), or check
    the grant's fields: None, or why the device node refuses it."""
    if fake.disk_key is not None:
        try:
            d["conn"], d["handle"], d["size"] = _open(fake, d, d["raw"])
        except (OSError, dp.ProtoError) as e:
            return f"device node {d['devnode']}, volume {d['volume']}: {e}"
        return None
    fields = d["grant"]
    if fields[1] != fake.node_id or not fields[4] & 1 or \
            (not d["read_only"] and not fields[4] & R_WRITE):
        return f"device node {d['devnode']}, volume {d['volume']}: Key was rejected by service"
    return None


def _place(fake, vm, d, idx, pci=None):
    d["id"] = f"disk{idx}"
    d["pci"] = pci or f"0000:00:{PCI_FIRST_SLOT + idx:02x}.0"
    d["socket"] = f"/run/fake-compute-{fake.node_id}/{vm['name']}/disk{idx}.sock"


def _attach(fake, h, vm, body):
    d, why = _entry(body, ATTACH_KEYS, vm["vcpus"])
    if why is not None:
        return h._err(*why)
    if vm.get("state", "running") != "running":
        return h._err(409, "not_running", f"VM is {vm.get('state')}")
    disks = vm.setdefault("disks", {})
    if len(disks) >= MAX_DISKS:
        return h._err(409, "attach_failed", f"the VM has {MAX_DISKS} disks already")
    for x in disks.values():
        if x["volume"] == d["volume"]:
            return h._err(409, "attach_failed",
                          f"volume {d['volume']} is attached already ({x['id']})")
    why = _take(fake, d)
    if why is not None:
        return h._err(502, "attach_failed", why)
    _place(fake, vm, d, next(i for i in range(MAX_DISKS) if f"disk{i}" not in disks))
    disks[d["id"]] = d
    return h._send(201, disk_json(d))


def incoming(fake, name, entries, vcpus):
    """The "disks" of an incoming VM (each an attach's body plus the source's
    "id" and "pci"), checked as an attach's: ({id: disk}, None) or (None, why).
    Nothing is opened before the VM arrives (arrive())."""
    if not isinstance(entries, list) or len(entries) > MAX_DISKS:
        return None, f'"disks" must be a list of at most {MAX_DISKS} disks'
    disks = {}
    for e in entries:
        d, why = _entry(e, INCOMING_KEYS, vcpus)
        if why is not None:
            return None, f"bad disk: {why[2]}"
        ident, pci = e.get("id"), e.get("pci")
        m = re.fullmatch(r"disk(\d)", ident) if isinstance(ident, str) else None
        if m is None or int(m.group(1)) >= MAX_DISKS or ident in disks or \
                not isinstance(pci, str) or not _PCI.fullmatch(pci):
            return None, ('each disk needs its "id" (diskN, once) and "pci" (the source\'s '
                          'address, 0000:00:SS.0)')
        if any(x["volume"] == d["volume"] for x in disks.values()):
            return None, f"volume {d['volume']} twice"
        _place(fake, {"name": name}, d, int(m.group(1)), pci)
        d["arrive"] = True
        disks[ident] = d
    return disks, None


def at_create(fake, entries, vcpus):
    """The "disks" of a new VM (each an attach's body plus an optional "id"),
    opened at once as the real agent does before QEMU starts: ({id: disk},
    None), or (None, (status, why)) with what was opened closed again."""
    if not isinstance(entries, list) or len(entries) > MAX_DISKS:
        return None, (400, f'"disks" must be a list of at most {MAX_DISKS} disks')
    disks = {}
    for i, e in enumerate(entries):
        d, why = _entry(e, ATTACH_KEYS | {"id"}, vcpus)
        ident = e.get("id", f"disk{i}") if isinstance(e, dict) else None
        if why is None and (not isinstance(ident, str) or not re.fullmatch(r"disk\d", ident)
                            or ident in disks):
            why = (400, "bad_request", '"id" must be disk0 to disk7, once')
        if why is None:
            msg = _take(fake, d)
            if msg is not None:
                why = (502, "start_failed", msg)
        if why is not None:
            for x in disks.values():
                _close(x)
            return None, (why[0], why[2])
        _place(fake, {"name": "vm"}, d, int(ident[4:]))
        disks[ident] = d
    return disks, None


def arrive(fake, vm):
    """The incoming VM runs here now: its disks open their volumes with the
    destination's grants, as the real agent's do at the guest's first use
    (the source has stopped). A refusal is kept in the disk's "open_error"."""
    for d in vm.get("disks", {}).values():
        if d.pop("arrive", False):
            why = _take(fake, d)
            if why is not None:
                d["open_error"] = why


def dispatch(fake, h, method, groups, body):
    """One disk request to `fake` (its lock held): groups = (vm, disk id)."""
    name, ident = groups
    op = {"POST": "attach", "DELETE": "detach", "GET": "list"}.get(method, method)
    with _log_lock:
        LOG.append((fake.node_id, op, name, body))
    h = fake_regions.knobs(fake, h, op, fake.fail_disk, fake.disk_hangup)
    if h is None:
        return None
    vm = fake.vms.get(name)
    if vm is None:
        return h._err(404, "not_found", "no such VM")
    if ident is None and method == "POST":
        return _attach(fake, h, vm, body)
    if ident is None and method == "GET":
        return h._send(200, {"disks": [disk_json(d) for d in vm.get("disks", {}).values()]})
    if ident is not None and method == "DELETE":
        if vm.get("state", "running") != "running":
            return h._err(409, "not_running", f"VM is {vm.get('state')}")
        d = vm.get("disks", {}).pop(ident, None)
        if d is None:
            return h._err(404, "not_found", f"no disk {ident}")
        _close(d)
        return h._send(200, {"detached": ident})
    return h._err(405, "method_not_allowed", "use GET or POST .../disks, DELETE .../disks/ID")


def grant_of(entry):
    """The grant fields (memnode, holder, section, generation, rights, epoch,
    expiry) a LOG entry of an attach carried."""
    return dp.GRANT.unpack(bytes.fromhex(entry[3]["grant"]))[:7]
