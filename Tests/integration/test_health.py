"""The health model (docs/health.md), end to end: a real supervisor probing real hosts, observed through `mcpctl`.

Every state is caused by the fixture plugin built for it (Tests/fixtures/plugins/health_states.c): a slow health
callback (degraded), a failing one (unhealthy; restarted, or kept under restart = "never", then recovered), a
hanging call (degraded while one of two slots is stuck; the host is replaced once every slot is), a blocked event
loop (killed as hung and restarted), a crash (offline, then initializing, then healthy). The `health` method is
run at each level; a health callback slower than the probe timeout shows that probes never pile up and never
hold the supervisor up. Each test's supervisor is stopped and checked for leftovers by its fixture.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conftest import LATE, modern_post, plugin_path
from supervisor_fixtures import call_tool, pid_alive, proc_info, wait_until
from supervisor_fixtures import control_env, sockdir  # noqa: F401 (fixtures: control_env is env)
from test_control_socket import connect, ctl, ctl_fails, ctl_json, ctl_ok, rpc, settle_fds

pytestmark = pytest.mark.timeout(120)

# Fast probing so each state shows within a second or two. degraded_latency is 0.5 s, not less: a healthy probe
# (a control-channel round trip, a server/discover POST, the plugin's callback) on a loaded two-core machine can
# take a few hundred milliseconds, and it must stay "healthy"; SLOW is well above it and below the timeout.
FAST = {"interval": 0.2, "timeout": 1.0, "degraded_latency": 0.5, "failures": 3, "successes": 2}
SLOW_MS = 750


@pytest.fixture
def hs():
    return plugin_path("health_states")


def serve(env, hs, name="hs", *, health=None, host_args=("--threads", "1"), **settings):
    env.write_server(name, hs, health={**FAST, **(health or {})}, host_args=list(host_args), **settings)


def start(env, name="hs"):
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    pid, _ = run.running(name)
    return run, pid, run.port_of(name)


def server(env, name="hs") -> dict:
    (s,) = ctl_json(env.sock, "status", name)["servers"]
    return s


def wait_health(env, state: str, name="hs", timeout=15.0, replica: int | None = 0) -> dict:
    """Polls `mcpctl --json status NAME` until the replica's (or, with replica=None, the server's) health is
    `state`; returns the server entry."""
    def check():
        s = server(env, name)
        got = s["health"] if replica is None else s["replicas"][replica]["health"]
        return s if got == state else None
    return wait_until(check, timeout, f"{name} health {state}")


def background_call(port: int, tool: str, args: dict, timeout: float) -> threading.Thread:
    """A tools/call that is expected to hang or time out, on its own thread (its answer does not matter)."""
    def run():
        try:
            modern_post(port, "tools/call", {"name": tool, "arguments": args}, timeout=timeout)
        except Exception:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_healthy_then_degraded_by_a_slow_plugin_then_recovered(env, hs):
    serve(env, hs)
    run, pid, port = start(env)
    s = wait_health(env, "healthy")
    assert (s["health"], s["score"]) == ("healthy", 1.0)
    assert s["replicas"][0]["latency_ms"] < FAST["degraded_latency"] * 1000

    call_tool(port, "set_health", {"delay_ms": SLOW_MS})
    s = wait_health(env, "degraded")
    r = s["replicas"][0]
    assert (s["health"], s["score"]) == ("degraded", 0.5)
    assert f"above degraded_latency ({int(FAST['degraded_latency'] * 1000)} ms)" in r["health_reason"], r
    assert r["pid"] == pid and r["restarts"] == 0, "slow is not dead: the child keeps running"
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: health healthy -> degraded: the probe took \d+ ms")

    mark = run.mark()
    call_tool(port, "set_health", {"delay_ms": 0})
    s = wait_health(env, "healthy")
    assert s["replicas"][0]["pid"] == pid and s["score"] == 1.0
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: health degraded -> healthy$", 5, mark)


def test_failing_health_callback_restarts_the_child(env, hs):
    serve(env, hs, restart="on-failure")
    run, pid, port = start(env)
    wait_health(env, "healthy")
    mark = run.mark()
    call_tool(port, "set_health", {"fail": True})
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: health healthy -> degraded: the plugin reports unhealthy: "
                 r"health check failing \(set by set_health\)$", 10, mark)
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: health degraded -> unhealthy", 10, mark)
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: unhealthy \(3 health probe\(s\) in a row failed; .*\); "
                 r"killing it to restart$", 10, mark)
    new_pid, _ = run.running("hs", 15, mark)
    assert new_pid != pid
    wait_until(lambda: not pid_alive(pid), 5, f"old child {pid} gone")
    s = wait_health(env, "healthy")
    r = s["replicas"][0]
    assert (r["pid"], r["restarts"], r["last_exit"]) == (new_pid, 1, "was unhealthy")
    assert call_tool(port, "ok") == "ok"


def test_unhealthy_is_kept_under_restart_never_and_recovers(env, hs):
    serve(env, hs, restart="never")
    run, pid, port = start(env)
    wait_health(env, "healthy")
    call_tool(port, "set_health", {"fail": True})
    s = wait_health(env, "unhealthy")
    r = s["replicas"][0]
    assert (s["health"], s["score"], r["pid"], r["state"]) == ("unhealthy", 0.0, pid, "running")
    assert "the plugin reports unhealthy" in r["health_reason"]
    run.wait_for(rf'^mcp-supervisor: hs\[{pid}\]: unhealthy \(.*\); left running \(restart = "never"\)$', 5)
    assert ctl(env.sock, "health", "hs").returncode == 6

    # Recovery needs `successes` (2) good probes in a row; the child was never replaced.
    mark = run.mark()
    call_tool(port, "set_health", {"fail": False})
    s = wait_health(env, "healthy")
    assert s["replicas"][0]["pid"] == pid and s["replicas"][0]["restarts"] == 0
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: health unhealthy -> healthy$", 5, mark)
    assert not run.find_all(r"killing it", 0)


def test_hanging_calls_degrade_then_the_hung_host_is_replaced(env, hs):
    serve(env, hs, host_args=("--threads", "2", "--call-timeout", "0.5", "--hang-grace", "0.3"))
    run, pid, port = start(env)
    wait_health(env, "healthy")
    background_call(port, "hang", {}, timeout=5)
    s = wait_health(env, "degraded")
    r = s["replicas"][0]
    assert "1 of 2 call slot(s) held by calls stuck past their deadline" in r["health_reason"], r
    assert r["pid"] == pid
    assert call_tool(port, "ok") == "ok", "the other slot still serves"

    mark = run.mark()
    background_call(port, "hang", {}, timeout=5)  # the last slot: the host gives up on the plugin (status 71)
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: exited with status 71$", 15, mark)
    new_pid, _ = run.running("hs", 15, mark)
    s = wait_health(env, "healthy")
    assert s["replicas"][0]["pid"] == new_pid != pid
    assert s["replicas"][0]["restarts"] == 1


def test_blocked_event_loop_is_killed_as_hung_and_restarted(env, hs):
    serve(env, hs)  # one event-loop thread: block_loop stops it
    run, pid, port = start(env)
    wait_health(env, "healthy")
    mark = run.mark()
    background_call(port, "block_loop", {"ms": 60_000}, timeout=3)
    s = wait_health(env, "degraded", timeout=10)  # the first silent probes, before the third one
    assert s["replicas"][0]["pid"] == pid
    assert "no answer on the control channel" in s["replicas"][0]["health_reason"]
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: health healthy -> degraded: no answer on the control channel "
                 r"within 1\.0 s: the event loop is blocked or stopped$", 10, mark)
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: hung \(3 health probe\(s\) in a row failed; .*\); killing it$",
                 10, mark)
    new_pid, _ = run.running("hs", 15, mark)
    assert new_pid != pid
    wait_until(lambda: not pid_alive(pid), 5, f"old child {pid} gone")
    s = wait_health(env, "healthy")
    assert s["replicas"][0]["last_exit"] == "stopped answering heartbeats"
    assert call_tool(port, "ok") == "ok"


def test_crash_is_offline_then_initializing_then_healthy(env, hs):
    # Periodic probes off: a fresh child stays `initializing` until a probe runs (here, `mcpctl health`).
    serve(env, hs, health={"interval": 0}, backoff={"initial": 1.5, "jitter": 0})
    run, pid, port = start(env)
    assert server(env)["replicas"][0]["health"] == "initializing"
    assert server(env)["health"] == "initializing"
    assert ctl(env.sock, "health", "hs").returncode == 0
    assert server(env)["replicas"][0]["health"] == "healthy"

    mark = run.mark()
    background_call(port, "crash", {}, timeout=5)
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: exited with status 70$", 10, mark)  # the host's crash status
    s = server(env)  # inside the 1.5 s backoff
    assert (s["health"], s["score"], s["replicas"][0]["health"], s["replicas"][0]["pid"]) == (
        "offline", 0.0, "offline", None)
    assert s["replicas"][0]["health_reason"] == "exited with status 70"
    assert ctl(env.sock, "health", "hs").returncode == 6

    new_pid, _ = run.running("hs", 15, mark)
    assert server(env)["replicas"][0]["health"] == "initializing"
    r = ctl(env.sock, "health", "hs")
    assert r.returncode == 0, r.stdout + r.stderr
    after = server(env)["replicas"][0]
    assert (after["health"], after["pid"], after["restarts"]) == ("healthy", new_pid, 1)


def test_health_levels_report_their_parts(env, hs):
    serve(env, hs)
    run, pid, port = start(env)
    wait_health(env, "healthy")

    basic = ctl_json(env.sock, "health", "hs", "--level", "basic")
    assert (basic["server"], basic["level"], basic["state"], basic["score"]) == ("hs", "basic", "healthy", 1.0)
    probe = basic["replicas"][0]["last_probe"]
    assert probe["level"] == "basic" and probe["event_loop"]["answered"] is True
    assert "plugin" not in probe and "server_discover" not in probe and "process" not in probe

    detailed = ctl_json(env.sock, "health", "hs", "--level", "detailed")["replicas"][0]["last_probe"]
    assert detailed["result"] == "passed"
    assert detailed["plugin"]["ok"] is True and detailed["plugin"]["detail"] == "ok"
    assert detailed["server_discover"]["ok"] is True and detailed["server_discover"]["port"] == port
    assert detailed["server_discover"]["ms"] <= detailed["latency_ms"]
    assert "process" not in detailed

    diag = ctl_json(env.sock, "health", "hs", "--level", "diagnostic")["replicas"][0]["last_probe"]
    report = diag["plugin_report"]
    assert report["health_fail"] is False and report["health_calls"] >= 2
    proc = diag["process"]
    assert proc["pid"] == pid
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
    assert abs(proc["rss_bytes"] - rss_kb * 1024) < 4 << 20
    assert abs(proc["open_fds"] - len(list(Path(f"/proc/{pid}/fd").iterdir()))) <= 3
    assert proc["threads"] >= 2 and proc["cpu_seconds"] >= 0

    table = ctl_ok(env.sock, "health", "hs", "--level", "diagnostic")
    assert table.splitlines()[0].startswith("hs: healthy (score 1")
    assert "discover" in table and "plugin ok" in table and "rss " in table and "plugin report #0:" in table

    # Exit statuses scripts rely on, and one-line errors.
    call_tool(port, "set_health", {"delay_ms": SLOW_MS})
    wait_health(env, "degraded")
    assert ctl(env.sock, "health", "hs").returncode == 5
    assert "unknown server 'nope'" in ctl_fails(env.sock, 1, "health", "nope")
    assert ctl(env.sock, "health", "hs", "--level", "deep").returncode == 2
    call_tool(port, "set_health", {"delay_ms": 0})
    ctl_ok(env.sock, "stop", "hs")
    wait_until(lambda: server(env)["state"] == "stopped", 10, "stopped")
    assert server(env)["health"] == "offline"
    assert ctl(env.sock, "health", "hs").returncode == 6


def test_probes_never_pile_up_and_never_block_the_supervisor(env, hs):
    # A health callback that takes 2.5 s against a 0.2 s interval and a 1 s timeout.
    serve(env, hs, restart="never", config={"health_delay_ms": 2500}, host_args=("--threads", "2"))
    run, pid, port = start(env)
    s = wait_health(env, "unhealthy")
    assert "the plugin's health callback did not return within 1.0 s" in s["replicas"][0]["health_reason"] or \
        "has not returned" in s["replicas"][0]["health_reason"]
    before = int(call_tool(port, "health_calls"))
    t0 = time.monotonic()
    # Three admin health checks at once while a slow callback runs: they join probes, they add no callbacks.
    threads = [threading.Thread(target=ctl, args=(env.sock, "health", "hs")) for _ in range(3)]
    for t in threads:
        t.start()
    ctl_ok(env.sock, "status")  # the supervisor answers while probes are in flight (mcpctl works)
    # Timed over the raw socket, without starting a process: a supervisor that waited for the probe would take
    # at least the rest of the 1 s probe timeout; half of it (0.5 s) tells the two apart even under load.
    started = time.monotonic()
    assert "result" in rpc(env.sock, "status")
    status_took = time.monotonic() - started
    for t in threads:
        t.join(30)
    # Probes are due every 0.2 s, but the plugin sees one callback at a time: two more callbacks take at least
    # one whole 2.5 s callback between their starts.
    wait_until(lambda: int(call_tool(port, "health_calls")) >= before + 2, 20, "two more health callbacks")
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.4, f"two callbacks began {elapsed:.2f} s apart: they overlapped"
    assert status_took < FAST["timeout"] / 2, f"status took {status_took:.3f} s while probes were in flight"
    assert server(env)["replicas"][0]["pid"] == pid
    assert proc_info(pid) is not None


def test_replicas_aggregate_into_the_server_state_and_score(env, hs):
    serve(env, hs, replicas=2, restart="never", host_args=("--threads", "1"))
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    run.wait_count(r"^mcp-supervisor: hs#\d\[(\d+)\]: running", 2, 20)
    port = run.port_of("hs")
    s = wait_health(env, "healthy", replica=None)
    assert s["score"] == 1.0

    call_tool(port, "set_health", {"fail": True})  # lands on one of the two replicas
    def one_unhealthy():
        st = server(env)
        states = sorted(r["health"] for r in st["replicas"])
        return st if states == ["healthy", "unhealthy"] else None
    s = wait_until(one_unhealthy, 15, "one replica unhealthy")
    assert (s["health"], s["score"]) == ("degraded", 0.5)
    table = ctl_ok(env.sock, "status")
    assert table.splitlines()[0].split()[:3] == ["SERVER", "STATE", "HEALTH"]
    assert sum("unhealthy" in line for line in table.splitlines()) == 1


def test_health_method_errors_and_a_client_that_leaves_mid_probe(env, hs):
    # A health callback slower than the timeout, so a `health` request stays open for a second.
    serve(env, hs, restart="never", config={"health_delay_ms": 1500}, host_args=("--threads", "2"))
    run, pid, port = start(env)
    wait_health(env, "unhealthy")

    def code(reply):
        return reply.get("error", {}).get("code")
    assert code(rpc(env.sock, "health", {})) == -32602
    assert code(rpc(env.sock, "health", {"server": 5})) == -32602
    assert code(rpc(env.sock, "health", {"server": "hs", "level": "deep"})) == -32602
    assert code(rpc(env.sock, "health", {"server": "nope"})) == -32002

    baseline = run.fd_count()
    mark = run.mark()
    for _ in range(5):  # ask, then hang up before the answer
        s = connect(env.sock)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"health","params":{"server":"hs","level":"diagnostic"}}\n')
        s.close()
    # The supervisor goes on: a new client gets its answer once the probe it joins ends.
    reply = rpc(env.sock, "health", {"server": "hs", "level": "basic"})
    assert reply["result"]["replicas"][0]["pid"] == pid
    assert settle_fds(run, baseline) <= baseline, "clients that left mid-probe left descriptors behind"
    assert not run.find_all(r"killing it", mark)


def test_shallow_on_demand_probes_do_not_hold_off_the_periodic_probe(env, hs):
    # Periodic probes every 0.5 s at the detailed level; an admin asks for basic probes more often than that.
    serve(env, hs, restart="never", health={"interval": 0.5})
    run, pid, port = start(env)
    wait_health(env, "healthy")
    call_tool(port, "set_health", {"fail": True})  # only a detailed probe can see this
    found = threading.Event()

    def poll_basic():
        while not found.is_set():
            ctl(env.sock, "health", "hs", "--level", "basic")

    t = threading.Thread(target=poll_basic, daemon=True)
    t.start()
    try:
        s = wait_health(env, "unhealthy", timeout=10)
    finally:
        found.set()
        t.join(10)
    assert "the plugin reports unhealthy" in s["replicas"][0]["health_reason"]


def test_a_stop_during_a_health_callback_waits_for_it_then_destroys(env, hs):
    # The callback takes 1.5 s and the next starts 0.2 s after one ends, so the stop almost always arrives while
    # one runs. destroy must not overlap it (ABI rule) and must still run once it returned (it used to be skipped:
    # "exiting without destroy", and the plugin lost its cleanup).
    serve(env, hs, restart="never", config={"health_delay_ms": 1500}, host_args=("--threads", "2"))
    run, pid, port = start(env)
    wait_until(lambda: int(call_tool(port, "health_calls")) >= 1, 10, "a health callback entered")
    mark = run.mark()
    t0 = time.monotonic()
    ctl_ok(env.sock, "stop", "hs")
    destroyed = run.wait_for(rf"^hs\[{pid}\]: health_states: destroy after \d+ health call\(s\)$", 10, mark)
    run.wait_for(rf"^mcp-supervisor: hs\[{pid}\]: exited with status 0$", 10, mark)
    assert not run.find_all("exiting without destroy", mark)
    assert destroyed.t - t0 < 1.5 + LATE, f"destroy {destroyed.t - t0:.3f} s after the stop"
