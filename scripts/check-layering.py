#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check the include layering of src/ against src/LAYERS.

Reads every #include "..." of src/**/*.[ch], resolves it to a file of the
tree (the including file's directory first, then src/common and include/,
then a unique match anywhere), and fails on:
  - an include of a directory that the rules do not allow;
  - a circle of includes among the modules of one directory (x.c and x.h
    are one module);
  - a source file longer than max-lines (or than its legacy cap).
Exit status 0 when the tree is clean, 1 with one line per violation.

    scripts/check-layering.py [--root DIR]
"""
import argparse
import pathlib
import re
import sys
from collections import defaultdict

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function defined at file scope (its name at the start of the line or
# after the return type), and one declared in a header.
DEF_RE = re.compile(r'^(?!static\b)[A-Za-z_][\w \t\*]*?\b([a-z_]\w*)\([^;{]*\)\s*\{', re.M)
DECL_RE = re.compile(r'^(?!static\b|#|typedef\b)[A-Za-z_][\w \t\*]*?\b([a-z_]\w*)\([^;{)]*\)'
                     r'[^;{]*;', re.M)


def parse_rules(path):
    allow, legacy, max_lines, known = {}, {}, None, {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "max-lines" and len(words) == 2:
            max_lines = int(words[1])
        elif words[0] == "legacy-circle" and len(words) > 3:
            known[words[1] + " " + " ".join(sorted(words[2:]))] = False
        elif words[0] == "legacy" and len(words) == 3:
            legacy[words[1]] = int(words[2])
        elif words[0].endswith(":"):
            allow[words[0][:-1]] = set(words[1:])
        else:
            raise SystemExit(f"{path}:{n}: cannot parse: {raw}")
    return allow, legacy, max_lines, known


def module_dir(root, f):
    """src/compute/pager/x.c -> 'compute/pager'; include/... -> None."""
    rel = f.relative_to(root)
    if rel.parts[0] != "src":
        return None
    return "/".join(rel.parts[1:-1])


def resolve(root, f, name, by_name):
    here = f.parent / name
    if here.exists():
        return here
    for d in (root / "src" / "common", root / "include"):
        if (d / name).exists():
            return d / name
    cands = by_name.get(pathlib.PurePath(name).name, [])
    return cands[0] if len(cands) == 1 else None


def circles(edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1]))
    a = ap.parse_args()
    root = pathlib.Path(a.root)
    allow, legacy, max_lines, known = parse_rules(root / "src" / "LAYERS")
    files = sorted(p for p in (root / "src").rglob("*") if p.suffix in (".c", ".h"))
    by_name = defaultdict(list)
    for p in files + sorted((root / "include").rglob("*.h")):
        by_name[p.name].append(p)
    bad = []
    edges = defaultdict(lambda: defaultdict(set))   # dir -> module -> modules
    texts = {f: f.read_text(errors="replace") for f in files}
    # Which module defines each function: a header that declares another
    # module's functions (a hub such as x_internal.h) makes its includers
    # depend on that module, so call circles through a hub show up.
    defined = {}
    for f in files:
        if f.suffix == ".c":
            for fn in DEF_RE.findall(texts[f]):
                defined.setdefault(fn, f)
    declares = {f: {defined[fn] for fn in DECL_RE.findall(texts[f]) if fn in defined}
                for f in files if f.suffix == ".h"}
    for f in files:
        d = module_dir(root, f)
        rel = str(f.relative_to(root))
        if d not in allow:
            bad.append(f"{rel}: directory src/{d} has no rule in src/LAYERS")
            continue
        text = texts[f]
        nlines = text.count("\n")
        cap = legacy.get(rel, max_lines)
        if cap is not None and nlines > cap:
            bad.append(f"{rel}: {nlines} lines, more than {cap}")
        for name in INCLUDE_RE.findall(text):
            t = resolve(root, f, name, by_name)
            if t is None:
                bad.append(f"{rel}: #include \"{name}\" is not a file of the tree")
                continue
            td = module_dir(root, t)
            if td is None:
                continue                      # include/: everyone's
            if td != d and td not in allow[d]:
                bad.append(f"{rel}: includes {t.relative_to(root)} "
                           f"(src/{d} may not use src/{td})")
            if td == d:
                for m in {t} | declares.get(t, set()):
                    if module_dir(root, m) == d and m.stem != f.stem and \
                            not (t == m and f.stem + "_internal" == m.stem):
                        edges[d][f.stem].add(m.stem)
    for d, e in sorted(edges.items()):
        for comp in circles(e):
            key = f"src/{d} " + " ".join(comp)
            if key in known:
                known[key] = True
                continue
            bad.append(f"src/{d}: include circle among {', '.join(comp)}")
    bad += [f"src/LAYERS: legacy-circle {k} is gone: remove the line"
            for k, seen in known.items() if not seen]
    for rel, cap in legacy.items():
        p = root / rel
        if not p.exists():
            bad.append(f"src/LAYERS: legacy {rel} does not exist any more: remove the line")
    for line in bad:
        print(line)
    print(f"{len(files)} files, {len(bad)} layering violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
