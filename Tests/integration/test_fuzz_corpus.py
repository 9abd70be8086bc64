"""The fuzz corpus as a regression test (docs/reliability.md): every committed input of every target, the seeds and
each crash or failed property the fuzzers found, goes once through `mcp-fuzz` (a normal release build) and none
may trap. `scripts/fuzz.sh` fuzzes from the same folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import host_binary

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "Fuzz" / "corpus"
TARGETS = ["json", "toml", "config", "uri-template", "control-line", "dispatcher", "http", "elf"]


def test_every_target_has_a_seed_corpus():
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) == sorted(TARGETS)
    for t in TARGETS:
        assert any((CORPUS / t).iterdir()), f"Fuzz/corpus/{t} is empty"


@pytest.mark.parametrize("target", TARGETS)
def test_the_corpus_replays_without_a_failure(target):
    binary = host_binary().parent / "mcp-fuzz"
    files = [p for p in (CORPUS / target).iterdir() if not p.name.startswith(".")]
    r = subprocess.run([str(binary), target, str(CORPUS / target)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert r.stdout.strip().endswith(f"mcp-fuzz {target}: {len(files)} inputs, none failed"), r.stdout


def test_a_failing_input_fails_the_replay(tmp_path):
    """The replay can fail: the self-check target traps on the bytes "trap", and the replay of a folder holding
    that input exits with the trap's signal, while the folder without it passes; a missing path or an unknown
    target is an error, not a pass."""
    binary = host_binary().parent / "mcp-fuzz"
    (tmp_path / "a").write_bytes(b"fine")
    ok = subprocess.run([str(binary), "self-check", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "1 inputs, none failed" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "b").write_bytes(b"trap")
    bad = subprocess.run([str(binary), "self-check", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "self-check: the input is 'trap'" in bad.stderr, bad.stdout + bad.stderr[-2000:]
    missing = subprocess.run([str(binary), "json", str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no such file or folder" in missing.stdout
    unknown = subprocess.run([str(binary), "yaml", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 64 and "config, control-line, dispatcher, elf, http, json, self-check, toml, uri-template" in unknown.stdout
