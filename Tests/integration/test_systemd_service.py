"""The packaged system service against a real systemd 252 (issue 11, "Tests").

One Debian 12 tree (debootstrap, no Swift toolchain) boots systemd as PID 1 in private namespaces
(Tests/integration/systemd_ns.py, scripts/systemd-ns.sh); the .deb from scripts/build-deb.sh is installed there
with `apt-get install ./mcp-supervisor_*.deb`, exactly as an admin would. The tests then run in file order
against that one installation (each leaves the service running for the next; the last one purges it), because a
boot and an install take seconds and these are the steps of one admin's story.

Needs root (namespaces, chroot). Timing: every wait is on an observable state with a deadline derived from the
unit's own settings (WatchdogSec, RestartSec) plus conftest.LATE; nothing sleeps in place of a condition.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from conftest import LATE
from supervisor_fixtures import call_tool, free_port_range
from systemd_ns import BootedSystemd, Load, build_deb, build_tree, wait_for

UNIT = "mcp-supervisor.service"
# The test's drop-in: a short watchdog so the wedge test takes seconds, and no start rate limit (the tests
# restart the service more often than StartLimitBurst's default allows in 10 s). Everything else is the unit as
# shipped.
WATCHDOG_S = 3
DROPIN = f"""[Unit]
StartLimitIntervalSec=0

[Service]
WatchdogSec={WATCHDOG_S}s
"""

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="booting systemd in namespaces needs root"),
    pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("nsenter") is None,
                       reason="util-linux unshare/nsenter missing"),
]


class Installed:
    """The booted tree with the package installed, and what the tests learnt about it so far."""

    def __init__(self, ns: BootedSystemd, deb: str) -> None:
        self.ns = ns
        self.deb = deb
        base, _ = free_port_range(8)
        self.ports = {"alpha": base, "beta": base + 1}

    def server_file(self, name: str, extra: str = "", replicas: str = "2") -> str:
        return (f'plugin = "/usr/lib/mcp-supervisor/plugins/libreference.so"\nport = {self.ports[name]}\n'
                f"replicas = {replicas}\n{extra}")

    def main_pid(self) -> int:
        """The supervisor's pid inside; 0 when the unit has no main process (never signal that: kill 0 is the
        caller's own process group)."""
        return int(self.ns.show(UNIT, "MainPID")["MainPID"])

    def running_main_pid(self) -> int:
        pid = self.main_pid()
        assert pid > 0, self.ns.run("systemctl", "status", "--no-pager", UNIT, check=False).stdout
        return pid

    def child_pids(self) -> dict[str, list[int]]:
        """Replica pids per server from `mcpctl --json status` (as root), as the supervisor sees them."""
        import json

        out = self.ns.run("mcpctl", "--json", "status").stdout
        return {s["name"]: sorted(r["pid"] for r in s["replicas"] if r.get("pid")) for s in
                json.loads(out)["servers"]}

    def all_running(self, names=("alpha", "beta")) -> bool:
        import json

        out = self.ns.run("mcpctl", "--json", "status", check=False)
        if out.returncode != 0:
            return False
        servers = {s["name"]: s for s in json.loads(out.stdout)["servers"]}
        return all(n in servers and servers[n]["state"] == "running"
                   and all(r["state"] == "running" for r in servers[n]["replicas"]) for n in names)

    def serves(self, name: str) -> bool:
        return call_tool(self.ports[name], "echo", {"text": "hi"}, timeout=10) == "hi"

    def unit_journal(self, since_cursor: str | None = None) -> list[dict]:
        args = ["-u", UNIT]
        if since_cursor:
            args += ["--after-cursor", since_cursor]
        return self.ns.journal(*args)

    def cursor(self) -> str | None:
        entries = self.ns.journal("-n", "1")
        return entries[-1]["__CURSOR"] if entries else None


@pytest.fixture(scope="module")
def installed():
    build_tree()
    deb = build_deb()
    ns = BootedSystemd()
    try:
        ns.write(f"/etc/systemd/system/{UNIT}.d/50-test.conf", DROPIN)
        inside = ns.copy_in(deb)
        out = ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                     inside, timeout=300, check=False)
        assert out.returncode == 0, f"apt-get install {inside} failed:\n{out.stdout}\n{out.stderr}"
        yield Installed(ns, inside)
    finally:
        ns.close()


def test_package_installs_and_starts_without_a_toolchain(installed):
    ns = installed.ns
    assert ns.run("sh", "-c", "command -v swift swiftc", check=False).returncode != 0, "the tree has a toolchain"
    state = wait_for(lambda: ns.show(UNIT, "ActiveState")["ActiveState"] in ("active", "failed")
                     and ns.show(UNIT, "ActiveState")["ActiveState"], 30, "the service after install")
    assert state == "active", ns.run("systemctl", "status", UNIT, check=False).stdout
    props = ns.show(UNIT, "Type", "NotifyAccess", "User", "UnitFileState", "FragmentPath", "DropInPaths")
    assert props["Type"] == "notify" and props["NotifyAccess"] == "main" and props["User"] == "mcp-supervisor"
    assert props["UnitFileState"] == "enabled"
    assert props["FragmentPath"] == "/lib/systemd/system/mcp-supervisor.service"
    # The shipped files an admin relies on.
    for path in ("/etc/mcp-supervisor/supervisor.toml", "/etc/mcp-supervisor/servers.d", "/usr/include/mcp_plugin.h",
                 "/usr/include/mcp_plugin.hpp",
                 "/usr/share/pkgconfig/mcp-plugin.pc", "/usr/lib/mcp-supervisor/plugins/libreference.so",
                 "/usr/share/doc/mcp-supervisor/examples/reference.toml",
                 "/usr/share/doc/mcp-supervisor/examples/command.toml",
                 "/usr/share/man/man1/mcp-gateway.1.gz",
                 "/usr/bin/mcp-gateway", "/usr/share/man/man1/mcpctl.1.gz",
                 "/usr/share/man/man8/mcp-supervisor.8.gz", "/usr/share/bash-completion/completions/mcpctl"):
        ns.run("test", "-e", path)
    conffiles = ns.run("dpkg-query", "-W", "-f=${Conffiles}", "mcp-supervisor").stdout
    assert "/etc/mcp-supervisor/supervisor.toml" in conffiles
    for name in ("mcp-supervisor", "mcp-admin", "mcp-status"):
        ns.run("getent", "group", name)
    ns.run("getent", "passwd", "mcp-supervisor")
    # Every executable resolves every library inside the tree (the Swift runtime comes with the package).
    for exe in ("mcp-supervisor", "mcpctl", "mcp-plugin-host", "mcp-gateway"):
        ldd = ns.run("ldd", f"/usr/bin/{exe}").stdout
        assert "not found" not in ldd, ldd


def test_verify_is_clean_inside(installed):
    # --man=no: the minimal tree has no man-db to resolve Documentation=man:…; the pages themselves are checked
    # in the install test.
    out = installed.ns.run("systemd-analyze", "verify", "--man=no", f"/lib/systemd/system/{UNIT}", check=False)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    doc = installed.ns.run("systemctl", "show", UNIT, "--property=Documentation").stdout
    for page in re.findall(r"man:([\w-]+)\((\d)\)", doc):
        installed.ns.run("test", "-f", f"/usr/share/man/man{page[1]}/{page[0]}.{page[1]}.gz")


def test_start_returns_after_ready_with_servers_serving_and_status_line(installed):
    ns = installed.ns
    for name in installed.ports:
        ns.write(f"/etc/mcp-supervisor/servers.d/{name}.toml", installed.server_file(name))
    ns.run("systemctl", "stop", UNIT)
    ns.run("systemctl", "start", UNIT, timeout=60)
    # start returned: READY=1 came, so the control socket is up and every boot server is running (no waiting).
    assert ns.show(UNIT, "ActiveState")["ActiveState"] == "active"
    assert installed.all_running(), ns.run("mcpctl", "status").stdout
    for name in installed.ports:
        assert installed.serves(name)
    # The first health probe runs right after ready (docs/health.md): "initializing" lasts one probe.
    status = ns.show(UNIT, "StatusText")["StatusText"]
    assert re.match(r"^2 servers: 2 (healthy|initializing)", status), status
    status = wait_for(lambda: (t := ns.show(UNIT, "StatusText")["StatusText"]) == "2 servers: 2 healthy" and t,
                      5 + 2 * LATE, "STATUS= 2 servers: 2 healthy")
    text = ns.run("systemctl", "status", "--no-pager", UNIT, check=False).stdout
    assert f"Status: \"{status}\"" in text, text


def test_mcpctl_for_admin_group_and_read_only_group(installed):
    ns = installed.ns
    ns.run("useradd", "-m", "-G", "mcp-admin", "alice")
    ns.run("useradd", "-m", "-G", "mcp-status", "bob")
    ns.run("useradd", "-m", "carol")
    # A member of mcp-status reads but may not change anything.
    out = ns.run("mcpctl", "status", user="bob", check=False)
    assert out.returncode == 0 and "alpha" in out.stdout, out.stderr
    before = installed.child_pids()
    out = ns.run("mcpctl", "stop", "alpha", user="bob", check=False)
    assert out.returncode == 4 and "mcp-admin" in out.stderr, (out.returncode, out.stderr)
    assert installed.child_pids() == before
    # Someone in neither group gets nothing.
    out = ns.run("mcpctl", "status", user="carol", check=False)
    assert out.returncode in (3, 4), (out.returncode, out.stdout, out.stderr)
    # The admin stops and starts.
    out = ns.run("mcpctl", "stop", "alpha", user="alice", check=False)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: installed.child_pids().get("alpha") == [], 15, "alpha's replicas gone after stop")
    ns.run("mcpctl", "start", "alpha", user="alice")
    wait_for(installed.all_running, 15, "alpha running again")


def test_reload_changes_only_the_changed_server_and_a_broken_file_fails_it(installed):
    ns = installed.ns
    before = installed.child_pids()
    ns.write("/etc/mcp-supervisor/servers.d/beta.toml",
             installed.server_file("beta", 'host_args = ["--call-timeout", "20"]\n'))
    ns.run("systemctl", "reload", UNIT, timeout=60)
    wait_for(lambda: installed.all_running() and installed.child_pids()["beta"] != before["beta"], 20,
             "beta replaced after the reload")
    after = installed.child_pids()
    assert after["alpha"] == before["alpha"], "alpha's pids changed on a reload that did not touch it"
    assert not set(after["beta"]) & set(before["beta"])
    assert installed.serves("beta")

    cursor = installed.cursor()
    good = installed.server_file("beta", 'host_args = ["--call-timeout", "20"]\n')
    ns.write("/etc/mcp-supervisor/servers.d/beta.toml", installed.server_file("beta", replicas='"many"'))
    try:
        out = ns.run("systemctl", "reload", UNIT, check=False, timeout=60)
        assert out.returncode != 0, "a reload with a broken server file succeeded"
        assert ns.show(UNIT, "ActiveState")["ActiveState"] == "active"
        assert installed.child_pids() == after, "a rejected reload changed the running servers"
        messages = [str(e.get("MESSAGE", "")) for e in installed.unit_journal(cursor)]
        assert any(re.search(r"servers\.d/beta\.toml:3: replicas: ", m) for m in messages), messages[-20:]
        assert installed.serves("beta")
    finally:
        # Repaired for the tests that follow (a restart with a broken file would exit 78).
        ns.write("/etc/mcp-supervisor/servers.d/beta.toml", good)
        ns.run("systemctl", "reload", UNIT, timeout=60)


def test_sigstop_is_a_watchdog_timeout_and_a_restart(installed):
    ns = installed.ns
    restarts = int(ns.show(UNIT, "NRestarts")["NRestarts"])
    pid = installed.running_main_pid()
    cursor = installed.cursor()
    ns.run("kill", "-STOP", str(pid))
    wait_for(lambda: int(ns.show(UNIT, "NRestarts")["NRestarts"]) > restarts, WATCHDOG_S * 2 + 10 * LATE,
             "systemd restarting the wedged supervisor")
    wait_for(lambda: ns.show(UNIT, "ActiveState")["ActiveState"] == "active", 30, "active again")
    assert installed.main_pid() != pid
    messages = [str(e.get("MESSAGE", "")) for e in installed.unit_journal(cursor)]
    assert any("Watchdog timeout" in m for m in messages), messages[-20:]
    wait_for(installed.all_running, 20, "every server running after the watchdog restart")
    for name in installed.ports:
        assert installed.serves(name), f"{name} not serving on its port {installed.ports[name]}"


def test_sigkill_under_load_refuses_no_connection(installed):
    ns = installed.ns
    wait_for(installed.all_running, 20, "every server running")
    pid = installed.running_main_pid()
    children = installed.child_pids()
    old = ns.host_pids([pid, *children["alpha"], *children["beta"]])
    assert len(old) == 5, old
    with Load(list(installed.ports.values())) as load:
        wait_for(lambda: load.calls_ok() > 20, 10, "the load generator's first calls")
        killed_at = time.monotonic()
        ns.run("kill", "-KILL", str(pid))
        # Serving again counts only calls opened once every old process is gone (the old children serve on
        # until systemd kills them).
        wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in old), 30, "the old processes gone",
                 interval=0.005)
        gone_at = time.monotonic()
        wait_for(lambda: load.serving_again(gone_at) is not None, 30, "every server serving after the kill")
        wait_for(lambda: installed.main_pid() not in (0, pid) and installed.all_running(), 30,
                 "a new supervisor with every server running")
        load.stop()
    assert load.refused == [], f"{len(load.refused)} refused connections"
    serving = gone_at - killed_at + load.serving_again(gone_at)
    print(f"kill -> old processes gone {gone_at - killed_at:.3f} s, -> serving {serving:.3f} s; "
          f"{load.calls_ok()} calls, {len(load.failed)} failed (reset by the killed children): {load.failed[:2]}")
    # Same ports: the sockets came back from the fd store; the new supervisor was started with them.
    environ = ns.run("cat", f"/proc/{installed.main_pid()}/environ").stdout.split("\0")
    names = next((e.split("=", 1)[1] for e in environ if e.startswith("LISTEN_FDNAMES=")), "")
    assert sorted(names.split(":")) == ["alpha", "beta"], environ
    # ... and none of systemd's variables reached the children.
    for child in [*installed.child_pids()["alpha"], *installed.child_pids()["beta"]]:
        env = ns.run("cat", f"/proc/{child}/environ").stdout.split("\0")
        leaked = [e for e in env if e.startswith(("NOTIFY_SOCKET=", "WATCHDOG_", "LISTEN_"))]
        assert leaked == [], (child, leaked)


def test_rolling_restart_under_load_drops_no_connection_and_no_call(installed):
    ns = installed.ns
    wait_for(installed.all_running, 20, "every server running")
    before = installed.child_pids()
    with Load(list(installed.ports.values())) as load:
        wait_for(lambda: load.calls_ok() > 20, 10, "the load generator's first calls")
        ns.run("mcpctl", "restart", "--rolling", "alpha", timeout=60)
        wait_for(lambda: installed.all_running() and not set(installed.child_pids()["alpha"]) & set(before["alpha"]),
                 30, "every replica of alpha replaced")
        calls_before = load.calls_ok()
        wait_for(lambda: load.calls_ok() > calls_before + 20, 10, "calls after the rolling restart")
        load.stop()
    assert load.refused == [], f"{len(load.refused)} refused connections"
    assert load.failed == [], f"{len(load.failed)} failed calls: {load.failed[:3]}"
    assert installed.child_pids()["beta"] == before["beta"]


def test_journal_has_each_servers_story(installed):
    ns = installed.ns
    ns.run("mcpctl", "restart", "alpha")
    wait_for(installed.all_running, 20, "alpha running after restart")
    entries = ns.journal("MCP_SERVER=alpha")
    assert entries, "journalctl MCP_SERVER=alpha found nothing"
    events = {e.get("MCP_EVENT") for e in entries}
    assert {"child.start", "child.exit"} <= events, events
    forwarded = [e for e in entries if "serving" in str(e.get("MESSAGE", "")) and e.get("MCP_PID")]
    assert forwarded, "no forwarded line of the plugin host with MCP_PID"
    assert all(e.get("MCP_SERVER") == "alpha" for e in entries)
    assert all("PRIORITY" in e and "SYSLOG_IDENTIFIER" in e for e in entries)
    assert ns.journal("MCP_SERVER=beta"), "beta's lines are missing"


def test_chatty_plugin_does_not_drown_the_supervisor_in_the_journal(installed):
    """journald's per-unit rate limit (10,000 lines in 30 s on Debian 12) would suppress the supervisor's own lines
    along with a chatty plugin's; the forwarder's per-server budget for the journal keeps below it."""
    from conftest import plugin_path

    ns = installed.ns
    plugin = ns.copy_in(plugin_path("faulty"))
    port = installed.ports["alpha"] + 2
    ns.write("/etc/mcp-supervisor/servers.d/chatty.toml",
             f'plugin = "{plugin}"\nport = {port}\n[config]\nextra_tools = true\n')
    try:
        ns.run("systemctl", "reload", UNIT, timeout=60)
        wait_for(lambda: installed.all_running(("alpha", "beta", "chatty")), 20, "chatty running")
        cursor = installed.cursor()
        count = 30000
        assert call_tool(port, "spam", {"count": count}, timeout=60) == f"spammed {count}"
        # The supervisor's own lines right after the flood must reach the journal.
        ns.run("mcpctl", "restart", "beta")
        wait_for(installed.all_running, 20, "beta running after restart")
        # The forwarder reports what it dropped once per second (docs/supervisor.md).
        wait_for(lambda: any(e.get("MCP_EVENT") == "child.logs_dropped"
                             for e in ns.journal("--after-cursor", cursor, "MCP_SERVER=chatty")),
                 2 + 2 * LATE, "chatty's child.logs_dropped in the journal", interval=0.2)
        entries = ns.journal("--after-cursor", cursor)
        suppressed = [e["MESSAGE"] for e in entries if "Suppressed" in str(e.get("MESSAGE", ""))]
        assert suppressed == [], suppressed
        chatty = [e for e in entries if e.get("MCP_SERVER") == "chatty"]
        spam = [e for e in chatty if "spam " in str(e.get("MESSAGE", ""))]
        assert 0 < len(spam) < count, len(spam)
        assert any(e.get("MCP_EVENT") == "child.logs_dropped" for e in chatty), "no child.logs_dropped line"
        beta = {e.get("MCP_EVENT") for e in entries if e.get("MCP_SERVER") == "beta"}
        assert {"child.start", "child.ready"} <= beta, beta
    finally:
        ns.run("rm", "-f", "/etc/mcp-supervisor/servers.d/chatty.toml")
        ns.run("systemctl", "reload", UNIT, timeout=60)


def test_upgrade_under_load_keeps_ports_and_refuses_nothing(installed):
    ns = installed.ns
    newer = build_deb(version="0.1.0+1")
    inside = ns.copy_in(newer)
    wait_for(installed.all_running, 20, "every server running")
    pid = installed.running_main_pid()
    with Load(list(installed.ports.values())) as load:
        wait_for(lambda: load.calls_ok() > 20, 10, "the load generator's first calls")
        out = ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", inside,
                     timeout=300, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: installed.main_pid() not in (0, pid) and installed.all_running(), 30,
                 "the upgraded supervisor with every server running")
        upgraded_at = time.monotonic()
        wait_for(lambda: load.serving_again(upgraded_at) is not None, 30, "serving after the upgrade")
        load.stop()
    assert ns.run("dpkg-query", "-W", "-f=${Version}", "mcp-supervisor").stdout == "0.1.0+1"
    assert load.refused == [], f"{len(load.refused)} refused connections during the upgrade"
    # The upgraded supervisor got the sockets from the fd store: a restart, not a stop and a start.
    environ = ns.run("cat", f"/proc/{installed.running_main_pid()}/environ").stdout.split("\0")
    names = next((e.split("=", 1)[1] for e in environ if e.startswith("LISTEN_FDNAMES=")), "")
    assert sorted(names.split(":")) == ["alpha", "beta"], environ
    for name in installed.ports:
        assert installed.serves(name)


def test_stop_leaves_nothing_and_empties_the_fd_store(installed):
    ns = installed.ns
    cgroup = ns.show(UNIT, "ControlGroup")["ControlGroup"]
    children = installed.child_pids()
    assert children["alpha"] and children["beta"]
    # The unit's cgroup (cgroup v2, or the name=systemd hierarchy of a v1 host) holds the supervisor and every child.
    procs_file = next(f for f in (f"/sys/fs/cgroup{cgroup}/cgroup.procs", f"/sys/fs/cgroup/systemd{cgroup}/cgroup.procs",
                                  f"/sys/fs/cgroup/unified{cgroup}/cgroup.procs")
                      if ns.run("test", "-f", f, check=False).returncode == 0)
    members = {int(p) for p in ns.run("cat", procs_file).stdout.split()}
    assert {installed.main_pid(), *children["alpha"], *children["beta"]} <= members, members
    ns.run("systemctl", "stop", UNIT, timeout=120)
    assert ns.show(UNIT, "ActiveState")["ActiveState"] == "inactive"
    procs = ns.run("sh", "-c", f"cat {procs_file} 2>/dev/null || true").stdout.split()
    assert procs == [], f"left in {cgroup}: {procs}"
    for pid in members:
        assert ns.run("test", "-e", f"/proc/{pid}", check=False).returncode != 0, f"pid {pid} still exists"
    assert ns.run("pgrep", "-f", "mcp-plugin-host|mcp-supervisor", check=False).stdout.strip() == ""
    # Started again: nothing comes from the fd store (it was emptied by the stop); the supervisor binds anew.
    ns.run("systemctl", "start", UNIT, timeout=60)
    environ = ns.run("cat", f"/proc/{installed.main_pid()}/environ").stdout.split("\0")
    assert not any(e.startswith("LISTEN_FDS=") for e in environ), environ
    wait_for(installed.all_running, 20, "every server running")


def test_purge_removes_user_state_and_unit(installed):
    ns = installed.ns
    ns.run("test", "-d", "/var/lib/mcp-supervisor")
    out = ns.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "mcp-supervisor", timeout=300,
                 check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ns.run("getent", "passwd", "mcp-supervisor", check=False).returncode != 0
    for group in ("mcp-supervisor", "mcp-admin", "mcp-status"):
        assert ns.run("getent", "group", group, check=False).returncode != 0, group
    for path in ("/var/lib/mcp-supervisor", "/lib/systemd/system/mcp-supervisor.service",
                 "/etc/mcp-supervisor/supervisor.toml", "/run/mcp-supervisor"):
        assert ns.run("test", "-e", path, check=False).returncode != 0, f"{path} left after purge"
    assert ns.show(UNIT, "LoadState")["LoadState"] == "not-found"
    assert ns.run("pgrep", "-f", "mcp-plugin-host|mcp-supervisor", check=False).stdout.strip() == ""
