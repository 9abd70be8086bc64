"""The host's traffic counters (docs/plugin-host.md "Metrics"), read the way the supervisor reads them: the real
host with a control socketpair on fd 4, the `metrics` op sent on it, the answer's counts compared with the calls
made, by the official Python SDK (both eras) and over raw HTTP (a malformed body, an unknown method, an undeclared
tool, a tool error, a cancelled call, a deadline expiry).

Exact counts: every request counted is one this test made (nothing else talks to the host), and the expected
numbers come from the traffic itself: the calls the test made and, for the SDK, every POST its recording
transport saw with the answer it got. Every wait is an event or a poll with a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import (
    ACCEPT_BOTH,
    HostProcess,
    LegacySession,
    StderrWatcher,
    _kill_session,
    _thread_cap,
    assert_back_to_baseline,
    assert_reaped,
    await_serving,
    control_channel_version,
    host_binary,
    http_call,
    modern_body,
    modern_headers,
    modern_meta,
    modern_post,
    open_http,
    parse_sse,
    plugin_path,
)
from sdk_recorder import Recorder, run

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

MARGIN = 10.0  # seconds: a loaded two-core machine's delay on any one event (conftest's docstring), with room

# Sources/Contracts/TrafficMetrics.swift: the methods with a label of their own, the error types the host counts,
# the histogram's bucket bounds.
METHODS = ["initialize", "ping", "server/discover", "tools/list", "tools/call", "resources/list",
           "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
           "prompts/list", "prompts/get", "completion/complete", "logging/setLevel", "subscriptions/listen",
           "notifications"]
HOST_ERRORS = {"protocol_error", "tool_error", "deadline", "cancelled"}
BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30]
REFERENCE_TOOLS = {"echo", "add", "slow_count", "fail"}


def method_label(method: str) -> str:
    if method.startswith("notifications/"):
        return "notifications"
    return method if method in METHODS else "other"


# ------------------------------------------------------------------------------------------------------------
# A host with a control channel, and its metrics
# ------------------------------------------------------------------------------------------------------------


class Snapshot:
    """One `metrics` answer, with its series keyed as the supervisor renders them."""

    def __init__(self, msg: dict):
        self.raw = msg
        self.requests: dict[tuple[str, str], int] = {}
        for m, o, n in msg["requests"]:
            assert (m, o) not in self.requests, f"requests lists ({m}, {o}) twice: {msg['requests']}"
            assert o in ("ok", "error") and (m in METHODS or m == "other"), f"unbounded label in {msg['requests']}"
            self.requests[(m, o)] = n
        self.ops: dict[tuple[str, str, str], dict] = {}
        for h in msg["ops"]:
            key = (h["m"], h["t"], h["e"])
            assert key not in self.ops, f"ops lists {key} twice"
            assert len(h["b"]) == len(BUCKETS) + 1, f"{key}: {len(h['b'])} buckets"
            assert sum(h["b"]) == h["n"], f"{key}: buckets {h['b']} do not add up to the count {h['n']}"
            assert h["t"] == "" or h["m"] == "tools/call", f"{key}: a tool label outside tools/call"
            self.ops[key] = h
        self.errors: dict[str, int] = msg["errors"]
        for name in ("inflight", "cancelled", "deadline", "bytes_in", "bytes_out", "slots_busy", "slots",
                     "sessions"):
            assert isinstance(msg.get(name), int), f"metrics answer without an integer {name}: {msg}"
        self.inflight = msg["inflight"]
        self.cancellations = msg["cancelled"]
        self.deadline_expiries = msg["deadline"]
        self.bytes_in = msg["bytes_in"]
        self.bytes_out = msg["bytes_out"]
        self.slots_busy = msg["slots_busy"]
        self.slots = msg["slots"]
        self.sessions = msg["sessions"]

    def count(self, method: str, tool: str = "", error: str = "") -> int:
        h = self.ops.get((method, tool, error))
        return h["n"] if h else 0

    def counters(self) -> dict[Any, float]:
        """Every counter in the answer (not the gauges), for the never-backwards check."""
        out: dict[Any, float] = {("requests",) + k: v for k, v in self.requests.items()}
        for k, h in self.ops.items():
            out[("count",) + k] = h["n"]
            out[("sum",) + k] = h["s"]
            for i, b in enumerate(h["b"]):
                out[("bucket", i) + k] = b
        out.update({("errors", k): v for k, v in self.errors.items()})
        for name in ("cancelled", "deadline", "bytes_in", "bytes_out"):
            out[(name,)] = self.raw[name]
        return out


def request_delta(after: Snapshot, before: Snapshot) -> dict[tuple[str, str], int]:
    keys = set(after.requests) | set(before.requests)
    return {k: d for k in keys if (d := after.requests.get(k, 0) - before.requests.get(k, 0))}


def op_delta(after: Snapshot, before: Snapshot) -> dict[tuple[str, str, str], int]:
    keys = set(after.ops) | set(before.ops)
    return {k: d for k in keys if (d := after.count(*k) - before.count(*k))}


class MeteredHost:
    """A host started with the supervisor's control channel: a socketpair whose far end is the host's fd 4
    (MCP_CONTROL_FD=4), as the supervisor hands it. `metrics()` asks for a snapshot on it."""

    def __init__(self, plugin: Path, *extra: str, timeout: float = 30.0):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        n = theirs.fileno()
        # bash (dash takes one-digit fds only) moves the socket to fd 4 and closes the original, then becomes the host.
        move = "" if n == 4 else f"exec 4<&{n} {n}<&-; "
        args = ["/bin/bash", "-c", move + 'exec "$0" "$@"', str(host_binary()), "--plugin", str(plugin),
                "--listen", "127.0.0.1:0", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
        env["MCP_CONTROL_FD"] = "4"
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, pass_fds=(n,), env=env)
        theirs.close()
        self.control = ours
        self.buf = b""
        self.seq = 0
        self.lock = threading.Lock()
        m, line = await_serving(proc, time.monotonic() + timeout)
        if not m:
            proc.kill()
            _, err = proc.communicate()
            ours.close()
            raise AssertionError(f"host did not start serving: stdout={line!r} stderr={err!r}")
        self.host = HostProcess(proc, m.group(1), int(m.group(2)), line, _thread_cap(plugin, extra))
        self.stderr = StderrWatcher(self.host)
        ready = self._read(timeout)
        assert ready.get("event") == "ready" and ready.get("protocol") == control_channel_version(), f"first control message: {ready}"
        assert ready["port"] == self.port and ready["pid"] == proc.pid, ready

    @property
    def port(self) -> int:
        return self.host.port

    @property
    def url(self) -> str:
        return self.host.url

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no control message within {timeout} s; host stderr:\n{self.stderr_text()}"
            self.control.settimeout(left)
            try:
                chunk = self.control.recv(65536)
            except socket.timeout:
                continue
            assert chunk, f"the host closed its control channel; stderr:\n{self.stderr_text()}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def metrics(self, timeout: float = MARGIN) -> Snapshot:
        with self.lock:
            self.seq += 1
            seq = self.seq
            t0 = time.monotonic()
            self.control.sendall(json.dumps({"op": "metrics", "seq": seq}).encode() + b"\n")
            while True:
                msg = self._read(max(0.1, timeout - (time.monotonic() - t0)))
                if msg.get("event") == "metrics" and msg.get("seq") == seq:
                    return Snapshot(msg)

    def wait_metrics(self, predicate, what: str, timeout: float = MARGIN) -> Snapshot:
        """Polls `metrics` until predicate(snapshot) holds (the host's counting has no event of its own for a
        test to wait on); fails at the deadline with the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.metrics()
            if predicate(s):
                return s
            assert time.monotonic() < deadline, f"{what}: not within {timeout} s; last answer {s.raw}"
            time.sleep(0.02)

    def stderr_text(self) -> str:
        return self.stderr.text() if hasattr(self, "stderr") else ""

    def close(self) -> list[str]:
        problems = []
        try:
            if self.host.proc.poll() is None:
                assert_back_to_baseline(self.host)
                status = self.host.stop()
                assert status == 0, f"host exited with {status} on SIGTERM; stderr:\n{self.stderr_text()}"
            assert_reaped(self.host)
        except AssertionError as e:
            problems.append(str(e))
        finally:
            if self.host.proc.poll() is None:
                self.host.proc.kill()
                self.host.proc.wait()
            _kill_session(self.host.proc.pid)
            self.control.close()
        return problems


@pytest.fixture
def metered():
    """Starts MeteredHosts; after the test each must be back to its baseline, stop with 0 and leave nothing."""
    started: list[MeteredHost] = []

    def factory(plugin: Path, *extra: str) -> MeteredHost:
        h = MeteredHost(plugin, *extra)
        started.append(h)
        return h

    yield factory
    problems = [p for h in started for p in h.close()]
    if problems:
        pytest.fail("host teardown: " + "\n".join(problems), pytrace=False)


def tools_call(port: int, name: str, arguments: dict | None = None, *, id: Any = 1, **kw):
    return modern_post(port, "tools/call", {"name": name, "arguments": arguments or {}}, id=id, **kw)


# ------------------------------------------------------------------------------------------------------------
# The SDK, both eras
# ------------------------------------------------------------------------------------------------------------


def expected_from_traffic(exchanges) -> dict[tuple[str, str], int]:
    """(method label, outcome) → count, from what the SDK posted and what each POST was answered."""
    out: dict[tuple[str, str], int] = {}
    for ex in exchanges:
        if ex.method != "POST":
            continue
        req = ex.request_json()
        assert isinstance(req, dict) and ex.status != 0, f"an unanswered or non-object POST: {ex.request_body!r}"
        if "method" not in req:
            continue  # a response to a server request: not counted
        outcome = "ok"
        if "id" in req:
            assert ex.complete, f"{req['method']}: the SDK did not read its answer"
            if ex.content_type == "text/event-stream":
                final = [e.json() for e in parse_sse(ex.body)][-1]
            else:
                final = json.loads(ex.body)
            if "error" in final or final.get("result", {}).get("isError") is True:
                outcome = "error"
        elif ex.status != 202:
            outcome = "error"
        key = (method_label(req["method"]), outcome)
        out[key] = out.get(key, 0) + 1
    return out


async def sdk_conversation(url: str, mode: str, echoes: int) -> list:
    recorder = Recorder()
    http = httpx2.AsyncClient(transport=recorder, timeout=httpx2.Timeout(30.0, read=60.0))
    with anyio.fail_after(60):
        async with http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as c:
                for i in range(echoes):
                    r = await c.call_tool("echo", {"text": f"call {i}"})
                    assert not r.is_error and r.content[0].text == f"call {i}"
                r = await c.call_tool("fail", {"message": "on purpose"})
                assert r.is_error
                r = await c.call_tool("add", {"a": 2, "b": 3})
                assert not r.is_error
                await c.list_tools()
                await c.list_prompts()
                await c.read_resource("reference://notes/1")
    return recorder.exchanges


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_sdk_conversation_is_counted_exactly(metered, mode):
    host = metered(plugin_path("reference"))
    before = host.metrics()
    assert before.requests == {} and before.ops == {}, f"a new host has counts: {before.raw}"
    assert before.errors == {e: 0 for e in HOST_ERRORS}
    echoes = 7
    exchanges = run(sdk_conversation(host.url, mode, echoes))
    after = host.metrics()
    expected = expected_from_traffic(exchanges)
    assert request_delta(after, before) == expected
    # The calls this test made, by tool and error type, whatever else the SDK sent.
    assert after.count("tools/call", "echo") == echoes
    assert after.count("tools/call", "fail", "tool_error") == 1
    assert after.count("tools/call", "add") == 1
    assert after.count("resources/read") == 1
    assert after.errors["tool_error"] == 1 and after.errors["protocol_error"] == 0
    if mode == "legacy":
        assert after.count("initialize") == 1
        assert after.count("notifications") >= 1  # notifications/initialized
        assert after.sessions == 0, "the SDK's DELETE ended its session"
    else:
        assert after.count("initialize") == 0 and after.sessions == 0
    assert after.inflight == 0
    # Durations: each call took less than the test did, and every histogram's sum is within its buckets' bounds.
    for key, h in after.ops.items():
        assert 0 <= h["s"] < 60, f"{key}: sum {h['s']}"
        top = max(i for i, b in enumerate(h["b"]) if b)
        assert top < len(BUCKETS), f"{key}: a request over 30 s"
        assert h["s"] <= h["n"] * BUCKETS[top] + 1e-9, f"{key}: sum {h['s']} above {h['n']} x {BUCKETS[top]} s"
    assert after.bytes_in > before.bytes_in and after.bytes_out > before.bytes_out


# ------------------------------------------------------------------------------------------------------------
# Raw HTTP: errors by type, bytes
# ------------------------------------------------------------------------------------------------------------


def test_errors_by_type_and_bytes_over_raw_http(metered):
    host = metered(plugin_path("reference"))
    before = host.metrics()
    sent = received = 0

    def post(body, headers: dict[str, str]):
        nonlocal sent, received
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = http_call(host.port, "POST", body=data, headers=headers)
        sent += len(data)
        received += len(r.body)
        return r

    def call(name, arguments=None, *, id=1, accept=ACCEPT_BOTH):
        params = {"name": name, "arguments": arguments or {}}
        return post(modern_body("tools/call", params, id=id), modern_headers("tools/call", params, accept=accept))

    r = post(b'{"jsonrpc":"2.0","id":1,"method":', {"Accept": ACCEPT_BOTH})  # malformed
    assert r.status == 400 and r.json()["error"]["code"] == -32700
    r = post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], {"Accept": ACCEPT_BOTH})  # a batch
    assert r.status == 400
    unknown = modern_body("frobnicate", {}, id=2)
    r = post(unknown, modern_headers("frobnicate", {}))
    assert r.status == 404 and r.json()["error"]["code"] == -32601
    r = call("no_such_tool", id=3)  # not declared by the plugin: its label is "other"
    assert r.json()["error"]["code"] == -32602
    r = call("fail", {"message": "on purpose"}, id=4)
    assert r.json()["result"]["isError"] is True
    r = call("echo", {"text": "json"}, id=5, accept="application/json")
    assert r.content_type == "application/json"
    r = call("echo", {"text": "sse"}, id=6, accept="text/event-stream")
    assert r.content_type == "text/event-stream" and r.final()["result"]["content"][0]["text"] == "sse"
    r = call("slow_count", {"seconds": 0}, id=7)  # runs on a handler thread
    assert r.final()["result"]["content"][0]["text"] == "counted to 0"
    r = post({"jsonrpc": "2.0", "id": 8, "result": {}}, {"Accept": ACCEPT_BOTH})  # a response: not a request
    assert r.status == 202

    after = host.metrics()
    assert op_delta(after, before) == {
        ("other", "", "protocol_error"): 3,
        ("tools/call", "other", "protocol_error"): 1,
        ("tools/call", "fail", "tool_error"): 1,
        ("tools/call", "echo", ""): 2,
        ("tools/call", "slow_count", ""): 1,
    }
    assert request_delta(after, before) == {("other", "error"): 3, ("tools/call", "error"): 2,
                                            ("tools/call", "ok"): 3}
    assert {e: after.errors[e] - before.errors[e] for e in HOST_ERRORS} == {
        "protocol_error": 4, "tool_error": 1, "deadline": 0, "cancelled": 0}
    # Bytes: every request body this test sent, every response body it read (SSE framing included).
    assert after.bytes_in - before.bytes_in == sent
    assert after.bytes_out - before.bytes_out == received
    assert after.inflight == 0


# ------------------------------------------------------------------------------------------------------------
# Cancellations, deadlines, in flight, slots
# ------------------------------------------------------------------------------------------------------------


def start_slow_call(port: int, seconds: int, id: int = 1):
    """A slow_count call on its own connection, its response body unread: with a progress token the host starts
    an SSE stream at the first progress event (100 ms in), so the headers arrive while the call runs."""
    params = {"name": "slow_count", "arguments": {"seconds": seconds}}
    return open_http(port, "POST", body=modern_body("tools/call", params, id=id, meta=modern_meta(progress_token=1)),
                     headers=modern_headers("tools/call", params), timeout=60)


def test_cancellations_in_flight_and_slots(metered):
    host = metered(plugin_path("reference"), "--max-concurrency", "3")
    assert host.metrics().slots == 3
    # 2026-07-28: the client closing its connection cancels the call.
    conn, resp = start_slow_call(host.port, 30)
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    s = host.wait_metrics(lambda s: s.slots_busy == 1, "the slow call holds a handler slot")
    assert s.inflight == 1 and s.cancellations == 0
    conn.close()
    s = host.wait_metrics(lambda s: s.cancellations == 1, "the closed connection counted as a cancellation")
    assert s.count("tools/call", "slow_count", "cancelled") == 1 and s.errors["cancelled"] == 1
    host.wait_metrics(lambda s: s.slots_busy == 0 and s.inflight == 0, "the cancelled call's slot freed")

    # 2025 era: notifications/cancelled cancels the session's call; its SSE answer ends (200, no response in it).
    session = LegacySession(host.port, "2025-11-25")
    session.initialize()
    assert host.metrics().sessions == 1
    answer: list = []
    t = threading.Thread(target=lambda: answer.append(
        session.request("tools/call", {"name": "slow_count", "arguments": {"seconds": 30}}, id=77, timeout=60)))
    t.start()
    try:
        host.wait_metrics(lambda s: s.slots_busy == 1, "the session's slow call is running")
        ack = session.notify("notifications/cancelled", {"requestId": 77, "reason": "test"})
        assert ack.status == 202
    finally:
        t.join(MARGIN + 30)
    assert not t.is_alive() and answer and answer[0].status == 200
    s = host.metrics()
    assert s.cancellations == 2 and s.count("tools/call", "slow_count", "cancelled") == 2
    assert s.count("initialize") == 1 and s.count("notifications") == 2  # initialized, cancelled
    assert session.delete().status == 204
    s = host.metrics()
    assert s.sessions == 0 and s.inflight == 0 and s.slots_busy == 0
    assert s.deadline_expiries == 0 and s.errors["deadline"] == 0


def test_a_deadline_expiry_is_counted_in_a_bucket_past_the_deadline(metered):
    host = metered(plugin_path("reference"), "--call-timeout", "0.3")
    r = tools_call(host.port, "slow_count", {"seconds": 5}, accept="application/json")
    result = r.final()["result"]
    assert result["isError"] is True and "deadline" in result["content"][0]["text"]
    s = host.metrics()
    assert s.deadline_expiries == 1 and s.errors["deadline"] == 1 and s.cancellations == 0
    assert s.requests == {("tools/call", "error"): 1}
    h = s.ops[("tools/call", "slow_count", "deadline")]
    assert h["n"] == 1 and h["s"] >= 0.3
    first = next(i for i, b in enumerate(BUCKETS) if b >= 0.3)  # the 0.5 s bucket: le=0.25 is below 0.3 s
    assert h["b"][:first] == [0] * first, f"a 0.3 s deadline in a bucket below it: {h['b']}"
    # The plugin's handler sees the cancellation within a step (100 ms) and frees its slot.
    host.wait_metrics(lambda s: s.slots_busy == 0 and s.inflight == 0, "the expired call's slot freed")


# ------------------------------------------------------------------------------------------------------------
# Many threads; never backwards; an undeclared tool
# ------------------------------------------------------------------------------------------------------------


def test_concurrent_calls_give_exact_totals_and_counters_never_go_backwards(metered):
    host = metered(plugin_path("reference"))
    threads, each = 8, 40
    errors: list[str] = []

    def worker(t: int):
        try:
            for i in range(each):
                if i % 4 == 3:
                    r = tools_call(host.port, "fail", {"message": f"{t}/{i}"}, id=i)
                    assert r.final()["result"]["isError"] is True
                else:
                    r = tools_call(host.port, "echo", {"text": f"{t}/{i}"}, id=i)
                    assert r.final()["result"]["content"][0]["text"] == f"{t}/{i}"
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(f"thread {t}: {e!r}")

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    # Snapshots while the calls run: each counter is at least what it was in the one before.
    snapshots = [host.metrics()]
    while any(w.is_alive() for w in workers):
        snapshots.append(host.metrics())
        time.sleep(0.01)
    for w in workers:
        w.join(MARGIN)
    snapshots.append(host.metrics())
    assert not errors, errors
    assert len(snapshots) >= 3
    for prev, cur in zip(snapshots, snapshots[1:]):
        p, c = prev.counters(), cur.counters()
        assert set(p) <= set(c), f"series disappeared: {set(p) - set(c)}"
        back = {k: (p[k], c[k]) for k in p if c[k] < p[k]}
        assert not back, f"counters went backwards: {back}"
    final = snapshots[-1]
    fails = threads * (each // 4)
    assert final.count("tools/call", "echo") == threads * each - fails
    assert final.count("tools/call", "fail", "tool_error") == fails
    assert final.requests == {("tools/call", "ok"): threads * each - fails, ("tools/call", "error"): fails}
    assert final.inflight == 0


def test_a_tool_added_after_load_is_counted_as_other(metered):
    host = metered(plugin_path("conformance"))
    r = tools_call(host.port, "test_dynamic_added", id=1)
    assert r.final()["error"]["code"] == -32602, "the tool is not declared yet"
    r = tools_call(host.port, "test_dynamic_tool", id=2)  # declares test_dynamic_added
    assert not r.final()["result"].get("isError")
    # The plugin's list-changed event reaches the host's catalog asynchronously: retry until it serves the tool.
    deadline = time.monotonic() + MARGIN
    while True:
        r = tools_call(host.port, "test_dynamic_added", id=3)
        if "result" in r.final() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.final()["result"]["content"][0]["text"] == "This is a dynamically added tool."
    s = host.metrics()
    assert s.count("tools/call", "test_dynamic_tool") == 1
    assert s.count("tools/call", "other") == 1, s.ops  # test_dynamic_added, served, but not declared at load
    assert s.count("tools/call", "other", "protocol_error") >= 1  # while it was unknown
    assert not any(t == "test_dynamic_added" for (_, t, _) in s.ops), "a tool label the plugin declared later"


# ------------------------------------------------------------------------------------------------------------
# --no-metrics
# ------------------------------------------------------------------------------------------------------------


def test_no_metrics_counts_nothing_and_reports_slots_and_in_flight(metered):
    host = metered(plugin_path("reference"), "--no-metrics", "--max-concurrency", "2")
    for i in range(3):
        assert tools_call(host.port, "echo", {"text": "x"}, id=i).final()["result"]["content"][0]["text"] == "x"
    # Without counting, in flight is the plugin calls' gauge the drain waits on: it drops just after the answer
    # is handed over, so the client can see the answer first.
    s = host.wait_metrics(lambda s: s.inflight == 0, "no call in flight")
    assert s.requests == {} and s.ops == {} and s.errors == {}
    assert (s.bytes_in, s.bytes_out, s.cancellations, s.deadline_expiries, s.sessions) == (0, 0, 0, 0, 0)
    assert s.slots == 2 and s.slots_busy == 0
    conn, _ = start_slow_call(host.port, 30)
    try:
        s = host.wait_metrics(lambda s: s.slots_busy == 1, "the slow call's slot")
        assert s.inflight == 1 and s.requests == {}
    finally:
        conn.close()
    host.wait_metrics(lambda s: s.slots_busy == 0 and s.inflight == 0, "the slot freed after the cancel")


def test_help_documents_no_metrics():
    out = subprocess.run([str(host_binary()), "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "--no-metrics" in out
