"""LeakSanitizer (issue 17; docs/reliability.md, "Sanitizers"): a host that served many calls and a supervisor that
performed many restarts leak nothing. LeakSanitizer checks a process when it exits, so each test ends its process
the ordinary way (SIGTERM, the drain, exit) and then looks for the report.

Only in an AddressSanitizer run (scripts/sanitize.sh address, or `leaks` for the full counts: MCP_LEAK_CALLS
100,000 and MCP_LEAK_RESTARTS 10,000; the test command's short run uses the defaults below). The first test shows
that the detector sees a leak in this very set-up (a plugin told to leak), so a clean report means something.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import SANITIZER, modern_body, modern_headers, plugin_path, start_host
from supervisor_fixtures import control_env, wait_until  # noqa: F401  (control_env is the `env` fixture)

pytestmark = pytest.mark.skipif(
    SANITIZER != "address", reason="LeakSanitizer needs the AddressSanitizer build (scripts/sanitize.sh address|leaks)")

CALLS = int(os.environ.get("MCP_LEAK_CALLS", "3000"))
RESTARTS = int(os.environ.get("MCP_LEAK_RESTARTS", "300"))


def leak_checked(folder: Path) -> dict[str, str]:
    """The environment of a process LeakSanitizer checks at its exit, reporting into `folder` (the run's other
    options kept; its report folder and detect_leaks=0 replaced)."""
    kept = [o for o in os.environ.get("ASAN_OPTIONS", "").split(":")
            if o and not o.startswith(("detect_leaks=", "log_path="))]
    return {"ASAN_OPTIONS": ":".join([*kept, "detect_leaks=1", f"log_path={folder}/leak"])}


def reports(folder: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in sorted(folder.iterdir())]


def terminate(proc: subprocess.Popen, timeout: float = 120) -> int:
    """SIGTERM and the exit status (LeakSanitizer runs at exit, in the process: the wait includes its scan)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def modern_calls(port: int, count: int, name: str, arguments: dict, threads: int = 4) -> int:
    """`count` 2026-07-28 tools/call requests over kept-alive connections on `threads` threads; the number
    answered 200 with a result."""
    params = {"name": name, "arguments": arguments}
    body = json.dumps(modern_body("tools/call", params)).encode()
    headers = {**modern_headers("tools/call", params), "Content-Type": "application/json"}
    done = [0] * threads

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(count // threads + (1 if i < count % threads else 0)):
            conn.request("POST", "/mcp", body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            if reply.status == 200 and b'"result"' in data:
                done[i] += 1
        conn.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done)


def other_traffic(port: int) -> None:
    """The paths around the calls, each a few times: lists, a resource, errors of every kind the engine answers,
    a legacy session with its SSE stream, a request cut off halfway, a connection closed with a call in flight."""
    for method, params in (("tools/list", {}), ("resources/list", {}), ("prompts/list", {}),
                           ("resources/read", {"uri": "reference://readme"}),
                           ("tools/call", {"name": "no_such_tool", "arguments": {}}),
                           ("tools/call", {"name": "add", "arguments": {"a": "x"}})):
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/mcp", body=json.dumps(modern_body(method, params)).encode(),
                         headers={**modern_headers(method, params), "Content-Type": "application/json"})
            assert conn.getresponse().read()
            conn.close()
    for raw in (b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{not json",
                b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
                b"BREW /mcp HTCPCP/1.0\r\n\r\n",
                b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Len"):
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
    # Legacy sessions: initialize, a call, the GET stream, DELETE.
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "leaks", "version": "1"}}
    for i in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        legacy = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        conn.request("POST", "/mcp", body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                      "params": init}).encode(), headers=legacy)
        reply = conn.getresponse()
        reply.read()
        session = reply.getheader("Mcp-Session-Id")
        assert session, "no legacy session"
        legacy = {**legacy, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        for body in ({"jsonrpc": "2.0", "method": "notifications/initialized"},
                     {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": f"legacy {i}"}}}):
            conn.request("POST", "/mcp", body=json.dumps(body).encode(), headers=legacy)
            conn.getresponse().read()
        conn.request("DELETE", "/mcp", headers=legacy)
        conn.getresponse().read()
        conn.close()
    # A call in flight when its client goes away (slow_count counts seconds, polling for cancellation).
    for _ in range(10):
        params = {"name": "slow_count", "arguments": {"seconds": 2}}
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            body = json.dumps(modern_body("tools/call", params)).encode()
            head = "".join(f"{k}: {v}\r\n" for k, v in modern_headers("tools/call", params).items())
            s.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head}"
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            s.recv(1)


def test_leak_detection_sees_a_plugin_that_leaks(tmp_path):
    """The control: the faulty plugin told to leak 4 KiB per `ok` call is reported, every block of it (the
    plugin is loaded through /proc/self/fd, so the report names no file)."""
    folder = tmp_path / "lsan"
    folder.mkdir()
    host = start_host(plugin_path("faulty"), config=json.dumps({"leak_per_call": 4096}), env=leak_checked(folder))
    assert modern_calls(host.port, 50, "ok", {}, threads=1) == 50
    terminate(host.proc)
    found = reports(folder)
    assert found, "LeakSanitizer reported nothing for a plugin that leaked 50 blocks"
    text = "\n".join(found)
    assert "ERROR: LeakSanitizer: detected memory leaks" in text, text[:3000]
    assert "Direct leak of 204800 byte(s) in 50 object(s)" in text, text[:3000]
    # Nothing else: the host's own allocations are all reachable or freed.
    assert text.count("leak of ") == 1, text[:6000]


def test_a_host_that_served_many_calls_leaks_nothing(tmp_path):
    folder = tmp_path / "lsan"
    folder.mkdir()
    host = start_host(plugin_path("reference"), env=leak_checked(folder))
    other_traffic(host.port)
    assert modern_calls(host.port, CALLS, "echo", {"text": "leak check"}) == CALLS
    other_traffic(host.port)
    status = terminate(host.proc)
    found = reports(folder)
    assert not found, found[0][:6000]
    assert status == 0, f"the host exited with {status} after SIGTERM"


def test_a_supervisor_that_performed_many_restarts_leaks_nothing(env, tmp_path):
    """Two replicas of a host that exits 10 ms after it is ready, restarted at once each time: the supervisor's
    spawn, ready, heartbeat, exit, reap and backoff paths RESTARTS times, then SIGTERM."""
    folder = tmp_path / "lsan"
    folder.mkdir()
    env.write_main(control_socket=str(env.control_socket))
    env.write_server("flaps", plugin_path("faulty"), replicas=2, config={"exit_after_ms": 10},
                     backoff={"initial": 0.001, "max": 0.001, "multiplier": 1, "jitter": 0},
                     intensity={"max_restarts": 1_000_000, "window": 1})
    run = env.start(environ={**os.environ, **leak_checked(folder)})
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 30)

    def restarts() -> int:
        return sum(r["restarts"] for r in env.status("flaps")["replicas"])

    deadline = max(120, RESTARTS * 0.5)
    wait_until(lambda: restarts() >= RESTARTS, deadline, f"{RESTARTS} restarts", interval=0.5)
    try:
        run.stop(timeout=120)  # status 0 and nothing of its tree left (LeakSanitizer's finding would make it 23)
    finally:
        # The report first, if there is one. The hosts report into the same folder (their memory errors would).
        found = reports(folder)
        assert not found, found[0][:6000]
