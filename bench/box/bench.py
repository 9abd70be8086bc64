"""The box's cost (issue 13, docs/security.md): full box against no box in the same run on the same machine.

Run through bench/box/run.sh, which builds and owns the temporary folder. Phases, each interleaved (boxed and
unboxed samples alternate, so drift on this 2-core machine hits both alike):

  1  through the supervisor: one supervisor with two servers of the C reference plugin, `open` (`[sandbox]
     enabled = false`) and `boxed` (the full box: its own user, every limit through the cgroup controllers,
     network = "none", read/write paths, private /tmp, core dumps off). Each is killed with SIGKILL in turn;
     measured: kill -> the supervisor's `running (ready in N ms)` line (the whole respawn: cgroup folders, state
     folder, fork/exec, the host's box, plugin load, ready), and the child's own `ready in N ms` (spawn -> ready).
  2  the host alone: mcp-plugin-host started without and with the full MCP_BOX spec (also with a private /tmp and
     with cgroup v1 folders, the parts the supervisor adds), exec -> its `serving` line.
  3  throughput: wrk (one thread, CONNS connections) against each server's port in alternating rounds.

Verification time per MB is bench/trust/run.sh (run.sh calls it in the same run).
`bench.py WORK STARTS KILLS ROUNDS SECONDS CONNS OUT` — results as markdown in OUT and JSON beside it.
"""

import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "supervisor"))
import bench as sup  # noqa: E402  (LineLog, Registry, summary, pct, now_ns, ours_defaults)

HOST = os.environ.get("MCP_PLUGIN_HOST", str(REPO / ".build" / "release" / "mcp-plugin-host"))
SUPERVISOR = os.environ.get("MCP_SUPERVISOR", str(REPO / ".build" / "release" / "mcp-supervisor"))
SRC = (REPO / "Sources" / "Contracts" / "BoxSpec+System.swift").read_text()
LUA = REPO / "bench" / "echo_call.lua"


def fixed(name):
    return re.findall(r'"([^"]+)"', re.search(name + r": \[String\] = \[(.*?)\]", SRC, re.S).group(1))


def host_box(plugin_dir, state):
    """The spec the supervisor hands a fully boxed child (MCP_BOX), for phase 2's host-only starts."""
    return {"enabled": True, "uid": 65534, "gid": 65534, "open_files_max": 256, "processes_max": 256,
            "memory_max": 1 << 30, "network": "none", "core_dumps": False,
            "read_paths": fixed("systemReadPaths") + [str(plugin_dir)],
            "write_paths": fixed("systemWritePaths") + [str(state)]}


SANDBOX_FULL = """
[sandbox]
user = "nobody"
memory_max = "1G"
open_files_max = 256
processes_max = 256
cpu_max = 2
network = "none"
read_paths = ["{data}"]
write_paths = ["{out}"]
private_tmp = true
core_dumps = false
"""


def echo_ok(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(sup.echo_request(port))
        status, body = sup.read_response(s)
    return status == 200 and b'"text":"hello"' in body


def wrk(port, seconds, conns):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(LUA), f"http://127.0.0.1:{port}/mcp"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) non2xx=(\d+)", out)
    req, dur, p50, p99, bad = map(int, m.groups())
    assert bad == 0, f"wrk saw {bad} non-2xx answers on port {port}"
    return {"rate": req / (dur / 1e6), "p50_us": p50, "p99_us": p99}


def phase1(work, reg, plugin, kills):
    """The supervisor's respawn of each server, alternating."""
    d = work / "sup"
    (d / "servers.d").mkdir(parents=True)
    data, out = work / "data", work / "out"
    data.mkdir()
    out.mkdir()
    os.chmod(work, 0o755)
    os.chmod(out, 0o777)
    base = 40000 + os.getpid() % 15000
    (d / "main.toml").write_text("\n".join([
        'state_dir = "state"', 'servers_dir = "servers.d"', 'listen_address = "127.0.0.1"',
        f"port_range = [{base}, {base + 99}]", "", sup.ours_defaults(True)]) + "\n")
    ports = {"open": base + 1, "boxed": base + 2}
    (d / "servers.d" / "open.toml").write_text(
        f'plugin = "{plugin}"\nport = {ports["open"]}\n\n[sandbox]\nenabled = false\n')
    (d / "servers.d" / "boxed.toml").write_text(
        f'plugin = "{plugin}"\nport = {ports["boxed"]}\n' + SANDBOX_FULL.format(data=data, out=out))
    r, w = os.pipe()
    proc = subprocess.Popen([SUPERVISOR, "-c", str(d / "main.toml"), "--host", HOST], stdin=subprocess.DEVNULL,
                            stdout=w, stderr=w, close_fds=True, cwd=d)
    os.close(w)
    reg.started(proc)
    log = sup.LineLog(r, str(d / "supervisor.log"), proc)
    running = r"^mcp-supervisor: {}\[(\d+)\]: running \(ready in (\d+) ms\)"
    pids = {}
    for name in ports:
        (_, _, m), = log.wait(running.format(name), deadline_s=30)
        pids[name] = int(m.group(1))
        reg.note(pids[name])
        assert echo_ok(ports[name]), f"{name} does not answer the echo call"
    status = json.loads(subprocess.run([str(Path(SUPERVISOR).with_name("mcpctl")), "--socket",
                                        str(d / "state" / "control.sock"), "--json", "status", "boxed"],
                                       capture_output=True, text=True, check=True).stdout)
    box = status.get("box", status)
    child = proc_status(pids["boxed"])
    samples = {n: {"respawn": [], "ready": []} for n in ports}
    for i in range(kills * 2):
        name = ("open", "boxed")[(i + i // 2) % 2]  # open,boxed,boxed,open,open,boxed,...: neither always first
        mark = len(log)
        t0 = sup.now_ns()
        os.kill(pids[name], signal.SIGKILL)
        (_, ts, m), = log.wait(running.format(name), start=mark, deadline_s=30)
        pids[name] = int(m.group(1))
        reg.note(pids[name])
        samples[name]["respawn"].append(ts - t0)
        samples[name]["ready"].append(int(m.group(2)))
    return proc, log, ports, samples, box, child


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp"):
            out[k] = v.strip()
    return out


HOST_VARIANTS = ("none", "full", "full+tmp", "full+cgroups")
V1_CONTROLLERS = ("memory", "pids", "cpu")
VARIANT_LABEL = {"full+tmp": "full box + private /tmp",
                 "full+cgroups": "full box + 3 cgroup v1 folders the host joins itself (the supervisor's early write "
                                 "hides most of it in phase 1)"}


def v1_cgroups(i):
    """Per start, what the supervisor makes for a replica with every limit on cgroup v1 (docs/security.md):
    a folder in each controller with its limit; returns the cgroup.procs files and the folders."""
    folders, procs = [], []
    for c in V1_CONTROLLERS:
        folder = Path(f"/sys/fs/cgroup/{c}/bench-box-{os.getpid()}/{i}")
        folder.mkdir(parents=True)
        folders.append(folder)
        procs.append(str(folder / "cgroup.procs"))
    (folders[0] / "memory.limit_in_bytes").write_text(str(1 << 30))
    (folders[1] / "pids.max").write_text("256")
    (folders[2] / "cpu.cfs_quota_us").write_text("200000")
    return procs, folders


def phase2(work, plugin, starts):
    """The host alone: no box, the full box spec, the same with a private /tmp, and with cgroup v1 folders made for
    each start (what the supervisor adds), in rotation. Splits the respawn's extra time into its parts."""
    state = work / "host-state"
    state.mkdir()
    os.chmod(state, 0o777)
    tmp = work / "host-tmp"
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)
    box = host_box(Path(plugin).parent, state)
    can_cgroup = all(os.access(f"/sys/fs/cgroup/{c}", os.W_OK) for c in V1_CONTROLLERS)
    variants = [v for v in HOST_VARIANTS if v != "full+cgroups" or can_cgroup]
    ready = {v: [] for v in variants}
    for i in range(starts * len(variants)):
        label = variants[(i + i // len(variants)) % len(variants)]
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        env = dict(os.environ, MCP_LISTEN_FD=str(ls.fileno()))
        env.pop("MCP_BOX", None)
        folders = []
        t0 = sup.now_ns()
        if label != "none":
            spec = dict(box)
            if label == "full+tmp":
                spec["private_tmp"] = str(tmp)
            if label == "full+cgroups":
                spec["cgroup_procs_files"], folders = v1_cgroups(i)
            env["MCP_BOX"] = json.dumps(spec)
        p = subprocess.Popen([HOST, "--plugin", str(plugin)], env=env, pass_fds=[ls.fileno()],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = p.stdout.readline()
        ready[label].append(sup.now_ns() - t0)
        if label != "none":
            assert proc_status(p.pid).get("NoNewPrivs") == "1", "the host did not apply the box"
        if folders:
            assert str(p.pid) in (folders[0] / "cgroup.procs").read_text().split(), "the host did not join its cgroup"
        p.terminate()
        p.wait()
        p.stdout.close()
        ls.close()
        for f in folders:
            f.rmdir()
        assert "serving" in line, line
    for c in V1_CONTROLLERS:
        top = Path(f"/sys/fs/cgroup/{c}/bench-box-{os.getpid()}")
        if top.exists():
            top.rmdir()
    return ready


def phase3(ports, rounds, seconds, conns):
    for port in ports.values():
        wrk(port, 1, conns)  # warm-up
    rates = {n: [] for n in ports}
    for i in range(rounds * 2):
        name = ("open", "boxed")[(i + i // 2) % 2]
        rates[name].append(wrk(ports[name], seconds, conns))
    return rates


def fmt_ms(x):
    return f"{x:,.2f}"


def main():
    work, starts, kills, rounds, seconds, conns, out = sys.argv[1:8]
    work, starts, kills, rounds, seconds, conns = Path(work), int(starts), int(kills), int(rounds), int(seconds), int(conns)
    # The plugin where `nobody` can read it and not beneath /tmp (a private /tmp would hide it).
    plugin_dir = work / "plugins"
    plugin_dir.mkdir(parents=True)
    plugin = plugin_dir / "libreference.so"
    plugin.write_bytes((Path(os.environ.get("MCP_PLUGIN_DIR", REPO / ".build-plugins")) / "libreference.so").read_bytes())
    os.chmod(plugin_dir, 0o755)
    load0 = os.getloadavg()
    reg = sup.Registry(str(work / "pids"))
    try:
        proc, log, ports, respawn, box, child = phase1(work, reg, plugin, kills)
        rates = phase3(ports, rounds, seconds, conns)
        reg.stop(proc)
        log.thread.join(5)
        stopped = proc.returncode
        host = phase2(work, plugin, starts)
    finally:
        reg.cleanup({os.path.realpath(HOST), os.path.realpath(SUPERVISOR)})
    left = [p for p in reg.pids if sup.running(p) and sup.exe_of(p) in (os.path.realpath(HOST),)]

    res = {"respawn": {n: sup.summary(v["respawn"]) for n, v in respawn.items()},
           "child_ready_p50_ms": {n: statistics.median(v["ready"]) for n, v in respawn.items()},
           "host_ready": {n: sup.summary(v) for n, v in host.items()},
           "wrk": {n: [r["rate"] for r in v] for n, v in rates.items()},
           "wrk_p50_us": {n: statistics.median(r["p50_us"] for r in v) for n, v in rates.items()},
           "box_status": box, "boxed_child_proc_status": child, "supervisor_exit": stopped, "children_left": len(left)}
    rs, hr = res["respawn"], res["host_ready"]
    d_respawn = rs["boxed"]["p50"] - rs["open"]["p50"]
    d_host = hr["full"]["p50"] - hr["none"]["p50"]
    rate = {n: statistics.median(v) for n, v in res["wrk"].items()}
    ratio = rate["boxed"] / rate["open"]
    load1 = os.getloadavg()
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "Sources"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# The box's cost: full box against no box",
        "",
        f"`bench/box/run.sh {starts} {kills} {rounds} {seconds} {conns}` at {rev}{' + uncommitted changes in Sources/' if dirty else ''}"
        f" — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, {platform.machine()}, "
        f"Linux {platform.release()}, load {load0[0]:.2f} before / {load1[0]:.2f} after; release builds.",
        "",
        "| measure | target | no box | full box | difference |",
        "|---|---|---:|---:|---:|",
        f"| SIGKILL → supervisor's `running` line (respawn to ready), p50 ({kills} each) | ≤ +5 ms | "
        f"{fmt_ms(rs['open']['p50'])} ms | {fmt_ms(rs['boxed']['p50'])} ms | {d_respawn:+.2f} ms "
        f"({'met' if d_respawn <= 5 else 'missed'}) |",
        f"| same, p99 |  | {fmt_ms(rs['open']['p99'])} ms | {fmt_ms(rs['boxed']['p99'])} ms | "
        f"{rs['boxed']['p99'] - rs['open']['p99']:+.2f} ms |",
        f"| child's own `ready in N ms` (spawn → ready, whole ms), p50 |  | {res['child_ready_p50_ms']['open']:.0f} ms | "
        f"{res['child_ready_p50_ms']['boxed']:.0f} ms | — |",
        f"| host alone: exec → `serving`, p50 ({starts} each) | ≤ +5 ms | {fmt_ms(hr['none']['p50'])} ms | "
        f"{fmt_ms(hr['full']['p50'])} ms | {d_host:+.2f} ms ({'met' if d_host <= 5 else 'missed'}) |",
        *[f"| host alone, {VARIANT_LABEL[v]}, p50 |  | {fmt_ms(hr['none']['p50'])} ms | "
          f"{fmt_ms(hr[v]['p50'])} ms | {hr[v]['p50'] - hr['none']['p50']:+.2f} ms |" for v in HOST_VARIANTS[2:] if v in hr],
        f"| tools/call rate, wrk -t1 -c{conns}, median of {rounds} rounds of {seconds} s | within 3 % | "
        f"{rate['open']:,.0f}/s | {rate['boxed']:,.0f}/s | {(ratio - 1) * 100:+.1f} % "
        f"({'met' if ratio >= 0.97 else 'missed'}) |",
        f"| tools/call latency p50 (wrk) |  | {res['wrk_p50_us']['open']:.0f} µs | {res['wrk_p50_us']['boxed']:.0f} µs | — |",
        "",
        f"Each round's rate — no box: {', '.join(f'{x:,.0f}' for x in res['wrk']['open'])}; "
        f"full box: {', '.join(f'{x:,.0f}' for x in res['wrk']['boxed'])}.",
        "",
        f"The boxed server's status `box`: `{json.dumps(box, sort_keys=True)}`.",
        "",
        f"Its child's /proc/PID/status: `{json.dumps(child, sort_keys=True)}`.",
        "",
        f"Supervisor exit status after SIGTERM: {stopped}; hosts left running: {len(left)}.",
        "",
    ]
    Path(out).write_text("\n".join(lines))
    Path(out + ".json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print("\n".join(lines))
    if stopped != 0 or left:
        sys.exit("the supervisor did not stop cleanly or left hosts behind")


if __name__ == "__main__":
    main()
