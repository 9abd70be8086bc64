# Sourced by bench/supervisor/run.sh and bench/control/run.sh (from the repository root): the peer and the
# temporary folder, with a cleanup that leaves no process behind even when the driver is killed.
#
#   peer_venv           installs supervisord 4.3.0 from PyPI into $VENV (gitignored: .build*/) if missing
#   bench_workdir NAME  makes $WORK, and arms the cleanup: it stops $DRIVER (the Python driver's pid, set by the
#                       caller) and then kills any pid listed in $WORK/pids that still runs one of the
#                       benchmark's executables, and removes $WORK

VENV=.build-bench/venv-supervisord

peer_venv() {
    if [ ! -x "$VENV/bin/supervisord" ] || [ ! -x "$VENV/bin/supervisorctl" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q 'supervisor==4.3.0'
    fi
}

bench_workdir() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    DRIVER=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    trap - EXIT INT TERM
    if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
        kill -TERM "$DRIVER" 2>/dev/null || true   # the driver stops its supervisors and their children
        for _ in $(seq 1 200); do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DRIVER" 2>/dev/null || true
    fi
    # Anything the driver started or saw as a supervised child and that is still there (driver killed hard):
    # only these pids, and only while they still run one of the benchmark's executables.
    if [ -f "$WORK/pids" ]; then
        local host sleepbin sup exe
        host="$(readlink -f .build/release/mcp-plugin-host)"; sleepbin="$(readlink -f "$(command -v sleep)")"
        sup="$(readlink -f .build/release/mcp-supervisor)"
        while read -r pid; do
            exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
            case "$exe" in
                "$host" | "$sleepbin" | "$sup") kill -KILL "$pid" 2>/dev/null || true ;;
                *python*) grep -qa -e "$WORK" -e supervisord "/proc/$pid/cmdline" 2>/dev/null \
                    && kill -KILL "$pid" 2>/dev/null || true ;;
            esac
        done <"$WORK/pids"
    fi
    rm -rf "$WORK"
}
