"""The Swift reference plugin (MCPPluginKit, exported with @c) through the host and the official Python SDK."""

import asyncio
import subprocess
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import REPO, host_binary
from supervisor_fixtures import control_env  # noqa: F401  (control_env is the `env` fixture)

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
            assert names == ["shout", "stats", "countdown", "confirm", "ask_model", "refuse"]
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


# ABI 1.1 through MCPPluginKit: `try await call.elicit(...)` and `call.sample(...)` in both eras.


def _run_sdk(url, mode, body, **kw):
    from sdk_recorder import run
    from test_client_sdk import run_client
    return run(run_client(url, mode, body, **kw))


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("answer", ["yes", "no", "decline"])
def test_swift_confirm_elicits(swift_host, mode, answer):
    import mcp_types as types
    asked: list = []

    async def callback(context, params):
        asked.append(params.message)
        if answer == "decline":
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content={"confirm": answer == "yes"})

    async def body(c: Client):
        return await c.call_tool("confirm", {"action": "ship it"})

    result, seen = _run_sdk(swift_host.url, mode, body, elicitation_callback=callback)
    assert asked == ["Really do this: ship it?"]
    text = [b.text for b in result.content]
    if answer == "yes":
        # 2026-07-28: one input_required attempt, then the retry, which got the plugin's bytes back
        assert text == (["Confirmed: ship it (after a retry carrying swift-ticket)"] if mode == "auto"
                        else ["Confirmed: ship it"])
    elif answer == "no":
        assert text == ["Not confirmed: the user said no"]
    else:
        assert text == ["Not confirmed: the user chose decline"]
    assert seen["tools/call"] == (2 if mode == "auto" else 1)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_swift_confirm_without_the_capability(swift_host, mode):
    async def body(c: Client):
        with pytest.raises(MCPError) as missing:
            await c.call_tool("confirm", {"action": "ship it"})
        return missing.value

    error, _ = _run_sdk(swift_host.url, mode, body)
    assert error.error.code == (-32021 if mode == "auto" else -32602)
    assert error.error.data == {"requiredCapabilities": {"elicitation": {}}}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_swift_ask_model_samples(swift_host, mode):
    import mcp_types as types
    asked: list = []

    async def sampling(context, params):
        asked.append((params.max_tokens, [m.content.text for m in params.messages]))
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="42"),
                                         model="m")

    async def body(c: Client):
        return await c.call_tool("ask_model", {"question": "6 × 7 = \"?\""})

    result, _ = _run_sdk(swift_host.url, mode, body, sampling_callback=sampling)
    assert [b.text for b in result.content] == ["The model says: 42"]
    assert asked == [(100, ['6 × 7 = "?"'])]


def test_swift_list_cache_hints(swift_host):
    """ListCache in the definition: tools and prompts lists public for a minute (2026-07-28), resources keep the
    default; nothing in the legacy era. Schema-checked."""
    from conftest import MODERN_VERSION, LegacySession, modern_post
    from schema_check import check_response

    for method in ["tools/list", "prompts/list"]:
        result = check_response(modern_post(swift_host.port, method, {}).json(), MODERN_VERSION, method)["result"]
        assert (result["ttlMs"], result["cacheScope"]) == (60000, "public"), method
    result = check_response(modern_post(swift_host.port, "resources/list", {}).json(), MODERN_VERSION,
                            "resources/list")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")
    s = LegacySession(swift_host.port, "2025-11-25")
    s.initialize()
    legacy = s.request("tools/list", {}).final()
    assert "ttlMs" not in legacy["result"] and "cacheScope" not in legacy["result"]
    s.delete()


def test_swift_plugin_metrics_on_the_supervisors_page(env):
    """PluginMetric: the Swift plugin's counter and histogram appear as mcp_plugin_* on the metrics endpoint."""
    from supervisor_fixtures import call_tool, wait_until
    from test_metrics_endpoint import scrape, series, start

    run, mport = start(env, replicas=1, extra_servers={"sw": {"plugin": str(SWIFT_PLUGIN), "group": "swift"}})
    wait_until(lambda: env.status("sw")["state"] == "running", 20, "sw running")
    port = env.status("sw")["port"]
    assert not series(scrape(mport), "mcp_plugin_swift_reference_shouts_total")  # registered on first use
    for text in ["hi", "a" * 10]:
        assert call_tool(port, "shout", {"text": text}) == text.upper()
    samples = scrape(mport)
    own = {"server": "sw", "group": "swift", "replica": "0"}
    assert [v for _, v in series(samples, "mcp_plugin_swift_reference_shouts_total", **own)] == [2]
    buckets = {l["le"]: v for l, v in series(samples, "mcp_plugin_swift_reference_shout_bytes_bucket", **own)}
    assert buckets == {"8": 1, "64": 2, "512": 2, "+Inf": 2}
