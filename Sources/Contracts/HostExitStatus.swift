/// The exit statuses of `mcp-plugin-host`, the table both ends read: the host exits with them and the supervisor
/// decides from them whether restarting can help (docs/plugin-host.md, "Exit statuses").
///
/// Statuses are grouped in ranges of ten so that later load errors land in a named, reserved place instead of
/// wherever a number is free. Every status in a *permanent* range means "the plugin, its configuration or its
/// environment is wrong: restarting will not help", and the supervisor never restarts on it.
public struct HostExitStatus: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    public var description: String { "\(rawValue)" }

    public static let clean = HostExitStatus(rawValue: 0)
    /// `--check`: the plugin would not load (the report says why).
    public static let checkFailed = HostExitStatus(rawValue: 1)

    // 10–19: loading the plugin failed.
    public static let cannotOpen = HostExitStatus(rawValue: 10)
    public static let notLoadable = HostExitStatus(rawValue: 11)
    public static let loaderRefused = HostExitStatus(rawValue: 12)
    public static let noEntrySymbol = HostExitStatus(rawValue: 13)
    public static let abiMajor = HostExitStatus(rawValue: 14)
    public static let abiMinor = HostExitStatus(rawValue: 15)
    public static let createFailed = HostExitStatus(rawValue: 16)
    public static let invalidDeclarations = HostExitStatus(rawValue: 17)
    public static let invalidConfig = HostExitStatus(rawValue: 18)

    // 20–29: the host's environment; restarting may help.
    public static let listenFailed = HostExitStatus(rawValue: 20)

    public static let usage = HostExitStatus(rawValue: 64)
    public static let crashed = HostExitStatus(rawValue: 70)
    public static let hung = HostExitStatus(rawValue: 71)

    /// A named range of statuses.
    public struct Range: Sendable, Hashable {
        public let name: String
        public let statuses: ClosedRange<Int32>
        /// The supervisor never restarts a host that exited with a status in this range.
        public let permanent: Bool
        public let meaning: String
    }

    /// Every range, in order. 30–59 are load errors of the trust, the box and command servers; the supervisor treats the whole
    /// of each range as permanent, so a status added later in one of them needs no supervisor change.
    public static let ranges: [Range] = [
        Range(
            name: "load", statuses: 10...19, permanent: true,
            meaning: "the plugin cannot be loaded: its file, its ABI, its declarations or its configuration"),
        Range(
            name: "environment", statuses: 20...29, permanent: false,
            meaning:
                "the host's environment is not usable (its listening socket), or a command server's program exited; restarting may help"
        ),
        Range(
            name: "trust", statuses: 30...39, permanent: true,
            meaning: "the plugin is not trusted: no valid signature by a trusted key, or not the expected digest"),
        Range(
            name: "sandbox", statuses: 40...49, permanent: true,
            meaning: "the child's box (docs/security.md) cannot be set up"),
        Range(
            name: "command", statuses: 50...59, permanent: true,
            meaning: "a command server's program cannot be started or does not speak MCP"),
    ]

    /// The range a status belongs to, if any.
    public static func range(of status: Int32) -> Range? { ranges.first { $0.statuses.contains(status) } }

    /// Restarting cannot help: the plugin or its configuration is wrong.
    public static func isPermanent(_ status: Int32) -> Bool { range(of: status)?.permanent ?? false }

    public var isPermanent: Bool { Self.isPermanent(rawValue) }
}
