"""Sends N identical 2026-07-28 tools/call requests over one kept-alive connection and checks every answer.
Used by bench/profile/callgrind-host.sh to count the host's instructions per request (load-independent)."""
import http.client
import json
import sys

port, n, tool = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": tool, "arguments": {"text": "hello"},
    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
              "io.modelcontextprotocol/clientCapabilities": {}}}})
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for i in range(n):
    conn.request("POST", "/mcp", body, headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"request {i}: HTTP {r.status}: {data[:200]!r}")
conn.close()
