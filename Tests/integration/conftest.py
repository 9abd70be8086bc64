"""Shared fixtures for the integration tests: real host processes on loopback, real plugins.

Timing bounds (issue 10): every bound on a duration is derived from the configured value it checks, plus one
of these margins, so the suite holds on a loaded two-core machine (scripts/stress-test.sh runs it under
`stress-ng --cpu 2`):

- LATE (1.0 s): how much later than configured an event may be observed: the supervisor's timer firing, the
  child being scheduled, the log line crossing the pipe and the test's reader thread stamping it, each delayed
  by runnable CPU hogs. Measured under stress-ng --cpu 2 the sum stays well below 0.5 s; 1 s leaves room.
- EARLY (0.1 s): how much shorter than configured a gap between two lines of the same stream may *appear*: the
  first line can be stamped late when the reader thread was descheduled and reads both in one go; one
  scheduling delay. Times taken on different threads are not compared with such slack at all: those checks
  use causal order instead (a reply names the process that sent it).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LATE = 1.0  # see the module docstring
EARLY = 0.1
SERVING = re.compile(r"^mcp-plugin-host: serving .* at (http://127\.0\.0\.1:(\d+)/mcp)$")
# A sanitized run (scripts/sanitize.sh): "address" or "thread", and the folder the sanitizers write their reports
# to (log_path in ASAN_OPTIONS/TSAN_OPTIONS). Boxes are switched off (supervisor_fixtures.unboxed) and every test
# fails that leaves a report there.
SANITIZER = os.environ.get("MCP_SANITIZER") or None
SANITIZER_REPORTS = os.environ.get("MCP_SANITIZER_REPORTS") or None


@pytest.fixture(autouse=True)
def no_sanitizer_report():
    """Outermost, so it looks after every other fixture has stopped its processes: a report any of them wrote
    (ASan's, LSan's, TSan's: one file per process) fails the test with the report's first lines."""
    if SANITIZER_REPORTS is None:
        yield
        return
    folder = Path(SANITIZER_REPORTS)
    before = set(folder.iterdir())
    yield
    new = sorted(set(folder.iterdir()) - before)
    if new:
        shown = "\n\n".join(f"{p.name}:\n" + "\n".join(p.read_text(errors="replace").splitlines()[:60]) for p in new[:3])
        pytest.fail(f"{len(new)} sanitizer report(s) in {folder}:\n{shown}", pytrace=False)


def control_channel_version() -> int:
    """The host-supervisor channel's protocol version, read from its one definition (Contracts/ControlChannel.swift),
    so a test that checks the host's `ready` message follows the contract instead of repeating its number."""
    text = (REPO / "Sources" / "Contracts" / "ControlChannel.swift").read_text()
    m = re.search(r"public static let version = (\d+)", text)
    assert m, "ControlChannelProtocol.version not found in Sources/Contracts/ControlChannel.swift"
    return int(m.group(1))


def host_binary() -> Path:
    path = Path(os.environ.get("MCP_PLUGIN_HOST", REPO / ".build" / "release" / "mcp-plugin-host"))
    if not path.exists():
        pytest.fail(f"mcp-plugin-host not built at {path} (run scripts/test.sh or swift build -c release)")
    return path


def supervisor_binary() -> Path:
    path = Path(os.environ.get("MCP_SUPERVISOR", REPO / ".build" / "release" / "mcp-supervisor"))
    if not path.exists():
        pytest.fail(f"mcp-supervisor not built at {path} (run scripts/test.sh or swift build -c release)")
    return path


def mcpctl_binary() -> Path:
    path = Path(os.environ.get("MCPCTL", REPO / ".build" / "release" / "mcpctl"))
    if not path.exists():
        pytest.fail(f"mcpctl not built at {path} (swift build -c release)")
    return path


def plugin_dir() -> Path:
    return Path(os.environ.get("MCP_PLUGIN_DIR", REPO / ".build-plugins"))


def plugin_path(name: str) -> Path:
    """Path of a built plugin, e.g. plugin_path('reference') -> .build-plugins/libreference.so."""
    path = plugin_dir() / f"lib{name}.so"
    if not path.exists():
        pytest.fail(f"plugin {path} not built (run scripts/build-plugins.sh)")
    return path


class HostProcess:
    """A running mcp-plugin-host serving on 127.0.0.1 with a free port.

    It is started in a session of its own (so anything it forks is found afterwards by its session id, even
    once reparented), and its descriptor and thread counts are taken when it prints its serving line: the
    baseline `host_factory` compares with after the test (see `assert_back_to_baseline`).
    """

    def __init__(self, proc: subprocess.Popen, url: str, port: int, first_line: str, max_threads: int | None = None):
        self.proc = proc
        self.url = url
        self.port = port
        self.first_line = first_line
        self.baseline_fds, self.baseline_event_fds = fd_kinds(proc.pid)
        self.baseline_threads = thread_count(proc.pid)
        self.max_handler_threads = max_threads

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit with a deadline; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("mcp-plugin-host did not exit within the drain deadline after SIGTERM")

    def stderr_text(self) -> str:
        assert self.proc.poll() is not None, "read stderr only after the process exited"
        return self.proc.stderr.read() if self.proc.stderr else ""


def await_serving(proc: subprocess.Popen, deadline: float) -> tuple[re.Match | None, str]:
    """Reads the host's stdout until its serving line (the match) or EOF or the monotonic `deadline` (None); the
    last line read comes back too, for the error message."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = ""
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            m = SERVING.match(line.strip())
            if m:
                return m, line.strip()
    finally:
        sel.close()
    return None, line


def start_host(plugin: Path | str, *extra: str, config: str | None = None, timeout: float = 30.0,
               env: dict[str, str] | None = None) -> HostProcess:
    """Starts the host on `plugin` with --listen 127.0.0.1:0 and waits (with a deadline) for its serving line.
    `env`: variables added to the test's environment."""
    args = [str(host_binary()), "--plugin", str(plugin), "--listen", "127.0.0.1:0", *extra]
    if config is not None:
        args += ["--config", config]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})
    m, line = await_serving(proc, time.monotonic() + timeout)
    if m:
        return HostProcess(proc, m.group(1), int(m.group(2)), line, _thread_cap(plugin, extra))
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"host did not start serving: stdout={line!r} stderr={err!r}")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], pgrp [2], session [3])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int) -> tuple[int, int]:
    """(descriptors that are sockets, pipes or files; event descriptors: anon_inode eventpoll/eventfd/timerfd)."""
    files = events = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("anon_inode:"):
            events += 1
        else:
            files += 1
    return files, events


# libdispatch creates its event descriptors (an epoll, an eventfd, timerfds: 4 per use seen) the first time a
# plugin uses Dispatch (the Swift plugin's progress does), and keeps them; that many more are a one-time cost,
# not a leak. Sockets, pipes and files must be exactly back.
LAZY_EVENT_FDS = 8


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads line in /proc/{pid}/status")


def session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process in session `sid`."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _proc_stat(int(d))
            if f is not None and int(f[3]) == sid:
                out.append((int(d), f[0]))
    return out


_DECLARED_CONCURRENCY: dict[str, int] = {}


def _thread_cap(plugin: Path | str, extra: tuple[str, ...]) -> int:
    """How many handler threads the host may keep after calls: the plugin's declared concurrency (from
    `--check --json`; 1 for a SERIAL plugin), lowered by --max-concurrency, or --threads when given."""
    key = str(plugin)
    if key not in _DECLARED_CONCURRENCY:
        r = subprocess.run([str(host_binary()), "--check", "--json", "--plugin", key], capture_output=True,
                           text=True, timeout=60)
        declared = 1
        try:
            report = json.loads(r.stdout)
            conc = report.get("declared", {}).get("concurrency") if isinstance(report, dict) else None
            if isinstance(conc, dict):
                declared = int(conc.get("max", conc.get("maxConcurrency", 1)) or 1)
            elif isinstance(conc, int):
                declared = conc
        except (ValueError, TypeError):
            pass
        _DECLARED_CONCURRENCY[key] = max(1, declared)
    cap = _DECLARED_CONCURRENCY[key]
    args = list(extra)
    for flag in ("--max-concurrency", "--threads"):
        if flag in args and args.index(flag) + 1 < len(args):
            n = int(args[args.index(flag) + 1])
            cap = n if flag == "--threads" else min(cap, n)
    return cap


def _wait_for(predicate, timeout: float, interval: float = 0.02):
    """Polls a /proc condition (it has no event to wait on) until it holds or the deadline passes; returns the
    last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def assert_back_to_baseline(host: HostProcess, timeout: float = 5.0) -> None:
    """A running host holds what it held when it said "serving": the same number of descriptors once its
    connections are closed (closing is asynchronous, hence the deadline), no zombie child, no process of its own,
    and no more threads than the baseline plus its handler pool (threads start lazily up to the concurrency cap
    and are kept, docs/plugin-host.md), so a thread per call or per connection shows up here."""
    pid = host.proc.pid
    n = _wait_for(lambda: (c := fd_kinds(pid)[0]) == host.baseline_fds and c, timeout) or fd_kinds(pid)[0]
    targets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            pass
    assert n == host.baseline_fds, (
        f"host {pid} holds {n} sockets, pipes and files after the test, {host.baseline_fds} when it started "
        f"serving: {dict(sorted(targets.items()))}")
    events = fd_kinds(pid)[1]
    assert events <= host.baseline_event_fds + LAZY_EVENT_FDS, (
        f"host {pid} holds {events} event descriptors, {host.baseline_event_fds} at start: {targets}")
    threads = thread_count(pid)
    cap = host.baseline_threads + (host.max_handler_threads or 1)
    assert threads <= cap, (f"host {pid} runs {threads} threads after the test: {host.baseline_threads} at start "
                            f"+ at most {host.max_handler_threads} handler threads")
    others = [(p, st) for p, st in session_members(pid) if p != pid]
    assert not others, f"host {pid} has processes of its own (pid, state): {others}"


@pytest.fixture
def host_factory():
    """Starts hosts; after the test, checks each still-running one is back to its baseline
    (assert_back_to_baseline), stops it (status 0 required) and checks it left nothing behind (assert_reaped)."""
    started: list[HostProcess] = []

    def factory(plugin, *extra, **kw) -> HostProcess:
        h = start_host(plugin, *extra, **kw)
        started.append(h)
        return h

    yield factory
    problems = []
    for h in started:
        try:
            if h.proc.poll() is None:
                assert_back_to_baseline(h)
                status = h.stop()
                assert status == 0, f"host {h.proc.pid} exited with {status} on SIGTERM at teardown"
            assert_reaped(h)
        except AssertionError as e:
            problems.append(str(e))
        finally:
            if h.proc.poll() is None:
                h.proc.kill()
                h.proc.wait()
            _kill_session(h.proc.pid)
    if problems:
        pytest.fail("host teardown: " + "\n".join(problems), pytrace=False)


# ---------------------------------------------------------------------------------------------------------
# Added for test_http_edges.py, test_client_sdk.py and test_host_behaviour.py: raw HTTP on loopback, SSE
# parsing, the two eras' request shapes, a stderr watcher and a reaping check. The fixtures above are unchanged.
# ---------------------------------------------------------------------------------------------------------

import http.client  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

MODERN_VERSION = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
ACCEPT_BOTH = "application/json, text/event-stream"
NAME_FIELD = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


@dataclass
class SSEEvent:
    event: str | None
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(raw: bytes, *, allow_partial: bool = False, priming: bool = False) -> list[SSEEvent]:
    """Parses a text/event-stream body strictly: only known fields, every event ended by a blank line.

    Comment lines (starting with ':') are allowed and skipped. With allow_partial, an unterminated last
    event (a stream cut short on purpose) is dropped instead of failing. A priming event (2025-11-25: an id
    and empty data, so the client can resume before the first message) is left out unless `priming`.
    """
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    blocks = text.split("\n\n")
    tail = blocks.pop()  # after the last blank line: must be empty for a complete stream
    if tail.strip("\n") and not allow_partial:
        raise AssertionError(f"SSE stream ends inside an event (no blank line after it): {tail!r}")
    events: list[SSEEvent] = []
    for block in blocks:
        if not block.strip("\n"):
            continue
        event: str | None = None
        data: list[str] = []
        ev_id: str | None = None
        saw_field = False
        for line in block.split("\n"):
            if line == "" or line.startswith(":"):
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise AssertionError(f"SSE line without a colon: {line!r} in {block!r}")
            if value.startswith(" "):
                value = value[1:]
            saw_field = True
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                ev_id = value
            elif name == "retry":
                assert value.isdigit(), f"SSE retry field must be digits: {line!r}"
            else:
                raise AssertionError(f"unknown SSE field {name!r} in {block!r}")
        if saw_field:
            if ev_id is not None and data in ([], [""]) and event is None and not priming:
                continue
            events.append(SSEEvent(event, "\n".join(data), ev_id))
    return events


@dataclass
class HTTPReply:
    status: int
    headers: Any  # http.client.HTTPMessage: case-insensitive .get()
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        assert self.content_type == "application/json", (
            f"expected an application/json body, got {self.content_type!r} ({self.status}): {self.body[:300]!r}"
        )
        return json.loads(self.body)

    def sse_events(self) -> list[SSEEvent]:
        assert self.content_type == "text/event-stream", f"expected an SSE body, got {self.content_type!r}"
        return parse_sse(self.body)

    def messages(self) -> list[Any]:
        """The JSON-RPC messages in the body: one for JSON, one per `message` event for SSE (in order)."""
        if self.content_type == "text/event-stream":
            out = []
            for e in self.sse_events():
                assert e.event in (None, "message"), f"unexpected SSE event type {e.event!r}"
                out.append(e.json())
            return out
        return [self.json()]

    def final(self) -> Any:
        """The last JSON-RPC message (the response, for a request)."""
        msgs = self.messages()
        assert msgs, f"no message in the body ({self.status})"
        return msgs[-1]


def _encode_body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def open_http(
    port: int,
    method: str,
    path: str = "/mcp",
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    host: str | None = None,
    timeout: float = 15.0,
    content_type: str | None = "application/json",
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Sends one request on a new connection to 127.0.0.1:port and returns (connection, response) unread.

    The caller closes the connection. `host` replaces the Host header (default 127.0.0.1:port).
    """
    data = _encode_body(body)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        hdrs = dict(headers or {})
        if data is not None and content_type is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = content_type
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        return conn, conn.getresponse()
    except BaseException:
        conn.close()
        raise


def http_call(port: int, method: str, path: str = "/mcp", body: Any = None, headers: dict[str, str] | None = None, **kw) -> HTTPReply:
    """One complete HTTP exchange on a new connection (the whole body is read)."""
    conn, resp = open_http(port, method, path, body, headers, **kw)
    try:
        data = resp.read()
        return HTTPReply(resp.status, resp.headers, data)
    finally:
        conn.close()


def modern_meta(*, log_level: str | None = None, progress_token: Any = None, version: str = MODERN_VERSION,
                capabilities: dict | None = None, omit: tuple[str, ...] = ()) -> dict:
    meta: dict[str, Any] = {
        META_VERSION: version,
        META_CLIENT_INFO: {"name": "mcp-supervisor-tests", "version": "1.0.0"},
        META_CAPABILITIES: capabilities if capabilities is not None else {},
    }
    if log_level is not None:
        meta[META_LOG_LEVEL] = log_level
    if progress_token is not None:
        meta["progressToken"] = progress_token
    for k in omit:
        meta.pop(k, None)
    return meta


def modern_body(method: str, params: dict | None = None, *, id: Any = 1, meta: dict | None = None) -> dict:
    p = dict(params or {})
    p["_meta"] = meta if meta is not None else modern_meta()
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": p}


def modern_headers(method: str, params: dict | None = None, *, version: str | None = MODERN_VERSION,
                   accept: str | None = ACCEPT_BOTH, name: str | None = None) -> dict[str, str]:
    """The 2026-07-28 request headers: MCP-Protocol-Version, Mcp-Method and (where required) Mcp-Name."""
    h: dict[str, str] = {}
    if accept is not None:
        h["Accept"] = accept
    if version is not None:
        h["MCP-Protocol-Version"] = version
    h["Mcp-Method"] = method
    if name is None and method in NAME_FIELD and params and isinstance(params.get(NAME_FIELD[method]), str):
        name = params[NAME_FIELD[method]]
    if name is not None:
        h["Mcp-Name"] = name
    return h


def modern_post(port: int, method: str, params: dict | None = None, *, id: Any = 1, meta: dict | None = None,
                accept: str | None = ACCEPT_BOTH, extra_headers: dict[str, str] | None = None, **kw) -> HTTPReply:
    """POSTs one well-formed 2026-07-28 request (body _meta and mirrored headers agree)."""
    headers = modern_headers(method, params, accept=accept)
    headers.update(extra_headers or {})
    return http_call(port, "POST", body=modern_body(method, params, id=id, meta=meta), headers=headers, **kw)


class LegacySession:
    """A 2025-era session over raw HTTP: initialize, then requests carrying Mcp-Session-Id.

    For 2025-03-26 no MCP-Protocol-Version header is sent (that revision did not define it); for later
    revisions the negotiated version is sent on every request after initialize, as the transport requires.
    """

    def __init__(self, port: int, version: str):
        self.port = port
        self.version = version
        self.session_id: str | None = None
        self.next_id = 1
        self.init_reply: HTTPReply | None = None

    def headers(self, accept: str | None = ACCEPT_BOTH) -> dict[str, str]:
        h: dict[str, str] = {}
        if accept is not None:
            h["Accept"] = accept
        if self.session_id is not None:
            h["Mcp-Session-Id"] = self.session_id
        if self.version != "2025-03-26":
            h["MCP-Protocol-Version"] = self.version
        return h

    def initialize(self) -> HTTPReply:
        body = {
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": self.version, "capabilities": {},
                       "clientInfo": {"name": "mcp-supervisor-tests", "version": "1.0.0"}},
        }
        reply = http_call(self.port, "POST", body=body, headers={"Accept": ACCEPT_BOTH})
        assert reply.status == 200, f"initialize failed: {reply.status} {reply.body!r}"
        sid = reply.header("Mcp-Session-Id")
        assert sid, "initialize returned no Mcp-Session-Id header"
        assert all(0x21 <= ord(c) <= 0x7E for c in sid), f"session id has characters outside 0x21-0x7E: {sid!r}"
        self.session_id = sid
        self.init_reply = reply
        ack = self.notify("notifications/initialized")
        assert ack.status == 202 and ack.body == b"", f"initialized notification: {ack.status} {ack.body!r}"
        return reply

    def request(self, method: str, params: dict | None = None, *, accept: str | None = ACCEPT_BOTH,
                id: Any = None, **kw) -> HTTPReply:
        if id is None:
            id = self.next_id
            self.next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            body["params"] = params
        return http_call(self.port, "POST", body=body, headers=self.headers(accept), **kw)

    def notify(self, method: str, params: dict | None = None) -> HTTPReply:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            body["params"] = params
        return http_call(self.port, "POST", body=body, headers=self.headers())

    def delete(self) -> HTTPReply:
        return http_call(self.port, "DELETE", headers=self.headers(accept=None), content_type=None)


class StderrWatcher:
    """Reads a host's stderr line by line on a thread so tests can wait for a line with a deadline.

    Once a watcher is attached, use its lines()/text() instead of HostProcess.stderr_text().
    """

    def __init__(self, host: HostProcess):
        self.host = host
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._run, name=f"stderr-{host.proc.pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stream = self.host.proc.stderr
        assert stream is not None
        for line in stream:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> str:
        """Waits until a line (index >= start) matches the regex `pattern`; returns it, or fails at the deadline."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"no stderr line matching {pattern!r} within {timeout} s"
                        f"{' (stderr closed)' if self._eof else ''}; stderr so far:\n" + "\n".join(self._lines))
                self._cond.wait(left)

    def wait_eof(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stderr still open"


def wait_exit(host: HostProcess, timeout: float) -> int:
    """Waits (with a deadline) for the host to exit on its own; kills and reaps it and fails if it does not."""
    try:
        return host.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        host.proc.kill()
        host.proc.wait()
        raise AssertionError(f"mcp-plugin-host (pid {host.proc.pid}) did not exit within {timeout} s")


def _kill_session(sid: int) -> None:
    """Teardown only: SIGKILL whatever is left of a host's session (the check has already failed)."""
    for p, _ in session_members(sid):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def assert_reaped(host: HostProcess, timeout: float = 5.0) -> None:
    """The host has exited and left nothing behind: no process of its session is left (a child it forked, a
    zombie it did not reap, something reparented after its exit), and /proc no longer knows its pid.

    (The host's own exit status was collected by Popen.wait, so what is checked is what the host did.)
    """
    pid = host.proc.pid
    assert host.proc.returncode is not None, f"host {pid} has not exited"
    left = _wait_for(lambda: not session_members(pid), timeout)
    if not left:
        members = session_members(pid)
        _kill_session(pid)
        raise AssertionError(f"host {pid} exited and left processes of its session behind (pid, state): {members}")
    assert not Path(f"/proc/{pid}").exists(), f"host {pid} still exists after it was waited for"


@pytest.fixture
def reference_plugin() -> Path:
    return plugin_path("reference")


@pytest.fixture
def faulty_plugin() -> Path:
    return plugin_path("faulty")


# -- the box's tests: places uid nobody can reach ------------------------------------------------------------------

import shutil  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402


def traversable(path: Path):
    """Lets uid nobody reach `path` (o+x on it and its parents up to /, where missing); returns the undo."""
    changed = []
    p = Path(path)
    while p != p.parent:
        mode = stat.S_IMODE(p.stat().st_mode)
        if not mode & stat.S_IXOTH:
            changed.append((p, mode))
            p.chmod(mode | stat.S_IXOTH)
        p = p.parent

    def undo():
        for q, mode in reversed(changed):
            q.chmod(mode)

    return undo


@pytest.fixture
def nobody_plugin():
    """`copy(name)`: a copy of a built plugin that uid nobody can read and that a private /tmp does not hide (the
    checkout may be in a folder only root can enter): a per-test folder in /var/tmp, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="mcp-box-", dir="/var/tmp"))
    folder.chmod(0o755)

    def copy(name: str) -> Path:
        dst = folder / f"lib{name}.so"
        shutil.copy2(plugin_path(name), dst)
        dst.chmod(0o644)
        return dst

    yield copy
    shutil.rmtree(folder, ignore_errors=True)
