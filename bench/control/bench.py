#!/usr/bin/env python3
"""Control-socket benchmark driver: `mcpctl status` against `supervisorctl status`, and the supervisor's CPU cost
of health probing. Run through bench/control/run.sh, which owns the temporary folder. Standard library only.

It reuses bench/supervisor/bench.py (imported as `supbench`): the Ours / Peer supervisors (config files, start,
SIGTERM stop with a count of children left behind), the Registry of every pid for the cleanup, count_exec,
measure_idle (threads' schedstat run time), pct and the table helpers.

Phases (each supervisor alone on the machine while it is measured):
  1  SERVERS servers running: RUNS timed runs (after WARMUP) of `mcpctl --socket SOCK status` and
     `mcpctl --socket SOCK --json status`, each a new process; then supervisord with SERVERS `sleep infinity`
     programs and RUNS timed runs of `supervisorctl -c CONF status`.
  2  SERVERS servers with `[health] interval = 0` (probing off), then with `interval = 1`, `level = "detailed"`:
     CPU of the supervisor process over IDLE seconds each, and the difference. Skipped, with a message, when this
     mcp-supervisor rejects the `[health]` table (`--check-config`).
"""
import argparse
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to bench/supervisor/bench.py
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("supbench", os.path.join(_here, "..", "supervisor", "bench.py"))
supbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(supbench)

from_ns = supbench.ms
pct = supbench.pct
now_ns = supbench.now_ns

SOCKET_NAME = "control.sock"  # relative to the main file's folder


def stats(samples_ns):
    v = [from_ns(x) for x in samples_ns]
    return {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "min": min(v), "max": max(v),
            "mean": sum(v) / len(v)}


def run_cmd(cmd):
    """One process, stdout and stderr read to the end: (wall ns from spawn to reaped, completed process)."""
    t0 = now_ns()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    return now_ns() - t0, p


def timed(cmd, runs, warmup, check):
    """`warmup` untimed runs, then `runs` timed ones; `check(proc)` raises when an answer is wrong."""
    for _ in range(warmup):
        check(run_cmd(cmd)[1])
    out = []
    for _ in range(runs):
        t, p = run_cmd(cmd)
        check(p)
        out.append(t)
    return stats(out) | {"raw_ms": [round(from_ns(x), 3) for x in out]}


def until(fn, deadline_s, what):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            fn()
            return
        except RuntimeError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {deadline_s} s: {last}")


# ---------------------------------------------------------------- answers


def check_table(n):
    def check(p):
        if p.returncode != 0:
            raise RuntimeError(f"mcpctl status: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
        rows = [l.split() for l in p.stdout.decode().splitlines()[1:] if l.strip()]
        up = sum(1 for r in rows if len(r) > 1 and r[1] == "running")
        if len(rows) != n or up != n:
            raise RuntimeError(f"mcpctl status: {up}/{len(rows)} running, expected {n}")
    return check


def check_json(n):
    def check(p):
        if p.returncode != 0:
            raise RuntimeError(f"mcpctl --json status: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
        servers = json.loads(p.stdout)["servers"]
        up = sum(1 for s in servers if s["state"] == "running")
        if len(servers) != n or up != n:
            raise RuntimeError(f"mcpctl --json status: {up}/{len(servers)} running, expected {n}")
    return check


def check_supervisorctl(n):
    def check(p):
        lines = [l.split() for l in p.stdout.decode().splitlines() if l.strip()]
        up = sum(1 for l in lines if len(l) > 1 and l[1] == "RUNNING")
        if p.returncode != 0 or up != n or len(lines) != n:
            raise RuntimeError(f"supervisorctl status: exit {p.returncode}, {up}/{len(lines)} RUNNING, expected {n}: "
                               f"{(p.stdout + p.stderr).decode(errors='replace').strip()[:200]}")
    return check


# ---------------------------------------------------------------- our supervisor


def ours_main_defaults():
    """Top-level control_socket (written before [defaults] by supbench.Ours), then defaults as
    examples/supervisor.toml."""
    return f'control_socket = "{SOCKET_NAME}"\n\n' + supbench.ours_defaults(False)


def start_ours(a, reg, name, server_body):
    servers = {f"s{i:02d}": server_body for i in range(a.servers)}
    s = supbench.Ours(a, reg, name, servers, ours_main_defaults())
    s.socket = os.path.join(s.dir, SOCKET_NAME)
    return s


def wait_ours_running(a, reg, s):
    supbench.count_exec(s.pid, s.exe, a.servers, 60, reg)
    s.log.wait(supbench.Ours.RUNNING, count=a.servers, deadline_s=60)
    until(lambda: check_table(a.servers)(run_cmd([a.mcpctl, "--socket", s.socket, "status"])[1]), 20,
          f"mcpctl status showing {a.servers} servers running")


def check_config(a, s):
    """(ok, message) of `mcp-supervisor --check-config -c MAIN`."""
    p = subprocess.run([a.supervisor, "--check-config", "-c", os.path.join(s.dir, "main.toml")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    msg = (p.stderr + p.stdout).strip().replace(a.work, "WORK")
    return p.returncode == 0, msg


# ---------------------------------------------------------------- phases


def phase1_ours(a, reg, res):
    s = start_ours(a, reg, "p1-ours", f'plugin = "{a.plugin}"\n')
    s.start()
    try:
        wait_ours_running(a, reg, s)
        res["p1_true"] = timed(["/bin/true"], a.runs, a.warmup, lambda p: None)
        res["p1_ours"] = timed([a.mcpctl, "--socket", s.socket, "status"], a.runs, a.warmup, check_table(a.servers))
        res["p1_ours_json"] = timed([a.mcpctl, "--socket", s.socket, "--json", "status"], a.runs, a.warmup,
                                    check_json(a.servers))
        res["p1_ours_rss_kb"] = int(supbench.status_fields(s.pid)["VmRSS"].split()[0])
    finally:
        supbench.stopped(res, "p1 ours", s)


def phase1_peer(a, reg, res):
    sleep_bin = os.path.realpath(a.sleep)
    programs = {f"s{i:02d}": {"command": f"{sleep_bin} infinity"} for i in range(a.servers)}
    s = supbench.Peer(a, reg, "p1-peer", programs, sleep_bin).start()
    cmd = [a.supervisorctl, "-c", s.conf, "status"]
    try:
        supbench.count_exec(s.pid, s.exe, a.servers, 60, reg)
        until(lambda: check_supervisorctl(a.servers)(run_cmd(cmd)[1]), 30,
              f"supervisorctl status showing {a.servers} programs RUNNING")
        res["p1_peer"] = timed(cmd, a.runs, a.warmup, check_supervisorctl(a.servers))
    finally:
        supbench.stopped(res, "p1 supervisord", s)


def children_cpu_ns(pids):
    total = 0
    for pid in pids:
        try:
            total += sum(v[0] for v in supbench.thread_counters(pid).values())
        except OSError:
            pass
    return total


def phase2_one(a, reg, res, key, label, s):
    s.start()
    try:
        wait_ours_running(a, reg, s)
        time.sleep(a.settle)
        kids = supbench.children(s.pid)
        c0, t0 = children_cpu_ns(kids), now_ns()
        idle = supbench.measure_idle(s.pid, a.idle)
        c1, t1 = children_cpu_ns(kids), now_ns()
        idle["children_cpu_pct"] = 100.0 * (c1 - c0) / (t1 - t0)
        idle["children"] = len(kids)
        p = run_cmd([a.mcpctl, "--socket", s.socket, "--json", "status"])[1]
        idle["status_mentions_health"] = b"health" in p.stdout
        idle["log_lines_mentioning_health"] = sum(1 for _, t in s.log.lines if "health" in t.lower())
        res[key] = idle
    finally:
        supbench.stopped(res, label, s)


def phase2(a, reg, res):
    body = lambda interval, level: (f'plugin = "{a.plugin}"\n\n[health]\ninterval = {interval}\n'
                                    + (f'level = "{level}"\n' if level else ""))
    off = start_ours(a, reg, "health-off", body(0, None))
    on = start_ours(a, reg, "health-on", body(1, "detailed"))
    for s in (off, on):
        ok, msg = check_config(a, s)
        if not ok:
            res["p2_skipped"] = msg
            print("\n*** phase 2 SKIPPED: this mcp-supervisor rejects the [health] table "
                  f"(`mcp-supervisor --check-config`):\n***   {msg}\n*** Rebuild it once [health] is implemented "
                  "(BUILD=1 bench/control/run.sh), then run again.\n", file=sys.stderr, flush=True)
            return
    phase2_one(a, reg, res, "p2_off", "health off", off)
    phase2_one(a, reg, res, "p2_on", "health on", on)


# ---------------------------------------------------------------- report


def report(a, res, errors, env):
    g = lambda d, *ks: supbench._dig(res.get(d, {}), ks)
    fmt, ratio, verdict = supbench.fmt, supbench.ratio, supbench.verdict
    L = [f"# mcpctl status vs supervisorctl status; CPU cost of health probing ({a.servers} servers)\n"]
    L.append(f"`{env['command']}` at commit {env['commit']} — {env['when']}; {env['cpus']} cores, {env['machine']}, "
             f"Linux {env['kernel']}, load average {env['load_before']} before / {env['load_after']} after; "
             f"supervisord {env['supervisord']} (Python {env['python']}); {a.runs} timed runs after {a.warmup} "
             f"warm-up runs, {a.idle:g} s idle windows.\n")
    L.append("| # | measure | target | mcp-supervisor | supervisord | ratio (supervisord / ours) |")
    L.append("|---|---|---|---:|---:|---:|")

    def row(n, what, target, ours, peer, r="—"):
        L.append(f"| {n} | {what} | {target} | {ours} | {peer} | {r} |")

    def num(n, what, target, ov, pv, unit=" ms", nd=2, tgt=None, cmp=True):
        v = f" ({verdict(ov, tgt)})" if tgt is not None and ov is not None else ""
        row(n, what, target, fmt(ov, unit, nd) + v, fmt(pv, unit, nd), ratio(pv, ov) if cmp else "—")

    if "1" in a.phases.split(","):
        for q, tgt in (("p50", 20), ("p90", None), ("p99", None)):
            num("1", f"`mcpctl status` vs `supervisorctl status`, wall time per process, {q}",
                "≤ 20 ms" if tgt else "", g("p1_ours", q), g("p1_peer", q), tgt=tgt)
        for q in ("p50", "p90", "p99"):
            num("1", f"`mcpctl --json status` vs `supervisorctl status`, {q}", "", g("p1_ours_json", q), g("p1_peer", q))
        num("1", "`mcpctl status` vs `supervisorctl status`, mean", "", g("p1_ours", "mean"), g("p1_peer", "mean"))
        num("1", "`mcpctl status` vs `supervisorctl status`, max", "", g("p1_ours", "max"), g("p1_peer", "max"))
        num("1", "harness floor: `/bin/true` spawned and reaped the same way, p50", "", g("p1_true", "p50"), None,
            cmp=False)
    if "2" in a.phases.split(","):
        if "p2_skipped" in res:
            row("2", "health probing", "", "**skipped: `[health]` rejected by this build** — "
                + res["p2_skipped"].replace("|", "\\|").replace("\n", " "), "—")
        else:
            on, off = g("p2_on", "cpu_pct_schedstat"), g("p2_off", "cpu_pct_schedstat")
            diff = None if on is None or off is None else on - off
            num("2", f"supervisor CPU, probing off (`[health] interval = 0`), % of one core over {a.idle:g} s", "",
                off, None, unit=" %", nd=4, cmp=False)
            num("2", "supervisor CPU, probing every 1 s (`interval = 1`, `level = \"detailed\"`)", "", on, None,
                unit=" %", nd=4, cmp=False)
            num("2", "cost of probing (on − off), % of one core", "≤ 2 %", diff, None, unit=" %", nd=4, tgt=2,
                cmp=False)
            row("2", "supervisor wake-ups (context switches/s), off / on", "",
                f"{fmt(g('p2_off', 'switches_per_s'))} / {fmt(g('p2_on', 'switches_per_s'))}", "—")
            row("2", f"the {a.servers} hosts' CPU (not the supervisor's), off / on", "",
                f"{fmt(g('p2_off', 'children_cpu_pct'), ' %', 3)} / {fmt(g('p2_on', 'children_cpu_pct'), ' %', 3)}",
                "—")
            yn = lambda k: {True: "yes", False: "no", None: "—"}[g(k, "status_mentions_health")]
            row("2", "check: `mcpctl --json status` mentions health, off / on; supervisor log lines with "
                "\"health\", off / on", "", f"{yn('p2_off')} / {yn('p2_on')}; "
                f"{g('p2_off', 'log_lines_mentioning_health')} / {g('p2_on', 'log_lines_mentioning_health')}", "—")
            row("2", "supervisor RSS after the window, off / on", "",
                f"{fmt((g('p2_off', 'rss_kb') or 0) / 1024, ' MB')} / {fmt((g('p2_on', 'rss_kb') or 0) / 1024, ' MB')}",
                "—")
    stops = res.get("stops", {})

    def stop_text(names):
        out = []
        for n in names:
            if n in stops:
                rc, left = stops[n]
                t = "exit 0" if rc == 0 else f"**exit {rc}**"
                out.append(f"{n}: {t}" + (f", **{left} children left running**" if left else ""))
        return "; ".join(out) or "—"

    row("all", "SIGTERM stop of each supervisor (children left running)", "exit 0",
        stop_text(["p1 ours", "health off", "health on"]), stop_text(["p1 supervisord"]))
    L.append("")
    if errors:
        L.append("**Errors:** " + "; ".join(errors) + "\n")
    L.append("How it was measured:\n")
    if "1" in a.phases.split(","):
        L.append(f"- Phase 1: mcp-supervisor runs {a.servers} servers (mcp-plugin-host + the C reference plugin, dynamic "
                 f"ports, policy as examples/supervisor.toml, `control_socket = \"{SOCKET_NAME}\"` in the main file); once "
                 f"all are `running` (checked with mcpctl), the driver (`bench/control/bench.py`, Python standard "
                 f"library) spawns `mcpctl --socket WORK/p1-ours/{SOCKET_NAME} status` as a new process "
                 f"{a.warmup} times untimed, then {a.runs} times timed, one after another, stdout and stderr read "
                 f"through pipes to the end; the time is CLOCK_MONOTONIC from just before the spawn to the reaped exit. "
                 f"Every answer is checked (exit 0, {a.servers} rows `running`). Same for `mcpctl --json status` "
                 f"(parsed). Then mcp-supervisor is stopped and supervisord 4.3.0 runs {a.servers} programs "
                 f"`sleep infinity` with a unix_http_server socket, measured the same way with "
                 f"`supervisorctl -c WORK/p1-peer/supervisord.conf status` (exit 0, {a.servers} lines `RUNNING`). "
                 f"The `/bin/true` row is the cost of spawning and reaping any process from the driver.")
    if "2" in a.phases.split(",") and "p2_skipped" not in res:
        L.append(f"- Phase 2: mcp-supervisor with the same {a.servers} servers, each server file with a `[health]` table, "
                 f"once with `interval = 0` (probing off) and once with `interval = 1`, `level = \"detailed\"`; each "
                 f"started fresh, all `running`, {a.settle:g} s of settling, then the CPU of the supervisor process over "
                 f"{a.idle:g} s: the sum of its threads' `/proc/PID/task/*/schedstat` run time (first field, ns; "
                 f"threads sampled every second), as % of one core (`measure_idle` of bench/supervisor/bench.py). The "
                 f"hosts' CPU over the same window (their threads' schedstat) is shown apart: the probe's cost in the "
                 f"plugin host is not the supervisor's. The difference on − off is the probing cost.")
    if "p2_skipped" in res:
        L.append("- Phase 2 (health probing every 1 s against `[health] interval = 0`) was **skipped**: "
                 "`mcp-supervisor --check-config` rejected the `[health]` table with this build.")
    L.append("- Each supervisor runs alone while it is measured, in a temporary folder removed at the end; each is "
             "stopped with SIGTERM (up to 15 s) and its children still alive 0.5 s later are counted.")
    if supbench.CONFIGS:
        L.append("\n<details><summary>The generated configuration files (WORK = the temporary folder)</summary>\n")
        for label, text in supbench.CONFIGS.items():
            L.append(f"`{label}`:\n")
            L.append("```ini" if ".conf" in label else "```toml")
            L.append(text.rstrip("\n"))
            L.append("```\n")
        L.append("</details>")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--supervisor", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--mcpctl", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--supervisord", required=True)
    ap.add_argument("--supervisorctl", required=True)
    ap.add_argument("--sleep", default="/bin/sleep")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--idle", type=float, default=20)
    ap.add_argument("--settle", type=float, default=5, help="seconds between all running and the idle window")
    ap.add_argument("--phases", default="1,2")
    ap.add_argument("--command", default="bench/control/run.sh")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", help="also write the raw results as JSON here")
    ap.add_argument("--ours-only", action="store_true", help="skip the supervisord phase (bench/compare.py)")
    a = ap.parse_args()
    for k in ("supervisor", "host", "mcpctl", "plugin", "supervisord", "supervisorctl"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    reg = supbench.Registry(os.path.join(a.work, "pids"))
    exes = {os.path.realpath(a.host), os.path.realpath(a.sleep)}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    env = {
        "command": a.command, "when": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(),
        "machine": platform.machine(), "kernel": platform.release(),
        "supervisord": subprocess.run([a.supervisord, "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(), "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": supbench.git_describe(),
    }
    phases = a.phases.split(",")
    steps = []
    if "1" in phases:
        steps += [("1 ours", phase1_ours), ("1 supervisord", phase1_peer)]
    if "2" in phases:
        steps += [("2 health off/on", phase2)]
    if a.ours_only:
        steps = [(name, fn) for name, fn in steps if "supervisord" not in name]
    res, errors = {}, []
    try:
        supbench.run_steps(a, reg, res, errors, steps)
    except KeyboardInterrupt:
        print("interrupted: every process stopped, no results written", file=sys.stderr)
        return 130
    finally:
        reg.cleanup(exes)
    env["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if a.json:  # written before the report, which needs the peer's phases (absent with --ours-only)
        with open(a.json, "w") as f:
            json.dump({"results": res, "errors": errors, "env": env}, f, indent=1)
    text = report(a, res, errors, env)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
