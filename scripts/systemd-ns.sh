#!/usr/bin/env bash
# Boots a real systemd 252 as PID 1 in private namespaces inside a minimal Debian 12 tree, for the tests of the
# system service (Tests/integration/test_systemd_service.py) and bench/systemd_restart.py. Needs root.
#
#   scripts/systemd-ns.sh tree                 build the cached Debian 12 tree when absent; print its path
#   scripts/systemd-ns.sh boot RUNDIR          boot systemd in an overlay of the tree (upper layer in RUNDIR);
#                                              runs in the foreground until PID 1 ends; the pid of the
#                                              namespace's PID 1, as seen from the host, is in RUNDIR/pid
#                                              RUNDIR/share is /share inside: the way files go in and out
#   scripts/systemd-ns.sh run RUNDIR CMD...    run CMD inside (nsenter + chroot), e.g. systemctl status
#   scripts/systemd-ns.sh kill RUNDIR          SIGKILL the namespace's PID 1 (ends every process inside),
#                                              unmount and remove RUNDIR
#
# The tree: `debootstrap --variant=minbase` of bookworm with systemd, dbus and adduser, cached in
# ${MCP_NS_CACHE:-/var/cache/mcp-supervisor-test}/bookworm (built from nothing when absent, ~1 min; delete the
# folder to rebuild). It has no Swift toolchain: the package must bring what its executables need.
#
# SAFETY (docs/systemd.md "Tests"): a booted systemd runs tmpfiles and friends. Everything happens in a new mount
# namespace made rprivate first, the tree is an overlay whose upper layer is RUNDIR (never the host's /tmp), and
# /run, /tmp, /var/tmp and /var/log/journal inside are fresh tmpfs mounts; the units that touch the machine
# (tmpfiles, sysctl, binfmt, remount-fs, modules-load, sysusers, timesyncd, random-seed, first boot, getty, ...)
# are masked, and the boot target pulls in only journald and dbus.
set -euo pipefail

CACHE="${MCP_NS_CACHE:-/var/cache/mcp-supervisor-test}"
TREE="$CACHE/bookworm"
TARGET=mcp-test.target
MASKED=(systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.timer
    systemd-tmpfiles-clean.service systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
    systemd-remount-fs.service systemd-modules-load.service systemd-sysusers.service systemd-timesyncd.service
    systemd-random-seed.service systemd-journal-flush.service systemd-update-utmp.service systemd-firstboot.service
    systemd-machine-id-commit.service systemd-pstore.service systemd-repart.service getty.target
    console-getty.service systemd-logind.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer
    fstrim.timer dpkg-db-backup.timer systemd-hwdb-update.service systemd-udevd.service)

die() { echo "systemd-ns: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (namespaces, mounts, chroot)"

build_tree() {
    if [ -x "$TREE/lib/systemd/systemd" ] && [ -f "$TREE/.complete" ]; then
        echo "$TREE"; return
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh installs it)"
    mkdir -p "$CACHE"
    rm -rf "$TREE.partial"
    echo "systemd-ns: debootstrap bookworm into $TREE (once; cached)" >&2
    debootstrap --variant=minbase --include=systemd,dbus,adduser,procps,ca-certificates \
        bookworm "$TREE.partial" >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $CACHE/debootstrap.log"
    # apt inside must not fetch anything during tests: installing ./x.deb needs only what is here.
    rm -f "$TREE.partial/var/cache/apt/archives/"*.deb
    echo "mcp-ns" >"$TREE.partial/etc/hostname"
    : >"$TREE.partial/etc/machine-id"
    touch "$TREE.partial/.complete"
    rm -rf "$TREE"
    mv "$TREE.partial" "$TREE"
    echo "$TREE"
}

# The inside of `boot`, run as the new namespaces' first process (its pid 1 until systemd replaces it).
boot_inside() {
    local rundir="$1" root="$1/root"
    mount --make-rprivate /
    mount -t overlay overlay -o "lowerdir=$TREE,upperdir=$rundir/upper,workdir=$rundir/work" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    # The one folder both sides see: RUNDIR/share is /share inside (files for the inside, like the .deb).
    mkdir -p "$root/share"
    mount --bind "$rundir/share" "$root/share"
    local d
    for d in run tmp var/tmp var/log/journal; do
        mkdir -p "$root/$d"
        mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/$d"
    done
    chmod 0755 "$root/run" "$root/var/log/journal"
    mkdir -p "$root/run/systemd/system"
    for d in "${MASKED[@]}"; do ln -sf /dev/null "$root/run/systemd/system/$d"; done
    cat >"$root/run/systemd/system/$TARGET" <<UNIT
[Unit]
Description=mcp-supervisor test boot (journald, dbus, nothing that touches the host)
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald-dev-log.socket systemd-journald.service dbus.socket
AllowIsolate=yes
UNIT
    exec chroot "$root" /lib/systemd/systemd --system --unit="$TARGET"
}

boot() {
    local rundir="$1"
    [ -d "$TREE" ] || die "no tree at $TREE (run: scripts/systemd-ns.sh tree)"
    case "$(realpath -m "$rundir")" in /tmp | /tmp/*) die "RUNDIR must not be under the host's /tmp" ;; esac
    mkdir -p "$rundir/upper" "$rundir/work" "$rundir/root" "$rundir/share"
    rundir="$(cd "$rundir" && pwd)"
    rm -f "$rundir/pid"
    # --kill-child: when this script dies, the namespace's PID 1 (and so everything inside) dies too.
    unshare --pid --fork --mount --kill-child -- "$0" __inside "$rundir" &
    local unshare_pid=$! child=""
    local deadline=$((SECONDS + 10))
    while [ -z "$child" ] && [ $SECONDS -lt $deadline ]; do
        child="$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null | awk '{print $1}')" || true
        [ -n "$child" ] || sleep 0.05
    done
    [ -n "$child" ] || die "the namespace's first process did not appear"
    echo "$child" >"$rundir/pid"
    wait "$unshare_pid"
}

inside() {
    local rundir="$1"
    shift
    local pid
    pid="$(cat "$rundir/pid")"
    exec nsenter -t "$pid" -p -m -- chroot "$rundir/root" "$@"
}

kill_ns() {
    local rundir="$1" pid
    if [ -f "$rundir/pid" ]; then
        pid="$(cat "$rundir/pid")"
        kill -KILL "$pid" 2>/dev/null || true
        # The mounts live in the namespace; they go with its last process.
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    rm -rf "$rundir"
}

case "${1:-}" in
    tree) build_tree ;;
    boot) [ $# -eq 2 ] || die "usage: $0 boot RUNDIR"; boot "$2" ;;
    __inside) boot_inside "$2" ;;
    run) [ $# -ge 3 ] || die "usage: $0 run RUNDIR CMD..."; rd="$2"; shift 2; inside "$rd" "$@" ;;
    kill) [ $# -eq 2 ] || die "usage: $0 kill RUNDIR"; kill_ns "$2" ;;
    *) die "usage: $0 tree | boot RUNDIR | run RUNDIR CMD... | kill RUNDIR" ;;
esac
