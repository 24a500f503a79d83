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


class Fabric:
    """A cluster CA for one test (disagg-cert), and node certificates issued
    from it on demand, one per (node id, role)."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self._ca = None
        self._certs = {}

    def ca(self):
        if self._ca is None:
            import subprocess
            d = self.root / "ca"
            self.root.mkdir(parents=True, exist_ok=True)
            subprocess.run([find_prog("disagg-cert"), "--new-ca", str(d)], check=True,
                           capture_output=True)
            self._ca = str(d / "ca.pem")
        return self._ca

    def cert(self, node_id, role):
        """(certificate, key) paths for node_id in role."""
        k = (int(node_id), role)
        if k not in self._certs:
            import subprocess
            ca = self.ca()
            c = self.root / f"{role}-{int(node_id)}.pem"
            key = self.root / f"{role}-{int(node_id)}.key"
            subprocess.run([find_prog("disagg-cert"), "--ca", str(pathlib.Path(ca).parent),
                            "--issue", str(int(node_id)), "--role", role, "--cert", str(c),
                            "--key", str(key)], check=True, capture_output=True)
            self._certs[k] = (str(c), str(key))
        return self._certs[k]

    def args(self, node_id, role):
        c, k = self.cert(node_id, role)
        return ["--tls-ca", self.ca(), "--tls-cert", c, "--tls-key", k]


# The running test's fabric (tests/functional/conftest.py sets it), or None
# for plaintext.
CURRENT = None


def fabric_args(node_id, role):
    """The fabric options of a daemon or tool with node_id in role: TLS with
    the test's CA, or --fabric-plaintext when the test runs none."""
    if CURRENT is None:
        return ["--fabric-plaintext"]
    return CURRENT.args(node_id, role)
