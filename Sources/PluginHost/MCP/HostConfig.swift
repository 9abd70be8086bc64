/// Settings of the host (see docs/plugin-host.md for the command-line flags behind them). The transport reads
/// the body limit and the allowed Host and Origin names; the dispatcher reads the rest.
public struct HostConfig: Sendable {
    public var maxBodyBytes = 4 << 20
    public var callTimeout: Duration = .seconds(60)
    public var hangGrace: Duration = .seconds(5)
    public var allowedHosts: [String] = []
    public var allowedOrigins: [String] = []
    public var pageSize = 100
    public var maxOutputBytes = 16 << 20
    public var maxSessions = 4096
    public var sessionIdleTimeout: Duration = .seconds(3600)
    /// Count traffic for the `metrics` op (`--no-metrics` turns it off, for comparison).
    public var metrics = true

    public init() {}
}
