"""The Swift reference plugin (MCPPluginKit, exported with @c) through the host and the official Python SDK."""

import asyncio
import subprocess
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import REPO, host_binary

SWIFT_PLUGIN = Path(host_binary()).parent / "libSwiftReferencePlugin.so"


@pytest.fixture
def swift_host(host_factory):
    assert SWIFT_PLUGIN.exists(), f"{SWIFT_PLUGIN} not built (swift build builds it)"
    return host_factory(SWIFT_PLUGIN)


def test_entry_point_is_exported_with_c_and_uses_the_hosts_runtime():
    out = subprocess.run(["nm", "-D", "--defined-only", str(SWIFT_PLUGIN)], capture_output=True, text=True,
                         check=True).stdout
    assert any(line.split()[-1] == "mcpp_negotiate_v1" and line.split()[1] == "T" for line in out.splitlines())
    # The one-runtime rule, the supported way: the plugin links the Swift runtime dynamically (same toolchain
    # as the host), so one libswiftCore serves both and type identities stay single.
    needed = subprocess.run(["readelf", "-d", str(SWIFT_PLUGIN)], capture_output=True, text=True, check=True).stdout
    assert "[libswiftCore.so]" in needed
    host_needed = subprocess.run(["readelf", "-d", str(host_binary())], capture_output=True, text=True,
                                 check=True).stdout
    assert "[libswiftCore.so]" in host_needed


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_swift_plugin_serves_tools_resources_prompts(swift_host, mode):
    async def scenario():
        progress = []

        async def on_progress(p, total, message):
            progress.append((p, total))

        async with Client(swift_host.url, mode=mode) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            assert names == ["shout", "stats", "countdown", "refuse"]
            r = await c.call_tool("shout", {"text": "quiet please"})
            assert r.content[0].text == "QUIET PLEASE" and not r.is_error
            r = await c.call_tool("stats", {"text": "one two  three"})
            assert r.structured_content == {"characters": 14, "words": 3}
            r = await c.call_tool("countdown", {"n": 3}, progress_callback=on_progress)
            assert r.content[0].text == "liftoff after 3"
            assert [p for p, _ in progress] == [1, 2, 3] and all(t == 3 for _, t in progress)
            r = await c.call_tool("refuse", {})
            assert r.is_error and r.content[0].text == "refuse always refuses"
            rr = await c.read_resource("swift://about")
            assert "Swift" in rr.contents[0].text and rr.contents[0].mime_type == "text/plain"
            rr = await c.read_resource("swift://echo/bonjour")
            assert rr.contents[0].text == "You said bonjour"
            p = await c.get_prompt("haiku", {"topic": "rain", "season": "autumn"})
            assert p.messages[0].role == "user" and "rain" in p.messages[0].content.text
            assert "autumn" in p.messages[0].content.text
            from mcp.types import PromptReference
            comp = await c.complete(PromptReference(type="ref/prompt", name="haiku"), {"name": "season", "value": "s"})
            assert sorted(comp.completion.values) == ["spring", "summer"]

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_missing_argument_is_an_invalid_params_error(swift_host, mode):
    async def scenario():
        async with Client(swift_host.url, mode=mode) as c:
            with pytest.raises(MCPError) as e:
                await c.call_tool("shout", {})
            assert e.value.error.code == -32602 and "text" in e.value.error.message

    asyncio.run(asyncio.wait_for(scenario(), 60))
