/// How deep a health check looks. Spelled here once: the supervisor's configuration (`[health] level`), the
/// control channel's `health` op, the control socket's `health` method and mcpctl all use these names.
public enum HealthLevel: String, Sendable, Equatable, CaseIterable, Comparable {
    /// The process is alive and its event loop answers a ping on the control channel in time.
    case basic
    /// basic + a real MCP request (`server/discover`) over the server's own port, timed, + the plugin's own
    /// health callback.
    case detailed
    /// detailed + the plugin's diagnostic report + the child's RSS, open descriptors and CPU from /proc.
    case diagnostic

    public static func < (a: HealthLevel, b: HealthLevel) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// "basic, detailed or diagnostic", for error messages.
    public static var choices: String {
        let names = allCases.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }
}

/// A child's (or a server's) health state, as `status` and `health` report it.
public enum HealthState: String, Sendable, Equatable, CaseIterable {
    /// Started, not yet shown healthy by a probe.
    case initializing
    /// The last probes passed within the latency threshold.
    case healthy
    /// Serving, but slow or partially failing (a probe failed, was slow, or some call slots are stuck).
    case degraded
    /// `failures` probes in a row failed.
    case unhealthy
    /// No process (exited, waiting to restart, stopped).
    case offline

    /// The contribution of one child to its server's 0–1 score.
    public var score: Double {
        switch self {
        case .healthy: return 1
        case .degraded: return 0.5
        case .initializing, .unhealthy, .offline: return 0
        }
    }
}
