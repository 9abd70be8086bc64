"""A real Prometheus (Debian's `prometheus`, scrape interval 1 s, private storage) scrapes a real supervisor's
metrics_listen while the official Python MCP SDK drives a known number of tool calls (issue 12, first test).

The supervisor runs the C reference plugin (2 replicas, group "core") and the conformance plugin (no group).
Through Prometheus's query API: `up` is 1 for the supervisor's job; the request counters and the duration
histogram's `_count` equal the calls made, per tool and outcome, summed over the replicas; the histogram's buckets
are the contract's; a SIGKILLed replica shows in `mcp_supervisor_restarts_total` (reason crash) and its last
exit code; the group label is on every series of the server, and absent on the server without one. The scraped
page passes `promtool check metrics`.
"""

from __future__ import annotations

import math
import time

from prometheus_fixture import MetricsScenario, Target, prometheus, promtool  # noqa: F401 (prometheus: fixture)
from supervisor_fixtures import control_env  # noqa: F401 (the env fixture)

JOB = "mcp-supervisor"
# TrafficMetrics.durationBuckets (Sources/Contracts/TrafficMetrics.swift) and +Inf.
DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                    math.inf]


def by(prom, expr: str, label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in prom.query(expr)}


def wait_counts(prom, expr: str, label: str, expected: dict[str, float], timeout: float = 30.0) -> dict[str, float]:
    """Waits until the query's samples by `label` are exactly `expected` (the next scrapes after the calls)."""
    deadline = time.monotonic() + timeout
    while True:
        got = by(prom, expr, label)
        if got == expected:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"{expr} by {label}: {got}, expected {expected}")
        time.sleep(0.25)  # Prometheus scrapes every second; the query API has no event to wait on


def test_prometheus_scrapes_the_supervisor(env, prometheus):
    scenario = MetricsScenario(env).start()
    prom = prometheus([Target(JOB, scenario.metrics_address)])

    prom.wait_value(f'up{{job="{JOB}"}}', lambda v: v == 1, 30, "the supervisor's target up")
    assert prom.targets_health()[JOB]["health"] == "up"
    # Before any call: the servers are there and up, no tools/call has been counted.
    prom.wait_value('mcp_supervisor_server_up{server="reference"}', lambda v: v == 1, 30)
    prom.wait_value('mcp_supervisor_server_up{server="conformance"}', lambda v: v == 1, 30)
    assert prom.scalar('sum(mcp_server_requests_total{mcp_method_name="tools/call"})') in (None, 0.0)

    scenario.drive_calls()
    ref_ok, ref_err = scenario.count("reference", is_error=False), scenario.count("reference", is_error=True)
    conf_ok, conf_err = scenario.count("conformance", is_error=False), scenario.count("conformance", is_error=True)
    assert (ref_ok, ref_err, conf_ok, conf_err) == (9, 3, 5, 2)

    # Requests by outcome, summed over the replicas: exactly the calls made.
    calls = 'mcp_server_requests_total{{server="{}",mcp_method_name="tools/call"}}'
    wait_counts(prom, f'sum by (outcome) ({calls.format("reference")})', "outcome",
                {"ok": ref_ok, "error": ref_err})
    wait_counts(prom, f'sum by (outcome) ({calls.format("conformance")})', "outcome",
                {"ok": conf_ok, "error": conf_err})

    # The duration histogram's _count per tool, and the error type of the failing ones.
    count = 'mcp_server_operation_duration_seconds_count{{server="{}",mcp_method_name="tools/call"}}'
    wait_counts(prom, f'sum by (gen_ai_tool_name) ({count.format("reference")})', "gen_ai_tool_name",
                {"echo": 7, "add": 2, "fail": 3})
    wait_counts(prom, f'sum by (gen_ai_tool_name) ({count.format("conformance")})', "gen_ai_tool_name",
                {"test_simple_text": 5, "test_error_handling": 2})
    assert by(prom, f'sum by (error_type) ({count.format("reference")})', "error_type") == {"": 9, "tool_error": 3}
    assert prom.scalar('sum(mcp_server_errors_total{server="reference",error_type="tool_error"})') == ref_err

    # The buckets: the contract's bounds, cumulative, +Inf equal to _count; a sum of positive durations.
    rows = prom.query('sum by (le) (mcp_server_operation_duration_seconds_bucket{server="reference",'
                      'mcp_method_name="tools/call",gen_ai_tool_name="echo"})')
    buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in rows)
    assert [b for b, _ in buckets] == DURATION_BUCKETS
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"buckets not cumulative: {buckets}"
    assert buckets[-1][1] == 7
    total = prom.scalar('sum(mcp_server_operation_duration_seconds_sum{server="reference",gen_ai_tool_name="echo"})')
    assert total is not None and 0 < total < 7 * 30

    # Both replicas of the reference server report (replica is the index, never a pid).
    replicas = by(prom, 'count by (replica) (mcp_server_calls_in_flight{server="reference"})', "replica")
    assert set(replicas) == {"0", "1"}

    # The group label: on every series of the reference server, on none of the conformance server's.
    for expr in ('{server="reference",__name__=~"mcp_.+"}', '{server="conformance",__name__=~"mcp_.+"}'):
        rows = prom.query(expr)
        assert rows, f"no series for {expr}"
        groups = {r["metric"].get("group") for r in rows}
        if "reference" in expr:
            assert groups == {"core"}, f"reference series with group labels {groups}"
        else:
            assert groups == {None}, f"conformance (no group) series with group labels {groups}"
    assert by(prom, 'mcp_supervisor_server_up{group="core"}', "server") == {"reference": 1}

    # A SIGKILLed replica: restarts_total counts it (reason crash: killed by a signal), its last exit is 128 + 9.
    assert prom.scalar('sum(mcp_supervisor_restarts_total{server="reference"})') in (None, 0.0)
    old, new = scenario.crash_replica("reference", 0)
    assert new != old
    prom.wait_value('sum(mcp_supervisor_restarts_total{server="reference"})', lambda v: v == 1, 30,
                    "the crash in mcp_supervisor_restarts_total")
    assert by(prom, 'sum by (reason) (mcp_supervisor_restarts_total{server="reference"}) > 0', "reason") == \
        {"crash": 1}
    assert prom.scalar('sum(mcp_supervisor_restarts_total{server="conformance"})') in (None, 0.0)
    prom.wait_value('mcp_supervisor_last_exit_code{server="reference",replica="0"}', lambda v: v == 137, 30)
    prom.wait_value('mcp_supervisor_server_up{server="reference"}', lambda v: v == 1, 30)

    # The killed replica's counters restarted with it; the other replica's are unchanged, so the sum over
    # replicas never exceeds the calls made (no double counting across the restart).
    got = by(prom, f'sum by (outcome) ({calls.format("reference")})', "outcome")
    assert got.get("ok", 0) <= ref_ok and got.get("error", 0) <= ref_err, got

    # The page Prometheus scrapes passes promtool's own lint.
    page = scenario.metrics_text()
    check = promtool("check", "metrics", stdin=page.encode())
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), \
        f"promtool check metrics:\n{check.stdout}{check.stderr}"
