"""The supervisor's descriptor limit (issue 17, docs/reliability.md "Descriptors").

systemd starts services with a soft RLIMIT_NOFILE of 1024 under a much higher hard limit, and each server costs the
supervisor about six descriptors. The supervisor raises its soft limit to the hard one at start; its children get
the soft limit it was started with; `--check-config`, the log and `mcpctl status` say when the configured servers
would not fit.
"""

from __future__ import annotations

import subprocess

from conftest import plugin_path
from supervisor_fixtures import control_env, supervisor_binary, wait_until  # noqa: F401  (control_env: `env`)
from test_control_socket import ctl


def soft_limit(pid: int) -> tuple[str, str]:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError(f"no open-files line for {pid}")


def start(env, nofile: str):
    run = env.start(prefix=("prlimit", f"--nofile={nofile}", "--"))
    run.wait_for(rf"^mcp-supervisor: control: listening on {env.sock}", 10)
    return run


def test_the_soft_limit_is_raised_and_children_keep_the_one_it_was_started_with(env):
    env.write_server("svc", plugin_path("faulty"))
    run = start(env, "256:4096")
    run.wait_for(r"^mcp-supervisor: descriptor limit raised from 256 to 4096 \(the hard limit\); children keep 256$", 5)
    pid, _ = run.running("svc")
    assert soft_limit(run.pid) == ("4096", "4096")
    assert soft_limit(pid) == ("256", "4096")
    d = env.control("status")["result"]["descriptors"]
    assert d["limit"] == 4096 and d["needed"] == 64 + 6 and "warning" not in d, d
    assert 0 < d["open"] < 64, d


def test_servers_that_would_not_fit_are_named_by_check_config_the_log_and_status(env):
    for i in range(8):
        env.write_server(f"s{i}", plugin_path("faulty"))
    needed = 64 + 8 * 6
    # --check-config: the hard limit is what the supervisor would get.
    checked = subprocess.run(["prlimit", "--nofile=100:100", "--", str(supervisor_binary()), "-c",
                              str(env.root / "supervisor.toml"), "--check-config"], capture_output=True, text=True,
                             timeout=30)
    out = checked.stdout + checked.stderr
    assert checked.returncode == 0, out
    assert (f"warning: the 8 configured server(s) need about {needed} descriptors but the supervisor may open 100 "
            "(RLIMIT_NOFILE); raise LimitNOFILE=") in out, out
    # With room, no warning.
    roomy = subprocess.run(["prlimit", "--nofile=1024:4096", "--", str(supervisor_binary()), "-c",
                            str(env.root / "supervisor.toml"), "--check-config"], capture_output=True, text=True,
                           timeout=30)
    assert roomy.returncode == 0 and "descriptors" not in roomy.stdout + roomy.stderr, roomy

    run = start(env, "100:100")
    run.wait_for(rf"^mcp-supervisor: the 8 configured server\(s\) need about {needed} descriptors", 5)
    for i in range(8):
        run.running(f"s{i}")  # they fit in fact (the estimate keeps room for clients and restarts)
    d = env.control("status")["result"]["descriptors"]
    assert d["limit"] == 100 and d["needed"] == needed and "LimitNOFILE" in d["warning"], d
    text = ctl(env.sock, "status")
    assert text.returncode == 0, text.stderr
    assert f"warning: the 8 configured server(s) need about {needed} descriptors" in text.stdout, text.stdout
