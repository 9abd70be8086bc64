"""Honest answers while a server is down (issue 17, docs/reliability.md "Answers while a server is down").

While a server is fatal (waiting out its cool-down), stopped by an admin, or exited for good, the supervisor answers
every connection to its port at once: HTTP 503, `Retry-After` while a retry is due, and a JSON-RPC error body
naming the server and its state. The moment a child is starting again, new connections wait for it in the backlog
as they always did. Checked with raw sockets (status, headers, body schema) and with the official Python SDK (a
clear error, no hang); hostile connections (silent, oversized, TLS) do not hold the supervisor or leak descriptors.
"""

from __future__ import annotations

import json
import socket
import time

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import plugin_path
from supervisor_fixtures import call_tool, control_env, free_port, wait_until  # noqa: F401  (control_env is the `env` fixture)

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CODE = -31000  # Contracts/UnavailableAnswer.swift
BOUND = 3.0  # generous: the answer's latency is measured in the benchmark, not here
REQUEST = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}).encode()


def raw_request(port: int, payload: bytes | None = None, timeout: float = BOUND) -> tuple[bytes, float]:
    """Sends one POST (or `payload`) on a fresh connection and reads until the server closes; returns what came
    and how long it took."""
    if payload is None:
        payload = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(REQUEST)
                   + REQUEST)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data, time.monotonic() - started


def read_all(s: socket.socket) -> bytes:
    """Reads until the peer closes (a reset after the answer counts as the end)."""
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def parse_503(data: bytes) -> tuple[dict[str, str], dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable", lines[0]
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body), (headers, body)
    assert headers["connection"] == "close"
    doc = json.loads(body)
    # The body is a JSON-RPC error response with a null id (the request was not read as JSON-RPC).
    assert doc["jsonrpc"] == "2.0" and doc["id"] is None and set(doc) == {"jsonrpc", "id", "error"}, doc
    err = doc["error"]
    assert err["code"] == CODE and isinstance(err["message"], str), err
    assert {"server", "state", "reason"} <= set(err["data"]), err
    return headers, err


def start(env):
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    return run


def wait_replicas(env, name: str, state: str, timeout: float = 20) -> None:
    wait_until(lambda: all(r["state"] == state for r in env.status(name)["replicas"]), timeout,
               f"{name}'s replicas {state}")


def crash_looping(env, name: str = "burst", cooldown: float = 30, replicas: int = 1):
    env.write_server(name, plugin_path("faulty"), restart="always", replicas=replicas,
                     config={"exit_after_ms": 50, "exit_status": 3},
                     backoff={"initial": 0.05, "max": 0.1, "multiplier": 1, "jitter": 0},
                     intensity={"max_restarts": 1, "window": 30, "cooldown": cooldown})


def test_a_fatal_server_answers_503_with_retry_after_at_once(env):
    crash_looping(env, replicas=2)
    env.write_server("ok", plugin_path("faulty"))
    run = start(env)
    run.running("ok")
    wait_replicas(env, "burst", "fatal")
    port = env.status("burst")["port"]
    run.wait_for(r"^mcp-supervisor: burst: unavailable \(fatal\): its port answers 503 until it runs again$", 5)

    data, took = raw_request(port)
    assert took < BOUND
    headers, err = parse_503(data)
    retry = int(headers["retry-after"])
    assert 1 <= retry <= 30, headers
    assert err["data"]["server"] == "burst" and err["data"]["state"] == "fatal", err
    assert err["data"]["retryAfterSeconds"] == retry
    assert "exited with status 3" in err["data"]["reason"], err
    assert "burst" in err["message"] and "fatal" in err["message"], err
    # Many at once, each answered; the other server is untouched, the port unchanged.
    for _ in range(20):
        parse_503(raw_request(port)[0])
    assert call_tool(env.status("ok")["port"], "ok") == "ok"
    assert env.status("burst")["port"] == port


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_sdk_client_gets_a_clear_error_and_no_hang(env, mode):
    crash_looping(env)
    run = start(env)
    wait_replicas(env, "burst", "fatal")
    url = f"http://127.0.0.1:{env.status('burst')['port']}/mcp"

    async def connect():
        with anyio.fail_after(10):  # the client's own timeouts are longer: a hang fails here
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0)) as http:
                async with Client(streamable_http_client(url, http_client=http), mode=mode) as c:
                    await c.list_tools()

    with pytest.raises(BaseException) as caught:
        anyio.run(connect)
    errors = [caught.value]
    while isinstance(errors[-1], BaseExceptionGroup):
        errors.append(errors[-1].exceptions[0])
    mcp_errors = [e for e in errors if isinstance(e, MCPError)]
    assert mcp_errors, f"not an MCP error: {errors!r}"
    assert "server 'burst' is unavailable (fatal)" in str(mcp_errors[0]), mcp_errors[0]
    assert run.pid  # the supervisor is still there


def test_an_admin_stop_answers_503_and_a_start_makes_connections_wait_again(env):
    env.write_server("svc", plugin_path("faulty"), config={"create_sleep_ms": 400})
    run = start(env)
    run.running("svc")
    port = env.status("svc")["port"]
    assert env.control("stop", {"server": "svc"})["result"]
    wait_until(lambda: env.status("svc")["state"] == "stopped", 20, "svc stopped")
    headers, err = parse_503(raw_request(port)[0])
    assert "retry-after" not in headers and "retryAfterSeconds" not in err["data"], (headers, err)
    assert err["data"]["state"] == "stopped" and "mcpctl start" in err["data"]["reason"], err
    # `start` returns once the child is spawned (it is then 400 ms from ready): a connection made now waits for
    # it in the backlog and is served, not answered 503.
    assert env.control("start", {"server": "svc"})["result"]
    assert env.status("svc")["state"] == "starting"
    assert call_tool(port, "ok") == "ok"


def test_a_server_that_exited_for_good_answers_503_without_retry_after(env):
    env.write_server("once", plugin_path("faulty"), restart="on-failure", config={"exit_after_ms": 50,
                                                                                   "exit_status": 0})
    start(env)
    wait_replicas(env, "once", "exited")
    headers, err = parse_503(raw_request(env.status("once")["port"])[0])
    assert "retry-after" not in headers, headers
    assert err["data"]["state"] == "exited" and "restart policy" in err["data"]["reason"], err


def test_after_the_cool_down_connections_wait_for_the_new_child(env, tmp_path):
    # A crash loop while the file exists; removed during the cool-down, the next child stays up (and takes 400 ms
    # to be ready, so it is caught starting).
    switch = tmp_path / "crash"
    switch.write_text("")
    env.write_server("slow", plugin_path("faulty"), restart="always",
                     config={"exit_after_ms": 50, "exit_status": 3, "create_sleep_ms": 400},
                     env={"FAULTY_CRASH_WHILE": str(switch)},
                     backoff={"initial": 0.05, "max": 0.1, "multiplier": 1, "jitter": 0},
                     intensity={"max_restarts": 1, "window": 30, "cooldown": 2})
    run = start(env)
    wait_replicas(env, "slow", "fatal")
    port = env.status("slow")["port"]
    headers, _ = parse_503(raw_request(port)[0])
    assert 1 <= int(headers["retry-after"]) <= 2, headers
    switch.unlink()
    mark = run.mark()
    run.wait_for(r"^mcp-supervisor: slow\[\d+\]: starting$", 10, mark)
    # The child is starting: this connection waits for it in the backlog and is served, not answered 503.
    assert call_tool(port, "ok", timeout=10) == "ok"
    assert env.status("slow")["state"] == "running"


def test_hostile_connections_are_bounded_and_leave_nothing_behind(env):
    crash_looping(env)
    run = start(env)
    wait_replicas(env, "burst", "fatal")
    port = env.status("burst")["port"]
    run.wait_for(r"^mcp-supervisor: burst: unavailable \(fatal\)", 5)
    baseline = run.fd_count()

    # 300 silent connections (more than the responder's 256 at once): each is answered after the head timeout
    # (2 s), the rest wait in the backlog meanwhile; the control socket answers throughout.
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(300)]
    try:
        assert env.status("burst")["state"] == "down"
        # An oversized head (1 MiB without an end) is answered after the first 16 KiB, its rest drained.
        big = b"GET /" + b"a" * (1 << 20)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            try:
                s.sendall(big)
            except (BrokenPipeError, ConnectionResetError):
                pass
            got = read_all(s)
            assert got.startswith(b"HTTP/1.1 503 Service Unavailable"), got[:100]
        # A TLS ClientHello is closed at once: the supervisor cannot answer in TLS.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(bytes.fromhex("16030100") + b"\x00" * 60)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        answered = 0
        for s in silent:
            if read_all(s).startswith(b"HTTP/1.1 503"):
                answered += 1
        assert answered == 300, f"{answered} of 300 silent connections answered"
    finally:
        for s in silent:
            s.close()
    # Every connection is closed on the supervisor's side too.
    wait_until(lambda: run.fd_count() <= baseline, 10, f"supervisor fds back to {baseline}")
    assert env.status("burst")["port"] == port


def test_answers_are_counted_in_the_metrics(env):
    metrics = free_port()
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{metrics}")
    crash_looping(env)
    start(env)
    wait_replicas(env, "burst", "fatal")
    port = env.status("burst")["port"]
    for _ in range(3):
        parse_503(raw_request(port)[0])
    with socket.create_connection(("127.0.0.1", metrics), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        page = b""
        while chunk := s.recv(65536):
            page += chunk
    line = next(l for l in page.decode().splitlines()
                if l.startswith('mcp_supervisor_unavailable_answers_total{server="burst"'))
    assert 'state="fatal"' in line and line.endswith(" 3"), line
