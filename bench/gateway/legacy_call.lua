-- wrk script: one 2025-11-25 tools/call per request of the tool TOOL (default echo) in the session SESSION, for a
-- front that speaks only the session era (the FastMCP proxy).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local session = os.getenv("SESSION") or ""
if session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
local tool = os.getenv("TOOL") or "echo"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"text":"hello"}}}'

done = function(summary, latency, requests)
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        summary.errors.status))
end
