# SPDX-License-Identifier: MIT
"""scripts/check-layering.py: the tree follows src/LAYERS, and the checker
catches what it is meant to catch (on small trees made here)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check-layering.py"


def run(root):
    p = subprocess.run([sys.executable, str(CHECK), "--root", str(root)],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def tree(tmp, files, rules):
    for name, text in files.items():
        f = tmp / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    (tmp / "include").mkdir(exist_ok=True)
    (tmp / "src" / "LAYERS").write_text(rules)
    return tmp


RULES = "common:\ncompute: common\norchestrator: common\nmax-lines 50\n"


def test_the_tree_follows_its_rules():
    rc, out = run(ROOT)
    assert rc == 0, out


def test_a_clean_tree_passes(tmp_path):
    t = tree(tmp_path, {"src/common/log.h": "int log_x(void);\n",
                        "src/common/log.c": '#include "log.h"\nint log_x(void)\n{\n}\n',
                        "src/compute/a.c": '#include "log.h"\n#include "b.h"\n',
                        "src/compute/b.h": "int b_f(void);\n",
                        "src/compute/b.c": '#include "b.h"\nint b_f(void)\n{\n}\n'}, RULES)
    rc, out = run(t)
    assert rc == 0, out


def test_a_forbidden_directory_fails(tmp_path):
    t = tree(tmp_path, {"src/orchestrator/orch.h": "int orch_f(void);\n",
                        "src/compute/a.c": '#include "orch.h"\n'}, RULES)
    rc, out = run(t)
    assert rc == 1 and "src/compute may not use src/orchestrator" in out, out


def test_a_circle_through_a_hub_header_fails(tmp_path):
    # b.c calls a_f and a.c calls b_f, both declared in hub.h: a circle.
    t = tree(tmp_path, {"src/compute/hub.h": "int a_f(void);\nint b_f(void);\n",
                        "src/compute/a.c": '#include "hub.h"\nint a_f(void)\n{\n}\n',
                        "src/compute/b.c": '#include "hub.h"\nint b_f(void)\n{\n}\n'}, RULES)
    rc, out = run(t)
    assert rc == 1 and "include circle among a, b\n" in out, out


def test_a_long_file_and_a_missing_rule_fail(tmp_path):
    t = tree(tmp_path, {"src/compute/big.c": "int x;\n" * 60,
                        "src/devnode/d.c": "int d;\n"}, RULES)
    rc, out = run(t)
    assert rc == 1 and "big.c: 60 lines, more than 50" in out, out
    assert "src/devnode has no rule" in out, out


def test_a_known_circle_may_not_grow(tmp_path):
    files = {"src/compute/hub.h": "int a_f(void);\nint b_f(void);\n",
             "src/compute/a.c": '#include "hub.h"\nint a_f(void)\n{\n}\n',
             "src/compute/b.c": '#include "hub.h"\nint b_f(void)\n{\n}\n'}
    t = tree(tmp_path, files, RULES + "legacy-circle src/compute a b\n")
    assert run(t)[0] == 0
    (t / "src" / "compute" / "hub.h").write_text("int a_f(void);\nint b_f(void);\nint c_f(void);\n")
    (t / "src" / "compute" / "c.c").write_text('#include "hub.h"\nint c_f(void)\n{\n}\n')
    rc, out = run(t)
    assert rc == 1 and "include circle among a, b, c\n" in out, out
