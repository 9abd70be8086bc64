"""Command servers (docs/servers.md), in one run on this machine:

1. the Python stdio program's own round trip: a client on its pipes, sequential tools/call (the floor);
2. wrk on tools/call of the same program's `echo` through three HTTP fronts: our bridge (mcp-plugin-host -- PROG),
   mcp-proxy 0.13.0 (PyPI) wrapping the same program, and the same tool served by the Python SDK's own HTTP
   transport (bench/python_echo_server.py); one connection (latency, p50 against the floor) and CONNS
   connections (throughput);
3. restart latency under mcp-supervisor: SIGKILL of a command server's host, of its program, and of a plugin
   server's host, to the first answered tools/call on the same port.

Writes a markdown table (--out) and the raw numbers (--json). Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv" / "bin" / "python")
PROGRAM = [PY, str(REPO / "bench" / "commands" / "echo_stdio.py")]
PROCS: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], **kw) -> subprocess.Popen:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kw)
    PROCS.append(p)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for p in PROCS:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def rss_kb(pid: int) -> int:
    total = 0
    # The process and its children (a front and the program it runs).
    pids = [pid]
    try:
        pids += [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


# MARK: the stdio floor

def stdio_round_trip(n: int) -> dict:
    p = subprocess.Popen(PROGRAM, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        def send(msg):
            p.stdin.write((json.dumps(msg) + "\n").encode())
            p.stdin.flush()

        def answer(want):
            while True:
                m = json.loads(p.stdout.readline())
                if m.get("id") == want:
                    return m

        send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        answer(0)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        times = []
        for i in range(1, n + 1):
            t0 = time.perf_counter()
            send({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                  "params": {"name": "echo", "arguments": {"text": "hello"}}})
            m = answer(i)
            times.append(time.perf_counter() - t0)
            assert m["result"]["content"][0]["text"] == "hello", m
        times = times[n // 10:]  # warm-up
        times.sort()
        return {"requests": len(times), "p50_us": times[len(times) // 2] * 1e6,
                "p99_us": times[int(len(times) * 0.99)] * 1e6, "rps": len(times) / sum(times)}
    finally:
        p.stdin.close()
        p.wait(10)


# MARK: HTTP fronts

def post(port: int, body: dict, headers: dict, timeout=10) -> tuple[int, dict, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/mcp", json.dumps(body), {
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def wait_serving(port: int, deadline: float):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def open_session(port: int) -> str:
    """initialize + initialized; the session id (empty for a stateless server). Checks one echo call."""
    status, headers, text = post(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}},
        {"MCP-Protocol-Version": "2025-11-25"})
    assert status == 200, (port, status, text)
    session = next((v for k, v in headers.items() if k.lower() == "mcp-session-id"), "")
    h = {"MCP-Protocol-Version": "2025-11-25", **({"Mcp-Session-Id": session} if session else {})}
    post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    status, _, text = post(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {"text": "hello"}}}, h)
    assert status == 200 and '"text":"hello"' in text.replace(" ", ""), (port, status, text)
    return session


def wrk(port: int, conns: int, threads: int, seconds: int, script: str, session: str) -> dict:
    env = {**os.environ, "SESSION": session}
    url = f"http://127.0.0.1:{port}/mcp"
    subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", "-d2s", "-s", script, url], env=env,
                   stdout=subprocess.DEVNULL, check=True)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "-s", script, url], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    r = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


# MARK: restarts

def restart_latency(args, kills: int) -> dict:
    work = Path(args.work)
    (work / "servers.d").mkdir(parents=True, exist_ok=True)
    (work / "supervisor.toml").write_text(
        f'state_dir = "{work}/state"\nservers_dir = "{work}/servers.d"\nhost = "{args.host}"\n')
    cport, pport = free_port(), free_port()
    (work / "servers.d" / "cmd.toml").write_text(
        f"command = {json.dumps(PROGRAM)}\nport = {cport}\n[backoff]\ninitial = 0.01\nmax = 0.05\n"
        f"[intensity]\nmax_restarts = 100000\n")
    (work / "servers.d" / "plug.toml").write_text(
        f'plugin = "{args.plugin}"\nport = {pport}\n[backoff]\ninitial = 0.01\nmax = 0.05\n'
        f"[intensity]\nmax_restarts = 100000\n")
    sup = start([args.supervisor, "--config", str(work / "supervisor.toml")])
    sock = str(work / "state" / "control.sock")

    def status(name):
        out = subprocess.run([args.mcpctl, "--json", "status", name], capture_output=True, text=True,
                             env={**os.environ, "MCPCTL_SOCKET": sock})
        if out.returncode != 0:
            return None
        data = json.loads(out.stdout)
        servers = data.get("servers", [data])
        return servers[0]

    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "pid", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}}
    head = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "pid"}
    echo = {**call, "params": {**call["params"], "name": "echo", "arguments": {"text": "hello"}}}
    echo_head = {**head, "Mcp-Name": "echo"}

    def answered(port, body, h) -> str | None:
        try:
            st, _, text = post(port, body, h, timeout=30)
        except OSError:
            return None
        if st != 200:
            return None
        m = json.loads(text)
        if "result" not in m or m["result"].get("isError"):
            return None
        return m["result"]["content"][0]["text"]

    def ready(name, port, body, h, deadline=60):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            s = status(name)
            if s and s["replicas"][0]["state"] == "running" and answered(port, body, h):
                return s
            time.sleep(0.05)
        raise SystemExit(f"{name} did not come up")

    out = {}
    cases = [("command server, host killed", "cmd", cport, call, head, "host"),
             ("command server, program killed", "cmd", cport, call, head, "program"),
             ("plugin server, host killed", "plug", pport, echo, echo_head, "host")]
    try:
        for label, name, port, body, h, what in cases:
            times = []
            for _ in range(kills):
                s = ready(name, port, body, h)
                target = s["replicas"][0]["pid"] if what == "host" else int(answered(port, body, h))
                t0 = time.perf_counter()
                os.kill(target, signal.SIGKILL)
                # The port stays open (the supervisor holds it): this request waits in the backlog and is
                # answered by the replacement; retried only if the dying child had accepted it.
                while True:
                    text = answered(port, body, h)
                    if text is not None and (what != "program" or int(text) != target):
                        break
                times.append(time.perf_counter() - t0)
            times.sort()
            out[label] = {"kills": kills, "median_ms": statistics.median(times) * 1e3,
                          "p90_ms": times[int(len(times) * 0.9)] * 1e3, "max_ms": times[-1] * 1e3}
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(30)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--supervisor", required=True)
    ap.add_argument("--mcpctl", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--mcp-proxy", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--command", default="bench/commands/run.sh")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        floor = stdio_round_trip(3000)
        fronts = {}
        ports = {}
        p = free_port()
        fronts["bridge"] = start([args.host, "--listen", f"127.0.0.1:{p}", "--", *PROGRAM])
        ports["bridge"] = p
        p = free_port()
        fronts["mcp-proxy"] = start([args.mcp_proxy, "--port", str(p), "--host", "127.0.0.1", "--log-level",
                                     "WARNING", "--", *PROGRAM])
        ports["mcp-proxy"] = p
        p = free_port()
        fronts["sdk-http"] = start([PY, str(REPO / "bench" / "python_echo_server.py"), str(p)])
        ports["sdk-http"] = p
        for name, port in ports.items():
            wait_serving(port, time.monotonic() + 60)
        sessions = {name: open_session(port) for name, port in ports.items()}
        script = str(REPO / "bench" / "commands" / "legacy_call.lua")
        latency, throughput, rss = {}, {}, {}
        for name, port in ports.items():
            latency[name] = wrk(port, 1, 1, args.seconds, script, sessions[name])
            throughput[name] = wrk(port, args.conns, 2, args.seconds, script, sessions[name])
            rss[name] = rss_kb(fronts[name].pid)
        restarts = restart_latency(args, args.kills)
    finally:
        stop_all()

    lines = [f"`{args.command}`: {os.cpu_count()} cores, {platform.machine()}; the program is "
             "bench/commands/echo_stdio.py (MCPServer of mcp 2.3.0 over stdio); wrk, 2025-11-25 tools/call "
             f"echo in one session; {args.seconds} s per row after a 2 s warm-up.\n",
             "| front | p50 ms (1 conn) | p50 over the stdio floor ms | req/s (1 conn) | "
             f"req/s ({args.conns} conns) | p99 ms ({args.conns} conns) | non-2xx | RSS front+program MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| the program's own stdio round trip (a client on its pipes) | {floor['p50_us'] / 1e3:.2f} | — | "
             f"{floor['rps']:,.0f} | — | — | — | — |"]
    names = {"bridge": "mcp-plugin-host bridge", "mcp-proxy": "mcp-proxy 0.13.0 (stdio → Streamable HTTP)",
             "sdk-http": "Python SDK's own HTTP (stateless, JSON; no stdio hop)"}
    for n in ports:
        la, th = latency[n], throughput[n]
        over = (la["p50_us"] - floor["p50_us"]) / 1e3
        lines.append(f"| {names[n]} | {la['p50_us'] / 1e3:.2f} | {over:+.2f} | {la['rps']:,.0f} | "
                     f"{th['rps']:,.0f} | {th['p99_us'] / 1e3:.2f} | {la['non2xx'] + th['non2xx']} | "
                     f"{rss[n] / 1024:.1f} |")
    b = throughput["bridge"]["rps"]
    over = (latency["bridge"]["p50_us"] - floor["p50_us"]) / 1e3
    lines.append("")
    lines.append(f"Ratios ({args.conns} conns): bridge/mcp-proxy req/s = **{b / throughput['mcp-proxy']['rps']:.2f}×**, "
                 f"bridge/SDK HTTP = **{b / throughput['sdk-http']['rps']:.2f}×**. Targets: the bridge adds ≤ 0.5 ms "
                 f"at p50 over the stdio round trip ({over:+.2f} ms: {'met' if over <= 0.5 else 'NOT met'}); "
                 f"at least as many req/s as either peer "
                 f"({'met' if b >= max(throughput['mcp-proxy']['rps'], throughput['sdk-http']['rps']) else 'NOT met'}).")
    lines.append("")
    lines.append(f"Restart latency under mcp-supervisor (SIGKILL → the first answered tools/call on the same port, "
                 f"{args.kills} kills each):\n")
    lines.append("| server | median ms | p90 ms | max ms |")
    lines.append("|---|---:|---:|---:|")
    for label, r in restarts.items():
        lines.append(f"| {label} | {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {r['max_ms']:.0f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    Path(args.json).write_text(json.dumps({"floor": floor, "latency": latency, "throughput": throughput,
                                           "rss_kb": rss, "restarts": restarts}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
