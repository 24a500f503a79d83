# SPDX-License-Identifier: MIT
"""API credentials for tests, computed as src/common/apiauth.c does
(docs/api.md#authentication): people tokens, the node secret, node
credentials and the bearer tokens of each direction, and the check a node
makes on a request (FakeCompute uses it, test_api_auth compares it with the
real agent's answers)."""
import hashlib
import hmac
import os
import pathlib
import secrets

CRED_LABEL = b"disagg-node-credential"
TO_ORCH = b"disagg-api node->orchestrator"
TO_NODE = b"disagg-api orchestrator->node"


def node_cred(secret, node_id):
    return hmac.new(secret, CRED_LABEL + int(node_id).to_bytes(8, "big"),
                    hashlib.sha256).digest()


def bearer(cred, node_id, to_node):
    mac = hmac.new(cred, TO_NODE if to_node else TO_ORCH, hashlib.sha256).hexdigest()
    return "%s.%d.%s" % ("orch" if to_node else "node", node_id, mac)


def write_private(path, data):
    path = pathlib.Path(path)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return str(path)


class ClusterAuth:
    """A people token (api.tokens) and a node secret (node.secret) in `d`:
    new ones, or (existing=True) those `disagg up` made in its data directory."""

    def __init__(self, d, existing=False):
        self.dir = pathlib.Path(d)
        self.tokens_file = str(self.dir / "api.tokens")
        self.secret_file = str(self.dir / "node.secret")
        if existing:
            self.token = pathlib.Path(self.tokens_file).read_text().split()[0]
            self.secret = pathlib.Path(self.secret_file).read_bytes()
            return
        self.token = "dgt_" + secrets.token_hex(32)
        self.secret = os.urandom(32)
        write_private(self.tokens_file, self.token + "\n")
        write_private(self.secret_file, self.secret)

    def orch_args(self):
        return ["--api-tokens", self.tokens_file, "--node-secret", self.secret_file]

    def cred(self, node_id):
        return node_cred(self.secret, node_id)

    def cred_file(self, node_id):
        return write_private(self.dir / f"node-{node_id}.cred",
                             "%d:%s\n" % (node_id, self.cred(node_id).hex()))

    def node_token(self, node_id):
        """What node `node_id` presents to the orchestrator."""
        return bearer(self.cred(node_id), node_id, False)

    def orch_token(self, node_id):
        """What the orchestrator presents to node `node_id`."""
        return bearer(self.cred(node_id), node_id, True)

    def headers(self, token=None):
        return {"Authorization": "Bearer " + (token or self.token)}


def node_check(cred, node_id, method, path, authorization):
    """The compute agent's and memory node's rule (apiauth_node_authorize):
    None when the request may go on, else (status, code, reason)."""
    if path.split("?")[0] == "/healthz" and method == "GET":
        return None
    if not authorization or not authorization[:7].lower() == "bearer ":
        return (401, "unauthorized", "missing")
    tok = authorization[7:].strip()
    if hmac.compare_digest(tok, bearer(cred, node_id, True)):
        return None
    parts = tok.split(".")
    if (len(parts) == 3 and parts[0] == "orch" and parts[1].isdigit()
            and int(parts[1]) != node_id and len(parts[2]) == 64):
        return (401, "unauthorized", "wrong_node")
    return (401, "unauthorized", "invalid")


_shared = {}


def shared(tmp_path):
    """The one ClusterAuth of a test (in tmp_path/auth): its orchestrators,
    fakes and real nodes must agree on the token and the node secret."""
    d = pathlib.Path(tmp_path) / "auth"
    key = str(d)
    if key not in _shared:
        d.mkdir(exist_ok=True)
        _shared[key] = ClusterAuth(d)
    return _shared[key]
