#!/usr/bin/env bash
# Benchmark: what the host's traffic counters cost (docs/plugin-host.md "Metrics"). Two hosts serve the C
# reference plugin side by side, one counting (the default) and one with --no-metrics; wrk drives 2026-07-28
# tools/call echo (bench/echo_call.lua, as bench/run.sh) at each in turn, in interleaved rounds (on/off, then
# off/on, ...) so drift in the machine's load hits both alike. Reported: req/s per round, the medians, and the
# ratio on/off (target >= 0.97). The counting host runs with the supervisor's control channel, and its `metrics`
# answer at the end must hold at least every request wrk completed: a host that counted nothing cannot post a
# good ratio. Writes bench/results/host-metrics.md and prints it.
#
#   bench/host_metrics.sh [--short] [ROUNDS] [SECONDS] [CONNECTIONS]
#     defaults: 7 rounds of 10 s per host, 16 connections; --short: 3 rounds of 3 s, results in
#     bench/results/host-metrics-short.md (a quick check, not the number to quote)
#   PYTHON selects the interpreter (default .venv/bin/python, which scripts/test.sh creates); SKIP_BUILD=1
#   measures the release build as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH

SHORT=0
if [ "${1:-}" = "--short" ]; then SHORT=1; shift; fi
if [ "$SHORT" = 1 ]; then ROUNDS="${1:-3}"; DURATION="${2:-3}"; else ROUNDS="${1:-7}"; DURATION="${2:-10}"; fi
CONNS="${3:-16}"
OUT=bench/results/host-metrics.md
[ "$SHORT" = 1 ] && OUT=bench/results/host-metrics-short.md
PY="${PYTHON:-.venv/bin/python}"
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
[ -x "$PY" ] || { echo "no Python at $PY (run scripts/test.sh once, or set PYTHON)" >&2; exit 1; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then  # SKIP_BUILD=1: measure the release build as it is
    swift build -c release --product mcp-plugin-host >/dev/null
    scripts/build-plugins.sh >/dev/null
fi
mkdir -p bench/results

"$PY" - "$ROUNDS" "$DURATION" "$CONNS" "$SHORT" <<'PY' | tee "$OUT"
import json, os, platform, re, socket, statistics, subprocess, sys, time

rounds, duration, conns, short = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
HOST = ".build/release/mcp-plugin-host"
PLUGIN = ".build-plugins/libreference.so"
SERVING = re.compile(r"serving .* at http://127\.0\.0\.1:(\d+)/mcp")
procs = []


def start(*extra):
    """A host on a free port with a control socketpair on fd 4 (as the supervisor starts one)."""
    ours, theirs = socket.socketpair()
    n = theirs.fileno()
    move = "" if n == 4 else f"exec 4<&{n} {n}<&-; "
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    env["MCP_CONTROL_FD"] = "4"
    p = subprocess.Popen(["/bin/bash", "-c", move + 'exec "$0" "$@"', HOST, "--plugin", PLUGIN, "--listen",
                          "127.0.0.1:0", *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         pass_fds=(n,), env=env)
    theirs.close()
    procs.append(p)
    line = p.stdout.readline()
    m = SERVING.search(line)
    if not m:
        sys.exit(f"host did not start: {line!r}")
    ours.settimeout(10)
    buf = b""
    while b"\n" not in buf:
        buf += ours.recv(4096)
    assert json.loads(buf.split(b"\n")[0])["event"] == "ready"
    return int(m.group(1)), ours


def metrics(sock):
    sock.sendall(b'{"op":"metrics","seq":1}\n')
    buf = b""
    while b"\n" not in buf:
        buf += sock.recv(1 << 20)
    return json.loads(buf.split(b"\n")[0])


def check_echo(port):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "hello"}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    out = subprocess.run(["curl", "-s", "-X", "POST", f"http://127.0.0.1:{port}/mcp", "-H",
                          "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream",
                          "-H", "MCP-Protocol-Version: 2026-07-28", "-H", "Mcp-Method: tools/call", "-H",
                          "Mcp-Name: echo", "-d", body], capture_output=True, text=True, timeout=30).stdout
    if '"text":"hello"' not in out:
        sys.exit(f"host on {port} does not answer the echo call correctly: {out[:200]}")


def wrk(port, seconds):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", "bench/echo_call.lua",
                          f"http://127.0.0.1:{port}/mcp"], capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not m:
        sys.exit(f"wrk printed no result: {out.stdout} {out.stderr}")
    r = dict(kv.split("=") for kv in m.group(1).split())
    r = {k: int(v) for k, v in r.items()}
    if r["non2xx"]:
        sys.exit(f"{r['non2xx']} non-2xx answers from port {port}")
    return r


try:
    on_port, on_ctl = start()
    off_port, off_ctl = start("--no-metrics")
    check_echo(on_port)
    check_echo(off_port)
    for port in (on_port, off_port):
        wrk(port, 2)  # warm-up: threads, caches, the connection pool
    base = sum(r[2] for r in metrics(on_ctl)["requests"])
    rows, on_total = [], 0
    for i in range(rounds):
        order = [("on", on_port), ("off", off_port)] if i % 2 == 0 else [("off", off_port), ("on", on_port)]
        got = {}
        for name, port in order:
            r = wrk(port, duration)
            got[name] = (r["requests"] / (r["duration_us"] / 1e6), r["p50_us"], r["p99_us"])
            if name == "on":
                on_total += r["requests"]
        rows.append(got)
    snap = metrics(on_ctl)
    counted = sum(r[2] for r in snap["requests"]) - base
    # wrk's count leaves out requests still in flight when it stopped; the host counted every one it answered.
    if counted < on_total:
        sys.exit(f"the counting host counted {counted} requests, wrk completed {on_total}")
    off_snap = metrics(off_ctl)
    if off_snap["requests"] or off_snap["ops"]:
        sys.exit("the --no-metrics host reported counts")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)

on = [r["on"][0] for r in rows]
off = [r["off"][0] for r in rows]
ratios = [r["on"][0] / r["off"][0] for r in rows]
ratio = statistics.median(on) / statistics.median(off)
mode = " --short" if short else ""
print(f"`bench/host_metrics.sh{mode} {rounds} {duration} {conns}`: wrk -t1 -c{conns} -d{duration}s per host per round, "
      f"2026-07-28 tools/call echo on the C reference plugin, {rounds} interleaved rounds, "
      f"{os.cpu_count()} cores, {platform.machine()}\n")
print("| round | order | metrics on req/s | --no-metrics req/s | on/off | p50 on/off ms | p99 on/off ms |")
print("|---:|---|---:|---:|---:|---:|---:|")
for i, r in enumerate(rows):
    print(f"| {i + 1} | {'on, off' if i % 2 == 0 else 'off, on'} | {r['on'][0]:,.0f} | {r['off'][0]:,.0f} | "
          f"{ratios[i]:.3f} | {r['on'][1] / 1000:.2f} / {r['off'][1] / 1000:.2f} | "
          f"{r['on'][2] / 1000:.2f} / {r['off'][2] / 1000:.2f} |")
print(f"\nMedian req/s: metrics on {statistics.median(on):,.0f}, --no-metrics {statistics.median(off):,.0f}; "
      f"**ratio {ratio:.3f}** (target >= 0.97: {'met' if ratio >= 0.97 else 'NOT met'}); "
      f"per-round ratios: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}.")
print(f"\nThe counting host's `metrics` answer after the run: {counted:,} requests counted, "
      f"wrk completed {on_total:,} in the measured rounds; calls in flight {snap['inflight']}.")
PY
