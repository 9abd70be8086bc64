/// The MCP revisions the host speaks and how it picks one.
public enum ProtocolVersion {
    /// Modern (stateless, per-request `_meta`) revisions, newest first.
    public static let modern: [String] = ["2026-07-28"]
    /// Legacy (initialize handshake, sessions) revisions, newest first.
    public static let legacy: [String] = ["2025-11-25", "2025-06-18", "2025-03-26"]
    /// Every revision served, newest first; the `supported` list of UnsupportedProtocolVersionError.
    public static let all: [String] = modern + legacy
    /// The revision assumed for a legacy request without an MCP-Protocol-Version header.
    public static let assumedWithoutHeader = "2025-03-26"
    /// From this revision on a server primes each SSE stream with an event that has only an id.
    public static let resumptionPriming = "2025-11-25"
    /// The only revision with JSON-RPC batches (2025-06-18 removed them).
    public static let batches = "2025-03-26"

    public static func isModern(_ v: String) -> Bool { modern.contains(v) }
    public static func isLegacy(_ v: String) -> Bool { legacy.contains(v) }

    /// The revision to answer an `initialize` with: the client's if we speak it, else our newest legacy one
    /// (the client then decides whether it can continue, as the 2025-11-25 lifecycle describes).
    public static func negotiateLegacy(requested: String?) -> String {
        if let requested, legacy.contains(requested) { return requested }
        return legacy[0]
    }

    /// Whether results carry `resultType` and `_meta` serverInfo (2026-07-28 and later).
    public static func hasResultType(_ v: String) -> Bool { isModern(v) }
}

/// MCP log levels, ordered from most to least severe (RFC 5424 numbering).
public enum LogLevel {
    public static let names = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"]

    /// The RFC 5424 severity for a level name, or nil when unknown.
    public static func severity(_ name: String) -> Int? { names.firstIndex(of: name) }

    public static func name(_ severity: Int32) -> String {
        let i = Int(severity)
        return i >= 0 && i < names.count ? names[i] : "info"
    }
}
