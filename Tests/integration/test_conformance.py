"""The conformance plugin (Plugins/conformance) served by mcp-plugin-host, checked the way the official MCP
conformance suite (@modelcontextprotocol/conformance, `server` scenarios) checks its everything server.

The suite itself needs npm, which is not reachable here; these tests are its equivalent:

- through the official Python SDK (`mcp` 2.3.0) in both eras: mode="auto" (2026-07-28, server/discover) and
  mode="legacy" (2025-11-25, initialize session). Every HTTP exchange the SDK makes is recorded and each
  response body (JSON, or every SSE event) is validated against the official JSON Schema of its revision;
- as raw HTTP: 2026-07-28 requests with their `_meta` and MCP-Protocol-Version / Mcp-Method / Mcp-Name headers,
  and 2025-era sessions (initialize, Mcp-Session-Id), each response and SSE event validated the same way;
- the suite's DNS-rebinding scenario (foreign Host → 403, foreign Origin → 403, loopback Host accepted).

Scenario ids of the suite are named in the test docstrings. Waiting is always on a condition with a deadline
(a notification, a stream event, a listing that contains the tool), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import json
import struct
import time
import warnings
import wave
import zlib
from typing import Any, Awaitable, Callable

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import (
    ACCEPT_BOTH,
    MODERN_VERSION,
    HTTPReply,
    LegacySession,
    http_call,
    modern_body,
    modern_headers,
    modern_meta,
    modern_post,
    open_http,
    parse_sse,
    plugin_path,
)
from sdk_recorder import Exchange, Recorder, run
from schema_check import check_response, check_server_message

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MODES = ["auto", "legacy"]
EXPECTED_VERSION = {"auto": MODERN_VERSION, "legacy": "2025-11-25"}
LEGACY_VERSIONS = ["2025-11-25", "2025-06-18"]
DEADLINE = 30.0  # seconds for one SDK conversation

STATIC_TOOLS = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_dynamic_tool",
]
DYNAMIC_TOOL = "test_dynamic_added"
PROMPTS = {  # name -> [(argument, required)]
    "test_simple_prompt": [],
    "test_prompt_with_arguments": [("arg1", True), ("arg2", True)],
    "test_prompt_with_embedded_resource": [("resourceUri", True)],
    "test_prompt_with_image": [],
}
TEMPLATE = "test://template/{id}/data"
SIMPLE_TEXT = "This is a simple text response for testing."
EMBEDDED_TEXT = "This is an embedded resource content."
ERROR_TEXT = "This tool intentionally returns an error for testing"
LOG_MESSAGES = ["Tool execution started", "Tool processing data", "Tool execution completed"]
STATIC_TEXT = "This is the content of the static text resource."
STATIC_BINARY = bytes(range(256))


@pytest.fixture
def host(host_factory):
    return host_factory(plugin_path("conformance"))


# ----------------------------------------------------------------------------------------------------------
# Media checks: the decoded bytes must be real PNG / WAV files, not just carry the right mimeType.
# ----------------------------------------------------------------------------------------------------------


def assert_valid_png(data: bytes) -> None:
    """Signature, every chunk's CRC, IHDR first and IEND last, and IDAT inflating to the scanlines IHDR implies."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"not a PNG signature: {data[:8]!r}"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        assert pos + 8 <= len(data), "truncated PNG chunk header"
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert len(body) == length and pos + 12 + length <= len(data), f"truncated PNG chunk {kind!r}"
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in PNG chunk {kind!r}"
        chunks.append((kind, body))
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", [k for k, _ in chunks]
    width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    assert width >= 1 and height >= 1 and depth == 8
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    assert len(zlib.decompress(idat)) == height * (1 + width * channels)


def assert_valid_wav(data: bytes) -> None:
    """RIFF/WAVE with consistent sizes, readable by the standard library with at least one frame."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"not a RIFF/WAVE header: {data[:12]!r}"
    (riff_size,) = struct.unpack("<I", data[4:8])
    assert riff_size == len(data) - 8, f"RIFF size {riff_size} != {len(data) - 8}"
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() >= 1 and w.getsampwidth() in (1, 2, 3, 4) and w.getframerate() > 0
        frames = w.readframes(w.getnframes())
        assert w.getnframes() >= 1 and len(frames) == w.getnframes() * w.getnchannels() * w.getsampwidth()


def b64(data: str) -> bytes:
    return base64.b64decode(data, validate=True)


# ----------------------------------------------------------------------------------------------------------
# SDK side: schema validation of everything the recorder (sdk_recorder.py) kept.
# ----------------------------------------------------------------------------------------------------------


def validate_traffic(exchanges: list[Exchange], mode: str) -> dict[str, int]:
    """Validates every recorded response body against its revision's schema; returns {method: responses}."""
    expected = EXPECTED_VERSION[mode]
    seen: dict[str, int] = {}
    version = expected
    for ex in exchanges:
        if ex.method == "GET":
            assert mode == "legacy", "the SDK opened a GET stream on a 2026-07-28 connection"
            assert ex.status == 200 and ex.content_type == "text/event-stream", (ex.status, ex.content_type)
            for e in parse_sse(ex.body, allow_partial=True):
                check_server_message(e.json(), version)
            continue
        if ex.method == "DELETE":
            assert mode == "legacy" and 200 <= ex.status < 300, (mode, ex.status)
            continue
        assert ex.method == "POST", ex.method
        req = json.loads(ex.request_body)
        method = req.get("method")
        if "id" not in req or method is None:  # a notification or a response: 202 without a body
            assert ex.status == 202 and ex.body == b"", (method, ex.status, ex.body[:200])
            continue
        assert ex.status == 200, f"{method}: HTTP {ex.status}: {ex.body[:300]!r}"
        if method == "initialize":
            assert mode == "legacy", "mode=auto fell back to initialize"
        if ex.content_type == "application/json":
            msg = json.loads(ex.body)
            if method == "initialize":
                version = msg["result"]["protocolVersion"]
                assert version == expected, version
            check_response(msg, version, method)
            assert msg.get("id") == req["id"]
        elif ex.content_type == "text/event-stream":
            events = parse_sse(ex.body, allow_partial=not ex.complete)
            for e in events:
                assert e.event in (None, "message"), e.event
                msg = check_server_message(e.json(), version, method)
                if "id" in msg:
                    assert msg["id"] == req["id"]
            if ex.complete:
                assert events and "id" in events[-1].json(), f"{method}: the SSE stream did not end with the response"
        else:
            raise AssertionError(f"{method}: Content-Type {ex.content_type!r}")
        seen[method] = seen.get(method, 0) + 1
    return seen


async def run_client(url: str, mode: str, body: Callable[[Client, Recorder], Awaitable[Any]], **kw) -> tuple[Any, dict[str, int]]:
    recorder = Recorder()
    http = httpx2.AsyncClient(transport=recorder, timeout=httpx2.Timeout(30.0, read=60.0))
    with anyio.fail_after(DEADLINE):
        async with http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode, **kw) as client:
                assert client.protocol_version == EXPECTED_VERSION[mode]
                out = await body(client, recorder)
    return out, validate_traffic(recorder.exchanges, mode)


# ----------------------------------------------------------------------------------------------------------
# SDK tests, both eras
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sdk_tools_list(host, mode):
    """tools-list, tools-name-format: every tool has a valid name, a description and an object inputSchema."""

    async def body(c: Client, _):
        return c.server_info, c.server_capabilities, await c.list_tools()

    (info, caps, listed), seen = run(run_client(host.url, mode, body))
    assert info.name == "mcp-conformance-test-server" and info.version == "1.0.0"
    assert caps.tools is not None and caps.resources is not None and caps.prompts is not None
    assert caps.completions is not None
    if mode == "legacy":
        assert caps.logging is not None and caps.tools.list_changed is True
    assert [t.name for t in listed.tools] == STATIC_TOOLS, "test_dynamic_added must not exist before it is added"
    for t in listed.tools:
        assert 1 <= len(t.name) <= 64 and all(ch.isalnum() or ch in "_./-" for ch in t.name)
        assert t.description, t.name
        assert t.input_schema == {"type": "object", "properties": {}}, t.name
    assert seen["tools/list"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_sdk_content_tools(host, mode):
    """tools-call-simple-text, tools-call-image, tools-call-audio, tools-call-embedded-resource, tools-call-mixed-content."""

    async def body(c: Client, _):
        return [await c.call_tool(name, {}) for name in STATIC_TOOLS[:5]]

    (text, image, audio, embedded, mixed), seen = run(run_client(host.url, mode, body))
    for r in (text, image, audio, embedded, mixed):
        assert not r.is_error

    assert [(b.type, b.text) for b in text.content] == [("text", SIMPLE_TEXT)]

    [img] = image.content
    assert img.type == "image" and img.mime_type == "image/png"
    assert_valid_png(b64(img.data))

    [aud] = audio.content
    assert aud.type == "audio" and aud.mime_type == "audio/wav"
    assert_valid_wav(b64(aud.data))

    [res] = embedded.content
    assert res.type == "resource"
    assert (str(res.resource.uri), res.resource.mime_type, res.resource.text) == (
        "test://embedded-resource", "text/plain", EMBEDDED_TEXT)

    assert [b.type for b in mixed.content] == ["text", "image", "resource"]
    assert mixed.content[0].text == "Multiple content types test:"
    assert mixed.content[1].mime_type == "image/png"
    assert_valid_png(b64(mixed.content[1].data))
    mixed_res = mixed.content[2].resource
    assert (str(mixed_res.uri), mixed_res.mime_type) == ("test://mixed-content-resource", "application/json")
    assert json.loads(mixed_res.text) == {"test": "data", "value": 123}
    assert seen["tools/call"] == 5


@pytest.mark.parametrize("mode", MODES)
def test_sdk_tool_with_logging(host, mode):
    """tools-call-with-logging: three info messages, in order, before the result.

    2026-07-28 sends notifications/message only to requests that opt in (Client(log_level=...)); 2025-11-25
    uses logging/setLevel, as the suite does."""
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params):
        logs.append(params)

    async def body(c: Client, _):
        if mode == "legacy":
            await c.set_logging_level("debug")
        return await c.call_tool("test_tool_with_logging", {})

    extra = {"log_level": "debug"} if mode == "auto" else {}
    result, seen = run(run_client(host.url, mode, body, logging_callback=on_log, **extra))
    assert not result.is_error
    assert [b.text for b in result.content] == ["Tool with logging executed successfully"]
    assert [(m.level, m.data) for m in logs] == [("info", text) for text in LOG_MESSAGES]
    assert all(m.logger == "mcp-conformance-test-server" for m in logs)
    if mode == "legacy":
        assert seen["logging/setLevel"] == 1


def test_sdk_logging_needs_opt_in_on_modern(host):
    """2026-07-28 without a logLevel in _meta: the tool runs, and no notifications/message arrives."""
    logs: list[Any] = []

    async def on_log(params):
        logs.append(params)

    async def body(c: Client, _):
        return await c.call_tool("test_tool_with_logging", {})

    result, _ = run(run_client(host.url, "auto", body, logging_callback=on_log))
    assert result.content[0].text == "Tool with logging executed successfully"
    assert logs == []


@pytest.mark.parametrize("mode", MODES)
def test_sdk_tool_with_progress(host, mode):
    """tools-call-with-progress: 0/100, 50/100, 100/100 in that order, before the result."""
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async def body(c: Client, _):
        return await c.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)

    result, _ = run(run_client(host.url, mode, body))
    assert not result.is_error and result.content[0].text == "Tool with progress executed successfully"
    assert progress == [(float(p), 100.0, f"Completed step {p} of 100") for p in (0, 50, 100)]


@pytest.mark.parametrize("mode", MODES)
def test_sdk_error_handling(host, mode):
    """tools-call-error: a result with isError true whose first block is the error text (not a JSON-RPC error)."""

    async def body(c: Client, _):
        return await c.call_tool("test_error_handling", {})

    result, seen = run(run_client(host.url, mode, body))
    assert result.is_error is True
    assert [(b.type, b.text) for b in result.content] == [("text", ERROR_TEXT)]
    assert seen["tools/call"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_sdk_dynamic_tool(host, mode):
    """test_dynamic_tool adds test_dynamic_added (notify_list_changed → the host describes again).

    Legacy: the session's GET stream carries notifications/tools/list_changed; the test waits for it.
    2026-07-28 has no such stream in this host (subscriptions/listen is not implemented), and the host
    re-describes asynchronously, so the test re-lists (bypassing the SDK cache) until the tool is there."""
    changed = asyncio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async def body(c: Client, recorder: Recorder):
        before = await c.list_tools(cache_mode="bypass")
        if mode == "legacy":
            with anyio.fail_after(10):
                await recorder.get_stream_open.wait()  # else the notification could precede the stream
        first = await c.call_tool("test_dynamic_tool", {})
        if mode == "legacy":
            with anyio.fail_after(10):
                await changed.wait()
        relists = 0
        with anyio.fail_after(10):
            while True:
                relists += 1
                after = await c.list_tools(cache_mode="bypass")
                if DYNAMIC_TOOL in [t.name for t in after.tools]:
                    break
        added = await c.call_tool(DYNAMIC_TOOL, {})
        again = await c.call_tool("test_dynamic_tool", {})
        final = await c.list_tools(cache_mode="bypass")
        return before, first, after, relists, added, again, final

    (before, first, after, relists, added, again, final), _ = run(
        run_client(host.url, mode, body, message_handler=on_message))
    assert DYNAMIC_TOOL not in [t.name for t in before.tools]
    assert first.content[0].text == "Added the tool test_dynamic_added"
    assert [t.name for t in after.tools] == STATIC_TOOLS + [DYNAMIC_TOOL]
    if mode == "legacy":
        assert relists == 1, "the list_changed notification came before the new listing was served"
        assert changed.is_set()
    assert not added.is_error and added.content[0].text == "This is a dynamically added tool."
    assert again.content[0].text == "The tool test_dynamic_added was already added"
    assert [t.name for t in final.tools] == STATIC_TOOLS + [DYNAMIC_TOOL]


@pytest.mark.parametrize("mode", MODES)
def test_sdk_resources(host, mode):
    """resources-list, resources-read-text, resources-read-binary, resources-templates-read."""

    async def body(c: Client, _):
        return (await c.list_resources(), await c.list_resource_templates(),
                await c.read_resource("test://static-text"), await c.read_resource("test://static-binary"),
                await c.read_resource("test://template/123/data"), await c.read_resource("test://template/abc%20d/data"))

    (listed, templates, text, binary, data, spaced), seen = run(run_client(host.url, mode, body))
    assert [(str(r.uri), r.name, r.mime_type) for r in listed.resources] == [
        ("test://static-text", "static-text", "text/plain"),
        ("test://static-binary", "static-binary", "application/octet-stream"),
    ]
    assert all(r.description for r in listed.resources)
    [t] = templates.resource_templates
    assert (t.uri_template, t.name, t.mime_type) == (TEMPLATE, "template", "application/json")

    [tc] = text.contents
    assert (str(tc.uri), tc.mime_type, tc.text) == ("test://static-text", "text/plain", STATIC_TEXT)
    assert listed.resources[0].size == len(STATIC_TEXT)

    [bc] = binary.contents
    assert (str(bc.uri), bc.mime_type) == ("test://static-binary", "application/octet-stream")
    assert b64(bc.blob) == STATIC_BINARY and listed.resources[1].size == 256

    [dc] = data.contents
    assert (str(dc.uri), dc.mime_type) == ("test://template/123/data", "application/json")
    assert json.loads(dc.text) == {"id": "123", "templateTest": True, "data": "Data for ID: 123"}
    [sc] = spaced.contents  # the template variable arrives percent-decoded
    assert json.loads(sc.text)["id"] == "abc d"
    assert seen["resources/read"] == 4


@pytest.mark.parametrize("mode", MODES)
def test_sdk_prompts(host, mode):
    """prompts-list, prompts-get-simple, prompts-get-with-args, prompts-get-embedded-resource, prompts-get-with-image."""

    async def body(c: Client, _):
        return (await c.list_prompts(),
                await c.get_prompt("test_simple_prompt"),
                await c.get_prompt("test_prompt_with_arguments", {"arg1": "testValue1", "arg2": "testValue2"}),
                await c.get_prompt("test_prompt_with_embedded_resource", {"resourceUri": "test://example-resource"}),
                await c.get_prompt("test_prompt_with_image"))

    (listed, simple, args, embedded, image), seen = run(run_client(host.url, mode, body))
    assert {p.name: [(a.name, bool(a.required)) for a in p.arguments or []] for p in listed.prompts} == PROMPTS
    assert all(p.description for p in listed.prompts)
    assert all(a.description for p in listed.prompts for a in p.arguments or [])

    assert [(m.role, m.content.type, m.content.text) for m in simple.messages] == [
        ("user", "text", "This is a simple prompt for testing.")]
    assert [(m.role, m.content.text) for m in args.messages] == [
        ("user", "Prompt with arguments: arg1='testValue1', arg2='testValue2'")]

    assert [(m.role, m.content.type) for m in embedded.messages] == [("user", "resource"), ("user", "text")]
    r = embedded.messages[0].content.resource
    assert (str(r.uri), r.mime_type, r.text) == ("test://example-resource", "text/plain",
                                                 "Embedded resource content for testing.")
    assert embedded.messages[1].content.text == "Please process the embedded resource above."

    assert [(m.role, m.content.type) for m in image.messages] == [("user", "image"), ("user", "text")]
    assert image.messages[0].content.mime_type == "image/png"
    assert_valid_png(b64(image.messages[0].content.data))
    assert image.messages[1].content.text == "Please analyze the image above."
    assert seen["prompts/get"] == 4


@pytest.mark.parametrize("mode", MODES)
def test_sdk_completion(host, mode):
    """completion-complete: prompt argument arg1 and the template's {id}, filtered by the typed prefix."""
    prompt = types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
    template = types.ResourceTemplateReference(type="ref/resource", uri=TEMPLATE)

    async def body(c: Client, _):
        out = {}
        for key, ref, arg, value in [("par", prompt, "arg1", "par"), ("test", prompt, "arg1", "test"),
                                     ("all", prompt, "arg1", ""), ("none", prompt, "arg1", "zzz"),
                                     ("arg2", prompt, "arg2", ""), ("id1", template, "id", "1"),
                                     ("ids", template, "id", "")]:
            out[key] = (await c.complete(ref, {"name": arg, "value": value})).completion
        return out

    got, seen = run(run_client(host.url, mode, body))
    expected = {"par": ["paris", "park", "party"], "test": ["test", "testing"],
                "all": ["paris", "park", "party", "test", "testing"], "none": [], "arg2": [],
                "id1": ["1", "123"], "ids": ["1", "2", "3", "42", "123"]}
    for key, values in expected.items():
        assert got[key].values == values, key
        assert got[key].total == len(values) and not got[key].has_more, key
    assert seen["completion/complete"] == len(expected)


class ConformanceWarning(UserWarning):
    """A SHOULD-level check the suite reports as WARNING (not FAILURE); pytest lists these in its summary."""


@pytest.mark.parametrize("mode", MODES)
def test_sdk_resource_not_found(host, mode):
    """sep-2164-resource-not-found: a JSON-RPC error, never an empty contents array.

    2026-07-28 uses -32602 (server/resources.mdx, Error Handling); 2025-11-25 used -32002. The suite's
    `sep-2164-data-uri` check (error.data.uri is the requested uri) is a SHOULD: reported as a warning."""
    uri = "test://nonexistent-resource-for-conformance-testing"

    async def body(c: Client, _):
        try:
            result = await c.read_resource(uri)
        except MCPError as e:
            return e
        raise AssertionError(f"reading a missing resource returned a result: {result}")

    error, seen = run(run_client(host.url, mode, body))
    assert error.code == (-32602 if mode == "auto" else -32002), (error.code, error.message)
    data = error.data
    if not (isinstance(data, dict) and data.get("uri") == uri):
        warnings.warn(ConformanceWarning(
            f"sep-2164-data-uri ({mode}): error.data is {data!r}, the suite expects {{'uri': {uri!r}}} (SHOULD)"))
    assert seen["resources/read"] == 1


# ----------------------------------------------------------------------------------------------------------
# Raw HTTP, both eras: the same requests, every response and every SSE event validated against the schema.
# ----------------------------------------------------------------------------------------------------------


def _names(result: dict, key: str) -> list[str]:
    return [x["name"] for x in result[key]]


def _check_tools_list(r, notes):
    assert _names(r, "tools") == STATIC_TOOLS
    assert all(t["description"] and t["inputSchema"]["type"] == "object" for t in r["tools"])


def _check_simple(r, notes):
    assert r["content"] == [{"type": "text", "text": SIMPLE_TEXT}] and not r.get("isError")


def _check_image(r, notes):
    [b] = r["content"]
    assert (b["type"], b["mimeType"]) == ("image", "image/png")
    assert_valid_png(b64(b["data"]))


def _check_audio(r, notes):
    [b] = r["content"]
    assert (b["type"], b["mimeType"]) == ("audio", "audio/wav")
    assert_valid_wav(b64(b["data"]))


def _check_embedded(r, notes):
    assert r["content"] == [{"type": "resource", "resource": {
        "uri": "test://embedded-resource", "mimeType": "text/plain", "text": EMBEDDED_TEXT}}]


def _check_mixed(r, notes):
    assert [b["type"] for b in r["content"]] == ["text", "image", "resource"]
    assert_valid_png(b64(r["content"][1]["data"]))
    assert r["content"][2]["resource"]["uri"] == "test://mixed-content-resource"


def _check_logging(r, notes):
    assert r["content"][0]["text"] == "Tool with logging executed successfully"
    logs = [n["params"] for n in notes if n["method"] == "notifications/message"]
    assert [(p["level"], p["data"]) for p in logs] == [("info", t) for t in LOG_MESSAGES]
    assert all(p.get("logger") == "mcp-conformance-test-server" for p in logs)


def _check_progress(r, notes):
    assert r["content"][0]["text"] == "Tool with progress executed successfully"
    prog = [n["params"] for n in notes if n["method"] == "notifications/progress"]
    assert [(p["progressToken"], p["progress"], p["total"]) for p in prog] == [
        ("conformance-progress", 0, 100), ("conformance-progress", 50, 100), ("conformance-progress", 100, 100)]


def _check_error(r, notes):
    assert r["isError"] is True and r["content"] == [{"type": "text", "text": ERROR_TEXT}]


def _check_resources_list(r, notes):
    assert [(x["uri"], x.get("mimeType")) for x in r["resources"]] == [
        ("test://static-text", "text/plain"), ("test://static-binary", "application/octet-stream")]


def _check_templates(r, notes):
    assert [(x["uriTemplate"], x.get("mimeType")) for x in r["resourceTemplates"]] == [(TEMPLATE, "application/json")]


def _check_read_text(r, notes):
    assert r["contents"] == [{"uri": "test://static-text", "mimeType": "text/plain", "text": STATIC_TEXT}]


def _check_read_binary(r, notes):
    [c] = r["contents"]
    assert (c["uri"], c["mimeType"], "text" in c) == ("test://static-binary", "application/octet-stream", False)
    assert b64(c["blob"]) == STATIC_BINARY


def _check_read_template(r, notes):
    [c] = r["contents"]
    assert (c["uri"], c["mimeType"]) == ("test://template/42/data", "application/json")
    assert json.loads(c["text"]) == {"id": "42", "templateTest": True, "data": "Data for ID: 42"}


def _check_prompts_list(r, notes):
    assert {p["name"]: [(a["name"], bool(a.get("required"))) for a in p.get("arguments", [])]
            for p in r["prompts"]} == PROMPTS


def _check_simple_prompt(r, notes):
    assert r["messages"] == [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]


def _check_args_prompt(r, notes):
    assert r["messages"] == [{"role": "user", "content": {
        "type": "text", "text": "Prompt with arguments: arg1='hello', arg2='world'"}}]


def _check_embedded_prompt(r, notes):
    assert r["messages"] == [
        {"role": "user", "content": {"type": "resource", "resource": {
            "uri": "test://example-resource", "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
        {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
    ]


def _check_image_prompt(r, notes):
    m = r["messages"]
    assert [(x["role"], x["content"]["type"]) for x in m] == [("user", "image"), ("user", "text")]
    assert m[0]["content"]["mimeType"] == "image/png"
    assert_valid_png(b64(m[0]["content"]["data"]))


def _check_completion(values):
    def check(r, notes):
        assert r["completion"]["values"] == values
        assert r["completion"].get("total") == len(values) and r["completion"].get("hasMore") in (False, None)
    return check


PROGRESS_TOKEN = "conformance-progress"
RAW_CASES: list[tuple[str, str, dict, Callable[[dict, list], None]]] = [
    # (label, method, params, check(result, notifications))
    ("tools/list", "tools/list", {}, _check_tools_list),
    ("simple_text", "tools/call", {"name": "test_simple_text", "arguments": {}}, _check_simple),
    ("image", "tools/call", {"name": "test_image_content", "arguments": {}}, _check_image),
    ("audio", "tools/call", {"name": "test_audio_content", "arguments": {}}, _check_audio),
    ("embedded", "tools/call", {"name": "test_embedded_resource", "arguments": {}}, _check_embedded),
    ("mixed", "tools/call", {"name": "test_multiple_content_types", "arguments": {}}, _check_mixed),
    ("logging", "tools/call", {"name": "test_tool_with_logging", "arguments": {}}, _check_logging),
    ("progress", "tools/call", {"name": "test_tool_with_progress", "arguments": {}}, _check_progress),
    ("error", "tools/call", {"name": "test_error_handling", "arguments": {}}, _check_error),
    ("resources/list", "resources/list", {}, _check_resources_list),
    ("templates", "resources/templates/list", {}, _check_templates),
    ("read_text", "resources/read", {"uri": "test://static-text"}, _check_read_text),
    ("read_binary", "resources/read", {"uri": "test://static-binary"}, _check_read_binary),
    ("read_template", "resources/read", {"uri": "test://template/42/data"}, _check_read_template),
    ("prompts/list", "prompts/list", {}, _check_prompts_list),
    ("simple_prompt", "prompts/get", {"name": "test_simple_prompt"}, _check_simple_prompt),
    ("args_prompt", "prompts/get", {"name": "test_prompt_with_arguments",
                                    "arguments": {"arg1": "hello", "arg2": "world"}}, _check_args_prompt),
    ("embedded_prompt", "prompts/get", {"name": "test_prompt_with_embedded_resource",
                                        "arguments": {"resourceUri": "test://example-resource"}}, _check_embedded_prompt),
    ("image_prompt", "prompts/get", {"name": "test_prompt_with_image"}, _check_image_prompt),
    ("complete_arg1", "completion/complete", {"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                                              "argument": {"name": "arg1", "value": "par"}},
     _check_completion(["paris", "park", "party"])),
    ("complete_id", "completion/complete", {"ref": {"type": "ref/resource", "uri": TEMPLATE},
                                            "argument": {"name": "id", "value": "4"}}, _check_completion(["42"])),
]


def validated(reply: HTTPReply, version: str, method: str, request_id: Any) -> tuple[dict, list[dict]]:
    """Validates every message of a reply (JSON body, or each SSE event) and returns (result, notifications)."""
    assert reply.status == 200, f"{method}: HTTP {reply.status}: {reply.body[:300]!r}"
    msgs = reply.messages()
    for m in msgs:
        check_server_message(m, version, method)
    *notes, final = msgs
    assert final.get("id") == request_id, f"{method}: the last message is not the response: {final}"
    assert "result" in final, f"{method}: {final}"
    assert all("method" in n and "id" not in n for n in notes)
    if notes:
        assert reply.content_type == "text/event-stream"
    return final["result"], notes


def test_raw_modern_every_request(host):
    """2026-07-28 stateless requests with _meta (logLevel, progressToken) and the mirrored headers."""
    reply = modern_post(host.port, "server/discover", {}, id="discover")
    result, _ = validated(reply, MODERN_VERSION, "server/discover", "discover")
    assert MODERN_VERSION in result["supportedVersions"]
    assert {"tools", "resources", "prompts", "completions"} <= set(result["capabilities"])

    for i, (label, method, params, check) in enumerate(RAW_CASES):
        meta = modern_meta(log_level="debug", progress_token=PROGRESS_TOKEN)
        reply = modern_post(host.port, method, params, id=i + 1, meta=meta)
        result, notes = validated(reply, MODERN_VERSION, method, i + 1)
        assert result.get("resultType") == "complete", label
        check(result, notes)
        if label not in ("logging", "progress"):
            assert notes == [], f"{label}: unexpected notifications {notes}"


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_raw_legacy_every_request(host, version):
    """A 2025-era session: initialize, notifications/initialized, logging/setLevel, then every request."""
    s = LegacySession(host.port, version)
    init = s.initialize()
    result, _ = validated(init, version, "initialize", 0)
    assert result["protocolVersion"] == version
    assert result["serverInfo"]["name"] == "mcp-conformance-test-server"
    assert result["capabilities"]["tools"] == {"listChanged": True}
    assert "logging" in result["capabilities"] and "completions" in result["capabilities"]

    reply = s.request("logging/setLevel", {"level": "debug"}, id="level")
    validated(reply, version, "logging/setLevel", "level")

    for i, (label, method, params, check) in enumerate(RAW_CASES):
        p = dict(params)
        if label == "progress":
            p["_meta"] = {"progressToken": PROGRESS_TOKEN}
        reply = s.request(method, p, id=i + 1)
        result, notes = validated(reply, version, method, i + 1)
        check(result, notes)
        if label not in ("logging", "progress"):
            assert notes == [], f"{label}: unexpected notifications {notes}"
    assert s.delete().status == 204


def test_raw_modern_dynamic_tool(host):
    """The dynamic tool over raw 2026-07-28 requests: the listing gains test_dynamic_added, which is callable."""
    before = validated(modern_post(host.port, "tools/list", {}, id=1), MODERN_VERSION, "tools/list", 1)[0]
    assert _names(before, "tools") == STATIC_TOOLS
    params = {"name": DYNAMIC_TOOL, "arguments": {}}
    missing = check_response(modern_post(host.port, "tools/call", params, id=2).final(), MODERN_VERSION, "tools/call")
    assert missing["error"]["code"] == -32602, missing  # unknown before it is added (HTTP status: see below)

    called = validated(modern_post(host.port, "tools/call", {"name": "test_dynamic_tool", "arguments": {}}, id=3),
                       MODERN_VERSION, "tools/call", 3)[0]
    assert called["content"][0]["text"] == "Added the tool test_dynamic_added"
    deadline = time.monotonic() + 10
    while True:  # the host re-describes asynchronously; re-list until the new declaration is served
        after = validated(modern_post(host.port, "tools/list", {}, id=4), MODERN_VERSION, "tools/list", 4)[0]
        if DYNAMIC_TOOL in _names(after, "tools") or time.monotonic() > deadline:
            break
    assert _names(after, "tools") == STATIC_TOOLS + [DYNAMIC_TOOL]
    added = validated(modern_post(host.port, "tools/call", params, id=5), MODERN_VERSION, "tools/call", 5)[0]
    assert added["content"] == [{"type": "text", "text": "This is a dynamically added tool."}]


def _protocol_error_probe(send: Callable[[str, dict, Any], HTTPReply], version: str) -> list[int]:
    """tools-call-protocol-error: an unknown tool is a JSON-RPC error (-32602, no result, the id echoed exactly,
    numeric and string); a string id survives on a result too. Returns the HTTP statuses of the two error replies."""
    statuses = []
    for rid in (7, "unknown-tool-probe"):
        reply = send("tools/call", {"name": "no_such_tool_for_conformance", "arguments": {}}, rid)
        statuses.append(reply.status)
        msg = check_response(reply.final(), version, "tools/call")
        assert "error" in msg and "result" not in msg, msg
        assert msg["error"]["code"] == -32602 and isinstance(msg["error"]["message"], str), msg
        assert msg["id"] == rid and type(msg["id"]) is type(rid), msg
    reply = send("tools/list", {}, "list-probe")
    assert reply.status == 200
    msg = check_response(reply.final(), version, "tools/list")
    assert msg["id"] == "list-probe" and "result" in msg
    return statuses


def test_raw_modern_unknown_tool_is_protocol_error(host):
    """tools-call-protocol-error on 2026-07-28 (the suite does not look at the HTTP status)."""
    _protocol_error_probe(lambda m, p, rid: modern_post(host.port, m, p, id=rid), MODERN_VERSION)


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_raw_legacy_unknown_tool_is_protocol_error(host, version):
    """tools-call-protocol-error in a 2025-era session; the error travels with HTTP 200."""
    s = LegacySession(host.port, version)
    s.initialize()
    statuses = _protocol_error_probe(lambda m, p, rid: s.request(m, p, id=rid), version)
    assert statuses == [200, 200]


def test_raw_modern_call_errors_are_http_200(host):
    """docs/protocol.md: "Errors found while executing a call (unknown tool, invalid arguments, resource not found
    as -32602) are JSON-RPC errors with HTTP 200." A 400 also misleads dual-era clients: per the 2026-07-28
    Streamable HTTP transport (Backward Compatibility), a 400 whose body is not a recognized modern error
    (HeaderMismatch, UnsupportedProtocolVersion, MissingRequiredClientCapability) means "fall back to initialize"."""
    cases = [
        ("tools/call", {"name": "no_such_tool_for_conformance", "arguments": {}}),
        ("prompts/get", {"name": "no_such_prompt_for_conformance"}),
        ("prompts/get", {"name": "test_prompt_with_arguments", "arguments": {"arg1": "only one"}}),
        ("resources/read", {"uri": "test://nonexistent-resource-for-conformance-testing"}),
    ]
    wrong = []
    for i, (method, params) in enumerate(cases):
        reply = modern_post(host.port, method, params, id=i)
        msg = check_response(reply.final(), MODERN_VERSION, method)
        assert msg["error"]["code"] == -32602, msg
        if reply.status != 200:
            wrong.append(f"{method} {json.dumps(params)} -> HTTP {reply.status} {msg['error']}")
    assert not wrong, "call errors answered with a status other than 200:\n" + "\n".join(wrong)


def _read_sse_event(resp) -> dict:
    """Reads lines from an open SSE response until one complete event with data arrives (socket timeout = deadline)."""
    lines: list[bytes] = []
    while True:
        line = resp.readline()
        assert line, "the GET stream closed before an event arrived"
        lines.append(line)
        if line in (b"\n", b"\r\n") and any(x.startswith(b"data:") for x in lines):
            events = parse_sse(b"".join(lines))
            if not events:  # a priming event (2025-11-25): an id to resume from, no message
                lines = []
                continue
            [event] = events
            assert event.event in (None, "message"), event.event
            return event.json()


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_raw_legacy_dynamic_tool(host, version):
    """The dynamic tool in a 2025-era session: the session's GET stream carries notifications/tools/list_changed
    (validated against the schema), after which tools/list has the new tool and it can be called."""
    s = LegacySession(host.port, version)
    s.initialize()
    conn, resp = open_http(host.port, "GET", headers=s.headers(accept="text/event-stream"), content_type=None)
    try:
        assert resp.status == 200, resp.status
        assert (resp.headers.get("Content-Type") or "").startswith("text/event-stream")
        called = validated(s.request("tools/call", {"name": "test_dynamic_tool", "arguments": {}}, id=1),
                           version, "tools/call", 1)[0]
        assert called["content"][0]["text"] == "Added the tool test_dynamic_added"
        note = check_server_message(_read_sse_event(resp), version)
        assert note["method"] == "notifications/tools/list_changed", note
    finally:
        conn.close()
    after = validated(s.request("tools/list", {}, id=2), version, "tools/list", 2)[0]
    assert _names(after, "tools") == STATIC_TOOLS + [DYNAMIC_TOOL]
    added = validated(s.request("tools/call", {"name": DYNAMIC_TOOL, "arguments": {}}, id=3), version, "tools/call", 3)[0]
    assert added["content"] == [{"type": "text", "text": "This is a dynamically added tool."}]


def test_concurrent_calls(host):
    """CONCURRENT plugin: slow tools, the dynamic tool and listings at once; every answer is complete and valid."""
    jobs = [("test_tool_with_progress", i) for i in range(8)] + [("test_dynamic_tool", 100 + i) for i in range(8)] \
        + [("test_tool_with_logging", 200 + i) for i in range(8)] + [(None, 300 + i) for i in range(8)]

    def one(job):
        name, rid = job
        if name is None:
            reply = modern_post(host.port, "tools/list", {}, id=rid)
            return name, validated(reply, MODERN_VERSION, "tools/list", rid)
        meta = modern_meta(log_level="info", progress_token=f"p{rid}")
        reply = modern_post(host.port, "tools/call", {"name": name, "arguments": {}}, id=rid, meta=meta)
        return name, validated(reply, MODERN_VERSION, "tools/call", rid)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    added = 0
    for name, (result, notes) in results:
        if name is None:
            assert set(STATIC_TOOLS) <= set(_names(result, "tools"))
        elif name == "test_tool_with_progress":
            assert [n["params"]["progress"] for n in notes if n["method"] == "notifications/progress"] == [0, 50, 100]
        elif name == "test_tool_with_logging":
            assert [n["params"]["data"] for n in notes if n["method"] == "notifications/message"] == LOG_MESSAGES
        else:
            added += result["content"][0]["text"] == "Added the tool test_dynamic_added"
    assert added == 1, "exactly one concurrent test_dynamic_tool call may add the tool"


# ----------------------------------------------------------------------------------------------------------
# DNS rebinding (suite scenario dns-rebinding-protection), both eras' request shapes
# ----------------------------------------------------------------------------------------------------------

SUITE_INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                               "clientInfo": {"name": "conformance-dns-rebinding-test", "version": "1.0.0"}}}


def _request_for(era: str) -> tuple[dict, dict[str, str]]:
    if era == "legacy":
        return SUITE_INITIALIZE, {"Accept": ACCEPT_BOTH}
    return modern_body("tools/list", {}), modern_headers("tools/list", {})


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_dns_rebinding_foreign_host_rejected(host, era):
    """Host: evil.example.com → 403 with a JSON-RPC error without id (the suite requires exactly 403)."""
    body, headers = _request_for(era)
    for bad in ("evil.example.com", f"evil.example.com:{host.port}"):
        reply = http_call(host.port, "POST", body=body, headers=headers, host=bad)
        assert reply.status == 403, f"Host {bad}: HTTP {reply.status} {reply.body[:200]!r}"
        msg = reply.json()
        assert "error" in msg and msg.get("id") is None, msg
        check_response(msg, MODERN_VERSION if era == "modern" else "2025-11-25")


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_dns_rebinding_foreign_origin_rejected(host, era):
    """Origin: http://evil.example.com (with a loopback Host) → 403."""
    body, headers = _request_for(era)
    for origin in ("http://evil.example.com", f"http://evil.example.com:{host.port}", "https://evil.example.com"):
        reply = http_call(host.port, "POST", body=body, headers={**headers, "Origin": origin})
        assert reply.status == 403, f"Origin {origin}: HTTP {reply.status} {reply.body[:200]!r}"
        msg = reply.json()
        assert "error" in msg and msg.get("id") is None, msg
        check_response(msg, MODERN_VERSION if era == "modern" else "2025-11-25")


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_dns_rebinding_loopback_accepted(host, era):
    """localhost / 127.0.0.1 / [::1] Host values (with and without the port) and a loopback Origin are served."""
    body, headers = _request_for(era)
    for good in (f"127.0.0.1:{host.port}", f"localhost:{host.port}", f"[::1]:{host.port}", "localhost", "127.0.0.1"):
        reply = http_call(host.port, "POST", body=body, headers=headers, host=good)
        assert 200 <= reply.status < 300, f"Host {good}: HTTP {reply.status} {reply.body[:200]!r}"
        msg = reply.final()
        assert "result" in msg, msg
    reply = http_call(host.port, "POST", body=body, headers={**headers, "Origin": f"http://localhost:{host.port}"})
    assert reply.status == 200, reply.status
    if era == "legacy":  # the suite's 2024-11-05 initialize gets the host's default revision
        result = check_response(reply.json(), "2025-11-25", "initialize")["result"]
        assert result["protocolVersion"] == "2025-11-25"
    else:
        check_response(reply.final(), MODERN_VERSION, "tools/list")
