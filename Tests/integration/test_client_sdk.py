"""The official Python SDK (`mcp` 2.3.0) against the host serving the reference plugin, in both eras.

mode="auto" probes server/discover and must stay on 2026-07-28; mode="legacy" runs the initialize handshake
(2025-11-25 session). All HTTP traffic goes through a recording httpx2 transport, and every response body
(JSON, or each SSE event) is validated against the JSON Schema of the revision the request was sent at.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import MODERN_VERSION, parse_sse
from sdk_recorder import Exchange, Recorder, run
from schema_check import check_response, check_server_message

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MODES = ["auto", "legacy"]
EXPECTED_VERSION = {"auto": MODERN_VERSION, "legacy": "2025-11-25"}
DEADLINE = 30.0  # seconds for one test's whole client conversation


# ----------------------------------------------------------------------------------------------------------
# Traffic validation: every exchange the recorder (sdk_recorder.py) kept, against its revision's schema.
# ----------------------------------------------------------------------------------------------------------


def validate_traffic(exchanges: list[Exchange], mode: str) -> dict[str, int]:
    """Validates every recorded response against its revision's schema; returns {method: responses seen}."""
    expected = EXPECTED_VERSION[mode]
    seen: dict[str, int] = {}
    session_version: str | None = None
    # Requests the client cancelled (2025 era): no response is sent for them (cancellation.mdx), so their SSE
    # answer may end without one.
    cancelled = set()
    for ex in exchanges:
        if ex.method == "POST":
            body = ex.request_json()
            if isinstance(body, dict) and body.get("method") == "notifications/cancelled":
                cancelled.add(json.dumps((body.get("params") or {}).get("requestId")))
    for ex in exchanges:
        if ex.method == "POST":
            req = ex.request_json()
            assert isinstance(req, dict), f"the SDK posted a non-object body: {ex.request_body[:200]!r}"
            method = req.get("method")
            is_request = "id" in req and method is not None
            header_version = ex.request_headers.get("mcp-protocol-version")
            if method == "initialize":
                assert mode == "legacy", "mode=auto fell back to initialize: the host was not recognised as modern"
            if not is_request:
                # notifications (notifications/initialized, notifications/cancelled) and responses: 202, no body
                if method == "notifications/cancelled" and ex.status in (0, 404) and any(e.method == "DELETE" for e in exchanges):
                    # When the client exits right after cancelling, the SDK posts the cancel concurrently with the
                    # DELETE that ends the session, and may abandon it unanswered (status 0) when it tears down;
                    # a 404 for a session that just ended is the correct answer.
                    continue
                assert ex.status == 202, f"{method}: HTTP {ex.status}"
                assert ex.body == b"", f"{method}: 202 with a body {ex.body[:200]!r}"
                continue
            if method == "initialize":
                version = None  # known from the result below
            else:
                version = header_version or session_version
                assert version == expected, f"{method} was sent at {version}, expected {expected}"
            if ex.content_type == "application/json":
                msg = json.loads(ex.body)
                if method == "initialize":
                    version = msg["result"]["protocolVersion"]
                    session_version = version
                    assert version == expected
                check_response(msg, version, method)
                assert msg.get("id") == req["id"], f"{method}: response id {msg.get('id')!r} != {req['id']!r}"
            elif ex.content_type == "text/event-stream":
                events = parse_sse(ex.body, allow_partial=not ex.complete)
                for e in events:
                    assert e.event in (None, "message"), f"{method}: SSE event type {e.event!r}"
                    msg = check_server_message(e.json(), version, method)
                    if "id" in msg and "method" not in msg:  # the response, not a request of the server's
                        assert msg["id"] == req["id"]
                if ex.complete and json.dumps(req["id"]) in cancelled:
                    # Cancelled: it ends with no response (the host's rule, MCPDispatcherTests), or with the response
                    # when the answer was on its way before the cancellation arrived.
                    pass
                elif ex.complete:
                    assert events, f"{method}: empty SSE response"
                    last = events[-1].json()
                    assert "id" in last and "method" not in last, f"{method}: the SSE stream did not end with the response"
            else:
                raise AssertionError(f"{method}: HTTP {ex.status} with Content-Type {ex.content_type!r}: {ex.body[:200]!r}")
            seen[method] = seen.get(method, 0) + 1
        elif ex.method == "GET":
            assert mode == "legacy", "a GET stream was opened on a 2026-07-28 connection"
            assert ex.status == 200 and ex.content_type == "text/event-stream", (ex.status, ex.content_type)
            for e in parse_sse(ex.body, allow_partial=True):
                check_server_message(e.json(), session_version or expected)
        elif ex.method == "DELETE":
            assert mode == "legacy"
            assert 200 <= ex.status < 300, f"DELETE: HTTP {ex.status}"
        else:
            raise AssertionError(f"unexpected HTTP method {ex.method}")
    return seen


async def run_client(url: str, mode: str, body: Callable[[Client], Awaitable[Any]], verify=True,
                     headers: dict | None = None, **client_kwargs) -> tuple[Any, dict[str, int]]:
    """Runs `body(client)` on a recording SDK client within DEADLINE; validates all traffic afterwards
    (`verify`: the TLS trust for an https:// URL; `headers`: sent on every request, e.g. a bearer token)."""
    recorder = Recorder(verify=verify)
    http = httpx2.AsyncClient(transport=recorder, headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    with anyio.fail_after(DEADLINE):
        async with http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode, **client_kwargs) as client:
                out = await body(client)
    return out, validate_traffic(recorder.exchanges, mode)


@pytest.fixture
def host(host_factory, reference_plugin):
    return host_factory(reference_plugin)


# ----------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_connect_negotiates_era(host, mode):
    async def body(c: Client):
        return c.protocol_version, c.server_info, c.server_capabilities, c.instructions

    (version, info, caps, instructions), seen = run(run_client(host.url, mode, body))
    assert version == EXPECTED_VERSION[mode]
    assert info is not None and info.name == "reference" and info.version == "1.0.0"
    assert caps.tools is not None and caps.resources is not None and caps.prompts is not None
    assert caps.completions is not None
    assert instructions and "demonstration server" in instructions
    if mode == "auto":
        assert seen.get("server/discover") == 1 and "initialize" not in seen
    else:
        assert seen.get("initialize") == 1 and "server/discover" not in seen


@pytest.mark.parametrize("mode", MODES)
def test_tools(host, mode):
    async def body(c: Client):
        listed = await c.list_tools()
        echo = await c.call_tool("echo", {"text": "hello, wörld"})
        add = await c.call_tool("add", {"a": 2, "b": 3.5})
        fail = await c.call_tool("fail", {"message": "the sky fell"})
        return listed, echo, add, fail

    (listed, echo, add, fail), seen = run(run_client(host.url, mode, body))
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"echo", "add", "slow_count", "fail", "confirm", "ask_model", "list_roots", "announce"}
    assert tools["echo"].input_schema["required"] == ["text"]
    assert tools["echo"].input_schema["properties"]["text"]["type"] == "string"
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["add"].output_schema == {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]}
    assert tools["add"].annotations is not None and tools["add"].annotations.read_only_hint is True
    assert tools["slow_count"].input_schema["properties"]["seconds"]["maximum"] == 30

    assert not echo.is_error
    assert [(b.type, b.text) for b in echo.content] == [("text", "hello, wörld")]
    assert not add.is_error
    assert [b.text for b in add.content] == ["5.5"]
    assert add.structured_content == {"sum": 5.5}
    assert fail.is_error is True
    assert [b.text for b in fail.content] == ["the sky fell"]
    assert seen["tools/call"] == 3 and seen["tools/list"] >= 1


@pytest.mark.parametrize("mode", MODES)
def test_resources(host, mode):
    async def body(c: Client):
        listed = await c.list_resources()
        readme = await c.read_resource("reference://readme")
        templates = await c.list_resource_templates()
        note = await c.read_resource("reference://notes/2")
        with pytest.raises(MCPError) as missing:
            await c.read_resource("reference://notes/9")
        return listed, readme, templates, note, missing.value

    (listed, readme, templates, note, missing), seen = run(run_client(host.url, mode, body))
    assert [r.uri for r in listed.resources] == ["reference://readme"]
    assert listed.resources[0].mime_type == "text/plain"
    [content] = readme.contents
    assert content.uri == "reference://readme" and content.mime_type == "text/plain"
    assert content.text.startswith("This is the reference plugin of mcp-supervisor")
    assert listed.resources[0].size == len(content.text.encode())
    assert [t.uri_template for t in templates.resource_templates] == ["reference://notes/{id}"]
    [n] = note.contents
    assert (n.uri, n.text) == ("reference://notes/2", "Note 2")
    # 2026-07-28 answers a missing resource with -32602; 2025-11-25 with -32002 (resources.mdx, Error Handling)
    assert missing.code == (-32602 if mode == "auto" else -32002)
    assert seen["resources/read"] == 3


@pytest.mark.parametrize("mode", MODES)
def test_prompts_and_completion(host, mode):
    async def body(c: Client):
        prompts = await c.list_prompts()
        greet = await c.get_prompt("greet", {"name": "Ada", "style": "pirate"})
        default = await c.get_prompt("greet", {"name": "Grace"})
        style = await c.complete(types.PromptReference(type="ref/prompt", name="greet"), {"name": "style", "value": "p"})
        ids = await c.complete(types.ResourceTemplateReference(type="ref/resource", uri="reference://notes/{id}"),
                               {"name": "id", "value": ""})
        one = await c.complete(types.ResourceTemplateReference(type="ref/resource", uri="reference://notes/{id}"),
                               {"name": "id", "value": "2"})
        return prompts, greet, default, style, ids, one

    (prompts, greet, default, style, ids, one), seen = run(run_client(host.url, mode, body))
    [p] = prompts.prompts
    assert p.name == "greet"
    assert [(a.name, bool(a.required)) for a in p.arguments] == [("name", True), ("style", False)]
    assert greet.description == "A greeting"
    assert [(m.role, m.content.text) for m in greet.messages] == [("user", "Please greet Ada in a pirate way.")]
    assert default.messages[0].content.text == "Please greet Grace in a friendly way."
    assert style.completion.values == ["pirate", "poetic"] and style.completion.total == 2
    assert ids.completion.values == ["1", "2", "3"]
    assert one.completion.values == ["2"]
    assert seen["completion/complete"] == 3 and seen["prompts/get"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_progress_and_log_messages(host, mode):
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params):
        logs.append(params)

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async def body(c: Client):
        if mode == "legacy":
            await c.set_logging_level("info")
        return await c.call_tool("slow_count", {"seconds": 1}, progress_callback=on_progress)

    extra = {"log_level": "info"} if mode == "auto" else {}
    result, seen = run(run_client(host.url, mode, body, logging_callback=on_log, **extra))
    assert not result.is_error and result.content[0].text == "counted to 10"
    assert len(progress) == 10, progress
    values = [p for p, _, _ in progress]
    assert values == sorted(values) and len(set(values)) == 10 and values[-1] == 10
    assert all(total == 10 for _, total, _ in progress)
    assert progress[0][2] == "step 1 of 10"
    assert [(entry.level, entry.logger, entry.data) for entry in logs] == [("info", "reference", "counting 10 steps of 100 ms")]
    if mode == "legacy":
        assert seen["logging/setLevel"] == 1


def test_modern_logs_need_opt_in(host):
    """Without Client(log_level=...) a 2026-07-28 server sends no notifications/message (changelog item 5)."""
    logs: list[Any] = []

    async def on_log(params):
        logs.append(params)

    async def body(c: Client):
        return await c.call_tool("slow_count", {"seconds": 0})

    result, _ = run(run_client(host.url, "auto", body, logging_callback=on_log))
    assert result.content[0].text == "counted to 0"
    assert logs == []


@pytest.mark.parametrize("mode", MODES)
def test_cancel_in_flight_call(host_factory, reference_plugin, mode):
    """Cancelling the asyncio task of a running slow_count cancels it in the plugin.

    Observable on the host side: with --max-concurrency 1 the plugin has a single handler thread, which
    slow_count (30 s) holds until it sees the cancellation. A second slow_count (0 s; it is not a
    NONBLOCKING tool, so it needs that thread) made right after the cancel can only run once the thread is
    free, so its quick success shows the plugin stopped counting. (Without the cancel it would wait 30 s.)
    """
    host = host_factory(reference_plugin, "--max-concurrency", "1")
    started = asyncio.Event()
    progress: list[float] = []

    async def on_progress(p, total, message):
        progress.append(p)
        started.set()

    async def body(c: Client):
        task = asyncio.create_task(c.call_tool("slow_count", {"seconds": 30}, progress_callback=on_progress))
        with anyio.fail_after(10):
            await started.wait()  # the call is running in the plugin
        at_cancel = max(progress)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.monotonic()
        with anyio.fail_after(10):
            after = await c.call_tool("slow_count", {"seconds": 0})
        return after, time.monotonic() - t0, at_cancel

    (after, elapsed, at_cancel), seen = run(run_client(host.url, mode, body))
    assert not after.is_error and after.content[0].text == "counted to 0"
    # slow_count counts 10 steps a second to 300: had it gone on, the only handler thread would have been busy
    # for the (300 - at_cancel) steps left, and the second call could not have started before they were done.
    left = (300 - at_cancel) / 10
    assert left > 10, f"the cancel came late in the count ({at_cancel} of 300): the test proves nothing"
    assert elapsed < left, f"the second call waited {elapsed:.2f} s: the cancelled count ran on ({left:.1f} s left)"
    assert seen["tools/call"] >= 1
