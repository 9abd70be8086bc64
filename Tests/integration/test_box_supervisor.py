"""The child's box, supervisor side (issue 13; docs/security.md): `[sandbox]` through a real supervisor and the
hostile test plugin (Plugins/hostile). What the supervisor prepares is checked directly (cgroup folders and their
limits, the state folder, the environment and descriptors a child gets, `status`); what the host applies is
checked through the hostile plugin's tools and the child's /proc/PID/status, and is skipped (saying why) where
the host in this build does not apply the box yet.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import mcpctl_binary, plugin_path, traversable
from supervisor_fixtures import call_tool, control_env, free_port, modern_post, wait_until  # noqa: F401


@pytest.fixture
def hostile():
    return plugin_path("hostile")


def own_cgroup_dirs() -> dict[str, Path]:
    """controller → this process's folder in each writable v1 hierarchy (the supervisor, our child, shares it)."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        num, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            if c in ("memory", "pids", "cpu"):
                d = Path(f"/sys/fs/cgroup/{c}") / path.lstrip("/")
                if d.is_dir() and os.access(d, os.W_OK):
                    out[c] = d
    return out


def replica_pid(env, name: str) -> int:
    def pid():
        try:
            s = env.status(name)
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # the control socket does not listen yet
        r = s["replicas"][0]
        return r["pid"] if s["state"] == "running" and r["pid"] else None

    return wait_until(pid, 30, f"{name} running")


def tool_text(port: int, name: str, args: dict | None = None) -> str:
    """The text of a tool's answer, error or not (the hostile tools answer 'ok ...' or 'errno=E ...')."""
    reply = modern_post(port, "tools/call", {"name": name, "arguments": args or {}}, timeout=30)
    msg = reply.final()
    assert "result" in msg, msg
    return "".join(b.get("text", "") for b in msg["result"]["content"])


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def box_applied(pid: int) -> bool:
    return proc_status(pid).get("NoNewPrivs") == "1"


def require_host_box(pid: int):
    assert box_applied(pid), f"the host {pid} did not apply MCP_BOX (NoNewPrivs is not 1)"


# ------------------------------------------------------------------------------------------------------------
# What the supervisor prepares
# ------------------------------------------------------------------------------------------------------------


def test_cgroup_limits_status_and_removal(env, hostile):
    cgroups = own_cgroup_dirs()
    env.write_server("boxed", hostile, sandbox={"memory_max": "64M", "processes_max": 16, "cpu_max": "50%"})
    env.write_server("plain", hostile)
    run = env.start()
    pid = replica_pid(env, "boxed")
    replica_pid(env, "plain")
    box = env.status("boxed")["box"]
    top = f"mcp-supervisor-{run.pid}"
    for key, controller in (("memory", "memory"), ("processes", "pids"), ("cpu", "cpu")):
        if controller in cgroups:
            assert box[key] == "cgroup v1", box
        else:
            assert box[key] in ("rlimit", "not limited (no cgroup controller)"), box
    assert box["enabled"] is True and box["user"] == "root", box
    assert box["filesystem"].startswith("landlock abi ") or box["filesystem"] == "filesystem not restricted"
    assert env.status("plain")["box"]["memory"] == "no limit set"
    # `mcpctl status NAME` shows the same mechanisms under its table.
    shown = subprocess.run([str(mcpctl_binary()), "--socket", str(env.sock), "status", "boxed"], capture_output=True,
                           text=True, timeout=30, check=True).stdout.splitlines()
    assert shown[-1] == (f"box: user root, memory {box['memory']}, processes {box['processes']}, cpu {box['cpu']}, "
                         f"{box['filesystem']}, network outbound, "
                         f"{'private /tmp' if box['private_tmp'] else 'shared /tmp'}"), shown
    leaves = {}
    for controller, base in cgroups.items():
        server_dir = base / top / "boxed"
        found = wait_until(lambda: [p for p in server_dir.iterdir() if p.is_dir()] if server_dir.is_dir() else None,
                           10, f"{controller} cgroup of boxed")
        assert len(found) == 1, found
        leaves[controller] = found[0]
        # The plain server (no limit) has no cgroup.
        assert not (base / top / "plain").exists()
    if "memory" in leaves:
        assert int((leaves["memory"] / "memory.limit_in_bytes").read_text()) == 64 << 20
    if "pids" in leaves:
        assert (leaves["pids"] / "pids.max").read_text().strip() == "16"
    if "cpu" in leaves:
        assert (leaves["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (leaves["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
    if box_applied(pid):
        for leaf in leaves.values():
            assert str(pid) in (leaf / "cgroup.procs").read_text().split()
    # Stopping the server removes its folders; the other server keeps serving.
    assert "result" in env.control("stop", {"server": "boxed"})
    for controller, base in cgroups.items():
        wait_until(lambda: not (base / top / "boxed").exists(), 10, f"{controller} cgroup of boxed removed")
    call_tool(env.status("plain")["port"], "status")
    run.stop()
    for controller, base in cgroups.items():
        assert not (base / top).exists(), f"{base / top} left behind"


def test_state_folder_private_tmp_and_secrets(env, hostile, tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# a comment\nAPI_TOKEN=s3cret\nexport QUOTED=\"a b\"\n")
    secrets.chmod(0o600)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "db-password").write_text("hunter2\n")
    out = tmp_path / "out"
    out.mkdir()
    env.write_server("sec", hostile, sandbox={"env_files": [str(secrets)], "credentials": ["db-password"]})
    # tmp_path is under /tmp, which a private /tmp hides: the paths server has none.
    env.write_server("paths", hostile, sandbox={"write_paths": [str(out)], "private_tmp": False})
    run = env.start(environ={**os.environ, "CREDENTIALS_DIRECTORY": str(creds)})
    pid = replica_pid(env, "sec")
    environ = dict(
        kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
    assert environ["API_TOKEN"] == "s3cret" and environ["QUOTED"] == "a b"
    folder = env.state_dir / "servers" / "sec"
    st = folder.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert environ["CREDENTIALS_DIRECTORY"] == str(folder / "credentials")
    copied = folder / "credentials" / "db-password"
    assert copied.read_text() == "hunter2\n" and stat.S_IMODE(copied.stat().st_mode) == 0o400
    # The secrets are not in the supervisor's server file nor in its own environment.
    assert "s3cret" not in Path(f"/proc/{run.pid}/environ").read_bytes().decode()
    require_host_box(pid)
    # write_paths and the state folder are writable, nothing else.
    replica_pid(env, "paths")
    port = env.status("paths")["port"]
    assert tool_text(port, "write_file", {"path": str(out / "x")}).startswith("ok")
    assert (out / "x").exists()
    state_file = env.state_dir / "servers" / "paths" / "state-file"
    assert tool_text(port, "write_file", {"path": str(state_file)}).startswith("ok")
    assert state_file.exists()
    denied = tmp_path / "not-listed"
    assert tool_text(port, "write_file", {"path": str(denied)}).startswith("errno=EACCES")
    assert not denied.exists()
    # The state folder is under /tmp here (pytest's tmp_path), which a private /tmp would hide from the server:
    # so it has none, and status says so (test_box_host.py::test_private_tmp covers the private /tmp itself);
    # the host's /tmp is then not among its write paths.
    assert env.status("sec")["box"]["private_tmp"] is False
    port = env.status("sec")["port"]
    name = f"box-probe-{pid}"
    try:
        assert tool_text(port, "write_file", {"path": f"/tmp/{name}"}).startswith("errno=EACCES")
        assert not Path(f"/tmp/{name}").exists()
    finally:
        Path(f"/tmp/{name}").unlink(missing_ok=True)
    run.stop()


def test_env_file_readable_by_others_is_a_config_error(env, hostile, tmp_path):
    secrets = tmp_path / "open.env"
    secrets.write_text("API_TOKEN=x\n")
    secrets.chmod(0o644)
    path = env.write_raw("w", f'plugin = "{hostile}"\n\n[sandbox]\nenv_files = ["{secrets}"]\n')
    r = env.check_config()
    assert r.returncode != 0
    assert f"{path}:4" in r.stderr + r.stdout, r.stderr
    assert "group or others" in r.stderr + r.stdout


@pytest.mark.parametrize("line,fragment", [
    ('user = "no-such-user-mcp"', "no such user 'no-such-user-mcp'"),
    ('memory_max = "lots"', "memory_max"),
    ('network = "lan"', "outbound or none"),
])
def test_bad_sandbox_value_names_file_and_line(env, hostile, line, fragment):
    path = env.write_raw("w", f'plugin = "{hostile}"\n[sandbox]\nenabled = true\n{line}\n')
    r = env.check_config()
    out = r.stderr + r.stdout
    assert r.returncode != 0 and f"{path}:4" in out and fragment in out, out


def test_child_inherits_only_its_descriptors(env, hostile):
    """Item 4: a child's descriptors are 0-4 and what the host opened itself, none of the supervisor's files
    (the control socket, ports.json, the metrics listener, another server's socket)."""
    env.write_main(control_socket=str(env.control_socket), metrics_listen=f"127.0.0.1:{free_port()}")
    env.write_server("a", hostile)
    env.write_server("b", hostile)
    run = env.start()
    pid = replica_pid(env, "a")
    replica_pid(env, "b")

    def targets(p: int) -> dict[int, str]:
        out = {}
        for fd in os.listdir(f"/proc/{p}/fd"):
            try:
                out[int(fd)] = os.readlink(f"/proc/{p}/fd/{fd}")
            except FileNotFoundError:
                pass
        return out

    child = targets(pid)
    assert {0, 1, 2, 3, 4} <= set(child), child
    given = {child[i] for i in range(5)}
    supervisor = set(targets(run.pid).values())
    # anon_inode names (eventpoll, eventfd, timerfd) are one shared inode for every process: the host's own.
    leaked = {fd: t for fd, t in child.items()
              if fd > 4 and t in supervisor and t not in given and not t.startswith("anon_inode:")}
    assert not leaked, f"the child holds the supervisor's descriptors: {leaked}"
    assert not any("control.sock" in t or "ports.json" in t for t in child.values()), child
    run.stop()


# ------------------------------------------------------------------------------------------------------------
# What the host applies (through the hostile plugin)
# ------------------------------------------------------------------------------------------------------------


def test_default_box(env, hostile):
    env.write_server("h", hostile)
    env.write_server("other", hostile)
    run = env.start()
    pid = replica_pid(env, "h")
    require_host_box(pid)
    st = proc_status(pid)
    assert st["CapEff"] == "0000000000000000" and st["CapBnd"] == "0000000000000000", st
    assert st["Seccomp"] == "2"
    port = env.status("h")["port"]
    assert tool_text(port, "read_shadow").startswith("errno="), "read /etc/shadow in the default box"
    assert tool_text(port, "ptrace_pid", {"pid": run.pid}).startswith("errno=")
    assert tool_text(port, "kill_pid", {"pid": run.pid}).startswith("errno=EPERM")
    # Path sockets are not Landlock's: the default filter denies AF_UNIX sockets, so the plugin (uid 0 here)
    # cannot reach the control socket, D-Bus or any other socket that trusts root.
    assert tool_text(port, "connect_unix", {"path": str(env.control_socket)}) == (
        "errno=EPERMsocket(AF_UNIX) failed: Operation not permitted")
    assert env.status("h")["box"]["enabled"] is True
    call_tool(env.status("other")["port"], "status")
    run.stop()


@pytest.mark.parametrize("sandbox", [{"unix_sockets": True}, {"enabled": False}])
def test_control_socket_refuses_what_the_supervisor_started(env, hostile, sandbox):
    """With AF_UNIX allowed (or no box), a plugin running as root reaches the control socket; its uid would make it
    an admin, but the supervisor refuses every call from a process it started (or their children)."""
    env.write_server("h", hostile, sandbox=sandbox)
    env.write_server("other", hostile)
    run = env.start()
    other_pid = replica_pid(env, "other")
    replica_pid(env, "h")
    port = env.status("h")["port"]
    for method in ("status", "stop"):
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"server": "other"}})
        text = tool_text(port, "connect_unix", {"path": str(env.control_socket), "send": request})
        assert text.startswith(f"okconnected to {env.control_socket}; reply: "), text
        reply = json.loads(text.split("; reply: ", 1)[1])
        assert reply["error"]["code"] == -32001, reply
        assert "does not answer processes the supervisor started" in reply["error"]["message"], reply
        run.wait_for(rf"started by the supervisor: {method}: refused", 10)
    # The same calls from here (root, not started by the supervisor) are answered: the refusal was the peer's.
    assert env.status("other")["state"] == "running" and replica_pid(env, "other") == other_pid
    assert env.control("stop", {"server": "other"}).get("result") is not None
    run.stop()


def test_full_box_limits_and_oom(env, nobody_plugin, tmp_path):
    # nobody must reach its plugin and its state folder (the checkout and pytest's folders may be root's only).
    hostile = nobody_plugin("hostile")
    undo = traversable(tmp_path)
    try:
        _full_box_limits_and_oom(env, hostile, tmp_path)
    finally:
        undo()


def _full_box_limits_and_oom(env, hostile, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env.write_server("full", hostile, sandbox={
        "user": "nobody", "memory_max": "128M", "processes_max": 16, "network": "none"})
    env.write_server("other", hostile)
    run = env.start()
    pid = replica_pid(env, "full")
    require_host_box(pid)
    st = proc_status(pid)
    assert st["Uid"].split()[0] == "65534" and st["NoNewPrivs"] == "1", st
    port = env.status("full")["port"]
    assert env.status("full")["box"]["user"] == "nobody"
    assert tool_text(port, "tcp_connect", {"host": "127.0.0.1", "port": env.status("other")["port"]}).startswith(
        "errno=")
    forked = tool_text(port, "fork_bomb", {"max": 64})
    assert forked.startswith("errno=") or "failed" in forked, forked
    # Beyond memory_max: the OOM killer ends the child and the exit says so.
    try:
        reply = modern_post(port, "tools/call", {"name": "alloc", "arguments": {"mib": 512}}, timeout=30)
        pytest.fail(f"alloc beyond memory_max answered: {reply.body[:200]!r}")
    except (ConnectionError, http.client.HTTPException):
        pass  # the child died under the call

    def oom():
        last = env.status("full")["replicas"][0]["last_exit"]
        return last if last and "out of memory" in last else None

    assert wait_until(oom, 30, "OOM exit") == "killed: out of memory (memory_max 128M)"
    call_tool(env.status("other")["port"], "status")
    run.stop()


def test_box_switched_off(env, hostile):
    env.write_server("off", hostile, sandbox={"enabled": False})
    run = env.start()
    pid = replica_pid(env, "off")
    assert env.status("off")["box"] == {"enabled": False}
    st = proc_status(pid)
    assert st["NoNewPrivs"] == "0" and st["Seccomp"] == "0", st
    assert tool_text(env.status("off")["port"], "read_shadow").startswith("ok"), "the box off must not restrict"
    run.stop()
