# SPDX-License-Identifier: MIT
"""Every test file in the tree runs in `make check`: each tests/*/test_*.py
is named by a meson test's command line, and each tests/*/test_*.c is
built into an executable that a meson test runs. A file left out of its
meson.build would otherwise never run, and nothing would say so."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The fuzz targets run as fuzz_*; these directories hold test_* files.
DIRS = ("functional", "vm", "ui", "image", "unit", "pager", "shim", "vm_layers")


def introspect(what):
    build = os.environ.get("DISAGG_BUILD")
    if not build or not (pathlib.Path(build) / "meson-info").is_dir():
        pytest.skip("DISAGG_BUILD is not a meson build tree")
    p = subprocess.run(["meson", "introspect", what, build], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_every_test_file_is_run():
    tests = introspect("--tests")
    args = [a for t in tests for a in t["cmd"]]
    scripts = {pathlib.Path(a).resolve() for a in args if a.endswith(".py")}
    # The C sources of the executables that meson tests run.
    run = {pathlib.Path(t["cmd"][0]).resolve() for t in tests}
    sources = {pathlib.Path(src).resolve()
               for t in introspect("--targets")
               if any(pathlib.Path(f).resolve() in run for f in t["filename"])
               for ts in t["target_sources"] for src in ts.get("sources", [])}
    missing = []
    for d in DIRS:
        for f in sorted((ROOT / "tests" / d).glob("test_*.py")):
            if f.resolve() not in scripts:
                missing.append(str(f.relative_to(ROOT)))
        for f in sorted((ROOT / "tests" / d).glob("test_*.c")):
            if f.resolve() not in sources:
                missing.append(str(f.relative_to(ROOT)))
    assert not missing, "test files no meson test runs (add them to their meson.build): " + \
        ", ".join(missing)
