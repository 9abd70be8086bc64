#!/usr/bin/env python3
"""Driver of bench/elicitation.sh: the round trip of an elicitation (tools/call `confirm` sent → final result
received, the client's elicitation callback accepting at once) through mcp-plugin-host + the C reference plugin
against the Python SDK's own server (bench/python_confirm_server.py), same run, in both protocol eras:

  2025-11-25  initialize, then per call: POST tools/call, the server sends `elicitation/create` on the call's SSE
              stream, the client POSTs the answer, the result arrives on the first stream;
  2026-07-28  per call: POST tools/call answered `input_required` (with requestState), the client POSTs the
              retry carrying the answer and the state, the result arrives.

The client is the official Python SDK (`mcp.Client` — a ClientSession over streamable_http_client), one worker
process per concurrent client, so K clients are K processes (one asyncio loop each) and not K tasks sharing
one interpreter. Each worker connects, makes the warm-up calls, waits for the driver's "go", times each of its
calls with perf_counter around `call_tool`, and checks every answer (warm-up included): not an error, exactly the
text the server answers to a confirmed action, exactly one question asked per call with the plugin's wording,
and the negotiated era. Any mismatch ends the run with a non-zero status.

A third row per era in the one-client table times a plain `echo` call against the same host with the same client
(no elicitation): what the Python client itself costs per call, the floor under every figure here.

Server CPU per call: the server's threads' run time (/proc/PID/task/*/schedstat) across the timed calls, divided
by the calls. RSS: VmRSS after all the runs.
"""

import argparse
import asyncio
import glob
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from importlib.metadata import version as pkg_version

ACTION = "deploy"
QUESTION = f"Really do this: {ACTION}?"
ERAS = [("2025-11-25", "legacy"), ("2026-07-28", "2026-07-28")]  # (negotiated version, Client mode=)


# --------------------------------------------------------------------------------------------------------------
# Worker: one SDK client, jobs as JSON lines on stdin, results as JSON lines on stdout.
# --------------------------------------------------------------------------------------------------------------


async def run_job(job: dict, go) -> dict:
    import mcp_types as types
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    asked: list[str] = []
    posts = [0]

    async def accept(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async def count(request):
        if request.method == "POST":
            posts[0] += 1

    problems: list[str] = []

    def check(result, n: int):
        texts = [getattr(b, "text", None) for b in result.content]
        if result.is_error or texts != [job["expect"]]:
            problems.append(f"call {n}: is_error={result.is_error} content={texts!r} (expected [{job['expect']!r}])")
        want = [QUESTION] if job["tool"] == "confirm" else []
        if asked != want:
            problems.append(f"call {n}: the server asked {asked!r} (expected {want!r})")
        asked.clear()

    http = create_mcp_http_client()
    http.event_hooks = {"request": [count]}
    async with http:
        async with Client(streamable_http_client(job["url"], http_client=http), mode=job["mode"],
                          elicitation_callback=accept) as client:
            if client.protocol_version != job["version"]:
                return {"problems": [f"negotiated {client.protocol_version}, expected {job['version']}"]}
            for n in range(job["warmup"]):
                check(await client.call_tool(job["tool"], job["args"]), -n - 1)
            if problems:
                return {"problems": problems[:5]}
            print(json.dumps({"ready": True}), flush=True)
            await go()
            posts[0] = 0
            lat = []
            for n in range(job["calls"]):
                t0 = time.perf_counter()
                result = await client.call_tool(job["tool"], job["args"])
                lat.append((time.perf_counter() - t0) * 1000)
                check(result, n)
            return {"lat": lat, "posts": posts[0], "problems": problems[:5]}


def leaves(e: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: the SDK's task groups wrap what went wrong."""
    if isinstance(e, BaseExceptionGroup):
        return [x for sub in e.exceptions for x in leaves(sub)]
    return [e]


def worker() -> int:
    warnings.filterwarnings("ignore")

    async def readline() -> str:  # stdin in a thread: the SDK's loop keeps running meanwhile
        return await asyncio.to_thread(sys.stdin.readline)

    async def go():
        if (await readline()).strip() != "go":
            raise SystemExit(0)  # the driver gave up (another client failed)

    async def serve():
        while line := await readline():
            job = json.loads(line)
            try:
                out = await run_job(job, go)
            except Exception as e:  # reported to the driver, which fails the run
                out = {"problems": [f"{type(x).__name__}: {x}" for x in leaves(e)]}
            print(json.dumps(out), flush=True)

    asyncio.run(serve())
    return 0


# --------------------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class Workers:
    def __init__(self, n: int):
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        self.procs = [subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__), "--worker"], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
                      for _ in range(n)]

    def _read(self, p) -> dict:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"client worker {p.pid} ended (status {p.poll()})")
        return json.loads(line)

    def run(self, k: int, job: dict, pid: int) -> dict:
        """Runs `job` on k workers at once; returns the merged latencies and the server CPU over the timed calls."""
        procs = self.procs[:k]
        for p in procs:
            p.stdin.write(json.dumps(job) + "\n")
        for p in procs:
            r = self._read(p)
            if not r.get("ready"):
                raise RuntimeError(f"{job['label']}: {'; '.join(r['problems'])}")
        c0, t0 = cpu_ns(pid), time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
        results = [self._read(p) for p in procs]
        wall, c1 = time.perf_counter() - t0, cpu_ns(pid)
        problems = [x for r in results for x in r.get("problems", [])]
        if problems:
            raise RuntimeError(f"{job['label']}: the server did not answer correctly: {'; '.join(problems[:5])}")
        lat = [x for r in results for x in r["lat"]]
        calls = len(lat)
        return {"n": calls, "p50": statistics.median(lat), "p99": pct(lat, 99), "mean": statistics.fmean(lat),
                "rate": calls / wall, "cpu_ms": (c1 - c0) / 1e6 / calls,
                "posts": sum(r["posts"] for r in results) / calls}

    def close(self, abort: bool):
        """Ends the workers: at once when the run failed or was stopped, else by closing their stdin."""
        for p in self.procs:
            if abort:
                p.kill()
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> int:
    if sys.argv[1:] == ["--worker"]:
        return worker()
    ap = argparse.ArgumentParser()
    ap.add_argument("--host-port", type=int, required=True)
    ap.add_argument("--host-pid", type=int, required=True)
    ap.add_argument("--py-port", type=int, required=True)
    ap.add_argument("--py-pid", type=int, required=True)
    ap.add_argument("--calls", type=int, default=500, help="timed calls per row")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients of the second table (1: none)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up calls per client before each row")
    ap.add_argument("--command", default="bench/elicitation.sh")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    floor = "mcp-plugin-host, `echo` (no elicitation: the client's own cost)"
    servers = [  # (label, port, pid, {era: the text a confirmed call answers})
        ("mcp-plugin-host + C reference plugin", a.host_port, a.host_pid,
         {"2025-11-25": f"Confirmed: {ACTION}",
          # the plugin reports the requestState its retry carried: proof the retry came back through the host
          "2026-07-28": f"Confirmed: {ACTION} (after a retry carrying ticket-1)"}),
        ("Python SDK MCPServer (stateful, SSE)", a.py_port, a.py_pid,
         {"2025-11-25": f"Confirmed: {ACTION}", "2026-07-28": f"Confirmed: {ACTION}"}),
    ]
    ks = [1] + ([a.clients] if a.clients > 1 else [])
    rows = {}  # (k, era, server label) -> figures
    load0 = os.getloadavg()[0]
    # SIGTERM (bench/elicitation.sh's cleanup) unwinds like an error, so the workers are ended too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workers = Workers(max(ks))
    finished = False
    try:
        for k in ks:
            per = max(1, a.calls // k)
            for era, mode in ERAS:
                jobs = [(label, pid, {"url": f"http://127.0.0.1:{port}/mcp", "tool": "confirm",
                                      "args": {"action": ACTION}, "expect": expect[era]})
                        for label, port, pid, expect in servers]
                if k == 1:
                    jobs.append((floor, a.host_pid, {"url": f"http://127.0.0.1:{a.host_port}/mcp", "tool": "echo",
                                                     "args": {"text": ACTION}, "expect": ACTION}))
                for label, pid, job in jobs:
                    job.update(mode=mode, version=era, warmup=a.warmup, calls=per,
                               label=f"{label}, {era}, {k} client(s)")
                    print(f"elicitation: {job['label']}: {per} calls each", file=sys.stderr, flush=True)
                    rows[(k, era, label)] = workers.run(k, job, pid)
        finished = True
    finally:
        workers.close(abort=not finished)
    rss = {label: rss_kb(pid) / 1024 for label, _, pid, _ in servers}
    load1 = os.getloadavg()[0]

    ours, peer = servers[0][0], servers[1][0]
    lines = [f"`{a.command} {a.calls} {a.clients}`: `tools/call confirm` → elicitation → accepted at once → result, "
             f"timed in the client (official Python SDK mcp {pkg_version('mcp')}, one process per client), "
             f"{a.warmup} warm-up calls per client first, every answer checked; "
             f"{os.cpu_count()} cores, {platform.machine()}, clients and servers on the same machine; "
             f"load average (1 min) {load0:.2f} before, {load1:.2f} after.", ""]
    for k in ks:
        per = max(1, a.calls // k)
        what = "one client, calls one after another" if k == 1 else \
            f"{k} clients at once, {per} calls each, each client's calls one after another"
        lines += [f"**{what}** ({per * k} timed calls per row):", "",
                  "| era | server | p50 ms | p99 ms | mean ms | calls/s | server CPU per call ms | HTTP POSTs per call |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for era, _ in ERAS:
            for label in (ours, peer, floor) if k == 1 else (ours, peer):
                r = rows[(k, era, label)]
                lines.append(f"| {era} | {label} | {r['p50']:.2f} | {r['p99']:.2f} | {r['mean']:.2f} | "
                             f"{r['rate']:,.0f} | {r['cpu_ms']:.3f} | {r['posts']:.1f} |")
        lines.append("")
        ratios = []
        for era, _ in ERAS:
            o, p = rows[(k, era, ours)], rows[(k, era, peer)]
            ratios.append(f"{era}: p50 {o['p50'] / p['p50']:.2f}, p99 {o['p99'] / p['p99']:.2f}, "
                          f"mean {o['mean'] / p['mean']:.2f}, server CPU per call {o['cpu_ms'] / p['cpu_ms']:.3f}")
        lines += ["Ratio ours/Python (lower is better) — " + "; ".join(ratios) + ".", ""]
    lines.append(f"RSS after all runs: mcp-plugin-host {rss[ours]:.1f} MB, Python SDK server {rss[peer]:.1f} MB.")
    text = "\n".join(lines) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    with open(a.out + ".json", "w") as f:
        json.dump({"rows": [{"clients": k, "era": era, "server": label, **r}
                            for (k, era, label), r in rows.items()], "rss_mb": rss},
                  f, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
