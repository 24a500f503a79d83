# SPDX-License-Identifier: MIT
"""bench/gate.py, the benchmark regression gate: its verdicts and exit codes
on summaries and baselines written here."""
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
GATE = ROOT / "bench" / "gate.py"


def gate(*args, env=None):
    p = subprocess.run([sys.executable, str(GATE), *map(str, args)], capture_output=True,
                       text=True, timeout=60, env=env)
    return p.returncode, p.stdout + p.stderr


def write(tmp, base, now):
    b, s = tmp / "baseline.json", tmp / "summary.json"
    b.write_text(json.dumps({"figures": {
        k: {"value": v, "better": better, "tolerance": tol, "unit": "x"}
        for k, (v, better, tol) in base.items()}}))
    s.write_text(json.dumps({"figures": {
        k: {"median": v, "min": v * 0.9, "max": v * 1.1, "n": 5, "unit": "x",
            "better": "lower", "what": ""} for k, v in now.items()}}))
    return ["--baseline", b, "--summary", s]


def test_within_tolerance_passes(tmp_path):
    rc, out = gate("compare", *write(tmp_path, {"a.lat": (10.0, "lower", 0.2),
                                                "a.tput": (100.0, "higher", 0.2)},
                                     {"a.lat": 11.5, "a.tput": 90.0}))
    assert rc == 0, out
    assert "no regression" in out and "regression " not in out.split("bench-compare")[0]


def test_slower_beyond_tolerance_fails(tmp_path):
    rc, out = gate("compare", *write(tmp_path, {"a.lat": (10.0, "lower", 0.2)},
                                     {"a.lat": 12.5}))
    assert rc == 1, out
    assert "regression" in out and "FAILED: a.lat" in out


def test_lower_throughput_fails_and_higher_is_better(tmp_path):
    rc, out = gate("compare", *write(tmp_path, {"a.tput": (100.0, "higher", 0.2),
                                                "a.lat": (10.0, "lower", 0.2)},
                                     {"a.tput": 80.0, "a.lat": 5.0}))
    assert rc == 1, out
    assert "FAILED: a.tput" in out and "better" in out


def test_missing_figure_fails_unless_allowed(tmp_path):
    args = write(tmp_path, {"a.lat": (10.0, "lower", 0.2), "b.lat": (1.0, "lower", 0.2)},
                 {"a.lat": 10.0})
    rc, out = gate("compare", *args)
    assert rc == 1 and "missing" in out, out
    rc, out = gate("compare", *args, "--allow-missing")
    assert rc == 0 and "not run" in out, out


def test_no_baseline_is_a_clear_error(tmp_path):
    rc, out = gate("compare", "--baseline", tmp_path / "none.json",
                   "--summary", tmp_path / "none2.json")
    assert rc == 2 and "cannot read the baseline" in out and "gate.py baseline" in out


def test_baseline_keeps_tolerances(tmp_path):
    args = write(tmp_path, {"a.lat": (10.0, "lower", 0.05)}, {"a.lat": 12.0, "c.new": 3.0})
    rc, out = gate("baseline", "--from", args[3], "--out", args[1])
    assert rc == 0, out
    b = json.loads(args[1].read_text())["figures"]
    assert b["a.lat"]["value"] == 12.0 and b["a.lat"]["tolerance"] == 0.05
    assert b["c.new"]["tolerance"] == 0.3


def with_slack(args, name, slack):
    b = json.loads(args[1].read_text())
    b["figures"][name]["slack"] = slack
    args[1].write_text(json.dumps(b))
    return args


def test_slack_judges_a_difference_near_zero(tmp_path):
    """A figure with an absolute slack (a cost "with minus without"): its
    verdict is the difference, never a ratio, which flips sign around zero."""
    base = {"s.cost": (-6.5, "lower", 0.5)}
    rc, out = gate("compare", *with_slack(write(tmp_path, base, {"s.cost": 26.0}),
                                          "s.cost", 40.0))
    assert rc == 0 and "+32.5" in out and "ok" in out, out   # a ratio would say -4
    rc, out = gate("compare", *with_slack(write(tmp_path, base, {"s.cost": 40.0}),
                                          "s.cost", 40.0))
    assert rc == 1 and "FAILED: s.cost" in out, out
    rc, out = gate("compare", *with_slack(write(tmp_path, base, {"s.cost": -50.0}),
                                          "s.cost", 40.0))
    assert rc == 0 and "better" in out, out


def test_baseline_keeps_a_slack(tmp_path):
    args = with_slack(write(tmp_path, {"s.cost": (1.0, "lower", 0.5)}, {"s.cost": 3.0}),
                      "s.cost", 7.0)
    rc, out = gate("baseline", "--from", args[3], "--out", args[1])
    assert rc == 0, out
    b = json.loads(args[1].read_text())["figures"]["s.cost"]
    assert b["value"] == 3.0 and b["slack"] == 7.0


def test_run_repeats_with_options_before_the_command(tmp_path):
    """gate.py run NAME --reps N -- CMD: N runs, each its own JSON, and
    options of CMD stay CMD's."""
    env = dict(os.environ, DISAGG_BENCH_DIR=str(tmp_path))
    prog = "import json,sys; json.dump({'x': len(sys.argv)}, open(sys.argv[-1], 'w'))"
    rc, out = gate("run", "toy", "--reps", "3", "--", sys.executable, "-c", prog, "--reps",
                   "{json}", env=env)
    assert rc == 0, out
    reps = sorted(tmp_path.glob("toy.rep*.json"))
    assert [p.name for p in reps] == ["toy.rep1.json", "toy.rep2.json", "toy.rep3.json"]
    assert json.loads(reps[0].read_text()) == {"x": 3}
    assert (tmp_path / "toy.json").exists()
    rc, out = gate("run", "bad", "--reps", "2", "--", sys.executable, "-c", "raise SystemExit(3)",
                   env=env)
    assert rc != 0 and "run 2" not in out


def test_vmbench_refuses_an_unknown_configuration():
    """bench/vm/vmbench.py --configs: a name it does not know is an error
    before anything starts, not a silently smaller run."""
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "vm" / "vmbench.py"), "--configs",
                        "plain,remote_101"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown remote_101" in p.stderr
