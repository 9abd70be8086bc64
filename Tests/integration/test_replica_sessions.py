"""Legacy (2025) sessions across replicas (docs/protocol.md, "Legacy sessions across replicas").

Replicas share one listening socket, so a legacy client's next connection may reach another replica than the one
that answered its `initialize`. Found by the chaos soak: such a request was answered 404 "Session not found". The
session id is now sealed under the key the replicas share and the other replica adopts it; a DELETE on one replica
is relayed to the others by the supervisor. Which replica accepts is forced by stopping (SIGSTOP) the one that must
not.
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


def two_replicas(env) -> tuple[int, list[int]]:
    """A supervisor with `ref` in two replicas, both running: its port and the two pids."""
    env.write_server("ref", plugin_path("reference"), replicas=2)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: all(r["state"] == "running" for r in env.status("ref")["replicas"]), 20, "both running")
    return env.status("ref")["port"], [r["pid"] for r in env.status("ref")["replicas"]]


def test_a_legacy_session_made_on_one_replica_is_served_by_the_other(env):
    port, pids = two_replicas(env)
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


def delete(port: int, session: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("DELETE", "/mcp", headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_a_session_deleted_on_one_replica_ends_on_the_other(env):
    """A DELETE reaches one replica; the supervisor relays the end to the other, which then answers 404 for the id
    (it would otherwise adopt it, as above) and ends the copy it had adopted."""
    port, pids = two_replicas(env)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    stopped(pids[0])
    try:  # replica 1 makes the session
        status, headers, _ = post(port, init)
        assert status == 200
        session = headers["mcp-session-id"]
        assert post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)[0] == 202
    finally:
        os.kill(pids[0], signal.SIGCONT)
    stopped(pids[1])
    try:  # replica 0 adopts it, then a DELETE ends it there
        status, _, reply = post(port, listing, session)
        assert status == 200 and reply["result"]["tools"], reply
        assert delete(port, session) == 204
        assert post(port, listing, session)[0] == 404
    finally:
        os.kill(pids[1], signal.SIGCONT)
    stopped(pids[0])
    try:  # replica 1, which made the session, hears of the DELETE from the supervisor
        seen: list[int] = []

        def ended() -> bool:
            status, _, reply = post(port, listing, session)
            seen.append(status)
            return status == 404 and "Session not found" in reply["error"]["message"]

        wait_until(ended, 10, "the session ended on the replica that made it")
        assert seen.count(404) == 1 and all(s == 200 for s in seen[:-1]), seen
        assert post(port, listing, session)[0] == 404  # and it stays ended
    finally:
        os.kill(pids[0], signal.SIGCONT)
    assert [r["pid"] for r in env.status("ref")["replicas"]] == pids  # neither replica restarted
