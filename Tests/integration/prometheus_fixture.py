"""A real Prometheus server for the integration tests (Debian's `prometheus` package, scripts/install-deps.sh).

`PrometheusRun` starts `/usr/bin/prometheus` on a free loopback port with a generated configuration (scrape
interval 1 s by default, the given targets, optional rule files evaluated every second) and a private
`--storage.tsdb.path` under the test's tmp_path, waits for `/-/ready` with a deadline, and answers queries through
the HTTP API (`/api/v1/query`). `stop()` sends SIGTERM, waits with a deadline, checks that Prometheus exited 0 and
that nothing of its process group is left, then removes its storage. The `prometheus` fixture hands out a
factory; whatever it started is stopped at teardown, also when the test failed or Prometheus never became ready.

`promtool()` runs Debian's promtool (check rules, test rules, check metrics).

`MetricsScenario` is the supervisor side of the Prometheus tests: a real supervisor with `metrics_listen` on a
free loopback port running the C reference plugin (2 replicas, group "core") and the conformance plugin (no
group), driven by the official Python MCP SDK with a known number of tool calls, and the events that make the
other series exist (a SIGKILLed replica, a reload, a replica that misses a metrics request).
"""

from __future__ import annotations

import json
import math
import re
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import plugin_path
from supervisor_fixtures import SupervisorEnv, free_port, proc_info, wait_until

READY_TIMEOUT = 60.0  # Prometheus opens its TSDB and WAL before it is ready; on a loaded two-core machine, seconds
STOP_TIMEOUT = 30.0


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus is not installed (Debian package prometheus; scripts/install-deps.sh)")
    return path


def promtool_binary() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (Debian package prometheus; scripts/install-deps.sh)")
    return path


def promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None,
             timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Runs promtool with the arguments; returns the finished process (text output)."""
    return subprocess.run([promtool_binary(), *args], input=stdin.decode() if stdin is not None else None,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


class PromQueryError(AssertionError):
    """The query API answered with status "error" (an unparsable expression, a bad range, ...)."""

    def __init__(self, expr: str, answer: dict):
        self.expr = expr
        self.answer = answer
        super().__init__(f"Prometheus refused {expr!r}: {answer.get('errorType')}: {answer.get('error')}")


@dataclass
class Target:
    """One scrape job: `job` names it (the `job` label), `address` is host:port, `path` the metrics path."""

    job: str
    address: str
    path: str = "/metrics"
    params: dict[str, list[str]] = field(default_factory=dict)


class PrometheusRun:
    def __init__(self, root: Path, targets: list[Target], rule_files: list[Path] | None = None,
                 scrape_interval: str = "1s", scrape_timeout: str | None = None,
                 evaluation_interval: str = "1s"):
        self.root = root
        self.targets = targets
        self.rule_files = [Path(p).resolve() for p in (rule_files or [])]
        self.scrape_interval = scrape_interval
        self.scrape_timeout = scrape_timeout or scrape_interval
        self.evaluation_interval = evaluation_interval
        self.config_file = root / "prometheus.yml"
        self.storage = root / "data"
        self.log_file = root / "prometheus.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.returncode: int | None = None

    # -- configuration --------------------------------------------------------------------------------------

    def config_text(self) -> str:
        # JSON is YAML: no YAML writer is needed, and every string is quoted.
        cfg: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_timeout,
                       "evaluation_interval": self.evaluation_interval},
            "scrape_configs": [
                {"job_name": t.job, "metrics_path": t.path, "scheme": "http",
                 **({"params": t.params} if t.params else {}),
                 "static_configs": [{"targets": [t.address]}]}
                for t in self.targets
            ],
        }
        if self.rule_files:
            cfg["rule_files"] = [str(p) for p in self.rule_files]
        return json.dumps(cfg, indent=2) + "\n"

    # -- process --------------------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrometheusRun":
        assert self.proc is None, "already started"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        check = promtool("check", "config", str(self.config_file))
        assert check.returncode == 0, f"promtool check config:\n{check.stdout}{check.stderr}\n{self.config_text()}"
        # A free port can be taken between the probe and Prometheus's bind: try a few.
        for attempt in range(5):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_ready()
                return self
            except _PortTaken:
                self._kill()
                continue
            except BaseException:
                self._kill()
                raise
        raise AssertionError("Prometheus could not bind a free loopback port in 5 attempts")

    def _spawn(self) -> None:
        args = [
            prometheus_binary(),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=info",
        ]
        self._log = open(self.log_file, "wb")  # a retry starts a fresh log
        try:
            # A session of its own: at teardown its whole process group is checked and, if need be, killed.
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                         cwd=self.root, start_new_session=True)
        finally:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        delay = 0.02
        while True:
            if self.proc.poll() is not None:
                log = self.log_text()
                if "address already in use" in log:
                    raise _PortTaken()
                raise AssertionError(f"prometheus exited with {self.proc.returncode} before it was ready:\n"
                                     + log[-4000:])
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"prometheus was not ready within {READY_TIMEOUT} s:\n" + self.log_text()[-4000:])
            # Polling an HTTP endpoint that has no event to wait on; the delay grows to 0.2 s.
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self._kill_group_leftovers()
        self.proc = None

    def _group_members(self) -> list[int]:
        assert self.proc is not None
        pgid = self.proc.pid
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                info = proc_info(int(d))
                if info is not None and info.pgid == pgid:
                    out.append(info.pid)
        return out

    def _kill_group_leftovers(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> int:
        """SIGTERM, wait with a deadline, check the exit status 0 and that nothing of its group is left."""
        assert self.proc is not None, "not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(f"prometheus did not exit within {STOP_TIMEOUT} s of SIGTERM:\n"
                                 + self.log_text()[-4000:])
        left = self._group_members()
        if left:
            self._kill_group_leftovers()
        self.proc = None
        assert not left, f"processes of Prometheus's group are left after it exited: {left}"
        assert self.returncode == 0, f"prometheus exited with {self.returncode}:\n" + self.log_text()[-4000:]
        shutil.rmtree(self.storage, ignore_errors=True)
        return self.returncode

    # -- the HTTP API -----------------------------------------------------------------------------------------

    def api(self, path: str, params: dict[str, Any] | list[tuple[str, Any]], timeout: float = 30.0) -> dict:
        """A POST to /api/v1/PATH with form parameters; returns the decoded answer, whatever its status."""
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(self.base + "/api/v1/" + path, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            # 400 (bad_data) and 422 (execution) answers carry the JSON error.
            raw = e.read()
            try:
                return json.loads(raw)
            except ValueError:
                raise AssertionError(f"Prometheus answered {path} with HTTP {e.code}: {raw[:500]!r}") from None

    def query_answer(self, expr: str, at: float | None = None) -> dict:
        """The whole answer of an instant query (status "success" or "error")."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", params)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """An instant query that must succeed; returns the result vector (a scalar becomes one sample)."""
        answer = self.query_answer(expr, at)
        if answer.get("status") != "success":
            raise PromQueryError(expr, answer)
        data = answer["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        if data["resultType"] == "matrix":
            return [{"metric": s["metric"], "value": s["values"][-1]} for s in data["result"] if s["values"]]
        return data["result"]

    def values(self, expr: str) -> dict[frozenset, float]:
        """An instant query's samples as {frozenset(labels.items()): value}."""
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in self.query(expr)}

    def scalar(self, expr: str) -> float | None:
        """The one sample of an instant query, or None when the result is empty."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr!r} has {len(result)} samples, expected at most one: {result}"
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, predicate: Callable[[list[dict]], Any], timeout: float, what: str = "") -> list[dict]:
        """Queries `expr` until `predicate(result)` holds; fails at the deadline with the last result."""
        deadline = time.monotonic() + timeout
        last: list[dict] | str = []
        while True:
            try:
                last = self.query(expr)
                if predicate(last):
                    return last
            except PromQueryError:
                raise
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or expr!r}; last result of "
                                     f"{expr!r}: {last}")
            # The query API has no event to wait on; Prometheus scrapes every second, so poll at 0.25 s.
            time.sleep(0.25)

    def wait_value(self, expr: str, predicate: Callable[[float], bool], timeout: float, what: str = "") -> float:
        """Waits until `expr` has exactly one sample whose value satisfies the predicate; returns it."""
        result = self.wait_for(expr, lambda r: len(r) == 1 and not math.isnan(float(r[0]["value"][1]))
                               and predicate(float(r[0]["value"][1])), timeout, what)
        return float(result[0]["value"][1])

    def targets_health(self) -> dict[str, dict]:
        """{job: the active target's entry} from /api/v1/targets."""
        with urllib.request.urlopen(self.base + "/api/v1/targets?state=active", timeout=10) as r:
            answer = json.loads(r.read())
        return {t["labels"]["job"]: t for t in answer["data"]["activeTargets"]}

    def rule_groups(self) -> list[dict]:
        with urllib.request.urlopen(self.base + "/api/v1/rules", timeout=10) as r:
            return json.loads(r.read())["data"]["groups"]


class _PortTaken(Exception):
    pass


class PrometheusFactory:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.runs: list[PrometheusRun] = []

    def __call__(self, targets: list[Target], rule_files: list[Path] | None = None, **kw: Any) -> PrometheusRun:
        run = PrometheusRun(self.tmp_path / f"prometheus-{len(self.runs)}", targets, rule_files, **kw)
        self.runs.append(run)
        return run.start()

    def cleanup(self) -> list[str]:
        errors = []
        for run in self.runs:
            if run.proc is None:
                continue
            try:
                run.stop()
            except AssertionError as e:
                errors.append(str(e))
        return errors


@pytest.fixture
def prometheus(tmp_path):
    """A factory: `prometheus([Target(job, "127.0.0.1:PORT")], rule_files=[...])` starts a ready Prometheus;
    every one started is stopped (and checked for leftovers) at teardown."""
    factory = PrometheusFactory(tmp_path)
    try:
        yield factory
    finally:
        errors = factory.cleanup()
        if errors:
            pytest.fail("prometheus teardown: " + "\n".join(errors), pytrace=False)


# ------------------------------------------------------------------------------------------------------------
# The supervisor side: a supervisor with metrics_listen, two plugins, SDK traffic
# ------------------------------------------------------------------------------------------------------------

# Tool calls per round: (server, tool, arguments, is_error). The reference plugin's `fail` and the conformance
# plugin's `test_error_handling` answer with isError (outcome "error", error type tool_error).
CALLS: list[tuple[str, str, dict, bool]] = (
    [("reference", "echo", {"text": f"call {i}"}, False) for i in range(7)]
    + [("reference", "add", {"a": i, "b": 0.5}, False) for i in range(2)]
    + [("reference", "fail", {"message": "on purpose"}, True) for _ in range(3)]
    + [("conformance", "test_simple_text", {}, False) for _ in range(5)]
    + [("conformance", "test_error_handling", {}, True) for _ in range(2)]
)


class MetricsScenario:
    def __init__(self, env: SupervisorEnv, health_interval: float = 1.0):
        assert env.control_socket is not None, "the env fixture enables the control socket"
        self.env = env
        self.health_interval = health_interval
        self.metrics_port: int | None = None
        self.run = None
        # (server, tool, is_error) -> number of calls answered
        self.calls: dict[tuple[str, str, bool], int] = {}

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def start(self) -> "MetricsScenario":
        self.metrics_port = free_port()
        self.env.write_main(control_socket=str(self.env.control_socket), metrics_listen=self.metrics_address)
        health = {"interval": self.health_interval, "timeout": 5.0}
        self.env.write_server("reference", plugin_path("reference"), replicas=2, group="core", health=health,
                              backoff={"initial": 0.1, "jitter": 0.0})
        self.env.write_server("conformance", plugin_path("conformance"), health=health,
                              backoff={"initial": 0.1, "jitter": 0.0})
        self.run = self.env.start()
        for name, replicas in (("reference", 2), ("conformance", 1)):
            self.wait_running(name, replicas)
        wait_until(lambda: self._get("/healthz")[0] == 200, 20, "the metrics listener answers /healthz")
        return self

    # -- state ----------------------------------------------------------------------------------------------

    def status(self, name: str) -> dict:
        return self.env.status(name)

    def wait_running(self, name: str, replicas: int, timeout: float = 30.0) -> dict:
        def ready():
            if self.run is not None and self.run.proc is not None and self.run.proc.poll() is not None:
                raise AssertionError(f"mcp-supervisor exited with {self.run.proc.returncode} before {name} ran:\n"
                                     + self.run.log_text()[-3000:])
            try:
                s = self.status(name)
            except OSError:  # the control socket is not there yet (the supervisor is starting)
                return None
            rs = s.get("replicas", [])
            ok = s.get("state") == "running" and len(rs) == replicas and all(
                r.get("state") == "running" and r.get("pid") for r in rs)
            return s if ok else None

        return wait_until(ready, timeout, f"{name}: {replicas} replica(s) running")

    def port(self, name: str) -> int:
        return int(self.status(name)["port"])

    def pid(self, name: str, index: int) -> int:
        return int(next(r["pid"] for r in self.status(name)["replicas"] if r["index"] == index))

    # -- the metrics listener -------------------------------------------------------------------------------

    def _get(self, path: str, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://{self.metrics_address}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""

    def metrics_text(self) -> str:
        status, body = self._get("/metrics")
        assert status == 200, f"/metrics: HTTP {status}: {body[:300]!r}"
        return body.decode()

    # -- traffic --------------------------------------------------------------------------------------------

    def drive_calls(self, calls: list[tuple[str, str, dict, bool]] = CALLS) -> None:
        """Makes the calls through the official SDK (one client per server, the 2026-07-28 era) and counts what
        was answered; every call must be answered as expected (isError exactly where the tool fails)."""
        import anyio
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        ports = {name: self.port(name) for name in {c[0] for c in calls}}

        async def one_server(name: str, mine: list[tuple[str, dict, bool]]) -> list[tuple[str, bool]]:
            out = []
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0)) as http:
                transport = streamable_http_client(f"http://127.0.0.1:{ports[name]}/mcp", http_client=http)
                async with Client(transport, mode="auto") as client:
                    for tool, args, _ in mine:
                        result = await client.call_tool(tool, args)
                        out.append((tool, bool(result.is_error)))
            return out

        async def main() -> dict[str, list[tuple[str, bool]]]:
            answers: dict[str, list[tuple[str, bool]]] = {}
            with anyio.fail_after(120):
                for name in ports:
                    answers[name] = await one_server(name, [(t, a, e) for s, t, a, e in calls if s == name])
            return answers

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answers = anyio.run(main)
        for name, got in answers.items():
            expected = [(t, e) for s, t, _, e in calls if s == name]
            assert got == expected, f"{name}: answers {got}, expected {expected}"
            for tool, is_error in got:
                key = (name, tool, is_error)
                self.calls[key] = self.calls.get(key, 0) + 1

    def count(self, server: str, tool: str | None = None, is_error: bool | None = None) -> int:
        return sum(n for (s, t, e), n in self.calls.items()
                   if s == server and (tool is None or t == tool) and (is_error is None or e == is_error))

    # -- events ---------------------------------------------------------------------------------------------

    def crash_replica(self, name: str, index: int, timeout: float = 30.0) -> tuple[int, int]:
        """SIGKILLs one replica and waits until a new process runs in its place; returns (old pid, new pid)."""
        old = self.pid(name, index)
        os.kill(old, signal.SIGKILL)

        def replaced():
            r = next(r for r in self.status(name)["replicas"] if r["index"] == index)
            return r["pid"] if r.get("state") == "running" and r.get("pid") and r["pid"] != old else None

        new = wait_until(replaced, timeout, f"{name}#{index} restarted after SIGKILL")
        wait_until(lambda: proc_info(old) is None, 10, f"the killed replica {old} reaped")
        self.wait_running(name, len(self.status(name)["replicas"]))
        return old, int(new)

    def reload(self) -> dict:
        reply = self.env.control("reload")
        assert "result" in reply, reply
        return reply["result"]

    def scrape_errors(self, name: str) -> float:
        """mcp_supervisor_scrape_errors_total of the server, read from the supervisor's own /metrics."""
        total = 0.0
        rx = re.compile(r'^mcp_supervisor_scrape_errors_total\{([^}]*)\}\s+(\S+)')
        for line in self.metrics_text().splitlines():
            m = rx.match(line)
            if m and f'server="{name}"' in m.group(1):
                total += float(m.group(2))
        return total

    def miss_one_scrape(self, name: str, prom: "PrometheusRun | None" = None, timeout: float = 20.0) -> None:
        """SIGSTOPs the server's replica 0 until the supervisor counts it as a scrape error, then SIGCONTs it
        (short enough that health probes do not declare it unhealthy); with `prom`, waits until Prometheus has
        scraped the count too."""
        before = self.scrape_errors(name)
        pid = self.pid(name, 0)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: self.scrape_errors(name) > before, timeout, f"a scrape error counted for {name}")
        finally:
            os.kill(pid, signal.SIGCONT)
        if prom is not None:
            prom.wait_value(f'sum(mcp_supervisor_scrape_errors_total{{server="{name}"}})', lambda v: v > before,
                            30, f"Prometheus sees {name}'s scrape error")
