"""How the host behaves when its plugin misbehaves, under load and on SIGTERM (docs/plugin-host.md).

Crashes, hangs, deadlines and the concurrency cap use the faulty plugin (Tests/fixtures/plugins/faulty.c:
tools ok, crash, hang, slow {ms}, abort; CONCURRENT with max_concurrency 2). The SIGTERM drain tests use
the reference plugin's slow_count, because it writes a log line when it starts counting: the tests wait for
that line (with a deadline) to know the call is running in the plugin before they send the signal.

Every test ends with the host exited and nothing of it left (assert_reaped: no process of its session, no
zombie); hosts still running at the end are checked against their descriptor and thread baseline first.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from typing import Any

import pytest

from conftest import (
    LegacySession,
    StderrWatcher,
    assert_reaped,
    modern_body,
    modern_headers,
    modern_post,
    open_http,
    start_host,
    wait_exit,
)
from schema_check import MODERN, check_response

pytestmark = pytest.mark.timeout(90)

CONNECTION_LOST = (ConnectionError, http.client.HTTPException, TimeoutError)


def call_tool(port: int, name: str, arguments: dict | None = None, *, id: Any = 1, timeout: float = 30.0) -> dict:
    """A 2026-07-28 tools/call over raw HTTP; returns the validated result object."""
    reply = modern_post(port, "tools/call", {"name": name, "arguments": arguments or {}}, id=id, timeout=timeout)
    assert reply.status == 200, f"tools/call {name}: HTTP {reply.status}: {reply.body[:300]!r}"
    msg = check_response(reply.final(), MODERN, "tools/call")
    assert "result" in msg, f"tools/call {name}: {msg}"
    return msg["result"]


def text_of(result: dict) -> str:
    return "".join(block.get("text", "") for block in result["content"])


def failure_lines(watcher: StderrWatcher, plugin) -> list[str]:
    """The documented failure lines: `mcp-plugin-host: PLUGIN_PATH: ...` (log lines do not name the path)."""
    prefix = f"mcp-plugin-host: {plugin}:"
    return [line for line in watcher.lines() if line.startswith(prefix)]


class Concurrent:
    """Runs calls on threads, released together by a barrier; records each call's duration and outcome."""

    def __init__(self, port: int, calls: list[tuple[str, dict]]):
        self.port = port
        self.calls = calls
        self.results: list[Any] = [None] * len(calls)
        self.durations: list[float] = [0.0] * len(calls)
        self._barrier = threading.Barrier(len(calls))
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(calls))]

    def _run(self, i: int) -> None:
        name, args = self.calls[i]
        self._barrier.wait(timeout=10)
        t0 = time.monotonic()
        try:
            self.results[i] = call_tool(self.port, name, args, id=i + 1)
        except BaseException as e:  # reported by join()
            self.results[i] = e
        self.durations[i] = time.monotonic() - t0

    def run(self, timeout: float = 30.0) -> "Concurrent":
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            assert not t.is_alive(), "a concurrent call did not return within the deadline"
        for r in self.results:
            if isinstance(r, BaseException):
                raise r
        return self


# ----------------------------------------------------------------------------------------------------------
# Crashes: status 70 and one line naming the plugin, the signal and what the plugin was doing
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["modern", "legacy"])
@pytest.mark.parametrize(("tool", "signame"), [("crash", "SIGSEGV"), ("abort", "SIGABRT")])
def test_plugin_crash_exits_70(host_factory, faulty_plugin, tool, signame, era):
    host = host_factory(faulty_plugin)
    watcher = StderrWatcher(host)
    assert text_of(call_tool(host.port, "ok")) == "ok"
    if era == "modern":
        with pytest.raises(CONNECTION_LOST):
            modern_post(host.port, "tools/call", {"name": tool, "arguments": {}}, timeout=20)
    else:
        s = LegacySession(host.port, "2025-11-25")
        s.initialize()
        with pytest.raises(CONNECTION_LOST):
            s.request("tools/call", {"name": tool, "arguments": {}}, timeout=20)
    assert wait_exit(host, 15) == 70
    watcher.wait_eof(5)
    lines = failure_lines(watcher, faulty_plugin)
    assert len(lines) == 1, f"expected exactly one failure line, stderr:\n{watcher.text()}"
    assert signame in lines[0] and f"tools/call {tool}" in lines[0], lines[0]
    assert_reaped(host)


# ----------------------------------------------------------------------------------------------------------
# Deadlines and hung calls
# ----------------------------------------------------------------------------------------------------------


def test_hung_calls_answer_at_deadline_then_exit_71(host_factory, faulty_plugin):
    host = host_factory(faulty_plugin, "--call-timeout", "1", "--hang-grace", "1")
    watcher = StderrWatcher(host)

    t0 = time.monotonic()
    first = call_tool(host.port, "hang")
    elapsed = time.monotonic() - t0
    assert first.get("isError") is True
    assert "deadline" in text_of(first)
    assert 0.9 <= elapsed < 4.0, f"the deadline result came after {elapsed:.2f} s (deadline 1 s)"

    # hang-grace later, the call counts as stuck: one of the two slots is lost ...
    watcher.wait_for(r"still running past its deadline; 1 of 2 slots stuck", timeout=10)
    assert host.proc.poll() is None, "the host exited with a free slot left"
    # ... and the host keeps serving on the other one.
    assert text_of(call_tool(host.port, "ok")) == "ok"
    assert text_of(call_tool(host.port, "slow", {"ms": 50})) == "slept"

    second = call_tool(host.port, "hang", id=2)
    assert second.get("isError") is True and "deadline" in text_of(second)
    # Both slots stuck: the host gives up so the supervisor restarts it.
    assert wait_exit(host, 15) == 71
    watcher.wait_eof(5)
    lines = failure_lines(watcher, faulty_plugin)
    assert len(lines) == 1, f"expected exactly one failure line, stderr:\n{watcher.text()}"
    assert "hung" in lines[0], lines[0]
    assert_reaped(host)


def test_slow_call_past_deadline_is_cancelled_in_plugin(host_factory, faulty_plugin):
    """slow polls is_cancelled: after the deadline it stops and frees its slot (no hang, no exit 71)."""
    host = host_factory(faulty_plugin, "--call-timeout", "1", "--hang-grace", "1")
    watcher = StderrWatcher(host)
    t0 = time.monotonic()
    late = Concurrent(host.port, [("slow", {"ms": 30000}), ("slow", {"ms": 30000})]).run()
    assert time.monotonic() - t0 < 6.0
    for result in late.results:
        assert result.get("isError") is True and "deadline" in text_of(result), result
    # Both slots are free again only if the plugin saw the cancellation: two 300 ms calls in parallel
    # succeed within their own 1 s deadline (otherwise they would queue behind 30 s sleeps and time out).
    quick = Concurrent(host.port, [("slow", {"ms": 300}), ("slow", {"ms": 300})]).run()
    assert [text_of(r) for r in quick.results] == ["slept", "slept"]
    assert all(not r.get("isError") for r in quick.results)
    assert text_of(call_tool(host.port, "ok")) == "ok"
    assert host.proc.poll() is None
    assert host.stop() == 0
    watcher.wait_eof(5)
    assert "slots stuck" not in watcher.text(), watcher.text()
    assert failure_lines(watcher, faulty_plugin) == []
    assert_reaped(host)


# ----------------------------------------------------------------------------------------------------------
# Concurrency cap: the plugin declares 2; --max-concurrency can lower it
# ----------------------------------------------------------------------------------------------------------


def test_concurrency_cap_of_plugin_is_respected(host_factory, faulty_plugin):
    """Two 1 s calls run side by side; a third waits for a free slot.

    Bounds are one-sided where load could only make them later: a serial host would need >= 2 s for two
    calls, a host without the cap would finish all three at ~1 s.
    """
    host = host_factory(faulty_plugin)
    two = Concurrent(host.port, [("slow", {"ms": 1000})] * 2).run()
    assert [text_of(r) for r in two.results] == ["slept"] * 2
    assert max(two.durations) < 1.9, f"two calls did not run in parallel: {two.durations}"

    three = Concurrent(host.port, [("slow", {"ms": 1000})] * 3).run()
    assert [text_of(r) for r in three.results] == ["slept"] * 3
    d = sorted(three.durations)
    assert d[2] >= 1.95, f"three calls finished too early for two slots: {three.durations}"
    assert d[1] < d[2] - 0.5, f"the first two should finish together, the third a slot later: {three.durations}"
    assert host.stop() == 0
    assert_reaped(host)


def test_operator_cap_lowers_plugin_concurrency(host_factory, faulty_plugin):
    host = host_factory(faulty_plugin, "--max-concurrency", "1")
    run = Concurrent(host.port, [("slow", {"ms": 500})] * 3).run()
    d = sorted(run.durations)
    assert d[0] >= 0.45 and d[1] >= 0.95 and d[2] >= 1.45, f"calls overlapped with one slot: {run.durations}"
    assert host.stop() == 0
    assert_reaped(host)


# ----------------------------------------------------------------------------------------------------------
# SIGTERM drain
# ----------------------------------------------------------------------------------------------------------


class BackgroundCall:
    def __init__(self, port: int, name: str, args: dict):
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(port, name, args), daemon=True)
        self._thread.start()

    def _run(self, port, name, args):
        try:
            self.result = call_tool(port, name, args, timeout=60)
        except BaseException as e:
            self.error = e
        self.finished_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the in-flight call did not return"


# A new request during the drain gets a defined answer at once. The listener is closed right after the
# "draining" line, so a new connection is refused; one that raced into the backlog is reset by the kernel when
# the listener closes; one the host had accepted just before is served during the drain's grace period
# (HostServer.drainGrace, 1 s) with `Connection: close`, or, after the grace, answered 503 with Retry-After.
# None of these waits on anything configured, so 5 s (a loaded machine's scheduling delay, with room) bounds
# all of them; a request left without an answer until the client's own timeout is a hang and fails.
NEW_REQUEST_BOUND = 5.0


def _new_request_during_drain(port: int) -> str:
    t0 = time.monotonic()
    try:
        reply = modern_post(port, "tools/call", {"name": "echo", "arguments": {"text": "late"}}, id=77,
                            timeout=NEW_REQUEST_BOUND * 3)
        outcome = "served" if reply.status == 200 else "503"
    except ConnectionRefusedError:
        outcome = "refused"
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
        outcome = "reset"
    except TimeoutError:
        raise AssertionError(f"a request sent during the drain got no answer within {NEW_REQUEST_BOUND * 3} s") from None
    took = time.monotonic() - t0
    assert took < NEW_REQUEST_BOUND, f"a request sent during the drain took {took:.2f} s to be {outcome}"
    if outcome == "served":
        assert (reply.header("Connection") or "").lower() == "close", reply.headers
        check_response(reply.final(), MODERN, "tools/call")
    if outcome == "503":
        assert reply.status == 503, f"a request after SIGTERM got HTTP {reply.status}: {reply.body[:200]!r}"
        assert reply.header("Retry-After") == "1", reply.headers
        check_response(reply.json(), MODERN)
    return outcome


def test_sigterm_drains_in_flight_call(host_factory, reference_plugin):
    host = host_factory(reference_plugin, "--drain-timeout", "10")
    watcher = StderrWatcher(host)
    call = BackgroundCall(host.port, "slow_count", {"seconds": 2})
    watcher.wait_for(r"tools/call slow_count: counting 20 steps", timeout=10)  # running in the plugin now
    t_signal = time.monotonic()
    host.proc.send_signal(signal.SIGTERM)
    watcher.wait_for(r"draining: no new requests, 1 call\(s\) in flight", timeout=5)
    outcome = _new_request_during_drain(host.port)
    call.join(15)
    assert call.error is None, f"the in-flight call failed during the drain: {call.error!r}"
    assert call.result.get("isError") is not True and text_of(call.result) == "counted to 20"
    status = wait_exit(host, 15)
    exited = time.monotonic()
    assert status == 0, f"exit status {status} after a clean drain"
    assert exited - t_signal < 10 + 3, "the drain took longer than --drain-timeout"
    assert call.finished_at is not None and call.finished_at <= exited
    watcher.wait_eof(5)
    assert failure_lines(watcher, reference_plugin) == []
    assert "drain deadline passed" not in watcher.text()
    assert outcome in ("refused", "reset", "served", "503"), outcome
    assert_reaped(host)


def test_sigterm_with_call_longer_than_drain_timeout(host_factory, reference_plugin):
    host = host_factory(reference_plugin, "--drain-timeout", "1")
    watcher = StderrWatcher(host)
    call = BackgroundCall(host.port, "slow_count", {"seconds": 20})
    watcher.wait_for(r"tools/call slow_count: counting 200 steps", timeout=10)
    t_signal = time.monotonic()
    host.proc.send_signal(signal.SIGTERM)
    status = wait_exit(host, 1 + 9)
    took = time.monotonic() - t_signal
    assert status == 0
    assert 0.9 <= took < 1 + 4, f"exited {took:.2f} s after SIGTERM with --drain-timeout 1"
    call.join(10)
    # The call could not finish: the client sees the connection end, not a successful result.
    assert call.error is not None or call.result.get("isError") is True, call.result
    watcher.wait_eof(5)
    assert "drain deadline passed with 1 call(s) still running" in watcher.text(), watcher.text()
    assert_reaped(host)


def test_sigterm_ends_legacy_get_stream_and_idle_connections(host_factory, reference_plugin):
    """Open GET streams and idle keep-alive connections must not hold the drain up."""
    host = host_factory(reference_plugin, "--drain-timeout", "10")
    watcher = StderrWatcher(host)
    s = LegacySession(host.port, "2025-11-25")
    s.initialize()
    conn, resp = open_http(host.port, "GET", headers=s.headers(accept="text/event-stream"), content_type=None)
    idle = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
    try:
        assert resp.status == 200 and resp.read1(64).startswith((b":", b"id: "))
        idle.request("POST", "/mcp", body=json.dumps(modern_body("tools/list", {})),
                     headers={**modern_headers("tools/list", {}), "Content-Type": "application/json"})
        first = idle.getresponse()
        check_response(json.loads(first.read()), MODERN, "tools/list")
        t0 = time.monotonic()
        host.proc.send_signal(signal.SIGTERM)
        watcher.wait_for(r"draining: no new requests, 0 call\(s\) in flight", timeout=5)
        assert wait_exit(host, 10) == 0
        assert time.monotonic() - t0 < 5, "an open GET stream or idle connection delayed the drain"
        assert resp.read() == b"", "the GET stream carried data after SIGTERM"  # ended, not left hanging
    finally:
        conn.close()
        idle.close()
    assert_reaped(host)


def test_sigterm_idle_host_exits_0_quickly(host_factory, faulty_plugin):
    host = host_factory(faulty_plugin)
    assert text_of(call_tool(host.port, "ok")) == "ok"
    t0 = time.monotonic()
    host.proc.send_signal(signal.SIGTERM)
    assert wait_exit(host, 10) == 0
    assert time.monotonic() - t0 < 5
    assert_reaped(host)


def test_sigterm_right_after_serving_line_exits_0(faulty_plugin):
    """The serving line means "ready": a SIGTERM sent as soon as it is printed must drain and exit 0.

    (A supervisor may stop a replica the moment it reports ready.) Repeated, because the window between
    the serving line and the host's signal handling is short.
    """
    for attempt in range(15):
        host = start_host(faulty_plugin)
        host.proc.send_signal(signal.SIGTERM)
        try:
            status = host.proc.wait(timeout=5)
        except Exception:
            host.proc.kill()
            host.proc.wait()
            raise AssertionError(f"attempt {attempt}: the host ignored a SIGTERM sent right after its serving line "
                                 "and had to be killed") from None
        finally:
            if host.proc.stderr:
                host.proc.stderr.close()
            if host.proc.stdout:
                host.proc.stdout.close()
        assert status == 0, f"attempt {attempt}: exit status {status} (negative: killed by that signal) instead of 0"
        assert_reaped(host)
