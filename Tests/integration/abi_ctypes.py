"""The ABI 1.0 entry structs through ctypes, and the negotiation every kit's entry point must match
(MCPP_DEFINE_ENTRY in Sources/PluginABI/include/mcp_plugin.h): the kits' tests (Rust, C++) load their plugin in
process and check it with `negotiated_table`."""

from __future__ import annotations

import ctypes
from pathlib import Path


class McppStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    def text(self) -> str:
        return ctypes.string_at(self.ptr, self.len).decode() if self.len else ""


class McppPlugin(ctypes.Structure):  # mcpp_plugin (ABI 1.0)
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("threading", ctypes.c_uint32),
        ("max_concurrency", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("name", McppStr),
        ("version", McppStr),
        ("title", McppStr),
        ("instructions", McppStr),
        ("create", ctypes.c_void_p),
        ("destroy", ctypes.c_void_p),
        ("describe", ctypes.c_void_p),
        ("call_tool", ctypes.c_void_p),
        ("read_resource", ctypes.c_void_p),
        ("get_prompt", ctypes.c_void_p),
        ("complete", ctypes.c_void_p),
        ("cancel", ctypes.c_void_p),
        ("health", ctypes.c_void_p),
        ("diagnose", ctypes.c_void_p),
        ("get_extension", ctypes.c_void_p),
    ]


class McppNegotiation(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("host_abi_major", ctypes.c_uint32),
        ("host_abi_minor", ctypes.c_uint32),
        ("plugin_abi_minor", ctypes.c_uint32),
        ("plugin", ctypes.POINTER(McppPlugin)),
    ]


def negotiated_table(plugin: Path, minor: int = 0) -> tuple[ctypes.CDLL, McppPlugin]:
    """Drives `mcpp_negotiate_v1` of `plugin` (built against ABI 1.`minor`) as hosts of every kind would and
    asserts MCPP_DEFINE_ENTRY's answers; returns the library (keep it: the table lives in it) and the table it
    handed out (read as far as 1.0's fields)."""
    assert ctypes.sizeof(McppPlugin) == 168 and ctypes.sizeof(McppNegotiation) == 24
    lib = ctypes.CDLL(str(plugin))
    negotiate = lib.mcpp_negotiate_v1
    negotiate.argtypes = [ctypes.POINTER(McppNegotiation)]
    negotiate.restype = ctypes.c_int32

    def attempt(major=1, minor=0, size=24):
        n = McppNegotiation(struct_size=size, host_abi_major=major, host_abi_minor=minor, plugin_abi_minor=99)
        return negotiate(ctypes.byref(n)), n

    assert negotiate(None) == 3  # MCPP_E_INVALID
    status, n = attempt(size=16)
    assert status == 3 and not n.plugin and n.plugin_abi_minor == 99
    status, n = attempt(major=2)
    assert status == 2 and n.plugin_abi_minor == minor  # MCPP_E_VERSION, minor filled anyway
    if minor > 0:
        # A host that offers only 1.(minor-1): the plugin says it needs 1.minor.
        status, n = attempt(minor=minor - 1)
        assert status == 2 and n.plugin_abi_minor == minor
    status, newer = attempt(minor=7)
    assert status == 0
    status, n = attempt(minor=minor)
    assert status == 0 and n.plugin_abi_minor == minor
    assert ctypes.addressof(n.plugin.contents) == ctypes.addressof(newer.plugin.contents), "the table is static"
    table = n.plugin.contents
    assert table.struct_size >= 168
    return lib, table
