"""The gateway (docs/gateway.md), in one run on this machine, same backends for every front:

1. wrk on 2026-07-28 tools/call of the C reference plugin's `echo` served by mcp-plugin-host directly, through
   mcp-gateway, and through the FastMCP 4.1.6 proxy (`create_proxy` over the same host); one connection (latency:
   the gateway's overhead over the direct call at p50) and CONNS connections (throughput). The proxy speaks the
   2025-11-25 session era, so its rows use a session (bench/gateway/legacy_call.lua).
   The direct call and the gateway at CONNS connections run in PAIRS alternating pairs; the median pair is kept.
2. ContextForge 1.1.0 where it installs (Python 3.12), in front of the same host through a virtual server
   (bench/gateway/contextforge_call.lua); recorded as not measured otherwise, with the reason.
3. tools/list through the gateway in front of 10 servers (sequential, p50), and the gateway's RSS after the load.

Writes a markdown table (--out) and the raw numbers (--json). Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))
from bench import PROCS, free_port, open_session, post, rss_kb, start, stop_all, wait_serving, wrk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}


def modern(port: int, method: str, params: dict | None = None, name: str | None = None) -> dict:
    p = {**(params or {}), "_meta": META}
    h = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method, **({"Mcp-Name": name} if name else {})}
    status, _, text = post(port, {"jsonrpc": "2.0", "id": 1, "method": method, "params": p}, h)
    assert status == 200, (port, method, status, text[:300])
    if text.startswith("event:") or text.startswith("data:") or text.startswith("id:"):
        text = next(l[5:] for l in text.splitlines() if l.startswith("data:") and '"id"' in l)
    return json.loads(text)


def tools_list_p50(port: int, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = modern(port, "tools/list")
        times.append(time.perf_counter() - t0)
        assert r["result"]["tools"]
    times = sorted(times[n // 10:])
    return times[len(times) // 2] * 1e3


def contextforge(args, backend_port: int) -> dict:
    """ContextForge 1.1.0 in front of the same host: installed into a Python 3.12 venv if one can be made, started
    on a fresh SQLite database with secrets of this run (UI and admin UI off, rate limiting off), the host
    registered with its REST API (POST /gateways), a virtual server holding the host's echo (POST /servers), and
    wrk on that server's MCP endpoint with a JWT made by ContextForge's own utility. Says why when it cannot."""
    import secrets
    import signal
    import tempfile
    import urllib.error
    import urllib.request
    py312 = next((p for p in [os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python3.12"), "/usr/bin/python3.12"]
                  if os.path.exists(p)), None)
    if py312 is None:
        return {"measured": False, "why": "no Python 3.12 on this machine (ContextForge 1.1.0 needs >= 3.12)"}
    venv = REPO / ".build-bench" / "venv-contextforge"
    if not (venv / "bin" / "mcpgateway").exists():
        r = subprocess.run([py312, "-m", "venv", str(venv)], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "mcp-contextforge-gateway==1.1.0"],
                               capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            return {"measured": False, "why": "pip install mcp-contextforge-gateway==1.1.0 failed: "
                    + (r.stderr or r.stdout).strip().splitlines()[-1][:200]}
    work = Path(tempfile.mkdtemp(prefix="contextforge.", dir=REPO / ".build-bench"))
    port = free_port()
    key, password = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
    env = {**os.environ, "JWT_SECRET_KEY": key, "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
           "PLATFORM_ADMIN_EMAIL": "admin@example.com", "PLATFORM_ADMIN_PASSWORD": password,
           "BASIC_AUTH_PASSWORD": password, "DEFAULT_USER_PASSWORD": password,
           "DATABASE_URL": f"sqlite:///{work}/mcp.db", "HOST": "127.0.0.1", "PORT": str(port),
           "MCPGATEWAY_UI_ENABLED": "false", "MCPGATEWAY_ADMIN_API_ENABLED": "false", "SSRF_ALLOW_LOCALHOST": "true",
           "LOG_LEVEL": "ERROR", "RATE_LIMITING_ENABLED": "false"}
    for k in ("MCP_PATH", "AUTH", "SESSION", "TOOL"):
        env.pop(k, None)
    proc = start([str(venv / "bin" / "mcpgateway"), "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, body: dict | None = None, token: str | None = None, timeout=30,
             headers: dict | None = None):
        req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json, text/event-stream",
                                              **({"Authorization": f"Bearer {token}"} if token else {}),
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path} answered {e.code}: {e.read().decode(errors='replace')[:200]}")

    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                return {"measured": False, "why": f"mcpgateway exited with {proc.returncode} before serving"}
            try:
                call("GET", "/health", timeout=2)
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    return {"measured": False, "why": "ContextForge did not answer /health within 180 s"}
                time.sleep(0.5)
        token = subprocess.run([str(venv / "bin" / "python"), "-m", "mcpgateway.utils.create_jwt_token",
                                "--username", "admin@example.com", "--exp", "120", "--secret", key],
                               capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1]
        gateway = call("POST", "/gateways", {"name": "ref", "url": f"http://127.0.0.1:{backend_port}/mcp",
                                             "transport": "STREAMABLEHTTP"}, token)
        tools = call("GET", "/tools", token=token)
        tools = tools if isinstance(tools, list) else tools.get("items", tools.get("tools", []))
        echo = next((t for t in tools if t.get("gatewayId", gateway["id"]) == gateway["id"]
                     and t.get("originalName", t["name"]) == "echo"), None)
        if echo is None:
            return {"measured": False, "why": f"ContextForge listed no echo tool: {[t['name'] for t in tools]}"}
        server = call("POST", "/servers", {"server": {"name": "bench", "associated_tools": [echo["id"]]},
                                           "visibility": "public"}, token)
        # The virtual server's MCP endpoint under its current name (/servers/<id>/mcp is the deprecated alias).
        path = f"/v1/virtual-servers/{server['id']}/mcp"
        mcp = {"MCP-Protocol-Version": "2025-11-25"}
        init = call("POST", path, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}},
            token, headers=mcp)
        assert "result" in init, init  # no Mcp-Session-Id: 1.1.0 is stateless (JSON answers) by default
        # The tool's name as ContextForge exposes it at that endpoint (<gateway slug>-<tool>).
        listed = call("POST", path, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}, token,
                      headers=mcp)
        tool = next(t["name"] for t in listed["result"]["tools"] if t["name"].endswith("echo"))
        answer = call("POST", path, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                     "params": {"name": tool, "arguments": {"text": "hello"}}}, token, headers=mcp)
        if answer.get("result", {}).get("content", [{}])[0].get("text") != "hello":
            return {"measured": False, "why": f"tools/call {tool} at {path} did not echo: {str(answer)[:200]}"}
        os.environ.update({"MCP_PATH": path, "AUTH": token, "TOOL": tool})
        lua = str(REPO / "bench" / "gateway" / "contextforge_call.lua")
        try:
            one = wrk(port, 1, 1, args.seconds, lua, "")
            many = wrk(port, args.conns, 2, args.seconds, lua, "")
        finally:
            for k in ("MCP_PATH", "AUTH", "TOOL"):
                os.environ.pop(k, None)
        return {"measured": True, "tool": tool, "path": "/v1/virtual-servers/<id>/mcp", "one": one, "many": many,
                "rss_kb": rss_kb(proc.pid)}
    except Exception as e:  # noqa: BLE001 -- a peer that breaks is reported, not fatal to the other rows
        return {"measured": False, "why": f"{type(e).__name__}: {str(e)[:300]}"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--fastmcp-python", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=5, help="alternating direct/gateway runs at --conns (median)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--command", default="bench/gateway/run.sh")
    args = ap.parse_args()
    results: dict = {"machine": f"{os.cpu_count()} cores, {platform.machine()}", "seconds": args.seconds,
                     "conns": args.conns}
    script = str(REPO / "bench" / "echo_call.lua")
    legacy = str(REPO / "bench" / "gateway" / "legacy_call.lua")
    try:
        # Ten hosts of the reference plugin (one thread each, as a supervised replica would run on 2 cores).
        ports = [free_port() for _ in range(10)]
        for p in ports:
            start([args.host, "--plugin", args.plugin, "--listen", f"127.0.0.1:{p}", "--threads", "1"])
        deadline = time.monotonic() + 30
        for p in ports:
            wait_serving(p, deadline)
        gport = free_port()
        gw = start([args.gateway, "--listen", f"127.0.0.1:{gport}"]
                   + sum((["--backend", f"s{i}={p}"] for i, p in enumerate(ports)), []))
        wait_serving(gport, deadline)
        while time.monotonic() < deadline:
            names = [t["name"] for t in modern(gport, "tools/list")["result"]["tools"]]
            if sum(1 for n in names if n.endswith("__echo")) == 10:
                break
            time.sleep(0.1)
        # The FastMCP 4.1.6 proxy over the first host only (the same backend as the rows it is compared with).
        fport = free_port()
        proxy_src = (
            "import sys\nfrom fastmcp.server import create_proxy\n"
            f"create_proxy({{'mcpServers': {{'s0': {{'url': 'http://127.0.0.1:{ports[0]}/mcp', 'transport': 'http'}}}}}})"
            f".run(transport='http', host='127.0.0.1', port={fport}, show_banner=False)\n")
        start([args.fastmcp_python, "-c", proxy_src])
        wait_serving(fport, deadline + 30)
        session = open_session_named(fport)

        rows = {}
        fronts = [
            ("direct (mcp-plugin-host)", ports[0], {"TOOL": "echo"}, script, ""),
            ("mcp-gateway", gport, {"TOOL": "s0__echo"}, script, ""),
            ("FastMCP 4.1.6 proxy", fport, {"TOOL": os.environ["TOOL_LEGACY"]}, legacy, session),
        ]

        def measure(front, conns: int, threads: int) -> dict:
            _, port, env, lua, sess = front
            os.environ.update(env)
            try:
                return wrk(port, conns, threads, args.seconds, lua, sess)
            finally:
                for k in env:
                    os.environ.pop(k, None)

        for front in fronts:
            rows[front[0]] = {"one": measure(front, 1, 1)}
        # The direct call and the gateway at CONNS connections in alternating pairs, the median of each kept: the
        # machine's speed drifts by ±20 % between runs of a few seconds, so the ratio is taken within a pair.
        pairs = []
        for _ in range(args.pairs):
            pairs.append((measure(fronts[0], args.conns, 2), measure(fronts[1], args.conns, 2)))
        ratios = sorted(g["rps"] / d["rps"] for d, g in pairs)
        middle = sorted(range(len(pairs)), key=lambda i: pairs[i][1]["rps"] / pairs[i][0]["rps"])[len(pairs) // 2]
        rows[fronts[0][0]]["many"], rows[fronts[1][0]]["many"] = pairs[middle]
        results["pair_ratios"] = ratios
        rows[fronts[2][0]]["many"] = measure(fronts[2], args.conns, 2)
        results["rows"] = rows
        results["tools_list_p50_ms"] = tools_list_p50(gport, 300)
        results["tools_list_items"] = len(modern(gport, "tools/list")["result"]["tools"])
        results["gateway_rss_kb"] = rss_kb(gw.pid)
        results["contextforge"] = contextforge(args, ports[0])
    finally:
        stop_all()
        import shutil
        for d in (REPO / ".build-bench").glob("contextforge.*"):
            shutil.rmtree(d, ignore_errors=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    write_table(results, args)


def open_session_named(port: int) -> str:
    """A session on the FastMCP proxy, checked with one call of its echo (FastMCP names it s0_echo)."""
    status, headers, text = post(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}},
        {"MCP-Protocol-Version": "2025-11-25"})
    assert status == 200, (status, text)
    session = next((v for k, v in headers.items() if k.lower() == "mcp-session-id"), "")
    h = {"MCP-Protocol-Version": "2025-11-25", **({"Mcp-Session-Id": session} if session else {})}
    post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    status, _, text = post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}, h)
    names = [t["name"] for t in json.loads(next(l[5:] for l in text.splitlines() if l.startswith("data:"))
                                           if "data:" in text else text)["result"]["tools"]]
    echo = next(n for n in names if n.endswith("echo"))
    os.environ["TOOL_LEGACY"] = echo
    return session


def write_table(r: dict, args):
    rows = r["rows"]
    d, g, f = rows["direct (mcp-plugin-host)"], rows["mcp-gateway"], rows["FastMCP 4.1.6 proxy"]
    lines = [
        "# Gateway benchmark", "",
        f"`{args.command}` on {r['machine']}; wrk {r['seconds']} s per row after a 2 s warm-up; the backend is the C",
        "reference plugin's `echo` in mcp-plugin-host for every row (the gateway and the proxy in front of that same",
        "host). One connection for latency, "
        f"{r['conns']} for throughput; the gateway, the backend and wrk share the cores.", "",
        "| front | p50 (1 conn) | p99 (1 conn) | req/s (1 conn) | req/s (" + str(r["conns"]) + " conns) | "
        "× direct (" + str(r["conns"]) + " conns) | non-2xx + bad |",
        "|---|---|---|---|---|---|---|",
    ]
    all_rows = dict(rows)
    if r["contextforge"]["measured"]:
        all_rows["ContextForge 1.1.0"] = r["contextforge"]
    for label, row in all_rows.items():
        o, m = row["one"], row["many"]
        lines.append(f"| {label} | {o['p50_us'] / 1000:.3f} ms | {o['p99_us'] / 1000:.3f} ms | {o['rps']:.0f} | "
                     f"{m['rps']:.0f} | {m['rps'] / d['many']['rps']:.3g}× | "
                     f"{sum(x.get(k, 0) for x in (o, m) for k in ('non2xx', 'bad'))} |")
    overhead = (g["one"]["p50_us"] - d["one"]["p50_us"]) / 1000
    python_peers = [f["many"]["rps"]] + ([r["contextforge"]["many"]["rps"]] if r["contextforge"]["measured"] else [])
    best_python = max(python_peers)
    best_name = "the FastMCP proxy" if best_python == f["many"]["rps"] else "ContextForge"
    lines += [
        "",
        "| target (issue 16) | measured | met |",
        "|---|---|---|",
        f"| gateway overhead over the direct call at p50 ≤ 0.3 ms | {overhead:+.3f} ms | {'yes' if overhead <= 0.3 else 'no'} |",
        f"| gateway req/s ≥ half the direct req/s ({r['conns']} conns; median of {len(r['pair_ratios'])} alternating "
        f"pairs: {', '.join(f'{x:.2f}' for x in r['pair_ratios'])}) | {g['many']['rps'] / d['many']['rps']:.2f}× | "
        f"{'yes' if g['many']['rps'] >= 0.5 * d['many']['rps'] else 'no'} |",
        f"| gateway req/s ≥ 10× the best Python peer | {g['many']['rps'] / max(1, best_python):.1f}× {best_name} | "
        f"{'yes' if g['many']['rps'] >= 10 * best_python else 'no'} |",
        f"| tools/list over 10 servers ({r['tools_list_items']} tools) p50 ≤ 2 ms | {r['tools_list_p50_ms']:.3f} ms | "
        f"{'yes' if r['tools_list_p50_ms'] <= 2 else 'no'} |",
        f"| gateway RSS ≤ 30 MB (after the load) | {r['gateway_rss_kb'] / 1024:.1f} MB | "
        f"{'yes' if r['gateway_rss_kb'] <= 30 * 1024 else 'no'} |",
        "",
        "ContextForge 1.1.0: " + (f"measured (a virtual server holding `{r['contextforge']['tool']}`, registered with its "
                                  "REST API; one uvicorn process, its defaults otherwise, rate limiting off)"
                                  if r["contextforge"]["measured"] else "not measured: " + r["contextforge"]["why"])
        + ".",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
