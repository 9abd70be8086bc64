"""The ABI reading rule (docs/plugin-host.md, "How the host reads your structs"): every struct a plugin hands the
host is read up to its own struct_size and no further, arrays are walked by that struct_size, and a struct_size
smaller than ABI 1.0's is a load error naming the struct.

- larger_structs (Tests/fixtures/plugins/larger_structs.c): every struct larger than the host knows, with 0xAB
  garbage where a later minor's fields would be, prompt arguments at the larger stride. It must load, be listed
  and called exactly as declared in both protocol eras, and pass --check.
- small_structs (Tests/fixtures/plugins/small_structs.c): one struct one field short of 1.0, chosen by
  MCPP_TEST_SMALL. The host must exit with the documented load-error status and a line naming that struct, and
  --check must report the same.

The 1.0 sizes the messages must name come from the frozen 1.0 header (Tests/abi/v1.0/mcp_plugin.h), never from
the host's own header. The frozen 1.0 plugin itself is served by test_install_and_compat.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    MODERN_VERSION,
    REPO,
    LegacySession,
    host_binary,
    modern_post,
    plugin_path,
)
from schema_check import check_server_message

sys.path.insert(0, str(REPO / "Tests" / "abi"))
from check_layout import header_structs  # noqa: E402

pytestmark = pytest.mark.timeout(300)

FROZEN_HEADER = REPO / "Tests" / "abi" / "v1.0" / "mcp_plugin.h"
PLUGIN_STRUCTS = ["mcpp_plugin", "mcpp_tool", "mcpp_resource", "mcpp_resource_template", "mcpp_prompt",
                  "mcpp_prompt_arg"]
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def layout_1_0(tmp_path_factory) -> dict[str, tuple[int, int]]:
    """struct -> (offset of its last 1.0 field, end of that field), compiled from the frozen 1.0 header.

    The end of the last field is the smallest struct_size a 1.x plugin may send; the offset is what
    small_structs sends (one field short)."""
    fields = header_structs(FROZEN_HEADER)
    folder = tmp_path_factory.mktemp("layout_1_0")
    source = folder / "last_fields.c"
    lines = ['#include "mcp_plugin.h"', "#include <stddef.h>", "#include <stdio.h>", "int main(void) {"]
    for struct in PLUGIN_STRUCTS:
        last = fields[struct][-1]
        lines.append(f'    printf("{struct} %zu %zu\\n", offsetof({struct}, {last}), '
                     f"offsetof({struct}, {last}) + sizeof((({struct} *)0)->{last}));")
    lines += ["    return 0;", "}"]
    source.write_text("\n".join(lines) + "\n")
    exe = folder / "last_fields"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-I", str(FROZEN_HEADER.parent), "-o", str(exe),
                    str(source)], check=True, timeout=120)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout
    layout = {}
    for line in out.splitlines():
        struct, offset, end = line.split()
        layout[struct] = (int(offset), int(end))
    assert sorted(layout) == sorted(PLUGIN_STRUCTS)
    return layout


# ------------------------------------------------------------------------------------------------------------
# Larger than the host knows: loads and works.
# ------------------------------------------------------------------------------------------------------------

README_TEXT = "A plugin whose structs are larger than the host knows."
TEXT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def check_listings(call) -> None:
    """The four listings and one call of each kind, through `call(method, params) -> result`."""
    tools = call("tools/list", {})["tools"]
    assert [t["name"] for t in tools] == ["echo", "shout"]
    echo, shout = tools
    assert echo["title"] == "Echo" and echo["description"] == "Returns its text."
    assert echo["inputSchema"] == TEXT_SCHEMA and "annotations" not in echo and "outputSchema" not in echo
    assert shout["annotations"] == {"readOnlyHint": True} and "title" not in shout
    assert call("tools/call", {"name": "echo", "arguments": {"text": "hi there"}})["content"] == [
        {"type": "text", "text": "hi there"}]
    assert call("tools/call", {"name": "shout", "arguments": {"text": "hi there"}})["content"] == [
        {"type": "text", "text": "HI THERE"}]

    resources = call("resources/list", {})["resources"]
    assert resources == [{"uri": "larger://readme", "name": "readme", "title": "Read me", "mimeType": "text/plain",
                          "size": len(README_TEXT)}]
    assert call("resources/read", {"uri": "larger://readme"})["contents"] == [
        {"uri": "larger://readme", "mimeType": "text/plain", "text": README_TEXT}]
    templates = call("resources/templates/list", {})["resourceTemplates"]
    assert templates == [{"uriTemplate": "larger://notes/{id}", "name": "note", "description": "Any id.",
                          "mimeType": "text/plain"}]
    assert call("resources/read", {"uri": "larger://notes/7"})["contents"] == [
        {"uri": "larger://notes/7", "mimeType": "text/plain", "text": "note 7"}]

    prompts = call("prompts/list", {})["prompts"]
    assert [p["name"] for p in prompts] == ["greet", "plain"]
    greet, plain = prompts
    # Both arguments, as declared: a host stepping by its own sizeof would read the 0xAB bytes as the second.
    assert greet["arguments"] == [
        {"name": "who", "description": "Who to greet", "required": True},
        {"name": "style", "title": "Style", "description": "How"},  # not required: the key is left out
    ]
    assert plain["title"] == "Plain" and plain.get("arguments", []) == []
    got = call("prompts/get", {"name": "greet", "arguments": {"who": "Ada", "style": "formal"}})
    assert got["messages"] == [{"role": "user", "content": {"type": "text", "text": "Greet Ada in a formal way."}}]


def test_larger_structs_serve_on_2026_07_28(host_factory):
    host = host_factory(plugin_path("larger_structs"))
    ids = iter(range(1, 100))

    def call(method, params):
        request_id = next(ids)
        reply = modern_post(host.port, method, params, id=request_id)
        assert reply.status == 200, f"{method}: HTTP {reply.status} {reply.body[:300]!r}"
        message = check_server_message(reply.final(), MODERN_VERSION, method)
        assert message["id"] == request_id and "result" in message, message
        return message["result"]

    discovered = call("server/discover", {})
    assert discovered["_meta"]["io.modelcontextprotocol/serverInfo"] == {
        "name": "larger_structs", "version": "1.9.0", "title": "Larger structs"}
    assert discovered["instructions"] == "Built against a later 1.x header."
    check_listings(call)


def test_larger_structs_serve_in_a_2025_11_25_session(host_factory):
    host = host_factory(plugin_path("larger_structs"))
    session = LegacySession(host.port, "2025-11-25")
    init = check_server_message(session.initialize().final(), "2025-11-25", "initialize")["result"]
    assert init["serverInfo"] == {"name": "larger_structs", "version": "1.9.0", "title": "Larger structs"}
    assert init["instructions"] == "Built against a later 1.x header."

    def call(method, params):
        reply = session.request(method, params)
        assert reply.status == 200, f"{method}: HTTP {reply.status} {reply.body[:300]!r}"
        message = check_server_message(reply.final(), "2025-11-25", method)
        assert "result" in message, message
        return message["result"]

    check_listings(call)
    assert session.delete().status == 204


def check(plugin: Path, env_value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MCPP_TEST_SMALL", None)
    if env_value is not None:
        env["MCPP_TEST_SMALL"] = env_value
    return subprocess.run([str(host_binary()), "--check", "--json", "--plugin", str(plugin)], env=env,
                          capture_output=True, text=True, timeout=60)


def test_larger_structs_pass_the_check():
    result = check(plugin_path("larger_structs"), None)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["loads"] is True and report["hostExitStatus"] == 0
    assert all(step["ok"] for step in report["checks"]), report["checks"]
    declared = report["declared"]
    assert declared["tools"] == ["echo", "shout"]
    assert declared["resources"] == ["larger://readme"]
    assert declared["resourceTemplates"] == ["larger://notes/{id}"]
    assert declared["prompts"] == ["greet", "plain"]


# ------------------------------------------------------------------------------------------------------------
# Smaller than 1.0: a load error naming the struct.
# ------------------------------------------------------------------------------------------------------------

# MCPP_TEST_SMALL value -> (struct, how the error names it, exit status, --check step, message prefix)
SMALL = {
    "plugin": ("mcpp_plugin", 'the plugin table ("small_structs")', 13, "load", ""),
    "tool": ("mcpp_tool", 'tool 1 ("second_tool")', 17, "describe", "invalid declarations: "),
    "resource": ("mcpp_resource", 'resource 1 ("small://second")', 17, "describe", "invalid declarations: "),
    "resource_template": ("mcpp_resource_template", 'resource template 1 ("small://second/{id}")', 17, "describe",
                          "invalid declarations: "),
    "prompt": ("mcpp_prompt", 'prompt 1 ("second_prompt")', 17, "describe", "invalid declarations: "),
    "prompt_arg": ("mcpp_prompt_arg", 'prompt 1 ("second_prompt") argument 0 ("who")', 17, "describe",
                   "invalid declarations: "),
    "prompt_arg_mixed": ("mcpp_prompt_arg", 'prompt 1 ("second_prompt") argument 1 ("style")', 17, "describe",
                         "invalid declarations: "),
}


def expected_message(kind: str, layout_1_0) -> str:
    struct, subject, _, _, prefix = SMALL[kind]
    short, minimum = layout_1_0[struct]
    return f"{prefix}{subject}: struct_size {short} is smaller than {struct} 1.0 ({minimum})"


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_a_struct_smaller_than_1_0_is_a_load_error(kind, layout_1_0):
    _, _, status, _, _ = SMALL[kind]
    plugin = os.path.abspath(plugin_path("small_structs"))
    env = dict(os.environ, MCPP_TEST_SMALL=kind)
    result = subprocess.run([str(host_binary()), "--plugin", plugin, "--listen", "127.0.0.1:0"], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == status, f"{kind}: exit {result.returncode}, stderr={result.stderr!r}"
    assert "serving" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"mcp-plugin-host: {plugin}: {expected_message(kind, layout_1_0)}"], result.stderr


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_check_reports_a_struct_smaller_than_1_0(kind, layout_1_0):
    _, _, status, step, _ = SMALL[kind]
    result = check(plugin_path("small_structs"), kind)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["loads"] is False and report["hostExitStatus"] == status
    failed = [s for s in report["checks"] if not s["ok"]]
    assert [s["name"] for s in failed] == [step], report["checks"]
    assert failed[0]["detail"] == report["problem"] == expected_message(kind, layout_1_0)


def test_small_structs_loads_when_every_struct_is_1_0_sized():
    """The same plugin with no struct cut short loads: the errors above come from the sizes alone."""
    result = check(plugin_path("small_structs"), None)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = json.loads(result.stdout)["declared"]
    assert declared["tools"] == ["first_tool", "second_tool"]
    assert declared["resources"] == ["small://first", "small://second"]
    assert declared["resourceTemplates"] == ["small://first/{id}", "small://second/{id}"]
    assert declared["prompts"] == ["first_prompt", "second_prompt"]
