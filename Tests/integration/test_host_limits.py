"""Host behaviour docs/protocol.md promises and no other test covered: cancellation by a closed connection
(2026-07-28) and by DELETE (session era), one GET stream per session, the 4,096-session cap with
least-recently-used eviction, and the 16 MiB cap on a call's output.

Cancellation is observed on the host: with --max-concurrency 1 the plugin has one handler thread, which a
30 s slow_count holds until it sees the cancellation; a second call that needs the thread can only finish
quickly if the first one stopped (the same reasoning as test_client_sdk.py's cancel test).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from conftest import (
    ACCEPT_BOTH,
    LegacySession,
    StderrWatcher,
    http_call,
    modern_body,
    modern_headers,
    modern_post,
    open_http,
)
from schema_check import MODERN, check_response

pytestmark = pytest.mark.timeout(180)

COUNT_SECONDS = 30  # slow_count's length in the cancellation tests: far beyond every bound below


def count_zero_elapsed(port: int) -> float:
    """Runs slow_count 0 (it needs the single handler thread) and returns how long it took."""
    t0 = time.monotonic()
    reply = modern_post(port, "tools/call", {"name": "slow_count", "arguments": {"seconds": 0}}, timeout=60)
    took = time.monotonic() - t0
    msg = check_response(reply.final(), MODERN, "tools/call")
    assert msg["result"]["content"][0]["text"] == "counted to 0", msg
    return took


def test_closed_connection_cancels_a_modern_call(host_factory, reference_plugin):
    host = host_factory(reference_plugin, "--max-concurrency", "1")
    watcher = StderrWatcher(host)
    params = {"name": "slow_count", "arguments": {"seconds": COUNT_SECONDS}}
    body = json.dumps(modern_body("tools/call", params)).encode()
    headers = {**modern_headers("tools/call", params), "Host": f"127.0.0.1:{host.port}",
               "Content-Type": "application/json", "Content-Length": str(len(body))}
    raw = ("POST /mcp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body
    s = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    try:
        s.sendall(raw)
        watcher.wait_for(rf"tools/call slow_count: counting {COUNT_SECONDS * 10} steps", timeout=10)
    finally:
        closed_at = time.monotonic()
        s.close()  # the client goes away mid-call
    took = count_zero_elapsed(host.port)
    left = COUNT_SECONDS - (time.monotonic() - closed_at - took)
    assert took < left, f"the next call waited {took:.2f} s: the abandoned count kept the thread"


def test_delete_cancels_the_sessions_calls(host_factory, reference_plugin):
    host = host_factory(reference_plugin, "--max-concurrency", "1")
    watcher = StderrWatcher(host)
    session = LegacySession(host.port, "2025-11-25")
    session.initialize()
    outcome: dict = {}

    def long_call():
        try:
            outcome["reply"] = session.request("tools/call", {"name": "slow_count",
                                                              "arguments": {"seconds": COUNT_SECONDS}}, timeout=60)
        except (ConnectionError, http.client.HTTPException) as e:
            outcome["error"] = e
        outcome["at"] = time.monotonic()

    t = threading.Thread(target=long_call, daemon=True)
    t.start()
    watcher.wait_for(rf"tools/call slow_count: counting {COUNT_SECONDS * 10} steps", timeout=10)
    deleted_at = time.monotonic()
    assert session.delete().status == 204
    # The call's own request ends (an error answer or the stream closed), long before the count could have.
    t.join(10)
    assert not t.is_alive(), "the deleted session's call is still open 10 s after DELETE"
    if "reply" in outcome:
        final = outcome["reply"].final()
        assert "error" in final or final.get("result", {}).get("isError") is True, final
    assert outcome["at"] - deleted_at < 10
    # And the plugin stopped: the single thread is free for another client.
    took = count_zero_elapsed(host.port)
    assert took < COUNT_SECONDS - (time.monotonic() - deleted_at), f"the next call waited {took:.2f} s"
    # The session is gone.
    assert session.request("ping").status == 404


def test_second_get_stream_of_a_session_gets_409(host_factory, reference_plugin):
    host = host_factory(reference_plugin)
    session = LegacySession(host.port, "2025-11-25")
    session.initialize()
    conn, first = open_http(host.port, "GET", headers=session.headers(accept="text/event-stream"), content_type=None)
    try:
        assert first.status == 200 and first.read1(64).startswith((b":", b"id: "))
        second = http_call(host.port, "GET", headers=session.headers(accept="text/event-stream"), content_type=None,
                           timeout=10)
        assert second.status == 409, (second.status, second.body[:200])
        # Another session's stream is not affected by the first one's.
        other = LegacySession(host.port, "2025-11-25")
        other.initialize()
        conn2, third = open_http(host.port, "GET", headers=other.headers(accept="text/event-stream"),
                                 content_type=None)
        try:
            assert third.status == 200
        finally:
            conn2.close()
    finally:
        conn.close()


def _initialize(conn: http.client.HTTPConnection, port: int, version: str = "2025-11-25") -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                       "params": {"protocolVersion": version, "capabilities": {},
                                  "clientInfo": {"name": "cap-test", "version": "1"}}})
    conn.request("POST", "/mcp", body=body, headers={"Host": f"127.0.0.1:{port}", "Accept": ACCEPT_BOTH,
                                                     "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
    sid = resp.getheader("Mcp-Session-Id")
    assert sid
    return sid


def _ping(port: int, sid: str) -> int:
    return http_call(port, "POST", body={"jsonrpc": "2.0", "id": 5, "method": "ping"},
                     headers={"Accept": ACCEPT_BOTH, "Mcp-Session-Id": sid,
                              "MCP-Protocol-Version": "2025-11-25"}).status


def test_session_cap_evicts_the_least_recently_used(host_factory, reference_plugin):
    cap = 4096  # docs/protocol.md
    host = host_factory(reference_plugin)
    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)  # one kept-alive connection: fast
    try:
        sids = [_initialize(conn, host.port) for _ in range(cap)]
    finally:
        conn.close()
    assert len(set(sids)) == cap
    # All 4,096 are kept; the oldest is used now, so the second oldest is the least recently used.
    assert _ping(host.port, sids[0]) == 200
    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    try:
        newest = _initialize(conn, host.port)
    finally:
        conn.close()
    assert _ping(host.port, sids[1]) == 404, "the least recently used session was kept past the cap"
    assert _ping(host.port, sids[0]) == 200, "a recently used session was evicted instead"
    assert _ping(host.port, newest) == 200
    assert _ping(host.port, sids[-1]) == 200


def test_output_over_16_mib_fails_the_plugins_writer(host_factory, faulty_plugin):
    cap = 16 << 20  # docs/protocol.md: a plugin's output over 16 MiB per call
    host = host_factory(faulty_plugin, config=json.dumps({"extra_tools": True}))
    under = modern_post(host.port, "tools/call", {"name": "big", "arguments": {"bytes": cap - (1 << 20)}},
                        timeout=120)
    assert under.status == 200
    result = check_response(under.final(), MODERN, "tools/call")["result"]
    assert not result.get("isError"), str(result)[:300]
    assert sum(len(b["text"]) for b in result["content"]) == cap - (1 << 20)

    over = modern_post(host.port, "tools/call", {"name": "big", "arguments": {"bytes": cap + (1 << 20)}},
                       timeout=120)
    assert over.status == 200
    # The writer refused the block that crossed the cap; the call is answered with an internal error that names
    # the limit (nothing of the oversized result is sent).
    error = check_response(over.final(), MODERN, "tools/call")
    assert "result" not in error and error["error"]["code"] == -32603, str(error)[:300]
    assert str(cap) in error["error"]["message"], error
    assert len(over.body) < 4096, "part of the oversized result was sent"
    # The host goes on serving.
    ok = modern_post(host.port, "tools/call", {"name": "ok", "arguments": {}})
    assert check_response(ok.final(), MODERN, "tools/call")["result"]["content"][0]["text"] == "ok"
