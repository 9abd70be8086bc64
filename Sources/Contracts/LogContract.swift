/// The structured log's field names and formats, shared by every process that writes or reads a log line:
/// the supervisor and the host write them, the supervisor reads a child's lines back, and they are the journal
/// fields of the systemd integration to come. Documented in docs/supervisor.md, "Logs".
public enum LogKey {
    /// RFC 3339 UTC time with milliseconds.
    public static let time = "time"
    /// trace, debug, info, notice, warning, error, critical (swift-log's levels).
    public static let level = "level"
    /// What happened, as a dotted name (`LogEventName`); absent on plain text a child printed.
    public static let event = "event"
    /// The executable that wrote the line: mcp-supervisor, mcp-plugin-host, mcpctl; `plugin` for text a
    /// child printed that was not one of our lines.
    public static let source = "source"
    /// The server the line is about.
    public static let server = "server"
    /// The replica index the line is about (0-based).
    public static let replica = "replica"
    /// The process the line is about: the child's pid for supervisor lines about a child and for forwarded lines.
    public static let pid = "pid"
    /// The readable text (what the terminal format prints after the prefix).
    public static let message = "message"

    /// The keys every line may carry, in the order a JSON line writes them; event fields follow, sorted.
    public static let ordered = [time, level, source, event, server, replica, pid, message]
}

/// How a process writes its log lines (`--log-format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// `mcp-supervisor: NAME[PID]: message`: what a person reads in a terminal or the journal.
    case text
    /// One JSON object per line (`LogKey`), for log shippers.
    case json
}

/// The names of the events the supervisor and the host log. One constant per event so a log shipper's filter and
/// our code cannot drift apart.
public enum LogEventName {
    // The supervisor about itself.
    public static let supervisorStart = "supervisor.start"
    public static let supervisorStop = "supervisor.stop"
    public static let supervisorStopped = "supervisor.stopped"
    public static let supervisorWarning = "supervisor.warning"
    /// The supervisor cannot go on (its port registry is unreadable): it exits after this line.
    public static let supervisorError = "supervisor.error"
    public static let configError = "config.error"
    public static let configOK = "config.ok"
    public static let reload = "config.reload"
    public static let reloadRejected = "config.reload_rejected"
    public static let control = "control"
    /// The systemd watchdog: a self-check failed (pings stop) or passes again (`check`: what failed).
    public static let watchdog = "supervisor.watchdog"
    /// systemd's fd store: a socket adopted, stored or dropped (`fdname`).
    public static let fdStore = "supervisor.fdstore"
    /// The metrics listener (`metrics_listen`): listening, closed, or cannot bind (`address`).
    public static let metrics = "supervisor.metrics"
    /// The descriptor limit: raised at start, or too low for the configured servers (`soft`, `needed`).
    public static let descriptors = "supervisor.descriptors"
    /// A line from code not yet given an event of its own.
    public static let message = "message"

    // The supervisor about a server.
    public static let serverStart = "server.start"
    public static let serverWaiting = "server.waiting"
    public static let serverListenFailed = "server.listen_failed"
    public static let serverRemoved = "server.removed"
    /// Its port answers 503 while it is down for a while (`state`, `retry_in_s`; docs/reliability.md).
    public static let serverUnavailable = "server.unavailable"
    public static let serverRequest = "server.request"

    // The supervisor about one child.
    public static let childStart = "child.start"
    /// A command server's program (docs/servers.md): a line it wrote on stderr, its start and its end.
    public static let programStderr = "program.stderr"
    public static let programStart = "program.start"
    public static let programExit = "program.exit"
    public static let childSpawnFailed = "child.spawn_failed"
    public static let childReady = "child.ready"
    public static let childExit = "child.exit"
    /// A restart was scheduled (backoff).
    public static let childRestart = "child.restart"
    /// Too many restarts: the cool-down retry was scheduled.
    public static let childFatal = "child.fatal"
    /// Not restarted (restart policy, permanent exit status).
    public static let childStay = "child.stay"
    public static let childStartTimeout = "child.start_timeout"
    public static let childHung = "child.hung"
    public static let childStop = "child.stop"
    public static let childStopEscalated = "child.stop_escalated"
    public static let childHealth = "child.health"
    public static let childUnhealthy = "child.unhealthy"
    public static let childLogsDropped = "child.logs_dropped"
    /// A line a child printed that was not structured (a plugin writing to stdout).
    public static let childOutput = "child.output"

    // The host.
    public static let hostServing = "host.serving"
    public static let hostFailure = "host.failure"
    public static let hostDrain = "host.drain"
    /// Written by the box's SIGSYS handler in C (Sources/CBox/cbox.c), which cannot call into Swift: keep the two
    /// spellings equal.
    public static let syscallDenied = "host.syscall_denied"
    public static let pluginLog = "plugin.log"
    /// The gateway's own lines: backends read, items left out of its lists (docs/gateway.md).
    public static let gatewayLog = "gateway.log"

    // mcpctl.
    public static let ctlError = "mcpctl.error"
}

/// The names of the executables as they sign their lines (`LogKey.source`, the text format's prefix).
public enum LogSource {
    public static let supervisor = "mcp-supervisor"
    public static let host = "mcp-plugin-host"
    public static let gateway = "mcp-gateway"
    public static let mcpctl = "mcpctl"
    /// Text a child printed that was not one of our log lines.
    public static let plugin = "plugin"
}
