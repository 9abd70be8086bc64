"""The journal side without a booted systemd (docs/systemd.md, "Journal"): the supervisor runs in a private mount
namespace whose /run is a fresh tmpfs (never the host's /run or /tmp) with this test's datagram socket bound at
/run/systemd/journal/socket, where libsystemd's sd_journal_sendv sends; its stderr is a pipe named by
JOURNAL_STREAM (dev:ino), as systemd sets it for a unit whose StandardError is the journal.

Checked: the supervisor's own lines and the children's forwarded lines arrive as journal entries with MESSAGE,
PRIORITY, SYSLOG_IDENTIFIER, MCP_SERVER, MCP_REPLICA, MCP_PID (the child's), MCP_EVENT and the event's fields
as MCP_<KEY>; nothing is written to stderr as text; a plugin flooding stderr is cut to the journal budget (50
lines/s per server after 1,000) and the supervisor's own lines still arrive. The real journald (journalctl
MCP_SERVER=...) is covered by test_systemd_service.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest

from conftest import plugin_path
from supervisor_fixtures import call_tool, control_env  # noqa: F401 (fixture env)

pytestmark = pytest.mark.timeout(120)

NAMESPACE = (
    'd="$1"; shift; '
    "mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/systemd/journal && "
    'mount --bind "$d" /run/systemd/journal && '
    'JOURNAL_STREAM=$(stat -L -c "%d:%i" /proc/self/fd/2) && export JOURNAL_STREAM && exec "$@"'
)


def parse_entry(data: bytes) -> dict[str, str]:
    """journald's native protocol: KEY=value\\n, or KEY\\n + 64-bit little-endian length + value + \\n."""
    fields, pos = {}, 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        line = data[pos:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            fields[k.decode()] = v.decode("utf-8", "replace")
            pos = nl + 1
        else:
            (n,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 9
            fields[line.decode()] = data[start:start + n].decode("utf-8", "replace")
            pos = start + n + 1
    return fields


class JournalSink:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="journal-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.dir, "socket"))
        self.entries: list[tuple[float, dict[str, str]]] = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            data = self.sock.recv(1 << 20)
            with self.cond:
                if self.closed:
                    return
                self.entries.append((time.monotonic(), parse_entry(data)))
                self.cond.notify_all()

    def wait(self, timeout: float = 20, **match: str) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, e in self.entries:
                    if all(e.get(k) == v for k, v in match.items()):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no journal entry with {match} within {timeout} s; last: "
                                         + repr([e for _, e in self.entries[-10:]]))
                self.cond.wait(left)

    def select(self, **match: str) -> list[dict[str, str]]:
        with self.cond:
            return [e for _, e in self.entries if all(e.get(k) == v for k, v in match.items())]

    def close(self):
        with self.cond:
            self.closed = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"", os.path.join(self.dir, "socket"))
        self.thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def journal():
    j = JournalSink()
    yield j
    j.close()


def test_lines_go_to_the_journal_with_fields_and_a_chatty_plugin_is_cut_to_the_budget(env, journal):
    faulty = plugin_path("faulty")
    env.write_server("noisy", faulty, config={"extra_tools": True})
    env.write_server("quiet", faulty)
    started = time.monotonic()
    run = env.start(prefix=("unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE, "sh",
                            journal.dir))
    ready = journal.wait(MCP_SERVER="noisy", MCP_EVENT="child.ready")
    pid = ready["MCP_PID"]
    assert int(pid) > 0 and ready["MCP_REPLICA"] == "0" and ready["PRIORITY"] == "6", ready
    assert ready["SYSLOG_IDENTIFIER"] == "mcp-supervisor" and ready["MCP_SOURCE"] == "mcp-supervisor", ready
    assert ready["MESSAGE"].startswith(f"noisy[{pid}]: running (ready in "), ready
    assert "MCP_READY_MS" in ready, ready
    start = journal.wait(MCP_SERVER="noisy", MCP_EVENT="child.start")
    assert start["MCP_PID"] == pid and start["MCP_RESTARTS"] == "0", start
    # The host's own structured line, forwarded: its source, the child's pid, its fields.
    serving = journal.wait(MCP_SERVER="noisy", MCP_EVENT="host.serving")
    assert serving["SYSLOG_IDENTIFIER"] == "mcp-plugin-host" and serving["MCP_PID"] == pid, serving
    port = int(serving["MCP_PORT"])
    assert call_tool(port, "pid") == pid

    # A plugin floods stderr: 20,000 lines in one call.
    assert call_tool(port, "spam", {"count": 20000}) == "spammed 20000"
    journal.wait(MCP_SERVER="noisy", MCP_EVENT="child.logs_dropped")
    plugin_lines = journal.select(MCP_SERVER="noisy", SYSLOG_IDENTIFIER="plugin")
    assert plugin_lines and plugin_lines[0]["PRIORITY"] == "4", plugin_lines[:1]  # stderr text: warning
    assert plugin_lines[0]["MESSAGE"] == f"noisy[{pid}]: spam 1 of 20000", plugin_lines[0]
    # The budget (burst 1,000, then 50 a second) is the child's: its host's own lines (host.serving,
    # host.box_applied) took tokens from it too.
    host_lines = journal.select(MCP_SERVER="noisy", SYSLOG_IDENTIFIER="mcp-plugin-host")
    child_lines = len(plugin_lines) + len(host_lines)
    assert 1000 <= child_lines <= 1000 + 50 * (time.monotonic() - started + 1), (len(plugin_lines), len(host_lines))
    # The supervisor's own lines still arrive: stop the quiet server and see its stop and exit.
    assert env.control("stop", {"server": "quiet"})["result"]
    journal.wait(MCP_SERVER="quiet", MCP_EVENT="child.stop")
    exited = journal.wait(MCP_SERVER="quiet", MCP_EVENT="child.exit")
    assert exited["PRIORITY"] == "5" and "MCP_REASON" in exited, exited
    # Nothing went to stderr as text: every line was a journal entry.
    assert run.texts() == [], run.texts()[:5]
