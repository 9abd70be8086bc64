#!/usr/bin/env python3
"""Before/after comparison of two builds of our own binaries, interleaved in one run on one machine.

Runs, ROUNDS times, in the order before, after, before, after, ...:
  - the host benchmark of bench/run.sh (wrk against mcp-plugin-host + the C reference plugin: the inline `echo`
    tool and the faulty plugin's `ok` tool on a handler thread), our side only;
  - bench/supervisor/bench.py --ours-only (restart latency, restarts under load, cold start, idle CPU, RSS);
  - bench/control/bench.py --ours-only (mcpctl status wall time, health probing cost).
Then prints the median of each figure per build and the change, and writes them to --out.
The peers (Python SDK, supervisord) are not re-run: this compares our builds with each other; bench/run.sh,
bench/supervisor/run.sh and bench/control/run.sh compare us with the peers.

Called by bench/compare.sh, which builds nothing: both folders must hold release binaries.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline_s=60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {deadline_s} s")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def wrk(port, seconds, conns, tool):
    env = dict(os.environ, TOOL=tool)
    script = os.path.join(HERE, "echo_call.lua")
    url = f"http://127.0.0.1:{port}/mcp"
    subprocess.run(["wrk", "-t1", f"-c{conns}", "-d2s", "-s", script, url], env=env, check=True,
                   capture_output=True)  # warm-up
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", script, url], env=env, check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) non2xx=(\d+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}")
    req, dur, p50, p99, non2xx = map(int, m.groups())
    if non2xx:
        raise RuntimeError(f"{non2xx} non-2xx answers from port {port}")
    return {"rps": req / (dur / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000}


def check_echo(port):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "hello"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=body, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    if '"text":"hello"' not in text.replace(" ", ""):
        raise RuntimeError(f"the echo call on port {port} answered {text[:200]}")


def host_round(a, bindir):
    out = {}
    procs = []
    try:
        for key, plugin, tool in (("inline", "libreference.so", "echo"), ("thread", "libfaulty.so", "ok")):
            port = free_port()
            p = subprocess.Popen([os.path.join(bindir, "mcp-plugin-host"), "--plugin",
                                  os.path.join(a.plugins, plugin), "--listen", f"127.0.0.1:{port}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(port)
            if tool == "echo":
                check_echo(port)
            r = wrk(port, a.host_seconds, a.conns, tool)
            r["rss_mb"] = rss_kb(p.pid) / 1024
            out[key] = r
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return out


def driver_round(a, bindir, which, work):
    js = os.path.join(work, f"{which}.json")
    md = os.path.join(work, f"{which}.md")
    sub = tempfile.mkdtemp(prefix=f"{which}.", dir=work)
    common = ["--work", sub, "--supervisor", os.path.join(bindir, "mcp-supervisor"),
              "--host", os.path.join(bindir, "mcp-plugin-host"), "--plugin", os.path.join(a.plugins, "libreference.so"),
              "--supervisord", a.supervisord, "--sleep", a.sleep, "--servers", str(a.servers),
              "--idle", str(a.idle), "--out", md, "--json", js, "--ours-only"]
    if which == "supervisor":
        cmd = [sys.executable, "-u", os.path.join(HERE, "supervisor", "bench.py"), *common, "--kills", str(a.kills)]
    else:
        cmd = [sys.executable, "-u", os.path.join(HERE, "control", "bench.py"), *common,
               "--mcpctl", os.path.join(bindir, "mcpctl"), "--supervisorctl", a.supervisorctl, "--runs", str(a.runs)]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    with open(js) as f:
        data = json.load(f)
    if data["errors"]:
        raise RuntimeError(f"{which} benchmark errors: {data['errors']}")
    return data["results"]


def figures(host, sup, ctl):
    """The figures compared, each (name, value, 'lower'|'higher' is better)."""
    p1, p2, p3 = sup.get("p1_ours", {}), sup.get("p2_ours", {}), sup.get("p3_ours", {})
    idle_on = ctl.get("p2_on", {}) or ctl.get("p2_health_on", {})
    idle_off = ctl.get("p2_off", {}) or ctl.get("p2_health_off", {})
    rows = [
        ("host req/s, inline echo", host["inline"]["rps"], "higher"),
        ("host p50 ms, inline echo", host["inline"]["p50_ms"], "lower"),
        ("host p99 ms, inline echo", host["inline"]["p99_ms"], "lower"),
        ("host RSS MB after the run", host["inline"]["rss_mb"], "lower"),
        ("host req/s, tool on a handler thread", host["thread"]["rps"], "higher"),
        ("host p99 ms, tool on a handler thread", host["thread"]["p99_ms"], "lower"),
        ("kill -9 -> replacement exec'd, p50 ms", p1.get("exec", {}).get("p50"), "lower"),
        ("kill -9 -> replacement exec'd, p99 ms", p1.get("exec", {}).get("p99"), "lower"),
        ("kill -9 -> port answers MCP again, p50 ms", p1.get("serve", {}).get("p50"), "lower"),
        ("kill -9 -> port answers MCP again, p99 ms", p1.get("serve", {}).get("p99"), "lower"),
        ("refused connections during restarts under load", p2.get("refused"), "lower"),
        ("cold start -> all servers ready, ms", p3.get("all_ready_ms"), "lower"),
        ("idle CPU with all servers, % of a core", p3.get("idle", {}).get("cpu_pct_schedstat"), "lower"),
        ("supervisor RSS with all servers, MB", (p3.get("idle", {}).get("rss_kb") or 0) / 1024 or None, "lower"),
        ("mcpctl status p50 ms", ctl.get("p1_ours", {}).get("p50"), "lower"),
        ("mcpctl status p99 ms", ctl.get("p1_ours", {}).get("p99"), "lower"),
        ("mcpctl --json status p50 ms", ctl.get("p1_ours_json", {}).get("p50"), "lower"),
        ("supervisor CPU, probing every 1 s, %", idle_on.get("cpu_pct_schedstat"), "lower"),
        ("supervisor CPU, probing off, %", idle_off.get("cpu_pct_schedstat"), "lower"),
    ]
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="folder with the release binaries before the change")
    ap.add_argument("--after", required=True, help="folder with the release binaries after the change")
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--supervisord", required=True)
    ap.add_argument("--supervisorctl", required=True)
    ap.add_argument("--sleep", default="/bin/sleep")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--host-seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default="bench/compare.sh")
    a = ap.parse_args()
    for k in ("before", "after", "plugins", "supervisord", "supervisorctl"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    samples = {"before": [], "after": []}
    load = []
    for n in range(a.rounds):
        for label in ("before", "after"):
            bindir = getattr(a, label)
            print(f"round {n + 1}/{a.rounds}: {label} ({bindir})", file=sys.stderr, flush=True)
            host = host_round(a, bindir)
            sup = driver_round(a, bindir, "supervisor", a.work)
            ctl = driver_round(a, bindir, "control", a.work)
            samples[label].append(figures(host, sup, ctl))
            load.append(os.getloadavg()[0])
    names = [r[0] for r in samples["before"][0]]
    better = {r[0]: r[2] for r in samples["before"][0]}
    lines = [f"`{a.command}` — {a.rounds} rounds, interleaved before/after; medians of each figure. "
             f"Host: wrk -t1 -c{a.conns} -d{a.host_seconds}s; supervisor: {a.kills} kills, {a.servers} servers, "
             f"{a.idle:g} s idle windows; control: {a.runs} timed mcpctl runs. "
             f"Load average (1 min) at the end of each half-round: {', '.join(f'{x:.2f}' for x in load)}.", "",
             f"before: `{a.before}`; after: `{a.after}`", "",
             "| figure | before | after | change | worse by > 10 %? |", "|---|---:|---:|---:|---|"]
    worse = []
    for i, name in enumerate(names):
        vb = [s[i][1] for s in samples["before"] if s[i][1] is not None]
        va = [s[i][1] for s in samples["after"] if s[i][1] is not None]
        if not vb or not va:
            lines.append(f"| {name} | — | — | — | not measured |")
            continue
        mb, ma = statistics.median(vb), statistics.median(va)
        change = (ma - mb) / mb * 100 if mb else 0.0
        bad = (change > 10 if better[name] == "lower" else change < -10) and abs(ma - mb) > 1e-9
        if bad:
            worse.append(name)
        lines.append(f"| {name} | {mb:,.4g} | {ma:,.4g} | {change:+.1f} % | {'**yes**' if bad else 'no'} |")
    lines.append("")
    lines.append("Worse by more than 10 %: " + (", ".join(worse) if worse else "none") + ".")
    text = "\n".join(lines) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    with open(a.out + ".json", "w") as f:
        json.dump(samples, f, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
