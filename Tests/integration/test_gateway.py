"""The gateway (docs/gateway.md): one MCP endpoint in front of every server the supervisor runs.

The supervisor starts `mcp-gateway` as the server `gateway` ([gateway] in the main file) on a port of its own and
pushes it the table of servers; the gateway reads each server's lists over its port, serves them merged under
`<server>__<name>`, and sends each call to the server that owns the name. The client here is the official Python
SDK in both eras; the backends are the C reference plugin, the Rust reference plugin and the conformance plugin.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import anyio
import pytest
from mcp import Client, MCPError

from conftest import SANITIZER, plugin_path
from sdk_recorder import run
from supervisor_fixtures import call_tool, control_env, free_port, wait_until  # noqa: F401  (control_env: `env`)
from test_client_sdk import MODES, run_client

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SERVERS = {"ref": "reference", "rust": "rust_reference", "conf": "conformance"}


def start(env, servers=SERVERS, **main):
    """Writes the servers and [gateway], starts the supervisor and waits until the gateway lists every server."""
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port}, **main)
    for name, plugin in servers.items():
        env.write_server(name, plugin_path(plugin))
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: all(env.status(n)["state"] == "running" for n in [*servers, "gateway"]), 30,
               "every server and the gateway running")
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: set(servers) <= {n.split("__")[0] for n in tool_names(url)}, 20,
               "the gateway lists every server's tools")
    return run, port, url


def tool_names(url: str, mode: str = "auto") -> list[str]:
    async def body(c: Client):
        return [t.name for t in (await c.list_tools()).tools]

    return run(run_client(url, mode, body))[0]


def direct_lists(env, name: str) -> dict[str, list[str]]:
    """What the server lists on its own port (the gateway's names must be these, prefixed)."""
    async def body(c: Client):
        caps = c.server_capabilities
        tools = [t.name for t in (await c.list_tools()).tools] if caps.tools else []
        prompts = [p.name for p in (await c.list_prompts()).prompts] if caps.prompts else []
        resources = [r.uri for r in (await c.list_resources()).resources] if caps.resources else []
        return {"tools": tools, "prompts": prompts, "resources": resources}

    return run(run_client(f"http://127.0.0.1:{env.status(name)['port']}/mcp", "auto", body))[0]


@pytest.mark.parametrize("mode", MODES)
def test_one_endpoint_serves_every_server_under_its_prefix(env, mode):
    run_, port, url = start(env)
    direct = {name: direct_lists(env, name) for name in SERVERS}

    async def body(c: Client):
        tools = [t.name for t in (await c.list_tools()).tools]
        prompts = [p.name for p in (await c.list_prompts()).prompts]
        resources = [r.uri for r in (await c.list_resources()).resources]
        add = await c.call_tool("ref__add", {"a": 2, "b": 3.5})
        echo = await c.call_tool("ref__echo", {"text": "through the gateway"})
        readme = await c.read_resource("reference://readme")
        note = await c.read_resource("reference://notes/2")  # a template of ref's
        return c.server_info, c.server_capabilities, tools, prompts, resources, add, echo, readme, note

    (info, caps, tools, prompts, resources, add, echo, readme, note), seen = run(run_client(url, mode, body))
    assert info.name == "mcp-gateway"
    gw = env.status("gateway")
    assert gw["kind"] == "gateway" and gw["port"] == port and gw["target"].endswith("/mcp-gateway"), gw
    # Boxed like any host; a sanitized run switches it off through [gateway.sandbox] (supervisor_fixtures.unboxed).
    assert gw["box"]["enabled"] is (SANITIZER is None), gw["box"]
    # Names: server order (by name), each server's own order, every name prefixed; nothing else.
    order = sorted(SERVERS)
    assert tools == [f"{s}__{t}" for s in order for t in direct[s]["tools"]]
    assert prompts == [f"{s}__{p}" for s in order for p in direct[s]["prompts"]]
    assert resources == [u for s in order for u in direct[s]["resources"]]
    assert caps.tools is not None and caps.resources is not None and caps.prompts is not None
    assert add.structured_content == {"sum": 5.5} and not add.is_error
    assert [b.text for b in echo.content] == ["through the gateway"]
    assert readme.contents[0].text.startswith("This is the reference plugin of mcp-supervisor")
    assert note.contents[0].uri == "reference://notes/2"
    assert seen["tools/call"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_command_servers_nobody_here_wrote_answer_through_it(env, tmp_path, mode):
    """mcp-server-time (PyPI, stdio) and a FastMCP program serving HTTP itself, as command servers next to a
    plugin: the gateway lists them under their prefixes and calls reach them, in both eras."""
    from test_command_servers import FASTMCP_SERVER, VENV, write_command
    (tmp_path / "fastmcp_server.py").write_text(FASTMCP_SERVER)
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port})
    env.write_server("ref", plugin_path("reference"))
    write_command(env, "time", [str(VENV / "mcp-server-time"), "--local-timezone", "UTC"])
    write_command(env, "fast", [str(VENV / "python"), "fastmcp_server.py", "--port", "{port}"], transport="http",
                  working_directory=str(tmp_path))
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: {"ref", "time", "fast"} <= {n.split("__")[0] for n in tool_names(url)}, 60,
               "the gateway lists the plugin's and both programs' tools")

    async def body(c: Client):
        names = [t.name for t in (await c.list_tools()).tools]
        now = await c.call_tool("time__get_current_time", {"timezone": "UTC"})
        loud = await c.call_tool("fast__shout", {"text": "through the gateway"})
        echo = await c.call_tool("ref__echo", {"text": "and the plugin"})
        return names, now, loud, echo

    (names, now, loud, echo), seen = run(run_client(url, mode, body))
    assert {"time__get_current_time", "time__convert_time", "fast__shout", "fast__whoami", "ref__echo"} <= set(names)
    assert not now.is_error and '"timezone": "UTC"' in now.content[0].text, now
    assert [b.text for b in loud.content] == ["THROUGH THE GATEWAY"]
    assert [b.text for b in echo.content] == ["and the plugin"]
    assert seen["tools/call"] == 3
    run_.stop()


@pytest.mark.parametrize("mode", MODES)
def test_the_rust_and_conformance_servers_answer_through_it_with_progress(env, mode):
    run_, port, url = start(env)
    progress: list = []

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async def body(c: Client):
        tools = {t.name: t for t in (await c.list_tools()).tools}
        reverse = await c.call_tool("rust__reverse", {"text": "hello, wörld"})
        counted = await c.call_tool("rust__word_count", {"text": "the quick brown fox"})
        slow = await c.call_tool("conf__test_tool_with_progress", {}, progress_callback=on_progress)
        return tools, reverse, counted, slow

    (tools, reverse, counted, slow), _ = run(run_client(url, mode, body))
    assert [b.text for b in reverse.content] == ["dlröw ,olleh"]
    assert counted.structured_content == {"words": 4}
    assert slow.content[0].text == "Tool with progress executed successfully"
    # The conformance plugin's progress reaches the client through the gateway, in order.
    assert progress == [(float(p), 100.0, f"Completed step {p} of 100") for p in (0, 50, 100)]

    # Each tool keeps its server's own schema and annotations.
    async def direct(c: Client):
        return {t.name: t for t in (await c.list_tools()).tools}

    own, _ = run(run_client(f"http://127.0.0.1:{env.status('ref')['port']}/mcp", mode, direct))
    for name, tool in own.items():
        assert tools[f"ref__{name}"].input_schema == tool.input_schema
        assert tools[f"ref__{name}"].annotations == tool.annotations
        assert tools[f"ref__{name}"].description == tool.description


def test_an_added_server_reaches_listeners_and_keeps_every_other_name(env):
    run_, port, url = start(env, servers={"ref": "reference"})
    before = tool_names(url)
    env.write_server("rust", plugin_path("rust_reference"))

    async def body(c: Client):
        async with c.listen(tools_list_changed=True) as sub:
            assert "result" in env.control("reload")
            with anyio.fail_after(15):
                async for event in sub:
                    if "Tool" in type(event).__name__:
                        break
            return [t.name for t in (await c.list_tools()).tools]

    after, _ = run(run_client(url, "auto", body))
    assert after[:len(before)] == before, "the names of the servers already there did not change"
    assert any(n.startswith("rust__") for n in after)


def test_a_legacy_client_hears_the_list_change_when_a_server_is_removed(env):
    """A 2025-11-25 session's GET stream gets tools/list_changed when a reload removes a server, and the next
    list holds the other server's names, unchanged. (Raw HTTP: the stream's priming event says it is open before
    the change is made.)"""
    from conftest import LegacySession
    from test_resumption import RawStream, methods

    run_, port, url = start(env, servers={"ref": "reference", "rust": "rust_reference"})
    s = LegacySession(port, "2025-11-25")
    s.initialize()
    before = [t["name"] for t in json.loads(s.request("tools/list").body)["result"]["tools"]]
    stream = RawStream(port, s.headers(accept="text/event-stream"))
    try:
        stream.events_until(lambda ev: len(ev) >= 1)  # primed: the stream is open
        env.remove_server("rust")
        assert "result" in env.control("reload")
        stream.events_until(lambda ev: "notifications/tools/list_changed" in methods(ev))
    finally:
        stream.close()
    after = [t["name"] for t in json.loads(s.request("tools/list").body)["result"]["tools"]]
    s.delete()
    assert any(n.startswith("rust__") for n in before)
    assert after == [n for n in before if n.startswith("ref__")]


def test_a_stopped_server_fails_at_once_with_its_state(env):
    run_, port, url = start(env, servers={"ref": "reference", "rust": "rust_reference"})
    assert "result" in env.control("stop", {"server": "ref"})
    wait_until(lambda: env.status("ref")["state"] == "stopped", 15, "ref stopped")

    async def body(c: Client):
        t0 = time.monotonic()
        try:
            await c.call_tool("ref__echo", {"text": "anyone?"})
        except MCPError as e:
            return str(e), time.monotonic() - t0
        return "answered", time.monotonic() - t0

    # The table reaches the gateway right after the stop: wait for the answer to say so.
    wait_until(lambda: "stopped by an admin" in run(run_client(url, "auto", body))[0][0], 10,
               "the gateway answers that ref is stopped")
    (text, took), _ = run(run_client(url, "legacy", body))
    assert "server 'ref' is stopped by an admin" in text
    assert took < 2.0, f"a stopped server's call took {took:.2f} s"
    # The other server is untouched.
    async def other(c: Client):
        return await c.call_tool("rust__echo", {"text": "still here"})
    rust_tools = direct_lists(env, "rust")["tools"]
    if "echo" in rust_tools:
        got, _ = run(run_client(url, "auto", other))
        assert [b.text for b in got.content] == ["still here"]


def test_a_killed_server_comes_back_behind_the_gateway(env):
    run_, port, url = start(env, servers={"ref": "reference"})
    pid = env.status("ref")["replicas"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: env.status("ref")["state"] == "running" and env.status("ref")["replicas"][0]["pid"] != pid,
               20, "ref restarted")

    async def body(c: Client):
        return await c.call_tool("ref__add", {"a": 1, "b": 1})

    result, _ = run(run_client(url, "auto", body))
    assert result.structured_content == {"sum": 2}


def test_a_name_longer_than_64_is_left_out_with_its_reason(env):
    alias = "a" * 58  # "a…a__echo" is 64: fits; "a…a__slow_count" does not
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port})
    env.write_server("ref", plugin_path("reference"), alias=alias)
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: f"{alias}__echo" in tool_names(url), 30, "the gateway lists ref's echo")
    names = tool_names(url)
    assert all(len(n) <= 64 for n in names)
    assert f"{alias}__slow_count" not in names
    run_.wait_for(rf"left out of the gateway's lists: ref: '{alias}__slow_count' is longer than 64 characters", 10)
    # mcpctl status says so too, for the gateway (JSON and text).
    wait_until(lambda: any("slow_count" in item for item in env.status("gateway").get("left_out", [])), 10,
               "the gateway's left-out names in status")
    import subprocess
    from conftest import mcpctl_binary
    out = subprocess.run([str(mcpctl_binary()), "--socket", str(env.control_socket), "status"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^gateway: \d+ left out of its lists:$", out.stdout, re.M), out.stdout
    assert f"ref: '{alias}__slow_count' is longer than 64 characters" in out.stdout


@pytest.mark.parametrize("text,error", [
    ("[gateway]\nport = 0\n", r"gateway\.port.*must be 1-65535"),
    ("[gateway]\nreplicas = 2\n", r"gateway\.replicas"),
    ("[gateway.sandbox]\nuser = \"no-such-user-here\"\n", r"gateway\.sandbox\.user.*no such user 'no-such-user-here'"),
    ("[gateway.sandbox]\nenabled = \"no\"\n", r"gateway\.sandbox\.enabled"),
])
def test_a_bad_gateway_section_is_refused_with_its_place(env, text, error):
    main = env.write_main(control_socket=str(env.control_socket))
    main.write_text(main.read_text() + text)
    out = env.check_config()
    assert out.returncode != 0
    assert str(main) in out.stderr + out.stdout
    assert re.search(error, out.stderr + out.stdout), out.stderr + out.stdout


def test_a_server_may_not_take_the_gateways_name_or_a_taken_prefix(env):
    env.write_main(control_socket=str(env.control_socket), gateway={"port": free_port()})
    env.write_server("gateway", plugin_path("reference"))
    out = env.check_config()
    assert out.returncode != 0 and "'gateway' is the gateway's name" in out.stderr, out.stderr

    env.remove_server("gateway")
    env.write_server("one", plugin_path("reference"), alias="same")
    env.write_server("two", plugin_path("reference"), alias="same")
    out = env.check_config()
    assert out.returncode != 0 and "'same' is already the gateway prefix of server 'one'" in out.stderr, out.stderr

    env.remove_server("two")
    env.write_server("a__b", plugin_path("reference"))
    out = env.check_config()
    assert out.returncode != 0 and "contains '__'" in out.stderr, out.stderr
    assert "a__b.toml" in out.stderr

    env.remove_server("a__b")
    out = env.check_config()
    assert out.returncode == 0, out.stderr
    assert re.search(r"\bgateway\b", out.stdout + out.stderr)


@pytest.mark.parametrize("mode", MODES)
def test_group_endpoints_serve_their_servers_narrowed_by_the_allowlist(env, mode):
    port = free_port()
    env.write_main(control_socket=str(env.control_socket),
                   gateway={"port": port, "groups": {"text": {"tools": ["rust__reverse"]}}})
    env.write_server("ref", plugin_path("reference"), group="docs")
    env.write_server("rust", plugin_path("rust_reference"), group="text")
    env.write_server("conf", plugin_path("conformance"))
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    base = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: {"ref", "rust", "conf"} <= {n.split("__")[0] for n in tool_names(base)}, 30,
               "the gateway lists every server")
    direct_ref = direct_lists(env, "ref")

    async def body(c: Client):
        tools = [t.name for t in (await c.list_tools()).tools]
        return c.server_capabilities, tools

    (docs_caps, docs_tools), _ = run(run_client(base + "/docs", mode, body))
    assert docs_tools == [f"ref__{t}" for t in direct_ref["tools"]]
    (text_caps, text_tools), _ = run(run_client(base + "/text", mode, body))
    assert text_tools == ["rust__reverse"]
    # Honest capabilities: the text group has no resources (the Rust plugin serves none), docs has ref's.
    rust_has_resources = bool(direct_lists(env, "rust")["resources"])
    assert (text_caps.resources is not None) == rust_has_resources
    assert docs_caps.resources is not None

    async def outside(c: Client):
        ok = await c.call_tool("rust__reverse", {"text": "abc"})
        with pytest.raises(MCPError) as refused:
            await c.call_tool("rust__word_count", {"text": "not in the allowlist"})
        with pytest.raises(MCPError) as other:
            await c.call_tool("ref__echo", {"text": "another group's tool"})
        return ok, str(refused.value), str(other.value)

    (ok, refused, other), _ = run(run_client(base + "/text", mode, outside))
    assert [b.text for b in ok.content] == ["cba"]
    assert "rust__word_count" in refused and "ref__echo" in other
    # The whole endpoint still has everything.
    assert "rust__word_count" in tool_names(base, mode)


def test_an_unknown_group_is_a_404_that_lists_the_endpoints(env):
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port})
    env.write_server("ref", plugin_path("reference"), group="docs")
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: any(n.startswith("ref__") for n in tool_names(f"http://127.0.0.1:{port}/mcp")), 30,
               "the gateway lists ref")
    from conftest import http_call
    reply = http_call(port, "POST", "/mcp/nope", body={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      headers={"Accept": "application/json, text/event-stream"})
    assert reply.status == 404
    assert b"/mcp/nope is no group of this gateway (endpoints: /mcp, /mcp/docs)" in reply.body, reply.body
    # A host (not a gateway) keeps its one endpoint.
    reply = http_call(env.status("ref")["port"], "POST", "/mcp/docs", body={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      headers={"Accept": "application/json, text/event-stream"})
    assert reply.status == 404 and b"the MCP endpoint is /mcp" in reply.body


def test_an_allowlist_for_a_group_without_servers_or_with_a_bare_name_is_refused(env):
    env.write_main(control_socket=str(env.control_socket),
                   gateway={"port": free_port(), "groups": {"nobody": {"tools": ["ref__echo"]}}})
    env.write_server("ref", plugin_path("reference"), group="docs")
    out = env.check_config()
    assert out.returncode != 0
    assert "gateway.groups.nobody: no server is in group 'nobody' (groups: docs)" in out.stderr, out.stderr
    env.write_main(control_socket=str(env.control_socket),
                   gateway={"port": free_port(), "groups": {"docs": {"tools": ["echo"]}}})
    out = env.check_config()
    assert out.returncode != 0
    assert "gateway.groups.docs.tools: 'echo' is not a gateway name" in out.stderr, out.stderr


def test_a_kill_storm_fails_no_idempotent_call_and_runs_no_call_twice(env, tmp_path, gateway_args=()):
    """Replicas are SIGKILLed one at a time (the other keeps serving) while clients call through the gateway: a
    read-only tool (faulty's lookup, 30 ms per call, so kills find calls in flight) sees zero failed calls, because
    a call lost with its connection is sent again;
    a tool that is not idempotent (faulty's mark, which appends one line per run to a file) may fail, but no call
    ever runs twice."""
    import random
    import threading

    marks = tmp_path / "marks"
    marks.mkdir()
    marks_file = marks / "marks"
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port, "args": list(gateway_args)},
                   defaults={"intensity": {"max_restarts": 1000, "window": 60},
                             "backoff": {"initial": 0.05, "max": 0.2}})
    env.write_server("marker", plugin_path("faulty"), replicas=2, config={"extra_tools": True},
                     env={"FAULTY_MARKS": str(marks_file)}, sandbox={"write_paths": [str(marks)]})
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: {"marker__lookup", "marker__mark"} <= set(tool_names(url)), 30, "the gateway lists both")

    stop = threading.Event()
    kills: list[tuple[str, int]] = []

    def storm():
        while not stop.is_set():
            for name in ("marker",):
                running = [r["pid"] for r in env.status(name)["replicas"] if r["state"] == "running" and r["pid"]]
                if len(running) == 2:  # one keeps serving while the other is killed
                    victim = random.choice(running)
                    os.kill(victim, signal.SIGKILL)
                    kills.append((name, victim))
            stop.wait(0.2)  # the storm's pace, not a synchronisation

    outcomes: dict = {"add_ok": 0, "add_failed": [], "mark_ok": [], "mark_failed": []}

    async def body(c: Client):
        deadline = time.monotonic() + 25  # inside run_client's 30 s

        def more(i: int, least: int) -> bool:
            # Until the storm has killed enough replicas (and at least `least` calls each), within the deadline.
            return time.monotonic() < deadline and (i < least or len(kills) < 6)

        async def adder(worker: int):
            i = 0
            while more(i, 60):
                i += 1
                try:
                    r = await c.call_tool("marker__lookup", {"id": f"l{worker}-{i}", "ms": 30})
                    if r.is_error or [b.text for b in r.content] != [f"found l{worker}-{i}"]:
                        outcomes["add_failed"].append(repr(r))
                    else:
                        outcomes["add_ok"] += 1
                except MCPError as e:
                    outcomes["add_failed"].append(str(e))

        async def marker(worker: int):
            i = 0
            while more(i, 40):
                i += 1
                mark_id = f"w{worker}-{i}"
                try:
                    r = await c.call_tool("marker__mark", {"id": mark_id, "ms": 10})
                    (outcomes["mark_failed"] if r.is_error else outcomes["mark_ok"]).append(mark_id)
                except MCPError:
                    outcomes["mark_failed"].append(mark_id)

        async with anyio.create_task_group() as tg:
            for w in range(3):
                tg.start_soon(adder, w)
                tg.start_soon(marker, w)

    thread = threading.Thread(target=storm, daemon=True)
    thread.start()
    try:
        run(run_client(url, "auto", body))
    finally:
        stop.set()
        thread.join(10)
    print(f"kills: {len(kills)}, add ok {outcomes['add_ok']}, add failed {len(outcomes['add_failed'])}, "
          f"mark ok {len(outcomes['mark_ok'])}, mark failed {len(outcomes['mark_failed'])}")
    assert len(kills) >= 6, f"the storm killed only {kills} within the deadline"
    assert outcomes["add_failed"] == [], outcomes["add_failed"][:5]
    assert outcomes["add_ok"] >= 180
    ran = [line.split()[0] for line in marks_file.read_text().splitlines()]
    twice = {i for i in ran if ran.count(i) > 1}
    assert not twice, f"calls run more than once: {sorted(twice)}"
    assert set(outcomes["mark_ok"]) <= set(ran), "a call the client saw succeed left no mark"


def test_the_gateway_counts_calls_retries_and_backends_on_the_metrics_page(env):
    """`mcp_plugin_gateway_*` on the supervisor's /metrics (promtool-clean): calls by backend, method, name and
    outcome, their durations, and which backends the gateway can reach."""
    import subprocess
    from test_metrics_endpoint import get, scrape, series

    mport = free_port()
    run_, port, url = start(env, servers={"ref": "reference", "rust": "rust_reference"},
                            metrics_listen=f"127.0.0.1:{mport}")

    async def body(c: Client):
        for i in range(3):
            await c.call_tool("ref__add", {"a": i, "b": 1})
        await c.call_tool("ref__fail", {"message": "on purpose"})
        await c.call_tool("rust__reverse", {"text": "x"})

    run(run_client(url, "auto", body))
    assert "result" in env.control("stop", {"server": "rust"})
    wait_until(lambda: env.status("rust")["state"] == "stopped", 15, "rust stopped")

    def calls(backend, name, outcome):
        got = series(scrape(mport), "mcp_plugin_gateway_calls_total", server="gateway", backend=backend,
                     method="tools/call", tool=name, outcome=outcome)
        return got[0][1] if got else 0

    assert calls("ref", "ref__add", "ok") == 3
    assert calls("ref", "ref__fail", "tool_error") == 1
    assert calls("rust", "rust__reverse", "ok") == 1
    count = series(scrape(mport), "mcp_plugin_gateway_call_duration_seconds_count", server="gateway", backend="ref")
    assert count and count[0][1] == 4
    wait_until(lambda: [v for _, v in series(scrape(mport), "mcp_plugin_gateway_backend_up", server="gateway",
                                             backend="rust", state="stopped")] == [0.0], 10,
               "the gateway shows rust stopped")
    up = series(scrape(mport), "mcp_plugin_gateway_backend_up", server="gateway", backend="ref")
    assert [v for _, v in up] == [1.0]
    status, _, page = get(mport, "/metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    # The status page's data and the page itself show the gateway with the servers.
    doc = json.loads(get(mport, "/status.json")[2])
    gw = next(s for s in doc["servers"] if s["name"] == "gateway")
    assert gw["kind"] == "gateway" and gw["port"] == port and gw["state"] == "running", gw
    from test_status_page import parse_dom
    row = parse_dom(get(mport, "/")[2].decode()).by_id("server-gateway")
    assert row is not None and row.attrs["data-state"] == "running" and row.attrs["data-server"] == "gateway", \
        (row.attrs if row else None)


def cache_world(env, tmp_path, ttl: float):
    """The faulty plugin's lookup (read-only, records each run) and mark (not read-only) behind a gateway that
    keeps both for `ttl` seconds; returns (run, url, mport, runs()) where runs() lists the lookups that ran."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    lookups = runs_dir / "lookups"
    port, mport = free_port(), free_port()
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{mport}",
                   gateway={"port": port, "cache_ttl": {"faulty__lookup": ttl, "faulty__mark": ttl}})
    env.write_server("faulty", plugin_path("faulty"), config={"extra_tools": True},
                     env={"FAULTY_LOOKUPS": str(lookups), "FAULTY_MARKS": str(runs_dir / "marks")},
                     sandbox={"write_paths": [str(runs_dir)]})
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: "faulty__lookup" in tool_names(url), 30, "the gateway lists faulty")

    def runs() -> list[str]:
        return [l.split()[0] for l in lookups.read_text().splitlines()] if lookups.exists() else []

    return run_, url, mport, runs, runs_dir


def lookup(url: str, id: str, mode: str = "auto") -> list[str]:
    async def body(c: Client):
        r = await c.call_tool("faulty__lookup", {"id": id})
        return [b.text for b in r.content]

    return run(run_client(url, mode, body))[0]


def test_the_cache_answers_a_repeated_read_only_call_and_counts_it(env, tmp_path):
    from test_metrics_endpoint import scrape, series

    run_, url, mport, runs, runs_dir = cache_world(env, tmp_path, ttl=300)
    assert lookup(url, "a") == ["found a"]
    assert lookup(url, "a", "legacy") == ["found a"]  # the same call from another client and era: cached
    assert lookup(url, "b") == ["found b"]  # other arguments: a call of its own
    assert runs() == ["a", "b"]
    looked = {l["result"]: v for l, v in series(scrape(mport), "mcp_plugin_gateway_cache_lookups_total",
                                                server="gateway", backend="faulty")}
    assert looked == {"hit": 1.0, "miss": 2.0}

    # A tool that is not read-only is never cached, whatever the configuration says (and the log says why).
    async def mark(c: Client):
        return [await c.call_tool("faulty__mark", {"id": "m"}) for _ in range(2)]

    run(run_client(url, "auto", mark))
    assert (runs_dir / "marks").read_text().count("m ") == 2
    run_.wait_for(r"cache_ttl for 'faulty__mark' is ignored: its server does not annotate it readOnlyHint", 10)


def test_a_cached_answer_expires(env, tmp_path):
    run_, url, mport, runs, _ = cache_world(env, tmp_path, ttl=1)
    assert lookup(url, "x") == ["found x"]
    assert lookup(url, "x") == ["found x"]
    assert runs() == ["x"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.1:  # the clock, not an event, is what expires it
        time.sleep(0.05)
    assert lookup(url, "x") == ["found x"]
    assert runs() == ["x", "x"]



def test_a_restart_of_the_server_drops_its_cached_answers(env, tmp_path):
    run_, url, mport, runs, _ = cache_world(env, tmp_path, ttl=300)
    assert lookup(url, "y") == ["found y"]
    assert lookup(url, "y") == ["found y"]
    assert runs() == ["y"]
    pid = env.status("faulty")["replicas"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: env.status("faulty")["state"] == "running" and env.status("faulty")["replicas"][0]["pid"] != pid,
               20, "faulty restarted")
    # The gateway hears of the restart from the supervisor's table; until it has, an answer may still come from
    # the cache, so wait for the second run (each attempt is a call, and only a fresh one records).
    wait_until(lambda: lookup(url, "y") == ["found y"] and runs().count("y") == 2, 10,
               "a call after the restart ran again")
    assert runs().count("y") == 2


def test_a_public_resource_is_kept_for_its_ttl_until_its_server_says_it_changed(env):
    """ref's readme comes with cacheScope public and ttlMs: the gateway keeps it; the server's
    notifications/resources/updated for it (its announce tool) drops it, so the next read goes to the server."""
    from test_metrics_endpoint import scrape, series

    mport = free_port()
    run_, port, url = start(env, servers={"ref": "reference"}, metrics_listen=f"127.0.0.1:{mport}")

    def looked() -> dict:
        return {l["result"]: v for l, v in series(scrape(mport), "mcp_plugin_gateway_cache_lookups_total",
                                                  server="gateway", backend="ref")}

    async def read(c: Client):
        return (await c.read_resource("reference://readme")).contents[0].text

    first, _ = run(run_client(url, "auto", read))
    second, _ = run(run_client(url, "legacy", read))
    assert first == second and first.startswith("This is the reference plugin")
    assert looked() == {"hit": 1.0, "miss": 1.0}

    async def announce(c: Client):
        return await c.call_tool("ref__announce", {"uri": "reference://readme"})

    run(run_client(url, "auto", announce))
    # The update reaches the gateway on its listen stream to ref: wait until a read is a miss again.
    wait_until(lambda: run(run_client(url, "auto", read))[0] == first and looked().get("miss") == 2.0, 10,
               "a read after the update went to the server")


def edge_world(env, tmp_path, **gateway):
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port, **gateway})
    env.write_server("ref", plugin_path("reference"))
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    return run_, port


def gateway_ready(port: int, headers: dict | None = None) -> bool:
    from conftest import modern_post
    reply = modern_post(port, "tools/list", extra_headers=headers or {})
    return reply.status == 200 and any(t["name"].startswith("ref__") for t in reply.json()["result"]["tools"])


def make_certificate(tmp_path) -> tuple[str, str]:
    """A self-signed P-256 certificate for 127.0.0.1 and its key, made with the openssl command line."""
    import subprocess
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=mcp-gateway test",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.mark.parametrize("mode", MODES)
def test_tls_with_a_certificate_and_plain_http_from_loopback(env, tmp_path, mode):
    import socket
    import ssl
    import subprocess

    cert, key = make_certificate(tmp_path)
    token = "tls-token-of-the-test-0123456789"
    (tmp_path / "token").write_text(token + "\n")
    run_, port = edge_world(env, tmp_path, tls_certificate=cert, tls_key=key, bearer_token_file=str(tmp_path / "token"))
    auth = {"Authorization": f"Bearer {token}"}
    # Plain HTTP stays open to loopback (this test, local agents, the supervisor's probe, which sends the token).
    wait_until(lambda: gateway_ready(port, auth), 30, "the gateway lists ref over plain HTTP from loopback")
    probe = control_json(env, "health", {"server": "gateway", "level": "detailed"})["replicas"][0]["last_probe"]
    assert probe["result"] == "passed" and probe["server_discover"]["ok"] is True, probe

    # The SDK over https, verifying the certificate, in both eras (the token on every request).
    trust = ssl.create_default_context(cafile=cert)

    async def body(c: Client):
        echo = await c.call_tool("ref__echo", {"text": "over TLS"})
        return c.server_info.name, [t.name for t in (await c.list_tools()).tools], echo

    (name, tools, echo), seen = run(run_client(f"https://127.0.0.1:{port}/mcp", mode, body, verify=trust,
                                               headers=auth))
    assert name == "mcp-gateway" and "ref__echo" in tools
    assert [b.text for b in echo.content] == ["over TLS"] and seen["tools/call"] == 1

    # openssl s_client: TLS 1.2 or 1.3 with the configured certificate.
    shown = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", cert,
                            "-verify_return_error", "-brief"], input=b"", capture_output=True, timeout=30)
    text = (shown.stdout + shown.stderr).decode()
    assert "Verification: OK" in text and re.search(r"Protocol version: TLSv1\.[23]", text), text
    assert "CN=mcp-gateway test" in text or "CN = mcp-gateway test" in text, text

    # A client that does not trust the certificate fails its handshake; TLS 1.0 is refused; garbage after a
    # handshake byte closes that connection only. The gateway keeps serving through all of it.
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cert)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            old.wrap_socket(raw, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05garbage-that-is-no-handshake" * 4)
        raw.settimeout(10)
        try:
            while raw.recv(4096):
                pass
        except ConnectionResetError:
            pass  # closed: what the gateway does with a broken handshake
    assert gateway_ready(port, auth)
    assert run_.proc.poll() is None and env.status("gateway")["state"] == "running"


def control_json(env, method: str, params: dict) -> dict:
    reply = env.control(method, params)
    assert "result" in reply, reply
    return reply["result"]


def test_tls_and_remote_settings_are_checked_at_load(env, tmp_path):
    """Half a TLS pair, a listen address other hosts reach without TLS and a token, and unusable files are each
    refused with the key, the file and the reason; the supervisor keeps its good state."""
    cert, key = make_certificate(tmp_path)
    cases = [
        ({"tls_certificate": cert}, "gateway.tls_key", "both or neither"),
        ({"tls_key": key}, "gateway.tls_certificate", "both or neither"),
    ]
    for gateway, where, why in cases:
        env.write_main(control_socket=str(env.control_socket), gateway={"port": free_port(), **gateway})
        env.write_server("ref", plugin_path("reference"))
        out = env.check_config()
        assert out.returncode != 0 and where in out.stderr and why in out.stderr, out.stderr
    env.write_main(control_socket=str(env.control_socket), listen_address="0.0.0.0",
                   gateway={"port": free_port()})
    out = env.check_config()
    assert out.returncode != 0 and "gateway.tls_certificate" in out.stderr and "insecure_remote" in out.stderr, \
        out.stderr
    env.write_main(control_socket=str(env.control_socket), listen_address="0.0.0.0",
                   gateway={"port": free_port(), "insecure_remote": True})
    assert env.check_config().returncode == 0


def test_an_unusable_certificate_stops_the_gateway_with_its_reason(env, tmp_path):
    cert, key = make_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = make_certificate(tmp_path / "other")
    (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for c, k, said in [(str(tmp_path / "broken.pem"), key, "not a readable PEM certificate"),
                       (cert, other_key, "does the key match the certificate?")]:
        run_, port = edge_world(env, tmp_path, tls_certificate=c, tls_key=k)
        # Status 18 (a configuration error): down, never restarted, with the gateway's own line as the reason.
        s = wait_until(lambda: (s := env.status("gateway"))["state"] == "down" and s, 30, "the gateway down")
        r = s["replicas"][0]
        assert (r["state"], r["pid"], r["restarts"]) == ("exited", None, 0), s
        assert "status 18" in r["last_exit"] and said in r["last_exit"] and c in r["last_exit"], s
        wait_until(lambda: env.status("ref")["state"] == "running", 30, "ref running next to it")
        run_.stop()


def test_edge_gzip_cors_and_the_bearer_token(env, tmp_path):
    import gzip as gz
    from conftest import http_call, modern_body, modern_headers

    token = "s3cret-token-of-the-test-0123456789"
    (tmp_path / "token").write_text(token + "\n")
    run_, port = edge_world(env, tmp_path, cors_origins=["https://app.example"],
                            bearer_token_file=str(tmp_path / "token"))
    auth = {"Authorization": f"Bearer {token}"}
    wait_until(lambda: gateway_ready(port, auth), 30, "the gateway lists ref")

    def post(method, params=None, **extra):
        headers = {**modern_headers(method, params), **extra}
        return http_call(port, "POST", body=modern_body(method, params), headers=headers)

    # Bearer token: none or a wrong one is 401 with WWW-Authenticate and a JSON-RPC error; the right one passes.
    none = post("tools/list")
    assert none.status == 401 and none.header("WWW-Authenticate") == 'Bearer realm="mcp-gateway"'
    assert json.loads(none.body)["error"]["code"] == -32011
    assert post("tools/list", Authorization="Bearer " + "x" * len(token)).status == 401
    # gzip for a client that accepts it, plain for one that does not; an event stream is never compressed.
    zipped = post("tools/list", **auth, **{"Accept-Encoding": "gzip"})
    assert zipped.status == 200 and zipped.header("Content-Encoding") == "gzip"
    names = [t["name"] for t in json.loads(gz.decompress(zipped.body))["result"]["tools"]]
    plain = post("tools/list", **auth)
    assert plain.header("Content-Encoding") is None
    assert [t["name"] for t in json.loads(plain.body)["result"]["tools"]] == names
    streamed = post("tools/list", **auth, **{"Accept-Encoding": "gzip", "Accept": "text/event-stream"})
    assert streamed.header("Content-Type").startswith("text/event-stream")
    assert streamed.header("Content-Encoding") is None and b"ref__echo" in streamed.body
    # CORS: the configured origin's preflight and requests; another origin is refused as before.
    pre = http_call(port, "OPTIONS", headers={"Origin": "https://app.example",
                                              "Access-Control-Request-Method": "POST"})
    assert pre.status == 204 and pre.header("Access-Control-Allow-Origin") == "https://app.example"
    assert "Mcp-Session-Id" in pre.header("Access-Control-Allow-Headers")
    cross = post("tools/list", **auth, Origin="https://app.example")
    assert cross.status == 200 and cross.header("Access-Control-Allow-Origin") == "https://app.example"
    assert http_call(port, "OPTIONS", headers={"Origin": "https://evil.example"}).status == 403
    assert post("tools/list", **auth, Origin="https://evil.example").status == 403
    # The servers behind it keep their own rules (no token, no CORS there).
    direct = http_call(env.status("ref")["port"], "POST", body=modern_body("tools/list"),
                       headers=modern_headers("tools/list"))
    assert direct.status == 200 and direct.header("Access-Control-Allow-Origin") is None


def test_edge_rate_limit_answers_429_with_retry_after_and_recovers(env, tmp_path):
    from conftest import modern_post

    run_, port = edge_world(env, tmp_path, rate_limit=5, rate_burst=5)
    wait_until(lambda: gateway_ready(port), 30, "the gateway lists ref")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.2:  # the bucket refills with the clock: let it fill up again
        time.sleep(0.05)
    replies = [modern_post(port, "tools/list") for _ in range(20)]
    statuses = [r.status for r in replies]
    assert statuses[:5] == [200] * 5, statuses
    limited = [r for r in replies if r.status == 429]
    assert len(limited) >= 10, statuses
    first = limited[0]
    retry = int(first.header("Retry-After"))
    assert retry >= 1
    body = first.json()
    assert body["error"]["code"] == -32010 and "rate limited" in body["error"]["message"]
    assert body["error"]["data"]["retryAfterSeconds"] == retry
    t0 = time.monotonic()
    while time.monotonic() - t0 < retry:
        time.sleep(0.05)
    assert modern_post(port, "tools/list").status == 200


def test_equivalent_servers_share_one_prefix_spread_calls_and_fail_over(env, tmp_path):
    """`equivalent_to`: two servers with the same tools are one set of names on the gateway (the first server's
    prefix); calls go to both, weighted by health; with one stopped every call goes to the other; with both stopped
    a call fails at once naming both."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    lookups, starts = runs_dir / "lookups", runs_dir / "starts"
    from test_metrics_endpoint import scrape, series
    port, mport = free_port(), free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port}, metrics_listen=f"127.0.0.1:{mport}")
    for name, extra in (("alpha", {}), ("beta", {"equivalent_to": ["alpha"]})):
        env.write_server(name, plugin_path("faulty"), config={"extra_tools": True},
                         env={"FAULTY_LOOKUPS": str(lookups), "FAULTY_STARTS": str(starts)},
                         sandbox={"write_paths": [str(runs_dir)]}, **extra)
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: env.status("alpha")["state"] == "running" and env.status("beta")["state"] == "running"
               and "alpha__lookup" in tool_names(url), 30, "both servers up behind the gateway")
    names = tool_names(url)
    assert not any(n.startswith("beta__") for n in names), names
    pids = {name: env.status(name)["replicas"][0]["pid"] for name in ("alpha", "beta")}

    def calls(n: int, tag: str) -> list:
        async def body(c: Client):
            out = []
            for i in range(n):
                try:
                    r = await c.call_tool("alpha__lookup", {"id": f"{tag}{i}"})
                    out.append([b.text for b in r.content])
                except MCPError as e:
                    out.append(str(e))
            return out

        return run(run_client(url, "auto", body))[0]

    def failovers() -> dict[str, float]:
        return {l["backend"]: v for l, v in series(scrape(mport), "mcp_plugin_gateway_failovers_total",
                                                   server="gateway")}

    def ran(tag: str) -> dict:
        by_pid: dict = {}
        for line in lookups.read_text().splitlines():
            id_, pid = line.split()
            if id_.startswith(tag):
                by_pid[int(pid)] = by_pid.get(int(pid), 0) + 1
        return by_pid

    assert calls(40, "both") == [[f"found both{i}"] for i in range(40)]
    spread = ran("both")
    assert set(spread) == set(pids.values()), (spread, pids)  # each server took some (2^-39 that one took all)
    assert failovers() == {}, "no failover while both answer"

    def holding(pid: int, finished: set) -> bool:
        """Whether the child `pid` has started a kill-phase call the client has not got back."""
        return any(id_.startswith("kill") and int(p) == pid and f"found {id_}" not in finished
                   for id_, p in (line.split() for line in starts.read_text().splitlines()))

    # alpha's child killed while it holds a call that takes a second (it has started it, the client has not got
    # it back): the calls alpha held fail with their connection, and lookup is read-only, so each goes again to
    # beta. No call fails; beta's failover counter shows them. (Killed at a moment when alpha held none, nothing
    # would fail over: seen once in CI, so the kill waits for one.)
    async def through_a_kill(c: Client):
        done: list = []
        stop = anyio.Event()

        async def worker(w: int):
            i = 0
            while not stop.is_set():
                r = await c.call_tool("alpha__lookup", {"id": f"kill{w}-{i}", "ms": 1000})
                done.append(([b.text for b in r.content], f"found kill{w}-{i}"))
                i += 1

        async with anyio.create_task_group() as tg:
            for w in range(8):
                tg.start_soon(worker, w)
            await anyio.to_thread.run_sync(lambda: wait_until(
                lambda: holding(pids["alpha"], {want for _, want in done}), 30, "alpha holding a call",
                interval=0.005))
            os.kill(pids["alpha"], signal.SIGKILL)
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: failovers().get("beta", 0) >= 1, 30,
                                                              "a call lost with alpha's child went to beta"))
            stop.set()
        return done

    done = run(run_client(url, "auto", through_a_kill))[0]
    assert done and all(got == [want] for got, want in done), [d for d in done if d[0] != [d[1]]]
    assert set(failovers()) == {"beta"}
    wait_until(lambda: env.status("alpha")["state"] == "running", 30, "alpha restarted")

    assert "result" in env.control("stop", {"server": "alpha"})
    wait_until(lambda: env.status("alpha")["state"] == "stopped", 15, "alpha stopped")
    # Once the gateway's table says alpha is stopped, every call goes to beta; none fails meanwhile, because a
    # call that finds alpha gone never reached it (503 from its drain, or no replica) and goes to beta.
    assert calls(20, "beta") == [[f"found beta{i}"] for i in range(20)]
    assert set(ran("beta")) == {pids["beta"]}
    assert set(failovers()) == {"beta"}, "no failover to the stopped alpha"

    assert "result" in env.control("stop", {"server": "beta"})
    wait_until(lambda: env.status("beta")["state"] == "stopped", 15, "beta stopped")
    wait_until(lambda: "server 'alpha' is stopped by an admin, server 'beta' is stopped by an admin" in calls(1, "x")[0],
               10, "the gateway says both are stopped")


COMPOSITES = {
    "fan": {"policy": "parallel", "description": "three at once", "steps": [
        {"tool": "faulty__lookup", "arguments": {"id": "{{input.word}}"}},
        {"tool": "ref__echo", "arguments": {"text": "echo {{input.word}}"}},
        {"tool": "ref__fail", "arguments": {"message": "boom"}},
    ]},
    "late": {"policy": "parallel", "step_timeout": 0.5, "steps": [
        {"tool": "faulty__slow", "arguments": {"ms": 5000}},
        {"tool": "ref__echo", "arguments": {"text": "on time"}},
    ]},
    "pipe": {"policy": "sequential", "steps": [
        {"tool": "faulty__lookup", "arguments": {"id": "{{input.word}}"}},
        {"tool": "rust__reverse", "arguments": {"text": "{{previous.text}}"}},
    ]},
    "either": {"policy": "failover", "steps": [
        {"tool": "ref__fail", "arguments": {"message": "first one fails"}, "retries": 2},
        {"tool": "rust__reverse", "arguments": {"text": "{{input.word}}"}},
    ]},
    "all": {"policy": "aggregate", "steps": [{"tool": "ref__echo"}, {"tool": "rust__reverse"}]},
    "hold": {"policy": "parallel", "steps": [
        {"tool": "faulty__slow", "arguments": {"ms": 20000}},
        {"tool": "faulty__slow", "arguments": {"ms": 20000}},
    ]},
}


@pytest.fixture
def composite_world(env, tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    lookups = runs_dir / "lookups"
    port, mport = free_port(), free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port, "composites": COMPOSITES},
                   metrics_listen=f"127.0.0.1:{mport}")
    env.metrics_port = mport
    env.write_server("ref", plugin_path("reference"))
    env.write_server("rust", plugin_path("rust_reference"))
    env.write_server("faulty", plugin_path("faulty"), config={"extra_tools": True},
                     env={"FAULTY_LOOKUPS": str(lookups)}, sandbox={"write_paths": [str(runs_dir)]})
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: {"fan", "ref__echo", "rust__reverse", "faulty__lookup"} <= set(tool_names(url)), 30,
               "the gateway lists every server and the composites")

    def lookups_run() -> list[str]:
        return [l.split()[0] for l in lookups.read_text().splitlines()] if lookups.exists() else []

    return env, url, lookups_run


def call_composite(url, name, args, mode="auto", progress=None):
    async def body(c: Client):
        return await c.call_tool(name, args, progress_callback=progress)

    return run(run_client(url, mode, body))[0]


@pytest.mark.parametrize("mode", MODES)
def test_a_parallel_composite_reports_partial_results_and_progress(composite_world, mode):
    env, url, lookups_run = composite_world
    seen = []

    async def on_progress(p, total, message):
        seen.append((p, total))

    r = call_composite(url, "fan", {"word": "kiwi"}, mode, on_progress)
    assert r.is_error is False  # two of three succeeded: partial, reported as such
    s = r.structured_content
    assert (s["policy"], s["succeeded"], s["failed"]) == ("parallel", 2, 1)
    assert [(x["tool"], x["ok"]) for x in s["steps"]] == [("faulty__lookup", True), ("ref__echo", True),
                                                          ("ref__fail", False)]
    assert "boom" in s["steps"][2]["error"]
    texts_ = [b.text for b in r.content]
    assert texts_[0] == "step 0 (faulty__lookup): found kiwi" and texts_[1] == "step 1 (ref__echo): echo kiwi"
    assert texts_[2].startswith("step 2 (ref__fail): FAILED: ")
    assert sorted(p for p, _ in seen) == [1.0, 2.0, 3.0] and all(t == 3.0 for _, t in seen)
    assert lookups_run() == ["kiwi"]


def test_a_step_past_its_deadline_fails_alone(composite_world):
    env, url, _ = composite_world
    t0 = time.monotonic()
    r = call_composite(url, "late", {})
    took = time.monotonic() - t0
    s = r.structured_content
    assert [x["ok"] for x in s["steps"]] == [False, True]
    assert "took longer than 0.5 s" in s["steps"][0]["error"]
    assert took < 3.0, f"the composite waited {took:.1f} s for a step with a 0.5 s deadline"


def test_a_sequential_composite_feeds_each_step_and_resumes_after_its_checkpoint(composite_world):
    env, url, lookups_run = composite_world
    r = call_composite(url, "pipe", {"word": "abc"})
    assert not r.is_error and [b.text for b in r.content] == ["cba dnuof"]  # reverse of "found abc"

    assert "result" in env.control("stop", {"server": "rust"})
    wait_until(lambda: env.status("rust")["state"] == "stopped", 15, "rust stopped")
    wait_until(lambda: call_composite(url, "pipe", {"word": "xyz"}).is_error, 10, "the second step fails")
    failed = call_composite(url, "pipe", {"word": "pqr"})
    s = failed.structured_content
    assert s["completed"] == 1 and s["failedStep"] == 1 and s["checkpoint"]
    assert "call again with checkpoint=" in failed.content[0].text
    before = lookups_run().count("pqr")
    assert before == 1

    assert "result" in env.control("start", {"server": "rust"})
    wait_until(lambda: env.status("rust")["state"] == "running", 20, "rust running again")
    wait_until(lambda: not call_composite(url, "either", {"word": "w"}).is_error, 15, "rust reachable again")
    resumed = call_composite(url, "pipe", {"checkpoint": s["checkpoint"]})
    assert not resumed.is_error and [b.text for b in resumed.content] == ["rqp dnuof"]
    assert lookups_run().count("pqr") == 1, "the resumed run did step 0 again"
    # A checkpoint resumes once.
    async def reuse(c: Client):
        try:
            await c.call_tool("pipe", {"checkpoint": s["checkpoint"]})
        except MCPError as e:
            return str(e)

    assert "checkpoint: unknown, used already or expired" in run(run_client(url, "auto", reuse))[0]


def test_failover_and_aggregate_composites(composite_world):
    env, url, _ = composite_world
    r = call_composite(url, "either", {"word": "stone"})
    assert not r.is_error and [b.text for b in r.content] == ["enots"]
    agg = call_composite(url, "all", {"text": "abc"})
    assert not agg.is_error and [b.text for b in agg.content] == ["abc", "cba"]
    assert [x["tool"] for x in agg.structured_content["steps"]] == ["ref__echo", "rust__reverse"]


def test_cancelling_a_composite_cancels_its_running_steps(composite_world):
    """faulty runs two calls at a time: a composite holding both slots with 20 s steps is cancelled, and a call
    to faulty right after answers at once (the steps were cancelled at the server, not left running)."""
    from test_metrics_endpoint import scrape, series

    env, url, _ = composite_world

    def in_flight() -> float:
        return sum(v for _, v in series(scrape(env.metrics_port), "mcp_server_calls_in_flight", server="faulty"))

    async def body(c: Client):
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.call_tool, "hold", {})
            deadline = time.monotonic() + 10
            while in_flight() < 2:  # both steps are running at faulty
                assert time.monotonic() < deadline, "the composite's steps never both ran"
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        t0 = time.monotonic()
        r = await c.call_tool("faulty__slow", {"ms": 0})
        return r, time.monotonic() - t0

    async def unrecorded():
        # The cancelled call's exchange ends without an answer, which the recording client would count as a
        # protocol error; this conversation is checked by what it observes instead.
        import httpx2
        from mcp.client.streamable_http import streamable_http_client
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0)) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="auto") as c:
                with anyio.fail_after(30):
                    return await body(c)

    r, took = run(unrecorded())
    assert [b.text for b in r.content] == ["slept"]
    assert took < 3.0, f"faulty was still busy {took:.1f} s after the cancellation"


def test_bad_composites_are_refused_with_their_place(env):
    cases = [
        ({"x": {"policy": "round-robin", "steps": [{"tool": "ref__echo"}]}}, r"gateway\.composites\.x\.policy: must be parallel"),
        ({"x": {"policy": "parallel", "steps": []}}, r"gateway\.composites\.x\.steps: must be 1-32 steps"),
        ({"x": {"policy": "parallel", "steps": [{"tool": "echo"}]}}, r"steps\[0\]\.tool: must be a tool's name"),
        ({"x": {"policy": "parallel", "steps": [{"tool": "nobody__echo"}]}}, r"no server has the prefix 'nobody'"),
        ({"x": {"policy": "parallel", "steps": [{"tool": "ref__echo", "arguments": {"text": "{{previous.text}}"}}]}},
         r"\{\{previous...\}\} needs an earlier step"),
        ({"x": {"policy": "sequential", "steps": [{"tool": "ref__echo", "arguments": {"text": "{{steps.3.text}}"}}]}},
         r"must name an earlier step"),
        ({"a__b": {"policy": "parallel", "steps": [{"tool": "ref__echo"}]}}, r"is not a composite name"),
    ]
    env.write_server("ref", plugin_path("reference"))
    for composites, pattern in cases:
        main = env.write_main(control_socket=str(env.control_socket), gateway={"port": free_port(), "composites": composites})
        out = env.check_config()
        assert out.returncode != 0, composites
        assert str(main) in out.stderr and re.search(pattern, out.stderr), (pattern, out.stderr)


def test_list_cache_hints_never_promise_more_than_the_servers_do(env):
    """2026-07-28 ttlMs and cacheScope on the gateway's lists: for each list, the shortest ttlMs and the narrowest
    scope among the servers that serve it (a server without hints counts as 0 and private)."""
    from conftest import modern_post

    run_, port, url = start(env, servers={"ref": "reference", "rust": "rust_reference"})

    def hints(p: int, method: str):
        r = modern_post(p, method).json()["result"]
        return r.get("ttlMs"), r.get("cacheScope"), bool(r.get(method.split("/")[0]) or r.get("resourceTemplates"))

    for method in ("tools/list", "prompts/list", "resources/list"):
        own = [hints(env.status(s)["port"], method) for s in ("ref", "rust")]
        serving = [(t if t is not None else 0, c or "private") for t, c, has in own if has]
        if not serving:
            continue
        expected = (min(t for t, _ in serving), "private" if any(c == "private" for _, c in serving) else "public")
        got = hints(port, method)[:2]
        assert got == expected, (method, own, got)


def test_a_tools_rate_limit_refuses_calls_beyond_it_with_32010_and_counts_them(env, tmp_path):
    from conftest import modern_body, modern_headers, http_call
    from test_metrics_endpoint import scrape, series

    mport = free_port()
    run_, port = edge_world(env, tmp_path, rate_limits={"ref__echo": 2})
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{mport}",
                   gateway={"port": port, "rate_limits": {"ref__echo": 2}})
    assert "result" in env.control("reload")
    wait_until(lambda: gateway_ready(port), 30, "the gateway lists ref")
    params = {"name": "ref__echo", "arguments": {"text": "hi"}}
    replies = [http_call(port, "POST", body=modern_body("tools/call", params),
                         headers=modern_headers("tools/call", params)) for _ in range(12)]
    limited = [r for r in replies if r.status == 429]
    assert 6 <= len(limited) <= 10, [r.status for r in replies]  # a bucket of 4, refilled at 2/s meanwhile
    err = json.loads(limited[0].body)["error"]
    assert err["code"] == -32010 and "'ref__echo' takes at most 2.0 calls per second" in err["message"]
    assert err["data"]["retryAfterSeconds"] >= 1
    # Another tool of the same server is not limited.
    other = {"name": "ref__add", "arguments": {"a": 1, "b": 2}}
    assert all(http_call(port, "POST", body=modern_body("tools/call", other),
                         headers=modern_headers("tools/call", other)).status == 200 for _ in range(8))
    counted = series(scrape(mport), "mcp_plugin_gateway_rate_limited_total", server="gateway", tool="ref__echo")
    assert [v for _, v in counted] == [float(len(limited))]


def test_calls_through_a_restart_do_not_fail(env):
    """mcpctl restart stops a server to start it again: the gateway treats it as coming back (not as stopped by an
    admin), and calls made meanwhile wait for it or are sent again (a draining replica refuses unread): none fails."""
    run_, port, url = start(env, servers={"ref": "reference"})
    pid = env.status("ref")["replicas"][0]["pid"]
    failures: list = []

    async def body(c: Client):
        restarted = False
        n = 0
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            n += 1
            try:
                r = await c.call_tool("ref__add", {"a": n, "b": 1})
                if r.structured_content != {"sum": n + 1}:
                    failures.append(repr(r))
            except MCPError as e:
                failures.append(str(e))
            if n == 20:
                assert "result" in env.control("restart", {"server": "ref"})
                restarted = True
            if restarted and env.status("ref")["state"] == "running" and env.status("ref")["replicas"][0]["pid"] != pid \
                    and n > 60:
                return n

    n, _ = run(run_client(url, "auto", body))
    assert n and n > 60
    assert failures == [], failures[:3]
    assert env.status("ref")["replicas"][0]["pid"] != pid
