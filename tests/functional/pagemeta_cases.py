# SPDX-License-Identifier: MIT
"""A sealed VM's page-metadata endpoints (docs/compute.md, "page-meta"):
binary requests, and the bad requests both the real agent and the fake
one (fakes.py) must refuse the same way (status and error code), each
counted in disagg_compute_page_meta_refused_total."""
import http.client
import json
import struct

RECORD = 28
PART_MAX = 131072
STORED = 1 << 63
OCTETS = "application/octet-stream"


def record(page, ver, tag=b"\x11" * 16):
    return struct.pack("<IQ", page, ver) + tag


def records(data):
    """{page: 24-byte entry} of a records body."""
    assert len(data) % RECORD == 0, len(data)
    return {struct.unpack_from("<I", data, o)[0]: data[o + 4:o + RECORD]
            for o in range(0, len(data), RECORD)}


def request(addr, method, path, body=None, ctype=OCTETS, headers=None, timeout=60):
    """(status, bytes, {header: value}) of one call to an agent at addr."""
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = ctype
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def code(data):
    try:
        return json.loads(data)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def source_cases(name):
    """A running sealed VM with no snapshot yet: (label, method, path, body, ctype)."""
    p = f"/v1/vms/{name}/page-meta"
    return [
        ("GET, no snapshot", "GET", p, None, None),
        ("GET precopy, none taken", "GET", p + "?of=precopy", None, None),
        ("GET delta, none taken", "GET", p + "?of=delta&base=1", None, None),
        ("GET delta without base", "GET", p + "?of=delta", None, None),
        ("GET bad kind", "GET", p + "?of=everything", None, None),
        ("GET max 0", "GET", p + "?max=0", None, None),
        ("GET bad from", "GET", p + "?from=-1", None, None),
    ]


def pending_cases(name):
    """A destination still waiting for its table: nothing here is taken."""
    p = f"/v1/vms/{name}/page-meta"
    return [
        ("not whole records", "POST", p, record(1, 1)[:-1], OCTETS),
        ("a page outside the VM", "POST", p, record(1, 1) + record(0xFFFFFFFF, 1), OCTETS),
        ("version 0", "POST", p, record(2, 1) + record(3, STORED), OCTETS),
        ("JSON, the old format", "POST", p, json.dumps({"records": "", "done": True}).encode(),
         "application/json"),
        ("bad done", "POST", p + "?done=maybe", record(1, 1), OCTETS),
        ("one part too large", "POST", p, record(5, 1) * (PART_MAX + 1), OCTETS),
    ]


def done_cases(name):
    """A destination whose table is complete."""
    p = f"/v1/vms/{name}/page-meta"
    return [
        ("POST after done", "POST", p, record(1, 7), OCTETS),
        ("POST done again", "POST", p + "?done=1", b"", OCTETS),
    ]


EXPECTED = {
    "GET, no snapshot": (404, "no_snapshot"),
    "GET precopy, none taken": (404, "no_snapshot"),
    "GET delta, none taken": (404, "no_snapshot"),
    "GET delta without base": (400, "bad_request"),
    "GET bad kind": (400, "bad_request"),
    "GET max 0": (400, "bad_request"),
    "GET bad from": (400, "bad_request"),
    "not whole records": (400, "bad_request"),
    "a page outside the VM": (400, "bad_request"),
    "version 0": (400, "bad_request"),
    "JSON, the old format": (415, "unsupported_media_type"),
    "bad done": (400, "bad_request"),
    "one part too large": (413, "too_large"),
    "POST after done": (409, "conflict"),
    "POST done again": (409, "conflict"),
}


def run_cases(addr, cases, headers=None):
    """{label: (status, code, message)} of each case against one agent."""
    out = {}
    for label, method, path, body, ctype in cases:
        st, data, _ = request(addr, method, path, body, ctype or OCTETS, headers)
        msg = ""
        try:
            msg = json.loads(data)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        out[label] = (st, code(data), msg)
    return out
