"""mcp-plugin-host refuses broken plugins with the documented exit status (docs/plugin-host.md,
"Exit statuses") and exactly one stderr line: `mcp-plugin-host: PLUGIN_PATH: <cause>`.

The broken plugins come from Tests/fixtures/plugins and scripts/build-plugins.sh."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import host_binary, plugin_dir, plugin_path

TIMEOUT = 20.0

# name -> (exit status, regex the stderr line must match after the path prefix, case-insensitive)
CASES = {
    "not_elf": (11, r"not an? ELF"),
    "wrong_machine": (11, r"aarch64|x86[-_]64|machine"),
    "missing_lib": (12, r"libmcpp_gone\.so"),
    "no_entry": (13, r"mcpp_negotiate_v1"),
    "wrong_major": (14, r"major"),
    "newer_minor": (15, r"\b(1\.)?99\b"),
    "create_fails": (16, r"database path /nonexistent is not writable"),
    "bad_describe": (17, r"schema|describe"),
    "create_crash": (70, r"SIGSEGV"),
}


def run_host(plugin: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Runs the host on `plugin` (an absolute path) with a deadline; returns the result and
    the path as passed on the command line."""
    arg = os.path.abspath(plugin)
    cmd = [str(host_binary()), "--plugin", arg, "--listen", "127.0.0.1:0"]
    try:
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
        )  # on timeout, subprocess.run kills the host before raising
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mcp-plugin-host did not exit within {TIMEOUT:.0f} s on {arg}: stderr={exc.stderr!r}")
    return result, arg


def the_one_line(result: subprocess.CompletedProcess, arg: str) -> str:
    """Asserts that stderr holds exactly one non-empty line, prefixed with the plugin path,
    and returns what follows the prefix."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one non-empty stderr line, got {len(lines)}: {result.stderr!r}"
    line = lines[0]
    # The contract names PLUGIN_PATH: the path as given; a host that canonicalizes it
    # (realpath) still names the same file.
    prefixes = {f"mcp-plugin-host: {arg}:", f"mcp-plugin-host: {os.path.realpath(arg)}:"}
    prefix = next((p for p in prefixes if line.startswith(p)), None)
    assert prefix is not None, f"stderr line does not start with 'mcp-plugin-host: {arg}:': {line!r}"
    cause = line[len(prefix):].strip()
    assert cause, f"the stderr line names no cause: {line!r}"
    return cause


def assert_not_serving(result: subprocess.CompletedProcess) -> None:
    assert "serving" not in result.stdout, f"the host claimed to serve a broken plugin: {result.stdout!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_plugin_is_refused(name):
    status, cause_pattern = CASES[name]
    result, arg = run_host(plugin_path(name))
    assert result.returncode == status, (
        f"{name}: expected exit status {status}, got {result.returncode}; stderr={result.stderr!r}"
    )
    cause = the_one_line(result, arg)
    assert re.search(cause_pattern, cause, re.IGNORECASE), f"{name}: the cause {cause!r} does not match /{cause_pattern}/"
    assert_not_serving(result)


def test_create_crash_names_create():
    """Status 70: the line names the signal and what the plugin was doing."""
    result, arg = run_host(plugin_path("create_crash"))
    assert result.returncode == 70, result.stderr
    cause = the_one_line(result, arg)
    assert "SIGSEGV" in cause and "create" in cause, cause


def test_missing_plugin_file():
    missing = plugin_dir() / "libdoes_not_exist.so"
    assert not missing.exists()
    result, arg = run_host(missing)
    assert result.returncode == 10, f"expected exit status 10, got {result.returncode}; stderr={result.stderr!r}"
    cause = the_one_line(result, arg)
    assert re.search(r"no such file|not found|does not exist|missing|cannot open", cause, re.IGNORECASE), cause
    assert_not_serving(result)
