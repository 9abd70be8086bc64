"""`mcp-plugin-host --check`: a verdict on every good and broken plugin, without serving, in text and JSON."""

import json
import os
import subprocess

import pytest

from conftest import host_binary, plugin_dir, plugin_path

GOOD = {
    "reference": ["echo", "add", "slow_count", "fail", "confirm", "ask_model", "list_roots", "announce"],
    "faulty": ["ok", "crash", "hang", "slow", "abort"],
    "conformance": None,
    "rust_reference": ["reverse", "word_count", "panic", "confirm", "ask_model", "list_roots"],
}

BROKEN = {
    # plugin: (failing check, what the detail must say, exit status the host would have)
    "not_elf": ("elf", "not an ELF file", 11),
    "wrong_machine": ("elf", "aarch64", 11),
    "no_entry": ("entry", "mcpp_negotiate_v1", 13),
    "wrong_major": ("entry", "major 2", 14),
    "newer_minor": ("abi", "1.99", 15),
    "create_fails": ("create", "/nonexistent is not writable", 16),
    "create_crash": ("create", "SIGSEGV", 70),
    "bad_describe": ("describe", "not valid JSON", 17),
    "missing_lib": ("libraries", "libmcpp_gone.so", 12),
}


# uname's machine -> the name `--check` gives the ELF machine field (the wrong_machine case names "aarch64").
ELF_MACHINE = {"x86_64": "x86-64", "aarch64": "aarch64", "riscv64": "riscv", "ppc64le": "ppc64", "s390x": "s390"}


def check(path, *extra):
    return subprocess.run([str(host_binary()), "--check", "--plugin", str(path), *extra],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_plugins_load(name):
    r = check(plugin_path(name), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["loads"] is True and report["hostExitStatus"] == 0
    # The machine this test runs on, as the ELF header names it (the plugins are built here).
    assert report["elf"] == {"class": 64, "machine": ELF_MACHINE[os.uname().machine], "type": "shared object"}
    assert all(step["ok"] for step in report["checks"])
    assert [s["name"] for s in report["checks"]] == ["file", "elf", "entry", "libraries", "abi", "create"]
    assert all("resolved" in n for n in report["needed"])
    if GOOD[name] is not None:
        assert report["declared"]["tools"] == GOOD[name]
    r = check(plugin_path(name))
    assert r.returncode == 0 and r.stdout.rstrip().endswith("verdict: loads")


def test_swift_plugin_loads_on_the_hosts_own_runtime():
    swift = host_binary().parent / "libSwiftReferencePlugin.so"
    report = json.loads(check(swift, "--json").stdout)
    assert report["loads"] is True
    core = next(n for n in report["needed"] if n["name"] == "libswiftCore.so")
    assert "already loaded in the host" in core["resolved"]
    assert report["declared"]["prompts"] == ["haiku"] and report["declared"]["completions"] is True


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_plugins_get_a_clear_verdict(name):
    step, words, status = BROKEN[name]
    path = plugin_path(name) if name != "not_elf" else plugin_dir() / "libnot_elf.so"
    r = check(path, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["loads"] is False
    assert report["hostExitStatus"] == status
    failed = [s for s in report["checks"] if not s["ok"]]
    assert len(failed) == 1 and failed[0]["name"] == step, report["checks"]
    assert words in failed[0]["detail"] and words in report["problem"]
    text = check(path)
    assert text.returncode == 1
    assert text.stdout.rstrip().splitlines()[-1] == f"verdict: will not load: {report['problem']}"


def test_missing_file_is_a_verdict_too(tmp_path):
    r = check(tmp_path / "nope.so", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["hostExitStatus"] == 10 and "No such file" in report["problem"]


def test_check_reads_the_elf_without_running_plugin_code_when_static_checks_fail(tmp_path):
    # A library whose constructor would write a file: its entry symbol is missing, so --check must stop at the
    # ELF reading stage and never load it (the constructor must not run).
    marker = tmp_path / "constructor-ran"
    src = tmp_path / "ctor.c"
    src.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void c(void) '
                   f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\nint not_a_plugin(void) {{ return 1; }}\n')
    so = tmp_path / "libctor.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True, timeout=60)
    r = check(so)
    assert r.returncode == 1 and "mcpp_negotiate_v1" in r.stdout
    assert not marker.exists()
