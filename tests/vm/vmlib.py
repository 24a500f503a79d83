# SPDX-License-Identifier: MIT
"""Helpers for VM tests and the VM benchmark: a memory node, the compute
agent and its HTTP API, sections and grants, and cleanup that leaves no
QEMU process and no /dev/shm directory behind.

Standard library only (plus tests/functional/dproto.py and agentschema.py,
which checks every JSON answer of the agent against
tests/schema/compute-agent.json), so that bench/vm/vmbench.py can use it
without pytest. Programs come from the
meson build in DISAGG_BUILD (set by tests/vm/meson.build; under `make
check` that is the ASan+UBSan tree), else build/release, else build/bin.
The guest image is always build/guest (the sanitized tree has no static
disagg-guest).
"""
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "functional"))

import agentschema  # noqa: E402
import authkit  # noqa: E402
import dproto  # noqa: E402
import progs  # noqa: E402
from progs import find_prog  # noqa: E402,F401 - used here and by the tests

SECTION = 128 << 20
MiB = 1 << 20
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")
GUEST_DIR = ROOT / "build" / "guest"


_FABRIC = None


class PlainFabric:
    """DISAGG_TEST_FABRIC=plaintext: the daemons run --fabric-plaintext (an
    A/B of the fabric's cost in the benchmarks; tests keep TLS)."""

    def args(self, node_id, role):
        return ["--fabric-plaintext"]

    def cert(self, node_id, role):
        raise Skip("this test needs the TLS fabric (DISAGG_TEST_FABRIC=plaintext)")


def fabric():
    """The fabric's CA for this test process (progs.Fabric): memory nodes,
    agents and dproto connections speak TLS with certificates from it."""
    global _FABRIC
    if _FABRIC is None:
        if os.environ.get("DISAGG_TEST_FABRIC") == "plaintext":
            _FABRIC = PlainFabric()
            progs.CURRENT = None
        else:
            _FABRIC = progs.Fabric(tempfile.mkdtemp(prefix="disagg-vmtest-ca-"))
            progs.CURRENT = _FABRIC
    return _FABRIC


class Skip(Exception):
    """Something the machine lacks: the caller skips with this reason."""


def unix_connect(path, timeout=60, retry_s=0.02):
    """A connected UNIX stream socket; retries until the server creates it."""
    end = time.time() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.time() > end:
                raise
            time.sleep(retry_s)


def qemu_binary():
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise Skip("qemu-system-x86_64 is not installed")
    return q


_image_checked = False


def guest_image():
    """(kernel, initrd); refreshes the cached image when disagg-guest exists."""
    global _image_checked
    kernel, initrd = GUEST_DIR / "vmlinuz", GUEST_DIR / "initrd.img"
    if not _image_checked and (ROOT / "build" / "bin" / "disagg-guest").exists():
        _image_checked = True
        # Cached by a stamp: a no-op unless disagg-guest or the script changed.
        subprocess.run([str(ROOT / "scripts" / "build-guest.sh"), str(GUEST_DIR)],
                       cwd=ROOT, capture_output=True, timeout=600)
    if not (kernel.exists() and initrd.exists()):
        raise Skip(f"no guest image in {GUEST_DIR} (make, or scripts/build-guest.sh)")
    if not (ROOT / "build" / "bin" / "disagg-guest").exists():
        raise Skip("no build/bin/disagg-guest (make builds it): the guest image lacks it")
    return str(kernel), str(initrd)


def check_prereqs():
    """Raise Skip when QEMU or the guest image is missing."""
    qemu_binary()
    return guest_image()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is as good as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Proc:
    """A daemon that prints 'NAME listening on ADDR ...' on stdout when ready."""

    def __init__(self, argv, logpath, ready_re, timeout=60.0, env=None):
        self.argv = argv
        self.logpath = str(logpath)
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     close_fds=True, env=env)
        self.match = None
        end = time.time() + timeout
        while time.time() < end:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            self.ready_line = line
            m = re.search(ready_re, line)
            if m:
                self.match = m
                break
        if not self.match:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{argv[0]} did not start:\n{self.stderr()[-3000:]}")

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        return pathlib.Path(self.logpath).read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit code. Raises on sanitizer reports."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.argv[0]} ignored SIGTERM for {timeout} s")
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        self.log.close()
        err = self.stderr()
        if SANITIZER_RE.search(err):
            raise AssertionError(f"sanitizer report from {self.argv[0]}:\n{err[-6000:]}")
        return self.proc.returncode


class Devnode(Proc):
    """A disagg-devnode on loopback (TLS as the fabric is, certificate role
    device), its volumes in TMP/volumes-NODE_ID."""

    def __init__(self, tmp, key, keyfile, node_id=300, port=0):
        """port: an earlier node's (started again on its data and address)."""
        self.data = str(pathlib.Path(tmp) / f"volumes-{node_id}")
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        super().__init__([find_prog("disagg-devnode"), "--data", self.data, "--listen",
                          f"127.0.0.1:{port}", "--key", keyfile, "--grant-pubkey",
                          dproto.grant_files(keyfile)[1], "--node-id", str(node_id),
                          *fabric().args(node_id, "device")],
                         pathlib.Path(tmp) / f"devnode-{node_id}.log", r"listening on (\S+)")
        self.addr = self.match.group(1)
        self.node_id, self.key = node_id, key

    def vol(self, op, *args):
        c = dproto.DevConn(self.addr).login(self.key, 9)
        try:
            return c.vol(op, *args)
        finally:
            c.close()

    def volume(self, name, size, holder=1, epoch=0, rights=dproto.R_READ | dproto.R_WRITE):
        """Create a volume; returns (its record, a grant for holder as hex)."""
        v = self.vol("VOL_CREATE", name, size)
        return v, self.grant(v, holder, epoch, rights)

    def grant(self, v, holder, epoch=0, rights=dproto.R_READ | dproto.R_WRITE):
        return dproto.volume_grant(self.key, self.node_id, holder, v["key"], rights,
                                   epoch=epoch).hex()

    def users(self, name):
        return self.vol("VOL_STAT", name)["users"]


class Memnode(Proc):
    def __init__(self, tmp, key, keyfile, node_id=101, pool="1G", backing=None, extra=()):
        argv = [find_prog("disagg-memnode"), "--listen", "127.0.0.1:0", "--http",
                "127.0.0.1:0", "--node-id", str(node_id), "--pool", pool,
                "--section-size", "128M", "--key", keyfile,
                "--grant-pubkey", dproto.grant_files(keyfile)[1], "--api-open",
                *fabric().args(node_id, "memory")]
        if backing:
            argv += ["--backing", backing]
        argv += list(extra)
        super().__init__(argv, pathlib.Path(tmp) / f"memnode-{node_id}.log",
                         r"listening on (\S+)(?: http (\S+))?")
        self.addr = self.match.group(1)
        self.http = self.match.group(2)
        self.node_id = node_id
        self.key = key

    def conn(self, as_node=900):
        return dproto.Conn(self.addr).login(self.key, as_node)

    def metric(self, name):
        """A sample of its /metrics (the first, whatever its labels), or None."""
        host, port = self.http.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        m = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def count(self):
        """Allocated sections on this node."""
        with self.conn() as c:
            return len(c.list())

    def section(self, holder=1, free_on_release=True, owner=0, expiry=0):
        """Allocate a section and return the agent's JSON for it (its grant
        expires at `expiry`, seconds since the epoch; 0: never)."""
        with self.conn() as c:
            sec, gen = c.alloc(owner)
        # The agent frees a free_on_release section with its grant: the free right.
        rights = dproto.R_READ | dproto.R_WRITE | (dproto.R_FREE if free_on_release else 0)
        g = dproto.mint_grant(self.key, self.node_id, holder, sec, gen, rights, expiry=expiry)
        return {"kind": "remote", "addr": self.addr, "grant": g.hex(),
                "free_on_release": free_on_release}

    def free(self, section_json):
        g = bytes.fromhex(section_json["grant"])
        _, _, sec, gen, *_ = dproto.GRANT.unpack(g)
        with self.conn() as c:
            c.free(sec, gen)


class ApiError(Exception):
    def __init__(self, status, body):
        self.status, self.body = status, body
        super().__init__(f"HTTP {status}: {body}")


class Agent(Proc):
    """disagg-compute on a private run directory under /dev/shm."""

    def __init__(self, tmp, keyfile, node_id=1, extra=(), env=None, keep_vms=False,
                 run_dir=None, http="127.0.0.1:0"):
        """keep_vms: SIGTERM leaves running VMs for the next agent (the
        agent's default); otherwise --stop-vms-on-exit. run_dir: an earlier
        agent's, to adopt its VMs."""
        kernel, initrd = check_prereqs()
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="disagg-vmtest-", dir="/dev/shm")
        self.qemu_pids = set()
        # Its own credential (authkit.shared): it answers the test, which
        # calls it with the orchestrator's token, and nobody else.
        self.auth, self.node_id = authkit.shared(tmp), node_id
        cred = (() if "--node-credential" in extra
                else ("--node-credential", self.auth.cred_file(node_id)))
        argv = [find_prog("disagg-compute"), "--http", http, "--node-id",
                str(node_id), "--key", keyfile, "--accel", "tcg", "--run-dir",
                self.run_dir, "--kernel", kernel, "--initrd", initrd,
                *(() if keep_vms else ("--stop-vms-on-exit",)), *cred,
                *fabric().args(node_id, "compute"), *extra]
        e = dict(os.environ if env is None else env)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        try:
            super().__init__(argv, pathlib.Path(tmp) / f"compute-{node_id}.log",
                             r"listening on (\S+)", env=e)
        except BaseException:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        self.http = self.match.group(1)

    # -- HTTP ---------------------------------------------------------------
    def request(self, method, path, body=None, timeout=300, raw=False):
        host, port = self.http.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(self.auth.headers(self.auth.orch_token(self.node_id)))
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            text = r.read().decode(errors="replace")
        finally:
            c.close()
        if raw:
            return r.status, text
        try:
            j = json.loads(text) if text else None
        except ValueError:
            j = text
        # The answers the orchestrator reads have the shape the fake agent
        # of the functional tests has too (tests/schema/compute-agent.json).
        problems = agentschema.check_answer(method, path, r.status, j)
        if problems:
            raise AssertionError("the agent's answer does not fit the schema:\n" +
                                 "\n".join(problems))
        return r.status, j

    def call(self, method, path, body=None, expect=(200, 201, 204), timeout=300):
        st, j = self.request(method, path, body, timeout)
        if st not in expect:
            raise ApiError(st, j)
        return j

    def create(self, name, sections, timeout=300, **kw):
        j = self.call("POST", "/v1/vms", dict(name=name, sections=sections, **kw),
                      timeout=timeout)
        if j.get("pid"):
            self.qemu_pids.add(j["pid"])
        return j

    def status(self, name):
        return self.call("GET", f"/v1/vms/{name}")

    def guest(self, name, command, timeout_ms=600000):
        """One disagg-guest command; returns the reply's key=value fields."""
        j = self.call("POST", f"/v1/vms/{name}/guest",
                      {"command": command, "timeout_ms": timeout_ms},
                      timeout=timeout_ms / 1000 + 30)
        if not j["ok"]:
            raise AssertionError(f"guest {command!r}: {j['reply']}")
        return fields(j["reply"])

    def meminfo(self, name):
        return self.guest(name, "MEMINFO")

    def add_section(self, name, section, timeout=300):
        return self.call("POST", f"/v1/vms/{name}/sections", {"section": section},
                         timeout=timeout)

    def remove_section(self, name, index, timeout=300):
        return self.call("DELETE", f"/v1/vms/{name}/sections/{index}", timeout=timeout)

    def delete(self, name):
        return self.call("DELETE", f"/v1/vms/{name}", expect=(204,))

    def console(self, name):
        return self.request("GET", f"/v1/vms/{name}/console", raw=True)[1]

    # -- cleanup --------------------------------------------------------------
    def qemu_alive(self):
        """Our QEMU processes that still run."""
        return [p for p in self.qemu_pids
                if pid_alive(p) and self.run_dir in pid_cmdline(p)]

    def close(self):
        """Stop the agent, kill any QEMU it left, remove the run directory.

        Returns a list of problems (leftover QEMU, leftover files)."""
        problems = []
        err = None
        try:
            self.stop()
        except Exception as e:  # noqa: BLE001 - still clean up, then re-raise
            err = e
        for p in self.qemu_alive():
            problems.append(f"QEMU {p} still running after the agent stopped")
            os.kill(p, signal.SIGKILL)
        left = list(pathlib.Path(self.run_dir).iterdir()) if os.path.isdir(self.run_dir) else []
        if left:
            problems.append(f"agent left {[str(p) for p in left]} in its run dir")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if err:
            raise err
        return problems


def fields(reply):
    """'OK a=1 b=x' -> {'a': 1, 'b': 'x'} (ints where they parse)."""
    out = {}
    for tok in reply.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                out[k] = int(v)
            except ValueError:
                out[k] = v
    return out


def wait_for(pred, timeout=30.0, step=0.1):
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= end:
            return v
        time.sleep(step)


def new_keyfile(tmp):
    """A cluster key file, the grant key pair beside it, and the keys (dproto.Keys):
    whoever holds them acts as the orchestrator."""
    p = pathlib.Path(tmp) / "cluster.key"
    p.write_bytes(os.urandom(32))
    p.chmod(0o600)
    return str(p), dproto.load_keys(p)


class GuestChan:
    """disagg-guest's line protocol straight on QEMU's chardev socket (a
    QEMU the test started itself, no agent): one command, one OK/ERR line;
    unsolicited lines (READY, HB) are skipped."""

    def __init__(self, path, timeout=60):
        self.s = unix_connect(path, timeout, 0.05)
        self.buf = b""

    def line(self, timeout):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise ConnectionError("QEMU closed the guest channel")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode(errors="replace").strip("\r")

    def wait_for(self, prefix, timeout):
        end = time.time() + timeout
        while True:
            ln = self.line(max(end - time.time(), 0.1))
            if ln.startswith(prefix):
                return ln

    def send(self, command):
        self.s.sendall(command.encode() + b"\n")

    def answer(self, timeout=120):
        """The next OK/ERR line."""
        return self.wait_for(("OK", "ERR"), timeout)

    def cmd(self, command, timeout=120):
        """The answer line, OK or ERR."""
        self.send(command)
        return self.answer(timeout)

    def ok(self, command, timeout=120):
        """The answer's fields; AssertionError on ERR."""
        ln = self.cmd(command, timeout)
        if not ln.startswith("OK"):
            raise AssertionError(f"guest {command!r}: {ln}")
        return fields(ln)

    def close(self):
        self.s.close()


class Qmp:
    """A QMP client on a UNIX socket (QEMU's -qmp unix:PATH,server=on)."""

    def __init__(self, path, timeout=60):
        self.s = unix_connect(path, timeout, 0.02)
        self.s.settimeout(120)
        self.f = self.s.makefile("rwb")
        json.loads(self.f.readline())
        self.events = []
        self.run("qmp_capabilities")

    def run(self, cmd, **args):
        """The command's "return"; RuntimeError with QEMU's error."""
        self.f.write(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            j = json.loads(self.f.readline())
            if "return" in j:
                return j["return"]
            if "error" in j:
                raise RuntimeError(f"QMP {cmd}: {j['error']}")
            self.events.append(j)

    def close(self):
        self.f.close()
        self.s.close()


class StockQemu:
    """qemu-system-x86_64 as a user would run it (no agent, no shim) on the
    guest image: TCG, -machine pc, the guest channel (GuestChan after
    connect()), QMP (Qmp), the console and QEMU's output in DIR/NAME.
    extra: more QEMU arguments (devices, memory backends)."""

    def __init__(self, d, name, extra=(), mem="256M", smp="1"):
        kernel, initrd = check_prereqs()
        self.dir = pathlib.Path(d) / name
        self.dir.mkdir()
        argv = [qemu_binary(), "-name", name, "-accel", "tcg", "-machine", "pc",
                "-cpu", "max", "-smp", smp, "-m", mem,
                "-nodefaults", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.dir / 'console.log'}",
                "-chardev", f"socket,id=gch,path={self.dir / 'guest.sock'},server=on,wait=off",
                "-device", "virtio-serial-pci",
                "-device", "virtserialport,chardev=gch,name=org.disagg.guest",
                "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off",
                "-kernel", kernel, "-initrd", initrd,
                "-append", "console=ttyS0 memhp_default_state=online_movable panic=1",
                *extra]
        self.log = open(self.dir / "qemu.log", "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        self.chan = self.qmp = None

    def connect(self, timeout=120):
        """QMP and the guest channel; waits for disagg-guest's READY."""
        self.qmp = Qmp(str(self.dir / "qmp.sock"))
        self.chan = GuestChan(str(self.dir / "guest.sock"))
        ready = self.chan.wait_for("READY", timeout)
        assert ready.startswith("READY disagg-guest 1"), ready

    def logs(self):
        """The tails of QEMU's output and the console, for failure reports."""
        return "\n".join(f"--- {self.dir.name} {leaf}:\n" +
                         (self.dir / leaf).read_text(errors="replace")[-2000:]
                         for leaf in ("qemu.log", "console.log") if (self.dir / leaf).exists())

    def stop(self):
        """Kill QEMU (it is the test's own process), then close the sockets."""
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(30)
        for x in (self.chan, self.qmp):
            if x is not None:
                x.close()
        self.log.close()


def pattern_word(seed, page, i):
    """disagg-guest's pattern of FILL and RFILL (guest_pattern_word(),
    src/guest/guestutil.h)."""
    m64 = (1 << 64) - 1
    x = ((seed * 0x9E3779B97F4A7C15) & m64) ^ (page << 9 | i)
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & m64
    x ^= x >> 33
    return x | 1


class Region:
    """A shared region of one section on memory node `mn`, with grants minted
    as the orchestrator mints them (tests and bench/shared drive the agents'
    region API with it)."""

    def __init__(self, mn, name="r1", mode="exclusive"):
        self.mn, self.name, self.mode = mn, name, mode
        with mn.conn() as c:
            self.sec, self.gen = c.alloc(0)
        self.epoch = 1

    def grant(self, holder, write):
        rights = dproto.R_READ | (dproto.R_WRITE if write else 0)
        return dproto.mint_grant(self.mn.key, self.mn.node_id, holder, self.sec, self.gen,
                                 rights, epoch=self.epoch).hex()

    def attach_body(self, holder, write, size=SECTION):
        """POST /v1/vms/NAME/regions: every user of a strict region writes."""
        write = write or self.mode == "strict"
        return {"region": self.name, "mode": self.mode, "size": size, "writable": write,
                "sections": [{"kind": "remote", "addr": self.mn.addr,
                              "grant": self.grant(holder, write)}]}
