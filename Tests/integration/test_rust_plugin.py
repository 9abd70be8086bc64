"""The Rust plugin kit (Plugins/rust): the reference plugin librust_reference.so, served by mcp-plugin-host.

- the official Python SDK (`mcp` 2.3.0) in mode="auto" (2026-07-28) and mode="legacy" (initialize handshake)
  lists the tools and calls reverse, word_count and panic; a panic inside the plugin must come back as an
  error (never cross the C boundary) and the host must keep serving;
- the .so exports exactly one mcpp_* symbol, mcpp_negotiate_v1, and negotiates like MCPP_DEFINE_ENTRY
  (checked in-process with ctypes);
- the kit's compile-time layout assertions (Plugins/rust/mcp-plugin/src/ffi.rs) list exactly the structs and
  fields of Tests/abi/layout.golden;
- the kit's own unit tests (cargo test, mock host) pass;
- ABI 1.1, mirroring test_input_requests.py (whose helpers it reuses): the interactive tools confirm
  (elicitation), ask_model (sampling) and list_roots answer exactly like the C reference plugin's, through the
  SDK client in both eras — the client answers, refuses, lacks the capability, never answers (cancelled at the
  deadline); a retry completes at a second host with the same key; the host's handler thread is given back while
  a handler waits (two calls wait at once under --max-concurrency 1); every kit thread ends with its call; the
  tools list carries the plugin's cache hint.

When cargo is on PATH the module first runs Plugins/rust/build.sh (offline, a no-op when nothing changed),
so the tests never run against a stale plugin; without cargo they use the already-built file.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

import mcp_types as types

from abi_ctypes import negotiated_table
from conftest import MODERN_VERSION, LegacySession, REPO, modern_meta, modern_post, plugin_dir, plugin_path
from schema_check import check_response
from sdk_recorder import run as sdk_run
from supervisor_fixtures import wait_until
from test_client_sdk import run_client
from test_input_requests import CONFIRM, ELICIT_CAPS, accept_confirm, first_attempt, retry

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MODES = ["auto", "legacy"]
DEADLINE = 30.0  # seconds for one client conversation
RUST_DIR = REPO / "Plugins" / "rust"
JSONRPC_INTERNAL_ERROR = -32603


# ----------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rust_plugin() -> Path:
    if shutil.which("cargo"):
        env = dict(os.environ, MCP_PLUGIN_DIR=str(plugin_dir()))
        r = subprocess.run([str(RUST_DIR / "build.sh")], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"Plugins/rust/build.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        assert len(r.stdout.splitlines()) == 1, f"build.sh should print one line, printed:\n{r.stdout}"
    return plugin_path("rust_reference")


@pytest.fixture
def host(host_factory, rust_plugin):
    return host_factory(rust_plugin)


def run(coro):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asyncio.run(coro)


async def converse(url: str, mode: str, body):
    with anyio.fail_after(DEADLINE):
        async with Client(url, mode=mode) as client:
            return await body(client)


def texts(result) -> list[str]:
    return [block.text for block in result.content]


# ----------------------------------------------------------------------------------------------------------
# Through the host, with the official SDK
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_server_info_and_tools(host, mode):
    async def body(c: Client):
        return c.server_info, await c.list_tools()

    info, listed = run(converse(host.url, mode, body))
    assert info is not None and (info.name, info.version) == ("rust-reference", "1.0.0")
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"reverse", "word_count", "panic", "confirm", "ask_model", "list_roots"}
    for name in ("reverse", "word_count"):
        schema = tools[name].input_schema
        assert schema["type"] == "object" and schema["required"] == ["text"]
        assert schema["properties"]["text"]["type"] == "string"
        assert tools[name].annotations is not None and tools[name].annotations.read_only_hint is True
    assert tools["word_count"].output_schema == {
        "type": "object",
        "properties": {"words": {"type": "integer", "minimum": 0}},
        "required": ["words"],
    }
    assert tools["reverse"].output_schema is None
    assert tools["panic"].input_schema["properties"]["message"]["type"] == "string"
    # The 1.1 tools are declared like the C reference plugin's (same names, schemas).
    assert tools["confirm"].input_schema == {
        "type": "object",
        "properties": {"action": {"type": "string", "description": "What to confirm"},
                       "twice": {"type": "boolean", "description": "Ask a second time after a yes"}},
        "required": ["action"],
    }
    assert tools["ask_model"].input_schema == {
        "type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}
    assert tools["list_roots"].input_schema == {"type": "object"}
    assert (tools["confirm"].title, tools["ask_model"].title, tools["list_roots"].title) == (
        "Confirm", "Ask the model", "List roots")


@pytest.mark.parametrize("mode", MODES)
def test_reverse_and_word_count(host, mode):
    async def body(c: Client):
        return (
            await c.call_tool("reverse", {"text": "hello, wörld"}),
            await c.call_tool("reverse", {"text": ""}),
            await c.call_tool("word_count", {"text": "  the quick\tbrown\n fox  "}),
            await c.call_tool("word_count", {"text": "one"}),
            await c.call_tool("word_count", {"text": ""}),
        )

    rev, rev_empty, wc, wc_one, wc_empty = run(converse(host.url, mode, body))
    assert not rev.is_error and texts(rev) == ["dlröw ,olleh"]
    assert not rev_empty.is_error and texts(rev_empty) == [""]
    assert rev.structured_content is None
    assert not wc.is_error and texts(wc) == ["4 words"] and wc.structured_content == {"words": 4}
    assert texts(wc_one) == ["1 word"] and wc_one.structured_content == {"words": 1}
    assert texts(wc_empty) == ["0 words"] and wc_empty.structured_content == {"words": 0}


@pytest.mark.parametrize("mode", MODES)
def test_bad_arguments_are_reported(host, mode):
    async def outcome(c: Client, args):
        try:
            r = await c.call_tool("reverse", args)
        except MCPError as e:
            return ("error", e.code, str(e))
        return ("result", r.is_error, " ".join(texts(r)))

    async def body(c: Client):
        return await outcome(c, {}), await outcome(c, {"text": 5})

    missing, mistyped = run(converse(host.url, mode, body))
    # Either the host rejects the arguments against the input schema, or the kit reports them (-32602):
    # in every case the client learns about it and no text is reversed.
    for got, word in ((missing, "text"), (mistyped, "text")):
        kind, code_or_flag, message = got
        assert (kind == "error" and code_or_flag == -32602) or (kind == "result" and code_or_flag is True), got
        assert word in message, got


@pytest.mark.parametrize("mode", MODES)
def test_panic_never_crosses_the_boundary(host, mode):
    async def panic_outcome(c: Client, args):
        try:
            r = await c.call_tool("panic", args)
        except MCPError as e:
            return ("error", e.code, str(e))
        return ("result", r.is_error, " ".join(texts(r)))

    async def body(c: Client):
        first = await panic_outcome(c, {})
        after_first = await c.call_tool("reverse", {"text": "abc"})
        second = await panic_outcome(c, {"message": "second panic, custom message"})
        after_second = await c.call_tool("word_count", {"text": "still serving"})
        return first, after_first, second, after_second

    first, after_first, second, after_second = run(converse(host.url, mode, body))
    # The kit turns the panic into MCPP_OUTCOME_INTERNAL: a JSON-RPC internal error naming the panic.
    assert first[0] == "error" and first[1] == JSONRPC_INTERNAL_ERROR, first
    assert "panicked" in first[2] and "the panic tool panicked on purpose" in first[2], first
    assert second[0] == "error" and second[1] == JSONRPC_INTERNAL_ERROR, second
    assert "second panic, custom message" in second[2], second
    assert host.proc.poll() is None, "the host died after a panic in the plugin"
    assert texts(after_first) == ["cba"]
    assert after_second.structured_content == {"words": 2}

    # A fresh connection is served too: the process and the plugin instance are intact.
    again = run(converse(host.url, mode, lambda c: c.call_tool("reverse", {"text": "ok"})))
    assert texts(again) == ["ko"]
    assert host.proc.poll() is None
    assert host.stop() == 0, "the host did not shut down cleanly after the panics"
    stderr = host.stderr_text()
    # The kit's panic hook reported each panic as one line in the host's log.
    assert re.search(r"panic at \S*lib\.rs:\d+: the panic tool panicked on purpose", stderr), stderr[-3000:]
    assert re.search(r"panic at \S*lib\.rs:\d+: second panic, custom message", stderr), stderr[-3000:]


@pytest.mark.parametrize("mode", MODES)
def test_concurrent_calls(host, mode):
    """The plugin type is Sync, so the kit declares it CONCURRENT; parallel calls all come back right."""
    words = [f"w{i}" for i in range(24)]

    async def body(c: Client):
        return await asyncio.gather(*(c.call_tool("reverse", {"text": w}) for w in words))

    results = run(converse(host.url, mode, body))
    assert [texts(r) for r in results] == [[w[::-1]] for w in words]


# ----------------------------------------------------------------------------------------------------------
# ABI 1.1: interactive tools (mirrors test_input_requests.py; the answer texts are the C reference plugin's)
# ----------------------------------------------------------------------------------------------------------


def kit_threads(pid: int) -> list[str]:
    """The host's threads named by the kit for interactive handlers (std::thread::Builder::name)."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass  # the thread ended meanwhile
    return [n for n in names if n == "mcp-interactive"]


def assert_kit_threads_end(host) -> None:
    wait_until(lambda: not kit_threads(host.proc.pid), 10, "every interactive handler's thread to end")


@pytest.mark.parametrize("mode", MODES)
def test_elicitation_answer_reaches_the_handler(host, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "deploy"})

    result, seen = sdk_run(run_client(host.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert not result.is_error
    [params] = asked
    assert params.message == "Really do this: deploy?"
    assert params.requested_schema == {"type": "object", "properties": {"confirm": {"type": "boolean", "title": "Confirm"}},
                                       "required": ["confirm"]}
    if mode == "auto":
        # The first attempt was suspended (input_required), the retry answered at once; the state came back.
        assert texts(result) == ["Confirmed: deploy (after a retry carrying ticket-1)"]
        assert seen["tools/call"] == 2
    else:
        assert texts(result) == ["Confirmed: deploy"]
        assert seen["tools/call"] == 1
    assert_kit_threads_end(host)


@pytest.mark.parametrize("mode", MODES)
def test_two_rounds_keep_the_first_answer(host, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "drop the table", "twice": True})

    result, seen = sdk_run(run_client(host.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert [p.message for p in asked] == ["Really do this: drop the table?", "Are you sure: drop the table?"]
    assert not result.is_error
    expected = "Confirmed: drop the table" + (" (after a retry carrying ticket-1)" if mode == "auto" else "")
    assert texts(result) == [expected]
    assert seen["tools/call"] == (3 if mode == "auto" else 1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_the_user_says_no(host, mode, action):
    async def callback(context, params):
        return types.ElicitResult(action=action)

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "deploy"})

    result, _ = sdk_run(run_client(host.url, mode, body, elicitation_callback=callback))
    assert not result.is_error
    assert texts(result) == [f"Not confirmed: the user chose {action}"]


@pytest.mark.parametrize("mode", MODES)
def test_the_user_accepts_but_says_no(host, mode):
    async def callback(context, params):
        return types.ElicitResult(action="accept", content={"confirm": False})

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "deploy"})

    result, _ = sdk_run(run_client(host.url, mode, body, elicitation_callback=callback))
    assert not result.is_error and texts(result) == ["Not confirmed: the user said no"]


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
        # 2026-07-28: the refusal ends the client's retry loop; the server is not waiting for anything.
        assert isinstance(result, MCPError) and "no humans here" in str(result)
    else:
        # 2025-11-25: the error reaches the handler as InputError::Refused; returned with `?`, a tool error.
        assert result.is_error is True
        assert texts(result) == ["the client refused the elicitation request: no humans here"]
    assert_kit_threads_end(host)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tool,args,capability", [
    ("confirm", {"action": "deploy"}, "elicitation"),
    ("ask_model", {"question": "why"}, "sampling"),
    ("list_roots", {}, "roots"),
])
def test_no_capability(host, mode, tool, args, capability):
    """InputError::Unsupported returned with `?` is MCPP_OUTCOME_NEEDS_CAPABILITY."""
    async def body(c: Client):
        with pytest.raises(MCPError) as missing:
            await c.call_tool(tool, args)
        return missing.value

    error, _ = sdk_run(run_client(host.url, mode, body))
    assert f"this tool needs the client's {capability} capability" in error.error.message
    assert error.error.data == {"requiredCapabilities": {capability: {}}}
    assert error.error.code == (-32021 if mode == "auto" else -32602)


def test_missing_capability_is_400_with_required_capabilities(host):
    reply = modern_post(host.port, "tools/call", {"name": "ask_model", "arguments": {"question": "why"}},
                        meta=modern_meta(capabilities=ELICIT_CAPS))
    assert reply.status == 400
    msg = check_response(reply.json(), MODERN_VERSION, "tools/call")
    assert msg["error"]["code"] == -32021
    assert msg["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


@pytest.mark.parametrize("mode", MODES)
def test_cancelled_while_waiting(host_factory, rust_plugin, mode):
    """The user never answers. 2025-11-25: the deadline passes while the handler waits in elicit(); it gets
    InputError::Cancelled, its thread ends, the client's callback is cancelled. 2026-07-28: the client abandons
    its loop; nothing is held, the next call is served."""
    h = host_factory(rust_plugin, "--call-timeout", "1.5")
    waiting = anyio.Event()
    ended: list[str] = []

    async def callback(context, params):
        waiting.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            ended.append("cancelled")
            raise

    async def body(c: Client):
        if mode == "auto":
            with anyio.move_on_after(20):
                async with anyio.create_task_group() as tg:
                    async def call():
                        await c.call_tool("confirm", {"action": "deploy"})
                    tg.start_soon(call)
                    await waiting.wait()
                    tg.cancel_scope.cancel()
            return await c.call_tool("reverse", {"text": "still here"})
        return await c.call_tool("confirm", {"action": "deploy"})

    result, _ = sdk_run(run_client(h.url, mode, body, elicitation_callback=callback))
    if mode == "auto":
        assert texts(result) == ["ereh llits"]
    else:
        assert result.is_error is True
        assert "did not finish within its deadline" in texts(result)[0]
        wait_until(lambda: ended, 10, "the client's elicitation callback to be cancelled")
        assert ended == ["cancelled"]
    assert_kit_threads_end(h)
    assert h.proc.poll() is None


def test_a_waiting_handler_gives_the_host_thread_back(host_factory, rust_plugin):
    """With one handler thread (--max-concurrency 1), two confirm calls both reach the user before either is
    answered: a handler waiting in elicit() does not hold the host's thread (legacy era, where it really waits)."""
    h = host_factory(rust_plugin, "--max-concurrency", "1")
    asked: list = []
    waiting_threads: list[str] = []
    both = anyio.Event()

    async def callback(context, params):
        asked.append(params.message)
        if len(asked) == 2:
            # Both handlers wait on kit threads of their own (which is also what assert_kit_threads_end sees).
            waiting_threads.extend(kit_threads(h.proc.pid))
            both.set()
        await both.wait()  # answers only once both calls are waiting; fail_after in run_client bounds it
        return types.ElicitResult(action="accept", content={"confirm": True})

    async def body(c: Client):
        results = {}
        async with anyio.create_task_group() as tg:
            for action in ("one", "two"):
                async def call(action=action):
                    results[action] = await c.call_tool("confirm", {"action": action})
                tg.start_soon(call)
        return results

    results, _ = sdk_run(run_client(h.url, "legacy", body, elicitation_callback=callback))
    assert sorted(asked) == ["Really do this: one?", "Really do this: two?"]
    assert texts(results["one"]) == ["Confirmed: one"] and texts(results["two"]) == ["Confirmed: two"]
    assert waiting_threads == ["mcp-interactive", "mcp-interactive"]
    assert_kit_threads_end(h)


@pytest.mark.parametrize("mode", MODES)
def test_sampling(host, mode):
    asked: list = []

    async def sampling(context, params):
        asked.append(params)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="42"),
                                         model="test-model")

    async def body(c: Client):
        return await c.call_tool("ask_model", {"question": "What is 6 × 7? \"quoted\""})

    result, _ = sdk_run(run_client(host.url, mode, body, sampling_callback=sampling))
    assert texts(result) == ["The model (test-model) says: 42"]
    [params] = asked
    assert params.max_tokens == 200
    assert [m.content.text for m in params.messages] == ["What is 6 × 7? \"quoted\""]


@pytest.mark.parametrize("mode", MODES)
def test_roots(host, mode):
    async def roots(context):
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/a", name="a"), types.Root(uri="file:///srv/b")])

    async def body(c: Client):
        return await c.call_tool("list_roots", {})

    result, _ = sdk_run(run_client(host.url, mode, body, list_roots_callback=roots))
    assert texts(result) == ["file:///srv/a", "file:///srv/b", "2 roots"]


def test_a_retry_completes_at_another_host_with_the_same_key(host_factory, rust_plugin):
    """Two replicas of a server share the requestState key: the retry of an attempt suspended at one completes
    at the other (nothing of the call is held between attempts); a host with another key refuses it."""
    key = "ab" * 32
    a = host_factory(rust_plugin, env={"MCP_REQUEST_STATE_KEY": key})
    b = host_factory(rust_plugin, env={"MCP_REQUEST_STATE_KEY": key})
    other = host_factory(rust_plugin, env={"MCP_REQUEST_STATE_KEY": "cd" * 32})
    state = first_attempt(a.port)["requestState"]
    done = check_response(retry(b.port, CONFIRM, state).json(), MODERN_VERSION, "tools/call")
    assert done["result"]["resultType"] == "complete"
    assert [c["text"] for c in done["result"]["content"]] == ["Confirmed: deploy (after a retry carrying ticket-1)"]
    refused = retry(other.port, CONFIRM, state).json()
    assert refused["error"]["code"] == -32602 and "Invalid requestState" in refused["error"]["message"]
    for h in (a, b):
        assert_kit_threads_end(h)


def test_list_cache_hint(host):
    """Plugin::LIST_CACHE reaches tools/list (2026-07-28 ttlMs/cacheScope); other lists keep the default; the
    legacy era has no hints."""
    tools = check_response(modern_post(host.port, "tools/list", {}).json(), MODERN_VERSION, "tools/list")["result"]
    assert (tools["ttlMs"], tools["cacheScope"]) == (60000, "public")
    prompts = check_response(modern_post(host.port, "prompts/list", {}).json(), MODERN_VERSION, "prompts/list")
    assert (prompts["result"]["ttlMs"], prompts["result"]["cacheScope"]) == (0, "private")
    s = LegacySession(host.port, "2025-11-25")
    s.initialize()
    legacy = s.request("tools/list", {}).final()
    assert "ttlMs" not in legacy["result"] and len(legacy["result"]["tools"]) == 6
    s.delete()


# ----------------------------------------------------------------------------------------------------------
# The shared object itself
# ----------------------------------------------------------------------------------------------------------


def test_exports_only_the_entry_point(rust_plugin):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    r = subprocess.run([nm, "-D", "--defined-only", str(rust_plugin)], capture_output=True, text=True, check=True)
    symbols = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert [s for s in symbols if s.startswith("mcpp_")] == ["mcpp_negotiate_v1"], r.stdout
    # The kit's thunks and Rust's std stay private: no mangled Rust symbol is exported.
    leaked = [s for s in symbols if s.startswith(("_ZN", "_R"))]
    assert leaked == [], f"Rust symbols exported from the plugin: {leaked[:10]}"
    assert re.search(r"^\S+ T mcpp_negotiate_v1$", r.stdout, re.M), r.stdout


def test_negotiation_in_process(rust_plugin):
    """mcpp_negotiate_v1 behaves like MCPP_DEFINE_ENTRY; the table is CONCURRENT with health wired."""
    lib, t = negotiated_table(rust_plugin)
    assert t.threading == 1  # MCPP_THREADING_CONCURRENT: RustReference is Sync
    assert (t.name.text(), t.version.text(), t.title.text()) == ("rust-reference", "1.0.0", "Reference plugin (Rust)")
    assert t.create and t.destroy and t.describe and t.call_tool and t.health
    assert not (t.read_resource or t.get_prompt or t.complete or t.cancel or t.diagnose or t.get_extension)


def test_layout_assertions_match_golden():
    """Every struct and field of Tests/abi/layout.golden has the same compile-time assertion in ffi.rs."""
    golden_structs: dict[str, int] = {}
    golden_fields: dict[str, list[tuple[str, int, int]]] = {}
    for line in (REPO / "Tests" / "abi" / "layout.golden").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if parts[0] == "struct":
            golden_structs[parts[1]] = int(parts[3])
            golden_fields.setdefault(parts[1], [])
        else:
            golden_fields.setdefault(parts[0], []).append((parts[1], int(parts[2]), int(parts[3])))

    source = (RUST_DIR / "mcp-plugin" / "src" / "ffi.rs").read_text()
    rust_structs: dict[str, int] = {}
    rust_fields: dict[str, list[tuple[str, int, int]]] = {}
    for m in re.finditer(r"layout!\((\w+) size (\d+) \{(.*?)\}\);", source, re.S):
        name = m.group(1)
        rust_structs[name] = int(m.group(2))
        rust_fields[name] = [(f, int(o), int(s)) for f, o, s in re.findall(r"(\w+) (\d+) (\d+);", m.group(3))]

    assert rust_structs == golden_structs
    assert rust_fields == golden_fields


def test_kit_unit_tests():
    """cargo test of the kit: a mock host checks panics, finish-exactly-once, Sync -> CONCURRENT, negotiation."""
    if not shutil.which("cargo"):
        pytest.skip("cargo is not installed")
    build = REPO / ".build-rust"
    env = dict(os.environ, CARGO_HOME=str(build / "cargo-home"), CARGO_TARGET_DIR=str(build / "target"))
    env.pop("CARGO_BUILD_TARGET", None)
    r = subprocess.run(
        ["cargo", "test", "--offline", "--quiet", "--manifest-path", str(RUST_DIR / "Cargo.toml"), "--workspace"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, f"cargo test failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert "test result: ok" in r.stdout
