"""mcp-supervisor against real processes (docs/supervisor.md): restarts on the same port, backoff and intensity,
permanent exit statuses, start and stop timeouts, reload, persistent ports, port conflicts, dependency order,
replicas, configuration errors and log forwarding.

Every test runs its own supervisor on a configuration folder under tmp_path (supervisor_fixtures.py). Waiting is
always on an event with a deadline: a log line (the reader thread notifies a condition variable), a socket, or
— only where no event exists — a /proc condition polled with a deadline. The fixture's teardown stops the
supervisor with SIGTERM, requires exit status 0, and requires that no process of its tree is left (zombies
included).

The faulty plugin (Tests/fixtures/plugins/faulty.c) provides the misbehaviour; its configuration options
(extra_tools, create_sleep_ms, ignore_sigterm, destroy_sleep_ms, exit_after_ms) are described in its header.
"""

from __future__ import annotations

import os
import json
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import EARLY, LATE, plugin_path, supervisor_binary
from supervisor_fixtures import (
    SupervisorEnv,
    call_tool,
    connect_refused,
    free_port,
    pid_alive,
    proc_info,
    raw_tools_call,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

EXTRA = {"extra_tools": True}
FAST_BACKOFF = {"initial": 0.1, "max": 5, "multiplier": 2, "jitter": 0}


@pytest.fixture
def env(tmp_path):
    e = SupervisorEnv(tmp_path)
    yield e
    errors = e.cleanup()
    if errors:
        pytest.fail("supervisor teardown: " + "\n".join(errors), pytrace=False)


@pytest.fixture
def faulty():
    return plugin_path("faulty")


def crash_child(port: int) -> None:
    """Calls the faulty plugin's `crash` tool; the connection dies with the host."""
    try:
        text = call_tool(port, "crash", timeout=20)
    except Exception:  # the connection died with the host (or the reply was an error): both are fine here
        return
    raise AssertionError(f"the crash tool returned an answer: {text!r}")


def settle_fd_count(run, expected: int, timeout: float = 2.0) -> int:
    """The supervisor's fd count, given a moment to release what the last exit left (closing is asynchronous)."""
    try:
        return wait_until(lambda: (n := run.fd_count()) <= expected and n, timeout, f"fd count <= {expected}")
    except AssertionError:
        return run.fd_count()


# ------------------------------------------------------------------------------------------------------------
# 1. crash -> restart on the same port
# ------------------------------------------------------------------------------------------------------------


def test_crash_restarts_on_the_same_port(env, faulty):
    env.write_server("crashy", faulty, config=EXTRA, backoff=FAST_BACKOFF)
    run = env.start()
    port = run.port_of("crashy")
    pid, _ = run.running("crashy")
    assert call_tool(port, "pid") == str(pid)
    baseline = run.fd_count()

    for cycle in range(3):
        mark = run.mark()
        crash_child(port)
        run.wait_for(rf"^mcp-supervisor: crashy\[{pid}\]: exited with status 70$", 20, mark)
        run.wait_for(r"^mcp-supervisor: crashy: backoff: exited with status 70; restarting in [\d.]+ s$", 5, mark)
        new_pid, _ = run.running("crashy", 20, mark)
        assert new_pid != pid, "the restarted child has the crashed child's pid"
        assert not pid_alive(pid), f"the crashed host {pid} still exists"
        info = proc_info(new_pid)
        assert info is not None and info.ppid == run.pid, f"new child {new_pid} is not the supervisor's child: {info}"
        # The same port: the socket is the supervisor's, nothing re-binds, the start line is not repeated.
        assert run.find_all(r"crashy: starting \d+ replica", mark) == []
        assert call_tool(port, "ok") == "ok"
        assert call_tool(port, "pid") == str(new_pid)
        pid = new_pid
        n = settle_fd_count(run, baseline)
        assert n == baseline, f"the supervisor's fd count grew from {baseline} to {n} after restart {cycle + 1}"


# ------------------------------------------------------------------------------------------------------------
# 2. connections while the child is down wait in the backlog
# ------------------------------------------------------------------------------------------------------------


def test_connections_during_downtime_are_not_refused(env, faulty):
    env.write_server("slowback", faulty, config=EXTRA,
                     backoff={"initial": 2, "max": 10, "multiplier": 2, "jitter": 0})
    run = env.start()
    port = run.port_of("slowback")
    pid, _ = run.running("slowback")

    mark = run.mark()
    crash_child(port)
    exit_hit = run.wait_for(rf"^mcp-supervisor: slowback\[{pid}\]: exited with status 70$", 20, mark)
    run.wait_for(r"slowback: backoff: exited with status 70; restarting in 2 s$", 5, mark)

    n = 6
    results: list = [None] * n
    answered_at = [0.0] * n
    socks = []
    # Open and send everything while the child is down: connect() must succeed (the supervisor's socket stays
    # bound and listening); the requests wait in the kernel's backlog.
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(raw_tools_call("pid", port=port, id=i + 1))
        socks.append(s)
    sent_at = time.monotonic()
    assert run.find_all(r"^mcp-supervisor: slowback\[\d+\]: starting$", mark) == [], (
        "the child came back before all requests were sent; the test did not exercise downtime")

    def read_reply(i: int) -> None:
        s = socks[i]
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            results[i] = e
            return
        answered_at[i] = time.monotonic()
        results[i] = data

    threads = [threading.Thread(target=read_reply, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    new_pid, running_hit = run.running("slowback", 20, mark)
    start_hit = run.wait_for(rf"^mcp-supervisor: slowback\[{new_pid}\]: starting$", 1, mark)
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a request queued during the downtime was never answered"
    for s in socks:
        s.close()

    for i, r in enumerate(results):
        assert isinstance(r, bytes), f"request {i}: {r!r}"
        head, _, body = r.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), f"request {i}: {r[:300]!r}"
        # Answered by the new child (the body names its pid): so after the backoff and the new start, whatever
        # the clocks of the threads that stamped the lines say (causal order, not timestamps; conftest).
        assert str(new_pid).encode() in body, f"request {i} was not answered by the new child {new_pid}: {body!r}"
        assert answered_at[i] > sent_at  # same causal chain: sent, then read
    # Everything was sent while the child was down: its start line came after (one reader thread stamps both).
    assert sent_at < start_hit.t
    assert start_hit.index < running_hit.index
    # The downtime lasted the configured backoff: from the exit line to the new start line (one stream).
    assert start_hit.t - exit_hit.t >= 2 - EARLY, f"restarted {start_hit.t - exit_hit.t:.3f} s after the exit"


# ------------------------------------------------------------------------------------------------------------
# 3. the backoff schedule, from the logged delays and the lines' timestamps
# ------------------------------------------------------------------------------------------------------------


def test_backoff_schedule_grows_exponentially(env, faulty):
    env.write_server("loop", faulty, restart="always",
                     config={"exit_after_ms": 300, "exit_status": 3},
                     backoff={"initial": 0.2, "max": 30, "multiplier": 2, "jitter": 0, "reset_after": 60},
                     intensity={"max_restarts": 20, "window": 60, "cooldown": 60})
    run = env.start()
    expected = [0.2, 0.4, 0.8, 1.6]
    starts = run.wait_count(r"^mcp-supervisor: loop\[(\d+)\]: starting$", len(expected) + 1, 30)
    exits = run.find_all(r"^mcp-supervisor: loop\[(\d+)\]: exited with status 3$")
    delays = run.find_all(r"^mcp-supervisor: loop: backoff: exited with status 3; restarting in ([\d.]+) s$")
    assert len(exits) >= len(expected) and len(delays) >= len(expected), run.log_text()
    assert [float(d.group(1)) for d in delays[:len(expected)]] == expected
    for i, want in enumerate(expected):
        exit_hit, next_start = exits[i], starts[i + 1]
        assert exit_hit.group(1) == starts[i].group(1), "exit lines and start lines are out of step"
        assert next_start.index > delays[i].index > exit_hit.index
        gap = next_start.t - exit_hit.t
        assert want - EARLY <= gap <= want + LATE, f"restart {i + 1}: gap {gap:.3f} s, expected {want} s"
    # Each child ran its 300 ms: the time between a start and its exit is not part of the backoff.
    for i in range(len(expected)):
        ran = exits[i].t - starts[i].t
        assert ran >= 0.25, f"child {i} ran only {ran:.3f} s"


# ------------------------------------------------------------------------------------------------------------
# 4. restart intensity: fatal, then a retry after the cool-down with a fresh window
# ------------------------------------------------------------------------------------------------------------


def test_intensity_makes_fatal_then_cooldown_retries(env, faulty):
    env.write_server("burst", faulty, restart="always",
                     config={"exit_after_ms": 100, "exit_status": 3},
                     backoff={"initial": 0.1, "max": 1, "multiplier": 1, "jitter": 0},
                     intensity={"max_restarts": 2, "window": 30, "cooldown": 2})
    env.enable_control()
    run = env.start()
    pat_exit = r"^mcp-supervisor: burst\[(\d+)\]: exited with status 3$"
    exits = run.wait_count(pat_exit, 3, 20)
    fatal = run.wait_for(r"^mcp-supervisor: burst: fatal: exited with status 3; 3 exits within 30 s: fatal, "
                         r"retrying in 2 s$", 5)
    # The state itself, from the control socket: fatal, no process, the server down (not only a log line).
    s = env.status("burst")
    assert s["replicas"][0]["state"] == "fatal" and s["replicas"][0]["pid"] is None, s
    assert s["state"] == "down" and s["health"] == "offline", s
    assert fatal.index > exits[2].index
    backoffs = run.find_all(r"^mcp-supervisor: burst: backoff: ", 0)
    assert len([b for b in backoffs if b.index < fatal.index]) == 2, "exactly two restarts before fatal"
    starts = run.find_all(r"^mcp-supervisor: burst\[\d+\]: starting$")
    assert len([s for s in starts if s.index < fatal.index]) == 3
    # After the cool-down: a new start, ~2 s after the fatal line, and nothing in between.
    retry = run.wait_for(r"^mcp-supervisor: burst\[\d+\]: starting$", 10, fatal.index + 1)
    gap = retry.t - fatal.t
    assert 2 - EARLY <= gap <= 2 + LATE, f"retried {gap:.3f} s after fatal, cooldown is 2 s"
    # A fresh window: the next exit is restarted with a backoff, not fatal again.
    after = run.wait_for(r"^mcp-supervisor: burst: (backoff|fatal): ", 10, retry.index + 1)
    assert after.group(1) == "backoff", after.line.text
    assert env.status("burst")["replicas"][0]["state"] != "fatal"


# ------------------------------------------------------------------------------------------------------------
# 5. exit statuses 10-19 are never restarted
# ------------------------------------------------------------------------------------------------------------


def test_permanent_exit_status_is_not_restarted(env, faulty):
    env.write_server("broken", plugin_path("create_fails"), restart="always", backoff=FAST_BACKOFF)
    env.write_server("healthy", faulty, config=EXTRA, backoff=FAST_BACKOFF)
    env.enable_control()
    run = env.start()
    hit = run.wait_for(r"^mcp-supervisor: broken\[(\d+)\]: exited with status 16 \(plugin or configuration error\)$")
    broken_pid = int(hit.group(1))
    run.wait_for(r"^mcp-supervisor: broken: exited: exited with status 16 .*not restarting", 5)
    # The host's own failure line was forwarded, tagged with the server and pid.
    assert run.find_all(rf"^broken\[{broken_pid}\]: mcp-plugin-host: .*create.*/nonexistent is not writable")
    starts = run.find_all(r"^mcp-supervisor: broken\[\d+\]: starting$")
    assert len(starts) == 1
    # Well past the backoff (0.1 s, even under restart = always): no second start.
    run.assert_absent(r"^mcp-supervisor: broken\[\d+\]: starting$", 1.5, hit.index + 1)
    # The state the control socket reports: exited for good (not in backoff), its status kept, no restart.
    s = env.status("broken")
    r = s["replicas"][0]
    assert (s["state"], r["state"], r["pid"], r["restarts"]) == ("down", "exited", None, 0), s
    assert "16" in json.dumps(r["last_exit"]), r
    hport = run.port_of("healthy")
    hpid, _ = run.running("healthy")
    assert call_tool(hport, "pid") == str(hpid)
    assert not pid_alive(broken_pid)


# ------------------------------------------------------------------------------------------------------------
# 6. start timeout
# ------------------------------------------------------------------------------------------------------------


def test_start_timeout_kills_and_restarts(env, faulty):
    env.write_server("sleepy", faulty, start_timeout=1, stop_timeout=1, config={"create_sleep_ms": 60000},
                     backoff=FAST_BACKOFF)
    run = env.start()
    first = run.wait_for(r"^mcp-supervisor: sleepy\[(\d+)\]: starting$")
    pid = int(first.group(1))
    killed = run.wait_for(rf"^mcp-supervisor: sleepy\[{pid}\]: not ready within 1(\.0)? s; killing it$", 10)
    waited = killed.t - first.t
    assert 1 - EARLY <= waited <= 1 + LATE, f"killed {waited:.3f} s after the start, start_timeout is 1 s"
    run.wait_for(rf"^mcp-supervisor: sleepy\[{pid}\]: did not become ready within its start timeout$", 5)
    run.wait_for(r"^mcp-supervisor: sleepy: backoff: did not become ready within its start timeout; restarting in",
                 5)
    second = run.wait_for(r"^mcp-supervisor: sleepy\[(\d+)\]: starting$", 5, killed.index)
    assert int(second.group(1)) != pid
    assert not pid_alive(pid), "the host killed for its start timeout still exists"
    # The second one gets the same treatment, and nothing of the killed hosts stays open in the supervisor.
    baseline = run.fd_count()
    run.wait_for(rf"^mcp-supervisor: sleepy\[{second.group(1)}\]: not ready within", 5, second.index)
    third = run.wait_for(r"^mcp-supervisor: sleepy\[(\d+)\]: starting$", 5, second.index + 1)
    assert int(third.group(1)) not in (pid, int(second.group(1)))
    n = settle_fd_count(run, baseline)
    assert n == baseline, f"the supervisor's fd count went from {baseline} to {n} over a start-timeout kill"


# ------------------------------------------------------------------------------------------------------------
# 7. reload
# ------------------------------------------------------------------------------------------------------------


def test_reload_applies_the_difference_and_keeps_untouched_pids(env, faulty):
    ports = {n: free_port() for n in ("keep", "change", "drop", "added")}
    env.write_server("keep", faulty, port=ports["keep"], config=EXTRA)
    env.write_server("change", faulty, port=ports["change"], config=EXTRA)
    env.write_server("drop", faulty, port=ports["drop"], config=EXTRA)
    run = env.start()
    pids = {n: run.running(n)[0] for n in ("keep", "change", "drop")}
    for n, p in pids.items():
        assert call_tool(ports[n], "pid") == str(p)

    fds_before = run.fd_count()

    env.write_server("change", faulty, port=ports["change"], config={**EXTRA, "generation": 2},
                     env={"CHANGED": "yes"})
    env.write_server("added", faulty, port=ports["added"], config=EXTRA)
    env.remove_server("drop")
    mark = run.mark()
    run.signal(signal.SIGHUP)
    run.wait_for(r"^mcp-supervisor: reload: 1 added, 1 removed, 1 changed, 1 unchanged$", 10, mark)

    new_change, _ = run.running("change", 20, mark)
    assert new_change != pids["change"]
    assert not pid_alive(pids["change"])
    # The new child runs with the new settings: the [env] addition and the new plugin configuration.
    assert child_environ(new_change).get("CHANGED") == "yes"
    assert json.loads(child_config(new_change)) == {**EXTRA, "generation": 2}
    assert "CHANGED" not in child_environ(pids["keep"])
    added_pid, _ = run.running("added", 20, mark)
    run.wait_for(r"^mcp-supervisor: drop: removed$", 20, mark)
    assert not pid_alive(pids["drop"]), "the removed server's host still exists"
    assert connect_refused(ports["drop"]), "the removed server's port is still open"
    assert call_tool(ports["change"], "pid") == str(new_change)
    assert call_tool(ports["added"], "pid") == str(added_pid)
    assert call_tool(ports["keep"], "pid") == str(pids["keep"])
    assert run.find_all(r"^mcp-supervisor: keep\[\d+\]: (starting|stopping)", mark) == []
    n = settle_fd_count(run, fds_before)
    assert n == fds_before, f"three servers before and after the reload, but {fds_before} fds before and {n} after"

    # An invalid configuration: rejected with file:line, nothing changes.
    bad = env.write_raw("change", f'plugin = "{faulty}"\nport = {ports["change"]}\nrestart = "always\n')
    mark = run.mark()
    run.signal(signal.SIGHUP)
    hit = run.wait_for(r"^mcp-supervisor: reload rejected, nothing changed: (.+?):(\d+): ", 10, mark)
    assert hit.group(1) == str(bad) and hit.group(2) == "3", hit.line.text
    for name, p in (("keep", pids["keep"]), ("change", new_change), ("added", added_pid)):
        assert call_tool(ports[name], "pid") == str(p), f"{name} changed after a rejected reload"
    assert connect_refused(ports["drop"])
    assert run.find_all(r"\]: (starting|stopping)$|: reload: ", mark) == []

    # Valid again, with two servers removed at once: both stop and close their ports, `keep` stays as it is,
    # and the teardown's shutdown then stops the one left.
    env.remove_server("change")
    env.remove_server("added")
    mark = run.mark()
    run.signal(signal.SIGHUP)
    run.wait_for(r"^mcp-supervisor: reload: 0 added, 2 removed, 0 changed, 1 unchanged$", 10, mark)
    for name, p in (("change", new_change), ("added", added_pid)):
        run.wait_for(rf"^mcp-supervisor: {name}: removed$", 20, mark)
        assert not pid_alive(p), f"{name}'s host {p} still exists after its removal"
        assert connect_refused(ports[name]), f"{name}'s port is still open after its removal"
    assert call_tool(ports["keep"], "pid") == str(pids["keep"])
    assert run.find_all(r"^mcp-supervisor: keep\[\d+\]", mark) == []


# ------------------------------------------------------------------------------------------------------------
# 8. dynamic ports survive a supervisor restart
# ------------------------------------------------------------------------------------------------------------


def child_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def child_config(pid: int) -> str:
    """The --config JSON on the child's command line (the plugin configuration it was started with)."""
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    return argv[argv.index("--config") + 1]


def test_reload_changed_server_with_a_dynamic_port_keeps_it(env, faulty):
    env.write_server("dyn", faulty, config=EXTRA)
    env.enable_control()
    run = env.start()
    port = run.port_of("dyn")
    pid, _ = run.running("dyn")
    env.write_server("dyn", faulty, config={**EXTRA, "generation": 3}, env={"GENERATION": "3"})
    reply = env.control("reload")
    assert reply.get("result") == {"added": [], "removed": [], "changed": ["dyn"], "unchanged": []}, reply
    wait_until(lambda: (r := env.status("dyn")["replicas"][0])["state"] == "running" and r["pid"] not in (pid, None),
               20, "the changed server restarted")
    s = env.status("dyn")
    new_pid = s["replicas"][0]["pid"]
    assert (s["port"], s["port_kind"]) == (port, "dynamic"), s
    assert child_environ(new_pid).get("GENERATION") == "3"
    assert json.loads(child_config(new_pid))["generation"] == 3
    assert call_tool(port, "pid") == str(new_pid)
    assert json.loads((env.state_dir / "ports.json").read_text())["ports"] == {"dyn": port}


def test_dynamic_port_survives_a_supervisor_restart(env, faulty):
    env.write_server("dyn", faulty, config=EXTRA)
    first = env.start()
    port = first.port_of("dyn")
    lo, hi = env.port_range
    assert lo <= port <= hi
    first.running("dyn")
    first.stop()
    registry = json.loads((env.state_dir / "ports.json").read_text())
    assert registry == {"version": 1, "ports": {"dyn": port}}

    # A new server whose name sorts first would take the first free port of the range if the old assignment
    # were forgotten.
    env.write_server("aaa", faulty, config=EXTRA)
    second = env.start()
    assert second.port_of("dyn") == port
    other = second.port_of("aaa")
    assert other != port and lo <= other <= hi
    pid, _ = second.running("dyn")
    assert call_tool(port, "pid") == str(pid)
    second.stop()
    registry = json.loads((env.state_dir / "ports.json").read_text())
    assert registry["ports"] == {"dyn": port, "aaa": other}


# ------------------------------------------------------------------------------------------------------------
# 9. a static port held by another program fails only that server
# ------------------------------------------------------------------------------------------------------------


def test_static_port_conflict_fails_only_that_server(env, faulty):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        env.write_server("clash", faulty, port=taken, config=EXTRA)
        env.write_server("fine", faulty, config=EXTRA)
        run = env.start()
        hit = run.wait_for(r"^mcp-supervisor: clash: cannot listen on 127\.0\.0\.1: port (\d+) is in use by another "
                           r"program; ")
        assert int(hit.group(1)) == taken
        port = run.port_of("fine")
        pid, _ = run.running("fine")
        assert call_tool(port, "pid") == str(pid)
        assert run.find_all(r"^mcp-supervisor: clash\[\d+\]") == [], "a child was started for the failed server"
    finally:
        blocker.close()


# ------------------------------------------------------------------------------------------------------------
# 10. dependency order, and the cycle error
# ------------------------------------------------------------------------------------------------------------


def test_dependency_order_start_and_stop(env, faulty):
    env.write_server("a", faulty, depends_on=["b"])
    env.write_server("b", faulty, depends_on=["c"])
    env.write_server("c", faulty)
    run = env.start()
    a_start = run.wait_for(r"^mcp-supervisor: a: starting 1 replica", 20)
    starts = {n: run.wait_for(rf"^mcp-supervisor: {n}: starting 1 replica", 1) for n in "abc"}
    ready = {n: run.running(n)[1] for n in "abc"}
    assert starts["c"].index < ready["c"].index < starts["b"].index < ready["b"].index < starts["a"].index
    assert a_start.index == starts["a"].index
    waits = run.find_all(r"^mcp-supervisor: (a|b): waiting for (\w+) to be ready$")
    assert {(w.group(1), w.group(2)) for w in waits} == {("a", "b"), ("b", "c")}
    pids = {n: run.running(n)[0] for n in "abc"}

    mark = run.mark()
    run.stop()
    stopping = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{pids[n]}\]: stopping$", 1, mark) for n in "abc"}
    exited = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{pids[n]}\]: exited with status 0$", 1, mark) for n in "abc"}
    assert stopping["a"].index < exited["a"].index < stopping["b"].index < exited["b"].index \
        < stopping["c"].index < exited["c"].index
    assert run.texts()[-1] == "mcp-supervisor: all servers stopped"


def test_dependency_pair_starts_and_stops_in_order(env, faulty):
    """The two-server case of the test above (b depends on c): the smallest chain, where the dependency is the
    last server to stop."""
    env.write_server("b", faulty, depends_on=["c"])
    env.write_server("c", faulty)
    run = env.start()
    starts = {n: run.wait_for(rf"^mcp-supervisor: {n}: starting 1 replica", 20) for n in "bc"}
    ready = {n: run.running(n)[1] for n in "bc"}
    assert starts["c"].index < ready["c"].index < starts["b"].index < ready["b"].index
    run.wait_for(r"^mcp-supervisor: b: waiting for c to be ready$", 1)
    pids = {n: run.running(n)[0] for n in "bc"}
    mark = run.mark()
    run.stop()
    stopping = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{pids[n]}\]: stopping$", 1, mark) for n in "bc"}
    exited = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{pids[n]}\]: exited with status 0$", 1, mark) for n in "bc"}
    assert stopping["b"].index < exited["b"].index < stopping["c"].index < exited["c"].index
    assert run.texts()[-1] == "mcp-supervisor: all servers stopped"


def test_dependency_cycle_is_a_config_error(env, faulty):
    a = env.write_server("a", faulty, depends_on=["b"])
    env.write_server("b", faulty, depends_on=["a"])
    r = env.check_config()
    assert r.returncode == 78, r.stdout + r.stderr
    # file (and, where the loader knows it, the line of depends_on), key, and the cycle itself
    assert re.search(re.escape(str(a)) + r"(:2)?: depends_on: dependency cycle: a -> b -> a$", r.stderr, re.M), r.stderr

    run = env.start()
    rc = run.proc.wait(timeout=30)
    assert rc == 78
    run.stop(expect_status=78)
    text = run.log_text()
    assert "dependency cycle: a -> b -> a" in text and str(a) in text
    assert not run.child_pids, f"children were started: {text}"
    assert not re.search(r"starting", text), text


# ------------------------------------------------------------------------------------------------------------
# 11. ordered stop with escalation: stop message, SIGTERM, SIGKILL
# ------------------------------------------------------------------------------------------------------------


def test_stop_escalates_to_sigterm_then_sigkill(env, faulty):
    env.write_server("stubborn", faulty, stop_timeout=1, host_args=["--drain-timeout", "60"],
                     config={"ignore_sigterm": True, "destroy_sleep_ms": 60000})
    run = env.start()
    pid, _ = run.running("stubborn")
    mark = run.mark()
    t0 = time.monotonic()
    run.stop(timeout=20)
    stopping = run.wait_for(rf"^mcp-supervisor: stubborn\[{pid}\]: stopping$", 1, mark)
    got_stop = run.wait_for(rf"^stubborn\[{pid}\]: mcp-plugin-host: stop requested by the supervisor: draining$", 1,
                            mark)
    term = run.wait_for(rf"^mcp-supervisor: stubborn\[{pid}\]: still running 1(\.0)? s after the stop message; "
                        r"SIGTERM$", 1, mark)
    kill = run.wait_for(rf"^mcp-supervisor: stubborn\[{pid}\]: still running after SIGTERM; SIGKILL to its process "
                        r"group$", 1, mark)
    died = run.wait_for(rf"^mcp-supervisor: stubborn\[{pid}\]: killed by signal 9 \(SIGKILL\)$", 1, mark)
    assert stopping.index < got_stop.index < term.index < kill.index < died.index
    # stop_timeout is 1 s per step.
    assert 1 - EARLY <= term.t - stopping.t <= 1 + LATE, f"SIGTERM {term.t - stopping.t:.3f} s after the stop message"
    assert 1 - EARLY <= kill.t - term.t <= 1 + LATE, f"SIGKILL {kill.t - term.t:.3f} s after SIGTERM"
    assert stopping.t - t0 < LATE  # the stop begins at once (nothing configured before it)
    assert run.texts()[-1] == "mcp-supervisor: all servers stopped"
    assert not pid_alive(pid)


def test_shutdown_after_some_servers_are_down(env, faulty):
    """Three independent servers; one takes 1.5 s to drain (destroy sleeps), so the other two are down first."""
    env.write_server("fast1", faulty)
    env.write_server("fast2", faulty)
    env.write_server("slow", faulty, config={"destroy_sleep_ms": 1500})
    run = env.start()
    pids = {n: run.running(n)[0] for n in ("fast1", "fast2", "slow")}
    mark = run.mark()
    run.stop(timeout=20)
    exits = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{p}\]: exited with status 0$", 1, mark)
             for n, p in pids.items()}
    done = run.find_all(r"^mcp-supervisor: all servers stopped$", mark)
    assert len(done) == 1, f"'all servers stopped' logged {len(done)} times"
    assert done[0].index > max(h.index for h in exits.values())
    assert exits["slow"].t - exits["fast1"].t >= 1.0


# ------------------------------------------------------------------------------------------------------------
# 12. replicas share the socket and the load
# ------------------------------------------------------------------------------------------------------------


def test_replicas_share_the_load(env, faulty):
    env.write_server("pair", faulty, replicas=2, config=EXTRA)
    run = env.start()
    port = run.port_of("pair")
    r0 = int(run.wait_for(r"^mcp-supervisor: pair#0\[(\d+)\]: running ").group(1))
    r1 = int(run.wait_for(r"^mcp-supervisor: pair#1\[(\d+)\]: running ").group(1))
    assert r0 != r1
    for p in (r0, r1):
        info = proc_info(p)
        assert info is not None and info.ppid == run.pid and info.pgid == p, info
    seen: dict[int, int] = {}
    for i in range(400):
        pid = int(call_tool(port, "pid", id=i + 1, extra_headers={"Connection": "close"}))
        seen[pid] = seen.get(pid, 0) + 1
        if len(seen) == 2 and i >= 40:
            break
    assert set(seen) == {r0, r1}, f"answers by pid: {seen} (replicas {r0}, {r1})"


# ------------------------------------------------------------------------------------------------------------
# 13. configuration errors name file, line and key
# ------------------------------------------------------------------------------------------------------------


def test_unknown_setting_names_file_line_and_key(env, faulty):
    path = env.write_raw("typo", f'# a server with a typo\nplugin = "{faulty}"\nrestrat = "always"\n')
    r = env.check_config()
    assert r.returncode == 78, r.stdout + r.stderr
    assert f"{path}:3: restrat: unknown setting" in r.stderr, r.stderr

    path = env.write_raw("typo", f'plugin = "{faulty}"\n\n[backoff]\ninitial = 1\nmultipler = 3\n')
    r = env.check_config()
    assert r.returncode == 78, r.stdout + r.stderr
    assert f"{path}:5: backoff.multipler: unknown setting" in r.stderr, r.stderr

    run = env.start()
    assert run.proc.wait(timeout=30) == 78
    run.stop(expect_status=78)
    assert f"{path}:5: backoff.multipler: unknown setting" in run.log_text()
    assert not run.child_pids

    env.write_raw("typo", f'plugin = "{faulty}"\n')
    r = env.check_config()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "typo" in r.stderr


# ------------------------------------------------------------------------------------------------------------
# 14. log forwarding: tags, a burst that all arrives, a flood that is rate limited
# ------------------------------------------------------------------------------------------------------------


def test_log_forwarding_burst_and_flood(env, faulty):
    env.write_server("noisy", faulty, config=EXTRA)
    run = env.start()
    port = run.port_of("noisy")
    pid, _ = run.running("noisy")
    # The host's serving line (stdout) is forwarded with the server's name and the child's pid.
    run.wait_for(rf"^noisy\[{pid}\]: mcp-plugin-host: serving faulty 1\.0\.0 from .* at http://127\.0\.0\.1:{port}/mcp$",
                 5)

    mark = run.mark()
    assert call_tool(port, "spam", {"count": 5000}, timeout=60) == "spammed 5000"
    run.wait_for(rf"^noisy\[{pid}\]: spam 5000 of 5000$", 20, mark)
    got = [int(h.group(1)) for h in run.find_all(rf"^noisy\[{pid}\]: spam (\d+) of 5000$", mark)]
    assert got == list(range(1, 5001)), f"{len(got)} of 5000 lines arrived (or out of order)"
    assert run.find_all(r"dropped \d+ log line", mark) == []

    flood = 200_000
    mark = run.mark()
    assert call_tool(port, "spam", {"count": flood}, timeout=90) == f"spammed {flood}"
    run.wait_for(rf"^mcp-supervisor: noisy\[{pid}\]: dropped \d+ log line\(s\): more than 2000 lines/s$", 10, mark)
    # The supervisor still works: the child answers, and nothing was restarted.
    assert call_tool(port, "ok") == "ok"
    assert call_tool(port, "pid") == str(pid)
    run.stop()
    delivered = len(run.find_all(rf"^noisy\[{pid}\]: spam \d+ of {flood}$", mark))
    dropped = sum(int(h.group(1)) for h in run.find_all(rf"^mcp-supervisor: noisy\[{pid}\]: dropped (\d+) log line",
                                                        mark))
    assert 0 < delivered < flood, delivered
    # Every line is accounted for: forwarded or counted as dropped (the final count is reported at the exit).
    assert delivered + dropped == flood, f"{delivered} forwarded + {dropped} dropped != {flood}"
    assert run.find_all(r"restarting|no heartbeat", mark) == []


# ------------------------------------------------------------------------------------------------------------
# The fixture itself: a supervisor binary that is there, and a check that can fail
# ------------------------------------------------------------------------------------------------------------


def test_check_config_accepts_a_valid_configuration(env, faulty):
    env.write_server("one", faulty)
    r = env.check_config()
    assert r.returncode == 0, r.stderr
    assert "configuration OK: 1 server(s): one" in r.stderr
    # --check-config only reads: nothing was started, no port bound, no state written.
    assert not (env.state_dir / "ports.json").exists()
    # ... and it can fail: the same folder with a broken file is rejected with 78 and names it.
    bad = env.write_raw("two", f'plugin = "{faulty}"\nreplicas = 0\n')
    r = env.check_config()
    assert r.returncode == 78, r.stdout + r.stderr
    assert re.search(re.escape(str(bad)) + r":2: replicas: ", r.stderr), r.stderr
    # --help documents the options the tests and docs/supervisor.md rely on.
    help_run = subprocess.run([str(supervisor_binary()), "--help"], capture_output=True, text=True, timeout=30)
    assert help_run.returncode == 0, help_run.stderr
    for option in ("--config", "--host", "--check-config"):
        assert option in help_run.stdout + help_run.stderr, f"--help does not mention {option}"


# ------------------------------------------------------------------------------------------------------------
# 15. a hung child (its event loop stops answering heartbeats) is killed and restarted
# ------------------------------------------------------------------------------------------------------------


def test_hung_child_is_killed_and_restarted(env, faulty):
    # SIGSTOP freezes the whole host: the control channel's pings go unanswered, exactly like a blocked loop.
    env.write_server("frozen", faulty, config=EXTRA, backoff=FAST_BACKOFF, heartbeat_interval=0.2,
                     heartbeat_timeout=1.0)
    env.write_server("calm", faulty, config=EXTRA, heartbeat_interval=0.2, heartbeat_timeout=1.0)
    run = env.start()
    port = run.port_of("frozen")
    pid, _ = run.running("frozen")
    calm_pid, _ = run.running("calm")
    mark = run.mark()
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    hit = run.wait_for(rf"^mcp-supervisor: frozen\[{pid}\]: no heartbeat answer for \d+ s; killing it as hung$",
                       10, mark)
    # Killed once the timeout passed, not before, and not much later: heartbeat_timeout 1 s after the last pong,
    # which came at most one heartbeat_interval (0.2 s) before SIGSTOP, then a tick of 0.2 s, plus LATE.
    waited = hit.t - stopped_at
    assert 1 - 0.2 - EARLY <= waited <= 1 + 0.2 + LATE, f"hung child killed after {waited:.2f} s, heartbeat_timeout is 1 s"
    run.wait_for(rf"^mcp-supervisor: frozen\[{pid}\]: stopped answering heartbeats$", 10, mark)
    new_pid, _ = run.running("frozen", 20, mark)
    assert new_pid != pid and not pid_alive(pid)
    assert call_tool(port, "pid") == str(new_pid)
    # The healthy neighbour answered every ping and kept its process.
    assert run.find_all(r"calm\[\d+\]: no heartbeat answer", mark) == []
    assert call_tool(run.port_of("calm"), "pid") == str(calm_pid)


def test_shutdown_after_a_reload_changed_a_server(env, faulty):
    # A server restarted by a reload must still be stopped by the shutdown that follows.
    env.write_server("alpha", faulty, config=EXTRA)
    env.write_server("beta", faulty, config=EXTRA)
    run = env.start()
    alpha_pid, _ = run.running("alpha")
    mark = run.mark()
    env.write_server("alpha", faulty, config={"extra_tools": True, "exit_status": 0})
    run.signal(signal.SIGHUP)
    run.wait_for(r"^mcp-supervisor: reload: 0 added, 0 removed, 1 changed, 1 unchanged$", 10, mark)
    new_pid, _ = run.running("alpha", 20, mark)
    assert new_pid != alpha_pid
    mark = run.mark()
    assert run.stop() == 0
    run.wait_for(r"^mcp-supervisor: all servers stopped$", 1, mark)
