"""`--log-format json` (docs/supervisor.md, "Logs"): every line the supervisor writes is one JSON object with
time, level, source, message, and the server, replica, pid and event of what it is about; a child's own lines
(the host logs JSON when the supervisor asks it to, through MCP_LOG_FORMAT) are forwarded with their level and
fields; the control socket's log ring still serves readable text, indexed by the server in the metadata.

Also the host alone (`mcp-plugin-host --log-format json`) and mcpctl's error line.

Every line is parsed; waiting is on a line with a deadline (supervisor_fixtures.SupervisorRun).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import host_binary, mcpctl_binary, plugin_path
from supervisor_fixtures import SupervisorEnv, call_tool, wait_until

pytestmark = pytest.mark.timeout(120)

FAST_BACKOFF = {"initial": 0.1, "max": 5, "multiplier": 2, "jitter": 0}
LEVELS = {"trace", "debug", "info", "notice", "warning", "error", "critical"}
TIME_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def env(tmp_path):
    sockdir = Path(tempfile.mkdtemp(prefix="mcplog-", dir="/tmp"))  # a short path for the socket
    e = SupervisorEnv(tmp_path)
    e.sock = sockdir / "control.sock"
    e.write_main(control_socket=str(e.sock))
    yield e
    errors = e.cleanup()
    shutil.rmtree(sockdir, ignore_errors=True)
    if errors:
        pytest.fail("supervisor teardown: " + "\n".join(errors), pytrace=False)


def parse_all(texts: list[str]) -> list[dict]:
    """Every line is one JSON object with the fields every line has."""
    records = []
    for i, text in enumerate(texts):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise AssertionError(f"line {i} is not JSON ({e}): {text!r}")
        assert isinstance(record, dict), f"line {i} is not an object: {text!r}"
        assert TIME_RX.match(record.get("time", "")), f"line {i}: bad time: {text!r}"
        assert record.get("level") in LEVELS, f"line {i}: bad level: {text!r}"
        assert isinstance(record.get("message"), str), f"line {i}: no message: {text!r}"
        assert isinstance(record.get("source"), str), f"line {i}: no source: {text!r}"
        records.append(record)
    return records


def wait_record(run, timeout: float = 20.0, start: int = 0, **fields) -> tuple[int, dict]:
    """Waits for a JSON line whose fields include `fields`; returns (line index, record)."""
    found: list[tuple[int, dict]] = []

    def seen():
        for line in run.lines(start):
            try:
                record = json.loads(line.text)
            except json.JSONDecodeError:
                continue
            if all(record.get(k) == v for k, v in fields.items()):
                found.append((line.index, record))
                return True
        return False

    try:
        wait_until(seen, timeout, f"a log line with {fields}")
    except AssertionError:
        raise AssertionError(f"no log line with {fields} within {timeout} s; log:\n" + run.log_text()[-6000:])
    return found[0]


def assert_about_child(record: dict, server: str, pid: int, event: str, level: str | None = None) -> None:
    assert record["server"] == server, record
    assert record["replica"] == 0, record
    assert record["pid"] == pid, record
    assert record["event"] == event, record
    assert record["source"] == "mcp-supervisor", record
    if level is not None:
        assert record["level"] == level, record


def test_json_lines_carry_the_fields_on_child_start_exit_and_restart(env):
    env.write_server("reference", plugin_path("reference"), backoff=FAST_BACKOFF)
    run = env.start("--log-format", "json")

    i, start = wait_record(run, event="child.start", server="reference")
    pid = start["pid"]
    assert_about_child(start, "reference", pid, "child.start", "info")
    assert start["message"] == "starting"
    _, ready = wait_record(run, start=i, event="child.ready", pid=pid)
    assert_about_child(ready, "reference", pid, "child.ready", "info")
    assert re.fullmatch(r"running \(ready in \d+ ms\)", ready["message"]), ready
    assert isinstance(ready["ready_ms"], int)

    # The host's own "serving" line, forwarded with its level and fields, attributed by the supervisor.
    _, serving = wait_record(run, event="host.serving", pid=pid)
    assert serving["source"] == "mcp-plugin-host" and serving["level"] == "info", serving
    assert serving["server"] == "reference" and serving["replica"] == 0, serving
    assert serving["message"].startswith("serving "), serving
    assert isinstance(serving["port"], int) and serving["plugin"] == str(plugin_path("reference")), serving

    # Exit and restart: the exit names the signal; the backoff line carries the replica and the pid that exited.
    mark = run.mark()
    os.kill(pid, signal.SIGKILL)
    _, exited = wait_record(run, start=mark, event="child.exit", pid=pid)
    assert_about_child(exited, "reference", pid, "child.exit", "notice")
    assert exited["message"] == "killed by signal 9 (SIGKILL)" and exited["signal"] == 9, exited
    _, restart = wait_record(run, start=mark, event="child.restart", server="reference")
    assert_about_child(restart, "reference", pid, "child.restart", "notice")
    assert restart["message"].startswith("backoff: killed by signal 9 (SIGKILL); restarting in "), restart
    assert isinstance(restart["delay_s"], (int, float)), restart
    _, again = wait_record(run, start=mark, event="child.start", server="reference")
    new_pid = again["pid"]
    assert new_pid != pid
    assert_about_child(again, "reference", new_pid, "child.start", "info")
    assert again["restarts"] >= 1, again
    wait_record(run, start=mark, event="child.ready", pid=new_pid)

    # The log ring behind `mcpctl logs` keeps readable lines, found by the server in the metadata.
    r = subprocess.run([str(mcpctl_binary()), "--socket", str(env.sock), "logs", "reference", "-n", "1000"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ring = r.stdout.splitlines()
    assert f"mcp-supervisor: reference[{pid}]: killed by signal 9 (SIGKILL)" in ring, ring
    assert f"mcp-supervisor: reference[{new_pid}]: starting" in ring, ring
    assert any(re.fullmatch(rf"reference\[{new_pid}\]: mcp-plugin-host: serving .*", l) for l in ring), ring

    mark = run.mark()
    run.stop()
    texts = run.texts()
    records = parse_all(texts)
    stop_exit = [r for r in records[mark:] if r.get("event") == "child.exit" and r.get("pid") == new_pid]
    assert len(stop_exit) == 1 and stop_exit[0]["status"] == 0, records[mark:]
    assert_about_child(stop_exit[0], "reference", new_pid, "child.exit", "notice")
    assert any(r.get("event") == "supervisor.stopped" for r in records[mark:]), texts[mark:]
    # Every line about a child carries all of server, replica and pid.
    for r in records:
        if r.get("event", "").startswith("child."):
            assert {"server", "replica", "pid"} <= r.keys(), r


def test_plain_text_from_a_plugin_is_forwarded_as_a_message(env):
    env.write_server("noisy", plugin_path("faulty"), config={"extra_tools": True})
    run = env.start("--log-format", "json")
    _, server = wait_record(run, event="server.start", server="noisy")
    _, ready = wait_record(run, event="child.ready", server="noisy")
    pid = ready["pid"]
    mark = run.mark()
    # The faulty plugin's `spam` tool writes plain lines to stderr, not through the host's log.
    assert call_tool(server["port"], "spam", {"count": 3}) == "spammed 3"
    _, last = wait_record(run, start=mark, message="spam 3 of 3")
    assert last == {**last, "source": "plugin", "event": "child.output", "level": "warning", "server": "noisy",
                    "replica": 0, "pid": pid}, last
    run.stop()
    records = parse_all(run.texts())
    spam = [r["message"] for r in records if r.get("event") == "child.output"]
    assert spam == ["spam 1 of 3", "spam 2 of 3", "spam 3 of 3"], spam


def test_the_host_alone_writes_one_json_failure_line(tmp_path):
    missing = tmp_path / "missing.so"
    r = subprocess.run([str(host_binary()), "--plugin", str(missing), "--listen", "127.0.0.1:0",
                        "--log-format", "json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 10, r
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    record = parse_all(lines)[0]
    assert record["level"] == "error" and record["event"] == "host.failure" and record["status"] == 10, record
    assert record["source"] == "mcp-plugin-host" and record["plugin"] == str(missing), record
    assert record["message"].startswith(f"{missing}: "), record


def test_mcpctl_error_line_as_json(tmp_path):
    r = subprocess.run([str(mcpctl_binary()), "--socket", str(tmp_path / "none.sock"), "--log-format", "json",
                        "status"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    record = parse_all(lines)[0]
    assert record["source"] == "mcpctl" and record["event"] == "mcpctl.error" and record["status"] == 3, record
    assert "no control socket at" in record["message"], record
