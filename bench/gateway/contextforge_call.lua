-- wrk script: one 2025-11-25 tools/call per request of the tool TOOL (default echo), for ContextForge, which serves
-- a virtual server's MCP endpoint at MCP_PATH (not /mcp) and wants a bearer token (AUTH) on every request. The
-- session header goes out when SESSION is set (ContextForge 1.1.0 answers initialize without one).
wrk.method = "POST"
local path = os.getenv("MCP_PATH") or ""
if path ~= "" then wrk.path = path end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local auth = os.getenv("AUTH") or ""
if auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end
local session = os.getenv("SESSION") or ""
if session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
local tool = os.getenv("TOOL") or "echo"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"text":"hello"}}}'

-- A 200 that carries a JSON-RPC error or an isError result is not a served call: count those as well (bad=; wrk's
-- non-2xx misses them), so that a misconfigured front cannot pass for a fast one.
local threads = {}
setup = function(thread) table.insert(threads, thread) end
bad = 0
response = function(status, headers, body)
    if status == 200 and (not body:find('"result"', 1, true) or body:find('"isError":true', 1, true)) then
        bad = bad + 1
    end
end

done = function(summary, latency, requests)
    local b = 0
    for _, t in ipairs(threads) do b = b + (t:get("bad") or 0) end
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d bad=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        summary.errors.status, b))
end
