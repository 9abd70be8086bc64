"""The metrics extension ("org.mcp-supervisor.metrics/1", docs/metrics.md "Plugin series"), end to end: a plugin
registers counters, gauges and histograms through the host, updates them from many threads, and the supervisor's
metrics endpoint publishes them as mcp_plugin_* beside the host's own series, with server, group and replica.

- values are exact after concurrent updates from 8 threads; histogram buckets follow Prometheus's `le`;
- the page stays clean for promtool, in text and OpenMetrics;
- every broken registration is refused with MCPP_E_INVALID (or MCPP_E_TOO_LARGE past 256 series), the host's log
  names the series and the rule, and what was registered before stays on the page;
- each replica reports its own series; two servers that disagree about one name do not break the page;
- the reference plugin's own series count its calls.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from conftest import plugin_path
from supervisor_fixtures import call_tool, control_env, wait_until  # noqa: F401  (control_env is the `env` fixture)
from test_metrics_endpoint import get, scrape, series, start


def probe(env, replicas: int = 1, name: str = "probe", group: str = "g", **settings):
    env.write_server(name, plugin_path("metrics_probe"), replicas=replicas, group=group, **settings)


def register(port: int, **args) -> str:
    return call_tool(port, "register", args)


def registered_id(port: int, **args) -> int:
    text = register(port, **args)
    m = re.fullmatch(r"id=(\d+)", text)
    assert m, f"register {args}: {text}"
    return int(m.group(1))


def update(port: int, id: int, op: str, value: float, threads: int = 1, times: int = 1) -> tuple[int, int]:
    text = call_tool(port, "update", {"id": id, "op": op, "value": value, "threads": threads, "times": times})
    m = re.fullmatch(r"ok=(\d+) refused=(\d+)", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def server_port(env, name: str) -> int:
    return env.status(name)["port"]


def value(samples, name: str, **labels) -> float:
    found = series(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0][1]


def test_series_on_the_page_with_exact_values(env):
    probe(env)
    run, mport = start(env, replicas=1, extra_servers={})
    wait_until(lambda: env.status("probe")["state"] == "running", 20, "probe running")
    port = server_port(env, "probe")
    assert call_tool(port, "extension", {}) == "present unknown=absent"

    jobs = registered_id(port, kind="counter", name="jobs_total", help="Jobs done.", labels="queue=a")
    jobs_b = registered_id(port, kind="counter", name="jobs_total", help="Jobs done.", labels="queue=b")
    assert jobs_b != jobs
    assert registered_id(port, kind="counter", name="jobs_total", help="Jobs done.", labels="queue=a") == jobs
    depth = registered_id(port, kind="gauge", name="queue_depth", help="Items waiting.")
    size = registered_id(port, kind="histogram", name="item_bytes", help="Item sizes.", buckets="1,10,100")
    default = registered_id(port, kind="histogram", name="wait_seconds", help="Waits.")

    assert update(port, jobs, "add", 1.5, threads=8, times=1000) == (8000, 0)
    assert update(port, jobs_b, "add", 1, threads=1, times=3) == (3, 0)
    assert update(port, depth, "set", 7) == (1, 0)
    assert update(port, depth, "add", -2, threads=4, times=1) == (4, 0)
    assert update(port, size, "observe", 5, threads=3, times=1) == (3, 0)
    assert update(port, size, "observe", 100) == (1, 0)  # equal to a bound: in that bucket
    assert update(port, size, "observe", 1000, times=2) == (2, 0)
    assert update(port, default, "observe", 0.003) == (1, 0)

    samples = scrape(mport)
    own = {"server": "probe", "group": "g", "replica": "0"}
    assert value(samples, "mcp_plugin_jobs_total", queue="a", **own) == 12000
    assert value(samples, "mcp_plugin_jobs_total", queue="b", **own) == 3
    assert value(samples, "mcp_plugin_queue_depth", **own) == -1  # 7 - 4 * 2
    buckets = {l["le"]: v for l, v in series(samples, "mcp_plugin_item_bytes_bucket", **own)}
    assert buckets == {"1": 0, "10": 3, "100": 4, "+Inf": 6}
    assert value(samples, "mcp_plugin_item_bytes_sum", **own) == 2115
    assert value(samples, "mcp_plugin_item_bytes_count", **own) == 6
    # No buckets given: the host's duration buckets, 0.0005 s to 30 s.
    waits = {l["le"]: v for l, v in series(samples, "mcp_plugin_wait_seconds_bucket", **own)}
    assert len(waits) == 17 and waits["0.0025"] == 0 and waits["0.005"] == 1 and waits["30"] == 1
    # The labels are the supervisor's first, then the plugin's; nothing else.
    labels, _ = series(samples, "mcp_plugin_jobs_total", queue="a")[0]
    assert set(labels) == {"server", "group", "replica", "queue"}

    status, headers, body = get(mport, "/metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), (check.stdout + check.stderr).decode()
    text = body.decode()
    assert "# HELP mcp_plugin_jobs_total Jobs done.\n# TYPE mcp_plugin_jobs_total counter\n" in text
    assert "# TYPE mcp_plugin_item_bytes histogram\n" in text
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(types) == len(set(types))

    status, headers, body = get(mport, "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"})
    om = body.decode()
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert "# TYPE mcp_plugin_jobs counter\n" in om and 'mcp_plugin_jobs_total{server="probe"' in om
    assert 'mcp_plugin_item_bytes_bucket{server="probe",group="g",replica="0",le="10.0"} 3' in om
    assert om.endswith("# EOF\n")


def test_broken_registrations_are_refused_and_named(env):
    probe(env)
    run, mport = start(env, replicas=1)
    wait_until(lambda: env.status("probe")["state"] == "running", 20, "probe running")
    port = server_port(env, "probe")
    good = registered_id(port, kind="counter", name="good_total", help="Kept.")
    assert update(port, good, "add", 2) == (1, 0)

    cases = [
        ({"kind": "counter", "name": "9lives_total"}, "9lives_total", r"is not \[a-zA-Z_\]\[a-zA-Z0-9_\]\*"),
        ({"kind": "counter", "name": "requests"}, "requests", "a counter's name must end in _total"),
        ({"kind": "gauge", "name": "open_total"}, "open_total", "only a counter's name may end in _total"),
        ({"kind": "gauge", "name": "x_bucket"}, "x_bucket", r"_bucket \(reserved\)"),
        ({"kind": "gauge", "name": "a" * 65}, "a" * 65, "the name must be 1 to 64 bytes"),
        ({"kind": "gauge", "name": "g1", "labels": "server=x"}, "g1", "the label name 'server' is the supervisor's"),
        ({"kind": "gauge", "name": "g2", "labels": "le=1"}, "g2", "the label name 'le' is the supervisor's"),
        ({"kind": "gauge", "name": "g3", "labels": "__x=1"}, "g3", r"starts with __ \(reserved\)"),
        ({"kind": "gauge", "name": "g4", "labels": "a=1,a=2"}, "g4", "a label name is given twice"),
        ({"kind": "gauge", "name": "g5", "labels": ",".join(f"l{i}=v" for i in range(9))}, "g5",
         "more than 8 labels"),
        ({"kind": "gauge", "name": "g6", "labels": "k=" + "v" * 257}, "g6", "a label value is longer than 256 bytes"),
        ({"kind": "gauge", "name": "g7", "help": "h" * 513}, "g7", "the help text must be 1 to 512 bytes"),
        ({"kind": "gauge", "name": "g10", "help": ""}, "g10", "the help text must be 1 to 512 bytes"),
        ({"kind": "histogram", "name": "h1", "buckets": "3,2"}, "h1", r"not strictly increasing \(bucket 1\)"),
        ({"kind": "histogram", "name": "h2", "buckets": ",".join(str(i) for i in range(1, 34))}, "h2",
         "more than 32 buckets"),
        ({"kind": "gauge", "name": "g8", "buckets": "1"}, "g8", "only a histogram has buckets"),
        ({"kind": 7, "name": "g9"}, "g9", "the kind 7 is not MCPP_METRIC_COUNTER"),
        ({"kind": "gauge", "name": "good_total"}, "good_total", "a counter's name"),  # gauge rule, first
        ({"kind": "counter", "name": "good_total", "help": "Other help."}, "good_total",
         r"is registered already as a counter with other help"),
    ]
    for args, name, why in cases:
        mark = run.mark()
        assert register(port, **{"help": "H.", **args}) == "status=3", args
        run.wait_for(rf"metrics: refused series '{re.escape(name)}': .*{why}", 10, mark)

    # Wrong-kind updates and bad values are refused without touching the value.
    assert update(port, good, "set", 5) == (0, 1)
    assert update(port, good, "observe", 5) == (0, 1)
    assert update(port, good, "add", -1) == (0, 1)
    gauge = registered_id(port, kind="gauge", name="level", help="Level.")
    assert update(port, gauge, "observe", 1) == (0, 1)
    assert update(port, gauge, "set", float("1e308")) == (1, 0)
    hist = registered_id(port, kind="histogram", name="lat", help="Latency.", buckets="1")
    assert update(port, hist, "add", 1) == (0, 1)

    # 256 series per plugin (good_total, level and lat are 3 of them): the rest is refused with MCPP_E_TOO_LARGE,
    # named in the log.
    for i in range(253):
        registered_id(port, kind="gauge", name="many", help="Many.", labels=f"i={i}")
    mark = run.mark()
    assert register(port, kind="gauge", name="many", help="Many.", labels="i=last") == "status=6"
    run.wait_for(r"metrics: refused series 'many': the plugin has 256 series already", 10, mark)
    assert registered_id(port, kind="gauge", name="many", help="Many.", labels="i=0") >= 0  # an existing one is still found

    samples = scrape(mport)
    assert value(samples, "mcp_plugin_good_total", server="probe") == 2
    assert len(series(samples, "mcp_plugin_many", server="probe")) == 253
    assert not [n for n, _, _ in samples if n.startswith("mcp_plugin_g") and n != "mcp_plugin_good_total"]
    status, _, body = get(mport, "/metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    assert env.status("probe")["state"] == "running"


def test_each_replica_reports_its_own_and_a_new_one_starts_from_zero(env):
    probe(env, replicas=2, config={"preregister": True})
    run, mport = start(env, replicas=1)
    wait_until(lambda: env.status("probe")["state"] == "running"
               and all(r["state"] == "running" for r in env.status("probe")["replicas"]), 20, "probe replicas")
    port = server_port(env, "probe")
    samples = scrape(mport)
    starts = {l["replica"]: v for l, v in series(samples, "mcp_plugin_probe_starts_total", server="probe")}
    assert starts == {"0": 1, "1": 1}
    # 40 calls on the shared port, each landing on one replica or the other: every call counted exactly once, by
    # the replica that served it.
    for _ in range(40):
        assert call_tool(port, "bump", {"name": "hits_total"}) == "bumped"
    hits = {l["replica"]: v for l, v in series(scrape(mport), "mcp_plugin_hits_total", server="probe")}
    assert sum(hits.values()) == 40, hits
    # A replica killed and started again is a new process: its series start again (here: not registered yet),
    # the other replica's stay.
    first = env.status("probe")["replicas"][0]["pid"]
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: env.status("probe")["replicas"][0]["pid"] not in (None, first)
               and env.status("probe")["replicas"][0]["state"] == "running", 20, "replica 0 restarted")
    samples = scrape(mport)
    after = {l["replica"]: v for l, v in series(samples, "mcp_plugin_hits_total", server="probe")}
    assert after == {k: v for k, v in hits.items() if k == "1"}, (hits, after)
    starts = {l["replica"]: v for l, v in series(samples, "mcp_plugin_probe_starts_total", server="probe")}
    assert starts == {"0": 1, "1": 1}


def test_two_servers_disagreeing_about_a_name(env):
    probe(env, name="alpha", group="a")
    probe(env, name="beta", group="b")
    run, mport = start(env, replicas=1)
    wait_until(lambda: env.status("alpha")["state"] == "running" and env.status("beta")["state"] == "running", 20,
               "alpha and beta running")
    a, b = server_port(env, "alpha"), server_port(env, "beta")
    ia = registered_id(a, kind="gauge", name="shared", help="Alpha's.")
    ib = registered_id(b, kind="gauge", name="shared", help="Beta's.")
    same_a = registered_id(a, kind="counter", name="both_total", help="Same.")
    same_b = registered_id(b, kind="counter", name="both_total", help="Same.")
    update(a, ia, "set", 1)
    update(b, ib, "set", 2)
    update(a, same_a, "add", 10)
    update(b, same_b, "add", 20)
    samples = scrape(mport)
    # One family per name: the first server on the page (alpha) sets its shape, beta's disagreeing one is left off
    # and counted; an agreeing family has both servers' series.
    assert [(l["server"], v) for l, v in series(samples, "mcp_plugin_shared")] == [("alpha", 1)]
    assert sorted((l["server"], v) for l, v in series(samples, "mcp_plugin_both_total")) == [("alpha", 10),
                                                                                            ("beta", 20)]
    assert value(samples, "mcp_supervisor_plugin_families_left_off") == 1
    status, _, body = get(mport, "/metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()


def test_reference_plugin_counts_its_calls(env):
    run, mport = start(env, replicas=1)
    port = server_port(env, "ref")
    for text in ["a", "hello", "x" * 100]:
        assert call_tool(port, "echo", {"text": text}) == text
    samples = scrape(mport)
    own = {"server": "ref", "group": "blue", "replica": "0"}
    assert value(samples, "mcp_plugin_reference_tool_calls_total", tool="echo", **own) == 3
    buckets = {l["le"]: v for l, v in series(samples, "mcp_plugin_reference_echo_text_bytes_bucket", **own)}
    assert buckets == {"8": 2, "64": 2, "512": 3, "+Inf": 3}
    assert value(samples, "mcp_plugin_reference_echo_text_bytes_sum", **own) == 106
