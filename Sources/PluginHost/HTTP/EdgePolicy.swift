import Locking
import MCPProtocol

/// The HTTP edge's checks (EdgeSettings; docs/gateway.md, "Edge"): bearer token, rate limit per client address,
/// CORS. One per server, shared by its connections.
final class EdgePolicy: Sendable {
    let settings: EdgeSettings
    private let corsOrigins: Set<String>
    private let buckets: RateBuckets?

    init(_ settings: EdgeSettings) {
        self.settings = settings
        self.corsOrigins = Set(settings.corsOrigins.map { $0.lowercased() })
        self.buckets = settings.ratePerSecond.map { RateBuckets(perSecond: $0, burst: max(1, settings.rateBurst)) }
    }

    var isEmpty: Bool { corsOrigins.isEmpty && settings.bearerToken == nil && buckets == nil }

    /// Whether `origin` is a CORS origin of this endpoint.
    func allowsCORS(_ origin: String?) -> Bool {
        guard let origin else { return false }
        return corsOrigins.contains(origin.lowercased())
    }

    /// The headers every response to a request from `origin` carries.
    func corsHeaders(_ origin: String?) -> [(String, String)] {
        guard let origin, allowsCORS(origin) else { return [] }
        return [
            ("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
            ("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version, Retry-After, WWW-Authenticate"),
        ]
    }

    static let allowedHeaders = [
        "Content-Type", "Accept", "Authorization", "Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name",
        "Last-Event-ID",
    ]

    /// A preflight's answer headers: the MCP headers, and of those the browser asks for, any `Mcp-Param-*` (a
    /// tool's mirrored arguments, which a client must send).
    func preflightHeaders(_ origin: String, requested: String?) -> [(String, String)] {
        let params = (requested ?? "").split(separator: ",").map { String($0.filter { $0 != " " }) }.filter {
            $0.lowercased().hasPrefix("mcp-param-") && $0.utf8.count <= 128
        }
        return corsHeaders(origin) + [
            ("Access-Control-Allow-Methods", "POST, GET, DELETE, OPTIONS"),
            ("Access-Control-Allow-Headers", (Self.allowedHeaders + params).joined(separator: ", ")),
            ("Access-Control-Max-Age", "600"),
        ]
    }

    /// Whether the request's `Authorization` holds the token (compared in constant time).
    func authorized(_ header: String?) -> Bool {
        guard let token = settings.bearerToken else { return true }
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let given = Array(header.utf8.dropFirst(7))
        guard given.count == token.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(given, token) { diff |= a ^ b }
        return diff == 0
    }

    /// nil when the client at `address` may go on; else how long until it may.
    func throttle(_ address: String) -> Double? { buckets?.take(address) }
}

/// Token buckets by key, bounded: past `maxKeys` the buckets that are full again are forgotten.
final class RateBuckets: Sendable {
    let perSecond: Double
    let burst: Double
    static let maxKeys = 10_000
    private let state = Locked<[String: (tokens: Double, at: ContinuousClock.Instant)]>([:])

    init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = Double(burst)
    }

    /// Takes a token for `key`: nil if there was one, else the seconds until there is.
    func take(_ key: String) -> Double? {
        let now = ContinuousClock.now
        return state.withLock { buckets in
            var b = buckets[key] ?? (burst, now)
            let elapsed = b.at.duration(to: now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            b.tokens = min(burst, b.tokens + seconds * perSecond)
            b.at = now
            if b.tokens >= 1 {
                b.tokens -= 1
                buckets[key] = b
                if buckets.count > Self.maxKeys { forgetFull(&buckets, now) }
                return nil
            }
            buckets[key] = b
            return (1 - b.tokens) / perSecond
        }
    }

    private func forgetFull(
        _ buckets: inout [String: (tokens: Double, at: ContinuousClock.Instant)], _ now: ContinuousClock.Instant
    ) {
        let refill = Duration.seconds(burst / perSecond)
        buckets = buckets.filter { _, b in b.at.duration(to: now) < refill }
        // Still too many (a flood from many addresses): the ones seen longest ago go, down to three quarters.
        if buckets.count > Self.maxKeys {
            let keep = buckets.sorted { $0.value.at > $1.value.at }.prefix(Self.maxKeys * 3 / 4)
            buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
