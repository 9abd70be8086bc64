"""The supervisor's admin control socket and `mcpctl` (docs/mcpctl.md), end to end.

Every method is called through the real `mcpctl` binary (its `--json` output parsed and checked against the
supervisor's real state: pids from /proc, ports from the log), and the protocol's error paths through raw Python
sockets: malformed, invalid and truncated requests, an oversized line, 20 concurrent clients, the connection cap.
Authorization is checked with real users and groups the tests create (useradd/groupadd, removed afterwards;
no skips: CI runs as root), with mcpctl's message and the raw -32001 answer, and a supervisor run as a non-root user.

Each test runs its own supervisor (supervisor_fixtures.SupervisorEnv); its socket lives in a short folder under
/tmp (a Unix socket path is limited to 107 bytes, which pytest's tmp_path can exceed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from conftest import mcpctl_binary, plugin_path
from supervisor_fixtures import (  # noqa: F401 (control_env is the fixture env; sockdir and faulty are fixtures)
    SupervisorEnv, call_tool, control_env, faulty, free_port_range, pid_alive, proc_info, sockdir, wait_until)

pytestmark = pytest.mark.timeout(120)


def ctl(sock: Path, *args: str, prefix: tuple[str, ...] = (), timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, str(mcpctl_binary()), "--socket", str(sock), *args], capture_output=True,
                          text=True, timeout=timeout)


def ctl_ok(sock: Path, *args: str) -> str:
    r = ctl(sock, *args)
    assert r.returncode == 0, f"mcpctl {' '.join(args)}: status {r.returncode}: {r.stderr}{r.stdout}"
    return r.stdout


def ctl_json(sock: Path, *args: str):
    return json.loads(ctl_ok(sock, "--json", *args))


def ctl_fails(sock: Path, status: int, *args: str, prefix: tuple[str, ...] = ()) -> str:
    r = ctl(sock, *args, prefix=prefix)
    assert r.returncode == status, f"mcpctl {' '.join(args)}: status {r.returncode}, expected {status}: {r.stderr}"
    err = r.stderr.strip()
    assert err.startswith("mcpctl: ") and "\n" not in err, f"not one error line: {r.stderr!r}"
    return err


def start(env, *servers_ready: str):
    """Starts the supervisor and waits for each server's first health probe (after it, the supervisor's
    descriptors are steady: the probe's kept-alive connection is open)."""
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    pids = {name: run.running(name)[0] for name in servers_ready}
    for name in servers_ready:
        wait_until(lambda: ctl_json(env.sock, "status", name)["servers"][0]["health"] == "healthy", 10,
                   f"{name}'s first health probe")
    no_clients(env.sock)  # and the supervisor has closed the connections of those mcpctl runs
    return run, pids


# -- raw protocol ------------------------------------------------------------------------------------------------


def connect(sock: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(sock))
    return s


def read_line(s: socket.socket, buf: bytearray) -> dict | None:
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return json.loads(line)


def rpc_raw(sock: Path, payload: bytes) -> dict | None:
    with connect(sock) as s:
        s.sendall(payload)
        return read_line(s, bytearray())


def rpc(sock: Path, method: str, params: dict | None = None, id=1) -> dict:
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    reply = rpc_raw(sock, json.dumps(msg).encode() + b"\n")
    assert reply is not None, f"no answer to {method}"
    return reply


def open_clients(sock: Path) -> int:
    """Client connections the supervisor still holds: its accepted sockets, which /proc/net/unix lists under the
    socket's path in state 03 (connected). A client that closed is counted until the supervisor closes its end."""
    n = 0
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[7] == str(sock) and f[5] == "03":
            n += 1
    return n


def no_clients(sock: Path, timeout: float = 10.0) -> None:
    """Waits until the supervisor has closed every earlier client's connection (mcpctl runs before the test
    exited, but on a loaded machine the supervisor may not have seen the end of their connections yet)."""
    wait_until(lambda: open_clients(sock) == 0, timeout, "the supervisor closed the earlier client connections")


def settle_fds(run, expected: int, timeout: float = 3.0) -> int:
    try:
        return wait_until(lambda: (n := run.fd_count()) <= expected and n, timeout, f"fd count <= {expected}")
    except AssertionError:
        return run.fd_count()


# ------------------------------------------------------------------------------------------------------------


def test_socket_file_version_and_cleanup(env, faulty):
    # A stale socket file (a supervisor that died) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(env.sock))
    stale.close()
    assert env.sock.exists()
    env.write_server("one", faulty)
    run, _ = start(env, "one")
    st = env.sock.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_uid == os.getuid()

    assert ctl_json(env.sock, "version") == {"version": "0.1.0", "protocol": 2}
    assert ctl_ok(env.sock, "version").strip() == "mcp-supervisor 0.1.0 (control protocol 2)"

    run.stop()
    assert not env.sock.exists(), "the control socket was not removed at exit"
    err = ctl_fails(env.sock, 3, "status")
    assert str(env.sock) in err


def test_default_socket_path_is_in_the_state_dir(sockdir, faulty):
    # The configuration folder under the short /tmp folder, so the default path fits a Unix socket's 107 bytes.
    e = SupervisorEnv(sockdir)
    try:
        sock = e.state_dir / "control.sock"
        assert len(str(sock)) < 100, sock
        run = e.start()
        run.wait_for(rf"^mcp-supervisor: control: listening on {sock}$", 10)
        assert ctl_json(sock, "version")["protocol"] == 2
        env_run = subprocess.run([str(mcpctl_binary()), "--json", "version"], capture_output=True, text=True,
                                 timeout=30, env={**os.environ, "MCPCTL_SOCKET": str(sock)})
        assert env_run.returncode == 0 and json.loads(env_run.stdout)["protocol"] == 2
    finally:
        errors = e.cleanup()
    assert not errors, errors


def test_status_matches_the_real_processes(env, faulty):
    static = env.port_range[1]
    env.write_server("alpha", faulty)
    env.write_server("beta", faulty, port=static, replicas=2)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    alpha_pid, _ = run.running("alpha")
    beta_pids = {int(h.group(1)) for h in
                 run.wait_count(r"^mcp-supervisor: beta#\d\[(\d+)\]: running", 2, 20)}
    alpha_port = run.port_of("alpha")

    servers = {s["name"]: s for s in ctl_json(env.sock, "status")["servers"]}
    assert sorted(servers) == ["alpha", "beta"]
    a, b = servers["alpha"], servers["beta"]
    assert (a["state"], a["port"], a["port_kind"], a["failure"]) == ("running", alpha_port, "dynamic", None)
    assert (b["state"], b["port"], b["port_kind"]) == ("running", static, "static")
    assert a["kind"] == "plugin" and a["target"].endswith(".so") and "transport" not in a, a
    assert [r["pid"] for r in a["replicas"]] == [alpha_pid]
    assert {r["pid"] for r in b["replicas"]} == beta_pids, (b, run.log_text())
    assert [r["index"] for r in b["replicas"]] == [0, 1]
    for r in a["replicas"] + b["replicas"]:
        info = proc_info(r["pid"])
        assert info is not None and info.ppid == run.pid and info.state != "Z", f"{r} is not a live child: {info}"
        assert r["state"] == "running" and r["restarts"] == 0 and r["last_exit"] is None
        assert 0 <= r["uptime"] < 60

    one = ctl_json(env.sock, "status", "beta")["servers"]
    assert [s["name"] for s in one] == ["beta"]
    table = ctl_ok(env.sock, "status").splitlines()
    assert table[0].split() == ["SERVER", "STATE", "HEALTH", "PORT", "PID", "RESTARTS", "UPTIME", "LAST", "EXIT"]
    assert any(line.split()[:2] == ["alpha", "running"] and str(alpha_pid) in line for line in table[1:])
    assert sum(line.startswith("beta#") for line in table) == 2

    err = ctl_fails(env.sock, 1, "status", "nope")
    assert "unknown server 'nope'" in err



def test_stop_start_restart(env, faulty):
    env.write_server("svc", faulty)
    env.write_server("other", faulty)
    run, pids = start(env, "svc", "other")
    port = run.port_of("svc")
    pid = pids["svc"]

    mark = run.mark()
    assert ctl_json(env.sock, "stop", "svc") == {"servers": {"svc": "stopping"}}
    run.wait_for(rf"^mcp-supervisor: svc\[{pid}\]: exited", 20, mark)
    wait_until(lambda: not pid_alive(pid), 5, "the stopped host is gone")
    s = ctl_json(env.sock, "status", "svc")["servers"][0]
    assert s["state"] == "stopped" and s["replicas"][0]["pid"] is None
    run.assert_absent(r"^mcp-supervisor: svc\[\d+\]: starting$", 1.0, mark)  # stays stopped
    assert ctl_ok(env.sock, "stop", "svc").strip() == "svc: already stopped"
    assert pid_alive(pids["other"]), "stopping one server touched another"

    mark = run.mark()
    assert ctl_ok(env.sock, "start", "svc").strip() == "svc: started"
    new_pid, _ = run.running("svc", 20, mark)
    s = ctl_json(env.sock, "status", "svc")["servers"][0]
    assert s["state"] == "running" and s["port"] == port and s["replicas"][0]["pid"] == new_pid

    mark = run.mark()
    assert ctl_json(env.sock, "restart", "svc") == {"servers": {"svc": "restarting"}}
    newer_pid, _ = run.running("svc", 20, mark)
    assert newer_pid != new_pid and not pid_alive(new_pid)
    s = ctl_json(env.sock, "status", "svc")["servers"][0]
    assert s["port"] == port and s["replicas"][0]["pid"] == newer_pid
    assert ctl_json(env.sock, "status", "other")["servers"][0]["replicas"][0]["pid"] == pids["other"]

    for cmd in ("start", "stop", "restart"):
        assert "unknown server 'ghost'" in ctl_fails(env.sock, 1, cmd, "ghost")
    # Groups go through the protocol (params.servers).
    reply = rpc(env.sock, "restart", {"servers": ["svc", "other"]})
    assert reply["result"] == {"servers": {"svc": "restarting", "other": "restarting"}}, reply
    wait_until(lambda: all(r["pid"] not in (newer_pid, pids["other"], None) and r["state"] == "running"
                           for s in ctl_json(env.sock, "status")["servers"] for r in s["replicas"]),
               20, "both servers restarted")
    # Every decision is logged with the uid and the method.
    assert run.find_all(r"^mcp-supervisor: control: uid 0 \(pid \d+\): stop svc: allowed$")


def test_ports(env, faulty):
    static = env.port_range[1]
    env.write_server("dyn", faulty)
    env.write_server("fixed", faulty, port=static)
    run, _ = start(env, "dyn", "fixed")
    ports = ctl_json(env.sock, "ports")
    assert ports == {"dyn": {"port": run.port_of("dyn"), "kind": "dynamic"},
                     "fixed": {"port": static, "kind": "static"}}
    rows = [line.split() for line in ctl_ok(env.sock, "ports").splitlines()]
    assert rows == [["SERVER", "PORT", "KIND"], ["dyn", str(run.port_of("dyn")), "dynamic"],
                    ["fixed", str(static), "static"]]


def test_logs_and_follow(env, faulty):
    env.write_server("talk", faulty, config={"extra_tools": True})
    run, pids = start(env, "talk")
    port = run.port_of("talk")
    run.wait_for(rf"^talk\[{pids['talk']}\]: mcp-plugin-host: serving", 10)
    result = ctl_json(env.sock, "logs", "talk")
    assert result["server"] == "talk"
    lines = result["lines"]
    assert f"mcp-supervisor: talk[{pids['talk']}]: starting" in lines
    assert any(l.startswith(f"talk[{pids['talk']}]: mcp-plugin-host: serving") for l in lines), lines
    assert ctl_json(env.sock, "logs", "talk", "-n", "1")["lines"] == lines[-1:]
    assert ctl_ok(env.sock, "logs", "talk", "-n", "2").splitlines() == lines[-2:]
    assert "unknown server 'x'" in ctl_fails(env.sock, 1, "logs", "x")
    assert ctl(env.sock, "logs", "talk", "-n", "-3").returncode == 2

    wait_until(lambda: ctl_json(env.sock, "status", "talk")["servers"][0]["health"] == "healthy", 10, "first probe")
    no_clients(env.sock)
    baseline = run.fd_count()
    # -n 1: the follower prints the last line as soon as its request is handled, which is when it is subscribed
    # (an fd count cannot tell: an earlier client's connection may still be open on a loaded machine).
    follower = subprocess.Popen([str(mcpctl_binary()), "--socket", str(env.sock), "logs", "talk", "-n", "1", "-f"],
                                stdout=subprocess.PIPE, text=True)
    got: list[str] = []
    done = threading.Event()
    subscribed = threading.Event()

    def reader():
        for line in follower.stdout:
            got.append(line.rstrip("\n"))
            subscribed.set()
            if "spam 3 of 3" in line:
                done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert subscribed.wait(10), "the follower printed nothing"
        assert call_tool(port, "spam", {"count": 3}) == "spammed 3"
        assert done.wait(10), f"the follower did not stream the new lines: {got}"
        assert [l for l in got if "spam" in l][-3:] == [f"talk[{pids['talk']}]: spam {i} of 3" for i in (1, 2, 3)]
    finally:
        follower.terminate()
        follower.wait(10)
    no_clients(env.sock)
    assert settle_fds(run, baseline) == baseline, "the follower's connection was not released"
    assert call_tool(port, "spam", {"count": 1}) == "spammed 1"  # lines to nobody: fine


def test_reload(env, faulty):
    env.write_server("keep", faulty)
    run, pids = start(env, "keep")
    env.write_server("fresh", faulty)
    mark = run.mark()
    assert ctl_json(env.sock, "reload") == {"added": ["fresh"], "removed": [], "changed": [], "unchanged": ["keep"]}
    run.running("fresh", 20, mark)
    assert sorted(s["name"] for s in ctl_json(env.sock, "status")["servers"]) == ["fresh", "keep"]

    bad = env.write_raw("broken", 'plugin = "x.so"\nrestart = "sometimes"\n')
    err = ctl_fails(env.sock, 1, "reload")
    assert f"{bad}:2: restart: must be always, on-failure or never" in err, err
    reply = rpc(env.sock, "reload")
    assert reply["error"]["code"] == -32003
    assert reply["error"]["data"] == {"file": str(bad), "line": 2, "key": "restart",
                                      "message": "must be always, on-failure or never, not 'sometimes'"}
    assert ctl_json(env.sock, "status", "keep")["servers"][0]["replicas"][0]["pid"] == pids["keep"]
    env.remove_server("broken")
    assert ctl_ok(env.sock, "reload").strip() == "reload: 0 added, 0 removed, 0 changed, 2 unchanged"


def test_protocol_errors_and_robustness(env, faulty):
    env.write_server("svc", faulty)
    run, pids = start(env, "svc")
    baseline = run.fd_count()
    sock = env.sock

    def code(reply):
        assert reply is not None and "error" in reply, reply
        return reply["error"]["code"]

    assert code(rpc_raw(sock, b"{not json\n")) == -32700
    assert code(rpc_raw(sock, b"[1, 2]\n")) == -32600
    assert code(rpc_raw(sock, b'"hello"\n')) == -32600
    assert code(rpc_raw(sock, b'{"jsonrpc": "1.0", "id": 1, "method": "status"}\n')) == -32600
    assert code(rpc(sock, "frobnicate")) == -32601
    assert code(rpc(sock, "status", {"server": 5})) == -32602
    assert code(rpc(sock, "logs", {})) == -32602
    assert code(rpc(sock, "logs", {"server": "svc", "lines": "ten"})) == -32602
    assert code(rpc(sock, "stop", {})) == -32602
    assert code(rpc(sock, "stop", {"servers": []})) == -32602
    assert rpc(sock, "version", id="abc") == {"jsonrpc": "2.0", "id": "abc",
                                              "result": {"version": "0.1.0", "protocol": 2}}

    # Several requests on one connection, answered in order; a notification gets no answer.
    with connect(sock) as s:
        s.sendall(b'{"jsonrpc":"2.0","method":"status"}\n'
                  + b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "version"}).encode() + b"\n"
                             for i in range(5)))
        buf = bytearray()
        assert [read_line(s, buf)["id"] for _ in range(5)] == [0, 1, 2, 3, 4]

    # Truncated: no newline, then the write side closes; the partial line is answered, then the connection ends.
    with connect(sock) as s:
        s.sendall(b'{"jsonrpc":"2.0","id":7,"method":"vers')
        s.shutdown(socket.SHUT_WR)
        buf = bytearray()
        assert code(read_line(s, buf)) == -32700
        assert read_line(s, buf) is None
    # A complete request without its newline before the half-close is still answered.
    with connect(sock) as s:
        s.sendall(b'{"jsonrpc":"2.0","id":8,"method":"version"}')
        s.shutdown(socket.SHUT_WR)
        assert read_line(s, bytearray())["id"] == 8
    # Gone mid-request: nothing to answer, nothing left behind.
    for _ in range(10):
        with connect(sock) as s:
            s.sendall(b'{"jsonrpc":"2.0","id":9,"meth')
    # Oversized: an error, then the connection is closed.
    with connect(sock) as s:
        try:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pad":"' + b"x" * 70000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = bytearray()
        reply = read_line(s, buf)
        assert code(reply) == -32006 and "65536" in reply["error"]["message"]
        assert read_line(s, buf) is None
    # An oversized line that does end in a newline.
    with connect(sock) as s:
        try:
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status",
                                  "params": {"pad": "y" * 80000}}).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert code(read_line(s, bytearray())) == -32006

    # 20 concurrent clients, each with its own requests.
    results: dict[int, object] = {}

    def client(i):
        try:
            with connect(sock) as s:
                buf = bytearray()
                s.sendall(json.dumps({"jsonrpc": "2.0", "id": i, "method": "status"}).encode() + b"\n")
                a = read_line(s, buf)
                s.sendall(json.dumps({"jsonrpc": "2.0", "id": 100 + i, "method": "ports"}).encode() + b"\n")
                b = read_line(s, buf)
                results[i] = (a, b)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 20
    for i, r in results.items():
        assert isinstance(r, tuple), f"client {i}: {r}"
        a, b = r
        assert a["id"] == i and a["result"]["servers"][0]["replicas"][0]["pid"] == pids["svc"]
        assert b["id"] == 100 + i and b["result"]["svc"]["kind"] == "dynamic"

    assert settle_fds(run, baseline) == baseline, "client connections left descriptors behind"
    assert ctl_json(sock, "status", "svc")["servers"][0]["replicas"][0]["pid"] == pids["svc"]


def test_connection_cap(env, faulty):
    env.write_server("svc", faulty)
    run, _ = start(env, "svc")
    no_clients(env.sock)  # the cap counts open connections: start() made some
    baseline = run.fd_count()
    held = [connect(env.sock) for _ in range(64)]
    try:
        # Make sure all 64 were accepted (each answers).
        for s in held:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"version"}\n')
            assert read_line(s, bytearray())["id"] == 1
        with connect(env.sock) as extra:
            buf = bytearray()
            reply = read_line(extra, buf)
            assert reply["error"]["code"] == -32005, reply
            assert read_line(extra, buf) is None
    finally:
        for s in held:
            s.close()
    assert settle_fds(run, baseline) == baseline
    assert ctl_json(env.sock, "version")["protocol"] == 2


def test_fifty_servers_in_one_status(env, faulty):
    env.port_range = free_port_range(64)
    env.write_main(control_socket=str(env.sock))
    for i in range(50):
        env.write_server(f"s{i:02d}", faulty)
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    hits = run.wait_count(r"^mcp-supervisor: (s\d\d)\[(\d+)\]: running", 50, 60)
    expected = {h.group(1): int(h.group(2)) for h in hits}
    servers = ctl_json(env.sock, "status")["servers"]
    assert len(servers) == 50
    assert {s["name"]: s["replicas"][0]["pid"] for s in servers} == expected
    assert all(s["state"] == "running" for s in servers)
    assert len(ctl_ok(env.sock, "status").splitlines()) == 51


# -- start on a server that is not coming back by itself -----------------------------------------------------


def server_status(sock: Path, name: str) -> dict:
    return ctl_json(sock, "status", name)["servers"][0]


def test_start_brings_back_a_fatal_server_before_its_cooldown(env, faulty):
    # Exits 100 ms after create; one restart allowed per 30 s: fatal at the second exit, cool-down 300 s.
    env.write_server("burst", faulty, restart="always", config={"exit_after_ms": 100, "exit_status": 3},
                     backoff={"initial": 0.1, "max": 1, "multiplier": 1, "jitter": 0},
                     intensity={"max_restarts": 1, "window": 30, "cooldown": 300})
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: server_status(env.sock, "burst")["replicas"][0]["state"] == "fatal", 20, "fatal")
    s = server_status(env.sock, "burst")
    assert s["state"] == "down" and s["replicas"][0]["pid"] is None, s
    mark = run.mark()
    # Now, not after the 300 s cool-down: a new child starts, with a fresh window (it is restarted again).
    assert ctl_ok(env.sock, "start", "burst").strip() == "burst: started"
    # (The child lives 100 ms, too short to catch in status: its start line is the event.)
    run.wait_for(r"^mcp-supervisor: burst\[\d+\]: starting$", 10, mark)
    wait_until(lambda: server_status(env.sock, "burst")["replicas"][0]["state"] == "fatal", 20, "fatal again")


def test_start_retries_a_permanently_exited_server(env, faulty):
    env.write_server("broken", plugin_path("create_fails"), restart="always")
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    wait_until(lambda: (r := server_status(env.sock, "broken")["replicas"][0])["state"] == "exited"
               and r["last_exit"] is not None, 20, "exited with 16, not restarted")
    s = server_status(env.sock, "broken")
    assert s["state"] == "down" and "16" in str(s["replicas"][0]["last_exit"]), s
    starts = len(run.find_all(r"^mcp-supervisor: broken\[\d+\]: starting$"))
    assert starts == 1
    # An operator who fixed the cause asks again: one new attempt (which fails the same way here).
    assert ctl_ok(env.sock, "start", "broken").strip() == "broken: started"
    run.wait_count(r"^mcp-supervisor: broken\[\d+\]: starting$", 2, 10)
    wait_until(lambda: server_status(env.sock, "broken")["replicas"][0]["state"] == "exited", 20, "exited again")
    run.assert_absent(r"^mcp-supervisor: broken\[\d+\]: starting$", 1.0, run.mark())
    assert len(run.find_all(r"^mcp-supervisor: broken\[\d+\]: starting$")) == 2


# -- a client that does not read, and the shutdown answer ------------------------------------------------------


def test_client_that_lets_4_mib_pile_up_is_disconnected(env, faulty):
    env.write_server("talk", faulty, config={"extra_tools": True})
    run, pids = start(env, "talk")
    port = run.port_of("talk")
    assert call_tool(port, "spam", {"count": 2000}) == "spammed 2000"
    ring = ctl_json(env.sock, "logs", "talk", "-n", "1000")["lines"]
    answer = len(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"server": "talk", "lines": ring}})) + 1
    no_clients(env.sock)
    baseline = run.fd_count()
    # Enough requests that their answers are well over 4 MiB, plus what the two socket buffers can hold.
    count = (8 << 20) // answer + 1
    requests = b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "logs",
                                    "params": {"server": "talk", "lines": 1000}}).encode() + b"\n"
                        for i in range(count))
    with connect(env.sock) as s:
        s.settimeout(30)
        try:
            s.sendall(requests)
        except (BrokenPipeError, ConnectionResetError):
            pass  # already cut off while still sending: the same outcome
        # Not reading, the pile grows; the supervisor closes the connection rather than wait.
        run.wait_for(r"^mcp-supervisor: control: uid 0 \(pid \d+\) does not read its answers; closing$", 20)
        received = 0
        try:
            while chunk := s.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < count * answer, f"all {count} answers arrived ({received} bytes): nothing was cut off"
    no_clients(env.sock)
    assert settle_fds(run, baseline) == baseline, "the dropped client left descriptors behind"
    # Everyone else is served as before.
    assert ctl_json(env.sock, "status", "talk")["servers"][0]["replicas"][0]["pid"] == pids["talk"]


def test_changing_requests_during_shutdown_get_32004(env, faulty):
    # A server that takes a while to stop (it ignores the stop message's drain and SIGTERM): the shutdown lasts
    # about 2 x stop_timeout, long enough to ask the supervisor for something while it is going down.
    env.write_server("stubborn", faulty, stop_timeout=2, host_args=["--drain-timeout", "60"],
                     config={"ignore_sigterm": True, "destroy_sleep_ms": 60000})
    run, pids = start(env, "stubborn")
    mark = run.mark()
    run.signal(signal.SIGTERM)
    run.wait_for(rf"^mcp-supervisor: stubborn\[{pids['stubborn']}\]: stopping$", 5, mark)
    for method, params in (("restart", {"server": "stubborn"}), ("start", {"server": "stubborn"}),
                           ("stop", {"server": "stubborn"}), ("reload", None)):
        reply = rpc(env.sock, method, params)
        assert "result" not in reply and reply["error"]["code"] == -32004, (method, reply)
    err = ctl_fails(env.sock, 1, "restart", "stubborn")
    assert "shutting down" in err, err
    # Reading still works while it goes down.
    assert ctl_json(env.sock, "status", "stubborn")["servers"][0]["name"] == "stubborn"
    assert run.proc.wait(timeout=2 * 2 + 10) == 0  # two stop steps of 2 s, then SIGKILL, with a margin
    run.stop()


# -- authorization -----------------------------------------------------------------------------------------------
#
# CI runs as root, so these tests create their users and groups (unique names, removed afterwards even when the
# test fails) and run mcpctl and raw clients as them. They do not skip: without root they fail, saying so.


class Accounts:
    """Throwaway users and groups (useradd/groupadd), each removed at teardown."""

    def __init__(self):
        self.users: list[str] = []
        self.groups: list[str] = []

    def group(self) -> dict:
        import grp

        name = f"mcpg{uuid.uuid4().hex[:10]}"
        r = subprocess.run(["groupadd", name], capture_output=True, text=True)
        assert r.returncode == 0, f"groupadd {name}: {r.stderr.strip()}"
        self.groups.append(name)
        return {"name": name, "gid": grp.getgrnam(name).gr_gid}

    def user(self) -> dict:
        import pwd

        name = f"mcpu{uuid.uuid4().hex[:10]}"
        r = subprocess.run(["useradd", "-M", "-N", "-s", "/bin/false", name], capture_output=True, text=True)
        assert r.returncode == 0, f"useradd {name}: {r.stderr.strip()}"
        self.users.append(name)
        pw = pwd.getpwnam(name)
        return {"name": name, "uid": pw.pw_uid, "gid": pw.pw_gid}

    def remove(self) -> None:
        for name in self.users:
            subprocess.run(["userdel", name], capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def accounts():
    if os.getuid() != 0:
        pytest.fail("the authorization tests create users: run them as root (CI does)")
    for tool in ("useradd", "groupadd", "userdel", "groupdel", "setpriv"):
        assert shutil.which(tool), f"{tool} is needed (passwd and util-linux, scripts/install-deps.sh)"
    a = Accounts()
    try:
        yield a
    finally:
        a.remove()


def as_user(u: dict, *groups: int) -> tuple[str, ...]:
    """A setpriv prefix that runs a command as `u` with exactly `groups` as supplementary groups."""
    return ("setpriv", f"--reuid={u['uid']}", f"--regid={u['gid']}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")


RAW_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while b"\n" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
sys.stdout.write(buf.partition(b"\n")[0].decode())
"""


def rpc_as(u: dict, sock: Path, method: str, params: dict | None = None, *groups: int) -> dict:
    """One raw control-socket request made by a process of user `u` (the system python3: the venv's lives under
    /root, which another user cannot reach)."""
    msg = {"jsonrpc": "2.0", "id": 7, "method": method, **({"params": params} if params is not None else {})}
    r = subprocess.run([*as_user(u, *groups), "/usr/bin/python3", "-c", RAW_CLIENT, str(sock), json.dumps(msg)],
                       capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, f"raw client as {u['name']}: {r.stderr}"
    return json.loads(r.stdout)


def test_non_admin_can_read_but_not_change(tmp_path, sockdir, faulty, accounts):
    u = accounts.user()
    admin = accounts.group()
    e = SupervisorEnv(tmp_path)
    sock = sockdir / "control.sock"
    e.write_main(control_socket=str(sock), control_group=admin["name"])
    e.write_server("svc", faulty)
    try:
        run = e.start()
        run.wait_for(rf"^mcp-supervisor: control: listening on {sock} \(group {admin['name']}\)$", 10)
        pid, _ = run.running("svc")
        st = sock.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == admin["gid"]

        # Not in the group: the socket file itself keeps the user out (0660), with the group to join.
        err = ctl_fails(sock, 4, "status", prefix=as_user(u))
        assert admin["name"] in err and str(sock) in err

        # Opened for reading to everyone (the documented way: chmod o+rw or an ACL), the server still decides.
        sock.chmod(0o666)
        r = ctl(sock, "--json", "status", prefix=as_user(u))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["servers"][0]["replicas"][0]["pid"] == pid
        for args in (("ports",), ("version",), ("logs", "svc", "-n", "3"), ("health", "svc", "--level", "basic")):
            assert ctl(sock, *args, prefix=as_user(u)).returncode == 0, args
        for args in (("stop", "svc"), ("restart", "svc"), ("start", "svc"), ("reload",)):
            err = ctl_fails(sock, 4, *args, prefix=as_user(u))
            assert "permission denied" in err and f"'{admin['name']}'" in err, err
        run.wait_for(rf"^mcp-supervisor: control: uid {u['uid']} \(pid \d+\): stop svc: refused$", 5)
        # The protocol's own answer: -32001 with the group to join in data.group, for every changing method.
        for method, params in (("stop", {"server": "svc"}), ("restart", {"servers": ["svc"]}),
                               ("start", {"server": "svc"}), ("reload", None)):
            reply = rpc_as(u, sock, method, params)
            assert reply.get("id") == 7 and "result" not in reply, reply
            assert reply["error"]["code"] == -32001, reply
            assert reply["error"]["data"] == {"group": admin["name"]}, reply
            assert admin["name"] in reply["error"]["message"] and method in reply["error"]["message"], reply
        # Reading methods answer the same user normally.
        assert rpc_as(u, sock, "version")["result"]["protocol"] == 2
        # Nothing was carried out: the same process, not stopping, as status shows.
        assert pid_alive(pid) and proc_info(pid).state != "Z", "a refused stop stopped the server"
        s = ctl_json(sock, "status", "svc")["servers"][0]
        assert s["state"] == "running" and s["replicas"][0]["pid"] == pid

        # A member of control_group (a supplementary group, seen through SO_PEERGROUPS) may change things.
        r = ctl(sock, "restart", "svc", prefix=as_user(u, admin["gid"]))
        assert r.returncode == 0, r.stderr
        run.wait_for(rf"^mcp-supervisor: control: uid {u['uid']} \(pid \d+\): restart svc: allowed$", 5)
        wait_until(lambda: not pid_alive(pid), 20, "the old host is gone after the member's restart")
        wait_until(lambda: (r := ctl_json(sock, "status", "svc")["servers"][0]["replicas"][0])["state"] == "running"
                   and r["pid"] not in (pid, None), 20, "the member's restart took effect")
    finally:
        errors = e.cleanup()
    assert not errors, errors


def test_supervisor_running_as_a_non_root_user(faulty, accounts):
    """A supervisor started as an ordinary user: its state and socket are that user's, its children run as it,
    the user itself may change servers (its own uid is admin), another user may read but gets -32001 with
    data.group null (no control_group), and root may still do everything."""
    owner = accounts.user()
    other = accounts.user()
    # Everything the non-root supervisor touches lives in a folder of its own (pytest's tmp_path is 0700 root),
    # binaries and plugin included (the checkout may not be readable by other users).
    base = Path(tempfile.mkdtemp(prefix="mcpsup-", dir="/tmp"))
    try:
        base.chmod(0o755)
        from conftest import host_binary, supervisor_binary

        bindir = base / "bin"
        bindir.mkdir()
        for src in (host_binary(), supervisor_binary(), faulty):
            shutil.copy2(src, bindir / Path(src).name)
        e = SupervisorEnv(base / "cfg")
        sock = e.state_dir / "control.sock"
        e.write_main(host=str(bindir / host_binary().name))
        e.write_server("svc", bindir / Path(faulty).name, config={"extra_tools": True})
        subprocess.run(["chown", "-R", f"{owner['uid']}:{owner['gid']}", str(base / "cfg")], check=True)
        run = e.start(host=bindir / host_binary().name, user=(owner["uid"], owner["gid"]))
        try:
            run.wait_for(rf"^mcp-supervisor: control: listening on {sock}$", 10)
            pid, _ = run.running("svc")
            assert proc_info(run.pid).comm.startswith("mcp-supervisor")
            assert os.stat(f"/proc/{run.pid}").st_uid == owner["uid"]
            assert os.stat(f"/proc/{pid}").st_uid == owner["uid"], "the child does not run as the supervisor's user"
            # Its state: the socket (0660, the user's) and the port registry belong to the user.
            st = sock.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner["uid"], 0o660)
            wait_until(lambda: (e.state_dir / "ports.json").exists(), 10, "the port registry")
            assert (e.state_dir / "ports.json").stat().st_uid == owner["uid"]
            port = run.port_of("svc")
            assert call_tool(port, "pid") == str(pid)

            # The owner may change servers: its uid is the supervisor's.
            r = ctl(sock, "--json", "restart", "svc", prefix=as_user(owner))
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout) == {"servers": {"svc": "restarting"}}
            wait_until(lambda: (x := ctl_json(sock, "status", "svc")["servers"][0]["replicas"][0])["state"] == "running"
                       and x["pid"] not in (pid, None), 20, "the owner's restart took effect")
            pid = ctl_json(sock, "status", "svc")["servers"][0]["replicas"][0]["pid"]

            # Another user, let in by the file mode, reads but cannot change; no control_group: data.group null.
            sock.chmod(0o666)
            assert rpc_as(other, sock, "status")["result"]["servers"][0]["replicas"][0]["pid"] == pid
            reply = rpc_as(other, sock, "stop", {"server": "svc"})
            assert reply["error"]["code"] == -32001 and reply["error"]["data"] == {"group": None}, reply
            assert f"uid {owner['uid']}" in reply["error"]["message"], reply
            err = ctl_fails(sock, 4, "stop", "svc", prefix=as_user(other))
            assert "permission denied" in err and "control_group" in err, err
            assert ctl_json(sock, "status", "svc")["servers"][0]["replicas"][0]["pid"] == pid

            # Root is always admin.
            assert ctl_json(sock, "stop", "svc") == {"servers": {"svc": "stopping"}}
            wait_until(lambda: ctl_json(sock, "status", "svc")["servers"][0]["state"] == "stopped", 20,
                       "stopped by root")
        finally:
            errors = e.cleanup()
        assert not errors, errors
        assert not sock.exists(), "the socket file was left behind"
    finally:
        shutil.rmtree(base, ignore_errors=True)
