import MCPProtocol

/// The keys of `status`'s and `health`'s results (docs/mcpctl.md), spelled once for the supervisor that builds
/// them and mcpctl that reads them.
public enum StatusKey {
    // A server in `status`.
    public static let name = "name"
    /// The server's `group` setting ("" when none).
    public static let group = "group"
    public static let state = "state"
    public static let health = "health"
    public static let score = "score"
    public static let port = "port"
    public static let portKind = "port_kind"
    /// What the server runs: "plugin" or "command" (docs/servers.md).
    public static let kind = "kind"
    /// The plugin's path, or the command's program and arguments (an array).
    public static let target = "target"
    /// A command server's transport, "stdio" or "http" (absent for a plugin).
    public static let transport = "transport"
    /// The gateway's items left out of its lists, each with its reason (docs/gateway.md, "Names").
    public static let leftOut = "left_out"
    public static let failure = "failure"
    public static let replicas = "replicas"
    /// The child's box: enabled and the mechanism of each limit (docs/security.md).
    public static let box = "box"
    // A replica in `status` (and, for the first ones, in `health`).
    public static let index = "index"
    public static let pid = "pid"
    public static let restarts = "restarts"
    public static let uptime = "uptime"
    public static let lastExit = "last_exit"
    public static let healthReason = "health_reason"
    public static let checkedAgo = "checked_ago"
    public static let latencyMS = "latency_ms"
    // `health`'s result and its replicas.
    public static let server = "server"
    public static let level = "level"
    public static let reason = "reason"
    public static let lastProbe = "last_probe"
}

/// The keys of one probe's report (`last_probe` in `health`).
public enum ProbeKey {
    public static let level = "level"
    public static let result = "result"
    public static let latencyMS = "latency_ms"
    public static let detail = "detail"
    public static let eventLoop = "event_loop"
    public static let serverDiscover = "server_discover"
    public static let plugin = "plugin"
    public static let pluginReport = "plugin_report"
    public static let process = "process"
    public static let stuckSlots = "stuck_slots"
    public static let slots = "slots"
    public static let callsInFlight = "calls_in_flight"
    public static let state = "state"
    // Inside the parts.
    public static let answered = "answered"
    public static let ok = "ok"
    public static let ms = "ms"
    public static let port = "port"
    public static let error = "error"
    // Inside `process`.
    public static let pid = "pid"
    public static let rssBytes = "rss_bytes"
    public static let openFDs = "open_fds"
    public static let threads = "threads"
    public static let cpuSeconds = "cpu_seconds"
    public static let cpuPercent = "cpu_percent"
}

/// A server's state in `status`.
public enum ServerStatus: String, Sendable, CaseIterable {
    /// At least one replica is ready.
    case running
    /// Replicas were started and none is ready yet.
    case starting
    case stopping
    /// Stopped by request (mcpctl stop); stays so until started.
    case stopped
    /// Waiting for its dependencies to be ready.
    case waiting
    /// It cannot run (see `failure`: its port is taken, …).
    case failed
    /// Every replica exited and is not being restarted, or is in backoff.
    case down
}
