/// The fixed part of the box's Landlock rules (docs/security.md): what the host itself needs after the box, the
/// Swift runtime, SwiftNIO and the dynamic loader (dlopen of the plugin through /proc/self/fd/N). The supervisor
/// adds these to every `BoxSpec` it builds, with the plugin's folder and the per-server state folder.
extension BoxSpec {
    /// Read and execute beneath these (missing ones are skipped by the host).
    public static let systemReadPaths: [String] = [
        "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin",
        "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/locale.alias",
        "/usr/share/zoneinfo", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf", "/etc/ssl/certs",
        "/dev/urandom", "/dev/random", "/proc/self", "/proc/cpuinfo", "/proc/meminfo",
        "/sys/devices/system/cpu", "/sys/fs/cgroup",
    ]
    /// Read and write beneath these.
    public static let systemWritePaths: [String] = ["/dev/null", "/dev/zero", "/dev/full"]

    /// A spec with the fixed system paths added (what the supervisor starts from).
    public func withSystemPaths() -> BoxSpec {
        var s = self
        s.readPaths = Self.systemReadPaths + readPaths
        s.writePaths = Self.systemWritePaths + writePaths
        return s
    }
}

extension LogEventName {
    /// The host applied its box (`MCP_BOX`): one line with what is in force (docs/security.md).
    public static let boxApplied = "host.box_applied"
}
