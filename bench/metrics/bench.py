#!/usr/bin/env python3
"""Metrics benchmark driver (issue 12): the supervisor's metrics listener with SERVERS servers, against
supervisord's XML-RPC `getAllProcessInfo` (what admins script today), same run, same machine. Run through
bench/metrics/run.sh, which builds, installs supervisord and owns the temporary folder. Standard library only.

It reuses bench/supervisor/bench.py (imported as `supbench`): Ours / Peer, Registry, count_exec, measure_idle, pct.

Phases (each supervisor alone on the machine while it is measured):
  1  SERVERS servers running, `metrics_listen` on: RUNS timed GETs (after WARMUP) of /metrics, /status.json and
     /readyz, each on a new connection, end to end (connect, request, whole body read); every answer checked
     (SERVERS servers up in /metrics, SERVERS in /status.json). supervisord with SERVERS `sleep infinity` programs
     and an inet_http_server: RUNS timed `supervisor.getAllProcessInfo()` XML-RPC calls, each on a new connection.
  2  supervisor CPU over IDLE seconds, three runs of SERVERS servers: no metrics listener; listener on, never
     scraped (the page history still samples every 10 s); listener on and scraped every
     SCRAPE seconds (default 15). Cost of scraping = scraped − no listener, % of one core.
  3  supervisor RSS with the page's history full: the history samples every 10 s and keeps 60, so after 11 minutes
     it is full; RSS at the start, then, and HISTORY_LATER seconds later (bounded: the last reading must not grow).
  4  supervisor CPU per scrape: RUNS back-to-back GETs of /metrics as text 0.0.4 and as OpenMetrics (what
     Prometheus asks for), the threads' schedstat run time minus the idle rate, per GET (phase 2 in miniature,
     without its 60 s windows' noise: at one scrape per 15 s, 0.05 % of a core is 7.5 ms per scrape).
"""
import argparse
import http.client
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
import xmlrpc.client

sys.dont_write_bytecode = True
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("supbench", os.path.join(_here, "..", "supervisor", "bench.py"))
supbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(supbench)

now_ns = supbench.now_ns
pct = supbench.pct


def stats(samples_ns):
    v = [x / 1e6 for x in samples_ns]
    return {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "min": min(v), "max": max(v),
            "mean": sum(v) / len(v)}


def get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = now_ns()
        fn()
        out.append(now_ns() - t0)
    return stats(out)


def until(fn, deadline_s, what):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            return fn()
        except (RuntimeError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {deadline_s} s: {last}")


def check_metrics(n, port):
    def check():
        status, body = get(port, "/metrics")
        up = sum(1 for l in body.decode().splitlines()
                 if l.startswith("mcp_supervisor_server_up{") and float(l.split()[-1]) == 1)
        if status != 200 or up != n:
            raise RuntimeError(f"/metrics: HTTP {status}, {up} servers up, expected {n}")
        return len(body)
    return check


def check_status(n, port):
    def check():
        status, body = get(port, "/status.json")
        servers = json.loads(body)["servers"] if status == 200 else []
        up = sum(1 for s in servers if s.get("state") == "running")
        if up != n:
            raise RuntimeError(f"/status.json: HTTP {status}, {up}/{len(servers)} running, expected {n}")
    return check


def check_ready(port):
    def check():
        status, _ = get(port, "/readyz")
        if status != 200:
            raise RuntimeError(f"/readyz: HTTP {status}")
    return check


def start_ours(a, reg, name, metrics_port, extra=""):
    main = supbench.ours_defaults(False)
    if metrics_port:
        main = f'metrics_listen = "127.0.0.1:{metrics_port}"\n{extra}\n' + main
    servers = {f"s{i:02d}": f'plugin = "{a.plugin}"\n' for i in range(a.servers)}
    s = supbench.Ours(a, reg, name, servers, main)
    s.start()
    supbench.count_exec(s.pid, s.exe, a.servers, 60, reg)
    s.log.wait(supbench.Ours.RUNNING, count=a.servers, deadline_s=90)
    return s


def phase1(a, reg, res):
    port = supbench.free_port()
    s = start_ours(a, reg, "p1-ours", port)
    try:
        until(check_metrics(a.servers, port), 30, f"/metrics showing {a.servers} servers up")
        res["p1_page_bytes"] = check_metrics(a.servers, port)()
        res["p1_metrics"] = timed(check_metrics(a.servers, port), a.runs, a.warmup)
        res["p1_status"] = timed(check_status(a.servers, port), a.runs, a.warmup)
        res["p1_readyz"] = timed(check_ready(port), a.runs, a.warmup)
        res["p1_rss_kb"] = int(supbench.status_fields(s.pid)["VmRSS"].split()[0])
    finally:
        supbench.stopped(res, "p1 ours", s)
    sleep_bin = os.path.realpath(a.sleep)
    rpc = supbench.free_port()
    programs = {f"s{i:02d}": {"command": f"{sleep_bin} infinity"} for i in range(a.servers)}
    p = supbench.Peer(a, reg, "p1-peer", programs, sleep_bin)
    with open(p.conf, "a") as f:
        f.write(f"\n[inet_http_server]\nport=127.0.0.1:{rpc}\n")
    p.start()
    try:
        supbench.count_exec(p.pid, p.exe, a.servers, 60, reg)

        def info():
            infos = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{rpc}/RPC2").supervisor.getAllProcessInfo()
            up = sum(1 for i in infos if i["statename"] == "RUNNING")
            if up != a.servers:
                raise RuntimeError(f"getAllProcessInfo: {up}/{len(infos)} RUNNING")
        until(info, 30, f"supervisord showing {a.servers} RUNNING")
        res["p1_peer"] = timed(info, a.runs, a.warmup)
    finally:
        supbench.stopped(res, "p1 supervisord", p)


def phase2(a, reg, res):
    for key, metrics, scrape in (("p2_off", False, False), ("p2_on", True, False), ("p2_scraped", True, True)):
        port = supbench.free_port() if metrics else None
        s = start_ours(a, reg, key.replace("_", "-"), port)
        stop = threading.Event()
        scrapes = []
        try:
            if metrics:
                until(check_metrics(a.servers, port), 30, "/metrics answering")
            time.sleep(a.settle)

            def scraper():
                while not stop.wait(a.scrape):
                    t0 = now_ns()
                    get(port, "/metrics")
                    scrapes.append(now_ns() - t0)
            t = threading.Thread(target=scraper, daemon=True) if scrape else None
            if t:
                t.start()
            res[key] = supbench.measure_idle(s.pid, a.idle)
            stop.set()
            if t:
                t.join(20)
                res[key]["scrapes"] = len(scrapes)
        finally:
            stop.set()
            supbench.stopped(res, key, s)


def phase3(a, reg, res):
    port = supbench.free_port()
    interval = 10.0  # PageHistory's interval; capacity 60
    s = start_ours(a, reg, "p3-history", port)
    try:
        until(check_metrics(a.servers, port), 30, "/metrics answering")
        rss = lambda: int(supbench.status_fields(s.pid)["VmRSS"].split()[0])
        res["p3_rss_start_kb"] = rss()
        time.sleep(60 * interval * 1.1)  # capacity × interval: the history is full
        res["p3_rss_full_kb"] = rss()
        time.sleep(a.history_later)
        res["p3_rss_later_kb"] = rss()
        status, page = get(port, "/")
        res["p3_page_bytes"] = len(page) if status == 200 else None
    finally:
        supbench.stopped(res, "p3 ours", s)


def get_om(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Accept": "application/openmetrics-text;version=1.0.0"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def phase4(a, reg, res):
    """Supervisor CPU per scrape: RUNS back-to-back GETs of /metrics (text, then OpenMetrics as Prometheus asks),
    the supervisor threads' schedstat run time over them minus its idle rate over the same wall time, per GET."""
    port = supbench.free_port()
    s = start_ours(a, reg, "p4-scrape", port)
    try:
        until(check_metrics(a.servers, port), 30, "/metrics answering")
        time.sleep(a.settle)
        idle = supbench.measure_idle(s.pid, 10)["cpu_pct_schedstat"] / 100.0
        for key, fn in (("p4_text", get), ("p4_openmetrics", get_om)):
            for _ in range(a.warmup):
                fn(port, "/metrics")
            base = supbench.thread_counters(s.pid)
            t0 = now_ns()
            lat = []
            for _ in range(a.runs):
                t = now_ns()
                status, body = fn(port, "/metrics")
                lat.append(now_ns() - t)
                if status != 200:
                    raise RuntimeError(f"/metrics answered {status}")
            wall = (now_ns() - t0) / 1e9
            last = supbench.thread_counters(s.pid)
            run = sum(v[0] for k, v in last.items()) - sum(v[0] for k, v in base.items() if k in last)
            res[key] = {"cpu_ms_per_scrape": (run / 1e9 - idle * wall) * 1000 / a.runs, **stats(lat),
                        "bytes": len(body)}
    finally:
        supbench.stopped(res, "p4 ours", s)


def fmt(x, unit="", nd=2):
    return "—" if x is None else f"{x:.{nd}f}{unit}"


def report(a, res, errors, env):
    g = lambda k, f: res.get(k, {}).get(f)
    L = [f"# Metrics listener vs supervisord XML-RPC ({a.servers} servers)\n",
         f"`{env['command']}` at commit {env['commit']} — {env['when']}; {env['cpus']} cores, Linux {env['kernel']}, "
         f"load average {env['load_before']} before / {env['load_after']} after; supervisord {env['supervisord']}; "
         f"{a.runs} timed runs after {a.warmup} warm-ups, each on a new connection; {a.idle:g} s idle windows.\n",
         "| # | measure | target | mcp-supervisor | supervisord | ratio (supervisord / ours) |",
         "|---|---|---|---:|---:|---:|"]
    ph = a.phases.split(",")
    if "1" in ph:
        for q in ("p50", "p90", "p99"):
            o, p = g("p1_status", q), g("p1_peer", q)
            L.append(f"| 1 | every server's state: GET /status.json vs getAllProcessInfo(), {q} | | {fmt(o, ' ms')} | "
                     f"{fmt(p, ' ms')} | {fmt(p / o if o and p else None, '×')} |")
        for q, tgt in (("p50", "≤ 10 ms"), ("p99", "")):
            o, p = g("p1_metrics", q), g("p1_peer", q)
            ok = "" if q != "p50" or o is None else (" (met)" if o <= 10 else " (**missed**)")
            L.append(f"| 1 | GET /metrics end to end ({res.get('p1_page_bytes', 0) // 1024} KiB page), {q} | {tgt} | "
                     f"{fmt(o, ' ms')}{ok} | {fmt(p, ' ms')} | {fmt(p / o if o and p else None, '×')} |")
        L.append(f"| 1 | GET /readyz, p50 | | {fmt(g('p1_readyz', 'p50'), ' ms')} | — | — |")
    if "2" in ph:
        off, on, sc = (g(k, "cpu_pct_schedstat") for k in ("p2_off", "p2_on", "p2_scraped"))
        L.append(f"| 2 | supervisor CPU, no metrics listener, % of a core | | {fmt(off, ' %', 4)} | — | — |")
        L.append(f"| 2 | listener on, not scraped (history sampling only) | | {fmt(on, ' %', 4)} | — | — |")
        L.append(f"| 2 | scraped every {a.scrape:g} s ({g('p2_scraped', 'scrapes')} scrapes) | | {fmt(sc, ' %', 4)} | — | — |")
        d = None if sc is None or off is None else sc - off
        ok = "" if d is None else (" (met)" if d <= 0.05 else " (**missed**)")
        L.append(f"| 2 | cost of the listener and scraping over idle | ≤ 0.05 % | {fmt(d, ' %', 4)}{ok} | — | — |")
        L.append(f"| 2 | supervisor RSS, off / on / scraped | | {g('p2_off', 'rss_kb')} / {g('p2_on', 'rss_kb')} / "
                 f"{g('p2_scraped', 'rss_kb')} KiB | — | — |")
    if "3" in ph:
        L.append(f"| 3 | supervisor RSS: start / history full / later | bounded | {res.get('p3_rss_start_kb')} / "
                 f"{res.get('p3_rss_full_kb')} / {res.get('p3_rss_later_kb')} KiB | — | — |")
        L.append(f"| 3 | status page size with full history | | {res.get('p3_page_bytes')} bytes | — | — |")
    if "4" in ph:
        for key, what in (("p4_text", "text 0.0.4"), ("p4_openmetrics", "OpenMetrics")):
            c = g(key, "cpu_ms_per_scrape")
            L.append(f"| 4 | supervisor CPU per scrape, {what} ({(g(key, 'bytes') or 0) // 1024} KiB) | ≤ 7.5 ms "
                     f"(0.05 % at one per 15 s) | {fmt(c, ' ms')}{'' if c is None else (' (met)' if c <= 7.5 else ' (**missed**)')}"
                     f" | — | — |")
            L.append(f"| 4 | back-to-back GET /metrics, {what}, p50 / p99 | | {fmt(g(key, 'p50'), ' ms')} / "
                     f"{fmt(g(key, 'p99'), ' ms')} | — | — |")
    stops = res.get("stops", {})
    L.append("| all | SIGTERM stops (exit status, children left) | exit 0, 0 | "
             + "; ".join(f"{k}: {v[0]}, {v[1]}" for k, v in stops.items()) + " | | |")
    if errors:
        L.append("\n**Errors:** " + "; ".join(errors))
    L.append("\nEach GET is a new TCP connection on loopback (what a scraper without keep-alive does), timed from "
             "before the connect to the last body byte; supervisord's calls are `xmlrpc.client.ServerProxy(...)."
             "supervisor.getAllProcessInfo()` over its inet_http_server, a new proxy (and connection) per call. "
             "CPU is the supervisor process's threads' schedstat run time over the window (bench/supervisor/bench.py"
             " measure_idle).")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    for k in ("work", "supervisor", "host", "plugin", "supervisord", "sleep", "command", "out"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--idle", type=float, default=90)
    ap.add_argument("--scrape", type=float, default=15)
    ap.add_argument("--settle", type=float, default=3)
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--phases", default="1,2,3,4")
    ap.add_argument("--history-later", type=float, default=120)
    a = ap.parse_args()
    for k in ("work", "supervisor", "host", "plugin", "supervisord", "sleep", "out"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    a.kills = 0
    reg = supbench.Registry(os.path.join(a.work, "pids"))
    res, errors = {}, []
    env = {"command": a.command, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "cpus": os.cpu_count(), "kernel": platform.release(),
           "load_before": os.getloadavg()[0], "commit": subprocess.run(
               ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
           "supervisord": subprocess.run([a.supervisord, "--version"], capture_output=True, text=True).stdout.strip()}
    try:
        for n, fn in (("1", phase1), ("2", phase2), ("3", phase3), ("4", phase4)):
            if n in a.phases.split(","):
                try:
                    fn(a, reg, res)
                except RuntimeError as e:
                    errors.append(f"phase {n}: {e}")
    finally:
        reg.cleanup({os.path.realpath(a.host), os.path.realpath(a.sleep)})
    env["load_after"] = os.getloadavg()[0]
    text = report(a, res, errors, env)
    with open(a.out, "w") as f:
        f.write(text)
    with open(a.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
