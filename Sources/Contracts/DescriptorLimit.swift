#if canImport(Glibc)
    import Glibc
#endif

/// RLIMIT_NOFILE across the processes (docs/reliability.md, "Descriptors"). systemd's default soft limit is 1024
/// (for select(2)'s sake) under a much higher hard one; each server costs the supervisor a few descriptors, so the
/// supervisor raises its own soft limit to the hard one at start, and hands its children the soft limit it was
/// started with (`ChildEnvironment.openFilesSoft`), so a plugin sees the limit it would have had without it.
public enum DescriptorLimit {
    /// What the supervisor holds besides its servers (the control socket and its clients, the metrics listener,
    /// the journal, its own files and Dispatch's), and per server (its listening socket) and per replica (the
    /// control channel, the pidfd, the stdout and stderr pipes, the kept-alive probe connection): measured at 1,212
    /// open with 200 one-replica servers.
    public static let base = 64
    public static let perServer = 1
    public static let perReplica = 5

    /// Descriptors the supervisor needs for servers with these replica counts.
    public static func needed(replicas: [Int]) -> Int {
        base + replicas.reduce(0) { $0 + perServer + perReplica * max(1, $1) }
    }

    /// The process's soft and hard limits (nil: unlimited).
    public static func current() -> (soft: Int?, hard: Int?) {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return (nil, nil) }
        return (value(limit.rlim_cur), value(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one; returns the soft limit before and after.
    @discardableResult
    public static func raiseToHard() -> (before: Int?, after: Int?) {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return (nil, nil) }
        let before = value(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else { return (before, before) }
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        guard setrlimit(resource, &raised) == 0 else { return (before, before) }
        return (before, value(raised.rlim_max))
    }

    /// In a child of the supervisor: sets the soft limit the supervisor passed (the one it was started with) and
    /// removes the variable, so the plugin and its programs inherit that limit and not the raised one.
    public static func applyInherited() {
        guard let text = getenv(ChildEnvironment.openFilesSoft).map({ String(cString: $0) }) else { return }
        unsetenv(ChildEnvironment.openFilesSoft)
        guard let wanted = UInt64(text) else { return }
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return }
        limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
        _ = setrlimit(resource, &limit)
    }

    private static var resource: Int32 { Int32(RLIMIT_NOFILE.rawValue) }

    /// RLIM_INFINITY is ~0 (the C macro does not import as an unsigned constant).
    private static func value(_ v: rlim_t) -> Int? { v == rlim_t.max ? nil : Int(clamping: v) }
}
