#!/usr/bin/env python3
"""Supervisor SIGKILLed under load, N times, against a real systemd 252 (issue 11, "Benchmark").

    bench/systemd_restart.py [--kills 20] [--out bench/results/systemd-restart.md]

Needs root, the release build (.build/release) and the tools of scripts/install-deps.sh. It boots systemd as PID 1
in a debootstrap Debian 12 tree (scripts/systemd-ns.sh), installs the .deb (scripts/build-deb.sh) and runs, in the
same boot and with the same load:

- ours: mcp-supervisor.service as packaged (RestartSec=100ms, sockets in the fd store), two servers of the C
  reference plugin, two replicas each; each round SIGKILLs the supervisor (its children go with it);
- the peer an admin would otherwise write: each server as a plain `Type=simple` unit running
  `mcp-plugin-host --listen 127.0.0.1:PORT` with `Restart=always`, `RestartSec=100ms`, no fd store (the host binds
  its own port, so one process per server); each round SIGKILLs both servers' processes at once.

Load: wrk (`-t1 -c8`, bench/echo_call.lua) on each server for the whole run (its connect errors are refused
connections), plus Python clients (two per server, one new connection per `tools/call`) that count refused
connections and time each round: kill -> every server has completed a call whose connection was opened after the
kill. Rounds start when every server has served again and the unit is active.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from supervisor_fixtures import free_port_range  # noqa: E402
from systemd_ns import BootedSystemd, Load, build_deb, build_tree, wait_for  # noqa: E402

UNIT = "mcp-supervisor.service"


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def wrk(ports: list[int], seconds: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", str(REPO / "bench" / "echo_call.lua"),
                              f"http://127.0.0.1:{p}/mcp"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for p in ports]


def wrk_result(procs: list[subprocess.Popen]) -> dict:
    total = {"requests": 0, "connect_errors": 0, "read_errors": 0, "timeouts": 0}
    for p in procs:
        out, _ = p.communicate(timeout=600)
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("RESULT "):
                kv = dict(x.split("=") for x in line.split()[1:])
                total["requests"] += int(kv["requests"])
            if line.startswith("Socket errors:"):
                # Socket errors: connect 0, read 3, write 0, timeout 0
                parts = {k: int(v) for k, v in (x.strip().split(" ") for x in line.split(":", 1)[1].split(","))}
                total["connect_errors"] += parts.get("connect", 0)
                total["read_errors"] += parts.get("read", 0) + parts.get("write", 0)
                total["timeouts"] += parts.get("timeout", 0)
    return total


def rounds(ns: BootedSystemd, ports: list[int], kills: int, victims, kill, ready) -> dict:
    times: list[float] = []
    with Load(ports) as load:
        procs = wrk(ports, seconds=int(kills * 4 + 20))
        wait_for(lambda: load.calls_ok() > 20, 20, "first calls")
        for _ in range(kills):
            old = ns.host_pids(victims())
            killed_at = time.monotonic()
            kill()
            # Only calls opened once every killed process is gone count (old children serve on until they die).
            wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in old), 30, "the old processes gone",
                     interval=0.005)
            gone_at = time.monotonic()
            t = wait_for(lambda: load.serving_again(gone_at), 30, "serving after the kill", interval=0.005)
            times.append(gone_at - killed_at + t)
            wait_for(ready, 30, "ready for the next round")
        load.stop()
        for p in procs:
            p.send_signal(signal.SIGINT)  # wrk stops and prints its summary
        w = wrk_result(procs)
    return {"times": times, "refused": len(load.refused), "failed": len(load.failed),
            "calls": load.calls_ok(), "wrk": w}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "systemd-restart.md"))
    args = ap.parse_args()

    build_tree()
    deb = build_deb()
    ns = BootedSystemd()
    try:
        ns.write(f"/etc/systemd/system/{UNIT}.d/50-bench.conf", "[Unit]\nStartLimitIntervalSec=0\n")
        inside = ns.copy_in(deb)
        ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", inside,
               timeout=300)
        base, _ = free_port_range(8)
        ours = [base, base + 1]
        peer = [base + 2, base + 3]
        plugin = "/usr/lib/mcp-supervisor/plugins/libreference.so"
        for i, port in enumerate(ours):
            ns.write(f"/etc/mcp-supervisor/servers.d/s{i}.toml", f'plugin = "{plugin}"\nport = {port}\nreplicas = 2\n')
        ns.run("systemctl", "reload", UNIT)
        for i, port in enumerate(peer):
            ns.write(f"/etc/systemd/system/peer{i}.service",
                     "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=simple\nUser=mcp-supervisor\n"
                     f"ExecStart=/usr/bin/mcp-plugin-host --plugin {plugin} --listen 127.0.0.1:{port}\n"
                     "Restart=always\nRestartSec=100ms\n")
        ns.run("systemctl", "daemon-reload")
        ns.run("systemctl", "start", "peer0.service", "peer1.service")

        def ours_ready() -> bool:
            out = ns.run("mcpctl", "--json", "status", check=False)
            if out.returncode != 0:
                return False
            servers = json.loads(out.stdout)["servers"]
            return len(servers) == 2 and all(r["state"] == "running" for s in servers for r in s["replicas"])

        def ours_victims() -> list[int]:
            servers = json.loads(ns.run("mcpctl", "--json", "status").stdout)["servers"]
            return [int(ns.show(UNIT, "MainPID")["MainPID"])] + [r["pid"] for s in servers for r in s["replicas"]]

        def peer_victims() -> list[int]:
            return [int(ns.show(f"peer{i}.service", "MainPID")["MainPID"]) for i in range(2)]

        def ours_kill() -> None:
            pid = ns.show(UNIT, "MainPID")["MainPID"]
            assert int(pid) > 0, "the supervisor is not running"  # kill 0 would hit our own process group
            ns.run("kill", "-KILL", pid)
            wait_for(lambda: ns.show(UNIT, "MainPID")["MainPID"] not in ("0", pid), 30, "a new supervisor")

        def peer_ready() -> bool:
            return all(ns.show(f"peer{i}.service", "ActiveState")["ActiveState"] == "active" for i in range(2))

        def peer_kill() -> None:
            ns.run("systemctl", "kill", "--signal=SIGKILL", "peer0.service", "peer1.service")

        wait_for(ours_ready, 30, "our servers running")
        wait_for(peer_ready, 30, "the peer units active")
        results = {"ours": rounds(ns, ours, args.kills, ours_victims, ours_kill, ours_ready),
                   "peer": rounds(ns, peer, args.kills, peer_victims, peer_kill, peer_ready)}
    finally:
        ns.close()

    lines = [f"# Supervisor SIGKILL under load ({args.kills} kills, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", "`bench/systemd_restart.py` (docs/performance.md). Two servers of the C reference plugin; kill ->"
             " every server has completed a call opened once every killed process was gone. wrk (keep-alive, 8 connections"
             " per server) sees a refused reconnect as a read error, so its column is refused + reset.", "",
             "| setup | refused (clients) | wrk socket errors | failed calls (clients) | kill→serving p50 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    names = {"ours": "mcp-supervisor.service (Type=notify, fd store, 2 replicas each)",
             "peer": "plain Type=simple units (mcp-plugin-host --listen, no fd store)"}
    for key, r in results.items():
        ms = [t * 1000 for t in r["times"]]
        lines.append(f"| {names[key]} | {r['refused']} | {r['wrk']['connect_errors'] + r['wrk']['read_errors']} | {r['failed']} | "
                     f"{percentile(ms, 50):.0f} | {percentile(ms, 99):.0f} | {max(ms):.0f} |")
    lines += ["", "Raw: " + json.dumps(results)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
