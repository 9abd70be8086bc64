#!/usr/bin/env python3
"""Supervisor benchmark driver: mcp-supervisor against supervisord, same machine, same run.

Run through bench/supervisor/run.sh, which builds, installs supervisord and owns the temporary folder.
Standard library only. Every time stamp is CLOCK_MONOTONIC (time.monotonic_ns), which is system-wide, so the
load generator's failure times and the driver's kill times can be compared.

Phases (each system alone on the machine while it is measured):
  1  restart latency over N kill -9: kill -> replacement child exec'd (polled in /proc), then -> a correct echo
     tools/call answer on the server's port; mcp-supervisor also with requests sent from the kill on.
  2  connection failures during N restarts under loopback load (an asyncio client, a new connection per request).
  3  50 servers: cold start to all exec'd / all ready, then idle CPU and RSS of the supervisor process itself;
     3b: ours again with fixed ports and heartbeat_interval = 5 s.
  Every phase ends with SIGTERM to the supervisor: its exit status and any children it left running are reported.

`bench.py loadgen PORT CONNS OUT` is the load generator (a subprocess of phase 2).
"""
import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

BODY = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},'
    b'"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    b'"io.modelcontextprotocol/clientCapabilities":{}}}}'
)


def echo_request(port):
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
        f"Mcp-Method: tools/call\r\nMcp-Name: echo\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


def now_ns():
    return time.monotonic_ns()


def ms(ns):
    return ns / 1e6


# ---------------------------------------------------------------- one echo call (blocking)


def read_response(sock):
    """Reads one HTTP/1.1 response with Content-Length; returns (status, body) or raises."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        rest += chunk
    return status, rest


def echo_once(port, timeout=10.0):
    """One tools/call echo on a new connection: 'ok' or the kind of failure."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return "refused"
        except socket.timeout:
            return "connect-timeout"
        except OSError:
            return "connect-error"
        try:
            s.sendall(echo_request(port))
            status, body = read_response(s)
        except (ConnectionResetError, BrokenPipeError, EOFError):
            return "reset"
        except socket.timeout:
            return "timeout"
        except OSError:
            return "io-error"
        if status != 200:
            return "non200"
        return "ok" if b'"text":"hello"' in body else "bad-body"
    finally:
        s.close()


def echo_until_ok(port, deadline_s=20.0):
    """Sends echo calls until one is answered correctly; returns the monotonic ns of that answer."""
    end = now_ns() + int(deadline_s * 1e9)
    while True:
        r = echo_once(port, timeout=max(0.1, (end - now_ns()) / 1e9))
        if r == "ok":
            return now_ns()
        if now_ns() > end:
            raise RuntimeError(f"port {port} gave no correct echo answer within {deadline_s} s (last: {r})")
        if r in ("refused", "connect-error"):
            time.sleep(0.0002)


# ---------------------------------------------------------------- /proc


def children(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def running(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def wait_exec(sup_pid, exe, known, deadline_s=20.0, interval=0.0002):
    """Polls the supervisor's children until one not in `known` has exec'd `exe`: (pid, monotonic ns)."""
    end = now_ns() + int(deadline_s * 1e9)
    while True:
        for c in children(sup_pid):
            if c not in known and exe_of(c) == exe:
                return c, now_ns()
        if not running(sup_pid):
            raise RuntimeError(f"the supervisor {sup_pid} is gone")
        if now_ns() > end:
            raise RuntimeError(f"no new {os.path.basename(exe)} child of {sup_pid} within {deadline_s} s")
        time.sleep(interval)


def status_fields(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def stat_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (fields 14, 15)


def thread_counters(pid):
    """{tid: (sum_exec_runtime ns, context switches)} of every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run = int(f.read().split()[0])
            sw = 0
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        sw += int(line.split()[1])
            out[int(tid)] = (run, sw)
        except OSError:
            pass
    return out


def measure_idle(pid, seconds):
    """CPU of process pid over `seconds` of idling: from /proc/PID/stat ticks (10 ms resolution) and from the
    threads' schedstat run time (ns resolution; sampled every second so threads that end are still counted up
    to their last sample), plus context switches/s, RSS and threads at the end."""
    hz = os.sysconf("SC_CLK_TCK")
    base = thread_counters(pid)
    last = dict(base)
    t0 = now_ns()
    k0 = stat_ticks(pid)
    end = t0 + int(seconds * 1e9)
    while now_ns() < end:
        time.sleep(min(1.0, max(0.0, (end - now_ns()) / 1e9)))
        last.update(thread_counters(pid))
    k1 = stat_ticks(pid)
    t1 = now_ns()
    last.update(thread_counters(pid))
    wall = (t1 - t0) / 1e9
    run = sum(v[0] for v in last.values()) - sum(v[0] for v in base.values())
    sw = sum(v[1] for v in last.values()) - sum(v[1] for v in base.values())
    st = status_fields(pid)
    return {
        "seconds": wall,
        "cpu_pct_schedstat": 100.0 * run / 1e9 / wall,
        "cpu_pct_ticks": 100.0 * (k1 - k0) / hz / wall,
        "ticks": k1 - k0,
        "switches_per_s": sw / wall,
        "rss_kb": int(st["VmRSS"].split()[0]),
        "hwm_kb": int(st["VmHWM"].split()[0]),
        "threads": int(st["Threads"]),
        "threads_seen": len(last),
    }


# ---------------------------------------------------------------- processes we start


class Registry:
    """Every process this driver starts or sees as a supervised child, for the cleanup."""

    def __init__(self, path):
        self.path = path
        self.procs = []
        self.pids = set()

    def started(self, proc):
        self.procs.append(proc)
        self.note(proc.pid)

    def note(self, pid):
        if pid not in self.pids:
            self.pids.add(pid)
            with open(self.path, "a") as f:
                f.write(f"{pid}\n")

    def stop(self, proc, timeout=15):
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cleanup(self, exes):
        for p in self.procs:
            self.stop(p)
        for pid in self.pids:  # supervised children left behind (a supervisor that died, say)
            if exe_of(pid) in exes:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


class LineLog:
    """Reads a process's stderr through a pipe, time-stamping each line when it is read, and keeps a copy."""

    def __init__(self, fd, path, proc):
        self.proc = proc
        self.fd = fd
        self.path = path
        self.lines = []  # (monotonic ns, text)
        self.cv = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        partial = b""
        with open(self.path, "w") as out:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                ts = now_ns()
                if not chunk:
                    break
                partial += chunk
                *done, partial = partial.split(b"\n")
                texts = [d.decode(errors="replace") for d in done]
                for t in texts:
                    out.write(t + "\n")
                with self.cv:
                    self.lines.extend((ts, t) for t in texts)
                    self.cv.notify_all()
        os.close(self.fd)

    def wait(self, regex, start=0, deadline_s=20.0, count=1):
        """Waits for `count` lines from index `start` on matching regex: list of (index, ts, match)."""
        rx = re.compile(regex)
        end = time.monotonic() + deadline_s
        found = []
        i = start
        with self.cv:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i][1])
                    if m:
                        found.append((i, self.lines[i][0], m))
                        if len(found) == count:
                            return found
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"log: {len(found)}/{count} lines matching {regex!r} within {deadline_s} s")
                if self.proc.poll() is not None and not self.thread.is_alive():
                    tail = " | ".join(t for _, t in self.lines[-3:])
                    raise RuntimeError(f"the supervisor exited with status {self.proc.returncode}: {tail}")
                self.cv.wait(min(left, 0.5))

    def __len__(self):
        with self.cv:
            return len(self.lines)


def free_port():
    return free_ports(1)[0]


def free_ports(n):
    """n distinct free loopback ports (all bound at once, then released)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def pct(samples, p):
    s = sorted(samples)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(samples_ns):
    v = [ms(x) for x in samples_ns]
    return {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "min": min(v), "max": max(v),
            "mean": sum(v) / len(v)}


# ---------------------------------------------------------------- the two supervisors


CONFIGS = {}  # label -> text, for the results file


class Ours:
    """mcp-supervisor with a folder of server files, its stderr read through a pipe."""

    STARTING = r"^mcp-supervisor: ([\w.#-]+)\[(\d+)\]: starting$"
    RUNNING = r"^mcp-supervisor: ([\w.#-]+)\[(\d+)\]: running \(ready in (\d+) ms\)"

    def __init__(self, a, reg, name, servers, defaults):
        self.a, self.reg = a, reg
        self.dir = os.path.join(a.work, name)
        os.makedirs(os.path.join(self.dir, "servers.d"))
        base = random.randrange(40000, 58000)
        main = [
            f'state_dir = "state"',
            f'servers_dir = "servers.d"',
            f'listen_address = "127.0.0.1"',
            f"port_range = [{base}, {base + 999}]",
            "",
            defaults,
        ]
        with open(os.path.join(self.dir, "main.toml"), "w") as f:
            f.write("\n".join(main) + "\n")
        for sname, body in servers.items():
            with open(os.path.join(self.dir, "servers.d", sname + ".toml"), "w") as f:
                f.write(body)
        first = sorted(servers)[0]
        if not name.startswith("p2-"):  # phase 2: phase 1's files with other ports
            more = f" (and {len(servers) - 1} more like it)" if len(servers) > 1 else ""
            CONFIGS[f"WORK/{name}/main.toml"] = "\n".join(main) + "\n"
            CONFIGS[f"WORK/{name}/servers.d/{first}.toml{more}"] = servers[first]
        self.exe = os.path.realpath(a.host)
        self.cmd = [a.supervisor, "-c", os.path.join(self.dir, "main.toml"), "--host", a.host]

    def start(self):
        r, w = os.pipe()
        self.t_start = now_ns()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=w, stderr=w, close_fds=True)
        os.close(w)
        self.reg.started(self.proc)
        self.log = LineLog(r, os.path.join(self.dir, "supervisor.log"), self.proc)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        return stop_and_check(self, lambda: self.log.thread.join(5))


def ours_defaults(restart_bench):
    if restart_bench:
        # Restart as fast as the supervisor can: no backoff, no jitter, room for every crash of the run.
        return "\n".join([
            "[defaults]", 'restart = "always"', "start_timeout = 10", "stop_timeout = 5", "",
            "[defaults.backoff]", "initial = 0", "max = 1", "multiplier = 1", "jitter = 0", "reset_after = 60", "",
            "[defaults.intensity]", "max_restarts = 100000", "window = 60", "cooldown = 1", "",
        ])
    # As examples/supervisor.toml (heartbeats at their defaults).
    return "\n".join([
        "[defaults]", 'restart = "on-failure"', "start_timeout = 10", "stop_timeout = 5", "",
        "[defaults.backoff]", "initial = 0.1", "max = 30", "multiplier = 2", "jitter = 0.2", "reset_after = 60", "",
        "[defaults.intensity]", "max_restarts = 5", "window = 60", "cooldown = 120", "",
    ])


class Peer:
    """supervisord (nodaemon) with an ini file; its own log in the folder."""

    def __init__(self, a, reg, name, programs, exe):
        self.a, self.reg = a, reg
        self.dir = os.path.join(a.work, name)
        os.makedirs(self.dir)
        self.exe = os.path.realpath(exe)
        conf = [
            "[supervisord]", "nodaemon=true", f"logfile={self.dir}/supervisord.log",
            f"pidfile={self.dir}/supervisord.pid", f"childlogdir={self.dir}", "loglevel=info", "",
            "[unix_http_server]", f"file={self.dir}/supervisor.sock", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.dir}/supervisor.sock", "",
        ]
        for pname, settings in programs.items():
            conf.append(f"[program:{pname}]")
            conf.extend(f"{k}={v}" for k, v in settings.items())
            conf.append("")
        self.conf = os.path.join(self.dir, "supervisord.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf))
        n = len(programs)
        if not name.startswith("p2-"):
            shown = conf if n <= 1 else conf[: conf.index(f"[program:{sorted(programs)[1]}]")]
            more = f" (and {n - 1} more programs like the first)" if n > 1 else ""
            CONFIGS[f"WORK/{name}/supervisord.conf{more}"] = "\n".join(shown).replace(a.work, "WORK")
        self.cmd = [a.supervisord, "-n", "-c", self.conf]

    def start(self):
        self.t_start = now_ns()
        self.out = open(os.path.join(self.dir, "supervisord.stderr"), "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
                                     close_fds=True)
        self.reg.started(self.proc)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        return stop_and_check(self, self.out.close)


def stop_and_check(sup, after):
    """SIGTERM (then SIGKILL after 15 s); returns (exit status, children still running 0.5 s after the exit)."""
    kids = children(sup.pid)
    sup.reg.stop(sup.proc)
    after()
    time.sleep(0.5)
    left = [k for k in kids if exe_of(k) == sup.exe]
    return sup.proc.returncode, len(left)


def stopped(res, name, sup):
    res.setdefault("stops", {})[name] = sup.stop()


# ---------------------------------------------------------------- phases


def settle():
    time.sleep(0.05)


def phase1_ours(a, reg, res):
    port = free_port()
    s = Ours(a, reg, "p1-ours", {"echo": f'plugin = "{a.plugin}"\nport = {port}\n'}, ours_defaults(True)).start()
    try:
        (_, _, m), = s.log.wait(Ours.RUNNING, deadline_s=30)
        cur = int(m.group(2))
        known = {cur}
        reg.note(cur)
        echo_until_ok(port)
        exec_ns, serve_ns, log_start_ns, log_run_ns, ready_ms = [], [], [], [], []
        # a: kill -> exec'd (polled), then -> a correct answer (requests from the moment the exec was seen)
        for _ in range(a.kills):
            settle()
            mark = len(s.log)
            t0 = now_ns()
            os.kill(cur, signal.SIGKILL)
            new, t_exec = wait_exec(s.pid, s.exe, known)
            t_ok = echo_until_ok(port)
            (_, ts_start, _), = s.log.wait(rf"^mcp-supervisor: echo\[{new}\]: starting$", mark)
            (_, ts_run, mr), = s.log.wait(rf"^mcp-supervisor: echo\[{new}\]: running", mark)
            known.add(new)
            reg.note(new)
            exec_ns.append(t_exec - t0)
            serve_ns.append(t_ok - t0)
            log_start_ns.append(ts_start - t0)
            log_run_ns.append(ts_run - t0)
            ready_ms.append(int(re.search(r"ready in (\d+) ms", mr.string).group(1)))
            cur = new
        # b': requests from the kill on (connect lands in the backlog the supervisor keeps)
        direct_ns, refused = [], 0
        for _ in range(a.kills):
            settle()
            mark = len(s.log)
            t0 = now_ns()
            os.kill(cur, signal.SIGKILL)
            while True:
                r = echo_once(port)
                if r == "ok":
                    break
                refused += r == "refused"
                if now_ns() - t0 > 20e9:
                    raise RuntimeError("no answer within 20 s of the kill")
            direct_ns.append(now_ns() - t0)
            (_, _, mr), = s.log.wait(r"^mcp-supervisor: echo\[(\d+)\]: running", mark)
            cur = int(mr.group(1))
            reg.note(cur)
        restarts = sum(1 for _, t in s.log.lines if re.search(r"echo\[\d+\]: killed by signal 9", t))
        res["p1_ours"] = {
            "exec": summary(exec_ns), "serve": summary(serve_ns), "log_starting": summary(log_start_ns),
            "log_running": summary(log_run_ns), "ready_in_ms_p50": pct(ready_ms, 50),
            "ready_in_ms_p99": pct(ready_ms, 99), "serve_from_kill": summary(direct_ns),
            "refused_from_kill": refused, "kills_logged": restarts,
            "raw_exec_ms": [round(ms(x), 3) for x in exec_ns], "raw_serve_ms": [round(ms(x), 3) for x in serve_ns],
        }
    finally:
        stopped(res, "p1 ours", s)


def peer_echo_programs(a, port):
    return {"echo": {
        "command": f"{a.host} --plugin {a.plugin} --listen 127.0.0.1:{port}",
        "autorestart": "true", "startsecs": "0", "startretries": "1000", "stopwaitsecs": "5",
        "redirect_stderr": "true", "stdout_logfile": "%(here)s/echo.log",
    }}


def first_child(sup_pid, exe, deadline_s=30):
    return wait_exec(sup_pid, exe, set(), deadline_s, interval=0.005)[0]


def phase1_peer(a, reg, res):
    port = free_port()
    s = Peer(a, reg, "p1-peer", peer_echo_programs(a, port), a.host).start()
    try:
        cur = first_child(s.pid, s.exe)
        reg.note(cur)
        known = {cur}
        echo_until_ok(port)
        exec_ns, serve_ns = [], []
        for _ in range(a.kills):
            settle()
            t0 = now_ns()
            os.kill(cur, signal.SIGKILL)
            new, t_exec = wait_exec(s.pid, s.exe, known)
            t_ok = echo_until_ok(port)
            known.add(new)
            reg.note(new)
            exec_ns.append(t_exec - t0)
            serve_ns.append(t_ok - t0)
            cur = new
        res["p1_peer"] = {"exec": summary(exec_ns), "serve": summary(serve_ns),
                          "raw_exec_ms": [round(ms(x), 3) for x in exec_ns],
                          "raw_serve_ms": [round(ms(x), 3) for x in serve_ns]}
    finally:
        stopped(res, "p1 supervisord", s)


def run_load(a, port):
    out = os.path.join(a.work, f"load-{port}.json")
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "loadgen", str(port), str(a.conns), out],
                         stdin=subprocess.DEVNULL)
    return p, out


def finish_load(reg, p, out, kills):
    p.send_signal(signal.SIGTERM)
    p.wait(30)
    with open(out) as f:
        r = json.load(f)
    # A failure that was in progress at a kill: the request the killed child had accepted (or was about to).
    in_flight = other = 0
    for t0, t1, kind in r.pop("failures"):
        if kind == "refused":
            continue
        if any(t0 <= k <= t1 for k in kills):
            in_flight += 1
        else:
            other += 1
    r["failed_in_flight_at_kill"] = in_flight
    r["failed_other"] = other
    return r


def phase2_ours(a, reg, res):
    port = free_port()
    s = Ours(a, reg, "p2-ours", {"echo": f'plugin = "{a.plugin}"\nport = {port}\n'}, ours_defaults(True)).start()
    load = None
    try:
        (_, _, m), = s.log.wait(Ours.RUNNING, deadline_s=30)
        cur = int(m.group(2))
        reg.note(cur)
        echo_until_ok(port)
        load, out = run_load(a, port)
        reg.started(load)
        time.sleep(1.0)
        kills = []
        t_begin = now_ns()
        for _ in range(a.kills):
            settle()
            mark = len(s.log)
            kills.append(now_ns())
            os.kill(cur, signal.SIGKILL)
            (_, _, mr), = s.log.wait(r"^mcp-supervisor: echo\[(\d+)\]: running", mark)
            cur = int(mr.group(1))
            reg.note(cur)
        t_end = now_ns()
        time.sleep(1.0)
        r = finish_load(reg, load, out, kills)
        r["kill_loop_s"] = (t_end - t_begin) / 1e9
        res["p2_ours"] = r
    finally:
        if load and load.poll() is None:
            load.kill()
        stopped(res, "p2 ours", s)


def phase2_peer(a, reg, res):
    port = free_port()
    s = Peer(a, reg, "p2-peer", peer_echo_programs(a, port), a.host).start()
    load = None
    try:
        cur = first_child(s.pid, s.exe)
        reg.note(cur)
        known = {cur}
        echo_until_ok(port)
        load, out = run_load(a, port)
        reg.started(load)
        time.sleep(1.0)
        kills = []
        t_begin = now_ns()
        for _ in range(a.kills):
            settle()
            kills.append(now_ns())
            os.kill(cur, signal.SIGKILL)
            cur, _ = wait_exec(s.pid, s.exe, known, interval=0.001)
            known.add(cur)
            reg.note(cur)
            echo_until_ok(port)
        t_end = now_ns()
        time.sleep(1.0)
        r = finish_load(reg, load, out, kills)
        r["kill_loop_s"] = (t_end - t_begin) / 1e9
        res["p2_peer"] = r
    finally:
        if load and load.poll() is None:
            load.kill()
        stopped(res, "p2 supervisord", s)


def count_exec(sup_pid, exe, n, deadline_s, reg):
    """Polls (1 ms) until n children of sup_pid have exec'd exe: monotonic ns."""
    end = now_ns() + int(deadline_s * 1e9)
    while True:
        cs = [c for c in children(sup_pid) if exe_of(c) == exe]
        if len(cs) >= n:
            for c in cs:
                reg.note(c)
            return now_ns()
        if not running(sup_pid):
            raise RuntimeError(f"the supervisor {sup_pid} is gone")
        if now_ns() > end:
            raise RuntimeError(f"{len(cs)}/{n} children exec'd within {deadline_s} s")
        time.sleep(0.001)


def phase3_ours(a, reg, res):
    servers = {f"s{i:02d}": f'plugin = "{a.plugin}"\n' for i in range(a.servers)}
    s = Ours(a, reg, "p3-ours", servers, ours_defaults(False)).start()
    try:
        t_exec = count_exec(s.pid, s.exe, a.servers, 60, reg)
        found = s.log.wait(Ours.RUNNING, count=a.servers, deadline_s=60)
        t_ready = found[-1][1]
        ready = [int(m.group(3)) for _, _, m in found]
        time.sleep(a.settle)
        idle = measure_idle(s.pid, a.idle)
        # Every server answers (after the measurement, so it cannot disturb it).
        ports = [int(m.group(1)) for _, m in
                 ((t, re.search(r": starting 1 replica\(s\) on 127\.0\.0\.1:(\d+)", t)) for _, t in s.log.lines) if m]
        answered = sum(echo_once(p) == "ok" for p in ports)
        res["p3_ours"] = {"all_exec_ms": ms(t_exec - s.t_start), "all_ready_ms": ms(t_ready - s.t_start),
                          "ready_in_ms_p50": pct(ready, 50), "ready_in_ms_max": max(ready),
                          "idle": idle, "answered": answered, "servers": len(ports)}
    finally:
        stopped(res, "p3 ours", s)


HB_FREQUENT = 5


def phase3_ours_quiet(a, reg, res):
    """The same servers with fixed ports (no ports.json rewrite per server) and frequent heartbeats
    (heartbeat_interval = 5 s), to show what the heartbeat costs when idle."""
    ports = free_ports(a.servers)
    servers = {f"s{i:02d}": f'plugin = "{a.plugin}"\nport = {ports[i]}\n' for i in range(a.servers)}
    hb = f"heartbeat_interval = {HB_FREQUENT:g}\nheartbeat_timeout = {3 * HB_FREQUENT:g}\n"
    defaults = ours_defaults(False).replace("[defaults]\n", "[defaults]\n" + hb)
    s = Ours(a, reg, "p3b-ours", servers, defaults).start()
    try:
        t_exec = count_exec(s.pid, s.exe, a.servers, 60, reg)
        found = s.log.wait(Ours.RUNNING, count=a.servers, deadline_s=60)
        time.sleep(a.settle)
        idle = measure_idle(s.pid, a.idle)
        res["p3b_ours"] = {"all_exec_ms": ms(t_exec - s.t_start), "all_ready_ms": ms(found[-1][1] - s.t_start),
                           "idle": idle}
    finally:
        stopped(res, "p3b ours", s)


def phase3_peer(a, reg, res):
    sleep_bin = os.path.realpath(a.sleep)
    programs = {f"s{i:02d}": {"command": f"{sleep_bin} 100000"} for i in range(a.servers)}
    s = Peer(a, reg, "p3-peer", programs, sleep_bin).start()
    try:
        t_exec = count_exec(s.pid, s.exe, a.servers, 60, reg)
        time.sleep(a.settle)  # past startsecs=1: every program RUNNING
        idle = measure_idle(s.pid, a.idle)
        res["p3_peer"] = {"all_exec_ms": ms(t_exec - s.t_start), "idle": idle}
    finally:
        stopped(res, "p3 supervisord", s)


# ---------------------------------------------------------------- load generator (subprocess)


def loadgen(port, conns, out):
    req = echo_request(port)
    counts = {}
    failures = []
    stop = asyncio.Event()

    async def one():
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except ConnectionRefusedError:
            return "refused"
        except asyncio.TimeoutError:
            return "connect-timeout"
        except OSError:
            return "connect-error"
        try:
            w.write(req)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            body = await asyncio.wait_for(r.readexactly(length), 10)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
            return "reset"
        except asyncio.TimeoutError:
            return "timeout"
        except OSError:
            return "io-error"
        finally:
            w.close()
        if status != 200:
            return "non200"
        return "ok" if b'"text":"hello"' in body else "bad-body"

    async def worker():
        while not stop.is_set():
            t0 = now_ns()
            kind = await one()
            t1 = now_ns()
            counts[kind] = counts.get(kind, 0) + 1
            if kind != "ok":
                failures.append((t0, t1, kind))
                if kind in ("refused", "connect-error"):
                    await asyncio.sleep(0.001)  # a client that retries, not a spin

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        t0 = now_ns()
        tasks = [asyncio.create_task(worker()) for _ in range(conns)]
        await stop.wait()
        done, pending = await asyncio.wait(tasks, timeout=15)
        for t in pending:
            t.cancel()
        return (now_ns() - t0) / 1e9

    secs = asyncio.run(main())
    total = sum(counts.values())
    r = {"total": total, "ok": counts.get("ok", 0), "refused": counts.get("refused", 0),
         "failed": total - counts.get("ok", 0) - counts.get("refused", 0), "kinds": counts,
         "seconds": secs, "req_per_s": total / secs, "conns": conns, "failures": failures}
    with open(out, "w") as f:
        json.dump(r, f)


# ---------------------------------------------------------------- report


def fmt(x, unit="", nd=1):
    return "—" if x is None else f"{x:,.{nd}f}{unit}"


def ratio(peer, ours):
    if peer is None or ours is None or ours <= 0 or peer <= 0:
        return "—"
    r = peer / ours
    return f"{r:,.1f}×" if r >= 1 else f"{r:.2g}×"


def verdict(value, target, smaller=True):
    if value is None:
        return "—"
    ok = value <= target if smaller else value >= target
    return "met" if ok else "**NOT met**"


def report(a, res, errors, env):
    o1, p1 = res.get("p1_ours", {}), res.get("p1_peer", {})
    o2, p2 = res.get("p2_ours", {}), res.get("p2_peer", {})
    o3, p3 = res.get("p3_ours", {}), res.get("p3_peer", {})
    g = lambda d, *ks: _dig(d, ks)
    L = []
    L.append("# mcp-supervisor vs supervisord: restarts, availability, footprint\n")
    L.append(f"`{env['command']}` at commit {env['commit']} — {env['when']}; {env['cpus']} cores, {env['machine']}, Linux {env['kernel']}, "
             f"load average {env['load_before']} before / {env['load_after']} after; supervisord {env['supervisord']} "
             f"(Python {env['python']}); {a.kills} kills per restart loop, {a.servers} servers, {a.idle:g} s idle.\n")
    L.append("| # | measure | target | mcp-supervisor | supervisord | supervisord / ours |")
    L.append("|---|---|---|---:|---:|---:|")

    def row(n, what, target, ours, peer, r="—"):
        L.append(f"| {n} | {what} | {target} | {ours} | {peer} | {r} |")

    def num(n, what, target, ov, pv, unit=" ms", nd=1, tgt=None, cmp=True):
        v = f" ({verdict(ov, tgt)})" if tgt is not None and ov is not None else ""
        row(n, what, target, fmt(ov, unit, nd) + v, fmt(pv, unit, nd), ratio(pv, ov) if cmp else "—")

    def pair(d, k, nd=2):
        a_, b_ = g(d, k, "p50"), g(d, k, "p99")
        return "—" if a_ is None else f"{a_:,.{nd}f} / {b_:,.{nd}f} ms"

    def of(d, k):
        return "—" if g(d, k) is None else f"{g(d, k):,} / {g(d, 'total'):,}"

    num("1a", "kill -9 → replacement exec'd (/proc poll), p50", "≤ 5 ms", g(o1, "exec", "p50"), g(p1, "exec", "p50"),
        nd=2, tgt=5)
    num("1a", "kill -9 → replacement exec'd, p99", "", g(o1, "exec", "p99"), g(p1, "exec", "p99"), nd=2)
    row("1a", "kill -9 → `starting` log line read from the pipe, p50 / p99", "", pair(o1, "log_starting"), "—")
    num("1b", "kill -9 → correct echo answer on the port, p50", "≤ 50 ms", g(o1, "serve", "p50"),
        g(p1, "serve", "p50"), tgt=50)
    num("1b", "kill -9 → correct echo answer, p99", "", g(o1, "serve", "p99"), g(p1, "serve", "p99"))
    row("1b", "same, requests sent from the kill on, p50 / p99 (refused)", "",
        pair(o1, "serve_from_kill", 1) + f" ({g(o1, 'refused_from_kill')})", "—")
    row("1b", "kill -9 → `running` log line, p50 / p99; child's own `ready in N ms`, p50", "",
        pair(o1, "log_running", 1) + f"; {g(o1, 'ready_in_ms_p50')} ms", "—")
    num("2", f"refused connections, {a.kills} restarts under load", "0", g(o2, "refused"), g(p2, "refused"), unit="",
        nd=0, tgt=0, cmp=False)
    num("2", "failed requests in flight at a kill (reset/EOF)", "", g(o2, "failed_in_flight_at_kill"),
        g(p2, "failed_in_flight_at_kill"), unit="", nd=0, cmp=False)
    num("2", "failed requests not in flight at a kill", "0", g(o2, "failed_other"), g(p2, "failed_other"), unit="",
        nd=0, tgt=0, cmp=False)
    kinds = lambda d: "—" if not d else ", ".join(f"{k} {v:,}" for k, v in sorted(d["kinds"].items()) if k != "ok") or "none"
    row("2", "failures by kind", "", kinds(o2), kinds(p2))
    row("2", "answered correctly / all requests (refused attempts included)", "", of(o2, "ok"), of(p2, "ok"))
    num("2", "load generator rate over the phase", "", g(o2, "req_per_s"), g(p2, "req_per_s"), unit=" req/s", nd=0,
        cmp=False)
    num("2", f"time for the {a.kills} kill → serving-again cycles", "", g(o2, "kill_loop_s"), g(p2, "kill_loop_s"),
        unit=" s", nd=1)
    num("3", f"cold start → all {a.servers} children exec'd", "", g(o3, "all_exec_ms"), g(p3, "all_exec_ms"), nd=0)
    num("3", f"cold start → all {a.servers} `running` (ready)", "≤ 2000 ms", g(o3, "all_ready_ms"), None, nd=0,
        tgt=2000, cmp=False)
    num("3", f"idle CPU, % of one core (thread run time over {a.idle:g} s)", "≤ 0.02 %",
        g(o3, "idle", "cpu_pct_schedstat"), g(p3, "idle", "cpu_pct_schedstat"), unit=" %", nd=4, tgt=0.02)
    num("3", "idle CPU, % of one core (utime+stime, 10 ms ticks)", "", g(o3, "idle", "cpu_pct_ticks"),
        g(p3, "idle", "cpu_pct_ticks"), unit=" %", nd=3, cmp=False)
    num("3", "idle wake-ups (context switches, all threads)", "", g(o3, "idle", "switches_per_s"),
        g(p3, "idle", "switches_per_s"), unit="/s", nd=1)
    rss_o, rss_p = g(o3, "idle", "rss_kb"), g(p3, "idle", "rss_kb")
    num("3", "supervisor RSS (VmRSS) after the idle period", "≤ 30 MB", rss_o and rss_o / 1024,
        rss_p and rss_p / 1024, unit=" MB", nd=1, tgt=30)
    num("3", "supervisor threads at the end", "", g(o3, "idle", "threads"), g(p3, "idle", "threads"), unit="", nd=0,
        cmp=False)
    q3 = res.get("p3b_ours", {})
    num("3b", f"fixed ports (no ports.json write per server): cold start → all {a.servers} ready", "≤ 2000 ms",
        g(q3, "all_ready_ms"), None, nd=0, tgt=2000, cmp=False)
    num("3b", f"`heartbeat_interval = {HB_FREQUENT:g}`: idle CPU, % of one core", "",
        g(q3, "idle", "cpu_pct_schedstat"), g(p3, "idle", "cpu_pct_schedstat"), unit=" %", nd=4)
    num("3b", f"`heartbeat_interval = {HB_FREQUENT:g}`: idle wake-ups", "", g(q3, "idle", "switches_per_s"),
        g(p3, "idle", "switches_per_s"), unit="/s", nd=1)
    stops = res.get("stops", {})

    def stop_text(names):
        out = []
        for n in names:
            if n not in stops:
                continue
            rc, left = stops[n]
            t = "exit 0" if rc == 0 else (f"**killed by {signal.Signals(-rc).name}**" if rc < 0 else f"**exit {rc}**")
            if left:
                t += f", **{left} children left running**"
            out.append(f"{n.split()[0]}: {t}")
        return "; ".join(out) or "—"

    row("all", "SIGTERM stop of each phase's supervisor (children left running)", "exit 0",
        stop_text(["p1 ours", "p2 ours", "p3 ours", "p3b ours"]),
        stop_text(["p1 supervisord", "p2 supervisord", "p3 supervisord"]))
    L.append("")
    if errors:
        L.append("**Errors:** " + "; ".join(errors) + "\n")
    L.append("How it was measured:\n")
    L.append(f"- Each supervisor runs alone while it is measured; it is started fresh for every phase in a temporary "
             f"folder (configs, state, logs), removed at the end. Time stamps are CLOCK_MONOTONIC in the driver "
             f"(`bench/supervisor/bench.py`, Python, standard library).")
    L.append("- Child: mcp-plugin-host + the C reference plugin for phases 1-2 (ours hands it the socket on fd 3; "
             "supervisord runs the same binary with `--listen 127.0.0.1:PORT`, as it cannot hold the socket). "
             f"Phase 3: ours runs {a.servers} real servers (dynamic ports, backoff/intensity as "
             f"examples/supervisor.toml, heartbeats at their defaults); supervisord runs {a.servers} `sleep 100000` "
             "programs (its defaults, with its control socket).")
    L.append("- Ours, phases 1-2: `restart = \"always\"`, backoff `initial = 0`, `jitter = 0`, `multiplier = 1`, "
             "intensity `max_restarts = 100000` per 60 s. supervisord: `autorestart=true`, `startsecs=0`, "
             "`startretries=1000`.")
    L.append("- 1a: SIGKILL to the current child, then a poll every ~0.2 ms of `/proc/SUP/task/*/children` for a new "
             "child whose `/proc/PID/exe` is the child binary (so after its execve). The `starting` log line is "
             "written right after posix_spawn returns, read through a pipe by a driver thread.")
    L.append("- 1b: after the new child was seen, echo tools/call requests (2026-07-28, new connection each, "
             "headers MCP-Protocol-Version, Mcp-Method, Mcp-Name, `_meta`) until one returns 200 with the echoed "
             "text; a refused connection is retried after 0.2 ms. The 'from the kill on' row sends the first "
             "request right after the kill (ours: it waits in the kept socket's backlog). Next kill 50 ms after "
             "the answer (ours: and after the `running` line).")
    L.append(f"- 2: `bench.py loadgen`: {a.conns} asyncio workers, a new connection per request, each request "
             "checked (status 200 and the echoed text); a refused connect is counted and retried after 1 ms. "
             "The kill loop waits for the new child's `running` line (ours) or a correct answer from the new "
             "child (supervisord), then 50 ms. A failed request whose [start, end] contains a kill is 'in flight "
             "at a kill' (the killed child had accepted it, or took it from the backlog just before dying).")
    L.append(f"- 3: cold start from just before exec of the supervisor to the last child exec'd (/proc poll every "
             f"1 ms) and, ours, the {a.servers}th `running` line; after {a.settle:g} s of settling (past ours' "
             f"`start_timeout = 10`: its cancelled start timers still wake the queue once, at 10 s), CPU of the supervisor "
             f"process over {a.idle:g} s: the sum of its threads' `schedstat` run time (ns; threads sampled every "
             "second) and utime+stime from `/proc/PID/stat` (10 ms ticks, so ±"
             f"{100 * 0.01 / a.idle:.3f} %); RSS is VmRSS. Idle ours: the heartbeat ping/pong with every child, "
             "at the default interval.")
    L.append(f"- 3b: ours again with the same {a.servers} servers on fixed ports (so no `ports.json` rewrite, with its "
             f"fsyncs, per dynamic assignment) and frequent heartbeats (`heartbeat_interval = {HB_FREQUENT:g}`, "
             f"`heartbeat_timeout = {3 * HB_FREQUENT:g}`); measured like 3. The supervisord column repeats its row 3 "
             "numbers.")
    L.append("- Stop: SIGTERM to the supervisor at the end of each phase, up to 15 s for it to exit; 'children left "
             "running' counts its children still alive 0.5 s after it exited (the driver kills them).")
    if o3:
        L.append(f"- Checks: phase 3 ours: {o3.get('answered')}/{o3.get('servers')} servers answered the echo call "
                 f"after the idle period; children's own start p50 {o3.get('ready_in_ms_p50')} ms, max "
                 f"{o3.get('ready_in_ms_max')} ms. Phase 1 ours: {o1.get('kills_logged')} `killed by signal 9` "
                 f"lines in the log for {2 * a.kills} kills.")
    L.append("\nCommands (paths relative to the repository; WORK is the temporary folder):\n")
    L.append("```")
    L.extend(env["commands"])
    L.append("```")
    if CONFIGS:
        L.append("\n<details><summary>The generated configuration files (WORK = the temporary folder; phase 2 uses "
                 "phase 1's with other ports)</summary>\n")
        for label, text in CONFIGS.items():
            L.append(f"`{label}`:\n")
            L.append("```ini" if label.endswith(".conf") or ".conf " in label else "```toml")
            L.append(text.rstrip("\n"))
            L.append("```\n")
        L.append("</details>")
    return "\n".join(L) + "\n"


def _dig(d, ks):
    for k in ks:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        loadgen(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--supervisor", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--supervisord", required=True)
    ap.add_argument("--sleep", default="/bin/sleep")
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--servers", type=int, default=50)
    ap.add_argument("--idle", type=float, default=20)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--settle", type=float, default=12,
                    help="seconds between all ready and the idle measurement (past start_timeout = 10 s)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json")
    ap.add_argument("--command", default="bench/supervisor/run.sh")
    ap.add_argument("--phases", default="1,2,3")
    ap.add_argument("--ours-only", action="store_true", help="skip the supervisord phases (bench/compare.py)")
    a = ap.parse_args()
    for k in ("supervisor", "host", "plugin", "supervisord"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    reg = Registry(os.path.join(a.work, "pids"))
    exes = {os.path.realpath(a.host), os.path.realpath(a.sleep)}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    sup_ver = subprocess.run([a.supervisord, "--version"], capture_output=True, text=True).stdout.strip()
    env = {
        "command": a.command, "when": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(),
        "machine": platform.machine(), "kernel": platform.release(), "supervisord": sup_ver,
        "python": platform.python_version(), "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": git_describe(),
    }
    res, errors = {}, []
    phases = [p for p in a.phases.split(",")]
    steps = []
    if "1" in phases:
        steps += [("1 ours", phase1_ours), ("1 supervisord", phase1_peer)]
    if "2" in phases:
        steps += [("2 ours", phase2_ours), ("2 supervisord", phase2_peer)]
    if "3" in phases:
        steps += [("3 ours", phase3_ours), ("3 supervisord", phase3_peer), ("3b ours", phase3_ours_quiet)]
    if a.ours_only:
        steps = [(name, fn) for name, fn in steps if "supervisord" not in name]
    try:
        run_steps(a, reg, res, errors, steps)
    except KeyboardInterrupt:
        print("interrupted: every process stopped, no results written", file=sys.stderr)
        return 130
    finally:
        reg.cleanup(exes)
    env["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    env["commands"] = commands(a)
    if a.json:  # written before the report, which needs the peer's phases (absent with --ours-only)
        with open(a.json, "w") as f:
            json.dump({"results": res, "errors": errors, "env": env}, f, indent=1)
    text = report(a, res, errors, env)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    return 1 if errors else 0


def run_steps(a, reg, res, errors, steps):
    for name, fn in steps:
        t = time.monotonic()
        print(f"phase {name} ...", file=sys.stderr, flush=True)
        try:
            fn(a, reg, res)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # keep going: the other phases still say something
            errors.append(f"phase {name}: {e}")
            print(f"phase {name} FAILED: {e}", file=sys.stderr, flush=True)
        print(f"phase {name}: {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "Sources", "Package.swift"], capture_output=True,
                               text=True).stdout.strip()
        return head + (" + uncommitted changes in Sources/" if dirty else "")
    except OSError:
        return "unknown"


def commands(a):
    rel = lambda p: os.path.relpath(p, os.getcwd()) if p.startswith(os.getcwd()) else p
    return [
        f"# build: swift build -c release && scripts/build-plugins.sh; supervisord: python3 -m venv "
        f".build-bench/venv-supervisord && .build-bench/venv-supervisord/bin/pip install 'supervisor==4.3.0'",
        f"{rel(a.supervisor)} -c WORK/p1-ours/main.toml --host {rel(a.host)}     # phases 1, 2, 3 (p2-ours, p3-ours)",
        "#   WORK/p1-ours/servers.d/echo.toml: plugin = \"<abs>/.build-plugins/libreference.so\", port = <free port>",
        f"{rel(a.supervisord)} -n -c WORK/p1-peer/supervisord.conf     # phases 1, 2, 3 (p2-peer, p3-peer)",
        f"#   [program:echo] command={rel(a.host)} --plugin <abs>/.build-plugins/libreference.so "
        "--listen 127.0.0.1:<free port>",
        f"#   phase 3: [program:sNN] command={os.path.realpath(a.sleep)} 100000  (x{a.servers})",
        f"python3 bench/supervisor/bench.py loadgen <port> {a.conns} WORK/load-<port>.json     # phase 2 load",
        f"kill -9 <child pid>     # x{a.kills} per restart loop",
        "kill -TERM <supervisor pid>     # end of each phase",
    ]


if __name__ == "__main__":
    sys.exit(main())
