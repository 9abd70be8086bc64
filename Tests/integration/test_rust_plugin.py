"""The Rust plugin kit (Plugins/rust): the reference plugin librust_reference.so, served by mcp-plugin-host.

- the official Python SDK (`mcp` 2.3.0) in mode="auto" (2026-07-28) and mode="legacy" (initialize handshake)
  lists the tools and calls reverse, word_count and panic; a panic inside the plugin must come back as an
  error (never cross the C boundary) and the host must keep serving;
- the .so exports exactly one mcpp_* symbol, mcpp_negotiate_v1, and negotiates like MCPP_DEFINE_ENTRY
  (checked in-process with ctypes);
- the kit's compile-time layout assertions (Plugins/rust/mcp-plugin/src/ffi.rs) list exactly the structs and
  fields of Tests/abi/layout.golden;
- the kit's own unit tests (cargo test, mock host) pass.

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

from abi_ctypes import negotiated_table
from conftest import REPO, plugin_dir, plugin_path

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
    assert set(tools) == {"reverse", "word_count", "panic"}
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
