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
    /// The key that seals 2026-07-28 `requestState` (32 bytes); the supervisor gives every replica of a server the
    /// same one (`MCP_REQUEST_STATE_KEY`). nil: a random key of this process.
    public var requestStateKey: [UInt8]?
    /// How long a client may take to answer an input request before its retry is refused as expired.
    public var requestStateTTL: Duration = .seconds(600)
    /// SSE comment sent this often on an idle subscriptions/listen stream.
    public var keepAliveInterval: Duration = .seconds(15)
    /// Legacy sessions: bytes of SSE events kept for `Last-Event-ID` resumption, across the session's streams
    /// (0: events carry no id and nothing is kept), and how many streams a session remembers.
    public var replayBufferBytes = 128 << 10
    public var replayStreams = 32
    /// The HTTP edge (the gateway's, docs/gateway.md "Edge"): CORS origins, gzip, a bearer token, a rate limit per
    /// client address. All off unless set.
    public var edge = EdgeSettings()

    public init() {}
}

/// What the HTTP edge checks and adds before the dispatcher sees a request (docs/gateway.md, "Edge").
public struct EdgeSettings: Sendable {
    /// Origins (`scheme://host[:port]`, compared case-insensitively) whose browsers may call the endpoint: they
    /// pass the Origin check, preflights are answered, and responses carry `Access-Control-Allow-Origin`.
    public var corsOrigins: [String] = []
    /// Compress JSON responses for clients that send `Accept-Encoding: gzip` (event streams never).
    public var gzip = false
    /// When set, every request needs `Authorization: Bearer <token>` (else 401).
    public var bearerToken: [UInt8]?
    /// Requests per second each client address may make (a token bucket of `rateBurst`); nil: no limit.
    public var ratePerSecond: Double?
    public var rateBurst = 0

    public init() {}
}
