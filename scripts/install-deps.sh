#!/usr/bin/env bash
# Installs what building and testing need on a Debian machine: Debian packages with apt-get (only when one is
# missing) and the Python test dependencies into .venv. Safe to run again; fast when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# passwd (useradd, groupadd) and util-linux (setpriv): the authorization tests create users and run as them.
# libsystemd-dev: sd_notify, the fd store and the journal (the CSystemd system library target); systemd:
# systemd-socket-activate for the fd adoption tests. The system service (docs/systemd.md, docs/packaging.md):
# debhelper, dpkg-dev, fakeroot, lintian, help2man and patchelf to build and check the .deb (scripts/build-deb.sh);
# debootstrap for the Debian 12 tree the real-systemd tests boot (scripts/systemd-ns.sh); wrk for the benchmark.
# Observability (docs/metrics.md, packaging/monitoring/): prometheus (the server the scrape tests start, and
# promtool for the rules and `check metrics`), chromium (the status page, headless).
# Plugin trust and the box (docs/security.md): libssl-dev (libcrypto: SHA-256 and Ed25519) and openssl (the tests
# sign with the stock command line); libseccomp-dev (the child's seccomp filter).
# Plugin kits: golang-go (Plugins/go, go build -buildmode=c-shared); g++ also builds Plugins/cpp.
packages=(gcc g++ make pkg-config python3 python3-venv curl procps iproute2 file passwd util-linux libsystemd-dev
    systemd debhelper dpkg-dev fakeroot lintian help2man patchelf debootstrap wrk prometheus chromium
    libssl-dev openssl libseccomp-dev golang-go)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is not on PATH; the Rust reference plugin needs the machine's Rust toolchain" >&2
    exit 1
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: swift is not on PATH; install Swift 6.3 (swift.org) first" >&2
    exit 1
fi

# pyyaml: the monitoring tests read the rule files (Tests/integration/test_monitoring_rules.py).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mcp, pytest, jsonschema, yaml' >/dev/null 2>&1; then
    echo "install-deps: creating .venv with mcp 2.3.0, pytest, jsonschema, pyyaml"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check 'mcp==2.3.0' 'pytest>=8' 'jsonschema>=4.20' 'pytest-timeout' \
        'pyyaml>=6'
fi
# Command servers (docs/servers.md) are tested against MCP servers nobody here wrote: PyPI's mcp-server-time and
# mcp-server-git and FastMCP 4 beside the SDK in .venv, and mcp-server-sqlite, which needs the 1.x SDK (it speaks
# 2025-06-18 with mcp 1.15), in a venv of its own.
if ! .venv/bin/python -c 'import mcp_server_time, mcp_server_git, fastmcp' >/dev/null 2>&1; then
    echo "install-deps: adding mcp-server-time, mcp-server-git and fastmcp 4 to .venv"
    .venv/bin/pip install -q --disable-pip-version-check 'mcp==2.3.0' 'mcp-server-time==2026.10.19' \
        'mcp-server-git==2026.10.19' 'fastmcp==4.2.3'
fi
if [ ! -x .venv-sqlite/bin/mcp-server-sqlite ] || ! .venv-sqlite/bin/python -c 'import mcp_server_sqlite' >/dev/null 2>&1; then
    echo "install-deps: creating .venv-sqlite with mcp-server-sqlite (mcp 1.15)"
    python3 -m venv .venv-sqlite
    .venv-sqlite/bin/pip install -q --disable-pip-version-check 'mcp-server-sqlite==2025.4.25' 'mcp==1.15.0' \
        'pydantic<2.12'
fi
