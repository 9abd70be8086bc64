"""Helpers for the mcp-supervisor integration tests (test_supervisor.py).

A `SupervisorRun` is one `mcp-supervisor -c MAIN --host HOST` process on a configuration folder under pytest's
tmp_path (main file, servers.d/, state/). Its stdout and stderr go through one pipe to a reader thread that keeps
every line with the monotonic time it arrived; tests wait for lines (or their absence) on a condition variable
with a deadline, never with a bare sleep. `stop()` sends SIGTERM, waits with a deadline, and checks that the
supervisor exited 0 and left no process behind: every child pid the log named, every process that was a
descendant of the supervisor, and every member of those process groups must be gone (a zombie counts as left).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import SANITIZER, host_binary, modern_post, plugin_path, supervisor_binary

# `NAME[PID]: ...` (a forwarded child line) or `mcp-supervisor: NAME[PID]: ...` (an event about a child).
PID_RX = re.compile(r"^(?:mcp-supervisor: )?([A-Za-z0-9_.-]+(?:#\d+)?)\[(\d+)\]: ")
START_RX = r"^mcp-supervisor: {name}: starting (\d+) replica\(s\) on 127\.0\.0\.1:(\d+)$"


@dataclass(frozen=True)
class Line:
    index: int
    t: float  # time.monotonic() when the reader thread received it
    text: str


@dataclass(frozen=True)
class Hit:
    line: Line
    match: re.Match

    @property
    def t(self) -> float:
        return self.line.t

    @property
    def index(self) -> int:
        return self.line.index

    def group(self, *a):
        return self.match.group(*a)


# ------------------------------------------------------------------------------------------------------------
# TOML for server files (just what the tests need: scalars, string arrays, nested tables)
# ------------------------------------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string for what we write
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # inside an array: an inline table
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def _toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)


def unboxed(table: dict) -> dict:
    """A server's (or the gateway's) table with its box switched off, for a sanitized run (scripts/sanitize.sh):
    the sanitizers' runtimes write their reports, run their symbolizer and (LeakSanitizer) trace the process, all
    of which a box forbids."""
    return {**table, "sandbox": {**table.get("sandbox", {}), "enabled": False}}


def to_toml(table: dict, prefix: str = "") -> str:
    out: list[str] = []
    subtables: list[tuple[str, dict]] = []
    for k, v in table.items():
        if isinstance(v, dict):
            subtables.append((k, v))
        else:
            out.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in subtables:
        name = f"{prefix}{k}"
        out.append("")
        out.append(f"[{name}]")
        out.append(to_toml(v, prefix=name + ".").strip("\n"))
    return "\n".join(out).strip("\n") + "\n"


# ------------------------------------------------------------------------------------------------------------
# /proc
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    state: str
    ppid: int
    pgid: int
    comm: str


def proc_info(pid: int) -> ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split at the last ')'.
    lpar, rpar = raw.index("("), raw.rindex(")")
    rest = raw[rpar + 2:].split()
    return ProcInfo(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]), comm=raw[lpar + 1:rpar])


def all_processes() -> list[ProcInfo]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            info = proc_info(int(d))
            if info is not None:
                out.append(info)
    return out


def descendants(root: int) -> list[ProcInfo]:
    procs = all_processes()
    children: dict[int, list[ProcInfo]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out: list[ProcInfo] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c.pid)
    return out


def pid_alive(pid: int) -> bool:
    """True if the pid exists at all (a zombie counts)."""
    return proc_info(pid) is not None


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Polls a /proc condition (which has no event to wait on) until it holds; fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------------------------
# Ports and HTTP
# ------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_range(size: int = 16) -> tuple[int, int]:
    """A block of ports that are free now, away from the kernel's ephemeral range (usually 32768-60999),
    chosen at random so parallel runs rarely meet."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - size)
        if all(port_is_free(p) for p in range(base, base + size)):
            return base, base + size - 1
    raise AssertionError("no free port block found")


def connect_refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            return False
        except ConnectionRefusedError:
            return True


def call_tool(port: int, name: str, arguments: dict | None = None, *, timeout: float = 30.0, id: Any = 1,
              extra_headers: dict | None = None) -> str:
    """A 2026-07-28 tools/call over raw HTTP; returns the text of a successful result."""
    reply = modern_post(port, "tools/call", {"name": name, "arguments": arguments or {}}, id=id, timeout=timeout,
                        extra_headers=extra_headers)
    assert reply.status == 200, f"tools/call {name}: HTTP {reply.status}: {reply.body[:300]!r}"
    msg = reply.final()
    assert "result" in msg, f"tools/call {name}: {msg}"
    result = msg["result"]
    assert not result.get("isError"), f"tools/call {name} failed: {result}"
    return "".join(block.get("text", "") for block in result["content"])


def raw_tools_call(name: str, arguments: dict | None = None, *, port: int, id: Any = 1,
                   close: bool = True) -> bytes:
    """The bytes of one 2026-07-28 tools/call request (for sockets opened by hand)."""
    from conftest import modern_body, modern_headers

    params = {"name": name, "arguments": arguments or {}}
    body = json.dumps(modern_body("tools/call", params, id=id)).encode()
    headers = modern_headers("tools/call", params)
    headers["Host"] = f"127.0.0.1:{port}"
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(body))
    if close:
        headers["Connection"] = "close"
    head = "POST /mcp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


# ------------------------------------------------------------------------------------------------------------
# The supervisor process
# ------------------------------------------------------------------------------------------------------------


class SupervisorRun:
    """One supervisor process on `root` (its main file root/supervisor.toml)."""

    def __init__(self, root: Path):
        self.root = root
        self.main_file = root / "supervisor.toml"
        self.proc: subprocess.Popen | None = None
        self._lines: list[Line] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader: threading.Thread | None = None
        self.child_pids: set[int] = set()
        self.known_pgids: set[int] = set()
        self.returncode: int | None = None
        self._stopped_checked = False

    # -- process ------------------------------------------------------------------------------------------

    def start(self, *extra: str, host: Path | str | None = None, environ: dict[str, str] | None = None,
              user: tuple[int, int] | None = None, prefix: tuple[str, ...] = (),
              pass_fds: tuple[int, ...] = ()) -> "SupervisorRun":
        """`host` replaces the mcp-plugin-host given with --host; `environ` is the supervisor's whole environment
        (default: the test's); `user` (uid, gid) runs it as that user, for the non-root cases (setpriv execs, so
        the pid is the supervisor's). `prefix` runs it through a wrapper that execs it (the pid stays the
        supervisor's), `pass_fds` are kept open for it (the systemd tests' LISTEN_FDS)."""
        assert self.proc is None, "already started"
        args = [str(supervisor_binary()), "-c", str(self.main_file), "--host", str(host or host_binary()), *extra]
        if user is not None:
            args = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", "--", *args]
        args = [*prefix, *args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.root, env=environ, pass_fds=pass_fds)
        self._reader = threading.Thread(target=self._read, name=f"supervisor-{self.proc.pid}", daemon=True)
        self._reader.start()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            t = time.monotonic()
            text = raw.decode("utf-8", "replace").rstrip("\n")
            m = PID_RX.match(text)
            with self._cond:
                if m:
                    pid = int(m.group(2))
                    self.child_pids.add(pid)
                    self.known_pgids.add(pid)  # every child leads its own process group
                self._lines.append(Line(len(self._lines), t, text))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the supervisor is not running"
        self.proc.send_signal(sig)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    # -- the log ------------------------------------------------------------------------------------------

    def lines(self, start: int = 0) -> list[Line]:
        with self._cond:
            return self._lines[start:]

    def texts(self, start: int = 0) -> list[str]:
        return [l.text for l in self.lines(start)]

    def mark(self) -> int:
        """The index the next line will have: pass it as `start` to look only at what comes after now."""
        with self._cond:
            return len(self._lines)

    def log_text(self, start: int = 0) -> str:
        return "\n".join(self.texts(start))

    def find_all(self, pattern: str, start: int = 0) -> list[Hit]:
        rx = re.compile(pattern)
        out = []
        for line in self.lines(start):
            m = rx.search(line.text)
            if m:
                out.append(Hit(line, m))
        return out

    def wait_for(self, pattern: str, timeout: float = 20.0, start: int = 0) -> Hit:
        """Waits for a line (index >= start) matching the regex; returns the first such line."""
        return self.wait_count(pattern, 1, timeout, start)[0]

    def wait_count(self, pattern: str, count: int, timeout: float = 20.0, start: int = 0) -> list[Hit]:
        """Waits until `count` lines (index >= start) match the regex; returns the first `count` of them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            scanned = start
            hits: list[Hit] = []
            while True:
                for line in self._lines[scanned:]:
                    m = rx.search(line.text)
                    if m:
                        hits.append(Hit(line, m))
                        if len(hits) == count:
                            return hits
                scanned = max(scanned, len(self._lines))
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    tail = "\n".join(l.text for l in self._lines[-80:])
                    raise AssertionError(
                        f"{len(hits)} of {count} line(s) matching {pattern!r} within {timeout} s"
                        f"{' (the supervisor closed its output)' if self._eof else ''}; last lines:\n{tail}")
                self._cond.wait(left)

    def assert_absent(self, pattern: str, duration: float, start: int = 0) -> None:
        """Waits `duration` seconds on the log and fails as soon as a line (index >= start) matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + duration
        with self._cond:
            scanned = start
            while True:
                for line in self._lines[scanned:]:
                    if rx.search(line.text):
                        raise AssertionError(f"unexpected line matching {pattern!r}: {line.text!r}\n"
                                             + "\n".join(l.text for l in self._lines[-60:]))
                scanned = max(scanned, len(self._lines))
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    return
                self._cond.wait(left)

    def running(self, name: str, timeout: float = 20.0, start: int = 0) -> tuple[int, Hit]:
        """Waits for `NAME[PID]: running` and returns (pid, hit)."""
        hit = self.wait_for(rf"^mcp-supervisor: {re.escape(name)}\[(\d+)\]: running \(ready in \d+ ms\)$",
                            timeout, start)
        return int(hit.group(1)), hit

    def port_of(self, name: str, timeout: float = 20.0, start: int = 0) -> int:
        hit = self.wait_for(START_RX.format(name=re.escape(name)), timeout, start)
        return int(hit.group(2))

    # -- stop and the checks ------------------------------------------------------------------------------

    def _tree(self) -> list[ProcInfo]:
        return descendants(self.pid)

    def stop(self, timeout: float = 30.0, *, expect_status: int = 0) -> int:
        """SIGTERM, wait for the exit with a deadline, then check that nothing of the tree is left."""
        assert self.proc is not None
        problems = []
        if self.proc.poll() is None:
            # No child of a running supervisor may be an unreaped zombie (one that exited this instant gets a
            # moment to be reaped). A failure is reported after the stop, which still happens.
            try:
                wait_until(lambda: not [p for p in self._tree() if p.ppid == self.pid and p.state == "Z"], 2.0,
                           "no zombie child of the supervisor")
            except AssertionError as e:
                problems.append(f"{e}: {[p for p in self._tree() if p.state == 'Z']}")
            for p in self._tree():
                self.child_pids.add(p.pid)
                self.known_pgids.add(p.pgid)
            self.known_pgids.discard(os.getpgid(0))  # never our own group
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_everything()
            raise AssertionError(f"mcp-supervisor did not exit within {timeout} s of SIGTERM; log:\n"
                                 + self.log_text()[-6000:])
        if self._reader is not None:
            self._reader.join(10)
        self._stopped_checked = True
        if self.returncode != expect_status:
            problems.append(f"mcp-supervisor exited with {self.returncode}, expected {expect_status}")
        left = self.leftovers()
        if left:
            self._kill_everything()
            problems.append(f"processes of the supervisor's tree are left after it exited: {left}")
        if problems:
            raise AssertionError("; ".join(problems) + "; log:\n" + self.log_text()[-6000:])
        return self.returncode

    def leftovers(self) -> list[ProcInfo]:
        """Processes that belong to the stopped supervisor's tree and still exist (zombies included)."""
        mine = os.getpid()
        left = []
        for p in all_processes():
            if p.pid == mine:
                continue
            if p.pid in self.child_pids and (p.pgid in self.known_pgids or "mcp-plugin" in p.comm):
                left.append(p)
            elif p.pgid in self.known_pgids or p.ppid == self.pid:
                left.append(p)
        return left

    def _kill_everything(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for p in self._tree():
                self.known_pgids.add(p.pgid)
                self.child_pids.add(p.pid)
            self.proc.kill()
            self.proc.wait()
        for g in self.known_pgids:
            if g != os.getpgid(0):
                try:
                    os.killpg(g, signal.SIGKILL)
                except OSError:
                    pass

    def cleanup(self) -> None:
        """Teardown: a supervisor the test did not stop is stopped (and checked) here."""
        if self.proc is None:
            return
        if not self._stopped_checked:
            self.stop()


class SupervisorEnv:
    """A per-test configuration folder under tmp_path: main file, servers.d/, state/; starts supervisors on it."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "supervisor"
        self.servers_dir = self.root / "servers.d"
        self.state_dir = self.root / "state"
        self.servers_dir.mkdir(parents=True)
        self.port_range = free_port_range()
        self.runs: list[SupervisorRun] = []
        self._control_dir: Path | None = None
        self.control_socket: Path | None = None
        self.write_main()

    def enable_control(self) -> Path:
        """Puts the control socket in a short folder under /tmp (a Unix socket path is limited to 107 bytes,
        which tmp_path can exceed), so a test can read the supervisor's state with `status()`."""
        import tempfile

        self._control_dir = Path(tempfile.mkdtemp(prefix="mcpsv-", dir="/tmp"))
        self._control_dir.chmod(0o755)  # the unprivileged users of the authorization tests must reach the socket
        self.control_socket = self._control_dir / "control.sock"
        self.sock = self.control_socket
        self.write_main(control_socket=str(self.control_socket))
        return self.control_socket

    def control(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        """One control-socket request (docs/mcpctl.md); returns the whole JSON-RPC answer."""
        assert self.control_socket is not None, "call enable_control() before start()"
        msg = {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params is not None else {})}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.control_socket))
            s.sendall(json.dumps(msg).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                assert chunk, f"the control socket closed without answering {method}"
                buf += chunk
        return json.loads(buf.partition(b"\n")[0])

    def status(self, name: str) -> dict:
        """The server's entry of `status` (state, port, replicas with state, pid, restarts, last_exit, ...)."""
        reply = self.control("status", {"server": name})
        assert "result" in reply, reply
        return reply["result"]["servers"][0]

    def write_main(self, defaults: dict | None = None, **settings: Any) -> Path:
        main = {
            "state_dir": "state",
            "servers_dir": "servers.d",
            "host": str(host_binary()),
            "listen_address": "127.0.0.1",
            "port_range": list(self.port_range),
            **settings,
        }
        if SANITIZER and isinstance(main.get("gateway"), dict):
            main["gateway"] = unboxed(main["gateway"])
        if defaults:
            main["defaults"] = defaults
        path = self.root / "supervisor.toml"
        path.write_text(to_toml(main))
        return path

    def write_server(self, name: str, plugin: Path | str, **settings: Any) -> Path:
        """servers.d/NAME.toml; `config=` (a dict) becomes the [config] table, `backoff=`/`intensity=`/`env=` tables."""
        table: dict[str, Any] = {"plugin": str(plugin), **settings}
        if SANITIZER:
            table = unboxed(table)
        path = self.servers_dir / f"{name}.toml"
        tmp = path.with_suffix(".toml.tmp")  # not *.toml: the loader never sees a half-written file
        tmp.write_text(to_toml(table))
        tmp.rename(path)
        return path

    def write_raw(self, name: str, text: str) -> Path:
        path = self.servers_dir / f"{name}.toml"
        tmp = self.servers_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.rename(path)
        return path

    def remove_server(self, name: str) -> None:
        (self.servers_dir / f"{name}.toml").unlink()

    def start(self, *extra: str, **kw: Any) -> SupervisorRun:
        run = SupervisorRun(self.root)
        self.runs.append(run)
        return run.start(*extra, **kw)

    def check_config(self, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return subprocess.run([str(supervisor_binary()), "-c", str(self.root / "supervisor.toml"), "--check-config"],
                              capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def cleanup(self) -> list[str]:
        errors = []
        for run in self.runs:
            try:
                run.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        if self._control_dir is not None:
            import shutil

            shutil.rmtree(self._control_dir, ignore_errors=True)
        return errors



@pytest.fixture
def sockdir():
    """A short folder under /tmp for a control socket (a Unix socket path is limited to 107 bytes, which tmp_path
    can exceed), reachable by other users (the authorization tests), removed after the test."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="mcpctl-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def faulty():
    """The faulty test plugin (Tests/fixtures/plugins): commands to crash, hang or misbehave on demand."""
    return plugin_path("faulty")


@pytest.fixture(name="env")
def control_env(tmp_path):
    """A SupervisorEnv with the control socket enabled, torn down (and checked for leftovers) after the test."""
    e = SupervisorEnv(tmp_path)
    e.enable_control()
    yield e
    errors = e.cleanup()
    if errors:
        pytest.fail("supervisor teardown: " + "\n".join(errors), pytrace=False)
