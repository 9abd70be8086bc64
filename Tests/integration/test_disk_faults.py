"""Faults on disk and in the environment (issue 17, docs/reliability.md "Faults on disk").

A damaged, truncated, deleted or unreadable port registry never moves a port; a full or unwritable state folder
keeps the running servers and their ports; the supervisor out of descriptors does not spin; a plugin file deleted
or replaced while its server runs is named when the next start needs it. Each case gets a clear message.
"""

from __future__ import annotations

import json
import os
import socket
import time

from conftest import plugin_path
from supervisor_fixtures import control_env, wait_until  # noqa: F401  (control_env is the `env` fixture)

NAMES = ["alpha", "beta", "gamma"]


def start(env, *args, **kw):
    run = env.start(*args, **kw)
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    return run


def first_ports(env) -> dict[str, int]:
    for name in NAMES:
        env.write_server(name, plugin_path("faulty"))
    run = start(env)
    for name in NAMES:
        run.running(name)
    ports = {name: env.status(name)["port"] for name in NAMES}
    run.stop()
    return ports


def registry(env):
    return env.root / "state" / "ports.json"


def test_a_truncated_registry_keeps_every_port(env):
    ports = first_ports(env)
    text = registry(env).read_text()
    assert json.loads(text)["ports"] == ports
    # Cut inside the last port (a digit lost): the complete entries are salvaged, the cut one (which must not be
    # read as a shorter port) comes from the backup.
    cut = text[: text.index("}") - 1]
    registry(env).write_text(cut)
    run = start(env)
    hit = run.wait_for(r"^mcp-supervisor: warning: .*ports\.json is damaged \(kept as .*ports\.json\.damaged\): "
                       r"(\d) port\(s\) read from it, (\d) from .*ports\.json\.bak", 10)
    assert (int(hit.group(1)), int(hit.group(2))) == (2, 1), hit.line.text
    for name in NAMES:
        run.running(name)
    assert {name: env.status(name)["port"] for name in NAMES} == ports
    # Written whole again; the damaged file kept for the admin.
    assert json.loads(registry(env).read_text())["ports"] == ports
    assert (registry(env).parent / "ports.json.damaged").read_text() == cut


def test_garbage_or_a_deleted_registry_is_restored_from_its_backup(env):
    ports = first_ports(env)
    registry(env).write_bytes(os.urandom(200))
    run = start(env)
    run.wait_for(r"ports\.json is damaged .*: \d port\(s\) read from it, \d from", 10)
    for name in NAMES:
        run.running(name)
    assert {name: env.status(name)["port"] for name in NAMES} == ports
    run.stop()

    registry(env).unlink()
    run = start(env)
    run.wait_for(r"^mcp-supervisor: warning: .*ports\.json is missing; its ports are taken from .*ports\.json\.bak$", 10)
    for name in NAMES:
        run.running(name)
    assert {name: env.status(name)["port"] for name in NAMES} == ports


def test_an_unreadable_registry_stops_the_start_and_moves_nothing(env):
    ports = first_ports(env)
    saved = registry(env).read_bytes()
    registry(env).unlink()
    registry(env).mkdir()  # exists, cannot be read (root reads any file, but not a folder as one)
    try:
        run = env.start()
        run.proc.wait(timeout=30)
        assert run.stop(expect_status=74) == 74  # it exits by itself; stop() checks that nothing is left
        run.wait_for(r"^mcp-supervisor: cannot read .*ports\.json: Is a directory; not starting, since assigning "
                     r"ports anew would move every dynamic server", 5)
        assert not run.find_all(r": starting$"), "a server was started"
    finally:
        registry(env).rmdir()
        registry(env).write_bytes(saved)
    run = start(env)
    for name in NAMES:
        run.running(name)
    assert {name: env.status(name)["port"] for name in NAMES} == ports


def test_a_state_folder_that_cannot_be_written_keeps_servers_and_ports(env):
    ports = first_ports(env)
    state = env.root / "state"
    saved = registry(env).read_bytes()
    # A new server needs a new dynamic port, which must be written; the folder refuses (a read-only bind
    # mount stands in for a read-only or full disk: root ignores permission bits).
    env.write_server("delta", plugin_path("faulty"))
    rc = os.system(f"mount --bind {state} {state} && mount -o remount,bind,ro {state}")
    assert rc == 0, "cannot make a read-only bind mount"
    try:
        run = start(env)
        run.wait_for(r"^mcp-supervisor: warning: cannot write .*ports\.json: Read-only file system; the ports "
                     r"assigned since are kept while this supervisor runs", 10)
        for name in NAMES:
            run.running(name)
        assert {name: env.status(name)["port"] for name in NAMES} == ports
        assert registry(env).read_bytes() == saved  # the good file is untouched
        # The new server has its port (in memory) but cannot start: its box folder cannot be made; the line
        # names the folder and the cause, and it backs off like any failed start.
        run.wait_for(r"^mcp-supervisor: delta: the box: cannot create .*state/servers/delta: Read-only file system$",
                     10)
        delta = env.status("delta")["port"]
        assert delta not in ports.values()
    finally:
        os.system(f"umount {state}")
    # Writable again: delta starts on the port it was given, and the next change writes every port.
    run.running("delta", timeout=30)
    assert env.status("delta")["port"] == delta
    env.write_server("epsilon", plugin_path("faulty"))
    assert env.control("reload")["result"]
    wait_until(lambda: set(json.loads(registry(env).read_text())["ports"]) >= set(NAMES + ["delta", "epsilon"]), 10,
               "the registry written with every port")
    assert json.loads(registry(env).read_text())["ports"]["delta"] == delta


def test_out_of_descriptors_the_control_socket_pauses_instead_of_spinning(env):
    env.write_server("svc", plugin_path("faulty"))
    run = start(env, prefix=("prlimit", "--nofile=48:48", "--"))
    run.running("svc")
    held = []
    try:
        # Hold control connections until the supervisor cannot accept more (its descriptors run out).
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(env.sock))
            held.append(s)
        run.wait_for(r"^mcp-supervisor: control: cannot accept a control connection: Too many open files; "
                     r"retrying every 100 ms$", 10)
        # While the descriptors are gone it does not spin: little CPU over a second.
        def cpu() -> float:
            fields = open(f"/proc/{run.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        before, t0 = cpu(), time.monotonic()
        time.sleep(1.0)  # a measurement window, not a wait for an event
        used = (cpu() - before) / (time.monotonic() - t0)
        assert used < 0.5, f"the supervisor used {used:.0%} of a core while out of descriptors"
    finally:
        for s in held:
            s.close()
    # Descriptors free again: the control socket answers.
    wait_until(lambda: env.control("status")["result"] is not None, 10, "the control socket answers again")
    assert env.status("svc")["state"] == "running"


def test_a_plugin_file_deleted_or_replaced_while_its_server_runs(env, tmp_path):
    plugin = tmp_path / "libcopy.so"
    plugin.write_bytes(plugin_path("faulty").read_bytes())
    env.write_server("svc", plugin, restart="always", intensity={"max_restarts": 2, "window": 30, "cooldown": 60})
    run = start(env)
    pid, _ = run.running("svc")
    port = env.status("svc")["port"]
    # Deleted: the running host keeps it mapped and serves on.
    plugin.unlink()
    from supervisor_fixtures import call_tool
    assert call_tool(port, "ok") == "ok"
    # The next start needs the file: it fails with a line naming it, the server goes down, the port stays.
    os.kill(pid, 9)
    run.wait_for(rf"{plugin}.*(No such file|cannot open|not found)", 20)
    wait_until(lambda: env.status("svc")["state"] in ("down", "failed"), 20, "svc down")
    assert env.status("svc")["port"] == port
    # Replaced (a new file in its place): `start` loads the new one.
    plugin.write_bytes(plugin_path("faulty").read_bytes())
    assert env.control("start", {"server": "svc"})["result"]
    run.running("svc", start=run.mark() - 1)
    wait_until(lambda: env.status("svc")["state"] == "running", 20, "svc running again")
    assert call_tool(port, "ok") == "ok"


def test_a_control_socket_path_that_is_a_file_or_someone_elses_socket_is_left_alone(env):
    env.write_server("svc", plugin_path("faulty"))
    env.sock.write_text("precious\n")
    run = env.start()
    run.wait_for(rf"^mcp-supervisor: control: {env.sock} exists and is not a socket; no control socket$", 10)
    run.running("svc")  # the servers run without it
    assert env.sock.read_text() == "precious\n"
    run.stop()
    env.sock.unlink()
    # Another process listens there: not taken over.
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(env.sock))
    other.listen(1)
    try:
        run = env.start()
        run.wait_for(rf"^mcp-supervisor: control: another process listens on {env.sock}; no control socket$", 10)
        run.running("svc")
        other.settimeout(0.2)
        try:
            c, _ = other.accept()  # the supervisor's own check connected once; nothing else happened to it
            c.close()
        except socket.timeout:
            pass
        assert env.sock.exists()
        run.stop()
    finally:
        other.close()
