"""ABI checks of mcp_plugin.h: the header compiles cleanly as C and C++, and its struct layout
only ever grows by appending (Tests/abi/check_header.sh, Tests/abi/check_layout.py).

The negative tests write modified copies of the header (and of layout_dump.c) to a temporary
folder and make sure check_layout.py rejects what would break plugins built against 1.0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ABI = REPO / "Tests" / "abi"
HEADER = REPO / "Sources" / "PluginABI" / "include" / "mcp_plugin.h"
DUMP = ABI / "layout_dump.c"

TOOL_NAME = "    mcpp_str name;            /* required; unique among tools"
TOOL_TITLE = "    mcpp_str title;           /* optional human-readable name"
TOOL_DESCRIPTION = "    mcpp_str description;     /* optional "
TOOL_ANNOTATIONS = "    mcpp_str annotations;     /* optional ToolAnnotations object as JSON text"
DUMP_TOOL_ANNOTATIONS = "    FIELD(mcpp_tool, annotations);\n"


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_layout(*args: str | Path) -> subprocess.CompletedProcess:
    return run([sys.executable, str(ABI / "check_layout.py"), *map(str, args)])


def line_of(text: str, start: str) -> str:
    """The one whole line of `text` that starts with `start` (newline included)."""
    lines = [line for line in text.splitlines(keepends=True) if line.startswith(start)]
    assert len(lines) == 1, f"expected one line starting with {start!r} in the header, found {len(lines)}"
    return lines[0]


def write_header(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mcp_plugin.h"
    path.write_text(text)
    return path


def write_dump(tmp_path: Path, after: str, extra: str) -> Path:
    """A copy of layout_dump.c with `extra` inserted after the line `after`."""
    text = DUMP.read_text()
    assert text.count(after) == 1
    path = tmp_path / "layout_dump.c"
    path.write_text(text.replace(after, after + extra))
    return path


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


# --- the real header ------------------------------------------------------------------


def test_header_compiles_as_c_and_cxx():
    result = run(["bash", str(ABI / "check_header.sh")])
    assert result.returncode == 0, output(result)
    for std in ("c11", "c17", "c++11", "c++17"):
        assert f"ok   {std}\n" in result.stdout


def test_layout_matches_golden():
    result = check_layout()
    assert result.returncode == 0, output(result)
    assert "FAIL" not in result.stdout


def test_golden_covers_every_header_struct():
    golden = (ABI / "layout.golden").read_text()
    for struct in ("mcpp_str", "mcpp_writer", "mcpp_tool", "mcpp_resource", "mcpp_resource_template",
                   "mcpp_prompt_arg", "mcpp_prompt", "mcpp_registry", "mcpp_host", "mcpp_plugin",
                   "mcpp_negotiation"):
        assert f"struct {struct} size " in golden


# --- incompatible changes must fail ---------------------------------------------------------


def test_swapped_fields_fail(tmp_path):
    text = HEADER.read_text()
    title, description = line_of(text, TOOL_TITLE), line_of(text, TOOL_DESCRIPTION)
    swapped = text.replace(title + description, description + title)
    assert swapped != text
    result = check_layout("--header", write_header(tmp_path, swapped))
    assert result.returncode == 1, output(result)
    assert "mcpp_tool.title moved from offset 24 to 40" in result.stdout
    assert "mcpp_tool.description moved from offset 40 to 24" in result.stdout


def test_field_inserted_mid_struct_fails(tmp_path):
    """Even when layout_dump.c prints the new field, an insertion moves every later field."""
    text = HEADER.read_text()
    name = line_of(text, TOOL_NAME)
    header = write_header(tmp_path, text.replace(name, name + "    mcpp_str icon;\n"))
    dump = write_dump(tmp_path, "    FIELD(mcpp_tool, name);\n", "    FIELD(mcpp_tool, icon);\n")
    result = check_layout("--header", header, "--dump-source", dump)
    assert result.returncode == 1, output(result)
    assert "mcpp_tool.icon is new at offset 24, inside the old struct" in result.stdout
    assert "mcpp_tool.title moved from offset 24 to 40" in result.stdout


def test_field_missing_from_dump_fails(tmp_path):
    """A field added to the header but not to layout_dump.c is caught (here: a mid-struct insertion)."""
    text = HEADER.read_text()
    name = line_of(text, TOOL_NAME)
    result = check_layout("--header", write_header(tmp_path, text.replace(name, name + "    mcpp_str icon;\n")))
    assert result.returncode == 1, output(result)
    assert "mcpp_tool.icon is declared in the header but layout_dump.c does not print it" in result.stdout
    assert "mcpp_tool.title moved" in result.stdout


def test_appended_field_missing_from_dump_fails(tmp_path):
    text = HEADER.read_text()
    last = line_of(text, TOOL_ANNOTATIONS)
    result = check_layout("--header", write_header(tmp_path, text.replace(last, last + "    mcpp_str icons;\n")))
    assert result.returncode == 1, output(result)
    assert "mcpp_tool.icons is declared in the header but layout_dump.c does not print it" in result.stdout


def test_field_size_change_fails(tmp_path):
    text = HEADER.read_text()
    old = "    int64_t size;             /* size in bytes"
    assert text.count(old) == 1
    result = check_layout("--header", write_header(tmp_path, text.replace(old, "    int32_t size;             /* size in bytes")))
    assert result.returncode == 1, output(result)
    assert "mcpp_resource.size changed size from 8 to 4 bytes" in result.stdout


def test_removed_last_field_fails(tmp_path):
    """Dropping the last field of a struct (from header and dump) shrinks it."""
    text = HEADER.read_text()
    last = line_of(text, "    mcpp_str annotations;")
    header = write_header(tmp_path, text.replace(last, ""))
    dump_text = DUMP.read_text()
    assert dump_text.count(DUMP_TOOL_ANNOTATIONS) == 1
    dump = tmp_path / "layout_dump.c"
    dump.write_text(dump_text.replace(DUMP_TOOL_ANNOTATIONS, ""))
    result = check_layout("--header", header, "--dump-source", dump)
    assert result.returncode == 1, output(result)
    assert "struct mcpp_tool shrank from 104 to 88 bytes" in result.stdout
    assert "mcpp_tool.annotations disappeared" in result.stdout


def test_new_struct_missing_from_dump_fails(tmp_path):
    text = HEADER.read_text()
    anchor = "typedef struct mcpp_negotiation {"
    assert text.count(anchor) == 1
    new = "typedef struct mcpp_icon {\n    uint32_t struct_size;\n    uint32_t reserved;\n    mcpp_str src;\n} mcpp_icon;\n\n"
    result = check_layout("--header", write_header(tmp_path, text.replace(anchor, new + anchor)))
    assert result.returncode == 1, output(result)
    assert "struct mcpp_icon is declared in the header but layout_dump.c does not print it" in result.stdout


# --- compatible changes pass ----------------------------------------------------------------


def test_appended_field_passes_with_update_note(tmp_path):
    text = HEADER.read_text()
    last = line_of(text, TOOL_ANNOTATIONS)
    header = write_header(tmp_path, text.replace(last, last + "    mcpp_str icons;\n"))
    dump = write_dump(tmp_path, DUMP_TOOL_ANNOTATIONS, "    FIELD(mcpp_tool, icons);\n")
    result = check_layout("--header", header, "--dump-source", dump)
    assert result.returncode == 0, output(result)
    assert "note mcpp_tool.icons appended at offset 104" in result.stdout
    assert "--update" in result.stdout

    # --update rewrites the golden file, after which the same header passes without notes.
    golden = tmp_path / "layout.golden"
    golden.write_text((ABI / "layout.golden").read_text())
    result = check_layout("--header", header, "--dump-source", dump, "--golden", golden, "--update")
    assert result.returncode == 0, output(result)
    assert "mcpp_tool icons 104 16" in golden.read_text()
    result = check_layout("--header", header, "--dump-source", dump, "--golden", golden)
    assert result.returncode == 0, output(result)
    assert "note" not in result.stdout


def test_update_refuses_incompatible_layout(tmp_path):
    text = HEADER.read_text()
    title, description = line_of(text, TOOL_TITLE), line_of(text, TOOL_DESCRIPTION)
    header = write_header(tmp_path, text.replace(title + description, description + title))
    golden = tmp_path / "layout.golden"
    original = (ABI / "layout.golden").read_text()
    golden.write_text(original)
    result = check_layout("--header", header, "--golden", golden, "--update")
    assert result.returncode == 1, output(result)
    assert golden.read_text() == original


@pytest.mark.parametrize("std", ["c11", "c++17"])
def test_check_header_rejects_a_warning(tmp_path, std):
    """check_header.sh really compiles with -Werror: a header that warns must fail it."""
    text = HEADER.read_text()
    anchor = "#endif /* MCP_PLUGIN_H */"
    assert text.count(anchor) == 1
    bad = text.replace(anchor, "static int mcpp_unused_function(void) { return 0; }\n" + anchor)
    result = run(["bash", str(ABI / "check_header.sh"), "--header", str(write_header(tmp_path, bad))])
    assert result.returncode != 0, output(result)
    assert f"FAIL {std}" in result.stderr
