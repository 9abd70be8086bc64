"""The supervisor's own series (docs/metrics.md, "Supervisor") on a live `metrics_listen`, end to end.

A real supervisor runs the C reference plugin; each test scrapes `/metrics` over loopback and parses the text page.
Events are made the real way: a replica killed with SIGKILL from outside (a crash), `restart` on the control socket
(admin), reloads of a changed folder (ok) and of a broken file (rejected), a server removed and replicas shrunk by a
reload (their series leave the page). Values are polled with a deadline (a scrape is cheap), never slept for.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import plugin_path
from supervisor_fixtures import call_tool, control_env, free_port, pid_alive, wait_until  # noqa: F401 (fixture env)

pytestmark = pytest.mark.timeout(180)

SERIES_RX = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
REASONS = ("exit", "crash", "hang", "start_timeout", "unhealthy", "admin")
G = "team-a"  # the group of the first test's server


def page_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        return reply.read().decode()


def scrape(port: int) -> dict[str, float]:
    """Every sample of the page, by `name{labels}` as written (labels in the supervisor's order)."""
    text = page_text(port)
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES_RX.match(line)
        assert m, f"not a sample line: {line!r}"
        key = m.group(1) + (m.group(2) or "")
        assert key not in samples, f"{key} twice on one page"
        samples[key] = float(m.group(3))
    return samples


def series(name: str, **labels: str) -> str:
    """The key of one series with `server` and `group` first, then `replica`, then the rest (the page's order)."""
    order = ["server", "group", "replica"]
    keys = [k for k in order if k in labels] + [k for k in labels if k not in order]
    return name + "{" + ",".join(f'{k}="{labels[k]}"' for k in keys) + "}"


def restarts(page: dict[str, float], server: str, group: str = "") -> dict[str, float]:
    return {r: page.get(series("mcp_supervisor_restarts_total", server=server, group=group, reason=r))
            for r in REASONS}


def wait_page(port: int, predicate, what: str, timeout: float = 20.0) -> dict[str, float]:
    """Scrapes until the page satisfies `predicate`; fails with the last page at the deadline."""
    last: dict[str, float] = {}

    def check():
        nonlocal last
        last = scrape(port)
        return predicate(last)

    try:
        wait_until(check, timeout, what, interval=0.1)
    except AssertionError as e:
        mine = {k: v for k, v in last.items() if k.startswith("mcp_supervisor")}
        raise AssertionError(f"{e}; last page: {mine}") from None
    return last


def mentions(page: dict[str, float], text: str) -> bool:
    return any(text in k for k in page)


@pytest.fixture
def metrics_env(env):
    """The control-socket env with `metrics_listen` on a free loopback port; `env.metrics_port`."""
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{port}")
    env.metrics_port = port
    return env


def start(env, *names: str, start_timeout: float = 30.0, groups: dict[str, str] | None = None):
    """Starts the supervisor, waits for every named server to run; requires metrics_listen in this build."""
    checked = env.check_config()
    if checked.returncode != 0 and "metrics_listen" in (checked.stdout + checked.stderr):
        pytest.skip(f"metrics_listen is not in this build (the config side of issue 12): {checked.stderr.strip()}")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    started = time.time()
    run = env.start()
    pids = {name: run.running(name, start_timeout)[0] for name in names}
    groups = groups or {}
    servers = {n.partition("#")[0] for n in names}
    wait_page(env.metrics_port,
              lambda p: all(p.get(series("mcp_supervisor_server_up", server=n, group=groups.get(n, ""))) == 1
                            for n in servers), "every server up on the page")
    return run, pids, started


def test_a_crash_and_an_admin_restart_are_counted_by_reason(metrics_env):
    env = metrics_env
    env.write_server("ref", plugin_path("reference"), group=G)
    run, pids, started = start(env, "ref", groups={"ref": G})
    port = env.metrics_port
    page = scrape(port)
    assert restarts(page, "ref", G) == {r: 0 for r in REASONS}
    assert series("mcp_supervisor_last_exit_code", server="ref", group=G, replica="0") not in page
    assert page[series("mcp_supervisor_replica_up", server="ref", group=G, replica="0")] == 1
    assert page[series("mcp_supervisor_server_state", server="ref", group=G, state="running")] == 1
    assert page[series("mcp_supervisor_server_port", server="ref", group=G)] == env.status("ref")["port"]
    assert page[series("mcp_supervisor_replica_resident_memory_bytes", server="ref", group=G, replica="0")] > 0
    assert page[series("mcp_supervisor_replica_open_fds", server="ref", group=G, replica="0")] >= 3
    assert 0 < page[series("mcp_supervisor_start_duration_seconds", server="ref", group=G, replica="0")] < 30
    assert abs(page["process_start_time_seconds"] - started) < 2
    assert page["process_open_fds"] >= 3 and page["process_max_fds"] > page["process_open_fds"]
    assert page["process_resident_memory_bytes"] > 1 << 20
    assert not any(k == "up" or k.startswith("up{") or "pid=" in k for k in page)
    # Every per-server series of ref has its group (the supervisor's own and the host-derived ones).
    for key in page:
        if 'server="ref"' in key:
            assert f'server="ref",group="{G}"' in key, key

    # SIGKILL from outside: a crash, and the exit code is 128 + 9.
    mark = run.mark()
    os.kill(pids["ref"], signal.SIGKILL)
    new_pid, _ = run.running("ref", 20, mark)
    page = wait_page(port, lambda p: restarts(p, "ref", G)["crash"] == 1, "restarts_total{reason=crash} = 1")
    assert restarts(page, "ref", G) == {**{r: 0 for r in REASONS}, "crash": 1}
    assert page[series("mcp_supervisor_last_exit_code", server="ref", group=G, replica="0")] == 137

    # mcpctl restart: admin; the graceful stop it makes is not a crash or an exit restart.
    mark = run.mark()
    reply = env.control("restart", {"server": "ref"})
    assert reply.get("result") == {"servers": {"ref": "restarting"}}, reply
    newer_pid, _ = run.running("ref", 20, mark)
    assert newer_pid != new_pid
    wait_until(lambda: not pid_alive(new_pid), 10, "the restarted host is gone")
    page = wait_page(port, lambda p: restarts(p, "ref", G)["admin"] == 1, "restarts_total{reason=admin} = 1")
    assert restarts(page, "ref", G) == {**{r: 0 for r in REASONS}, "crash": 1, "admin": 1}
    assert page[series("mcp_supervisor_last_exit_code", server="ref", group=G, replica="0")] == 0
    assert page[series("mcp_supervisor_control_requests_total", method="restart", result="ok")] == 1
    # status was called once (env.status above); a method nobody knows is counted as "other".
    assert env.control("no/such/method").get("error")
    page = scrape(port)
    assert page[series("mcp_supervisor_control_requests_total", method="status", result="ok")] == 1
    assert page[series("mcp_supervisor_control_requests_total", method="other", result="error")] == 1
    # The whole page, after all of this, passes promtool's checks and lints.
    checked = subprocess.run(["promtool", "check", "metrics"], input=page_text(port), capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
    run.stop()


def test_reloads_by_result_and_the_series_of_what_a_reload_removed_leave(metrics_env):
    env = metrics_env
    env.write_server("keep", plugin_path("reference"), replicas=2)
    env.write_server("gone", plugin_path("reference"))
    run, pids, _ = start(env, "keep#0", "keep#1", "gone")
    port = env.metrics_port
    page = scrape(port)
    assert page[series("mcp_supervisor_reloads_total", result="ok")] == 0
    assert page[series("mcp_supervisor_reloads_total", result="rejected")] == 0
    assert mentions(page, 'server="gone"')
    assert series("mcp_supervisor_replica_up", server="keep", group="", replica="1") in page

    # A broken file: rejected, nothing changes.
    bad = env.write_raw("broken", 'plugin = "x.so"\nrestart = "sometimes"\n')
    assert env.control("reload")["error"]["code"] == -32003
    page = wait_page(port, lambda p: p[series("mcp_supervisor_reloads_total", result="rejected")] == 1,
                     "reloads_total{result=rejected} = 1")
    assert page[series("mcp_supervisor_reloads_total", result="ok")] == 0
    assert mentions(page, 'server="gone"')
    bad.unlink()

    # gone removed, keep shrunk to one replica: their series leave once they are down.
    env.remove_server("gone")
    env.write_server("keep", plugin_path("reference"), replicas=1)
    mark = run.mark()
    reply = env.control("reload")
    assert reply.get("result", {}).get("removed") == ["gone"], reply
    run.running("keep", 30, mark)
    page = wait_page(port, lambda p: not mentions(p, 'server="gone"') and not mentions(p, 'replica="1"')
                     and p.get(series("mcp_supervisor_server_up", server="keep", group="")) == 1,
                     "no series of gone or of keep#1")
    assert page[series("mcp_supervisor_reloads_total", result="ok")] == 1
    assert page[series("mcp_supervisor_reloads_total", result="rejected")] == 1
    assert page[series("mcp_supervisor_replica_up", server="keep", group="", replica="0")] == 1
    assert restarts(page, "keep") == {r: 0 for r in REASONS}  # a reload's restart is none of the reasons
    assert page[series("mcp_supervisor_control_requests_total", method="reload", result="ok")] == 1
    assert page[series("mcp_supervisor_control_requests_total", method="reload", result="error")] == 1
    # SIGHUP reloads count too.
    os.kill(run.pid, signal.SIGHUP)
    wait_page(port, lambda p: p[series("mcp_supervisor_reloads_total", result="ok")] == 2, "a SIGHUP reload counted")
    run.stop()


def test_calls_in_flight_when_a_replica_is_killed_count_as_crash_errors(metrics_env):
    env = metrics_env
    env.write_server("ref", plugin_path("reference"))
    run, pids, _ = start(env, "ref")
    port = env.metrics_port
    server_port = run.port_of("ref")
    crash = series("mcp_server_errors_total", server="ref", group="", replica="0", error_type="crash")
    outcome: list[object] = []

    def slow_call():
        try:
            outcome.append(call_tool(server_port, "slow_count", {"seconds": 20}, timeout=60))
        except Exception as e:  # the host dies under the call: the connection ends
            outcome.append(e)

    caller = threading.Thread(target=slow_call, daemon=True)
    caller.start()
    # A scrape sees the call in flight (the host's metrics answer), which the supervisor keeps for the replica.
    page = wait_page(port, lambda p: p.get(series("mcp_server_calls_in_flight", server="ref", group="", replica="0"))
                     == 1, "the call in flight on the page")
    assert page.get(crash, 0) == 0
    mark = run.mark()
    os.kill(pids["ref"], signal.SIGKILL)
    run.running("ref", 20, mark)
    page = wait_page(port, lambda p: p.get(crash) == 1, "the lost call counted as a crash error")
    assert restarts(page, "ref")["crash"] == 1
    caller.join(60)
    assert not caller.is_alive() and outcome and isinstance(outcome[0], Exception), outcome
    # Held across the replica's lives: a later page still has it (the new host reports 0 of its own).
    assert scrape(port)[crash] == 1
    run.stop()
