"""The chaos soak (issue 17, docs/reliability.md "Chaos soak"): one supervisor with four servers under load from the
official Python SDK, wrk and raw HTTP clients while, at random, children are SIGKILLed and SIGSTOPped, calls crash
and hang, a health callback turns slow, the configuration is reloaded changed and broken, the control socket gets
bursts and the ports get hostile HTTP. At the end:

- zero supervisor faults (it ran throughout, logged no error of its own, exits 0 on SIGTERM leaving nothing behind),
- zero zombies, the supervisor's descriptors and RSS back to their starting values within the stated margin,
- every port unchanged, every server healthy again, every accepted control request answered,
- every client-visible failure attributed to the fault that caused it (none "unexplained").

Prints a markdown report and writes it to --out; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MODERN = "2026-07-28"
# Seconds after a fault ends during which a failure of that server's clients is its consequence: a killed child is
# back within a backoff step; a stopped one is killed as hung at most heartbeat_timeout (3 s) after it stopped; a
# slow health callback fails two 1 s probes before the kill; a hung call holds its slot until the 2 s call
# deadline and the stuck-slot verdict. Hostile HTTP and control bursts explain nothing: a legitimate client failing
# during them is a finding.
GRACE = {"SIGKILL": 3.0, "SIGSTOP/SIGCONT": 4.0, "crashing call": 3.0, "hanging call": 6.0,
         "slow health callback": 6.0, "reload (changed)": 3.0, "reload (broken)": 0.0}
FD_MARGIN = 4  # descriptors
RSS_MARGIN = 0.25  # fraction of the starting RSS (plus 4 MiB: allocator pages the soak's bursts touched)


@dataclass
class Action:
    cause: str
    server: str
    t0: float
    t1: float


@dataclass
class Failure:
    server: str
    client: str
    started: float
    ended: float
    error: str


class Soak:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.work)
        self.sock = self.work / "control.sock"
        self.actions: list[Action] = []
        self.failures: list[Failure] = []
        self.successes: Counter = Counter()
        self.expected: Counter = Counter()  # the faults' own calls failing as they must (a crash, a hang)
        self.control_sent = 0
        self.control_answered = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.rng = random.Random(a.seed)
        self.log_lines: list[str] = []
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self.unexplained: list[str] = []
        self.unexpected: list[str] = []  # a fault's own call that did not fail as it must, with what it got
        self.t_start = time.monotonic()
        self.seen: set[int] = set()  # every host pid the soak saw, checked for leftovers at the end

    # -- setup ---------------------------------------------------------------------------------------------

    def write_config(self) -> None:
        d = self.work / "servers.d"
        d.mkdir()
        (self.work / "supervisor.toml").write_text(
            f'state_dir = "state"\nservers_dir = "servers.d"\ncontrol_socket = "{self.sock}"\n'
            f'port_range = [{self.a.port_base}, {self.a.port_base + 99}]\n'
            "[defaults]\nheartbeat_interval = 1\nheartbeat_timeout = 3\nstart_timeout = 10\nstop_timeout = 3\n"
            "[defaults.backoff]\ninitial = 0.05\nmax = 0.5\nmultiplier = 2\njitter = 0.1\n"
            "[defaults.intensity]\nmax_restarts = 100000\nwindow = 60\ncooldown = 1\n"
            "[defaults.health]\ninterval = 1\ntimeout = 1\nfailures = 2\nsuccesses = 1\n")
        p = self.a.plugins
        (d / "ref.toml").write_text(f'plugin = "{p}/libreference.so"\nreplicas = 2\n')
        (d / "faulty.toml").write_text(f'plugin = "{p}/libfaulty.so"\nhost_args = ["--call-timeout", "2"]\n')
        (d / "health.toml").write_text(f'plugin = "{p}/libhealth_states.so"\n')
        self.flaky_text = f'plugin = "{p}/libreference.so"\n[env]\nGENERATION = "0"\n'
        (d / "flaky.toml").write_text(self.flaky_text)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.a.supervisor, "-c", str(self.work / "supervisor.toml"), "--host", self.a.host,
             "--log-format", "json"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        (self.work / "pids").write_text(f"{self.proc.pid}\n")
        threading.Thread(target=self._read_log, daemon=True).start()
        self.wait(lambda: self.sock.exists(), 20, "the control socket")
        self.wait(self.all_healthy, 60, "every server healthy at start")
        self.ports = {name: s["port"] for name, s in self.status().items()}

    def _read_log(self) -> None:
        assert self.proc and self.proc.stdout
        for raw in self.proc.stdout:
            with self.lock:
                self.log_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                if len(self.log_lines) > 200_000:
                    self.log_lines = self.log_lines[-100_000:]
                    self.log_lines.insert(0, '{"level":"info","event":"soak.truncated"}')

    @staticmethod
    def wait(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"soak: timed out waiting for {what}")

    # -- the control socket --------------------------------------------------------------------------------

    def control(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        msg = {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params else {})}
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.sock))
            s.sendall(json.dumps(msg).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("control connection closed without an answer")
                data += chunk
        return json.loads(data)

    def status(self) -> dict[str, dict]:
        return {s["name"]: s for s in self.control("status")["result"]["servers"]}

    def health(self, name: str) -> dict:
        """A detailed probe of `name` now: the `health` answer's result (or the whole answer when it is an error)."""
        r = self.control("health", {"server": name, "level": "detailed"}, timeout=10)
        return r.get("result", r)

    def all_healthy(self) -> bool:
        return all(self.health(name).get("state") == "healthy" for name in ("ref", "faulty", "health", "flaky"))

    # -- load ----------------------------------------------------------------------------------------------

    def record(self, server: str, client: str, started: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.successes[(server, client)] += 1
            else:
                self.failures.append(Failure(server, client, started, time.monotonic(), error))

    def raw_call(self, server: str, tool: str, arguments: dict, timeout: float) -> str | None:
        """One 2026-07-28 tools/call on a fresh connection; None on success, else what went wrong."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": tool, "arguments": arguments,
                                      "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                                                "io.modelcontextprotocol/clientCapabilities": {}}}})
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[server], timeout=timeout)
        try:
            conn.request("POST", "/mcp", body=body, headers={
                "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool})
            resp = conn.getresponse()
            text = resp.read()
            if resp.status != 200:
                return f"HTTP {resp.status}"
            reply = json.loads(text)
            if "error" in reply:
                return f"JSON-RPC {reply['error'].get('code')}"
            if reply.get("result", {}).get("isError"):
                content = reply["result"].get("content") or [{}]
                return "tool error: " + str(content[0].get("text", ""))[:60]
            return None
        except (OSError, http.client.HTTPException, ValueError) as e:
            return type(e).__name__
        finally:
            conn.close()

    def raw_load(self, server: str, tool: str, arguments: dict) -> None:
        while not self.stop.is_set():
            t = time.monotonic()
            self.record(server, "raw", t, self.raw_call(server, tool, arguments, timeout=6))

    def sdk_load(self, mode: str) -> None:
        """The official SDK against ref, reconnecting after each failure (a client that never gives up)."""
        import anyio
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async def run() -> None:
            url = f"http://127.0.0.1:{self.ports['ref']}/mcp"
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    async with httpx2.AsyncClient(timeout=httpx2.Timeout(6.0)) as http_client:
                        async with Client(streamable_http_client(url, http_client=http_client), mode=mode) as c:
                            self.record("ref", f"sdk-{mode}", t, None)
                            while not self.stop.is_set():
                                t = time.monotonic()
                                with anyio.fail_after(8):
                                    r = await c.call_tool("echo", {"text": "soak"})
                                self.record("ref", f"sdk-{mode}", t, "tool error" if r.is_error else None)
                except BaseException as e:  # noqa: BLE001 (an exception group from the SDK's task group too)
                    if isinstance(e, (KeyboardInterrupt, SystemExit)):
                        raise
                    while isinstance(e, BaseExceptionGroup) and e.exceptions:
                        e = e.exceptions[0]
                    what = type(e).__name__ + (f": {str(e)[:70]}" if type(e).__name__ == "MCPError" else "")
                    self.record("ref", f"sdk-{mode}", t, what)
                    await asyncio.sleep(0.05)

        asyncio.run(run())

    def wrk_load(self, seconds: int) -> dict:
        out = subprocess.run(
            ["wrk", "-t1", "-c4", f"-d{seconds}s", "--timeout", "6s", "-s", "bench/echo_call.lua",
             f"http://127.0.0.1:{self.ports['ref']}/mcp"], capture_output=True, text=True, timeout=seconds + 60)
        text = out.stdout
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        result = re.search(r"RESULT requests=(\d+) .* non2xx=(\d+)", text)
        return {"requests": int(result.group(1)) if result else 0, "non2xx": int(result.group(2)) if result else 0,
                "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}

    # -- faults --------------------------------------------------------------------------------------------

    def act(self, cause: str, server: str, t0: float) -> None:
        with self.lock:
            self.actions.append(Action(cause, server, t0, time.monotonic()))

    def pids(self, server: str) -> list[int]:
        pids = [r["pid"] for r in self.status()[server]["replicas"] if r.get("pid")]
        with self.lock:
            new = set(pids) - self.seen
            self.seen.update(pids)
        if new:  # for bench/peer.sh's cleanup, should this driver be killed
            with open(self.work / "pids", "a") as f:
                f.write("".join(f"{p}\n" for p in new))
        return pids

    def fault_kill(self) -> None:
        server = self.rng.choice(["ref", "faulty", "health", "flaky"])
        pids = self.pids(server)
        if pids:
            t = time.monotonic()
            os.kill(self.rng.choice(pids), signal.SIGKILL)
            self.act("SIGKILL", server, t)

    def fault_stop(self) -> None:
        server = self.rng.choice(["ref", "faulty", "flaky"])
        pids = self.pids(server)
        if pids:
            pid = self.rng.choice(pids)
            t = time.monotonic()
            try:
                os.kill(pid, signal.SIGSTOP)
                time.sleep(self.rng.uniform(0.3, 4.0))  # past heartbeat_timeout sometimes: then it is killed
            finally:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            self.act("SIGSTOP/SIGCONT", server, t)

    def expect(self, what: str, ok: bool, t: float, got: str) -> None:
        self.expected[(what, ok)] += 1
        if not ok:
            self.unexpected.append(f"{what} at {t - self.t_start:.1f} s: {got}")

    def fault_crash(self) -> None:
        t = time.monotonic()
        err = self.raw_call("faulty", "crash", {}, timeout=6)
        self.expect("crash call", err is not None, t, "it succeeded")
        self.act("crashing call", "faulty", t)

    def fault_hang(self) -> None:
        t = time.monotonic()
        # `hang` never returns: the host's call deadline (2 s) answers it, the slot stays held until the host
        # restarts (its stuck-slot health then says so).
        err = self.raw_call("faulty", "hang", {}, timeout=6)
        self.expect("hanging call", err is not None, t, "it succeeded")
        self.act("hanging call", "faulty", t)

    def fault_slow_health(self) -> None:
        t = time.monotonic()
        self.raw_call("health", "set_health", {"delay_ms": 1500}, timeout=6)
        time.sleep(self.rng.uniform(1, 4))
        self.raw_call("health", "set_health", {"delay_ms": 0}, timeout=6)
        self.act("slow health callback", "health", t)

    def fault_reload(self) -> None:
        path = self.work / "servers.d" / "flaky.toml"
        t = time.monotonic()
        if self.rng.random() < 0.5:
            path.write_text(self.flaky_text.replace('"0"', f'"{self.rng.randrange(1, 10**6)}"'))
            r = self.control("reload")
            self.expect("reload changed", "result" in r, t, json.dumps(r)[:300])
            self.act("reload (changed)", "flaky", t)
        else:
            path.write_text('plugin = "/nowhere.so"\nreplicas = "two"\n')
            r = self.control("reload")
            self.expect("reload broken rejected", "error" in r, t, json.dumps(r)[:300])
            path.write_text(self.flaky_text)
            self.act("reload (broken)", "flaky", t)

    def fault_control_burst(self) -> None:
        results: list[bool] = []

        def one(i: int) -> None:
            method = ["status", "health", "ports"][i % 3]
            params = {"server": "ref"} if method == "health" else None
            try:
                r = self.control(method, params, timeout=20)
                ok = "result" in r or "error" in r
            except OSError:
                ok = False  # refused at connect (backlog full) is not "accepted"; an accepted one must answer
            with self.lock:
                results.append(ok)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        with self.lock:
            self.control_sent += len(results)
            self.control_answered += sum(results)

    def fault_hostile(self) -> None:
        server = self.rng.choice(["ref", "faulty", "health", "flaky"])
        t = time.monotonic()
        payloads = [os.urandom(512), b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
                    b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n{",
                    b"POST /mcp HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n\r\n",
                    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64), b"GET /mcp HTTP/1.1\r\nHo"]
        socks = []
        for i in range(60):
            try:
                s = socket.create_connection(("127.0.0.1", self.ports[server]), timeout=2)
                s.sendall(payloads[i % len(payloads)])
                socks.append(s)
            except OSError:
                pass
        time.sleep(0.5)
        for s in socks:
            s.close()
        self.act("hostile HTTP", server, t)

    def chaos(self, seconds: float) -> None:
        faults = [self.fault_kill, self.fault_stop, self.fault_crash, self.fault_hang, self.fault_slow_health,
                  self.fault_reload, self.fault_control_burst, self.fault_hostile]
        end = time.monotonic() + seconds
        self.counts: Counter = Counter()
        while time.monotonic() < end:
            fault = self.rng.choice(faults)
            self.counts[fault.__name__[6:]] += 1
            fault()
            time.sleep(self.rng.uniform(0.2, 1.0))

    # -- the end -------------------------------------------------------------------------------------------

    def attribute(self) -> Counter:
        causes: Counter = Counter()
        for f in self.failures:
            hits = [a for a in self.actions if a.cause in GRACE and a.server == f.server
                    and a.t0 - 0.05 <= f.ended and f.started <= a.t1 + GRACE[a.cause]]
            # The nearest preceding fault is the cause (several may overlap).
            cause = max(hits, key=lambda a: a.t0).cause if hits else "unexplained"
            if not hits:
                # What came nearest, to say why: the last fault on that server before the failure ended.
                before = [a for a in self.actions if a.server == f.server and a.t0 <= f.ended]
                last = max(before, key=lambda a: a.t0, default=None)
                gap = f"{f.started - last.t1:+.1f} s after {last.cause}" if last else "no fault before"
                self.unexplained.append(f"{f.client} on {f.server}: {f.error} (started {gap}, "
                                        f"took {f.ended - f.started:.1f} s)")
            causes[(cause, f.error)] += 1
        return causes

    def tree(self) -> list[tuple[int, int, str]]:
        """(pid, ppid, state) of the supervisor's descendants."""
        procs = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stat = open(f"/proc/{d}/stat").read()
                    rest = stat[stat.rindex(")") + 2:].split()
                    procs[int(d)] = (int(rest[1]), rest[0])
                except (OSError, ValueError):
                    pass
        assert self.proc
        out, frontier = [], [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            for pid, (ppid, state) in procs.items():
                if ppid == parent:
                    out.append((pid, ppid, state))
                    frontier.append(pid)
        return out

    def own(self) -> tuple[int, int]:
        assert self.proc
        fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        rss = int(open(f"/proc/{self.proc.pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return fds, rss


def main() -> int:
    import logging

    logging.getLogger("mcp").setLevel(logging.ERROR)  # the SDK's warnings about sessions the faults ended
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--supervisor", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--port-base", type=int, default=39300)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    a = ap.parse_args()
    print(f"soak: seed {a.seed} (bench/chaos/run.sh MINUTES {a.seed} repeats its faults)", file=sys.stderr, flush=True)
    soak = Soak(a)
    soak.write_config()
    soak.start()
    try:
        time.sleep(1)
        fds0, rss0 = soak.own()
        seconds = a.minutes * 60
        loads = [threading.Thread(target=soak.sdk_load, args=(m,), daemon=True) for m in ("auto", "legacy")]
        loads += [threading.Thread(target=soak.raw_load, args=("faulty", "ok", {}), daemon=True),
                  threading.Thread(target=soak.raw_load, args=("health", "ok", {}), daemon=True),
                  threading.Thread(target=soak.raw_load, args=("flaky", "echo", {"text": "x"}), daemon=True)]
        wrk_result: dict = {}
        wrk = threading.Thread(target=lambda: wrk_result.update(soak.wrk_load(int(seconds))), daemon=True)
        for th in loads:
            th.start()
        wrk.start()
        started = time.monotonic()
        soak.chaos(seconds)
        soak.stop.set()
        wrk.join(timeout=90)
        for th in loads:
            th.join(timeout=30)
        chaos_seconds = time.monotonic() - started
        # A hanging call never returns (it ignores cancellation), so each one holds a call slot of `faulty` for good:
        # with both slots held the host is replaced (the stuck-slot verdict), with one it stays degraded, by design.
        # Once no call is in flight there, slots still held are the hang fault's; an admin frees them with
        # `restart`, and so does the soak (counted in the results), before requiring every server healthy.
        probes: list[dict] = []

        def faulty_idle() -> bool:
            probes[:] = [r.get("last_probe") or {} for r in soak.health("faulty")["replicas"]]
            return all(p.get("calls_in_flight", 1) == 0 for p in probes)

        soak.wait(faulty_idle, 30, "no call in flight on faulty")
        stuck_left = sum(p.get("stuck_slots", 0) for p in probes)
        if stuck_left:
            assert "result" in soak.control("restart", {"server": "faulty"}), "restart faulty refused"
        # Recovery: every server healthy again, the ports unchanged.
        t = time.monotonic()
        try:
            soak.wait(soak.all_healthy, 120, "every server healthy after the soak")
        except SystemExit:
            # Say who is not, and why, with the supervisor's last lines: the finding is in them.
            for name in ("ref", "faulty", "health", "flaky"):
                try:
                    print(f"soak: {name}: {json.dumps(soak.health(name))[:1500]}", file=sys.stderr)
                except OSError as e:
                    print(f"soak: {name}: no answer ({e})", file=sys.stderr)
            print("soak: the supervisor's last lines:", *[l[:400] for l in soak.log_lines[-60:]], sep="\n    ",
                  file=sys.stderr)
            raise
        recovery = time.monotonic() - t
        ports = {name: s["port"] for name, s in soak.status().items()}
        time.sleep(2)  # connections the faults left (probes, drains) close on their own time
        fds1, rss1 = soak.own()
        tree = soak.tree()
        soak.seen.update(pid for pid, _, _ in tree)
        zombies = [p for p in tree if p[2] == "Z"]
        # The supervisor's own errors; a rejected reload is the broken file the soak wrote (counted apart).
        own_errors = [l for l in list(soak.log_lines) if '"level":"error"' in l
                      and re.search(r'"event":"(supervisor|control|config)\.', l)]
        rejected = [l for l in own_errors if '"event":"config.reload_rejected"' in l]
        supervisor_errors = [l for l in own_errors if l not in rejected]
        alive = soak.proc.poll() is None
    finally:
        soak.stop.set()
        if soak.proc and soak.proc.poll() is None:
            soak.proc.send_signal(signal.SIGTERM)
        try:
            exit_status = soak.proc.wait(timeout=60) if soak.proc else None
        except subprocess.TimeoutExpired:
            soak.proc.kill()
            exit_status = "killed after 60 s"
    time.sleep(0.5)
    leftovers = [pid for pid in soak.seen if _runs(str(pid), a.host)]

    causes = soak.attribute()
    # wrk keeps no times: its errors are explained only when ref's children were killed or stopped at all.
    wrk_errors = wrk_result.get("non2xx", 0) + wrk_result.get("socket_errors", 0)
    if wrk_errors:
        faults_on_ref = any(x.server == "ref" and x.cause in ("SIGKILL", "SIGSTOP/SIGCONT") for x in soak.actions)
        causes[("SIGKILL or SIGSTOP of ref" if faults_on_ref else "unexplained", "wrk errors")] += wrk_errors
    unexplained = sum(n for (cause, _), n in causes.items() if cause == "unexplained")
    ok_calls = sum(soak.successes.values())
    checks = [
        ("the supervisor ran throughout", alive),
        ("no error logged by the supervisor itself", not supervisor_errors),
        ("SIGTERM: exit status 0", exit_status == 0),
        ("no host process left after it", not leftovers),
        ("no zombie", not zombies),
        (f"descriptors back: {fds0} → {fds1} (margin {FD_MARGIN})", fds1 <= fds0 + FD_MARGIN),
        (f"RSS back: {rss0 / 2**20:.1f} → {rss1 / 2**20:.1f} MiB (margin {RSS_MARGIN:.0%} + 4 MiB)",
         rss1 <= rss0 * (1 + RSS_MARGIN) + 4 * 2**20),
        ("every port unchanged", ports == soak.ports),
        (f"every server healthy again ({recovery:.1f} s after the chaos stopped"
         + (f"; faulty restarted first to free {stuck_left} slot(s) its hanging calls held" if stuck_left else "")
         + ")", True),
        (f"every accepted control request answered ({soak.control_answered} of {soak.control_sent})",
         soak.control_answered == soak.control_sent),
        ("every client-visible failure explained", unexplained == 0),
        ("the faults' own calls failed as they must",
         all(ok for (_, ok), n in soak.expected.items() if n)),
        (f"each broken reload rejected and logged ({len(rejected)})",
         len(rejected) == soak.expected[("reload broken rejected", True)]),
    ]
    lines = [f"`{a.command}` (seed {a.seed}): {chaos_seconds:.0f} s of chaos, "
             f"{sum(soak.counts.values())} faults: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.counts.items())),
             "", "| check | result |", "|---|---|"]
    lines += [f"| {name} | {'yes' if ok else '**NO**'} |" for name, ok in checks]
    lines += ["", f"Client calls: {ok_calls:,} succeeded (SDK both eras, raw HTTP); wrk: "
              f"{wrk_result.get('requests', 0):,} requests, {wrk_result.get('non2xx', 0)} non-2xx, "
              f"{wrk_result.get('socket_errors', 0)} socket errors.", "",
              "| client-visible failure: cause | error | count |", "|---|---|---:|"]
    lines += [f"| {cause} | {error} | {n} |" for (cause, error), n in sorted(causes.items())] or ["| none | | 0 |"]
    if soak.unexplained:
        lines += ["", "Unexplained failures:", *[f"    {u}" for u in soak.unexplained[:20]]]
    if soak.unexpected:
        lines += ["", "Faults whose own call did not fail as it must:", *[f"    {u}" for u in soak.unexpected[:20]]]
    if supervisor_errors:
        lines += ["", "Supervisor errors:", *[f"    {l}" for l in supervisor_errors[:10]]]
    if zombies:
        lines += ["", f"Zombies: {zombies}"]
    text = "\n".join(lines) + "\n"
    Path(a.out).write_text(text)
    print(text)
    return 0 if all(ok for _, ok in checks) else 1


def _runs(pid: str, host: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.path.realpath(host)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
