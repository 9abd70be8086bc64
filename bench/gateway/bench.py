"""The gateway (docs/gateway.md), in one run on this machine, same backends for every front:

1. wrk on 2026-07-28 tools/call of the C reference plugin's `echo` served by mcp-plugin-host directly, through
   mcp-gateway, and through the FastMCP 4.1.6 proxy (`create_proxy` over the same host); one connection (latency:
   the gateway's overhead over the direct call at p50) and CONNS connections (throughput). The proxy speaks the
   2025-11-25 session era, so its rows use a session (bench/gateway/legacy_call.lua).
2. ContextForge 1.1.0 where it installs (Python 3.12); recorded as not measured otherwise, with the reason.
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


def contextforge(args) -> dict:
    """Installs ContextForge 1.1.0 into a Python 3.12 venv if one can be made; says why not otherwise."""
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
    return {"measured": False, "why": "installed, but its setup (secrets, SQLite, JWT, POST /gateways, POST /servers)"
            " is not scripted in this benchmark yet"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--fastmcp-python", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
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
        for label, port, env, lua, sess in [
            ("direct (mcp-plugin-host)", ports[0], {"TOOL": "echo"}, script, ""),
            ("mcp-gateway", gport, {"TOOL": "s0__echo"}, script, ""),
            ("FastMCP 4.1.6 proxy", fport, {"TOOL": os.environ["TOOL_LEGACY"]}, legacy, session),
        ]:
            os.environ.update(env)
            one = wrk(port, 1, 1, args.seconds, lua, sess)
            many = wrk(port, args.conns, 2, args.seconds, lua, sess)
            rows[label] = {"one": one, "many": many}
            for k in env:
                os.environ.pop(k, None)
        results["rows"] = rows
        results["tools_list_p50_ms"] = tools_list_p50(gport, 300)
        results["tools_list_items"] = len(modern(gport, "tools/list")["result"]["tools"])
        results["gateway_rss_kb"] = rss_kb(gw.pid)
        results["contextforge"] = contextforge(args)
    finally:
        stop_all()
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
        "| front | p50 (1 conn) | p99 (1 conn) | req/s (1 conn) | req/s (" + str(r["conns"]) + " conns) | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        o, m = row["one"], row["many"]
        lines.append(f"| {label} | {o['p50_us'] / 1000:.3f} ms | {o['p99_us'] / 1000:.3f} ms | {o['rps']:.0f} | "
                     f"{m['rps']:.0f} | {o['non2xx'] + m['non2xx']} |")
    overhead = (g["one"]["p50_us"] - d["one"]["p50_us"]) / 1000
    lines += [
        "",
        "| target (issue 16) | measured | met |",
        "|---|---|---|",
        f"| gateway overhead over the direct call at p50 ≤ 0.3 ms | {overhead:+.3f} ms | {'yes' if overhead <= 0.3 else 'no'} |",
        f"| gateway req/s ≥ half the direct req/s ({r['conns']} conns) | {g['many']['rps'] / d['many']['rps']:.2f}× | "
        f"{'yes' if g['many']['rps'] >= 0.5 * d['many']['rps'] else 'no'} |",
        f"| gateway req/s ≥ 10× the best Python peer | {g['many']['rps'] / max(1, f['many']['rps']):.1f}× the FastMCP proxy | "
        f"{'yes' if g['many']['rps'] >= 10 * f['many']['rps'] else 'no'} |",
        f"| tools/list over 10 servers ({r['tools_list_items']} tools) p50 ≤ 2 ms | {r['tools_list_p50_ms']:.3f} ms | "
        f"{'yes' if r['tools_list_p50_ms'] <= 2 else 'no'} |",
        f"| gateway RSS ≤ 30 MB (after the load) | {r['gateway_rss_kb'] / 1024:.1f} MB | "
        f"{'yes' if r['gateway_rss_kb'] <= 30 * 1024 else 'no'} |",
        "",
        f"ContextForge 1.1.0: {'measured' if r['contextforge']['measured'] else 'not measured: ' + r['contextforge']['why']}.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
