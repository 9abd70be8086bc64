"""The process contract of docs/supervisor.md ("Children", "Signals"), checked on the processes themselves.

What a child gets at exec is recorded by a stand-in host (Tests/fixtures/exec_probe.c, built here with cc)
before it opens anything of its own: its descriptors, its environment, its ids and signal masks. The rest uses
the real host: the host's whole process group is stopped, orphans it leaves are reaped by the supervisor (a
child subreaper), a supervisor killed with SIGKILL takes its children with it, SIGINT stops like SIGTERM.

Bounds: every wait is on an event or a /proc condition with a deadline derived from a configured value plus a
margin of 5 s (a loaded two-core machine's scheduling delay, with room; see conftest's docstring).
"""

from __future__ import annotations

import ctypes
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SANITIZER, plugin_path, start_host, wait_exit, assert_reaped
from supervisor_fixtures import (  # noqa: F401 (control_env is the fixture env; faulty is a fixture)
    SupervisorEnv, call_tool, control_env, faulty, pid_alive, proc_info, wait_until)

pytestmark = pytest.mark.timeout(120)

MARGIN = 5.0  # seconds added to a configured duration for a loaded machine (module docstring)
# The variables a child takes from the supervisor's environment when they are set (docs/supervisor.md).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "RUST_BACKTRACE",
             "ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS")
# What systemd (or a socket-activating parent) hands the supervisor and must stop at the supervisor.
SYSTEMD_VARS = {"NOTIFY_SOCKET": "/run/test-notify-nonexistent", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1",
                "LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "test"}


@pytest.fixture(scope="module")
def exec_probe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exec_probe") / "exec_probe"
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler (cc) is needed to build Tests/fixtures/exec_probe.c (scripts/install-deps.sh)"
    r = subprocess.run([cc, "-O1", "-Wall", "-Werror", "-o", str(out), str(REPO / "Tests/fixtures/exec_probe.c")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return out


def rpc(sock: Path, method: str, params: dict | None = None) -> dict:
    """One control-socket request (docs/mcpctl.md), answered on the same connection."""
    msg = {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params is not None else {})}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sock))
        s.sendall(json.dumps(msg).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"the control socket closed without answering {method}"
            buf += chunk
    return json.loads(buf.partition(b"\n")[0])


def status(sock: Path, name: str) -> dict:
    reply = rpc(sock, "status", {"server": name})
    assert "result" in reply, reply
    return reply["result"]["servers"][0]


def read_probe(out: Path, replica: int, timeout: float = 10.0) -> dict:
    path = Path(f"{out}.{replica}")
    wait_until(path.exists, timeout, f"the exec probe's record {path}")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------------------
# What a child gets at exec
# ------------------------------------------------------------------------------------------------------------


def test_child_gets_exactly_fds_0_to_4_and_an_explicit_environment(env, faulty, exec_probe, tmp_path):
    out = tmp_path / "probe.json"
    env.write_server("probe", faulty, replicas=2, env={"PROBE_OUT": str(out), "FROM_SERVER_ENV": "yes"},
                     host_args=["--call-timeout", "7"], config={"answer": 42}, health={"interval": 0})
    environ = {k: v for k, v in os.environ.items() if k in INHERITED}
    environ.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root-test-home", "LANG": "C.UTF-8",
                    "TZ": "UTC", "TMPDIR": "/tmp", "RUST_BACKTRACE": "1", "NOT_FOR_CHILDREN": "secret",
                    "UBSAN_OPTIONS": "print_stacktrace=1"})  # a sanitizer's options reach the child (none here uses them)
    environ.update(SYSTEMD_VARS)
    run = env.start(host=exec_probe, environ=environ)
    port = run.port_of("probe")
    pids = {int(h.group(1)): int(h.group(2)) for h in
            run.wait_count(r"^mcp-supervisor: probe#(\d)\[(\d+)\]: running", 2, 20)}

    for replica in (0, 1):
        rec = read_probe(out, replica)
        assert rec["pid"] == pids[replica]
        # Descriptors: exactly 0-4, each what the document says, none marked close-on-exec that must survive.
        fds = {f["fd"]: f for f in rec["fds"]}
        assert sorted(fds) == [0, 1, 2, 3, 4], f"replica {replica} got descriptors {rec['fds']}"
        assert fds[0]["target"] == "/dev/null"
        for n in (1, 2):
            assert fds[n]["target"].startswith("pipe:["), fds[n]
        listen = fds[3]
        assert (listen.get("domain"), listen.get("type"), listen.get("listening")) == ("inet", "stream", True), listen
        assert listen["port"] == port, f"fd 3 listens on {listen.get('port')}, the server's port is {port}"
        control = fds[4]
        assert (control.get("domain"), control.get("type"), control.get("listening")) == ("unix", "stream", False)
        # Environment: the listed variables from the supervisor, the server's [env], the MCP_* ones; nothing else.
        expected = {k: v for k, v in environ.items() if k in INHERITED}
        expected.update({"PROBE_OUT": str(out), "FROM_SERVER_ENV": "yes", "MCP_LISTEN_FD": "3",
                         "MCP_CONTROL_FD": "4", "MCP_SERVER_NAME": "probe", "MCP_REPLICA": str(replica),
                         "MCP_LOG_FORMAT": "json"})
        # MCP_BOX: the child's box (docs/security.md), a JSON object; test_box_supervisor.py checks its content.
        box = rec["env"].get("MCP_BOX")
        assert box is not None and json.loads(box)["enabled"] is (SANITIZER is None), rec["env"]
        expected["MCP_BOX"] = box
        # MCP_REQUEST_STATE_KEY: the server's requestState key (64 hex digits), the same for every replica.
        key = rec["env"].get("MCP_REQUEST_STATE_KEY", "")
        assert re.fullmatch(r"[0-9a-f]{64}", key), rec["env"]
        expected["MCP_REQUEST_STATE_KEY"] = key
        assert rec["env"] == expected, f"replica {replica}: environment differs: {rec['env']}"
        for leaked in (*SYSTEMD_VARS, "NOT_FOR_CHILDREN"):
            assert leaked not in rec["env"]
        # A new session: the child leads its own process group; the supervisor is its parent.
        assert rec["ppid"] == run.pid
        assert rec["pgid"] == rec["pid"] == rec["sid"], rec
        # Every signal at its default, none blocked. Except glibc's two internal signals (32 SIGCANCEL and 33
        # SIGSETXID, bits 31 and 32): glibc's posix_spawn sets them to SIG_IGN in the child on purpose, no
        # program can name them (sigaddset refuses them), and glibc installs its own handlers when it needs them.
        glibc_internal = (1 << 31) | (1 << 32)
        assert int(rec["sig_blocked"], 16) == 0, f"blocked signals: {rec['sig_blocked']}"
        assert int(rec["sig_ignored"], 16) & ~glibc_internal == 0, f"ignored signals: {rec['sig_ignored']}"
        # The command line: --plugin P --config JSON, the trust options, then host_args.
        argv = rec["argv"]
        assert argv[0] == str(exec_probe)
        assert argv[1:3] == ["--plugin", str(faulty)]
        assert argv[3] == "--config" and json.loads(argv[4]) == {"answer": 42}
        # The trust policy (docs/security.md): no trusted_keys_dir, so `any`; then host_args.
        assert argv[5:] == ["--trust", "any", "--call-timeout", "7"]

    # The supervisor's own view agrees, and a stop message on fd 4 ends the stand-in (the teardown checks it).
    servers = status(env.sock, "probe")
    assert sorted(r["pid"] for r in servers["replicas"]) == sorted(pids.values())


# ------------------------------------------------------------------------------------------------------------
# The host's process group is stopped; what escaped it is reaped by the supervisor (subreaper)
# ------------------------------------------------------------------------------------------------------------


def test_process_group_is_killed_and_orphans_are_reaped(env, faulty, exec_probe, tmp_path):
    out = tmp_path / "probe.json"
    release = tmp_path / "release"
    env.write_server("orphans", faulty, restart="never", health={"interval": 0},
                     env={"PROBE_OUT": str(out), "PROBE_MODE": "orphans", "PROBE_RELEASE": str(release)})
    # A neighbour whose heartbeat rounds (every 0.5 s) are the supervisor's chance to reap an orphan that exits
    # long after its host: nothing else wakes the supervisor then (no SIGCHLD handler, docs/supervisor.md).
    heartbeat = 0.5
    env.write_server("keeper", faulty, health={"interval": 0}, heartbeat_interval=heartbeat, heartbeat_timeout=60,
                     env={"PROBE_OUT": str(tmp_path / "keeper.json")})
    run = env.start(host=exec_probe)
    pid, _ = run.running("orphans")
    rec = read_probe(out, 0)
    group_child, escaped = rec["group_child"], rec["escaped_child"]
    try:
        for child in (group_child, escaped):
            info = proc_info(child)
            assert info is not None and info.ppid == pid, f"child {child} of the probe: {info}"
        assert proc_info(group_child).pgid == pid
        wait_until(lambda: (i := proc_info(escaped)) is not None and i.pgid == escaped, 5, "the escape's setsid")

        # Stopped on request: the probe exits 0 at the stop message and leaves both children behind.
        reply = rpc(env.sock, "stop", {"server": "orphans"})
        assert reply.get("result") == {"servers": {"orphans": "stopping"}}, reply
        run.wait_for(rf"^mcp-supervisor: orphans\[{pid}\]: exited with status 0$", 10)
        # Its process group is killed, and the member (reparented to the subreaper) is reaped: gone from /proc.
        wait_until(lambda: not pid_alive(group_child), MARGIN,
                   f"the probe's group member {group_child} killed and reaped")
        # What left the group lives on, now the supervisor's (the nearest subreaper) ...
        info = proc_info(escaped)
        assert info is not None and info.state != "Z" and info.ppid == run.pid, (
            f"the escaped orphan {escaped} should be alive and reparented to the supervisor {run.pid}: {info}")
        assert status(env.sock, "orphans")["state"] == "stopped"
        # ... and once it exits, the supervisor reaps it: no zombie stays.
        release.touch()
        wait_until(lambda: not pid_alive(escaped), heartbeat + MARGIN,
                   f"the escaped orphan {escaped} reaped by the supervisor")
    finally:
        release.touch()
        for child in (group_child, escaped):
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------------------------
# A supervisor killed with SIGKILL takes its children with it
# ------------------------------------------------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _reap(pid: int) -> bool:
    """True once `pid` (our child by reparenting) has exited and is reaped."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not pid_alive(pid)
    return done == pid


def test_supervisor_killed_with_sigkill_takes_its_children_with_it(env, faulty):
    drain = 2  # --drain-timeout of the hosts: how long they may take once the control channel closes
    env.write_server("one", faulty, host_args=["--drain-timeout", str(drain)])
    env.write_server("two", faulty, replicas=2, host_args=["--drain-timeout", str(drain)])
    # The test process becomes a subreaper, so the orphaned hosts are reparented to it and can be reaped here
    # (pid 1 of a container need not reap anything).
    _set_subreaper(True)
    try:
        run = env.start()
        pids = [run.running("one")[0]] + [int(h.group(1)) for h in
                                           run.wait_count(r"^mcp-supervisor: two#\d\[(\d+)\]: running", 2, 20)]
        assert call_tool(run.port_of("one"), "ok") == "ok"
        killed_at = time.monotonic()
        run.proc.kill()
        assert run.proc.wait(timeout=10) == -signal.SIGKILL
        left = list(pids)
        deadline = killed_at + drain + MARGIN
        while left and time.monotonic() < deadline:
            left = [p for p in left if not _reap(p)]
            time.sleep(0.02)
        assert not left, (f"hosts {left} still run {drain + MARGIN} s after their supervisor was killed "
                          f"(--drain-timeout {drain}): {[proc_info(p) for p in left]}")
        run.stop(expect_status=-signal.SIGKILL)  # checks nothing of its tree is left
    finally:
        _set_subreaper(False)
        while True:  # anything else that was reparented to us meanwhile
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


# ------------------------------------------------------------------------------------------------------------
# SIGINT is SIGTERM, for the supervisor and for a host
# ------------------------------------------------------------------------------------------------------------


def test_sigint_stops_the_supervisor_in_order(env, faulty):
    env.write_server("a", faulty, depends_on=["b"])
    env.write_server("b", faulty)
    run = env.start()
    pids = {n: run.running(n)[0] for n in "ab"}
    mark = run.mark()
    run.signal(signal.SIGINT)
    assert run.proc.wait(timeout=10 + MARGIN) == 0  # stop_timeout 10 is the first step's bound
    stopping = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{pids[n]}\]: stopping$", 1, mark) for n in "ab"}
    exited = {n: run.wait_for(rf"^mcp-supervisor: {n}\[{pids[n]}\]: exited with status 0$", 1, mark) for n in "ab"}
    assert stopping["a"].index < exited["a"].index < stopping["b"].index < exited["b"].index
    assert run.texts()[-1] == "mcp-supervisor: all servers stopped"
    run.stop()  # exit status 0 and nothing left
    assert not any(pid_alive(p) for p in pids.values())


def test_sigint_drains_a_host_like_sigterm(faulty):
    host = start_host(faulty)
    try:
        host.proc.send_signal(signal.SIGINT)
        assert wait_exit(host, 10 + MARGIN) == 0  # --drain-timeout 10 (default) is the bound
    finally:
        if host.proc.poll() is None:
            host.proc.kill()
            host.proc.wait()
        for stream in (host.proc.stdout, host.proc.stderr):
            if stream:
                stream.close()
    assert_reaped(host)
