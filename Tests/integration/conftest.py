"""Shared fixtures for the integration tests: real host processes on loopback, real plugins."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"^mcp-plugin-host: serving .* at (http://127\.0\.0\.1:(\d+)/mcp)$")


def host_binary() -> Path:
    path = Path(os.environ.get("MCP_PLUGIN_HOST", REPO / ".build" / "debug" / "mcp-plugin-host"))
    if not path.exists():
        pytest.fail(f"mcp-plugin-host not built at {path} (run scripts/test.sh or swift build)")
    return path


def plugin_dir() -> Path:
    return Path(os.environ.get("MCP_PLUGIN_DIR", REPO / ".build-plugins"))


def plugin_path(name: str) -> Path:
    """Path of a built plugin, e.g. plugin_path('reference') -> .build-plugins/libreference.so."""
    path = plugin_dir() / f"lib{name}.so"
    if not path.exists():
        pytest.fail(f"plugin {path} not built (run scripts/build-plugins.sh)")
    return path


class HostProcess:
    """A running mcp-plugin-host serving on 127.0.0.1 with a free port."""

    def __init__(self, proc: subprocess.Popen, url: str, port: int, first_line: str):
        self.proc = proc
        self.url = url
        self.port = port
        self.first_line = first_line

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit with a deadline; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("mcp-plugin-host did not exit within the drain deadline after SIGTERM")

    def stderr_text(self) -> str:
        assert self.proc.poll() is not None, "read stderr only after the process exited"
        return self.proc.stderr.read() if self.proc.stderr else ""


def start_host(plugin: Path | str, *extra: str, config: str | None = None, timeout: float = 30.0) -> HostProcess:
    """Starts the host on `plugin` with --listen 127.0.0.1:0 and waits (with a deadline) for its serving line."""
    args = [str(host_binary()), "--plugin", str(plugin), "--listen", "127.0.0.1:0", *extra]
    if config is not None:
        args += ["--config", config]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = ""
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            m = SERVING.match(line.strip())
            if m:
                return HostProcess(proc, m.group(1), int(m.group(2)), line.strip())
    finally:
        sel.close()
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"host did not start serving: stdout={line!r} stderr={err!r}")


@pytest.fixture
def host_factory():
    """Starts hosts and guarantees each is stopped (and reaped) after the test."""
    started: list[HostProcess] = []

    def factory(plugin, *extra, **kw) -> HostProcess:
        h = start_host(plugin, *extra, **kw)
        started.append(h)
        return h

    yield factory
    for h in started:
        if h.proc.poll() is None:
            h.stop()
