"""The Go plugin kit (Plugins/go): the reference plugin libgo_reference.so, served by mcp-plugin-host.

- the official Python SDK (`mcp` 2.3.0) in mode="auto" (2026-07-28) and mode="legacy" (initialize handshake)
  lists the tools and calls echo, add, slow_count (progress, call log, cancellation) and fail with exact answers;
- a Go panic inside the plugin (an explicit panic, and a nil pointer dereference, which is a SIGSEGV that the Go
  runtime must turn into a panic although the host installed its own SIGSEGV handler first) comes back as an
  internal error and the host keeps serving;
- the host calls the plugin from many threads at once (16 concurrent calls, each entering the Go runtime from a
  host thread): every call gets its own answer;
- the Go runtime's signal handlers leave the host's alone: SIGTERM after serving (and during a call) drains and
  exits 0 with destroy() run; an unrecoverable Go fatal error is reported by the host's crash handler (exit 70,
  naming the call), not by Go's exit(2);
- the Go runtime's own threads stay bounded (host_factory's teardown check, with an allowance of GOMAXPROCS + 2
  threads for the Go runtime: see GO_RUNTIME_THREADS);
- the .so exports exactly one dynamic symbol, mcpp_negotiate_v1, which negotiates like MCPP_DEFINE_ENTRY
  (checked with ctypes in a child process, so the Go runtime is never loaded into pytest itself);
- resources, a template, a prompt and completions (the kit's Resources, ResourceTemplates, Prompts, Completer), and
  cancellation through mcpp_plugin.cancel (slow_count waits on Call.Done());
- ABI 1.1 with the SDK in both eras: confirm (an Interactive handler waiting in Call.Elicit: accepted, asked twice,
  declined, refused by the client, no capability -> -32021 / -32602 with requiredCapabilities), ask_model
  (sampling) and list_roots, request state across the 2026-07-28 retry, cache hints;
- the kit against a C mock host (Plugins/go/kittest, Serial): every end of an input request, panics and Goexit in
  handler goroutines, a handler on the host's thread refused, cancel, Serial handlers while one waits, a 1.0 host
  table, and no call, goroutine or cgo handle left behind (the kit's diagnose counters).

When go is on PATH the module first runs Plugins/go/build.sh (a no-op build when nothing changed, Go's cache),
so the tests never run against a stale plugin; without go they use the already-built file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import (MODERN_VERSION, REPO, LegacySession, StderrWatcher, modern_body, modern_headers, modern_meta,
                      modern_post, open_http, parse_sse, plugin_dir, plugin_path, wait_exit)
from schema_check import check_response
from sdk_recorder import run as sdk_run
from test_client_sdk import run_client

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MODES = ["auto", "legacy"]
DEADLINE = 30.0  # seconds for one client conversation
GO_DIR = REPO / "Plugins" / "go"
JSONRPC_INVALID_PARAMS = -32602
JSONRPC_INTERNAL_ERROR = -32603
EXIT_PLUGIN_CRASHED = 70
TOOLS = {"echo", "add", "slow_count", "fail", "panic", "crash", "confirm", "ask_model", "list_roots"}


# ----------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_plugin() -> Path:
    if shutil.which("go"):
        env = dict(os.environ, MCP_PLUGIN_DIR=str(plugin_dir()))
        r = subprocess.run([str(GO_DIR / "build.sh")], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"Plugins/go/build.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        lines = r.stdout.splitlines()
        assert len(lines) == 1, f"build.sh should print one line, printed:\n{r.stdout}"
        assert re.fullmatch(r"built go_reference\s+\S+/libgo_reference\.so", lines[0]), lines[0]
    return plugin_path("go_reference")


# The Go runtime keeps threads of its own besides the host's handler pool: about five from the moment the library
# loads (in the baseline), and under concurrent load a few more that it starts lazily and keeps (Ms to run its Ps
# while callback threads sleep or call into C). They are bounded by GOMAXPROCS (the CPUs it may use), never one per
# call, so the teardown check of host_factory gets that allowance on top of the handler pool and still catches a
# thread per call or per connection (each test below makes dozens of calls).
GO_RUNTIME_THREADS = len(os.sched_getaffinity(0)) + 2


def go_host(host_factory, plugin, *extra, **kw):
    h = host_factory(plugin, *extra, **kw)
    h.max_handler_threads = (h.max_handler_threads or 1) + GO_RUNTIME_THREADS
    return h


@pytest.fixture
def host(host_factory, go_plugin):
    return go_host(host_factory, go_plugin)


def run(coro):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asyncio.run(coro)


async def converse(url: str, mode: str, body, **client_kw):
    with anyio.fail_after(DEADLINE):
        async with Client(url, mode=mode, **client_kw) as client:
            return await body(client)


def texts(result) -> list[str]:
    return [block.text for block in result.content]


async def outcome(c: Client, tool: str, args: dict):
    """("result", is_error, text) or ("error", JSON-RPC code, message)."""
    try:
        r = await c.call_tool(tool, args)
    except MCPError as e:
        return ("error", e.code, str(e))
    return ("result", r.is_error, " ".join(texts(r)))


# ----------------------------------------------------------------------------------------------------------
# Through the host, with the official SDK
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_server_info_and_tools(host, mode):
    async def body(c: Client):
        return c.server_info, await c.list_tools()

    info, listed = run(converse(host.url, mode, body))
    assert info is not None and (info.name, info.version) == ("go-reference", "1.0.0")
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS
    assert tools["echo"].input_schema == {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The text to send back"}},
        "required": ["text"],
    }
    assert tools["echo"].title == "Echo" and tools["echo"].description == "Returns the text it was given."
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["add"].output_schema == {
        "type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]}
    ann = tools["add"].annotations
    assert ann is not None and (ann.read_only_hint, ann.idempotent_hint, ann.open_world_hint) == (True, True, False)
    assert tools["echo"].output_schema is None and tools["echo"].annotations is None
    assert tools["slow_count"].input_schema["properties"]["seconds"]["maximum"] == 30
    assert tools["panic"].input_schema["properties"]["nil"]["type"] == "boolean"


@pytest.mark.parametrize("mode", MODES)
def test_echo_add_fail(host, mode):
    async def body(c: Client):
        return (
            await c.call_tool("echo", {"text": "hello, wörld"}),
            await c.call_tool("echo", {"text": ""}),
            await c.call_tool("add", {"a": 2, "b": 3}),
            await c.call_tool("add", {"a": 0.1, "b": 0.2}),
            await c.call_tool("add", {"a": -1.5, "b": 0.25}),
            await c.call_tool("add", {"a": 1.7976931348623157e308, "b": 1.7976931348623157e308}),
            await c.call_tool("fail", {"message": "it went wrong: ünïcode"}),
            await c.call_tool("slow_count", {"seconds": 0}),
        )

    echo, echo_empty, five, tricky, negative, overflow, failed, zero = run(converse(host.url, mode, body))
    assert not echo.is_error and texts(echo) == ["hello, wörld"] and echo.structured_content is None
    assert not echo_empty.is_error and texts(echo_empty) == [""]
    assert not five.is_error and texts(five) == ["5"] and five.structured_content == {"sum": 5}
    assert texts(tricky) == ["0.30000000000000004"] and tricky.structured_content == {"sum": 0.30000000000000004}
    assert texts(negative) == ["-1.25"] and negative.structured_content == {"sum": -1.25}
    assert overflow.is_error and texts(overflow) == ["the sum is too large to represent"]
    assert failed.is_error and texts(failed) == ["it went wrong: ünïcode"] and failed.structured_content is None
    assert not zero.is_error and texts(zero) == ["counted to 0"]


@pytest.mark.parametrize("mode", MODES)
def test_bad_arguments_are_reported(host, mode):
    async def body(c: Client):
        return (
            await outcome(c, "echo", {}),
            await outcome(c, "echo", {"text": 5}),
            await outcome(c, "add", {"a": 1}),
            await outcome(c, "slow_count", {"seconds": 31}),
            await outcome(c, "slow_count", {"seconds": 1.5}),
        )

    got = run(converse(host.url, mode, body))
    # Either the host rejects the arguments against the input schema, or the kit reports them (-32602): in
    # every case the client learns about it, naming the argument.
    for (kind, code_or_flag, message), word in zip(got, ["text", "text", "b", "seconds", "seconds"]):
        assert (kind == "error" and code_or_flag == JSONRPC_INVALID_PARAMS) or (
            kind == "result" and code_or_flag is True), got
        assert word in message, got


@pytest.mark.parametrize("mode", MODES)
def test_progress_and_call_log(host, mode):
    progress: list[tuple[float, float | None, str | None]] = []
    logs = []

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async def on_log(params):
        logs.append(params)

    async def body(c: Client):
        if mode == "legacy":
            await c.set_logging_level("info")
        return await c.call_tool("slow_count", {"seconds": 1}, progress_callback=on_progress)

    extra = {"log_level": "info"} if mode == "auto" else {}
    result = run(converse(host.url, mode, body, logging_callback=on_log, **extra))
    assert not result.is_error and texts(result) == ["counted to 10"]
    assert [p for p, _, _ in progress] == [float(i) for i in range(1, 11)], progress
    assert all(total == 10 for _, total, _ in progress)
    assert [m for _, _, m in progress] == [f"step {i} of 10" for i in range(1, 11)]
    assert [(e.level, e.logger, e.data) for e in logs] == [("info", "go-reference", "counting 10 steps of 100 ms")]


def test_cancel_reaches_the_go_handler(host_factory, go_plugin):
    """Cancelling a running slow_count stops it in Go (is_cancelled polled by the handler).

    With --max-concurrency 1 the plugin has one handler thread, which slow_count (30 s) holds until it sees the
    cancellation; a second slow_count made right after the cancel can only run once that thread is free.
    """
    host = go_host(host_factory, go_plugin, "--max-concurrency", "1")
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
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        after = await c.call_tool("slow_count", {"seconds": 0})
        return after, loop.time() - t0, at_cancel

    after, elapsed, at_cancel = run(converse(host.url, "auto", body))
    assert not after.is_error and texts(after) == ["counted to 0"]
    left = (300 - at_cancel) / 10  # seconds the cancelled count would still have held the only thread
    assert left > 10, f"the cancel came late in the count ({at_cancel} of 300): the test proves nothing"
    assert elapsed < left, f"the second call waited {elapsed:.2f} s: the cancelled count ran on"


@pytest.mark.parametrize("mode", MODES)
def test_panic_never_crosses_the_boundary(host, mode):
    async def body(c: Client):
        first = await outcome(c, "panic", {})
        after_first = await c.call_tool("echo", {"text": "abc"})
        nil = await outcome(c, "panic", {"nil": True})
        after_nil = await c.call_tool("add", {"a": 1, "b": 2})
        second = await outcome(c, "panic", {"message": "second panic, custom message"})
        return first, after_first, nil, after_nil, second

    first, after_first, nil, after_nil, second = run(converse(host.url, mode, body))
    # The kit turns the panic into MCPP_OUTCOME_INTERNAL: a JSON-RPC internal error naming the panic.
    assert first[:2] == ("error", JSONRPC_INTERNAL_ERROR), first
    assert "tool 'panic' panicked: the panic tool panicked on purpose" in first[2], first
    # A nil dereference is a SIGSEGV in Go code: Go's handler (chained before the host's crash handler) makes it
    # a runtime error panic, which the kit recovers. Had the host's handler seen it, the host would exit 70.
    assert nil[:2] == ("error", JSONRPC_INTERNAL_ERROR), nil
    assert "invalid memory address or nil pointer dereference" in nil[2], nil
    assert second[:2] == ("error", JSONRPC_INTERNAL_ERROR) and "second panic, custom message" in second[2], second
    assert host.proc.poll() is None, "the host died after a panic in the plugin"
    assert texts(after_first) == ["abc"]
    assert after_nil.structured_content == {"sum": 3}

    # A fresh connection is served too: the process and the plugin instance are intact.
    again = run(converse(host.url, mode, lambda c: c.call_tool("echo", {"text": "ok"})))
    assert texts(again) == ["ok"]
    assert host.proc.poll() is None
    assert host.stop() == 0, "the host did not shut down cleanly after the panics"
    stderr = host.stderr_text()
    # Each panic is one line in the host's log, with the Go source position that panicked.
    assert re.search(r"mcpplugin: tool 'panic' panicked at \S*main\.go:\d+: the panic tool panicked on purpose",
                     stderr), stderr[-3000:]
    assert re.search(r"mcpplugin: tool 'panic' panicked at \S*main\.go:\d+: runtime error: invalid memory address",
                     stderr), stderr[-3000:]
    assert "second panic, custom message" in stderr
    assert "crashed" not in stderr and "goroutine " not in stderr, stderr[-3000:]
    assert "go-reference: destroyed" in stderr, "destroy() did not run at SIGTERM"


@pytest.mark.parametrize("mode", MODES)
def test_concurrent_calls(host, mode):
    """16 calls at once: each host worker thread enters the Go runtime on its own, and every call gets its own
    answer (a mixed-up mcpp_call handle or shared buffer would hand one call's text to another)."""
    n = 16
    words = [f"w{i}-{'x' * i}" for i in range(n)]

    async def body(c: Client):
        echoes = (c.call_tool("echo", {"text": w}) for w in words)
        sums = (c.call_tool("add", {"a": i, "b": 1000 * i}) for i in range(n))
        # slow_count (not NONBLOCKING) runs on worker threads and sleeps in Go for 100 ms steps: 16 of them keep
        # 16 host threads inside Go callbacks at the same time.
        counts = (c.call_tool("slow_count", {"seconds": 1}) for _ in range(n))
        return await asyncio.gather(*echoes, *sums, *counts)

    results = run(converse(host.url, mode, body))
    assert [texts(r) for r in results[:n]] == [[w] for w in words]
    assert [r.structured_content for r in results[n:2 * n]] == [{"sum": 1001 * i} for i in range(n)]
    assert [texts(r) for r in results[2 * n:]] == [["counted to 10"]] * n
    assert not any(r.is_error for r in results)


# ----------------------------------------------------------------------------------------------------------
# Resources, templates, prompts and completions (the kit's Resources, ResourceTemplates, Prompts, Completer)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_resources(host, mode):
    async def body(c: Client):
        listed = await c.list_resources()
        readme = await c.read_resource("go-reference://readme")
        templates = await c.list_resource_templates()
        note = await c.read_resource("go-reference://notes/2")
        with pytest.raises(MCPError) as missing:
            await c.read_resource("go-reference://notes/9")
        return listed, readme, templates, note, missing.value

    listed, readme, templates, note, missing = run(converse(host.url, mode, body))
    [r] = listed.resources
    assert (r.uri, r.name, r.title, r.mime_type) == ("go-reference://readme", "readme", "Read me", "text/plain")
    [content] = readme.contents
    assert content.uri == "go-reference://readme" and content.mime_type == "text/plain"
    assert content.text.startswith("This is the Go reference plugin of mcp-supervisor")
    assert r.size == len(content.text.encode())
    [t] = templates.resource_templates
    assert (t.uri_template, t.name, t.mime_type) == ("go-reference://notes/{id}", "note", "text/plain")
    [n] = note.contents
    assert (n.uri, n.text, n.mime_type) == ("go-reference://notes/2", "Note 2", "text/plain")
    # mcpplugin.NotFound; 2026-07-28 answers a missing resource with -32602, 2025-11-25 with -32002
    assert missing.code == (-32602 if mode == "auto" else -32002)


@pytest.mark.parametrize("mode", MODES)
def test_prompts_and_completion(host, mode):
    prompt_ref = types.PromptReference(type="ref/prompt", name="greet")
    notes_ref = types.ResourceTemplateReference(type="ref/resource", uri="go-reference://notes/{id}")

    async def body(c: Client):
        with pytest.raises(MCPError) as unknown:
            await c.get_prompt("nope", {})
        return (
            await c.list_prompts(),
            await c.get_prompt("greet", {"name": "Ada", "style": "pirate"}),
            await c.get_prompt("greet", {"name": "Grace"}),
            await c.complete(prompt_ref, {"name": "style", "value": "p"}),
            await c.complete(prompt_ref, {"name": "name", "value": "A"}),
            await c.complete(notes_ref, {"name": "id", "value": ""}),
            unknown.value,
        )

    prompts, greet, default, style, names, ids, unknown = run(converse(host.url, mode, body))
    [p] = prompts.prompts
    assert (p.name, p.title) == ("greet", "Greet someone")
    assert [(a.name, bool(a.required), a.description) for a in p.arguments] == [
        ("name", True, "Who to greet"), ("style", False, "friendly (default), formal, pirate or poetic")]
    assert greet.description == "A greeting"
    assert [(m.role, m.content.text) for m in greet.messages] == [("user", "Please greet Ada in a pirate way.")]
    assert default.messages[0].content.text == "Please greet Grace in a friendly way."
    assert style.completion.values == ["pirate", "poetic"] and style.completion.total == 2
    assert names.completion.values == []
    assert ids.completion.values == ["1", "2", "3"] and ids.completion.total == 3
    assert unknown.code == JSONRPC_INVALID_PARAMS and "nope" in str(unknown)


# ----------------------------------------------------------------------------------------------------------
# ABI 1.1 through the host: Interactive handlers asking the client (Call.Elicit/Sample/Roots), request state,
# cache hints. The SDK client answers; every exchange is validated against its revision's schema (run_client).
# ----------------------------------------------------------------------------------------------------------


def accept_confirm(asked: list):
    async def callback(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"confirm": True})
    return callback


@pytest.mark.parametrize("mode", MODES)
def test_elicitation_answer_reaches_the_handler(host, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "deploy"})

    result, seen = sdk_run(run_client(host.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert not result.is_error, texts(result)
    [params] = asked
    assert params.message == "Really do this: deploy?"
    assert params.requested_schema["properties"]["confirm"]["type"] == "boolean"
    if mode == "auto":
        # The first attempt's Elicit returned ErrSuspended (the kit finished the call, the host sent
        # input_required); the retry ran the handler again and Call.RequestState() returned the bytes.
        assert texts(result) == ["Confirmed: deploy (after a retry carrying ticket-1)"]
        assert seen["tools/call"] == 2
    else:
        assert texts(result) == ["Confirmed: deploy"]
        assert seen["tools/call"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_handler_asks_twice(host, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "drop the table", "twice": True})

    result, seen = sdk_run(run_client(host.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert [p.message for p in asked] == ["Really do this: drop the table?", "Are you sure: drop the table?"]
    assert not result.is_error and texts(result)[0].startswith("Confirmed: drop the table"), texts(result)
    assert seen["tools/call"] == (3 if mode == "auto" else 1)


@pytest.mark.parametrize("mode", MODES)
def test_the_user_declines(host, mode):
    async def callback(context, params):
        return types.ElicitResult(action="decline")

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "deploy"})

    result, _ = sdk_run(run_client(host.url, mode, body, elicitation_callback=callback))
    assert not result.is_error and texts(result) == ["Not confirmed: the user chose decline"]


@pytest.mark.parametrize("mode", MODES)
def test_the_client_refuses(host, mode):
    async def callback(context, params):
        return types.ErrorData(code=-1, message="no humans here")

    async def body(c: Client):
        try:
            return await c.call_tool("confirm", {"action": "deploy"})
        except MCPError as e:
            return e

    result, _ = sdk_run(run_client(host.url, mode, body, elicitation_callback=callback))
    if mode == "auto":
        assert isinstance(result, MCPError) and "no humans here" in str(result)
    else:
        # 2025-11-25: Elicit returned an *InputError matching ErrRefused; returned as is: a tool error.
        assert result.is_error is True
        assert texts(result) == ["the client refused the elicitation request: no humans here"]


@pytest.mark.parametrize("mode", MODES)
def test_no_elicitation_capability(host, mode):
    async def body(c: Client):
        with pytest.raises(MCPError) as missing:
            await c.call_tool("confirm", {"action": "deploy"})
        return missing.value

    error, _ = sdk_run(run_client(host.url, mode, body))
    # ErrUnsupported returned as is -> MCPP_OUTCOME_NEEDS_CAPABILITY
    assert error.error.message == "this tool needs the client's elicitation capability"
    assert error.error.data == {"requiredCapabilities": {"elicitation": {}}}
    assert error.error.code == (-32021 if mode == "auto" else -32602)


def test_missing_capability_is_400_with_required_capabilities(host):
    reply = modern_post(host.port, "tools/call", {"name": "ask_model", "arguments": {"question": "why"}},
                        meta=modern_meta(capabilities={"elicitation": {}}))
    assert reply.status == 400
    msg = check_response(reply.json(), MODERN_VERSION, "tools/call")
    assert msg["error"]["code"] == -32021
    assert msg["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


@pytest.mark.parametrize("mode", MODES)
def test_sampling_and_roots(host, mode):
    asked: list = []

    async def sampling(context, params):
        asked.append(params)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="42"),
                                         model="test-model")

    async def roots(context):
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/a", name="a"), types.Root(uri="file:///srv/b")])

    async def body(c: Client):
        return (await c.call_tool("ask_model", {"question": "What is 6 × 7? \"quoted\""}),
                await c.call_tool("list_roots", {}))

    (model, listed), _ = sdk_run(run_client(host.url, mode, body, sampling_callback=sampling,
                                            list_roots_callback=roots))
    assert texts(model) == ["The model (test-model) says: 42"]
    [params] = asked
    assert params.max_tokens == 200
    assert [m.content.text for m in params.messages] == ["What is 6 × 7? \"quoted\""]
    assert texts(listed) == ["file:///srv/a", "file:///srv/b", "2 roots"]


def test_cache_hints(host):
    """Plugin.ListCache (lists public for a minute) and Call.SetCache (the readme public for five); a note keeps
    the default; none in the legacy era."""
    for method in ["tools/list", "resources/list", "resources/templates/list", "prompts/list"]:
        result = check_response(modern_post(host.port, method, {}).json(), MODERN_VERSION, method)["result"]
        assert (result["ttlMs"], result["cacheScope"]) == (60000, "public"), method
    readme = modern_post(host.port, "resources/read", {"uri": "go-reference://readme"})
    result = check_response(readme.json(), MODERN_VERSION, "resources/read")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (300000, "public")
    note = modern_post(host.port, "resources/read", {"uri": "go-reference://notes/1"})
    result = check_response(note.json(), MODERN_VERSION, "resources/read")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")
    s = LegacySession(host.port, "2025-11-25")
    s.initialize()
    legacy = s.request("resources/read", {"uri": "go-reference://readme"}).final()
    check_response(legacy, "2025-11-25", "resources/read")
    assert "ttlMs" not in legacy["result"] and "cacheScope" not in legacy["result"]
    s.delete()


# ----------------------------------------------------------------------------------------------------------
# The kit against a mock host (C, dlopen): Plugins/go/kittest, a Serial plugin with a tool per edge
# ----------------------------------------------------------------------------------------------------------

MOCK_HOST = r"""
#define _GNU_SOURCE
#include "mcp_plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct mcpp_call { int finishes, outcome, used_after_finish, cancelled; char name[64], msg[512], text[512]; };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char logs[64][600], requests[64][600], list_caches[8][64];
static int nlogs, nrequests, nlist_caches, sizes_ok = 1, ndecls;

struct request { struct mcpp_call *call; mcpp_input_callback cb; void *user; };
static struct request queue[64];
static int qhead, qtail;

static int live(struct mcpp_call *c) {
    pthread_mutex_lock(&mu);
    int ok = !c->finishes;
    if (!ok) c->used_after_finish = 1;
    pthread_mutex_unlock(&mu);
    return ok;
}
static void append(struct mcpp_call *c, const char *s, size_t n) {
    pthread_mutex_lock(&mu);
    strncat(c->text, s, n < sizeof c->text - strlen(c->text) - 1 ? n : sizeof c->text - strlen(c->text) - 1);
    pthread_mutex_unlock(&mu);
}
static void h_log(void *ctx, int32_t level, const char *m, size_t n) {
    (void)ctx; (void)level;
    pthread_mutex_lock(&mu);
    if (nlogs < 64) snprintf(logs[nlogs++], sizeof logs[0], "%.*s", (int)n, m);
    pthread_mutex_unlock(&mu);
}
static mcpp_status h_arg_string(mcpp_call *c, const char *k, size_t kn, const char **o, size_t *n) {
    (void)k; (void)kn; (void)o; (void)n; return live(c) ? MCPP_E_NOT_FOUND : MCPP_E_FINISHED;
}
static mcpp_status h_arg_bool(mcpp_call *c, const char *k, size_t kn, int32_t *o) {
    (void)k; (void)kn; (void)o; return live(c) ? MCPP_E_NOT_FOUND : MCPP_E_FINISHED;
}
static mcpp_status h_arg_json(mcpp_call *c, const char *k, size_t kn, const char **o, size_t *n) {
    (void)k; (void)kn; (void)o; (void)n; return live(c) ? MCPP_E_NOT_FOUND : MCPP_E_FINISHED;
}
static mcpp_status h_add_text(mcpp_call *c, const char *t, size_t n) {
    if (!live(c)) return MCPP_E_FINISHED;
    append(c, t, n);
    return MCPP_OK;
}
static mcpp_status h_ok_text(mcpp_call *c, const char *t, size_t n) { (void)t; (void)n; return live(c) ? MCPP_OK : MCPP_E_FINISHED; }
static mcpp_status h_set_role(mcpp_call *c, int32_t r) { (void)r; return live(c) ? MCPP_OK : MCPP_E_FINISHED; }
static int32_t h_is_cancelled(mcpp_call *c) { return c->cancelled || !live(c); }
static void h_finish(mcpp_call *c, int32_t outcome, const char *m, size_t n) {
    pthread_mutex_lock(&mu);
    if (++c->finishes == 1) { c->outcome = outcome; snprintf(c->msg, sizeof c->msg, "%.*s", (int)n, m ? m : ""); }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
/* 1.1: request_input queues; main() answers after the handler returned, never inside request_input. */
static mcpp_status h_request_input(mcpp_call *c, int32_t kind, const char *k, size_t kn, const char *p, size_t pn,
                                   mcpp_input_callback cb, void *user) {
    if (!live(c)) return MCPP_E_FINISHED;
    if (kn == 3 && memcmp(k, "bad", 3) == 0) return MCPP_E_INVALID;
    pthread_mutex_lock(&mu);
    snprintf(requests[nrequests++], sizeof requests[0], "%d %.*s %.*s", kind, (int)kn, k, (int)pn, p);
    queue[qtail++] = (struct request){c, cb, user};
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return MCPP_OK;
}
static mcpp_status h_set_request_state(mcpp_call *c, const uint8_t *d, size_t n) {
    if (!live(c)) return MCPP_E_FINISHED;
    append(c, "[state:", 7); append(c, (const char *)d, n); append(c, "]", 1);
    return MCPP_OK;
}
static mcpp_status h_get_request_state(mcpp_call *c, const uint8_t **o, size_t *n) {
    if (!live(c)) return MCPP_E_FINISHED;
    *o = (const uint8_t *)"prior"; *n = 5;
    return MCPP_OK;
}
static mcpp_status h_set_cache(mcpp_call *c, int64_t ttl, int32_t scope) {
    if (!live(c)) return MCPP_E_FINISHED;
    char b[64];
    int n = snprintf(b, sizeof b, "[cache:%lld/%d]", (long long)ttl, scope);
    append(c, b, (size_t)n);
    return MCPP_OK;
}
#define ACCEPT "{\"action\":\"accept\",\"content\":{\"confirm\":true}}"
#define REFUSAL "{\"code\":-1,\"message\":\"nope\"}"
#define MODEL "{\"model\":\"m\"}"
#define ROOTS "{\"roots\":[]}"
static const struct { const char *json, *pointer; int32_t type; const char *value; } canned[] = {
    {ACCEPT, "/action", MCPP_JSON_STRING, "accept"}, {ACCEPT, "/content/confirm", MCPP_JSON_BOOL, "true"},
    {REFUSAL, "/message", MCPP_JSON_STRING, "nope"}, {REFUSAL, "/code", MCPP_JSON_NUMBER, "-1"},
    {MODEL, "/model", MCPP_JSON_STRING, "m"}, {ROOTS, "/roots", MCPP_JSON_ARRAY, "[]"},
};
static mcpp_status h_json_get(mcpp_call *c, const char *j, size_t jn, const char *p, size_t pn, int32_t *type,
                              const char **o, size_t *n) {
    if (!live(c)) return MCPP_E_FINISHED;
    for (size_t i = 0; i < sizeof canned / sizeof canned[0]; i++)
        if (strlen(canned[i].json) == jn && !memcmp(canned[i].json, j, jn) && strlen(canned[i].pointer) == pn &&
            !memcmp(canned[i].pointer, p, pn)) {
            *type = canned[i].type; *o = canned[i].value; *n = strlen(canned[i].value);
            return MCPP_OK;
        }
    return MCPP_E_NOT_FOUND;
}
static mcpp_status r_add_tool(void *ctx, const mcpp_tool *t) {
    (void)ctx; ndecls++; sizes_ok &= t->struct_size == sizeof(mcpp_tool); return MCPP_OK;
}
static mcpp_status r_add_prompt(void *ctx, const mcpp_prompt *p) {
    (void)ctx; ndecls++;
    sizes_ok &= p->struct_size == sizeof(mcpp_prompt) && p->arg_count == 2;
    for (uint32_t i = 0; i < p->arg_count; i++)
        sizes_ok &= p->args[i].struct_size == sizeof(mcpp_prompt_arg);
    sizes_ok &= p->args[0].flags == MCPP_ARG_REQUIRED && p->args[0].name.len == 1 && p->args[0].name.ptr[0] == 'a';
    sizes_ok &= p->args[1].flags == 0 && p->args[0].description.len == 5;
    return MCPP_OK;
}
static mcpp_status r_set_list_cache(void *ctx, uint32_t lists, int64_t ttl, int32_t scope) {
    (void)ctx;
    snprintf(list_caches[nlist_caches++], sizeof list_caches[0], "%u/%lld/%d", lists, (long long)ttl, scope);
    return MCPP_OK;
}
static void w_write(void *ctx, const char *b, size_t n) { strncat((char *)ctx, b, n); }

static const struct { const char *name; int n; struct { int32_t status; const char *answer; } steps[2]; } scripts[] = {
    {"ask_ok", 1, {{MCPP_INPUT_ANSWERED, ACCEPT}}},
    {"ask_refused", 1, {{MCPP_INPUT_REFUSED, REFUSAL}}},
    {"ask_unsupported", 1, {{MCPP_INPUT_UNSUPPORTED, ""}}},
    {"ask_cancelled", 1, {{MCPP_INPUT_CANCELLED, ""}}},
    {"ask_suspended", 1, {{MCPP_INPUT_SUSPENDED, ""}}},
    {"ask_panics", 1, {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_goexit", 1, {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_twice", 2, {{MCPP_INPUT_ANSWERED, MODEL}, {MCPP_INPUT_ANSWERED, ROOTS}}},
    {"serial_wait", 1, {{MCPP_INPUT_ANSWERED, ACCEPT}}},
    {"prompt:ask", 1, {{MCPP_INPUT_REFUSED, REFUSAL}}},
};

static const mcpp_plugin *t;
static void *inst, *old_inst;
static struct mcpp_call *calls[64];
static int ncalls;

static struct mcpp_call *start(const char *name) {
    struct mcpp_call *c = calloc(1, sizeof *c); /* never freed: a late host call on it is still counted */
    snprintf(c->name, sizeof c->name, "%s", name);
    calls[ncalls++] = c;
    const char *what = name;
    void *in = inst;
    if (!strncmp(name, "old:", 4)) { what = name + 4; in = old_inst; }
    if (!strncmp(name, "prompt:", 7)) t->get_prompt(in, c, name + 7, strlen(name + 7));
    else t->call_tool(in, c, what, strlen(what));
    return c;
}

/* Runs one call: answers its requests one at a time with its script; returns when it is finished. */
static void run(const char *name) {
    struct mcpp_call *c = start(name);
    if (!strcmp(name, "wait_cancel")) { c->cancelled = 1; t->cancel(inst, c); }
    int step = 0, script = -1;
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++)
        if (!strcmp(scripts[i].name, name)) script = (int)i;
    for (;;) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        pthread_mutex_lock(&mu);
        while (!c->finishes && qhead == qtail)
            if (pthread_cond_timedwait(&cv, &mu, &deadline) == ETIMEDOUT) {
                printf("timeout %s\n", name);
                exit(6);
            }
        if (qhead == qtail) { pthread_mutex_unlock(&mu); break; }
        struct request r = queue[qhead++];
        pthread_mutex_unlock(&mu);
        if (r.call != c || script < 0 || step >= scripts[script].n) { printf("unexpected request of %s\n", name); exit(5); }
        if (!strcmp(name, "serial_wait"))
            start("serial_other"); /* a Serial plugin's next handler, on this thread, while serial_wait waits */
        const char *answer = scripts[script].steps[step].answer;
        r.cb(r.user, r.call, scripts[script].steps[step].status, answer, strlen(answer));
        step++;
    }
}

int main(int argc, char **argv) {
    alarm(20); /* a deadlock kills the run */
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { printf("dlopen: %s\n", dlerror()); return 2; }
    mcpp_status (*negotiate)(mcpp_negotiation *) = (mcpp_status (*)(mcpp_negotiation *))dlsym(lib, "mcpp_negotiate_v1");
    mcpp_negotiation n = {sizeof n, 1, 1, 0, NULL};
    if (negotiate(&n) != MCPP_OK) return 3;
    t = n.plugin;
    printf("table %u %u\n", t->struct_size, t->threading);
    mcpp_host host = {0};
    host.struct_size = sizeof host; host.abi_minor = 1;
    host.log = h_log; host.arg_string = h_arg_string; host.arg_bool = h_arg_bool; host.arg_json = h_arg_json;
    host.add_text = h_add_text; host.set_description = h_ok_text; host.set_role = h_set_role;
    host.is_cancelled = h_is_cancelled; host.finish = h_finish;
    mcpp_host host_1_0 = host; /* an ABI 1.0 table: ends before request_input */
    host_1_0.struct_size = offsetof(mcpp_host, request_input); host_1_0.abi_minor = 0;
    host.request_input = h_request_input; host.set_request_state = h_set_request_state;
    host.get_request_state = h_get_request_state; host.set_cache = h_set_cache; host.json_get = h_json_get;
    char err[512] = "";
    mcpp_writer w = {sizeof w, 0, err, w_write};
    if (t->create(&host, "{}", 2, &w, &inst) != MCPP_OK) { printf("create: %s\n", err); return 4; }
    mcpp_registry reg = {0};
    reg.struct_size = sizeof reg; reg.add_tool = r_add_tool; reg.add_prompt = r_add_prompt;
    reg.set_list_cache = r_set_list_cache;
    mcpp_status st = t->describe(inst, &reg);
    printf("describe %d decls=%d sizes_ok=%d list_cache=%s\n", st, ndecls, sizes_ok, list_caches[0]);
    mcpp_registry reg_1_0 = reg;
    reg_1_0.struct_size = offsetof(mcpp_registry, set_list_cache);
    nlist_caches = 0;
    st = t->describe(inst, &reg_1_0);
    printf("describe_1_0 %d list_caches=%d\n", st, nlist_caches);
    if (t->create(&host_1_0, "{}", 2, &w, &old_inst) != MCPP_OK) return 4;

    for (int i = 2; i < argc; i++) run(argv[i]);
    char report[1024] = "";
    mcpp_writer rw = {sizeof rw, 0, report, w_write};
    st = t->diagnose(inst, &rw);
    printf("diagnose %d %s\n", st, report);
    for (int i = 0; i < ncalls; i++) {
        pthread_mutex_lock(&mu);
        struct mcpp_call *c = calls[i];
        printf("%s finishes=%d outcome=%d used_after_finish=%d msg=[%s] text=[%s]\n", c->name, c->finishes, c->outcome,
               c->used_after_finish, c->msg, c->text);
        pthread_mutex_unlock(&mu);
    }
    for (int i = 0; i < nrequests; i++) printf("request [%s]\n", requests[i]);
    t->destroy(old_inst);
    t->destroy(inst);
    for (int i = 0; i < nlogs; i++) printf("log [%s]\n", logs[i]);
    return 0;
}
"""

MOCK_CALLS = {
    "ask_ok": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[accept+yes]",
    # Answers that are not answers: Elicit's *InputError, returned as is, ends the call like the C plugin's.
    "ask_refused": "finishes=1 outcome=1 used_after_finish=0 msg=[the client refused the elicitation request: nope] text=[]",
    "ask_unsupported": "finishes=1 outcome=5 used_after_finish=0 msg=[this tool needs the client's elicitation capability] text=[]",
    "ask_cancelled": "finishes=1 outcome=4 used_after_finish=0 msg=[cancelled while waiting for the client] text=[]",
    # SUSPENDED: the kit finishes the call (outcome OK; the host sends input_required). The handler's later
    # AddText got ErrFinished and never reached the host (used_after_finish=0; see the log line).
    "ask_suspended": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[]",
    # A panic and runtime.Goexit in the handler's goroutine, after the answer
    "ask_panics": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'ask_panics' panicked: boom after the answer] text=[]",
    "ask_goexit": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'ask_goexit' did not return (panic(nil) or "
                  "runtime.Goexit)] text=[]",
    # Asking from a handler on the host's thread is refused before anything is sent (it could only deadlock).
    "not_interactive": "finishes=1 outcome=4 used_after_finish=0 msg=[the handler asked the client but is not declared "
                       "Interactive (it would block the host's handler thread)] text=[]",
    "ask_rejected": "finishes=1 outcome=4 used_after_finish=0 msg=[could not ask the client (request_input returned "
                    "status 3)] text=[]",
    "ask_twice": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[m[]]",
    "state": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[[state:abc]prior[cache:5000/1]]",
    # mcpp_plugin.cancel closes Call.Done()
    "wait_cancel": "finishes=1 outcome=1 used_after_finish=0 msg=[cancelled: context canceled] text=[]",
    "serial_wait": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[accept+yes]",
    # MCPP_OUTCOME_TOOL_ERROR is for tools/call only: a prompt's refusal becomes an internal error
    "prompt:ask": "finishes=1 outcome=4 used_after_finish=0 msg=[the client refused the elicitation request: nope] text=[]",
    "nope": "finishes=1 outcome=2 used_after_finish=0 msg=[unknown tool 'nope'] text=[]",
    # On a host whose table ends before request_input (1.0), the request fails naming the missing function.
    "old:ask_ok": "finishes=1 outcome=4 used_after_finish=0 msg=[the host does not implement mcpp_host.request_input "
                  "(ABI 1.1; its table has struct_size 208, abi_minor 0)] text=[]",
}

ELICIT_SURE = '0 elicit-1 {"message":"Sure?","requestedSchema":{"type":"object","properties":{}}}'
MOCK_REQUESTS = [ELICIT_SURE] * 7 + [
    '1 sample-1 {"messages":[{"role":"user","content":{"type":"text","text":"q \\"1\\""}}],"maxTokens":7}',
    "2 roots-2 ",
    ELICIT_SURE,  # serial_wait
    ELICIT_SURE,  # prompt:ask
]


def test_kit_against_a_mock_host(tmp_path):
    """Plugins/go/kittest (Serial) loaded by a C mock host: each call is finished exactly once and never touched
    after that, whatever the handler does in its goroutine (answered, refused, unsupported, cancelled, suspended,
    panics, Goexit, two rounds); a handler on the host's thread may not ask; mcpp_plugin.cancel closes Done(); a
    Serial plugin's next handler runs while an Interactive one waits for the client (else: deadlock, killed by
    alarm); a 1.0 host table gives a clear error; and at the end the kit's diagnose counts no call in flight, no
    handler goroutine, no cgo handle of a request and nobody waiting."""
    if shutil.which("go") is None or shutil.which("cc") is None:
        pytest.skip("go and a C compiler are needed")
    env = dict(os.environ, MCP_PLUGIN_DIR=str(tmp_path))
    r = subprocess.run([str(GO_DIR / "build.sh"), "kittest"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("built go_kittest"), (r.stdout, r.stderr)
    src = tmp_path / "mock_host.c"
    src.write_text(MOCK_HOST)
    exe = tmp_path / "mock_host"
    r = subprocess.run(["cc", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread", "-I",
                        str(REPO / "Sources" / "PluginABI" / "include"), "-o", str(exe), str(src), "-ldl"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe), str(tmp_path / "libgo_kittest.so"), *MOCK_CALLS], capture_output=True, text=True,
                       timeout=90)
    assert r.returncode == 0, f"mock host exited {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    lines = r.stdout.splitlines()
    assert lines[0] == "table 168 0"  # MCPP_THREADING_SERIAL
    # every tool plus the prompt with struct_size == sizeof (and its two arguments, flags and texts copied);
    # Plugin.ListCache -> set_list_cache(tools | prompts, 60000 ms, public); a 1.0 registry just drops the hint
    assert lines[1] == "describe 0 decls=15 sizes_ok=1 list_cache=5/60000/1", lines[1]
    assert lines[2] == "describe_1_0 0 list_caches=0"
    assert lines[3] == ('diagnose 0 {"kit":"mcpplugin","calls_in_flight":0,"handler_goroutines":0,"input_handles":0,'
                        '"waiting_for_input":0}'), lines[3]
    calls = {}
    for line in lines[4:]:
        name, _, rest = line.partition(" ")
        if name in ("request", "log"):
            break
        calls[name] = rest
    assert calls == dict(MOCK_CALLS, serial_other="finishes=1 outcome=0 used_after_finish=0 msg=[] text=[other]")
    assert [line[len("request ["):-1] for line in lines if line.startswith("request [")] == MOCK_REQUESTS
    logs = [line[len("log ["):-1] for line in lines if line.startswith("log [")]
    assert "ask_suspended: suspended=true after=true" in logs, logs
    assert any(re.fullmatch(r"mcpplugin: tool 'ask_panics' panicked at \S*kittest/main\.go:\d+: boom after the answer", l)
               for l in logs), logs
    assert "mcpplugin: the host's registry has no set_list_cache (ABI 1.1): list cache hints dropped" in logs, logs


# ----------------------------------------------------------------------------------------------------------
# Signals: the Go runtime's handlers and the host's
# ----------------------------------------------------------------------------------------------------------


def test_sigterm_during_a_call_drains_and_exits_cleanly(host):
    """SIGTERM, sent once the Go handler is running (its first progress notification arrived), reaches the host's
    handler although the process now has Go runtime threads (c-shared Go leaves SIGTERM to the host): the host
    drains, the call in flight still completes with its answer, destroy() runs and the status is 0.

    (Raw HTTP, one 2026-07-28 tools/call read as an SSE stream: the SDK client tears its session down when the
    server starts draining, for the C reference plugin as well, so it cannot show the answer arriving.)"""
    params = {"name": "slow_count", "arguments": {"seconds": 1}}
    body = modern_body("tools/call", params, meta=modern_meta(progress_token="p1"))
    conn, resp = open_http(host.port, "POST", body=body, headers=modern_headers("tools/call", params), timeout=30)
    try:
        assert resp.status == 200 and resp.headers.get("Content-Type", "").startswith("text/event-stream")
        head = b""
        while b"notifications/progress" not in head:  # read up to the first progress event
            line = resp.readline()
            assert line, f"the stream ended before any progress: {head!r}"
            head += line
        os.kill(host.proc.pid, signal.SIGTERM)
        rest = resp.read()
    finally:
        conn.close()
    events = parse_sse(head + rest)
    final = [e.json() for e in events if "result" in e.json() or "error" in e.json()]
    assert len(final) == 1, events
    assert final[0]["result"]["content"] == [{"type": "text", "text": "counted to 10"}], final
    assert not final[0]["result"].get("isError", False)
    assert wait_exit(host, 15) == 0
    stderr = host.stderr_text()
    assert re.search(r"draining: .*1 call\(s\) in flight", stderr), stderr[-3000:]
    assert "go-reference: destroyed" in stderr, stderr[-3000:]
    assert "crashed" not in stderr, stderr[-3000:]


def test_unrecoverable_go_crash_is_reported_by_the_host(host_factory, go_plugin):
    """A Go fatal error (a runtime throw; no recover can catch it) goes through the host's crash handler: the kit
    sets GOTRACEBACK=crash, so Go prints its traceback and raises SIGABRT, which c-shared Go leaves to the host.
    The host then names the call and exits 70 (a crash the supervisor restarts), instead of Go's exit(2)."""
    disabled = go_host(host_factory, go_plugin)
    got = run(converse(disabled.url, "auto", lambda c: outcome(c, "crash", {})))
    assert got[:2] == ("result", True) and "crash is disabled" in got[2], got

    host = go_host(host_factory, go_plugin, config=json.dumps({"allow_crash": True}))
    watcher = StderrWatcher(host)
    try:
        run(converse(host.url, "auto", lambda c: c.call_tool("crash", {})))
    except BaseException:  # the connection drops with the process: any client error is fine here
        pass
    assert wait_exit(host, 15) == EXIT_PLUGIN_CRASHED
    watcher.wait_eof(10)
    stderr = watcher.text()
    assert "fatal error: sync: unlock of unlocked mutex" in stderr, stderr[-3000:]
    assert re.search(r"plugin crashed with SIGABRT \(abort\) during .*crash", stderr), stderr[-3000:]


# ----------------------------------------------------------------------------------------------------------
# The shared object itself
# ----------------------------------------------------------------------------------------------------------


def test_exports_only_the_entry_point(go_plugin):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    r = subprocess.run([nm, "-D", "--defined-only", str(go_plugin)], capture_output=True, text=True, check=True)
    symbols = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert [s for s in symbols if s.startswith("mcpp_")] == ["mcpp_negotiate_v1"], r.stdout
    # The kit's cgo exports (gomcpp_*) and the Go runtime stay local (Plugins/go/mcpplugin/exports.map).
    assert symbols == ["mcpp_negotiate_v1"], r.stdout
    assert re.search(r"^\S+ T mcpp_negotiate_v1$", r.stdout, re.M), r.stdout


NEGOTIATE = textwrap.dedent(r"""
    import ctypes, json, sys

    class Str(ctypes.Structure):
        _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        def text(self):
            return ctypes.string_at(self.ptr, self.len).decode() if self.len else ""

    class Plugin(ctypes.Structure):  # mcpp_plugin, ABI 1.0
        _fields_ = [("struct_size", ctypes.c_uint32), ("threading", ctypes.c_uint32),
                    ("max_concurrency", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                    ("name", Str), ("version", Str), ("title", Str), ("instructions", Str)] + [
                    (f, ctypes.c_void_p) for f in ("create", "destroy", "describe", "call_tool", "read_resource",
                    "get_prompt", "complete", "cancel", "health", "diagnose", "get_extension")]

    class Negotiation(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_uint32), ("host_abi_major", ctypes.c_uint32),
                    ("host_abi_minor", ctypes.c_uint32), ("plugin_abi_minor", ctypes.c_uint32),
                    ("plugin", ctypes.POINTER(Plugin))]

    assert ctypes.sizeof(Plugin) == 168 and ctypes.sizeof(Negotiation) == 24
    negotiate = ctypes.CDLL(sys.argv[1]).mcpp_negotiate_v1
    negotiate.argtypes = [ctypes.POINTER(Negotiation)]
    negotiate.restype = ctypes.c_int32

    def attempt(major=1, minor=0, size=24):
        n = Negotiation(struct_size=size, host_abi_major=major, host_abi_minor=minor, plugin_abi_minor=99)
        st = negotiate(ctypes.byref(n))
        return st, n

    out = {"null": negotiate(None)}
    st, n = attempt(size=16)
    out["small"] = [st, bool(n.plugin), n.plugin_abi_minor]
    st, n = attempt(major=2)
    out["major2"] = [st, n.plugin_abi_minor, bool(n.plugin)]
    st, newer = attempt(minor=7)
    out["minor7"] = st
    st, n = attempt(minor=0)
    out["minor0"] = [st, n.plugin_abi_minor]
    st, n = attempt(minor=1)
    out["ok"] = [st, n.plugin_abi_minor]
    out["same_table"] = ctypes.addressof(n.plugin.contents) == ctypes.addressof(newer.plugin.contents)
    t = n.plugin.contents
    out["table"] = [t.struct_size, t.threading, t.max_concurrency, t.name.text(), t.version.text(), t.title.text()]
    out["set"] = [f for f in ("create", "destroy", "describe", "call_tool", "read_resource", "get_prompt",
                              "complete", "cancel", "health", "diagnose", "get_extension") if getattr(t, f)]
    print(json.dumps(out))
""")


def test_negotiation_like_define_entry(go_plugin):
    """mcpp_negotiate_v1 behaves like MCPP_DEFINE_ENTRY; the table is static, CONCURRENT, Go-declared names.
    (In a child process: loading the library starts a Go runtime, which pytest's process should not carry.)"""
    r = subprocess.run([sys.executable, "-c", NEGOTIATE, str(go_plugin)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["null"] == 3  # MCPP_E_INVALID
    assert out["small"] == [3, False, 99]  # too small: nothing touched
    assert out["major2"] == [2, 1, True]  # MCPP_E_VERSION, minor and table filled anyway
    assert out["minor7"] == 0 and out["ok"] == [0, 1]  # built against the 1.1 header
    assert out["minor0"] == [2, 1]  # a host offering only 1.0 is told the plugin needs minor 1
    assert out["same_table"] is True, "the table is static"
    assert out["table"] == [168, 1, 0, "go-reference", "1.0.0", "Reference plugin (Go)"]
    assert out["set"] == ["create", "destroy", "describe", "call_tool", "read_resource", "get_prompt", "complete",
                          "cancel", "health", "diagnose"]


def test_build_without_go_installs_nothing(tmp_path):
    """build.sh without a go on PATH: exit 1, a message naming go, and no file in the plugin folder."""
    bash = shutil.which("bash")
    env = {"PATH": str(tmp_path / "empty-bin"), "MCP_PLUGIN_DIR": str(tmp_path / "out"), "HOME": str(tmp_path)}
    (tmp_path / "empty-bin").mkdir()
    for tool in ("dirname", "mkdir", "mktemp", "chmod", "mv", "rm"):  # coreutils only, no go
        found = shutil.which(tool)
        if found:
            (tmp_path / "empty-bin" / tool).symlink_to(found)
    r = subprocess.run([bash, str(GO_DIR / "build.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and "go not found" in r.stderr, (r.stdout, r.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
