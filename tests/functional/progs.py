# SPDX-License-Identifier: MIT
"""Where the tests find the programs they run: the build directory named by
DISAGG_BUILD (meson test sets it), then build/release, then build/bin."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def find_prog(name):
    """Path of the built program `name`; FileNotFoundError if it is not built."""
    build = os.environ.get("DISAGG_BUILD")
    roots = [pathlib.Path(build)] if build else []
    roots.append(ROOT / "build" / "release")
    for r in roots:
        for sub in ("src", "bench"):
            for p in sorted((r / sub).glob(f"*/{name}")):
                if os.access(p, os.X_OK):
                    return str(p)
    p = ROOT / "build" / "bin" / name
    if p.exists():
        return str(p)
    raise FileNotFoundError(f"program {name} is not built (make)")
