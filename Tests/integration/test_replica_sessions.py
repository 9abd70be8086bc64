"""Legacy (2025) sessions across replicas (docs/protocol.md, "Legacy sessions across replicas").

Replicas share one listening socket, so a legacy client's next connection may reach another replica than the one
that answered its `initialize`. Found by the chaos soak: such a request was answered 404 "Session not found". The
session id is now sealed under the key the replicas share and the other replica adopts it. Which replica accepts
is forced by stopping (SIGSTOP) the one that must not.
"""

from __future__ import annotations

import http.client
import json
import os
import signal

from conftest import parse_sse, plugin_path
from supervisor_fixtures import control_env, proc_info, wait_until  # noqa: F401  (control_env is the `env` fixture)

LEGACY = "2025-11-25"


def post(port: int, body: dict, session: str | None = None) -> tuple[int, dict[str, str], dict | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": LEGACY}
    if session:
        headers["Mcp-Session-Id"] = session
    try:
        conn.request("POST", "/mcp", body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if not raw:
            return resp.status, hdrs, None
        if hdrs.get("content-type", "").startswith("text/event-stream"):
            events = [e.json() for e in parse_sse(raw)]
            return resp.status, hdrs, next((e for e in events if "id" in e), None)
        return resp.status, hdrs, json.loads(raw)
    finally:
        conn.close()


def stopped(pid: int):
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: proc_info(pid).state == "T", 5, f"{pid} stopped")


def test_a_legacy_session_made_on_one_replica_is_served_by_the_other(env):
    env.write_server("ref", plugin_path("reference"), replicas=2)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: all(r["state"] == "running" for r in env.status("ref")["replicas"]), 20, "both running")
    port = env.status("ref")["port"]
    pids = [r["pid"] for r in env.status("ref")["replicas"]]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {"elicitation": {}},
                       "clientInfo": {"name": "t", "version": "1"}}}
    stopped(pids[1])
    try:
        status, headers, reply = post(port, init)  # replica 0 makes the session
        assert status == 200 and reply["result"]["protocolVersion"] == LEGACY, reply
        session = headers["mcp-session-id"]
        assert all(0x21 <= ord(c) <= 0x7E for c in session), session  # visible ASCII (transports.mdx)
        assert post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)[0] == 202
    finally:
        os.kill(pids[1], signal.SIGCONT)
    stopped(pids[0])
    try:
        # Replica 1 never saw this session: it adopts it, with the version the client negotiated.
        status, _, reply = post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                       "params": {"name": "echo", "arguments": {"text": "other replica"}}}, session)
        assert status == 200 and reply["result"]["content"][0]["text"] == "other replica", reply
        # An edited id, or one the key did not make, is still unknown.
        tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
        status, _, reply = post(port, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, tampered)
        assert status == 404 and "Session not found" in reply["error"]["message"], reply
        status, _, _ = post(port, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, "s1.bm90LXNlYWxlZA")
        assert status == 404
    finally:
        os.kill(pids[0], signal.SIGCONT)
