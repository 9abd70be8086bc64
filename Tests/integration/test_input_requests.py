"""ABI 1.1 input requests (elicitation, sampling, roots) and subscriptions, through the host, with the official
Python SDK (`mcp` 2.3.0) as the client in both eras, every response validated against its revision's schema
(test_client_sdk.run_client).

The reference C plugin's tools: `confirm` asks the user (elicitation; `twice` asks again after a yes), `ask_model`
asks the client's model (sampling), `list_roots` asks for the roots, `announce` reports a resource update and
list changes. In 2025-11-25 the host sends the request on the call's stream and hands the answer to the plugin;
in 2026-07-28 it answers `input_required` with a sealed requestState and the SDK retries (docs/protocol.md,
"Input requests").
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import MODERN_VERSION, LegacySession, modern_meta, modern_post, parse_sse
from schema_check import check_response, check_server_message
from sdk_recorder import run
from supervisor_fixtures import control_env, free_port, wait_until  # noqa: F401 (control_env is the `env` fixture)
from test_client_sdk import MODES, run_client

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ELICIT_CAPS = {"elicitation": {}}


@pytest.fixture
def host(host_factory, reference_plugin):
    return host_factory(reference_plugin)


class Front:
    """What the client talks to: the host itself, or mcp-gateway in front of it (docs/gateway.md, "Input
    requests"), where the tools are named ref__<tool> and every request the server sees is 2026-07-28."""

    def __init__(self, kind: str, url: str, port: int):
        self.kind, self.url, self.port = kind, url, port

    def name(self, tool: str) -> str:
        return tool if self.kind == "host" else f"ref__{tool}"

    @property
    def modern_backend(self) -> bool:
        return self.kind == "gateway"


@pytest.fixture(params=["host", "gateway"])
def front_of(request, host_factory, reference_plugin):
    """Makes the test's front (both kinds, one per run of the test): `front_of(*args)` gives the host `args` and,
    for the gateway kind, puts an mcp-gateway with the same `args` in front of it; each is stopped afterwards
    (status 0) with nothing left behind."""
    import signal
    import subprocess
    from conftest import host_binary, _kill_session
    gateways: list[subprocess.Popen] = []

    def make(*args: str) -> Front:
        h = host_factory(reference_plugin, *args)
        if request.param == "host":
            return Front("host", h.url, h.port)
        proc = subprocess.Popen([str(host_binary().parent / "mcp-gateway"), "--listen", "127.0.0.1:0",
                                 "--backend", f"ref={h.port}", *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        gateways.append(proc)
        line = proc.stdout.readline().strip()  # its serving line, or EOF if it failed to start
        m = re.match(r"^mcp-gateway: serving .* at (http://127\.0\.0\.1:(\d+)/mcp)$", line)
        assert m, f"mcp-gateway did not serve: {line!r} {proc.stderr.read() if not line else ''}"
        port = int(m.group(2))

        def listed():
            reply = modern_post(port, "tools/list")
            return reply.status == 200 and any(t["name"] == "ref__confirm" for t in reply.json()["result"]["tools"])
        wait_until(listed, 30, "the gateway lists ref__confirm")
        return Front("gateway", m.group(1), port)

    try:
        yield make
        for proc in gateways:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        for proc in gateways:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _kill_session(proc.pid)
            proc.stdout.close()
            proc.stderr.close()


@pytest.fixture
def front(front_of):
    return front_of()


def texts(result) -> list[str]:
    return [b.text for b in result.content]


def accept_confirm(asked: list):
    async def callback(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"confirm": True})
    return callback


# ------------------------------------------------------------------------------------------------------------
# Elicitation
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_elicitation_answer_reaches_the_plugin(front, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool(front.name("confirm"), {"action": "deploy"})

    result, seen = run(run_client(front.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert not result.is_error
    [params] = asked
    assert params.message == "Really do this: deploy?"
    assert params.requested_schema["properties"]["confirm"]["type"] == "boolean"
    # 2026-07-28 at the plugin's host: one input_required attempt, then the retry; the plugin's bytes came back
    # sealed in requestState. The gateway always talks 2026-07-28 to the server, so a 2025-era client behind it
    # answers on its stream and the gateway sends the server that retry itself.
    if mode == "auto" or front.modern_backend:
        assert texts(result) == ["Confirmed: deploy (after a retry carrying ticket-1)"]
    else:
        assert texts(result) == ["Confirmed: deploy"]
    assert seen["tools/call"] == (2 if mode == "auto" else 1)


@pytest.mark.parametrize("mode", MODES)
def test_two_rounds_keep_the_first_answer(front, mode):
    asked: list = []

    async def body(c: Client):
        return await c.call_tool(front.name("confirm"), {"action": "drop the table", "twice": True})

    result, seen = run(run_client(front.url, mode, body, elicitation_callback=accept_confirm(asked)))
    assert [p.message for p in asked] == ["Really do this: drop the table?", "Are you sure: drop the table?"]
    assert not result.is_error and texts(result)[0].startswith("Confirmed: drop the table")
    assert seen["tools/call"] == (3 if mode == "auto" else 1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_the_user_says_no(front, mode, action):
    async def callback(context, params):
        return types.ElicitResult(action=action)

    async def body(c: Client):
        return await c.call_tool(front.name("confirm"), {"action": "deploy"})

    result, _ = run(run_client(front.url, mode, body, elicitation_callback=callback))
    assert not result.is_error
    assert texts(result) == [f"Not confirmed: the user chose {action}"]


@pytest.mark.parametrize("mode", MODES)
def test_the_client_refuses(front, mode):
    async def callback(context, params):
        return types.ErrorData(code=-1, message="no humans here")

    async def body(c: Client):
        try:
            return await c.call_tool(front.name("confirm"), {"action": "deploy"})
        except MCPError as e:
            return e

    result, _ = run(run_client(front.url, mode, body, elicitation_callback=callback))
    if mode == "auto":
        # 2026-07-28: the refusal ends the client's retry loop; the server is not waiting for anything.
        assert isinstance(result, MCPError) and "no humans here" in str(result)
    elif front.modern_backend:
        # Behind the gateway the server waits for a 2026-07-28 retry, which cannot carry a refusal: the call
        # ends with an error that names the server and the client's reason.
        assert isinstance(result, MCPError), result
        assert "the client refused elicitation/create for server 'ref': no humans here" in result.error.message
    else:
        # 2025-11-25: the error answer reaches the plugin, which reports it as a tool error.
        assert result.is_error is True
        assert texts(result) == ["the client refused the elicitation request: no humans here"]


@pytest.mark.parametrize("mode", MODES)
def test_no_elicitation_capability(front, mode):
    async def body(c: Client):
        with pytest.raises(MCPError) as missing:
            await c.call_tool(front.name("confirm"), {"action": "deploy"})
        return missing.value

    error, _ = run(run_client(front.url, mode, body))
    assert "needs the client's elicitation capability" in error.error.message
    assert error.error.data == {"requiredCapabilities": {"elicitation": {}}}
    assert error.error.code == (-32021 if mode == "auto" else -32602)


def test_missing_capability_is_400_with_required_capabilities(host):
    """2026-07-28 basic/index.mdx: MissingRequiredClientCapabilityError, HTTP 400, before anything is sent."""
    reply = modern_post(host.port, "tools/call", {"name": "ask_model", "arguments": {"question": "why"}},
                        meta=modern_meta(capabilities=ELICIT_CAPS))
    assert reply.status == 400
    msg = check_response(reply.json(), MODERN_VERSION, "tools/call")
    assert msg["error"]["code"] == -32021
    assert msg["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


@pytest.mark.parametrize("mode", MODES)
def test_cancelled_while_waiting(front_of, mode):
    """The user never answers. 2025-11-25: the call's deadline passes; the plugin hears CANCELLED and the client
    a notifications/cancelled for the host's request, which ends its callback. 2026-07-28: the client abandons its
    loop; the host holds nothing (no call in flight), and serves the next call. Behind the gateway the same: its
    own deadline passes while it waits for the client (the server already answered input_required)."""
    h = front_of("--call-timeout", "1.5")
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
                        await c.call_tool(h.name("confirm"), {"action": "deploy"})
                    tg.start_soon(call)
                    await waiting.wait()
                    tg.cancel_scope.cancel()
            return await c.call_tool(h.name("echo"), {"text": "still here"})
        return await c.call_tool(h.name("confirm"), {"action": "deploy"})

    result, _ = run(run_client(h.url, mode, body, elicitation_callback=callback))
    if mode == "auto":
        assert texts(result) == ["still here"]
    else:
        assert result.is_error is True
        assert "did not finish within its deadline" in texts(result)[0]
        wait_until(lambda: ended, 10, "the client's elicitation callback to be cancelled")
        assert ended == ["cancelled"]


# ------------------------------------------------------------------------------------------------------------
# Sampling and roots
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_sampling(front, mode):
    asked: list = []

    async def sampling(context, params):
        asked.append(params)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="42"),
                                         model="test-model")

    async def body(c: Client):
        return await c.call_tool(front.name("ask_model"), {"question": "What is 6 × 7? \"quoted\""})

    result, _ = run(run_client(front.url, mode, body, sampling_callback=sampling))
    assert texts(result) == ["The model (test-model) says: 42"]
    [params] = asked
    assert params.max_tokens == 200
    assert [m.content.text for m in params.messages] == ["What is 6 × 7? \"quoted\""]


@pytest.mark.parametrize("mode", MODES)
def test_roots(front, mode):
    async def roots(context):
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/a", name="a"), types.Root(uri="file:///srv/b")])

    async def body(c: Client):
        return await c.call_tool(front.name("list_roots"), {})

    result, _ = run(run_client(front.url, mode, body, list_roots_callback=roots))
    assert texts(result) == ["file:///srv/a", "file:///srv/b", "2 roots"]


# ------------------------------------------------------------------------------------------------------------
# requestState: sealed, bound to the request, shared by the replicas of a server
# ------------------------------------------------------------------------------------------------------------

CONFIRM = {"name": "confirm", "arguments": {"action": "deploy"}}
ACCEPT = {"confirm": {"action": "accept", "content": {"confirm": True}}}


def first_attempt(port: int, params: dict = CONFIRM) -> dict:
    reply = modern_post(port, "tools/call", params, meta=modern_meta(capabilities=ELICIT_CAPS))
    assert reply.status == 200
    result = check_response(reply.json(), MODERN_VERSION, "tools/call")["result"]
    assert result["resultType"] == "input_required"
    assert "ttlMs" not in result and "cacheScope" not in result  # caching.mdx: input_required carries no hints
    assert set(result["inputRequests"]) == {"confirm"}
    assert result["inputRequests"]["confirm"]["method"] == "elicitation/create"
    return result


def retry(port: int, params: dict, state: str | None, responses: dict | None = ACCEPT, id=2):
    p = dict(params)
    if state is not None:
        p["requestState"] = state
    if responses is not None:
        p["inputResponses"] = responses
    return modern_post(port, "tools/call", p, id=id, meta=modern_meta(capabilities=ELICIT_CAPS))


def test_a_retry_completes_at_another_host_with_the_same_key(host_factory, reference_plugin):
    key = "ab" * 32
    a = host_factory(reference_plugin, env={"MCP_REQUEST_STATE_KEY": key})
    b = host_factory(reference_plugin, env={"MCP_REQUEST_STATE_KEY": key})
    other = host_factory(reference_plugin, env={"MCP_REQUEST_STATE_KEY": "cd" * 32})
    state = first_attempt(a.port)["requestState"]
    done = retry(b.port, CONFIRM, state)
    msg = check_response(done.json(), MODERN_VERSION, "tools/call")
    assert msg["result"]["resultType"] == "complete"
    assert [c["text"] for c in msg["result"]["content"]] == ["Confirmed: deploy (after a retry carrying ticket-1)"]
    # A server with another key cannot open it.
    refused = retry(other.port, CONFIRM, state)
    assert refused.json()["error"]["code"] == -32602
    assert "Invalid requestState" in refused.json()["error"]["message"]


def test_request_state_is_bound_to_the_request(host):
    state = first_attempt(host.port)["requestState"]
    # Other arguments, another tool, an edited token: refused with -32602, and nothing reaches the plugin.
    for params, token in [
        ({"name": "confirm", "arguments": {"action": "destroy"}}, state),
        ({"name": "echo", "arguments": {"text": "x"}}, state),
        (CONFIRM, state[:-4] + ("AAAA" if state[-4:] != "AAAA" else "BBBB")),
        (CONFIRM, "not base64 at all!"),
    ]:
        reply = retry(host.port, params, token)
        assert reply.status == 200
        error = check_response(reply.json(), MODERN_VERSION, "tools/call")["error"]
        assert error["code"] == -32602 and "requestState" in error["message"], (params, error)
    # The untouched state still works afterwards; a missing answer is asked again, not an error.
    again = check_response(retry(host.port, CONFIRM, state, responses={}).json(), MODERN_VERSION, "tools/call")
    assert again["result"]["resultType"] == "input_required"
    done = retry(host.port, CONFIRM, state)
    assert done.json()["result"]["resultType"] == "complete"


def test_request_state_expires(host_factory, reference_plugin):
    h = host_factory(reference_plugin, "--request-state-ttl", "0.05")
    state = first_attempt(h.port)["requestState"]
    issued = time.monotonic()
    while time.monotonic() - issued < 0.2:  # the clock, not an event, is what expires it
        pass
    reply = retry(h.port, CONFIRM, state)
    assert reply.json()["error"]["code"] == -32602
    assert "Expired requestState" in reply.json()["error"]["message"]


# ------------------------------------------------------------------------------------------------------------
# Subscriptions
# ------------------------------------------------------------------------------------------------------------


def test_listen_gets_only_what_it_asked_for(host):
    """2026-07-28 subscriptions/listen through the SDK: acknowledged first, then only the requested types."""
    async def body(c: Client):
        events = []
        async with c.listen(tools_list_changed=True, resource_subscriptions=["reference://readme"]) as sub:
            # Not asked for: prompts list changes and another resource's updates. Then what was asked for.
            await c.call_tool("announce", {"lists": 4, "uri": "reference://notes/1"})
            await c.call_tool("announce", {"lists": 1})
            await c.call_tool("announce", {"uri": "reference://readme"})
            async for event in sub:
                events.append(event)
                if len(events) == 2:
                    break
        return events, sub

    (events, sub), seen = run(run_client(host.url, "auto", body))
    kinds = [type(e).__name__ for e in events]
    assert len(events) == 2, kinds
    first, second = events
    assert "Tool" in type(first).__name__, kinds
    assert getattr(second, "uri", None) == "reference://readme", kinds
    assert seen["subscriptions/listen"] == 1


def test_listen_wire_format(host):
    """The raw stream: the acknowledgement with the honoured subset, then each notification tagged with the
    subscription id (schema-checked), and nothing on it that was not asked for."""
    import http.client
    from conftest import modern_body, modern_headers

    params = {"notifications": {"promptsListChanged": True, "resourceSubscriptions": ["reference://notes/2", "nope://x"]}}
    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=20)
    body = json.dumps(modern_body("subscriptions/listen", params, id="listen-1")).encode()
    headers = {**modern_headers("subscriptions/listen", params), "Content-Type": "application/json"}
    conn.request("POST", "/mcp", body=body, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")

    def next_message():
        buf = b""
        while True:
            line = resp.readline()
            assert line, "the listen stream ended"
            buf += line
            if line in (b"\n", b"\r\n"):
                events = parse_sse(buf)
                if events:
                    return check_server_message(events[0].json(), MODERN_VERSION, "subscriptions/listen")
                buf = b""

    ack = next_message()
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"
    # Unknown URIs are not honoured.
    assert ack["params"]["notifications"] == {"promptsListChanged": True, "resourceSubscriptions": ["reference://notes/2"]}
    modern_post(host.port, "tools/call", {"name": "announce", "arguments": {"lists": 1, "uri": "reference://readme"}})
    modern_post(host.port, "tools/call", {"name": "announce", "arguments": {"lists": 4, "uri": "reference://notes/2"}})
    # The update is reported at once, the list change after the host re-read the declarations: either order.
    got = sorted([next_message(), next_message()], key=lambda m: m["method"])
    assert [m["method"] for m in got] == ["notifications/prompts/list_changed", "notifications/resources/updated"]
    assert got[1]["params"]["uri"] == "reference://notes/2"
    assert all(m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1" for m in got)
    conn.close()


def test_legacy_subscribe_and_list_changes(host):
    """2025-11-25: resources/updated only for subscribed URIs; list changes reach the session's GET stream."""
    received: list = []

    async def on_message(message):
        if isinstance(message, types.ServerNotification) or hasattr(message, "root"):
            received.append(getattr(message, "root", message))

    async def body(c: Client):
        await c.subscribe_resource("reference://readme")
        await c.call_tool("announce", {"uri": "reference://notes/1"})  # not subscribed
        await c.call_tool("announce", {"uri": "reference://readme", "lists": 1})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            names = [type(m).__name__ for m in received]
            if any("ResourceUpdated" in n for n in names) and any("ToolListChanged" in n for n in names):
                break
            await anyio.sleep(0.02)
        await c.unsubscribe_resource("reference://readme")
        return list(received)

    got, seen = run(run_client(host.url, "legacy", body, message_handler=on_message))
    updates = [m for m in got if "ResourceUpdated" in type(m).__name__]
    assert [u.params.uri for u in updates] == ["reference://readme"], got
    assert any("ToolListChanged" in type(m).__name__ for m in got), got
    assert seen["resources/subscribe"] == 1 and seen["resources/unsubscribe"] == 1


# ------------------------------------------------------------------------------------------------------------
# Cache hints
# ------------------------------------------------------------------------------------------------------------


def test_cache_hints(host):
    """The plugin's hints (ABI 1.1): lists public for a minute, the readme for five, a note with the default;
    the same on every page; none in the legacy era. Schema-checked."""
    for method in ["tools/list", "resources/list", "resources/templates/list", "prompts/list"]:
        result = check_response(modern_post(host.port, method, {}).json(), MODERN_VERSION, method)["result"]
        assert (result["ttlMs"], result["cacheScope"]) == (60000, "public"), method
    readme = modern_post(host.port, "resources/read", {"uri": "reference://readme"})
    result = check_response(readme.json(), MODERN_VERSION, "resources/read")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (300000, "public")
    note = modern_post(host.port, "resources/read", {"uri": "reference://notes/1"})
    result = check_response(note.json(), MODERN_VERSION, "resources/read")["result"]
    assert (result["ttlMs"], result["cacheScope"]) == (0, "private")
    s = LegacySession(host.port, "2025-11-25")
    s.initialize()
    legacy = s.request("resources/read", {"uri": "reference://readme"}).final()
    check_response(legacy, "2025-11-25", "resources/read")
    assert "ttlMs" not in legacy["result"] and "cacheScope" not in legacy["result"]
    s.delete()


def test_supervisor_replicas_share_the_key_and_a_restart_keeps_it(env, reference_plugin):
    """Two replicas of one server get the same key (the supervisor's state_dir/request-state/<server>.key, 0600);
    a state issued before `restart` opens at the replicas started after it."""
    port = free_port()
    env.write_server("ref", reference_plugin, port=port, replicas=2)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)

    def running_pids() -> list[int]:
        replicas = env.status("ref")["replicas"]
        if len(replicas) == 2 and all(r["state"] == "running" and r["pid"] for r in replicas):
            return [r["pid"] for r in replicas]
        return []

    pids = wait_until(running_pids, 30, "two replicas running")
    key_file = env.state_dir / "request-state" / "ref.key"
    assert (key_file.stat().st_mode & 0o777) == 0o600
    key = key_file.read_text().strip()

    def environ(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(item.decode().split("=", 1) for item in raw if b"=" in item)

    assert [environ(pid).get("MCP_REQUEST_STATE_KEY") for pid in pids] == [key, key]
    state = first_attempt(port)["requestState"]
    reply = env.control("restart", {"servers": ["ref"]})
    assert "result" in reply, reply
    wait_until(lambda: (now := running_pids()) and not set(now) & set(pids), 30, "two new replicas running")
    done = check_response(retry(port, CONFIRM, state).json(), MODERN_VERSION, "tools/call")
    assert done["result"]["resultType"] == "complete"
    assert key_file.read_text().strip() == key


def test_no_request_reaches_a_client_before_its_initialized_notification(host):
    """lifecycle.mdx: the server sends no request but ping before the client's notifications/initialized. A
    call that overtakes it (another connection) waits: its elicitation/create goes out only once initialized
    has arrived (nothing at all is written to the call's connection before), and the call then completes."""
    import socket

    from conftest import ACCEPT_BOTH, http_call

    init = http_call(host.port, "POST", body={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                   "clientInfo": {"name": "early-caller", "version": "1"}}}, headers={"Accept": ACCEPT_BOTH})
    assert init.status == 200
    s = LegacySession(host.port, "2025-11-25")
    s.session_id = init.header("Mcp-Session-Id")
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                       "params": {"name": "confirm", "arguments": {"action": "deploy"}}}).encode()
    head = [f"POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{host.port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in s.headers().items()]
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    raw = b""

    def read_until(marker: bytes, seconds: float) -> bool:
        nonlocal raw
        deadline = time.monotonic() + seconds
        while marker not in raw and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            raw += data
        return marker in raw

    def message(marker: bytes) -> dict:
        line = next(x for x in raw.split(b"\n") if marker in x and x.startswith(b"data: "))
        return json.loads(line[len(b"data: "):])

    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        # The plugin asks at once; without the client's initialized nothing goes out, not even the headers.
        assert not read_until(b"elicitation/create", 1.0), raw
        assert raw == b"", raw
        assert s.notify("notifications/initialized").status == 202
        assert read_until(b"elicitation/create", 10), raw
        request = message(b"elicitation/create")
        answer = http_call(host.port, "POST", body={"jsonrpc": "2.0", "id": request["id"], "result": {
            "action": "accept", "content": {"confirm": True}}}, headers=s.headers())
        assert answer.status == 202
        assert read_until(b"Confirmed: deploy", 10), raw
        final = message(b"Confirmed: deploy")
        assert final["id"] == 5 and "result" in final, final
    finally:
        sock.close()
        s.delete()


def test_a_client_that_never_says_initialized_is_not_asked(host):
    """The grace for notifications/initialized (2 s) passes: the plugin hears UNSUPPORTED, and the call is
    answered without any request having been sent to that client."""
    from conftest import ACCEPT_BOTH, http_call

    init = http_call(host.port, "POST", body={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                   "clientInfo": {"name": "silent", "version": "1"}}}, headers={"Accept": ACCEPT_BOTH})
    s = LegacySession(host.port, "2025-11-25")
    s.session_id = init.header("Mcp-Session-Id")
    started = time.monotonic()
    reply = s.request("tools/call", {"name": "confirm", "arguments": {"action": "deploy"}}, timeout=20)
    assert 1.9 <= time.monotonic() - started < 15
    assert reply.status == 200
    assert b"elicitation/create" not in reply.body, reply.body
    events = parse_sse(reply.body) if reply.header("Content-Type") == "text/event-stream" else []
    final = events[-1].json() if events else reply.json()
    assert final["id"] == 1 and ("error" in final or final["result"].get("isError")), final
    s.delete()


# ------------------------------------------------------------------------------------------------------------
# Through the gateway: its own requestState, and the retry goes back to the server that asked
# ------------------------------------------------------------------------------------------------------------


def test_the_gateways_request_state_is_its_own_and_leads_back_to_the_server_that_asked(env, reference_plugin):
    """Two equivalent servers (each with its own requestState key) behind the gateway: a 2026-07-28 client's
    retry may not go to the other one, so the gateway seals the name of the server that asked into its own
    requestState. Every one of 16 calls completes (without the pinning about half would reach the server that
    cannot open the state); a server's state is not the gateway's, nor the other way round."""
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), gateway={"port": port})
    env.write_server("ref", reference_plugin)
    env.write_server("twin", reference_plugin, equivalent_to=["ref"])
    run_ = env.start()
    run_.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)

    def up() -> bool:
        # Both probed healthy, so the gateway's weighted choice sends first attempts to both alike.
        if not all(env.status(n)["state"] == "running" and env.status(n)["score"] >= 0.9 for n in ("ref", "twin")):
            return False
        reply = modern_post(port, "tools/list")
        return reply.status == 200 and any(t["name"] == "ref__confirm" for t in reply.json()["result"]["tools"])
    wait_until(up, 30, "ref and twin behind the gateway")
    url = f"http://127.0.0.1:{port}/mcp"
    asked: list = []

    async def body(c: Client):
        return [texts(await c.call_tool("ref__confirm", {"action": f"deploy {i}"})) for i in range(16)]

    results, seen = run(run_client(url, "auto", body, elicitation_callback=accept_confirm(asked)))
    assert results == [[f"Confirmed: deploy {i} (after a retry carrying ticket-1)"] for i in range(16)]
    assert len(asked) == 16 and seen["tools/call"] == 32

    confirm = {"name": "ref__confirm", "arguments": {"action": "deploy"}}
    gateway_state = first_attempt(port, confirm)["requestState"]
    server_port = env.status("ref")["port"]
    server_state = first_attempt(server_port)["requestState"]
    for at, params, state in [(port, confirm, server_state), (server_port, CONFIRM, gateway_state),
                              (port, confirm, "not base64 at all!")]:
        reply = retry(at, params, state)
        error = check_response(reply.json(), MODERN_VERSION, "tools/call")["error"]
        assert error["code"] == -32602 and "Invalid requestState" in error["message"], (at, error)
    done = check_response(retry(port, confirm, gateway_state).json(), MODERN_VERSION, "tools/call")["result"]
    assert done["resultType"] == "complete"
    assert [c["text"] for c in done["content"]] == ["Confirmed: deploy (after a retry carrying ticket-1)"]
    run_.stop()
