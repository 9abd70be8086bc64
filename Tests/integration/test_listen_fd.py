"""The supervisor's way of starting a host: an inherited listening socket named by MCP_LISTEN_FD."""

import json
import os
import selectors
import signal
import socket
import subprocess
import time
import urllib.request

from conftest import host_binary, plugin_path

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def call_echo(port: int, text: str) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}, "_meta": MODERN_META}}
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/mcp", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                 "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=deadline - time.monotonic()):
                return proc.stdout.readline()
        raise AssertionError("no serving line")
    finally:
        sel.close()


def test_serves_an_inherited_listening_socket_and_connections_wait_in_the_backlog():
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    port = lsock.getsockname()[1]
    # A client connects before any host runs: the kernel's backlog holds it (this is what keeps a port
    # from refusing connections while the supervisor restarts a child).
    early = socket.create_connection(("127.0.0.1", port), timeout=5)
    env = dict(os.environ, MCP_LISTEN_FD=str(lsock.fileno()))
    proc = subprocess.Popen([str(host_binary()), "--plugin", str(plugin_path("reference"))],
                            env=env, pass_fds=[lsock.fileno()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        line = wait_line(proc)
        assert f":{port}/mcp" in line, line
        # the early connection is served once the host is up
        early.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        early.settimeout(10)
        first = early.recv(64)
        assert first.startswith(b"HTTP/1.1 405"), first
        assert call_echo(port, "via fd")["result"]["content"][0]["text"] == "via fd"
    finally:
        early.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()
        proc.stderr.close()
    # The socket belongs to the parent: it still accepts after the host is gone.
    probe = socket.create_connection(("127.0.0.1", port), timeout=5)
    probe.close()
    lsock.close()


def test_rejects_an_fd_that_is_not_a_listening_socket(tmp_path):
    f = open(tmp_path / "plain", "w")
    try:
        env = dict(os.environ, MCP_LISTEN_FD=str(f.fileno()))
        r = subprocess.run([str(host_binary()), "--plugin", str(plugin_path("reference"))], env=env,
                           pass_fds=[f.fileno()], capture_output=True, text=True, timeout=30)
    finally:
        f.close()
    assert r.returncode == 20, r
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "MCP_LISTEN_FD" in lines[0] and "not a stream socket" in lines[0], r.stderr


def test_without_listen_or_fd_is_a_usage_error():
    env = {k: v for k, v in os.environ.items() if k != "MCP_LISTEN_FD"}
    r = subprocess.run([str(host_binary()), "--plugin", str(plugin_path("reference"))], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64
    assert "--listen" in r.stderr and "MCP_LISTEN_FD" in r.stderr
