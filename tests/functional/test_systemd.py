# SPDX-License-Identifier: MIT
"""Packaging: `meson install` puts every program, the shim, the docs and the
systemd units in place; the installed agent finds the installed shim; and
the units pass `systemd-analyze verify` against the installed binaries.

The build under test is installed into a temporary DESTDIR. The units name
the binaries by their final paths (PREFIX/bin/...), so the copies that are
verified have those paths moved under the DESTDIR: verify then checks the
very binaries `meson install` put there, with everything else as shipped.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import ROOT, run
import progs  # noqa: E402

UNITS = ["disagg-memnode", "disagg-compute", "disagg-orchestrator"]
PROGRAMS = ["disagg", "disagg-memnode", "disagg-compute", "disagg-orchestrator",
            "disagg-grant", "disagg-mnctl"]


def build_dir():
    b = os.environ.get("DISAGG_BUILD")
    return pathlib.Path(b) if b else ROOT / "build" / "release"


def introspect(what):
    p = run(["meson", "introspect", str(build_dir()), what])
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    run(["meson", "install", "-C", str(build_dir()), "--no-rebuild", "--quiet",
         "--destdir", str(dest)])
    opts = {o["name"]: o["value"] for o in introspect("--buildoptions")}
    prefix = opts["prefix"]

    def under(d):
        return dest / (pathlib.Path(prefix) / d).relative_to("/")
    unitdir = opts["systemdunitdir"] or str(pathlib.Path(prefix) / "lib/systemd/system")
    return dict(dest=dest, prefix=prefix, bindir=under(opts["bindir"]),
                bindir_final=str(pathlib.Path(prefix) / opts["bindir"]),
                pkglibdir=under(opts["libdir"]) / "disagg",
                docdir=under(opts["datadir"]) / "doc" / "disagg",
                unitdir=dest / pathlib.Path(unitdir).relative_to("/"))


def test_every_program_the_shim_and_the_docs_are_installed(installed):
    for p in PROGRAMS:
        assert os.access(installed["bindir"] / p, os.X_OK), p
    assert (installed["pkglibdir"] / "libdisagg-shim.so").is_file()
    for doc in ["README.md", "operations.md", "memnode.md", "compute.md", "api.md"]:
        assert (installed["docdir"] / doc).is_file(), doc
    for u in UNITS:
        assert (installed["unitdir"] / f"{u}.service").is_file(), u
    # Every program and library of src/ is installed (benchmarks and tests are not).
    for t in introspect("--targets"):
        if (t["type"] in ("executable", "shared library") and
                "/src/" in t["defined_in"] and "/tests/" not in t["defined_in"]):
            assert t["installed"], f"{t['name']} ({t['defined_in']}) is not installed"


def test_installed_agent_finds_the_installed_shim(installed, keyfile, tmp_path):
    (tmp_path / "k").write_bytes(b"")
    (tmp_path / "i").write_bytes(b"")
    run_dir = tempfile.mkdtemp(prefix="disagg-inst-", dir="/dev/shm")
    try:
        p = subprocess.Popen(
            [str(installed["bindir"] / "disagg-compute"), "--key", keyfile, "--node-id", "4",
             "--http", "127.0.0.1:0", "--run-dir", run_dir, "--accel", "tcg",
             "--qemu", "/bin/true", "--kernel", str(tmp_path / "k"),
             "--initrd", str(tmp_path / "i"), "--api-open", *progs.fabric_args(4, "compute")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            assert "listening on" in line, p.stderr.read() if p.poll() is not None else line
        finally:
            p.terminate()
            _, err = p.communicate(timeout=30)
        m = re.search(r"shim (\S+),", err)
        assert m, err
        assert os.path.samefile(m.group(1), installed["pkglibdir"] / "libdisagg-shim.so")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def relocated_units(installed, out):
    """The installed units with their binaries' paths moved under the DESTDIR."""
    paths = []
    for u in UNITS:
        text = (installed["unitdir"] / f"{u}.service").read_text()
        assert installed["bindir_final"] + "/" in text, u
        text = text.replace(installed["bindir_final"] + "/", str(installed["bindir"]) + "/")
        p = out / f"{u}.service"
        p.write_text(text)
        paths.append(p)
    return paths


def verify(paths):
    p = subprocess.run(["systemd-analyze", "verify", *map(str, paths)],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).strip()


@pytest.fixture
def analyze():
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")


def test_units_pass_systemd_analyze_verify(installed, analyze, tmp_path):
    rc, out = verify(relocated_units(installed, tmp_path))
    assert rc == 0 and out == "", out


def test_verify_catches_a_broken_unit(installed, analyze, tmp_path):
    """The check above can fail: a misspelt hardening line or a binary that
    is not there is reported."""
    units = relocated_units(installed, tmp_path)
    text = units[0].read_text()
    units[0].write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    rc, out = verify(units[:1])
    assert "NoNewPrivilege" in out, out
    units[0].write_text(text.replace(str(installed["bindir"]), "/nonexistent/bin"))
    rc, out = verify(units[:1])
    assert rc != 0 and "/nonexistent/bin" in out, out


def settings(path):
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_units_are_hardened_and_notify(installed, analyze, tmp_path):
    for path in relocated_units(installed, tmp_path):
        s = settings(path)
        name = path.stem
        assert s["Type"] == ["notify"], name
        assert s["NoNewPrivileges"] == ["yes"], name
        assert s["ProtectSystem"] == ["strict"], name
        assert s["RuntimeDirectory"] == [name], name
        caps = s["CapabilityBoundingSet"]
        assert caps == (["CAP_SYS_PTRACE"] if name == "disagg-compute" else [""]), (name, caps)
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            "--threshold=50", str(path)], capture_output=True, text=True,
                           timeout=120)
        if "--offline" in p.stderr or "--threshold" in p.stderr:
            continue        # an older systemd-analyze: the settings above must do
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr   # exposure above 5.0
