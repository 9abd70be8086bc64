"""The C++ wrapper (Sources/PluginABI/include/mcp_plugin.hpp) and its reference plugin (Plugins/cpp), served by
mcp-plugin-host as libcpp_reference.so.

- the official Python SDK (`mcp` 2.3.0) in mode="auto" (2026-07-28) and mode="legacy" (initialize handshake)
  lists the tools and calls each of them (echo, add, slow_count, fail, throw, unfinished), reads the resource
  and the template, gets the prompt and completes its arguments, asserting the exact answers;
- a C++ exception thrown by a handler (a std::exception, or an int) and a handler that returns without
  finishing its call both come back as JSON-RPC internal errors naming the cause; the host keeps serving and
  shuts down cleanly; mcpp::ToolError is an isError result, a bad argument is -32602;
- the .so exports exactly one mcpp_* symbol, mcpp_negotiate_v1, and no C++ symbol; it negotiates like
  MCPP_DEFINE_ENTRY (checked in-process with ctypes);
- against a mock host (a small C++ program compiled here from the wrapper): every call is finished exactly
  once whatever the handler does (forgets, throws, finishes and then throws, moves the call to another thread,
  uses it after finishing), no host function touches a handle after finish, and every struct handed to the
  host carries struct_size = sizeof;
- ABI 1.1 with the SDK in both eras: confirm (elicitation through Call::elicit and a continuation: accepted,
  asked twice, declined, refused by the client, no capability -> -32021 / -32602 with requiredCapabilities),
  ask_model (sampling) and list_roots, request state across the 2026-07-28 retry, cache hints;
- against the mock host, the 1.1 continuations: answered, SUSPENDED (the wrapper finishes the call), refused,
  unsupported, cancelled, exceptions and forgotten calls in continuations (a Call taken by value included),
  second rounds, a refused request_input (the Call comes back), a 1.0 host table (a clear error), request state,
  set_cache, list cache hints; built with AddressSanitizer, so a leaked or doubly freed request fails;
- the header compiles cleanly on its own with -Wall -Wextra -Werror (and -Wpedantic -Wshadow), and both examples
  in Plugins/cpp/README.md compile.

The module first runs Plugins/cpp/build.sh (g++, a couple of seconds), so the tests never run against a stale
plugin.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from abi_ctypes import negotiated_table
from conftest import MODERN_VERSION, REPO, LegacySession, modern_meta, modern_post, plugin_dir, plugin_path
from schema_check import check_response
from sdk_recorder import run as sdk_run
from test_client_sdk import run_client

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MODES = ["auto", "legacy"]
DEADLINE = 30.0  # seconds for one client conversation
CPP_DIR = REPO / "Plugins" / "cpp"
INCLUDE = REPO / "Sources" / "PluginABI" / "include"
JSONRPC_INVALID_PARAMS = -32602
JSONRPC_INTERNAL_ERROR = -32603
CXX = os.environ.get("CXX", "g++")


# ----------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------------------


def need_cxx() -> str:
    path = shutil.which(CXX)
    if path is None:
        pytest.skip(f"{CXX} is not installed")
    return path


@pytest.fixture(scope="module")
def cpp_plugin() -> Path:
    need_cxx()
    env = dict(os.environ, MCP_PLUGIN_DIR=str(plugin_dir()))
    r = subprocess.run([str(CPP_DIR / "build.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"Plugins/cpp/build.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f"build.sh should print one line, printed:\n{r.stdout}"
    path = plugin_path("cpp_reference")
    assert re.fullmatch(r"built cpp_reference  (\S+)", lines[0]) and lines[0].split()[-1] == str(path.resolve()), lines
    assert r.stderr == "", f"the build printed warnings:\n{r.stderr}"
    return path


@pytest.fixture
def host(host_factory, cpp_plugin):
    return host_factory(cpp_plugin)


def run(coro):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asyncio.run(coro)


async def converse(url: str, mode: str, body, **client_kwargs):
    with anyio.fail_after(DEADLINE):
        async with Client(url, mode=mode, **client_kwargs) as client:
            return await body(client)


def texts(result) -> list[str]:
    return [block.text for block in result.content]


async def outcome(c: Client, tool: str, args: dict):
    """("error", code, message) for a JSON-RPC error, ("result", is_error, joined text) otherwise."""
    try:
        r = await c.call_tool(tool, args)
    except MCPError as e:
        return ("error", e.code, str(e))
    return ("result", bool(r.is_error), " ".join(texts(r)))


# ----------------------------------------------------------------------------------------------------------
# Through the host, with the official SDK
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_server_info_and_tools(host, mode):
    async def body(c: Client):
        return c.server_info, c.server_capabilities, c.instructions, await c.list_tools()

    info, caps, instructions, listed = run(converse(host.url, mode, body))
    assert info is not None and (info.name, info.version) == ("cpp-reference", "1.0.0")
    assert instructions and "written in C++" in instructions
    assert caps.tools is not None and caps.resources is not None and caps.prompts is not None
    assert caps.completions is not None
    tools = {t.name: t for t in listed.tools}
    assert [t.name for t in listed.tools] == ["echo", "add", "slow_count", "fail", "throw", "unfinished", "confirm",
                                              "ask_model", "list_roots"]
    assert tools["echo"].title == "Echo" and tools["echo"].description == "Returns the text it was given."
    assert tools["echo"].input_schema == {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The text to send back"}},
        "required": ["text"],
    }
    assert tools["echo"].annotations is not None and tools["echo"].annotations.read_only_hint is True
    assert tools["echo"].output_schema is None
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["add"].output_schema == {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]}
    assert tools["slow_count"].input_schema["properties"]["seconds"]["maximum"] == 30
    assert tools["slow_count"].input_schema["properties"]["seconds"]["description"] == (
        "How long to count, in seconds (10 steps per second)")
    assert tools["fail"].input_schema["required"] == ["message"]
    assert tools["throw"].input_schema["properties"]["kind"]["enum"] == ["std", "other"]
    assert tools["unfinished"].input_schema == {"type": "object", "properties": {}}


@pytest.mark.parametrize("mode", MODES)
def test_echo_add_fail(host, mode):
    async def body(c: Client):
        return (
            await c.call_tool("echo", {"text": "hello, wörld"}),
            await c.call_tool("echo", {"text": ""}),
            await c.call_tool("add", {"a": 2, "b": 3.5}),
            await c.call_tool("add", {"a": 0.1, "b": 0.2}),
            await c.call_tool("add", {"a": -7, "b": 7}),
            await c.call_tool("add", {"a": 1.5e308, "b": 1.5e308}),
            await c.call_tool("fail", {"message": "the sky fell"}),
        )

    echo, echo_empty, add, add_float, add_zero, add_inf, fail = run(converse(host.url, mode, body))
    assert not echo.is_error and [(b.type, b.text) for b in echo.content] == [("text", "hello, wörld")]
    assert echo.structured_content is None
    assert not echo_empty.is_error and texts(echo_empty) == [""]
    assert not add.is_error and texts(add) == ["5.5"] and add.structured_content == {"sum": 5.5}
    assert texts(add_float) == ["0.30000000000000004"] and add_float.structured_content == {"sum": 0.30000000000000004}
    assert texts(add_zero) == ["0"] and add_zero.structured_content == {"sum": 0}
    # mcpp::ToolError: a result with isError = true whose text is the message
    assert add_inf.is_error is True and texts(add_inf) == ["the sum is too large to represent"]
    assert fail.is_error is True and texts(fail) == ["the sky fell"]


@pytest.mark.parametrize("mode", MODES)
def test_bad_arguments_are_reported(host, mode):
    async def body(c: Client):
        return (
            await outcome(c, "echo", {}),
            await outcome(c, "echo", {"text": 5}),
            await outcome(c, "add", {"a": "x", "b": 1}),
            await outcome(c, "slow_count", {"seconds": 31}),
            await outcome(c, "slow_count", {"seconds": 2.5}),
            await outcome(c, "no_such_tool", {}),
        )

    missing, mistyped, add_mistyped, too_long, not_integral, unknown = run(converse(host.url, mode, body))
    # Either the host rejects the arguments against the input schema, or the wrapper's Call::string() & co.
    # throw mcpp::InvalidParams (-32602): in every case the client learns about it and names the argument.
    for got, word in ((missing, "text"), (mistyped, "text"), (add_mistyped, "a"), (too_long, "seconds"),
                      (not_integral, "seconds")):
        kind, code_or_flag, message = got
        assert (kind == "error" and code_or_flag == JSONRPC_INVALID_PARAMS) or (kind == "result" and code_or_flag is True), got
        assert word in message, got
    assert unknown[0] == "error" or unknown[1] is True, unknown
    assert "no_such_tool" in unknown[2], unknown


@pytest.mark.parametrize("mode", MODES)
def test_exceptions_never_cross_the_boundary(host, mode):
    async def body(c: Client):
        first = await outcome(c, "throw", {})
        after_first = await c.call_tool("echo", {"text": "still here"})
        second = await outcome(c, "throw", {"message": "second throw, custom message"})
        other = await outcome(c, "throw", {"kind": "other"})
        unfinished = await outcome(c, "unfinished", {})
        after_all = await c.call_tool("add", {"a": 1, "b": 2})
        return first, after_first, second, other, unfinished, after_all

    first, after_first, second, other, unfinished, after_all = run(converse(host.url, mode, body))
    # The wrapper catches the exception at the C boundary and finishes the call with MCPP_OUTCOME_INTERNAL.
    assert first[:2] == ("error", JSONRPC_INTERNAL_ERROR), first
    assert "tool 'throw' threw std::runtime_error: the throw tool threw on purpose" in first[2], first
    assert second[:2] == ("error", JSONRPC_INTERNAL_ERROR), second
    assert "tool 'throw' threw std::runtime_error: second throw, custom message" in second[2], second
    assert other[:2] == ("error", JSONRPC_INTERNAL_ERROR), other
    assert "tool 'throw' threw int" in other[2], other
    # A handler that returned without finishing: the Call is finished for it, and its text is not sent.
    assert unfinished[:2] == ("error", JSONRPC_INTERNAL_ERROR), unfinished
    assert "tool 'unfinished' returned without finishing the call" in unfinished[2], unfinished
    assert "never sent" not in unfinished[2]
    assert host.proc.poll() is None, "the host died after an exception in the plugin"
    assert texts(after_first) == ["still here"]
    assert texts(after_all) == ["3"] and after_all.structured_content == {"sum": 3}

    # A fresh connection is served too: the process and the plugin instance are intact.
    again = run(converse(host.url, mode, lambda c: c.call_tool("echo", {"text": "ok"})))
    assert texts(again) == ["ok"]
    assert host.proc.poll() is None
    assert host.stop() == 0, "the host did not shut down cleanly after the exceptions"
    stderr = host.stderr_text()
    # The wrapper logged each unexpected exception (and the unfinished call) as one line in the host's log.
    for line in ("tool 'throw' threw std::runtime_error: the throw tool threw on purpose",
                 "tool 'throw' threw std::runtime_error: second throw, custom message",
                 "tool 'throw' threw int",
                 "tool 'unfinished' returned without finishing the call"):
        assert line in stderr, f"{line!r} not in the host's log:\n{stderr[-3000:]}"


@pytest.mark.parametrize("mode", MODES)
def test_resources(host, mode):
    async def body(c: Client):
        listed = await c.list_resources()
        readme = await c.read_resource("cpp-reference://readme")
        templates = await c.list_resource_templates()
        note = await c.read_resource("cpp-reference://notes/2")
        with pytest.raises(MCPError) as missing:
            await c.read_resource("cpp-reference://notes/9")
        return listed, readme, templates, note, missing.value

    listed, readme, templates, note, missing = run(converse(host.url, mode, body))
    [r] = listed.resources
    assert (r.uri, r.name, r.mime_type) == ("cpp-reference://readme", "readme", "text/plain")
    [content] = readme.contents
    assert content.uri == "cpp-reference://readme" and content.mime_type == "text/plain"
    assert content.text.startswith("This is the C++ reference plugin of mcp-supervisor")
    assert r.size == len(content.text.encode())
    assert [t.uri_template for t in templates.resource_templates] == ["cpp-reference://notes/{id}"]
    [n] = note.contents
    assert (n.uri, n.text, n.mime_type) == ("cpp-reference://notes/2", "Note 2", "text/plain")
    # mcpp::NotFound; 2026-07-28 answers a missing resource with -32602, 2025-11-25 with -32002
    assert missing.code == (-32602 if mode == "auto" else -32002)


@pytest.mark.parametrize("mode", MODES)
def test_prompts_and_completion(host, mode):
    prompt_ref = types.PromptReference(type="ref/prompt", name="greet")
    notes_ref = types.ResourceTemplateReference(type="ref/resource", uri="cpp-reference://notes/{id}")

    async def body(c: Client):
        return (
            await c.list_prompts(),
            await c.get_prompt("greet", {"name": "Ada", "style": "pirate"}),
            await c.get_prompt("greet", {"name": "Grace"}),
            await c.complete(prompt_ref, {"name": "style", "value": "p"}),
            await c.complete(prompt_ref, {"name": "name", "value": "A"}),
            await c.complete(notes_ref, {"name": "id", "value": ""}),
            await c.complete(notes_ref, {"name": "id", "value": "2"}),
        )

    prompts, greet, default, style, names, ids, one = run(converse(host.url, mode, body))
    [p] = prompts.prompts
    assert (p.name, p.title) == ("greet", "Greet someone")
    assert [(a.name, bool(a.required)) for a in p.arguments] == [("name", True), ("style", False)]
    assert greet.description == "A greeting"
    assert [(m.role, m.content.text) for m in greet.messages] == [("user", "Please greet Ada in a pirate way.")]
    assert default.messages[0].content.text == "Please greet Grace in a friendly way."
    assert style.completion.values == ["pirate", "poetic"] and style.completion.total == 2
    assert names.completion.values == []
    assert ids.completion.values == ["1", "2", "3"] and ids.completion.total == 3
    assert one.completion.values == ["2"]


@pytest.mark.parametrize("mode", MODES)
def test_progress_and_log_messages(host, mode):
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list = []

    async def on_log(params):
        logs.append(params)

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async def body(c: Client):
        if mode == "legacy":
            await c.set_logging_level("info")
        return await c.call_tool("slow_count", {"seconds": 1}, progress_callback=on_progress)

    extra = {"log_level": "info"} if mode == "auto" else {}
    result = run(converse(host.url, mode, body, logging_callback=on_log, **extra))
    assert not result.is_error and texts(result) == ["counted to 10"]
    assert [p for p, _, _ in progress] == list(range(1, 11)), progress
    assert all(total == 10 for _, total, _ in progress)
    assert [m for _, _, m in progress] == [f"step {i} of 10" for i in range(1, 11)]
    assert [(e.level, e.logger, e.data) for e in logs] == [("info", "cpp-reference", "counting 10 steps of 100 ms")]


@pytest.mark.parametrize("mode", MODES)
def test_cancel_in_flight_call(host_factory, cpp_plugin, mode):
    """Cancelling a running slow_count stops it in the plugin (Call::is_cancelled).

    With --max-concurrency 1 the plugin has one handler thread, which slow_count (30 s) holds until it sees the
    cancellation; a second slow_count (0 s, not NONBLOCKING, so it needs that thread) can only run once the
    thread is free, so its quick success shows the plugin stopped counting.
    """
    host = host_factory(cpp_plugin, "--max-concurrency", "1")
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

    after, elapsed, at_cancel = run(converse(host.url, mode, body))
    assert not after.is_error and texts(after) == ["counted to 0"]
    left = (300 - at_cancel) / 10
    assert left > 10, f"the cancel came late in the count ({at_cancel} of 300): the test proves nothing"
    assert elapsed < left, f"the second call waited {elapsed:.2f} s: the cancelled count ran on ({left:.1f} s left)"


@pytest.mark.parametrize("mode", MODES)
def test_concurrent_calls(host, mode):
    """The plugin is declared CONCURRENT; parallel calls all come back right."""
    words = [f"w{i}" for i in range(24)]

    async def body(c: Client):
        return await asyncio.gather(*(c.call_tool("echo", {"text": w}) for w in words))

    results = run(converse(host.url, mode, body))
    assert [texts(r) for r in results] == [[w] for w in words]


# ----------------------------------------------------------------------------------------------------------
# ABI 1.1 through the host: input requests as continuations (Call::elicit/sample/list_roots), request state,
# cache hints. The SDK client answers; every exchange is validated against its revision's schema (run_client).
# ----------------------------------------------------------------------------------------------------------


def accept_confirm(asked: list):
    async def callback(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"confirm": True})
    return callback


@pytest.mark.parametrize("mode", MODES)
def test_elicitation_answer_reaches_the_continuation(host, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "deploy"})

    result, seen = sdk_run(run_client(host.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert not result.is_error, texts(result)
    [params] = asked
    assert params.message == "Really do this: deploy?"
    assert params.requested_schema["properties"]["confirm"]["type"] == "boolean"
    if mode == "auto":
        # The first attempt was suspended (the wrapper finished it, the host sent input_required); the retry ran
        # the handler again, the same request was answered, and Call::request_state() returned the bytes.
        assert texts(result) == ["Confirmed: deploy (after a retry carrying ticket-1)"]
        assert seen["tools/call"] == 2
    else:
        assert texts(result) == ["Confirmed: deploy"]
        assert seen["tools/call"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_continuation_asks_again(host, mode):
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
        # 2026-07-28: the refusal ends the client's retry loop; the plugin only saw the suspended attempt.
        assert isinstance(result, MCPError) and "no humans here" in str(result)
    else:
        # 2025-11-25: the error reaches the continuation; Answer::require() throws mcpp::ToolError.
        assert result.is_error is True
        assert texts(result) == ["the client refused the elicitation request: no humans here"]


@pytest.mark.parametrize("mode", MODES)
def test_no_elicitation_capability(host, mode):
    async def body(c: Client):
        with pytest.raises(MCPError) as missing:
            await c.call_tool("confirm", {"action": "deploy"})
        return missing.value

    error, _ = sdk_run(run_client(host.url, mode, body))
    # Answer::require() threw mcpp::NeedsCapability -> MCPP_OUTCOME_NEEDS_CAPABILITY
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
    assert [m.content.text for m in params.messages] == ["What is 6 × 7? \"quoted\""]  # json_quote
    assert texts(listed) == ["file:///srv/a", "file:///srv/b", "2 roots"]


def test_cache_hints(host):
    """Definition::list_cache (lists public for a minute) and Call::set_cache (the readme public for five); a
    note keeps the default; none in the legacy era."""
    for method in ["tools/list", "resources/list", "resources/templates/list", "prompts/list"]:
        result = check_response(modern_post(host.port, method, {}).json(), MODERN_VERSION, method)["result"]
        assert (result["ttlMs"], result["cacheScope"]) == (60000, "public"), method
    readme = modern_post(host.port, "resources/read", {"uri": "cpp-reference://readme"})
    result = check_response(readme.json(), MODERN_VERSION, "resources/read")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (300000, "public")
    note = modern_post(host.port, "resources/read", {"uri": "cpp-reference://notes/1"})
    result = check_response(note.json(), MODERN_VERSION, "resources/read")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")
    s = LegacySession(host.port, "2025-11-25")
    s.initialize()
    legacy = s.request("resources/read", {"uri": "cpp-reference://readme"}).final()
    check_response(legacy, "2025-11-25", "resources/read")
    assert "ttlMs" not in legacy["result"] and "cacheScope" not in legacy["result"]
    s.delete()


# ----------------------------------------------------------------------------------------------------------
# The shared object itself
# ----------------------------------------------------------------------------------------------------------


def test_exports_only_the_entry_point(cpp_plugin):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    r = subprocess.run([nm, "-D", "--defined-only", str(cpp_plugin)], capture_output=True, text=True, check=True)
    symbols = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert [s for s in symbols if s.startswith("mcpp_")] == ["mcpp_negotiate_v1"], r.stdout
    # The wrapper's thunks, the plugin's functions and the std:: template instances all stay private.
    leaked = [s for s in symbols if s.startswith("_Z")]
    assert leaked == [], f"C++ symbols exported from the plugin: {leaked[:10]}"
    assert re.search(r"^\S+ T mcpp_negotiate_v1$", r.stdout, re.M), r.stdout


def test_negotiation_in_process(cpp_plugin):
    """mcpp_negotiate_v1 behaves like MCPP_DEFINE_ENTRY; the table is CONCURRENT with the declared features."""
    lib, t = negotiated_table(cpp_plugin, minor=1)  # built against the 1.1 header
    assert t.threading == 1 and t.max_concurrency == 0  # MCPP_THREADING_CONCURRENT, the host's default
    assert (t.name.text(), t.version.text(), t.title.text()) == ("cpp-reference", "1.0.0", "Reference plugin (C++)")
    assert "written in C++" in t.instructions.text()
    assert t.create and t.destroy and t.describe and t.call_tool and t.health
    assert t.read_resource and t.get_prompt and t.complete
    assert not (t.cancel or t.diagnose or t.get_extension)


# ----------------------------------------------------------------------------------------------------------
# The wrapper against a mock host: finish exactly once, never a host call on a finished handle, struct_size
# ----------------------------------------------------------------------------------------------------------

MOCK_HOST = r"""
#include "mcp_plugin.hpp"

#include <cstddef>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct mcpp_call { int finishes = 0; int outcome = -1; std::string msg, text; bool used_after_finish = false; };

static std::mutex mu;
static std::thread later_thread;
static std::vector<std::string> logs;
static std::vector<uint32_t> sizes; // struct_size of every declaration, then the expected sizeof

static bool live(mcpp_call *c) { std::lock_guard<std::mutex> g(mu); if (c->finishes) c->used_after_finish = true; return !c->finishes; }
static void h_log(void *, int32_t, const char *m, size_t n) { std::lock_guard<std::mutex> g(mu); logs.emplace_back(m, n); }
static mcpp_status h_arg_string(mcpp_call *c, const char *k, size_t kn, const char **out, size_t *n) {
    if (!live(c)) return MCPP_E_FINISHED;
    std::string key(k, kn);
    if (key == "text") { *out = "hi"; *n = 2; return MCPP_OK; }
    return key == "number" ? MCPP_E_TYPE : MCPP_E_NOT_FOUND;
}
static mcpp_status h_arg_int(mcpp_call *c, const char *, size_t, int64_t *) { return live(c) ? MCPP_E_TYPE : MCPP_E_FINISHED; }
static mcpp_status h_add_text(mcpp_call *c, const char *t, size_t n) {
    if (!live(c)) return MCPP_E_FINISHED;
    c->text.append(t, n);
    return n > 10 ? MCPP_E_TOO_LARGE : MCPP_OK; // one block of more than 10 bytes is "too large"
}
static mcpp_status h_set_description(mcpp_call *c, const char *, size_t) { return live(c) ? MCPP_OK : MCPP_E_FINISHED; }
static int32_t h_is_cancelled(mcpp_call *c) { return live(c) ? 0 : 1; }
static void h_finish(mcpp_call *c, int32_t outcome, const char *m, size_t n) {
    std::lock_guard<std::mutex> g(mu);
    if (++c->finishes == 1) { c->outcome = outcome; c->msg.assign(m ? m : "", n); }
}
// ABI 1.1. request_input queues the request; main() answers it after the handler returned (never inside
// request_input), with the next status of the tool's script; a key "bad" is refused (MCPP_E_INVALID).
struct Request { mcpp_call *call; int32_t kind; std::string key, params; mcpp_input_callback cb; void *user; };
static std::deque<Request> pending;
static std::vector<std::string> requests; // "kind key params" of every accepted request
static mcpp_status h_request_input(mcpp_call *c, int32_t kind, const char *k, size_t kn, const char *p, size_t pn,
                                   mcpp_input_callback cb, void *user) {
    if (!live(c)) return MCPP_E_FINISHED;
    std::string key(k, kn);
    if (key == "bad") return MCPP_E_INVALID;
    pending.push_back(Request{c, kind, key, std::string(p, pn), cb, user});
    requests.push_back(std::to_string(kind) + " " + key + " " + std::string(p, pn));
    return MCPP_OK;
}
static mcpp_status h_set_request_state(mcpp_call *c, const uint8_t *d, size_t n) {
    if (!live(c)) return MCPP_E_FINISHED;
    c->text += "[state:" + std::string(reinterpret_cast<const char *>(d), n) + "]";
    return MCPP_OK;
}
static mcpp_status h_get_request_state(mcpp_call *c, const uint8_t **out, size_t *n) {
    if (!live(c)) return MCPP_E_FINISHED;
    static const char prior[] = "prior";
    *out = reinterpret_cast<const uint8_t *>(prior); *n = 5;
    return MCPP_OK;
}
static mcpp_status h_set_cache(mcpp_call *c, int64_t ttl, int32_t scope) {
    if (!live(c)) return MCPP_E_FINISHED;
    c->text += "[cache:" + std::to_string(ttl) + "/" + std::to_string(scope) + "]";
    return MCPP_OK;
}
// A canned json_get: the values the test's answers hold.
static mcpp_status h_json_get(mcpp_call *c, const char *j, size_t jn, const char *p, size_t pn, int32_t *type,
                              const char **out, size_t *n) {
    if (!live(c)) return MCPP_E_FINISHED;
    static std::map<std::pair<std::string, std::string>, std::pair<int32_t, std::string>> canned = {
        {{"{\"action\":\"accept\",\"content\":{\"confirm\":true}}", "/action"}, {MCPP_JSON_STRING, "accept"}},
        {{"{\"action\":\"accept\",\"content\":{\"confirm\":true}}", "/content/confirm"}, {MCPP_JSON_BOOL, "true"}},
        {{"{\"code\":-1,\"message\":\"nope\"}", "/message"}, {MCPP_JSON_STRING, "nope"}},
        {{"{\"model\":\"m\"}", "/model"}, {MCPP_JSON_STRING, "m"}},
        {{"{\"roots\":[]}", "/roots"}, {MCPP_JSON_ARRAY, "[]"}},
    };
    auto it = canned.find({std::string(j, jn), std::string(p, pn)});
    if (it == canned.end()) return MCPP_E_NOT_FOUND;
    *type = it->second.first; *out = it->second.second.data(); *n = it->second.second.size();
    return MCPP_OK;
}
static std::map<std::string, std::vector<std::pair<int32_t, std::string>>> scripts = {
    {"ask_ok", {{MCPP_INPUT_ANSWERED, "{\"action\":\"accept\",\"content\":{\"confirm\":true}}"}}},
    {"old:ask_ok", {}},
    {"ask_suspended", {{MCPP_INPUT_SUSPENDED, ""}}},
    {"ask_refused", {{MCPP_INPUT_REFUSED, "{\"code\":-1,\"message\":\"nope\"}"}}},
    {"ask_unsupported", {{MCPP_INPUT_UNSUPPORTED, ""}}},
    {"ask_cancelled", {{MCPP_INPUT_CANCELLED, ""}}},
    {"ask_throws", {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_tool_error", {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_forgets", {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_forgets_ref", {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_twice", {{MCPP_INPUT_ANSWERED, "{\"model\":\"m\"}"}, {MCPP_INPUT_ANSWERED, "{\"roots\":[]}"}}},
    {"ask_twice_suspended", {{MCPP_INPUT_ANSWERED, "{\"model\":\"m\"}"}, {MCPP_INPUT_SUSPENDED, ""}}},
    {"ask_then_use", {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"ask_to_thread", {{MCPP_INPUT_ANSWERED, "{}"}}},
    {"prompt:ask", {{MCPP_INPUT_ANSWERED, "{}"}}},
};
static void w_write(void *ctx, const char *b, size_t n) { static_cast<std::string *>(ctx)->append(b, n); }
static mcpp_status r_add_tool(void *, const mcpp_tool *t) { sizes.push_back(t->struct_size); sizes.push_back(sizeof(mcpp_tool)); return MCPP_OK; }
static mcpp_status r_add_prompt(void *, const mcpp_prompt *p) {
    sizes.push_back(p->struct_size); sizes.push_back(sizeof(mcpp_prompt));
    for (uint32_t i = 0; i < p->arg_count; i++) { sizes.push_back(p->args[i].struct_size); sizes.push_back(sizeof(mcpp_prompt_arg)); }
    return MCPP_OK;
}

static std::vector<std::string> list_caches;
static mcpp_status r_set_list_cache(void *, uint32_t lists, int64_t ttl, int32_t scope) {
    list_caches.push_back(std::to_string(lists) + "/" + std::to_string(ttl) + "/" + std::to_string(scope));
    return MCPP_OK;
}

static bool fail_create = false;
static void finish_with_answer(mcpp::Call c, mcpp::Answer a) {
    a.require();
    c.add_text(a.string(c, "/action").value_or("-"));
    if (a.boolean(c, "/content/confirm").value_or(false)) c.add_text("+yes");
    c.ok();
}

static const mcpp::Plugin plugin{
    mcpp::Definition("mock", "0.1")
        .tool(mcpp::Tool("ok"), [](mcpp::Call &c) { c.add_text(c.string("text")); c.ok(); })
        .tool(mcpp::Tool("forget"), [](mcpp::Call &c) { c.add_text("x"); })
        .tool(mcpp::Tool("throw_std"), [](mcpp::Call &) { throw std::out_of_range("boom"); })
        .tool(mcpp::Tool("throw_int"), [](mcpp::Call &) { throw 7; })
        .tool(mcpp::Tool("throw_after_ok"), [](mcpp::Call &c) { c.ok(); throw std::runtime_error("late"); })
        .tool(mcpp::Tool("use_after_ok"), [](mcpp::Call &c) { c.ok(); c.add_text("x"); })
        .tool(mcpp::Tool("finish_twice"), [](mcpp::Call &c) { c.tool_error("first"); c.ok(); c.finish(mcpp::Outcome::internal, "third"); })
        .tool(mcpp::Tool("tool_error"), [](mcpp::Call &) { throw mcpp::ToolError("visible"); })
        .tool(mcpp::Tool("missing_arg"), [](mcpp::Call &c) { c.string("absent"); c.ok(); })
        .tool(mcpp::Tool("mistyped_arg"), [](mcpp::Call &c) { c.string("number"); c.ok(); })
        .tool(mcpp::Tool("mistyped_int"), [](mcpp::Call &c) { c.integer("n"); c.ok(); })
        .tool(mcpp::Tool("optional_arg"), [](mcpp::Call &c) { c.add_text(c.optional_string("absent").value_or("dflt")); c.ok(); })
        .tool(mcpp::Tool("too_large"), [](mcpp::Call &c) { c.add_text("0123456789abc"); c.ok(); })
        .tool(mcpp::Tool("later"), [](mcpp::Call &c) {
            later_thread = std::thread([owned = std::move(c)]() mutable { owned.add_text("late"); owned.ok(); });
        })
        .tool(mcpp::Tool("later_forgotten"), [](mcpp::Call &c) {
            later_thread = std::thread([owned = std::move(c)]() mutable { owned.add_text("x"); });
        })
        .tool(mcpp::Tool("moved_then_throw"), [](mcpp::Call &c) {
            later_thread = std::thread([owned = std::move(c)]() mutable { owned.ok(); });
            throw std::runtime_error("after the move");
        })
        .tool(mcpp::Tool("ask_ok"), [](mcpp::Call &c) { c.elicit("Sure?", "", finish_with_answer); })
        .tool(mcpp::Tool("ask_suspended"), [](mcpp::Call &c) { c.elicit("Sure?", "", finish_with_answer); })
        .tool(mcpp::Tool("ask_refused"), [](mcpp::Call &c) { c.elicit("Sure?", "", finish_with_answer); })
        .tool(mcpp::Tool("ask_unsupported"), [](mcpp::Call &c) { c.elicit("Sure?", "", finish_with_answer); })
        .tool(mcpp::Tool("ask_cancelled"), [](mcpp::Call &c) { c.elicit("Sure?", "", finish_with_answer); })
        .tool(mcpp::Tool("ask_throws"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call d, mcpp::Answer) { d.add_text("x"); throw std::runtime_error("late boom"); });
        })
        .tool(mcpp::Tool("ask_tool_error"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call, mcpp::Answer) { throw mcpp::ToolError("declined"); });
        })
        .tool(mcpp::Tool("ask_forgets"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call d, mcpp::Answer) { d.add_text("y"); });
        })
        .tool(mcpp::Tool("ask_forgets_ref"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call &&d, const mcpp::Answer &) { d.add_text("z"); });
        })
        .tool(mcpp::Tool("ask_twice"), [](mcpp::Call &c) {
            c.sample("q \"1\"", 7, [](mcpp::Call d, mcpp::Answer a) {
                d.add_text(a.require().string(d, "/model").value_or("?"));
                d.list_roots([](mcpp::Call e, mcpp::Answer b) { e.add_text(b.require().get(e, "/roots")->text); e.ok(); });
            });
        })
        .tool(mcpp::Tool("ask_twice_suspended"), [](mcpp::Call &c) {
            c.sample("q", 7, [](mcpp::Call d, mcpp::Answer) {
                d.add_text("round 2");
                d.list_roots([](mcpp::Call e, mcpp::Answer) { e.add_text("never"); e.ok(); });
            });
        })
        .tool(mcpp::Tool("ask_then_use"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call d, mcpp::Answer) { d.ok(); });
            c.add_text("after the move");
        })
        .tool(mcpp::Tool("ask_to_thread"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call d, mcpp::Answer) {
                later_thread = std::thread([owned = std::move(d)]() mutable { owned.add_text("threaded"); owned.ok(); });
            });
        })
        .tool(mcpp::Tool("ask_rejected"), [](mcpp::Call &c) {
            c.ask(mcpp::Input::elicitation, "bad", "{}", [](mcpp::Call d, mcpp::Answer) { d.add_text("never"); d.ok(); });
        })
        .tool(mcpp::Tool("state"), [](mcpp::Call &c) {
            c.set_request_state("abc");
            c.add_text(std::string(c.request_state().value_or("none")));
            c.set_cache(std::chrono::seconds(5), mcpp::CacheScope::public_);
            c.ok();
        })
        .prompt(mcpp::Prompt("p").arg("a", "first", true).arg("b", "second"),
                [](mcpp::Call &c) { c.set_description("d"); throw mcpp::ToolError("not a tool"); })
        .prompt(mcpp::Prompt("ask"), [](mcpp::Call &c) {
            c.elicit("Sure?", "{}", [](mcpp::Call, mcpp::Answer) { throw mcpp::ToolError("not a tool either"); });
        })
        .list_cache(mcpp::List::tools | mcpp::List::prompts, std::chrono::minutes(1), mcpp::CacheScope::public_)
        .on_create([](mcpp::Host, std::string_view config) {
            if (fail_create) throw std::invalid_argument("bad config " + std::string(config));
        })};
MCPP_PLUGIN(plugin);

int main(int argc, char **argv) {
    mcpp_negotiation n{};
    n.struct_size = sizeof n; n.host_abi_major = 1; n.host_abi_minor = 0;
    mcpp_status old_host = mcpp_negotiate_v1(&n); // a host that offers only 1.0 is told which minor is needed
    std::printf("negotiate_1_0 %d %u\n", old_host, n.plugin_abi_minor);
    n = mcpp_negotiation{};
    n.struct_size = sizeof n; n.host_abi_major = 1; n.host_abi_minor = MCPP_ABI_MINOR;
    if (mcpp_negotiate_v1(&n) != MCPP_OK) return 2;
    const mcpp_plugin *t = n.plugin;
    std::printf("table %u %u\n", t->struct_size, t->threading);

    mcpp_host host{};
    host.struct_size = sizeof host; host.abi_minor = MCPP_ABI_MINOR;
    host.log = h_log; host.arg_string = h_arg_string; host.arg_int = h_arg_int; host.add_text = h_add_text;
    host.set_description = h_set_description; host.is_cancelled = h_is_cancelled; host.finish = h_finish;
    mcpp_host host_1_0 = host; // an ABI 1.0 table: ends before request_input
    host_1_0.struct_size = offsetof(mcpp_host, request_input); host_1_0.abi_minor = 0;
    host.request_input = h_request_input; host.set_request_state = h_set_request_state;
    host.get_request_state = h_get_request_state; host.set_cache = h_set_cache; host.json_get = h_json_get;
    std::string err;
    mcpp_writer w{}; w.struct_size = sizeof w; w.ctx = &err; w.write = w_write;
    void *inst = nullptr;

    mcpp_host small = host; small.struct_size = 40;
    mcpp_status st = t->create(&small, "{}", 2, &w, &inst); // (not inside printf: argument order is unspecified)
    std::printf("create_small %d [%s]\n", st, err.c_str());
    err.clear();
    fail_create = true;
    st = t->create(&host, "{\"x\":1}", 7, &w, &inst);
    std::printf("create_throws %d [%s]\n", st, err.c_str());
    err.clear();
    fail_create = false;
    if (t->create(&host, "{}", 2, &w, &inst) != MCPP_OK) return 3;

    mcpp_registry reg{}; reg.struct_size = sizeof reg; reg.add_tool = r_add_tool; reg.add_prompt = r_add_prompt;
    reg.set_list_cache = r_set_list_cache;
    std::printf("describe %d", t->describe(inst, &reg));
    for (size_t i = 0; i < sizes.size(); i += 2) std::printf(" %s", sizes[i] == sizes[i + 1] ? "ok" : "WRONG");
    std::printf("\n");
    for (const std::string &l : list_caches) std::printf("list_cache %s\n", l.c_str());
    mcpp_registry old_reg = reg; old_reg.struct_size = offsetof(mcpp_registry, set_list_cache);
    sizes.clear(); list_caches.clear();
    std::printf("describe_old %d %zu\n", t->describe(inst, &old_reg), list_caches.size());
    void *old_inst = nullptr;
    if (t->create(&host_1_0, "{}", 2, &w, &old_inst) != MCPP_OK) return 4;
    std::printf("old_host_size %u\n", host_1_0.struct_size);

    std::vector<std::unique_ptr<mcpp_call>> calls; // kept to the end: a late host call on one is still counted
    for (int i = 1; i < argc; i++) {
        std::string name = argv[i];
        calls.emplace_back(new mcpp_call);
        mcpp_call *call = calls.back().get();
        if (name == "prompt:p") t->get_prompt(inst, call, "p", 1);
        else if (name == "prompt:ask") t->get_prompt(inst, call, "ask", 3);
        else if (name.rfind("old:", 0) == 0) t->call_tool(old_inst, call, name.data() + 4, name.size() - 4);
        else t->call_tool(inst, call, name.data(), name.size());
        // The handler returned: answer its requests one by one, each after the previous callback returned.
        size_t step = 0;
        while (!pending.empty()) {
            Request r = pending.front();
            pending.pop_front();
            auto &script = scripts[name];
            if (r.call != call || step >= script.size()) { std::printf("unexpected request of %s\n", name.c_str()); return 5; }
            const std::string &answer = script[step].second;
            r.cb(r.user, r.call, script[step].first, answer.data(), answer.size());
            step++;
        }
        if (later_thread.joinable()) later_thread.join();
        std::printf("%s finishes=%d outcome=%d used_after_finish=%d msg=[%s] text=[%s]\n", name.c_str(), call->finishes,
                    call->outcome, call->used_after_finish ? 1 : 0, call->msg.c_str(), call->text.c_str());
        // the handle is never freed: a late (wrong) host call on it would still be counted, not crash
    }
    t->destroy(inst);
    t->destroy(old_inst);
    for (const std::string &r : requests) std::printf("request [%s]\n", r.c_str());
    for (const std::string &l : logs) std::printf("log [%s]\n", l.c_str());
    return 0;
}
"""

MOCK_CALLS = {
    "ok": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[hi]",
    "forget": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'forget' returned without finishing the call] text=[x]",
    "throw_std": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'throw_std' threw std::out_of_range: boom] text=[]",
    "throw_int": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'throw_int' threw int] text=[]",
    "throw_after_ok": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[]",
    "use_after_ok": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[]",
    "finish_twice": "finishes=1 outcome=1 used_after_finish=0 msg=[first] text=[]",
    "tool_error": "finishes=1 outcome=1 used_after_finish=0 msg=[visible] text=[]",
    "missing_arg": "finishes=1 outcome=3 used_after_finish=0 msg=[missing required argument 'absent'] text=[]",
    "mistyped_arg": "finishes=1 outcome=3 used_after_finish=0 msg=[argument 'number' must be a string] text=[]",
    "mistyped_int": "finishes=1 outcome=3 used_after_finish=0 msg=[argument 'n' must be an integer] text=[]",
    "optional_arg": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[dflt]",
    "too_large": "finishes=1 outcome=4 used_after_finish=0 msg=[the result is too large] text=[0123456789abc]",
    "later": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[late]",
    "later_forgotten": "finishes=1 outcome=4 used_after_finish=0 msg=[the plugin did not finish the call] text=[x]",
    "moved_then_throw": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[]",
    "nope": "finishes=1 outcome=2 used_after_finish=0 msg=[unknown tool 'nope'] text=[]",
    # MCPP_OUTCOME_TOOL_ERROR is for tools/call only: from a prompt handler it becomes an internal error
    "prompt:p": "finishes=1 outcome=4 used_after_finish=0 msg=[not a tool] text=[]",
    # ABI 1.1 continuations. The answer is read through json_get on the live call.
    "ask_ok": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[accept+yes]",
    # On a host whose table ends before request_input (1.0), the call fails naming the missing function.
    "old:ask_ok": "finishes=1 outcome=4 used_after_finish=0 msg=[the host does not implement mcpp_host.request_input "
                  "(ABI 1.1; its table has struct_size 208, abi_minor 0)] text=[]",
    # SUSPENDED never reaches the continuation: the wrapper finishes the call (the host sends input_required).
    "ask_suspended": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[]",
    # Answer::require(): refused -> tool error, unsupported -> MCPP_OUTCOME_NEEDS_CAPABILITY, cancelled -> internal
    "ask_refused": "finishes=1 outcome=1 used_after_finish=0 msg=[the client refused the elicitation request: nope] text=[]",
    "ask_unsupported": "finishes=1 outcome=5 used_after_finish=0 msg=[this tool needs the client's elicitation capability] text=[]",
    "ask_cancelled": "finishes=1 outcome=4 used_after_finish=0 msg=[cancelled while waiting for the client] text=[]",
    # The continuation took the Call by value and threw: the Call died while the exception unwound, yet the call
    # ends with the exception's outcome and message (the handle went back to the boundary).
    "ask_throws": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'ask_throws' (continuation) threw "
                  "std::runtime_error: late boom] text=[x]",
    "ask_tool_error": "finishes=1 outcome=1 used_after_finish=0 msg=[declined] text=[]",
    "ask_forgets": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'ask_forgets' (continuation) returned without "
                   "finishing the call] text=[y]",
    "ask_forgets_ref": "finishes=1 outcome=4 used_after_finish=0 msg=[tool 'ask_forgets_ref' (continuation) returned "
                       "without finishing the call] text=[z]",
    "ask_twice": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[m[]]",
    "ask_twice_suspended": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[round 2]",
    "ask_then_use": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[]",
    "ask_to_thread": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[threaded]",
    # request_input refused (MCPP_E_INVALID): no callback, the Call came back and ask() threw.
    "ask_rejected": "finishes=1 outcome=4 used_after_finish=0 msg=[could not ask the client (request_input returned "
                    "status 3)] text=[]",
    "state": "finishes=1 outcome=0 used_after_finish=0 msg=[] text=[[state:abc]prior[cache:5000/1]]",
    "prompt:ask": "finishes=1 outcome=4 used_after_finish=0 msg=[not a tool either] text=[]",
}

# The requests the calls above made, in order: kind, automatic key (numbered per call), params.
MOCK_REQUESTS = [
    '0 elicit-1 {"message":"Sure?","requestedSchema":{"type":"object","properties":{}}}',  # ask_ok
    '0 elicit-1 {"message":"Sure?","requestedSchema":{"type":"object","properties":{}}}',  # ask_suspended
    '0 elicit-1 {"message":"Sure?","requestedSchema":{"type":"object","properties":{}}}',  # ask_refused
    '0 elicit-1 {"message":"Sure?","requestedSchema":{"type":"object","properties":{}}}',  # ask_unsupported
    '0 elicit-1 {"message":"Sure?","requestedSchema":{"type":"object","properties":{}}}',  # ask_cancelled
    *['0 elicit-1 {"message":"Sure?","requestedSchema":{}}'] * 4,  # ask_throws .. ask_forgets_ref
    '1 sample-1 {"messages":[{"role":"user","content":{"type":"text","text":"q \\"1\\""}}],"maxTokens":7}',
    '2 roots-2 ',
    '1 sample-1 {"messages":[{"role":"user","content":{"type":"text","text":"q"}}],"maxTokens":7}',
    '2 roots-2 ',
    *['0 elicit-1 {"message":"Sure?","requestedSchema":{}}'] * 2,  # ask_then_use, ask_to_thread
    '0 elicit-1 {"message":"Sure?","requestedSchema":{}}',  # prompt:ask
]


def test_wrapper_against_a_mock_host(tmp_path):
    cxx = need_cxx()
    src = tmp_path / "mock_host.cpp"
    src.write_text(MOCK_HOST)
    exe = tmp_path / "mock_host"
    # AddressSanitizer (with LeakSanitizer at exit): a continuation object leaked, freed twice or used after its
    # callback fails the run. (-O0: the sanitized build then takes about as long as the plain -O1 one did.)
    r = subprocess.run([cxx, "-std=c++17", "-O0", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-pthread",
                        "-fsanitize=address", "-I", str(INCLUDE), "-o", str(exe), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"the mock host did not compile:\n{r.stderr}"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    r = subprocess.run([str(exe), *MOCK_CALLS], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, f"mock host exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    assert "Sanitizer" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    # built against the 1.1 header: a 1.0 host gets MCPP_E_VERSION (2) and the minor the plugin needs
    assert lines.pop(0) == "negotiate_1_0 2 1"
    assert lines[0] == "table 168 0"  # sizeof(mcpp_plugin); SERIAL unless .concurrent()
    # create() refuses a host table smaller than ABI 1.0 (MCPP_E_VERSION), and turns an exception from on_create
    # into MCPP_E_FAILED with the reason written to the error writer.
    assert lines[1] == "create_small 2 [the host's function table is smaller than ABI 1.0 (struct_size 40)]"
    assert lines[2] == 'create_throws 1 [create failed: bad config {"x":1}]'
    # 31 tools, one prompt with two arguments and one without, each with struct_size == sizeof
    assert lines[3] == "describe 0" + " ok" * (31 + 1 + 2 + 1), lines[3]
    # Definition::list_cache -> mcpp_registry.set_list_cache (tools | prompts, 60000 ms, public); a registry that
    # ends before set_list_cache (1.0) still describes, without the hint.
    assert lines[4:8] == ["list_cache 5/60000/1", "describe_old 0 0", "old_host_size 208",
                          lines[7]] and lines[7].split(" ", 1)[0] == "ok", lines[4:8]
    calls = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines[7:7 + len(MOCK_CALLS)]}
    assert calls == MOCK_CALLS
    rest = lines[7 + len(MOCK_CALLS):]
    assert [line[len("request ["):-1] for line in rest if line.startswith("request [")] == MOCK_REQUESTS
    logs = [line for line in rest if line.startswith("log [")]
    assert "log [the host's registry has no set_list_cache (ABI 1.1): list cache hints dropped]" in logs
    assert "log [tool 'ask_throws' (continuation) threw std::runtime_error: late boom]" in logs
    assert "log [tool 'ask_forgets' (continuation) returned without finishing the call]" in logs
    assert ("log [tool 'ask_then_use' threw std::logic_error: mcpp::Call used after it was finished or moved from]"
            in logs)
    assert "log [tool 'throw_std' threw std::out_of_range: boom]" in logs
    assert "log [tool 'throw_after_ok' threw std::runtime_error: late]" in logs
    assert "log [tool 'throw_after_ok': the exception came after the call was finished or handed on]" in logs
    assert "log [tool 'use_after_ok' threw std::logic_error: mcpp::Call used after it was finished or moved from]" in logs
    assert "log [tool 'forget' returned without finishing the call]" in logs
    # Failures the handler chose (ToolError, InvalidParams, NotFound) are outcomes, not log lines.
    assert not any("visible" in line or "absent" in line or "nope" in line for line in logs), logs


# ----------------------------------------------------------------------------------------------------------
# The header and the author's guide
# ----------------------------------------------------------------------------------------------------------


def test_header_compiles_cleanly_alone(tmp_path):
    cxx = need_cxx()
    src = tmp_path / "only_header.cpp"
    src.write_text('#include "mcp_plugin.hpp"\n#include "mcp_plugin.hpp"\n')  # include guard too
    r = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow",
                        "-fvisibility=hidden", "-I", str(INCLUDE), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_readme_example_compiles(tmp_path):
    cxx = need_cxx()
    readme = (CPP_DIR / "README.md").read_text()
    blocks = re.findall(r"```cpp\n(.*?)```", readme, re.S)
    assert len(blocks) == 2, "Plugins/cpp/README.md should have two ```cpp examples (the basics, ABI 1.1)"
    for i, example in enumerate(blocks):
        assert len(example.strip().splitlines()) <= 25, "the README examples should stay short"
        src = tmp_path / f"example{i}.cpp"
        src.write_text(example)
        so = tmp_path / f"libexample{i}.so"
        r = subprocess.run([cxx, "-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
                            "-I", str(INCLUDE), "-o", str(so), str(src)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        nm = shutil.which("nm")
        if nm:
            out = subprocess.run([nm, "-D", "--defined-only", str(so)], capture_output=True, text=True, check=True).stdout
            assert [s for s in (line.split()[-1] for line in out.splitlines() if line.strip())
                    if s.startswith("mcpp_")] == ["mcpp_negotiate_v1"]
