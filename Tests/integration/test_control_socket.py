"""The supervisor's admin control socket and `mcpctl` (docs/mcpctl.md), end to end.

Every method is called through the real `mcpctl` binary (its `--json` output parsed and checked against the
supervisor's real state: pids from /proc, ports from the log), and the protocol's error paths through raw Python
sockets: malformed, invalid and truncated requests, an oversized line, 20 concurrent clients, the connection cap.
Authorization is checked with a real unprivileged user created for the test (useradd; skipped without it).

Each test runs its own supervisor (supervisor_fixtures.SupervisorEnv); its socket lives in a short folder under
/tmp (a Unix socket path is limited to 107 bytes, which pytest's tmp_path can exceed).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, plugin_path
from supervisor_fixtures import SupervisorEnv, call_tool, free_port_range, pid_alive, proc_info, wait_until

pytestmark = pytest.mark.timeout(120)


def mcpctl_binary() -> Path:
    path = Path(os.environ.get("MCPCTL", REPO / ".build" / "release" / "mcpctl"))
    if not path.exists():
        pytest.fail(f"mcpctl not built at {path} (swift build -c release)")
    return path


@pytest.fixture
def sockdir():
    d = Path(tempfile.mkdtemp(prefix="mcpctl-", dir="/tmp"))
    d.chmod(0o755)  # the unprivileged user of the authorization test must reach the socket
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env(tmp_path, sockdir):
    e = SupervisorEnv(tmp_path)
    e.sock = sockdir / "control.sock"
    e.write_main(control_socket=str(e.sock))
    yield e
    errors = e.cleanup()
    if errors:
        pytest.fail("supervisor teardown: " + "\n".join(errors), pytrace=False)


@pytest.fixture
def faulty():
    return plugin_path("faulty")


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


def test_default_socket_path_is_in_the_state_dir(tmp_path, faulty):
    e = SupervisorEnv(tmp_path)
    try:
        sock = e.state_dir / "control.sock"
        if len(str(sock)) > 100:
            pytest.skip(f"tmp path too long for a Unix socket: {sock}")
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
    assert [r["pid"] for r in a["replicas"]] == [alpha_pid]
    assert {r["pid"] for r in b["replicas"]} == beta_pids
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
    assert run.find_all(rf"^mcp-supervisor: control: uid 0 \(pid \d+\): stop svc: allowed$")


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
    baseline = run.fd_count()
    follower = subprocess.Popen([str(mcpctl_binary()), "--socket", str(env.sock), "logs", "talk", "-n", "0", "-f"],
                                stdout=subprocess.PIPE, text=True)
    got: list[str] = []
    done = threading.Event()

    def reader():
        for line in follower.stdout:
            got.append(line.rstrip("\n"))
            if "spam 3 of 3" in line:
                done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        wait_until(lambda: run.fd_count() > baseline, 5, "the follower is connected")
        assert call_tool(port, "spam", {"count": 3}) == "spammed 3"
        assert done.wait(10), f"the follower did not stream the new lines: {got}"
        assert [l for l in got if "spam" in l][-3:] == [f"talk[{pids['talk']}]: spam {i} of 3" for i in (1, 2, 3)]
    finally:
        follower.terminate()
        follower.wait(10)
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


# -- authorization -----------------------------------------------------------------------------------------------


@pytest.fixture
def unprivileged():
    """A throwaway user (no supplementary groups) and a throwaway admin group; removed afterwards."""
    if os.getuid() != 0 or not shutil.which("useradd") or not shutil.which("groupadd"):
        pytest.skip("needs root and useradd/groupadd")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv")
    tag = uuid.uuid4().hex[:8]
    user, group = f"mcpctl-u{tag}", f"mcpctl-g{tag}"
    r = subprocess.run(["groupadd", group], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"groupadd failed: {r.stderr.strip()}")
    r = subprocess.run(["useradd", "-M", "-N", "-s", "/bin/false", user], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["groupdel", group], capture_output=True)
        pytest.skip(f"useradd failed: {r.stderr.strip()}")
    import grp
    import pwd

    pw = pwd.getpwnam(user)
    try:
        yield {"user": user, "uid": pw.pw_uid, "gid": pw.pw_gid, "group": group, "admin_gid": grp.getgrnam(group).gr_gid}
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


def test_non_admin_can_read_but_not_change(tmp_path, sockdir, faulty, unprivileged):
    u = unprivileged
    e = SupervisorEnv(tmp_path)
    sock = sockdir / "control.sock"
    e.write_main(control_socket=str(sock), control_group=u["group"])
    e.write_server("svc", faulty)
    try:
        run = e.start()
        run.wait_for(rf"^mcp-supervisor: control: listening on {sock} \(group {u['group']}\)$", 10)
        pid, _ = run.running("svc")
        st = sock.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == u["admin_gid"]

        as_user = ("setpriv", f"--reuid={u['uid']}", f"--regid={u['gid']}", "--clear-groups")
        # Not in the group: the socket file itself keeps the user out (0660), with the group to join.
        err = ctl_fails(sock, 4, "status", prefix=as_user)
        assert u["group"] in err and str(sock) in err

        # Opened for reading to everyone (the documented way: chmod o+rw or an ACL), the server still decides.
        sock.chmod(0o666)
        r = ctl(sock, "--json", "status", prefix=as_user)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["servers"][0]["replicas"][0]["pid"] == pid
        for args in (("ports",), ("version",), ("logs", "svc", "-n", "3"), ("health", "svc", "--level", "basic")):
            assert ctl(sock, *args, prefix=as_user).returncode == 0, args
        for args in (("stop", "svc"), ("restart", "svc"), ("start", "svc"), ("reload",)):
            err = ctl_fails(sock, 4, *args, prefix=as_user)
            assert "permission denied" in err and f"'{u['group']}'" in err, err
        run.wait_for(rf"^mcp-supervisor: control: uid {u['uid']} \(pid \d+\): stop svc: refused$", 5)
        # A request is handled completely before its answer is written: an accepted stop would be logged by now.
        assert not run.find_all(r"svc: stop requested"), "a refused stop was carried out"
        assert pid_alive(pid) and proc_info(pid).state != "Z", "a refused stop stopped the server"
        assert ctl_json(sock, "status", "svc")["servers"][0]["replicas"][0]["pid"] == pid

        # A member of control_group (a supplementary group, seen through SO_PEERGROUPS) may change things.
        as_member = ("setpriv", f"--reuid={u['uid']}", f"--regid={u['gid']}", f"--groups={u['admin_gid']}")
        r = ctl(sock, "restart", "svc", prefix=as_member)
        assert r.returncode == 0, r.stderr
        run.wait_for(rf"^mcp-supervisor: control: uid {u['uid']} \(pid \d+\): restart svc: allowed$", 5)
        wait_until(lambda: not pid_alive(pid), 20, "the old host is gone after the member's restart")
    finally:
        errors = e.cleanup()
    assert not errors, errors
