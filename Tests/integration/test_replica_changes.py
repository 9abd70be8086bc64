"""A plugin's change notification reaches the listeners of every replica of its server (docs/protocol.md,
"Replicas"): the host that heard it from its plugin tells the supervisor, which relays it to the other replicas'
hosts over their control channels; they notify their own listeners and re-read their declarations.

Which replica accepts a connection on the shared socket is the kernel's choice; the test makes it deterministic by
stopping (SIGSTOP) the replica that must not accept: the listener is opened while replica 1 is stopped (so it is
replica 0's), the change is announced while replica 0 is stopped (so replica 1's plugin reports it), and replica 0's
listener must then receive it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket

from conftest import MODERN_VERSION, modern_body, modern_headers, parse_sse, plugin_path
from schema_check import check_server_message
from supervisor_fixtures import call_tool, control_env, proc_info, wait_until  # noqa: F401  (control_env is the `env` fixture)


def open_listen(port: int, params: dict, id: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    body = json.dumps(modern_body("subscriptions/listen", params, id=id)).encode()
    headers = {**modern_headers("subscriptions/listen", params), "Content-Type": "application/json"}
    conn.request("POST", "/mcp", body=body, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    return conn, resp


def next_message(resp, timeout: float = 15.0) -> dict:
    """The next JSON-RPC message on an SSE stream (priming and keep-alive lines skipped); fails after timeout."""
    resp.fp.raw._sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            line = resp.readline()
        except (socket.timeout, OSError):
            raise AssertionError(f"no message on the listen stream within {timeout} s")
        assert line, "the listen stream ended"
        buf += line
        if line in (b"\n", b"\r\n"):
            events = parse_sse(buf)
            if events:
                return check_server_message(events[0].json(), MODERN_VERSION, "subscriptions/listen")
            buf = b""


def test_a_change_in_one_replica_reaches_the_listeners_of_the_other(env):
    env.write_server("ref", plugin_path("reference"), replicas=2)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: env.status("ref")["state"] == "running"
               and all(r["state"] == "running" for r in env.status("ref")["replicas"]), 20, "both replicas running")
    port = env.status("ref")["port"]
    pids = [r["pid"] for r in env.status("ref")["replicas"]]
    params = {"notifications": {"toolsListChanged": True, "resourceSubscriptions": ["reference://readme"]}}

    conns = []
    try:
        os.kill(pids[1], signal.SIGSTOP)
        # kill() returns before the process has stopped: until it has, it may still accept the connection.
        wait_until(lambda: proc_info(pids[1]).state == "T", 5, "replica 1 stopped")
        try:
            conn, listen = open_listen(port, params, "on-replica-0")  # only replica 0 accepts now
            conns.append(conn)
            ack = next_message(listen)
            assert ack["method"] == "notifications/subscriptions/acknowledged"
        finally:
            os.kill(pids[1], signal.SIGCONT)

        os.kill(pids[0], signal.SIGSTOP)
        wait_until(lambda: proc_info(pids[0]).state == "T", 5, "replica 0 stopped")
        try:
            # Only replica 1 accepts: its plugin reports the change, and replica 1 has no listener of its own.
            assert call_tool(port, "announce", {"lists": 1, "uri": "reference://readme"}) == "announced"
        finally:
            os.kill(pids[0], signal.SIGCONT)

        got = sorted([next_message(listen), next_message(listen)], key=lambda m: m["method"])
        assert [m["method"] for m in got] == ["notifications/resources/updated", "notifications/tools/list_changed"]
        assert got[0]["params"]["uri"] == "reference://readme"
        assert all(m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "on-replica-0" for m in got)

        # The other way round: a listener on replica 1, the change from replica 0's plugin.
        os.kill(pids[0], signal.SIGSTOP)
        wait_until(lambda: proc_info(pids[0]).state == "T", 5, "replica 0 stopped")
        try:
            conn1, listen1 = open_listen(port, {"notifications": {"toolsListChanged": True}}, "on-replica-1")
            conns.append(conn1)
            assert next_message(listen1)["method"] == "notifications/subscriptions/acknowledged"
        finally:
            os.kill(pids[0], signal.SIGCONT)
        os.kill(pids[1], signal.SIGSTOP)
        wait_until(lambda: proc_info(pids[1]).state == "T", 5, "replica 1 stopped")
        try:
            assert call_tool(port, "announce", {"lists": 1}) == "announced"  # replica 0's plugin this time
        finally:
            os.kill(pids[1], signal.SIGCONT)
        assert next_message(listen1)["method"] == "notifications/tools/list_changed"
        assert next_message(listen)["method"] == "notifications/tools/list_changed"
        # No echo: had replica 1 relayed the relayed change back, replica 0's listener would hear tools/list_changed
        # a second time before the next change it asked for.
        os.kill(pids[1], signal.SIGSTOP)
        wait_until(lambda: proc_info(pids[1]).state == "T", 5, "replica 1 stopped")
        try:
            assert call_tool(port, "announce", {"uri": "reference://readme"}) == "announced"
        finally:
            os.kill(pids[1], signal.SIGCONT)
        assert next_message(listen)["method"] == "notifications/resources/updated"
    finally:
        for c in conns:
            c.close()
    # The supervisor saw nothing wrong with either replica.
    assert [r["state"] for r in env.status("ref")["replicas"]] == ["running", "running"]
    assert [r["pid"] for r in env.status("ref")["replicas"]] == pids
