"""packaging/monitoring/: the Prometheus rules, their promtool unit tests and the Grafana dashboard (issue 12).

- `promtool check rules` is clean on recording-rules.yml and alert-rules.yml, and `promtool test rules` passes
  rules-tests.yml; the unit tests cover every alert (a case where it fires and one where it stays silent), and
  they are able to fail: an alert broken to fire always, or never, makes them fail.
- The dashboard uses only the series of the metrics contract (docs/metrics.md), a `${datasource}` variable and
  `group` / `server` variables; every expression in it and in the rules is parsed by a real Prometheus (an
  unparsable one gets status "error"), and against a real supervisor scraped by that Prometheus every one of them
  returns data.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from prometheus_fixture import (MetricsScenario, PromQueryError, PrometheusRun, Target, prometheus,  # noqa: F401
                                promtool)
from supervisor_fixtures import all_processes, control_env, proc_info  # noqa: F401 (control_env: the env fixture)

MONITORING = REPO / "packaging" / "monitoring"
RECORDING = MONITORING / "recording-rules.yml"
ALERTS = MONITORING / "alert-rules.yml"
RULE_TESTS = MONITORING / "rules-tests.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

# The series of the contract (rules.md / docs/metrics.md); histograms by their base name.
SUPERVISOR_SERIES = {
    "mcp_supervisor_server_up", "mcp_supervisor_server_state", "mcp_supervisor_replica_up",
    "mcp_supervisor_health_state", "mcp_supervisor_health_score", "mcp_supervisor_probe_duration_seconds",
    "mcp_supervisor_restarts_total", "mcp_supervisor_last_exit_code", "mcp_supervisor_start_duration_seconds",
    "mcp_supervisor_uptime_seconds", "mcp_supervisor_backoff_remaining_seconds", "mcp_supervisor_server_port",
    "mcp_supervisor_replica_resident_memory_bytes", "mcp_supervisor_replica_cpu_seconds_total",
    "mcp_supervisor_replica_open_fds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_start_time_seconds",
    "mcp_supervisor_control_requests_total", "mcp_supervisor_reloads_total", "mcp_supervisor_build_info",
    "mcp_supervisor_scrape_errors_total", "mcp_supervisor_scrape_duration_seconds",
}
HOST_SERIES = {
    "mcp_server_requests_total", "mcp_server_operation_duration_seconds", "mcp_server_calls_in_flight",
    "mcp_server_errors_total", "mcp_server_cancellations_total", "mcp_server_deadline_expiries_total",
    "mcp_server_request_bytes_total", "mcp_server_response_bytes_total", "mcp_server_handler_slots_busy",
    "mcp_server_handler_slots", "mcp_server_sessions_open",
}
HISTOGRAMS = {"mcp_supervisor_probe_duration_seconds", "mcp_server_operation_duration_seconds"}
# Prometheus's own series about a target (not exported by us).
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}

# What Grafana puts in for its variables, for Prometheus to parse the expressions.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__range": "1h", "$__interval": "5s", "$job": ".*",
                     "$group": ".*", "$server": ".*"}


def known_series() -> set[str]:
    out = set(SUPERVISOR_SERIES | HOST_SERIES | PROMETHEUS_SERIES)
    for h in HISTOGRAMS:
        out |= {h + "_bucket", h + "_sum", h + "_count"}
    return out


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict]:
    return [r for g in load_yaml(path)["groups"] for r in g["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict]:
    out = []
    for p in dashboard()["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row keeps its panels inside
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p.get("targets", []) if t.get("expr")]


def substitute(expr: str) -> str:
    # Longest names first: $__rate_interval before $__range, $server before $se...
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", GRAFANA_VARIABLES[name]).replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"a Grafana variable is left in {expr!r}"
    return expr


LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$")


def variable_queries() -> list[tuple[str, str]]:
    """(variable, PromQL) for every label_values variable: `label_values(M, L)` is `count by (L) (M)`."""
    out = []
    for v in dashboard()["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = LABEL_VALUES.match(q.strip())
        assert m, f"variable {v['name']}: {q!r} is not label_values(METRIC, LABEL)"
        assert m.group(1), f"variable {v['name']}: label_values without a metric scans every series"
        out.append((v["name"], substitute(f"count by ({m.group(2)}) ({m.group(1)})")))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    return [(r.get("record") or r["alert"], " ".join(r["expr"].split())) for r in rules(RECORDING) + rules(ALERTS)]


# An alert's condition: `EXPR OP NUMBER` at the top level; EXPR is what returns data on a healthy system.
CONDITION = re.compile(r"^(.*\S)\s*(==|!=|>=|<=|>|<)\s*(-?[0-9.]+)$")


def alert_base(expr: str) -> str:
    m = CONDITION.match(" ".join(expr.split()))
    assert m, f"alert expression {expr!r} is not `EXPR OP NUMBER`"
    return m.group(1)


# ------------------------------------------------------------------------------------------------------------
# promtool
# ------------------------------------------------------------------------------------------------------------


def test_promtool_check_rules_is_clean():
    r = promtool("check", "rules", str(RECORDING), str(ALERTS))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    n_rec = len(rules(RECORDING))
    n_alert = len(rules(ALERTS))
    assert f"SUCCESS: {n_rec} rules found" in out and f"SUCCESS: {n_alert} rules found" in out, out
    assert "FAILED" not in out and "warning" not in out.lower(), out


def test_recording_rules_name_the_four_targets():
    names = {r["record"] for r in rules(RECORDING)}
    for name in ("mcp:mcp_supervisor_server_up:ratio", "mcp:mcp_server_operation_duration_seconds:p95_5m",
                 "mcp:mcp_server_requests:error_ratio_rate5m", "mcp:mcp_supervisor_server_up:avg_over_time_30d"):
        assert name in names, f"{name} missing from {RECORDING.name}"
    for name in names:  # level:metric:operations
        assert re.fullmatch(r"[a-z_]+:[a-z_0-9]+:[a-z_0-9]+", name), f"{name} is not level:metric:operations"


def test_alerts_have_summary_runbook_and_severity():
    expected = {"MCPServerDown", "MCPServerRestartLoop", "MCPServerDegraded", "MCPServerErrorRateHigh",
                "MCPServerLatencyHigh", "MCPSupervisorScrapeFailing", "MCPReplicaScrapeErrors"}
    alerts = {r["alert"]: r for r in rules(ALERTS)}
    assert set(alerts) == expected
    for name, r in alerts.items():
        ann = r.get("annotations", {})
        assert ann.get("summary"), f"{name} has no summary"
        assert re.search(r"\b(mcpctl|journalctl|systemctl)\b", ann.get("runbook", "")), \
            f"{name}'s runbook names no command to run: {ann.get('runbook')!r}"
        assert r.get("labels", {}).get("severity") in ("warning", "critical"), f"{name} has no severity"
    # The scrape alert: both the target being down and replicas missing the metrics deadline.
    assert 'up{job="mcp-supervisor"}' in alerts["MCPSupervisorScrapeFailing"]["expr"]
    assert "mcp_supervisor_scrape_errors_total" in alerts["MCPReplicaScrapeErrors"]["expr"]


def test_promtool_unit_tests_pass():
    r = promtool("test", "rules", RULE_TESTS.name, cwd=MONITORING)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "SUCCESS" in out and "FAILED" not in out, out


def test_unit_tests_cover_every_alert_firing_and_silent():
    tests = load_yaml(RULE_TESTS)
    assert sorted(tests["rule_files"]) == sorted([RECORDING.name, ALERTS.name])
    fires: dict[str, int] = {}
    silent: dict[str, int] = {}
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            bucket = fires if case.get("exp_alerts") else silent
            bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    for name in (r["alert"] for r in rules(ALERTS)):
        assert fires.get(name), f"no promtool case where {name} fires"
        assert silent.get(name), f"no promtool case where {name} stays silent"


def _mutated_run(folder: Path, alert: str, new_expr: str) -> str | None:
    """Runs the unit tests against alert-rules.yml with `alert`'s expression replaced; returns promtool's output
    when they pass (the mutation went unnoticed), None when they fail."""
    folder.mkdir()
    for f in (RECORDING, RULE_TESTS):
        (folder / f.name).write_text(f.read_text())
    doc = load_yaml(ALERTS)
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == alert:
                r["expr"] = new_expr
    (folder / ALERTS.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    r = promtool("test", "rules", RULE_TESTS.name, cwd=folder)
    return None if r.returncode != 0 else r.stdout + r.stderr


@pytest.mark.parametrize("alert", sorted(r["alert"] for r in rules(ALERTS)))
def test_unit_tests_catch_a_broken_alert(tmp_path, alert):
    """The promtool cases can fail: the alert made to fire on every series of its kind (the silent cases must
    catch it) or never (the firing case must catch it)."""
    expr = next(r["expr"] for r in rules(ALERTS) if r["alert"] == alert)
    base = alert_base(expr)
    always = _mutated_run(tmp_path / "always", alert, f"({base}) * 0 + 1 > 0")
    assert always is None, f"{alert} made to fire always and the unit tests still pass:\n{always}"
    never = _mutated_run(tmp_path / "never", alert, f"({base}) < -1e300")
    assert never is None, f"{alert} made never to fire and the unit tests still pass:\n{never}"


# ------------------------------------------------------------------------------------------------------------
# The dashboard
# ------------------------------------------------------------------------------------------------------------


def test_dashboard_shape():
    d = dashboard()
    assert 36 <= d["schemaVersion"] <= 41
    assert d["uid"] and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name in ("group", "server"):
        v = variables.get(name)
        assert v and v["type"] == "query", f"no {name} variable"
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        assert q.startswith("label_values(") and q.rstrip(")").endswith(name), q
        assert v["includeAll"] and v["allValue"] == ".*"
    # Every panel and every target reads from the chosen data source.
    for p in dashboard_panels():
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_dashboard_shows_what_the_issue_asks():
    titles = " | ".join(p["title"].lower() for p in dashboard_panels())
    exprs = " ".join(e for _, e in dashboard_exprs())
    for words in ("operational share", "by group", "request rate", "error rate", "p50 / p95 / p99", "restarts",
                  "resident memory", "cpu", "file descriptors", "scrape errors", "health score"):
        assert words in titles, f"no panel about {words!r}: {titles}"
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(mcp_server_operation_duration_seconds_bucket" in exprs
    for series in ("mcp_supervisor_restarts_total", "mcp_supervisor_replica_resident_memory_bytes",
                   "mcp_supervisor_replica_cpu_seconds_total", "mcp_supervisor_replica_open_fds",
                   "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                   "mcp_supervisor_scrape_errors_total", "mcp_supervisor_health_score"):
        assert series in exprs, f"the dashboard does not show {series}"


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "le", "inf", "nan"}


def series_names(expr: str) -> set[str]:
    """The metric names an expression reads (identifiers not followed by `(` that are not label names)."""
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    # `sum by (a, b) (x)` is `sum (x)`; `x / on (a) y` is `x / on y`.
    no_grouping = re.sub(r"\b(by|without)\s*\([^)]*\)", "", no_strings)
    no_grouping = re.sub(r"\b(on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", no_grouping)
    no_matchers = re.sub(r"\{[^}]*\}", "{}", no_grouping)
    no_ranges = re.sub(r"\[[^\]]*\]", "[]", no_matchers)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", no_ranges):
        word = m.group(0)
        after = no_ranges[m.end():].lstrip()
        if after.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_series_name_parser_finds_names():
    assert series_names('sum by (server, le) (rate(a_b_bucket{x="y"}[5m])) / count(c:d:e) == 0') == \
        {"a_b_bucket", "c:d:e"}


def test_dashboard_uses_only_contract_series():
    known = known_series()
    for title, expr in dashboard_exprs():
        unknown = series_names(expr) - known
        assert not unknown, f"panel {title!r} reads series outside the contract: {unknown} in {expr!r}"
    for name, q in variable_queries():
        unknown = series_names(q) - known
        assert not unknown, f"variable {name} reads {unknown}"


def test_rules_use_only_contract_series_and_their_own_records():
    known = known_series() | {r["record"] for r in rules(RECORDING)}
    for name, expr in rule_exprs():
        unknown = series_names(expr) - known
        assert not unknown, f"rule {name} reads series outside the contract: {unknown}"


# ------------------------------------------------------------------------------------------------------------
# A real Prometheus parses every expression
# ------------------------------------------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_prometheus_fixture_leaves_nothing(tmp_path):
    """The fixture's own contract: a stopped Prometheus is gone (exit 0, no process, storage removed), and one
    that cannot start fails the test with its log and is not left running."""
    run = PrometheusRun(tmp_path / "ok", [Target("self", "127.0.0.1:1")]).start()
    pid = run.proc.pid
    assert run.query("vector(1)")[0]["value"][1] == "1"
    assert run.storage.is_dir()
    assert run.stop() == 0
    assert proc_info(pid) is None, f"prometheus {pid} is still there"
    assert not run.storage.exists()

    broken = PrometheusRun(tmp_path / "broken", [])
    broken.root.mkdir()
    broken.storage.write_text("not a folder")  # Prometheus cannot open its TSDB here and exits
    with pytest.raises(AssertionError, match="exited with .* before it was ready"):
        broken.start()
    assert broken.proc is None
    left = [p for p in all_processes() if p.comm == "prometheus" and str(broken.storage) in
            _cmdline(p.pid)]
    assert not left, f"a Prometheus that failed to start is left: {left}"


def all_exprs() -> list[tuple[str, str]]:
    return ([(f"panel {t}", substitute(e)) for t, e in dashboard_exprs()]
            + [(f"variable {n}", q) for n, q in variable_queries()]
            + [(f"rule {n}", e) for n, e in rule_exprs()])


def test_prometheus_parses_every_expression(prometheus):
    prom = prometheus([])
    # The check can fail: Prometheus refuses what it cannot parse, and a Grafana variable left in.
    for bad in ("sum(rate(mcp_server_requests_total[5m])", "rate(mcp_server_requests_total[$__rate_interval])"):
        answer = prom.query_answer(bad)
        assert answer["status"] == "error" and answer["errorType"] == "bad_data", answer
    refused = []
    for what, expr in all_exprs():
        answer = prom.query_answer(expr)
        if answer.get("status") != "success":
            refused.append(f"{what}: {expr!r}: {answer.get('error')}")
    assert not refused, "Prometheus refused:\n" + "\n".join(refused)


def test_prometheus_loads_both_rule_files(prometheus):
    prom = prometheus([], rule_files=[RECORDING, ALERTS])
    groups = prom.rule_groups()
    loaded = {r["name"] for g in groups for r in g["rules"]}
    assert loaded == {r.get("record") or r["alert"] for r in rules(RECORDING) + rules(ALERTS)}
    for g in groups:
        for r in g["rules"]:
            assert r.get("health") in ("ok", "unknown"), f"rule {r['name']}: {r.get('health')} {r.get('lastError')}"


# ------------------------------------------------------------------------------------------------------------
# ... and every one returns data against a real supervisor
# ------------------------------------------------------------------------------------------------------------


def fast_rule_files(folder: Path) -> list[Path]:
    """The two rule files with every group evaluated each second (the 30 s and 5 min intervals would keep the
    recorded series empty for minutes); the expressions are the shipped ones."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in (RECORDING, ALERTS):
        doc = load_yaml(f)
        for g in doc["groups"]:
            g["interval"] = "1s"
        (folder / f.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(folder / f.name)
    return out


def test_every_expression_returns_data_from_a_real_supervisor(env, prometheus, tmp_path):
    """A supervisor with metrics_listen runs the reference plugin (2 replicas, group "core") and the conformance
    plugin; the scenario makes every kind of series exist (calls, a tool error, a crash and its restart, a reload,
    a replica that misses a metrics request). Prometheus scrapes it every second with both rule files loaded;
    every dashboard expression, every variable, every recording rule and the base of every alert (the expression
    without its threshold) must return at least one sample."""
    scenario = MetricsScenario(env)
    scenario.start()
    prom = prometheus([Target("mcp-supervisor", scenario.metrics_address)],
                      rule_files=fast_rule_files(tmp_path / "rules"))
    prom.wait_value('up{job="mcp-supervisor"}', lambda v: v == 1, 30, "the supervisor scraped")
    scenario.drive_calls()
    scenario.crash_replica("reference", 0)
    prom.wait_value('sum(mcp_supervisor_restarts_total{server="reference"})', lambda v: v >= 1, 30,
                    "the crash counted")
    scenario.reload()
    scenario.miss_one_scrape("conformance", prom)
    scenario.drive_calls()  # traffic after the restart too, so rates over the last seconds have it

    checks = ([(f"panel {t}", substitute(e)) for t, e in dashboard_exprs()]
              + [(f"variable {n}", q) for n, q in variable_queries()]
              + [(f"record {r['record']}", " ".join(r["expr"].split())) for r in rules(RECORDING)]
              + [(f"alert {r['alert']} (without its threshold)", alert_base(r["expr"])) for r in rules(ALERTS)])
    # The rules' recorded series themselves, once evaluated.
    checks += [(f"recorded {r['record']}", r["record"]) for r in rules(RECORDING)]

    deadline = time.monotonic() + 60
    while True:
        empty = []
        for what, expr in checks:
            try:
                result = prom.query(expr)
            except PromQueryError as e:
                pytest.fail(f"{what}: {e}")
            if not result:
                empty.append(f"{what}: {expr}")
        if not empty or time.monotonic() >= deadline:
            break
        # Rates need two scrapes after the traffic, the 30 s recording group an evaluation: poll until then.
        time.sleep(1.0)
    assert not empty, "no data for:\n" + "\n".join(empty)
