"""Host start-to-ready and tools/call throughput, boxed (full box) vs unboxed (bench/box/run.sh)."""

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = os.environ.get("MCP_PLUGIN_HOST", str(REPO / ".build" / "release" / "mcp-plugin-host"))
PLUGIN = Path(os.environ.get("MCP_PLUGIN_DIR", REPO / ".build-plugins")) / "libreference.so"
SRC = (REPO / "Sources" / "Contracts" / "BoxSpec+System.swift").read_text()


def fixed(name):
    return re.findall(r'"([^"]+)"', re.search(name + r": \[String\] = \[(.*?)\]", SRC, re.S).group(1))


FULL = {"enabled": True, "uid": 65534, "gid": 65534, "open_files_max": 256, "processes_max": 256,
        "memory_max": 1 << 30, "network": "none", "read_paths": fixed("systemReadPaths") + [str(PLUGIN.parent)],
        "write_paths": fixed("systemWritePaths")}
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "echo", "arguments": {"text": "x"}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}


def start(box):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    env = dict(os.environ, MCP_LISTEN_FD=str(ls.fileno()))
    env.pop("MCP_BOX", None)
    if box:
        env["MCP_BOX"] = json.dumps(box)
    t0 = time.monotonic()
    p = subprocess.Popen([HOST, "--plugin", str(PLUGIN)], env=env, pass_fds=[ls.fileno()], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    ready = time.monotonic() - t0
    assert "serving" in line, line
    return p, ls, ready


def stop(p, ls):
    p.terminate()
    p.wait()
    p.stdout.close()
    ls.close()


def main():
    starts, calls = int(sys.argv[1]), int(sys.argv[2])
    for label, box in (("none", None), ("full", FULL)):
        readies = []
        for _ in range(starts):
            p, ls, ready = start(box)
            readies.append(ready * 1000)
            stop(p, ls)
        p, ls, _ = start(box)
        conn = http.client.HTTPConnection("127.0.0.1", ls.getsockname()[1], timeout=10)
        t0 = time.monotonic()
        for _ in range(calls):
            conn.request("POST", "/mcp", BODY, HEADERS)
            r = conn.getresponse()
            r.read()
            assert r.status == 200
        rate = calls / (time.monotonic() - t0)
        conn.close()
        stop(p, ls)
        print(f"box={label}: start-to-ready p50 {statistics.median(readies):.1f} ms "
              f"(n={starts}), sequential tools/call {rate:.0f}/s (n={calls}, one keep-alive connection)")


main()
