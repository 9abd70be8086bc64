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
  (checked with ctypes in a child process, so the Go runtime is never loaded into pytest itself).

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
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import (REPO, StderrWatcher, modern_body, modern_headers, modern_meta, open_http, parse_sse,
                      plugin_dir, plugin_path, wait_exit)

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MODES = ["auto", "legacy"]
DEADLINE = 30.0  # seconds for one client conversation
GO_DIR = REPO / "Plugins" / "go"
JSONRPC_INVALID_PARAMS = -32602
JSONRPC_INTERNAL_ERROR = -32603
EXIT_PLUGIN_CRASHED = 70
TOOLS = {"echo", "add", "slow_count", "fail", "panic", "crash"}


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

    def attempt(major=1, minor=1, size=24):
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
    out["minor0"] = [st, n.plugin_abi_minor, bool(n.plugin)]
    st, n = attempt()
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
    # built against the 1.1 header: a host offering only 1.0 is told the plugin needs minor 1
    assert out["minor0"] == [2, 1, True]
    assert out["minor7"] == 0 and out["ok"] == [0, 1]
    assert out["same_table"] is True, "the table is static"
    assert out["table"] == [168, 1, 0, "go-reference", "1.0.0", "Reference plugin (Go)"]
    assert out["set"] == ["create", "destroy", "describe", "call_tool", "health"]


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
