-- wrk script: one 2025-11-25 tools/call of the echo tool per request, in the session SESSION (when set), the
-- way every peer of bench/commands serves it (a session-era request; the stdio program behind speaks 2025-11-25).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local session = os.getenv("SESSION") or ""
if session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'

done = function(summary, latency, requests)
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        summary.errors.status))
end
