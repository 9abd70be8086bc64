/// The sandbox range (40-49): which step of the child's box failed (docs/security.md, docs/plugin-host.md).
extension HostExitStatus {
    /// `MCP_BOX` is not a box description the host can read.
    public static let boxInvalid = HostExitStatus(rawValue: 40)
    /// Writing "0" into a `cgroup.procs` file failed.
    public static let boxCgroup = HostExitStatus(rawValue: 41)
    /// The private /tmp (mount namespace, bind mount) could not be set up.
    public static let boxPrivateTmp = HostExitStatus(rawValue: 42)
    /// A resource limit (RLIMIT_*) or PR_SET_DUMPABLE could not be set.
    public static let boxLimits = HostExitStatus(rawValue: 43)
    /// setgroups/setresgid/setresuid failed.
    public static let boxUser = HostExitStatus(rawValue: 44)
    /// Dropping capabilities (bounding, ambient, capset) failed.
    public static let boxCapabilities = HostExitStatus(rawValue: 45)
    /// PR_SET_NO_NEW_PRIVS failed.
    public static let boxNoNewPrivs = HostExitStatus(rawValue: 46)
    /// Landlock is present but its ruleset could not be built or applied.
    public static let boxLandlock = HostExitStatus(rawValue: 47)
    /// The seccomp filter could not be built or loaded.
    public static let boxSeccomp = HostExitStatus(rawValue: 48)
    /// `syscalls_allow` names a system call this machine does not know.
    public static let boxUnknownSyscall = HostExitStatus(rawValue: 49)
}
