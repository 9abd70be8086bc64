"""What survives a supervisor restart now that restarts are routine under systemd (issue 11, item 6), and who may
read status (`control_read_group`, docs/mcpctl.md "Who may do what").

- An admin's `stop` is kept in state_dir/stopped.json: after a supervisor restart the server is still stopped,
  its port bound (a connection waits in the backlog instead of being refused), the others run; `start` clears it.
- With `control_read_group` the socket is 0666 and each caller is checked: members of that group read (status)
  and are refused changes (exit 4); anyone in neither group is refused everything, with the group to join named.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import plugin_path
from supervisor_fixtures import SupervisorEnv, connect_refused, control_env  # noqa: F401 (fixture env)
from test_control_socket import accounts, as_user, ctl, ctl_fails, sockdir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)


def stopped_file(env) -> list[str]:
    return json.loads((env.state_dir / "stopped.json").read_text())["stopped"]


def test_admin_stop_holds_across_a_supervisor_restart_until_start(env):
    faulty = plugin_path("faulty")
    env.write_server("a", faulty)
    env.write_server("b", faulty)
    run = env.start()
    run.running("a")
    run.running("b")
    port = env.status("a")["port"]
    assert env.control("stop", {"server": "a"})["result"]
    run.wait_for(r"^mcp-supervisor: a\[\d+\]: exited", 20)
    assert stopped_file(env) == ["a"]
    run.stop()

    again = env.start()
    again.wait_for(r"^mcp-supervisor: a: kept stopped: an admin stopped it before the supervisor restarted", 10)
    again.running("b")
    status = env.status("a")
    assert status["state"] == "stopped" and all(r["pid"] is None for r in status["replicas"]), status
    assert status["port"] == port
    # Its port is bound (the kernel accepts into the backlog), not refused.
    assert not connect_refused(port)
    assert env.control("start", {"server": "a"})["result"]
    again.running("a")
    assert stopped_file(env) == []
    again.stop()

    third = env.start()
    third.running("a")
    third.running("b")
    third.assert_absent(r"kept stopped", 0.2)


def test_control_read_group_reads_and_others_are_refused(tmp_path, sockdir, accounts):  # noqa: F811
    admins, readers = accounts.group(), accounts.group()
    reader, outsider, admin = accounts.user(), accounts.user(), accounts.user()
    e = SupervisorEnv(tmp_path)
    sock = sockdir / "control.sock"
    e.write_main(control_socket=str(sock), control_group=admins["name"], control_read_group=readers["name"])
    e.write_server("svc", plugin_path("faulty"))
    try:
        run = e.start()
        run.wait_for(rf"^mcp-supervisor: control: listening on {sock}", 10)
        run.running("svc")
        assert sock.stat().st_mode & 0o777 == 0o666
        as_reader = as_user(reader, readers["gid"])
        r = ctl(sock, "--json", "status", prefix=as_reader)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["servers"][0]["name"] == "svc"
        err = ctl_fails(sock, 4, "stop", "svc", prefix=as_reader)
        assert admins["name"] in err, err
        err = ctl_fails(sock, 4, "status", prefix=as_user(outsider))
        assert readers["name"] in err and "control_read_group" in err, err
        r = ctl(sock, "stop", "svc", prefix=as_user(admin, admins["gid"]))
        assert r.returncode == 0, r.stderr
        run.wait_for(r"^mcp-supervisor: svc\[\d+\]: exited", 20)
    finally:
        errors = e.cleanup()
    assert not errors, errors


@pytest.mark.parametrize("replicas", [1, 2])
def test_rolling_restart_replaces_every_replica_without_a_refused_connection_or_a_failed_call(env, replicas):
    import subprocess
    import threading

    from supervisor_fixtures import call_tool
    from test_control_socket import mcpctl_binary

    env.write_server("web", plugin_path("faulty"), replicas=replicas, config={"extra_tools": True})
    run = env.start()
    for i in range(replicas):
        run.wait_for(rf"^mcp-supervisor: web(#{i})?\[\d+\]: running", 20)
    port = env.status("web")["port"]
    old = {r["pid"] for r in env.status("web")["replicas"]}
    assert len(old) == replicas and None not in old

    calls, failures, refused, seen = [0], [], [], set()
    done = threading.Event()

    def load():
        while not done.is_set():
            try:
                seen.add(int(call_tool(port, "pid", timeout=20)))
                calls[0] += 1
            except ConnectionRefusedError as e:
                refused.append(repr(e))
            except Exception as e:  # a reset, an HTTP error
                failures.append(repr(e))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        mark = run.mark()
        r = subprocess.run([str(mcpctl_binary()), "--socket", str(env.control_socket), "restart", "--rolling", "web"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == "web: rolling", (r.returncode, r.stdout, r.stderr)
        run.wait_for(rf"^mcp-supervisor: web: rolling restart done: {replicas} replica\(s\) replaced$", 60, mark)
        before = calls[0]
        # Calls keep being served by the new replicas.
        deadline = time.monotonic() + 10
        while calls[0] < before + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        for w in workers:
            w.join(30)
    # The port never refuses: the socket is the supervisor's and some replica always accepts.
    assert not refused, f"{len(refused)} refused connection(s) of {calls[0] + len(failures) + len(refused)}"
    # No call fails either: a stopping replica stops accepting at once (the others take the new connections
    # from the shared backlog) and, for its drain's grace period, still serves the requests on connections it
    # had accepted, each with `Connection: close` (docs/plugin-host.md, "Drain").
    print(f"rolling restart, {replicas} replica(s): {calls[0]} calls served, {len(failures)} failed")
    assert not failures, (f"{len(failures)} failed call(s) of {calls[0] + len(failures)}: "
                          f"{sorted(set(failures))[:10]}")
    status = env.status("web")
    new = {r["pid"] for r in status["replicas"]}
    assert len(status["replicas"]) == replicas and None not in new, status
    assert not (new & old), f"not every replica was replaced: old {old}, new {new}"
    assert calls[0] >= 20 and new <= seen, (calls[0], new, seen)
    # Each old process stopped only after the spare served: the log has the spare ready before the first stop.
    texts = run.texts(mark)
    spare_ready = next(i for i, t in enumerate(texts) if re.search(r"running \(ready in", t))
    first_stop = next(i for i, t in enumerate(texts) if re.search(r"\]: stopping$", t))
    assert spare_ready < first_stop, texts
