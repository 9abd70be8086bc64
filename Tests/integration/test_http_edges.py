"""Raw-HTTP edge rules of the Streamable HTTP transport, both eras, against a real host on 127.0.0.1.

Spec references: /work/shared/mcp-spec/2026-07-28/basic/transports/streamable-http.mdx (modern),
2026-07-28/basic/versioning.mdx, 2025-11-25/basic/transports.mdx (legacy sessions).
Every JSON-RPC body the host sends here is validated against its revision's JSON Schema (schema_check.py).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import pytest

from conftest import (
    ACCEPT_BOTH,
    META_CAPABILITIES,
    MODERN_VERSION,
    LegacySession,
    StderrWatcher,
    http_call,
    modern_body,
    modern_headers,
    modern_meta,
    modern_post,
    open_http,
    parse_sse,
)
from schema_check import check_notification, check_response, check_server_message

pytestmark = pytest.mark.timeout(60)

LEGACY_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]


@pytest.fixture
def host(host_factory, reference_plugin):
    return host_factory(reference_plugin)


def legacy(host, version="2025-11-25") -> LegacySession:
    s = LegacySession(host.port, version)
    reply = s.initialize()
    check_response(reply.json(), version, "initialize")
    return s


def error_of(reply, version, *, status: int, code: int, method: str | None = None) -> dict:
    """Asserts an HTTP status and a JSON-RPC error code; validates the body; returns the error object."""
    assert reply.status == status, f"expected HTTP {status}, got {reply.status}: {reply.body[:500]!r}"
    msg = reply.json()
    assert "error" in msg, f"expected a JSON-RPC error, got {msg}"
    assert msg["error"]["code"] == code, f"expected error code {code}, got {msg['error']}"
    check_response(msg, version, method)
    return msg["error"]


def forbidden(reply, version) -> dict:
    """403 with (optionally) a JSON-RPC error that has no id (transport spec, Security)."""
    assert reply.status == 403, f"expected HTTP 403, got {reply.status}: {reply.body[:300]!r}"
    msg = reply.json()
    assert "error" in msg and "id" not in msg, msg
    check_response(msg, version)
    return msg["error"]


def result_of(reply, version, method: str) -> dict:
    assert reply.status == 200, f"{method}: HTTP {reply.status}: {reply.body[:500]!r}"
    msg = reply.final()
    check_response(msg, version, method)
    assert "result" in msg, f"{method}: expected a result, got {msg}"
    return msg["result"]


# ----------------------------------------------------------------------------------------------------------
# DNS rebinding protection (both eras): bad Origin and bad Host -> 403
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_bad_origin_is_forbidden(host, era):
    evil = {"Origin": "http://evil.example.com"}
    if era == "modern":
        params = {}
        reply = modern_post(host.port, "tools/list", params, extra_headers=evil)
        version = MODERN_VERSION
    else:
        s = legacy(host)
        reply = http_call(host.port, "POST", body={"jsonrpc": "2.0", "id": 5, "method": "tools/list"},
                          headers={**s.headers(), **evil})
        version = s.version
        # initialize itself is refused too, and no session is minted for it
        init = http_call(host.port, "POST", headers={"Accept": ACCEPT_BOTH, **evil}, body={
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        forbidden(init, version)
        assert init.header("Mcp-Session-Id") is None
    err = forbidden(reply, version)
    assert "Origin" in err["message"] or "origin" in err["message"]
    # A loopback Origin is fine (the same request otherwise).
    if era == "modern":
        ok = modern_post(host.port, "tools/list", {}, extra_headers={"Origin": f"http://localhost:{host.port}"})
        result_of(ok, version, "tools/list")


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_bad_host_header_is_forbidden(host, era):
    if era == "modern":
        body = modern_body("tools/list", {})
        headers = modern_headers("tools/list", {})
        version = MODERN_VERSION
    else:
        s = legacy(host)
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
        headers = s.headers()
        version = s.version
    forbidden(http_call(host.port, "POST", body=body, headers=headers, host="evil.example.com"), version)
    forbidden(http_call(host.port, "POST", body=body, headers=headers, host=f"evil.example.com:{host.port}"), version)
    # the same request with a loopback Host passes
    ok = http_call(host.port, "POST", body=body, headers=headers, host=f"localhost:{host.port}")
    result_of(ok, version, "tools/list")


# ----------------------------------------------------------------------------------------------------------
# 2026-07-28: request metadata headers (Server Validation), versions, capabilities, methods
# ----------------------------------------------------------------------------------------------------------


def modern_raw(host, method, params, headers):
    return http_call(host.port, "POST", body=modern_body(method, params), headers=headers)


def test_modern_mcp_name_header_mismatch(host):
    params = {"name": "echo", "arguments": {"text": "hi"}}
    headers = modern_headers("tools/call", params, name="add")
    err = error_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, status=400, code=-32020)
    assert "Mcp-Name" in err["message"]
    # resources/read mirrors params.uri
    params = {"uri": "reference://readme"}
    headers = modern_headers("resources/read", params, name="reference://notes/1")
    error_of(modern_raw(host, "resources/read", params, headers), MODERN_VERSION, status=400, code=-32020)
    # a missing Mcp-Name is a mismatch too
    params = {"name": "greet", "arguments": {"name": "Ada"}}
    headers = modern_headers("prompts/get", params)
    del headers["Mcp-Name"]
    error_of(modern_raw(host, "prompts/get", params, headers), MODERN_VERSION, status=400, code=-32020)


def test_modern_mcp_method_header_mismatch(host):
    params = {}
    headers = modern_headers("tools/list", params)
    headers["Mcp-Method"] = "prompts/list"
    err = error_of(modern_raw(host, "tools/list", params, headers), MODERN_VERSION, status=400, code=-32020)
    assert "Mcp-Method" in err["message"]
    del headers["Mcp-Method"]
    error_of(modern_raw(host, "tools/list", params, headers), MODERN_VERSION, status=400, code=-32020)
    # header values are case-sensitive
    headers["Mcp-Method"] = "Tools/List"
    error_of(modern_raw(host, "tools/list", params, headers), MODERN_VERSION, status=400, code=-32020)


def test_modern_missing_protocol_version_header(host):
    headers = modern_headers("tools/list", {}, version=None)
    err = error_of(modern_raw(host, "tools/list", {}, headers), MODERN_VERSION, status=400, code=-32020)
    assert "MCP-Protocol-Version" in err["message"]


def test_modern_protocol_version_header_differs_from_meta(host):
    headers = modern_headers("tools/list", {}, version="2025-11-25")
    error_of(modern_raw(host, "tools/list", {}, headers), MODERN_VERSION, status=400, code=-32020)
    body = modern_body("tools/list", {}, meta=modern_meta(version="2025-11-25"))
    reply = http_call(host.port, "POST", body=body, headers=modern_headers("tools/list", {}))
    error_of(reply, MODERN_VERSION, status=400, code=-32020)


def test_modern_unsupported_protocol_version(host):
    body = modern_body("tools/list", {}, meta=modern_meta(version="1900-01-01"))
    reply = http_call(host.port, "POST", body=body, headers=modern_headers("tools/list", {}, version="1900-01-01"))
    err = error_of(reply, MODERN_VERSION, status=400, code=-32022)
    assert MODERN_VERSION in err["data"]["supported"]
    assert err["data"]["requested"] == "1900-01-01"
    # a client retrying with a version from `supported` succeeds (versioning.mdx negotiation flow)
    retry = modern_post(host.port, "tools/list", {})
    result_of(retry, MODERN_VERSION, "tools/list")


def test_modern_missing_client_capabilities(host):
    body = modern_body("tools/list", {}, meta=modern_meta(omit=(META_CAPABILITIES,)))
    reply = http_call(host.port, "POST", body=body, headers=modern_headers("tools/list", {}))
    err = error_of(reply, MODERN_VERSION, status=400, code=-32602)
    assert META_CAPABILITIES in err["message"]


def test_modern_unknown_method_is_404_method_not_found(host):
    reply = modern_post(host.port, "tools/frobnicate", {})
    error_of(reply, MODERN_VERSION, status=404, code=-32601)
    # ping and logging/setLevel were removed in 2026-07-28 (changelog item 5)
    error_of(modern_post(host.port, "ping", {}), MODERN_VERSION, status=404, code=-32601)
    error_of(modern_post(host.port, "logging/setLevel", {"level": "info"}), MODERN_VERSION, status=404, code=-32601)


def test_modern_base64_sentinel_mcp_name_is_decoded(host):
    params = {"name": "echo", "arguments": {"text": "héllo"}}
    encoded = "=?base64?" + base64.b64encode(b"echo").decode() + "?="
    headers = modern_headers("tools/call", params, name=encoded)
    result = result_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, "tools/call")
    assert result["content"] == [{"type": "text", "text": "héllo"}]
    # a sentinel that decodes to another name is a mismatch
    wrong = "=?base64?" + base64.b64encode(b"add").decode() + "?="
    headers = modern_headers("tools/call", params, name=wrong)
    error_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, status=400, code=-32020)
    # a non-ASCII URI travels base64-encoded
    params = {"uri": "reference://notes/ü"}
    headers = modern_headers("resources/read", params,
                             name="=?base64?" + base64.b64encode(params["uri"].encode()).decode() + "?=")
    reply = modern_raw(host, "resources/read", params, headers)
    assert reply.status == 200, reply.body
    check_response(reply.final(), MODERN_VERSION, "resources/read")
    assert reply.final()["error"]["code"] == -32602  # the note does not exist, but the headers were accepted


def test_modern_header_names_are_case_insensitive(host):
    params = {"name": "echo", "arguments": {"text": "case"}}
    headers = {k.lower(): v for k, v in modern_headers("tools/call", params).items()}
    result = result_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, "tools/call")
    assert result["content"][0]["text"] == "case"
    headers = {k.upper(): v for k, v in modern_headers("tools/call", params).items()}
    result_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, "tools/call")


def test_modern_invalid_mcp_name_values_are_header_mismatch(host):
    # Raw non-ASCII bytes (UTF-8 of the body's name) are not a valid header value: they must be base64-encoded.
    params = {"name": "é", "arguments": {}}
    headers = modern_headers("tools/call", params)
    headers["Mcp-Name"] = "é".encode("utf-8").decode("latin-1")  # http.client sends latin-1: the UTF-8 bytes
    error_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, status=400, code=-32020)
    # A sentinel whose payload is not base64 is malformed.
    params = {"name": "echo", "arguments": {"text": "x"}}
    headers = modern_headers("tools/call", params, name="=?base64?!!not base64!!?=")
    error_of(modern_raw(host, "tools/call", params, headers), MODERN_VERSION, status=400, code=-32020)


def test_modern_log_level_threshold_and_invalid_level(host):
    """logging.mdx: messages only at or above the requested level; an unknown level SHOULD be -32602."""
    params = {"name": "slow_count", "arguments": {"seconds": 0}}
    reply = http_call(host.port, "POST", body=modern_body("tools/call", params, meta=modern_meta(log_level="error")),
                      headers=modern_headers("tools/call", params))
    assert reply.status == 200
    for m in reply.messages():
        check_server_message(m, MODERN_VERSION, "tools/call")
        assert m.get("method") != "notifications/message", f"info message sent below the requested level: {m}"
    reply = http_call(host.port, "POST", body=modern_body("tools/call", params, meta=modern_meta(log_level="debug")),
                      headers=modern_headers("tools/call", params))
    logs = [m for m in reply.messages() if m.get("method") == "notifications/message"]
    assert [m["params"]["level"] for m in logs] == ["info"]
    reply = http_call(host.port, "POST", body=modern_body("tools/call", params, meta=modern_meta(log_level="loud")),
                      headers=modern_headers("tools/call", params))
    error_of(reply, MODERN_VERSION, status=400, code=-32602)


def test_modern_request_with_session_header_is_served_statelessly(host):
    """2026-07-28 streamable-http.mdx, Backward Compatibility: an Mcp-Session-Id header on a request is ignored;
    versioning.mdx: a request carrying modern per-request _meta is served statelessly."""
    reply = modern_post(host.port, "tools/list", {}, extra_headers={"Mcp-Session-Id": "0123456789abcdef"})
    result_of(reply, MODERN_VERSION, "tools/list")
    assert reply.header("Mcp-Session-Id") is None


def test_modern_notification_is_202_without_body(host):
    body = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99, "_meta": modern_meta()}}
    headers = modern_headers("notifications/cancelled")
    reply = http_call(host.port, "POST", body=body, headers=headers)
    assert reply.status == 202
    assert reply.body == b""


def test_modern_request_ignores_session_header_and_mints_none(host):
    """Modern requests are stateless: no Mcp-Session-Id in the answer (2026-07-28 Backward Compatibility)."""
    reply = modern_post(host.port, "server/discover", {})
    result = result_of(reply, MODERN_VERSION, "server/discover")
    assert reply.header("Mcp-Session-Id") is None
    assert MODERN_VERSION in result["supportedVersions"]


# ----------------------------------------------------------------------------------------------------------
# 2025-era sessions
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_legacy_initialize_returns_session_and_version(host, version):
    s = LegacySession(host.port, version)
    reply = s.initialize()
    result = check_response(reply.json(), version, "initialize")["result"]
    assert result["protocolVersion"] == version
    assert result["serverInfo"]["name"] == "reference"
    # ping in the session -> empty result
    ping = s.request("ping")
    assert result_of(ping, version, "ping") == {}


def test_legacy_initialize_with_unknown_version_answers_a_supported_one(host):
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2024-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    reply = http_call(host.port, "POST", body=body, headers={"Accept": ACCEPT_BOTH})
    assert reply.status == 200
    result = reply.json()["result"]
    assert result["protocolVersion"] in LEGACY_VERSIONS
    check_response(reply.json(), result["protocolVersion"], "initialize")


def test_legacy_request_without_session_is_400(host):
    legacy(host)
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    reply = http_call(host.port, "POST", body=body, headers={"Accept": ACCEPT_BOTH, "MCP-Protocol-Version": "2025-11-25"})
    assert reply.status == 400
    check_response(reply.json(), "2025-11-25")
    reply = http_call(host.port, "POST", body=body, headers={"Accept": ACCEPT_BOTH})
    assert reply.status == 400
    check_response(reply.json(), "2025-11-25")


def test_legacy_unknown_session_is_404(host):
    s = LegacySession(host.port, "2025-11-25")
    s.session_id = "0123456789abcdef0123456789abcdef"
    reply = s.request("tools/list")
    assert reply.status == 404
    check_response(reply.json(), "2025-11-25")


def test_legacy_get_stream_with_session(host):
    s = legacy(host)
    conn, resp = open_http(host.port, "GET", headers=s.headers(accept="text/event-stream"), timeout=10)
    try:
        assert resp.status == 200
        assert (resp.getheader("Content-Type") or "").split(";")[0].strip() == "text/event-stream"
        first = resp.read1(64)  # the host opens the stream with an SSE comment; read it, then hang up
        assert first, "the GET stream sent no bytes"
        for event in parse_sse(first, allow_partial=True):  # well-formed SSE; a priming event may have no data
            if event.data:
                check_server_message(event.json(), s.version)
    finally:
        conn.close()
    # the session still works after the stream closed
    result_of(s.request("tools/list"), s.version, "tools/list")


def test_legacy_get_without_session_is_405(host):
    reply = http_call(host.port, "GET", headers={"Accept": "text/event-stream"}, content_type=None)
    assert reply.status == 405
    if reply.body:
        check_response(reply.json(), "2025-11-25")


def test_legacy_delete_ends_session(host):
    s = legacy(host)
    reply = s.delete()
    assert 200 <= reply.status < 300, reply.status
    again = s.request("tools/list")
    assert again.status == 404
    check_response(again.json(), s.version)
    assert s.delete().status == 404


def test_legacy_disconnect_is_not_cancellation(host_factory, reference_plugin):
    """2025-11-25 transports.mdx, Sending Messages 6: 'Disconnection SHOULD NOT be interpreted as the client
    cancelling its request. To cancel, the client SHOULD explicitly send an MCP CancelledNotification.'

    Observable: with --max-concurrency 1, a slow_count that keeps running after its client hung up still
    holds the only handler thread, so a slow_count of 0 s made next waits for it (here: > 1 s).
    """
    host = host_factory(reference_plugin, "--max-concurrency", "1")
    watcher = StderrWatcher(host)
    s = legacy(host)
    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
    body = json.dumps({"jsonrpc": "2.0", "id": 50, "method": "tools/call",
                       "params": {"name": "slow_count", "arguments": {"seconds": 2}}})
    conn.request("POST", "/mcp", body=body, headers={**s.headers(), "Content-Type": "application/json"})
    watcher.wait_for("counting 20 steps", timeout=10)
    conn.close()  # the client goes away without a CancelledNotification
    t0 = time.monotonic()
    reply = s.request("tools/call", {"name": "slow_count", "arguments": {"seconds": 0}}, timeout=20)
    waited = time.monotonic() - t0
    assert result_of(reply, s.version, "tools/call")["content"][0]["text"] == "counted to 0"
    assert waited > 1.0, f"the first call stopped when its client disconnected (next call ran after {waited:.2f} s)"


def test_legacy_session_rejects_modern_version_header(host):
    s = legacy(host)
    headers = s.headers()
    headers["MCP-Protocol-Version"] = "1900-01-01"
    reply = http_call(host.port, "POST", body={"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers=headers)
    assert reply.status == 400
    check_response(reply.json(), s.version)


# ----------------------------------------------------------------------------------------------------------
# Both eras: body limit, malformed JSON, batches, media types, SSE framing, wrong path
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_body_over_limit_is_413_and_host_keeps_serving(host_factory, reference_plugin, era):
    host = host_factory(reference_plugin, "--max-body-bytes", "1024")
    if era == "modern":
        params = {"name": "echo", "arguments": {"text": "x" * 4000}}
        body = json.dumps(modern_body("tools/call", params)).encode()
        headers = modern_headers("tools/call", params)
        version = MODERN_VERSION
    else:
        s = legacy(host)
        body = json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"text": "x" * 4000}}}).encode()
        headers = s.headers()
        version = s.version
    assert len(body) > 1024
    # Send the head only: the host must answer from Content-Length without waiting for the body.
    conn, resp = _send_head_only(host.port, body, headers)
    try:
        assert resp.status == 413
        msg = json.loads(resp.read())
        check_response(msg, version)
    finally:
        conn.close()
    # Whole body sent at once: still 413.
    reply = http_call(host.port, "POST", body=body, headers=headers)
    assert reply.status == 413
    check_response(reply.json(), version)
    # The host still serves the next request, and a body at the limit passes.
    if era == "modern":
        nxt = modern_post(host.port, "tools/call", {"name": "echo", "arguments": {"text": "ok"}})
    else:
        nxt = s.request("tools/call", {"name": "echo", "arguments": {"text": "ok"}})
    assert result_of(nxt, version, "tools/call")["content"][0]["text"] == "ok"


def _send_head_only(port, body: bytes, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/mcp", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", f"127.0.0.1:{port}")
    conn.putheader("Content-Type", "application/json")
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    return conn, conn.getresponse()


def _era_post(host, era, raw_body, *, headers_extra=None, content_type="application/json"):
    """POSTs raw bytes with the headers of the era (modern headers for tools/list, or a session's)."""
    if era == "modern":
        headers = modern_headers("tools/list", {})
        version = MODERN_VERSION
    else:
        s = legacy(host)
        headers = s.headers()
        version = s.version
    headers.update(headers_extra or {})
    if content_type is not None:
        headers["Content-Type"] = content_type
    return http_call(host.port, "POST", body=raw_body, headers=headers, content_type=None), version


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_malformed_json_is_400_parse_error(host, era):
    reply, version = _era_post(host, era, b'{"jsonrpc": "2.0", "id": 1, "method": ')
    error_of(reply, version, status=400, code=-32700)


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_batch_is_400_invalid_request(host, era):
    if era == "modern":
        batch = [modern_body("tools/list", {}, id=1), modern_body("prompts/list", {}, id=2)]
    else:
        batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}]
    reply, version = _era_post(host, era, json.dumps(batch).encode())
    error_of(reply, version, status=400, code=-32600)


@pytest.mark.parametrize("era", ["modern", "legacy"])
@pytest.mark.parametrize("raw", [
    b'"just a string"',
    b'{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}',
    b'{"jsonrpc": "2.0", "id": null, "method": "tools/list"}',
    b'{"jsonrpc": "2.0", "id": 3, "method": 42}',
], ids=["string", "jsonrpc-1.0", "id-null", "method-number"])
def test_invalid_jsonrpc_message_is_400_invalid_request(host, era, raw):
    reply, version = _era_post(host, era, raw)
    error_of(reply, version, status=400, code=-32600)


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_wrong_content_type_is_415(host, era):
    body = modern_body("tools/list", {}) if era == "modern" else {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    reply, version = _era_post(host, era, json.dumps(body).encode(), content_type="text/plain")
    assert reply.status == 415
    check_response(reply.json(), version)


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_unacceptable_accept_is_406(host, era):
    body = modern_body("tools/list", {}) if era == "modern" else {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    reply, version = _era_post(host, era, json.dumps(body).encode(), headers_extra={"Accept": "text/html"})
    assert reply.status == 406
    check_response(reply.json(), version)


@pytest.mark.parametrize("era", ["modern", "legacy"])
def test_sse_only_accept_gets_event_stream(host, era):
    params = {"name": "echo", "arguments": {"text": "streamed"}}
    if era == "modern":
        reply = modern_post(host.port, "tools/call", params, accept="text/event-stream")
        version = MODERN_VERSION
    else:
        s = legacy(host)
        reply = s.request("tools/call", params, accept="text/event-stream")
        version = s.version
    assert reply.status == 200
    assert reply.content_type == "text/event-stream"
    _assert_message_frames(reply.body)
    events = reply.sse_events()
    assert len(events) == 1
    msg = check_response(events[0].json(), version, "tools/call")
    assert msg["result"]["content"] == [{"type": "text", "text": "streamed"}]


def _assert_message_frames(raw: bytes) -> None:
    """Every event is exactly `[id: <id>\\n]event: message\\ndata: <one JSON line>\\n\\n` (comments allowed), or a
    priming event `id: <id>\\nretry: 1000\\ndata: \\n\\n` (2025-11-25, first in the stream)."""
    text = raw.decode()
    assert text.endswith("\n\n"), f"stream does not end with a blank line: {text[-80:]!r}"
    for i, block in enumerate(text.split("\n\n")[:-1]):
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        if len(lines) == 3 and lines[0].startswith("id: ") and lines[1] == "retry: 1000" and lines[2] == "data: ":
            assert i == 0, f"a priming event after the first: {block!r}"  # with the reconnect delay (transports.mdx)
            continue
        if lines[0].startswith("id: "):
            lines = lines[1:]
        assert len(lines) == 2 and lines[0] == "event: message" and lines[1].startswith("data: "), block
        json.loads(lines[1][len("data: "):])


@pytest.mark.parametrize("version", [MODERN_VERSION, *LEGACY_VERSIONS])
def test_progress_and_log_stream_ends_with_response(host, version):
    args = {"name": "slow_count", "arguments": {"seconds": 1}}
    if version == MODERN_VERSION:
        params = dict(args)
        meta = modern_meta(log_level="info", progress_token="tok-1")
        reply = http_call(host.port, "POST", body=modern_body("tools/call", params, meta=meta),
                          headers=modern_headers("tools/call", params))
    else:
        s = LegacySession(host.port, version)
        check_response(s.initialize().json(), version, "initialize")
        result_of(s.request("logging/setLevel", {"level": "info"}), version, "logging/setLevel")
        reply = s.request("tools/call", {**args, "_meta": {"progressToken": "tok-1"}})
    assert reply.status == 200
    assert reply.content_type == "text/event-stream"
    assert reply.header("X-Accel-Buffering") == "no"
    _assert_message_frames(reply.body)
    messages = reply.messages()
    for m in messages:
        check_server_message(m, version, "tools/call")
    *notes, final = messages
    assert "id" in final and "result" in final, f"the stream must end with the response: {final}"
    assert final["result"]["content"][0]["text"] == "counted to 10"
    assert all("method" in n and "id" not in n for n in notes), "only notifications may precede the response"
    progress = [n["params"] for n in notes if n["method"] == "notifications/progress"]
    logs = [n["params"] for n in notes if n["method"] == "notifications/message"]
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    assert len(progress) == 10 and progress[-1]["progress"] == 10 and all(p["total"] == 10 for p in progress)
    assert all(p["progressToken"] == "tok-1" for p in progress)
    assert any(entry["level"] == "info" and "counting" in str(entry["data"]) for entry in logs), logs
    for n in notes:
        check_notification(n, version)


def test_modern_no_log_messages_without_opt_in(host):
    """2026-07-28 changelog item 5: no notifications/message for requests without io.modelcontextprotocol/logLevel."""
    params = {"name": "slow_count", "arguments": {"seconds": 0}}
    meta = modern_meta(progress_token=7)
    reply = http_call(host.port, "POST", body=modern_body("tools/call", params, meta=meta),
                      headers=modern_headers("tools/call", params))
    assert reply.status == 200
    for m in reply.messages():
        check_server_message(m, MODERN_VERSION, "tools/call")
        assert m.get("method") != "notifications/message", m


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_wrong_path_is_404(host, method):
    body = modern_body("tools/list", {}) if method == "POST" else None
    headers = modern_headers("tools/list", {}) if method == "POST" else {"Accept": ACCEPT_BOTH}
    for path in ["/", "/mcp/extra", "/other"]:
        reply = http_call(host.port, method, path, body=body, headers=headers, content_type="application/json" if body else None)
        assert reply.status == 404, (path, reply.status)


def test_unsupported_http_method_is_405(host):
    reply = http_call(host.port, "PUT", body=modern_body("tools/list", {}), headers=modern_headers("tools/list", {}))
    assert reply.status == 405
    assert "POST" in (reply.header("Allow") or "")
    check_response(reply.json(), MODERN_VERSION)


# ----------------------------------------------------------------------------------------------------------
# Every method's result in every revision validates against that revision's schema
# ----------------------------------------------------------------------------------------------------------


CALLS = [
    # (method, params, expectation) - expectation: "result", "tool_error", or an error code
    ("tools/list", {}, "result"),
    ("tools/call", {"name": "echo", "arguments": {"text": "schema"}}, "result"),
    ("tools/call", {"name": "add", "arguments": {"a": 2, "b": 40}}, "result"),
    ("tools/call", {"name": "fail", "arguments": {"message": "bad things"}}, "tool_error"),
    ("tools/call", {"name": "no_such_tool", "arguments": {}}, -32602),
    ("resources/list", {}, "result"),
    ("resources/templates/list", {}, "result"),
    ("resources/read", {"uri": "reference://readme"}, "result"),
    ("resources/read", {"uri": "reference://notes/2"}, "result"),
    ("resources/read", {"uri": "reference://notes/9"}, "not_found"),
    ("prompts/list", {}, "result"),
    ("prompts/get", {"name": "greet", "arguments": {"name": "Ada", "style": "formal"}}, "result"),
    ("prompts/get", {"name": "greet", "arguments": {}}, -32602),
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": "greet"},
                             "argument": {"name": "style", "value": "f"}}, "result"),
    ("completion/complete", {"ref": {"type": "ref/resource", "uri": "reference://notes/{id}"},
                             "argument": {"name": "id", "value": ""}}, "result"),
]


@pytest.mark.parametrize("version", [MODERN_VERSION, *LEGACY_VERSIONS])
def test_every_method_validates_against_schema(host, version):
    modern = version == MODERN_VERSION
    if modern:
        post = lambda method, params, **kw: modern_post(host.port, method, params, **kw)  # noqa: E731
        discover = result_of(post("server/discover", {}), version, "server/discover")
        assert MODERN_VERSION in discover["supportedVersions"]
        assert set(LEGACY_VERSIONS) <= set(discover["supportedVersions"])
    else:
        s = LegacySession(host.port, version)
        init = check_response(s.initialize().json(), version, "initialize")["result"]
        assert init["protocolVersion"] == version
        post = lambda method, params, **kw: s.request(method, params, **kw)  # noqa: E731
        assert result_of(post("ping", None), version, "ping") == {}
        assert result_of(post("logging/setLevel", {"level": "warning"}), version, "logging/setLevel") == {}
    for accept in (ACCEPT_BOTH, "text/event-stream"):
        for method, params, expect in CALLS:
            reply = post(method, params, accept=accept)
            where = f"{version} {method} {params} (Accept: {accept})"
            if accept == "text/event-stream" and reply.status == 200:
                assert reply.content_type == "text/event-stream", where
            if expect in ("result", "tool_error"):
                result = result_of(reply, version, method)
                if method == "tools/call":
                    assert bool(result.get("isError")) == (expect == "tool_error"), where
                if modern:
                    assert result["resultType"] == "complete", where
            else:
                code = expect if isinstance(expect, int) else (-32602 if modern else -32002)
                # Modern errors found before the plugin runs carry their HTTP status (400); legacy ride on 200.
                msg = reply.final() if reply.status == 200 else reply.json()
                check_response(msg, version, method)
                assert "error" in msg and msg["error"]["code"] == code, f"{where}: {msg}"
                if not modern:
                    assert reply.status == 200, where
    # spot checks of content, so a schema-valid but wrong answer fails too
    add = result_of(post("tools/call", {"name": "add", "arguments": {"a": 2, "b": 40}}), version, "tools/call")
    assert add["structuredContent"] == {"sum": 42}
    note = result_of(post("resources/read", {"uri": "reference://notes/2"}), version, "resources/read")
    assert note["contents"][0]["text"] == "Note 2" and note["contents"][0]["uri"] == "reference://notes/2"


def test_unknown_method_in_legacy_session(host):
    s = legacy(host)
    reply = s.request("tools/frobnicate", {})
    msg = reply.json()
    check_response(msg, s.version)
    assert msg["error"]["code"] == -32601


def test_connection_refused_is_not_a_pass():
    """Guard: the helpers fail loudly on a closed port (so a dead host cannot look like a passing test)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OSError):
        http_call(port, "POST", body=modern_body("tools/list", {}), headers=modern_headers("tools/list", {}))
