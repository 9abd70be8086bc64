"""The metrics listener on `metrics_listen` (docs/metrics.md), end to end: a real supervisor with real hosts (the C
reference plugin, 2 replicas), scraped over loopback HTTP.

- /metrics parses, `promtool check metrics` is clean, every host-derived series carries server, group and replica;
  OpenMetrics when asked (content type, counter families without `_total`, `# EOF`), text 0.0.4 otherwise;
- a replica stopped with SIGSTOP: the scrape still answers within metrics_scrape_timeout + 1 s, without that
  replica's mcp_server_* series, with its scrape error counted and every other series present;
- malformed, oversized and hostile requests get a 4xx or a close, and the supervisor still answers;
- /readyz 503 listing a server that is down, 200 once all are ready; /healthz; /status.json is what
  `mcpctl status --json` prints; the listener rebinds on reload and a bind failure leaves the supervisor running;
- configuration errors name file:line:key; the supervisor's descriptors are the same before and after 200 scrapes.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import mcpctl_binary, plugin_path
from supervisor_fixtures import control_env, free_port, proc_info, wait_until  # noqa: F401  (control_env is the `env` fixture)

SCRAPE_TIMEOUT = 0.5


# -- HTTP ----------------------------------------------------------------------------------------------------------


def get(port: int, path: str, headers: dict | None = None, method: str = "GET", timeout: float = 10.0):
    """(status, headers, body) of one request on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def answers(port: int, path: str) -> int | None:
    """The status of a GET, or None when the connection is refused, reset or closed without an answer."""
    try:
        return get(port, path)[0]
    except (OSError, http.client.HTTPException):
        return None


def raw_exchange(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Sends bytes as they are and reads until the server closes (or the timeout): what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_line(raw: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", raw)
    return int(m.group(1)) if m else None


# -- the page -----------------------------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict, float]]:
    """Every sample of a text-format page: (name, labels, value); a line that is neither a comment nor a sample
    fails the test."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def series(samples, name: str, **labels) -> list[tuple[dict, float]]:
    return [(l, v) for n, l, v in samples if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]


def scrape(port: int, **kw) -> list[tuple[str, dict, float]]:
    status, headers, body = get(port, "/metrics", **kw)
    assert status == 200, (status, body[:300])
    return parse(body.decode())


def start(env, replicas: int = 2, extra_servers: dict | None = None, **main) -> tuple[object, int]:
    """A supervisor with `ref` (reference plugin, group "blue", `replicas`) plus `extra_servers`, the listener on a
    free loopback port; waits for the listener and for every ref replica to be running."""
    port = free_port()
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{port}",
                   metrics_scrape_timeout=SCRAPE_TIMEOUT, **main)
    env.write_server("ref", plugin_path("reference"), replicas=replicas, group="blue")
    for name, settings in (extra_servers or {}).items():
        env.write_server(name, **settings)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: metrics: listening on http://127\.0\.0\.1:{port}/metrics", 10)
    wait_until(lambda: env.status("ref")["state"] == "running"
               and all(r["state"] == "running" for r in env.status("ref")["replicas"]), 20, "ref's replicas running")
    return run, port


def traffic_replicas(samples, server: str) -> set[str]:
    return {l["replica"] for l, _ in series(samples, "mcp_server_calls_in_flight", server=server)}


# -- tests --------------------------------------------------------------------------------------------------------


def test_page_is_clean_and_labelled(env):
    run, port = start(env, extra_servers={"plain": {"plugin": plugin_path("reference")}})
    wait_until(lambda: env.status("plain")["state"] == "running", 20, "plain running")
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["content-length"]) == len(body)
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), \
        (check.stdout + check.stderr).decode()
    samples = parse(body.decode())
    # Every host-derived family, for both replicas of ref (group blue) and the one of plain (group "").
    for family in ["mcp_server_calls_in_flight", "mcp_server_cancellations_total", "mcp_server_deadline_expiries_total",
                   "mcp_server_request_bytes_total", "mcp_server_response_bytes_total", "mcp_server_handler_slots_busy",
                   "mcp_server_handler_slots", "mcp_server_sessions_open"]:
        got = {(l["server"], l["group"], l["replica"]) for l, _ in series(samples, family)}
        assert got == {("ref", "blue", "0"), ("ref", "blue", "1"), ("plain", "", "0")}, (family, got)
    errors = {(l["server"], l["replica"], l["error_type"]) for l, _ in series(samples, "mcp_server_errors_total")}
    for t in ["protocol_error", "tool_error", "deadline", "cancelled", "crash"]:
        assert ("ref", "0", t) in errors and ("ref", "1", t) in errors, (t, errors)
    # The reference plugin declares its concurrency: the slots gauge is the host's number, not a constant of ours.
    slots = {l["replica"]: v for l, v in series(samples, "mcp_server_handler_slots", server="ref")}
    assert slots["0"] == slots["1"] > 0
    assert len(series(samples, "mcp_supervisor_scrape_duration_seconds")) == 1
    # One HELP and one TYPE per family.
    types = re.findall(r"^# TYPE (\S+) ", body.decode(), re.M)
    assert len(types) == len(set(types)), [t for t in types if types.count(t) > 1]
    # HEAD: the same headers, no body.
    status, headers, body = get(port, "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_group_in_status_and_mcpctl(env):
    run, port = start(env, replicas=1)
    assert env.status("ref")["group"] == "blue"
    table = subprocess.run([str(mcpctl_binary()), "--socket", str(env.control_socket), "status"],
                           capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["SERVER", "GROUP", "STATE"]
    assert lines[1].split()[:3] == ["ref", "blue", "running"]


def test_openmetrics_when_asked(env):
    run, port = start(env, replicas=1)
    names_before = {n for n, _, _ in scrape(port)}
    status, headers, body = get(port, "/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    assert status == 200
    assert headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    text = body.decode()
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    counters = re.findall(r"^# TYPE (\S+) counter$", text, re.M)
    assert "mcp_server_request_bytes" in counters and "mcp_server_errors" in counters
    for family in counters:
        assert not family.endswith("_total"), family
        own = [l for l in text.splitlines() if l.startswith(family) and not l.startswith("#")]
        assert all(re.match(re.escape(family) + r"_total[{ ]", l) for l in own), own[:3]
    # The same samples as the text page (counters keep their _total sample names); a series may appear between
    # two scrapes (a health probe's first duration), none goes: text before <= OpenMetrics <= text after.
    names_om = {n for n, _, _ in parse(text.replace("# EOF\n", ""))}
    assert names_before <= names_om <= {n for n, _, _ in scrape(port)}, (names_before ^ names_om)
    # Refused with q=0, or not asked: text 0.0.4, no # EOF.
    for accept in ["application/openmetrics-text;q=0,text/plain", "text/plain", "*/*"]:
        status, headers, body = get(port, "/metrics", headers={"Accept": accept})
        assert headers["content-type"].startswith("text/plain; version=0.0.4"), accept
        assert b"# EOF" not in body


def test_a_stopped_replica_is_left_out_within_the_deadline(env):
    run, port = start(env)
    pids = {r["index"]: r["pid"] for r in env.status("ref")["replicas"]}
    before = scrape(port)
    assert traffic_replicas(before, "ref") == {"0", "1"}
    errors_before = sum(v for _, v in series(before, "mcp_supervisor_scrape_errors_total", server="ref"))
    os.kill(pids[1], signal.SIGSTOP)
    try:
        wait_until(lambda: proc_info(pids[1]).state == "T", 5, "replica 1 stopped")
        t0 = time.monotonic()
        status, headers, body = get(port, "/metrics")
        elapsed = time.monotonic() - t0
        assert status == 200
        assert SCRAPE_TIMEOUT * 0.8 <= elapsed < SCRAPE_TIMEOUT + 1.0, elapsed
        samples = parse(body.decode())
        # No mcp_server_* series of replica 1; replica 0's are all there; the supervisor's own too.
        assert not [n for n, l, _ in samples if n.startswith("mcp_server_") and l.get("server") == "ref"
                    and l.get("replica") == "1" and l.get("error_type") != "crash"]
        assert traffic_replicas(samples, "ref") == {"0"}
        # (A health probe that reached replica 0 meanwhile may have added request series: a superset is fine.)
        assert {n for n, l, _ in samples if n.startswith("mcp_server_") and l.get("replica") == "0"} >= \
            {n for n, l, _ in before if n.startswith("mcp_server_") and l.get("replica") == "0"}
        assert series(samples, "mcp_supervisor_scrape_duration_seconds")[0][1] >= SCRAPE_TIMEOUT * 0.8
        errors_after = sum(v for _, v in series(samples, "mcp_supervisor_scrape_errors_total", server="ref"))
        assert errors_after == errors_before + 1, (errors_before, errors_after)
        assert all(l["group"] == "blue" for l, _ in series(samples, "mcp_supervisor_scrape_errors_total", server="ref"))
        # The control socket still answers meanwhile.
        assert env.status("ref")["name"] == "ref"
    finally:
        os.kill(pids[1], signal.SIGCONT)
    # Its late answer is dropped (it belonged to a finished scrape); the next scrapes have it again.
    wait_until(lambda: traffic_replicas(scrape(port), "ref") == {"0", "1"}, 10, "replica 1 back on the page")


def test_concurrent_scrapes_each_get_every_replica(env):
    run, port = start(env)
    results: list = []
    errors: list = []

    def one():
        try:
            results.append(traffic_replicas(scrape(port), "ref"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert results == [{"0", "1"}] * 12


def test_hostile_requests_get_4xx_or_close_and_harm_nothing(env):
    run, port = start(env, replicas=1)
    cases = {
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        "http/0.9": b"GET /metrics\r\n",
        "64 KiB header": b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
        "10 KB header": b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n",
        "post with body": b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "get with body": b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "bad length": b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n",
        "delete": b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "unknown path": b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "bad version": b"GET /metrics HTTP/7.1\r\nHost: x\r\n\r\n",
        "nul in path": b"GET /me\x00trics HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    expected = {"10 KB header": 431, "post with body": 405, "get with body": 413, "chunked": 413, "bad length": 400,
                "delete": 405, "unknown path": 404}
    for name, payload in cases.items():
        reply = raw_exchange(port, payload)
        code = status_line(reply)
        if name in expected:
            assert code == expected[name], (name, reply[:200])
        else:
            assert reply == b"" or (code is not None and 400 <= code < 500), (name, reply[:200])
        if code == 405:
            assert b"\r\nAllow: GET, HEAD\r\n" in reply, reply[:300]
    # A half-sent header left open: the supervisor answers meanwhile, and closes it by itself (10 s limit).
    half = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert traffic_replicas(scrape(port), "ref") == {"0"}
        assert env.status("ref")["state"] == "running"
        t0 = time.monotonic()
        assert half.recv(100) == b""
        assert 5 < time.monotonic() - t0 < 15
    finally:
        half.close()
    # More than 64 connections: the ones past the limit are closed at once, the first 64 stay until they go.
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(64)]
    try:
        extra = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert extra.recv(100) == b""
        extra.close()
    finally:
        for c in conns:
            c.close()
    # (the closed connections are counted off as the listener sees them close: poll)
    wait_until(lambda: answers(port, "/healthz") == 200, 10, "the listener answers again")
    assert traffic_replicas(scrape(port), "ref") == {"0"}
    assert env.status("ref")["state"] == "running"


def test_readyz_lists_what_is_not_ready(env):
    run, port = start(env, replicas=1, extra_servers={"broken": {"plugin": plugin_path("create_fails")}})
    wait_until(lambda: env.status("broken")["state"] == "down", 20, "broken down")
    status, headers, body = get(port, "/readyz")
    assert status == 503, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"ready": False, "not_ready": [{"name": "broken", "state": "down"}]}
    # Fixed by a reload: it restarts with a working plugin, and /readyz turns 200.
    env.write_server("broken", plugin_path("reference"))
    assert "result" in env.control("reload")
    wait_until(lambda: get(port, "/readyz")[0] == 200, 20, "/readyz 200 after the fix")
    assert json.loads(get(port, "/readyz")[2]) == {"ready": True, "not_ready": []}


def test_healthz_and_status_json(env):
    run, port = start(env)
    status, headers, body = get(port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    volatile = {"uptime", "checked_ago", "latency_ms"}

    def stable(doc):
        for s in doc["servers"]:
            for r in s["replicas"]:
                for k in volatile:
                    r.pop(k, None)
        return doc

    def same():
        page = stable(json.loads(get(port, "/status.json")[2]))
        ctl = subprocess.run([str(mcpctl_binary()), "--socket", str(env.control_socket), "--json", "status"],
                             capture_output=True, text=True, timeout=30)
        assert ctl.returncode == 0, ctl.stderr
        return page == stable(json.loads(ctl.stdout)) and page

    page = wait_until(same, 10, "/status.json == mcpctl status --json")
    assert [s["name"] for s in page["servers"]] == ["ref"] and page["servers"][0]["group"] == "blue"
    status, headers, body = get(port, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8" and body.startswith(b"<")


def test_listener_rebinds_on_reload_and_survives_a_taken_port(env):
    # Taken at boot: logged, the supervisor runs without the listener (as with the control socket).
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{taken}")
        env.write_server("ref", plugin_path("reference"), group="blue")
        run = env.start()
        run.wait_for(rf"^mcp-supervisor: metrics: cannot listen on 127\.0\.0\.1:{taken}: .*; no metrics listener$", 10)
        wait_until(lambda: env.status("ref")["state"] == "running", 20, "ref running")
        # A reload to a free port binds it.
        port = free_port()
        env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{port}")
        mark = run.mark()
        assert "result" in env.control("reload")
        run.wait_for(rf"^mcp-supervisor: metrics: listening on http://127\.0\.0\.1:{port}/metrics", 10, mark)
        assert get(port, "/healthz")[0] == 200
        # A reload to a taken port keeps the old listener.
        env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{taken}")
        mark = run.mark()
        assert "result" in env.control("reload")
        run.wait_for(rf"^mcp-supervisor: metrics: cannot listen on 127\.0\.0\.1:{taken}: .*; the listener on "
                     rf"127\.0\.0\.1:{port} stays$", 10, mark)
        assert get(port, "/healthz")[0] == 200
        # Another free port: the new one serves and the old one is closed.
        port2 = free_port()
        env.write_main(control_socket=str(env.control_socket), metrics_listen=f"[::1]:{port2}")
        assert "result" in env.control("reload")
        c = http.client.HTTPConnection("::1", port2, timeout=10)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
        wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) != 0, 5, "the old listener closed")
        # Removed: closed.
        env.write_main(control_socket=str(env.control_socket))
        mark = run.mark()
        assert "result" in env.control("reload")
        run.wait_for(r"^mcp-supervisor: metrics: listener closed", 10, mark)
    finally:
        blocker.close()


@pytest.mark.parametrize("main, server, key, line, fragment", [
    ('metrics_listen = "0.0.0.0:9464"\n', None, "metrics_listen", 1, "metrics_allow_remote"),
    ('state_dir = "state"\nmetrics_listen = "localhost:9464"\n', None, "metrics_listen", 2, "is not an address"),
    ('metrics_listen = "127.0.0.1:99999"\n', None, "metrics_listen", 1, "is not an address"),
    ('metrics_scrape_timeout = 0\n', None, "metrics_scrape_timeout", 1, "0.01-60"),
    ("", 'plugin = "x.so"\n\ngroup = "not a group"\n', "group", 3, "not a valid group"),
])
def test_config_errors_name_file_line_and_key(env, main, server, key, line, fragment):
    path = env.root / "supervisor.toml"
    path.write_text(main)
    target = path
    if server is not None:
        target = env.write_raw("g", server)
    r = env.check_config()
    assert r.returncode == 78, r.stdout + r.stderr
    assert re.search(re.escape(f"{target}:{line}: {key}: ") + ".*" + re.escape(fragment), r.stderr), r.stderr


def test_remote_address_with_allow_remote_is_accepted(env):
    (env.root / "supervisor.toml").write_text('metrics_listen = "0.0.0.0:9464"\nmetrics_allow_remote = true\n')
    r = env.check_config()
    assert r.returncode == 0, r.stdout + r.stderr


def accepted_connections(pid: int, port: int) -> int:
    """Sockets of process pid that are connections accepted on the metrics port (not the listener): a scrape's
    server side stays open until the listener has read the client's close, so a count taken before that is not
    the steady one."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if int(local.rsplit(":", 1)[1], 16) == port and state != "0A" and inode in inodes:
                    n += 1
    return n


def test_descriptors_are_stable_across_200_scrapes(env):
    run, port = start(env)
    for _ in range(5):
        scrape(port)
    wait_until(lambda: accepted_connections(run.pid, port) == 0, 5, "the warm-up scrapes' connections closed")
    base = run.fd_count()
    for i in range(200):
        samples = scrape(port) if i % 2 else parse(get(port, "/metrics", headers={
            "Accept": "application/openmetrics-text"})[2].decode().replace("# EOF\n", ""))
        assert traffic_replicas(samples, "ref") == {"0", "1"}
    wait_until(lambda: accepted_connections(run.pid, port) == 0, 5, "the scrapes' connections closed")
    wait_until(lambda: run.fd_count() <= base, 5, f"fd count back to {base} (now {run.fd_count()})")
    assert run.fd_count() == base


# -- with the host's counters (branch metrics-host) ---------------------------------------------------------------


async def _sdk_calls(url: str, echoes: int) -> None:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=60.0))
    with anyio.fail_after(60):
        async with http:
            async with Client(streamable_http_client(url, http_client=http), mode="auto") as c:
                for i in range(echoes):
                    r = await c.call_tool("echo", {"text": f"call {i}"})
                    assert not r.is_error and r.content[0].text == f"call {i}"
                r = await c.call_tool("fail", {"message": "on purpose"})
                assert r.is_error


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sdk_tool_calls_show_as_exact_counts(env):
    from sdk_recorder import run as run_async

    run, port = start(env)
    server_port = env.status("ref")["port"]

    def calls(samples, outcome: str) -> float:
        return sum(v for _, v in series(samples, "mcp_server_requests_total", server="ref", group="blue",
                                        mcp_method_name="tools/call", outcome=outcome))

    def histogram_count(samples, tool: str, error_type: str) -> float:
        return sum(v for _, v in series(samples, "mcp_server_operation_duration_seconds_count", server="ref",
                                        mcp_method_name="tools/call", gen_ai_tool_name=tool, error_type=error_type))

    before = scrape(port)
    assert calls(before, "ok") == 0 and calls(before, "error") == 0
    k = 9
    run_async(_sdk_calls(f"http://127.0.0.1:{server_port}/mcp", k))
    after = scrape(port)
    assert traffic_replicas(after, "ref") == {"0", "1"}
    assert calls(after, "ok") == k
    assert calls(after, "error") == 1
    assert histogram_count(after, "echo", "") == k
    assert histogram_count(after, "fail", "tool_error") == 1
    assert sum(v for _, v in series(after, "mcp_server_errors_total", server="ref", error_type="tool_error")) == 1
    # Cumulative buckets: +Inf equals _count for every histogram series, and no bucket exceeds the next.
    buckets: dict = {}
    for l, v in series(after, "mcp_server_operation_duration_seconds_bucket", server="ref"):
        key = tuple(sorted((a, b) for a, b in l.items() if a != "le"))
        buckets.setdefault(key, []).append((float("inf") if l["le"] == "+Inf" else float(l["le"]), v))
    assert buckets
    for key, rows in buckets.items():
        values = [v for _, v in sorted(rows)]
        assert values == sorted(values), (key, rows)
        count = series(after, "mcp_server_operation_duration_seconds_count", **dict(key))
        assert len(count) == 1 and count[0][1] == values[-1], (key, count, values)
    check = subprocess.run(["promtool", "check", "metrics"], input=get(port, "/metrics")[2], capture_output=True,
                           timeout=30)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout.decode()
