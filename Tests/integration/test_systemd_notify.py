"""The supervisor's systemd side without a booted systemd (docs/systemd.md): a NOTIFY_SOCKET sink receives what
libsystemd's sd_notify sends, and sockets are handed in the way systemd's fd store hands them back
(LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, set by a small wrapper that execs the supervisor, and by the real
`systemd-socket-activate`).

- READY=1 once the control socket listens and every boot server runs or failed its start (a server stuck in
  start holds it back until its start_timeout); STATUS= in one line; RELOADING=1 with MONOTONIC_USEC, then
  READY=1, around a reload, also a rejected one; STOPPING=1 at SIGTERM.
- WATCHDOG=1 every half WATCHDOG_USEC while the self-check passes; none once the control socket stops answering.
- FDSTORE=1 with FDNAME=<server> carrying the listening socket (SCM_RIGHTS); FDSTOREREMOVE=1 for a server
  removed by a reload; adoption of passed sockets (a connection made before the supervisor started is served),
  FDSTOREREMOVE=1 for names no server has, binding only the new server.
- NOTIFY_SOCKET, WATCHDOG_* and LISTEN_* never reach a child's environment.
The real-systemd tests (Type=notify, watchdog restarts, the fd store across SIGKILL) are test_systemd_service.py.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest

from conftest import plugin_path
from supervisor_fixtures import (  # noqa: F401 (control_env is the fixture env)
    call_tool, control_env, free_port, raw_tools_call, wait_until)
from systemd_sink import NotifySink

pytestmark = pytest.mark.timeout(120)

STATUS_RX = re.compile(r"^(\d+) servers?: (\d+ [a-z]+(?: \([^)]*\))?(?:, \d+ [a-z]+(?: \([^)]*\))?)*)$")


@pytest.fixture
def sink():
    s = NotifySink()
    yield s
    s.close()


def status_counts(line: str) -> tuple[int, dict[str, list[str]]]:
    m = STATUS_RX.match(line)
    assert m, f"STATUS= is not one '<n> servers: <count> <state> (<names>), ...' line: {line!r}"
    groups = {}
    for count, state, names in re.findall(r"(\d+) ([a-z]+)(?: \(([^)]*)\))?", m.group(2)):
        groups[state] = names.split(", ") if names else [""] * int(count)
    return int(m.group(1)), groups


def test_ready_waits_for_control_socket_and_boot_status_and_stopping(env, sink):
    faulty = plugin_path("faulty")
    env.write_server("good", faulty, health={"interval": 0.5})
    env.write_server("broken", "/nonexistent/libmissing.so")
    # Stuck in start: create() sleeps far beyond start_timeout, so only the start timeout ends its first start.
    env.write_server("slow", faulty, start_timeout=2, config={"create_sleep_ms": 600000},
                     backoff={"initial": 30, "max": 30})
    t0 = time.monotonic()
    run = env.start(environ=sink.environ())
    ready = sink.wait_key("READY", "1", timeout=30)
    control = run.wait_for(rf"^mcp-supervisor: control: listening on ", 5)
    good_pid, good = run.running("good", 5)
    timeout = run.wait_for(r"^mcp-supervisor: slow\[\d+\]: not ready within 2(\.0)? s; killing it$", 5)
    run.wait_for(r"^mcp-supervisor: broken\[\d+\]: ", 5)
    # READY=1 came after all of it: the control socket, the good server's readiness, the stuck one's timeout.
    assert ready.t >= t0 + 2.0, f"READY=1 {ready.t - t0:.2f} s after start: before slow's 2 s start timeout"
    assert ready.t >= good.t - 0.5 and ready.t >= control.t - 0.5
    assert env.status("good")["state"] == "running"
    assert env.status("broken")["state"] in ("down", "failed")
    assert env.status("slow")["state"] == "down"
    # One line for `systemctl status`, sent with READY=1.
    total, groups = status_counts(ready.fields["STATUS"])
    assert total == 3 and sum(len(v) for v in groups.values()) == 3, ready.fields["STATUS"]
    assert "slow" in groups.get("down", []) and "broken" in groups.get("down", []), ready.fields["STATUS"]
    # Kept current: the good server's first probe makes it healthy.
    if not ready.fields["STATUS"].startswith("3 servers: 1 healthy"):
        sink.wait_for(lambda m: m.fields.get("STATUS", "").startswith("3 servers: 1 healthy"), 15,
                      "STATUS= with 1 healthy", start=ready.index + 1)
    # Kept current, and only sent when it changes: stop one server and the line says so, once.
    mark = sink.mark()
    assert env.control("stop", {"server": "good"})["result"]
    stopped = sink.wait_for(lambda m: "(good)" in m.fields.get("STATUS", ""), 15, "STATUS= naming good",
                            start=mark)
    assert "1 stopped (good)" in stopped.fields["STATUS"] or "1 stopping (good)" in stopped.fields["STATUS"]
    statuses = [m.fields["STATUS"] for m in sink.all() if "STATUS" in m.fields]
    assert all(a != b for a, b in zip(statuses, statuses[1:])), f"an unchanged STATUS= was sent again: {statuses}"
    assert len([m for m in sink.all() if m.fields.get("READY") == "1"]) == 1
    mark = sink.mark()
    run.signal(signal.SIGTERM)
    stopping = sink.wait_key("STOPPING", "1", timeout=10, start=mark)
    assert run.proc.wait(30) == 0
    assert not [m for m in sink.all(stopping.index) if m.fields.get("READY") == "1"]
    # No watchdog asked, none sent.
    assert not [m for m in sink.all() if "WATCHDOG" in m.fields]


def test_reload_sends_reloading_then_ready_also_when_rejected(env, sink):
    faulty = plugin_path("faulty")
    env.write_server("one", faulty)
    run = env.start(environ=sink.environ())
    sink.wait_key("READY", "1", timeout=30)
    run.running("one")
    for broken in (False, True):
        if broken:
            env.write_raw("two", 'plugin = "x.so"\nreplicas = "many"\n')
        else:
            env.write_server("two", faulty)
        mark = sink.mark()
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        reply = env.control("reload")
        after = time.clock_gettime(time.CLOCK_MONOTONIC)
        reloading = sink.wait_key("RELOADING", "1", timeout=10, start=mark)
        usec = int(reloading.fields["MONOTONIC_USEC"])
        assert before * 1e6 - 1000 <= usec <= after * 1e6 + 1000, (before, usec, after)
        ready = sink.wait_key("READY", "1", timeout=10, start=reloading.index)
        assert ready.index > reloading.index
        if broken:
            assert reply["error"]["code"] == -32003 and "replicas" in reply["error"]["message"], reply
            assert env.control("status")["result"]["servers"][1]["name"] == "two"  # the old configuration runs
        else:
            assert reply["result"]["added"] == ["two"], reply
            assert ready.fields["STATUS"].startswith("2 servers: "), ready.fields


def test_watchdog_pings_while_self_check_passes_and_stops_when_control_socket_fails(env, sink):
    env.write_server("one", plugin_path("faulty"))
    usec = 1_000_000
    run = env.start(environ=sink.environ(WATCHDOG_USEC=str(usec)))
    sink.wait_key("READY", "1", timeout=30)
    run.wait_for(r"^mcp-supervisor: watchdog: every 0\.5 s while the self-check passes \(WatchdogSec=1\)$", 5)
    first = sink.wait_key("WATCHDOG", "1", timeout=5)
    pings = [first]
    while len(pings) < 8:
        pings.append(sink.wait_key("WATCHDOG", "1", timeout=5, start=pings[-1].index + 1))
    gaps = [b.t - a.t for a, b in zip(pings, pings[1:])]
    assert 0.35 <= statistics.median(gaps) <= 0.7, gaps
    assert max(gaps) < usec / 1e6, f"a gap reached WatchdogSec: {gaps}"
    # The control socket stops answering (its file is gone): the self-check fails and the pings stop.
    env.control_socket.unlink()
    failed = run.wait_for(r"^mcp-supervisor: watchdog: self-check failed \(control socket\): no ping$", 5)
    mark = sink.mark()
    deadline = time.monotonic() + 2.5 * usec / 1e6
    late = [m for m in sink.all(mark) if "WATCHDOG" in m.fields]
    while not late and time.monotonic() < deadline:
        with sink._cond:
            sink._cond.wait(deadline - time.monotonic())
        late = [m for m in sink.all(mark) if "WATCHDOG" in m.fields]
    assert not late, f"WATCHDOG=1 after the self-check failed ({failed.line.text})"
    # The loop and the timers still answer: only the control socket is named.
    run.assert_absent(r"self-check failed \((event loop|timers)", 0.1)


def test_children_never_see_notify_watchdog_or_listen_variables(env, sink):
    env.write_server("one", plugin_path("faulty"), replicas=2)
    extra = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1", "LISTEN_FDS": "1", "LISTEN_PID": "1",
             "LISTEN_FDNAMES": "one", "MCP_TEST_MARKER": "kept-out-too"}
    run = env.start(environ=sink.environ(**extra))
    sink.wait_key("READY", "1", timeout=30)
    pids = [r["pid"] for r in env.status("one")["replicas"]]
    assert len(pids) == 2 and all(pids)
    for pid in pids:
        environ = dict(e.split("=", 1) for e in open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if e)
        leaked = sorted(k for k in environ
                        if k == "NOTIFY_SOCKET" or k.startswith("WATCHDOG_") or k.startswith("LISTEN_")
                        or k == "MCP_TEST_MARKER")
        assert not leaked, f"child {pid} got {leaked}"
        assert environ.get("MCP_SERVER_NAME") == "one"  # the child's own variables are there


def _fd_port(fd: int) -> tuple[int, bool]:
    s = socket.socket(fileno=os.dup(fd))
    try:
        return s.getsockname()[1], bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    finally:
        s.close()


def test_every_bound_socket_goes_to_the_fd_store_and_a_removed_server_leaves_it(env, sink):
    faulty = plugin_path("faulty")
    static = free_port()
    env.write_server("a", faulty, port=static)
    env.write_server("b", faulty)
    run = env.start(environ=sink.environ())
    sink.wait_key("READY", "1", timeout=30)
    b_port = run.port_of("b")
    stored = {m.fields["FDNAME"]: m for m in sink.all() if m.fields.get("FDSTORE") == "1"}
    assert sorted(stored) == ["a", "b"], [m.raw for m in sink.all()]
    for name, port in (("a", static), ("b", b_port)):
        assert len(stored[name].fds) == 1
        assert _fd_port(stored[name].fds[0]) == (port, True), f"{name}'s stored fd is not its listening socket"
    env.remove_server("b")
    mark = sink.mark()
    assert env.control("reload")["result"]["removed"] == ["b"]
    removed = sink.wait_for(lambda m: m.fields.get("FDSTOREREMOVE") == "1", 20, "FDSTOREREMOVE=1", start=mark)
    assert removed.fields.get("FDNAME") == "b" and not removed.fds
    mark = sink.mark()
    run.stop()
    # Stopping keeps the store for the next supervisor: nothing is removed at shutdown.
    assert not [m for m in sink.all(mark) if "FDSTOREREMOVE" in m.fields]


# Execs the supervisor with the given descriptors moved to 3, 4, ... and LISTEN_* set as systemd sets them.
WRAPPER = r"""
import os, sys
fds = [int(x) for x in sys.argv[1].split(",")]
names = sys.argv[2]
moved = [os.dup(fd) for fd in fds]
for i, fd in enumerate(moved):
    if fd != 3 + i:
        os.dup2(fd, 3 + i)
    os.set_inheritable(3 + i, True)  # dup2 onto itself would keep the copy's close-on-exec
for fd in moved + fds:
    if fd >= 3 + len(fds):
        os.close(fd)
os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=names, LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[3], sys.argv[3:])
"""


def _listener(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    return s


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"^socket:\[(\d+)\]$", link)
        if m:
            out.add(int(m.group(1)))
    return out


def _answer(conn: socket.socket) -> bytes:
    conn.settimeout(30)
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_adopts_passed_sockets_drops_unknown_names_and_binds_only_new(env, sink):
    faulty = plugin_path("faulty")
    a_sock, gone_sock = _listener(), _listener()
    a_port = a_sock.getsockname()[1]
    env.write_server("a", faulty, port=a_port, config={"extra_tools": True})
    env.write_server("b", faulty)
    # A client connects before the supervisor exists: it waits in the passed socket's backlog.
    early = socket.create_connection(("127.0.0.1", a_port), timeout=10)
    early.sendall(raw_tools_call("ok", port=a_port))
    fds = (a_sock.fileno(), gone_sock.fileno())
    run = env.start(environ=sink.environ(),
                    prefix=(sys.executable, "-c", WRAPPER, ",".join(map(str, fds)), "a:gone"), pass_fds=fds)
    sink.wait_key("READY", "1", timeout=30)
    run.wait_for(rf"^mcp-supervisor: a: adopted the listening socket on port {a_port} from the fd store$", 5)
    reply = _answer(early)
    early.close()
    assert reply.startswith(b"HTTP/1.1 200") and b'"ok"' in reply, reply[:300]
    assert call_tool(a_port, "ok") == "ok"
    notes = sink.all()
    assert [m.fields.get("FDNAME") for m in notes if m.fields.get("FDSTOREREMOVE") == "1"] == ["gone"]
    assert [m.fields.get("FDNAME") for m in notes if m.fields.get("FDSTORE") == "1"] == ["b"]
    inodes = _socket_inodes(run.pid)
    assert os.fstat(a_sock.fileno()).st_ino in inodes, "the supervisor does not hold the passed socket of a"
    assert os.fstat(gone_sock.fileno()).st_ino not in inodes, "the socket of 'gone' was not closed"
    a_sock.close()
    gone_sock.close()


def test_socket_activate_hands_the_socket_over_and_the_first_connection_is_served(env, sink):
    faulty = plugin_path("faulty")
    port = free_port()
    env.write_server("a", faulty, port=port)
    activate = ("systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=a", "-E", f"NOTIFY_SOCKET={sink.path}",
                "-E", "PATH")
    run = env.start(environ=sink.environ(), prefix=activate)
    # systemd-socket-activate listens first and starts the supervisor at the first connection.
    def listening():
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            return c
        except ConnectionRefusedError:
            return None
    first = wait_until(listening, 10, f"systemd-socket-activate listening on {port}")
    first.sendall(raw_tools_call("ok", port=port))
    reply = _answer(first)
    first.close()
    assert reply.startswith(b"HTTP/1.1 200") and b'"ok"' in reply, reply[:300]
    run.wait_for(rf"^mcp-supervisor: a: adopted the listening socket on port {port} from the fd store$", 5)
    assert not [m for m in sink.all() if m.fields.get("FDSTORE") == "1"]
