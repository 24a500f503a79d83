#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Print the closing 'N passed, N failed, N skipped' line of a meson test run.

Reads meson's testlog.json (one JSON object per test). TAP tests count each
of their subtests; other tests count once.
"""
import json
import re
import sys


def tap_counts(stdout):
    passed = failed = skipped = 0
    for line in stdout.splitlines():
        m = re.match(r"^(not ok|ok)\b(.*)$", line)
        if not m:
            continue
        rest = m.group(2)
        if re.search(r"#\s*skip", rest, re.I):
            skipped += 1
        elif m.group(1) == "ok" or re.search(r"#\s*todo", rest, re.I):
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def is_tap(t):
    """meson >= 1.1 records the protocol; 1.0 (Debian 12) does not, so fall
    back to looking for a TAP plan line ("1..N") in the output."""
    if "protocol" in t:
        return t["protocol"] == "tap"
    return re.search(r"^1\.\.\d+", t.get("stdout") or "", re.M) is not None


def main(path):
    passed = failed = skipped = 0
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"no test log: {e}")
        print("0 passed, 1 failed")
        return 1
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        res = t.get("result", "")
        if is_tap(t) and res in ("OK", "FAIL", "SKIP"):
            p, f, s = tap_counts(t.get("stdout") or "")
            if p + f + s:
                passed, failed, skipped = passed + p, failed + f, skipped + s
                if res == "FAIL" and f == 0:
                    failed += 1
                continue
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
