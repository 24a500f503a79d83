# SPDX-License-Identifier: MIT
"""What the web view needs from the orchestrator, over HTTP (docs/api.md,
docs/webview.md): the long poll of GET /v1/events (`wait`), the page's
files at /ui/ (no token, ETag, CSP, nosniff, the /ui redirect) and
GET /v1/slots/NAME/pager. The page itself, in a browser, is tests/ui."""
import json
import signal
import subprocess
import threading
import time

import pytest

from conftest import find_prog
from fakes import Api
from test_cli import cli_env
from test_orchestrator import (Orch, cluster, computes, err, fakemem,  # noqa: F401
                               hb_factory)


@pytest.fixture
def orch(tmp_path, keyfile):
    o = Orch(tmp_path, keyfile)
    yield o
    o.stop()


def last_seq(orch):
    ev = orch.call("GET", "/v1/events?limit=10000")[1]["events"]
    return ev[-1]["seq"] if ev else 0


def test_events_long_poll(orch, fakemem, computes, hb_factory):
    hb, _ = cluster(orch, fakemem, computes, hb_factory, nmem=1)
    seq = last_seq(orch)
    assert seq > 0
    # Events after `since` already: at once.
    t0 = time.monotonic()
    st, ans = orch.call("GET", "/v1/events?since=0&wait=20")
    assert st == 200 and ans["events"] and time.monotonic() - t0 < 1.0
    # None: the whole wait, then an empty list.
    t0 = time.monotonic()
    st, ans = orch.call("GET", f"/v1/events?since={seq}&wait=1")
    took = time.monotonic() - t0
    assert st == 200 and ans == {"events": []} and 0.9 <= took < 3.0, took
    # wait=0 (and no wait) answers at once, as before.
    t0 = time.monotonic()
    assert orch.call("GET", f"/v1/events?since={seq}&wait=0")[1] == {"events": []}
    assert time.monotonic() - t0 < 1.0
    # An event recorded while a request waits wakes it at once.
    out = {}

    def poll():
        api = Api(orch.addr, token=orch.auth.token)
        t = time.monotonic()
        out["ans"] = api.call("GET", f"/v1/events?since={seq}&wait=20")
        out["t"] = time.monotonic() - t
        api.close()

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    t_event = time.monotonic()
    assert orch.call("POST", "/v1/nodes/101/drain")[0] == 200
    th.join(25)
    st, ans = out["ans"]
    assert st == 200 and [e["kind"] for e in ans["events"]] == ["node_drained"]
    assert out["t"] < 5 and time.monotonic() - t_event < 1.0, out["t"]
    # Bad waits.
    for bad in ("31", "-1", "x", "1.5", ""):
        st, ans = orch.call("GET", f"/v1/events?wait={bad}")
        assert st == 400 and err(ans) == "bad_request", (bad, ans)
        assert ans["error"]["message"] == "wait must be 0 to 30 seconds"
    # A people token, as every /v1 path.
    assert Api(orch.addr).call("GET", "/v1/events?wait=1")[0] == 401
    hb.stop()


def test_cli_follow_is_a_long_poll(orch, fakemem, computes, hb_factory):
    """`disagg events --follow` asks with wait=, so an event prints as soon
    as it is recorded; Ctrl-C ends it in the middle of a long poll, with
    status 0 and nothing on stderr."""
    hb, _ = cluster(orch, fakemem, computes, hb_factory, nmem=1)
    seq = last_seq(orch)
    f = subprocess.Popen([find_prog("disagg"), "--url", f"http://{orch.addr}", "--json",
                          "events", "--follow", "--since", str(seq)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=cli_env(DISAGG_TOKEN=orch.auth.token))
    watchdog = threading.Timer(60, f.kill)      # a readline that never returns fails
    watchdog.start()
    try:
        time.sleep(1.5)                 # its first long poll is under way by now
        assert orch.call("POST", "/v1/nodes/101/drain")[0] == 200
        ev = json.loads(f.stdout.readline())
        assert ev["kind"] == "node_drained" and ev["seq"] > seq, ev
        time.sleep(1.5)                 # the next long poll is under way
        t0 = time.monotonic()
        f.send_signal(signal.SIGINT)
        out, errout = f.communicate(timeout=15)
        stopped = time.monotonic() - t0
    finally:
        watchdog.cancel()
        f.kill()
    assert f.returncode == 0 and errout == "", (f.returncode, errout)
    assert stopped < 10, stopped      # not the rest of its 20 s wait
    hb.stop()


def test_events_long_poll_does_not_hold_up_a_shutdown(orch):
    seq = last_seq(orch)
    out = {}

    def poll():
        api = Api(orch.addr, token=orch.auth.token)
        try:
            out["ans"] = api.call("GET", f"/v1/events?since={seq}&wait=30")
        except Exception as e:  # noqa: BLE001 - the connection may close under it
            out["ans"] = e
        api.close()

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    orch.stop()
    assert time.monotonic() - t0 < 10
    th.join(10)
    assert not th.is_alive()
    orch.start()


def test_ui_files(orch):
    anon = Api(orch.addr)   # no token: the page carries no data
    st, text, r = anon.call("GET", "/ui/", raw=True)
    assert st == 200 and "<!DOCTYPE html>" in text and 'src="app.js"' in text
    assert r.getheader("Content-Type") == "text/html; charset=utf-8"
    assert r.getheader("Content-Security-Policy").startswith("default-src 'self'")
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    etag = r.getheader("ETag")
    assert etag and etag.startswith('"')
    st, text, r = anon.call("GET", "/ui/", headers={"If-None-Match": etag}, raw=True)
    assert st == 304 and text == ""
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css"),
                        ("favicon.svg", "image/svg+xml"), ("index.html", "text/html")):
        st, text, r = anon.call("GET", "/ui/" + name, raw=True)
        assert st == 200 and text and r.getheader("Content-Type").startswith(ctype), name
        assert r.getheader("ETag") != etag or name == "index.html"
    st, _, r = anon.call("GET", "/ui", raw=True)
    assert st == 308 and r.getheader("Location") == "/ui/"
    assert anon.call("GET", "/ui/nope.js")[0] == 404
    assert anon.call("GET", "/ui/../v1/slots")[0] in (401, 404)
    assert anon.call("POST", "/ui/", {})[0] == 405
    # Everything else still needs the token.
    assert anon.call("GET", "/v1/nodes")[0] == 401
    assert anon.call("GET", "/uix")[0] == 401
    metrics = orch.call("GET", "/metrics")[1]
    assert 'route="ui"' in metrics


def test_slot_pager(orch, fakemem, computes, hb_factory):
    hb, _ = cluster(orch, fakemem, computes, hb_factory)
    st, ans = orch.call("POST", "/v1/slots", {"name": "web", "vcpus": 1, "memory": "256M"})
    assert st == 201, ans
    st, ans = orch.call("GET", "/v1/slots/web/pager")
    assert st == 200, ans
    assert ans["slot"] == "web" and ans["compute"] == 10 and ans["time_ms"] > 0
    assert ans["pager"] is None or isinstance(ans["pager"], dict)
    assert orch.call("GET", "/v1/slots/nope/pager")[0] == 404
    assert orch.call("POST", "/v1/slots/web/pager")[0] == 405
    assert Api(orch.addr).call("GET", "/v1/slots/web/pager")[0] == 401
    hb.stop()
