# SPDX-License-Identifier: MIT
"""The compute agent's answers against tests/schema/compute-agent.json.

The fake agent (fakes.py) checks every answer it sends, and the VM tests
check the real disagg-compute's answers, against the same schema: when one
of them changes, a test says so, instead of the orchestrator reading a
member only the fake has.

A small checker for the part of JSON Schema the file uses (type, enum,
const, required, properties, additionalProperties: false, items, oneOf,
minimum, $ref to #/$defs/NAME): Debian's python3 has no jsonschema module
installed by default, and the file stays valid JSON Schema for one.
"""
import json
import pathlib
import re

SCHEMA_PATH = pathlib.Path(__file__).resolve().parents[1] / "schema" / "compute-agent.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {"$comment", "$ref", "type", "enum", "const", "required", "properties",
          "additionalProperties", "items", "oneOf", "minimum"}


def _errors(v, s, where):
    unknown = set(s) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} at {where}: not supported here")
    if "$ref" in s:
        name = s["$ref"].removeprefix("#/$defs/")
        return _errors(v, SCHEMA["$defs"][name], where)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_TYPES[t](v) for t in types):
            return [f"{where}: {v!r} is not of type {' or '.join(types)}"]
    if "const" in s and v != s["const"]:
        return [f"{where}: {v!r} is not {s['const']!r}"]
    if "enum" in s and v not in s["enum"]:
        return [f"{where}: {v!r} is not one of {s['enum']}"]
    if "minimum" in s and v < s["minimum"]:
        return [f"{where}: {v!r} is below {s['minimum']}"]
    if "oneOf" in s:
        fits = [_errors(v, alt, where) for alt in s["oneOf"]]
        if sum(not e for e in fits) != 1:
            return [f"{where}: matches {sum(not e for e in fits)} of the alternatives, "
                    f"not one: " + "; ".join(e[0] for e in fits if e)]
    out = []
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v:
                out.append(f"{where}: member {k!r} is missing")
        props = s.get("properties", {})
        for k, x in v.items():
            if k in props:
                out += _errors(x, props[k], f"{where}.{k}")
            elif s.get("additionalProperties", True) is False:
                out.append(f"{where}: member {k!r} is not in {SCHEMA_PATH.name}")
    if isinstance(v, list) and "items" in s:
        for i, x in enumerate(v):
            out += _errors(x, s["items"], f"{where}[{i}]")
    return out


def errors(answer, name):
    """Why `answer` does not fit definition `name` of the schema ([] if it fits)."""
    return _errors(answer, {"$ref": f"#/$defs/{name}"}, name)


_ROUTES = [
    ("GET", r"/v1/vms", "vm_list"),
    ("POST", r"/v1/vms", "vm"),
    ("GET", r"/v1/vms/[^/]+", "vm"),
    ("POST", r"/v1/vms/[^/]+/(stop|flush)", "vm"),
    ("PUT", r"/v1/vms/[^/]+/budget", "vm"),
    ("POST", r"/v1/vms/[^/]+/sections", "hot_add"),
    ("DELETE", r"/v1/vms/[^/]+/sections/\d+", "hot_remove"),
    ("POST", r"/v1/vms/[^/]+/sections/migrate", "memmig"),
    ("POST", r"/v1/vms/[^/]+/sections/evacuate", "evacuate"),
    ("POST", r"/v1/vms/[^/]+/sections/replica", "replica_drop"),
    ("POST", r"/v1/vms/[^/]+/migrate", "migrate"),
    ("POST", r"/v1/vms/[^/]+/prefetch", "prefetch"),
    ("POST", r"/v1/vms/[^/]+/grants", "grants"),
    ("POST", r"/v1/vms/[^/]+/regions", "region_attach"),
    ("DELETE", r"/v1/vms/[^/]+/regions/[^/]+", "region_detach"),
    ("POST", r"/v1/vms/[^/]+/regions/[^/]+/acquire", "region_acquire"),
    ("POST", r"/v1/vms/[^/]+/regions/[^/]+/release", "region_release"),
    ("POST", r"/v1/vms/[^/]+/regions/[^/]+/invalidate", "region_invalidate"),
    ("POST", r"/v1/vms/[^/]+/disks", "disk"),
    ("GET", r"/v1/vms/[^/]+/boot", "vm_boot"),
    ("GET", r"/v1/vms/[^/]+/console/output", "console_output"),
    ("POST", r"/v1/vms/[^/]+/console/input", "console_input"),
]


def answer_def(method, path, status):
    """The schema definition of an answer, or None (not JSON the orchestrator reads)."""
    path = path.split("?", 1)[0].rstrip("/")
    if not path.startswith("/v1/vms") or status == 204:
        return None
    if status >= 400:
        return "error"
    for m, pattern, name in _ROUTES:
        if m == method and re.fullmatch(pattern, path):
            return name
    return None


def check_answer(method, path, status, answer):
    """Problems with one answer of the agent, as strings ([] when it fits)."""
    name = answer_def(method, path, status)
    if name is None:
        return []
    return [f"{method} {path} -> {status}: {e}" for e in errors(answer, name)]
