"""The child's box as the host applies it to itself (docs/security.md, "The box: what the child does to itself").

Each test starts mcp-plugin-host the way the supervisor does (an inherited listening socket in MCP_LISTEN_FD) with
MCP_BOX set as BoxSpec.encode writes it, loads the hostile plugin (Plugins/hostile) and asserts what each attempt
gets. The same attempts succeed with the box off, so every assertion can fail.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, host_binary, modern_post, plugin_path, traversable

NOBODY = 65534


def _swift_list(name: str) -> list[str]:
    """The fixed system paths, read from Contracts (BoxSpec+System.swift) so the test and the host agree."""
    src = (REPO / "Sources" / "Contracts" / "BoxSpec+System.swift").read_text()
    body = re.search(name + r": \[String\] = \[(.*?)\]", src, re.S)
    assert body, f"{name} not found in BoxSpec+System.swift"
    return re.findall(r'"([^"]+)"', body.group(1))


SYSTEM_READ = _swift_list("systemReadPaths")
SYSTEM_WRITE = _swift_list("systemWritePaths")


def default_box(plugin: Path, **extra) -> dict:
    box = {"enabled": True, "read_paths": SYSTEM_READ + [str(plugin.parent)], "write_paths": list(SYSTEM_WRITE)}
    for k, v in extra.items():
        if k in ("read_paths", "write_paths"):
            box[k] = box[k] + v
        else:
            box[k] = v
    return box


class Boxed:
    """A host on an inherited listening socket, its stderr read on a thread."""

    def __init__(self, plugin: Path | str, box: dict | str | None, *, pass_fds=(), plugin_arg: str | None = None):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        env = dict(os.environ, MCP_LISTEN_FD=str(self.lsock.fileno()))
        env.pop("MCP_BOX", None)
        if box is not None:
            env["MCP_BOX"] = box if isinstance(box, str) else json.dumps(box)
        self.proc = subprocess.Popen(
            [str(host_binary()), "--plugin", plugin_arg or str(plugin)], env=env,
            pass_fds=[self.lsock.fileno(), *pass_fds], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.serving = self._first_stdout_line(30.0)

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._lines.append(None)  # EOF marker
            self._cond.notify_all()

    def _first_stdout_line(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    return self.proc.stdout.readline()
            raise AssertionError("the host printed no line on stdout")
        finally:
            sel.close()

    def stderr_lines(self) -> list[str]:
        with self._cond:
            return [l for l in self._lines if l is not None]

    def wait_stderr(self, pattern: str, timeout: float = 10.0) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for l in self._lines:
                    if l is not None and rx.search(l):
                        return l
                left = deadline - time.monotonic()
                if left <= 0 or (self._lines and self._lines[-1] is None):
                    raise AssertionError(f"no stderr line matching {pattern!r}: {self._lines!r}")
                self._cond.wait(left)

    def call(self, name: str, **args) -> tuple[str, str]:
        reply = modern_post(self.port, "tools/call", {"name": name, "arguments": args}, timeout=30)
        result = reply.final()
        assert "result" in result, f"{name}: {result}"
        texts = [c["text"] for c in result["result"]["content"]]
        return texts[0], (texts[1] if len(texts) > 1 else "")

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._reader.join(timeout)

    def stop_clean(self) -> None:
        """SIGTERM; the host drains and exits 0 (its stderr is in the message when not)."""
        rc = self.stop()
        assert rc == 0, f"the host exited with {rc}: {self.stderr_lines()!r}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the host did not stop after SIGTERM")
        finally:
            self._reader.join(10)
            self.proc.stdout.close()
            self.proc.stderr.close()
            self.lsock.close()
        return rc


@pytest.fixture
def boxed():
    started: list[Boxed] = []

    def start(plugin, box, **kw) -> Boxed:
        b = Boxed(plugin, box, **kw)
        started.append(b)
        return b

    yield start
    for b in started:
        if b.proc.returncode is None:
            b.stop()


@pytest.fixture
def hostile() -> Path:
    return plugin_path("hostile")


@pytest.fixture
def target():
    """A process the plugin tries to signal and trace (a stand-in for the supervisor), reaped afterwards."""
    p = subprocess.Popen(["sleep", "300"])
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture
def abstract_listener():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"mcp-box-test-{os.getpid()}-{time.monotonic_ns()}"
    s.bind("\0" + name)
    s.listen(4)
    yield "@" + name
    s.close()


@pytest.fixture
def tcp_listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def nobody_tmp(tmp_path):
    undo = traversable(tmp_path)
    yield tmp_path
    undo()


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def proc_status(pid: int) -> dict[str, str]:
    return status_fields(Path(f"/proc/{pid}/status").read_text())


def proc_limits(pid: int) -> dict[str, tuple[str, str]]:
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        m = re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


# --------------------------------------------------------------------------------------------------------------
# The box off: every attempt works (the assertions below can fail).
# --------------------------------------------------------------------------------------------------------------


def test_box_off_every_attempt_succeeds(boxed, hostile, tmp_path, target, abstract_listener, tcp_listener):
    b = boxed(hostile, None)
    status = status_fields(b.call("status")[0])
    assert status["CapEff"] != "0000000000000000" and status["Seccomp"] == "0" and status["NoNewPrivs"] == "0"
    assert b.call("read_shadow")[0] == "ok"
    assert b.call("read_parent_mem", pid=os.getpid())[0] == "ok"
    assert b.call("read_parent_environ", pid=os.getpid())[0] == "ok"
    assert b.call("read_file", path="/etc/hostname")[0] == "ok"
    assert b.call("write_file", path=str(tmp_path / "outside"))[0] == "ok"
    assert b.call("write_own_so", path=str(hostile))[0] == "ok"
    assert b.call("kill_pid", pid=target)[0] == "ok"
    assert b.call("ptrace_pid", pid=target)[0] == "ok"
    assert b.call("raw_socket")[0] == "ok"
    assert b.call("packet_socket")[0] == "ok"
    assert b.call("tcp_connect", host="127.0.0.1", port=tcp_listener)[0] == "ok"
    assert b.call("tcp_bind")[0] == "ok"
    assert b.call("connect_unix", path=abstract_listener)[0] == "ok"
    (tmp_path / "mnt").mkdir()
    assert b.call("mount_tmpfs", path=str(tmp_path / "mnt"))[0] == "ok"
    assert b.call("unshare_user")[0] == "ok"
    assert b.call("fork_bomb", max=20) == ("ok", "forked=20 (the limit asked for); all children killed and reaped")
    assert b.call("alloc", mib=64)[0] == "ok"
    assert not any("box" in l for l in b.stderr_lines()), b.stderr_lines()
    b.stop_clean()


def test_box_disabled_applies_nothing(boxed, hostile):
    b = boxed(hostile, {"enabled": False})
    assert status_fields(b.call("status")[0])["Seccomp"] == "0"
    assert b.call("read_shadow")[0] == "ok"
    b.stop_clean()


# --------------------------------------------------------------------------------------------------------------
# The default box: uid 0 with no capabilities, no_new_privs, Landlock, seccomp.
# --------------------------------------------------------------------------------------------------------------


def test_default_box(boxed, hostile, tmp_path, target, abstract_listener, tcp_listener):
    b = boxed(hostile, default_box(hostile))
    assert "serving hostile" in b.serving
    applied = b.wait_stderr(r"box applied")
    assert "capabilities none" in applied and "landlock (ABI" in applied and "seccomp trap" in applied, applied
    s = proc_status(b.proc.pid)
    assert s["Uid"].split() == ["0"] * 4
    assert s["CapEff"] == s["CapPrm"] == s["CapBnd"] == s["CapInh"] == s["CapAmb"] == "0000000000000000"
    assert s["NoNewPrivs"] == "1" and s["Seccomp"] == "2"
    assert status_fields(b.call("status")[0])["CapBnd"] == "0000000000000000"
    limits = proc_limits(b.proc.pid)
    assert limits["Max core file size"] == ("0", "0")
    # Landlock: /etc/shadow and /etc/hostname are readable by uid 0 through file modes; only Landlock stops it.
    assert b.call("read_shadow")[0] == "errno=EACCES"
    assert b.call("read_file", path="/etc/hostname")[0] == "errno=EACCES"
    assert b.call("read_file", path="/usr/lib/os-release")[0] == "ok"
    assert b.call("read_parent_mem", pid=os.getpid())[0] in ("errno=EACCES", "errno=EPERM")
    assert b.call("read_parent_environ", pid=os.getpid())[0] in ("errno=EACCES", "errno=EPERM")
    assert b.call("write_file", path=str(tmp_path / "outside"))[0] == "errno=EACCES"
    assert not (tmp_path / "outside").exists()
    assert b.call("write_own_so", path=str(hostile))[0] == "errno=EACCES"
    assert b.call("write_own_so")[0] == "errno=EACCES"
    # Landlock's signal scope: uid 0 cannot signal a process outside its domain (the supervisor).
    assert b.call("kill_pid", pid=target)[0] == "errno=EPERM"
    assert b.call("kill_pid", pid=os.getpid())[0] == "errno=EPERM"
    assert b.call("connect_unix", path=abstract_listener)[0] == "errno=EPERM"
    # seccomp (and no capabilities).
    assert b.call("ptrace_pid", pid=target)[0] == "errno=EPERM"
    assert b.call("raw_socket")[0] == "errno=EPERM"
    assert b.call("packet_socket")[0] == "errno=EPERM"
    (tmp_path / "mnt").mkdir()
    assert b.call("mount_tmpfs", path=str(tmp_path / "mnt"))[0] == "errno=EPERM"
    assert b.call("unshare_user")[0] == "errno=EPERM"
    # network "outbound": TCP still works; threads (clone without namespace flags) and fork still work.
    assert b.call("tcp_connect", host="127.0.0.1", port=tcp_listener)[0] == "ok"
    assert b.call("fork_bomb", max=5)[0] == "ok"
    # Each denied call is named in one stderr line.
    for name in ("ptrace", "mount", "unshare", "socket"):
        b.wait_stderr(rf"^mcp-plugin-host: box: denied syscall {name} \(EPERM\)$")
    # The host still serves after the box.
    tools = modern_post(b.port, "tools/list", {}).final()["result"]["tools"]
    assert "status" in {t["name"] for t in tools}
    b.stop_clean()


def test_box_applied_line_in_json(boxed, hostile, monkeypatch):
    monkeypatch.setenv("MCP_LOG_FORMAT", "json")
    b = boxed(hostile, default_box(hostile))
    line = json.loads(b.wait_stderr(r'"host\.box_applied"'))
    assert line["event"] == "host.box_applied"
    assert int(line["landlock_abi"]) >= 1 and line["filesystem"] == "landlock"
    assert line["seccomp"] == "trap" and line["capabilities"] == "none" and line["no_new_privs"] == "1"
    # A denied call in JSON mode: one JSON object a log shipper can filter on, not a text line among JSON ones.
    assert b.call("unshare_user")[0] == "errno=EPERM"
    denied = json.loads(b.wait_stderr(r'"host\.syscall_denied"'))
    assert denied == {"level": "warning", "source": "mcp-plugin-host", "event": "host.syscall_denied",
                      "message": "box: denied syscall unshare (EPERM)", "syscall": "unshare"}, denied
    assert not any(l.startswith("mcp-plugin-host: box: denied") for l in b.stderr_lines()), b.stderr_lines()
    b.stop_clean()


# --------------------------------------------------------------------------------------------------------------
# The full box: uid/gid nobody, limits, network none, a write folder.
# --------------------------------------------------------------------------------------------------------------


def test_full_box(boxed, nobody_plugin, nobody_tmp, target, abstract_listener, tcp_listener):
    hostile = nobody_plugin("hostile")  # the checkout may be out of nobody's reach
    work = nobody_tmp / "work"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    outside = nobody_tmp / "outside"
    outside.mkdir(mode=0o777)
    outside.chmod(0o777)  # file modes allow nobody: only Landlock stops the write
    # A setuid-root program that prints its euid (a real setuid binary, built here).
    helper_src = nobody_tmp / "euid.c"
    helper_src.write_text('#include <stdio.h>\n#include <unistd.h>\n'
                          'int main(void){printf("euid=%u\\n",(unsigned)geteuid());return 0;}\n')
    helper = nobody_tmp / "euid"
    subprocess.run(["cc", "-o", str(helper), str(helper_src)], check=True)
    os.chown(helper, 0, 0)
    helper.chmod(0o4755)
    box = default_box(hostile, uid=NOBODY, gid=NOBODY, open_files_max=64, processes_max=64,
                      memory_max=1 << 30, network="none", write_paths=[str(work)], read_paths=[str(helper)])
    b = boxed(hostile, box)
    s = proc_status(b.proc.pid)
    assert s["Uid"].split() == [str(NOBODY)] * 4 and s["Gid"].split() == [str(NOBODY)] * 4
    assert s["Groups"] == ""
    assert s["CapEff"] == s["CapPrm"] == s["CapBnd"] == "0000000000000000"
    assert s["NoNewPrivs"] == "1" and s["Seccomp"] == "2"
    limits = proc_limits(b.proc.pid)
    assert limits["Max open files"] == ("64", "64")
    assert limits["Max processes"] == ("64", "64")
    assert limits["Max data size"] == (str(1 << 30), str(1 << 30))
    assert limits["Max core file size"] == ("0", "0")
    assert b.call("read_shadow")[0] == "errno=EACCES"
    assert b.call("read_parent_mem", pid=os.getpid())[0] == "errno=EACCES"
    assert b.call("read_parent_environ", pid=os.getpid())[0] == "errno=EACCES"
    assert b.call("write_file", path=str(work / "mine"))[0] == "ok"
    assert (work / "mine").read_text() == "hostile\n" and (work / "mine").stat().st_uid == NOBODY
    assert b.call("write_file", path=str(outside / "x"))[0] == "errno=EACCES"
    assert b.call("write_own_so")[0] == "errno=EACCES"
    head, detail = b.call("fork_bomb", max=200)
    assert head == "errno=EAGAIN", detail
    assert 0 < int(re.search(r"forked=(\d+)", detail).group(1)) < 64
    assert b.call("alloc", mib=2048)[0] == "errno=ENOMEM"
    assert b.call("alloc", mib=16)[0] == "ok"
    assert b.call("kill_pid", pid=target)[0] == "errno=EPERM"
    assert b.call("ptrace_pid", pid=target)[0] == "errno=EPERM"
    assert b.call("raw_socket")[0] == "errno=EPERM"
    assert b.call("packet_socket")[0] == "errno=EPERM"
    assert b.call("tcp_connect", host="127.0.0.1", port=tcp_listener)[0] == "errno=EPERM"
    assert b.call("tcp_bind")[0] == "errno=EPERM"
    assert b.call("connect_unix", path=abstract_listener)[0] == "errno=EPERM"
    assert b.call("exec_setuid", path=str(helper)) == ("denied", f"{helper} (setuid root) ran with uid 65534 euid 65534")
    assert b.call("mount_tmpfs", path=str(work))[0] == "errno=EPERM"
    # The inherited listening socket still accepts: every call above came through it.
    tools = modern_post(b.port, "tools/list", {}).final()["result"]["tools"]
    assert len(tools) >= 19
    b.stop_clean()
    # The same helper gives euid 0 without the box: the check above can fail.
    unboxed = boxed(hostile, None)
    assert unboxed.call("exec_setuid", path=str(helper))[0] == "ok"
    unboxed.stop_clean()


def test_private_tmp(boxed, nobody_plugin, nobody_tmp):
    hostile = nobody_plugin("hostile")  # outside /tmp, which the private /tmp hides
    private = nobody_tmp / "private-tmp"
    private.mkdir()
    os.chown(private, NOBODY, NOBODY)
    marker = f"box-test-{os.getpid()}-{time.monotonic_ns()}"
    visible = nobody_tmp / "visible"
    visible.write_text("x")
    visible.chmod(0o644)
    b = boxed(hostile, default_box(hostile, uid=NOBODY, gid=NOBODY, private_tmp=str(private),
                                   read_paths=[str(nobody_tmp)]))
    b.wait_stderr(r"private /tmp")
    assert b.call("write_file", path=f"/tmp/{marker}")[0] == "ok"
    assert (private / marker).read_text() == "hostile\n"
    assert not Path(f"/tmp/{marker}").exists()  # the host's /tmp is untouched
    # The host's /tmp (where nobody_tmp lives) is hidden in the child's namespace.
    assert b.call("read_file", path=str(visible))[0] == "errno=ENOENT"
    b.stop_clean()
    # Without the private /tmp the same file is readable: the check above can fail.
    b = boxed(hostile, default_box(hostile, uid=NOBODY, gid=NOBODY, read_paths=[str(nobody_tmp)]))
    assert b.call("read_file", path=str(visible))[0] == "ok"
    b.stop_clean()


def test_syscalls_allow_takes_a_call_off_the_deny_list(boxed, hostile, tmp_path):
    (tmp_path / "mnt").mkdir()
    b = boxed(hostile, default_box(hostile, syscalls_allow=["unshare"]))
    # unshare now reaches the kernel, which refuses it for lack of capabilities (EPERM again, but no trap line);
    # mount stays denied by the filter and is named.
    b.call("unshare_user")
    assert b.call("mount_tmpfs", path=str(tmp_path / "mnt"))[0] == "errno=EPERM"
    b.wait_stderr(r"denied syscall mount")
    assert not any("denied syscall unshare" in l for l in b.stderr_lines()), b.stderr_lines()
    b.stop_clean()


def test_a_boxed_host_starts_and_stops_without_a_denied_call(boxed, hostile):
    """The host's own code never trips the filter: libdispatch logs through syslog(3) (a datagram AF_UNIX socket)
    when a boxed worker thread cannot raise its priority, which happened at about every other drain while all
    AF_UNIX sockets were denied. Several starts, because it depends on when the drain's worker thread starts."""
    for _ in range(5):
        b = boxed(hostile, default_box(hostile))
        assert b.call("status")[0].startswith("Uid:")
        b.stop_clean()
        denied = [l for l in b.stderr_lines() if "denied syscall" in l]
        assert not denied, denied


def test_a_memfd_plugin_loads_under_the_box(boxed, hostile):
    """The trust helper loads a verified plugin from a memfd through /proc/self/fd/N: Landlock must allow it."""
    fd = os.memfd_create("plugin", 0)
    try:
        os.write(fd, hostile.read_bytes())
        b = boxed(hostile, default_box(hostile), pass_fds=[fd], plugin_arg=f"/proc/self/fd/{fd}")
        assert "serving hostile" in b.serving, (b.serving, b.stderr_lines())
        assert b.call("read_shadow")[0] == "errno=EACCES"
        b.stop_clean()
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------------------
# Refusals: exit status in 40-49 and one line.
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("box, status, words", [
    ("not json", 40, "MCP_BOX is not a valid box description"),
    ('{"enabled": true, "uid": -1}', 40, "MCP_BOX is not a valid box description"),
    ('{"enabled": true, "network": "sometimes"}', 40, "MCP_BOX is not a valid box description"),
    ('{"enabled": true, "syscalls_allow": ["no_such_call"]}', 49, "syscalls_allow names 'no_such_call'"),
    ('{"enabled": true, "cgroup_procs_files": ["/nonexistent/cgroup.procs"]}', 41,
     "joining the cgroup /nonexistent/cgroup.procs failed: ENOENT"),
    ('{"enabled": true, "private_tmp": "/nonexistent-private-tmp"}', 42, "private /tmp from /nonexistent-private-tmp"),
])
def test_refuses_a_bad_box(boxed, hostile, box, status, words):
    b = boxed(hostile, box)
    assert b.serving == ""
    assert b.wait_exit() == status
    lines = b.stderr_lines()
    assert len(lines) == 1 and words in lines[0], lines
    b.stop()
