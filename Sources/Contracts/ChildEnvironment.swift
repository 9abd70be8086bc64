/// The environment variables through which the supervisor hands a host its descriptors and identity
/// (docs/supervisor.md, "Children"). The supervisor sets them; the host reads them; nobody else spells them.
public enum ChildEnvironment {
    /// The listening socket's descriptor number (the supervisor passes 3).
    public static let listenFD = "MCP_LISTEN_FD"
    /// The control channel's descriptor number (the supervisor passes 4).
    public static let controlFD = "MCP_CONTROL_FD"
    /// The server's name, for the host's own log lines.
    public static let serverName = "MCP_SERVER_NAME"
    /// The replica's index (0-based).
    public static let replica = "MCP_REPLICA"
    /// `json` asks the host to write its log lines as JSON objects (`LogFormat`), so the supervisor forwards
    /// their level and fields instead of wrapping text. Absent or `text`: readable lines.
    public static let logFormat = "MCP_LOG_FORMAT"
    /// The child's box (`BoxSpec`, docs/security.md) as one JSON object; absent: no box (a host run by hand).
    public static let box = "MCP_BOX"
    /// 64 hex digits: the key that seals 2026-07-28 `requestState`, the same for every replica of a server, so a
    /// retry that lands on another replica still opens (docs/protocol.md, "Input requests"). Absent: a random key.
    public static let requestStateKey = "MCP_REQUEST_STATE_KEY"
    /// The soft RLIMIT_NOFILE the supervisor was started with, before it raised its own (`DescriptorLimit`); the
    /// host sets it first thing and removes the variable. Absent: keep the inherited limit.
    public static let openFilesSoft = "MCP_NOFILE_SOFT"

    /// What a command server's program never inherits from its host (docs/servers.md): the host's descriptors,
    /// its box and the requestState key. The server's name and replica it may read.
    public static let privateNames: Set<String> = [
        listenFD, controlFD, box, requestStateKey, logFormat, openFilesSoft,
    ]

    /// The descriptor numbers the supervisor maps in every child.
    public static let listenDescriptor: Int32 = 3
    public static let controlDescriptor: Int32 = 4
}

/// The `MCP_REQUEST_STATE_KEY` value: 32 random bytes, written as 64 hex digits.
public enum RequestStateKey {
    public static func random() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    public static func hex(_ key: [UInt8]) -> String {
        key.map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    /// 64 hex digits as a key; nil otherwise.
    public static func parse(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: 64, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
        }
        return out
    }
}
