"""Plugin authors' side: `make install` with pkg-config, an out-of-tree build against the installed header only,
and plugins built against the frozen 1.0 header still served by the current host."""

import asyncio
import os
import shutil
import subprocess

import pytest
from mcp import Client

from conftest import REPO, host_binary, start_host


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def echo_round_trip(host):
    async def scenario():
        async with Client(host.url, mode="auto") as c:
            r = await c.call_tool("echo", {"text": "built out of tree"})
            assert r.content[0].text == "built out of tree"
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_make_install_and_out_of_tree_build_with_pkg_config(tmp_path):
    prefix = tmp_path / "prefix"
    run(["make", "-C", str(REPO), "install", f"PREFIX={prefix}", "CONFIG=release"])
    for header in ("mcp_plugin.h", "mcp_plugin.hpp"):
        assert (prefix / "include" / header).read_bytes() == \
            (REPO / "Sources/PluginABI/include" / header).read_bytes()
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    cflags = run(["pkg-config", "--cflags", "mcp-plugin"], env=env).split()
    assert cflags == [f"-I{prefix}/include"]
    assert run(["pkg-config", "--modversion", "mcp-plugin"], env=env).strip() == "1.1.0"
    # Out of tree: the plugin source alone in a folder of its own, the installed header the only include path.
    src = tmp_path / "author"
    src.mkdir()
    shutil.copy(REPO / "Plugins/reference-c/reference.c", src / "reference.c")
    so = src / "libmine.so"
    run(["cc", *cflags, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(so), "reference.c"],
        cwd=src, env=env)
    check = subprocess.run([str(prefix / "bin/mcp-plugin-host"), "--check", "--plugin", str(so)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "verdict: loads" in check.stdout
    host = start_host(so)
    try:
        echo_round_trip(host)
    finally:
        assert host.stop() == 0


@pytest.mark.parametrize("minor", ["1.0", "1.1"])
def test_plugin_built_against_a_frozen_header_is_served(tmp_path, minor):
    """The reference plugin as it was released with each frozen header (1.0: Tests/abi/v1.0/reference.c; 1.1:
    today's), built against that header alone, loads in this host and answers in both eras."""
    frozen = REPO / "Tests/abi" / f"v{minor}"
    source = frozen / "reference.c" if (frozen / "reference.c").exists() else REPO / "Plugins/reference-c/reference.c"
    so = tmp_path / "libref.so"
    run(["cc", f"-I{frozen}", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(so), str(source)])
    out = run([str(host_binary()), "--check", "--json", "--plugin", str(so)])
    assert '"loads":true' in out.replace(" ", "")
    host = start_host(so)
    try:
        echo_round_trip(host)
    finally:
        assert host.stop() == 0


@pytest.mark.parametrize("minor", ["1.0", "1.1"])
def test_frozen_layouts_are_prefixes_of_the_current_one(minor):
    """Each frozen header produces exactly its frozen golden layout (so the copies cannot drift), and every field
    of that layout sits at the same offset with the same size in today's layout (fields are only appended)."""
    frozen = REPO / "Tests/abi" / f"v{minor}"
    r = subprocess.run(["python3", str(REPO / "Tests/abi/check_layout.py"), "--header", str(frozen / "mcp_plugin.h"),
                        "--golden", str(frozen / "layout.golden"), "--dump-source", str(frozen / "layout_dump.c")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    def fields(path):
        return {line for line in path.read_text().splitlines() if line and not line.startswith(("#", "struct "))}

    missing = fields(frozen / "layout.golden") - fields(REPO / "Tests/abi/layout.golden")
    assert not missing, f"fields of ABI {minor} moved or vanished: {sorted(missing)}"


def test_the_c_example_in_the_authors_guide_builds_and_serves(tmp_path):
    import re
    guide = (REPO / "docs/plugin-authors.md").read_text()
    code = re.search(r"## C in one file.*?```c\n(.*?)```", guide, re.S).group(1)
    (tmp_path / "mine.c").write_text(code)
    so = tmp_path / "libmine.so"
    run(["cc", f"-I{REPO}/Sources/PluginABI/include", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
         "-o", str(so), str(tmp_path / "mine.c")])
    host = start_host(so)
    try:
        async def scenario():
            async with Client(host.url, mode="legacy") as c:
                assert [t.name for t in (await c.list_tools()).tools] == ["echo"]
                assert (await c.call_tool("echo", {"text": "from the guide"})).content[0].text == "from the guide"
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        assert host.stop() == 0
